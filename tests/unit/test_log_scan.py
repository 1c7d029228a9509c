"""The suite's log scan (tests/conftest.py) catches what it must, in log
records and in the output of the processes the tests start."""

import logging

from tests import conftest
from tests.harness import process_logs
from tests.harness import vcsim as vcsim_harness
from vcdriver.vsphere import session as session_mod


def _leaks_of(fn):
    scan = conftest.SECRET_SCAN
    before = len(scan.leaks)
    fn()
    found = scan.leaks[before:]
    del scan.leaks[before:]  # planted here, not a leak of the suite's
    return found


def test_a_password_at_debug_is_caught():
    found = _leaks_of(lambda: logging.getLogger('vcdriver.x').debug(
        'login with %s', vcsim_harness.DEFAULT_PASSWORD))
    assert len(found) == 1
    assert vcsim_harness.DEFAULT_PASSWORD not in found[0]


def test_a_cookie_in_an_exception_is_caught():
    def log():
        try:
            raise RuntimeError('vmware_soap_session="52a1"')
        except RuntimeError:
            logging.getLogger('vcdriver.x').exception('failed')
    assert len(_leaks_of(log)) == 1


def test_a_session_never_shows_its_password():
    session = session_mod.Session('vc.example.org', 443, 'nova',
                                  vcsim_harness.DEFAULT_PASSWORD)
    assert not _leaks_of(lambda: logging.getLogger('vcdriver.x').info(
        'session %s, %r', session, session))


def test_a_session_id_alone_is_caught(session_ids):
    """The cookie's value without its name: what pyVmomi's stubs took
    from vCenter's Set-Cookie."""
    from pyVmomi import SoapAdapter
    session_id = '52d1b6c0-9a3e-4c1f-8f0e-6a5b4c3d2e1f'
    stub = SoapAdapter.SoapStubAdapter(host='vc.example.org', port=-80)
    stub.SetSessionId(session_id)
    try:
        assert session_id in session_ids
        found = _leaks_of(lambda: logging.getLogger('vcdriver.x').debug(
            'GET /folder/a.vmdk with session %s', session_id))
    finally:
        session_ids.discard(session_id)
    assert len(found) == 1
    assert session_id not in found[0]


def test_a_process_log_is_scanned_line_by_line():
    found = _leaks_of(lambda: process_logs.finished(
        'glance-api.log', 'started\nauth %s\nstopped\n'
        % vcsim_harness.DEFAULT_PASSWORD))
    assert found == ['glance-api.log: auth <SECRET>']


def test_a_session_moref_of_vcsim_is_no_cookie(session_ids):
    session_id = '0e6c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b'
    moref = 'PropertyCollector:session[%s]a3e162ac' % session_id
    log = logging.getLogger('vcdriver.x')
    session_ids.add(session_id)
    try:
        assert not _leaks_of(lambda: log.debug('not found: %s', moref))
        found = _leaks_of(lambda: log.debug('not found: %s; cookie %s',
                                            moref, session_id))
    finally:
        session_ids.discard(session_id)
    assert len(found) == 1
    assert session_id not in found[0]
