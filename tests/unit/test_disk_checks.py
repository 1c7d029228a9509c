"""What images the driver takes (vcdriver.images.disk.check_acceptable),
refused before anything is written, with a message naming the fix."""

import pytest
from nova import exception as nova_exception

from vcdriver.images import disk
from vcdriver.images import glance
from vcdriver.images import pipeline

IMAGE_ID = '5c3a3c7e-3a55-4f57-9d6b-3e2b0c7f1a11'


def image(size=512 * 2048, disk_format='vmdk', container_format='bare',
          **properties):
    return glance.Image(id=IMAGE_ID, name='cirros', size=size,
                        disk_format=disk_format,
                        container_format=container_format,
                        hash_algo='sha512', hash_value='ab' * 64,
                        properties=properties)


def kinds(plan):
    return plan.disk_type, plan.adapter


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
    assert kinds(disk.check_acceptable(img)) == expected


# --- refused ----------------------------------------------------------------

@pytest.mark.parametrize('fmt', ['vhd', 'ami', None])
def test_refuses_other_disk_formats(fmt):
    message = refused(image(disk_format=fmt))
    assert 'disk_format %s is not supported' % fmt in message
    assert 'use one of vmdk, qcow2, raw, iso' in message


@pytest.mark.parametrize('fmt,container,disk_type', [
    ('qcow2', 'bare', None), ('raw', 'bare', None), ('vmdk', 'ova', None),
    ('vmdk', 'bare', 'sparse'), ('vmdk', 'bare', 'streamOptimized'),
    ('vmdk', 'bare', 'eagerZeroedThick')])
def test_accepts_what_streams_convert(fmt, container, disk_type):
    props = {'vmware_disktype': disk_type} if disk_type else {}
    img = image(disk_format=fmt, container_format=container, **props)
    assert kinds(disk.check_acceptable(img)) == ('thin', 'lsiLogic')


@pytest.mark.parametrize('container', ['ovf', 'docker', 'aki'])
def test_refuses_containers(container):
    message = refused(image(container_format=container))
    assert 'container_format %s is not supported' % container in message
    assert 'use bare or ova' in message


@pytest.mark.parametrize('disk_type', ['seSparse', 'flat', 'delta'])
def test_refuses_unknown_disk_types(disk_type):
    message = refused(image(vmware_disktype=disk_type))
    assert 'vmware_disktype %s is not supported' % disk_type in message
    assert 'preallocated, thin' in message


@pytest.mark.parametrize('adapter', ['lsilogic', 'sata', 'nvme'])
def test_refuses_unknown_adapters(adapter):
    message = refused(image(vmware_adaptertype=adapter))
    assert 'vmware_adaptertype %s is unknown' % adapter in message
    assert 'busLogic, lsiLogic, lsiLogicsas, paraVirtual, ide' in message


def test_refuses_empty_images():
    assert 'no bytes' in refused(image(size=0))


def test_disk_format_is_checked_first():
    # Several faults: the message names the most basic one.
    message = refused(image(disk_format='vhd', container_format='ovf',
                            vmware_disktype='delta', size=0))
    assert 'disk_format vhd' in message
    assert 'container_format' not in message


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
    assert kinds(disk.check_acceptable(img)) == ('thin', 'lsiLogic')


def test_image_from_glance_falls_back_to_md5_checksum():
    img = glance.Image.from_glance({
        'id': IMAGE_ID, 'size': None, 'disk_format': 'vmdk',
        'container_format': 'bare', 'checksum': 'a' * 32})
    assert (img.hash_algo, img.hash_value) == ('md5', 'a' * 32)
    assert img.size == 0
    assert img.properties == {}
    assert img.name == ''


# --- buses, ISO, linked clones, hypervisor type ------------------------------

@pytest.mark.parametrize('props,bus,adapter', [
    ({}, 'scsi', 'lsiLogic'),
    ({'hw_disk_bus': 'scsi', 'vmware_adaptertype': 'paraVirtual'},
     'scsi', 'paraVirtual'),
    ({'hw_disk_bus': 'ide'}, 'ide', 'ide'),
    ({'vmware_adaptertype': 'ide'}, 'ide', 'ide'),
    ({'hw_disk_bus': 'sata'}, 'sata', 'lsiLogic'),
])
def test_disk_bus(props, bus, adapter):
    plan = disk.check_acceptable(image(**props))
    assert (plan.bus, plan.adapter) == (bus, adapter)


@pytest.mark.parametrize('bus', ['virtio', 'usb', 'xen', 'fdc'])
def test_refuses_buses_vcenter_lacks(bus):
    message = refused(image(hw_disk_bus=bus))
    assert 'hw_disk_bus %s is not supported on vCenter' % bus in message
    assert 'scsi, ide, sata' in message


