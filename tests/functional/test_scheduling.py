"""Scheduling truth through real Nova: a cluster is not one big host.

A vcsim vCenter of our own per test class: clusters of three 12 GB hosts
(8 cores each) that VMs Nova does not know can fill.
"""

from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness

GB_MB = 1024


class _ClassicCluster(nova_harness.OwnVcsimTestCase):
    clusters = ('DC0_C0',)
    vcsim_args = dict(clusters=1, hosts_per_cluster=3, nfs=1,
                      host_memory_mb=12 * GB_MB, host_cpu_cores=8)

    def _cluster(self, name='DC0_C0'):
        view = self.si.content.viewManager.CreateContainerView(
            self.si.content.rootFolder, [vim.ClusterComputeResource], True)
        try:
            return next(c for c in view.view if c.name == name)
        finally:
            view.DestroyView()

    def _run_outside_nova(self, memory_mb, tag, cluster='DC0_C0'):
        """A powered-off VM of ``memory_mb`` on every host of the
        cluster, not Nova's; their names."""
        cluster = self._cluster(cluster)
        dc = cluster.parent.parent
        names = []
        for host in cluster.host:
            spec = vim.vm.ConfigSpec(
                name='other-%s-%s' % (tag, host.name), numCPUs=2,
                memoryMB=memory_mb, guestId='otherGuest',
                files=vim.vm.FileInfo(vmPathName='[nfs0]'))
            vm = vcsim_harness.wait_task(dc.vmFolder.CreateVM_Task(
                config=spec, pool=cluster.resourcePool, host=host))
            self.addCleanup(lambda vm=vm: vcsim_harness.wait_task(
                vm.Destroy_Task()))
            names.append(spec.name)
        return names

    def _flavor(self, name, memory_mb):
        return self.api.post_flavor({'flavor': {
            'name': name, 'ram': memory_mb, 'vcpus': 1, 'disk': 1}})['id']

    def _refusals(self):
        """[(compute host, exception, message)] of the builds a compute
        service gave up, as Nova notified them (instance.create.error)."""
        found = []
        for n in self.notifier.versioned_notifications:
            if n['event_type'] == 'instance.create.error':
                fault = n['payload']['nova_object.data']['fault'][
                    'nova_object.data']
                found.append((n['publisher_id'].partition(':')[2],
                              fault['exception'],
                              fault['exception_message']))
        return found

    def _creations_of(self, server):
        """The clusters vCenter created the server's VM on, as its events
        tell (vcdriver names the VM ``<name> (<uuid>)``)."""
        return [cluster for name, cluster, _host
                in vcsim_view.vm_creations(self.sim)
                if '(%s)' % server['id'] in name]

    def _memory_inventory(self):
        node = self.driver.get_available_nodes()[0]
        rp = self._get_provider_uuid_by_name(node)
        return self._get_provider_inventory(rp)['MEMORY_MB']


class TestClassicCase(_ClassicCluster):

    def test_no_host_can_take_it_so_the_scheduler_says_no(self):
        self._run_outside_nova(4 * GB_MB, 'classic')
        self._run_periodics()
        memory = self._memory_inventory()
        self.assertEqual(36 * GB_MB, memory['total'])
        # 12 GB - 4 GB of VMs - reserved_host_memory_mb (512).
        self.assertEqual(8 * GB_MB - 512, memory['max_unit'])

        image = self.upload_flat_vmdk('classic')
        big = self.boot(image['id'], flavor_id=self._flavor('10g', 10240),
                        expected='ERROR')
        self.assertIn('No valid host',
                      self.api.get_server(big['id'])['fault']['message'])
        self._delete_server(big)

        fits = self.boot(image['id'], flavor_id=self._flavor('6g', 6144))
        self.assertEqual('ACTIVE', fits['status'])
        self._delete_server(fits)

    def test_maintenance_mode_changes_the_inventory(self):
        self._run_periodics()
        self.assertEqual(36 * GB_MB, self._memory_inventory()['total'])
        host = self._cluster().host[0]
        vcsim_harness.wait_task(host.EnterMaintenanceMode_Task(timeout=0))
        self.addCleanup(lambda: vcsim_harness.wait_task(
            host.ExitMaintenanceMode_Task(timeout=0)))
        self._run_periodics()
        self.assertEqual(24 * GB_MB, self._memory_inventory()['total'])

    def test_spawn_refuses_what_no_host_can_take_now(self):
        # Placement saw free hosts; other workloads came before the boot.
        self._run_periodics()
        self._run_outside_nova(8 * GB_MB, 'late')
        image = self.upload_flat_vmdk('late')
        server = self.boot(image['id'], flavor_id=self._flavor('6g', 6144),
                           expected='ERROR')
        self.assertIn('Exceeded maximum number of retries',
                      self.api.get_server(server['id'])['fault']['message'])
        (host, exception, message), = self._refusals()
        self.assertEqual(('compute-vc', 'ComputeResourcesUnavailable'),
                         (host, exception))
        self.assertIn('no host can take 1 vCPU and 6144 MB now', message)
        self.assertEqual([], self._creations_of(server),
                         'vCenter created a VM before the fit check')
        self._delete_server(server)


