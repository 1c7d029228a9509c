"""Flavor extra specs and image properties (vcdriver.extra_specs), and
the ConfigSpecs vm_spec builds from them."""

import types

import pytest
from pyVmomi import vim

from vcdriver import exception
from vcdriver import extra_specs
from vcdriver import vm_spec


def refused(specs=None, image=None, memory_mb=512):
    with pytest.raises(exception.InvalidSpec) as e:
        extra_specs.parse(specs, image, memory_mb)
    return e.value.format_message()


def test_no_specs_are_vsphere_defaults():
    parsed = extra_specs.parse({}, {}, 512)
    assert parsed == extra_specs.ExtraSpecs()
    assert parsed.cpu == extra_specs.Allocation(
        limit=None, reservation=0, shares_level='normal', shares=0)
    # A new VM's devices need no reconfigure.
    assert not parsed.tunes_devices


@pytest.mark.parametrize('specs, image', [
    ({'quota:disk_io_limit': '300'}, {}),
    ({'quota:vif_shares_level': 'high'}, {}),
    ({'hw_video:ram_max_mb': '16'}, {'hw_video_ram': '16'})])
def test_per_device_specs_tune_devices(specs, image):
    assert extra_specs.parse(specs, image, 512).tunes_devices


@pytest.mark.parametrize('resource', extra_specs.RESOURCES)
def test_quota_specs_of_each_resource(resource):
    key = 'quota:%s_' % resource
    parsed = extra_specs.parse({
        key + 'limit': '400', key + 'reservation': '100',
        key + 'shares_level': 'custom', key + 'shares_share': '1500'},
        {}, 512)
    assert getattr(parsed, resource) == extra_specs.Allocation(
        limit=400, reservation=100, shares_level='custom', shares=1500)


def test_limit_zero_is_unlimited_as_nova_documents():
    assert extra_specs.parse({'quota:cpu_limit': '0'}, {}, 512).cpu.limit \
        is None


@pytest.mark.parametrize('specs,message', [
    ({'quota:cpu_shares_level': 'loud'},
     'quota:cpu_shares_level=loud: not a share level'),
    ({'quota:vif_shares_level': 'custom'},
     'quota:vif_shares_level=custom: needs the number of shares in '
     'quota:vif_shares_share'),
    ({'quota:disk_io_shares_level': 'high',
      'quota:disk_io_shares_share': '10'},
     'quota:disk_io_shares_share=10: counts only with '
     'quota:disk_io_shares_level=custom (it is high)'),
    ({'quota:memory_shares_share': '10'},
     'quota:memory_shares_share=10: counts only with '
     'quota:memory_shares_level=custom (it is unset)'),
    ({'quota:cpu_limit': 'fast'}, 'quota:cpu_limit=fast: not an integer'),
    ({'quota:cpu_reservation': '-1'}, 'quota:cpu_reservation=-1: below 0'),
    ({'quota:cpu_limit': '100', 'quota:cpu_reservation': '200'},
     'quota:cpu_reservation=200: above quota:cpu_limit=100'),
    ({'quota:memory_reservation': '1024'},
     "quota:memory_reservation=1024: above the flavor's memory_mb=512"),
    ({'vmware:hw_version': '13'},
     'vmware:hw_version=13: not a vSphere hardware version'),
])
def test_invalid_specs_are_refused_by_name_and_value(specs, message):
    assert message in refused(specs)


def test_memory_must_be_a_multiple_of_4_mb():
    assert 'memory_mb=510: vSphere needs a multiple of 4 MB' in refused(
        memory_mb=510)


def test_video_ram_within_the_flavor_maximum():
    parsed = extra_specs.parse({'hw_video:ram_max_mb': '64'},
                               {'hw_video_ram': '32'}, 512)
    assert parsed.video_ram_kb == 32 * 1024
    # The flavor's maximum alone asks for nothing.
    assert extra_specs.parse({'hw_video:ram_max_mb': '64'}, {},
                             512).video_ram_kb is None
    assert "hw_video_ram=128: above the flavor's hw_video:ram_max_mb=64" in \
        refused({'hw_video:ram_max_mb': '64'}, {'hw_video_ram': '128'})
    assert "hw_video_ram=8: above the flavor's hw_video:ram_max_mb=0" in \
        refused({}, {'hw_video_ram': 8})


@pytest.mark.parametrize('image,firmware,secure_boot', [
    ({}, None, None),
    ({'hw_firmware_type': 'bios'}, 'bios', None),
    ({'hw_firmware_type': 'uefi'}, 'efi', None),
    ({'hw_firmware_type': 'uefi', 'os_secure_boot': 'required'}, 'efi',
     True),
    ({'hw_firmware_type': 'uefi', 'os_secure_boot': 'optional'}, 'efi',
     True),
    ({'hw_firmware_type': 'uefi', 'os_secure_boot': 'disabled'}, 'efi',
     False),
    ({'hw_firmware_type': 'bios', 'os_secure_boot': 'optional'}, 'bios',
     None),
])
def test_firmware_and_secure_boot(image, firmware, secure_boot):
    parsed = extra_specs.parse({}, image, 512)
    assert (parsed.firmware, parsed.secure_boot) == (firmware, secure_boot)


