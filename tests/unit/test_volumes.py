"""Cinder ``vmdk`` volumes on instances (vcdriver.volumes) against a fake
vCenter: which device specs the driver sends, and that no file is ever
created or destroyed on Cinder's disks."""

import types

import pytest
from nova import exception as nova_exception
from pyVmomi import vim
from pyVmomi import vmodl

from tests.unit import fake_vim
from vcdriver import exception
from vcdriver import volumes
from vcdriver.devices import Devices

PC = vmodl.query.PropertyCollector
VOLUME_ID = '0f0e0d0c-0000-4000-8000-00000000beef'
VOLUME_PATH = '[nfs0] volume-%s/volume-%s.vmdk' % (VOLUME_ID, VOLUME_ID)
DISK_UUID = '6000C29a-0000-0000-0000-000000000001'
KEY = 'config.extraConfig["volume-%s"]' % VOLUME_ID
Dev = vim.vm.device


class FakeVCenter:
    """Objects' properties by moref id; reconfigure specs kept in order."""

    def __init__(self):
        self.stub = fake_vim.FakeStub(
            RetrievePropertiesEx=self._retrieve, ReconfigVM_Task=self._task,
            PowerOffVM_Task=self._power_off, FindByUuid=self._find,
            MakeDirectory=lambda mo, *args: None,
            MoveVirtualDisk_Task=lambda mo, *args: vim.Task('task-3',
                                                             self.stub))
        self.props = {}
        self.by_uuid = {}
        self.specs = []
        self.session = fake_vim.session(self.stub)
        self.session.content.searchIndex = vim.SearchIndex('SearchIndex',
                                                           self.stub)
        content = self.session.content
        content.fileManager = vim.FileManager('FileManager', self.stub)
        content.virtualDiskManager = vim.VirtualDiskManager(
            'VirtualDiskManager', self.stub)
        self.session.wait_for_task = lambda task: None

    def vm(self, moid, **props):
        self.props[moid] = {k.replace('__', '.'): v for k, v in props.items()}
        return vim.VirtualMachine(moid, self.stub)

    def _retrieve(self, mo, specs, options):
        (spec,) = specs
        paths = spec.propSet[0].pathSet
        found = []
        for o in spec.objectSet:
            if o.obj._moId not in self.props:
                raise vmodl.fault.ManagedObjectNotFound(obj=o.obj)
            have = self.props[o.obj._moId]
            found.append(fake_vim.object_content(
                o.obj, **{p: _typed(have[p]) for p in paths if p in have}))
        return PC.RetrieveResult(objects=found)

    def _task(self, mo, spec):
        self.specs.append((mo._moId, spec))
        return vim.Task('task-1', self.stub)

    def _power_off(self, mo):
        self.props[mo._moId]['runtime.powerState'] = 'poweredOff'
        return vim.Task('task-2', self.stub)

    def _find(self, mo, datacenter, uuid, vmSearch, instanceUuid):
        moid = self.by_uuid.get(uuid)
        return vim.VirtualMachine(moid, self.stub) if moid else None


def _typed(value):
    """Lists as the typed arrays pyVmomi serialises."""
    if not isinstance(value, list):
        return value
    for base in (Dev.VirtualDevice, vim.host.HostBusAdapter,
                 vim.host.ScsiLun):
        if all(isinstance(v, base) for v in value):
            return base.Array(value)
    raise TypeError(value)


def scsi(key=1000, bus=0):
    return Dev.VirtualLsiLogicController(key=key, busNumber=bus)


def ide(key=200, bus=0):
    return Dev.VirtualIDEController(key=key, busNumber=bus)


def disk(key, controller, unit, path, uuid=None, mode='persistent'):
    return Dev.VirtualDisk(
        key=key, controllerKey=controller, unitNumber=unit,
        capacityInKB=4096,
        backing=Dev.VirtualDisk.FlatVer2BackingInfo(
            fileName=path, diskMode=mode, uuid=uuid))


