"""Image disks from Glance, written onto a datastore.

Images in VMDK (flat, monolithicSparse, streamOptimized), qcow2 or raw,
bare or in an OVA, become a flat disk: vCenter creates the disk, we stream
the converted bytes into its ``-flat.vmdk`` extent and verify Glance's hash
of the original bytes as they pass.
"""

import hashlib

from nova import exception as nova_exception
from oslo_log import log as logging

from vcdriver import conf
from vcdriver import exception
from vcdriver import vm_spec
from vcdriver.images import formats
from vcdriver.images import glance
from vcdriver.images import transfer
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files

LOG = logging.getLogger(__name__)
CONF = conf.CONF

DISK_FORMATS = ('vmdk', 'qcow2', 'raw')
CONTAINER_FORMATS = ('bare', 'ova', None)
VMDK_DISK_TYPES = ('preallocated', 'thin', 'eagerZeroedThick', 'sparse',
                   'streamOptimized')


def check_acceptable(image):
    """Refuse what this driver cannot boot, before anything is written;
    return the instance disk's type and the SCSI adapter type."""
    def refuse(reason):
        raise nova_exception.ImageUnacceptable(image_id=image.id,
                                               reason=reason)
    if image.disk_format not in DISK_FORMATS:
        refuse('disk_format %s is not supported; use one of %s'
               % (image.disk_format, ', '.join(DISK_FORMATS)))
    if image.container_format not in CONTAINER_FORMATS:
        refuse('container_format %s is not supported; use bare or ova'
               % image.container_format)
    # The in-tree default for a bare VMDK; images from other formats are
    # sparse by nature and stay thin.
    flat_vmdk = (image.disk_format == 'vmdk' and
                 image.container_format != 'ova')
    vmdk_type = image.properties.get(
        'vmware_disktype', 'preallocated' if flat_vmdk else 'thin')
    if vmdk_type not in VMDK_DISK_TYPES:
        refuse('vmware_disktype %s is not supported; use one of %s'
               % (vmdk_type, ', '.join(VMDK_DISK_TYPES)))
    adapter = image.properties.get('vmware_adaptertype',
                                   vm_spec.DEFAULT_ADAPTER_TYPE)
    if adapter not in vm_spec.ADAPTER_TYPES:
        refuse('vmware_adaptertype %s is unknown; use one of %s'
               % (adapter, ', '.join(sorted(vm_spec.ADAPTER_TYPES))))
    if image.size <= 0:
        refuse('Glance holds no bytes for it')
    # Instances keep a preallocated disk only when the image asks for one.
    disk_type = 'preallocated' if vmdk_type == 'preallocated' else 'thin'
    return disk_type, adapter


class _Hashing:
    """The Glance stream, hashed and counted as the converter pulls it."""

    def __init__(self, chunks, algo):
        self._chunks = chunks
        self.hasher = hashlib.new(algo)
        self.size = 0

    def __iter__(self):
        for chunk in self._chunks:
            self.hasher.update(chunk)
            self.size += len(chunk)
            yield chunk

    def close(self):
        close = getattr(self._chunks, 'close', None)
        if close:
            close()


def _unacceptable(image, error):
    return nova_exception.ImageUnacceptable(image_id=image.id,
                                            reason=str(error))


def write_image_disk(session, context, cluster, image, disk_path):
    """Create ``disk_path`` holding the image as a flat disk, verified
    against Glance's hash; return its virtual size in bytes.

    Whatever the image's format, the bytes are converted as they stream
    (images/formats) and hashed as they arrive, in the reader thread.
    On failure ``disk_path``'s folder may hold partial files: the caller
    owns the folder and removes it.
    """
    _disk_type, adapter = check_acceptable(image)
    source = _Hashing(glance.stream(context, image.id), image.hash_algo)
    try:
        flat = formats.open_flat(
            source, image.disk_format, image.container_format,
            vmware_disktype=image.properties.get('vmware_disktype'),
            chunk_size=CONF.vcdriver.image_transfer_chunk_size,
            source_size=image.size)
    except formats.ImageFormatError as e:
        source.close()
        raise _unacceptable(image, e) from e
    LOG.info('Image %s: %s, %d bytes, virtual size %d', image.id,
             flat.source_format, image.size, flat.virtual_size)
    # The cache disk is thin: the flat upload replaces its extent anyway.
    files.create_virtual_disk(session, cluster.datacenter_ref, disk_path,
                              flat.virtual_size, adapter, 'thin')
    extent = disk_path.rel_path[:-len('.vmdk')] + '-flat.vmdk'
    writer = datastore_http.FileWriter(
        session, cluster.datacenter, disk_path.datastore, extent,
        size=flat.virtual_size, timeout=CONF.vcdriver.http_timeout)
    label = 'Image %s to %s' % (image.id, disk_path)
    try:
        result = transfer.copy(
            flat, writer.write, label=label, hash_algo=None,
            chunk_size=CONF.vcdriver.image_transfer_chunk_size,
            depth=CONF.vcdriver.image_transfer_buffer_chunks,
            expected_size=flat.virtual_size,
            progress_interval=CONF.vcdriver.image_transfer_progress_interval)
        writer.close()
    except transfer.SourceError as e:
        writer.abort()
        if isinstance(e.__cause__, formats.ImageFormatError):
            raise _unacceptable(image, e.__cause__) from e
        raise exception.ImageTransferFailed(
            image_id=image.id,
            reason='reading it from Glance failed: %s' % e) from e
    except BaseException:
        writer.abort()
        raise
    if source.size != image.size:
        raise exception.ImageTransferFailed(
            image_id=image.id, reason='Glance sent %d bytes, its record '
            'says %d' % (source.size, image.size))
    digest = source.hasher.hexdigest()
    if digest != image.hash_value:
        raise exception.ImageChecksumMismatch(
            image_id=image.id, algo=image.hash_algo, actual=digest,
            expected=image.hash_value)
    LOG.info('Image %s verified (%s) on %s, %.1f MiB/s', image.id,
             image.hash_algo, disk_path, result.mib_per_s)
    return flat.virtual_size
