"""vCenter clusters as Nova nodes: resolution, node names, live state.

Each configured cluster is one Nova node. Node names are built exactly as
``nova.virt.vmwareapi`` builds them (``<cluster moref>.<vCenter uuid>``) so
compute nodes and instances survive a switch between the two drivers.
"""

import dataclasses

from oslo_log import log as logging
from oslo_utils import units
from pyVmomi import vim

from vcdriver import capacity
from vcdriver import exception
from vcdriver.vsphere import environment_browser
from vcdriver.vsphere import props
from vcdriver.vsphere import vm_view as vm_view_mod

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Cluster:
    name: str
    ref: vim.ClusterComputeResource
    nodename: str
    datacenter: str
    datacenter_ref: vim.Datacenter
    vm_folder: vim.Folder
    resource_pool: vim.ResourcePool
    # The VMs of every cluster the service serves, kept current
    # (vsphere/vm_view.py); set once the service starts.
    vm_view: object = dataclasses.field(default=None, repr=False,
                                        compare=False)


@dataclasses.dataclass
class ClusterState:
    """One refresh of a cluster's hosts, datastores and VM placement."""
    cluster: Cluster
    hosts: list
    datastores: list
    ha: capacity.HAAdmission = capacity.NO_HA


def nodename(cluster_ref, vcenter_uuid):
    return '%s.%s' % (props.moid(cluster_ref), vcenter_uuid)


def _datacenter_of(entity, parents, datacenters):
    while entity is not None and entity not in datacenters:
        entity = parents.get(entity)
    return entity


def resolve(session, names):
    """Find every named cluster in three reads; name the ones missing.

    A name is a cluster name, or ``datacenter/cluster`` where the same
    cluster name exists in several datacenters.
    """
    clusters = props.objects_of_type(
        session, vim.ClusterComputeResource,
        ['name', 'parent', 'resourcePool'])
    folders = props.objects_of_type(session, vim.Folder, ['parent'])
    datacenters = props.objects_of_type(session, vim.Datacenter,
                                        ['name', 'vmFolder'])
    parents = {ref: p.get('parent') for ref, p in folders.items()}
    parents.update((ref, p.get('parent')) for ref, p in clusters.items())
    candidates = {}
    for ref, p in clusters.items():
        dc = _datacenter_of(ref, parents, datacenters)
        entry = (ref, p, dc)
        candidates.setdefault(p['name'], []).append(entry)
        candidates.setdefault('%s/%s' % (datacenters[dc]['name'], p['name']),
                              []).append(entry)
    missing = [n for n in names if n not in candidates]
    if missing:
        raise exception.ClusterNotFound(
            cluster=', '.join(missing), url=session.url,
            known=', '.join(sorted(n for n in candidates if '/' not in n))
            or 'none')
    uuid = session.about.instanceUuid
    result = []
    for name in names:
        if len(candidates[name]) > 1:
            raise exception.AmbiguousCluster(
                cluster=name, datacenters=', '.join(
                    sorted(datacenters[dc]['name']
                           for _r, _p, dc in candidates[name])))
        ref, p, dc = candidates[name][0]
        result.append(Cluster(name=name, ref=ref,
                              nodename=nodename(ref, uuid),
                              datacenter=datacenters[dc]['name'],
                              datacenter_ref=dc,
                              vm_folder=datacenters[dc]['vmFolder'],
                              resource_pool=p['resourcePool']))
    return result


HOST_PROPS = ['name', 'runtime.connectionState', 'runtime.powerState',
              'runtime.inMaintenanceMode', 'summary.hardware.numCpuThreads',
              'summary.hardware.memorySize', 'runtime.bootTime']
DATASTORE_PROPS = ['summary.name', 'summary.type', 'summary.accessible',
                   'summary.maintenanceMode', 'summary.capacity',
                   'summary.freeSpace']


