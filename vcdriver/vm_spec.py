"""vSphere ConfigSpecs for Nova instances: pure builders, no calls."""

from pyVmomi import vim

# extraConfig key the in-tree driver sets too, so either driver recognises
# the other's instances.
INSTANCE_UUID_KEY = 'nvp.vm-uuid'

ADAPTER_TYPES = {
    'lsiLogic': vim.vm.device.VirtualLsiLogicController,
    'lsiLogicsas': vim.vm.device.VirtualLsiLogicSASController,
    'busLogic': vim.vm.device.VirtualBusLogicController,
    'paraVirtual': vim.vm.device.ParaVirtualSCSIController,
}
DEFAULT_ADAPTER_TYPE = 'lsiLogic'
DEFAULT_GUEST_ID = 'otherGuest'
_MAX_NAME = 80


def vm_name(instance):
    """``display name (uuid)``, as the in-tree driver names VMs."""
    suffix = ' (%s)' % instance.uuid
    display = (instance.display_name or '')[:_MAX_NAME - len(suffix)]
    return (display + suffix) if display else instance.uuid


def _add(device, file_operation=None):
    change = vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
        device=device)
    if file_operation:
        change.fileOperation = file_operation
    return change


def scsi_controller(adapter_type, key=-100):
    """The SCSI controller the root disk hangs on (bus 0)."""
    controller_cls = ADAPTER_TYPES.get(adapter_type)
    if controller_cls is None:
        raise ValueError('unknown vmware_adaptertype %r (known: %s)'
                         % (adapter_type, ', '.join(sorted(ADAPTER_TYPES))))
    return _add(controller_cls(
        key=key, busNumber=0,
        sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing))


def existing_disk(controller_key, disk_path, size_bytes, unit_number=0):
    """An existing VMDK attached to a controller, with its known size."""
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=str(disk_path), diskMode='persistent')
    return _add(vim.vm.device.VirtualDisk(
        key=-101, controllerKey=controller_key, unitNumber=unit_number,
        capacityInKB=-(-size_bytes // 1024), backing=backing))


def create_spec(instance, flavor, datastore_name, devices, guest_id=None):
    """ConfigSpec for CreateVM_Task; vCenter makes ``[ds] <uuid>/``."""
    return vim.vm.ConfigSpec(
        name=vm_name(instance),
        guestId=guest_id or DEFAULT_GUEST_ID,
        instanceUuid=instance.uuid,
        numCPUs=flavor.vcpus,
        memoryMB=flavor.memory_mb,
        files=vim.vm.FileInfo(
            vmPathName='[%s] %s/' % (datastore_name, instance.uuid)),
        extraConfig=[vim.option.OptionValue(key=INSTANCE_UUID_KEY,
                                            value=instance.uuid)],
        deviceChange=devices)
