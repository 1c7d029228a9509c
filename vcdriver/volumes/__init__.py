"""Cinder volumes on instances: Cinder's ``vmdk`` and ``iscsi`` types.

The entry points the driver calls, dispatching on the connection's
``driver_volume_type``: ``vmdk`` volumes are disks of Cinder's shadow
VMs (``vcdriver.volumes.vmdk``), ``iscsi`` volumes LUNs mapped raw
(``vcdriver.volumes.iscsi``); what both read of the instance is in
``vcdriver.volumes.devices``.
"""

from nova import exception as nova_exception
from oslo_log import log as logging
from pyVmomi import vim

from vcdriver import power
from vcdriver.volumes import iscsi
from vcdriver.volumes import vmdk
from vcdriver.volumes.devices import connection_data
from vcdriver.volumes.devices import SUPPORTED_TYPES
from vcdriver.volumes.devices import VOLUME_KEY
from vcdriver.vsphere import props

LOG = logging.getLogger(__name__)

__all__ = ['SUPPORTED_TYPES', 'VOLUME_KEY', 'attach', 'connector', 'detach',
           'detach_all', 'extend', 'swap']


def attach(session, vm_ref, connection_info, instance):
    if connection_info.get('driver_volume_type') == 'iscsi':
        return iscsi.attach(session, vm_ref, connection_info, instance)
    return vmdk.attach(session, vm_ref, connection_info, instance)


def detach(session, datacenter, vm_ref, connection_info, instance):
    if connection_info.get('driver_volume_type') == 'iscsi':
        return iscsi.detach(session, vm_ref, connection_info, instance)
    return vmdk.detach(session, datacenter, vm_ref, connection_info,
                             instance)


def swap(session, datacenter, vm_ref, old_connection_info,
         new_connection_info, instance, resize_to):
    """Replace an attached volume by another, keeping its data (Cinder's
    volume migration and retype call it; Nova refuses it otherwise)."""
    old = connection_data(old_connection_info)
    new = connection_data(new_connection_info)
    if 'iscsi' in (old_connection_info['driver_volume_type'],
                   new_connection_info['driver_volume_type']):
        raise NotImplementedError(iscsi.SWAP_REFUSED)
    return vmdk.swap(session, datacenter, vm_ref, old, new, instance,
                           resize_to)


def extend(session, vm_ref, connection_info, instance, requested_size):
    """Grow an attached volume's disk to ``requested_size`` bytes (Cinder
    has extended the volume and Nova passes the event on).

    ``vmdk``: an edit of the instance's disk device with the new capacity,
    which is how vSphere grows a disk, attached and running (no IDE
    hot-extend). ``iscsi``: the LUN grew on the array; the VM's host's
    adapter is rescanned so ESXi sees its size, which a physical raw
    device mapping passes through to the guest.
    """
    if connection_info.get('driver_volume_type') == 'iscsi':
        return iscsi.extend(session, vm_ref, connection_info, instance)
    return vmdk.extend(session, vm_ref, connection_info, instance,
                             requested_size)


def detach_all(session, datacenter, vm_ref, mappings, instance):
    """Before the VM is destroyed: vCenter's Destroy_Task deletes every
    disk a VM has, and the volumes' disks are Cinder's. Powered off first,
    as IDE disks cannot be unplugged from a running VM."""
    if not mappings:
        return
    power.power_off(session, vm_ref)
    for mapping in mappings:
        connection_info = mapping.get('connection_info') or {}
        try:
            detach(session, datacenter, vm_ref, connection_info, instance)
        except (nova_exception.DiskNotFound,
                nova_exception.VolumeDriverNotFound) as e:
            LOG.warning('Volume at %s not detached before destroy: %s',
                        mapping.get('mount_device'), e, instance=instance)


def connector(session, vm_ref, host_ip):
    """What Cinder needs to export a volume to this instance: vCenter's
    address, the VM (Cinder's VMDK driver places the volume near it) and
    the iSCSI initiator name of the VM's host, if it has one."""
    found = {'ip': host_ip, 'host': host_ip}
    if vm_ref is None:
        return found
    found['instance'] = props.moid(vm_ref)
    host = props.properties(session, [vm_ref], vim.VirtualMachine,
                            ['runtime.host']).get(vm_ref, {}).get(
                                'runtime.host')
    if host is None:
        return found
    hbas = props.properties(
        session, [host], vim.HostSystem,
        ['config.storageDevice.hostBusAdapter']).get(host, {}).get(
            'config.storageDevice.hostBusAdapter') or ()
    iqn = next((h.iScsiName for h in hbas
                if isinstance(h, vim.host.InternetScsiHba)), None)
    if iqn:
        found['initiator'] = iqn
    return found
