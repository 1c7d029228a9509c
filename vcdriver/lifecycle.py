"""Instance lifecycle: spawn and destroy, with nothing left behind on error.

An instance's files live in ``[datastore] <instance uuid>/`` so they are
found, and removed, by uuid alone.
"""

from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units
from oslo_vmware.objects import datastore as ds_obj

from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import exception
from vcdriver import vm
from vcdriver import vm_spec
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
    """Create the VM, stream its root disk into the VM folder, boot it."""
    image = glance.get(context, image_id)
    _disk_type, adapter = disk.check_acceptable(image)
    flavor = instance.flavor
    needed = max(flavor.root_gb * units.Gi, image.size)
    datastore = choose_datastore(session, cluster, needed)
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
        size = disk.write_root_disk(session, context, cluster, image,
                                    disk_path, flavor.root_gb, instance)
        vm.attach_disk(session, created, disk_path, size)
        if power_on:
            vm.power_on(session, created)
    except BaseException:
        with excutils.save_and_reraise_exception():
            _clean_failed_spawn(session, cluster, created, instance)
    return created


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
