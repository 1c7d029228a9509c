"""Resize and cold migration: the VM stays one VM and moves.

Nova's resize is a copy between hypervisors; in vCenter the VM itself can
be reconfigured and relocated, so the driver keeps it:

* ``migrate_disk_and_power_off`` (source) refuses what cannot be done
  (a smaller root disk, a changed ephemeral or swap size) with
  InstanceFaultRollback, so the server stays ACTIVE, and powers off.
* ``finish_migration`` (destination) grows the root disk, relocates the
  VM to the destination cluster (RelocateVM_Task: a host of it, its root
  resource pool, a datastore of it when the VM's is not shared), sets the
  new vCPUs and memory and powers on.
* Storage policies (storage_policy.py) follow the flavor: the source
  refuses a policy no datastore of the destination satisfies; the VM's
  files and own disks move (RelocateVM_Task, the policy in its disk
  locators) when on a datastore the policy does not accept, and the VM
  home and disks get the policy (a revert: the old flavor's).
* ``confirm_migration`` (source) deletes what revert would have needed.
* ``finish_revert_migration`` (source) moves the VM back, puts its
  original root disk back and restores the old vCPUs and memory. Nova's
  ``destroy`` on the destination during a revert leaves the VM alone (the
  driver skips it: it is the same VM).

Revert semantics: a disk cannot shrink, and an operator reverting a
resize expects the server as it was, placement counting the old flavor's
disk. So growing the root disk is copy-on-resize: the original stays,
detached, as ``<uuid>.orig.vmdk`` until confirm, and a revert puts it back
(what the guest wrote meanwhile is lost, as with libvirt's revert). A
linked-clone root that grows becomes a full thin copy (CopyVirtualDisk
consolidates the delta with its parent): a delta cannot outgrow its
parent.

What revert needs is kept in the VM's extraConfig (``STATE_KEY``), so it
survives a restart of either service.
"""

import json

from nova import exception as nova_exception
from nova import objects
from nova.objects import migrate_data as migrate_data_obj
from oslo_log import log as logging
from oslo_utils import units
from pyVmomi import vim

from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import datastore_layout as layout
from vcdriver import devices
from vcdriver import drs_rules
from vcdriver import exception
from vcdriver import extra_specs
from vcdriver import lifecycle
from vcdriver import power
from vcdriver import storage_policy
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files
from vcdriver.vsphere import props
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)

STATE_KEY = 'vcdriver.resize.revert'


def _refuse(instance, reason):
    """Nova rolls the resize back and the server stays as it was."""
    return nova_exception.InstanceFaultRollback(
        inner_exception=nova_exception.ResizeError(reason=reason))


def check_resize(instance, old, new):
    """Refuse a flavor change vCenter cannot make; None if it can."""
    if new.root_gb < old.root_gb:
        raise _refuse(instance, 'the root disk cannot shrink (flavor %s has '
                      '%d GB, the server has %d GB): pick a flavor with a '
                      'root disk of at least %d GB'
                      % (new.name, new.root_gb, old.root_gb, old.root_gb))
    for field, what in (('ephemeral_gb', 'ephemeral disk'),
                        ('swap', 'swap disk')):
        if getattr(new, field) != getattr(old, field):
            raise _refuse(instance, 'changing the %s size (%s to %s) is not '
                          'supported: pick a flavor with the same %s'
                          % (what, getattr(old, field), getattr(new, field),
                             field))


def check_policy(session, cluster, specs, instance):
    """The storage policy ``specs`` give the instance, or None;
    InvalidSpec naming it when vCenter lacks it or no datastore of
    ``cluster`` satisfies it."""
    policy = storage_policy.for_instance(session, specs, instance)
    if policy is not None:
        storage_policy.compatible_datastores(
            session, policy, cluster_mod.read_state(session, [cluster])[0])
    return policy


