"""Resize refusals, the revert state, and live migration's pre-checks and
rollback, without vCenter."""

import json
import types
from unittest import mock

import pytest
from nova import exception as nova_exception
from nova import objects
from nova.objects import migrate_data as migrate_data_obj
from pyVmomi import vim

from vcdriver import capacity
from vcdriver import cluster as cluster_mod
from vcdriver import devices
from vcdriver import exception
from vcdriver import migration
from vcdriver import storage_policy

objects.register_all()

VC = '97e5a44a-a3e1-4b0a-81fa-1eb9edfabec2'


def flavor(name='f', vcpus=1, memory_mb=512, root_gb=1, ephemeral_gb=0,
           swap=0, extra_specs=None):
    return objects.Flavor(name=name, vcpus=vcpus, memory_mb=memory_mb,
                          root_gb=root_gb, ephemeral_gb=ephemeral_gb,
                          swap=swap, extra_specs=extra_specs or {})


def cluster(moid='domain-c7'):
    return cluster_mod.Cluster(
        name=moid, ref=vim.ClusterComputeResource(moid),
        nodename='%s.%s' % (moid, VC), datacenter='DC0',
        datacenter_ref=vim.Datacenter('dc-1'), vm_folder=None,
        resource_pool=vim.ResourcePool('rp-%s' % moid))


def host(name, memory_mb=4096, vm_memory_mb=0, usable=True):
    return capacity.Host(ref=vim.HostSystem(name), name=name,
                         connected=usable, powered_on=True,
                         in_maintenance=False, cpu_threads=8,
                         memory_mb=memory_mb, vm_memory_mb=vm_memory_mb)


INSTANCE = types.SimpleNamespace(uuid='i-1', flavor=flavor(),
                                 node='domain-c7.%s' % VC,
                                 image_meta=objects.ImageMeta.from_dict({}),
                                 system_metadata={})


def refusal(old, new):
    with pytest.raises(nova_exception.InstanceFaultRollback) as e:
        migration.check_resize(INSTANCE, old, new)
    assert isinstance(e.value.inner_exception, nova_exception.ResizeError)
    return str(e.value.inner_exception)


def test_growing_cpu_memory_and_root_disk_is_accepted():
    migration.check_resize(INSTANCE, flavor(),
                           flavor(vcpus=4, memory_mb=8192, root_gb=20))
    migration.check_resize(INSTANCE, flavor(), flavor(memory_mb=256))


def test_a_smaller_root_disk_is_refused_clearly():
    message = refusal(flavor(root_gb=10), flavor(name='tiny', root_gb=5))
    assert 'the root disk cannot shrink (flavor tiny has 5 GB, the server ' \
           'has 10 GB)' in message
    assert 'at least 10 GB' in message


def test_changed_ephemeral_or_swap_refused():
    assert 'ephemeral disk size (0 to 10)' in refusal(
        flavor(), flavor(ephemeral_gb=10))
    assert 'swap disk size (64 to 0)' in refusal(flavor(swap=64), flavor())
    # Volume-backed (root_gb 0): any root_gb is fine, nothing grows.
    migration.check_resize(INSTANCE, flavor(root_gb=0), flavor(root_gb=1))


@pytest.mark.parametrize('new, refusal', [
    (flavor(swap=16, name='small'), 'swap disk size (0 to 16)'),
    # A flavor whose extra spec vSphere cannot honour.
    (flavor(extra_specs={'quota:cpu_shares_level': 'loud'}),
     'quota:cpu_shares_level=loud'),
    (flavor(extra_specs={'vmware:hw_version': 'vmx-13'}),
     "below the VM's hardware version vmx-15")])
def test_migrate_disk_and_power_off_refuses_before_powering_off(new, refusal):
    session, vm = mock.Mock(), mock.Mock()
    with mock.patch.object(migration.power, 'power_off') as power_off, \
            mock.patch.object(migration.vm, 'hw_version',
                              return_value='vmx-15'):
        with pytest.raises(nova_exception.InstanceFaultRollback) as e:
            migration.migrate_disk_and_power_off(session, INSTANCE, vm, new)
        assert refusal in str(e.value.inner_exception)
        power_off.assert_not_called()


def test_migrate_disk_and_power_off_powers_off():
    session, vm = mock.Mock(), mock.Mock()
    with mock.patch.object(migration.power, 'power_off') as power_off, \
            mock.patch.object(migration.vm, 'hw_version',
                              return_value='vmx-15'):
        assert migration.migrate_disk_and_power_off(
            session, INSTANCE, vm, flavor(root_gb=2), 30, 5) == ''
        power_off.assert_called_once_with(session, vm, 30, 5)


