"""Cinder's ``iscsi`` connection type: volumes as raw device mappings.

The target goes on the software iSCSI adapter of the VM's host as a
static target, the adapter is rescanned, and the LUN is attached as a
physical-mode raw device mapping (as in-tree); the LUN's uuid is recorded
under the same extraConfig key as a vmdk volume's disk uuid,
``volume-<volume id>``.

Swapping is refused (``SWAP_REFUSED``); extending rescans the adapter.
"""

from nova import exception as nova_exception
from oslo_log import log as logging
from pyVmomi import vim

from vcdriver import devices as devices_mod
from vcdriver import exception
from vcdriver import vm_spec
from vcdriver.volumes.devices import connection_data
from vcdriver.volumes.devices import instance_props
from vcdriver.volumes.devices import VOLUME_KEY
from vcdriver.vsphere import host_storage_system
from vcdriver.vsphere import props
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)

SWAP_REFUSED = (
    'iSCSI volumes cannot be swapped on vCenter: they are raw device '
    'mappings of whole LUNs, and vSphere has no call copying one LUN onto '
    'another (Cinder moves an iSCSI volume itself while it is detached)')

_HOST_STORAGE = ['name', 'configManager.storageSystem',
                 'config.storageDevice.hostBusAdapter',
                 'config.storageDevice.scsiTopology',
                 'config.storageDevice.scsiLun']


def _software_hba(host_props):
    return next((h for h in host_props.get(
        'config.storageDevice.hostBusAdapter') or ()
        if isinstance(h, vim.host.InternetScsiHba)), None)


def _find_lun(host_props, hba, data):
    """The host's ScsiDisk of the target's LUN, from its SCSI topology."""
    portal, iqn = data['target_portal'], data['target_iqn']
    wanted = int(data.get('target_lun') or 0)
    topology = host_props.get('config.storageDevice.scsiTopology')
    key = None
    for adapter in getattr(topology, 'adapter', None) or ():
        if adapter.adapter != hba.key:
            continue
        for target in adapter.target or ():
            transport = target.transport
            if (isinstance(transport, vim.host.InternetScsiTargetTransport)
                    and transport.iScsiName == iqn
                    and portal in (transport.address or ())):
                key = next((lun.scsiLun for lun in target.lun or ()
                            if lun.lun == wanted), None)
    return next((lun for lun in host_props.get(
        'config.storageDevice.scsiLun') or () if lun.key == key), None)


def _host_adapter(session, vm_ref, data):
    """The VM's host, its storage properties and its software iSCSI
    adapter (a host without one cannot reach the target)."""
    host = props.properties(session, [vm_ref], vim.VirtualMachine,
                            ['runtime.host']).get(vm_ref, {}).get(
                                'runtime.host')
    host_props = props.properties(session, [host], vim.HostSystem,
                                  _HOST_STORAGE).get(host, {})
    hba = _software_hba(host_props)
    if hba is None:
        raise exception.ISCSITargetNotFound(
            host=host_props.get('name', host), lun=data.get('target_lun'),
            iqn=data['target_iqn'], portal=data['target_portal'],
            reason=' (it has no software iSCSI adapter)')
    return host, host_props, hba


def _iscsi_lun(session, vm_ref, data):
    """The LUN on the VM's host; the target is added to the host's
    software adapter and the adapter rescanned only when it is missing."""
    host, host_props, hba = _host_adapter(session, vm_ref, data)
    missing = dict(host=host_props.get('name', host), lun=data.get(
        'target_lun'), iqn=data['target_iqn'], portal=data['target_portal'])
    lun = _find_lun(host_props, hba, data)
    if lun is not None:
        return lun
    storage = host_props['configManager.storageSystem']
    address, _, port = data['target_portal'].rpartition(':')
    target = vim.host.InternetScsiHba.StaticTarget(
        address=address, port=int(port or 3260),
        iScsiName=data['target_iqn'])
    if not any((t.address, t.port, t.iScsiName) ==
               (target.address, target.port, target.iScsiName)
               for t in hba.configuredStaticTarget or ()):
        host_storage_system.add_iscsi_static_targets(
            session, storage, hba.device, [target])
    host_storage_system.rescan_hba(session, storage, hba.device)
    host_props = props.properties(session, [host], vim.HostSystem,
                                  _HOST_STORAGE).get(host, {})
    lun = _find_lun(host_props, hba, data)
    if lun is None:
        raise exception.ISCSITargetNotFound(reason='', **missing)
    return lun


