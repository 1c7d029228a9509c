"""vcdriver's server group filters (vcdriver/scheduler/filters.py) on
Nova's HostState and RequestSpec: a vCenter node takes as many members of
an anti-affinity group as it has usable ESXi hosts, an affinity group
stays on one node, any other node keeps Nova's meaning."""

import uuid

import pytest
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler.filters import affinity_filter
from nova.tests.unit.scheduler import fakes

from vcdriver.scheduler import filters

objects.register_all()

HOST = 'compute-vc'
NODE, OTHER_NODE = 'domain-c8.vc', 'domain-c9.vc'
VCENTER = {filters.USABLE_HOSTS_STAT: '3'}  # stats are strings in Nova


def member(node=NODE):
    """A group member as the scheduler lists it on a host (the compute
    sends whole instances)."""
    return objects.Instance(uuid=str(uuid.uuid4()), host=HOST, node=node)


def stub():
    """A member placed earlier in the same multi-create request: Nova's
    scheduler knows only its uuid (and host)."""
    return objects.Instance(uuid=str(uuid.uuid4()))


def host_state(instances=(), stats=VCENTER, node=NODE, host=HOST):
    return fakes.FakeHostState(host, node, {'stats': dict(stats or {})},
                               instances=list(instances))


def spec(policy, members=(), hosts=(), rules=None, instance_uuid=None):
    group = objects.InstanceGroup(
        uuid=str(uuid.uuid4()), policy=policy, policies=[policy],
        members=[m.uuid for m in members], hosts=list(hosts),
        rules=rules or {})
    return objects.RequestSpec(
        instance_uuid=instance_uuid or str(uuid.uuid4()),
        instance_group=group)


ANTI = filters.ServerGroupAntiAffinityFilter()
AFFINITY = filters.ServerGroupAffinityFilter()


# --- anti-affinity -----------------------------------------------------------

@pytest.mark.parametrize('count,passes', [(0, True), (1, True), (2, True),
                                          (3, False), (4, False)])
def test_anti_affinity_takes_one_member_per_usable_esxi_host(count, passes):
    members = [member() for _ in range(count)]
    assert ANTI.host_passes(host_state(members),
                            spec('anti-affinity', members)) is passes


def test_anti_affinity_counts_the_members_of_this_node_only():
    # Another cluster of the same service: its members are not here.
    here = [member(), member()]
    there = [member(OTHER_NODE) for _ in range(3)]
    assert ANTI.host_passes(host_state(here + there),
                            spec('anti-affinity', here + there))
    full = here + there + [member()]
    assert not ANTI.host_passes(host_state(full), spec('anti-affinity', full))


def test_anti_affinity_counts_a_member_whose_node_is_unknown():
    members = [member(), member(), stub()]
    assert not ANTI.host_passes(host_state(members),
                                spec('anti-affinity', members))


def test_anti_affinity_ignores_instances_outside_the_group():
    outsiders = [member() for _ in range(5)]
    assert ANTI.host_passes(host_state(outsiders), spec('anti-affinity'))


def test_anti_affinity_lets_a_moving_member_stay():
    members = [member() for _ in range(3)]
    request = spec('anti-affinity', members, instance_uuid=members[0].uuid)
    assert ANTI.host_passes(host_state(members), request)


def test_anti_affinity_ignores_max_server_per_host_on_vcenter():
    # DRS's mandatory rule keeps one member per ESXi host, whatever the
    # group's rules say about compute services.
    members = [member() for _ in range(3)]
    assert not ANTI.host_passes(
        host_state(members),
        spec('anti-affinity', members, rules={'max_server_per_host': 5}))


def test_a_cluster_with_no_usable_host_takes_no_member():
    assert not ANTI.host_passes(
        host_state(stats={filters.USABLE_HOSTS_STAT: '0'}),
        spec('anti-affinity'))


@pytest.mark.parametrize('stats', [
    None, {}, {'num_instances': '2'},
    {filters.USABLE_HOSTS_STAT: 'not a number'}])
def test_anti_affinity_keeps_novas_meaning_on_other_nodes(stats):
    one = [member()]
    assert not ANTI.host_passes(host_state(one, stats=stats),
                                spec('anti-affinity', one))
    assert ANTI.host_passes(
        host_state(one, stats=stats),
        spec('anti-affinity', one, rules={'max_server_per_host': 2}))
    assert ANTI.host_passes(host_state(stats=stats), spec('anti-affinity'))


@pytest.mark.parametrize('policy', ['affinity', 'soft-anti-affinity'])
def test_anti_affinity_leaves_other_policies_alone(policy):
    members = [member() for _ in range(4)]
    assert ANTI.host_passes(host_state(members), spec(policy, members))


def test_no_group_passes_everywhere():
    request = objects.RequestSpec(instance_uuid=str(uuid.uuid4()),
                                  instance_group=None)
    for f in (ANTI, AFFINITY):
        assert f.host_passes(host_state([member()]), request)


# --- affinity ----------------------------------------------------------------

def test_affinity_keeps_the_group_on_its_node():
    members = [member(), member()]
    request = spec('affinity', members, hosts=[HOST])
    assert AFFINITY.host_passes(host_state(members), request)
    # Another cluster of the same compute service: Nova's filter would
    # pass it, the group's DRS rule could not hold it.
    assert not AFFINITY.host_passes(
        host_state(members, node=OTHER_NODE), request)


def test_affinity_places_a_first_member_anywhere():
    assert AFFINITY.host_passes(host_state(), spec('affinity'))


def test_affinity_keeps_novas_host_check():
    members = [member()]
    request = spec('affinity', members, hosts=[HOST])
    assert not AFFINITY.host_passes(
        host_state(node='other', host='compute-2'), request)


def test_affinity_relies_on_the_host_for_a_member_whose_node_is_unknown():
    members = [stub()]
    request = spec('affinity', members, hosts=[HOST])
    assert AFFINITY.host_passes(host_state(members, node=OTHER_NODE),
                                request)


def test_affinity_keeps_novas_meaning_on_other_nodes():
    # Without the stat a node is judged by its host alone.
    members = [member()]
    request = spec('affinity', members, hosts=[HOST])
    assert AFFINITY.host_passes(
        host_state(members, stats={}, node=OTHER_NODE), request)


# --- loading -----------------------------------------------------------------

def test_all_filters_replaces_novas_group_filters_under_their_names():
    classes = nova_filters.HostFilterHandler().get_matching_classes(
        ['vcdriver.scheduler.filters.all_filters'])
    by_name = {cls.__name__: cls for cls in classes}
    assert len(by_name) == len(classes)
    assert by_name['ServerGroupAntiAffinityFilter'] is \
        filters.ServerGroupAntiAffinityFilter
    assert by_name['ServerGroupAffinityFilter'] is \
        filters.ServerGroupAffinityFilter
    assert affinity_filter.ServerGroupAntiAffinityFilter not in classes
    # Every other filter of Nova's is there.
    novas = {cls.__name__ for cls in nova_filters.all_filters()}
    assert set(by_name) == novas
