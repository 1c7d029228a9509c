"""The suite's log scan (tests/conftest.py) catches what it must."""

import logging

from tests import conftest
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
