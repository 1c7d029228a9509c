"""Session-wide real services: the vcsim vCenter and a real glance-api.

Nothing here imports nova: tests/functional must import it first itself.
"""

import logging
import os
import re
import threading

import pytest

from tests.harness import glance as glance_harness
from tests.harness import process_logs
from tests.harness import vcsim as vcsim_harness

# Never in a log line at any level: vCenter passwords, session cookies.
COOKIE_NAME = 'vmware_soap_session'
# The values of the session cookies vCenter handed to this process (the
# driver's sessions, the tests' own pyVmomi connections, the CLI's): the
# simulators' session ids. Recorded by ``session_ids``.
SESSION_IDS = set()
# Where a session id may stand in a text: vcsim's are uuids.
TOKEN_RE = re.compile(r'[\w-]+')
# vcsim's cookie is its session's key, which it also puts in the morefs of
# the session's own objects (PropertyCollector:session[<key>]<uuid>) that
# the driver and vcsim log. Not a leak: vCenter's cookie is a token of its
# own (40 hex digits), not the UserSession key its morefs hold.
SESSION_MOREF_RE = re.compile(r'session\[[\w-]+\]')


def secrets_in(text):
    """The passwords, cookie name and session ids ``text`` holds."""
    found = {s for s in vcsim_harness.SECRETS | {COOKIE_NAME} if s in text}
    return found | SESSION_IDS.intersection(
        TOKEN_RE.findall(SESSION_MOREF_RE.sub('', text)))


class SecretScan:
    """Sees every log record of the run, DEBUG included, and the output of
    every process the tests start (tests/harness/process_logs.py): the
    vCenter passwords and session cookies, by name or value, never reach
    a log (issue 6).

    A record factory, not a handler: Nova's test fixtures swap the root
    logger's handlers for each test, but every record is made by the
    factory.
    """

    def __init__(self):
        self.leaks = []
        self.records = 0
        self.process_logs = 0
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
        self.scan('%s %s' % (record.levelname, record.name), text)
        return record

    def scan(self, where, text):
        """Note each line of ``text`` that holds a secret."""
        for line in text.splitlines() if secrets_in(text) else ():
            shown = line
            for secret in secrets_in(line):
                shown = shown.replace(secret, '<SECRET>')
            if shown != line:
                self.leaks.append('%s: %s' % (where, shown[:300]))

    def process_log(self, source, text):
        self.process_logs += 1
        self.scan(source, text)


SECRET_SCAN = SecretScan()


def pytest_configure(config):
    logging.setLogRecordFactory(SECRET_SCAN)
    logging.getLogger().setLevel(logging.DEBUG)
    process_logs.READERS.append(SECRET_SCAN.process_log)


@pytest.fixture(autouse=True, scope='session')
def session_ids():
    """Records every session id vCenter hands to this process, where
    pyVmomi takes it from the Set-Cookie of a Login's answer. Imported
    once the tests are (nova's modules first, for eventlet's patching)."""
    from pyVmomi import SoapAdapter
    stub = SoapAdapter.StubAdapterBase
    set_session_id = stub.SetSessionId

    def record(self, session_id):
        if session_id:
            SESSION_IDS.add(session_id)
        set_session_id(self, session_id)

    stub.SetSessionId = record
    yield SESSION_IDS
    stub.SetSessionId = set_session_id


# The end of a testtools detail (Nova's tests attach the whole log of the
# test as one) and the traceback that follows the last of them.
_AFTER_DETAILS = re.compile(
    r'\}\}\}\n+(?=Traceback \(most recent call last\))')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure of one of Nova's testtools tests reads traceback first:
    its report is the test's whole log and then the traceback, and a CI
    page that shows only the head and tail of a long report loses it."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.excinfo is None:
        return
    text = str(report.longrepr)
    ends = list(_AFTER_DETAILS.finditer(text))
    if ends:
        at = ends[-1].end()
        traceback = text[at:].strip()
        # First line: the exception, as pytest's short summary shows it.
        report.longrepr = "%s\n%s\n--- the test's log ---\n%s" % (
            traceback.splitlines()[-1], traceback, text[:at])


def pytest_sessionfinish(session, exitstatus):
    if SECRET_SCAN.leaks and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    scan = SECRET_SCAN
    if scan.leaks:
        terminalreporter.section('secrets in logs', red=True)
        for leak in scan.leaks[:20]:
            terminalreporter.line(leak)
        terminalreporter.line('%d log lines leaked a password or a '
                              'session cookie' % len(scan.leaks))
    else:
        terminalreporter.line(
            'log scan: %d records at all levels and the output of %d '
            'processes, no password or session cookie (%d session ids)'
            % (scan.records, scan.process_logs, len(SESSION_IDS)))


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
