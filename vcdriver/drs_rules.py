"""Server groups as DRS VM-VM rules.

Nova's ServerGroup(Anti)AffinityFilter sees compute service hosts, and one
service holds whole clusters: inside a cluster only DRS can keep a group's
VMs together on, or apart across, ESX hosts. So each group gets one rule
per cluster, ``nova-servergroup-<group uuid>``, over its members' VMs in
that cluster: an affinity rule for ``affinity``/``soft-affinity``, an
anti-affinity rule for the others, mandatory for the hard policies (with
which vcdriver's scheduler filters, scheduler/filters.py, put one member
per usable ESX host in a cluster). vCenter
wants two VMs in a VM-VM rule, so the rule exists only while two members
are in the cluster.

Spawn (before power-on, so DRS places the VM by the rule) and destroy bring
their group's rule up to date; a periodic pass (``[vcdriver]
drs_rule_repair_interval``) makes every ``nova-servergroup-*`` rule of a
cluster match Nova's groups, undoing changes made in vCenter by hand. Each
of them recomputes the rule from the VMs vCenter has and the members Nova
has, rather than adding or dropping one VM, so concurrent spawns, a failed
spawn or a lost update converge.
"""

import dataclasses
import itertools
import time

from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova.compute import task_states
from oslo_concurrency import lockutils
from oslo_log import log as logging
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import conf
from vcdriver import exception
from vcdriver import vm
from vcdriver.vsphere import compute_resource
from vcdriver.vsphere import props

LOG = logging.getLogger(__name__)
CONF = conf.CONF

RULE_PREFIX = 'nova-servergroup-'

# Server group policy -> (affinity rule, mandatory).
POLICIES = {
    'affinity': (True, True),
    'anti-affinity': (False, True),
    'soft-affinity': (True, False),
    'soft-anti-affinity': (False, False),
}


@dataclasses.dataclass(frozen=True)
class Rule:
    """A VM-VM rule as we want it, or as the cluster has it.

    ``affinity`` is None for a rule of another kind (VM-host, dependency)
    that took one of our names.
    """
    name: str
    affinity: object
    mandatory: bool
    vms: frozenset
    enabled: bool = True
    key: object = None
    rule_uuid: object = None


@dataclasses.dataclass(frozen=True)
class Change:
    """One entry of a rulesSpec: ``add``, ``edit`` or ``remove`` a rule."""
    operation: str
    rule: Rule


class Rejected(Exception):
    """vCenter refused a change of the rules; ``reason`` says how."""

    def __init__(self, reason, fault=None):
        super().__init__(reason)
        self.reason = reason
        self.fault = fault


def rule_name(group_uuid):
    return RULE_PREFIX + group_uuid


# --- what the rules should be (pure) -----------------------------------------

def desired_rule(group_uuid, policy, vms):
    """The rule of a group whose members have ``vms`` in a cluster; None
    below two VMs or for a policy without a rule."""
    if policy not in POLICIES or len(vms) < 2:
        return None
    affinity, mandatory = POLICIES[policy]
    return Rule(rule_name(group_uuid), affinity, mandatory, frozenset(vms))


def desired_rules(groups, placements):
    """{rule name: Rule} of one cluster.

    ``groups``: (group uuid, policy, member instance uuids);
    ``placements``: {instance uuid: VM} of the instances in the cluster.
    """
    rules = {}
    for group_uuid, policy, members in groups:
        rule = desired_rule(group_uuid, policy,
                            {placements[m] for m in members
                             if m in placements})
        if rule is not None:
            rules[rule.name] = rule
    return rules


def our_rules(rule_infos):
    """{name: [Rule]} of the ``nova-servergroup-*`` rules among a cluster's
    ``configurationEx.rule`` (a name may have been taken twice by hand)."""
    found = {}
    for info in rule_infos or ():
        if not (info.name or '').startswith(RULE_PREFIX):
            continue
        if isinstance(info, vim.cluster.AffinityRuleSpec):
            affinity = True
        elif isinstance(info, vim.cluster.AntiAffinityRuleSpec):
            affinity = False
        else:
            affinity = None
        found.setdefault(info.name, []).append(Rule(
            name=info.name, affinity=affinity,
            mandatory=bool(info.mandatory),
            vms=frozenset(getattr(info, 'vm', None) or ()),
            enabled=bool(info.enabled), key=info.key,
            rule_uuid=info.ruleUuid))
    return found


