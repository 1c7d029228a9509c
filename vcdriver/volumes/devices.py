"""What both Cinder volume types read and check of an instance.

The connection data Nova hands over, the instance's devices
(``vcdriver.devices``), power state and the volume's recorded uuid in one
read, and whether a disk can be plugged on a bus while the VM runs.
"""

from nova import exception as nova_exception
from pyVmomi import vim

from vcdriver import devices
from vcdriver import exception
from vcdriver.devices import VOLUME_KEY
from vcdriver.vsphere import props

SUPPORTED_TYPES = ('vmdk', 'iscsi')


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
    """(the instance's Devices, power state, the volume's recorded disk
    uuid), one read."""
    key = 'config.extraConfig["%s"]' % (VOLUME_KEY % volume_id)
    p = props.properties(session, [vm_ref], vim.VirtualMachine,
                         ['config.hardware.device', 'runtime.powerState',
                          key]).get(vm_ref, {})
    option = p.get(key)
    return (devices.Devices(p.get('config.hardware.device')),
            p.get('runtime.powerState'),
            getattr(option, 'value', option) or None)


def check_hotplug(bus, power_state, volume_id, action):
    if bus == 'ide' and power_state != 'poweredOff':
        raise exception.VolumeHotplugUnsupported(volume_id=volume_id,
                                                 action=action)
