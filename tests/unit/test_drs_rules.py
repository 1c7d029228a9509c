"""Server groups as DRS rules: the rules wanted from groups and placements,
the changes from the rules a cluster has, and how refusals are handled."""

import types

import pytest
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import drs_rules
from vcdriver import exception

G1 = '11111111-1111-1111-1111-111111111111'
G2 = '22222222-2222-2222-2222-222222222222'
VM = {n: vim.VirtualMachine('vm-%d' % n) for n in range(1, 6)}


def placements(**uuids):
    """{instance uuid: VM} from i1=1, i2=2 ..."""
    return {uuid: VM[n] for uuid, n in uuids.items()}


def rule(group, affinity, mandatory, *vms, key=None, enabled=True):
    return drs_rules.Rule(drs_rules.rule_name(group), affinity, mandatory,
                          frozenset(VM[n] for n in vms), enabled=enabled,
                          key=key, rule_uuid=key and 'uuid-%s' % key)


# --- desired rules -----------------------------------------------------------

@pytest.mark.parametrize('policy, affinity, mandatory', [
    ('affinity', True, True),
    ('anti-affinity', False, True),
    ('soft-affinity', True, False),
    ('soft-anti-affinity', False, False),
])
def test_policy_gives_rule_kind_and_mandatory(policy, affinity, mandatory):
    rules = drs_rules.desired_rules([(G1, policy, ['i1', 'i2'])],
                                    placements(i1=1, i2=2))
    assert rules == {'nova-servergroup-' + G1:
                     rule(G1, affinity, mandatory, 1, 2)}


def test_only_members_in_the_cluster_count_and_two_are_needed():
    here = placements(i1=1, i2=2, i3=3)
    groups = [
        (G1, 'soft-anti-affinity', ['i1', 'i2', 'i3', 'elsewhere']),
        # One member here, one in another cluster: no VM-VM rule here.
        (G2, 'affinity', ['i4', 'elsewhere']),
    ]
    assert drs_rules.desired_rules(groups, here) == {
        drs_rules.rule_name(G1): rule(G1, False, False, 1, 2, 3)}
    assert drs_rules.desired_rules(
        [(G1, 'affinity', ['i1'])], here) == {}


def test_group_without_a_known_policy_has_no_rule():
    assert drs_rules.desired_rules([(G1, None, ['i1', 'i2'])],
                                   placements(i1=1, i2=2)) == {}


# --- plan --------------------------------------------------------------------

def test_missing_rule_is_added():
    want = rule(G1, True, True, 1, 2)
    assert drs_rules.plan({want.name: want}, {}) == [
        drs_rules.Change('add', want)]


def test_rule_as_wanted_is_left_alone():
    want = rule(G1, True, True, 1, 2)
    have = rule(G1, True, True, 1, 2, key=7)
    assert drs_rules.plan({want.name: want}, {want.name: [have]}) == []


@pytest.mark.parametrize('have', [
    rule(G1, False, False, 1, 2, key=7),              # a member taken out
    rule(G1, False, True, 1, 2, 3, key=7),            # made mandatory
    rule(G1, False, False, 1, 2, 3, key=7, enabled=False),  # disabled
])
def test_changed_rule_is_edited_keeping_key_and_uuid(have):
    want = rule(G1, False, False, 1, 2, 3)
    [change] = drs_rules.plan({want.name: want}, {want.name: [have]})
    assert change.operation == 'edit'
    assert change.rule.vms == want.vms
    assert (change.rule.mandatory, change.rule.enabled) == (False, True)
    assert (change.rule.key, change.rule.rule_uuid) == (7, 'uuid-7')


def test_rule_of_a_group_gone_from_the_cluster_is_removed():
    have = rule(G2, True, True, 4, 5, key=3)
    assert drs_rules.plan({}, {have.name: [have]}) == [
        drs_rules.Change('remove', have)]