def test_pick_host_takes_the_usable_one_with_most_memory_left():
    state = cluster_mod.ClusterState(cluster(), [
        host('h1', vm_memory_mb=3000), host('h2', vm_memory_mb=1000),
        host('h3', usable=False)], [])
    assert migration.pick_host(state, flavor()).name == 'h2'


def test_revert_state_round_trips_through_extra_config():
    vm = vim.VirtualMachine('vm-1')
    key = 'config.extraConfig["%s"]' % migration.STATE_KEY
    state = {'node': 'n', 'disk': {'orig': '[ds] i/i.orig.vmdk'}}
    with mock.patch.object(migration.props, 'properties', return_value={
            vm: {key: vim.option.OptionValue(key=migration.STATE_KEY,
                                             value=json.dumps(state))}}):
        assert migration.read_state(mock.Mock(), vm) == state
    with mock.patch.object(migration.props, 'properties',
                           return_value={vm: {}}):
        assert migration.read_state(mock.Mock(), vm) is None


@pytest.mark.parametrize('vm_datastore,orig_on,deleted', [
    ('nfs0', {'nfs0'}, '[nfs0] i-1/i-1.orig.vmdk'),
    # A storage policy moved the VM's folder, the original with it.
    ('nfs1', {'nfs1'}, '[nfs1] i-1/i-1.orig.vmdk'),
    # ... or vCenter left it behind (it moves only the VM's own files).
    ('nfs1', {'nfs0'}, '[nfs0] i-1/i-1.orig.vmdk'),
    ('nfs1', set(), None)])
def test_confirm_deletes_the_original_root_disk_and_the_state(
        vm_datastore, orig_on, deleted):
    vm, c = mock.Mock(), cluster()
    state = {'disk': {'orig': '[nfs0] i-1/i-1.orig.vmdk'}}
    with mock.patch.object(migration, 'read_state', return_value=state), \
            mock.patch.object(migration.vm, 'files_location',
                              return_value=(vm_datastore, 'i-1')), \
            mock.patch.object(migration.datastore_http, 'exists',
                              side_effect=lambda _s, _dc, ds, _p:
                              ds in orig_on), \
            mock.patch.object(migration.files,
                              'delete_virtual_disk') as delete, \
            mock.patch.object(migration, '_reconfigure') as reconfigure:
        migration.confirm_migration(mock.Mock(), c, INSTANCE, vm)
    assert [(c_[0][1], str(c_[0][2])) for c_ in delete.call_args_list] == (
        [(c.datacenter_ref, deleted)] if deleted else [])
    assert reconfigure.call_args[0][4] is None  # state removed


def _disk(unit, name):
    disk = vim.vm.device.VirtualDisk
    return disk(key=2000 + unit, controllerKey=1000, unitNumber=unit,
                capacityInKB=1024, backing=disk.FlatVer2BackingInfo(
                    fileName='[nfs0] i-1/%s' % name, diskMode='persistent'))


@pytest.mark.parametrize('on_vm,detached', [
    # A revert: the grown copy leaves the original's slot.
    (['i-1.vmdk', 'ephemeral_0.vmdk'], 'i-1.vmdk'),
    # Growing failed before the copy went on: the ephemeral disk, root by
    # the fall-back rule then, stays where it is.
    ([None, 'ephemeral_0.vmdk'], None),
])
def test_restoring_the_root_takes_off_only_the_disk_in_its_slot(on_vm,
                                                                 detached):
    found = devices.Devices([vim.vm.device.VirtualLsiLogicController(
        key=1000, busNumber=0)] + [_disk(u, n) for u, n in enumerate(on_vm)
                                   if n])
    disk = {'orig': '[nfs0] i-1/i-1.orig.vmdk', 'path': '[nfs0] i-1/i-1.vmdk',
            'kb': 1024, 'controller': 1000, 'unit': 0}
    with mock.patch.object(migration.devices.Devices, 'read',
                           return_value=found), \
            mock.patch.object(migration.vm, 'detach_disk') as detach, \
            mock.patch.object(migration.datastore_http, 'exists',
                              return_value=True), \
            mock.patch.object(migration.vm, 'files_location',
                              return_value=('nfs0', 'i-1')), \
            mock.patch.object(migration, 'files'), \
            mock.patch.object(migration, '_attach') as attach:
        migration._restore_disk(mock.Mock(), cluster(), mock.Mock(),
                                INSTANCE, disk)
    assert [c[0][2].backing.fileName for c in detach.call_args_list] == (
        ['[nfs0] i-1/%s' % detached] if detached else [])
    assert attach.call_args[0][2:4] == (1000, 0)


