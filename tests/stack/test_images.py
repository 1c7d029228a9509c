"""Images as users make them, uploaded with ``openstack image create``
and booted with ``openstack server create``: a qemu-img streamOptimized
VMDK and an OVA holding one, of a size that is not a whole number of
grains. qemu-img compares each with the disk the datastore caches."""

import os

import pytest

from tests.stack import images
from tests.stack import vcenter
from tests.unit import test_formats_corpus as corpus_mod

SOURCE = '5m-4.5k'          # 5 MiB + 4.5 KiB of random data


@pytest.mark.parametrize('fmt', ['vmdk-stream', 'ova-stream'])
def test_image_boots_with_its_disk_equal(stack, flavor, fmt, tmp_path):
    corpus = corpus_mod.Corpus(tmp_path)
    path, oracle, oracle_format = corpus.image(SOURCE, fmt)
    _made, disk_format, container, disktype, _found = corpus_mod.FORMATS[
        fmt]
    properties = ['vmware_disktype=' + disktype] if disktype else []
    image_id = stack.create_image(path, disk_format, 'stack-' + fmt,
                                  *properties, container_format=container)
    si = vcenter.connect(stack)
    server = None
    try:
        server = stack.boot(image_id, flavor, 'stack-image-' + fmt)
        assert server['status'] == 'ACTIVE', server
        vm = vcenter.vm_of(si, server['id'])
        assert vm is not None and vm.runtime.powerState == 'poweredOn'
        caching = vcenter.datastores_caching(si, image_id)
        assert vcenter.datastore_of(vm) in caching, caching
        directory = stack.stack.state['vcsim']['datastores'][
            vcenter.datastore_of(vm)]
        extent = os.path.join(directory, vcenter.CACHE_FOLDER, image_id,
                              '%s-flat.vmdk' % image_id)
        images.compare(oracle, oracle_format, extent, 'raw')
    finally:
        if server:
            stack.delete_servers([server['id']])
        stack.openstack('image', 'delete', image_id, check=False)
