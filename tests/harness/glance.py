"""A real, Keystone-less glance-api for tests and demos.

Glance lives in a venv of its own (glance 33 pulls in SQLAlchemy 2.1, which
breaks nova's test harness), created on demand by :func:`ensure_glance_venv`.
The server is ``glance.wsgi.api:application`` under gunicorn on a loopback
port, with a sqlite database and a file store.  There is no Keystone: a
paste filter (tools/glance/vcdriver_glance_noauth.py) makes every request an
admin of project ``vcdriver`` (any token is accepted), and the policy
(tools/glance/policy.yaml) makes everyone admin.

    with Glance() as g:
        image = g.upload(data, 'disk', vmware_disktype='sparse')
        body = b''.join(g.client().images.data(image['id']))

Only the standard library is imported at module level: this module is used by
pytest fixtures, by demo scripts and (via ``tools/glance/glance.sh``) from the
command line with any python3.  ``Glance.client()`` imports python-glanceclient
lazily.

Environment:

``VCDRIVER_CACHE_DIR``
    cache directory, default ``<repo>/.cache``.
``VCDRIVER_GLANCE_VENV``
    Glance venv, default ``$VCDRIVER_CACHE_DIR/glance-venv``.
``VCDRIVER_GLANCE_PYTHON``
    interpreter used to create the venv, default ``python3``.
``VCDRIVER_GLANCE_REQUIRE_FORMAT_MATCH``
    ``1`` makes ``serve`` keep Glance's upload format inspection on.
"""

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref

try:
    from tests.harness import process_logs
    from tests.harness import venvs
except ImportError:  # run as a script (tools/glance/glance.sh)
    import process_logs
    import venvs

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
TOOLS_DIR = os.path.join(REPO_ROOT, 'tools', 'glance')
CONF_TEMPLATE = os.path.join(TOOLS_DIR, 'glance-api.conf.in')
POLICY_FILE = os.path.join(TOOLS_DIR, 'policy.yaml')
PASTE_INI = os.path.join(TOOLS_DIR, 'glance-api-paste.ini')

# Pinned so every machine gets the same server; bump together.
GLANCE_VERSION = '33.0.0'
GUNICORN_VERSION = '27.0.1'
REQUIREMENTS = ('glance==' + GLANCE_VERSION, 'gunicorn==' + GUNICORN_VERSION)
EMPTY_DB_NAME = '.vcdriver-empty-glance.sqlite'

DUMMY_TOKEN = 'vcdriver-test-token'  # noauth Glance ignores it

__all__ = [
    'Glance',
    'GlanceError',
    'ensure_glance_venv',
    'cache_dir',
    'default_venv_path',
    'REQUIREMENTS',
    'DUMMY_TOKEN',
]


class GlanceError(RuntimeError):
    """Glance venv could not be made, or the server failed to start."""


def cache_dir():
    return venvs.cache_dir()


def default_venv_path():
    return os.path.abspath(
        os.environ.get('VCDRIVER_GLANCE_VENV')
        or os.path.join(cache_dir(), 'glance-venv')
    )


def ensure_glance_venv(venv=None, log=None, force=False):
    """Create (or refresh) the Glance venv; return its path.

    Instant when it already holds the pinned requirements (unless
    ``force``: re-run pip install); see tests/harness/venvs.py.  ``log``
    is an optional file object for progress/pip output (default: stderr).
    """

    def check(venv):
        if not os.path.exists(_paste_ini(venv)):
            raise venvs.VenvError(
                'glance installed but %s is missing' % _paste_ini(venv)
            )

    try:
        return venvs.ensure(
            venv or default_venv_path(),
            REQUIREMENTS,
            executables=('gunicorn', 'glance-manage'),
            label='glance',
            log=log,
            force=force,
            python=os.environ.get('VCDRIVER_GLANCE_PYTHON'),
            stale=(EMPTY_DB_NAME,),
            check=check,
        )
    except venvs.VenvError as e:
        raise GlanceError(str(e)) from e


def _run(cmd, out):
    try:
        venvs.run(cmd, out)
    except venvs.VenvError as e:
        raise GlanceError(str(e)) from e


def _paste_ini(venv):
    return os.path.join(venv, 'etc', 'glance', 'glance-api-paste.ini')


def _tail_text(text, lines=40):
    return '\n'.join((text or '').rstrip().splitlines()[-lines:])


