"""vcdriver's server group filters (vcdriver/scheduler/filters.py) in real
Nova's scheduler, in place of Nova's, as doc/source/features.rst enables
them: a hard anti-affinity group without ``max_server_per_host`` fills a
cluster one member per ESXi host, and no further; a KVM node beside it
keeps Nova's one member per host.

Simulated: vcsim powers a VM on where it was created, at random; our
launcher (tools/vcsim/drs_placement.go) moves it first to a host running
no other VM of its mandatory anti-affinity rule, or refuses the power-on,
as DRS does.
"""

from nova import context as nova_context
from nova import objects
from pyVmomi import vim

from tests.functional import test_multi_hypervisor as multi
from tests.functional import vcsim_view
from tests.functional.test_server_groups import _ServerGroupTestCase

NO_VALID_HOST = 'No valid host was found'


def enable_filters(test):
    """As an operator does (doc/source/features.rst): vcdriver's filters
    under Nova's names, and no late group check on the computes."""
    test.flags(available_filters=['vcdriver.scheduler.filters.all_filters'],
               group='filter_scheduler')
    test.flags(disable_group_policy_check_upcall=True, group='workarounds')


class _GroupFilterTestCase(_ServerGroupTestCase):

    def configure(self):
        super().configure()
        enable_filters(self)

    def node_stats(self):
        node = self.driver.get_available_nodes()[0]
        return objects.ComputeNode.get_by_nodename(
            nova_context.get_admin_context(), node).stats

    def assert_one_per_esxi_host(self, servers):
        """Every server's VM powered on in the test's cluster, each on an
        ESXi host of its own."""
        hosts = []
        for server in servers:
            vm = vcsim_view.vm_of(self.vcsim, server['id'])
            self.assertEqual((self.clusters[0], 'poweredOn'),
                             vcsim_view.cluster_and_power(self.vcsim,
                                                          server['id']))
            hosts.append(vm.runtime.host.name)
        self.assertEqual(len(servers), len(set(hosts)), hosts)

    def assert_no_valid_host(self, server):
        self.assertIn(NO_VALID_HOST, server['fault']['message'])
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']),
                          'a VM for a server Nova could not place')


class TestAntiAffinityInACluster(_GroupFilterTestCase):

    def test_one_member_per_esxi_host_then_no_valid_host(self):
        # The scheduler's view of the node: three usable ESXi hosts.
        self.assertEqual('3', self.node_stats()['vcdriver_usable_esxi_hosts'])
        group = self.group('anti-affinity')
        servers = [self.boot_in(group) for _ in range(3)]
        node = self.driver.get_available_nodes()[0]
        self.assertEqual(
            [node] * 3,
            [s['OS-EXT-SRV-ATTR:hypervisor_hostname'] for s in servers])
        self.assert_one_per_esxi_host(servers)
        self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec, True,
                         servers)

        fourth = self.boot_in(group, expected='ERROR')
        self.assert_no_valid_host(fourth)
        self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec, True,
                         servers)


class TestAntiAffinityBesideKvm(_GroupFilterTestCase):

    def configure(self):
        super().configure()
        multi.ram_weigher_only(self)

    def setUp(self):
        super().setUp()
        qcow2 = multi.start_kvm_beside(self)
        # A qcow2 image both nodes boot; the heavier KVM node first.
        self.image = self.glance.upload(qcow2, 'server-group-any',
                                        disk_format='qcow2',
                                        container_format='bare')

    def test_kvm_keeps_one_member_the_cluster_one_per_esxi_host(self):
        group = self.group('anti-affinity')
        servers = [self.boot_in(group) for _ in range(4)]
        self.assertEqual([multi.KVM] + [multi.VCENTER] * 3,
                         [s['OS-EXT-SRV-ATTR:host'] for s in servers])
        self.assert_one_per_esxi_host(servers[1:])
        self.assert_no_valid_host(self.boot_in(group, expected='ERROR'))
