"""Session-wide real services: the vcsim vCenter and a real glance-api.

Nothing here imports nova: tests/functional must import it first itself.
"""

import logging
import os
import threading

import pytest

from tests.harness import glance as glance_harness
from tests.harness import vcsim as vcsim_harness

# Never in a log line at any level: vCenter passwords, session cookies.
COOKIE_NAME = 'vmware_soap_session'


class SecretScan:
    """Sees every log record of the run, DEBUG included (issue 6: the
    vCenter password and session cookies never reach a log).

    A record factory, not a handler: Nova's test fixtures swap the root
    logger's handlers for each test, but every record is made by the
    factory.
    """

    def __init__(self):
        self.leaks = []
        self.records = 0
        self._make = logging.getLogRecordFactory()

    def __call__(self, *args, **kwargs):
        record = self._make(*args, **kwargs)
        self.records += 1
        try:
            text = record.getMessage()
        except Exception:
            return record
        if record.exc_info and record.exc_info[1] is not None:
            text += ' %s' % record.exc_info[1]
        for secret in vcsim_harness.SECRETS | {COOKIE_NAME}:
            if secret in text:
                self.leaks.append('%s %s: %s' % (
                    record.levelname, record.name,
                    text.replace(secret, '<SECRET>')[:300]))
        return record


SECRET_SCAN = SecretScan()


def pytest_configure(config):
    logging.setLogRecordFactory(SECRET_SCAN)
    logging.getLogger().setLevel(logging.DEBUG)


def pytest_sessionfinish(session, exitstatus):
    if SECRET_SCAN.leaks and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    scan = SECRET_SCAN
    if scan.leaks:
        terminalreporter.section('secrets in logs', red=True)
        for leak in scan.leaks[:20]:
            terminalreporter.line(leak)
        terminalreporter.line('%d log records leaked a password or a '
                              'session cookie' % len(scan.leaks))
    else:
        terminalreporter.line('log scan: %d records at all levels, no '
                              'password or session cookie'
                              % scan.records)


def _prepare(fn):
    try:
        fn()
    except Exception:
        pass  # the fixture that needs it tries again and reports why


def pytest_collection_finish(session):
    """On a fresh machine, build the vcsim launcher (Go) and the Glance
    venv (pip) side by side, while the first tests start.

    Native threads only: under eventlet a green builder holding the file
    lock would never run again while the main thread blocks on it.
    """
    native = os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING', '').lower()
    if native not in ('1', 'true', 'yes'):
        return
    if not any('functional' in item.nodeid or 'harness' in item.nodeid
               for item in session.items):
        return
    # Both builds lock their output, so the fixtures simply wait for them.
    for fn in (vcsim_harness.build_launcher,
               glance_harness.ensure_glance_venv):
        threading.Thread(target=_prepare, args=(fn,), daemon=True).start()


@pytest.fixture(scope='session')
def vcsim():
    with vcsim_harness.Vcsim(clusters=2, hosts_per_cluster=3, nfs=1) as sim:
        yield sim


@pytest.fixture(scope='session')
def glance():
    with glance_harness.Glance() as g:
        yield g
