"""Which disks an instance gets, and where their bytes come from.

The root disk comes from the datastore's image cache: a full copy, or
with ``use_linked_clone`` a delta disk whose parent is the cached image
(or a copy of it grown to the flavor's root disk, kept beside it in the
cache: a delta cannot be bigger than its parent). An ISO image boots from
a CD-ROM and gets a blank root disk. Ephemeral and swap disks are blank,
thin and created by vCenter in the instance's folder.
"""

from nova.virt import driver as virt_driver
from oslo_log import log as logging
from oslo_utils import units
from pyVmomi import vim

from vcdriver import datastore_layout as layout
from vcdriver import vm
from vcdriver import vm_spec
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files

LOG = logging.getLogger(__name__)


def extra_disk_sizes(flavor, block_device_info):
    """[(file name, bytes)] of the ephemeral and swap disks.

    Nova's block device info wins (a user may split ephemeral space);
    the flavor is the fall-back, as with every other driver.
    """
    sizes = []
    ephemerals = virt_driver.block_device_info_get_ephemerals(
        block_device_info)
    gbs = [e['size'] for e in ephemerals if e.get('size')]
    if not gbs and flavor.ephemeral_gb:
        gbs = [flavor.ephemeral_gb]
    for n, gb in enumerate(gbs):
        sizes.append((layout.ephemeral_disk_name(n), gb * units.Gi))
    swap = virt_driver.block_device_info_get_swap(block_device_info)
    swap_mb = (swap['swap_size'] if virt_driver.swap_is_usable(swap)
               else flavor.swap)
    if swap_mb:
        sizes.append((layout.SWAP_DISK, swap_mb * units.Mi))
    return sizes


def blank_disks(folder, sizes):
    return [vm.Disk(path=folder.join(name), size_bytes=size, create=True)
            for name, size in sizes]


def root_disk(session, cluster, entry, plan, disk_path, root_bytes):
    """The instance's root vm.Disk from a cache entry: its bytes copied,
    or linked to them. Raises FileNotFound when the entry left the cache
    meanwhile."""
    size = max(root_bytes, entry.virtual_size)
    dc = cluster.datacenter_ref
    adapter = vm_spec.vmdk_adapter_type(plan.adapter)
    if plan.linked_clone:
        parent = entry.disk
        if size > entry.virtual_size:
            parent = grown_copy(session, cluster, entry, size, adapter)
        LOG.debug('Root disk %s: a delta of %s', disk_path, parent)
        return vm.Disk(path=disk_path, size_bytes=size, create=True,
                       parent=parent)
    files.copy_virtual_disk(session, dc, entry.disk, disk_path, adapter,
                            plan.disk_type)
    if size > entry.virtual_size:
        files.extend_virtual_disk(session, dc, disk_path, size)
    return vm.Disk(path=disk_path, size_bytes=size)


def grown_copy(session, cluster, entry, size, adapter):
    """``<image>.<GB>.vmdk`` beside the cached image, made once per size.

    Made under a temporary name and renamed into place, so a reader never
    sees a half-made disk and of two services racing, one copy stays.
    """
    path = layout.grown_copy(entry.disk, entry.image_id, size // units.Gi)
    dc = cluster.datacenter_ref
    if datastore_http.exists(session, cluster.datacenter, path.datastore,
                             path.rel_path):
        return path
    partial = layout.partial_disk(path, layout.new_token())
    try:
        files.copy_virtual_disk(session, dc, entry.disk, partial, adapter,
                                'thin')
        files.extend_virtual_disk(session, dc, partial, size)
        files.move_virtual_disk(session, dc, partial, path)
        LOG.info('Cached image %s grown to %d GB for linked clones',
                 entry.image_id, size // units.Gi)
    except vim.fault.FileAlreadyExists:
        LOG.debug('%s was made meanwhile by another service', path)
        files.delete_virtual_disk(session, dc, partial)
    except BaseException:
        files.delete_virtual_disk(session, dc, partial)
        raise
    return path
