"""Images Glance keeps on a datastore of our own vCenter (Glance's VMware
store: ``vsphere://<vCenter>/folder/<path>?dcPath=..&dsName=..``) are
copied into the image cache by vCenter itself, not streamed through the
compute node.

vCenter copies files as they are, so this serves the images whose bytes
already are what the cache keeps: raw disks and flat VMDK extents (behind
a descriptor vCenter writes) and ISOs. qcow2, sparse, streamOptimized and
OVA images need converting, which vCenter cannot do to them; they stream
from Glance as usual.
"""

import urllib.parse

from oslo_log import log as logging
from pyVmomi import vim

from vcdriver import conf
from vcdriver import datastore_layout as layout
from vcdriver import exception
from vcdriver import vm_spec
from vcdriver.images import formats
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files
from vcdriver.vsphere import search_index

LOG = logging.getLogger(__name__)
CONF = conf.CONF
SECTOR = 512


class Source:
    """Where on our vCenter Glance keeps an image's bytes."""

    def __init__(self, url, datacenter_ref, path):
        self.url = url
        self.datacenter_ref = datacenter_ref
        self.path = path


def find_source(session, image):
    """The image's location on this vCenter, or None."""
    for url in image.locations:
        if not url.startswith('vsphere://'):
            continue
        datacenter_path, path = layout.parse_url(url)
        host = (urllib.parse.urlsplit(url).hostname or '').lower()
        if host != session.host.lower():
            LOG.debug('Image %s is on another vCenter (%s)', image.id, host)
            continue
        dc = search_index.find_by_inventory_path(session, datacenter_path)
        if not isinstance(dc, vim.Datacenter):
            LOG.warning('Image %s location %s names no datacenter of this '
                        'vCenter', image.id, url)
            continue
        return Source(url, dc, path)
    return None


def why_not_copyable(image, plan):
    """None when vCenter can copy the image as it is, else the reason."""
    if plan.iso:
        return None
    if image.container_format == 'ova':
        return 'an OVA must be unpacked'
    if image.disk_format == 'qcow2':
        return 'qcow2 must be converted'
    if image.properties.get('vmware_disktype') in formats.SPARSE_DISK_TYPES:
        return 'a sparse VMDK must be converted'
    if image.size % SECTOR:
        return 'its size is not whole sectors'
    return None


def copy_into(session, cluster, image, plan, source, target):
    """Copy the image to ``target`` (a disk, or the ISO file) on vCenter's
    side; return its virtual size. The size is checked against Glance's
    record; the bytes cannot be hashed without reading them, which is
    what this path avoids: a location in our own vCenter is trusted as
    the in-tree driver trusts it."""
    dc = cluster.datacenter_ref
    if plan.iso:
        destination = target
    else:
        files.create_virtual_disk(session, dc, target, image.size,
                                  vm_spec.vmdk_adapter_type(plan.adapter),
                                  'thin')
        destination = layout.flat_extent(target)
    LOG.info('Image %s: vCenter copies it from %s to %s', image.id,
             source.path, destination)
    files.copy_file(session, source.datacenter_ref, source.path, dc,
                    destination)
    copied = datastore_http.size(session, cluster.datacenter,
                                 destination.datastore, destination.rel_path)
    if copied != image.size:
        raise exception.ImageTransferFailed(
            image_id=image.id, reason='vCenter copied %s bytes from %s, '
            'Glance records %d' % (copied, source.url, image.size))
    return image.size
