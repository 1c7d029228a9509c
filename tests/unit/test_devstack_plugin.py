"""The devstack plugin (devstack/) run in bash with stand-ins for devstack.

Every phase runs as devstack runs it: ``settings`` sourced once, then
``plugin.sh`` sourced with ``stack install``, ``stack post-config``,
``stack extra``, ``unstack`` and ``clean`` in the same shell. devstack's
functions are replaced by stand-ins that log their arguments (one JSON
array a line, after a ``phase`` marker); ``iniset`` writes a real ini file.
No network, no Go, no devstack checkout needed.
"""

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import types

import pytest
from nova.scheduler import filters as nova_filters

from vcdriver import conf as vcdriver_conf
from vcdriver.images import disk
from vcdriver.scheduler import filters as scheduler_filters

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEVSTACK = os.path.join(REPO, 'devstack')
LAUNCHER_SOURCE = os.path.join(REPO, 'tools', 'vcsim', 'model.go')
PHASES = (('stack', 'install'), ('stack', 'post-config'),
          ('stack', 'extra'), ('unstack',), ('clean',))

# devstack's functions, as far as the plugin uses them. ``log`` writes one
# JSON array per call; commands that would reach the network or build
# something leave a file behind instead.
STUBS = r"""
log() {
    python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \
        "$@" >>"$CALLS"
}
# devstack's trueorfalse, as in functions-common
trueorfalse() {
    local default=$1 xtrace
    local testval=${!2:-}
    case "$testval" in
        1|yes|Yes|YES|true|True|TRUE|on|On|ON) echo True ;;
        0|no|No|NO|false|False|FALSE|off|Off|OFF) echo False ;;
        *) echo "$default" ;;
    esac
}
define_plugin() { log define_plugin "$@"; }
plugin_requires() { log plugin_requires "$@"; }
echo_summary() { :; }
die() { local line=$1; shift; log die "$*"; echo "die: $*" >&2; exit 1; }
# As devstack's: "glance" and "nova" also mean any g-* or n-* service.
is_service_enabled() {
    local s
    for s in "$@"; do
        [[ ,$ENABLED_SERVICES, == *,$s,* ]] && return 0
        [[ $s == glance && ,$ENABLED_SERVICES == *,g-* ]] && return 0
        [[ $s == nova && ,$ENABLED_SERVICES == *,n-* ]] && return 0
    done
    return 1
}
enable_service() {
    log enable_service "$@"
    ENABLED_SERVICES+=",$1"
}
setup_develop() { log setup_develop "$@"; }
setup_install() { log setup_install "$@"; }
pip_install() { log pip_install "$@"; }
run_process() { log run_process "$@"; }
stop_process() { log stop_process "$@"; }
wait_for_service() { log wait_for_service "$@"; }
iniset() {
    local sudo=""
    if [[ $1 == -sudo ]]; then shift; fi
    log iniset "$@"
    python3 - "$@" <<'EOF'
import configparser, sys
path, section, option, value = sys.argv[1:5]
cp = configparser.RawConfigParser()
cp.optionxform = str
cp.read(path)
if section != 'DEFAULT' and not cp.has_section(section):
    cp.add_section(section)
cp.set(section, option, value)
with open(path, 'w') as f:
    cp.write(f)
EOF
}
openstack() {
    log openstack "$@"
    # No image exists yet: "image show" fails as the client does.
    [[ " $* " == *" image show "* ]] && return 1
    return 0
}
curl() {
    log curl "$@"
    local out=""
    while [[ $# -gt 0 ]]; do
        if [[ $1 == -o ]]; then out=$2; shift; fi
        shift
    done
    echo downloaded >"$out"
}
qemu-img() {
    log qemu-img "$@"
    local last
    for last in "$@"; do :; done
    echo converted >"$last"
}
go() {
    log go "$PWD" "$@"
    local out=""
    while [[ $# -gt 0 ]]; do
        if [[ $1 == -o ]]; then out=$2; shift; fi
        shift
    done
    printf '#!/bin/sh\n' >"$out"
    chmod +x "$out"
}
"""


