"""Live migration between clusters of one vCenter through real Nova on
vcsim, and its rollback when vCenter fails the relocation.

Nova live-migrates between compute *services* (it refuses the source host
as destination and cannot name a node), so this test runs two services,
one per cluster. They share one process, hence Nova's local node uuid,
which the driver gives its ``[vmware] cluster_name`` node: each node gets
the uuid the driver gives other clusters instead.

Simulated: vcsim's RelocateVM_Task changes the VM's host and pool only
(the datastore is shared, so no file has to move); the failed vMotion is
our launcher's injected fault (tools/vcsim/faults.go: a soap_fault
MigrationNotReady on RelocateVM_Task), which leaves the VM where it was,
as vCenter does.
"""



from tests.functional import vcsim_view
from tests.harness import nova as nova_harness


class TestLiveMigration(nova_harness.VcdriverTestCase):
    clusters = ('DC0_C0',)
    start_compute = False

    def setUp(self):
        super().setUp()
        self.compute, self.compute1 = self.start_computes(
            {'compute-c0': 'DC0_C0', 'compute-c1': 'DC0_C1'})
        self.c0 = self.compute.manager.driver.get_available_nodes()[0]
        self.c1 = self.compute1.manager.driver.get_available_nodes()[0]
        self.image = self.upload_flat_vmdk('live')
        self.addCleanup(self._disarm)

    def _disarm(self):
        self.vcsim.clear_faults()

    def _cluster_of(self, server):
        return vcsim_view.cluster_and_power(self.vcsim, server['id'])

    def _live_migrate_to(self, server, host):
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': host, 'block_migration': False}})
        return self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None, 'status': 'ACTIVE'},
            max_retries=120)

    def test_live_migrate_across_clusters_and_back(self):
        server = self.boot(self.image['id'], node=self.c0)
        self.assertEqual(('DC0_C0', 'poweredOn'), self._cluster_of(server))

        server = self._live_migrate_to(server, 'compute-c1')
        self._wait_for_migration_status(server, ['completed'])
        self.assertEqual('compute-c1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(self.c1,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual(('DC0_C1', 'poweredOn'), self._cluster_of(server))
        self.assertIn(server['id'],
                      self.compute1.manager.driver.list_instance_uuids())

        server = self._live_migrate_to(server, 'compute-c0')
        self._wait_for_migration_status(server, ['completed'])
        self.assertEqual(self.c0,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual(('DC0_C0', 'poweredOn'), self._cluster_of(server))
        self._delete_server(server)
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))

    def test_failed_relocation_rolls_back_and_the_vm_keeps_running(self):
        server = self.boot(self.image['id'], node=self.c0)
        fault = self.vcsim.inject(
            kind='soap_fault', method='RelocateVM_Task', object=server['id'],
            fault='MigrationNotReady',
            message='no compatible host (simulated)')

        server = self._live_migrate_to(server, 'compute-c1')
        self._wait_for_migration_status(server, ['failed'])
        self.assertEqual('compute-c0', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(self.c0,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual(('DC0_C0', 'poweredOn'), self._cluster_of(server))
        self.assertIn('no compatible host (simulated)',
                      self.stdlog.logger.output)
        self.assertEqual(1, {f['id']: f['hits']
                             for f in self.vcsim.faults()}[fault])
        self._delete_server(server)