def resize_destination(session, context, clusters, instance):
    """The cluster a resize or cold migration goes to, or None if Nova
    has no migration under way: Nova tells the source only the
    destination's host; its migration record names the node."""
    try:
        found = objects.Migration.get_by_instance_and_status(
            context, instance.uuid, 'migrating')
    except nova_exception.MigrationNotFoundByStatus:
        return None
    return next((c for c in clusters if c.nodename == found.dest_node),
                None) or cluster_by_nodename(session, found.dest_node,
                                             next(iter(clusters)))


def migrate_disk_and_power_off(session, instance, vm_ref, flavor, timeout=0,
                               retry_interval=0, dest=None):
    """Source side: refuse or power off; the rest is done where the VM
    goes (it is one VM in one vCenter). ``dest``: the destination
    cluster, whose datastores must satisfy the flavor's storage policy."""
    check_resize(instance, instance.flavor, flavor)
    try:
        specs = lifecycle.instance_specs(instance, flavor)
        extra_specs.check_upgrade(specs, vm.hw_version(session, vm_ref))
        if dest is not None:
            check_policy(session, dest, specs, instance)
    except exception.InvalidSpec as e:
        raise _refuse(instance, e.format_message()) from e
    how = power.power_off(session, vm_ref, timeout, retry_interval)
    LOG.info('Powered off (%s) for a migration to flavor %s', how,
             flavor.name, instance=instance)
    return ''


# --- vCenter-side helpers ------------------------------------------------

def read_state(session, vm_ref):
    """What revert needs, from the VM's extraConfig, or None."""
    p = props.properties(session, [vm_ref], vim.VirtualMachine,
                         ['config.extraConfig["%s"]' % STATE_KEY])
    value = p.get(vm_ref, {}).get('config.extraConfig["%s"]' % STATE_KEY)
    value = getattr(value, 'value', value)
    return json.loads(value) if value else None


def _reconfigure(session, vm_ref, vcpus, memory_mb, state, specs=None,
                 policy=None):
    """New vCPUs and memory (None: unchanged, as a running VM needs),
    and the revert state (None: removed), in one ReconfigVM_Task; with
    ``specs`` (extra_specs.ExtraSpecs) the flavor's settings too, of the
    VM and its devices, and ``policy`` (storage_policy.Policy) on the
    VM home and the instance's disks."""
    spec = vim.vm.ConfigSpec(extraConfig=vm_spec.extra_config(
        {STATE_KEY: json.dumps(state, sort_keys=True)
         if state is not None else ''}))
    if vcpus is not None:
        spec.numCPUs, spec.memoryMB = vcpus, memory_mb
    profile_id = policy.profile_id if policy else None
    if profile_id:
        spec.vmProfile = vm_spec.profile_specs(profile_id)
    if specs is None:
        virtual_machine.reconfigure(session, vm_ref, spec)
    else:
        vm.tune(session, vm_ref, specs, vm_spec.tune(spec, specs),
                profile_id)


def _upgrade_to(session, vm_ref, specs, current, instance):
    """The flavor's hardware version, if above the VM's (vSphere cannot
    go down: a revert keeps an upgraded VM's version)."""
    if (extra_specs.version_number(specs.hw_version) >
            extra_specs.version_number(current)):
        LOG.info('Upgrading the VM from hardware version %s to %s', current,
                 specs.hw_version, instance=instance)
        virtual_machine.upgrade(session, vm_ref, specs.hw_version)


def root_disk(session, vm_ref, instance_uuid):
    """(vmware_adaptertype, VirtualDisk) of the instance's root disk
    (``devices.Devices.root_disk``), or (None, None) when it has none (an
    ISO boot without one)."""
    found = devices.Devices.read(session, vm_ref)
    device = found.root_disk(instance_uuid)
    if device is None:
        return None, None
    return found.adapter_type(device), device


