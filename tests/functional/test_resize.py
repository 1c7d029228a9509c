"""Resize and cold migration through real Nova on vcsim, between the two
clusters (nodes) of one service and on one node; confirm and revert; a
root disk that would shrink is refused and the server stays ACTIVE.

The scheduler's choice of node is forced by a patched ComputeFilter (both
nodes belong to one compute host, which the API cannot name apart).

Simulated: vcsim's RelocateVM_Task only changes the VM's host and pool
(both clusters see the shared datastore, so no file has to move here).
CopyVirtualDisk of a linked clone's delta consolidates it with its parent
as vCenter does (our launcher, tools/vcsim/linked_clones.go), so a grown
linked clone's bytes are checked as a full copy's are.
"""

import hashlib
import os
import re

import fixtures
from nova.tests.functional.api import client
from oslo_utils import units

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness

IMAGE_BYTES = 4 * units.Mi

# A descriptor's extent line: access, sectors, type, "file".
EXTENT = re.compile(rb'^(?:RW|RDONLY|NOACCESS)\s+(\d+)\s+\w+\s+"([^"]+)"',
                    re.M)


def disk_chunks(extents, chunk=16 * units.Mi):
    """A disk's bytes as a guest reads them, in chunks: each flat extent
    [(file, bytes)] in order, zeros past a short file's end."""
    for name, size in extents:
        with open(name, 'rb') as f:
            while size > 0:
                data = f.read(min(chunk, size))
                n = min(chunk, size)
                yield data + bytes(n - len(data))
                size -= n


class ResizeTestBase(nova_harness.VcdriverTestCase):
    clusters = ('DC0_C0', 'DC0_C1')

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self.small = self._create_flavor(memory_mb=512, vcpu=1, disk=1,
                                         ephemeral=0, name='small')
        self.big = self._create_flavor(memory_mb=1024, vcpu=2, disk=2,
                                       ephemeral=0, name='big')
        self.c0, self.c1 = self.driver.get_available_nodes()
        self.image = self.upload_flat_vmdk('resize', size=IMAGE_BYTES)

    def _schedule_to(self, node):
        """Only ``node`` passes the scheduler's filters from now on."""
        self.useFixture(fixtures.MockPatch(
            'nova.scheduler.filters.compute_filter.ComputeFilter.'
            'host_passes',
            side_effect=lambda host_state, spec: host_state.nodename == node))

    def _boot(self, node):
        return self.boot(self.image['id'], flavor_id=self.small, node=node)

    def _resize(self, server, flavor, node):
        self._schedule_to(node)
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': flavor}})
        return self._wait_for_state_change(server, 'VERIFY_RESIZE',
                                           max_retries=120)

    def _vcenter(self, server):
        """(cluster name, vCPUs, memory MB, root disk GB, root path)."""
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        return (vm.runtime.host.parent.name, vm.config.hardware.numCPU,
                vm.config.hardware.memoryMB, root.capacityInKB // units.Mi,
                root.backing.fileName)

    def _descriptor(self, server):
        path = self._vcenter(server)[4]
        with open(vcsim_view.local_path(self.vcsim, path), 'rb') as f:
            return f.read()

    def _assert_root_holds(self, server, image, size_bytes):
        """The root disk, read from the datastore as its descriptor says,
        is standalone and holds ``image``, then zeros up to
        ``size_bytes``."""
        local = vcsim_view.local_path(self.vcsim, self._vcenter(server)[4])
        with open(local, 'rb') as f:
            descriptor = f.read()
        self.assertNotIn(b'parentFileNameHint', descriptor,
                         'the root disk is still a delta')
        extents = [(os.path.join(os.path.dirname(local), name.decode()),
                    int(sectors) * 512)
                   for sectors, name in EXTENT.findall(descriptor)]
        self.assertEqual(size_bytes, sum(n for _f, n in extents))
        head, seen, stray = hashlib.sha256(), 0, 0
        for data in disk_chunks(extents):
            take = max(0, min(len(data), len(image) - seen))
            head.update(data[:take])
            stray += len(data) - take - data.count(0, take)
            seen += len(data)
        self.assertEqual(hashlib.sha256(image).hexdigest(), head.hexdigest(),
                         'the root disk does not start with the image')
        self.assertEqual(0, stray, 'non-zero bytes after the image')

    def _orig_files(self, server):
        return {f for f in self.datastore_files()
                if f.startswith(server['id'] + '/') and '.orig' in f}

    def _revert_state(self, server):
        return vcsim_view.extra_config(self.vcsim, server['id'],
                                       'vcdriver.resize.revert')