def plan(desired, existing):
    """The changes that turn ``existing`` ({name: [Rule]}) into ``desired``
    ({name: Rule}): per name, the first rule of the right kind is kept (and
    edited if it differs), every other rule of that name removed."""
    changes = []
    for name in sorted(set(desired) | set(existing)):
        want = desired.get(name)
        have = existing.get(name, ())
        keep = next((r for r in have
                     if want is not None and r.affinity == want.affinity),
                    None)
        changes.extend(Change('remove', r) for r in have if r is not keep)
        if want is None:
            continue
        if keep is None:
            changes.append(Change('add', want))
        elif (keep.vms, keep.mandatory, keep.enabled) != (
                want.vms, want.mandatory, want.enabled):
            changes.append(Change('edit', dataclasses.replace(
                want, key=keep.key, rule_uuid=keep.rule_uuid)))
    return changes


def rule_spec(change):
    """The vim.cluster.RuleSpec of a change."""
    rule = change.rule
    if change.operation == 'remove':
        return vim.cluster.RuleSpec(operation='remove', removeKey=rule.key)
    info_type = (vim.cluster.AffinityRuleSpec if rule.affinity
                 else vim.cluster.AntiAffinityRuleSpec)
    info = info_type(name=rule.name, enabled=True, mandatory=rule.mandatory,
                     vm=sorted(rule.vms, key=str))
    if change.operation == 'edit':
        # vCenter edits the rule by key; keep its uuid as it is.
        info.key = rule.key
        info.ruleUuid = rule.rule_uuid
    return vim.cluster.RuleSpec(operation=change.operation, info=info)


def describe_fault(error):
    """vCenter's refusal in one line: fault type, property, messages."""
    if not isinstance(error, vmodl.MethodFault):
        return str(error)
    name = error._wsdlName
    prop = getattr(error, 'invalidProperty', None)
    if prop:
        name += ' (%s)' % prop
    texts = [error.msg] if error.msg else []
    texts += [m.message for m in error.faultMessage or ()
              if getattr(m, 'message', None)]
    return '%s: %s' % (name, '; '.join(texts)) if texts else name


# --- vCenter -----------------------------------------------------------------

def _lock(cluster):
    """Serializes the read-modify-write of one cluster's rules in this
    process (a cluster is served by one compute service)."""
    return lockutils.lock('vcdriver-drs-rules-%s' % cluster.nodename)


def _read(session, cluster):
    """({instance uuid: VM}, our rules) of a cluster: vm.instances' reads
    and one more, whatever the number of VMs and rules."""
    placements = {uuid: vm_ref for uuid, (vm_ref, _c)
                  in vm.instances(session, [cluster]).items()}
    config = props.properties(
        session, [cluster.ref], vim.ClusterComputeResource,
        ['configurationEx']).get(cluster.ref, {}).get('configurationEx')
    return placements, our_rules(getattr(config, 'rule', None))


def _reconfigure(session, cluster, changes):
    spec = vim.cluster.ConfigSpecEx(
        rulesSpec=[rule_spec(c) for c in changes])
    try:
        compute_resource.reconfigure(session, cluster.ref, spec, modify=True)
    except (vmodl.MethodFault, exception.TaskFailed) as e:
        raise Rejected(describe_fault(e), e) from e
    for c in changes:
        LOG.info('DRS rule %s in cluster %s: %s%s', c.rule.name,
                 cluster.name, c.operation,
                 '' if c.operation == 'remove' else ' (%s, %s, %d VMs)' % (
                     'affinity' if c.rule.affinity else 'anti-affinity',
                     'mandatory' if c.rule.mandatory else 'preferred',
                     len(c.rule.vms)))


def sync_group(session, cluster, group_uuid, policy, members, leaving=()):
    """Make the group's rule in the cluster hold its members' VMs there,
    but those of the instance uuids in ``leaving``; return the changes
    made. Raises Rejected."""
    with _lock(cluster):
        return _sync_locked(session, cluster, group_uuid, policy, members,
                            leaving)


def _sync_locked(session, cluster, group_uuid, policy, members, leaving):
    name = rule_name(group_uuid)
    for attempt in (1, 2):
        placements, rules = _read(session, cluster)
        want = desired_rule(group_uuid, policy,
                            {placements[m] for m in members
                             if m in placements and m not in leaving})
        changes = plan({name: want} if want else {},
                       {name: rules.get(name, [])})
        try:
            if changes:
                _reconfigure(session, cluster, changes)
            return changes
        except Rejected as e:
            # A member's VM deleted since we read: read again.
            if attempt == 2 or not isinstance(
                    e.fault, vmodl.fault.ManagedObjectNotFound):
                raise


def _group(group):
    """(uuid, policy, members) of a Nova InstanceGroup."""
    if group.obj_attr_is_set('policy') and group.policy:
        policy = group.policy
    else:
        policy = (group.policies or [None])[0]
    return group.uuid, policy, list(group.members or ())


# A member in one of these task states is about to take its VM out of the
# cluster for good.
LEAVING_TASK_STATES = frozenset([task_states.DELETING,
                                 task_states.SHELVING_OFFLOADING])


