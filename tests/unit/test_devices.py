"""One model of a VM's devices (vcdriver.devices): the root disk's rule,
the bus and adapter type of a controller, free slots."""

import pytest
from pyVmomi import vim
from pyVmomi import vmodl

from tests.unit import fake_vim
from vcdriver import exception
from vcdriver import vm
from vcdriver.devices import Devices

Dev = vim.vm.device
PC = vmodl.query.PropertyCollector
UUID = '3f1a0c2e-0000-4000-8000-0000000000aa'
ROOT = '[nfs0] %s/%s.vmdk' % (UUID, UUID)


def scsi(key=1000, bus=0, cls=Dev.VirtualLsiLogicController):
    return cls(key=key, busNumber=bus)


def ide(key=200, bus=0):
    return Dev.VirtualIDEController(key=key, busNumber=bus)


def sata(key=15000, bus=0):
    return Dev.VirtualAHCIController(key=key, busNumber=bus)


def disk(key, controller, unit, path, mode='persistent', uuid=None):
    return Dev.VirtualDisk(
        key=key, controllerKey=controller, unitNumber=unit,
        capacityInKB=1024, backing=Dev.VirtualDisk.FlatVer2BackingInfo(
            fileName=path, diskMode=mode, uuid=uuid))


def folder(name):
    return '[nfs0] %s/%s' % (UUID, name)


def spawned(*extra):
    """A VM as spawn leaves it on SCSI: root, ephemeral and swap on
    the controller spawn added, the two IDE controllers vCenter adds."""
    return [ide(200, 0), ide(201, 1), scsi(),
            disk(2000, 1000, 0, ROOT),
            disk(2001, 1000, 1, folder('ephemeral_0.vmdk')),
            disk(2002, 1000, 2, folder('swap.vmdk'))] + list(extra)


def root_path(devices, extra_config=()):
    root = Devices(devices, extra_config).root_disk(UUID)
    return root and root.backing.fileName


# --- the root disk -----------------------------------------------------------

def test_the_root_is_the_disk_named_after_the_instance():
    assert root_path(spawned()) == ROOT
    # The name wins over the slot order.
    devices = spawned(disk(3000, 200, 0, '[nfs0] other/other.vmdk'))
    assert root_path(devices) == ROOT


def test_a_root_attached_again_keeps_being_root():
    # Resize's grown copy (or a swap) comes back in its slot with a new,
    # higher key: the first disk by key is the ephemeral one then.
    devices = spawned()
    devices[3].key = 2009
    assert root_path(devices) == ROOT


def test_after_rescue_the_rescue_disk_is_not_root():
    rescue = disk(2003, 1000, 3, folder('%s-rescue.vmdk' % UUID))
    assert root_path(spawned(rescue)) == ROOT
    # Nor when the root lost its name (a snapshot's delta) and the rescue
    # disk sits in an earlier slot.
    devices = [ide(), scsi(),
               disk(2001, 1000, 1, folder('%s-000001.vmdk' % UUID)),
               disk(2003, 1000, 0, folder('%s-rescue.vmdk' % UUID))]
    assert root_path(devices) == folder('%s-000001.vmdk' % UUID)


def test_volumes_are_not_root():
    volume = '[nfs0] volume-1/volume-1.vmdk'
    renamed = folder('%s-000001.vmdk' % UUID)
    # vcdriver attaches volumes independent.
    devices = [ide(), scsi(), disk(2001, 1000, 1, renamed),
               disk(2004, 1000, 0, volume, mode='independent_persistent')]
    assert root_path(devices) == renamed
    # An in-tree attach leaves the disk persistent, its uuid recorded
    # under the volume's extraConfig key.
    devices = [ide(), scsi(), disk(2001, 1000, 0, renamed),
               disk(3000, 200, 0, volume, uuid='6000C29-vol')]
    recorded = [vim.option.OptionValue(key='volume-1', value='6000C29-vol')]
    assert root_path(devices, recorded) == renamed
    # An iSCSI LUN, mapped raw.
    rdm = Dev.VirtualDisk(
        key=3000, controllerKey=200, unitNumber=0,
        backing=Dev.VirtualDisk.RawDiskMappingVer1BackingInfo(
            fileName='[nfs0] x/rdm.vmdk', lunUuid='lun-1',
            diskMode='persistent'))
    devices[3] = rdm
    assert root_path(devices) == renamed
    # Volumes only (an ISO boot without root disk): no root at all.
    assert root_path([ide(), scsi(), devices[3]]) is None
    assert root_path([ide(), scsi()]) is None