def grow_root(session, cluster, vm_ref, instance, new_bytes):
    """Copy-on-resize: the root disk becomes a bigger copy; the original
    is kept detached beside it. The revert state for the disk, or None
    when there is nothing to grow."""
    adapter, device = root_disk(session, vm_ref, instance.uuid)
    if device is None or device.capacityInKB * units.Ki >= new_bytes:
        return None
    path = layout.parse(device.backing.fileName)
    orig = layout.resize_original(path)
    linked = getattr(device.backing, 'parent', None) is not None
    LOG.info('Growing the root disk %s from %d to %d GB (the original is '
             'kept as %s until the resize is confirmed%s)', path,
             device.capacityInKB // units.Mi, new_bytes // units.Gi, orig,
             '; the linked clone becomes a full copy' if linked else '',
             instance=instance)
    old_kb = device.capacityInKB
    datacenter = cluster.datacenter_ref
    controller, unit = device.controllerKey, device.unitNumber
    vm.detach_disk(session, vm_ref, device)
    try:
        files.move_virtual_disk(session, datacenter, path, orig)
        files.copy_virtual_disk(session, datacenter, orig, path,
                                vm_spec.vmdk_adapter_type(adapter), 'thin')
        files.extend_virtual_disk(session, datacenter, path, new_bytes)
        _attach(session, vm_ref, controller, unit, path, new_bytes)
    except BaseException:
        LOG.warning('Growing the root disk failed; putting the original '
                    'back', instance=instance)
        _restore_disk(session, cluster, vm_ref, instance, {
            'orig': str(orig), 'path': str(path), 'kb': old_kb,
            'controller': controller, 'unit': unit})
        raise
    return {'orig': str(orig), 'path': str(path), 'kb': old_kb,
            'controller': controller, 'unit': unit}


def _attach(session, vm_ref, controller, unit, path, size_bytes):
    virtual_machine.reconfigure(session, vm_ref, vim.vm.ConfigSpec(
        deviceChange=[vm_spec.disk(-101, controller, unit, path,
                                   size_bytes)]))


def _here(session, vm_ref, path):
    """``path`` (a revert state's) on the datastore the VM's files are on
    now: a storage policy may have moved them since."""
    ds_name, _folder = vm.files_location(session, vm_ref)
    return layout.path(ds_name, path.rel_path) if ds_name else path


def _original(session, cluster, vm_ref, disk):
    """Where the original root disk is: moved with the VM's folder, or
    left where it was (vCenter moves only the VM's own files)."""
    stated = layout.parse(disk['orig'])
    for orig in (_here(session, vm_ref, stated), stated):
        if datastore_http.exists(session, cluster.datacenter,
                                 orig.datastore, orig.rel_path):
            return orig
    return None


def _restore_disk(session, cluster, vm_ref, instance, disk):
    """Put the original root disk back in its slot, beside the VM's
    files; the grown one goes."""
    datacenter = cluster.datacenter_ref
    path = _here(session, vm_ref, layout.parse(disk['path']))
    orig = _original(session, cluster, vm_ref, disk)
    # The grown root, in the original's slot; none when growing failed
    # before the copy went on (another disk may be root by then).
    _adapter, device = root_disk(session, vm_ref, instance.uuid)
    if device is not None and (device.controllerKey, device.unitNumber) == (
            disk['controller'], disk['unit']):
        vm.detach_disk(session, vm_ref, device)
    if orig is not None:
        files.delete_virtual_disk(session, datacenter, path)
        files.move_virtual_disk(session, datacenter, orig, path)
    _attach(session, vm_ref, disk['controller'], disk['unit'], path,
            disk['kb'] * units.Ki)


def _cluster_ref_of(session, vm_ref):
    return vm.state_and_cluster(session, vm_ref)[1]


def _datastore_of(path_text):
    path = layout.parse(path_text)
    return path.datastore if path is not None else None


