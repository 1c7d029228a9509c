"""The faulty proxy (tests/harness/faulty_proxy.py): passes requests
through, and breaks image downloads when armed; against a local
http.server, then in front of the real Glance."""

import http.client
import http.server
import io
import os
import threading
import urllib.error
import urllib.request

import pytest

from tests.harness.faulty_proxy import FaultyProxy

DATA = os.urandom(10000)


class _Upstream(http.server.BaseHTTPRequestHandler):
    """/v2/images/<id>/file answers DATA; PUT echoes the body's length."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if self.path.endswith('/file'):
            body = DATA
        else:
            body = b'{"path": "%s"}' % self.path.encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.headers.get('Transfer-Encoding') == 'chunked':
            body = b''
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if not size:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers['Content-Length']))
        out = str(len(body)).encode()
        self.send_response(201)
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def proxy():
    upstream = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    with FaultyProxy('http://127.0.0.1:%d' % upstream.server_port) as p:
        yield p
    upstream.shutdown()
    upstream.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def partial(url):
    """The bytes a cut download got before the connection went."""
    host, port = url.split('//', 1)[1].split('/', 1)[0].split(':')
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request('GET', '/' + url.split('//', 1)[1].split('/', 1)[1])
    res = conn.getresponse()
    assert res.status == 200
    assert res.getheader('Content-Length') == str(len(DATA))
    with pytest.raises((http.client.IncompleteRead, ConnectionError)) as e:
        res.read()
    conn.close()
    return getattr(e.value, 'partial', None)


def test_passes_through(proxy):
    assert get(proxy.url + '/v2/images/a/file') == DATA
    assert get(proxy.url + '/v2/images/a') == b'{"path": "/v2/images/a"}'
    req = urllib.request.Request(
        proxy.url + '/v2/images/a/file', data=b'x' * 1000, method='PUT'
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert (r.status, r.read()) == (201, b'1000')
    # Chunked uploads, as glanceclient sends them.
    req = urllib.request.Request(
        proxy.url + '/v2/images/a/file',
        data=iter([b'a' * 300, b'b' * 700]),
        method='PUT',
        headers={'Transfer-Encoding': 'chunked'},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == b'1000'
    assert (proxy.downloads, proxy.hits) == (1, 0)


def test_status_fires_times_then_passes(proxy):
    proxy.arm(status=503, times=2)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(proxy.url + '/v2/images/a/file')
        assert e.value.code == 503
    assert get(proxy.url + '/v2/images/a/file') == DATA
    # Other requests never fail.
    proxy.arm(status=500, times=0)
    assert get(proxy.url + '/v2/images/a')
    assert proxy.hits == 2


def test_cut_after_bytes_and_percent(proxy):
    proxy.arm(cut_after_bytes=100)
    got = partial(proxy.url + '/v2/images/a/file')
    assert got is None or got == DATA[:100]
    proxy.arm(cut_after_percent=50)
    got = partial(proxy.url + '/v2/images/a/file')
    assert got is None or got == DATA[:5000]
    assert get(proxy.url + '/v2/images/a/file') == DATA
    assert proxy.hits == 2


def test_one_image_and_clear(proxy):
    proxy.arm(status=500, times=0, image_id='b')
    assert get(proxy.url + '/v2/images/a/file') == DATA
    with pytest.raises(urllib.error.HTTPError):
        get(proxy.url + '/v2/images/b/file')
    proxy.clear()
    assert get(proxy.url + '/v2/images/b/file') == DATA
    with pytest.raises(ValueError):
        proxy.arm(status=500, cut_after_bytes=1)


def test_in_front_of_glance(glance):
    from glanceclient import Client
    from glanceclient import exc

    from tests.harness.glance import DUMMY_TOKEN

    data = os.urandom(300000)
    image = glance.upload(data, 'faulty-proxy')
    with FaultyProxy(glance.url) as proxy:
        client = Client('2', endpoint=proxy.url, token=DUMMY_TOKEN)

        def download():
            return b''.join(client.images.data(image['id']))

        assert download() == data
        proxy.arm(status=500)
        with pytest.raises(exc.HTTPInternalServerError):
            download()
        proxy.arm(cut_after_percent=40)
        with pytest.raises(Exception) as e:
            download()
        assert not isinstance(e.value, exc.HTTPException), e.value
        # Uploads (chunked) pass through.
        image2 = client.images.create(
            name='via-proxy', disk_format='raw', container_format='bare'
        )
        client.images.upload(image2['id'], io.BytesIO(data))
        assert glance.client().images.get(image2['id'])['size'] == len(data)
        assert download() == data
        assert (proxy.downloads, proxy.hits) == (4, 2)
    glance.client().images.delete(image['id'])
    glance.client().images.delete(image2['id'])
