"""Datastore uploads against vcsim when the datastore gives up: a full
datastore (HTTP 507) at the end of an upload or in its middle is named
as such (Nova reschedules on it), and an aborted upload is let go of by
the server before ``abort`` returns."""

import os
import time

import pytest
from oslo_vmware.objects.datastore import DatastorePath

from tests.harness import vcsim as vcsim_harness
from vcdriver import cluster
from vcdriver import exception
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files
from vcdriver.vsphere import session as session_mod

MiB = 1024 * 1024


@pytest.fixture(scope='module')
def sim():
    with vcsim_harness.Vcsim(clusters=1, hosts_per_cluster=1) as sim:
        yield sim


@pytest.fixture
def session(sim):
    s = session_mod.Session(sim.host, sim.port, sim.username, sim.password,
                            protocol='http')
    s.connect()
    target = cluster.resolve(s, ['DC0_C0'])[0]
    files.make_directory(s, target.datacenter_ref,
                         DatastorePath('nfs0', 'up'))
    yield s
    sim.clear_faults()
    s.logout()


def _upload(session, name, size, chunk=256 * 1024):
    writer = datastore_http.FileWriter(session, 'DC0', 'nfs0', 'up/' + name,
                                       size=size)
    for _ in range(size // chunk):
        writer.write(b'x' * chunk)
    writer.close()


def test_full_at_the_end_is_datastore_full(sim, session):
    sim.inject(kind='http_error', http_method='PUT', status=507)
    with pytest.raises(exception.DatastoreFull) as err:
        _upload(session, 'end.bin', MiB)
    assert 'HTTP 507' in str(err.value)
    assert '[nfs0] up/end.bin' in str(err.value)


def test_full_mid_upload_is_datastore_full(sim, session):
    # The server answers 507 after 64 KiB and reads no more: the sends
    # then fail, and the answer is what the error reports, not EPIPE.
    sim.inject(kind='http_error', http_method='PUT', status=507,
               cut_after_bytes=64 * 1024)
    with pytest.raises(exception.DatastoreFull) as err:
        _upload(session, 'mid.bin', 64 * MiB)
    assert 'HTTP 507' in str(err.value)


def test_other_refusals_stay_http_errors(sim, session):
    sim.inject(kind='http_error', http_method='PUT', status=503)
    with pytest.raises(exception.DatastoreHTTPError) as err:
        _upload(session, 'busy.bin', MiB)
    assert not isinstance(err.value, exception.DatastoreFull)
    assert 'HTTP 503' in str(err.value)


def test_abort_returns_once_the_server_let_go(sim, session):
    target = cluster.resolve(session, ['DC0_C0'])[0]
    writer = datastore_http.FileWriter(session, 'DC0', 'nfs0', 'up/ab.bin',
                                       size=8 * MiB)
    writer.write(b'y' * MiB)
    writer.abort()
    path = os.path.join(sim.datastores['nfs0'], 'up', 'ab.bin')
    # Whatever the server kept of the broken-off upload is final now: it
    # does not grow, and once removed it does not come back.
    kept = os.path.getsize(path) if os.path.exists(path) else None
    assert kept is None or kept <= MiB
    time.sleep(0.5)
    assert (os.path.getsize(path) if os.path.exists(path) else None) == kept
    files.delete(session, target.datacenter_ref,
                 DatastorePath('nfs0', 'up/ab.bin'))
    time.sleep(0.5)
    assert not os.path.exists(path)