def test_ephemeral_and_swap_disks_are_never_root():
    # An ISO boot with a 0 GB root disk: ephemeral and swap only, in the
    # slots a root disk would have.
    devices = [ide(), scsi(),
               disk(2001, 1000, 0, folder('ephemeral_0.vmdk')),
               disk(2002, 1000, 1, folder('swap.vmdk'))]
    assert root_path(devices) is None
    # Ahead of a renamed root in the boot order, still not root.
    devices.append(disk(2003, 200, 0, folder('ephemeral_1.vmdk')))
    devices.append(disk(2000, 1000, 2, '[nfs0] %s/imported.vmdk' % UUID))
    assert root_path(devices) == '[nfs0] %s/imported.vmdk' % UUID


def test_without_the_name_the_first_disk_of_the_boot_controller():
    # Slot order, not key nor device order: unit 0 of the boot controller.
    devices = [ide(), scsi(),
               disk(2000, 1000, 1, '[nfs0] vm/vm_1.vmdk'),
               disk(2001, 1000, 0, '[nfs0] vm/vm.vmdk')]
    assert root_path(devices) == '[nfs0] vm/vm.vmdk'
    # The boot controller is the one of lowest key carrying a disk: IDE
    # (200) before SCSI (1000) before SATA (15000).
    devices += [sata(), disk(16000, 15000, 0, '[nfs0] vm/sata.vmdk'),
                disk(3000, 200, 1, '[nfs0] vm/ide.vmdk')]
    assert root_path(devices) == '[nfs0] vm/ide.vmdk'
    assert root_path(devices[:4] + devices[4:6]) == '[nfs0] vm/vm.vmdk'


# --- buses and adapter types -------------------------------------------------

@pytest.mark.parametrize('controller,bus,adapter', [
    (scsi(cls=Dev.VirtualLsiLogicController), 'scsi', 'lsiLogic'),
    (scsi(cls=Dev.VirtualLsiLogicSASController), 'scsi', 'lsiLogicsas'),
    (scsi(cls=Dev.VirtualBusLogicController), 'scsi', 'busLogic'),
    (scsi(cls=Dev.ParaVirtualSCSIController), 'scsi', 'paraVirtual'),
    (sata(key=1000), 'sata', None),
    (ide(key=1000), 'ide', 'ide'),
    (Dev.VirtualNVMEController(key=1000, busNumber=0), None, None),
    (None, None, None),
])
def test_bus_and_adapter_type_of_a_disk(controller, bus, adapter):
    d = disk(2000, 1000, 0, ROOT)
    found = Devices([c for c in (controller, d) if c is not None])
    assert (found.bus(d), found.adapter_type(d)) == (bus, adapter)
    assert found.controller(d) is controller


def test_the_instance_bus_is_its_root_disks():
    # A controller of another bus (an in-tree volume's) does not count.
    devices = [ide(), scsi(), disk(3000, 200, 0, ROOT),
               disk(2000, 1000, 0, '[nfs0] v/v.vmdk',
                    mode='independent_persistent')]
    assert Devices(devices).instance_bus(UUID) == 'ide'
    # With volumes only, the bus spawn added a controller for.
    assert Devices([ide()] + devices[1:2] + devices[3:]).instance_bus(
        UUID) == 'scsi'


# --- free slots --------------------------------------------------------------