# --- live migration --------------------------------------------------------

def test_destination_refuses_the_node_the_instance_is_on():
    with pytest.raises(nova_exception.MigrationPreCheckError):
        migration.destination_data(mock.Mock(), cluster(), INSTANCE)


def test_destination_that_cannot_take_the_vm_is_a_precheck_error():
    state = cluster_mod.ClusterState(cluster('domain-c9'),
                                     [host('h1', vm_memory_mb=4000)], [])
    with mock.patch.object(migration.cluster_mod, 'read_state',
                           return_value=[state]):
        with pytest.raises(nova_exception.MigrationPreCheckError) as e:
            migration.destination_data(mock.Mock(), cluster('domain-c9'),
                                       INSTANCE)
    assert 'no host can take 1 vCPU and 512 MB now' in str(e.value)


def test_destination_names_its_node():
    state = cluster_mod.ClusterState(cluster('domain-c9'), [host('h1')], [])
    with mock.patch.object(migration.cluster_mod, 'read_state',
                           return_value=[state]):
        data = migration.destination_data(mock.Mock(), cluster('domain-c9'),
                                          INSTANCE)
    assert isinstance(data, migrate_data_obj.VMwareLiveMigrateData)
    assert data.cluster_name == 'domain-c9.%s' % VC


def test_source_refuses_another_vcenter():
    session = mock.Mock()
    session.about.instanceUuid = VC
    data = migrate_data_obj.VMwareLiveMigrateData(
        cluster_name='domain-c9.other-vcenter', datastore_regex='')
    with pytest.raises(nova_exception.MigrationPreCheckError) as e:
        migration.check_source(session, INSTANCE, data)
    assert 'belongs to another vCenter' in str(e.value)


def _live(relocate_error=None):
    here, dest = cluster(), cluster('domain-c9')
    data = migrate_data_obj.VMwareLiveMigrateData(
        cluster_name=dest.nodename, datastore_regex='')
    success, failure = mock.Mock(), mock.Mock()
    with mock.patch.object(migration, '_cluster_ref_of',
                           return_value=here.ref), \
            mock.patch.object(migration, 'relocate',
                              side_effect=relocate_error) as relocate, \
            mock.patch.object(migration, 'drs_rules') as drs:
        migration.live_migration(mock.Mock(), None, [here, dest], INSTANCE,
                                 mock.Mock(), data, success, failure)
    return relocate, drs, success, failure, dest


def test_live_migration_relocates_then_calls_nova_back():
    relocate, drs, success, failure, dest = _live()
    assert relocate.call_args[0][2] is dest
    drs.on_spawn.assert_called_once()
    success.assert_called_once_with()
    failure.assert_not_called()


def test_failed_relocation_runs_nova_rollback_not_post():
    relocate, drs, success, failure, _dest = _live(
        vim.fault.MigrationNotReady(reason='no compatible host'))
    failure.assert_called_once_with()
    success.assert_not_called()
    drs.on_spawn.assert_not_called()


def _relocate(vm_datastore):
    dest = cluster('domain-c9')
    shared = capacity.Datastore(
        ref=vim.Datastore('ds-1'), name='nfs0', type='NFS', accessible=True,
        maintenance_mode='normal', capacity=100 << 30, free_space=50 << 30)
    state = cluster_mod.ClusterState(dest, [host('h1'), host('h2')],
                                     [shared])
    session, vm = mock.Mock(), mock.Mock()
    disk = vim.vm.device.VirtualDisk(capacityInKB=2 << 20)
    with mock.patch.object(migration.cluster_mod, 'read_state',
                           return_value=[state]), \
            mock.patch.object(migration.vm, 'files_location',
                              return_value=(vm_datastore, 'i-1')), \
            mock.patch.object(migration.devices.Devices, 'read',
                              return_value=devices.Devices([disk])):
        migration.relocate(session, vm, dest, INSTANCE, flavor())
    return vm.RelocateVM_Task.call_args[0][0], dest


def test_relocation_keeps_a_datastore_the_cluster_shares():
    spec, dest = _relocate('nfs0')
    assert spec.pool == dest.resource_pool
    assert spec.host._moId == 'h1'
    assert spec.datastore is None


