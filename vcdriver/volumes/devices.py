"""What both Cinder volume types read and check of an instance.

The connection data Nova hands over, the instance's devices, power state
and the volume's recorded uuid in one read, the bus volumes go on (the
root disk's) and whether a disk can be plugged there while the VM runs.
"""

from nova import exception as nova_exception
from pyVmomi import vim

from vcdriver import exception
from vcdriver.vsphere import props

VOLUME_KEY = 'volume-%s'
SUPPORTED_TYPES = ('vmdk', 'iscsi')
# Volume disks go on the bus of the instance's root disk, where the guest
# has drivers; in this order of preference when it has no disk.
_CONTROLLER_BUSES = (
    (vim.vm.device.VirtualSCSIController, 'scsi'),
    (vim.vm.device.VirtualAHCIController, 'sata'),
    (vim.vm.device.VirtualIDEController, 'ide'),
)
DISK = vim.vm.device.VirtualDisk


def connection_data(connection_info):
    kind = connection_info.get('driver_volume_type')
    if kind not in SUPPORTED_TYPES:
        raise nova_exception.VolumeDriverNotFound(driver_type=kind)
    data = connection_info['data']
    if not data.get('volume_id'):
        raise nova_exception.InvalidVolume(
            reason='%s connection info without volume_id' % kind)
    return data


def instance_props(session, vm_ref, volume_id):
    """(devices, power state, the volume's recorded disk uuid), one read."""
    key = 'config.extraConfig["%s"]' % (VOLUME_KEY % volume_id)
    p = props.properties(session, [vm_ref], vim.VirtualMachine,
                         ['config.hardware.device', 'runtime.powerState',
                          key]).get(vm_ref, {})
    option = p.get(key)
    return (p.get('config.hardware.device') or [],
            p.get('runtime.powerState'),
            getattr(option, 'value', option) or None)


def instance_bus(devices):
    """The bus of the instance's root disk (its first disk); without
    disks (an ISO boot without root disk), the bus spawn added a
    controller for, IDE being every VM's."""
    disks = [d for d in devices if isinstance(d, DISK)]
    if disks:
        bus = bus_of(devices, min(disks, key=lambda d: d.key))
        if bus:
            return bus
    for cls, bus in _CONTROLLER_BUSES:
        if any(isinstance(d, cls) for d in devices):
            return bus
    return 'ide'


def bus_of(devices, device):
    controller = next((d for d in devices if d.key == device.controllerKey),
                      None)
    return next((bus for cls, bus in _CONTROLLER_BUSES
                 if isinstance(controller, cls)), None)


def check_hotplug(bus, power_state, volume_id, action):
    if bus == 'ide' and power_state != 'poweredOff':
        raise exception.VolumeHotplugUnsupported(volume_id=volume_id,
                                                 action=action)
