"""Image disks from Glance, written onto a datastore.

Images in VMDK (flat, monolithicSparse, streamOptimized), qcow2 or raw,
bare or in an OVA, become a flat disk: vCenter creates the disk, we stream
the converted bytes into its ``-flat.vmdk`` extent and verify Glance's hash
of the original bytes as they pass.
"""

import dataclasses
import hashlib

from nova import exception as nova_exception
from oslo_log import log as logging
from oslo_utils import strutils

from vcdriver import cluster as cluster_mod
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

DISK_FORMATS = ('vmdk', 'qcow2', 'raw', 'iso')
CONTAINER_FORMATS = ('bare', 'ova', None)
VMDK_DISK_TYPES = ('preallocated', 'thin', 'eagerZeroedThick', 'sparse',
                   'streamOptimized')
# vmware_adaptertype: the in-tree driver's SCSI types, plus 'ide'.
ADAPTER_TYPES = tuple(sorted(vm_spec.ADAPTER_TYPES)) + ('ide',)
HV_TYPE = 'vmware'


@dataclasses.dataclass(frozen=True)
class DiskPlan:
    """How an image becomes an instance's disks."""
    disk_type: str      # of the instance's disks: 'thin' or 'preallocated'
    adapter: str        # SCSI controller type, or 'ide'
    bus: str            # hw_disk_bus: 'scsi', 'ide' or 'sata'
    iso: bool           # boots from a CD-ROM, with a blank root disk
    linked_clone: bool  # root disk a delta of the cached image
    vif_model: str      # hw_vif_model, for the instance's NICs


def check_acceptable(image):
    """Refuse what this driver cannot boot, before anything is written;
    return how its disks are to be made."""
    def refuse(reason):
        raise nova_exception.ImageUnacceptable(image_id=image.id,
                                               reason=reason)
    props = image.properties
    if image.disk_format not in DISK_FORMATS:
        refuse('disk_format %s is not supported; use one of %s'
               % (image.disk_format, ', '.join(DISK_FORMATS)))
    iso = image.disk_format == 'iso'
    if image.container_format not in CONTAINER_FORMATS or (
            iso and image.container_format == 'ova'):
        refuse('container_format %s is not supported; use bare%s'
               % (image.container_format, '' if iso else ' or ova'))
    hv_type = props.get('img_hv_type')
    if hv_type and hv_type != HV_TYPE:
        refuse('img_hv_type is %s; this is a VMware vCenter node (%s)'
               % (hv_type, HV_TYPE))
    # The in-tree default for a bare VMDK; images from other formats are
    # sparse by nature and stay thin.
    flat_vmdk = (image.disk_format == 'vmdk' and
                 image.container_format != 'ova')
    vmdk_type = props.get(
        'vmware_disktype', 'preallocated' if flat_vmdk else 'thin')
    if vmdk_type not in VMDK_DISK_TYPES:
        refuse('vmware_disktype %s is not supported; use one of %s'
               % (vmdk_type, ', '.join(VMDK_DISK_TYPES)))
    adapter = props.get('vmware_adaptertype')
    if adapter is not None and adapter not in ADAPTER_TYPES:
        refuse('vmware_adaptertype %s is unknown; use one of %s'
               % (adapter, ', '.join(ADAPTER_TYPES)))
    bus = props.get('hw_disk_bus') or ('ide' if adapter == 'ide'
                                       else 'scsi')
    if bus not in vm_spec.DISK_BUSES:
        refuse('hw_disk_bus %s is not supported on vCenter; use one of %s'
               % (bus, ', '.join(vm_spec.DISK_BUSES)))
    if adapter is not None and (adapter == 'ide') != (bus == 'ide') or (
            adapter not in (None, 'ide') and bus != 'scsi'):
        refuse('vmware_adaptertype %s contradicts hw_disk_bus %s'
               % (adapter, bus))
    vif_model = props.get('hw_vif_model') or vm_spec.DEFAULT_VIF_MODEL
    if vif_model not in vm_spec.VIF_MODELS:
        refuse('hw_vif_model %s is not supported on vCenter; use one of %s'
               % (vif_model, ', '.join(sorted(vm_spec.VIF_MODELS))))
    if image.size <= 0:
        refuse('Glance holds no bytes for it')
    linked = props.get('vmware_linked_clone')
    linked = (CONF.vmware.use_linked_clone if linked is None
              else strutils.bool_from_string(linked))
    return DiskPlan(
        # Instances keep a preallocated disk only when the image asks.
        disk_type='preallocated' if vmdk_type == 'preallocated' else 'thin',
        adapter=(adapter or vm_spec.DEFAULT_ADAPTER_TYPE) if bus == 'scsi'
        else 'ide' if bus == 'ide' else vm_spec.DEFAULT_ADAPTER_TYPE,
        bus=bus, iso=iso, linked_clone=linked and not iso,
        vif_model=vif_model)


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


def cache_file_name(image):
    """The file an image is cached as: a disk, or an ISO kept as is."""
    return '%s.%s' % (image.id, 'iso' if image.disk_format == 'iso'
                      else 'vmdk')


def _check_room(session, cluster, image, datastore_name, virtual_size):
    """Refuse, before writing anything, a disk the datastore cannot hold:
    its flat extent is written in full, whatever its header claims."""
    state = cluster_mod.read_state(session, [cluster])[0]
    for datastore in state.datastores:
        if datastore.name == datastore_name and (
                virtual_size > datastore.free_space):
            raise nova_exception.ImageUnacceptable(
                image_id=image.id,
                reason='its virtual size (%d bytes) is more than datastore '
                       '%s has free (%d bytes); a header claiming it is '
                       'wrong, or the image too large to use'
                       % (virtual_size, datastore_name,
                          datastore.free_space))


def _broken_off(image, source, error):
    return exception.ImageTransferFailed(
        image_id=image.id,
        reason='the download from Glance broke off after %d of %d bytes: '
               '%s' % (source.size, image.size, error))


def write_image_disk(session, context, cluster, image, disk_path,
                     plan=None):
    """Create ``disk_path`` holding the image, verified against Glance's
    hash; return its virtual size in bytes.

    Whatever the image's format, the bytes are converted to a flat disk as
    they stream (images/formats), an ISO kept as it is, and hashed as they
    arrive, in the reader thread. On failure ``disk_path``'s folder may
    hold partial files: the caller owns the folder and removes it.
    """
    plan = plan or check_acceptable(image)
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
    except Exception as e:
        # Glance's stream broke while the header was read: the same
        # failure as later in the copy (no other host would do better).
        source.close()
        raise _broken_off(image, source, e) from e
    LOG.info('Image %s: %s, %d bytes, virtual size %d', image.id,
             flat.source_format, image.size, flat.virtual_size)
    try:
        _check_room(session, cluster, image, disk_path.datastore,
                    flat.virtual_size)
    except BaseException:
        source.close()
        raise
    if plan.iso:
        target = disk_path.rel_path
    else:
        # The cache disk is thin: the flat upload replaces its extent.
        files.create_virtual_disk(session, cluster.datacenter_ref,
                                  disk_path, flat.virtual_size,
                                  vm_spec.vmdk_adapter_type(plan.adapter),
                                  'thin')
        target = disk_path.rel_path[:-len('.vmdk')] + '-flat.vmdk'
    writer = datastore_http.FileWriter(
        session, cluster.datacenter, disk_path.datastore, target,
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
        raise _broken_off(image, source, e) from e
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
