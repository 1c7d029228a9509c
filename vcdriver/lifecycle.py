"""Instance lifecycle: spawn and destroy, with nothing left behind on error.

An instance's files live in ``[datastore] <instance uuid>/`` so they are
found, and removed, by uuid alone; images come from the datastore's shared
image cache (images/cache.py).
"""

from nova import exception as nova_exception
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units
from oslo_vmware.objects import datastore as ds_obj
from pyVmomi import vim

from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import exception
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver.images import cache as image_cache
from vcdriver.images import disk
from vcdriver.images import glance
from vcdriver.vsphere import files

LOG = logging.getLogger(__name__)
CONF = conf.CONF


def choose_datastore(session, cluster, needed_bytes):
    state = cluster_mod.read_state(session, [cluster])[0]
    regex = CONF.vmware.datastore_regex
    chosen = capacity.best_datastore(state.datastores, regex, needed_bytes)
    if chosen is None:
        raise exception.NoUsableDatastore(
            cluster=cluster.name, regex=regex or '(any)',
            needed_gb=-(-needed_bytes // units.Gi))
    return chosen


def spawn(session, context, cluster, instance, image_id, power_on=True):
    """Create the VM, copy its root disk in from the datastore's image
    cache (filling the cache first if need be), grow it, boot it."""
    image = glance.get(context, image_id)
    disk_type, adapter = disk.check_acceptable(image)
    flavor = instance.flavor
    root_bytes = flavor.root_gb * units.Gi
    if flavor.root_gb and root_bytes < image.size:
        raise nova_exception.FlavorDiskSmallerThanImage(
            flavor_size=root_bytes, image_size=image.size)
    # Room for the instance's disk and, if not cached yet, the image.
    datastore = choose_datastore(session, cluster,
                                 max(root_bytes, image.size) + image.size)
    LOG.info('Spawning on cluster %s, datastore %s, from image %s',
             cluster.name, datastore.name, image.id, instance=instance)
    spec = vm_spec.create_spec(
        instance, flavor, datastore.name, [vm_spec.scsi_controller(adapter)],
        guest_id=image.properties.get('vmware_ostype'))
    created = vm.create(session, cluster, spec)
    try:
        ds_name, folder = vm.files_location(session, created)
        disk_path = ds_obj.DatastorePath(ds_name, folder,
                                         '%s.vmdk' % instance.uuid)
        size = _root_disk_from_cache(session, context, cluster, ds_name,
                                     image, disk_path, disk_type, adapter)
        if flavor.root_gb and root_bytes < size:
            raise nova_exception.FlavorDiskSmallerThanImage(
                flavor_size=root_bytes, image_size=size)
        if root_bytes > size:
            files.extend_virtual_disk(session, cluster.datacenter_ref,
                                      disk_path, root_bytes)
            size = root_bytes
        vm.attach_disk(session, created, disk_path, size)
        if power_on:
            vm.power_on(session, created)
    except BaseException:
        with excutils.save_and_reraise_exception():
            _clean_failed_spawn(session, cluster, created, instance)
    return created


def _root_disk_from_cache(session, context, cluster, datastore_name, image,
                          disk_path, disk_type, adapter):
    """Copy the cached image to ``disk_path``; return its virtual size."""
    cache = image_cache.DatastoreCache(session, cluster, datastore_name)

    def fetch(cache_disk):
        return disk.write_image_disk(session, context, cluster, image,
                                     cache_disk)

    for attempt in (1, 2):
        entry = cache.ensure(image, fetch)
        try:
            files.copy_virtual_disk(session, cluster.datacenter_ref,
                                    entry.disk, disk_path, adapter,
                                    disk_type)
            return entry.virtual_size
        except vim.fault.FileNotFound:
            if attempt == 2:
                raise
            # Aged out by another service between our look and the copy.
            LOG.info('Image %s left the cache meanwhile; caching it again',
                     image.id)


def _clean_failed_spawn(session, cluster, created, instance):
    """Destroy the VM; then its folder, which may hold unattached disks."""
    ds_name, folder = vm.files_location(session, created)
    LOG.warning('Spawn failed; removing the VM and [%s] %s', ds_name, folder,
                instance=instance)
    try:
        vm.destroy(session, created)
        if ds_name and folder:
            files.delete(session, cluster.datacenter_ref,
                         ds_obj.DatastorePath(ds_name, folder))
    except Exception:
        LOG.exception('Could not remove the remains of a failed spawn in '
                      '[%s] %s', ds_name, folder, instance=instance)


def destroy(session, cluster, instance, destroy_disks=True):
    """Delete the instance's VM and folder; a VM gone already is no error."""
    found = vm.find(session, instance.uuid)
    if found is None:
        LOG.info('No VM for this instance in vCenter; nothing to destroy',
                 instance=instance)
        return
    ds_name, folder = vm.files_location(session, found)
    vm.destroy(session, found)
    if destroy_disks and ds_name and folder:
        files.delete(session, cluster.datacenter_ref,
                     ds_obj.DatastorePath(ds_name, folder))
    LOG.info('Destroyed the VM and its files', instance=instance)


def manage_image_cache(session, clusters, states, instances):
    """Keep used images fresh; remove those unused for long, and partial
    downloads left by services that died."""
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
            for name in cache.names(datastore.ref):
                if '.partial-' in name:
                    cache.remove_orphan_partial(name)
                elif '.' in name:
                    continue  # locks, handled by the spawns waiting on them
                elif name in used:
                    cache.touch(name)
                elif CONF.image_cache.remove_unused_base_images:
                    cache.remove_if_unused(name, max_age, now)
