"""Images cost what their data costs: every image made by a real tool
boots through Nova, its disk reaches vSphere as streamOptimized grains
through an NFC import lease, only the data crosses the wire and the
cached disk is thin.

The oracles are independent of our code: qemu-img compares the image
file with the cached disk's extent on the simulator's datastore, the
launcher counts the bytes it was sent, and the file system says how much
of the extent is allocated.
"""

import os
import random

import fixtures

from tests.functional import audit_helpers
from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.unit import formats_fixtures as ff

MiB = 1024 * 1024
GiB = 1024 * MiB


def data_sized(n_bytes):
    """The budget of the issue: 5 % over the data, plus 1 MiB."""
    return 1.05 * n_bytes + MiB


def sparse_raw(path, size, regions, seed=11):
    """A raw disk of ``size`` bytes holding ``regions`` ((offset, length,
    kind) with kind 'random' or 'text') and holes elsewhere; returns the
    bytes of data written."""
    rnd = random.Random(seed)
    text = b''.join(b'%08d a line of text-like, compressible data\n' % i
                    for i in range(64 * 1024))
    written = 0
    with open(path, 'wb') as f:
        f.truncate(size)
        for offset, length, kind in regions:
            f.seek(offset)
            data = (rnd.randbytes(length) if kind == 'random'
                    else (text * (length // len(text) + 1))[:length])
            f.write(data)
            written += length
    return written


class TestImagesAsToolsWriteThem(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def _raw(self, name, size, regions):
        path = os.path.join(self.tmp, name + '.raw')
        return path, sparse_raw(path, size, regions)

    def _qemu(self, raw, name, fmt, *options):
        out = os.path.join(self.tmp, name)
        ff.qemu_img('convert', '-f', 'raw', '-O', fmt, *options, raw, out)
        return out

    def _boot_and_compare(self, name, data, image_file, image_fmt,
                          data_bytes=None, flavor_id='1', **glance_args):
        """Boot ``data`` (the bytes Glance keeps); the cached disk and the
        instance's base disk compare equal to ``image_file`` (qemu-img,
        format ``image_fmt``); with ``data_bytes``, what was sent and what
        the cached disk allocates stay within the data's budget."""
        image = self.glance.upload(data, name, **glance_args)
        before = self.import_leases()
        server = self.boot(image['id'], flavor_id=flavor_id)
        extent = vcsim_view.cache_extent(self.vcsim, image['id'])
        ff.qemu_img('compare', '-q', '-f', image_fmt, image_file,
                    '-F', 'raw', extent)
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        base = vcsim_view.local_path(
            self.vcsim, vcsim_view.backing_chain(root)[-1], '-flat')
        ff.qemu_img('compare', '-q', '-f', image_fmt, image_file,
                    '-F', 'raw', base)
        sent = [x for x in self.import_leases() if x not in before]
        self.assertEqual(1, len(sent), 'one import lease per fill: %s'
                         % sent)
        self.assertEqual('completed', sent[0]['state'])
        disk = [f for f in sent[0]['files'] if f['disk']]
        self.assertEqual(0, disk[0]['zero_grains'],
                         'all-zero grains crossed the wire')
        if data_bytes is not None:
            received = sent[0]['bytes_received']
            allocated = os.stat(extent).st_blocks * 512
            self.assertLessEqual(
                received, data_sized(data_bytes),
                '%s: %d bytes sent for %d of data' % (name, received,
                                                      data_bytes))
            self.assertLessEqual(
                allocated, data_sized(data_bytes),
                '%s: the cached disk allocates %d bytes for %d of data'
                % (name, allocated, data_bytes))
        self.assertEqual([], self.import_shells(),
                         'the import shell VM is still registered')
        self.assertFalse(
            [f for f in self.datastore_files()
             if '/import/' in f or '.partial-' in f],
            "the shell's files or the partial download stayed")
        self._delete_server(server)
        return image

    # -- streamOptimized as qemu-img writes it: GD in the header, no
    # footer, no end-of-stream marker -------------------------------------

    def _qemu_stream(self, name, size, regions):
        raw, data_bytes = self._raw(name, size, regions)
        path = self._qemu(raw, name + '.vmdk', 'vmdk',
                          '-o', 'subformat=streamOptimized')
        self._boot_and_compare(
            name, ff.read(path), path, 'vmdk', data_bytes,
            disk_format='vmdk', vmware_disktype='streamOptimized')

    def test_qemu_stream_8mib_random(self):
        # Refused as "truncated before its end-of-stream marker" before.
        self._qemu_stream('qs-8m', 8 * MiB, [(0, 8 * MiB, 'random')])

    def test_qemu_stream_not_whole_grains(self):
        self._qemu_stream('qs-5m', 5 * MiB + 4608,
                          [(0, 5 * MiB + 4608, 'random')])

    def test_qemu_stream_one_sector_short_of_a_grain(self):
        self._qemu_stream('qs-64k', 64 * 1024 - 512,
                          [(0, 64 * 1024 - 512, 'random')])

    def test_qemu_stream_mixed(self):
        self._qemu_stream('qs-mixed', 3 * MiB + 1536,
                          [(0, 100000, 'random'), (300000, 200000, 'text'),
                           (2 * MiB + 4096, 70000, 'random')])

    def test_qemu_stream_all_zero(self):
        self._qemu_stream('qs-zero', 4 * MiB, [])

    # -- mostly empty disks: the data crosses, not the virtual size ------

    def test_qcow2_mostly_empty(self):
        # 8 MiB of data (half random, half text) in a 1 GiB disk.
        raw, data_bytes = self._raw(
            'q-empty', GiB, [(0, 4 * MiB, 'random'),
                             (512 * MiB, 4 * MiB, 'text')])
        path = self._qemu(raw, 'q-empty.qcow2', 'qcow2')
        self._boot_and_compare('q-empty', ff.read(path), path, 'qcow2',
                               data_bytes, disk_format='qcow2')

    def test_monolithic_sparse_mostly_empty(self):
        raw, data_bytes = self._raw('s-empty', GiB,
                                    [(64 * MiB, 8 * MiB, 'random')])
        path = self._qemu(raw, 's-empty.vmdk', 'vmdk',
                          '-o', 'subformat=monolithicSparse')
        self._boot_and_compare('s-empty', ff.read(path), path, 'vmdk',
                               data_bytes, disk_format='vmdk',
                               vmware_disktype='sparse')

    def test_raw_mostly_empty(self):
        raw, data_bytes = self._raw('r-empty', 64 * MiB,
                                    [(MiB, 2 * MiB, 'random')])
        self._boot_and_compare('r-empty', ff.read(raw), raw, 'raw',
                               data_bytes, disk_format='raw')

    def test_qcow2_compressed(self):
        raw, _ = self._raw('q-c', 6 * MiB + 512,
                           [(0, 2 * MiB, 'text'), (3 * MiB, MiB, 'random')])
        path = self._qemu(raw, 'q-c.qcow2', 'qcow2', '-c')
        self._boot_and_compare('q-c', ff.read(path), path, 'qcow2',
                               disk_format='qcow2')

    # -- OVAs holding what ESXi and qemu-img write ------------------------

    def _ova(self, name, vmdk_path, virtual_size):
        return ff.ova([('disk.ovf', ff.ovf('disk.vmdk', virtual_size)),
                       ('disk.vmdk', ff.read(vmdk_path))])

    def test_ova_of_a_qemu_stream(self):
        raw, data_bytes = self._raw('o-s', 5 * MiB + 4608,
                                    [(0, 2 * MiB, 'random')])
        path = self._qemu(raw, 'o-s.vmdk', 'vmdk',
                          '-o', 'subformat=streamOptimized')
        self._boot_and_compare(
            'o-s', self._ova('o-s', path, 5 * MiB + 4608), path, 'vmdk',
            data_bytes, disk_format='vmdk', container_format='ova')

    def test_ova_of_a_monolithic_sparse(self):
        raw, data_bytes = self._raw('o-m', 4 * MiB, [(MiB, MiB, 'text')])
        path = self._qemu(raw, 'o-m.vmdk', 'vmdk',
                          '-o', 'subformat=monolithicSparse')
        self._boot_and_compare(
            'o-m', self._ova('o-m', path, 4 * MiB), path, 'vmdk',
            data_bytes, disk_format='vmdk', container_format='ova')

    def test_ova_of_a_descriptor_with_flat_extents(self):
        # qemu-img's monolithicFlat: a descriptor and its -flat extent,
        # packed after it.
        raw, data_bytes = self._raw('o-f', 3 * MiB + 1536,
                                    [(0, MiB, 'random'),
                                     (2 * MiB, 512 * 1024, 'text')])
        path = self._qemu(raw, 'o-f.vmdk', 'vmdk',
                          '-o', 'subformat=monolithicFlat')
        data = ff.ova([('disk.ovf', b'<x/>'), ('o-f.vmdk', ff.read(path)),
                       ('o-f-flat.vmdk',
                        ff.read(os.path.join(self.tmp, 'o-f-flat.vmdk')))])
        self._boot_and_compare('o-f', data, path, 'vmdk', data_bytes,
                               disk_format='vmdk', container_format='ova')

    def test_qcow2_v2(self):
        raw, data_bytes = self._raw('q-v2', 5 * MiB + 4608,
                                    [(MiB, 2 * MiB, 'random')])
        path = self._qemu(raw, 'q-v2.qcow2', 'qcow2', '-o', 'compat=0.10')
        self._boot_and_compare('q-v2', ff.read(path), path, 'qcow2',
                               data_bytes, disk_format='qcow2')

    def test_esxi_layout_from_the_launchers_export(self):
        # A snapshot is what ESX exports (our launcher's Go encoder here:
        # grain tables after their grains, footer, end-of-stream marker).
        # qemu-img vouches for it, then it boots like any image.
        raw, data_bytes = self._raw('esx', 4 * MiB + 4608,
                                    [(0, MiB, 'random'),
                                     (2 * MiB, MiB, 'text')])
        source = self.glance.upload(ff.read(raw), 'esx-src',
                                    disk_format='raw')
        server = self.boot(source['id'])
        image_id = self.snapshot_server(server, 'esx-snap')
        self._delete_server(server)
        exported = self.glance.image_path(image_id)
        with open(exported, 'rb') as f:
            head = f.read(512)
        self.assertEqual(b'KDMV', head[:4])
        self.assertEqual(b'\xff' * 8, head[56:64], 'not GD_AT_END')
        ff.qemu_img('compare', '-q', '-f', 'vmdk', exported, '-F', 'raw',
                    raw)
        self.glance.client().images.update(image_id, name='esx')
        before = self.import_leases()
        server = self.boot(image_id)
        extent = vcsim_view.cache_extent(self.vcsim, image_id)
        ff.qemu_img('compare', '-q', '-f', 'vmdk', exported, '-F', 'raw',
                    extent)
        sent = [x for x in self.import_leases() if x not in before]
        self.assertEqual(1, len(sent))
        self.assertLessEqual(sent[0]['bytes_received'],
                             data_sized(data_bytes))
        self._delete_server(server)

    # -- the flat upload stays available ----------------------------------

    def test_flat_upload_method(self):
        self.flags(image_upload_method='flat', group='vcdriver')
        raw, _ = self._raw('flat', 4 * MiB, [(0, MiB, 'random')])
        image = self.glance.upload(ff.read(raw), 'flat', disk_format='raw')
        before = self.import_leases()
        server = self.boot(image['id'])
        ff.qemu_img('compare', '-q', '-f', 'raw', raw, '-F', 'raw',
                    vcsim_view.cache_extent(self.vcsim, image['id']))
        self.assertEqual(before, self.import_leases(),
                         'an import lease was used for a flat upload')
        self._delete_server(server)


class TestESXPullsFromGlance(nova_harness.GlanceBehindProxy,
                             nova_harness.OwnVcsimTestCase):
    """[vcdriver] image_pull: the ESX host GETs a streamOptimized image
    from Glance itself; nova-compute reaches Glance through a proxy that
    counts what crosses it, and no image byte does."""

    # PullFromUrls is vSphere 6.7's: pyVmomi only calls it on a vCenter
    # that says it speaks a version that has it.
    vcsim_args = dict(clusters=1, hosts_per_cluster=2, nfs=1,
                      extra_args=('-api-version', '8.0.3.0'))

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.flags(image_pull=True, image_pull_glance_url=self.glance.url,
                   group='vcdriver')
        self.sim.reset_stats()

    def _stream_image(self, name):
        raw = os.path.join(self.tmp, name + '.raw')
        sparse_raw(raw, 6 * MiB + 4608, [(0, 2 * MiB, 'random'),
                                         (4 * MiB, MiB, 'text')])
        path = os.path.join(self.tmp, name + '.vmdk')
        ff.qemu_img('convert', '-f', 'raw', '-O', 'vmdk', '-o',
                    'subformat=streamOptimized', raw, path)
        image = self.glance.upload(ff.read(path), name, disk_format='vmdk',
                                   vmware_disktype='streamOptimized')
        return image, path

    def test_pulled_by_esx_no_byte_through_nova_compute(self):
        image, path = self._stream_image('pulled')
        server = self.boot(image['id'])
        self.assertEqual(0, self.proxy.downloads,
                         'nova-compute downloaded the image')
        leases = self.import_leases()
        self.assertEqual(1, len(leases))
        self.assertEqual((0, image['size'], 'completed'), (
            leases[0]['bytes_received'], leases[0]['bytes_pulled'],
            leases[0]['state']))
        extent = vcsim_view.cache_extent(self.sim, image['id'])
        ff.qemu_img('compare', '-q', '-f', 'vmdk', path, '-F', 'raw', extent)
        self.assertEqual([], self.import_shells())
        self._delete_server(server)
        audit_helpers.assert_clean(self)

    def test_a_failed_pull_falls_back_to_streaming(self):
        image, path = self._stream_image('refused')
        # ESX cannot reach Glance at the URL configured.
        self.flags(image_pull_glance_url='http://127.0.0.1:9/',
                   group='vcdriver')
        server = self.boot(image['id'])
        self.assertEqual(1, self.proxy.downloads)
        states = [x['state'] for x in self.import_leases()]
        self.assertEqual(['aborted', 'completed'], states)
        extent = vcsim_view.cache_extent(self.sim, image['id'])
        ff.qemu_img('compare', '-q', '-f', 'vmdk', path, '-F', 'raw', extent)
        self.assertEqual([], self.import_shells())
        self._delete_server(server)
        audit_helpers.assert_clean(self)