def _tail_file(path, lines=40):
    try:
        with open(path, errors='replace') as f:
            return _tail_text(f.read(), lines)
    except OSError:
        return ''


def write_config(workdir, venv, require_image_format_match=False,
                 keystone=None):
    """Lay out ``workdir`` and write ``workdir/etc/glance-api.conf``.

    With ``keystone`` (the options of ``[keystone_authtoken]``), Glance's
    own paste pipeline authenticates every request with Keystone instead
    of making everyone an admin.  Returns the path of the config file.
    Idempotent (keeps existing data).
    """
    workdir = os.path.abspath(workdir)
    datadir = os.path.join(workdir, 'images')
    etc = os.path.join(workdir, 'etc')
    for d in (
        etc,
        datadir,
        os.path.join(workdir, 'staging'),
        os.path.join(workdir, 'tasks'),
        os.path.join(workdir, 'locks'),
    ):
        os.makedirs(d, exist_ok=True)
    policy = os.path.join(etc, 'policy.yaml')
    shutil.copyfile(POLICY_FILE, policy)
    paste = os.path.join(etc, 'glance-api-paste.ini')
    shutil.copyfile(PASTE_INI, paste)
    with open(CONF_TEMPLATE) as f:
        conf = f.read()
    for key, value in (
        ('@WORKDIR@', workdir),
        ('@DATADIR@', datadir),
        ('@POLICY_FILE@', policy),
        ('@PASTE_INI@', paste),
        (
            '@REQUIRE_IMAGE_FORMAT_MATCH@',
            str(bool(require_image_format_match)).lower(),
        ),
    ):
        conf = conf.replace(key, value)
    if re.search(r'@[A-Z_]+@', conf):
        raise GlanceError('unrendered placeholder in %s' % CONF_TEMPLATE)
    if keystone:
        # Later sections of the same name win, option by option.
        conf += '\n[paste_deploy]\nflavor = keystone\nconfig_file = %s\n' % (
            _paste_ini(venv)
        )
        conf += '\n[keystone_authtoken]\n' + ''.join(
            '%s = %s\n' % item for item in keystone.items()
        )
    path = os.path.join(etc, 'glance-api.conf')
    with open(path, 'w') as f:
        f.write(conf)
    return path


def db_sync(venv, conf):
    """Create/upgrade the sqlite schema of ``conf``'s workdir.

    ``glance-manage db_sync`` takes about 2 s; a fresh database is instead
    copied from an empty one kept in the venv (made by the first db_sync).
    """
    workdir = os.path.dirname(os.path.dirname(conf))
    db = os.path.join(workdir, 'glance.sqlite')
    template = os.path.join(venv, EMPTY_DB_NAME)
    if not os.path.exists(db) and os.path.exists(template):
        shutil.copyfile(template, db)
        return
    fresh = not os.path.exists(db)
    with open(os.path.join(workdir, 'glance-manage.log'), 'a') as out:
        _run(
            [
                os.path.join(venv, 'bin', 'glance-manage'),
                '--config-file',
                conf,
                'db_sync',
            ],
            out,
        )
    if fresh:
        tmp = '%s.%d.tmp' % (template, os.getpid())
        shutil.copyfile(db, tmp)
        os.replace(tmp, template)


def gunicorn_argv(venv, bind, extra=()):
    return (
        [
            os.path.join(venv, 'bin', 'gunicorn'),
            '--bind',
            bind,
            '--workers',
            '1',
            '--threads',
            '4',
            '--timeout',
            '600',
            '--graceful-timeout',
            '5',
            # gunicorn >= 25 otherwise shares ~/.gunicorn/gunicorn.ctl
            # between all instances.
            '--no-control-socket',
        ]
        + list(extra)
        + ['glance.wsgi.api:application']
    )


def gunicorn_env(conf):
    env = dict(os.environ)
    env['OS_GLANCE_CONFIG_DIR'] = os.path.dirname(conf)
    # Never let the test venv leak into Glance's interpreter; the paste
    # filter vcdriver_glance_noauth lives in tools/glance.
    for var in ('PYTHONHOME', 'VIRTUAL_ENV'):
        env.pop(var, None)
    env['PYTHONPATH'] = TOOLS_DIR
    return env


