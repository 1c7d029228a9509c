"""Servers through the openstack CLI on the stack, checked against what
vCenter (the launcher) holds."""

import pytest

from tests.stack import images
from tests.stack import vcenter

MiB = 1024 * 1024


@pytest.fixture(scope='module')
def image(stack, tmp_path_factory):
    """A qemu-img qcow2: 1 MiB of data in 64 MiB."""
    path = images.qcow2(tmp_path_factory.mktemp('img') / 'disk.qcow2')
    image_id = stack.create_image(path, 'qcow2', 'stack-cli-qcow2')
    yield image_id
    stack.openstack('image', 'delete', image_id, check=False)


def test_every_cluster_is_a_hypervisor_of_its_compute_service(stack):
    services = stack.openstack('compute', 'service', 'list', '--service',
                               'nova-compute')
    assert sorted((s['Host'], s['State']) for s in services) == [
        ('compute1', 'up'), ('compute2', 'up')]
    hypervisors = stack.openstack('hypervisor', 'list', '--long')
    names = sorted(h['Hypervisor Hostname'] for h in hypervisors)
    assert names == sorted(vcenter.clusters_by_node(
        stack, vcenter.connect(stack)))
    assert all(h['State'] == 'up' for h in hypervisors)


def test_boot_on_each_cluster_then_delete_leaves_nothing(stack, image,
                                                          flavor):
    si = vcenter.connect(stack)
    hosts = stack.nodes()
    assert sorted(set(hosts.values())) == ['compute1', 'compute2']
    servers = []
    try:
        _boot_on_each(stack, si, image, flavor, hosts, servers)
    finally:
        for server in servers:
            stack.openstack('server', 'delete', '--wait', server['id'],
                            check=False).check_returncode()
            assert vcenter.vm_of(si, server['id']) is None, 'VM left behind'
    for host in sorted(set(hosts.values())):
        code, found = stack.audit(host)
        assert code == 0, 'vcdriver audit of %s found: %s' % (host, found)


def _boot_on_each(stack, si, image, flavor, hosts, servers):
    """A server on each node, each checked against its VM."""
    for node, host in sorted(hosts.items()):
        server = stack.boot(image, flavor,
                            'stack-cli-%s' % node.split('.')[0], node, host)
        servers.append(server)
        assert server['status'] == 'ACTIVE', server
        assert server['OS-EXT-SRV-ATTR:hypervisor_hostname'] == node
        vm = vcenter.vm_of(si, server['id'])
        assert vm is not None, 'no VM for %s' % server['id']
        assert vm.runtime.powerState == 'poweredOn'
        assert vm.config.hardware.numCPU == flavor['vcpus']
        assert vm.config.hardware.memoryMB == flavor['ram']
        # The node's cluster (its name is the cluster's moref).
        assert vm.resourcePool.owner._moId == node.split('.')[0]


def test_inventory_is_what_the_cluster_hosts_can_hold(stack):
    """`openstack resource provider inventory list` of each node: totals
    are its cluster's, max_unit what its best single host can take."""
    clusters = vcenter.clusters_by_node(stack, vcenter.connect(stack))
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