def _rdm_of(devices, lun_uuid):
    return next((d for d in devices.disks
                 if isinstance(d.backing, devices_mod.RDM) and
                 d.backing.lunUuid == lun_uuid), None)


def attach(session, vm_ref, connection_info, instance):
    data = connection_data(connection_info)
    volume_id = data['volume_id']
    lun = _iscsi_lun(session, vm_ref, data)
    devices, power, _uuid = instance_props(session, vm_ref, volume_id)
    if _rdm_of(devices, lun.uuid) is not None:
        LOG.info('Volume %s is attached already', volume_id,
                 instance=instance)
        return
    bus = devices.instance_bus(instance.uuid)
    if bus != 'scsi':
        raise exception.ISCSIVolumeNeedsSCSI(volume_id=volume_id, bus=bus)
    controller_key, unit = devices.take_free_slot(bus)
    capacity_kb = lun.capacity.block * lun.capacity.blockSize // 1024
    spec = vim.vm.ConfigSpec(
        deviceChange=[vm_spec.rdm_disk(-300, controller_key, unit,
                                       lun.deviceName, lun.uuid,
                                       capacity_kb)],
        extraConfig=vm_spec.extra_config({VOLUME_KEY % volume_id: lun.uuid}))
    virtual_machine.reconfigure(session, vm_ref, spec)
    LOG.info('Attached iSCSI volume %s (%s) on unit %s', volume_id,
             lun.deviceName, unit, instance=instance)


def detach(session, vm_ref, connection_info, instance):
    """Remove the mapping and its mapping file; the LUN is Cinder's and
    the static target stays (other LUNs of it may be in use)."""
    data = connection_data(connection_info)
    volume_id = data['volume_id']
    devices, _power, lun_uuid = instance_props(session, vm_ref, volume_id)
    device = _rdm_of(devices, lun_uuid) if lun_uuid else None
    if device is None:
        raise nova_exception.DiskNotFound(
            location='iSCSI volume %s on the instance' % volume_id)
    spec = vim.vm.ConfigSpec(
        deviceChange=[vm_spec.remove(device, destroy_file=True)],
        extraConfig=vm_spec.extra_config({VOLUME_KEY % volume_id: ''}))
    virtual_machine.reconfigure(session, vm_ref, spec)
    LOG.info('Detached iSCSI volume %s (%s)', volume_id,
             device.backing.deviceName, instance=instance)


def extend(session, vm_ref, connection_info, instance):
    """Rescan the adapter of the VM's host, so ESXi reads the LUN's new
    size; the physical mapping shows the guest the LUN as it is."""
    data = connection_data(connection_info)
    volume_id = data['volume_id']
    devices, _power, lun_uuid = instance_props(session, vm_ref, volume_id)
    if not lun_uuid or _rdm_of(devices, lun_uuid) is None:
        raise nova_exception.DiskNotFound(
            location='iSCSI volume %s on the instance' % volume_id)
    host, host_props, hba = _host_adapter(session, vm_ref, data)
    host_storage_system.rescan_hba(
        session, host_props['configManager.storageSystem'], hba.device)
    lun = _find_lun(props.properties(session, [host], vim.HostSystem,
                                     _HOST_STORAGE).get(host, {}), hba, data)
    LOG.info('Rescanned %s for iSCSI volume %s: the LUN has %s bytes',
             hba.device, volume_id, lun and (
                 lun.capacity.block * lun.capacity.blockSize),
             instance=instance)