def _free_socket(host='127.0.0.1'):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def _kill_group(proc, timeout=15):
    """SIGTERM gunicorn's process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Also reap stragglers (worker) left in the group after the master.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _cleanup(proc, workdir):
    _kill_group(proc)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


class Glance(object):
    """A glance-api under gunicorn, state under ``workdir``.

    ``workdir=None`` uses a fresh temporary directory that ``stop()``
    removes; a given ``workdir`` is kept (and reused: images survive a
    restart).  ``require_image_format_match=False`` lets tests upload
    arbitrary bytes whatever the disk_format (Glance's own default, True,
    rejects e.g. random bytes or a flat VMDK extent as disk_format=vmdk).
    ``bind_host`` is the address to listen on; with ``0.0.0.0`` (every
    address, e.g. also a veth's in a network namespace) ``url`` still
    names 127.0.0.1.
    """

    def __init__(
        self,
        workdir=None,
        venv=None,
        start_timeout=120,
        require_image_format_match=False,
        bind_host='127.0.0.1',
    ):
        self.require_image_format_match = require_image_format_match
        self.bind_host = bind_host
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(
            workdir or tempfile.mkdtemp(prefix='vcdriver-glance-')
        )
        self.datadir = os.path.join(self.workdir, 'images')
        self.venv = venv
        self.start_timeout = start_timeout
        self.url = None
        self.port = None
        self.conf = None
        self.proc = None
        self._finalizer = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def log_file(self):
        return os.path.join(self.workdir, 'glance-api.log')

    @property
    def gunicorn_log(self):
        return os.path.join(self.workdir, 'gunicorn.log')

    def start(self):
        if self.proc is not None:
            raise GlanceError('Glance already started at %s' % self.url)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.venv = ensure_glance_venv(self.venv)
        self.conf = write_config(
            self.workdir, self.venv, self.require_image_format_match
        )
        db_sync(self.venv, self.conf)
        # Bind here and hand the listening socket to gunicorn: no race for
        # the port with other tests.
        sock = _free_socket(self.bind_host)
        try:
            self.port = sock.getsockname()[1]
            host = self.bind_host
            if host in ('0.0.0.0', ''):
                host = '127.0.0.1'
            self.url = 'http://%s:%d' % (host, self.port)
            with open(self.gunicorn_log, 'ab') as out:
                self.proc = subprocess.Popen(
                    gunicorn_argv(self.venv, 'fd://%d' % sock.fileno()),
                    env=gunicorn_env(self.conf),
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(sock.fileno(),),
                    start_new_session=True,
                )
        finally:
            sock.close()
        # Kill the server at interpreter exit if stop() is never called.
        self._finalizer = weakref.finalize(
            self,
            _cleanup,
            self.proc,
            self.workdir if self._own_workdir else None,
        )
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise GlanceError(
                    'glance-api (gunicorn) exited with %s during start.\n'
                    '--- %s ---\n%s\n--- %s ---\n%s'
                    % (
                        self.proc.returncode,
                        self.gunicorn_log,
                        _tail_file(self.gunicorn_log),
                        self.log_file,
                        _tail_file(self.log_file),
                    )
                )
            try:
                with urllib.request.urlopen(
                    self.url + '/versions', timeout=5
                ) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError:
                return  # it answers; the status does not matter here
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise GlanceError(
                    'glance-api did not answer %s/versions within %d s.\n'
                    '--- %s ---\n%s\n--- %s ---\n%s'
                    % (
                        self.url,
                        self.start_timeout,
                        self.gunicorn_log,
                        _tail_file(self.gunicorn_log),
                        self.log_file,
                        _tail_file(self.log_file),
                    )
                )
            time.sleep(0.1)

    def stop(self):
        """Stop gunicorn and its worker; remove a temporary workdir."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self.proc is not None:
            _kill_group(self.proc)
            self.proc = None
            for path in (self.log_file, self.gunicorn_log, os.path.join(
                    self.workdir, 'glance-manage.log')):
                if os.path.exists(path):
                    with open(path, errors='replace') as f:
                        process_logs.finished(path, f.read())
        if self._own_workdir and os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- API helpers -------------------------------------------------------

    def client(self, **kwargs):
        """A python-glanceclient v2 Client (dummy token: no Keystone)."""
        from glanceclient import Client

        kwargs.setdefault('token', DUMMY_TOKEN)
        return Client('2', endpoint=self.url, **kwargs)

    def upload(
        self,
        data,
        name,
        disk_format='vmdk',
        container_format='bare',
        **properties,
    ):
        """Create an image and upload ``data`` (bytes or a file path).

        Returns the image as Glance reports it after the upload (a dict with
        id, size, checksum, os_hash_algo, os_hash_value, status, ...).
        """
        from glanceclient import exc as glance_exc

        # glance-api on sqlite answers 500 now and then when the machine
        # is loaded (its database locked): a fresh image, up to 3 times.
        for attempt in (1, 2, 3):
            try:
                return self._upload_once(data, name, disk_format,
                                         container_format, properties)
            except glance_exc.HTTPInternalServerError:
                if attempt == 3:
                    raise
                time.sleep(attempt)

    def _upload_once(self, data, name, disk_format, container_format,
                     properties):
        gc = self.client()
        image = gc.images.create(
            name=name,
            disk_format=disk_format,
            container_format=container_format,
            **properties,
        )
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                data = bytes(data)
                gc.images.upload(
                    image['id'], io.BytesIO(data), image_size=len(data)
                )
            else:
                with open(data, 'rb') as f:
                    gc.images.upload(
                        image['id'], f, image_size=os.fstat(f.fileno()).st_size
                    )
        except BaseException:
            with contextlib.suppress(Exception):
                gc.images.delete(image['id'])
            raise
        return dict(gc.images.get(image['id']))

    def image_path(self, image_id):
        """Path of the image's data in the file store."""
        return os.path.join(self.datadir, image_id)

    def move_to_location(self, image_id, url):
        """Make ``url`` the image's only location, as if Glance's VMware
        store held it (that store needs a real vCenter's WSDL to start):
        the row is rewritten in Glance's database, so Glance itself can
        no longer serve the bytes."""
        import sqlite3

        db = sqlite3.connect(os.path.join(self.workdir, 'glance.sqlite'))
        try:
            with db:
                changed = db.execute(
                    'UPDATE image_locations SET value = ? '
                    'WHERE image_id = ? AND deleted = 0', (url, image_id)
                ).rowcount
        finally:
            db.close()
        if changed != 1:
            raise GlanceError(
                'image %s has %d locations' % (image_id, changed))

    def corrupt(self, image_id, offset=None, length=16):
        """Flip ``length`` bytes of the stored image data in place.

        Size is unchanged, so downloads succeed but no longer match the
        image's checksum / os_hash_value.  Default offset: the middle.
        """
        path = self.image_path(image_id)
        size = os.path.getsize(path)
        if size == 0:
            raise GlanceError('image %s has no data to corrupt' % image_id)
        if offset is None:
            offset = size // 2
        offset = max(0, min(offset, size - 1))
        length = max(1, min(length, size - offset))
        with open(path, 'r+b') as f:
            f.seek(offset)
            chunk = f.read(length)
            f.seek(offset)
            f.write(bytes(b ^ 0xFF for b in chunk))
            f.flush()
            os.fsync(f.fileno())
        return path

    def delete_all(self):
        """Delete every image (any status, any visibility)."""
        gc = self.client()
        for image in list(gc.images.list()):
            with contextlib.suppress(Exception):
                gc.images.delete(image['id'])


def serve(workdir, port=None):
    """Run glance-api in the foreground (exec's gunicorn); never returns."""
    venv = ensure_glance_venv()
    conf = write_config(
        workdir,
        venv,
        os.environ.get('VCDRIVER_GLANCE_REQUIRE_FORMAT_MATCH', '')
        in ('1', 'true', 'yes'),
    )
    db_sync(venv, conf)
    port = int(port) if port else None
    if port is None:
        sock = _free_socket()
        port = sock.getsockname()[1]
        sock.close()
    argv = gunicorn_argv(
        venv, '127.0.0.1:%d' % port, extra=['--access-logfile', '-']
    )
    print(
        'glance: serving http://127.0.0.1:%d  (state %s, log %s)'
        % (
            port,
            os.path.abspath(workdir),
            os.path.join(os.path.abspath(workdir), 'glance-api.log'),
        ),
        file=sys.stderr,
        flush=True,
    )
    os.execve(argv[0], argv, gunicorn_env(conf))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = 'usage: glance.py install [--force] | serve DIR [PORT]'
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    cmd = argv.pop(0)
    if cmd == 'install' and argv in ([], ['--force']):
        print(ensure_glance_venv(force=bool(argv)))
        return 0
    if cmd == 'serve' and 1 <= len(argv) <= 2:
        serve(*argv)
    print(usage, file=sys.stderr)
    return 2


if __name__ == '__main__':
    try:
        sys.exit(main())
    except GlanceError as e:
        print('glance: %s' % e, file=sys.stderr)
        sys.exit(1)
