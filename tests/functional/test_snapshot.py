"""Server snapshots (createImage) through Nova on vcsim into a real Glance:
the image is a streamOptimized VMDK of the root disk (qemu-img, not our
code, reads it back as the disk on the datastore), and a server booted
from it has the same disk; a failed snapshot leaves nothing behind."""

import json
import os

import fixtures
from glanceclient import exc as glance_exc
from nova import context as nova_context
from nova import objects
from oslo_utils.imageutils import format_inspector

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.unit import formats_fixtures as ff
from vcdriver import snapshot as snapshot_mod

MiB = 1024 * 1024
GiB = 1024 * MiB


class TestSnapshot(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.disk = ff.source_disk(size=4 * MiB)
        raw = ff.write(os.path.join(self.tmp, 'disk.raw'), self.disk)
        # qcow2, as a cloud serving KVM too keeps it; the snapshot comes
        # back as VMDK.
        self.image = self.glance.upload(
            ff.convert(raw, os.path.join(self.tmp, 'disk.qcow2'), 'qcow2'),
            'source', disk_format='qcow2', vmware_adaptertype='paraVirtual',
            vmware_ostype='ubuntu64Guest')
        self.task_states = []
        real = snapshot_mod.snapshot

        def spy(session, context, instance, vm_ref, image_id,
                update_task_state, **kwargs):
            def record(**state):
                self.task_states.append(state)
                return update_task_state(**state)
            # Keep-alive reports on the real lease while bytes flow.
            kwargs.setdefault('keepalive_interval', 0.05)
            return real(session, context, instance, vm_ref, image_id,
                        record, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'vcdriver.snapshot.snapshot', spy))

    def _assert_disk(self, server, message):
        """The server's root disk: the source disk's bytes (its virtual
        size, one block), then zeros up to the flavor's 1 GiB."""
        zeros = bytes(4 * MiB)
        blocks = 0
        for blocks, block in enumerate(
                vcsim_view.root_disk_blocks(self.vcsim, server['id']), 1):
            want = self.disk if blocks == 1 else zeros
            self.assertTrue(block == want, '%s differs in its MiB %d to %d'
                            % (message, 4 * blocks - 4, 4 * blocks))
        self.assertEqual(GiB // (4 * MiB), blocks, message)

    def _assert_image_is_disk(self, image_id, server):
        """qemu-img, not our decoder, reads the image as Glance serves it:
        a valid streamOptimized VMDK of the disk's size whose raw bytes
        are the server's disk as read from the datastore."""
        vmdk = os.path.join(self.tmp, 'snapshot.vmdk')
        with open(vmdk, 'wb') as f:
            for chunk in self.glance.client().images.data(image_id):
                f.write(chunk)
        self.assertEqual(self.glance_image(image_id)['size'],
                         os.path.getsize(vmdk))
        info = json.loads(ff.qemu_img('info', '--output=json', '-f', 'vmdk',
                                      vmdk))
        self.assertEqual(
            ('vmdk', 'streamOptimized', GiB),
            (info['format'], info['format-specific']['data']['create-type'],
             info['virtual-size']))
        ff.qemu_img('check', '-f', 'vmdk', vmdk)
        raw = os.path.join(self.tmp, 'snapshot.raw')
        ff.qemu_img('convert', '-f', 'vmdk', '-O', 'raw', vmdk, raw)
        self.assertEqual(GiB, os.path.getsize(raw))
        blocks = 0
        with open(raw, 'rb') as f:
            for blocks, want in enumerate(
                    vcsim_view.root_disk_blocks(self.vcsim, server['id']), 1):
                self.assertTrue(f.read(4 * MiB) == want,
                                'the image differs from the disk in its MiB '
                                '%d to %d' % (4 * blocks - 4, 4 * blocks))
        self.assertEqual(GiB // (4 * MiB), blocks)
        os.unlink(raw)

    def _assert_nothing_left(self, server):
        vm = self.instance_vm(server)
        # pyVmomi reads an unset property as a missing attribute.
        self.assertIsNone(getattr(vm, 'snapshot', None),
                          'a vSphere snapshot remains')
        self.assertFalse([f for f in self.datastore_files()
                          if f.startswith(server['id']) and
                          f.endswith('.vmsn')], 'snapshot files remain')
        self.assertEqual([], [x for x in self.nfc_leases(vm)
                              if x['state'] == 'ready'],
                         'an export lease was left open')
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        return server

    def _fault(self, server):
        """The instance fault Nova recorded (the API shows faults only of
        servers in ERROR)."""
        fault = objects.InstanceFault.get_latest_for_instance(
            nova_context.get_admin_context(), server['id'])
        return fault.message if fault else ''

    def test_snapshot_round_trip(self):
        server = self.boot(self.image['id'])
        self._assert_disk(server, "the first server's disk")

        image_id = self.snapshot_server(server, 'snap')
        image = self.glance_image(image_id)
        self.assertEqual('active', image['status'])
        self.assertEqual('vmdk', image['disk_format'])
        self.assertEqual('bare', image['container_format'])
        self.assertEqual('streamOptimized', image['vmware_disktype'])
        self.assertEqual('paraVirtual', image['vmware_adaptertype'])
        self.assertEqual('ubuntu64Guest', image['vmware_ostype'])
        self.assertGreater(image['size'], 0)

        self.assertEqual(
            [{'task_state': 'image_pending_upload'},
             {'task_state': 'image_uploading',
              'expected_state': 'image_pending_upload'}],
            self.task_states)
        vm = self.instance_vm(server)
        self._assert_nothing_left(server)
        self.assertEqual(['completed'],
                         [x['state'] for x in self.nfc_leases(vm)])

        # What Glance stored passes Glance's own format inspection (which
        # a deployment may enforce on upload) and reads back as the disk.
        stored = self.glance.image_path(image_id)
        inspector = format_inspector.detect_file_format(stored)
        self.assertEqual('vmdk', str(inspector))
        inspector.safety_check()
        self.assertEqual(GiB, inspector.virtual_size)

        self._assert_image_is_disk(image_id, server)

        copy = self.boot(image_id)
        self._assert_disk(copy, 'the server booted from the snapshot')

        self._delete_server(copy)
        self._delete_server(server)
        self.glance.client().images.delete(image_id)

    def test_lease_error_leaves_nothing_behind(self):
        server = self.boot(self.image['id'])
        # vCenter cannot export a disk whose descriptor is gone: the lease
        # goes to state error (FileNotFound).
        os.unlink(os.path.join(self.vcsim.datastores['nfs0'], server['id'],
                               '%s.vmdk' % server['id']))

        image_id = self.snapshot_server(server, 'snap')
        self.assertIsNone(self.glance_image(image_id),
                          'Nova keeps the image of a failed snapshot')
        self._assert_nothing_left(server)
        vm = self.instance_vm(server)
        self.assertEqual(['aborted'],
                         [x['state'] for x in self.nfc_leases(vm)])
        message = 'Snapshot to image %s failed: Export lease' % image_id
        self.assertIn(message, self.stdlog.logger.output)
        self.assertIn('was not found', self.stdlog.logger.output)
        self.assertIn(message, self._fault(server))
        self._delete_server(server)

    def test_glance_failure_mid_upload_leaves_nothing_behind(self):
        def upload(controller, image_id, data, *args, **kwargs):
            data.read(MiB)   # some bytes flowed, then Glance went away
            raise glance_exc.HTTPServiceUnavailable('glance-api went away')
        self.useFixture(fixtures.MonkeyPatch(
            'glanceclient.v2.images.Controller.upload', upload))

        server = self.boot(self.image['id'])
        image_id = self.snapshot_server(server, 'snap')
        self.assertIsNone(self.glance_image(image_id))
        self._assert_nothing_left(server)
        vm = self.instance_vm(server)
        self.assertEqual(['aborted'],
                         [x['state'] for x in self.nfc_leases(vm)])
        message = ('Snapshot to image %s failed: uploading to Glance failed: '
                   'HTTP glance-api went away' % image_id)
        self.assertIn(message, self.stdlog.logger.output)
        self.assertIn(message, self._fault(server))
        self._delete_server(server)
