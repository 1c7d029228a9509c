"""ConfigSpec builders (vcdriver.vm_spec): names, CreateVM spec, devices."""

import pytest
from nova import objects
from pyVmomi import vim

from vcdriver import extra_specs
from vcdriver import vm_spec

objects.register_all()

UUID = '0b6f0a3c-6a1b-4d0c-8e55-2b7b3f1a9f10'
SUFFIX = ' (%s)' % UUID


def instance(display_name='web-1', uuid=UUID):
    return objects.Instance(uuid=uuid, display_name=display_name)


def flavor(vcpus=2, memory_mb=2048):
    return objects.Flavor(vcpus=vcpus, memory_mb=memory_mb, root_gb=10)


# --- vm_name ----------------------------------------------------------------

def test_vm_name_is_display_name_and_uuid():
    assert vm_spec.vm_name(instance('web-1')) == 'web-1' + SUFFIX


@pytest.mark.parametrize('display_name', [None, ''])
def test_vm_name_without_display_name_is_the_uuid(display_name):
    assert vm_spec.vm_name(instance(display_name)) == UUID


@pytest.mark.parametrize('length', [41, 42, 80, 200])
def test_vm_name_truncates_the_display_name_to_80_chars(length):
    display = ''.join(chr(ord('a') + i % 26) for i in range(length))
    name = vm_spec.vm_name(instance(display))
    assert len(name) <= 80
    # The uuid is never cut: the whole suffix survives.
    assert name.endswith(SUFFIX)
    assert name == display[:80 - len(SUFFIX)] + SUFFIX


def test_vm_name_at_the_limit_is_not_cut():
    display = 'x' * (80 - len(SUFFIX))
    name = vm_spec.vm_name(instance(display))
    assert name == display + SUFFIX
    assert len(name) == 80


@pytest.mark.parametrize('display', [
    'Ünïcødé-сервер-服务器',
    '🚀 rocket',
    'ü' * 100,
])
def test_vm_name_keeps_unicode(display):
    name = vm_spec.vm_name(instance(display))
    assert name == display[:80 - len(SUFFIX)] + SUFFIX
    assert len(name) <= 80  # characters, as vCenter counts


# --- create_spec ------------------------------------------------------------

def test_create_spec_fields():
    devices = [vm_spec.scsi_controller('lsiLogic')]
    spec = vm_spec.create_spec(instance('db'), flavor(4, 8192), 'nfs0',
                               devices, extra_specs.ExtraSpecs())
    assert isinstance(spec, vim.vm.ConfigSpec)
    assert spec.name == 'db' + SUFFIX
    assert spec.instanceUuid == UUID
    assert spec.numCPUs == 4
    assert spec.memoryMB == 8192
    assert spec.files.vmPathName == '[nfs0] %s/' % UUID
    assert spec.guestId == 'otherGuest'
    assert [(o.key, o.value) for o in spec.extraConfig] == \
        [('nvp.vm-uuid', UUID)]
    assert list(spec.deviceChange) == devices


def test_create_spec_guest_id():
    spec = vm_spec.create_spec(instance(), flavor(), 'ds', [],
                               extra_specs.ExtraSpecs(
                                   guest_id='ubuntu64Guest'))
    assert spec.guestId == 'ubuntu64Guest'


def test_create_spec_datastore_name_with_spaces():
    spec = vm_spec.create_spec(instance(), flavor(), 'my datastore', [],
                               extra_specs.ExtraSpecs())
    assert spec.files.vmPathName == '[my datastore] %s/' % UUID


# --- devices ----------------------------------------------------------------

@pytest.mark.parametrize('adapter,cls', [
    ('lsiLogic', vim.vm.device.VirtualLsiLogicController),
    ('lsiLogicsas', vim.vm.device.VirtualLsiLogicSASController),
    ('busLogic', vim.vm.device.VirtualBusLogicController),
    ('paraVirtual', vim.vm.device.ParaVirtualSCSIController),
])
def test_scsi_controller(adapter, cls):
    change = vm_spec.scsi_controller(adapter)
    assert change.operation == 'add'
    assert not change.fileOperation
    assert type(change.device) is cls
    assert change.device.key == -100
    assert change.device.busNumber == 0
    assert change.device.sharedBus == 'noSharing'


def test_scsi_controller_key():
    assert vm_spec.scsi_controller('lsiLogic', key=-7).device.key == -7


@pytest.mark.parametrize('adapter', ['ide', 'LSILOGIC', '', None, 'sata'])
def test_unknown_adapter_names_the_known_ones(adapter):
    with pytest.raises(ValueError) as err:
        vm_spec.scsi_controller(adapter)
    message = str(err.value)
    assert repr(adapter) in message
    for known in ('busLogic', 'lsiLogic', 'lsiLogicsas', 'paraVirtual'):
        assert known in message


def test_existing_disk_attaches_without_creating():
    change = vm_spec.disk(-101, -100, 1, '[nfs0] u/u.vmdk',
                          10 * 1024 ** 3 + 1023)
    assert change.operation == 'add'
    assert not change.fileOperation  # attach, vCenter must not create it
    disk = change.device
    assert isinstance(disk, vim.vm.device.VirtualDisk)
    assert disk.controllerKey == -100
    assert disk.unitNumber == 1
    # Rounded up, as CreateVirtualDisk_Task was given it.
    assert disk.capacityInKB == 10 * 1024 ** 2 + 1
    assert disk.backing.fileName == '[nfs0] u/u.vmdk'
    assert disk.backing.diskMode == 'persistent'


def test_existing_disk_takes_any_path_object():
    class DsPath:
        def __str__(self):
            return '[ds] a/b.vmdk'
    change = vm_spec.disk(-101, -100, 0, DsPath(), 512)
    assert change.device.backing.fileName == '[ds] a/b.vmdk'