def storage_target(session, vm_ref, state, policy, instance, spec):
    """Fill ``spec`` (a RelocateSpec) so the VM's files and its own disks
    go to a datastore of the cluster (``state``) that ``policy`` accepts
    (any, without one) when any of them is elsewhere; there they get the
    policy. Volumes' disks keep their datastore if the cluster has it
    (Cinder's, with Cinder's policy). The datastore, or None when
    nothing has to move."""
    accepted = (storage_policy.compatible_datastores(session, policy, state)
                if policy else state.datastores)
    found = devices.Devices.read(session, vm_ref)
    own = [d for d in found.disks if not found.is_volume(d)]
    ds_name, _folder = vm.files_location(session, vm_ref)
    used = ({ds_name} | {_datastore_of(getattr(d.backing, 'fileName', None))
                         for d in own}) - {None}
    away = used - {d.name for d in accepted}
    if not away:
        return None
    needed = sum(d.capacityInKB * units.Ki for d in found.disks)
    datastore = lifecycle.choose_datastore(state, needed, policy,
                                           accepted if policy else None)
    profile_id = policy.profile_id if policy else None
    spec.datastore = datastore.ref
    spec.profile = vm_spec.profile_specs(profile_id)
    kept = {d.name: d.ref for d in state.datastores}
    spec.disk = [vm_spec.disk_locator(d.key, datastore.ref, profile_id)
                 for d in own] + [
        vm_spec.disk_locator(d.key, kept[name]) for d in found.disks
        if found.is_volume(d) and (name := _datastore_of(
            getattr(d.backing, 'fileName', None))) in kept]
    LOG.info("Moving the VM's files from %s to datastore %s (%s)",
             ', '.join(sorted(away)), datastore.name,
             'storage policy %s' % policy.name if policy else
             'a datastore of cluster %s' % state.cluster.name,
             instance=instance)
    return datastore


def relocate(session, vm_ref, cluster, instance, flavor, policy=None):
    """Move a VM into ``cluster``: a host that has room for it, the
    cluster's root resource pool, and a datastore of the cluster (one
    ``policy`` accepts) when the VM's own is not one of them (vCenter
    moves its files then)."""
    state = cluster_mod.read_state(session, [cluster])[0]
    lifecycle.check_fit(state, flavor)
    host = pick_host(state, flavor)
    spec = vim.vm.RelocateSpec(pool=cluster.resource_pool, host=host.ref)
    storage_target(session, vm_ref, state, policy, instance, spec)
    LOG.info('Relocating the VM to cluster %s, host %s', cluster.name,
             host.name, instance=instance)
    virtual_machine.relocate(session, vm_ref, spec)


def move_storage(session, vm_ref, cluster, instance, policy):
    """Within its cluster, the VM's files and disks to a datastore
    ``policy`` accepts, if they are not on one."""
    if policy is None:
        return
    state = cluster_mod.read_state(session, [cluster])[0]
    spec = vim.vm.RelocateSpec()
    if storage_target(session, vm_ref, state, policy, instance, spec):
        virtual_machine.relocate(session, vm_ref, spec)


def _move(session, context, clusters, vm_ref, cluster, instance, flavor,
          policy=None):
    """Relocate the VM into ``cluster`` (its files to a datastore
    ``policy`` accepts), its server group's DRS rule going with it (a
    cold move: the rule leaves first); in its cluster already, only its
    files move if they must."""
    here = _cluster_by_ref(clusters, _cluster_ref_of(session, vm_ref))
    if here is not None and here.ref == cluster.ref:
        move_storage(session, vm_ref, cluster, instance, policy)
        return
    if here is not None:
        drs_rules.on_destroy(session, here, instance)
    relocate(session, vm_ref, cluster, instance, flavor, policy)
    drs_rules.on_spawn(session, context, cluster, instance)


def pick_host(state, flavor):
    """The usable host with the most memory left that takes the VM."""
    usable = [h for h in state.hosts if h.usable and not state.ha.spare(h)]
    return max(usable, key=lambda h: h.memory_mb - h.vm_memory_mb)


def _cluster_by_ref(clusters, ref):
    return next((c for c in clusters if c.ref == ref), None)


# --- the driver's calls --------------------------------------------------