def info(volume='vm-shadow', volume_id=VOLUME_ID, kind='vmdk'):
    return {'driver_volume_type': kind,
            'data': {'volume': volume, 'volume_id': volume_id,
                     'name': 'volume-%s' % volume_id}}


@pytest.fixture
def vc():
    vc = FakeVCenter()
    vc.vm('vm-shadow', config__hardware__device=[
        scsi(), disk(2000, 1000, 0, VOLUME_PATH, DISK_UUID)])
    return vc


def instance_vm(vc, devices, power='poweredOn', **extra):
    root = '[nfs0] i/i.vmdk'
    base = devices or [ide(200, 0), ide(201, 1), scsi(),
                       disk(2000, 1000, 0, root)]
    return vc.vm('vm-1', config__hardware__device=base,
                 runtime__powerState=power, **extra)


INSTANCE = types.SimpleNamespace(uuid='i')
DC = vim.Datacenter('datacenter-2')


def only_change(spec):
    (change,) = spec.deviceChange
    return change


# --- attach ------------------------------------------------------------------

def test_attach_takes_the_next_free_unit_of_the_root_disks_controller(vc):
    vm = instance_vm(vc, None)
    volumes.attach(vc.session, vm, info(), INSTANCE)
    [(moid, spec)] = vc.specs
    assert moid == 'vm-1'
    change = only_change(spec)
    assert change.operation == 'add'
    assert not change.fileOperation  # Cinder's file, never created
    d = change.device
    assert (d.controllerKey, d.unitNumber) == (1000, 1)
    assert d.backing.fileName == VOLUME_PATH
    assert d.backing.diskMode == 'independent_persistent'
    assert d.capacityInKB == 4096
    assert [(o.key, o.value) for o in spec.extraConfig] == [
        ('volume-%s' % VOLUME_ID, DISK_UUID)]


def test_attach_skips_scsi_unit_7_and_units_in_use(vc):
    devices = [scsi()] + [disk(2000 + u, 1000, u, '[ds] d%d.vmdk' % u)
                          for u in range(7)]
    volumes.attach(vc.session, instance_vm(vc, devices), info(), INSTANCE)
    assert only_change(vc.specs[0][1]).device.unitNumber == 8


def test_attach_twice_changes_nothing(vc):
    devices = [scsi(), disk(2000, 1000, 0, '[ds] root.vmdk'),
               disk(2001, 1000, 1, VOLUME_PATH, DISK_UUID)]
    volumes.attach(vc.session, instance_vm(vc, devices), info(), INSTANCE)
    assert vc.specs == []


def test_attach_finds_a_reregistered_shadow_by_volume_id(vc):
    vc.by_uuid[VOLUME_ID] = 'vm-shadow'
    volumes.attach(vc.session, instance_vm(vc, None),
                   info(volume='vm-gone'), INSTANCE)
    assert only_change(vc.specs[0][1]).device.backing.fileName == VOLUME_PATH


def test_attach_without_a_backing_says_so(vc):
    with pytest.raises(exception.VolumeBackingNotFound):
        volumes.attach(vc.session, instance_vm(vc, None),
                       info(volume='vm-gone'), INSTANCE)


def test_attach_to_a_running_ide_instance_is_refused(vc):
    devices = [ide(200, 0), ide(201, 1), disk(2000, 200, 0, '[ds] r.vmdk')]
    with pytest.raises(exception.VolumeHotplugUnsupported):
        volumes.attach(vc.session, instance_vm(vc, devices), info(),
                       INSTANCE)
    assert vc.specs == []


def test_attach_to_a_stopped_ide_instance(vc):
    devices = [ide(200, 0), ide(201, 1), disk(2000, 200, 0, '[ds] r.vmdk')]
    volumes.attach(vc.session,
                   instance_vm(vc, devices, power='poweredOff'), info(),
                   INSTANCE)
    d = only_change(vc.specs[0][1]).device
    assert (d.controllerKey, d.unitNumber) == (200, 1)


def test_other_connection_types_are_not_handled(vc):
    with pytest.raises(nova_exception.VolumeDriverNotFound):
        volumes.attach(vc.session, instance_vm(vc, None),
                       info(kind='fibre_channel'), INSTANCE)


