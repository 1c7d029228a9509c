"""The VM view (vsphere/vm_view.py) on vcsim: placement kept current by
vCenter's updates, whatever another client does to the VMs.

Each test runs its own launcher, so that the VMs it makes, moves and
deletes are the only changes there are.
"""

import dataclasses
import time

import pytest
from pyVmomi import vim

from tests.harness import vcsim as vcsim_harness
from vcdriver import cluster
from vcdriver.vsphere import session as session_mod
from vcdriver.vsphere import vm_view


@pytest.fixture
def sim():
    with vcsim_harness.Vcsim(clusters=2, hosts_per_cluster=2, nfs=1,
                             session_idle_timeout=1.0) as s:
        yield s


def _served(sim):
    session = session_mod.Session(sim.host, sim.port, sim.username,
                                  sim.password, protocol='http')
    session.connect()
    clusters = cluster.resolve(session, ['DC0_C0', 'DC0_C1'])
    view = vm_view.VMView(session, [c.ref for c in clusters])
    for c in clusters:
        c.vm_view = view
    return session, clusters, view


def _other_client(sim):
    """Another vCenter client (an operator, DRS, another service)."""
    si = vcsim_harness.connect(sim)
    clusters = {c.name: c for c in si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.ClusterComputeResource], True).view}
    return si, clusters


def _create(cluster_, host, name, memory_mb):
    spec = vim.vm.ConfigSpec(name=name, numCPUs=2, memoryMB=memory_mb,
                             guestId='otherGuest',
                             files=vim.vm.FileInfo(vmPathName='[nfs0]'))
    dc = cluster_.parent.parent
    return vcsim_harness.wait_task(dc.vmFolder.CreateVM_Task(
        config=spec, pool=cluster_.resourcePool, host=host))


def _memory_on(states, host_name):
    for state in states:
        for h in state.hosts:
            if h.name == host_name:
                return h.vm_memory_mb
    raise AssertionError('no host %s' % host_name)


def _read_state_both_ways(session, clusters):
    """(through the view, by reading every VM): they must agree."""
    viewed = cluster.read_state(session, clusters)
    direct = cluster.read_state(
        session, [dataclasses.replace(c, vm_view=None) for c in clusters])
    return viewed, direct


def _placement(states):
    return {h.name: (h.vm_vcpus, h.vm_memory_mb)
            for s in states for h in s.hosts}


def test_view_follows_create_reconfigure_relocate_destroy(sim):
    session, clusters, view = _served(sim)
    viewed, direct = _read_state_both_ways(session, clusters)
    assert _placement(viewed) == _placement(direct)

    si, others = _other_client(sim)
    c0, c1 = others['DC0_C0'], others['DC0_C1']
    host = c0.host[0]
    before = _memory_on(viewed, host.name)

    vm = _create(c0, host, 'outside-nova', 3000)
    states = cluster.read_state(session, clusters)
    assert _memory_on(states, host.name) == before + 3000

    vcsim_harness.wait_task(vm.ReconfigVM_Task(
        vim.vm.ConfigSpec(memoryMB=5000, numCPUs=4)))
    states = cluster.read_state(session, clusters)
    assert _memory_on(states, host.name) == before + 5000

    # Moved by someone else into the other served cluster.
    target = c1.host[1]
    target_before = _memory_on(states, target.name)
    vcsim_harness.wait_task(vm.RelocateVM_Task(vim.vm.RelocateSpec(
        host=target, pool=c1.resourcePool)))
    viewed, direct = _read_state_both_ways(session, clusters)
    assert _memory_on(viewed, host.name) == before
    assert _memory_on(viewed, target.name) == target_before + 5000
    assert _placement(viewed) == _placement(direct)

    vcsim_harness.wait_task(vm.Destroy_Task())
    states = cluster.read_state(session, clusters)
    assert _memory_on(states, target.name) == target_before
    assert vm not in view.current()


def test_a_refresh_without_changes_is_one_wait(sim):
    session, clusters, view = _served(sim)
    si, others = _other_client(sim)
    c0 = others['DC0_C0']
    for i in range(20):
        _create(c0, c0.host[i % 2], 'many-%d' % i, 256)
    cluster.read_state(session, clusters)  # the full load
    sim.reset_stats()
    states = cluster.read_state(session, clusters)
    calls = sim.stats()['soap_calls']
    assert calls.get('WaitForUpdatesEx') == 1, calls
    assert sum(calls.values()) == 3, calls  # clusters+hosts, datastores
    assert sum(len(h_vms) for h_vms in vm_view.by_host(
        view.current()).values()) >= 20
    assert any(h.vm_memory_mb >= 10 * 256 for h in states[0].hosts)


def test_an_expired_session_reloads_the_view(sim):
    session, clusters, view = _served(sim)
    first = _placement(cluster.read_state(session, clusters))
    time.sleep(2.0)  # idle past the timeout: the collector is gone
    si, others = _other_client(sim)
    c0 = others['DC0_C0']
    _create(c0, c0.host[0], 'after-expiry', 1000)
    states = cluster.read_state(session, clusters)
    name = c0.host[0].name
    assert _placement(states)[name][1] == first[name][1] + 1000
