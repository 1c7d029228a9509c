"""A tiny HTTP proxy in front of one upstream (Glance's API) that can fail
image downloads on demand.

    with FaultyProxy(glance.url) as proxy:
        client = Client("2", endpoint=proxy.url, token=...)
        proxy.arm(cut_after_percent=50)     # the next download breaks
        proxy.arm(status=503, times=0)      # every download: 503
        proxy.clear()

Every request is passed through; faults only ever hit image data
downloads, ``GET /v2/images/<id>/file`` (of one image with ``image_id``).
An armed fault fires ``times`` times (0: until cleared), each either
answering ``status`` without asking the upstream, or passing the answer's
headers (its full Content-Length) and cutting the connection (RST) after
``cut_after_bytes`` bytes or ``cut_after_percent`` percent of the data.
Each connection serves one request (``Connection: close``).
"""

import http.client
import http.server
import json
import re
import socket
import struct
import threading
import urllib.parse

IMAGE_FILE_RE = re.compile(r'^/v2/images/([^/?]+)/file(\?.*)?$')
HOP_BY_HOP = {
    'connection',
    'keep-alive',
    'proxy-authenticate',
    'proxy-authorization',
    'te',
    'trailers',
    'transfer-encoding',
    'upgrade',
    'host',
}
CHUNK = 64 * 1024


class FaultyProxy(object):
    def __init__(self, upstream, host='127.0.0.1'):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != 'http':
            raise ValueError('only http upstreams: %s' % upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.host = host
        self.url = None
        self.hits = 0  # downloads a fault fired on
        self.downloads = 0  # image data downloads seen
        self._fault = None
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.url = 'http://%s:%d' % (self.host, self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- faults ------------------------------------------------------------

    def arm(
        self,
        status=None,
        cut_after_bytes=None,
        cut_after_percent=None,
        times=1,
        image_id=None,
    ):
        """Fail the next ``times`` image downloads (0: until ``clear``)."""
        given = [
            v
            for v in (status, cut_after_bytes, cut_after_percent)
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                'one of status, cut_after_bytes, cut_after_percent'
            )
        if cut_after_percent is not None and not 0 <= cut_after_percent < 100:
            raise ValueError('cut_after_percent is 0..99')
        with self._lock:
            self._fault = {
                'status': status,
                'cut_after_bytes': cut_after_bytes,
                'cut_after_percent': cut_after_percent,
                'times': times,
                'image_id': image_id,
                'hits': 0,
            }

    def clear(self):
        with self._lock:
            self._fault = None

    def _take(self, image_id):
        """The armed fault for a download of image_id, counted, or None."""
        with self._lock:
            self.downloads += 1
            f = self._fault
            if f is None or f['image_id'] not in (None, image_id):
                return None
            if f['times'] and f['hits'] >= f['times']:
                return None
            f['hits'] += 1
            self.hits += 1
            return dict(f)


class _Handler(http.server.BaseHTTPRequestHandler):
    owner = None  # the FaultyProxy
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):  # quiet
        pass

    def finish(self):
        try:
            super().finish()
        except OSError:  # a connection we cut
            pass

    def do_GET(self):
        self._proxy()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _proxy(self):
        self.close_connection = True
        fault = None
        m = IMAGE_FILE_RE.match(self.path)
        if self.command == 'GET' and m:
            fault = self.owner._take(m.group(1))
        if fault and fault['status'] is not None:
            self._drain()
            body = json.dumps(  # as OpenStack APIs answer errors
                {
                    'error': {
                        'code': fault['status'],
                        'message': 'injected fault (faulty proxy)',
                    }
                }
            ).encode()
            self.send_response(fault['status'])
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(body)
            return

        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=300)
        try:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP
            }
            conn.request(
                self.command,
                self.path,
                body=self._body(),
                headers=headers,
            )
            res = conn.getresponse()
            self._answer(res, fault)
        finally:
            conn.close()

    def _body(self):
        """The request body: bytes, a generator of chunks, or None."""
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            return self._chunks()
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else None

    def _chunks(self):
        while True:
            line = self.rfile.readline()
            size = int(line.split(b';', 1)[0].strip() or b'0', 16)
            if size == 0:
                while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline()  # CRLF

    def _drain(self):
        body = self._body()
        if body is not None and not isinstance(body, bytes):
            for _ in body:
                pass

    def _answer(self, res, fault):
        length = res.getheader('Content-Length')
        data = None
        if fault and length is None:
            data = res.read()  # the cut needs the size
            length = str(len(data))
        self.send_response(res.status, res.reason)
        for k, v in res.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != 'content-length':
                self.send_header(k, v)
        if length is not None:
            self.send_header('Content-Length', length)
        self.send_header('Connection', 'close')
        self.end_headers()
        if self.command == 'HEAD':
            return

        limit = None
        if fault:
            limit = fault['cut_after_bytes']
            if limit is None:
                limit = int(length) * fault['cut_after_percent'] // 100
        sent = 0
        while True:
            if data is not None:
                chunk, data = data, b''
            else:
                chunk = res.read(CHUNK)
            if not chunk:
                break
            if limit is not None and sent + len(chunk) >= limit:
                self.wfile.write(chunk[: limit - sent])
                self.wfile.flush()
                self._reset()
                return
            self.wfile.write(chunk)
            sent += len(chunk)

    def _reset(self):
        """Close the connection with RST (the client sees a reset, or
        fewer bytes than Content-Length)."""
        sock = self.connection
        try:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
            )
        except OSError:
            pass
        sock.close()