@pytest.mark.parametrize('devices,bus', [
    ([ide(), scsi(), disk(2000, 1000, 0, 'r')], 'scsi'),
    ([ide(), Dev.VirtualAHCIController(key=15000, busNumber=0),
      disk(2000, 15000, 0, 'r')], 'sata'),
    ([ide(), disk(2000, 200, 0, 'r')], 'ide'),
    # ISO boot without a root disk: the controller spawn added.
    ([ide(), scsi()], 'scsi'),
    ([ide()], 'ide'),
])
def test_instance_bus(devices, bus):
    assert Devices(devices).instance_bus(INSTANCE.uuid) == bus


# --- detach ------------------------------------------------------------------

def attached_vm(vc, path=VOLUME_PATH, uuid=DISK_UUID, power='poweredOn'):
    devices = [scsi(), disk(2000, 1000, 0, '[ds] root.vmdk'),
               disk(2001, 1000, 1, path, uuid)]
    return instance_vm(vc, devices, power=power, **{
        KEY.replace('.', '__'): vim.option.OptionValue(
            key='volume-%s' % VOLUME_ID, value=DISK_UUID)})


def test_detach_removes_the_device_and_keeps_the_file(vc):
    volumes.detach(vc.session, DC, attached_vm(vc), info(), INSTANCE)
    [(moid, spec)] = vc.specs
    assert moid == 'vm-1'
    change = only_change(spec)
    assert change.operation == 'remove'
    assert not change.fileOperation  # 'destroy' would delete the volume
    assert change.device.key == 2001
    assert [(o.key, o.value) for o in spec.extraConfig] == [
        ('volume-%s' % VOLUME_ID, '')]


def test_detach_after_a_move_gives_the_file_back_to_the_shadow(vc):
    # Storage vMotion of the instance took the volume into its folder.
    moved = '[nfs1] i/volume-x.vmdk'
    home = '[nfs1] volume-%s/volume-x.vmdk' % VOLUME_ID
    volumes.detach(vc.session, DC, attached_vm(vc, path=moved), info(),
                   INSTANCE)
    assert [n for n in vc.stub.names() if n != 'RetrievePropertiesEx'] == [
        'ReconfigVM_Task', 'MakeDirectory', 'MoveVirtualDisk_Task',
        'ReconfigVM_Task']
    move = next(c for c in vc.stub.calls if c[0] == 'MoveVirtualDisk_Task')
    assert move[2][0] == moved and move[2][2] == home
    assert move[2][4] is False  # never over another file
    [(moid, _spec), (shadow, shadow_spec)] = vc.specs
    assert (moid, shadow) == ('vm-1', 'vm-shadow')
    remove, add = shadow_spec.deviceChange
    assert (remove.operation, remove.device.key) == ('remove', 2000)
    assert not remove.fileOperation and not add.fileOperation
    assert add.device.backing.fileName == home
    assert add.device.backing.uuid == DISK_UUID
    assert (add.device.controllerKey, add.device.unitNumber) == (1000, 0)
    assert add.device.backing.diskMode == 'persistent'


def test_detach_in_place_moves_no_file(vc):
    volumes.detach(vc.session, DC, attached_vm(vc), info(), INSTANCE)
    assert 'MoveVirtualDisk_Task' not in vc.stub.names()
    assert len(vc.specs) == 1


def test_detach_when_cinders_side_is_gone(vc):
    del vc.props['vm-shadow']
    volumes.detach(vc.session, DC, attached_vm(vc), info(), INSTANCE)
    [(moid, spec)] = vc.specs
    assert only_change(spec).device.key == 2001


def test_detach_of_a_volume_not_there(vc):
    with pytest.raises(nova_exception.DiskNotFound):
        volumes.detach(vc.session, DC, instance_vm(vc, None), info(), INSTANCE)


