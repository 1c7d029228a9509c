"""vcrpy set-up for recording and replaying pyVmomi's SOAP traffic.

Shared by ``tools/record_cassettes.py`` (record) and the cassette tests
(replay), so both sides patch and match identically.

Three things make pyVmomi's traffic need more than ``vcr.use_cassette``:

* pyVmomi binds ``HTTPConnection`` at import time (``from pyVmomi.five
  import HTTPConnection`` in ``pyVmomi.SoapAdapter`` and ``pyVim.connect``),
  so vcrpy's patch of ``http.client.HTTPConnection`` never reaches it: the
  requests would go to the network, unrecorded. :func:`custom_patches`
  patches those module globals too.
* Every SOAP call is ``POST /sdk``; only the body says which call it is, so
  the body must be matched.
* The body is not byte-stable across processes: the driver collects morefs
  in sets (``cluster.read_state`` batches hosts, datastores and VMs), and a
  ManagedObject hashes by its string, which Python salts per process
  (PYTHONHASHSEED). The same read lists the same objects in another order.
  :func:`soap_body` compares the SOAP envelopes as XML trees with sibling
  order ignored.

Host and port are not matched (the simulator picks a free port per run);
session cookies, dates and user agents are left out of the cassettes.
"""

import json
import os
import xml.etree.ElementTree as ET

import vcr
from pyVim import connect as pyvim_connect
from pyVmomi import SoapAdapter
from vcr.stubs import VCRHTTPConnection
from vcr.stubs import VCRHTTPSConnection
from vcr.util import read_body

CASSETTE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'cassettes')
META_FILE = os.path.join(CASSETTE_DIR, 'vcsim.json')

# The simulator the cassettes were recorded against; fixed values so a
# re-recording differs only in the uuid, ports and session keys.
SIM_OPTIONS = {
    'clusters': 2,
    'hosts_per_cluster': 3,
    'nfs': 1,
    'vms': 2,
    'host_cpu_cores': 8,
    'host_memory_mb': 16384,
    'datastore_capacity_gb': 2048,
    'username': 'vcdriver',
    'password': 'vcsim-secret',
}
CLUSTERS = ['DC0_C0', 'DC0_C1']
UNKNOWN_CLUSTER = 'DC0_NoSuchCluster'

# Headers of no use on replay; cookies are credentials.
_DROPPED_REQUEST_HEADERS = ('cookie', 'user-agent')
_DROPPED_RESPONSE_HEADERS = ('set-cookie', 'date', 'transfer-encoding')


def custom_patches():
    """The HTTPConnection names pyVmomi bound before vcrpy could patch."""
    return (
        (pyvim_connect, 'HTTPConnection', VCRHTTPConnection),
        (pyvim_connect, 'HTTPSConnection', VCRHTTPSConnection),
        (SoapAdapter, 'HTTPConnection', VCRHTTPConnection),
        (SoapAdapter, 'HTTPSConnection', VCRHTTPSConnection),
    )


def _canonical(element):
    """An element as a hashable tree, children sorted: order-insensitive."""
    children = tuple(sorted((_canonical(c) for c in element), key=repr))
    return (element.tag, tuple(sorted(element.attrib.items())),
            (element.text or '').strip(), children)


def canonical_body(body):
    """A body's canonical form: an XML tree if it parses, else its bytes."""
    if body is None:
        body = b''
    if isinstance(body, str):
        body = body.encode('utf-8')
    if not body.strip():
        return None
    try:
        return _canonical(ET.fromstring(body))
    except ET.ParseError:
        return body


def soap_body(r1, r2):
    """vcrpy matcher: same SOAP call, same arguments, in any order."""
    b1, b2 = read_body(r1), read_body(r2)
    if canonical_body(b1) != canonical_body(b2):
        raise AssertionError('SOAP bodies differ:\n%s\n---\n%s'
                             % (_preview(b1), _preview(b2)))


def _preview(body, limit=600):
    text = (body or b'').decode('utf-8', 'replace')
    return text if len(text) <= limit else text[:limit] + '...'


def _before_record_request(request):
    for name in list(request.headers):
        if name.lower() in _DROPPED_REQUEST_HEADERS:
            del request.headers[name]
    return request


def _before_record_response(response):
    headers = response['headers']
    for name in list(headers):
        if name.lower() in _DROPPED_RESPONSE_HEADERS:
            del headers[name]
    return response


def make_vcr(record_mode):
    """A VCR for ``tests/unit/cassettes`` in ``record_mode``."""
    v = vcr.VCR(
        cassette_library_dir=CASSETTE_DIR,
        record_mode=record_mode,
        match_on=('method', 'path', 'soap_body'),
        before_record_request=_before_record_request,
        before_record_response=_before_record_response,
        custom_patches=custom_patches(),
        decode_compressed_response=True,
    )
    v.register_matcher('soap_body', soap_body)
    return v


def load_meta():
    """What the recorder wrote about the simulator it recorded."""
    with open(META_FILE) as f:
        return json.load(f)


def write_meta(meta):
    os.makedirs(CASSETTE_DIR, exist_ok=True)
    with open(META_FILE, 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write('\n')
