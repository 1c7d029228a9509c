"""A vCenter cluster as a Nova node: what it reports to Nova (resources,
placement inventory, traits), and the one read of every served cluster
that a refresh of all nodes shares.
"""

import threading
import time

import os_resource_classes as orc
from nova.objects import fields as obj_fields
from oslo_utils import units
from oslo_utils import versionutils

from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import conf
from vcdriver import host as host_mod
from vcdriver import vm_spec
from vcdriver.scheduler import filters as scheduler_filters

CONF = conf.CONF

HYPERVISOR_TYPE = 'VMware vCenter Server'
# How old a read of the clusters may be for the other nodes of the same
# refresh, and for the provider tree updates at claims.
STATE_REUSE_SECONDS = 5

# What every node supports, for Nova's image-metadata prefilter
# (hw_disk_bus, hw_vif_model become required traits); image types come
# from ``capabilities``, added by Nova itself.
TRAITS = (
    ['HW_ARCH_X86_64', 'COMPUTE_FIRMWARE_BIOS', 'COMPUTE_FIRMWARE_UEFI'] +
    ['COMPUTE_STORAGE_BUS_%s' % bus.upper() for bus in vm_spec.DISK_BUSES] +
    ['COMPUTE_NET_VIF_MODEL_%s' % model.upper()
     for model in sorted(vm_spec.VIF_MODELS)])


def inventory(state, ratios, datastore_regex):
    """Placement inventory of one node (cluster); no DISK_GB when
    ``datastore_regex`` is False (not a valid expression: the CLI's
    check goes on past it)."""
    inventory = {
        orc.VCPU: capacity.vcpu(
            state.hosts, ratios[orc.VCPU], CONF.reserved_host_cpus,
            state.ha),
        orc.MEMORY_MB: capacity.memory_mb(
            state.hosts, ratios[orc.MEMORY_MB],
            CONF.reserved_host_memory_mb, state.ha),
    }
    if datastore_regex is not False:
        inventory[orc.DISK_GB] = capacity.disk_gb(
            state.datastores, datastore_regex, ratios[orc.DISK_GB],
            -(-CONF.reserved_host_disk_mb // 1024))
    return {rc: r.as_inventory() for rc, r in inventory.items()}


def resources(state, nodename, node_uuid, about):
    """The resource dict of ``get_available_resource``: usable hosts and
    datastores summed, as Nova's compute node record shows them (placement
    gets the honest per-host figures from ``inventory``)."""
    usable_hosts = [h for h in state.hosts if h.usable]
    usable_ds = [d for d in state.datastores
                 if d.usable(CONF.vmware.datastore_regex)]
    return {
        'uuid': node_uuid,
        'vcpus': sum(h.cpu_threads for h in usable_hosts),
        'memory_mb': sum(h.memory_mb for h in usable_hosts),
        'local_gb': sum(d.capacity for d in usable_ds) // units.Gi,
        'vcpus_used': sum(h.vm_vcpus for h in usable_hosts),
        'memory_mb_used': sum(h.vm_memory_mb for h in usable_hosts),
        'local_gb_used': sum(d.capacity - d.free_space
                             for d in usable_ds) // units.Gi,
        'hypervisor_type': HYPERVISOR_TYPE,
        'hypervisor_version': versionutils.convert_version_to_int(
            about.version),
        'hypervisor_hostname': nodename,
        'cpu_info': None,
        'supported_instances': [
            (obj_fields.Architecture.X86_64, obj_fields.HVType.VMWARE,
             obj_fields.VMMode.HVM),
            (obj_fields.Architecture.I686, obj_fields.HVType.VMWARE,
             obj_fields.VMMode.HVM)],
        'numa_topology': None,
        'stats': {
            # For vcdriver's server group filters (scheduler/filters.py).
            scheduler_filters.USABLE_HOSTS_STAT: len(
                capacity.usable_hosts(state.hosts, state.ha)),
            # Nova's API takes a node's uptime from its stats, and shows
            # none for a driver whose stats have no uptime.
            'uptime': host_mod.node_uptime(state.hosts, time.time()),
        },
    }


class _Batch:
    """One read of every served cluster (see States)."""

    def __init__(self, read_at, states):
        self.read_at = read_at      # when the read ended, monotonic
        self.states = states        # nodename -> ClusterState
        self.unrefreshed = set(states)


class States:
    """The nodes' cluster states from the latest read of all clusters.

    Nova refreshes node by node (resources, then provider tree) and asks
    for the provider tree again at every claim: one read of every
    cluster serves them all, so a refresh costs the same few round
    trips whatever the number of clusters. ``refresh`` (Nova's periodic
    asking) takes a read no older than STATE_REUSE_SECONDS that this
    node has not been refreshed from yet, else reads again.
    """

    def __init__(self, session):
        self._session = session
        self._batch = None
        self._lock = threading.Lock()

    def get(self, clusters, nodename, refresh=False):
        """The state of node ``nodename``, one of ``clusters`` (nodename
        -> Cluster: every node served)."""
        with self._lock:
            batch = self._batch
            fresh = (batch is not None and
                     time.monotonic() - batch.read_at <= STATE_REUSE_SECONDS)
            if not fresh or nodename not in (
                    batch.unrefreshed if refresh else batch.states):
                served = list(clusters.values())
                states = cluster_mod.read_state(self._session, served)
                batch = self._batch = _Batch(
                    time.monotonic(),
                    {c.nodename: st for c, st in zip(served, states,
                                                     strict=True)})
            if refresh:
                batch.unrefreshed.discard(nodename)
            return batch.states[nodename]
