"""Run govmomi's vCenter simulator (our launcher in tools/vcsim) for tests.

Used by pytest fixtures and by demo scripts, so nothing here imports pytest.

    with Vcsim(hosts_per_cluster=2, host_memory_mb=65536) as sim:
        si = connect(sim)
        ...

The launcher prints one JSON line once it serves (see tools/vcsim):
``{"url", "host", "port", "datastores": {name: dir}, "clusters",
"about_uuid"}``, and with ``-cluster-datastores`` ``"cluster_datastores":
{cluster: datastore}``.
"""

import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from tests.harness import process_logs

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
LAUNCHER_DIR = os.path.join(REPO_ROOT, 'tools', 'vcsim')

DEFAULT_START_TIMEOUT = 30.0
DEFAULT_PASSWORD = 'vcsim-Pw-7f3a9c'
# Every password a launcher was started with: no log line may hold one.
SECRETS = {DEFAULT_PASSWORD}
DEFAULT_STOP_TIMEOUT = 10.0


class VcsimError(RuntimeError):
    """The launcher could not be built or started."""


def cache_dir():
    """``$VCDRIVER_CACHE_DIR`` or ``<repo>/.cache``."""
    return os.environ.get('VCDRIVER_CACHE_DIR') or os.path.join(
        REPO_ROOT, '.cache'
    )


def _source_hash():
    h = hashlib.sha256()
    names = sorted(
        n
        for n in os.listdir(LAUNCHER_DIR)
        if (n.endswith('.go') and not n.endswith('_test.go'))
        or n in ('go.mod', 'go.sum')
    )
    for name in names:
        h.update(name.encode() + b'\0')
        with open(os.path.join(LAUNCHER_DIR, name), 'rb') as f:
            h.update(f.read())
        h.update(b'\0')
    return h.hexdigest()[:16]


def _prune_old_builds(out_dir, keep):
    """Remove launchers built from older sources (running ones keep
    working)."""
    for name in os.listdir(out_dir):
        if name.startswith('vcsim-') and name != keep and '.' not in name:
            try:
                os.unlink(os.path.join(out_dir, name))
            except OSError:
                pass


