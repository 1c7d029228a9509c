"""Inventory math (vcdriver.capacity): totals over usable hosts and
datastores, max_unit from the best single one, blocked classes."""

import pytest
from oslo_utils import units

from vcdriver import capacity

GB_MB = 1024  # MiB in a GiB


def host(name='h', connected=True, powered_on=True, in_maintenance=False,
         cpu_threads=8, memory_mb=12 * GB_MB, vm_vcpus=0, vm_memory_mb=0):
    return capacity.Host(ref=name, name=name, connected=connected,
                         powered_on=powered_on, in_maintenance=in_maintenance,
                         cpu_threads=cpu_threads, memory_mb=memory_mb,
                         vm_vcpus=vm_vcpus, vm_memory_mb=vm_memory_mb)


def ds(name='ds', type='VMFS', accessible=True, maintenance_mode='normal',
       capacity_gb=100, free_gb=50):
    return capacity.Datastore(ref=name, name=name, type=type,
                              accessible=accessible,
                              maintenance_mode=maintenance_mode,
                              capacity=capacity_gb * units.Gi,
                              free_space=free_gb * units.Gi)


def blocked(resource):
    return resource.reserved == resource.total and resource.max_unit == 1


# --- which hosts and datastores count ------------------------------------

@pytest.mark.parametrize('connected,powered_on,in_maintenance,usable', [
    (True, True, False, True),
    (False, True, False, False),
    (True, False, False, False),
    (True, True, True, False),
    (False, False, True, False),
])
def test_host_usable(connected, powered_on, in_maintenance, usable):
    h = host(connected=connected, powered_on=powered_on,
             in_maintenance=in_maintenance)
    assert h.usable is usable


@pytest.mark.parametrize('kwargs,regex,usable', [
    ({}, None, True),
    ({'type': 'NFS'}, None, True),
    ({'type': 'NFS41'}, None, True),
    ({'type': 'vsan'}, None, True),  # vCenter reports it lower case
    ({'type': 'VVOL'}, None, True),
    ({'maintenance_mode': None}, None, True),
    ({'accessible': False}, None, False),
    ({'maintenance_mode': 'inMaintenance'}, None, False),
    ({'maintenance_mode': 'enteringMaintenance'}, None, False),
    ({'type': 'vfat'}, None, False),
    ({'type': 'PMEM'}, None, False),
    ({'type': None}, None, False),
    ({'name': 'gold-1'}, r'gold', True),
    ({'name': 'gold-1'}, r'gold-\d$', True),
    ({'name': 'silver-1'}, r'gold', False),
    # re.match, as the in-tree driver: anchored at the start only.
    ({'name': 'old-gold'}, r'gold', False),
    ({'name': 'gold', 'accessible': False}, r'gold', False),
])
def test_datastore_usable(kwargs, regex, usable):
    assert ds(**kwargs).usable(regex) is usable


# --- memory ---------------------------------------------------------------

def test_classic_case_total_is_sum_but_max_unit_is_best_host():
    """3 hosts x 12 GB with 4 GB of VMs on each: 36 GB in total, but no
    host can take more than 8 GB."""
    hosts = [host(name='h%d' % i, memory_mb=12 * GB_MB,
                  vm_memory_mb=4 * GB_MB) for i in range(3)]
    mem = capacity.memory_mb(hosts, 1.0, 0)
    assert mem.total == 36 * GB_MB
    assert mem.max_unit == 8 * GB_MB
    assert mem.reserved == 0
    assert mem.as_inventory() == {
        'total': 36 * GB_MB, 'reserved': 0, 'min_unit': 1,
        'max_unit': 8 * GB_MB, 'step_size': 1, 'allocation_ratio': 1.0}


@pytest.mark.parametrize('hosts,ratio,reserved,total,max_unit', [
    # The freest host wins, wherever it is in the list.
    ([host(vm_memory_mb=10 * GB_MB), host(vm_memory_mb=1 * GB_MB)],
     1.0, 0, 24 * GB_MB, 11 * GB_MB),
    # Reserved memory comes off every host's max_unit, once off the total.
    ([host(), host()], 1.0, 512, 24 * GB_MB, 12 * GB_MB - 512),
    # Allocation ratio applies to the host before its VMs are subtracted.
    ([host(vm_memory_mb=4 * GB_MB)], 1.5, 0, 12 * GB_MB,
     18 * GB_MB - 4 * GB_MB),
    # A big host in maintenance counts for neither total nor max_unit.
    ([host(memory_mb=64 * GB_MB, in_maintenance=True), host()],
     1.0, 0, 12 * GB_MB, 12 * GB_MB),
    ([host(memory_mb=64 * GB_MB, connected=False), host()],
     1.0, 0, 12 * GB_MB, 12 * GB_MB),
    ([host(memory_mb=64 * GB_MB, powered_on=False), host()],
     1.0, 0, 12 * GB_MB, 12 * GB_MB),
])
def test_memory(hosts, ratio, reserved, total, max_unit):
    mem = capacity.memory_mb(hosts, ratio, reserved)
    assert (mem.total, mem.max_unit) == (total, max_unit)
    assert mem.reserved == reserved
    assert mem.allocation_ratio == ratio


