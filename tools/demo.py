"""The main job on the embedded default: a server's life on a vcsim cluster.

Starts our vcsim vCenter (2 clusters), a real glance-api and Nova in-process
(API, conductor, scheduler, placement, compute with vcdriver), uploads a
small VMDK, boots a server through the Nova API, prints what Nova and
vCenter show, deletes it and shows that nothing is left. Exit status 0 on
success. Run it as ``tox -e demo``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.harness import nova as nova_harness  # noqa: E402 (nova first)

# isort: split

import logging  # noqa: E402
import unittest  # noqa: E402

from pyVmomi import vim  # noqa: E402

from tests.harness import glance as glance_harness  # noqa: E402
from tests.harness import vcsim as vcsim_harness  # noqa: E402


def say(fmt, *args):
    print(fmt % args, flush=True)


class Demo(nova_harness.VcdriverTestCase):
    clusters = ('DC0_C0', 'DC0_C1')

    def setUp(self):
        super().setUp()
        # Let the operator-facing driver log (progress, placement) through.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            logging.Formatter('  [log] %(name)s: %(message)s'))
        driver_log = logging.getLogger('vcdriver')
        driver_log.addHandler(handler)
        driver_log.setLevel(logging.INFO)
        self.addCleanup(driver_log.removeHandler, handler)

    def test_demo(self):
        say('Nova hypervisors:')
        for h in self.api.api_get('/os-hypervisors/detail').body[
                'hypervisors']:
            rp = self._get_provider_uuid_by_name(h['hypervisor_hostname'])
            inv = self._get_provider_inventory(rp)
            say('  %-55s %s  VCPU %d (max %d/VM)  MEMORY_MB %d (max %d/VM)'
                '  DISK_GB %d', h['hypervisor_hostname'], h['state'],
                inv['VCPU']['total'], inv['VCPU']['max_unit'],
                inv['MEMORY_MB']['total'], inv['MEMORY_MB']['max_unit'],
                inv['DISK_GB']['total'])

        # Big enough for the transfer core's progress lines (every second
        # here: [vcdriver] image_transfer_progress_interval).
        image = self.upload_flat_vmdk('demo-disk', size=1024 ** 3)
        say('Glance image %s: %d bytes, %s %s...', image['id'], image['size'],
            image['os_hash_algo'], image['os_hash_value'][:16])

        say('Booting a server through the Nova API...')
        server = self.boot(image['id'], flavor_id='1')
        say('Nova: server %s is %s on node %s', server['id'],
            server['status'], server['OS-EXT-SRV-ATTR:hypervisor_hostname'])

        si = vcsim_harness.connect(self.vcsim)
        vm = si.content.searchIndex.FindByUuid(None, server['id'],
                                               vmSearch=True,
                                               instanceUuid=True)
        say('vCenter: VM "%s" %s on host %s in cluster %s, %d vCPU, %d MB,'
            ' files %s', vm.name, vm.runtime.powerState, vm.runtime.host.name,
            vm.runtime.host.parent.name, vm.config.hardware.numCPU,
            vm.config.hardware.memoryMB, vm.config.files.vmPathName)
        self.assertEqual('poweredOn', vm.runtime.powerState)
        root = next(d for d in vm.config.hardware.device
                    if isinstance(d, vim.vm.device.VirtualDisk))
        parent = getattr(root.backing, 'parent', None)
        say('vCenter: root disk %s, %d GB%s', root.backing.fileName,
            root.capacityInKB // (1024 * 1024),
            ', a linked clone of %s' % parent.fileName if parent else '')

        say('Snapshotting the server to Glance (createImage)...')
        snap_id = self.snapshot_server(server, 'demo-snapshot')
        snap = self.glance_image(snap_id)
        say('Glance image %s: %s, %s %s, %d bytes (streamOptimized, zeros '
            'left out)', snap_id, snap['status'], snap['disk_format'],
            snap.get('vmware_disktype'), snap['size'])
        self.assertEqual('active', snap['status'])

        say('Deleting the server...')
        self._delete_server(server)
        gone = si.content.searchIndex.FindByUuid(None, server['id'],
                                                 vmSearch=True,
                                                 instanceUuid=True)
        leftovers = [f for d in self.vcsim.datastores.values()
                     for f in os.listdir(d) if f == server['id']]
        say('Nova: server deleted. vCenter: VM %s, instance folder %s.',
            'gone' if gone is None else 'STILL THERE',
            'gone' if not leftovers else 'STILL THERE')
        self.assertIsNone(gone)
        self.assertEqual([], leftovers)


def main():
    say('Starting vcsim (2 clusters x 3 hosts, shared NFS datastore)...')
    with vcsim_harness.Vcsim(clusters=2, hosts_per_cluster=3, nfs=1) as sim:
        say('  vCenter simulator at %s', sim.url)
        say('Starting glance-api (first run builds its venv)...')
        with glance_harness.Glance() as glance:
            say('  Glance at %s', glance.url)
            Demo.vcsim, Demo.glance = sim, glance
            result = unittest.TextTestRunner(verbosity=0).run(
                unittest.defaultTestLoader.loadTestsFromTestCase(Demo))
    say('Demo %s.', 'succeeded' if result.wasSuccessful() else 'FAILED')
    return 0 if result.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
