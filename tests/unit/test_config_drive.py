"""Config drive and rescue building blocks that need no vCenter."""

import pytest
from nova import exception as nova_exception
from pyVmomi import vim

from vcdriver import config_drive
from vcdriver import vm_spec


def test_only_iso9660_config_drives(flags):
    flags.config(config_drive_format='vfat')
    with pytest.raises(nova_exception.ConfigDriveUnsupportedFormat):
        config_drive.attach(None, None, None, None, None)


def test_boot_order_and_removal_specs():
    order = vm_spec.boot_order([2001, 2000])
    assert [o.deviceKey for o in order.bootOrder] == [2001, 2000]
    assert vm_spec.boot_order([]).bootOrder == []
    disk = vim.vm.device.VirtualDisk(key=2001)
    change = vm_spec.remove(disk, destroy_file=True)
    assert change.operation == 'remove'
    assert change.fileOperation == 'destroy'
    assert vm_spec.remove(disk).fileOperation is None