def _launcher_flags():
    """The flags tools/vcsim's launcher defines (model.go parseFlags)."""
    with open(LAUNCHER_SOURCE) as f:
        source = f.read()
    return set(re.findall(r'fs\.\w+Var\(&c\.\w+, "([\w-]+)"', source))


class Run:
    """The outcome of one devstack run of the plugin."""

    def __init__(self, tmp_path, proc):
        self.tmp = tmp_path
        self.proc = proc
        self.calls = {}   # phase -> [argv, ...]
        phase = 'settings'
        calls_file = tmp_path / 'calls.log'
        lines = (calls_file.read_text().splitlines()
                 if calls_file.exists() else [])
        for line in lines:
            call = json.loads(line)
            if call[0] == 'phase':
                phase = ' '.join(call[1:])
                continue
            self.calls.setdefault(phase, []).append(call)

    def called(self, phase, name):
        return [c[1:] for c in self.calls.get(phase, []) if c[0] == name]

    def all_calls(self, name):
        return [c[1:] for calls in self.calls.values() for c in calls
                if c[0] == name]

    def section(self, name):
        """One section of nova.conf, without [DEFAULT]'s options."""
        cp = self.nova_conf()
        return {k: v for k, v in cp.items(name) if k not in cp.defaults()}

    def nova_conf(self):
        cp = configparser.RawConfigParser()
        cp.optionxform = str
        cp.read(self.tmp / 'nova.conf')
        return cp


