"""Every image format boots a server through Nova on vcsim; the instance's
disk holds exactly the image's disk bytes (qemu-img is the oracle)."""

import os

import fixtures

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.unit import formats_fixtures as ff

MiB = 1024 * 1024


class TestImageFormats(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.disk = ff.source_disk(size=4 * MiB)
        self.raw_path = ff.write(os.path.join(self.tmp, 'disk.raw'),
                                 self.disk)

    def _image_bytes(self, fmt, *options):
        return ff.convert(self.raw_path, os.path.join(self.tmp, 'out'),
                          fmt, *options)

    def _boot_and_check(self, data, name, **glance_args):
        image = self.glance.upload(data, name, **glance_args)
        server = self.boot(image['id'])
        self.assertEqual(
            self.disk, vcsim_view.root_disk_bytes(self.vcsim, server['id'],
                                                  len(self.disk)),
            '%s: the instance disk differs' % name)
        self._delete_server(server)

    def test_qcow2(self):
        self._boot_and_check(self._image_bytes('qcow2'), 'qcow2',
                             disk_format='qcow2')

    def test_qcow2_compressed(self):
        self._boot_and_check(self._image_bytes('qcow2', '-c'), 'qcow2-c',
                             disk_format='qcow2')

    def test_raw(self):
        self._boot_and_check(self.disk, 'raw', disk_format='raw')

    def test_vmdk_monolithic_sparse(self):
        self._boot_and_check(
            self._image_bytes('vmdk', '-o', 'subformat=monolithicSparse'),
            'sparse', disk_format='vmdk', vmware_disktype='sparse')

    def test_vmdk_stream_optimized(self):
        self._boot_and_check(
            self._image_bytes('vmdk', '-o', 'subformat=streamOptimized'),
            'stream', disk_format='vmdk', vmware_disktype='streamOptimized')

    def test_ova(self):
        vmdk = self._image_bytes('vmdk', '-o', 'subformat=streamOptimized')
        data = ff.ova([('disk.ovf', ff.ovf('disk.vmdk', len(self.disk))),
                       ('disk.vmdk', vmdk)])
        self._boot_and_check(data, 'ova', disk_format='vmdk',
                             container_format='ova')

    def test_declared_format_must_match_the_bytes(self):
        image = self.glance.upload(self._image_bytes('qcow2'), 'liar',
                                   disk_format='vmdk',
                                   vmware_disktype='sparse')
        before = self.datastore_files()
        server = self.boot(image['id'], expected='ERROR')
        message = server['fault']['message']
        self.assertIn('qcow2', message)
        self.assertIn('vmdk', message)
        self.assertEqual(before, self.datastore_files(),
                         'files left on the datastore')
        self._delete_server(server)

    def test_virtual_size_larger_than_the_flavor_disk(self):
        path = os.path.join(self.tmp, 'big.qcow2')
        ff.qemu_img('create', '-q', '-f', 'qcow2', path, '1100M')
        image = self.glance.upload(ff.read(path), 'big', disk_format='qcow2')
        # Flavor 1 has a 1 GB root disk; only the qcow2 header tells.
        server = self.boot(image['id'], flavor_id='1', expected='ERROR')
        self.assertIn('Flavor', server['fault']['message'])
        self.assertFalse(
            [f for f in self.datastore_files() if server['id'] in f])
        self._delete_server(server)