class TestFitCheckReschedules(_ClassicCluster):
    """Two compute services, one cluster each. Placement saw room on A,
    then VMs outside Nova filled A's hosts: the fit check refuses the
    spawn on A before vCenter is asked for a VM, and Nova reschedules it
    to B. vCenter's own events say which clusters VMs were created on."""

    vcsim_args = dict(_ClassicCluster.vcsim_args, clusters=2)
    start_compute = False
    CLUSTERS = {'compute-a': 'DC0_C0', 'compute-b': 'DC0_C1'}

    def setUp(self):
        super().setUp()
        self.compute, self.compute_b = self.start_computes(self.CLUSTERS)

    def test_refused_spawn_creates_no_vm_and_lands_on_the_other(self):
        # B has a host in maintenance: less room in placement's view, so
        # the scheduler (spreading by free RAM) tries A first.
        spare = self._cluster('DC0_C1').host[0]
        vcsim_harness.wait_task(spare.EnterMaintenanceMode_Task(timeout=0))
        self.addCleanup(lambda: vcsim_harness.wait_task(
            spare.ExitMaintenanceMode_Task(timeout=0)))
        self._run_periodics()
        self.assertEqual(12 * GB_MB - 512,
                         self._memory_inventory()['max_unit'])
        outside = self._run_outside_nova(8 * GB_MB, 'late')
        image = self.upload_flat_vmdk('late')
        server = self.boot(image['id'], flavor_id=self._flavor('6g', 6144))

        self.assertEqual('compute-b', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(('DC0_C1', 'poweredOn'),
                         vcsim_view.cluster_and_power(self.sim, server['id']))
        # A refused it, as Nova notified (not as our log says).
        (host, exception, message), = self._refusals()
        self.assertEqual(('compute-a', 'ComputeResourcesUnavailable'),
                         (host, exception))
        self.assertIn('cluster DC0_C0: no host can take 1 vCPU and 6144 MB',
                      message)
        # vCenter never made a VM on A but those outside Nova (made before
        # the boot: their events are kept, so any later one would be), and
        # the server's VM once, on B (beside the image import's VM).
        self.assertEqual(sorted(outside), sorted(
            name for name, cluster, _host in vcsim_view.vm_creations(self.sim)
            if cluster == 'DC0_C0'))
        self.assertEqual(['DC0_C1'], self._creations_of(server))
        self._delete_server(server)


class TestHAAdmissionPercent(_ClassicCluster):
    """HA keeps 25 % of CPU and 50 % of memory for failover."""
    vcsim_args = dict(_ClassicCluster.vcsim_args,
                      extra_args=('-ha-admission', 'percent:25:50'))

    def test_failover_capacity_is_reserved(self):
        self._run_periodics()
        memory = self._memory_inventory()
        self.assertEqual(36 * GB_MB, memory['total'])
        self.assertEqual(512 + 18 * GB_MB, memory['reserved'])
        node = self.driver.get_available_nodes()[0]
        vcpu = self._get_provider_inventory(
            self._get_provider_uuid_by_name(node))['VCPU']
        self.assertEqual((24, 6), (vcpu['total'], vcpu['reserved']))


class TestHAFailoverHost(_ClassicCluster):
    """HA keeps one host of the three spare."""
    vcsim_args = dict(_ClassicCluster.vcsim_args,
                      extra_args=('-ha-admission', 'failover-hosts:1'))

    def test_spare_host_is_not_offered(self):
        self._run_periodics()
        self.assertEqual(24 * GB_MB, self._memory_inventory()['total'])
