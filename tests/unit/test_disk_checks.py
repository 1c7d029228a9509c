"""What images the driver takes (vcdriver.images.disk.check_acceptable),
refused before anything is written, with a message naming the fix."""

import pytest
from nova import exception as nova_exception

from vcdriver.images import disk
from vcdriver.images import glance

IMAGE_ID = '5c3a3c7e-3a55-4f57-9d6b-3e2b0c7f1a11'


def image(size=512 * 2048, disk_format='vmdk', container_format='bare',
          **properties):
    return glance.Image(id=IMAGE_ID, name='cirros', size=size,
                        disk_format=disk_format,
                        container_format=container_format,
                        hash_algo='sha512', hash_value='ab' * 64,
                        properties=properties)


def refused(img):
    with pytest.raises(nova_exception.ImageUnacceptable) as err:
        disk.check_acceptable(img)
    message = str(err.value)
    assert IMAGE_ID in message
    return message


# --- accepted ---------------------------------------------------------------

@pytest.mark.parametrize('img,expected', [
    (image(), ('preallocated', 'lsiLogic')),
    (image(container_format=None), ('preallocated', 'lsiLogic')),
    (image(vmware_disktype='thin'), ('thin', 'lsiLogic')),
    (image(vmware_disktype='preallocated', vmware_adaptertype='paraVirtual'),
     ('preallocated', 'paraVirtual')),
    (image(vmware_adaptertype='lsiLogicsas'), ('preallocated', 'lsiLogicsas')),
    (image(vmware_adaptertype='busLogic'), ('preallocated', 'busLogic')),
    (image(size=512), ('preallocated', 'lsiLogic')),
])
def test_acceptable(img, expected):
    assert disk.check_acceptable(img) == expected


# --- refused ----------------------------------------------------------------

@pytest.mark.parametrize('fmt', ['qcow2', 'raw', 'iso', 'vhd', None])
def test_refuses_other_disk_formats(fmt):
    message = refused(image(disk_format=fmt))
    assert 'disk_format %s is not supported' % fmt in message
    assert 'use vmdk' in message


@pytest.mark.parametrize('container', ['ova', 'ovf', 'docker'])
def test_refuses_containers(container):
    message = refused(image(container_format=container))
    assert 'container_format %s is not supported' % container in message
    assert 'use bare' in message


@pytest.mark.parametrize('disk_type', ['sparse', 'streamOptimized',
                                       'eagerZeroedThick'])
def test_refuses_non_flat_disk_types(disk_type):
    message = refused(image(vmware_disktype=disk_type))
    assert 'vmware_disktype %s is not supported' % disk_type in message
    assert 'preallocated, thin' in message


@pytest.mark.parametrize('adapter', ['ide', 'lsilogic', 'sata', 'nvme'])
def test_refuses_unknown_adapters(adapter):
    message = refused(image(vmware_adaptertype=adapter))
    assert 'vmware_adaptertype %s is unknown' % adapter in message
    assert 'busLogic, lsiLogic, lsiLogicsas, paraVirtual' in message


@pytest.mark.parametrize('size', [0, 1, 511, 513, 1000, 512 * 2048 + 1])
def test_refuses_sizes_not_whole_sectors(size):
    message = refused(image(size=size))
    assert '512-byte sectors' in message
    assert 'this image is %d bytes' % size in message


def test_disk_format_is_checked_first():
    # Several faults: the message names the most basic one.
    message = refused(image(disk_format='qcow2', container_format='ova',
                            vmware_disktype='sparse', size=3))
    assert 'disk_format qcow2' in message
    assert 'container_format' not in message


# --- the bytes must be a flat extent ----------------------------------------

class Recorder:
    def __init__(self):
        self.chunks = []

    def write(self, chunk):
        self.chunks.append(chunk)


def test_flat_extent_writer_refuses_sparse_bytes():
    sink = Recorder()
    writer = disk._FlatExtentWriter(sink, IMAGE_ID)
    with pytest.raises(nova_exception.ImageUnacceptable) as err:
        writer(b'KDMV' + b'\0' * 508)
    assert 'sparse VMDK' in str(err.value)
    assert 'vmware_disktype=sparse' in str(err.value)
    assert sink.chunks == []


def test_flat_extent_writer_passes_flat_bytes():
    sink = Recorder()
    writer = disk._FlatExtentWriter(sink, IMAGE_ID)
    writer(b'\0' * 512)
    writer(b'KDMV later in the disk is just data')
    assert sink.chunks == [b'\0' * 512, b'KDMV later in the disk is just data']


# --- Glance records ---------------------------------------------------------

def test_image_from_glance_prefers_os_hash():
    img = glance.Image.from_glance({
        'id': IMAGE_ID, 'name': 'n', 'size': 1024, 'disk_format': 'vmdk',
        'container_format': 'bare', 'os_hash_algo': 'sha512',
        'os_hash_value': 'f' * 128, 'checksum': 'a' * 32,
        'properties': {'vmware_disktype': 'thin'}})
    assert (img.hash_algo, img.hash_value) == ('sha512', 'f' * 128)
    assert img.size == 1024
    assert img.properties == {'vmware_disktype': 'thin'}
    assert disk.check_acceptable(img) == ('thin', 'lsiLogic')


def test_image_from_glance_falls_back_to_md5_checksum():
    img = glance.Image.from_glance({
        'id': IMAGE_ID, 'size': None, 'disk_format': 'vmdk',
        'container_format': 'bare', 'checksum': 'a' * 32})
    assert (img.hash_algo, img.hash_value) == ('md5', 'a' * 32)
    assert img.size == 0
    assert img.properties == {}
    assert img.name == ''
