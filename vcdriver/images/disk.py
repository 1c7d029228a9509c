"""Image disks from Glance, written onto a datastore.

This first cut takes flat VMDK images (``vmware_disktype`` preallocated or
thin, the in-tree default): vCenter creates the disk, we stream the image
into its ``-flat.vmdk`` extent and verify Glance's hash as it passes.
"""

from nova import exception as nova_exception
from oslo_log import log as logging

from vcdriver import conf
from vcdriver import exception
from vcdriver import vm_spec
from vcdriver.images import glance
from vcdriver.images import transfer
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files

LOG = logging.getLogger(__name__)
CONF = conf.CONF

FLAT_DISK_TYPES = ('preallocated', 'thin')
SPARSE_MAGIC = b'KDMV'


def check_acceptable(image):
    """Refuse what this driver cannot boot, before anything is written."""
    def refuse(reason):
        raise nova_exception.ImageUnacceptable(image_id=image.id,
                                               reason=reason)
    if image.disk_format != 'vmdk':
        refuse('disk_format %s is not supported; use vmdk'
               % image.disk_format)
    if image.container_format not in ('bare', None):
        refuse('container_format %s is not supported; use bare'
               % image.container_format)
    disk_type = image.properties.get('vmware_disktype', 'preallocated')
    if disk_type not in FLAT_DISK_TYPES:
        refuse('vmware_disktype %s is not supported; use one of %s'
               % (disk_type, ', '.join(FLAT_DISK_TYPES)))
    adapter = image.properties.get('vmware_adaptertype',
                                   vm_spec.DEFAULT_ADAPTER_TYPE)
    if adapter not in vm_spec.ADAPTER_TYPES:
        refuse('vmware_adaptertype %s is unknown; use one of %s'
               % (adapter, ', '.join(sorted(vm_spec.ADAPTER_TYPES))))
    if image.size <= 0 or image.size % 512:
        refuse('a flat VMDK is whole 512-byte sectors; this image is %d '
               'bytes' % image.size)
    return disk_type, adapter


class _FlatExtentWriter:
    """Datastore writer that refuses bytes that are not a flat extent."""

    def __init__(self, writer, image_id):
        self._writer = writer
        self._image_id = image_id
        self._first = True

    def __call__(self, chunk):
        if self._first:
            self._first = False
            if chunk[:4] == SPARSE_MAGIC:
                raise nova_exception.ImageUnacceptable(
                    image_id=self._image_id,
                    reason='its bytes are a sparse VMDK but it declares a '
                           'flat disk (vmware_disktype); set '
                           'vmware_disktype=sparse')
        self._writer.write(chunk)


def write_image_disk(session, context, cluster, image, disk_path):
    """Create ``disk_path`` holding the image, verified against Glance's
    hash; return its virtual size in bytes.

    On failure ``disk_path``'s folder may hold partial files: the caller
    owns the folder and removes it.
    """
    disk_type, adapter = check_acceptable(image)
    files.create_virtual_disk(session, cluster.datacenter_ref, disk_path,
                              image.size, adapter, disk_type)
    extent = disk_path.rel_path[:-len('.vmdk')] + '-flat.vmdk'
    writer = datastore_http.FileWriter(
        session, cluster.datacenter, disk_path.datastore, extent,
        size=image.size, timeout=CONF.vcdriver.http_timeout)
    label = 'Image %s to %s' % (image.id, disk_path)
    try:
        result = transfer.copy(
            glance.stream(context, image.id),
            _FlatExtentWriter(writer, image.id),
            label=label, hash_algo=image.hash_algo,
            chunk_size=CONF.vcdriver.image_transfer_chunk_size,
            depth=CONF.vcdriver.image_transfer_buffer_chunks,
            expected_size=image.size,
            progress_interval=CONF.vcdriver.image_transfer_progress_interval)
        writer.close()
    except transfer.SourceError as e:
        writer.abort()
        raise exception.ImageTransferFailed(
            image_id=image.id,
            reason='reading it from Glance failed: %s' % e) from e
    except transfer.SizeMismatch as e:
        writer.abort()
        raise exception.ImageTransferFailed(
            image_id=image.id,
            reason='Glance sent %d bytes, its record says %d'
                   % (e.actual, e.expected)) from e
    except BaseException:
        writer.abort()
        raise
    if result.digest != image.hash_value:
        raise exception.ImageChecksumMismatch(
            image_id=image.id, algo=image.hash_algo, actual=result.digest,
            expected=image.hash_value)
    LOG.info('Image %s verified (%s) on %s, %.1f MiB/s', image.id,
             image.hash_algo, disk_path, result.mib_per_s)
    return image.size