def finish_migration(session, context, clusters, dest, instance, migration,
                     vm_ref, power_on=True):
    """Destination side: grow the root disk, move the VM to ``dest``,
    set the new vCPUs and memory, power on."""
    flavor, old = instance.flavor, instance.old_flavor or instance.flavor
    # Checked before anything changes: the VM stays as it was.
    specs = lifecycle.instance_specs(instance, flavor)
    lifecycle.check_specs(session, dest, flavor, specs)
    policy = check_policy(session, dest, specs, instance)
    version = vm.hw_version(session, vm_ref)
    state = {'node': migration.source_node, 'vcpus': old.vcpus,
             'memory_mb': old.memory_mb, 'disk': None}
    # A root disk of 0 GB (booted from a volume or an ISO without one)
    # has nothing to grow.
    state['disk'] = grow_root(session, dest, vm_ref, instance,
                              flavor.root_gb * units.Gi)
    # Saved before the VM moves, so a failure below can still be reverted.
    _reconfigure(session, vm_ref, old.vcpus, old.memory_mb, state)
    _move(session, context, clusters, vm_ref, dest, instance, flavor, policy)
    _upgrade_to(session, vm_ref, specs, version, instance)
    _reconfigure(session, vm_ref, flavor.vcpus, flavor.memory_mb, state,
                 specs, policy)
    LOG.info('Migrated to node %s with %d vCPU, %d MB, %d GB root disk',
             dest.nodename, flavor.vcpus, flavor.memory_mb, flavor.root_gb,
             instance=instance)
    if power_on:
        power.power_on(session, vm_ref)


def confirm_migration(session, cluster, instance, vm_ref):
    """Source side: the original root disk and the revert state go."""
    state = read_state(session, vm_ref) if vm_ref is not None else None
    orig = state and state.get('disk') and _original(
        session, cluster, vm_ref, state['disk'])
    if orig:
        files.delete_virtual_disk(session, cluster.datacenter_ref, orig)
    if state is not None:
        _reconfigure(session, vm_ref, None, None, None)
    LOG.info('Resize confirmed; nothing kept for a revert',
             instance=instance)


def finish_revert_migration(session, context, clusters, source, instance,
                            vm_ref, power_on=True):
    """Source side: the VM comes back to ``source`` as it was."""
    flavor = instance.flavor  # Nova put the old one back
    specs = lifecycle.instance_specs(instance, flavor)
    policy = storage_policy.for_instance(session, specs, instance)
    state = read_state(session, vm_ref)
    power.power_off(session, vm_ref)
    _move(session, context, clusters, vm_ref, source, instance, flavor,
          policy)
    if state and state.get('disk'):
        _restore_disk(session, source, vm_ref, instance,
                      state['disk'])
    _reconfigure(session, vm_ref, flavor.vcpus, flavor.memory_mb, None,
                 specs, policy)
    LOG.info('Resize reverted: back on node %s with %d vCPU, %d MB',
             source.nodename, flavor.vcpus, flavor.memory_mb,
             instance=instance)
    if power_on:
        power.power_on(session, vm_ref)


# --- live migration ------------------------------------------------------
#
# Between hosts of one cluster, vMotion is vCenter's business (DRS). Nova
# live-migrates between compute services; each service's first node is
# the one Nova records at the destination (it looks the node up by host),
# so that is the cluster the VM goes to. RelocateVM_Task moves compute
# and, when the VM's datastore is not in that cluster, storage with it;
# vCenter either completes it or leaves the VM running where it was.

def _vcenter_of(nodename):
    return nodename.partition('.')[2]


