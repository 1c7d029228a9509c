"""Datastore file transfers over vCenter's ``/folder`` HTTP endpoint.

Written on http.client rather than requests/urllib3: a streamed PUT of
unknown or known length with one send per chunk and nothing buffered, no
connection pool to hold a half-written upload, and no dependence on
urllib3 2.x behaviour (NFC transfers are reported to hang with it).
"""

import http.client
import socket
import urllib.parse

from oslo_log import log as logging

from vcdriver import exception

LOG = logging.getLogger(__name__)

# How long an aborted upload waits for the server to let go of it, and a
# failed one for the server's answer.
ABORT_WAIT_SECONDS = 10.0
EARLY_ANSWER_SECONDS = 5.0


def folder_url_path(datacenter, datastore, path):
    query = urllib.parse.urlencode({'dcPath': datacenter,
                                    'dsName': datastore})
    return '/folder/%s?%s' % (urllib.parse.quote(path), query)


class Upload:
    """A streamed upload of one body, written chunk by chunk over its own
    connection.

    With ``size`` the body has a Content-Length, otherwise it is chunked.
    ``close()`` reads the response and raises unless the upload was stored.
    Errors name ``label`` and are ``error`` (a VCenterError taking
    ``method``, ``path`` and ``reason``); a 507 is DatastoreFull.
    """

    error = exception.DatastoreHTTPError

    def __init__(self, conn, method, url, label, headers, size=None):
        self.path = label
        self._method = method
        self._chunked = size is None
        self._conn = conn
        try:
            self._conn.putrequest(method, url, skip_accept_encoding=True)
            for name, value in headers.items():
                self._conn.putheader(name, value)
            if self._chunked:
                self._conn.putheader('Transfer-Encoding', 'chunked')
            else:
                self._conn.putheader('Content-Length', str(size))
            self._conn.endheaders()
        except OSError as e:
            self._conn.close()
            raise self.error(method=method, path=self.path, reason=e)

    def write(self, data):
        if not data:
            return  # an empty chunk would end a chunked body
        try:
            if self._chunked:
                self._conn.send(b'%x\r\n' % len(data))
                self._conn.send(data)
                self._conn.send(b'\r\n')
            else:
                self._conn.send(data)
        except OSError as e:
            # A server that gives up on an upload (a datastore full, 507)
            # answers, then closes: its answer says more than EPIPE.
            try:
                self._conn.sock.settimeout(EARLY_ANSWER_SECONDS)
                response = self._conn.getresponse()
                body = response.read(4096)
            except (OSError, AttributeError, http.client.HTTPException):
                response = None
            self._conn.close()
            if response is not None:
                self._raise_for(response, body)
            raise self.error(method=self._method, path=self.path, reason=e)

    def close(self):
        try:
            if self._chunked:
                self._conn.send(b'0\r\n\r\n')
            response = self._conn.getresponse()
            body = response.read(4096)
        except (OSError, http.client.HTTPException) as e:
            raise self.error(method=self._method, path=self.path, reason=e)
        finally:
            self._conn.close()
        if response.status not in (200, 201):
            self._raise_for(response, body)

    def _raise_for(self, response, body):
        reason = 'HTTP %s %s %s' % (response.status, response.reason,
                                    body[:200])
        if response.status == 507:
            raise exception.DatastoreFull(path=self.path, reason=reason)
        raise self.error(method=self._method, path=self.path, reason=reason)

    def abort(self):
        """Break the upload off and wait until the server is done with
        it (it answers or closes once it sees the body end early), so a
        cleanup after this is final: nothing the server still writes can
        recreate a removed file or folder."""
        sock = self._conn.sock
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(ABORT_WAIT_SECONDS)
                while sock.recv(65536):
                    pass
        except OSError:
            pass  # reset or gone: the server is done with it too
        finally:
            self._conn.close()


class FileWriter(Upload):
    """A PUT of one datastore file through vCenter's ``/folder``."""

    def __init__(self, session, datacenter, datastore, path, size=None,
                 timeout=300):
        super().__init__(
            _connection(session, timeout), 'PUT',
            folder_url_path(datacenter, datastore, path),
            '[%s] %s' % (datastore, path),
            {'Cookie': session.cookie,
             'Content-Type': 'application/octet-stream'}, size)


def _connection(session, timeout):
    if session.protocol == 'https':
        return http.client.HTTPSConnection(session.host, session.port,
                                           timeout=timeout,
                                           context=session.ssl_context())
    return http.client.HTTPConnection(session.host, session.port,
                                      timeout=timeout)


def _request(session, method, datacenter, datastore, path, body=None,
             timeout=60, with_headers=False):
    """One small request; returns (status, body bytes[, headers])."""
    conn = _connection(session, timeout)
    try:
        conn.request(method, folder_url_path(datacenter, datastore, path),
                     body=body, headers={'Cookie': session.cookie})
        response = conn.getresponse()
        result = response.status, response.read()
        return result + (response.headers,) if with_headers else result
    except (OSError, http.client.HTTPException) as e:
        raise exception.DatastoreHTTPError(
            method=method, path='[%s] %s' % (datastore, path), reason=e)
    finally:
        conn.close()


def exists(session, datacenter, datastore, path):
    """Whether a datastore file exists (HEAD)."""
    status, _ = _request(session, 'HEAD', datacenter, datastore, path)
    if status in (200, 204):
        return True
    if status == 404:
        return False
    raise exception.DatastoreHTTPError(method='HEAD',
                                       path='[%s] %s' % (datastore, path),
                                       reason='HTTP %s' % status)


def size(session, datacenter, datastore, path):
    """A datastore file's size in bytes, or None if there is none."""
    status, _, headers = _request(session, 'HEAD', datacenter, datastore,
                                  path, with_headers=True)
    if status == 404:
        return None
    length = headers.get('Content-Length')
    if status not in (200, 204) or length is None:
        raise exception.DatastoreHTTPError(
            method='HEAD', path='[%s] %s' % (datastore, path),
            reason='HTTP %s, Content-Length %s' % (status, length))
    return int(length)


def read_small(session, datacenter, datastore, path, limit=65536):
    """The content of a small datastore file, or None if there is none."""
    status, body = _request(session, 'GET', datacenter, datastore, path)
    if status == 404:
        return None
    if status != 200:
        raise exception.DatastoreHTTPError(method='GET',
                                           path='[%s] %s' % (datastore, path),
                                           reason='HTTP %s' % status)
    return body[:limit]


def write_small(session, datacenter, datastore, path, data):
    """Create or replace a small datastore file."""
    status, body = _request(session, 'PUT', datacenter, datastore, path,
                            body=data)
    if status not in (200, 201):
        raise exception.DatastoreHTTPError(
            method='PUT', path='[%s] %s' % (datastore, path),
            reason='HTTP %s %s' % (status, body[:200]))
