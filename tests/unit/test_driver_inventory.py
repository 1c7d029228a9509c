"""The driver's node reports (update_provider_tree, get_available_resource)
from a cluster state, with vCenter reads replaced by a fixed state."""

import types
import uuid
from unittest import mock

import os_resource_classes as orc
import pytest
from nova import exception as nova_exception
from nova.compute import provider_tree
from oslo_utils import units

from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import driver

NODE = 'domain-c8.3e29a2cc-04ea-4050-85f2-2fd5ec134c5c'
NODE_UUID = str(uuid.uuid4())


def host(name, memory_gb=12, threads=8, vm_memory_gb=0, vm_vcpus=0,
         **state):
    return capacity.Host(
        ref=name, name=name, connected=state.get('connected', True),
        powered_on=state.get('powered_on', True),
        in_maintenance=state.get('in_maintenance', False),
        cpu_threads=threads, memory_mb=memory_gb * 1024,
        vm_vcpus=vm_vcpus, vm_memory_mb=vm_memory_gb * 1024,
        boot_time=state.get('boot_time'))


def datastore(name, capacity_gb, free_gb, **kwargs):
    return capacity.Datastore(
        ref=name, name=name, type=kwargs.get('type', 'NFS'),
        accessible=kwargs.get('accessible', True),
        maintenance_mode='normal', capacity=capacity_gb * units.Gi,
        free_space=free_gb * units.Gi)


NOW = 1_700_000_000.0
CLASSIC_HOSTS = [host('h%d' % i, vm_memory_gb=4, vm_vcpus=2,
                      boot_time=NOW - 86400 - i * 3600)
                 for i in range(3)]
# A big host in maintenance must change nothing.
HOSTS = CLASSIC_HOSTS + [host('hm', memory_gb=512, threads=64,
                              in_maintenance=True)]
DATASTORES = [datastore('nfs-a', 1000, 300), datastore('nfs-b', 500, 400),
              datastore('local-c', 2000, 2000),
              datastore('nfs-dead', 9000, 9000, accessible=False)]


@pytest.fixture
def flags(flags):
    fixture = flags
    fixture.config(group='vmware', host_ip='vc.example.org',
                   host_username='u', host_password='p',
                   cluster_name='Cluster1', datastore_regex='nfs')
    fixture.config(reserved_host_memory_mb=0, reserved_host_cpus=0,
                   reserved_host_disk_mb=0)
    return fixture


@pytest.fixture
def drv(flags, monkeypatch):
    d = driver.VMwareVCDriver(virtapi=None)
    cluster = cluster_mod.Cluster(
        name='Cluster1', ref='cluster-ref', nodename=NODE,
        datacenter='DC0', datacenter_ref='dc-ref', vm_folder='folder-ref',
        resource_pool='pool-ref')
    d._clusters = {NODE: cluster}
    state = cluster_mod.ClusterState(cluster, HOSTS, DATASTORES)
    reads = []

    def read_state(session, clusters):
        reads.append([c.name for c in clusters])
        return [state]

    monkeypatch.setattr(cluster_mod, 'read_state', read_state)
    d._session = types.SimpleNamespace(
        about=types.SimpleNamespace(version='7.0.3'))
    monkeypatch.setattr(driver.nova_node, 'get_local_node_uuid',
                        lambda: NODE_UUID)
    d.reads = reads
    return d


def inventory(drv):
    tree = provider_tree.ProviderTree()
    tree.new_root(NODE, NODE_UUID)
    drv.update_provider_tree(tree, NODE)
    return tree.data(NODE)


def test_update_provider_tree_classic_case(drv, flags):
    flags.config(cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
                 disk_allocation_ratio=1.0)
    data = inventory(drv)
    mem = data.inventory[orc.MEMORY_MB]
    assert mem['total'] == 36 * 1024
    assert mem['max_unit'] == 8 * 1024
    assert mem['reserved'] == 0
    cpu = data.inventory[orc.VCPU]
    assert (cpu['total'], cpu['max_unit']) == (24, 6)
    disk = data.inventory[orc.DISK_GB]
    # datastore_regex 'nfs': nfs-a and nfs-b; nfs-dead is inaccessible.
    assert (disk['total'], disk['max_unit']) == (1500, 400)
    assert 'HW_ARCH_X86_64' in data.traits
    assert drv.reads == [['Cluster1']]


