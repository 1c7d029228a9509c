"""The vSphere layer against vcsim: cluster names, re-login, task waits,
TLS verification."""

import os
import threading
import time
from http.cookies import SimpleCookie

import pytest
from oslo_vmware.objects.datastore import DatastorePath
from pyVmomi import vim

from tests import conftest
from tests.harness import tls
from tests.harness import vcsim as vcsim_harness
from vcdriver import cluster
from vcdriver import exception
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files
from vcdriver.vsphere import session as session_mod


@pytest.fixture(scope='module')
def two_datacenters():
    with vcsim_harness.Vcsim(datacenters=2, clusters=1,
                             hosts_per_cluster=1) as sim:
        si = vcsim_harness.connect(sim)
        dc1 = si.content.searchIndex.FindByInventoryPath('DC1/host/DC1_C0')
        vcsim_harness.wait_task(dc1.Rename_Task('DC0_C0'))  # same name
        yield sim


def _session(sim):
    s = session_mod.Session(sim.host, sim.port, sim.username, sim.password,
                            protocol='http')
    s.connect()
    return s


def test_same_name_in_two_datacenters_is_refused(two_datacenters):
    with pytest.raises(exception.AmbiguousCluster) as err:
        cluster.resolve(_session(two_datacenters), ['DC0_C0'])
    assert 'DC0, DC1' in str(err.value)
    assert 'DC1/DC0_C0' not in str(err.value)
    assert '<datacenter>/DC0_C0' in str(err.value)


def test_datacenter_qualified_names(two_datacenters):
    found = cluster.resolve(_session(two_datacenters),
                            ['DC0/DC0_C0', 'DC1/DC0_C0'])
    assert [c.datacenter for c in found] == ['DC0', 'DC1']
    assert found[0].ref != found[1].ref
    assert found[0].nodename != found[1].nodename


def test_expired_session_logs_in_again():
    with vcsim_harness.Vcsim(hosts_per_cluster=1,
                             session_idle_timeout=0.3) as sim:
        session = _session(sim)
        first = session.cookie
        time.sleep(1.0)  # idle past the timeout: vCenter forgets us
        found = cluster.resolve(session, ['DC0_C0'])
        assert found[0].name == 'DC0_C0'
        assert session.cookie != first, 'no new login happened'


def test_task_wait_sees_running_tasks_through():
    with vcsim_harness.Vcsim(hosts_per_cluster=1, task_delay=1.0) as sim:
        session = _session(sim)
        target = cluster.resolve(session, ['DC0_C0'])[0]
        folder = DatastorePath('nfs0', 'waited')
        files.make_directory(session, target.datacenter_ref, folder)
        progress = []
        task = session.content.fileManager.DeleteDatastoreFile_Task(
            name=str(folder), datacenter=target.datacenter_ref)
        start = time.monotonic()
        session.wait_for_task(task, on_progress=progress.append)
        assert time.monotonic() - start >= 0.9
        assert not os.path.exists(os.path.join(sim.datastores['nfs0'],
                                               'waited'))


@pytest.mark.parametrize('fault', [{'kind': 'session_expiry'},
                                   {'kind': 'restart', 'seconds': 1}])
def test_task_wait_outlives_the_session(fault):
    """The task goes on in vCenter; the wait logs in again and watches
    it on a new collector (the old one died with its session)."""
    with vcsim_harness.Vcsim(hosts_per_cluster=1) as sim:
        session = _session(sim)
        target = cluster.resolve(session, ['DC0_C0'])[0]
        folder = DatastorePath('nfs0', 'outlived')
        files.make_directory(session, target.datacenter_ref, folder)
        first = session.cookie
        sim.inject(kind='task_hang', method='DeleteDatastoreFile_Task',
                   seconds=3)
        task = session.content.fileManager.DeleteDatastoreFile_Task(
            name=str(folder), datacenter=target.datacenter_ref)
        timer = threading.Timer(1.0, sim.inject, kwargs=fault)
        timer.start()
        try:
            session.wait_for_task(task)
        finally:
            timer.join()
        assert not os.path.exists(os.path.join(sim.datastores['nfs0'],
                                               'outlived'))
        assert session.cookie != first, 'no new login happened'


def test_task_errors_arrive_as_the_vsphere_fault():
    with vcsim_harness.Vcsim(hosts_per_cluster=1) as sim:
        session = _session(sim)
        target = cluster.resolve(session, ['DC0_C0'])[0]
        task = session.content.fileManager.DeleteDatastoreFile_Task(
            name='[nfs0] no-such-folder', datacenter=target.datacenter_ref)
        with pytest.raises(vim.fault.FileNotFound):
            session.wait_for_task(task)


@pytest.fixture(scope='module')
def tls_vcsim(tmp_path_factory):
    cert, key, _name = tls.self_signed(tmp_path_factory.mktemp('tls'))
    with vcsim_harness.Vcsim(hosts_per_cluster=1, tls_cert=cert,
                             tls_key=key) as sim:
        sim.ca_file = cert
        yield sim


def _tls_session(sim, **kwargs):
    return session_mod.Session(sim.host, sim.port, sim.username,
                               sim.password, protocol='https', **kwargs)


def test_tls_verified_with_ca_file(tls_vcsim):
    session = _tls_session(tls_vcsim, ca_file=tls_vcsim.ca_file)
    session.connect()
    assert cluster.resolve(session, ['DC0_C0'])


def test_tls_unknown_certificate_is_refused(tls_vcsim):
    session = _tls_session(tls_vcsim)
    with pytest.raises(exception.VCenterTLSFailed) as err:
        session.connect()
    assert 'ca_file' in str(err.value)


def test_tls_insecure_only_when_asked(tls_vcsim):
    session = _tls_session(tls_vcsim, insecure=True)
    session.connect()
    assert cluster.resolve(session, ['DC0_C0'])


def test_tls_datastore_upload_verified(tls_vcsim):
    session = _tls_session(tls_vcsim, ca_file=tls_vcsim.ca_file)
    target = cluster.resolve(session, ['DC0_C0'])[0]
    files.make_directory(session, target.datacenter_ref,
                         DatastorePath('nfs0', 'tls'))
    writer = datastore_http.FileWriter(session, 'DC0', 'nfs0', 'tls/f.bin',
                                       size=5)
    writer.write(b'hello')
    writer.close()
    with open(os.path.join(tls_vcsim.datastores['nfs0'], 'tls', 'f.bin'),
              'rb') as f:
        assert f.read() == b'hello'


def test_the_log_scan_knows_the_cookie_value(session_ids):
    """The session cookie holds one of vCenter's session ids, which the
    suite's log scan (tests/conftest.py) looks for in every log."""
    with vcsim_harness.Vcsim(hosts_per_cluster=1) as sim:
        cookie = SimpleCookie(_session(sim).cookie)
        value = cookie[conftest.COOKIE_NAME].value
        si = vcsim_harness.connect(sim)
        assert value in {s.key for s in si.content.sessionManager
                         .sessionList}
        assert value in session_ids
