"""Diagnostics of an instance from its VM's configuration and quickStats,
read in one PropertyCollector call.

vCenter keeps no per-vCPU time nor per-disk I/O counters in a VM's
properties (those are in the performance manager, sampled every 20 s):
CPU and disk entries carry what the VM has, not counters.
"""

from nova import objects
from nova.virt import configdrive
from pyVmomi import vim

from vcdriver import vm
from vcdriver.vsphere import props

PATHS = ['runtime.powerState', 'config.hardware.numCPU',
         'config.hardware.memoryMB', 'config.hardware.device',
         'summary.quickStats', 'config.guestId']


def _read(session, vm_ref):
    return props.properties(session, [vm_ref], vim.VirtualMachine,
                            PATHS).get(vm_ref, {})


def _devices(p, kind):
    return [d for d in p.get('config.hardware.device') or ()
            if isinstance(d, kind)]


def legacy(session, vm_ref):
    """get_diagnostics: a flat dict, names prefixed ``vmware:`` as the
    in-tree driver's are."""
    p = _read(session, vm_ref)
    stats = p.get('summary.quickStats')
    data = {
        'powerState': p.get('runtime.powerState'),
        'numCpu': p.get('config.hardware.numCPU'),
        'memorySizeMB': p.get('config.hardware.memoryMB'),
        'guestId': p.get('config.guestId'),
    }
    for name in ('overallCpuUsage', 'guestMemoryUsage', 'hostMemoryUsage',
                 'uptimeSeconds', 'balloonedMemory', 'swappedMemory'):
        value = getattr(stats, name, None)
        if value is not None:
            data[name] = value
    for n, disk in enumerate(_devices(p, vim.vm.device.VirtualDisk)):
        data['disk%d' % n] = disk.backing.fileName
        data['disk%d_capacity_bytes' % n] = disk.capacityInBytes
    for n, nic in enumerate(_devices(p, vim.vm.device.VirtualEthernetCard)):
        data['nic%d_mac' % n] = nic.macAddress
    return {'vmware:' + k: v for k, v in data.items()}


def instance_diagnostics(session, vm_ref, instance):
    """get_instance_diagnostics: Nova's Diagnostics object."""
    p = _read(session, vm_ref)
    stats = p.get('summary.quickStats')
    diags = objects.Diagnostics(
        state=vm.POWER_STATES.get(p.get('runtime.powerState'), 0),
        driver='vmwareapi', hypervisor='vmware', hypervisor_os='esxi',
        uptime=getattr(stats, 'uptimeSeconds', None),
        config_drive=configdrive.required_by(instance))
    diags.memory_details = objects.MemoryDiagnostics(
        maximum=p.get('config.hardware.memoryMB') or 0,
        used=getattr(stats, 'guestMemoryUsage', None) or 0)
    for cpu in range(p.get('config.hardware.numCPU') or 0):
        diags.add_cpu(id=cpu)
    for nic in _devices(p, vim.vm.device.VirtualEthernetCard):
        diags.add_nic(mac_address=nic.macAddress)
    for _disk in _devices(p, vim.vm.device.VirtualDisk):
        diags.add_disk()
    return diags
