"""Inventory math for one node (cluster): pure functions, no vSphere calls.

The rule: totals aggregate the usable hosts and datastores, but ``max_unit``
is what the best *single* host or datastore can still take, so placement
never promises a VM that no host can run.
"""

import dataclasses
import re

from oslo_utils import units

USABLE_DATASTORE_TYPES = ('VMFS', 'NFS', 'NFS41', 'VSAN', 'VVOL')


@dataclasses.dataclass
class Host:
    ref: object
    name: str
    connected: bool
    powered_on: bool
    in_maintenance: bool
    cpu_threads: int
    memory_mb: int
    # vCPUs and memory configured for the VMs registered on this host.
    vm_vcpus: int = 0
    vm_memory_mb: int = 0
    # When it booted, seconds since the epoch (None: not known).
    boot_time: float = None

    @property
    def usable(self):
        return self.connected and self.powered_on and not self.in_maintenance


@dataclasses.dataclass
class Datastore:
    ref: object
    name: str
    type: str
    accessible: bool
    maintenance_mode: str
    capacity: int
    free_space: int

    def usable(self, regex=None):
        return (self.accessible and
                self.maintenance_mode in (None, 'normal') and
                (self.type or '').upper() in USABLE_DATASTORE_TYPES and
                (regex is None or bool(re.match(regex, self.name))))


@dataclasses.dataclass(frozen=True)
class HAAdmission:
    """vSphere HA admission control: capacity kept for failover, which
    vCenter will not let VMs use, so placement must not offer it."""
    cpu_percent: int = 0        # failover resources policy
    memory_percent: int = 0
    failover_level: int = 0     # host failures the cluster tolerates
    failover_hosts: frozenset = frozenset()   # spare hosts (refs)

    def spare(self, host):
        return host.ref in self.failover_hosts

    def reserve(self, usable, amount, percent):
        """Capacity held back: ``percent`` of the total, or the largest
        ``failover_level`` hosts (vCenter's slot policy, approximated by
        whole hosts, which never under-reserves)."""
        sizes = sorted((amount(h) for h in usable), reverse=True)
        by_level = sum(sizes[:self.failover_level])
        by_percent = -(-sum(sizes) * percent // 100)
        return max(by_level, by_percent)


NO_HA = HAAdmission()


@dataclasses.dataclass
class Resource:
    total: int
    reserved: int
    max_unit: int
    allocation_ratio: float

    def as_inventory(self):
        return {'total': self.total, 'reserved': self.reserved,
                'min_unit': 1, 'max_unit': self.max_unit, 'step_size': 1,
                'allocation_ratio': self.allocation_ratio}


def _resource(total, reserved, best_single, ratio):
    """Blocks the class (reserved = total) when nothing fits anywhere."""
    best_single = int(best_single)
    if total <= 0 or best_single < 1 or reserved >= total:
        return Resource(total=max(total, 1), reserved=max(total, 1),
                        max_unit=1, allocation_ratio=ratio)
    return Resource(total=total, reserved=min(reserved, total),
                    max_unit=best_single, allocation_ratio=ratio)


def usable_hosts(hosts, ha=NO_HA):
    """The hosts DRS may place a VM on: usable, and not an HA failover
    host kept empty."""
    return [h for h in hosts if h.usable and not ha.spare(h)]


def vcpu(hosts, ratio, reserved_host_cpus, ha=NO_HA):
    usable = usable_hosts(hosts, ha)
    # No VM can have more vCPUs than its host has threads, whatever the
    # overcommit ratio.
    best = max((_room(h, ratio, 1, reserved_host_cpus, 0)[0]
                for h in usable), default=0)
    held = ha.reserve(usable, lambda h: h.cpu_threads, ha.cpu_percent)
    return _resource(sum(h.cpu_threads for h in usable),
                     reserved_host_cpus + held, best, ratio)


def memory_mb(hosts, ratio, reserved_host_memory_mb, ha=NO_HA):
    usable = usable_hosts(hosts, ha)
    best = max((_room(h, 1, ratio, 0, reserved_host_memory_mb)[1]
                for h in usable), default=0)
    held = ha.reserve(usable, lambda h: h.memory_mb, ha.memory_percent)
    return _resource(sum(h.memory_mb for h in usable),
                     reserved_host_memory_mb + held, best, ratio)


def disk_gb(datastores, regex, ratio, reserved_disk_gb):
    usable = [d for d in datastores if d.usable(regex)]
    best = max((d.free_space // units.Gi for d in usable), default=0)
    return _resource(sum(d.capacity for d in usable) // units.Gi,
                     reserved_disk_gb, best, ratio)


def best_datastore(datastores, regex, needed_bytes):
    """The usable datastore with the most free space that holds the disk."""
    fitting = [d for d in datastores
               if d.usable(regex) and d.free_space >= needed_bytes]
    return max(fitting, key=lambda d: d.free_space, default=None)


def _room(host, cpu_ratio, ram_ratio, reserved_host_cpus,
          reserved_host_memory_mb):
    """(vCPUs, MB) a host can still give one more VM."""
    cpus = min(host.cpu_threads, host.cpu_threads * cpu_ratio -
               reserved_host_cpus - host.vm_vcpus)
    memory = (host.memory_mb * ram_ratio - reserved_host_memory_mb -
              host.vm_memory_mb)
    return cpus, memory


def shortfall(hosts, vcpus, memory_mb, cpu_ratio, ram_ratio,
              reserved_host_cpus, reserved_host_memory_mb, ha=NO_HA):
    """None when some usable host can take a VM of this size now, else
    what is missing, for the operator: placement's view was older."""
    usable = usable_hosts(hosts, ha)
    if not usable:
        return 'no host is usable (connected, powered on, not in ' \
               'maintenance, not an HA failover host)'
    rooms = [(h, _room(h, cpu_ratio, ram_ratio, reserved_host_cpus,
                       reserved_host_memory_mb)) for h in usable]
    if any(c >= vcpus and m >= memory_mb for _h, (c, m) in rooms):
        return None
    best, (cpus, memory) = max(rooms, key=lambda hr: hr[1][1])
    return ('no host can take %d vCPU and %d MB now; the one with the most '
            'memory free, %s, has room for %d vCPU and %d MB'
            % (vcpus, memory_mb, best.name, max(cpus, 0), max(memory, 0)))
