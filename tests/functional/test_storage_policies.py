"""Storage policies (SPBM) through real Nova on vcsim with govmomi's PBM
simulator: a flavor's ``vmware:storage_policy`` (else ``[vmware]
pbm_default_policy``) puts the instance's files and disks only on
datastores that satisfy the policy, and the VM home and disks get it, as
read back from vCenter and PBM; an unknown policy, or one no datastore
of the cluster satisfies, fails the build before any VM or file exists
with an error naming it; with ``pbm_enabled`` off, flavors' policies are
ignored. Resize, its revert, cold and live migration follow the (new)
flavor's policy: the VM home and disks get it, and the files move to a
datastore it accepts when theirs does not; a policy the destination
cannot satisfy rolls the resize back before anything moves.

Simulated: placement follows tag-based rules against datastore tags the
launcher keeps (tools/vcsim/storage_policies.go); vSAN's default policy
asks for a storage provider the simulator has none of. The launcher
records the profiles of RelocateVM_Task's spec and disk locators, and its
storage vMotion (tools/vcsim/relocate.go) moves the VM's folder and the
profiles with it.
"""

import json
import os
import subprocess
import sys

import fixtures
from oslo_utils import units

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import process_logs


class _PolicyTestCase(nova_harness.OwnVcsimTestCase):
    """A vCenter of its own with policies gold and silver (datastores
    tagged tier=gold or tier=silver satisfy them), PBM on, silver by
    default."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The compute checks the default policy exists as it starts.
        cls.gold = vcsim_view.create_tag_policy(cls.sim, 'gold', 'tier',
                                                'gold')
        cls.silver = vcsim_view.create_tag_policy(cls.sim, 'silver', 'tier',
                                                  'silver')

    def configure(self):
        super().configure()
        self.flags(pbm_enabled=True, pbm_default_policy='silver',
                   group='vmware')


class TestStoragePolicies(_PolicyTestCase):
    vcsim_args = dict(clusters=1, hosts_per_cluster=1, nfs=2,
                      datastore_capacity_gb=100)
    # Casts stay casts: the compute's refusal must not reach the API call.
    cast_as_call = False

    def setUp(self):
        super().setUp()
        # Without a policy the driver would take nfs1, which has more room.
        self.sim.set_datastore_space('nfs0', 40)
        self.sim.set_datastore_space('nfs1', 90)
        self.sim.set_storage_tags('nfs0', {'tier': ['gold']})
        self.sim.set_storage_tags('nfs1', {'tier': ['silver']})
        self.image = self.upload_flat_vmdk('spbm', size=1024 * 1024)

    def _flavor(self, name, policy=None):
        extra = {'vmware:storage_policy': policy} if policy else None
        return self._create_flavor(memory_mb=512, vcpu=1, disk=1,
                                   ephemeral=1, swap=64, name=name,
                                   extra_spec=extra)

    def _assert_placed(self, server, datastore, profile_id):
        """Every file and disk on ``datastore``; the VM home and every
        disk with the policy, as PBM reports it."""
        found, vm_datastores = vcsim_view.files_datastores(
            self.vcsim, server['id'])
        self.assertEqual({datastore}, found)
        self.assertEqual([datastore], vm_datastores)
        profiles = vcsim_view.storage_profiles(self.vcsim, server['id'])
        self.assertEqual(4, len(profiles), profiles)  # home, root, eph, swap
        for what, ids in profiles.items():
            self.assertEqual([profile_id], ids, what)

    def test_flavor_policy_places_and_applies(self):
        server = self.boot(self.image['id'],
                           flavor_id=self._flavor('gold', 'gold'))
        self._assert_placed(server, 'nfs0', self.gold)
        self.assertIn('datastore nfs0 (storage policy gold)',
                      self.stdlog.logger.output)
        self._delete_server(server)

    def test_default_policy_without_a_flavor_policy(self):
        # The default, silver, is nfs1's; give nfs0 the room.
        self.sim.set_datastore_space('nfs0', 90)
        self.sim.set_datastore_space('nfs1', 40)
        server = self.boot(self.image['id'], flavor_id=self._flavor('plain'))
        self._assert_placed(server, 'nfs1', self.silver)
        self._delete_server(server)

    def test_without_pbm_flavor_policies_are_ignored(self):
        self.flags(pbm_enabled=False, group='vmware')
        server = self.boot(self.image['id'],
                           flavor_id=self._flavor('gold-off', 'gold'))
        found, _ = vcsim_view.files_datastores(self.vcsim, server['id'])
        self.assertEqual({'nfs1'}, found)  # the most room, not gold's
        profiles = vcsim_view.storage_profiles(self.vcsim, server['id'])
        self.assertEqual({k: [] for k in profiles}, profiles)
        self.assertIn('The flavor asks for storage policy gold '
                      '(vmware:storage_policy), but [vmware] pbm_enabled is '
                      'off: ignored', self.stdlog.logger.output)
        self._delete_server(server)

    def _assert_refused(self, flavor_id, message):
        before = {ds: self.datastore_files(ds) for ds in ('nfs0', 'nfs1')}
        server = self.boot(self.image['id'], flavor_id=flavor_id,
                           expected='ERROR')
        self.assertIn(message, server['fault']['message'])
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))
        self.assertEqual(before, {ds: self.datastore_files(ds)
                                  for ds in ('nfs0', 'nfs1')},
                         'files left on the datastores')
        self._delete_server(server)

    def test_unknown_or_impossible_policy_fails_before_any_vm(self):
        self._assert_refused(
            self._flavor('platinum', 'platinum'),
            'vmware:storage_policy=platinum: vCenter has no storage policy '
            'of that name (its policies: ')
        self._assert_refused(
            self._flavor('vsan', 'vSAN Default Storage Policy'),
            'vmware:storage_policy=vSAN Default Storage Policy: no '
            'datastore of cluster DC0_C0 satisfies this storage policy')
        # gold with no datastore tagged gold any more.
        self.sim.set_storage_tags('nfs0', {})
        self._assert_refused(
            self._flavor('gold-gone', 'gold'),
            'vmware:storage_policy=gold: no datastore of cluster DC0_C0 '
            'satisfies this storage policy (nfs0: Datastore nfs0 does not '
            'satisfy policy gold: no tag gold of category tier; nfs1: ')

    def _check(self, tmp, fmt='json', **vmware):
        """``vcdriver check`` run as a command on a nova.conf for this
        vCenter, with these ``[vmware]`` options."""
        options = dict(host_ip=self.sim.host, host_port=self.sim.port,
                       host_username=self.sim.username,
                       host_password=self.sim.password,
                       cluster_name='DC0_C0', **vmware)
        path = os.path.join(tmp, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[vmware]\n%s[vcdriver]\nvcenter_protocol = http\n' % ''
                    .join('%s = %s\n' % kv for kv in options.items()))
        env = dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING='true')
        result = subprocess.run(
            [sys.executable, '-m', 'vcdriver', 'check', '--config-file',
             path, '--format', fmt], env=env, capture_output=True,
            text=True, timeout=120)
        process_logs.finished('python -m vcdriver check',
                              result.stdout + result.stderr)
        return result

    def test_check_lists_policies_and_compatible_datastores(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        result = self._check(tmp, pbm_enabled='true',
                             pbm_default_policy='silver')
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        data = json.loads(result.stdout)
        policies = {p['name']: p for p in
                    data['clusters'][0]['storage_policies']}
        self.assertEqual(['nfs0'], policies['gold']['datastores'])
        self.assertEqual(['nfs1'], policies['silver']['datastores'])
        self.assertTrue(policies['silver']['default'])
        self.assertEqual([], policies['vSAN Default Storage Policy']
                         ['datastores'])

        table = self._check(tmp, fmt='table', pbm_enabled='true',
                            pbm_default_policy='silver').stdout
        self.assertIn('STORAGE POLICY', table)
        self.assertRegex(table, r'silver \(default\)\s+nfs1\s+nfs1')
        self.assertRegex(table, r'gold\s+nfs0\s+nfs0')

        # A default no datastore satisfies, and one vCenter lacks.
        self.sim.set_storage_tags('nfs1', {})
        result = self._check(tmp, pbm_enabled='true',
                             pbm_default_policy='silver')
        self.assertEqual(2, result.returncode, result.stdout)
        self.assertIn("[vmware] pbm_default_policy 'silver': no usable "
                      'datastore of cluster DC0_C0 satisfies it',
                      result.stdout)
        result = self._check(tmp, pbm_enabled='true',
                             pbm_default_policy='platinum')
        self.assertEqual(2, result.returncode, result.stdout)
        self.assertIn("[vmware] pbm_default_policy 'platinum': vCenter has "
                      'no storage policy of that name', result.stdout)


class TestStoragePolicyMoves(_PolicyTestCase):
    """Two clusters, each served by its own compute service (live
    migration is between services), sharing nfs0 and nfs1; each has a
    datastore of its own (ds-DC0_C0, ds-DC0_C1)."""
    vcsim_args = dict(clusters=2, hosts_per_cluster=1, nfs=2,
                      datastore_capacity_gb=100,
                      extra_args=('-cluster-datastores',))
    clusters = ('DC0_C0',)
    start_compute = False
    # Casts stay casts: the compute's refusal must not reach the API call.
    cast_as_call = False

    def configure(self):
        super().configure()
        self.flags(allow_resize_to_same_host=True)

    def setUp(self):
        super().setUp()
        self.compute, self.compute1 = self.start_computes(
            {'compute-c0': 'DC0_C0', 'compute-c1': 'DC0_C1'})
        self.c0 = self.compute.manager.driver.get_available_nodes()[0]
        self.c1 = self.compute1.manager.driver.get_available_nodes()[0]
        # Untagged, the cluster datastores have the most room: a move
        # that ignored the policy would take one.
        for name, free, tags in (('nfs0', 40, {'tier': ['gold']}),
                                 ('nfs1', 90, {'tier': ['silver']}),
                                 ('ds-DC0_C0', 95, {}),
                                 ('ds-DC0_C1', 95, {})):
            self.sim.set_datastore_space(name, free)
            self.sim.set_storage_tags(name, tags)
        self.image = self.upload_flat_vmdk('spbm-moves', size=1024 * 1024)
        self.silver_flavor = self._flavor('silver', 'silver')
        self.gold_flavor = self._flavor('gold', 'gold', disk=2,
                                        memory_mb=1024)

    def _flavor(self, name, policy, disk=1, memory_mb=512):
        return self._create_flavor(
            memory_mb=memory_mb, vcpu=1, disk=disk, ephemeral=1, swap=64,
            name=name, extra_spec={'vmware:storage_policy': policy})

    def _schedule_to(self, node):
        """Only ``node`` passes the scheduler's filters from now on."""
        if getattr(self, '_target', None) is None:
            self.useFixture(fixtures.MockPatch(
                'nova.scheduler.filters.compute_filter.ComputeFilter.'
                'host_passes', side_effect=lambda host_state, spec:
                host_state.nodename == self._target))
        self._target = node

    def _resize(self, server, flavor, node):
        self._schedule_to(node)
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': flavor}})
        return self._wait_for_state_change(server, 'VERIFY_RESIZE',
                                           max_retries=120)

    def _revert(self, server):
        self.api.post_server_action(server['id'], {'revertResize': None})
        return self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None},
            max_retries=120)

    def _placed(self, server, cluster, datastore, profile_id, root_gb):
        """In ``cluster``, powered on; every file and disk on
        ``datastore``, none of its folder left elsewhere; the VM home
        and every disk with the policy, as PBM reports it; the root disk
        of ``root_gb``."""
        self.assertEqual((cluster, 'poweredOn'),
                         vcsim_view.cluster_and_power(self.vcsim,
                                                      server['id']))
        found, vm_datastores = vcsim_view.files_datastores(
            self.vcsim, server['id'])
        self.assertEqual(({datastore}, [datastore]), (found, vm_datastores))
        for other in set(self.vcsim.datastores) - {datastore}:
            self.assertEqual(set(), {
                f for f in self.datastore_files(other)
                if f.startswith(server['id'] + '/')}, other)
        profiles = vcsim_view.storage_profiles(self.vcsim, server['id'])
        self.assertEqual(4, len(profiles), profiles)  # home, root, eph, swap
        self.assertEqual({k: [profile_id] for k in profiles}, profiles)
        _bus, root = vcsim_view.disks(self.vcsim, server['id'])[0]
        self.assertEqual(root_gb, root.capacityInKB // units.Mi)

    def test_resize_to_another_policy_moves_then_revert_moves_back(self):
        server = self.boot(self.image['id'], flavor_id=self.silver_flavor,
                           node=self.c0)
        self._placed(server, 'DC0_C0', 'nfs1', self.silver, 1)

        server = self._resize(server, self.gold_flavor, self.c0)
        self._placed(server, 'DC0_C0', 'nfs0', self.gold, 2)
        self.assertIn("Moving the VM's files from nfs1 to datastore nfs0 "
                      '(storage policy gold)', self.stdlog.logger.output)

        # nfs0 does not satisfy silver: the files go back to nfs1.
        server = self._revert(server)
        self._placed(server, 'DC0_C0', 'nfs1', self.silver, 1)
        self._delete_server(server)

    def test_resize_across_clusters_then_revert_keeps_an_accepted_datastore(
            self):
        self.sim.set_storage_tags('nfs0', {'tier': ['gold', 'silver']})
        server = self.boot(self.image['id'], flavor_id=self.silver_flavor,
                           node=self.c0)
        self._placed(server, 'DC0_C0', 'nfs1', self.silver, 1)

        server = self._resize(server, self.gold_flavor, self.c1)
        self.assertEqual(self.c1,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self._placed(server, 'DC0_C1', 'nfs0', self.gold, 2)

        # nfs0 satisfies silver too: the VM stays there, silver again.
        server = self._revert(server)
        self.assertEqual(self.c0,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self._placed(server, 'DC0_C0', 'nfs0', self.silver, 1)
        self._delete_server(server)

    def test_resize_to_a_policy_the_datastore_satisfies_then_confirm(self):
        self.sim.set_storage_tags('nfs1', {'tier': ['silver', 'gold']})
        server = self.boot(self.image['id'], flavor_id=self.silver_flavor,
                           node=self.c0)
        self._placed(server, 'DC0_C0', 'nfs1', self.silver, 1)

        # nfs1 satisfies gold: only the policy changes.
        server = self._resize(server, self.gold_flavor, self.c0)
        self._placed(server, 'DC0_C0', 'nfs1', self.gold, 2)
        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._placed(server, 'DC0_C0', 'nfs1', self.gold, 2)
        self.assertEqual(set(), {f for f in self.datastore_files('nfs1')
                                 if '.orig' in f})
        self._delete_server(server)

    def _gold_on_c0(self):
        """A gold server on c0's own datastore, which c1 cannot see."""
        self.sim.set_storage_tags('ds-DC0_C0', {'tier': ['gold']})
        server = self.boot(self.image['id'], node=self.c0,
                           flavor_id=self._flavor('gold-1', 'gold'))
        self._placed(server, 'DC0_C0', 'ds-DC0_C0', self.gold, 1)
        return server

    def test_cold_migration_across_clusters_takes_an_accepted_datastore(
            self):
        server = self._gold_on_c0()
        self._schedule_to(self.c1)
        self.api.post_server_action(server['id'], {'migrate': None})
        server = self._wait_for_state_change(server, 'VERIFY_RESIZE',
                                             max_retries=120)
        # Not ds-DC0_C1 or nfs1, which have more room.
        self._placed(server, 'DC0_C1', 'nfs0', self.gold, 1)
        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._placed(server, 'DC0_C1', 'nfs0', self.gold, 1)
        self._delete_server(server)

    def test_live_migration_across_clusters_takes_an_accepted_datastore(
            self):
        server = self._gold_on_c0()
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': 'compute-c1', 'block_migration': False}})
        server = self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None, 'status': 'ACTIVE'},
            max_retries=120)
        self._wait_for_migration_status(server, ['completed'])
        self.assertEqual(self.c1,
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self._placed(server, 'DC0_C1', 'nfs0', self.gold, 1)
        self._delete_server(server)

    def test_impossible_policy_rolls_the_resize_back(self):
        server = self.boot(self.image['id'], flavor_id=self.silver_flavor,
                           node=self.c0)
        self.sim.set_storage_tags('ds-DC0_C0', {'tier': ['gold']})
        # gold only on c0's own datastore, which c1 does not have.
        self.sim.set_storage_tags('nfs0', {})
        for count, (flavor, node, message) in enumerate([
                (self._flavor('vsan', 'vSAN Default Storage Policy'),
                 self.c0, 'vmware:storage_policy=vSAN Default Storage '
                 'Policy: no datastore of cluster DC0_C0 satisfies this '
                 'storage policy'),
                (self._flavor('gold-1', 'gold'), self.c1,
                 'vmware:storage_policy=gold: no datastore of cluster '
                 'DC0_C1 satisfies this storage policy')], 1):
            with self.subTest(message):
                self._schedule_to(node)
                self.api.post_server_action(
                    server['id'], {'resize': {'flavorRef': flavor}})
                server = self._wait_for_server_parameter(
                    server, {'status': 'ACTIVE',
                             'OS-EXT-STS:task_state': None},
                    max_retries=120)
                self._wait_for_refusals(server, count)
                self.assertIn(message, self.stdlog.logger.output)
                self.assertEqual(self.c0,
                                 server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
                self._placed(server, 'DC0_C0', 'nfs1', self.silver, 1)
        self._delete_server(server)
