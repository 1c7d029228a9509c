"""Storage policies (SPBM) through real Nova on vcsim with govmomi's PBM
simulator: a flavor's ``vmware:storage_policy`` (else ``[vmware]
pbm_default_policy``) puts the instance's files and disks only on
datastores that satisfy the policy, and the VM home and disks get it, as
read back from vCenter and PBM; an unknown policy, or one no datastore
of the cluster satisfies, fails the build before any VM or file exists
with an error naming it; with ``pbm_enabled`` off, flavors' policies are
ignored.

Simulated: placement follows tag-based rules against datastore tags the
launcher keeps (tools/vcsim/storage_policies.go); vSAN's default policy
asks for a storage provider the simulator has none of.
"""

import json
import os
import subprocess
import sys

import fixtures

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import process_logs


class TestStoragePolicies(nova_harness.OwnVcsimTestCase):
    vcsim_args = dict(clusters=1, hosts_per_cluster=1, nfs=2,
                      datastore_capacity_gb=100)
    # Casts stay casts: the compute's refusal must not reach the API call.
    cast_as_call = False

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
