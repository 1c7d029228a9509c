"""Several clusters on one service through real Nova: clusters added to or
removed from the configuration add or remove nodes on restart, node names
and uuids stay stable, and a VM moved to another cluster outside Nova is
reported, not lost."""

from nova import context as nova_context
from nova import objects
from nova.compute import power_state
from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness


class TestManyClusters(nova_harness.VcdriverTestCase):
    clusters = ('DC0_C0', 'DC0_C1')

    def _hypervisors(self):
        return {h['hypervisor_hostname']: h['id'] for h in self.api.api_get(
            '/os-hypervisors/detail').body['hypervisors']}

    def _restart_with(self, *clusters):
        self.flags(cluster_name=clusters[0], group='vmware')
        self.flags(cluster_names=list(clusters[1:]), group='vcdriver')
        self.compute = self.restart_compute_service(self.compute)
        self.computes[self.compute_host] = self.compute
        self._run_periodics()

    def test_nodes_follow_the_configuration_across_restarts(self):
        before = self._hypervisors()
        self.assertEqual(2, len(before))
        uuids = dict(self.driver.get_nodenames_by_uuid())

        self._restart_with('DC0_C0')
        after = self._hypervisors()
        self.assertEqual(1, len(after))
        self.assertLessEqual(set(after), set(before))

        self._restart_with('DC0_C0', 'DC0_C1')
        self.assertEqual(set(before), set(self._hypervisors()))
        self.assertEqual(uuids, self.driver.get_nodenames_by_uuid(),
                         'node uuids changed across restarts')

    def test_vm_moved_to_another_cluster_is_reported_not_lost(self):
        image = self.upload_flat_vmdk('moved')
        c0_node, c1_node = self.driver.get_available_nodes()
        server = self.boot(image['id'], node=c0_node)
        si = vcsim_harness.connect(self.vcsim)
        view = si.content.viewManager.CreateContainerView(
            si.content.rootFolder, [vim.ClusterComputeResource], True)
        c1 = next(c for c in view.view if c.name == 'DC0_C1')
        view.DestroyView()
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        vcsim_harness.wait_task(vm.RelocateVM_Task(vim.vm.RelocateSpec(
            host=c1.host[0], pool=c1.resourcePool)))
        self.assertEqual('DC0_C1', vm.runtime.host.parent.name)

        # Still listed, its power state still synced, and reported.
        self.assertIn(server['id'], self.driver.list_instance_uuids())
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(instance).state)
        self.assertIn('runs in cluster DC0_C1 (node %s), but Nova has it on '
                      'node %s' % (c1_node, c0_node),
                      self.stdlog.logger.output)
        self.api.post_server_action(server['id'], {'os-stop': None})
        self._wait_for_state_change(server, 'SHUTOFF')
        self.assertEqual('poweredOff', vm.runtime.powerState)

        self._delete_server(server)
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))
