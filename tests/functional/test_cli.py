"""The ``vcdriver`` operator CLI against vcsim: what ``check`` finds in a
good and in broken configurations, ``nodes``, ``images``, and the module
entry point run as a real process."""

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
from pyVmomi import vim

from tests.harness import process_logs
from tests.harness import vcsim as vcsim_harness
from vcdriver import cli
from vcdriver import conf


@pytest.fixture(autouse=True)
def _forget_config():
    yield
    conf.CONF.clear()  # the next test (or module) parses its own


@pytest.fixture
def nova_conf(vcsim, tmp_path):
    """Writes a nova.conf for vcsim, with ``[section] key = value`` lines
    changed or added by the test; returns its path."""
    def write(**changes):
        sections = {
            'vmware': {'host_ip': vcsim.host, 'host_port': vcsim.port,
                       'host_username': vcsim.username,
                       'host_password': vcsim.password,
                       'cluster_name': vcsim.clusters[0]},
            'vcdriver': {'vcenter_protocol': 'http',
                         'cluster_names': ','.join(vcsim.clusters[1:])}}
        for key, value in changes.items():
            section, _, name = key.partition('__')
            sections[section][name] = value
        path = tmp_path / ('nova-%s.conf' % uuid.uuid4().hex[:8])
        path.write_text(''.join(
            '[%s]\n%s' % (s, ''.join('%s = %s\n' % kv for kv in opts.items()))
            for s, opts in sections.items()))
        return str(path)
    return write