def _leaving(context, members, instance_uuid):
    """The instance and the other members on their way out.

    Members deleted together (one request deleting a multi-create, or a
    script) each destroy their VM after updating the rule: if each left
    only itself out, the last update would keep the VMs of the others that
    read before them, and the rule would outlive the group's VMs.
    """
    others = [m for m in members if m != instance_uuid]
    found = objects.InstanceList.get_by_filters(
        context, {'uuid': others}, expected_attrs=[]) if others else ()
    return {instance_uuid} | {i.uuid for i in found
                              if i.task_state in LEAVING_TASK_STATES}


def _group_of(context, instance_uuid):
    try:
        return _group(objects.InstanceGroup.get_by_instance_uuid(
            context, instance_uuid))
    except nova_exception.InstanceGroupNotFound:
        return None


# --- entry points ------------------------------------------------------------

def on_spawn(session, context, cluster, instance):
    """Put the new VM in its group's rule, before it powers on.

    A hard policy the cluster refuses fails the spawn (its clean-up removes
    the VM); a soft one only costs the preference, so the spawn goes on.
    """
    group = _group_of(context, instance.uuid)
    if group is None:
        return
    group_uuid, policy, members = group
    if policy not in POLICIES or len(members) < 2:
        return  # alone in its group: no rule yet
    hard = POLICIES[policy][1]
    try:
        sync_group(session, cluster, group_uuid, policy, members)
    except Rejected as e:
        if hard:
            raise exception.DrsRuleRejected(
                instance_uuid=instance.uuid, group=group_uuid, policy=policy,
                cluster=cluster.name, reason=e.reason) from e
        LOG.warning('vCenter refused the %s rule of server group %s in '
                    'cluster %s: %s. The VM runs without it.', policy,
                    group_uuid, cluster.name, e.reason, instance=instance)
    except Exception:
        if hard:
            raise
        LOG.warning('Could not update the %s rule of server group %s in '
                    'cluster %s; the VM runs without it until the periodic '
                    'repair', policy, group_uuid, cluster.name,
                    exc_info=True, instance=instance)


def on_destroy(session, cluster, instance):
    """Take the departing VM out of its group's rule (removing the rule
    when fewer than two members stay); never fails the destroy."""
    context = nova_context.get_admin_context()
    try:
        # Everything read under the lock: the last of several members
        # leaving at once then sees that the others are going.
        with _lock(cluster):
            group = _group_of(context, instance.uuid)
            if group is None:
                return
            group_uuid, policy, members = group
            if policy in POLICIES and len(members) >= 2:
                _sync_locked(session, cluster, group_uuid, policy, members,
                             _leaving(context, members, instance.uuid))
    except Exception:
        LOG.warning("Could not update the DRS rule of this instance's "
                    'server group in cluster %s; the periodic repair will',
                    cluster.name, exc_info=True, instance=instance)


def repair(session, context, cluster):
    """Make every ``nova-servergroup-*`` rule of the cluster match Nova's
    groups: add the missing, edit the changed, remove the orphaned.

    One task per rule, so a rule vCenter refuses leaves the others
    repaired. Returns the changes made.
    """
    with _lock(cluster):
        placements, rules = _read(session, cluster)
        # One query for all groups rather than one per instance.
        groups = [_group(g) for g in
                  objects.InstanceGroupList.get_all(context)
                  if not placements.keys().isdisjoint(g.members or ())]
        changes = plan(desired_rules(groups, placements), rules)
        done = []
        for name, of_rule in itertools.groupby(changes,
                                               lambda c: c.rule.name):
            of_rule = list(of_rule)
            try:
                _reconfigure(session, cluster, of_rule)
                done.extend(of_rule)
            except Rejected as e:
                LOG.warning('vCenter refused to repair DRS rule %s in '
                            'cluster %s: %s', name, cluster.name, e.reason)
        if done:
            LOG.warning('Repaired %d DRS rule change(s) in cluster %s that '
                        "had drifted from Nova's server groups", len(done),
                        cluster.name)
        return done


class Repairer:
    """Runs :func:`repair` per cluster at most every ``[vcdriver]
    drs_rule_repair_interval`` seconds, from a periodic Nova calls often."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._last = {}  # nodename -> clock at the last pass

    def run_if_due(self, session, cluster):
        interval = CONF.vcdriver.drs_rule_repair_interval
        if interval <= 0:
            return None
        now = self._clock()
        last = self._last.get(cluster.nodename)
        if last is not None and now - last < interval:
            return None
        self._last[cluster.nodename] = now  # a failing pass waits too
        try:
            return repair(session, nova_context.get_admin_context(),
                          cluster)
        except Exception:
            LOG.exception('DRS rule repair of cluster %s failed; next try '
                          'in %d s', cluster.name, interval)
            return None