def test_update_provider_tree_uses_allocation_ratios(drv, flags):
    flags.config(cpu_allocation_ratio=None, ram_allocation_ratio=None,
                 disk_allocation_ratio=None, initial_cpu_allocation_ratio=2.0,
                 initial_ram_allocation_ratio=1.5,
                 initial_disk_allocation_ratio=1.0)
    data = inventory(drv)
    assert data.inventory[orc.VCPU]['allocation_ratio'] == 2.0
    # 8 threads x 2.0 - 2 used = 14, but one VM gets at most 8 vCPUs.
    assert data.inventory[orc.VCPU]['max_unit'] == 8
    assert data.inventory[orc.MEMORY_MB]['allocation_ratio'] == 1.5
    assert data.inventory[orc.MEMORY_MB]['max_unit'] == 18 * 1024 - 4 * 1024


def test_update_provider_tree_reserved(drv, flags):
    flags.config(cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
                 reserved_host_memory_mb=512, reserved_host_cpus=1,
                 reserved_host_disk_mb=1025)
    data = inventory(drv)
    assert data.inventory[orc.MEMORY_MB]['reserved'] == 512
    assert data.inventory[orc.MEMORY_MB]['max_unit'] == 8 * 1024 - 512
    assert data.inventory[orc.VCPU]['reserved'] == 1
    assert data.inventory[orc.VCPU]['max_unit'] == 5
    # MB of disk reserved round up to whole GB.
    assert data.inventory[orc.DISK_GB]['reserved'] == 2


def test_get_available_resource(drv):
    with mock.patch('time.time', return_value=NOW):
        res = drv.get_available_resource(NODE)
    assert res['vcpus'] == 24
    assert res['memory_mb'] == 36 * 1024
    assert res['vcpus_used'] == 6
    assert res['memory_mb_used'] == 12 * 1024
    assert res['local_gb'] == 1500
    assert res['local_gb_used'] == 700 + 100
    assert res['hypervisor_type'] == 'VMware vCenter Server'
    assert res['hypervisor_version'] == 7000003
    assert res['hypervisor_hostname'] == NODE
    assert res['uuid'] == NODE_UUID  # [vmware] cluster_name keeps the host's
    # The three usable hosts (not the one in maintenance), for the
    # scheduler's server group filters.
    # and the node's uptime, which Nova's API shows from its stats (the
    # host in maintenance is up too; its boot time is not known).
    assert res['stats'] == {
        'vcdriver_usable_esxi_hosts': 3,
        'uptime': '22:13:20 up 1 day, 2:00, 3 of 4 hosts up (the latest '
                  'booted up 1 day, 0:00)'}


def test_other_clusters_get_stable_node_uuids(drv):
    other = cluster_mod.Cluster(
        name='Cluster2', ref='r2', nodename='domain-c9.x', datacenter='DC0',
        datacenter_ref='dc', vm_folder='f', resource_pool='p')
    drv._clusters[other.nodename] = other
    nodes = drv.get_nodenames_by_uuid()
    assert nodes[NODE_UUID] == NODE
    other_uuid = str(uuid.uuid5(driver.NODE_UUID_NAMESPACE, 'domain-c9.x'))
    assert nodes[other_uuid] == 'domain-c9.x'
    assert sorted(drv.get_available_nodes()) == sorted([NODE, 'domain-c9.x'])


def test_unknown_node_is_named(drv):
    with pytest.raises(nova_exception.NovaException) as err:
        drv.get_available_resource('domain-c99.nope')
    assert 'domain-c99.nope' in str(err.value)
    assert NODE in str(err.value)


def test_session_takes_maximum_objects(flags):
    flags.config(group='vmware', maximum_objects=42)
    d = driver.VMwareVCDriver(virtapi=None)
    assert d._session.max_objects == 42
