"""The real-Glance harness works: upload, download, hashes, import, stop."""

import hashlib
import io
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.harness import glance as glance_mod
from tests.harness import venvs
from tests.harness.glance import Glance
from tests.harness.glance import GlanceError

MiB = 1024 * 1024


@pytest.fixture(scope='module')
def glance():
    with Glance() as g:
        yield g


def _download(g, image_id, **kwargs):
    return b''.join(g.client().images.data(image_id, **kwargs))


def _alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_http(url, timeout=120, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError('server exited with %s' % proc.returncode)
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            time.sleep(0.1)
    raise AssertionError('%s did not answer' % url)


def test_venv_ready_is_instant():
    venv = glance_mod.ensure_glance_venv()
    start = time.monotonic()
    assert glance_mod.ensure_glance_venv() == venv
    assert time.monotonic() - start < 0.5
    with open(os.path.join(venv, venvs.MARKER_NAME)) as f:
        assert f.read().split() == list(glance_mod.REQUIREMENTS)


def test_upload_and_download_5mib(glance):
    assert glance.url.startswith('http://127.0.0.1:')
    data = os.urandom(5 * MiB)
    image = glance.upload(data, 'random-5mib', vmware_disktype='sparse')
    try:
        assert image['status'] == 'active'
        assert image['size'] == len(data)
        assert image['disk_format'] == 'vmdk'
        assert image['container_format'] == 'bare'
        assert image['vmware_disktype'] == 'sparse'
        assert image['os_hash_algo'] == 'sha512'
        assert image['os_hash_value'] == hashlib.sha512(data).hexdigest()
        assert image['checksum'] == hashlib.md5(data).hexdigest()
        assert os.path.getsize(glance.image_path(image['id'])) == len(data)

        body = _download(glance, image['id'])
        assert body == data
        assert hashlib.sha512(body).hexdigest() == image['os_hash_value']
        ids = [i['id'] for i in glance.client().images.list()]
        assert image['id'] in ids
    finally:
        glance.client().images.delete(image['id'])
    assert not os.path.exists(glance.image_path(image['id']))


def test_upload_from_path(glance, tmp_path):
    data = os.urandom(MiB + 123)
    path = tmp_path / 'disk.bin'
    path.write_bytes(data)
    image = glance.upload(str(path), 'from-path', disk_format='raw')
    assert image['size'] == len(data)
    assert image['os_hash_value'] == hashlib.sha512(data).hexdigest()
    assert _download(glance, image['id']) == data
    glance.client().images.delete(image['id'])


def test_corrupt_breaks_hashes(glance):
    data = os.urandom(5 * MiB)
    image = glance.upload(data, 'to-corrupt')
    glance.corrupt(image['id'])

    # Glance still serves it (same size), but the bytes no longer match.
    body = _download(glance, image['id'], do_checksum=False)
    assert len(body) == len(data)
    assert body != data
    assert hashlib.sha512(body).hexdigest() != image['os_hash_value']
    assert hashlib.md5(body).hexdigest() != image['checksum']
    # ... and glanceclient's own verification notices.
    with pytest.raises(IOError, match='Corrupt image download'):
        _download(glance, image['id'])
    # Glance's metadata is unchanged.
    again = glance.client().images.get(image['id'])
    assert again['os_hash_value'] == image['os_hash_value']
    glance.client().images.delete(image['id'])


def test_image_import_glance_direct(glance):
    gc = glance.client()
    data = os.urandom(2 * MiB)
    image = gc.images.create(
        name='imported', disk_format='raw', container_format='bare'
    )
    gc.images.stage(image['id'], io.BytesIO(data), image_size=len(data))
    assert gc.images.get(image['id'])['status'] == 'uploading'
    gc.images.image_import(image['id'], method='glance-direct')
    deadline = time.monotonic() + 60
    while True:
        image = gc.images.get(image['id'])
        if image['status'] not in ('uploading', 'importing'):
            break
        assert time.monotonic() < deadline, image
        time.sleep(0.1)
    assert image['status'] == 'active', image
    assert image['os_hash_value'] == hashlib.sha512(data).hexdigest()
    assert _download(glance, image['id']) == data
    gc.images.delete(image['id'])


def test_delete_all(glance):
    gc = glance.client()
    for n in range(3):
        glance.upload(b'x' * (n + 1), 'del-%d' % n)
    gc.images.create(
        name='queued-only', disk_format='raw', container_format='bare'
    )
    assert len(list(gc.images.list())) >= 4
    glance.delete_all()
    assert list(gc.images.list()) == []
    assert os.listdir(glance.datadir) == []


def test_stop_leaves_no_process():
    g = Glance()
    g.start()
    pgid = g.proc.pid
    workdir, url = g.workdir, g.url
    assert _alive(pgid)
    assert g.running
    g.stop()
    assert not g.running
    assert g.proc is None
    assert not _alive(pgid)
    with pytest.raises(OSError):
        urllib.request.urlopen(url + '/versions', timeout=5)
    assert not os.path.exists(workdir)  # temporary workdir removed
    g.stop()  # idempotent


def test_given_workdir_is_kept_and_reused(tmp_path):
    data = os.urandom(4096)
    with Glance(workdir=str(tmp_path)) as g:
        image_id = g.upload(data, 'persistent', disk_format='raw')['id']
    assert os.path.exists(tmp_path / 'glance.sqlite')
    with Glance(workdir=str(tmp_path)) as g:
        assert _download(g, image_id) == data


def test_start_failure_reports_log_tail(monkeypatch):
    real_argv = glance_mod.gunicorn_argv

    def broken_argv(venv, bind, extra=()):
        argv = real_argv(venv, bind, extra)
        argv[-1] = 'glance.wsgi.no_such_module:application'
        return argv

    monkeypatch.setattr(glance_mod, 'gunicorn_argv', broken_argv)
    g = Glance()
    with pytest.raises(GlanceError) as err:
        g.start()
    assert 'exited' in str(err.value)
    assert 'no_such_module' in str(err.value)  # the log tail is included
    assert g.proc is None
    assert not os.path.exists(g.workdir)


def test_require_image_format_match_option():
    with Glance(require_image_format_match=True) as g:
        with pytest.raises(Exception, match='does not match'):
            g.upload(os.urandom(65536), 'not-a-vmdk', disk_format='vmdk')


def test_glance_sh_serve(tmp_path):
    port = _free_port()
    script = os.path.join(glance_mod.TOOLS_DIR, 'glance.sh')
    env = dict(os.environ)
    env.setdefault('VCDRIVER_GLANCE_VENV', glance_mod.default_venv_path())
    with open(tmp_path / 'serve.log', 'wb') as log:
        proc = subprocess.Popen(
            [script, 'serve', str(tmp_path / 'state'), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        status, body = _wait_http(
            'http://127.0.0.1:%d/versions' % port, proc=proc
        )
        assert status in (200, 300)
        assert b'v2' in body
        status, body = _wait_http('http://127.0.0.1:%d/v2/images' % port)
        assert status == 200, body
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (tmp_path / 'state' / 'glance.sqlite').exists()
    assert not _alive(proc.pid)
