"""Cluster resolution and batched inventory reads, replayed from cassettes.

The cassettes hold real SOAP traffic between the driver and the vcsim
launcher (recorded by tools/record_cassettes.py); here it is replayed with
vcrpy in record mode 'none' and the network switched off, so no simulator
runs. vcsim.json beside the cassettes says what the simulator was: the
assertions compare the driver's view with it.
"""

import contextlib
import re
import socket

import pytest
import vcr.errors
from oslo_utils import units
from pyVmomi import vim

from tests.unit import soap_cassettes
from vcdriver import capacity
from vcdriver import cluster
from vcdriver import exception
from vcdriver.vsphere import props
from vcdriver.vsphere import session as session_mod

META = soap_cassettes.load_meta()
OPTIONS = META['options']
# Every pre-made VM of the launcher (tools/vcsim/model.go, createVM).
VM_VCPUS = 1
VM_MEMORY_MB = 128


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Replays must never reach a socket: fail loudly if one connects."""
    def refuse(sock, address):
        raise AssertionError('unit test tried to connect to %r' % (address,))
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket.socket, 'connect_ex', refuse)


@pytest.fixture
def replay():
    """Play one cassette; every recorded request must be made, once."""
    vcr_ = soap_cassettes.make_vcr(record_mode='none')

    @contextlib.contextmanager
    def play(name):
        with vcr_.use_cassette(name + '.yaml') as cassette:
            yield cassette
            assert cassette.all_played, (
                '%s.yaml: %d of %d recorded requests were not made'
                % (name, len(cassette) - cassette.play_count, len(cassette)))
    return play


def _session():
    return session_mod.Session(META['host'], META['port'], META['username'],
                               META['password'], protocol=META['protocol'],
                               retry_count=0)


def _soap_calls(cassette):
    calls = []
    for request in cassette.requests:
        body = request.body or b''
        if isinstance(body, bytes):
            body = body.decode()
        m = re.search(r'<soapenv:Body><(\w+)', body)
        calls.append(m.group(1) if m else request.method + ' ' + request.path)
    return calls


def _connected():
    session = _session()
    session.connect()
    return session


# --- connect ----------------------------------------------------------------

def test_connect_logs_in_and_reads_about(replay):
    with replay('connect') as cassette:
        session = _connected()
        assert session.about.instanceUuid == META['about_uuid']
        assert session.about.apiType == 'VirtualCenter'
        assert session.url == META['url']
    calls = _soap_calls(cassette)
    assert 'Login' in calls
    assert 'RetrieveServiceContent' in calls


def test_connect_twice_is_one_login(replay):
    with replay('connect'):
        session = _connected()
        session.connect()  # no request left in the cassette for a second
        assert session.content.about.instanceUuid == META['about_uuid']


# --- resolve ----------------------------------------------------------------

def test_resolve_names_nodes_after_moref_and_vcenter_uuid(replay):
    with replay('resolve'):
        clusters = cluster.resolve(_connected(), META['clusters'])
    assert [c.name for c in clusters] == META['clusters']
    for c in clusters:
        assert isinstance(c.ref, vim.ClusterComputeResource)
        assert re.match(r'^domain-c\d+$', c.ref._moId), c.ref._moId
        assert c.nodename == '%s.%s' % (c.ref._moId, META['about_uuid'])
    assert len({c.nodename for c in clusters}) == len(clusters)


def test_resolve_finds_datacenter_folder_and_pool(replay):
    with replay('resolve'):
        clusters = cluster.resolve(_connected(), META['clusters'])
    for c in clusters:
        assert c.datacenter == 'DC0'
        assert isinstance(c.datacenter_ref, vim.Datacenter)
        assert isinstance(c.vm_folder, vim.Folder)
        assert isinstance(c.resource_pool, vim.ResourcePool)
    # One datacenter: both clusters share it and its VM folder, not a pool.
    assert clusters[0].datacenter_ref == clusters[1].datacenter_ref
    assert clusters[0].vm_folder == clusters[1].vm_folder
    assert clusters[0].resource_pool != clusters[1].resource_pool


def test_resolve_is_three_batched_reads(replay):
    with replay('resolve') as cassette:
        cluster.resolve(_connected(), META['clusters'])
    calls = _soap_calls(cassette)
    assert calls.count('RetrievePropertiesEx') == 3, calls
    # Every container view it made, it destroyed.
    assert calls.count('CreateContainerView') == calls.count('DestroyView')


def test_resolve_keeps_the_requested_order(replay):
    with replay('resolve'):
        clusters = cluster.resolve(_connected(),
                                   list(reversed(META['clusters'])))
    assert [c.name for c in clusters] == list(reversed(META['clusters']))


def test_resolve_unknown_cluster_names_it_and_the_known_ones(replay):
    with replay('resolve_unknown') as cassette:
        session = _connected()
        with pytest.raises(exception.ClusterNotFound) as err:
            cluster.resolve(session, [META['clusters'][0],
                                      META['unknown_cluster']])
    message = str(err.value)
    assert 'Cluster %s was not found' % META['unknown_cluster'] in message
    assert 'clusters there: %s' % ', '.join(sorted(META['clusters'])) \
        in message
    assert META['url'] in message
    # The same three reads as a good resolve (datacenter-qualified names
    # need them all), and every container view is destroyed.
    calls = _soap_calls(cassette)
    assert calls.count('RetrievePropertiesEx') == 3, calls
    assert calls.count('CreateContainerView') == calls.count('DestroyView')
    assert calls[-1] == 'DestroyView', calls


# --- read_state -------------------------------------------------------------

@pytest.fixture
def states(replay):
    with replay('read_state') as cassette:
        session = _connected()
        clusters = cluster.resolve(session, META['clusters'])
        result = cluster.read_state(session, clusters)
    return result, cassette


def test_read_state_is_three_batched_reads(states):
    _, cassette = states
    calls = _soap_calls(cassette)
    # Three for resolve, then clusters, hosts with their VMs, datastores.
    assert calls.count('RetrievePropertiesEx') == 3 + 3, calls


def test_read_state_sees_every_host_with_its_size(states):
    result, _ = states
    assert [s.cluster.name for s in result] == META['clusters']
    all_hosts = set()
    for state in result:
        assert len(state.hosts) == OPTIONS['hosts_per_cluster']
        for host in state.hosts:
            assert host.usable, host
            assert host.connected and host.powered_on
            assert not host.in_maintenance
            assert host.cpu_threads == OPTIONS['host_cpu_cores']
            assert host.memory_mb == OPTIONS['host_memory_mb']
            assert host.name.startswith(state.cluster.name + '_'), host.name
            assert isinstance(host.ref, vim.HostSystem)
            all_hosts.add(host.ref)
    assert len(all_hosts) == OPTIONS['clusters'] * OPTIONS['hosts_per_cluster']


def test_read_state_counts_the_vms_on_each_cluster(states):
    result, _ = states
    for state in result:
        assert sum(h.vm_vcpus for h in state.hosts) == \
            OPTIONS['vms'] * VM_VCPUS
        assert sum(h.vm_memory_mb for h in state.hosts) == \
            OPTIONS['vms'] * VM_MEMORY_MB


def test_read_state_nfs_datastore_is_usable(states):
    result, _ = states
    refs = set()
    for state in result:
        assert [d.name for d in state.datastores] == META['datastores']
        ds = state.datastores[0]
        refs.add(ds.ref)
        assert ds.type == 'NFS'
        assert ds.accessible
        assert ds.maintenance_mode == 'normal'
        assert ds.capacity == OPTIONS['datastore_capacity_gb'] * units.Gi
        assert 0 < ds.free_space <= ds.capacity
        assert ds.usable()
        assert ds.usable(r'nfs\d')
        assert not ds.usable(r'local')
    assert len(refs) == 1, 'the NFS datastore is shared by both clusters'


def test_read_state_feeds_the_inventory(states):
    result, _ = states
    per_host = OPTIONS['host_memory_mb']
    for state in result:
        mem = capacity.memory_mb(state.hosts, 1.0, 0)
        assert mem.total == OPTIONS['hosts_per_cluster'] * per_host
        # Some VM memory is in use on some host, but never all hosts lose it.
        assert per_host - OPTIONS['vms'] * VM_MEMORY_MB <= mem.max_unit
        assert mem.max_unit <= per_host
        disk = capacity.disk_gb(state.datastores, None, 1.0, 0)
        assert disk.total == OPTIONS['datastore_capacity_gb']


@pytest.mark.parametrize('order', ['sorted', 'reversed'])
def test_replay_does_not_depend_on_set_order(replay, monkeypatch, order):
    """read_state batches morefs from sets, whose order varies by process
    (str hashes are salted): the recorded bodies must match any order."""
    real = props.properties

    def ordered(session, objects, *args, **kwargs):
        objects = sorted(objects, key=str, reverse=(order == 'reversed'))
        return real(session, objects, *args, **kwargs)

    monkeypatch.setattr(props, 'properties', ordered)
    with replay('read_state'):
        session = _connected()
        result = cluster.read_state(
            session, cluster.resolve(session, META['clusters']))
    assert [len(s.hosts) for s in result] == \
        [OPTIONS['hosts_per_cluster']] * OPTIONS['clusters']


def test_replay_does_not_depend_on_host_or_port(replay):
    session = session_mod.Session('vcenter.invalid', 1, META['username'],
                                  META['password'],
                                  protocol=META['protocol'], retry_count=0)
    with replay('resolve'):
        session.connect()
        clusters = cluster.resolve(session, META['clusters'])
    assert [c.nodename.split('.', 1)[1] for c in clusters] == \
        [META['about_uuid']] * len(clusters)


def test_replay_refuses_a_request_not_recorded(replay):
    with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
        with replay('connect'):
            session = _connected()
            cluster.resolve(session, META['clusters'])


# --- the matcher ------------------------------------------------------------

_BODY = ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="urn:e">'
         '<soapenv:Body><RetrievePropertiesEx xmlns="urn:vim25">'
         '<specSet>%s<propSet><type>HostSystem</type>'
         '<pathSet>name</pathSet></propSet></specSet>'
         '</RetrievePropertiesEx></soapenv:Body></soapenv:Envelope>')


def _objects(*ids):
    return _BODY % ''.join(
        '<objectSet><obj type="HostSystem">%s</obj><skip>false</skip>'
        '</objectSet>' % i for i in ids)


class _Request:
    def __init__(self, body):
        self.body = body.encode()
        self.headers = {}


def test_soap_body_matcher_ignores_order_of_objects():
    soap_cassettes.soap_body(_Request(_objects('host-1', 'host-2')),
                             _Request(_objects('host-2', 'host-1')))


@pytest.mark.parametrize('other', [
    _objects('host-1', 'host-3'),
    _objects('host-1'),
    _objects('host-1', 'host-2').replace('<pathSet>name', '<pathSet>vm'),
])
def test_soap_body_matcher_tells_different_calls_apart(other):
    with pytest.raises(AssertionError):
        soap_cassettes.soap_body(_Request(_objects('host-1', 'host-2')),
                                 _Request(other))


def test_pyvmomi_connections_are_patched_while_a_cassette_plays(replay):
    from pyVim import connect as pyvim_connect
    from pyVmomi import SoapAdapter
    with replay('connect'):
        assert hasattr(SoapAdapter.HTTPConnection, 'cassette')
        assert hasattr(pyvim_connect.HTTPConnection, 'cassette')
        _connected()
    assert not hasattr(SoapAdapter.HTTPConnection, 'cassette')