def test_detach_all_powers_off_first_and_goes_on_past_missing_disks(vc):
    vm = attached_vm(vc)
    mappings = [{'connection_info': info('vm-gone', 'other'),
                 'mount_device': '/dev/sdb'},
                {'connection_info': info(), 'mount_device': '/dev/sdc'}]
    volumes.detach_all(vc.session, DC, vm, mappings, INSTANCE)
    assert vc.stub.names()[0] == 'PowerOffVM_Task'
    [(_moid, spec)] = vc.specs
    assert only_change(spec).device.key == 2001


def test_detach_all_without_volumes_does_nothing(vc):
    volumes.detach_all(vc.session, DC, attached_vm(vc), [], INSTANCE)
    assert vc.stub.calls == []


# --- connector ---------------------------------------------------------------

def connector_vc(hbas):
    vc = FakeVCenter()
    vc.vm('vm-1', runtime__host=vim.HostSystem('host-1', vc.stub))
    vc.props['host-1'] = {'config.storageDevice.hostBusAdapter': hbas}
    return vc


def test_connector_names_the_vm_and_the_hosts_initiator():
    vc = connector_vc([
        vim.host.BlockHba(device='vmhba0'),
        vim.host.InternetScsiHba(device='vmhba65',
                                 iScsiName='iqn.1998-01.com.vmware:h1')])
    vm = vim.VirtualMachine('vm-1', vc.stub)
    assert volumes.connector(vc.session, vm, '10.0.0.1') == {
        'ip': '10.0.0.1', 'host': '10.0.0.1', 'instance': 'vm-1',
        'initiator': 'iqn.1998-01.com.vmware:h1'}


def test_connector_without_iscsi_adapter():
    vc = connector_vc([vim.host.BlockHba(device='vmhba0')])
    vm = vim.VirtualMachine('vm-1', vc.stub)
    assert volumes.connector(vc.session, vm, 'vc') == {
        'ip': 'vc', 'host': 'vc', 'instance': 'vm-1'}


def test_connector_before_the_vm_exists():
    vc = FakeVCenter()
    assert volumes.connector(vc.session, None, 'vc') == {
        'ip': 'vc', 'host': 'vc'}
    assert vc.stub.calls == []


# --- iSCSI -------------------------------------------------------------------

PORTAL, IQN, LUN_UUID = '192.0.2.10:3260', 'iqn.2010-10.org:vol', '0200aa'
LUN_KEY = 'key-vim.host.ScsiDisk-0200aa'


def iscsi_info():
    return {'driver_volume_type': 'iscsi',
            'data': {'target_portal': PORTAL, 'target_iqn': IQN,
                     'target_lun': 1, 'volume_id': VOLUME_ID}}


def hba(targets=()):
    return vim.host.InternetScsiHba(
        key='hba-65', device='vmhba65', iScsiName='iqn.host',
        configuredStaticTarget=list(targets))


def discovered():
    """(topology, [ScsiDisk]) with the target's LUN 1 found."""
    topology = vim.host.ScsiTopology(adapter=[
        vim.host.ScsiTopology.Interface(key='i', adapter='hba-65', target=[
            vim.host.ScsiTopology.Target(
                key='t', target=0,
                transport=vim.host.InternetScsiTargetTransport(
                    iScsiName=IQN, address=[PORTAL]),
                lun=[vim.host.ScsiTopology.Lun(key='l', lun=1,
                                               scsiLun=LUN_KEY)])])])
    disk_ = vim.host.ScsiDisk(
        key=LUN_KEY, uuid=LUN_UUID, deviceName='/vmfs/devices/disks/naa.1',
        capacity=vim.host.DiskDimensions.Lba(blockSize=512, block=8192))
    return topology, [disk_]


class ISCSIVCenter(FakeVCenter):
    """A host whose rescan finds the LUN once the static target is
    there."""

    def __init__(self, adapters):
        super().__init__()
        self.stub.handlers.update(
            AddInternetScsiStaticTargets=self._add_targets,
            RescanHba=self._rescan)
        self.host = vim.HostSystem('host-1', self.stub)
        self.storage = vim.host.StorageSystem('storage-1', self.stub)
        self.props['host-1'] = {
            'name': 'h1', 'configManager.storageSystem': self.storage,
            'config.storageDevice.hostBusAdapter': adapters}

    def _add_targets(self, mo, device, targets):
        self.props['host-1']['config.storageDevice.hostBusAdapter'][
            0].configuredStaticTarget.extend(targets)

    def _rescan(self, mo, device):
        adapter = self.props['host-1'][
            'config.storageDevice.hostBusAdapter'][0]
        if adapter.configuredStaticTarget:
            topology, luns = discovered()
            self.props['host-1'].update({
                'config.storageDevice.scsiTopology': topology,
                'config.storageDevice.scsiLun': luns})


