"""Instance lifecycle: spawn and destroy, with nothing left behind on error.

An instance's files live in ``[datastore] <instance uuid>/`` so they are
found, and removed, by uuid alone; images come from the datastore's shared
image cache (images/cache.py).
"""

import threading
import time

from nova import exception as nova_exception
from nova import utils as nova_utils
from nova.virt import driver as virt_driver
from nova.virt import hardware
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units
from pyVmomi import vim

from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import config_drive
from vcdriver import consoles
from vcdriver import datastore_layout as layout
from vcdriver import drs_rules
from vcdriver import exception
from vcdriver import extra_specs
from vcdriver import instance_disks
from vcdriver import network
from vcdriver import power
from vcdriver import storage_policy
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver import volumes
from vcdriver.images import cache as image_cache
from vcdriver.images import disk
from vcdriver.images import glance
from vcdriver.images import pipeline
from vcdriver.vsphere import files
from vcdriver.vsphere import folder as folder_mod
from vcdriver.vsphere import props
from vcdriver.vsphere import watch

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# vCenter out of room for the VM after all (a race with other workloads,
# HA admission at power-on, a datastore filled meanwhile): Nova should
# try another host, as when the fit check refuses.
RESOURCE_FAULTS = (vim.fault.InsufficientResourcesFault,
                   vim.fault.NoDiskSpace)

# How much longer a CreateVM_Task the build gave up on ([vcdriver]
# task_timeout) is followed, to remove the VM it makes late.
LATE_CREATE_SECONDS = 3600


def check_fit(state, flavor):
    """Refuse a VM no host can take right now, so Nova reschedules it
    at once instead of vCenter failing it late (placement's view may
    predate other workloads)."""
    missing = capacity.shortfall(
        state.hosts, flavor.vcpus, flavor.memory_mb,
        CONF.cpu_allocation_ratio or CONF.initial_cpu_allocation_ratio,
        CONF.ram_allocation_ratio or CONF.initial_ram_allocation_ratio,
        CONF.reserved_host_cpus, CONF.reserved_host_memory_mb, state.ha)
    if missing:
        raise nova_exception.ComputeResourcesUnavailable(
            reason='cluster %s: %s' % (state.cluster.name, missing))


def extra_specs_of(flavor, image_meta, image_properties):
    """What the flavor's extra specs and the image's properties (Glance's
    plain dict) ask of the VM, checked (extra_specs.parse). Cores per
    socket are Nova's topology from ``hw:cpu_*`` and ``hw_cpu_*``,
    without threads: a vSphere VM has none per core."""
    topology = hardware.get_best_cpu_topology(flavor, image_meta,
                                              allow_threads=False)
    return extra_specs.parse(flavor.extra_specs, image_properties,
                             flavor.memory_mb, topology.cores)


def instance_specs(instance, flavor):
    """``extra_specs_of`` a flavor for an existing instance, whose image
    properties Nova keeps in its system metadata."""
    image = nova_utils.get_image_from_system_metadata(
        instance.system_metadata)
    return extra_specs_of(flavor, instance.image_meta, image['properties'])


def prepare_for_spawn(instance):
    """Refuse a flavor or image no VM can have (``extra_specs.parse``:
    memory vSphere cannot size, a bad spec or property) before Nova makes
    the build's volumes and before vCenter is asked anything. The build
    ends at once with the reason, not rescheduled: every cluster would
    refuse it alike. Spawn parses again, and checks what needs the
    cluster's hosts."""
    try:
        instance_specs(instance, instance.flavor)
    except nova_exception.Invalid as e:
        raise nova_exception.InstanceUnacceptable(
            instance_id=instance.uuid, reason=e.format_message()) from e


def check_specs(session, cluster, flavor, specs, state=None):
    """Refuse what the cluster's hosts cannot give the VM
    (extra_specs.check_cluster); vCenter is read only for specs that
    ask (a hardware version, a CPU reservation)."""
    if not (specs.hw_version or specs.cpu.reservation):
        return
    state = state or cluster_mod.read_state(session, [cluster])[0]
    extra_specs.check_cluster(
        specs, flavor.vcpus,
        cluster_mod.host_cpu_mhz(session, state)
        if specs.cpu.reservation else [],
        cluster_mod.runnable_hw_versions(session, cluster)
        if specs.hw_version else [])