def run_plugin(tmp_path, env=None, phases=PHASES, services='n-cpu,g-api'):
    """Source settings, then plugin.sh once per phase, in one bash."""
    data_dir = tmp_path / 'data'
    data_dir.mkdir(exist_ok=True)
    base_env = {
        'PATH': os.environ['PATH'],
        'HOME': str(tmp_path),
        'CALLS': str(tmp_path / 'calls.log'),
        'DEST': str(tmp_path / 'opt-stack'),
        'DATA_DIR': str(data_dir),
        'NOVA_CONF': str(tmp_path / 'nova.conf'),
        'REGION_NAME': 'RegionOne',
        'ENABLED_SERVICES': services,
        # The plugin's checkout is this repository.
        'VCDRIVER_DIR': REPO,
    }
    base_env.update(env or {})
    script = ['set -eu -o pipefail', STUBS,
              'source %s' % shlex.quote(os.path.join(DEVSTACK, 'settings'))]
    for phase in phases:
        script.append('log phase %s' % ' '.join(phase))
        script.append('source %s %s' % (
            shlex.quote(os.path.join(DEVSTACK, 'plugin.sh')),
            ' '.join(phase)))
    script.append('echo "ENABLED_SERVICES=$ENABLED_SERVICES"')
    proc = subprocess.run(['bash', '-c', '\n'.join(script)], env=base_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    return Run(tmp_path, proc)


VCENTER = {
    'VCDRIVER_VCENTER_HOST': 'vc.example.org',
    'VCDRIVER_VCENTER_USER': 'nova@vsphere.local',
    'VCDRIVER_VCENTER_PASSWORD': 's3cret',
    'VCDRIVER_CLUSTERS': 'Cluster-A, Cluster-B,Cluster C',
    'VCDRIVER_DATASTORE_REGEX': '^(nfs|vsan).*',
    'VCDRIVER_CA_FILE': '/etc/nova/vcenter-ca.pem',
}


@pytest.fixture(scope='module', autouse=True)
def _bash():
    assert shutil.which('bash'), 'bash is needed to run the plugin'


def _image_create(run):
    creates = [c for c in run.called('stack extra', 'openstack')
               if 'create' in c]
    assert len(creates) == 1, run.calls
    args = creates[0]
    assert args[:2] == ['--os-cloud=devstack-admin',
                        '--os-region-name=RegionOne']
    assert args[2:5] == ['image', 'create', 'cirros-vmware']
    props = dict(args[i + 1].split('=', 1) for i, a in enumerate(args)
                 if a == '--property')
    opts = {a: args[i + 1] for i, a in enumerate(args)
            if a in ('--disk-format', '--container-format', '--file')}
    return opts, props


def _check_acceptable(opts, props):
    """The driver itself would take an image with these properties."""
    image = types.SimpleNamespace(
        id='img', disk_format=opts['--disk-format'],
        container_format=opts['--container-format'], properties=props,
        size=1024)
    return disk.check_acceptable(image)


class TestRealVcenter:

    @pytest.fixture(scope='class')
    @classmethod
    def run(cls, tmp_path_factory):
        tmp = tmp_path_factory.mktemp('vcenter')
        run = run_plugin(tmp, VCENTER)
        assert run.proc.returncode == 0, run.proc.stderr
        return run

    def test_settings_define_the_plugin_without_vcsim(self, run):
        assert run.called('settings', 'define_plugin') == [['vcdriver']]
        assert run.all_calls('enable_service') == []
        assert 'ENABLED_SERVICES=n-cpu,g-api\n' in run.proc.stdout

    def test_install_pip_installs_the_checkout_only(self, run):
        assert run.called('stack install', 'setup_develop') == [[REPO]]
        assert run.all_calls('go') == []

    def test_post_config_writes_nova_conf(self, run):
        cp = run.nova_conf()
        assert cp.get('DEFAULT', 'compute_driver') == \
            'vcdriver.VMwareVCDriver'
        assert run.section('vmware') == {
            'host_ip': 'vc.example.org',
            'host_port': '443',
            'host_username': 'nova@vsphere.local',
            'host_password': 's3cret',
            'cluster_name': 'Cluster-A',
            'insecure': 'False',
            'ca_file': '/etc/nova/vcenter-ca.pem',
            'datastore_regex': '^(nfs|vsan).*',
        }
        assert cp.get('vcdriver', 'vcenter_protocol') == 'https'
        names = [n.strip() for n in
                 cp.get('vcdriver', 'cluster_names').split(',')]
        assert names == ['Cluster-B', 'Cluster C']
        assert all(c[0] == run.tmp.joinpath('nova.conf').as_posix()
                   for c in run.all_calls('iniset'))

    def test_post_config_puts_the_server_group_filters_in(self, run):
        assert run.section('filter_scheduler') == {
            'available_filters': 'vcdriver.scheduler.filters.all_filters'}
        assert run.section('workarounds') == {
            'disable_group_policy_check_upcall': 'True'}
        # What Nova's scheduler loads: our filters under Nova's names.
        loaded = {cls.__name__: cls for cls in
                  nova_filters.HostFilterHandler().get_matching_classes(
                      [run.section('filter_scheduler')[
                          'available_filters']])}
        assert loaded['ServerGroupAntiAffinityFilter'] is \
            scheduler_filters.ServerGroupAntiAffinityFilter

    def test_every_option_written_is_one_the_driver_reads(self, run):
        cp = run.nova_conf()
        assert set(cp.defaults()) == {'compute_driver'}
        assert set(run.section('vmware')) <= set(
            vcdriver_conf.VMWARE_OPTS_HONOURED)
        assert set(run.section('vcdriver')) <= {
            o.name for o in vcdriver_conf.vcdriver_opts}

    def test_no_simulator_runs(self, run):
        assert run.all_calls('run_process') == []
        assert run.all_calls('wait_for_service') == []
        assert run.all_calls('stop_process') == []

    def test_extra_converts_and_uploads_a_vmdk(self, run):
        url = run.called('stack extra', 'curl')[0][-1]
        assert url.startswith('https://download.cirros-cloud.net/')
        convert = run.called('stack extra', 'qemu-img')
        assert len(convert) == 1
        assert convert[0][:4] == [
            'convert', '-O', 'vmdk',
            '-o']
        assert 'subformat=streamOptimized' in convert[0][4]
        opts, props = _image_create(run)
        assert opts['--disk-format'] == 'vmdk'
        assert opts['--container-format'] == 'bare'
        assert opts['--file'].endswith('/cirros-vmware.vmdk')
        assert props == {
            'vmware_disktype': 'streamOptimized',
            'vmware_adaptertype': 'lsiLogic',
            'hw_vif_model': 'vmxnet3',
            'vmware_ostype': 'otherLinux64Guest',
            'img_hv_type': 'vmware',
        }
        plan = _check_acceptable(opts, props)
        assert (plan.bus, plan.adapter, plan.vif_model) == (
            'scsi', 'lsiLogic', 'vmxnet3')

    def test_clean_removes_build_outputs(self, run):
        assert not (run.tmp / 'data' / 'vcdriver').exists()


class TestVcsim:

    @pytest.fixture(scope='class')
    @classmethod
    def run(cls, tmp_path_factory):
        tmp = tmp_path_factory.mktemp('vcsim')
        run = run_plugin(tmp, {'VCDRIVER_USE_VCSIM': 'True'},
                         phases=PHASES[:-1])
        assert run.proc.returncode == 0, run.proc.stderr
        return run

    def test_settings_enable_the_service(self, run):
        assert run.called('settings', 'enable_service') == [
            ['vcdriver-vcsim']]
        assert 'ENABLED_SERVICES=n-cpu,g-api,vcdriver-vcsim\n' in \
            run.proc.stdout

    def test_install_builds_the_launcher(self, run):
        assert run.called('stack install', 'setup_develop') == [[REPO]]
        (build,) = run.called('stack install', 'go')
        binary = str(run.tmp / 'data' / 'vcdriver' / 'bin' / 'vcsim')
        assert build == [os.path.join(REPO, 'tools', 'vcsim'), 'build',
                         '-buildvcs=false', '-o', binary, '.']
        assert os.access(binary, os.X_OK)

    def test_post_config_starts_the_launcher(self, run):
        (start,) = run.called('stack post-config', 'run_process')
        assert start[0] == 'vcdriver-vcsim'
        argv = shlex.split(start[1])
        assert argv[0] == str(run.tmp / 'data' / 'vcdriver' / 'bin' /
                              'vcsim')
        flags = dict(zip(argv[1::2], argv[2::2], strict=True))
        assert flags['-listen'] == '127.0.0.1:8989'
        assert flags['-clusters'] == '2'
        assert flags['-username'] == 'vcsim'
        assert flags['-password'] == 'vcsim'
        assert flags['-datastore-root'] == str(
            run.tmp / 'data' / 'vcdriver' / 'datastores')
        # A service's stdin is /dev/null: that flag would stop it at once.
        assert '-exit-on-stdin-close' not in argv
        assert {f.lstrip('-') for f in argv[1::2]} <= _launcher_flags()
        assert run.called('stack post-config', 'wait_for_service') == [
            ['60', 'http://127.0.0.1:8989/sdk']]

    def test_post_config_points_nova_at_the_simulator(self, run):
        cp = run.nova_conf()
        assert cp.get('DEFAULT', 'compute_driver') == \
            'vcdriver.VMwareVCDriver'
        vmware = run.section('vmware')
        assert vmware['host_ip'] == '127.0.0.1'
        assert vmware['host_port'] == '8989'
        assert vmware['host_username'] == 'vcsim'
        assert vmware['host_password'] == 'vcsim'
        assert vmware['insecure'] == 'True'
        assert vmware['cluster_name'] == 'DC0_C0'
        assert 'ca_file' not in vmware
        assert cp.get('vcdriver', 'vcenter_protocol') == 'http'
        assert cp.get('vcdriver', 'cluster_names') == 'DC0_C1'

    def test_extra_uploads_the_image(self, run):
        opts, props = _image_create(run)
        assert props['img_hv_type'] == 'vmware'
        _check_acceptable(opts, props)

    def test_unstack_stops_the_launcher(self, run):
        assert run.called('unstack', 'stop_process') == [['vcdriver-vcsim']]
        # unstack keeps the build and the datastores; clean removes them.
        assert (run.tmp / 'data' / 'vcdriver' / 'bin' / 'vcsim').exists()

    def test_clean_removes_launcher_and_datastores(self, run, tmp_path):
        data = run.tmp / 'data' / 'vcdriver'
        (data / 'datastores' / 'nfs0').mkdir(parents=True)
        again = run_plugin(run.tmp, {'VCDRIVER_USE_VCSIM': 'True'},
                           phases=[('clean',)])
        assert again.proc.returncode == 0, again.proc.stderr
        assert not data.exists()


def test_vcsim_clusters_can_be_chosen(tmp_path):
    run = run_plugin(tmp_path, {'VCDRIVER_USE_VCSIM': 'True',
                                'VCDRIVER_VCSIM_CLUSTERS': '3',
                                'VCDRIVER_VCSIM_EXTRA_ARGS': '-guest-tools'},
                     phases=PHASES[:2])
    assert run.proc.returncode == 0, run.proc.stderr
    (start,) = run.called('stack post-config', 'run_process')
    argv = shlex.split(start[1])
    assert argv[-1] == '-guest-tools'
    assert {f.lstrip('-') for f in argv[1:] if f.startswith('-')} <= \
        _launcher_flags()
    cp = run.nova_conf()
    assert cp.get('vmware', 'cluster_name') == 'DC0_C0'
    assert cp.get('vcdriver', 'cluster_names') == 'DC0_C1,DC0_C2'


def test_single_cluster_sets_no_cluster_names(tmp_path):
    run = run_plugin(tmp_path, dict(VCENTER, VCDRIVER_CLUSTERS='Only'),
                     phases=PHASES[:2])
    assert run.proc.returncode == 0, run.proc.stderr
    cp = run.nova_conf()
    assert cp.get('vmware', 'cluster_name') == 'Only'
    assert not cp.has_option('vcdriver', 'cluster_names')


def test_vmdk_url_is_uploaded_as_it_is(tmp_path):
    run = run_plugin(tmp_path, dict(
        VCENTER, VCDRIVER_IMAGE_URL='https://images.example.org/disk.vmdk',
        VCDRIVER_IMAGE_ADAPTER_TYPE='paraVirtual'), phases=[PHASES[2]])
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.all_calls('qemu-img') == []
    opts, props = _image_create(run)
    assert opts['--file'] == str(
        tmp_path / 'data' / 'vcdriver' / 'images' / 'disk.vmdk')
    assert props['vmware_disktype'] == 'sparse'
    assert props['vmware_adaptertype'] == 'paraVirtual'
    assert _check_acceptable(opts, props).adapter == 'paraVirtual'


def test_no_image_without_glance_or_when_disabled(tmp_path):
    run = run_plugin(tmp_path, VCENTER, phases=[PHASES[2]],
                     services='n-cpu')
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.all_calls('openstack') == []
    run = run_plugin(tmp_path, dict(VCENTER, VCDRIVER_UPLOAD_IMAGE='False'),
                     phases=[PHASES[2]])
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.all_calls('openstack') == []


@pytest.mark.parametrize('env, message', [
    ({'VCDRIVER_CLUSTERS': 'C'}, 'VCDRIVER_VCENTER_HOST'),
    ({'VCDRIVER_VCENTER_HOST': 'vc'}, 'VCDRIVER_CLUSTERS'),
])
def test_post_config_dies_without_vcenter_or_clusters(tmp_path, env,
                                                      message):
    run = run_plugin(tmp_path, env, phases=PHASES[1:2])
    assert run.proc.returncode != 0
    (died,) = run.all_calls('die')
    assert message in died[0]
    assert run.all_calls('iniset') == []


@pytest.mark.parametrize('preset', ['', 'libvirt', 'vsphere'])
def test_override_defaults_skips_devstack_vsphere_hook(tmp_path, preset):
    """devstack's lib/nova sources lib/nova_plugins/hypervisor-$VIRT_DRIVER
    only if it exists: the value must not be one of its hooks."""
    proc = subprocess.run(
        ['bash', '-c', 'set -eu; VIRT_DRIVER=%s; source %s; '
         'echo "$VIRT_DRIVER"' % (preset, shlex.quote(
             os.path.join(DEVSTACK, 'override-defaults')))],
        env={'PATH': os.environ['PATH']}, stdout=subprocess.PIPE,
        text=True, check=True)
    virt_driver = proc.stdout.strip()
    assert virt_driver != 'vsphere'
    # None of devstack's hooks (libvirt, ironic, fake, openvz, vsphere...).
    assert virt_driver == 'vcdriver'


def test_server_group_filters_can_be_left_out(tmp_path):
    run = run_plugin(tmp_path, dict(VCENTER,
                                    VCDRIVER_SERVER_GROUP_FILTERS='False'),
                     phases=PHASES[:2])
    assert run.proc.returncode == 0, run.proc.stderr
    cp = run.nova_conf()
    assert not cp.has_section('filter_scheduler')
    assert not cp.has_section('workarounds')