def test_memory_reserved_never_above_total():
    mem = capacity.memory_mb([host(memory_mb=1024)], 100.0, 4096)
    assert mem.total == 1024
    assert mem.reserved == 1024


def test_memory_of_vms_on_unusable_hosts_is_ignored():
    hosts = [host(vm_memory_mb=12 * GB_MB, in_maintenance=True),
             host(vm_memory_mb=2 * GB_MB)]
    mem = capacity.memory_mb(hosts, 1.0, 0)
    assert mem.max_unit == 10 * GB_MB


# --- vCPU -----------------------------------------------------------------

@pytest.mark.parametrize('hosts,ratio,reserved,total,max_unit', [
    ([host(cpu_threads=8), host(cpu_threads=16, vm_vcpus=4)],
     1.0, 0, 24, 12),
    ([host(cpu_threads=8, vm_vcpus=2)], 1.0, 1, 8, 5),
    # Unusable hosts count for nothing.
    ([host(cpu_threads=64, connected=False), host(cpu_threads=8)],
     1.0, 0, 8, 8),
    # Fractions from the ratio round down: 6 * 1.25 - 2 = 5.5.
    ([host(cpu_threads=6, vm_vcpus=2)], 1.25, 0, 6, 5),
])
def test_vcpu(hosts, ratio, reserved, total, max_unit):
    cpu = capacity.vcpu(hosts, ratio, reserved)
    assert (cpu.total, cpu.max_unit, cpu.reserved) == \
        (total, max_unit, reserved)


def test_vcpu_overcommit_counts_against_vms_already_there():
    # 8 threads at 4.0 = 32 schedulable; 30 vCPUs of VMs leave 2.
    cpu = capacity.vcpu([host(cpu_threads=8, vm_vcpus=30)], 4.0, 0)
    assert cpu.max_unit == 2
    assert cpu.total == 8
    assert cpu.allocation_ratio == 4.0


def test_vcpu_max_unit_not_above_best_host_threads():
    """A VM cannot have more vCPUs than its ESXi host has logical CPUs,
    whatever the overcommit ratio: max_unit must not promise it."""
    cpu = capacity.vcpu([host(cpu_threads=8), host(cpu_threads=8)], 4.0, 0)
    assert cpu.max_unit <= 8, (
        'BUG (vcdriver.capacity.vcpu): max_unit %d offers a single VM more '
        'vCPUs than any host has threads (8); with the default '
        'cpu_allocation_ratio 4.0 placement accepts a 32-vCPU flavor that '
        "no host can power on. max_unit should be capped at the host's "
        'cpu_threads.' % cpu.max_unit)


# --- nothing fits: the class is blocked -----------------------------------

@pytest.mark.parametrize('hosts', [
    [],
    [host(in_maintenance=True)],
    [host(connected=False), host(powered_on=False)],
])
def test_no_usable_host_blocks_vcpu_and_memory(hosts):
    cpu = capacity.vcpu(hosts, 1.0, 0)
    mem = capacity.memory_mb(hosts, 1.0, 0)
    for r in (cpu, mem):
        assert blocked(r), r
        assert r.total >= 1  # placement refuses a total of 0


def test_full_hosts_block_memory_but_keep_their_total():
    hosts = [host(memory_mb=4096, vm_memory_mb=4096),
             host(memory_mb=4096, vm_memory_mb=5000)]
    mem = capacity.memory_mb(hosts, 1.0, 0)
    assert mem.total == 8192
    assert blocked(mem)


def test_reserved_cpus_eating_every_host_block_vcpu():
    cpu = capacity.vcpu([host(cpu_threads=2), host(cpu_threads=2)], 1.0, 2)
    assert cpu.total == 4
    assert blocked(cpu)


# --- disk -----------------------------------------------------------------

@pytest.mark.parametrize('datastores,regex,total,max_unit', [
    ([ds(capacity_gb=100, free_gb=50), ds(capacity_gb=200, free_gb=20)],
     None, 300, 50),
    # Unusable datastores count for nothing.
    ([ds(capacity_gb=1000, free_gb=900, accessible=False),
      ds(capacity_gb=100, free_gb=10)], None, 100, 10),
    ([ds(capacity_gb=1000, free_gb=900, maintenance_mode='inMaintenance'),
      ds(capacity_gb=100, free_gb=10)], None, 100, 10),
    ([ds(capacity_gb=1000, free_gb=900, type='vfat'),
      ds(capacity_gb=100, free_gb=10)], None, 100, 10),
    # The regex narrows both total and max_unit.
    ([ds('gold', capacity_gb=100, free_gb=10),
      ds('silver', capacity_gb=1000, free_gb=900)], 'gold', 100, 10),
])
def test_disk(datastores, regex, total, max_unit):
    disk = capacity.disk_gb(datastores, regex, 1.0, 0)
    assert (disk.total, disk.max_unit) == (total, max_unit)