def iscsi_vm(vc, devices=None, **extra):
    return instance_vm(vc, devices, runtime__host=vc.host, **extra)


def test_iscsi_attach_adds_the_static_target_rescans_and_maps_the_lun():
    vc = ISCSIVCenter([hba()])
    volumes.attach(vc.session, iscsi_vm(vc), iscsi_info(), INSTANCE)
    calls = [n for n in vc.stub.names() if n != 'RetrievePropertiesEx']
    assert calls == ['AddInternetScsiStaticTargets', 'RescanHba',
                     'ReconfigVM_Task']
    added = next(c for c in vc.stub.calls
                 if c[0] == 'AddInternetScsiStaticTargets')
    assert added[2][0] == 'vmhba65'
    [target] = added[2][1]
    assert (target.address, target.port, target.iScsiName) == (
        '192.0.2.10', 3260, IQN)
    [(_moid, spec)] = vc.specs
    change = only_change(spec)
    assert change.fileOperation == 'create'  # the mapping file
    d = change.device
    assert (d.controllerKey, d.unitNumber) == (1000, 1)
    assert isinstance(d.backing, Dev.VirtualDisk.RawDiskMappingVer1BackingInfo)
    assert (d.backing.deviceName, d.backing.lunUuid,
            d.backing.compatibilityMode) == (
        '/vmfs/devices/disks/naa.1', LUN_UUID, 'physicalMode')
    assert d.capacityInKB == 4096
    assert [(o.key, o.value) for o in spec.extraConfig] == [
        ('volume-%s' % VOLUME_ID, LUN_UUID)]


def test_iscsi_lun_known_already_needs_no_rescan():
    vc = ISCSIVCenter([hba()])
    topology, luns = discovered()
    vc.props['host-1'].update({'config.storageDevice.scsiTopology': topology,
                               'config.storageDevice.scsiLun': luns})
    volumes.attach(vc.session, iscsi_vm(vc), iscsi_info(), INSTANCE)
    assert 'RescanHba' not in vc.stub.names()
    assert len(vc.specs) == 1


def test_iscsi_target_configured_already_is_only_rescanned():
    vc = ISCSIVCenter([hba([vim.host.InternetScsiHba.StaticTarget(
        address='192.0.2.10', port=3260, iScsiName=IQN)])])
    volumes.attach(vc.session, iscsi_vm(vc), iscsi_info(), INSTANCE)
    assert 'AddInternetScsiStaticTargets' not in vc.stub.names()
    assert 'RescanHba' in vc.stub.names()


def test_iscsi_lun_not_found_says_where_it_looked():
    vc = ISCSIVCenter([hba()])
    vc.stub.handlers['RescanHba'] = lambda mo, device: None
    with pytest.raises(exception.ISCSITargetNotFound) as e:
        volumes.attach(vc.session, iscsi_vm(vc), iscsi_info(), INSTANCE)
    assert IQN in str(e.value) and 'h1' in str(e.value)
    assert vc.specs == []


def test_iscsi_host_without_software_adapter():
    vc = ISCSIVCenter([vim.host.BlockHba(key='b', device='vmhba0')])
    with pytest.raises(exception.ISCSITargetNotFound) as e:
        volumes.attach(vc.session, iscsi_vm(vc), iscsi_info(), INSTANCE)
    assert 'no software iSCSI adapter' in str(e.value)


