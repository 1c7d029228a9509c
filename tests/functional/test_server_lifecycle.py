"""A server's life through Nova's API on vcsim, checked on vCenter's side."""

import os

from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness


class VCenterView:
    """What vCenter itself says, read with a separate pyVmomi session."""

    def __init__(self, sim):
        self.sim = sim
        self.si = vcsim_harness.connect(sim)

    def vm(self, instance_uuid):
        return self.si.content.searchIndex.FindByUuid(
            None, instance_uuid, vmSearch=True, instanceUuid=True)

    def cluster_of(self, vm):
        return vm.runtime.host.parent.name

    def files(self, datastore, folder):
        path = os.path.join(self.sim.datastores[datastore], folder)
        return sorted(os.listdir(path)) if os.path.isdir(path) else None


class TestServerLifecycle(nova_harness.VcdriverTestCase):

    def test_boot_stop_start_reboot_delete(self):
        image = self.upload_flat_vmdk('lifecycle')
        flavor = self.api.get_flavor('1')
        server = self.boot(image['id'], flavor_id='1')
        vc = VCenterView(self.vcsim)

        vm = vc.vm(server['id'])
        self.assertIsNotNone(vm, 'no VM with the instance uuid')
        self.assertEqual('poweredOn', vm.runtime.powerState)
        self.assertEqual(flavor['vcpus'], vm.config.hardware.numCPU)
        self.assertEqual(flavor['ram'], vm.config.hardware.memoryMB)
        self.assertEqual('DC0_C0', vc.cluster_of(vm))
        self.assertEqual(self.driver.get_available_nodes()[0],
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        disks = [d for d in vm.config.hardware.device
                 if isinstance(d, vim.vm.device.VirtualDisk)]
        self.assertEqual(1, len(disks))
        self.assertEqual(flavor['disk'] * 1024 ** 3, disks[0].capacityInBytes)
        ds_name, folder = vm.config.files.vmPathName[1:].split('] ')
        folder = folder.rsplit('/', 1)[0]
        files = vc.files(ds_name, folder)
        self.assertIn('%s.vmdk' % server['id'], files)
        self.assertEqual(*vcsim_view.root_disk_and_image(
            self.vcsim, server['id'], self.glance.image_path(image['id'])))

        self.api.post_server_action(server['id'], {'os-stop': None})
        self._wait_for_state_change(server, 'SHUTOFF')
        self.assertEqual('poweredOff', vc.vm(server['id']).runtime.powerState)

        self.api.post_server_action(server['id'], {'os-start': None})
        self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('poweredOn', vc.vm(server['id']).runtime.powerState)

        for kind in ('SOFT', 'HARD'):
            self.api.post_server_action(server['id'],
                                        {'reboot': {'type': kind}})
            self._wait_for_state_change(server, 'ACTIVE')
            self.assertEqual('poweredOn',
                             vc.vm(server['id']).runtime.powerState)

        self._delete_server(server)
        self.assertIsNone(vc.vm(server['id']))
        self.assertIsNone(vc.files(ds_name, folder),
                          'instance folder left on the datastore')

    def test_corrupt_image_fails_cleanly(self):
        image = self.upload_flat_vmdk('corrupt')
        self.glance.corrupt(image['id'])
        before = self.datastore_files()
        server = self.boot(image['id'], expected='ERROR')
        fault = server['fault']['message']
        self.assertIn('is corrupt', fault)
        self.assertIn('sha512', fault)
        vc = VCenterView(self.vcsim)
        self.assertIsNone(vc.vm(server['id']))
        self.assertEqual(before, self.datastore_files(),
                         'files left on the datastore')
        self._delete_server(server)

    def test_missing_vm_is_deleted_without_error(self):
        image = self.upload_flat_vmdk('vanish')
        server = self.boot(image['id'])
        vc = VCenterView(self.vcsim)
        vm = vc.vm(server['id'])
        vcsim_harness.wait_task(vm.PowerOffVM_Task())
        vcsim_harness.wait_task(vm.Destroy_Task())
        self.assertIsNone(vc.vm(server['id']))
        self._delete_server(server)


class TestTwoClusters(nova_harness.VcdriverTestCase):
    clusters = ('DC0_C0', 'DC0_C1')

    def test_two_nodes_with_inventory_and_boot_on_each(self):
        hypervisors = self.api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        names = sorted(h['hypervisor_hostname'] for h in hypervisors)
        self.assertEqual(sorted(self.driver.get_available_nodes()), names)
        self.assertEqual(2, len(names))
        for hyp in hypervisors:
            rp = self._get_provider_uuid_by_name(hyp['hypervisor_hostname'])
            inventory = self._get_provider_inventory(rp)
            self.assertEqual({'VCPU', 'MEMORY_MB', 'DISK_GB'},
                             set(inventory))
            # 3 hosts of 2 threads: the sum in total; a VM gets at most the
            # threads of one host, whatever the overcommit ratio.
            vcpu = inventory['VCPU']
            self.assertEqual(6, vcpu['total'])
            self.assertEqual(2, vcpu['max_unit'])

        image = self.upload_flat_vmdk('two-clusters')
        vc = VCenterView(self.vcsim)
        by_cluster = dict(zip(('DC0_C0', 'DC0_C1'),
                              self.driver.get_available_nodes(), strict=True))
        for cluster, node in by_cluster.items():
            server = self.boot(image['id'], node=node)
            self.assertEqual(
                node, server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
            self.assertEqual(cluster, vc.cluster_of(vc.vm(server['id'])))
            self._delete_server(server)
