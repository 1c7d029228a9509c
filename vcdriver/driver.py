"""The Nova compute driver: a thin map from Nova's calls to operations.

One nova-compute serves one or more vCenter clusters, each a Nova node.
"""

import uuid

from nova import exception as nova_exception
from nova.compute import task_states
from nova.virt import driver
from nova.virt import hardware
from nova.virt import node as nova_node
from oslo_log import log as logging

from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import consoles
from vcdriver import diagnostics
from vcdriver import drs_rules
from vcdriver import host as host_mod
from vcdriver import hung_reboots
from vcdriver import lifecycle
from vcdriver import migration
from vcdriver import network
from vcdriver import node
from vcdriver import power
from vcdriver import rescue as rescue_mod
from vcdriver import snapshot as snapshot_mod
from vcdriver import storage_policy
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver import volumes
from vcdriver.vsphere import props
from vcdriver.vsphere import session as session_mod
from vcdriver.vsphere import vm_view as vm_view_mod

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# Stable per-cluster node uuids for clusters beyond [vmware] cluster_name.
NODE_UUID_NAMESPACE = uuid.UUID('7d0b5a53-1f0c-4b0e-9a55-0c8f3a6f0f3e')


class VMwareVCDriver(driver.ComputeDriver):
    """Nova driver for VMware vCenter clusters."""

    capabilities = {
        'has_imagecache': True,
        'supports_evacuate': False,
        'supports_migrate_to_same_host': True,
        'supports_attach_interface': True,
        'supports_device_tagging': False,
        'supports_tagged_attach_interface': False,
        'supports_tagged_attach_volume': False,
        'supports_extend_volume': True,
        'supports_multiattach': False,
        'supports_trusted_certs': False,
        'supports_pcpus': False,
        'supports_accelerators': False,
        'supports_remote_managed_ports': False,
        'supports_address_space_passthrough': False,
        'supports_address_space_emulated': False,
        'supports_stateless_firmware': False,
        # EFI firmware with secure boot (os_secure_boot=required asks
        # placement for the trait this capability reports).
        'supports_secure_boot': True,
        'supports_virtio_fs': False,
        'supports_mem_backing_file': False,
        'supports_image_type_aki': False,
        'supports_image_type_ami': False,
        'supports_image_type_ari': False,
        'supports_image_type_iso': True,
        'supports_image_type_qcow2': True,
        'supports_image_type_raw': True,
        'supports_image_type_vdi': False,
        'supports_image_type_vhd': False,
        'supports_image_type_vhdx': False,
        'supports_image_type_vmdk': True,
        'supports_image_type_ploop': False,
    }

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        conf.validate_config()
        self._session = session_mod.Session.from_conf(CONF)
        self._clusters = {}  # nodename -> cluster.Cluster
        self._states = node.States(self._session)
        self._drs_repair = drs_rules.Repairer()

    # --- service -----------------------------------------------------------

    def init_host(self, host):
        self._session.connect()
        storage_policy.check_config(self._session)
        clusters = cluster_mod.resolve(self._session,
                                       conf.cluster_names(CONF))
        view = vm_view_mod.VMView(self._session, [c.ref for c in clusters])
        for c in clusters:
            c.vm_view = view
        self._clusters = {c.nodename: c for c in clusters}
        for c in clusters:
            LOG.info('Serving cluster %s as node %s', c.name, c.nodename)

    def cleanup_host(self, host):
        if self._clusters:
            next(iter(self._clusters.values())).vm_view.close()
        self._session.logout()

    def get_host_ip_addr(self):
        return CONF.vmware.host_ip

    # --- nodes and inventory ------------------------------------------------

    def get_available_nodes(self, refresh=False):
        return list(self._clusters)

    def get_nodenames_by_uuid(self, refresh=False):
        return {self._node_uuid(c): n for n, c in self._clusters.items()}

    def is_node_deleted(self, nodename):
        """A cluster taken out of the configuration takes its node with it
        (Nova then deletes the record and its resource provider)."""
        return nodename not in self._clusters

    def _node_uuid(self, cluster):
        """[vmware] cluster_name keeps the host's node uuid, as in-tree."""
        if cluster.name == CONF.vmware.cluster_name:
            return nova_node.get_local_node_uuid()
        return str(uuid.uuid5(NODE_UUID_NAMESPACE, cluster.nodename))

    def _cluster(self, nodename):
        try:
            return self._clusters[nodename]
        except KeyError:
            raise nova_exception.NovaException(
                'Node %s is not served by this compute service (nodes: %s)'
                % (nodename, ', '.join(self._clusters)))

    def _cluster_of(self, instance):
        return self._cluster(instance.node)

    def _cluster_for_cleanup(self, instance):
        """Destroy must work even for an instance whose node we lost."""
        return (self._clusters.get(instance.node) or
                next(iter(self._clusters.values())))

    def _state(self, nodename, refresh=False):
        self._cluster(nodename)  # raises: not a node of ours
        return self._states.get(self._clusters, nodename, refresh)

    def get_available_resource(self, nodename):
        state = self._state(nodename, refresh=True)
        # Nova's periodic per node: the rate-limited DRS rule repair rides
        # on it (never raises).
        self._drs_repair.run_if_due(self._session, state.cluster)
        return node.resources(state, nodename, self._node_uuid(state.cluster),
                              self._session.about)

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        state = self._state(nodename)
        ratios = self._get_allocation_ratios(
            provider_tree.data(nodename).inventory)
        provider_tree.update_inventory(nodename, node.inventory(
            state, ratios, CONF.vmware.datastore_regex))
        provider_tree.add_traits(nodename, *node.TRAITS)

    # --- instances ----------------------------------------------------------

    def list_instance_uuids(self):
        return list(vm.instances(self._session, self._clusters.values()))

    def list_instances(self):
        # As in-tree: instances are known to vCenter by uuid.
        return self.list_instance_uuids()

    def instance_exists(self, instance):
        return vm.find(self._session, instance.uuid) is not None

    def _vm(self, instance):
        found = vm.find(self._session, instance.uuid)
        if found is None:
            raise nova_exception.InstanceNotFound(instance_id=instance.uuid)
        return found

    def get_info(self, instance, use_cache=True):
        state, cluster_ref = vm.state_and_cluster(self._session,
                                                  self._vm(instance))
        self._report_moved(instance, cluster_ref)
        return hardware.InstanceInfo(state=state)

    def _report_moved(self, instance, cluster_ref):
        """A VM moved to another cluster outside Nova keeps working (it is
        found by uuid), but Nova's node and placement are now wrong: say so,
        for the operator to migrate it back or fix the records."""
        expected = self._clusters.get(instance.node)
        if cluster_ref is None or expected is None or (
                cluster_ref == expected.ref):
            return
        actual = next((c for c in self._clusters.values()
                       if c.ref == cluster_ref), None)
        LOG.warning(
            'The VM of this instance runs in %s, but Nova has it on node '
            '%s (cluster %s): it was moved outside Nova. It keeps working; '
            'placement still counts it on %s.',
            'cluster %s (node %s)' % (actual.name, actual.nodename)
            if actual else 'a cluster this service does not serve (%s)'
            % props.moid(cluster_ref),
            instance.node, expected.name, instance.node, instance=instance)

    def prepare_for_spawn(self, instance):
        lifecycle.prepare_for_spawn(instance)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        lifecycle.spawn(
            self._session, context, self._cluster_of(instance), instance,
            image_meta, block_device_info=block_device_info,
            power_on=power_on, injected_files=injected_files,
            admin_password=admin_password, network_info=network_info)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.task_state == task_states.RESIZE_REVERTING:
            # Nova's revert on the destination: the VM is the instance's
            # only one; finish_revert_migration moves it back.
            LOG.info('Resize revert: the VM is kept for the source to take '
                     'back', instance=instance)
            return
        lifecycle.destroy(self._session, self._cluster_for_cleanup(instance),
                          instance, destroy_disks=destroy_disks,
                          block_device_info=block_device_info)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        """Nothing lives outside vCenter for an instance: destroy did it."""

    def cache_image(self, context, image_id):
        return lifecycle.cache_image(self._session, context,
                                     list(self._clusters.values()), image_id)

    def manage_image_cache(self, context, all_instances):
        clusters = list(self._clusters.values())
        lifecycle.manage_image_cache(
            self._session, clusters,
            cluster_mod.read_state(self._session, clusters), all_instances)

    def power_off(self, instance, timeout=0, retry_interval=0):
        how = power.power_off(self._session, self._vm(instance), timeout,
                              retry_interval)
        LOG.info('Powered off (%s)', how, instance=instance)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        power.power_on(self._session, self._vm(instance))

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        how = power.reboot(self._session, self._vm(instance),
                           soft=reboot_type == 'SOFT',
                           timeout=CONF.vcdriver.soft_reboot_timeout)
        LOG.info('Rebooted (%s)', how, instance=instance)

    def poll_rebooting_instances(self, timeout, instances):
        hung_reboots.hard_reboot(instances, timeout)

    def snapshot(self, context, instance, image_id, update_task_state):
        snapshot_mod.snapshot(self._session, context, instance,
                              self._vm(instance), image_id,
                              update_task_state)

    # --- migration: resize, cold migration --------------------------------

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        return migration.migrate_disk_and_power_off(
            self._session, instance, self._vm(instance), flavor, timeout,
            retry_interval, migration.resize_destination(
                self._session, context, list(self._clusters.values()),
                instance))

    def finish_migration(self, context, migration_, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None,
                         power_on=True, share_info=None):
        migration.finish_migration(
            self._session, context, list(self._clusters.values()),
            self._cluster(migration_.dest_node), instance, migration_,
            self._vm(instance), power_on=power_on)

    def confirm_migration(self, context, migration_, instance, network_info):
        migration.confirm_migration(
            self._session, self._clusters.get(migration_.source_node) or
            self._cluster_for_cleanup(instance), instance,
            vm.find(self._session, instance.uuid))

    def finish_revert_migration(self, context, instance, network_info,
                                migration_, block_device_info=None,
                                power_on=True, share_info=None):
        migration.finish_revert_migration(
            self._session, context, list(self._clusters.values()),
            self._cluster(migration_.source_node), instance,
            self._vm(instance), power_on=power_on)

    # --- migration: live ---------------------------------------------------

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        """Nova records the destination host's first node for the
        instance; that node's cluster is where the VM goes."""
        return migration.destination_data(
            self._session,
            self._cluster(dst_compute_info['hypervisor_hostname']),
            instance)

    def cleanup_live_migration_destination_check(self, context,
                                                 dest_check_data):
        """The destination check leaves nothing behind."""

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        return migration.check_source(self._session, instance,
                                      dest_check_data)

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        """vCenter moves the VM with its disks: nothing to prepare."""
        return migrate_data

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        migration.live_migration(
            self._session, context, list(self._clusters.values()), instance,
            self._vm(instance), migrate_data,
            on_success=lambda: post_method(context, instance, dest,
                                           block_migration, migrate_data),
            on_failure=lambda: recover_method(context, instance, dest,
                                              migrate_data))

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        """The VM moved as a whole: nothing left at the source."""

    def post_live_migration_at_source(self, context, instance, network_info):
        """Nothing left at the source."""

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        """The VM already runs in the destination cluster."""

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        """A failed relocation leaves nothing at the destination: the VM
        never left its cluster."""

    def live_migration_abort(self, instance):
        raise NotImplementedError(
            'vCenter relocations cannot be aborted through Nova')

    # --- power, state and diagnostics -------------------------------------

    def suspend(self, context, instance):
        power.suspend(self._session, self._vm(instance))

    def resume(self, context, instance, network_info, block_device_info=None,
               share_info=None):
        power.resume(self._session, self._vm(instance))

    def pause(self, instance):
        """vSphere cannot pause a VM (stop its vCPUs, keep its memory
        resident); suspend is what it has."""
        raise NotImplementedError(
            'vCenter cannot pause a VM; suspend the server instead')

    def unpause(self, instance):
        raise NotImplementedError(
            'vCenter cannot pause a VM; suspend and resume the server '
            'instead')

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info, block_device_info=None):
        """Nova found the VM off though the instance should run: power it
        on (a suspended VM resumes the same way)."""
        power.power_on(self._session, self._vm(instance))

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info):
        rescue_mod.rescue(self._session, context, self._cluster_of(instance),
                          self._vm(instance), instance, image_meta.id)

    def unrescue(self, context, instance):
        rescue_mod.unrescue(self._session, self._vm(instance), instance)

    def get_diagnostics(self, instance):
        return diagnostics.legacy(self._session, self._vm(instance))

    def get_instance_diagnostics(self, instance):
        return diagnostics.instance_diagnostics(
            self._session, self._vm(instance), instance)

    # --- host operations ----------------------------------------------------

    def get_host_uptime(self):
        return host_mod.uptime(self._session, list(self._clusters.values()))

    def host_maintenance_mode(self, host, mode):
        """This service's "host" is whole clusters: putting every ESX host
        of them into maintenance would evacuate the clusters."""
        raise NotImplementedError(
            'Maintenance mode is set per ESX host in vCenter; this service '
            'stands for whole clusters')

    def set_host_enabled(self, enabled):
        """Nothing to do in vCenter: Nova itself marks every node of the
        service COMPUTE_STATUS_DISABLED in placement and takes this
        NotImplementedError for "done"."""
        raise NotImplementedError(
            'Nova disables the nodes in placement; ESX hosts are enabled '
            'in vCenter')

    def host_power_action(self, action):
        raise NotImplementedError(
            'ESX hosts are powered through vCenter, not Nova')

    # --- network and consoles ---------------------------------------------

    def attach_interface(self, context, instance, image_meta, vif):
        """Hot-add a NIC for the port, of the image's ``hw_vif_model``."""
        model = image_meta.properties.get('hw_vif_model',
                                          vm_spec.DEFAULT_VIF_MODEL)
        if model not in vm_spec.VIF_MODELS:
            raise nova_exception.InterfaceAttachFailed(
                instance_uuid=instance.uuid)
        network.attach(self._session, self._cluster_of(instance),
                       self._vm(instance), vif, model,
                       lifecycle.instance_specs(instance,
                                                instance.flavor).vif)

    def detach_interface(self, context, instance, vif):
        network.detach(self._session, self._vm(instance), vif)

    def inject_network_info(self, instance, nw_info):
        network.inject_network_info(self._session, self._vm(instance),
                                    nw_info)

    def get_vnc_console(self, context, instance):
        return consoles.vnc_console(self._session, self._vm(instance))

    def get_mks_console(self, context, instance):
        return consoles.mks_console(self._session, self._vm(instance))

    def get_serial_console(self, context, instance):
        self._vm(instance)  # an instance without a VM has no console
        return consoles.serial_console()

    def get_console_output(self, context, instance):
        return consoles.console_log(instance)

    # --- volumes ------------------------------------------------------------

    def get_volume_connector(self, instance):
        return volumes.connector(self._session,
                                 vm.find(self._session, instance.uuid),
                                 CONF.vmware.host_ip)

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        volumes.attach(self._session, self._vm(instance), connection_info,
                       instance)

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        volumes.detach(self._session, self._datacenter(instance),
                       self._vm(instance), connection_info, instance)

    def swap_volume(self, context, old_connection_info, new_connection_info,
                    instance, mountpoint, resize_to):
        volumes.swap(self._session, self._datacenter(instance),
                     self._vm(instance), old_connection_info,
                     new_connection_info, instance, resize_to)

    def extend_volume(self, context, connection_info, instance,
                      requested_size):
        volumes.extend(self._session, self._vm(instance), connection_info,
                       instance, requested_size)

    def _datacenter(self, instance):
        """Where volume files are moved back to their backing, should
        they have moved with the instance."""
        return self._cluster_for_cleanup(instance).datacenter_ref
