"""Rescue and unrescue through Nova's API on vcsim.

Rescue boots the VM from a disk made from the rescue image (from the
datastore's image cache, as a root disk is), first in the boot order,
with the instance's own root disk attached second; unrescue removes and
deletes that disk and boots the original again. vCenter's side (devices,
boot order, power state, files) is read after each step.
"""

import os

from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness

CACHE = 'vcdriver_image_cache'


class TestRescue(nova_harness.VcdriverTestCase):

    def _boot_order(self, server):
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        order = vm.config.bootOptions.bootOrder or []
        return [o.deviceKey for o in order
                if isinstance(o, vim.vm.BootOptions.BootableDiskDevice)]

    def _folder(self, server):
        return sorted(os.listdir(os.path.join(self.vcsim.datastores['nfs0'],
                                              server['id'])))

    def test_rescue_and_unrescue(self):
        image = self.upload_flat_vmdk('rescued')
        rescue_image = self.upload_flat_vmdk('rescuer')
        server = self.boot(image['id'])
        [(_bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        root_path = '[nfs0] %s/%s.vmdk' % (server['id'], server['id'])
        self.assertEqual(root_path, root.backing.fileName)

        self.api.post_server_action(server['id'], {'rescue': {
            'rescue_image_ref': rescue_image['id']}})
        server = self._wait_for_state_change(server, 'RESCUE')
        disks = [d for _b, d in vcsim_view.disks(self.vcsim, server['id'])]
        rescue_path = '[nfs0] %s/%s-rescue.vmdk' % (server['id'],
                                                   server['id'])
        self.assertEqual([root_path, rescue_path],
                         [d.backing.fileName for d in disks])
        by_path = {d.backing.fileName: d for d in disks}
        # The rescue disk is a delta of the cached rescue image.
        self.assertEqual(
            '[nfs0] %s/%s/%s.vmdk' % (CACHE, rescue_image['id'],
                                      rescue_image['id']),
            vcsim_view.backing_chain(by_path[rescue_path])[-1])
        self.assertEqual([by_path[rescue_path].key, by_path[root_path].key],
                         self._boot_order(server))
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)
        self.assertIn('%s-rescue.vmdk' % server['id'], self._folder(server))

        self.api.post_server_action(server['id'], {'unrescue': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        [(_bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(root_path, root.backing.fileName)
        self.assertEqual([], self._boot_order(server))
        self.assertFalse([f for f in self._folder(server)
                          if 'rescue' in f], 'rescue disk left behind')
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)
        self._delete_server(server)

    def test_delete_a_rescued_server(self):
        image = self.upload_flat_vmdk('rescued-deleted')
        server = self.boot(image['id'])
        self.api.post_server_action(server['id'], {'rescue': {}})
        server = self._wait_for_state_change(server, 'RESCUE')
        self.assertEqual(2, len(vcsim_view.disks(self.vcsim, server['id'])))
        self._delete_server(server)
        self.assertFalse(os.path.exists(os.path.join(
            self.vcsim.datastores['nfs0'], server['id'])))
