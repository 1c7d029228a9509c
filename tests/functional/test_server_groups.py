"""Server groups through real Nova become DRS VM-VM rules in the cluster.

vCenter's side is read with a pyVmomi session of the test's own. The
session's vcsim is shared by every test: each test removes the rules it
made, and deletes its servers (and so their VMs).

What is simulated: vcsim accepts every rule, where a vCenter refuses some
(say, an enabled rule contradicting another). The refusal tests arm our
launcher (tools/vcsim/faults.go, a soap_fault on a DRS rule name) to
refuse the next add or edit of one rule name with InvalidArgument, as a
vCenter refuses a rules spec.
"""

import time
import uuid

from nova.tests.functional.api import client as api_client
from pyVmomi import vim

from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness

PREFIX = 'nova-servergroup-'


class _ServerGroupTestCase(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.si = vcsim_harness.connect(self.vcsim)
        self.image = self.upload_flat_vmdk('server-group')
        self.rule_names = set()  # every rule this test may leave behind
        self.addCleanup(self._remove_rules)

    # --- helpers ---------------------------------------------------------

    def _cluster(self):
        view = self.si.content.viewManager.CreateContainerView(
            self.si.content.rootFolder, [vim.ClusterComputeResource], True)
        try:
            return next(c for c in view.view if c.name == self.clusters[0])
        finally:
            view.DestroyView()

    def _rules(self):
        return list(self._cluster().configurationEx.rule or ())

    def _reconfigure(self, *rules_spec):
        vcsim_harness.wait_task(
            self._cluster().ReconfigureComputeResource_Task(
                spec=vim.cluster.ConfigSpecEx(rulesSpec=list(rules_spec)),
                modify=True))

    def _remove_rules(self):
        for r in self._rules():
            if r.name in self.rule_names:
                self._reconfigure(vim.cluster.RuleSpec(
                    operation='remove', removeKey=r.key))

    def group(self, policy, **rules):
        body = {'name': 'sg-%s' % policy, 'policy': policy}
        if rules:
            body['rules'] = rules
        group = self.api.post_server_groups(body)
        self.rule_names.add(PREFIX + group['id'])
        self.addCleanup(self.api.delete_server_group, group['id'])
        return group

    def boot_in(self, group, expected='ACTIVE'):
        server = self._build_server(image_uuid=self.image['id'],
                                    flavor_id='1', networks='none')
        server = self.api.post_server({
            'server': server, 'os:scheduler_hints': {'group': group['id']}})
        self.addCleanup(self._delete_if_there, server)
        return self._wait_for_state_change(server, expected,
                                           max_retries=120)

    def _delete_if_there(self, server):
        try:
            self.api.get_server(server['id'])
        except api_client.OpenStackApiNotFoundException:
            return
        self._delete_server(server)

    def rule(self, group):
        """The group's rule in the cluster; None if it has none."""
        found = [r for r in self._rules() if r.name == PREFIX + group['id']]
        self.assertLessEqual(len(found), 1, 'two rules of one group')
        return found[0] if found else None

    def members(self, rule):
        """Instance uuids of the VMs in a rule."""
        return {v.config.instanceUuid for v in rule.vm}

    def assert_rule(self, group, kind, mandatory, servers):
        rule = self.rule(group)
        self.assertIsNotNone(rule, 'no rule for group %s' % group['id'])
        self.assertIsInstance(rule, kind)
        self.assertTrue(rule.enabled)
        self.assertEqual(mandatory, bool(rule.mandatory))
        self.assertEqual({s['id'] for s in servers}, self.members(rule))
        return rule

    def repair_now(self):
        """Let the rate-limited repair pass run in Nova's periodic."""
        self.flags(drs_rule_repair_interval=1, group='vcdriver')
        time.sleep(1.1)
        self._run_periodics()

    def refuse(self, group, message):
        """Arm the launcher to refuse the group's rule once."""
        self.vcsim.inject(kind='soap_fault', drs_rule=PREFIX + group['id'],
                          message=message)
        self.addCleanup(self.vcsim.clear_faults)



class TestServerGroups(_ServerGroupTestCase):

    def test_affinity_makes_a_mandatory_affinity_rule(self):
        group = self.group('affinity')
        first = self.boot_in(group)
        self.assertIsNone(self.rule(group), 'a VM-VM rule of one VM')
        second = self.boot_in(group)
        self.assert_rule(group, vim.cluster.AffinityRuleSpec, True,
                         [first, second])
        # Fewer than two members: the rule goes.
        self._delete_server(second)
        self.assertIsNone(self.rule(group))
        self._delete_server(first)

    def test_anti_affinity_makes_a_mandatory_anti_affinity_rule(self):
        # Nova's own filter lets two members onto one compute service
        # (the cluster) only with max_server_per_host; DRS keeps them on
        # different ESX hosts.
        group = self.group('anti-affinity', max_server_per_host=2)
        servers = [self.boot_in(group) for _ in range(2)]
        self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec, True,
                         servers)
        for s in servers:
            self._delete_server(s)
        self.assertIsNone(self.rule(group))

    def test_soft_anti_affinity_rule_follows_its_members(self):
        group = self.group('soft-anti-affinity')
        servers = [self.boot_in(group) for _ in range(3)]
        rule = self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec,
                                False, servers)
        self._delete_server(servers[0])
        edited = self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec,
                                  False, servers[1:])
        self.assertEqual((rule.key, rule.ruleUuid),
                         (edited.key, edited.ruleUuid), 'not edited')
        self._delete_server(servers[1])
        self.assertIsNone(self.rule(group))
        self._delete_server(servers[2])

    def test_repair_recreates_a_removed_rule_and_drops_orphans(self):
        group = self.group('soft-affinity')
        servers = [self.boot_in(group) for _ in range(2)]
        rule = self.assert_rule(group, vim.cluster.AffinityRuleSpec, False,
                                servers)
        # By hand in vCenter: our rule removed, a rule of a group Nova
        # does not have, and an operator's own rule.
        orphan = PREFIX + str(uuid.uuid4())
        self.rule_names.update([orphan, 'operator-rule'])
        self._reconfigure(
            vim.cluster.RuleSpec(operation='remove', removeKey=rule.key),
            vim.cluster.RuleSpec(operation='add', info=(
                vim.cluster.AntiAffinityRuleSpec(
                    name=orphan, enabled=True, vm=rule.vm))),
            vim.cluster.RuleSpec(operation='add', info=(
                vim.cluster.AntiAffinityRuleSpec(
                    name='operator-rule', enabled=True, vm=rule.vm))))

        self.flags(drs_rule_repair_interval=0, group='vcdriver')
        self._run_periodics()
        self.assertIsNone(self.rule(group), 'repaired while disabled')

        self.repair_now()
        self.assert_rule(group, vim.cluster.AffinityRuleSpec, False,
                         servers)
        names = {r.name for r in self._rules()}
        self.assertNotIn(orphan, names)
        self.assertIn('operator-rule', names)
        self.assertIn('Repaired 2 DRS rule change(s)',
                      self.stdlog.logger.output)
        for s in servers:
            self._delete_server(s)

    def test_repair_puts_back_a_member_taken_out_by_hand(self):
        group = self.group('soft-anti-affinity')
        servers = [self.boot_in(group) for _ in range(3)]
        rule = self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec,
                                False, servers)
        # By hand: one VM out, and the preference made mandatory.
        self._reconfigure(vim.cluster.RuleSpec(
            operation='edit', info=vim.cluster.AntiAffinityRuleSpec(
                key=rule.key, ruleUuid=rule.ruleUuid, name=rule.name,
                enabled=True, mandatory=True, vm=rule.vm[:2])))
        self.assertEqual(2, len(self.rule(group).vm))

        self.repair_now()
        self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec, False,
                         servers)
        for s in servers:
            self._delete_server(s)

    def test_refused_hard_rule_fails_the_spawn(self):
        group = self.group('affinity')
        first = self.boot_in(group)
        self.refuse(group, 'conflicts with rule keep-apart')
        second = self.boot_in(group, expected='ERROR')

        message = self.api.get_server(second['id'])['fault']['message']
        self.assertIn('vCenter refused the DRS rule of server group %s '
                      '(policy affinity) in cluster DC0_C0: InvalidArgument '
                      '(rulesSpec): conflicts with rule keep-apart'
                      % group['id'], message)
        self.assertIsNone(self.instance_vm(second), 'VM left behind')
        self.assertIn('Spawn failed; removing the VM',
                      self.stdlog.logger.output)
        self.assertIsNone(self.rule(group))
        self.assertIsNotNone(self.instance_vm(first))
        self._delete_server(second)
        self._delete_server(first)

    def test_refused_soft_rule_keeps_the_server(self):
        group = self.group('soft-affinity')
        first = self.boot_in(group)
        self.refuse(group, 'conflicts with rule keep-apart')
        second = self.boot_in(group)

        self.assertIn('vCenter refused the soft-affinity rule of server '
                      'group %s in cluster DC0_C0: InvalidArgument '
                      '(rulesSpec): conflicts with rule keep-apart. The VM '
                      'runs without it.' % group['id'],
                      self.stdlog.logger.output)
        self.assertEqual('poweredOn',
                         self.instance_vm(second).runtime.powerState)
        self.assertIsNone(self.rule(group))
        for s in (second, first):
            self._delete_server(s)


class TestServerGroupsConcurrent(_ServerGroupTestCase):
    """Members built and deleted at the same time, as one multi-create
    request makes them."""
    cast_as_call = False

    def test_members_built_together_share_one_rule(self):
        group = self.group('soft-anti-affinity')
        request = self._build_server(image_uuid=self.image['id'],
                                     flavor_id='1', networks='none')
        request.update(min_count=4, max_count=4,
                       return_reservation_id=True)
        reservation = self.api.post_server({
            'server': request, 'os:scheduler_hints': {'group': group['id']}})
        servers = self.api.get_servers(search_opts={
            'reservation_id': reservation['reservation_id']})
        self.assertEqual(4, len(servers))
        for s in servers:
            self.addCleanup(self._delete_if_there, s)
        servers = [self._wait_for_state_change(s, 'ACTIVE', max_retries=240)
                   for s in servers]
        self.assert_rule(group, vim.cluster.AntiAffinityRuleSpec, False,
                         servers)

        for s in servers:
            self.api.delete_server(s['id'])
        for s in servers:
            self._wait_until_deleted(s)
        self.assertIsNone(self.rule(group))