def test_iscsi_needs_a_scsi_bus():
    vc = ISCSIVCenter([hba()])
    devices = [Dev.VirtualAHCIController(key=15000, busNumber=0),
               disk(2000, 15000, 0, '[ds] r.vmdk')]
    with pytest.raises(exception.ISCSIVolumeNeedsSCSI):
        volumes.attach(vc.session, iscsi_vm(vc, devices), iscsi_info(),
                       INSTANCE)
    assert vc.specs == []


def test_iscsi_detach_removes_the_mapping_and_its_file():
    vc = ISCSIVCenter([hba()])
    rdm = Dev.VirtualDisk(
        key=2001, controllerKey=1000, unitNumber=1, capacityInKB=4096,
        backing=Dev.VirtualDisk.RawDiskMappingVer1BackingInfo(
            fileName='[ds] i/i_1.vmdk', lunUuid=LUN_UUID,
            deviceName='/vmfs/devices/disks/naa.1'))
    vm = iscsi_vm(vc, [scsi(), disk(2000, 1000, 0, '[ds] r.vmdk'), rdm], **{
        KEY.replace('.', '__'): vim.option.OptionValue(
            key='volume-%s' % VOLUME_ID, value=LUN_UUID)})
    volumes.detach(vc.session, DC, vm, iscsi_info(), INSTANCE)
    [(_moid, spec)] = vc.specs
    change = only_change(spec)
    assert (change.operation, change.device.key) == ('remove', 2001)
    assert change.fileOperation == 'destroy'  # the mapping, not the LUN
    assert [n for n in vc.stub.names() if n != 'RetrievePropertiesEx'] == [
        'ReconfigVM_Task']


def test_iscsi_detach_of_a_volume_not_there():
    vc = ISCSIVCenter([hba()])
    with pytest.raises(nova_exception.DiskNotFound):
        volumes.detach(vc.session, DC, iscsi_vm(vc), iscsi_info(), INSTANCE)


# --- swap --------------------------------------------------------------------

NEW_ID = '0f0e0d0c-0000-4000-8000-0000000000ff'
NEW_PATH = '[nfs0] volume-%s/volume-%s.vmdk' % (NEW_ID, NEW_ID)
NEW_UUID = '6000C29a-0000-0000-0000-0000000000ff'
NEW_DIR = '[nfs0] volume-%s/volume-%s' % (NEW_ID, NEW_ID)


class SwapVCenter(FakeVCenter):
    """VirtualDiskManager's calls answered; ``fail`` names one (with the
    index of its call) to raise a FileFault."""

    def __init__(self, fail=None):
        super().__init__()
        self.fail = fail
        for name in ('CopyVirtualDisk_Task', 'ExtendVirtualDisk_Task',
                     'DeleteVirtualDisk_Task', 'MoveVirtualDisk_Task'):
            self.stub.handlers[name] = self._disk_call(name)
        self.vm('vm-shadow', config__hardware__device=[
            scsi(), disk(2000, 1000, 0, VOLUME_PATH, DISK_UUID)])
        new_disk = disk(2000, 1000, 0, NEW_PATH, NEW_UUID)
        new_disk.backing.thinProvisioned = True
        self.vm('vm-new', config__hardware__device=[scsi(), new_disk])

    def _disk_call(self, name):
        def call(mo, *args):
            index = sum(1 for n in self.stub.names() if n == name) - 1
            if self.fail == (name, index):
                raise vim.fault.FileFault(file=str(args[0]))
            return vim.Task('task-%s' % name, self.stub)
        return call

    def disk_calls(self):
        return [(c[0], [str(a) for a in c[2] if isinstance(a, str) or
                        'DatastorePath' in type(a).__name__])
                for c in self.stub.calls
                if c[0] not in ('RetrievePropertiesEx', 'ReconfigVM_Task')]


def swap(vc, resize_to=0, old=None, new=None):
    volumes.swap(vc.session, DC, attached_vm(vc), old or info(),
                 new or info(volume='vm-new', volume_id=NEW_ID), INSTANCE,
                 resize_to)


