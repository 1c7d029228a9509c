"""Images Glance keeps on a datastore of the same vCenter (``vsphere://``
locations) are copied by vCenter, not streamed through the compute node.

Simulated: Glance's VMware store, which needs a real vCenter's WSDL to
start, is stood in for by the image's bytes written into the simulator's
datastore and Glance's location row pointing there (so Glance itself can
no longer serve them: a download would fail the boot).
"""

import os

from tests.functional import test_image_cache
from tests.functional import test_instance_disks
from tests.functional import vcsim_view
from tests.harness import nova as nova_harness

MiB = 1024 * 1024


class TestVsphereLocations(nova_harness.VcdriverTestCase):

    def _keep_on_datastore(self, image, data, datastore='nfs0'):
        rel = 'openstack_glance/%s' % image['id']
        path = os.path.join(self.vcsim.datastores[datastore], rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        self.glance.move_to_location(
            image['id'], 'vsphere://%s/folder/%s?dcPath=DC0&dsName=%s'
            % (self.vcsim.host, rel, datastore))
        self.addCleanup(os.remove, path)

    def _boot_without_upload(self, image):
        self.vcsim.reset_stats()
        server = self.boot(image['id'])
        self.assertEqual(0, test_image_cache.image_uploads(self,
                                                           image['id']),
                         'image bytes went through the compute node')
        return server

    def test_raw_image_is_copied_by_vcenter(self):
        data = bytes(range(256)) * (16 * 4096)  # 16 MiB
        image = self.glance.upload(data, 'on-datastore', disk_format='raw',
                                   container_format='bare')
        self._keep_on_datastore(image, data)
        server = self._boot_without_upload(image)
        self.assertEqual(data, vcsim_view.root_disk_bytes(
            self.vcsim, server['id'], len(data)))
        self._delete_server(server)

    def test_flat_vmdk_is_copied_by_vcenter(self):
        data = (b'vcdriver-test-disk-' * (4 * MiB // 19 + 1))[:4 * MiB]
        image = self.upload_flat_vmdk('flat-on-datastore', size=len(data))
        self._keep_on_datastore(image, data)
        server = self._boot_without_upload(image)
        self.assertEqual(data, vcsim_view.root_disk_bytes(
            self.vcsim, server['id'], len(data)))
        self._delete_server(server)

    def test_iso_is_copied_by_vcenter(self):
        data = test_instance_disks.iso_bytes()
        image = self.glance.upload(data, 'iso-on-datastore',
                                   disk_format='iso',
                                   container_format='bare')
        self._keep_on_datastore(image, data)
        server = self._boot_without_upload(image)
        cached = os.path.join(self.vcsim.datastores['nfs0'],
                              'vcdriver_image_cache', image['id'],
                              '%s.iso' % image['id'])
        with open(cached, 'rb') as f:
            self.assertEqual(data, f.read())
        self._delete_server(server)

    def test_size_differing_from_glance_fails_cleanly(self):
        data = bytes(4 * MiB)
        image = self.glance.upload(data, 'truncated', disk_format='raw',
                                   container_format='bare')
        self._keep_on_datastore(image, data[:MiB])
        before = self.datastore_files()
        server = self.boot(image['id'], expected='ERROR')
        fault = self.api.get_server(server['id'])['fault']['message']
        self.assertIn('vCenter copied 1048576 bytes', fault)
        self.assertEqual(before, self.datastore_files(),
                         'the failed copy left files behind')
        self._delete_server(server)