def test_disk_rounds_down_to_whole_gib():
    d = capacity.Datastore(ref='d', name='d', type='NFS', accessible=True,
                           maintenance_mode='normal',
                           capacity=10 * units.Gi + units.Gi - 1,
                           free_space=2 * units.Gi - 1)
    disk = capacity.disk_gb([d], None, 1.0, 0)
    assert (disk.total, disk.max_unit) == (10, 1)


def test_disk_reserved_and_ratio_pass_through():
    disk = capacity.disk_gb([ds(capacity_gb=100, free_gb=50)], None, 1.5, 3)
    assert disk.reserved == 3
    assert disk.allocation_ratio == 1.5


@pytest.mark.parametrize('datastores,regex', [
    ([], None),
    ([ds(accessible=False)], None),
    ([ds(name='silver')], 'gold'),
    ([ds(free_gb=0)], None),  # usable but full
])
def test_no_usable_datastore_blocks_disk(datastores, regex):
    disk = capacity.disk_gb(datastores, regex, 1.0, 0)
    assert blocked(disk), disk


# --- where a new disk goes ------------------------------------------------

def test_best_datastore_is_the_freest_that_fits():
    a, b, c = ds('a', free_gb=10), ds('b', free_gb=80), ds('c', free_gb=40)
    assert capacity.best_datastore([a, b, c], None, units.Gi) is b


def test_best_datastore_skips_unusable_even_if_freest():
    big = ds('big', free_gb=900, maintenance_mode='inMaintenance')
    small = ds('small', free_gb=10)
    assert capacity.best_datastore([big, small], None, units.Gi) is small


def test_best_datastore_honours_regex():
    gold, silver = ds('gold', free_gb=10), ds('silver', free_gb=90)
    assert capacity.best_datastore([gold, silver], 'gold', units.Gi) is gold
    assert capacity.best_datastore([gold, silver], 'bronze', units.Gi) is None


@pytest.mark.parametrize('needed,expected', [
    (40 * units.Gi, 'b'),  # exactly the free space still fits
    (40 * units.Gi + 1, None),
    (0, 'b'),
])
def test_best_datastore_needs_room_for_the_disk(needed, expected):
    dss = [ds('a', free_gb=10), ds('b', free_gb=40)]
    found = capacity.best_datastore(dss, None, needed)
    assert (found.name if found else None) == expected


# --- spawn-time fit ---------------------------------------------------------

def _classic():
    """3 hosts of 12 GB, each running 4 GB of VMs."""
    return [host('h%d' % i, vm_memory_mb=4 * GB_MB, vm_vcpus=2)
            for i in range(3)]


def test_fits_when_one_host_has_room():
    assert capacity.shortfall(_classic(), 2, 6 * GB_MB, 16.0, 1.0, 0,
                              512) is None


def test_shortfall_names_the_best_host_and_its_room():
    # 24 GB free in the cluster, 8 GB (minus the reserve) on any one host.
    message = capacity.shortfall(_classic(), 2, 10 * GB_MB, 16.0, 1.0, 0,
                                 512)
    assert message == ('no host can take 2 vCPU and 10240 MB now; the one '
                       'with the most memory free, h0, has room for 8 vCPU '
                       'and 7680 MB')


def test_vcpus_count_too():
    hosts = [host(cpu_threads=4, vm_vcpus=64)]
    assert 'has room for 0 vCPU' in capacity.shortfall(hosts, 1, 512, 16.0,
                                                       1.0, 0, 0)
    # Never more vCPUs than the host has threads.
    assert capacity.shortfall([host(cpu_threads=4)], 5, 512, 16.0, 1.0, 0,
                              0) is not None


def test_only_usable_hosts_count():
    hosts = [host(in_maintenance=True), host(connected=False)]
    assert capacity.shortfall(hosts, 1, 1, 1, 1, 0, 0) == (
        'no host is usable (connected, powered on, not in maintenance, not '
        'an HA failover host)')


def test_a_vm_that_fits_exactly_fits():
    # 8 threads, 12 GB, nothing reserved or running: 8 vCPU and 12 GB is
    # the largest VM that fits.
    assert capacity.shortfall([host()], 8, 12 * GB_MB, 1.0, 1.0, 0,
                              0) is None
    assert capacity.shortfall([host()], 9, 12 * GB_MB, 1.0, 1.0, 0, 0)
    assert capacity.shortfall([host()], 8, 12 * GB_MB + 1, 1.0, 1.0, 0, 0)


