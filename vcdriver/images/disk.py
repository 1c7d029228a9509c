"""What an image becomes: whether this driver boots it, and how its disks
are made (DiskPlan), from Glance's record and properties alone, before
any byte is read or written.
"""

import dataclasses

from nova import exception as nova_exception
from oslo_utils import strutils

from vcdriver import conf
from vcdriver import vm_spec

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