def read_state(session, clusters):
    """Hosts, datastores and VM placement of all clusters in three reads,
    whatever their numbers (plus pages of [vmware] maximum_objects).

    Where the clusters have their service's VM view, VMs come from
    vCenter's updates since the last read, so the cost no longer grows
    with the VM count. Hosts and VMs are reached by traversal: one deleted
    between two reads is simply not there.
    """
    vm_view = clusters[0].vm_view if clusters else None
    cluster_props, host_props, cluster_hosts = props.properties_and_children(
        session, [c.ref for c in clusters], vim.ClusterComputeResource,
        ['datastore', 'configurationEx'], 'host', vim.HostSystem, HOST_PROPS)
    ds_refs = {d for p in cluster_props.values()
               for d in p.get('datastore', [])}
    ds_props = props.properties(session, ds_refs, vim.Datastore,
                                DATASTORE_PROPS)
    if vm_view is not None:
        placed = vm_view_mod.by_host(vm_view.current())
    else:
        _hosts, vm_props, host_vms = props.properties_and_children(
            session, host_props, vim.HostSystem, [], 'vm',
            vim.VirtualMachine, vm_view_mod.SIZE_PROPS)
        placed = {h: [vm_props[v] for v in vms
                      if not vm_props[v].get('config.template')]
                  for h, vms in host_vms.items()}
    states = []
    for cluster in clusters:
        p = cluster_props.get(cluster.ref, {})
        hosts = [_host(ref, host_props[ref], placed.get(ref, ()))
                 for ref in cluster_hosts.get(cluster.ref, ())]
        datastores = [_datastore(ref, ds_props[ref])
                      for ref in p.get('datastore', []) if ref in ds_props]
        states.append(ClusterState(cluster, hosts, datastores,
                                   ha_admission(p.get('configurationEx'))))
    return states


def host_cpu_mhz(session, state):
    """The per-core MHz of each usable host of the cluster, in one read."""
    found = props.properties(session, [h.ref for h in state.hosts
                                       if h.usable],
                             vim.HostSystem, ['summary.hardware.cpuMhz'])
    return [p.get('summary.hardware.cpuMhz') or 0 for p in found.values()]


def runnable_hw_versions(session, cluster):
    """The hardware versions (``vmx-<n>``) a VM can be created with and
    run on some host of the cluster: the cluster's environment browser
    answers for all its hosts in one call."""
    browser = props.properties(
        session, [cluster.ref], vim.ClusterComputeResource,
        ['environmentBrowser']).get(cluster.ref, {}).get('environmentBrowser')
    if browser is None:
        return []
    descriptors = environment_browser.query_config_option_descriptor(
        session, browser)
    return [d.key for d in descriptors
            if d.createSupported and d.runSupported and d.host]


def ha_admission(config):
    """The failover capacity HA admission control keeps, if it is on."""
    das = getattr(config, 'dasConfig', None)
    if not (das and das.enabled and das.admissionControlEnabled):
        return capacity.NO_HA
    policy = das.admissionControlPolicy
    if isinstance(policy, vim.cluster.FailoverResourcesAdmissionControlPolicy):
        return capacity.HAAdmission(
            cpu_percent=policy.cpuFailoverResourcesPercent or 0,
            memory_percent=policy.memoryFailoverResourcesPercent or 0,
            # vSphere 6.5+ may compute the percentages from a level.
            failover_level=getattr(policy, 'failoverLevel', 0) or 0
            if getattr(policy, 'autoComputePercentages', False) else 0)
    if isinstance(policy, vim.cluster.FailoverLevelAdmissionControlPolicy):
        return capacity.HAAdmission(failover_level=policy.failoverLevel or 0)
    if isinstance(policy, vim.cluster.FailoverHostAdmissionControlPolicy):
        return capacity.HAAdmission(
            failover_hosts=frozenset(policy.failoverHosts or ()))
    return capacity.NO_HA


def _host(ref, p, vms):
    return capacity.Host(
        ref=ref, name=p.get('name'),
        connected=p.get('runtime.connectionState') == 'connected',
        powered_on=p.get('runtime.powerState') == 'poweredOn',
        in_maintenance=bool(p.get('runtime.inMaintenanceMode')),
        cpu_threads=p.get('summary.hardware.numCpuThreads') or 0,
        memory_mb=(p.get('summary.hardware.memorySize') or 0) // units.Mi,
        vm_vcpus=sum(v.get('config.hardware.numCPU') or 0 for v in vms),
        vm_memory_mb=sum(v.get('config.hardware.memoryMB') or 0
                         for v in vms),
        boot_time=(p['runtime.bootTime'].timestamp()
                   if p.get('runtime.bootTime') else None))


def _datastore(ref, p):
    return capacity.Datastore(
        ref=ref, name=p.get('summary.name'), type=p.get('summary.type'),
        accessible=bool(p.get('summary.accessible')),
        maintenance_mode=p.get('summary.maintenanceMode'),
        capacity=p.get('summary.capacity') or 0,
        free_space=p.get('summary.freeSpace') or 0)