def test_relocation_moves_files_to_a_datastore_of_the_cluster():
    spec, _dest = _relocate('LocalDS_0')
    assert spec.datastore._moId == 'ds-1'


# --- storage policies ------------------------------------------------------

GOLD = storage_policy.Policy('gold', 'p-gold')


def _datastore(moid, name, free_gb=50):
    return capacity.Datastore(
        ref=vim.Datastore(moid), name=name, type='NFS', accessible=True,
        maintenance_mode='normal', capacity=100 << 30,
        free_space=free_gb << 30)


def _file_disk(key, path, volume=False):
    disk = vim.vm.device.VirtualDisk
    return disk(key=key, capacityInKB=1 << 20,
                backing=disk.FlatVer2BackingInfo(
                    fileName=path, diskMode='independent_persistent'
                    if volume else 'persistent'))


def _storage_target(home, disks, accepted, policy=GOLD):
    """RelocateSpec storage_target fills for a VM whose files are on
    ``home``, in a cluster of nfs0, nfs1 (more room) and nfs2, of which
    the policy accepts ``accepted``."""
    datastores = [_datastore('ds-0', 'nfs0', 40), _datastore('ds-1', 'nfs1',
                                                              90),
                  _datastore('ds-2', 'nfs2', 60)]
    state = cluster_mod.ClusterState(cluster(), [host('h1')], datastores)
    spec = vim.vm.RelocateSpec()
    with mock.patch.object(migration.storage_policy, 'compatible_datastores',
                           return_value=[d for d in datastores
                                         if d.name in accepted]), \
            mock.patch.object(migration.vm, 'files_location',
                              return_value=(home, 'i-1')), \
            mock.patch.object(migration.devices.Devices, 'read',
                              return_value=devices.Devices(disks)):
        chosen = migration.storage_target(mock.Mock(), mock.Mock(), state,
                                          policy, INSTANCE, spec)
    return chosen, spec


def test_files_on_an_accepted_datastore_stay():
    chosen, spec = _storage_target(
        'nfs0', [_file_disk(2000, '[nfs0] i-1/i-1.vmdk')], {'nfs0', 'nfs2'})
    assert chosen is None
    assert (spec.datastore, spec.disk, spec.profile) == (None, [], [])


def test_files_move_to_the_roomiest_accepted_datastore_with_the_policy():
    # The root disk is elsewhere than the home: it counts too.
    chosen, spec = _storage_target(
        'nfs0', [_file_disk(2000, '[nfs1] i-1/i-1.vmdk'),
                 _file_disk(2001, '[nfs1] volume-v/volume-v.vmdk',
                            volume=True),
                 _file_disk(2002, '[elsewhere] volume-w/volume-w.vmdk',
                            volume=True)], {'nfs0', 'nfs2'})
    assert chosen.name == 'nfs2'  # not nfs1, which has more room
    assert spec.datastore._moId == 'ds-2'
    assert [p.profileId for p in spec.profile] == ['p-gold']
    # The instance's disk goes with the policy; the volume on a datastore
    # of the cluster stays there, without one; the other goes with spec.
    assert [(d.diskId, d.datastore._moId, [p.profileId for p in d.profile])
            for d in spec.disk] == [(2000, 'ds-2', ['p-gold']),
                                    (2001, 'ds-1', [])]


def test_without_a_policy_only_files_outside_the_cluster_move():
    chosen, spec = _storage_target(
        'LocalDS_0', [_file_disk(2000, '[LocalDS_0] i-1/i-1.vmdk')],
        set(), policy=None)
    assert chosen.name == 'nfs1'
    assert spec.profile == [] and spec.disk[0].profile == []


def test_source_refuses_a_policy_the_destination_cannot_satisfy():
    session, vm = mock.Mock(), mock.Mock()
    refusal = exception.InvalidSpec(
        name='vmware:storage_policy', value='gold',
        reason='no datastore of cluster domain-c9 satisfies this storage '
               'policy')
    with mock.patch.object(migration.power, 'power_off') as power_off, \
            mock.patch.object(migration.vm, 'hw_version',
                              return_value='vmx-15'), \
            mock.patch.object(migration.cluster_mod, 'read_state',
                              return_value=[mock.Mock()]), \
            mock.patch.object(migration.storage_policy, 'for_instance',
                              return_value=GOLD), \
            mock.patch.object(migration.storage_policy,
                              'compatible_datastores',
                              side_effect=refusal):
        with pytest.raises(nova_exception.InstanceFaultRollback) as e:
            migration.migrate_disk_and_power_off(
                session, INSTANCE, vm, flavor(root_gb=2), dest=cluster(
                    'domain-c9'))
    assert ('vmware:storage_policy=gold: no datastore of cluster domain-c9'
            in str(e.value.inner_exception))
    power_off.assert_not_called()


