"""Config drive through Nova's API on vcsim: the ISO Nova's builder makes
lands in the instance's folder, a CD-ROM of the VM points at it, it holds
the instance's metadata, key and user data, and goes with the instance.

The ISO is read back from the simulator's datastore folder with
``isoinfo`` (Debian's genisoimage, which also builds it).
"""

import base64
import json
import os
import subprocess

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness

USER_DATA = b'#cloud-config\nhostname: vcdriver-cd\n'


def _public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode()


def _iso_file(iso, path):
    return subprocess.run(['isoinfo', '-R', '-i', iso, '-x', path],
                          check=True, capture_output=True).stdout


class TestConfigDrive(nova_harness.VcdriverTestCase):

    def _boot_with_config_drive(self, image_id, public_key):
        self.api.post_keypair({'keypair': {'name': 'cd-key',
                                           'public_key': public_key}})
        server = self._build_server(image_uuid=image_id, flavor_id='1',
                                    networks='none')
        server.update(config_drive=True, key_name='cd-key',
                      user_data=base64.b64encode(USER_DATA).decode())
        server = self.api.post_server({'server': server})
        return self._wait_for_state_change(server, 'ACTIVE',
                                           max_retries=120)

    def test_config_drive_iso_attached_and_removed(self):
        image = self.upload_flat_vmdk('cd')
        public_key = _public_key()
        server = self._boot_with_config_drive(image['id'], public_key)
        path = '[nfs0] %s/configdrive.iso' % server['id']
        iso = vcsim_view.local_path(self.vcsim, path)
        self.assertTrue(os.path.isfile(iso), 'no ISO in the folder')

        [cdrom] = vcsim_view.devices(self.vcsim, server['id'],
                                     vim.vm.device.VirtualCdrom)
        self.assertEqual(path, cdrom.backing.fileName)
        self.assertTrue(cdrom.connectable.startConnected)
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)

        meta = json.loads(_iso_file(iso,
                                    '/openstack/latest/meta_data.json'))
        self.assertEqual(server['id'], meta['uuid'])
        self.assertEqual(public_key, meta['public_keys']['cd-key'])
        self.assertEqual(USER_DATA,
                         _iso_file(iso, '/openstack/latest/user_data'))
        self.assertTrue(server['config_drive'])

        self._delete_server(server)
        self.assertFalse(os.path.exists(iso))

    def test_no_config_drive_unless_asked(self):
        server = self.boot(self.upload_flat_vmdk('no-cd')['id'])
        self.assertEqual([], vcsim_view.devices(self.vcsim, server['id'],
                                                vim.vm.device.VirtualCdrom))
        self.assertNotIn('configdrive.iso', os.listdir(os.path.join(
            self.vcsim.datastores['nfs0'], server['id'])))
        self._delete_server(server)