def test_invalid_firmware_and_secure_boot_are_refused():
    assert 'hw_firmware_type=coreboot: not a firmware type' in refused(
        image={'hw_firmware_type': 'coreboot'})
    assert 'os_secure_boot=maybe: not a secure boot policy' in refused(
        image={'hw_firmware_type': 'uefi', 'os_secure_boot': 'maybe'})
    assert ('os_secure_boot=required: secure boot needs '
            'hw_firmware_type=uefi (it is bios)') in refused(
        image={'hw_firmware_type': 'bios', 'os_secure_boot': 'required'})


def test_guest_id_hw_version_and_cores():
    parsed = extra_specs.parse({'vmware:hw_version': 'vmx-13'},
                               {'vmware_ostype': 'ubuntu64Guest'}, 512, 2)
    assert (parsed.hw_version, parsed.guest_id, parsed.cores_per_socket) == (
        'vmx-13', 'ubuntu64Guest', 2)


def test_the_cluster_must_run_the_hardware_version():
    specs = extra_specs.parse({'vmware:hw_version': 'vmx-99'}, {}, 512)
    with pytest.raises(exception.InvalidSpec) as e:
        extra_specs.check_cluster(specs, 1, [2000], ['vmx-9', 'vmx-21',
                                                     'vmx-13'])
    assert ('vmware:hw_version=vmx-99: no host of the cluster runs it (they '
            'run up to vmx-21)') in e.value.format_message()
    extra_specs.check_cluster(
        extra_specs.parse({'vmware:hw_version': 'vmx-13'}, {}, 512), 1,
        [], ['vmx-13'])


def test_cpu_reservation_within_the_flavor_on_the_fastest_host():
    specs = extra_specs.parse({'quota:cpu_reservation': '5000'}, {}, 512)
    extra_specs.check_cluster(specs, 2, [1000, 2500], [])
    with pytest.raises(exception.InvalidSpec) as e:
        extra_specs.check_cluster(specs, 2, [1000, 2400], [])
    assert ("quota:cpu_reservation=5000: above the flavor's 2 vCPU at 2400 "
            "MHz") in e.value.format_message()


def test_hardware_version_goes_up_only():
    specs = extra_specs.parse({'vmware:hw_version': 'vmx-13'}, {}, 512)
    extra_specs.check_upgrade(specs, 'vmx-10')
    extra_specs.check_upgrade(specs, 'vmx-13')
    extra_specs.check_upgrade(extra_specs.ExtraSpecs(), 'vmx-21')
    with pytest.raises(exception.InvalidSpec) as e:
        extra_specs.check_upgrade(specs, 'vmx-14')
    assert "below the VM's hardware version vmx-14" in \
        e.value.format_message()


# --- vm_spec ---------------------------------------------------------------

def test_tune_sets_the_vm_wide_specs():
    specs = extra_specs.parse(
        {'quota:cpu_limit': '2000', 'quota:memory_shares_level': 'high'},
        {'hw_firmware_type': 'uefi', 'os_secure_boot': 'required'}, 512, 2)
    spec = vm_spec.tune(vim.vm.ConfigSpec(), specs)
    assert (spec.cpuAllocation.limit, spec.cpuAllocation.reservation,
            spec.cpuAllocation.shares.level) == (2000, 0, 'normal')
    assert (spec.memoryAllocation.limit,
            spec.memoryAllocation.shares.level) == (-1, 'high')
    assert spec.numCoresPerSocket == 2
    assert spec.firmware == 'efi'
    assert spec.bootOptions.efiSecureBootEnabled is True
    # Without specs: vSphere's defaults, so a resize puts them back.
    spec = vm_spec.tune(vim.vm.ConfigSpec(), extra_specs.ExtraSpecs())
    assert (spec.cpuAllocation.limit, spec.cpuAllocation.reservation,
            spec.cpuAllocation.shares.level) == (-1, 0, 'normal')
    assert spec.firmware is None and spec.bootOptions is None


def test_tune_devices_edits_disks_nics_and_video_card():
    root = vim.vm.device.VirtualDisk(key=2000)
    volume = vim.vm.device.VirtualDisk(key=2001)
    nic = vim.vm.device.VirtualVmxnet3(key=4000)
    video = vim.vm.device.VirtualVideoCard(key=500, videoRamSizeInKB=4096)
    found = types.SimpleNamespace(
        disks=[root, volume], devices=[root, volume, nic, video],
        is_volume=lambda d: d is volume)
    specs = extra_specs.parse(
        {'quota:disk_io_limit': '300', 'quota:vif_reservation': '10',
         'hw_video:ram_max_mb': '16'}, {'hw_video_ram': '16'}, 512)
    changes = vm_spec.tune_devices(found, specs)
    assert [(c.operation, c.device.key) for c in changes] == [
        ('edit', 2000), ('edit', 4000), ('edit', 500)]
    assert root.storageIOAllocation.limit == 300
    assert volume.storageIOAllocation is None
    assert (nic.resourceAllocation.reservation,
            nic.resourceAllocation.share.level) == (10, 'normal')
    assert video.videoRamSizeInKB == 16 * 1024
