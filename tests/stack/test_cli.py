"""Servers through the openstack CLI on the stack, checked against what
vCenter (the launcher) holds."""

import subprocess
import types

import pytest
from pyVmomi import vim

from tests.harness import vcsim as vcsim_harness

MiB = 1024 * 1024


def vcenter(stack):
    """The stack's vCenter, logged in with pyVmomi."""
    s = stack.stack
    info = s.state['vcsim']
    return vcsim_harness.connect(types.SimpleNamespace(
        host=info['host'], port=info['port'], url=info['url'],
        username='vcsim', password=s.secret('vcsim')))


def clusters_by_node(stack, si):
    """vCenter's clusters by the node name each should be in Nova:
    ``<cluster moref>.<vCenter instanceUuid>``."""
    uuid = stack.stack.vcenter_uuid()
    return {'%s.%s' % (c._moId, uuid): c
            for c in si.content.viewManager.CreateContainerView(
                si.content.rootFolder, [vim.ClusterComputeResource],
                True).view}


def vm_of(si, server_id):
    """The VM of a server (by instanceUuid), or None."""
    return si.content.searchIndex.FindByUuid(None, server_id, True, True)


@pytest.fixture(scope='module')
def image(stack, tmp_path_factory):
    """A qcow2 as users make them: qemu-img, 1 MiB of data in 64 MiB."""
    path = str(tmp_path_factory.mktemp('img') / 'disk.qcow2')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', path, '64M'],
                   check=True, capture_output=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M',
                    path], check=True, capture_output=True)
    created = stack.openstack('image', 'create', '--disk-format', 'qcow2',
                              '--container-format', 'bare', '--file', path,
                              'stack-cli-qcow2')
    yield created['id']
    stack.openstack('image', 'delete', created['id'], check=False)


@pytest.fixture(scope='module')
def flavor(stack):
    name = 'stack-cli-tiny'
    got = stack.openstack('flavor', 'show', name, check=False)
    if got.returncode:
        stack.openstack('flavor', 'create', '--ram', '512', '--vcpus', '1',
                        '--disk', '1', name)
    return stack.openstack('flavor', 'show', name)


def test_every_cluster_is_a_hypervisor_of_its_compute_service(stack):
    services = stack.openstack('compute', 'service', 'list', '--service',
                               'nova-compute')
    assert sorted((s['Host'], s['State']) for s in services) == [
        ('compute1', 'up'), ('compute2', 'up')]
    hypervisors = stack.openstack('hypervisor', 'list', '--long')
    names = sorted(h['Hypervisor Hostname'] for h in hypervisors)
    assert names == sorted(clusters_by_node(stack, vcenter(stack)))
    assert all(h['State'] == 'up' for h in hypervisors)


def test_boot_on_each_cluster_then_delete_leaves_nothing(stack, image,
                                                          flavor):
    si = vcenter(stack)
    hosts = {}
    for hypervisor in stack.openstack('hypervisor', 'list'):
        shown = stack.openstack('hypervisor', 'show', hypervisor['ID'])
        hosts[shown['hypervisor_hostname']] = shown['service_host']
    assert sorted(set(hosts.values())) == ['compute1', 'compute2']
    servers = []
    try:
        _boot_on_each(stack, si, image, flavor, hosts, servers)
    finally:
        for server in servers:
            stack.openstack('server', 'delete', '--wait', server['id'],
                            check=False).check_returncode()
            assert vm_of(si, server['id']) is None, 'VM left behind'
    for host in sorted(set(hosts.values())):
        code, found = stack.audit(host)
        assert code == 0, 'vcdriver audit of %s found: %s' % (host, found)


def _boot_on_each(stack, si, image, flavor, hosts, servers):
    """A server on each node, each checked against its VM."""
    for node, host in sorted(hosts.items()):
        server = stack.openstack(
            'server', 'create', '--image', image, '--flavor', flavor['id'],
            '--nic', 'none', '--availability-zone', 'nova:%s:%s'
            % (host, node), '--wait', 'stack-cli-%s' % node.split('.')[0])
        servers.append(server)
        assert server['status'] == 'ACTIVE', server
        assert server['OS-EXT-SRV-ATTR:hypervisor_hostname'] == node
        vm = vm_of(si, server['id'])
        assert vm is not None, 'no VM for %s' % server['id']
        assert vm.runtime.powerState == 'poweredOn'
        assert vm.config.hardware.numCPU == flavor['vcpus']
        assert vm.config.hardware.memoryMB == flavor['ram']
        # The node's cluster (its name is the cluster's moref).
        assert vm.resourcePool.owner._moId == node.split('.')[0]


def test_inventory_is_what_the_cluster_hosts_can_hold(stack):
    """`openstack resource provider inventory list` of each node: totals
    are its cluster's, max_unit what its best single host can take."""
    clusters = clusters_by_node(stack, vcenter(stack))
    providers = {p['name']: p['uuid'] for p in stack.openstack(
        'resource', 'provider', 'list')}
    assert sorted(providers) == sorted(clusters)
    for name, cluster in sorted(clusters.items()):
        inventory = {i['resource_class']: i for i in stack.openstack(
            'resource', 'provider', 'inventory', 'list', providers[name])}
        cores = [h.summary.hardware.numCpuCores for h in cluster.host]
        memory = [h.summary.hardware.memorySize // MiB for h in cluster.host]
        assert inventory['VCPU']['total'] == sum(cores), name
        assert inventory['VCPU']['max_unit'] == max(cores), name
        assert inventory['MEMORY_MB']['total'] == sum(memory), name
        assert 0 < inventory['MEMORY_MB']['max_unit'] <= max(memory), name
        capacity = sum(d.summary.capacity for d in cluster.datastore)
        disk = inventory['DISK_GB']
        assert 0 < disk['max_unit'] <= disk['total'] <= capacity // 1024 ** 3