def test_swap_copies_the_old_disk_onto_the_new_one_at_the_same_unit():
    vc = SwapVCenter()
    swap(vc, resize_to=2)
    assert vc.disk_calls() == [
        ('DeleteVirtualDisk_Task', [NEW_DIR + '-swap.vmdk']),
        ('CopyVirtualDisk_Task', [VOLUME_PATH, NEW_DIR + '-swap.vmdk']),
        ('ExtendVirtualDisk_Task', [NEW_DIR + '-swap.vmdk']),
        ('MoveVirtualDisk_Task', [NEW_PATH, NEW_DIR + '-swapped.vmdk']),
        ('MoveVirtualDisk_Task', [NEW_DIR + '-swap.vmdk', NEW_PATH]),
        ('DeleteVirtualDisk_Task', [NEW_DIR + '-swapped.vmdk'])]
    copy = next(c for c in vc.stub.calls if c[0] == 'CopyVirtualDisk_Task')
    assert (copy[2][4].adapterType, copy[2][4].diskType) == (
        'lsiLogic', 'thin')  # the new volume's type
    extend = next(c for c in vc.stub.calls
                  if c[0] == 'ExtendVirtualDisk_Task')
    assert extend[2][2] == 2 * 1024 * 1024  # KB
    [(vm1, remove_spec), (vm2, add_spec)] = vc.specs
    assert (vm1, vm2) == ('vm-1', 'vm-1')
    remove = only_change(remove_spec)
    assert (remove.operation, remove.device.key) == ('remove', 2001)
    assert not remove.fileOperation and not remove_spec.extraConfig
    add = only_change(add_spec).device
    assert not only_change(add_spec).fileOperation
    assert (add.controllerKey, add.unitNumber, add.backing.fileName,
            add.backing.uuid, add.capacityInKB) == (
        1000, 1, NEW_PATH, NEW_UUID, 2 * 1024 * 1024)
    assert [(o.key, o.value) for o in add_spec.extraConfig] == [
        ('volume-%s' % NEW_ID, NEW_UUID), ('volume-%s' % VOLUME_ID, '')]


def test_swap_without_resize_does_not_extend():
    vc = SwapVCenter()
    swap(vc)
    assert 'ExtendVirtualDisk_Task' not in vc.stub.names()
    assert only_change(vc.specs[1][1]).device.capacityInKB == 4096


@pytest.mark.parametrize('fail, rolled_back', [
    (('CopyVirtualDisk_Task', 0), [
        ('DeleteVirtualDisk_Task', [NEW_DIR + '-swap.vmdk'])]),
    (('MoveVirtualDisk_Task', 0), [
        ('DeleteVirtualDisk_Task', [NEW_DIR + '-swap.vmdk'])]),
    # The copy could not take the new disk's name: the new disk's own
    # file comes back from aside.
    (('MoveVirtualDisk_Task', 1), [
        ('MoveVirtualDisk_Task', [NEW_DIR + '-swapped.vmdk', NEW_PATH]),
        ('DeleteVirtualDisk_Task', [NEW_DIR + '-swap.vmdk'])]),
])
def test_failed_swap_puts_the_old_disk_back(fail, rolled_back):
    vc = SwapVCenter(fail=fail)
    with pytest.raises(exception.VCenterError,
                       match='is attached again with its data'):
        swap(vc)
    calls = vc.disk_calls()
    failed_at = [i for i, c in enumerate(calls) if c[0] == fail[0]][fail[1]]
    assert calls[failed_at + 1:] == rolled_back
    [(_vm, _remove), (_vm2, restore)] = vc.specs
    add = only_change(restore).device
    assert (add.controllerKey, add.unitNumber, add.backing.fileName,
            add.backing.uuid, add.capacityInKB) == (
        1000, 1, VOLUME_PATH, DISK_UUID, 4096)
    assert not restore.extraConfig  # volume-<old id> stays