def test_rule_of_the_wrong_kind_is_replaced():
    want = rule(G1, True, True, 1, 2)
    anti = rule(G1, False, True, 1, 2, key=4)
    foreign = drs_rules.Rule(want.name, None, False, frozenset(), key=5)
    assert drs_rules.plan({want.name: want},
                          {want.name: [anti, foreign]}) == [
        drs_rules.Change('remove', anti),
        drs_rules.Change('remove', foreign),
        drs_rules.Change('add', want)]


def test_duplicate_rules_of_one_name_keep_the_first():
    want = rule(G1, True, True, 1, 2)
    first = rule(G1, True, True, 1, 2, key=1)
    second = rule(G1, True, True, 1, 2, key=2)
    assert drs_rules.plan({want.name: want},
                          {want.name: [first, second]}) == [
        drs_rules.Change('remove', second)]


def test_plan_over_several_groups_is_grouped_by_rule():
    a = rule(G1, True, True, 1, 2)
    b_have = rule(G2, False, False, 3, key=9)
    changes = drs_rules.plan({a.name: a}, {b_have.name: [b_have]})
    assert [(c.operation, c.rule.name) for c in changes] == [
        ('add', a.name), ('remove', b_have.name)]


# --- vSphere objects ---------------------------------------------------------

def test_our_rules_from_the_cluster_configuration():
    infos = [
        vim.cluster.AffinityRuleSpec(
            name=drs_rules.rule_name(G1), key=1, ruleUuid='u1',
            enabled=True, mandatory=True, vm=[VM[1], VM[2]]),
        vim.cluster.AntiAffinityRuleSpec(
            name='keep-apart', key=2, enabled=True, vm=[VM[1], VM[3]]),
        vim.cluster.VmHostRuleInfo(
            name=drs_rules.rule_name(G2), key=3, enabled=True,
            vmGroupName='g', affineHostGroupName='h'),
    ]
    assert drs_rules.our_rules(infos) == {
        drs_rules.rule_name(G1): [drs_rules.Rule(
            drs_rules.rule_name(G1), True, True,
            frozenset([VM[1], VM[2]]), key=1, rule_uuid='u1')],
        drs_rules.rule_name(G2): [drs_rules.Rule(
            drs_rules.rule_name(G2), None, False, frozenset(), key=3)],
    }


def test_rule_specs():
    add = drs_rules.rule_spec(drs_rules.Change(
        'add', rule(G1, False, False, 2, 1)))
    assert add.operation == 'add'
    assert isinstance(add.info, vim.cluster.AntiAffinityRuleSpec)
    assert (add.info.name, add.info.enabled, add.info.mandatory) == (
        drs_rules.rule_name(G1), True, False)
    assert list(add.info.vm) == [VM[1], VM[2]]
    assert add.info.key is None

    edit = drs_rules.rule_spec(drs_rules.Change(
        'edit', rule(G1, True, True, 1, 2, key=7)))
    assert isinstance(edit.info, vim.cluster.AffinityRuleSpec)
    assert (edit.info.key, edit.info.ruleUuid) == (7, 'uuid-7')

    remove = drs_rules.rule_spec(drs_rules.Change(
        'remove', rule(G1, True, True, 1, 2, key=7)))
    assert (remove.operation, remove.removeKey, remove.info) == (
        'remove', 7, None)


def test_describe_fault():
    fault = vmodl.fault.InvalidArgument(
        invalidProperty='rulesSpec', msg='A specified parameter was not '
        'correct', faultMessage=[vmodl.LocalizableMessage(
            key='k', message='conflicts with rule keep-apart')])
    assert drs_rules.describe_fault(fault) == (
        'InvalidArgument (rulesSpec): A specified parameter was not '
        'correct; conflicts with rule keep-apart')
    assert drs_rules.describe_fault(vim.fault.InvalidState()) == (
        'InvalidState')


# --- one group's rule -------------------------------------------------------

