"""The disks a server gets, through Nova on vcsim: linked clones of the
cached image or full copies, ephemeral and swap disks, the disk bus the
image asks for, and ISO images booting from a CD-ROM.

vCenter's side is read after each boot: devices, their backings and the
files in the instance's folder and the image cache.
"""

import os

from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness

GiB = 1024 ** 3
MiB = 1024 ** 2
CACHE = 'vcdriver_image_cache'


def iso_bytes(size=2 * MiB):
    """An ISO 9660 image: a primary volume descriptor at sector 16."""
    data = bytearray(size)
    data[0x8000:0x8006] = b'\x01CD001'
    data[0x8028:0x8028 + 8] = b'VCDRIVER'
    return bytes(data)


class TestInstanceDisks(nova_harness.VcdriverTestCase):

    def _flavor(self, name, disk=1, ephemeral=0, swap=0):
        flavor = self.api.post_flavor({'flavor': {
            'name': name, 'ram': 256, 'vcpus': 1, 'disk': disk,
            'OS-FLV-EXT-DATA:ephemeral': ephemeral, 'swap': swap}})
        return flavor['id']

    def _folder_files(self, server_id):
        return sorted(os.listdir(os.path.join(self.vcsim.datastores['nfs0'],
                                              server_id)))

    def _cache_files(self, image_id):
        return sorted(os.listdir(os.path.join(
            self.vcsim.datastores['nfs0'], CACHE, image_id)))

    def test_linked_clone_is_a_delta_of_the_cached_image(self):
        # [vmware] use_linked_clone defaults to True, as in-tree.
        image = self.upload_flat_vmdk('linked', size=GiB // 2)
        server = self.boot(image['id'])  # flavor 1: 1 GB root disk
        [(bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual('VirtualLsiLogicController', bus)
        chain = vcsim_view.backing_chain(root)
        self.assertEqual([
            '[nfs0] %s/%s.vmdk' % (server['id'], server['id']),
            '[nfs0] %s/%s/%s.1.vmdk' % (CACHE, image['id'], image['id']),
        ], chain, 'root disk is not a delta of the grown cached copy')
        self.assertEqual(GiB, root.capacityInBytes)
        # The grown copy sits beside the image in the cache; no temporary
        # copy is left behind.
        self.assertEqual(
            ['%s-flat.vmdk' % image['id'], '%s.1-flat.vmdk' % image['id'],
             '%s.1.vmdk' % image['id'], '%s.vmdk' % image['id'],
             'image.json', 'last-used'], self._cache_files(image['id']))
        self.assertEqual(*vcsim_view.root_disk_and_image(
            self.vcsim, server['id'], self.glance.image_path(image['id'])))

        # A second server shares the grown copy.
        second = self.boot(image['id'])
        [(_bus, root2)] = vcsim_view.disks(self.vcsim, second['id'])
        self.assertEqual(chain[1], vcsim_view.backing_chain(root2)[1])
        for s in (server, second):
            self._delete_server(s)
        # Deleting the servers keeps the cache entry.
        self.assertIn('%s.1.vmdk' % image['id'],
                      self._cache_files(image['id']))

    def test_linked_clone_of_an_image_as_big_as_the_flavor(self):
        image = self.upload_flat_vmdk('linked-same', size=GiB)
        server = self.boot(image['id'])
        [(_bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(
            '[nfs0] %s/%s/%s.vmdk' % (CACHE, image['id'], image['id']),
            vcsim_view.backing_chain(root)[1])
        self._delete_server(server)

    def test_full_copy_without_linked_clones(self):
        self.flags(use_linked_clone=False, group='vmware')
        image = self.upload_flat_vmdk('copied')
        server = self.boot(image['id'])
        [(_bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(
            ['[nfs0] %s/%s.vmdk' % (server['id'], server['id'])],
            vcsim_view.backing_chain(root))
        self.assertEqual(GiB, root.capacityInBytes)
        self.assertEqual(*vcsim_view.root_disk_and_image(
            self.vcsim, server['id'], self.glance.image_path(image['id'])))
        self._delete_server(server)

    def test_image_property_overrides_linked_clone(self):
        image = self.upload_flat_vmdk('no-link', vmware_linked_clone='false')
        server = self.boot(image['id'])
        [(_bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(1, len(vcsim_view.backing_chain(root)))
        self._delete_server(server)

    def test_ephemeral_and_swap_disks(self):
        flavor = self._flavor('eph-swap', disk=1, ephemeral=2, swap=256)
        image = self.upload_flat_vmdk('eph')
        server = self.boot(image['id'], flavor_id=flavor)
        disks = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(
            [('[nfs0] %s/%s.vmdk' % (server['id'], server['id']), GiB),
             ('[nfs0] %s/ephemeral_0.vmdk' % server['id'], 2 * GiB),
             ('[nfs0] %s/swap.vmdk' % server['id'], 256 * MiB)],
            [(d.backing.fileName, d.capacityInBytes) for _b, d in disks])
        self.assertEqual([0, 1, 2], [d.unitNumber for _b, d in disks])
        self.assertTrue(all(d.backing.thinProvisioned
                            for _b, d in disks[1:]))
        self.assertIn('ephemeral_0.vmdk', self._folder_files(server['id']))
        self.assertIn('swap.vmdk', self._folder_files(server['id']))
        self._delete_server(server)
        self.assertFalse(os.path.exists(os.path.join(
            self.vcsim.datastores['nfs0'], server['id'])))

    def test_ide_disk_bus(self):
        flavor = self._flavor('ide-eph', disk=1, ephemeral=1)
        image = self.upload_flat_vmdk('ide', hw_disk_bus='ide')
        server = self.boot(image['id'], flavor_id=flavor)
        disks = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(['VirtualIDEController'] * 2,
                         [bus for bus, _d in disks])
        self.assertFalse(vcsim_view.devices(
            self.vcsim, server['id'], vim.vm.device.VirtualSCSIController))
        self._delete_server(server)

    def test_sata_disk_bus(self):
        image = self.upload_flat_vmdk('sata', hw_disk_bus='sata')
        server = self.boot(image['id'])
        [(bus, _root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual('VirtualAHCIController', bus)
        self._delete_server(server)

    def test_paravirtual_scsi_adapter(self):
        image = self.upload_flat_vmdk('pvscsi',
                                      vmware_adaptertype='paraVirtual')
        server = self.boot(image['id'])
        [(bus, _root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual('ParaVirtualSCSIController', bus)
        self._delete_server(server)

    def test_iso_boots_from_a_cdrom_with_a_blank_root_disk(self):
        data = iso_bytes()
        image = self.glance.upload(data, 'installer', disk_format='iso',
                                   container_format='bare')
        server = self.boot(image['id'])
        [cdrom] = vcsim_view.devices(self.vcsim, server['id'],
                                     vim.vm.device.VirtualCdrom)
        iso_path = '[nfs0] %s/%s/%s.iso' % (CACHE, image['id'], image['id'])
        self.assertEqual(iso_path, cdrom.backing.fileName)
        self.assertTrue(cdrom.connectable.startConnected)
        with open(vcsim_view.local_path(self.vcsim, iso_path), 'rb') as f:
            self.assertEqual(data, f.read(), 'the cached ISO differs')
        [(_bus, root)] = vcsim_view.disks(self.vcsim, server['id'])
        self.assertEqual(
            ['[nfs0] %s/%s.vmdk' % (server['id'], server['id'])],
            vcsim_view.backing_chain(root), 'root disk not blank')
        self.assertEqual(GiB, root.capacityInBytes)
        self._delete_server(server)
        # The ISO stays cached for the next server.
        self.assertIn('%s.iso' % image['id'], self._cache_files(image['id']))

    def test_iso_that_is_no_iso_is_refused(self):
        image = self.glance.upload(b'\x00' * MiB, 'not-an-iso',
                                   disk_format='iso',
                                   container_format='bare')
        before = self.datastore_files()
        server = self.boot(image['id'], expected='ERROR')
        self.assertIn('declared disk_format=iso',
                      self.api.get_server(server['id'])['fault']['message'])
        self.assertEqual(before, self.datastore_files())
        self._delete_server(server)
