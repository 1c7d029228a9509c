"""Datastore file transfers over vCenter's ``/folder`` HTTP endpoint.

Written on http.client rather than requests/urllib3: a streamed PUT of
unknown or known length with one send per chunk and nothing buffered, no
connection pool to hold a half-written upload, and no dependence on
urllib3 2.x behaviour (NFC transfers are reported to hang with it).
"""

import http.client
import urllib.parse

from oslo_log import log as logging

from vcdriver import exception

LOG = logging.getLogger(__name__)


def folder_url_path(datacenter, datastore, path):
    query = urllib.parse.urlencode({'dcPath': datacenter,
                                    'dsName': datastore})
    return '/folder/%s?%s' % (urllib.parse.quote(path), query)


class FileWriter:
    """A PUT of one datastore file, written chunk by chunk.

    With ``size`` the body has a Content-Length, otherwise it is chunked.
    ``close()`` reads the response and raises unless the upload was stored.
    """

    def __init__(self, session, datacenter, datastore, path, size=None,
                 timeout=300):
        self.path = '[%s] %s' % (datastore, path)
        self._url = folder_url_path(datacenter, datastore, path)
        self._chunked = size is None
        if session.protocol == 'https':
            self._conn = http.client.HTTPSConnection(
                session.host, session.port, timeout=timeout,
                context=session.ssl_context())
        else:
            self._conn = http.client.HTTPConnection(
                session.host, session.port, timeout=timeout)
        try:
            self._conn.putrequest('PUT', self._url, skip_accept_encoding=True)
            self._conn.putheader('Cookie', session.cookie)
            self._conn.putheader('Content-Type', 'application/octet-stream')
            if self._chunked:
                self._conn.putheader('Transfer-Encoding', 'chunked')
            else:
                self._conn.putheader('Content-Length', str(size))
            self._conn.endheaders()
        except OSError as e:
            self._conn.close()
            raise exception.DatastoreHTTPError(method='PUT', path=self.path,
                                               reason=e)

    def write(self, data):
        try:
            if self._chunked:
                self._conn.send(b'%x\r\n' % len(data))
                self._conn.send(data)
                self._conn.send(b'\r\n')
            else:
                self._conn.send(data)
        except OSError as e:
            self.abort()
            raise exception.DatastoreHTTPError(method='PUT', path=self.path,
                                               reason=e)

    def close(self):
        try:
            if self._chunked:
                self._conn.send(b'0\r\n\r\n')
            response = self._conn.getresponse()
            body = response.read(4096)
        except (OSError, http.client.HTTPException) as e:
            raise exception.DatastoreHTTPError(method='PUT', path=self.path,
                                               reason=e)
        finally:
            self._conn.close()
        if response.status not in (200, 201):
            raise exception.DatastoreHTTPError(
                method='PUT', path=self.path,
                reason='HTTP %s %s %s' % (response.status, response.reason,
                                          body[:200]))

    def abort(self):
        self._conn.close()