def test_swap_after_a_move_gives_the_old_disk_back_to_its_shadow():
    vc = SwapVCenter()
    moved = '[nfs0] i/volume-x.vmdk'
    home = '[nfs0] volume-%s/volume-x.vmdk' % VOLUME_ID
    volumes.swap(vc.session, DC, attached_vm(vc, path=moved), info(),
                 info(volume='vm-new', volume_id=NEW_ID), INSTANCE, 0)
    calls = vc.disk_calls()
    assert calls[1] == ('CopyVirtualDisk_Task',
                        [moved, NEW_DIR + '-swap.vmdk'])
    assert calls[2:4] == [('MakeDirectory', ['[nfs0] volume-%s' % VOLUME_ID]),
                          ('MoveVirtualDisk_Task', [moved, home])]
    assert [moid for moid, _s in vc.specs] == ['vm-1', 'vm-shadow', 'vm-1']


def test_swap_of_a_running_ide_volume_is_refused():
    vc = SwapVCenter()
    devices = [ide(200, 0), disk(2000, 200, 0, '[ds] root.vmdk'),
               disk(2001, 200, 1, VOLUME_PATH, DISK_UUID)]
    vm_ref = instance_vm(vc, devices)
    with pytest.raises(exception.VolumeHotplugUnsupported):
        volumes.swap(vc.session, DC, vm_ref, info(),
                     info(volume='vm-new', volume_id=NEW_ID), INSTANCE, 0)
    assert not vc.specs


def test_iscsi_swap_is_not_implemented(vc):
    with pytest.raises(NotImplementedError, match='LUN'):
        volumes.swap(vc.session, DC, attached_vm(vc), info(),
                     iscsi_info(), INSTANCE, 0)


# --- extend ------------------------------------------------------------------

def test_extend_edits_the_attached_disks_capacity(vc):
    volumes.extend(vc.session, attached_vm(vc), info(), INSTANCE,
                   3 * 1024 ** 3)
    [(moid, spec)] = vc.specs
    change = only_change(spec)
    assert (moid, change.operation, change.fileOperation) == (
        'vm-1', 'edit', None)
    assert (change.device.key, change.device.backing.fileName,
            change.device.capacityInKB, change.device.capacityInBytes) == (
        2001, VOLUME_PATH, 3 * 1024 ** 2, 3 * 1024 ** 3)


def test_extend_to_the_size_it_has_changes_nothing(vc):
    volumes.extend(vc.session, attached_vm(vc), info(), INSTANCE,
                   4096 * 1024)
    assert not vc.specs


def test_extend_on_a_running_ide_bus_is_refused(vc):
    devices = [ide(200, 0), disk(2000, 200, 0, '[ds] root.vmdk'),
               disk(2001, 200, 1, VOLUME_PATH, DISK_UUID)]
    with pytest.raises(exception.VolumeHotplugUnsupported):
        volumes.extend(vc.session, instance_vm(vc, devices), info(),
                       INSTANCE, 1024 ** 3)
    assert not vc.specs


def test_extend_of_a_volume_not_there(vc):
    with pytest.raises(nova_exception.DiskNotFound):
        volumes.extend(vc.session, instance_vm(vc, None), info(), INSTANCE,
                       1024 ** 3)


def test_iscsi_extend_rescans_the_hosts_adapter():
    vc = ISCSIVCenter([hba()])
    topology, luns = discovered()
    vc.props['host-1'].update({'config.storageDevice.scsiTopology': topology,
                               'config.storageDevice.scsiLun': luns})
    rdm = Dev.VirtualDisk(
        key=2001, controllerKey=1000, unitNumber=1, capacityInKB=4096,
        backing=Dev.VirtualDisk.RawDiskMappingVer1BackingInfo(
            fileName='[ds] i/m.vmdk', lunUuid=LUN_UUID,
            deviceName='/vmfs/devices/disks/naa.1'))
    vm_ref = iscsi_vm(vc, [scsi(), disk(2000, 1000, 0, '[ds] r.vmdk'), rdm],
                      **{KEY.replace('.', '__'): vim.option.OptionValue(
                          key='volume-%s' % VOLUME_ID, value=LUN_UUID)})
    volumes.extend(vc.session, vm_ref, iscsi_info(), INSTANCE, 1024 ** 3)
    rescan = [c for c in vc.stub.calls if c[0] == 'RescanHba']
    assert [c[2] for c in rescan] == [['vmhba65']]
    assert not vc.specs