def test_live_migration_precheck_refuses_a_policy_the_cluster_lacks():
    state = cluster_mod.ClusterState(cluster('domain-c9'), [host('h1')], [])
    with mock.patch.object(migration.cluster_mod, 'read_state',
                           return_value=[state]), \
            mock.patch.object(migration.storage_policy, 'for_instance',
                              return_value=GOLD), \
            mock.patch.object(migration.storage_policy, 'compatibility',
                              return_value=([], {})):
        with pytest.raises(nova_exception.MigrationPreCheckError) as e:
            migration.destination_data(mock.Mock(), cluster('domain-c9'),
                                       INSTANCE)
    assert ('vmware:storage_policy=gold: no datastore of cluster domain-c9 '
            'satisfies this storage policy' in str(e.value))


def test_resize_destination_is_the_migration_records_node():
    here, there = cluster(), cluster('domain-c9')
    with mock.patch.object(migration.objects.Migration,
                           'get_by_instance_and_status',
                           return_value=mock.Mock(
                               dest_node=there.nodename)) as get:
        assert migration.resize_destination(
            mock.Mock(), 'ctx', [here, there], INSTANCE) is there
    get.assert_called_once_with('ctx', 'i-1', 'migrating')
    with mock.patch.object(migration.objects.Migration,
                           'get_by_instance_and_status',
                           side_effect=nova_exception.MigrationNotFoundByStatus(
                               instance_id='i-1', status='migrating')):
        assert migration.resize_destination(
            mock.Mock(), 'ctx', [here], INSTANCE) is None


def test_reconfigure_puts_the_policy_on_home_and_own_disks():
    root = _file_disk(2000, '[nfs0] i-1/i-1.vmdk')
    volume = _file_disk(2001, '[nfs0] volume-v/volume-v.vmdk', volume=True)
    specs = migration.lifecycle.instance_specs(INSTANCE, flavor())
    with mock.patch.object(migration.vm.devices.Devices, 'read',
                           return_value=devices.Devices([root, volume])), \
            mock.patch.object(migration.virtual_machine,
                              'reconfigure') as reconfigure:
        migration._reconfigure(mock.Mock(), mock.Mock(), 1, 512, None,
                               specs, GOLD)
    spec = reconfigure.call_args[0][2]
    assert [p.profileId for p in spec.vmProfile] == ['p-gold']
    assert [(c.device.key, [p.profileId for p in c.profile])
            for c in spec.deviceChange
            if isinstance(c.device, vim.vm.device.VirtualDisk)] == [
        (2000, ['p-gold'])]


def test_restoring_the_root_after_a_move_puts_it_beside_the_vm():
    """The VM's files moved to nfs1 and its original root with them:
    the original goes back in place there, the grown copy is deleted."""
    found = devices.Devices([vim.vm.device.VirtualLsiLogicController(
        key=1000, busNumber=0), _file_disk(2000, '[nfs1] i-1/i-1.vmdk')])
    found.devices[1].controllerKey, found.devices[1].unitNumber = 1000, 0
    disk = {'orig': '[nfs0] i-1/i-1.orig.vmdk', 'path': '[nfs0] i-1/i-1.vmdk',
            'kb': 1024, 'controller': 1000, 'unit': 0}
    with mock.patch.object(migration.devices.Devices, 'read',
                           return_value=found), \
            mock.patch.object(migration.vm, 'detach_disk'), \
            mock.patch.object(migration.vm, 'files_location',
                              return_value=('nfs1', 'i-1')), \
            mock.patch.object(migration.datastore_http, 'exists',
                              side_effect=lambda _s, _dc, ds, _p:
                              ds == 'nfs1'), \
            mock.patch.object(migration, 'files') as files, \
            mock.patch.object(migration, '_attach') as attach:
        migration._restore_disk(mock.Mock(), cluster(), mock.Mock(),
                                INSTANCE, disk)
    assert str(files.delete_virtual_disk.call_args[0][2]) == \
        '[nfs1] i-1/i-1.vmdk'
    assert [str(p) for p in files.move_virtual_disk.call_args[0][2:]] == [
        '[nfs1] i-1/i-1.orig.vmdk', '[nfs1] i-1/i-1.vmdk']
    assert str(attach.call_args[0][4]) == '[nfs1] i-1/i-1.vmdk'