def test_shortfall_of_an_overcommitted_host_says_no_room_not_less():
    full = [host('full', memory_mb=4 * GB_MB, vm_memory_mb=6 * GB_MB,
                 cpu_threads=4, vm_vcpus=10)]
    assert capacity.shortfall(full, 1, 512, 1.0, 1.0, 0, 0) == (
        'no host can take 1 vCPU and 512 MB now; the one with the most '
        'memory free, full, has room for 0 vCPU and 0 MB')


# --- the smallest cluster that still offers something ---------------------

def test_one_thread_one_gib_is_offered_not_blocked():
    cpu = capacity.vcpu([host(cpu_threads=1)], 1.0, 0)
    assert (cpu.total, cpu.reserved, cpu.max_unit) == (1, 0, 1)
    disk = capacity.disk_gb([ds(capacity_gb=1, free_gb=1)], None, 1.0, 0)
    assert (disk.total, disk.reserved, disk.max_unit) == (1, 0, 1)


def test_room_for_exactly_one_unit_is_offered():
    disk = capacity.disk_gb([ds(capacity_gb=10, free_gb=1)], None, 1.0, 2)
    assert (disk.total, disk.reserved, disk.max_unit) == (10, 2, 1)
    memory = capacity.memory_mb([host(memory_mb=4097, vm_memory_mb=4096)],
                                1.0, 0)
    assert (memory.reserved, memory.max_unit) == (0, 1)


def test_a_blocked_class_keeps_its_allocation_ratio():
    cpu = capacity.vcpu([host(in_maintenance=True)], 16.0, 0)
    assert blocked(cpu) and cpu.allocation_ratio == 16.0


# --- HA admission control ---------------------------------------------------

def test_ha_percent_policy_reserves_a_share_of_the_cluster():
    hosts = [host('h%d' % i) for i in range(4)]  # 4 x 8 threads, 12 GB
    ha = capacity.HAAdmission(cpu_percent=25, memory_percent=50)
    cpu = capacity.vcpu(hosts, 16.0, 0, ha)
    memory = capacity.memory_mb(hosts, 1.0, 512, ha)
    assert (cpu.total, cpu.reserved) == (32, 8)
    assert (memory.total, memory.reserved) == (48 * GB_MB, 512 + 24 * GB_MB)
    # One VM still fits a single host as before.
    assert memory.max_unit == 12 * GB_MB - 512


def test_ha_percent_policy_rounds_the_reserve_up():
    # 25 % of 10 threads is 2.5: vCenter keeps 3 back, and placement
    # takes whole units.
    ha = capacity.HAAdmission(cpu_percent=25)
    cpu = capacity.vcpu([host(cpu_threads=6), host('b', cpu_threads=4)],
                        1.0, 0, ha)
    assert cpu.reserved == 3 and type(cpu.reserved) is int


def test_ha_failover_level_reserves_the_largest_hosts():
    hosts = [host('small', memory_mb=8 * GB_MB, cpu_threads=4),
             host('big', memory_mb=16 * GB_MB, cpu_threads=16),
             host('mid', memory_mb=12 * GB_MB, cpu_threads=8)]
    ha = capacity.HAAdmission(failover_level=1)
    assert capacity.memory_mb(hosts, 1.0, 0, ha).reserved == 16 * GB_MB
    assert capacity.vcpu(hosts, 1.0, 0, ha).reserved == 16
    two = capacity.HAAdmission(failover_level=2)
    assert capacity.memory_mb(hosts, 1.0, 0, two).reserved == 28 * GB_MB


def test_ha_failover_hosts_take_no_vms():
    spare = host('spare', memory_mb=64 * GB_MB, cpu_threads=32)
    hosts = [host('a'), spare]
    ha = capacity.HAAdmission(failover_hosts=frozenset({'spare'}))
    memory = capacity.memory_mb(hosts, 1.0, 0, ha)
    assert (memory.total, memory.max_unit) == (12 * GB_MB, 12 * GB_MB)
    cpu = capacity.vcpu(hosts, 1.0, 0, ha)
    assert (cpu.total, cpu.max_unit) == (8, 8)
    assert capacity.shortfall(hosts, 1, 16 * GB_MB, 1, 1, 0, 0, ha)
    assert capacity.shortfall(hosts, 1, 16 * GB_MB, 1, 1, 0, 0) is None
    # Nor does the scheduler's count of hosts a group may spread over.
    assert capacity.usable_hosts(hosts + [host('mm', in_maintenance=True)],
                                 ha) == [hosts[0]]


def test_ha_reserving_everything_blocks_the_class():
    ha = capacity.HAAdmission(failover_level=1)
    assert blocked(capacity.memory_mb([host()], 1.0, 0, ha))
