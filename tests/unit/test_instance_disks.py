"""Which disks an instance gets (vcdriver.instance_disks) and which images
vCenter copies itself (vcdriver.images.datastore_copy)."""

import pytest
from nova import objects

from vcdriver import instance_disks
from vcdriver.images import datastore_copy
from vcdriver.images import disk
from vcdriver.images import glance

objects.register_all()
GiB = 1024 ** 3
MiB = 1024 ** 2


def flavor(ephemeral_gb=0, swap=0):
    return objects.Flavor(root_gb=1, ephemeral_gb=ephemeral_gb, swap=swap)


# --- ephemeral and swap -----------------------------------------------------

def test_no_extra_disks():
    assert instance_disks.extra_disk_sizes(flavor(), None) == []


def test_extra_disks_from_the_flavor():
    assert instance_disks.extra_disk_sizes(flavor(2, 512), {}) == [
        ('ephemeral_0.vmdk', 2 * GiB), ('swap.vmdk', 512 * MiB)]


def test_block_device_info_wins_over_the_flavor():
    info = {'ephemerals': [{'size': 1, 'device_name': '/dev/sdb'},
                           {'size': 3, 'device_name': '/dev/sdc'}],
            'swap': {'swap_size': 128, 'device_name': '/dev/sdd'}}
    assert instance_disks.extra_disk_sizes(flavor(4, 512), info) == [
        ('ephemeral_0.vmdk', GiB), ('ephemeral_1.vmdk', 3 * GiB),
        ('swap.vmdk', 128 * MiB)]


def test_unusable_swap_falls_back_to_the_flavor():
    info = {'swap': {'swap_size': 0, 'device_name': None}}
    assert instance_disks.extra_disk_sizes(flavor(0, 64), info) == [
        ('swap.vmdk', 64 * MiB)]


# --- vsphere:// locations ---------------------------------------------------

def image(disk_format='raw', container_format='bare', size=4 * MiB,
          locations=(), **properties):
    return glance.Image(id='i', name='n', size=size, disk_format=disk_format,
                        container_format=container_format, hash_algo='sha512',
                        hash_value='0' * 128, properties=properties,
                        locations=tuple(locations))


@pytest.mark.parametrize('img', [
    image(), image('vmdk'), image('vmdk', vmware_disktype='thin'),
    image('iso', size=2048 * 3 + 1)])
def test_copyable_as_they_are(img):
    assert datastore_copy.why_not_copyable(
        img, disk.check_acceptable(img)) is None


@pytest.mark.parametrize('img,reason', [
    (image('qcow2'), 'qcow2 must be converted'),
    (image('vmdk', vmware_disktype='sparse'), 'sparse VMDK'),
    (image('vmdk', vmware_disktype='streamOptimized'), 'sparse VMDK'),
    (image('vmdk', 'ova'), 'OVA must be unpacked'),
    (image(size=4 * MiB + 1), 'not whole sectors')])
def test_not_copyable(img, reason):
    assert reason in datastore_copy.why_not_copyable(
        img, disk.check_acceptable(img))


class _Session:
    host = 'vc.example.org'

    @property
    def content(self):
        raise AssertionError('no vCenter call for a location not ours')


@pytest.mark.parametrize('locations', [
    (), ('file:///var/lib/glance/images/i',),
    ('vsphere://other-vc.example.org/folder/g/i?dcPath=DC0&dsName=ds',),
    ('https://vc.example.org/folder/g/i?dcPath=DC0&dsName=ds',)])
def test_locations_not_on_this_vcenter_are_ignored(locations):
    assert datastore_copy.find_source(
        _Session(), image(locations=locations)) is None
