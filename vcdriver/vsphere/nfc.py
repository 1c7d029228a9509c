"""NFC leases (HttpNfcLease): wait, keep alive, move disks, end.

vCenter hands out an export lease (ExportVm, VirtualMachineSnapshot.
ExportSnapshot) or an import lease (ResourcePool.ImportVApp); once it is
``ready`` its ``info.deviceUrl`` entries are GET-able (export) or take a
POST of a streamOptimized VMDK (import) for as long as the lease lives.
A lease dies when nothing reports progress on it for ``info.leaseTimeout``
seconds, so a transfer longer than that needs HttpNfcLeaseProgress at an
interval. Disk URLs serve or take the disk as a streamOptimized VMDK, of
a length nobody knows up front; an import lease can also have the ESX
host pull each disk from a URL itself (HttpNfcLeasePullFromUrls_Task).

Transfers are on http.client, as datastore_http's are: one connection
per stream, nothing pooled, no urllib3.
"""

import http.client
import ssl
import threading
import urllib.parse

from oslo_log import log as logging
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import exception
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import watch

LOG = logging.getLogger(__name__)

_LEASE_DONE = (vim.HttpNfcLease.State.ready, vim.HttpNfcLease.State.error)


class LeaseFailed(exception.VCenterError):
    msg_fmt = 'Export lease %(lease)s failed: %(reason)s'


class LeaseTimeout(exception.VCenterError):
    msg_fmt = ('Export lease %(lease)s was not ready within %(timeout)s s '
               '([vcdriver] task_timeout).')


class NfcReadError(exception.VCenterError):
    msg_fmt = 'Reading %(url)s from the export lease failed: %(reason)s'


class ImportLeaseFailed(LeaseFailed):
    msg_fmt = 'Import lease %(lease)s failed: %(reason)s'


class ImportLeaseTimeout(LeaseTimeout):
    msg_fmt = ('Import lease %(lease)s was not ready within %(timeout)s s '
               '([vcdriver] task_timeout).')


class NfcWriteError(exception.VCenterError):
    msg_fmt = 'NFC upload %(method)s %(path)s failed: %(reason)s'


# What an import lease's disk URL takes: ESX's name for a streamOptimized
# VMDK body (govmomi and ovftool POST disks with it).
STREAM_VMDK_TYPE = 'application/x-vnd.vmware-streamVmdk'


def _wait_for_lease(session, lease, timeout_error):
    """Wait for ``state`` ready or error; return (state, error, info)."""
    with watch.PropertyWatch(session, lease, vim.HttpNfcLease,
                             ['state', 'error', 'info']) as lease_watch:
        if not lease_watch.wait(
                lambda path, value: path == 'state' and value in _LEASE_DONE,
                session.task_timeout):
            raise timeout_error(lease=lease._moId,
                                timeout=session.task_timeout)
        values = lease_watch.values
    return values['state'], values.get('error'), values.get('info')


def _fault_text(fault):
    if fault is None:
        return 'no reason given'
    text = getattr(fault, 'msg', None) or getattr(
        fault, 'localizedMessage', None)
    return '%s: %s' % (type(fault).__name__, text) if text else repr(fault)