def destination_data(session, cluster, instance):
    """The destination's answer to Nova's pre-check: the cluster (node)
    the VM will go to, if it can take the VM now."""
    if cluster.nodename == instance.node:
        raise nova_exception.MigrationPreCheckError(
            reason='the instance already runs on node %s' % cluster.nodename)
    state = cluster_mod.read_state(session, [cluster])[0]
    try:
        lifecycle.check_fit(state, instance.flavor)
        policy = storage_policy.for_instance(
            session, lifecycle.instance_specs(instance, instance.flavor),
            instance)
        if policy is not None:
            storage_policy.compatible_datastores(session, policy, state)
    except (nova_exception.ComputeResourcesUnavailable,
            exception.InvalidSpec) as e:
        raise nova_exception.MigrationPreCheckError(
            reason=e.format_message()) from e
    return migrate_data_obj.VMwareLiveMigrateData(
        cluster_name=cluster.nodename,
        datastore_regex=conf.CONF.vmware.datastore_regex or '')


def check_source(session, instance, migrate_data):
    """The source's pre-check: same vCenter, a VM to move."""
    if not isinstance(migrate_data, migrate_data_obj.VMwareLiveMigrateData):
        raise nova_exception.MigrationPreCheckError(
            reason='the destination is not a vCenter node of this driver')
    ours = session.about.instanceUuid
    if _vcenter_of(migrate_data.cluster_name) != ours:
        raise nova_exception.MigrationPreCheckError(
            reason='node %s belongs to another vCenter (this one is %s): '
                   'vCenter cannot move a VM there'
                   % (migrate_data.cluster_name, ours))
    if vm.find(session, instance.uuid) is None:
        raise nova_exception.MigrationPreCheckError(
            reason='the instance has no VM in vCenter')
    return migrate_data


def cluster_by_nodename(session, nodename, like):
    """A Cluster for a node of this vCenter, served by this service or
    not (``<cluster moref>.<vCenter uuid>``); ``like`` gives the
    datacenter (a relocation stays in its datacenter)."""
    moid = nodename.partition('.')[0]
    ref = props.moref(vim.ClusterComputeResource, moid, like.ref)
    p = props.properties(session, [ref], vim.ClusterComputeResource,
                         ['name', 'resourcePool']).get(ref)
    if not p:
        raise nova_exception.MigrationError(
            reason='cluster %s of node %s is not in vCenter' % (moid,
                                                                 nodename))
    return cluster_mod.Cluster(
        name=p['name'], ref=ref, nodename=nodename,
        datacenter=like.datacenter, datacenter_ref=like.datacenter_ref,
        vm_folder=like.vm_folder, resource_pool=p['resourcePool'])


def live_migration(session, context, clusters, instance, vm_ref, migrate_data,
                   on_success, on_failure):
    """Relocate the running VM to the destination cluster; on failure
    (vCenter leaves the VM where it was) ``on_failure`` runs instead of
    ``on_success``."""
    try:
        here = _cluster_by_ref(clusters, _cluster_ref_of(session, vm_ref))
        dest = next((c for c in clusters
                     if c.nodename == migrate_data.cluster_name), None)
        dest = dest or cluster_by_nodename(
            session, migrate_data.cluster_name,
            here or next(iter(clusters)))
        relocate(session, vm_ref, dest, instance, instance.flavor,
                 storage_policy.for_instance(
                     session, lifecycle.instance_specs(
                         instance, instance.flavor), instance))
    except Exception as e:
        # Nova's rollback (recover_method) keeps the server ACTIVE on the
        # source; raising instead would put it in ERROR.
        LOG.error('Live migration to node %s failed, the VM runs where it '
                  'was: %s', migrate_data.cluster_name,
                  getattr(e, 'reason', None) or getattr(e, 'msg', None) or e,
                  exc_info=True, instance=instance)
        on_failure()
        return
    if here is not None:
        drs_rules.on_destroy(session, here, instance)
    try:
        drs_rules.on_spawn(session, context, dest, instance)
    except Exception:
        # The VM has moved: Nova must record it there; the repair pass
        # puts the group's rule back.
        LOG.warning('The server group rule could not follow the VM to '
                    'cluster %s', dest.name, exc_info=True,
                    instance=instance)
    LOG.info('Live-migrated to cluster %s (node %s)', dest.name,
             dest.nodename, instance=instance)
    on_success()
