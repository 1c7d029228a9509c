"""Nova's server group filters, with a vCenter cluster counted by its ESXi
hosts.

Nova's ServerGroupAntiAffinityFilter allows one member of a hard
anti-affinity group per compute service (or ``max_server_per_host``), and
a vCenter cluster is one node of one service: two members never share a
cluster, though DRS could keep them on different ESXi hosts. On a node
whose driver reports its usable ESXi hosts (vcdriver does, in the compute
node's stats), these filters let as many members onto the node as it has
usable hosts, the mandatory DRS anti-affinity rule (drs_rules.py) keeping
them apart; and keep an affinity group on one node, where its DRS affinity
rule can hold it together. Any other node keeps Nova's meaning.

They take the names of Nova's filters, which they replace: Nova's
conductor accepts a hard group only when a filter of that name is in
``[filter_scheduler] enabled_filters``. Enable them with ``[filter_scheduler]
available_filters = vcdriver.scheduler.filters.all_filters``.
"""

from nova import exception as nova_exception
from nova.scheduler import filters as nova_filters
from nova.scheduler.filters import affinity_filter
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# The compute node's stats key under which vcdriver reports how many ESXi
# hosts of the cluster DRS may place a VM on (vcdriver/node.py).
USABLE_HOSTS_STAT = 'vcdriver_usable_esxi_hosts'


def usable_hosts(host_state):
    """The usable ESXi hosts of the node's cluster; None for a node whose
    driver does not report them (another hypervisor, the in-tree driver)."""
    try:
        return int((host_state.stats or {})[USABLE_HOSTS_STAT])
    except (KeyError, TypeError, ValueError):
        return None


def _node_of(instance):
    """The node of an instance the scheduler lists on a host; None for the
    stub Nova's scheduler adds for a server it placed earlier in the same
    multi-create request, which knows its host only."""
    try:
        return instance.node
    except nova_exception.OrphanedObjectError:
        return None


def _uuid(group):
    # Very old request specs have no uuid in their group (as Nova's).
    return group.uuid if 'uuid' in group else 'n/a'


def _members_on_host(host_state, group):
    members = set(group.members or ())
    return [i for uuid, i in host_state.instances.items() if uuid in members]


class ServerGroupAntiAffinityFilter(
        affinity_filter.ServerGroupAntiAffinityFilter):
    """On a vcdriver node, up to one member per usable ESXi host of the
    cluster; a member whose node is unknown counts as on this one."""

    def host_passes(self, host_state, spec_obj):
        limit = usable_hosts(host_state)
        group = spec_obj.instance_group
        if limit is None or not group or group.policy != self.policy_name:
            return super().host_passes(host_state, spec_obj)
        # A move may keep the instance where it is (as Nova's filter).
        if spec_obj.instance_uuid in host_state.instances:
            return True
        here = [i for i in _members_on_host(host_state, group)
                if _node_of(i) in (host_state.nodename, None)]
        LOG.debug('Group anti-affinity: %(n)d member(s) of group %(group)s '
                  'on node %(node)s of %(limit)d usable ESXi host(s)',
                  {'n': len(here), 'group': _uuid(group),
                   'node': host_state.nodename, 'limit': limit})
        return len(here) < limit


class ServerGroupAffinityFilter(affinity_filter.ServerGroupAffinityFilter):
    """On a vcdriver node, Nova's check (the group's compute service), and
    the group's node: a DRS affinity rule holds VMs of one cluster only."""

    def host_passes(self, host_state, spec_obj):
        if not super().host_passes(host_state, spec_obj):
            return False
        group = spec_obj.instance_group
        if (usable_hosts(host_state) is None or not group or
                self.policy_name not in (group.policies or ())):
            return True
        nodes = {_node_of(i) for i in _members_on_host(host_state, group)}
        nodes.discard(None)
        LOG.debug('Group affinity: group %(group)s on node(s) %(nodes)s of '
                  'this host, checking %(node)s',
                  {'group': _uuid(group), 'nodes': sorted(nodes),
                   'node': host_state.nodename})
        return not nodes or host_state.nodename in nodes


def all_filters():
    """Nova's filters, its two server group filters replaced by these."""
    ours = {cls.__name__: cls for cls in (ServerGroupAffinityFilter,
                                          ServerGroupAntiAffinityFilter)}
    return [ours.get(cls.__name__, cls)
            for cls in nova_filters.all_filters()]
