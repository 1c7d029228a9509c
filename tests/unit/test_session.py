"""Session pieces that need no vCenter: TLS context, retries of transient
faults, and task waits on a private PropertyCollector (fake stub)."""

import ssl
import types

import pytest
from pyVmomi import vim
from pyVmomi import vmodl
from pyVmomi import VmomiSupport

from tests.unit import fake_vim
from vcdriver import exception
from vcdriver.vsphere import session as session_mod
from vcdriver.vsphere import watch

PC = vmodl.query.PropertyCollector


def make(**kwargs):
    args = dict(host='vc.example.org', port=443, username='admin',
                password='s3cret-pw')
    args.update(kwargs)
    return session_mod.Session(**args)


# --- identity and TLS -------------------------------------------------------

def test_url_and_repr_never_show_the_password():
    s = make(protocol='http', port=8989)
    assert s.url == 'http://vc.example.org:8989/sdk'
    assert 's3cret-pw' not in repr(s)
    assert 'admin' in repr(s) and s.url in repr(s)


def test_plain_http_has_no_tls_context():
    assert make(protocol='http').ssl_context() is None


def test_insecure_skips_verification():
    ctx = make(insecure=True).ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname


def test_default_verifies():
    ctx = make().ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname


@pytest.mark.parametrize('content', [None, 'not a certificate\n'])
def test_bad_ca_file_is_invalid_config(tmp_path, content):
    path = tmp_path / 'ca.pem'
    if content is not None:
        path.write_text(content)
    with pytest.raises(exception.InvalidConfig) as err:
        make(ca_file=str(path)).ssl_context()
    assert '[vmware] ca_file %s' % path in str(err.value)


# --- retries ----------------------------------------------------------------

class FakeSoap:
    """The SOAP layer under _RetryingStub: answers are (status, object)."""

    version = VmomiSupport.GetServiceVersions('vim25')[0]

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = 0

    def DropConnections(self):
        pass

    def InvokeMethod(self, mo, info, args, outer_stub=None):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        if isinstance(answer, vmodl.MethodFault):
            return 500, answer
        return 200, answer


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(session_mod.time, 'sleep', slept.append)
    return slept


def retrying(answers, retry_count=3, retry_delay=0.5):
    soap = FakeSoap(answers)
    stub = session_mod._RetryingStub(soap, lambda s: None, retry_count,
                                     retry_delay)
    stub.state = stub.STATE_AUTHENTICATED
    return soap, vim.Folder('group-d1', stub)


@pytest.mark.parametrize('fault', [
    vmodl.fault.HostCommunication(),
    vmodl.fault.SystemError(reason='busy'),
    vim.fault.TaskInProgress(),
    vim.fault.ConcurrentAccess(),
])
def test_transient_faults_are_retried(sleeps, fault):
    done = vim.Folder('group-v9', None)
    soap, folder = retrying([fault, fault, done])
    assert folder.CreateFolder('x')._moId == 'group-v9'
    assert soap.calls == 3
    # Backing off: 2x, 4x the delay.
    assert sleeps == [1.0, 2.0]


def test_retries_give_up_after_retry_count(sleeps):
    fault = vim.fault.TaskInProgress()
    soap, folder = retrying([fault] * 10, retry_count=3)
    with pytest.raises(vim.fault.TaskInProgress):
        folder.CreateFolder('x')
    assert soap.calls == 4  # the call and three retries
    assert len(sleeps) == 3


def test_backoff_is_capped(sleeps):
    fault = vmodl.fault.SystemError(reason='busy')
    _soap, folder = retrying([fault] * 8 + [vim.Folder('f', None)],
                             retry_count=8, retry_delay=1)
    folder.CreateFolder('x')
    assert max(sleeps) == 10
    assert sleeps[:3] == [2, 4, 8]


def test_vcenter_away_is_ridden_out(sleeps):
    """A vCenter restarting resets every connection for longer than
    pyVmomi's quick resend: the call backs off, up to 30 s apart, and
    goes through once vCenter answers."""
    reset = ConnectionResetError(104, 'Connection reset by peer')
    done = vim.Folder('group-v9', None)
    soap, folder = retrying([reset] * 14 + [done], retry_count=10,
                            retry_delay=0.5)
    assert folder.CreateFolder('x')._moId == 'group-v9'
    # pyVmomi resends once at once (0.5 s), then the back-off.
    assert [s for s in sleeps if s != 0.5] == [1.0, 2.0, 4.0, 8.0, 16.0,
                                               30, 30]
    assert soap.calls == 15