class Lease:
    """A ready export lease: its device URLs, progress, complete, abort."""

    kind = 'Export'
    failed = LeaseFailed
    timed_out = LeaseTimeout

    def __init__(self, session, lease, info):
        self.session = session
        self.lease = lease
        self.info = info

    @classmethod
    def wait(cls, session, lease):
        """The lease once ready; LeaseFailed (lease aborted) if it errs."""
        try:
            state, error, info = _wait_for_lease(session, lease,
                                                 cls.timed_out)
        except BaseException:
            _abort_quietly(lease)
            raise
        if state != vim.HttpNfcLease.State.ready:
            _abort_quietly(lease)
            raise cls.failed(lease=lease._moId, reason=_fault_text(error))
        return cls(session, lease, info)

    @property
    def name(self):
        return self.lease._moId

    def disk_urls(self):
        """The disks' device URLs, in the lease's order."""
        return [d for d in self.info.deviceUrl or () if d.disk]

    def progress(self, percent):
        """Report progress, which is what keeps the lease alive."""
        self.lease.HttpNfcLeaseProgress(
            percent=max(0, min(int(percent), 100)))

    def complete(self):
        self.lease.HttpNfcLeaseComplete()
        LOG.debug('%s lease %s completed', self.kind, self.name)

    def abort(self):
        """End the lease as failed; never raises (it runs on error paths)."""
        _abort_quietly(self.lease)

    def keep_alive(self, percent, interval=None):
        """A KeepAlive reporting ``percent()`` every ``interval`` seconds
        (default: a third of the lease timeout, at most a minute)."""
        if interval is None:
            timeout = getattr(self.info, 'leaseTimeout', None) or 300
            interval = max(1, min(60, timeout // 3))
        return KeepAlive(self, percent, interval)


def _abort_quietly(lease):
    try:
        lease.HttpNfcLeaseAbort()
        LOG.debug('Lease %s aborted', lease._moId)
    except vmodl.fault.ManagedObjectNotFound:
        pass  # already gone: completed, aborted or timed out
    except Exception:
        LOG.warning('Could not abort lease %s', lease._moId,
                    exc_info=True)


class KeepAlive:
    """A thread that reports lease progress at an interval, so the lease
    outlives transfers longer than its timeout.

    ``with lease.keep_alive(lambda: percent):``. It sleeps on an Event,
    so it ends as soon as the block does. A failed report is logged, not
    raised: the transfer itself will fail if the lease is gone.
    """

    def __init__(self, lease, percent, interval):
        self._lease = lease
        self._percent = percent
        self._interval = interval
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self._thread = threading.Thread(
            target=self._run, name='nfc-keepalive-%s' % self._lease.name,
            daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(self._interval):
            try:
                self._lease.progress(self._percent())
            except Exception as e:
                LOG.warning('Progress report on lease %s failed: %s',
                            self._lease.name, e)


def export_snapshot(session, snapshot):
    """ExportSnapshot, waited for: a ready Lease."""
    return Lease.wait(session, snapshot.ExportSnapshot())


class ImportLease(Lease):
    """A ready ImportVApp lease: the VM it made (``entity``), its disks'
    URLs to POST to or have pulled."""

    kind = 'Import'
    failed = ImportLeaseFailed
    timed_out = ImportLeaseTimeout

    @property
    def entity(self):
        return self.info.entity

    def pull(self, device_url, url, headers, size, thumbprint=None):
        """Have the ESX host GET ``url`` (with ``headers``; an https
        server's certificate is taken when it has ``thumbprint``) into
        the disk of ``device_url`` itself (HttpNfcLeasePullFromUrls,
        vSphere 6.7); waits for the task."""
        source = vim.HttpNfcLease.SourceFile(
            targetDeviceId=device_url.importKey, url=url, create=False,
            size=size, sslThumbprint=thumbprint,
            httpHeaders=[vim.KeyValue(key=k, value=v)
                         for k, v in headers.items()])
        task = self.lease.HttpNfcLeasePullFromUrls_Task(files=[source])
        self.session.wait_for_task(task)

    def manifest(self):
        """What the lease's transfers wrote, one entry per file: size
        received, capacity, populated size."""
        return self.lease.HttpNfcLeaseGetManifest() or []


def import_vapp(session, resource_pool, folder, spec, host=None):
    """ImportVApp, waited for: a ready ImportLease. vCenter has made the
    VM (with its disks, empty) by then."""
    return ImportLease.wait(session, resource_pool.ImportVApp(
        spec=spec, folder=folder, host=host))


class DiskWriter(datastore_http.Upload):
    """A POST of a streamOptimized VMDK to an import lease's disk URL,
    chunked: the encoder's output length is known only at its end."""

    error = NfcWriteError

    def __init__(self, session, url, label, timeout=300):
        parts = urllib.parse.urlsplit(url)
        path = parts.path + ('?' + parts.query if parts.query else '')
        headers = {'Content-Type': STREAM_VMDK_TYPE}
        if session.cookie:
            headers['Cookie'] = session.cookie
        super().__init__(_connection(session, url, timeout), 'POST', path,
                         label, headers)


def _connection(session, url, timeout):
    """A connection for a device URL. Its host may be ``*``: "the host the
    client connected to", i.e. vCenter's (then its port too, if the URL
    names none). TLS follows the session's settings."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port
    if host in ('*', None):
        host = session.host
        port = port or session.port
    if parts.scheme == 'https':
        return http.client.HTTPSConnection(
            host, port, timeout=timeout,
            # A session on plain http verifies what it is sent to on TLS.
            context=session.ssl_context() or ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


class DeviceReader:
    """GET of one device URL, as an iterator of chunks.

    Opens on first iteration; ``close()`` ends the connection (also mid-
    stream). ``bytes_read`` counts what arrived, for progress reports.
    """

    def __init__(self, session, url, chunk_size, timeout=300):
        self.url = url
        self.bytes_read = 0
        self._session = session
        self._chunk_size = chunk_size
        self._timeout = timeout
        self._conn = None

    def _open(self):
        parts = urllib.parse.urlsplit(self.url)
        path = parts.path + ('?' + parts.query if parts.query else '')
        self._conn = _connection(self._session, self.url, self._timeout)
        try:
            self._conn.putrequest('GET', path, skip_accept_encoding=True)
            cookie = self._session.cookie
            if cookie:
                self._conn.putheader('Cookie', cookie)
            self._conn.putheader('Accept', 'application/octet-stream')
            self._conn.endheaders()
            response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise NfcReadError(url=self.url, reason=e)
        if response.status != 200:
            body = response.read(512)
            self.close()
            raise NfcReadError(url=self.url, reason='HTTP %s %s %s' % (
                response.status, response.reason, body.strip()[:200]))
        return response

    def __iter__(self):
        response = self._open()
        try:
            while True:
                try:
                    chunk = response.read(self._chunk_size)
                except (OSError, http.client.HTTPException) as e:
                    raise NfcReadError(url=self.url, reason=e)
                if not chunk:
                    return
                self.bytes_read += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self):
        if self._conn is not None:
            self._conn.close()