def choose_datastore(state, needed_bytes, policy=None, datastores=None):
    """The usable datastore with the most room among ``datastores``
    (default: the cluster's), those that satisfy ``policy``
    (storage_policy.Policy) when given."""
    cluster = state.cluster
    regex = CONF.vmware.datastore_regex
    among = state.datastores if datastores is None else datastores
    chosen = capacity.best_datastore(among, regex, needed_bytes)
    if chosen is None and policy is not None:
        raise exception.NoUsableDatastoreForPolicy(
            cluster=cluster.name, regex=regex or '(any)',
            needed_gb=-(-needed_bytes // units.Gi), policy=policy.name,
            datastores=', '.join(d.name for d in among))
    if chosen is None:
        raise exception.NoUsableDatastore(
            cluster=cluster.name, regex=regex or '(any)',
            needed_gb=-(-needed_bytes // units.Gi))
    return chosen


def spawn(session, context, cluster, instance, image_meta,
          block_device_info=None, power_on=True, injected_files=None,
          admin_password=None, network_info=None):
    """Create the VM, give it its disks from the datastore's image cache
    (filling the cache first if need be) and the volumes Nova connected
    for it, boot it."""
    # Volumes go on before power-on (IDE has no hot-plug).
    boot_volumes = [
        m for m in virt_driver.block_device_info_get_mapping(
            block_device_info) if m.get('boot_index') != 0]
    image = glance.get(context, image_meta.id)
    plan = disk.check_acceptable(image)
    flavor = instance.flavor
    specs = extra_specs_of(flavor, image_meta, image.properties)
    root_bytes = flavor.root_gb * units.Gi
    if not plan.iso and flavor.root_gb and root_bytes < image.size:
        raise nova_exception.FlavorDiskSmallerThanImage(
            flavor_size=root_bytes, image_size=image.size)
    extra = instance_disks.extra_disk_sizes(flavor, block_device_info)
    policy = storage_policy.for_instance(session, specs, instance)
    state = cluster_mod.read_state(session, [cluster])[0]
    check_fit(state, flavor)
    check_specs(session, cluster, flavor, specs, state)
    # Room for the instance's disks and, if not cached yet, the image.
    datastore = choose_datastore(
        state, max(root_bytes, image.size) + image.size +
        sum(size for _name, size in extra), policy,
        policy and storage_policy.compatible_datastores(session, policy,
                                                        state))
    profile_id = policy.profile_id if policy else None
    LOG.info('Spawning on cluster %s, datastore %s%s, from image %s (%s%s)',
             cluster.name, datastore.name,
             ' (storage policy %s)' % policy.name if policy else '',
             image.id, plan.bus, ', ISO' if plan.iso else ', linked clone'
             if plan.linked_clone else '', instance=instance)
    controller = vm_spec.bus_controller(plan.bus, plan.adapter)
    spec = vm_spec.create_spec(
        instance, flavor, datastore.name, [controller] if controller else [],
        specs, profile_id)
    try:
        created = vm.create(session, cluster, spec)
    except RESOURCE_FAULTS as e:
        raise _unavailable(cluster, e) from e
    except exception.TaskTimeout as e:
        _remove_when_created(session, cluster, e.task_ref, instance)
        raise
    try:
        ds_name, folder = vm.files_location(session, created)
        folder = layout.path(ds_name, folder)
        disks, iso = _disks_from_cache(session, context, cluster, image,
                                       plan, folder, instance, root_bytes)
        disks += instance_disks.blank_disks(folder, extra)
        vm.attach_disks(session, created, plan.bus, disks, iso_path=iso,
                        profile_id=profile_id)
        if config_drive.required_by(instance):
            config_drive.attach(session, cluster, created, instance, folder,
                                injected_files, admin_password, network_info)
        for mapping in boot_volumes:
            volumes.attach(session, created, mapping['connection_info'],
                           instance)
        network.plug_at_spawn(session, cluster, created, network_info,
                              plan.vif_model)
        consoles.add_serial_port_at_spawn(session, created)
        if specs.tunes_devices:
            vm.tune(session, created, specs)
        drs_rules.on_spawn(session, context, cluster, instance)
        if power_on:
            power.power_on(session, created)
    except RESOURCE_FAULTS as e:
        _clean_failed_spawn(session, cluster, created, instance,
                            boot_volumes)
        raise _unavailable(cluster, e) from e
    except BaseException:
        with excutils.save_and_reraise_exception():
            _clean_failed_spawn(session, cluster, created, instance,
                                boot_volumes)
    return created


def _unavailable(cluster, fault):
    return nova_exception.ComputeResourcesUnavailable(
        reason='vCenter refused the VM on cluster %s: %s: %s' % (
            cluster.name, type(fault).__name__,
            getattr(fault, 'msg', None) or fault))


def cache_image(session, context, clusters, image_id):
    """Nova's image pre-caching (aggregate image cache requests): the
    image into the cache of the datastore each cluster would spawn on,
    as a first spawn would fill it. True if any of them fetched it."""
    image = glance.get(context, image_id)
    plan = disk.check_acceptable(image)
    fetched = False
    for state in cluster_mod.read_state(session, clusters):
        cluster = state.cluster
        datastore = choose_datastore(state, 2 * image.size)
        cache = image_cache.DatastoreCache(session, cluster, datastore.name)
        if cache.lookup(image.id) is not None:
            continue  # cached already (datastores shared by clusters)
        pipeline.cached(session, context, cluster, image, plan,
                        datastore.name)
        LOG.info('Image %s pre-cached on datastore %s for cluster %s',
                 image.id, datastore.name, cluster.name)
        fetched = True
    return fetched


def _disks_from_cache(session, context, cluster, image, plan, folder,
                      instance, root_bytes):
    """([root vm.Disk], ISO path or None), the image cached first."""
    root_path = layout.root_disk(folder, instance.uuid)
    for attempt in (1, 2):
        entry = pipeline.cached(session, context, cluster, image, plan,
                                folder.datastore)
        if plan.iso:
            root = ([vm.Disk(path=root_path, size_bytes=root_bytes,
                             create=True, thin=plan.disk_type == 'thin')]
                    if root_bytes else [])
            return root, entry.disk
        if root_bytes and root_bytes < entry.virtual_size:
            raise nova_exception.FlavorDiskSmallerThanImage(
                flavor_size=root_bytes, image_size=entry.virtual_size)
        try:
            return [instance_disks.root_disk(
                session, cluster, entry, plan, root_path,
                root_bytes)], None
        except vim.fault.FileNotFound:
            if attempt == 2:
                raise
            # Aged out by another service between our look and the copy.
            LOG.info('Image %s left the cache meanwhile; caching it again',
                     image.id)


def _clean_failed_spawn(session, cluster, created, instance,
                        boot_volumes=()):
    """Destroy the VM, volumes taken off first; then its folder, which may
    hold unattached disks. vCenter away (restarting) is waited for: Nova
    forgets a failed build's host, so nothing would remove them later."""
    give_up = time.monotonic() + watch.VCENTER_RETURN_SECONDS
    while True:
        try:
            _remove_failed_spawn(session, cluster, created, instance,
                                 boot_volumes)
            return
        except watch.VCENTER_AWAY as e:
            if time.monotonic() < give_up:
                LOG.warning('vCenter unreachable (%s) while removing a '
                            'failed spawn; trying again', e,
                            instance=instance)
                time.sleep(watch.RECONNECT_DELAY)
                continue
            LOG.exception('Could not remove the remains of a failed spawn',
                          instance=instance)
            return
        except Exception:
            LOG.exception('Could not remove the remains of a failed spawn',
                          instance=instance)
            return


def _remove_when_created(session, cluster, task, instance):
    """The build gives up on a CreateVM_Task still running, and Nova
    cleans up after it at once; a VM the task makes later is nobody's.
    A thread follows the task and destroys what it makes, by the VM's
    moref: never by the instance's uuid, which a rescheduled build of the
    instance may hold by then.

    The task is not cancelled: vCenter's CreateVM is not cancelable, and
    vcsim marks a cancelled task failed yet still makes the VM."""
    def follow():
        try:
            created = folder_mod.created_vm(session, task, LATE_CREATE_SECONDS)
        except exception.TaskTimeout:
            LOG.error('CreateVM task %s is still running %d s after the '
                      'build gave up on it; if it makes a VM, "vcdriver '
                      'audit" lists it', props.moid(task), LATE_CREATE_SECONDS,
                      instance=instance)
            return
        except Exception as e:
            LOG.info('CreateVM task %s, given up on by the build, ended '
                     'without a VM: %s', props.moid(task), e,
                     instance=instance)
            return
        LOG.warning('CreateVM task %s made VM %s after the build had given '
                    'up on it; removing it', props.moid(task),
                    props.moid(created),
                    instance=instance)
        _clean_failed_spawn(session, cluster, created, instance)

    LOG.warning('Still following CreateVM task %s to remove the VM it may '
                'make', props.moid(task), instance=instance)
    threading.Thread(target=follow, daemon=True,
                     name='late-create-%s' % instance.uuid).start()


def _remove_failed_spawn(session, cluster, created, instance, boot_volumes):
    ds_name, folder = vm.files_location(session, created)
    LOG.warning('Spawn failed; removing the VM and [%s] %s', ds_name, folder,
                instance=instance)
    volumes.detach_all(session, cluster.datacenter_ref, created,
                       boot_volumes, instance)
    vm.destroy(session, created)
    if ds_name and folder:
        files.delete(session, cluster.datacenter_ref,
                     layout.path(ds_name, folder))


def destroy(session, cluster, instance, destroy_disks=True,
            block_device_info=None):
    """Delete the instance's VM and folder; a VM gone already is no error.
    Cinder's disks are detached first: Destroy_Task deletes every disk
    the VM has."""
    drs_rules.on_destroy(session, cluster, instance)
    found = vm.find(session, instance.uuid)
    mappings = virt_driver.block_device_info_get_mapping(block_device_info)
    if found is not None and mappings:
        volumes.detach_all(session, cluster.datacenter_ref, found, mappings,
                           instance)
    if found is None:
        LOG.info('No VM for this instance in vCenter; removing what is '
                 'left of its folder', instance=instance)
        if destroy_disks:
            _delete_instance_folders(session, cluster, instance)
        return
    ds_name, folder = vm.files_location(session, found)
    vm.destroy(session, found)
    if destroy_disks and ds_name and folder:
        files.delete(session, cluster.datacenter_ref,
                     layout.path(ds_name, folder))
    LOG.info('Destroyed the VM and its files', instance=instance)


def _delete_instance_folders(session, cluster, instance):
    """The instance's folder on each datastore of the cluster: a VM
    deleted outside Nova leaves files it did not own (config drive,
    rescue disk, a resize's original root disk)."""
    state = cluster_mod.read_state(session, [cluster])[0]
    for datastore in state.datastores:
        if datastore.accessible:
            files.delete(session, cluster.datacenter_ref,
                         layout.instance_folder(datastore.name,
                                                instance.uuid))


def manage_image_cache(session, clusters, states, instances):
    """Keep used images fresh; remove those unused for long, and the
    locks and partial downloads of services that died."""
    used = {i.image_ref for i in instances if i.image_ref}
    max_age = CONF.image_cache.remove_unused_original_minimum_age_seconds
    now = session.current_time()
    seen = set()
    regex = CONF.vmware.datastore_regex
    for cluster, state in zip(clusters, states, strict=True):
        for datastore in state.datastores:
            if datastore.name in seen or not datastore.usable(regex):
                continue
            seen.add(datastore.name)
            cache = image_cache.DatastoreCache(session, cluster,
                                               datastore.name)
            for name, changed in cache.contents(datastore.ref).items():
                kind = layout.cache_name(name).kind
                if kind == layout.PARTIAL:
                    cache.remove_orphan_partial(name)
                elif kind == layout.LOCK:
                    # A spawn needing the image takes a dead fill's lock
                    # over; one that no spawn needs on this datastore
                    # again would keep its partial and shell VM forever.
                    cache.remove_stale_lock(name, changed)
                elif kind != layout.ENTRY:
                    continue  # a stale lock being removed
                elif name in used:
                    cache.touch(name)
                elif CONF.image_cache.remove_unused_base_images:
                    cache.remove_if_unused(name, max_age, now)