def run(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_good_config_prints_each_cluster_and_exits_0(vcsim, nova_conf,
                                                     capsys):
    code, out = run(capsys, 'check', '--config-file', nova_conf())
    assert code == 0, out
    for name in vcsim.clusters:
        assert 'Cluster %s (datacenter DC0' % name in out
        assert '%s_H0  usable' % name in out
    for word in ('nfs0', 'NFS', 'match', 'VCPU', 'MEMORY_MB', 'DISK_GB',
                 vcsim.info['about_uuid'], 'Status: ok'):
        assert word in out


def test_good_config_as_json(vcsim, nova_conf, capsys):
    code, out = run(capsys, 'check', '--config-file', nova_conf(),
                    '--format', 'json')
    data = json.loads(out)
    assert code == 0
    assert (data['status'], data['problems']) == ('ok', [])
    assert data['vcenter']['instance_uuid'] == vcsim.info['about_uuid']
    assert [c['name'] for c in data['clusters']] == vcsim.clusters
    cluster = data['clusters'][0]
    assert cluster['drs'] is True
    assert [h['usable'] for h in cluster['hosts']] == [True] * 3
    assert cluster['datastores'][0]['usable'] is True
    vcpu = cluster['inventory']['VCPU']
    assert vcpu['total'] == sum(h['cpu_threads'] for h in cluster['hosts'])
    assert 0 < vcpu['max_unit'] <= vcpu['total']
    assert cluster['inventory']['DISK_GB']['total'] > 0


def test_wrong_cluster_and_bad_regex_are_each_named(vcsim, nova_conf,
                                                    capsys):
    path = nova_conf(vcdriver__cluster_names='Nope',
                     vmware__datastore_regex='[')
    code, out = run(capsys, 'check', '--config-file', path)
    assert code == 2, out
    assert ("error: [vcdriver] cluster_names: cluster 'Nope' not found"
            in out)
    assert 'known: %s' % ', '.join(vcsim.clusters) in out
    assert "[vmware] datastore_regex '[' is not a regular expression" in out
    assert 'Cluster %s' % vcsim.clusters[0] in out  # the good one is shown
    assert 'Status: error' in out


def test_regex_matching_no_datastore_is_an_error(nova_conf, capsys):
    code, out = run(capsys, 'check', '--config-file',
                    nova_conf(vmware__datastore_regex='^local'), '--format',
                    'json')
    data = json.loads(out)
    assert code == 2
    assert data['status'] == 'error'
    messages = [p['message'] for p in data['problems']]
    assert len(messages) == 2, messages  # one per cluster
    assert all(m.startswith("[vmware] datastore_regex: '^local' matches no "
                            "datastore of cluster") for m in messages)
    assert not data['clusters'][0]['datastores'][0]['usable']


def test_unreachable_vcenter_is_named(nova_conf, capsys):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    code, out = run(capsys, 'check', '--config-file',
                    nova_conf(vmware__host_port=port))
    assert code == 2
    assert 'error: Cannot reach vCenter at http://127.0.0.1:%d' % port in out
    assert 'host_port' in out


def test_refused_login_names_the_password(nova_conf, capsys):
    # A vCenter of its own: the shared one takes any user and password.
    with vcsim_harness.Vcsim(clusters=1, username='nova',
                             password='right') as sim:
        code, out = run(capsys, 'check', '--config-file', nova_conf(
            vmware__host_port=sim.port, vmware__host_username='nova',
            vmware__host_password='Not-The-Pa55word',
            vcdriver__cluster_names=''))
    assert code == 2, out
    assert 'error: vCenter at http://127.0.0.1:%d/sdk refused the login ' \
        'of user nova: ' % sim.port in out
    assert '[vmware] host_password' in out
    assert 'Not-The-Pa55word' not in out
    assert out.endswith('Status: error\n')


def test_version(capsys):
    import vcdriver
    code, out = run(capsys, '--version')
    assert (code, out) == (0, 'vcdriver %s\n' % vcdriver.__version__)


def test_module_entry_point(nova_conf):
    env = dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING='true')
    result = subprocess.run(
        [sys.executable, '-m', 'vcdriver', 'check', '--config-file',
         nova_conf(), '--format', 'json'],
        env=env, capture_output=True, text=True, timeout=120)
    process_logs.finished('python -m vcdriver check',
                          result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['status'] == 'ok'


def test_nodes_lists_both_clusters(vcsim, nova_conf, capsys):
    si = vcsim_harness.connect(vcsim)
    view = si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.ClusterComputeResource], True)
    refs = {c.name: c._moId for c in view.view}
    view.DestroyView()
    code, out = run(capsys, 'nodes', '--config-file', nova_conf())
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ['NODE', 'CLUSTER', 'DATACENTER', 'HOSTS']
    for name, line in zip(vcsim.clusters, lines[1:], strict=True):
        nodename = '%s.%s' % (refs[name], vcsim.info['about_uuid'])
        assert line.split()[:4] == [nodename, name, 'DC0', '3/3']


def test_images_lists_a_cache_entry(vcsim, nova_conf, capsys):
    image_id = str(uuid.uuid4())
    root = os.path.join(vcsim.datastores['nfs0'], 'vcdriver_image_cache')
    folder = os.path.join(root, image_id)
    os.makedirs(folder)
    try:
        with open(os.path.join(folder, 'image.json'), 'w') as f:
            json.dump({'image_id': image_id, 'virtual_size': 4194304,
                       'file': '%s.vmdk' % image_id}, f)
        os.makedirs(os.path.join(root, '%s.lock' % image_id))  # not listed
        code, out = run(capsys, 'images', '--config-file', nova_conf(),
                        '--format', 'json')
        assert code == 0, out
        entries = [i for i in json.loads(out)['images']
                   if image_id in i['image_id']]
        assert entries == [{'datastore': 'nfs0', 'image_id': image_id,
                            'size': 4194304, 'age_seconds': None,
                            'in_use': False}]
        code, out = run(capsys, 'images', '--config-file', nova_conf())
        line = next(ln for ln in out.splitlines() if image_id in ln)
        assert line.split() == ['nfs0', image_id, '4194304', '-', 'no']
    finally:
        shutil.rmtree(folder)
        shutil.rmtree(os.path.join(root, '%s.lock' % image_id))