def fake_vcenter(monkeypatch, reads, faults=()):
    """_read answers from ``reads`` in turn; _reconfigure raises ``faults``
    in turn, then succeeds. Returns the changes sent."""
    reads, faults, sent = list(reads), list(faults), []
    monkeypatch.setattr(drs_rules, '_read',
                        lambda session, cluster: reads.pop(0))

    def reconfigure(session, cluster, changes):
        sent.append(changes)
        if faults:
            fault = faults.pop(0)
            raise drs_rules.Rejected(type(fault).__name__, fault)

    monkeypatch.setattr(drs_rules, '_reconfigure', reconfigure)
    return sent


def test_departing_member_leaves_the_rule(monkeypatch):
    have = rule(G1, False, False, 1, 2, 3, key=4)
    sent = fake_vcenter(monkeypatch, [
        (placements(i1=1, i2=2, i3=3), {have.name: [have]})])
    [edit] = drs_rules.sync_group(None, CLUSTER, G1, 'soft-anti-affinity',
                                  ['i1', 'i2', 'i3'], leaving={'i3'})
    assert (edit.operation, edit.rule.vms, edit.rule.key) == (
        'edit', frozenset([VM[1], VM[2]]), 4)
    assert sent == [[edit]]


def test_last_but_one_member_leaving_removes_the_rule(monkeypatch):
    have = rule(G1, True, True, 1, 2, key=4)
    fake_vcenter(monkeypatch, [
        (placements(i1=1, i2=2), {have.name: [have]})])
    assert drs_rules.sync_group(None, CLUSTER, G1, 'affinity', ['i1', 'i2'],
                                leaving={'i1'}) == [
        drs_rules.Change('remove', have)]


def test_vm_deleted_meanwhile_means_one_more_read(monkeypatch):
    sent = fake_vcenter(monkeypatch, [
        (placements(i1=1, i2=2, i3=3), {}),
        (placements(i1=1, i2=2), {}),
    ], faults=[vmodl.fault.ManagedObjectNotFound()])
    changes = drs_rules.sync_group(None, CLUSTER, G1, 'affinity',
                                   ['i1', 'i2', 'i3'])
    assert changes == [drs_rules.Change('add', rule(G1, True, True, 1, 2))]
    assert len(sent) == 2


def test_refusal_is_not_retried(monkeypatch):
    sent = fake_vcenter(monkeypatch, [(placements(i1=1, i2=2), {})],
                        faults=[vmodl.fault.InvalidArgument()])
    with pytest.raises(drs_rules.Rejected):
        drs_rules.sync_group(None, CLUSTER, G1, 'affinity', ['i1', 'i2'])
    assert len(sent) == 1


# --- spawn: hard and soft refusals -------------------------------------------

CLUSTER = types.SimpleNamespace(name='Cluster1', nodename='domain-c1.x')
INSTANCE = types.SimpleNamespace(uuid='i2')


def refusing(monkeypatch, policy):
    monkeypatch.setattr(drs_rules, '_group_of',
                        lambda context, uuid: (G1, policy, ['i1', 'i2']))

    def sync_group(*args, **kwargs):
        raise drs_rules.Rejected('InvalidArgument (rulesSpec): no')

    monkeypatch.setattr(drs_rules, 'sync_group', sync_group)


@pytest.mark.parametrize('policy', ['affinity', 'anti-affinity'])
def test_refused_hard_rule_fails_the_spawn(monkeypatch, policy):
    refusing(monkeypatch, policy)
    with pytest.raises(exception.DrsRuleRejected) as e:
        drs_rules.on_spawn(None, None, CLUSTER, INSTANCE)
    message = e.value.format_message()
    assert G1 in message and policy in message and 'Cluster1' in message
    assert 'InvalidArgument (rulesSpec): no' in message


@pytest.mark.parametrize('policy', ['soft-affinity', 'soft-anti-affinity'])
def test_refused_soft_rule_only_warns(monkeypatch, policy, caplog):
    refusing(monkeypatch, policy)
    drs_rules.on_spawn(None, None, CLUSTER, INSTANCE)
    assert 'vCenter refused the %s rule of server group %s' % (
        policy, G1) in caplog.text


