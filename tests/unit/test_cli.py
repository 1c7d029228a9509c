"""The operator CLI's pure parts: tables, exit status, the per-cluster
findings of ``check`` on made-up state, the in-use scan, and the
config-only errors (no vCenter needed)."""

import json
import types

import pytest
from oslo_utils import units
from pyVmomi import vim

import vcdriver
from vcdriver import capacity
from vcdriver import cli
from vcdriver import cluster as cluster_mod


@pytest.fixture(autouse=True)
def _forget_config():
    yield
    vcdriver.conf.CONF.clear()


def test_table_aligns_columns_and_shows_none_as_dash():
    assert cli.table(['A', 'LONG'], [['xyz', None], [1, 22]], '  ') == (
        '  A    LONG\n'
        '  xyz  -\n'
        '  1    22')


@pytest.mark.parametrize('levels,expected', [
    ([], 0), (['warning'], 1), (['warning', 'error', 'warning'], 2)])
def test_exit_status_is_the_worst_level(levels, expected):
    assert cli.exit_status([{'level': lv, 'message': 'm'}
                            for lv in levels]) == expected


@pytest.mark.parametrize('seconds,shown', [
    (None, None), (0, '0s'), (59, '59s'), (61, '1m'), (7300, '2h'),
    (3 * 86400 + 5, '3d')])
def test_age(seconds, shown):
    assert cli.age(seconds) == shown


def host(name, **kw):
    return capacity.Host(**{**dict(
        ref=name, name=name, connected=True, powered_on=True,
        in_maintenance=False, cpu_threads=4, memory_mb=8192), **kw})


def ds(name, **kw):
    return capacity.Datastore(**{**dict(
        ref=name, name=name, type='VMFS', accessible=True,
        maintenance_mode='normal', capacity=100 * units.Gi,
        free_space=50 * units.Gi), **kw})


def state(hosts, datastores, name='C1'):
    cluster = cluster_mod.Cluster(
        name=name, ref=name, nodename='domain-c1.uuid', datacenter='DC',
        datacenter_ref=None, vm_folder=None, resource_pool=None)
    return cluster_mod.ClusterState(cluster, hosts, datastores)


def config(drs=True, ha=False):
    return types.SimpleNamespace(
        drsConfig=types.SimpleNamespace(enabled=drs),
        dasConfig=types.SimpleNamespace(enabled=ha,
                                        admissionControlEnabled=False))


def check(st, regex=None, cfg=None):
    problems = []
    out = cli.check_cluster(st.cluster, st, cfg or config(), regex, problems)
    return out, [(p['level'], p['message']) for p in problems]


def test_healthy_cluster_has_no_problem_and_the_driver_inventory(flags):
    flags.config(group='vmware', cluster_name='C1')
    st = state([host('h1'), host('h2')], [ds('ds1')])
    out, problems = check(st)
    assert problems == []
    assert out['inventory'] == cli.inventory(st, None)
    assert out['inventory']['VCPU']['total'] == 8
    assert out['inventory']['VCPU']['max_unit'] == 4
    assert out['inventory']['DISK_GB']['total'] == 100


def test_warnings_name_the_cluster_setting(flags):
    flags.config(group='vcdriver', cluster_names=['C1'])
    st = state([host('h1'), host('h2', in_maintenance=True),
                host('h3', connected=False)],
               [ds('ds1'), ds('ds2', accessible=False)])
    out, problems = check(st, cfg=config(drs=False))
    where = 'cluster C1 ([vcdriver] cluster_names)'
    assert problems == [
        ('warning', '%s: DRS is off: nothing balances the VMs over its '
                    'hosts' % where),
        ('warning', '%s: host h2 is in maintenance, not usable' % where),
        ('warning', '%s: host h3 is disconnected, not usable' % where),
        ('warning', '%s: datastore ds2 is inaccessible' % where)]
    assert [h['usable'] for h in out['hosts']] == [True, False, False]


def test_errors_no_usable_host_no_matching_datastore(flags):
    st = state([host('h1', powered_on=False)], [ds('ds1'), ds('ds2')])
    _out, problems = check(st, regex='^nfs')
    assert [lv for lv, _m in problems] == ['warning', 'error', 'error']
    assert 'no usable host' in problems[1][1]
    assert problems[2][1].startswith(
        "[vmware] datastore_regex: '^nfs' matches no datastore of cluster "
        "C1 ([vcdriver] cluster_names) (datastores: ds1, ds2)")


def test_matching_datastores_none_usable_is_an_error(flags):
    st = state([host('h1')], [ds('ds1', type='vsanD'),
                              ds('ds2', maintenance_mode='inMaintenance')])
    out, problems = check(st, regex='ds')
    assert [d['problems'] for d in out['datastores']] == [
        ['unsupported type'], ['in maintenance']]
    assert problems == [('error', 'cluster C1 ([vcdriver] cluster_names): '
                                  'no datastore matching [vmware] '
                                  'datastore_regex is usable')]


def test_invalid_regex_skips_matching_and_disk_inventory(flags):
    out, problems = check(state([host('h1')], [ds('ds1')]), regex=False)
    assert problems == []  # validate_config reports the regex itself
    assert out['datastores'][0]['regex_match'] is None
    assert 'DISK_GB' not in out['inventory']
    assert 'REGEX' in cli.render_check({'vcenter': None, 'clusters': [out]})


def test_files_in_use_follows_parent_disks_in_one_read(monkeypatch):
    def backing(name, parent=None):
        return types.SimpleNamespace(fileName=name, parent=parent)
    vms = {
        'vm-1': {'config.hardware.device': [
            types.SimpleNamespace(backing=backing(
                '[ds] vm-1/vm-1.vmdk', backing('[ds] cache/img/img.1.vmdk',
                                               backing('[ds] cache/img/'
                                                       'img.vmdk')))),
            types.SimpleNamespace(backing=None)],
            'layoutEx.file': [
                types.SimpleNamespace(name='[ds] vm-1/a.nvram')]},
        'vm-2': {}}
    reads = []

    def objects_of_type(session, obj_type, path_set):
        reads.append((obj_type, path_set))
        return vms
    monkeypatch.setattr(cli.props, 'objects_of_type', objects_of_type)
    assert cli.files_in_use('session') == {
        '[ds] vm-1/vm-1.vmdk', '[ds] cache/img/img.1.vmdk',
        '[ds] cache/img/img.vmdk', '[ds] vm-1/a.nvram'}
    assert reads == [(vim.VirtualMachine,
                      ['layoutEx.file', 'config.hardware.device'])]


def test_config_errors_need_no_vcenter(tmp_path, capsys):
    conf_file = tmp_path / 'nova.conf'
    conf_file.write_text('[vmware]\ncluster_name = C1\n')
    code = cli.main(['check', '--config-file', str(conf_file),
                     '--format', 'json'])
    data = json.loads(capsys.readouterr().out)
    assert code == 2
    assert data == {'status': 'error', 'vcenter': None, 'clusters': [],
                    'problems': [{'level': 'error', 'message':
                                  'Invalid configuration: [vmware] host_ip '
                                  'must be set'}]}


def test_unreadable_config_file_is_an_error(tmp_path, capsys):
    code = cli.main(['nodes', '--config-file', str(tmp_path / 'missing')])
    assert code == 2
    assert capsys.readouterr().out.startswith('error: ')


def test_version_and_usage(capsys):
    assert cli.main(['--version']) == 0
    assert capsys.readouterr().out == 'vcdriver %s\n' % vcdriver.__version__
    assert cli.main([]) == 2  # a subcommand is required
    assert cli.main(['check', '--format', 'yaml']) == 2