@pytest.mark.parametrize('bus,adapter', [
    ('ide', 'paraVirtual'), ('scsi', 'ide'), ('sata', 'lsiLogic'),
    ('sata', 'ide')])
def test_refuses_a_bus_its_adapter_contradicts(bus, adapter):
    message = refused(image(hw_disk_bus=bus, vmware_adaptertype=adapter))
    assert 'vmware_adaptertype %s contradicts hw_disk_bus %s' % (
        adapter, bus) in message


def test_iso_boots_from_a_cdrom():
    plan = disk.check_acceptable(image(disk_format='iso'))
    assert plan.iso and not plan.linked_clone


def test_iso_in_an_ova_is_refused():
    message = refused(image(disk_format='iso', container_format='ova'))
    assert 'container_format ova is not supported; use bare' in message


@pytest.mark.parametrize('hv_type', ['qemu', 'kvm', 'xen', 'hyperv'])
def test_refuses_images_for_other_hypervisors(hv_type):
    message = refused(image(img_hv_type=hv_type))
    assert 'img_hv_type is %s' % hv_type in message


def test_accepts_images_for_vmware():
    assert disk.check_acceptable(image(img_hv_type='vmware'))


@pytest.mark.parametrize('model', ['e1000', 'e1000e', 'vmxnet3', 'vmxnet',
                                   'pcnet'])
def test_vif_models(model):
    assert disk.check_acceptable(image(hw_vif_model=model)).vif_model == model


@pytest.mark.parametrize('model', ['virtio', 'rtl8139', 'ne2k_pci'])
def test_refuses_vif_models_vcenter_lacks(model):
    assert 'hw_vif_model %s is not supported' % model in refused(
        image(hw_vif_model=model))


@pytest.mark.parametrize('conf_value,prop,linked', [
    (True, None, True), (False, None, False),
    (True, 'false', False), (False, 'true', True), (True, 'no', False)])
def test_linked_clone_from_config_or_image(flags, conf_value, prop, linked):
    flags.config(use_linked_clone=conf_value, group='vmware')
    props = {'vmware_linked_clone': prop} if prop else {}
    assert disk.check_acceptable(image(**props)).linked_clone is linked


# --- room on the datastore (pipeline, before writing) ---------------

def _with_datastore(monkeypatch, free):
    import types

    from vcdriver import capacity
    ds = capacity.Datastore(ref=None, name='nfs0', type='NFS',
                            accessible=True, maintenance_mode='normal',
                            capacity=2 * free, free_space=free)
    monkeypatch.setattr(pipeline.cluster_mod, 'read_state',
                        lambda session, clusters: [
                            types.SimpleNamespace(datastores=[ds])])


@pytest.mark.parametrize('thin', [True, False])
def test_refuses_a_virtual_size_the_datastore_cannot_hold(monkeypatch,
                                                          thin):
    _with_datastore(monkeypatch, free=10 * 1024 ** 3)
    with pytest.raises(nova_exception.ImageUnacceptable) as err:
        pipeline._check_room(None, None, image(), 'nfs0', 1 << 60, thin=thin)
    message = str(err.value)
    assert IMAGE_ID in message
    assert 'virtual size (%d bytes)' % (1 << 60) in message
    assert 'datastore nfs0' in message


def test_takes_a_virtual_size_that_fits(monkeypatch):
    _with_datastore(monkeypatch, free=10 * 1024 ** 3)
    for thin in (True, False):
        pipeline._check_room(None, None, image(), 'nfs0', 10 * 1024 ** 3,
                         thin=thin)


def test_thin_disk_needs_room_for_its_data_only(monkeypatch):
    # 15 GiB virtual on 10 GiB free (20 GiB in all): thin takes it, a
    # flat extent does not; Glance's bytes must fit either way.
    _with_datastore(monkeypatch, free=10 * 1024 ** 3)
    pipeline._check_room(None, None, image(), 'nfs0', 15 * 1024 ** 3,
                     thin=True)
    with pytest.raises(nova_exception.ImageUnacceptable, match='has free'):
        pipeline._check_room(None, None, image(), 'nfs0', 15 * 1024 ** 3,
                         thin=False)
    with pytest.raises(nova_exception.ImageUnacceptable) as err:
        pipeline._check_room(None, None, image(size=11 * 1024 ** 3), 'nfs0',
                         15 * 1024 ** 3, thin=True)
    assert 'its %d bytes are more than datastore nfs0 has free' % (
        11 * 1024 ** 3) in str(err.value)