def test_lone_member_needs_no_vcenter_call(monkeypatch):
    monkeypatch.setattr(drs_rules, '_group_of',
                        lambda context, uuid: (G1, 'affinity', ['i2']))
    monkeypatch.setattr(drs_rules, 'sync_group', pytest.fail)
    drs_rules.on_spawn(None, None, CLUSTER, INSTANCE)


def test_members_deleted_together_all_leave_the_rule(monkeypatch):
    # i1..i3 deleted at once: i1's destroy must not keep the VMs of i2 and
    # i3, whose destroys updated the rule before it; only i4 stays, alone.
    have = rule(G1, False, False, 1, 2, 3, 4, key=4)
    sent = fake_vcenter(monkeypatch, [
        (placements(i1=1, i2=2, i3=3, i4=4), {have.name: [have]})])
    members = ['i1', 'i2', 'i3', 'i4']
    monkeypatch.setattr(drs_rules, '_group_of', lambda context, uuid: (
        G1, 'soft-anti-affinity', members))
    monkeypatch.setattr(drs_rules.nova_context, 'get_admin_context',
                        lambda: None)
    states = {'i2': 'deleting', 'i3': 'deleting', 'i4': None}

    def get_by_filters(context, filters, expected_attrs=None):
        assert sorted(filters['uuid']) == ['i2', 'i3', 'i4']
        return [types.SimpleNamespace(uuid=u, task_state=states[u])
                for u in filters['uuid']]

    monkeypatch.setattr(drs_rules.objects, 'InstanceList',
                        types.SimpleNamespace(get_by_filters=get_by_filters),
                        raising=False)
    drs_rules.on_destroy(None, CLUSTER, types.SimpleNamespace(uuid='i1'))
    assert sent == [[drs_rules.Change('remove', have)]]


# --- periodic repair rate limit ----------------------------------------------

def test_repair_runs_at_most_every_interval(monkeypatch, flags):
    runs = []
    monkeypatch.setattr(drs_rules, 'repair',
                        lambda session, context, cluster: runs.append(
                            cluster.nodename))
    monkeypatch.setattr(drs_rules.nova_context, 'get_admin_context',
                        lambda: None)
    now = [1000.0]
    repairer = drs_rules.Repairer(clock=lambda: now[0])
    other = types.SimpleNamespace(name='Cluster2', nodename='domain-c2.x')
    flags.config(drs_rule_repair_interval=600, group='vcdriver')
    repairer.run_if_due(None, CLUSTER)       # first call: runs
    repairer.run_if_due(None, other)         # per cluster
    now[0] += 599
    repairer.run_if_due(None, CLUSTER)       # too early
    now[0] += 1
    repairer.run_if_due(None, CLUSTER)
    assert runs == ['domain-c1.x', 'domain-c2.x', 'domain-c1.x']
    flags.config(drs_rule_repair_interval=0, group='vcdriver')
    now[0] += 10000
    repairer.run_if_due(None, CLUSTER)       # disabled
    assert len(runs) == 3


def test_failed_repair_is_logged_and_waits(monkeypatch, flags, caplog):
    def repair(session, context, cluster):
        raise RuntimeError('vCenter away')

    monkeypatch.setattr(drs_rules, 'repair', repair)
    monkeypatch.setattr(drs_rules.nova_context, 'get_admin_context',
                        lambda: None)
    flags.config(drs_rule_repair_interval=600, group='vcdriver')
    repairer = drs_rules.Repairer(clock=lambda: 5.0)
    assert repairer.run_if_due(None, CLUSTER) is None
    assert 'DRS rule repair of cluster Cluster1 failed' in caplog.text
    monkeypatch.setattr(drs_rules, 'repair', pytest.fail)
    repairer.run_if_due(None, CLUSTER)