def build_launcher(go=None):
    """Build tools/vcsim once per source version; return the binary's path.

    The binary is ``<cache>/vcsim-<hash of *.go, go.mod, go.sum>``; an
    existing one is reused. A file lock makes parallel test processes build
    it only once.
    """
    out_dir = cache_dir()
    os.makedirs(out_dir, exist_ok=True)
    binary = os.path.join(out_dir, 'vcsim-' + _source_hash())
    if os.access(binary, os.X_OK):
        return binary

    go = go or os.environ.get('GO') or shutil.which('go')
    if not go and os.access('/usr/local/go/bin/go', os.X_OK):
        go = '/usr/local/go/bin/go'
    if not go:
        raise VcsimError(
            "cannot build the vcsim launcher: no 'go' on PATH (install Go "
            ">= 1.25 or set $GO to its binary)"
        )

    with open(os.path.join(out_dir, 'vcsim.build.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.access(
                binary, os.X_OK
            ):  # built by another process meanwhile
                return binary
            tmp = binary + '.tmp.%d' % os.getpid()
            proc = subprocess.run(
                [go, 'build', '-buildvcs=false', '-o', tmp, '.'],
                cwd=LAUNCHER_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if proc.returncode != 0:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise VcsimError(
                    'go build in %s failed (exit %d):\n%s'
                    % (LAUNCHER_DIR, proc.returncode, proc.stdout)
                )
            os.replace(tmp, binary)
            _prune_old_builds(out_dir, keep=os.path.basename(binary))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return binary


def _duration(value):
    """Seconds (int/float) or a Go duration string ("500ms") -> Go duration."""
    if isinstance(value, (int, float)):
        return '%dms' % round(value * 1000)
    return str(value)


class Control:
    """The launcher's own endpoints (/vcdriver/...) and datastore URLs, for
    a launcher started here (:class:`Vcsim`) or by someone else (the
    stack's): from its ``url``, ``host`` and ``port``."""

    def __init__(self, url, host, port):
        self.url, self.host, self.port = url, host, port

    def http_url(self, path):
        scheme = self.url.split(':', 1)[0]
        return '%s://%s:%d%s' % (scheme, self.host, self.port, path)

    def stats(self):
        """Counters since start or ``reset_stats``: datastore uploads
        ``{"folder_puts": {"<ds>/<path>": n}, "folder_put_total": n}`` and
        SOAP requests ``{"soap_calls": {"<method>": n},
        "soap_call_total": n}``."""
        with urllib.request.urlopen(
            self.http_url('/vcdriver/stats'), timeout=10
        ) as r:
            return json.loads(r.read())

    def reset_stats(self):
        """Zero the counters and forget the NFC leases that ended."""
        for path in ('/vcdriver/stats', '/vcdriver/nfc'):
            req = urllib.request.Request(self.http_url(path), method='DELETE')
            with urllib.request.urlopen(req, timeout=10):
                pass

    def _faults_request(self, method, path='', rule=None):
        data = json.dumps(rule).encode() if rule is not None else None
        req = urllib.request.Request(
            self.http_url('/vcdriver/faults' + path),
            data=data,
            method=method,
            headers={'Content-Type': 'application/json'},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def inject(self, **rule):
        """Arm a fault (tools/vcsim/faults.go has every kind); returns
        its id, for ``clear_faults(id)``. For example::

            sim.inject(kind="soap_fault", method="CreateVM_Task",
                       fault="NoDiskSpace", message="full", times=2)
            sim.inject(kind="task_fail", method="PowerOnVM_Task",
                       object=instance_uuid, progress=[30],
                       fault="InsufficientResourcesFault")
            sim.inject(kind="task_hang", method="CloneVM_Task", seconds=5)
            sim.inject(kind="latency", method="RetrievePropertiesEx",
                       ms=200)
            sim.inject(kind="reset", method="PowerOffVM_Task")
            sim.inject(kind="http_error", http_method="PUT", status=507)
            sim.inject(kind="http_error", http_method="PUT",
                       cut_after_bytes=65536)
            sim.inject(kind="session_expiry")
            sim.inject(kind="restart", seconds=2)

        ``times`` (default 1, latency: 0) is how often it fires, 0 until
        cleared; ``skip`` lets the first N matching calls through."""
        return self._faults_request('POST', rule=rule)['id']

    def faults(self):
        """The armed faults, each with its ``id``, ``hits`` (times it
        fired) and ``seen`` (matching calls, skipped ones included)."""
        return self._faults_request('GET')['faults']

    def clear_faults(self, fault_id=None):
        """Clear one fault by id, or all (ends hangs and restarts)."""
        path = '' if fault_id is None else '/%d' % fault_id
        self._faults_request('DELETE', path)

    def _datastores_request(self, method, path='', body=None):
        from urllib.error import HTTPError

        req = urllib.request.Request(
            self.http_url('/vcdriver/datastores' + path),
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={'Content-Type': 'application/json'},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except HTTPError as e:
            raise VcsimError(
                '%s /vcdriver/datastores%s: HTTP %d: %s'
                % (method, path, e.code, e.read().decode().strip())
            ) from e

    def list_datastores(self):
        """Every datastore object (one per datacenter for a shared NFS
        name): ``[{"name", "moref", "datacenter", "type", "accessible",
        "url", "capacity", "free_space", "capacity_gb", "free_gb"}]``,
        bytes (summary.capacity, summary.freeSpace) and the same in GiB.
        (Not ``datastores``: :class:`Vcsim` has that attribute, name ->
        backing directory.)"""
        return self._datastores_request('GET')['datastores']

    def set_datastore_space(self, name, free_gb, capacity_gb=None,
                            datacenter=None):
        """Give datastore ``name`` ``free_gb`` GiB of free space (and
        ``capacity_gb`` of capacity), announced to property collectors
        as vCenter would (tools/vcsim/datastore_space.go); every
        datacenter's object of that name unless ``datacenter`` is given.
        Returns its row as :meth:`list_datastores` lists it, plus
        ``"changed"`` (the morefs changed). An unknown name or free space
        above the capacity raises :class:`VcsimError`."""
        from urllib.parse import quote
        from urllib.parse import urlencode

        body = {'free_gb': free_gb}
        if capacity_gb is not None:
            body['capacity_gb'] = capacity_gb
        path = '/' + quote(name, safe='')
        if datacenter is not None:
            path += '?' + urlencode({'datacenter': datacenter})
        return self._datastores_request('PUT', path, body)

    def datastore_url(self, ds, path, dc='DC0'):
        """HTTP URL of a file on a datastore (PUT to upload, GET to read)."""
        from urllib.parse import quote
        from urllib.parse import urlencode

        return self.http_url(
            '/folder/%s?%s'
            % (quote(path), urlencode({'dcPath': dc, 'dsName': ds}))
        )


class Vcsim(Control):
    """One simulator process.

    Attributes once started: ``url``, ``host``, ``port``, ``datastores``
    (name -> backing directory), ``clusters``, ``info`` (the whole JSON line),
    ``username``/``password`` (what :func:`connect` logs in with).
    """

    def __init__(
        self,
        clusters=1,
        hosts_per_cluster=3,
        nfs=1,
        host_memory_mb=0,
        host_cpu_cores=0,
        datacenters=1,
        standalone_hosts=0,
        vms=0,
        datastore_root=None,
        datastore_capacity_gb=0,
        session_idle_timeout=None,
        task_delay=None,
        guest_tools=False,
        username=None,
        password=None,
        tls_cert=None,
        tls_key=None,
        extra_args=(),
        start_timeout=DEFAULT_START_TIMEOUT,
        binary=None,
    ):
        self.args = [
            '-datacenters',
            str(datacenters),
            '-clusters',
            str(clusters),
            '-hosts-per-cluster',
            str(hosts_per_cluster),
            '-standalone-hosts',
            str(standalone_hosts),
            '-vms',
            str(vms),
            '-nfs',
            str(nfs),
            '-host-memory-mb',
            str(host_memory_mb),
            '-host-cpu-cores',
            str(host_cpu_cores),
            '-datastore-capacity-gb',
            str(datastore_capacity_gb),
        ]
        if datastore_root:
            self.args += ['-datastore-root', str(datastore_root)]
        if session_idle_timeout:
            self.args += [
                '-session-idle-timeout',
                _duration(session_idle_timeout),
            ]
        if task_delay:
            self.args += ['-task-delay', _duration(task_delay)]
        if guest_tools:
            self.args.append('-guest-tools')
        if username is not None:
            self.args += ['-username', username, '-password', password or '']
        if tls_cert:
            self.args += ['-tls-cert', tls_cert, '-tls-key', tls_key]
        self.args += list(extra_args)
        self.username = username or 'user'
        # Distinctive, so the suite's log scan (tests/conftest.py) finds
        # it wherever it leaks; the launcher takes any pair by default.
        self.password = (password if username is not None
                         else DEFAULT_PASSWORD)
        SECRETS.add(self.password)
        self.start_timeout = start_timeout
        self.binary = binary
        self.proc = None
        self.info = None
        self.url = self.host = self.port = None
        self.datastores = {}
        self.clusters = []
        self._stderr = None

    # -- lifecycle -----------------------------------------------------

    def start(self):
        if self.proc is not None:
            raise VcsimError('already started')
        binary = self.binary or build_launcher()
        # stderr goes to a file: a pipe nobody drains could fill up and block
        # the launcher; the file is read back when startup fails.
        self._stderr = tempfile.TemporaryFile(prefix='vcsim-stderr-')
        # -exit-on-stdin-close: we hold the only write end of its stdin, so
        # the launcher also goes away if this process dies without stop().
        self.proc = subprocess.Popen(
            [binary, '-exit-on-stdin-close'] + self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        try:
            line = self._read_line(self.start_timeout)
            self.info = json.loads(line)
        except Exception as e:
            self._kill()
            raise VcsimError(
                'vcsim launcher failed to start: %s\nargs: %s\nstderr:\n%s'
                % (e, ' '.join(self.args), self.stderr())
            ) from None
        self.url = self.info['url']
        self.host = self.info['host']
        self.port = self.info['port']
        self.datastores = self.info['datastores']
        self.clusters = self.info['clusters']
        return self

    def _read_line(self, timeout):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b''
        while b'\n' not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VcsimError('no JSON line within %.0fs' % timeout)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise VcsimError(
                        'launcher exited (code %s) before printing its '
                        'JSON line'
                        % self.proc.wait()
                    )
                buf += chunk
        return buf.split(b'\n', 1)[0].decode()

    def stderr(self):
        """Everything the launcher logged so far."""
        if self._stderr is None:
            return ''
        self._stderr.seek(0)
        return self._stderr.read().decode(errors='replace')

    def stop(self, timeout=DEFAULT_STOP_TIMEOUT):
        """SIGTERM, wait, SIGKILL if it does not exit; return the exit
        code."""
        if self.proc is None:
            return None
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        code = self.proc.returncode if code is None else code
        process_logs.finished('vcsim launcher %s (stderr)' % self.url,
                              self.stderr())
        self._close()
        return code

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def _close(self):
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def datastore_path(self, ds, path=''):
        """Local path of ``[ds] path``."""
        return os.path.join(self.datastores[ds], path)


def connect(vcsim, user=None, pwd=None):
    """Log in with pyVmomi; returns the ServiceInstance."""
    from pyVim.connect import SmartConnect

    return SmartConnect(
        host=vcsim.host,
        port=vcsim.port,
        protocol=vcsim.url.split(':', 1)[0],
        user=user if user is not None else vcsim.username,
        pwd=pwd if pwd is not None else vcsim.password,
        disableSslCertValidation=True,
    )


def wait_task(task, timeout=30.0):
    """Wait for a task started from a test's own pyVmomi session."""
    deadline = time.monotonic() + timeout
    while task.info.state not in ('success', 'error'):
        if time.monotonic() > deadline:
            raise VcsimError(
                'task %s still %s after %ss'
                % (task._moId, task.info.state, timeout)
            )
        time.sleep(0.05)
    if task.info.state == 'error':
        raise task.info.error
    return task.info.result