def test_vcenter_away_for_good_is_raised(sleeps):
    refused = ConnectionRefusedError(111, 'Connection refused')
    soap, folder = retrying([refused] * 20, retry_count=3)
    with pytest.raises(ConnectionRefusedError):
        folder.CreateFolder('x')
    assert soap.calls == 8  # 4 tries, each with pyVmomi's one resend


def test_a_certificate_that_fails_is_not_retried(sleeps):
    bad = ssl.SSLCertVerificationError(1, 'certificate verify failed')
    soap, folder = retrying([bad] * 4)
    with pytest.raises(ssl.SSLCertVerificationError):
        folder.CreateFolder('x')
    assert soap.calls == 2  # pyVmomi's own resend only


def test_a_session_lost_again_after_login_is_retried(sleeps):
    """vCenter back up but still forgetting sessions: log in, back off,
    log in again."""
    lost = vim.fault.NotAuthenticated()
    logins = []
    soap = FakeSoap([lost, lost, lost, vim.Folder('f', None)])
    stub = session_mod._RetryingStub(soap, logins.append, 3, 0.5)
    stub.state = stub.STATE_AUTHENTICATED
    vim.Folder('group-d1', stub).CreateFolder('x')
    assert soap.calls == 4
    assert len(logins) == 3


@pytest.mark.parametrize('fault', [
    vim.fault.DuplicateName(name='x'),
    vim.fault.InvalidLogin(),
    vmodl.fault.InvalidArgument(invalidProperty='name'),
])
def test_other_faults_are_raised_at_once(sleeps, fault):
    soap, folder = retrying([fault, vim.Folder('f', None)])
    with pytest.raises(type(fault)):
        folder.CreateFolder('x')
    assert soap.calls == 1
    assert sleeps == []


# --- wait_for_task ----------------------------------------------------------

def task_session(updates, task_timeout=3600):
    """A Session whose content is a fake stub answering a task wait with
    ``updates``: a list of {property: value} (or None for a timed-out
    wait)."""
    stub = fake_vim.FakeStub()
    task = vim.Task('task-7', stub)
    collector = PC('session[1]pc', stub)
    pending = list(updates)

    def wait(mo, version, options):
        assert options.maxWaitSeconds >= 1
        changes = pending.pop(0)
        if changes is None:
            return None
        return PC.UpdateSet(version=str(len(pending)), filterSet=[
            PC.FilterUpdate(filter=PC.Filter('f', stub), objectSet=[
                PC.ObjectUpdate(kind='modify', obj=task, changeSet=[
                    PC.Change(name=k, op='assign', val=v)
                    for k, v in changes.items()])])])

    stub.handlers.update(
        CreatePropertyCollector=lambda mo: collector,
        CreateFilter=lambda mo, spec, partial: PC.Filter('f', stub),
        WaitForUpdatesEx=wait,
        DestroyPropertyCollector=lambda mo: None)
    session = make(task_timeout=task_timeout)
    session._content = fake_vim.session(stub).content
    session._si = types.SimpleNamespace()
    return session, task, stub


def test_wait_for_task_returns_the_result():
    result = vim.VirtualMachine('vm-5', None)
    session, task, stub = task_session([
        {'info.state': 'queued'},
        None,
        {'info.state': 'running', 'info.progress': 40},
        {'info.state': 'success', 'info.result': result}])
    progress = []
    assert session.wait_for_task(task, on_progress=progress.append) == result
    assert progress and set(progress) == {40}
    # On a private collector, watching only this task, destroyed after.
    names = stub.names()
    assert names[0] == 'CreatePropertyCollector'
    assert names[-1] == 'DestroyPropertyCollector'
    assert stub.calls[-1][1] == 'session[1]pc'
    spec = stub.calls[1][2][0]
    assert [o.obj for o in spec.objectSet] == [task]
    # The version of one update is passed to the next wait.
    versions = [c[2][0] for c in stub.calls if c[0] == 'WaitForUpdatesEx']
    assert versions == ['', '3', '3', '1']


