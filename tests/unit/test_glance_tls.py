"""The thumbprint of Glance's certificate that pull mode hands to ESX:
verified here first, as the compute node trusts it."""

import ssl
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.harness import tls
from vcdriver.images import glance

# A process of its own: the unit tests may run under eventlet's monkey
# patching, where a server thread's blocking select would starve the
# test's green thread.
SERVER = """
import http.server, ssl, sys
server = http.server.HTTPServer(('127.0.0.1', 0),
                                http.server.BaseHTTPRequestHandler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def https_server(tmp_path):
    cert, key, _name = tls.self_signed(tmp_path)
    proc = subprocess.Popen([sys.executable, '-c', SERVER, cert, key],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield 'https://127.0.0.1:%d/v2/images/x/file' % port, cert
    finally:
        proc.kill()
        proc.wait()


def _sha1(cert_path):
    with open(cert_path, 'rb') as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return ':'.join('%02X' % b for b in cert.fingerprint(hashes.SHA1()))


def test_thumbprint_of_a_trusted_server(https_server):
    url, cert = https_server
    assert glance.tls_thumbprint(url, cafile=cert) == _sha1(cert)


def test_an_untrusted_server_is_refused_unless_insecure(https_server):
    url, cert = https_server
    with pytest.raises(ssl.SSLCertVerificationError):
        glance.tls_thumbprint(url)
    assert glance.tls_thumbprint(url, insecure=True) == _sha1(cert)


def test_plain_http_has_none():
    assert glance.tls_thumbprint('http://127.0.0.1:9/v2/images/x/file') is None
