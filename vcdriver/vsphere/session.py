"""A vCenter session: login, transparent re-login, retries, task waits.

pyVmomi's ``VimSessionOrientedStub`` already logs in again after
NotAuthenticated and retries socket errors; we add retries of faults that
mean "not done, try again" and a task wait that sleeps on the server
(WaitForUpdatesEx) instead of polling.
"""

import http.client
import socket
import ssl
import threading
import time

from oslo_log import log as logging
from pyVim import connect as pyvim_connect
from pyVmomi import SoapAdapter
from pyVmomi import vim
from pyVmomi import vmodl
from pyVmomi import VmomiSupport

from vcdriver import exception
from vcdriver.vsphere import watch

LOG = logging.getLogger(__name__)

# Faults after which vCenter did not carry out the call: safe to repeat.
TRANSIENT_FAULTS = (
    vmodl.fault.HostCommunication,
    vmodl.fault.SystemError,
    vim.fault.TaskInProgress,
    vim.fault.ConcurrentAccess,
)

# Longest sleep between retries of a busy fault, and of a vCenter that is
# away: with the default api_retry_count (10) and 0.5 s, the second adds
# up to about three minutes (1, 2, 4 ... 30 s).
BUSY_MAX_DELAY_SECONDS = 10
AWAY_MAX_DELAY_SECONDS = 30

_TASK_DONE = (vim.TaskInfo.State.success, vim.TaskInfo.State.error)

# A SOAP answer that takes longer means the connection is dead (a
# vCenter gone without a reset): pyVmomi reconnects and sends again.
SOAP_TIMEOUT_SECONDS = 60


_PROPERTY_READS = ('RetrieveProperties', 'RetrievePropertiesEx',
                   'ContinueRetrievePropertiesEx')


def _session_lost_in_result(method, result):
    if method not in _PROPERTY_READS or result is None:
        return False
    objects = result if isinstance(result, list) else result.objects
    return any(isinstance(missing.fault, vim.fault.NotAuthenticated)
               for obj in objects or () for missing in obj.missingSet or ())


class _RetryingStub(pyvim_connect.VimSessionOrientedStub):
    """Session stub that also retries transient vSphere faults and rides
    out a vCenter that is away for a while (a restart, a network cut).

    pyVmomi resends a call after a socket error and logs in again after
    NotAuthenticated, a fixed number of times a fixed delay apart (it was
    given api_retry_count and 0.5 s: about 5 s in all, less than any
    vCenter restart). It keeps one quick
    resend (a pooled connection the server had closed) and one login; the
    rest backs off here, about three minutes with the default retry count
    (task waits, which cost vCenter nothing, wait longer:
    ``watch.VCENTER_RETURN_SECONDS``). vCenter refuses requests while it
    restarts, so sending one again does not do its work twice; pyVmomi's
    own resend relies on the same. A certificate that no longer verifies
    is not a vCenter away: it is raised at once.
    """

    def __init__(self, soap_stub, login, retry_count, retry_delay):
        super().__init__(soap_stub, login, retryDelay=retry_delay,
                         retryCount=2)
        self._retry_count = retry_count
        self._retry_delay = retry_delay

    def _back_off(self, attempt, method, why, max_delay):
        """Sleep before retry ``attempt``, or say no (False) when the
        retries are spent."""
        if attempt > self._retry_count:
            return False
        delay = min(self._retry_delay * 2 ** attempt, max_delay)
        LOG.warning('vCenter call %s failed (%s), retry %d of %d in %.1f s',
                    method, why, attempt, self._retry_count, delay)
        time.sleep(delay)
        return True

    def InvokeMethod(self, mo, info, args):
        attempt = 0
        while True:
            try:
                result = super().InvokeMethod(mo, info, args)
                if not _session_lost_in_result(info.wsdlName, result):
                    return result
                # vCenter answers a property read of an expired session
                # with NotAuthenticated per property, not as a fault.
                attempt += 1
                if attempt > self._retry_count:
                    raise vim.fault.NotAuthenticated(
                        msg='vCenter session lost; logging in again did '
                            'not help')
                LOG.info('vCenter session expired during %s; logging in '
                         'again', info.wsdlName)
                self._SetStateUnauthenticated()
            except TRANSIENT_FAULTS as fault:
                attempt += 1
                if not self._back_off(attempt, info.wsdlName,
                                      type(fault).__name__,
                                      BUSY_MAX_DELAY_SECONDS):
                    raise
            except vim.fault.NotAuthenticated:
                # Logged in again, and the session was gone at once: a
                # vCenter coming back up.
                attempt += 1
                self._SetStateUnauthenticated()
                if not self._back_off(attempt, info.wsdlName,
                                      'session lost again',
                                      AWAY_MAX_DELAY_SECONDS):
                    raise
            except ssl.SSLCertVerificationError:
                raise
            except watch.VCENTER_AWAY as e:
                attempt += 1
                if not self._back_off(attempt, info.wsdlName,
                                      'vCenter unreachable: %s' % e,
                                      AWAY_MAX_DELAY_SECONDS):
                    raise