def test_scsi_unit_7_is_the_controllers():
    found = Devices([scsi()])
    assert found.free_slots('scsi') == [
        (1000, u) for u in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14,
                            15)]


def test_slots_in_use_are_not_free_and_controllers_go_by_bus_number():
    # Listed first, the second controller still comes second.
    devices = [scsi(1001, 1), scsi(1000, 0), ide()] + [
        disk(2000 + u, 1000, u, 'd%d' % u) for u in range(15) if u != 7]
    # IDE 200:0 is taken by a CD-ROM, not a SCSI slot.
    devices.append(Dev.VirtualCdrom(key=3002, controllerKey=200,
                                    unitNumber=0))
    found = Devices(devices)
    assert found.free_slots('scsi')[:2] == [(1000, 15), (1001, 0)]
    assert found.take_free_slot('scsi') == (1000, 15)
    assert found.take_free_slot('scsi') == (1001, 0)
    assert found.free_slots('scsi')[0] == (1001, 1)
    assert found.free_slots('ide') == [(200, 1)]


def test_ide_has_two_controllers_of_two_units():
    found = Devices([ide(201, 1), ide(200, 0)])
    assert found.free_slots('ide') == [(200, 0), (200, 1), (201, 0),
                                       (201, 1)]
    for _ in range(4):
        found.take_free_slot('ide')
    with pytest.raises(exception.NoFreeDiskSlot):
        found.take_free_slot('ide')


def test_sata_has_30_units_per_controller():
    found = Devices([sata(15000, 0), sata(15001, 1)])
    free = found.free_slots('sata')
    assert free[:30] == [(15000, u) for u in range(30)]
    assert free[30:] == [(15001, u) for u in range(30)]


def test_a_bus_without_controller_has_no_slot():
    found = Devices([ide()])
    assert found.free_slots('scsi') == []
    with pytest.raises(exception.NoFreeDiskSlot):
        found.take_free_slot('scsi')


# --- one read, and the slots a reconfigure takes -----------------------------

class _VCenter:
    def __init__(self, devices):
        self.devices = devices
        self.reads = []
        self.specs = []
        self.stub = fake_vim.FakeStub(RetrievePropertiesEx=self._retrieve,
                                      ReconfigVM_Task=self._reconfigure)
        self.session = fake_vim.session(self.stub)
        self.session.wait_for_task = lambda task: None

    def _retrieve(self, mo, specs, options):
        (spec,) = specs
        self.reads.append(sorted(spec.propSet[0].pathSet))
        obj = spec.objectSet[0].obj
        return PC.RetrieveResult(objects=[fake_vim.object_content(
            obj, config__hardware__device=Dev.VirtualDevice.Array(
                self.devices))])

    def _reconfigure(self, mo, spec):
        self.specs.append(spec)
        return vim.Task('task-1', self.stub)


@pytest.mark.parametrize('bus,devices,slots', [
    # The CD-ROM after the disks on IDE; on IDE of its own otherwise.
    ('ide', [ide(200, 0), ide(201, 1)], [(200, 0), (200, 1), (201, 0)]),
    ('scsi', [ide(200, 0), ide(201, 1), scsi()],
     [(1000, 0), (1000, 1), (200, 0)]),
])
def test_attach_disks_reads_once_and_takes_a_slot_each(bus, devices, slots):
    vc = _VCenter(devices)
    vm_ref = vim.VirtualMachine('vm-1', vc.stub)
    disks = [vm.Disk(path='[ds] u/%s.vmdk' % n, size_bytes=1 << 20)
             for n in ('root', 'eph')]
    vm.attach_disks(vc.session, vm_ref, bus, disks, iso_path='[ds] u/c.iso')
    assert vc.reads == [['config.extraConfig', 'config.hardware.device']]
    (spec,) = vc.specs
    assert [(c.device.controllerKey, c.device.unitNumber)
            for c in spec.deviceChange] == slots