def test_a_collector_lost_before_its_filter_is_made_again():
    # The session expired between CreatePropertyCollector and CreateFilter:
    # the session logged in again for CreateFilter, where the collector
    # of the old session is unknown (a spawn failed on it in the load
    # test's session expiry).
    session, task, stub = task_session([
        {'info.state': 'success', 'info.result': 'done'}])
    collectors = iter([PC('session[1]pc', stub), PC('session[2]pc', stub)])
    stub.handlers['CreatePropertyCollector'] = lambda mo: next(collectors)

    def create_filter(mo, spec, partial):
        if mo._moId == 'session[1]pc':
            raise vmodl.fault.ManagedObjectNotFound(obj=mo)
        return PC.Filter('f', stub)

    stub.handlers['CreateFilter'] = create_filter
    assert session.wait_for_task(task) == 'done'
    assert [(n, m) for n, m, _ in stub.calls if n.startswith('Create')] == [
        ('CreatePropertyCollector', 'propertyCollector'),
        ('CreateFilter', 'session[1]pc'),
        ('CreatePropertyCollector', 'propertyCollector'),
        ('CreateFilter', 'session[2]pc')]


def test_wait_for_task_raises_the_task_fault():
    fault = vim.fault.FileAlreadyExists(file='[ds] x')
    session, task, stub = task_session([
        {'info.state': 'error', 'info.error': fault}])
    with pytest.raises(vim.fault.FileAlreadyExists) as err:
        session.wait_for_task(task)
    assert err.value is fault
    assert stub.names()[-1] == 'DestroyPropertyCollector'


def test_wait_for_task_without_a_fault_object():
    session, task, _ = task_session([
        {'info.state': 'error', 'info.error': 'went wrong'}])
    with pytest.raises(exception.TaskFailed, match='task-7.*went wrong'):
        session.wait_for_task(task)


def test_wait_for_task_times_out():
    session, task, stub = task_session([None] * 100000, task_timeout=0.05)
    with pytest.raises(exception.TaskTimeout) as err:
        session.wait_for_task(task)
    assert 'task-7' in str(err.value)
    assert 'task_timeout' in str(err.value)
    # The task itself, for a caller that must follow it further.
    assert err.value.task_ref is task
    assert stub.names()[-1] == 'DestroyPropertyCollector'


def test_wait_for_task_with_a_timeout_of_its_own():
    session, task, _ = task_session([None] * 100000, task_timeout=3600)
    with pytest.raises(exception.TaskTimeout, match='within 0.05 s'):
        session.wait_for_task(task, timeout=0.05)


def test_waits_end_well_before_the_socket_gives_up():
    # A wait vCenter ends on time must never read as a dead connection:
    # pyVmomi would resend the same wait up to api_retry_count times.
    session, task, stub = task_session([None, None, {'info.state':
                                                     'success'}])
    session.wait_for_task(task)
    waits = [c[2][1].maxWaitSeconds for c in stub.calls
             if c[0] == 'WaitForUpdatesEx']
    assert waits and max(waits) <= watch.MAX_WAIT_SECONDS
    assert watch.MAX_WAIT_SECONDS * 1.5 <= session_mod.SOAP_TIMEOUT_SECONDS


# --- login ------------------------------------------------------------------

class LoginStub:
    """A SOAP stub answering Login and currentSession only."""

    def __init__(self, login_fault=None, current=None):
        self.login_fault = login_fault
        self.current = current
        self.logins = 0

    def InvokeAccessor(self, mo, info):
        if info.name == 'content':
            return vim.ServiceInstanceContent(
                sessionManager=vim.SessionManager('SessionManager', self))
        assert info.name == 'currentSession'
        return self.current

    def InvokeMethod(self, mo, info, args):
        assert info.wsdlName == 'Login'
        self.logins += 1
        if self.login_fault is not None:
            raise self.login_fault
        return vim.UserSession(key='k', userName=args[0])


def test_login():
    soap = LoginStub()
    make()._login(soap)
    assert soap.logins == 1


def test_login_refused_on_a_live_session_counts_as_logged_in():
    # After a session expiry, the first thread logs in again; the others
    # then send Login on its new cookie, which vCenter refuses.
    soap = LoginStub(login_fault=vim.fault.InvalidLogin(),
                     current=vim.UserSession(key='k', userName='admin'))
    make()._login(soap)
    assert soap.logins == 1


def test_login_refused_without_a_session_is_raised():
    soap = LoginStub(login_fault=vim.fault.InvalidLogin(), current=None)
    with pytest.raises(vim.fault.InvalidLogin):
        make()._login(soap)