class TestResize(ResizeTestBase):

    def test_resize_across_clusters_then_revert(self):
        server = self._boot(self.c0)
        before = self._vcenter(server)
        self.assertEqual(('DC0_C0', 1, 512, 1), before[:4])
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        self.assertEqual(2, len(vcsim_view.backing_chain(root)),
                         'root disk should start as a linked clone')
        descriptor = self._descriptor(server)

        server = self._resize(server, self.big, self.c1)
        self.assertEqual(self.c1,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        cluster, cpus, memory, root_gb, path = self._vcenter(server)
        self.assertEqual(('DC0_C1', 2, 1024, 2), (cluster, cpus, memory,
                                                  root_gb))
        self.assertEqual(before[4], path, 'root disk keeps its path')
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        self.assertEqual(1, len(vcsim_view.backing_chain(root)),
                         'a grown linked clone becomes a full copy')
        self.assertNotEqual(descriptor, self._descriptor(server))
        self.assertEqual({'%s/%s.orig.vmdk' % (server['id'], server['id']),
                          '%s/%s.orig-flat.vmdk' % (server['id'],
                                                    server['id'])},
                         self._orig_files(server))
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)

        self.api.post_server_action(server['id'], {'revertResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE',
                                             max_retries=120)
        self.assertEqual(self.c0,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual(before, self._vcenter(server))
        # vcsim reports no parent for an existing delta attached again (it
        # reads none from descriptors): the descriptor shows it is the
        # original that came back.
        self.assertEqual(descriptor, self._descriptor(server))
        self.assertEqual(set(), self._orig_files(server))
        self.assertIsNone(self._revert_state(server))
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)

        self._delete_server(server)
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))

    def test_resize_on_the_same_node_then_confirm(self):
        self.flags(use_linked_clone=False, group='vmware')
        server = self._boot(self.c0)
        server = self._resize(server, self.big, self.c0)
        self.assertEqual(self.c0,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        cluster, cpus, memory, root_gb, path = self._vcenter(server)
        self.assertEqual(('DC0_C0', 2, 1024, 2), (cluster, cpus, memory,
                                                  root_gb))
        # The grown copy holds the image's bytes, then zeros.
        self.assertEqual(*vcsim_view.root_disk_and_image(
            self.vcsim, server['id'],
            self.glance.image_path(self.image['id'])))
        self.assertTrue(self._orig_files(server))
        self.assertIsNotNone(self._revert_state(server))

        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(('DC0_C0', 2, 1024, 2),
                         self._vcenter(server)[:4])
        self.assertEqual(set(), self._orig_files(server))
        self.assertIsNone(self._revert_state(server))
        self._delete_server(server)

    def test_resize_of_a_linked_clone_keeps_the_image_then_confirm(self):
        # The grown root disk is a copy of the delta consolidated with the
        # cached image (CopyVirtualDisk), then extended: the image's bytes
        # to their end, zeros after them.
        image = (b'linked clone root disk ' * (IMAGE_BYTES // 23 + 1))[
            :IMAGE_BYTES - 512] + b'\xee' * 512  # its last sector too
        image_id = self.glance.upload(image, 'resize-linked')['id']
        server = self.boot(image_id, flavor_id=self.small, node=self.c0)
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        self.assertEqual(2, len(vcsim_view.backing_chain(root)),
                         'root disk should start as a linked clone')

        server = self._resize(server, self.big, self.c0)
        cluster, cpus, memory, root_gb, path = self._vcenter(server)
        self.assertEqual(('DC0_C0', 2, 1024, 2), (cluster, cpus, memory,
                                                  root_gb))
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        self.assertEqual([path], vcsim_view.backing_chain(root))
        self._assert_root_holds(server, image, 2 * units.Gi)

        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(set(), self._orig_files(server))
        self._assert_root_holds(server, image, 2 * units.Gi)
        self._delete_server(server)

    def test_cold_migrate_across_clusters_then_confirm(self):
        server = self._boot(self.c0)
        before = self._vcenter(server)
        self._schedule_to(self.c1)
        self.api.post_server_action(server['id'], {'migrate': None})
        server = self._wait_for_state_change(server, 'VERIFY_RESIZE',
                                             max_retries=120)
        self.assertEqual(self.c1,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual(('DC0_C1',) + before[1:], self._vcenter(server))
        self.assertEqual(set(), self._orig_files(server))

        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(('DC0_C1',) + before[1:], self._vcenter(server))
        self.assertIsNone(self._revert_state(server))
        self._delete_server(server)



class TestResizeRefused(ResizeTestBase):
    # Casts stay casts: the compute's refusal must not reach the API call.
    cast_as_call = False

    def test_shrinking_and_unsupported_changes_are_refused(self):
        server = self.boot(self.image['id'], flavor_id=self.big,
                           node=self.c0)
        # Nova itself refuses a smaller root disk (the instance's image
        # metadata keeps the flavor's root_gb as min_disk); the driver
        # refuses it too should a request get through.
        error = self.assertRaises(
            client.OpenStackApiException, self.api.post_server_action,
            server['id'], {'resize': {'flavorRef': self.small}})
        self.assertEqual(400, error.response.status_code)

        # A changed swap size is the driver's refusal: Nova rolls back.
        with_swap = self._create_flavor(memory_mb=1024, vcpu=2, disk=2,
                                        ephemeral=0, swap=16,
                                        name='with-swap')
        self._schedule_to(self.c1)
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': with_swap}})
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None},
            max_retries=120)
        migration = self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations'][0]
        self.assertEqual('error', migration['status'])
        self.assertIn('changing the swap disk size (0 to 16) is not '
                      'supported', self.stdlog.logger.output)
        self.assertEqual(self.c0,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual(('DC0_C0', 2, 1024, 2), self._vcenter(server)[:4])
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)
        self._delete_server(server)