class Session:
    """One logged-in connection to a vCenter, shared by all driver threads."""

    def __init__(self, host, port, username, password, protocol='https',
                 ca_file=None, insecure=False, retry_count=10,
                 pool_size=10, task_timeout=3600, retry_delay=0.5,
                 max_objects=None):
        self.host = host
        self.port = port
        self.protocol = protocol
        self.username = username
        self._password = password
        self._ca_file = ca_file
        self._insecure = insecure
        self._retry_count = retry_count
        self._retry_delay = retry_delay
        self._pool_size = pool_size
        self.task_timeout = task_timeout
        self.max_objects = max_objects
        self._si = None
        self._content = None
        self._lock = threading.Lock()

    @classmethod
    def from_conf(cls, conf):
        """The session nova.conf describes (driver and CLI alike)."""
        vmware = conf.vmware
        return cls(
            host=vmware.host_ip, port=vmware.host_port,
            username=vmware.host_username, password=vmware.host_password,
            protocol=conf.vcdriver.vcenter_protocol, ca_file=vmware.ca_file,
            insecure=vmware.insecure, retry_count=vmware.api_retry_count,
            pool_size=vmware.connection_pool_size,
            task_timeout=conf.vcdriver.task_timeout,
            max_objects=vmware.maximum_objects)

    def __repr__(self):
        # Never the password.
        return '<Session %s as %s>' % (self.url, self.username)

    @property
    def url(self):
        return '%s://%s:%s/sdk' % (self.protocol, self.host, self.port)

    def ssl_context(self):
        """TLS context for SOAP and datastore HTTP alike; None for http."""
        if self.protocol != 'https':
            return None
        if self._insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            return ssl.create_default_context(cafile=self._ca_file)
        except (OSError, ssl.SSLError) as e:
            raise exception.InvalidConfig(
                reason='[vmware] ca_file %s cannot be read as CA '
                       'certificates: %s' % (self._ca_file, e))

    def _soap_stub(self, ctx):
        """A SOAP stub speaking the newest API version both sides know.

        pyVmomi's SmartStubAdapter probes versions with the negative port it
        uses to mean plain HTTP, which fails; so we run its probe ourselves
        with the real port, then build the stub.
        """
        find_version = getattr(pyvim_connect, '__FindSupportedVersion')
        version = find_version(
            self.protocol, self.host, self.port, '/sdk',
            VmomiSupport.GetServiceVersions('vim25'), ctx, None, 80, None)
        if version is None:
            raise exception.VCenterUnreachable(
                url=self.url, reason='no vSphere API version in common, or '
                                     'not a vCenter SDK endpoint')
        # pyVmomi takes a negative port to mean plain HTTP.
        port = self.port if self.protocol == 'https' else -self.port
        return SoapAdapter.SoapStubAdapter(
            host=self.host, port=port, path='/sdk', version=version,
            poolSize=self._pool_size, sslContext=ctx,
            httpConnectionTimeout=SOAP_TIMEOUT_SECONDS)

    def _login(self, soap):
        """Log in on the SOAP stub (pyVmomi's own login method reads
        currentSession first, which some endpoints refuse before login)."""
        content = vim.ServiceInstance('ServiceInstance', soap).content
        try:
            content.sessionManager.Login(self.username, self._password)
        except vim.fault.InvalidLogin:
            # After a session expiry, calls in flight each see
            # NotAuthenticated: the first one logs in again, the later
            # ones then send Login on its live session cookie, which
            # vCenter refuses. Logged in is logged in.
            try:
                current = content.sessionManager.currentSession
            except Exception:
                current = None
            if current is None:
                raise
            LOG.debug('Already logged in again to %s', self.url)
            return
        LOG.debug('Logged in to %s as %s', self.url, self.username)

    def connect(self):
        """Log in now, turning every failure into an error naming its cause."""
        with self._lock:
            if self._si is not None:
                return
            ctx = self.ssl_context()
            try:
                soap = self._soap_stub(ctx)
            except ssl.SSLError as e:
                raise exception.VCenterTLSFailed(url=self.url, reason=e)
            except (OSError, http.client.HTTPException) as e:
                raise exception.VCenterUnreachable(url=self.url, reason=e)
            login = self._login
            stub = _RetryingStub(soap, login, self._retry_count,
                                 self._retry_delay)
            si = vim.ServiceInstance('ServiceInstance', stub)
            try:
                # Log in explicitly so a bad password is named as such.
                login(soap)
                stub.state = stub.STATE_AUTHENTICATED
                content = si.RetrieveContent()
            except vim.fault.InvalidLogin as e:
                raise exception.VCenterAuthFailed(url=self.url,
                                                  user=self.username,
                                                  reason=e.msg)
            except (socket.error, http.client.HTTPException) as e:
                raise exception.VCenterUnreachable(url=self.url, reason=e)
            self._si = si
            self._content = content
            LOG.info('Connected to %s (%s %s) as %s', self.url,
                     content.about.fullName, content.about.instanceUuid,
                     self.username)

    @property
    def content(self):
        if self._content is None:
            self.connect()
        return self._content

    @property
    def cookie(self):
        """The session cookie, for datastore HTTP transfers. Never log it."""
        self.connect()
        return self._si._stub.soapStub.cookie

    def current_time(self):
        """vCenter's clock (epoch seconds): the one clock every compute
        service sharing a datastore agrees on."""
        self.connect()
        return self._si.CurrentTime().timestamp()

    @property
    def about(self):
        return self.content.about

    def logout(self):
        with self._lock:
            if self._si is None:
                return
            try:
                self._content.sessionManager.Logout()
            except Exception:  # best effort at shutdown
                LOG.debug('Logout from %s failed', self.url, exc_info=True)
            self._si = self._content = None

    def wait_for_task(self, task, on_progress=None, timeout=None):
        """Wait for a task as vCenter reports its changes; its result.
        ``timeout`` defaults to ``[vcdriver] task_timeout``."""
        timeout = self.task_timeout if timeout is None else timeout

        def done(path, value):
            if path == 'info.progress' and value is not None and on_progress:
                on_progress(value)
            return path == 'info.state' and value in _TASK_DONE

        with watch.PropertyWatch(self, task, vim.Task, [
                'info.state', 'info.error', 'info.result',
                'info.progress']) as task_watch:
            if not task_watch.wait(done, timeout):
                raise exception.TaskTimeout(task=task._moId, timeout=timeout,
                                            task_ref=task)
            info = task_watch.values
        if info['info.state'] == vim.TaskInfo.State.error:
            error = info.get('info.error')
            # pyVmomi hands a LocalizedMethodFault over as the fault itself.
            if isinstance(error, vmodl.MethodFault):
                raise error
            raise exception.TaskFailed(task=task._moId, reason=error)
        return info.get('info.result')
