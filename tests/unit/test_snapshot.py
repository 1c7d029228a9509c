"""Instance snapshots: vCenter's side replayed from cassettes, Nova's faked.

The cassettes (tests/unit/cassettes/snapshot*.yaml) hold the driver's real
traffic with the vcsim launcher: SOAP (CreateSnapshot_Task, ExportSnapshot,
the lease wait, HttpNfcLeaseProgress/Complete/Abort, RemoveSnapshot_Task)
and the NFC GET of the disk, served as streamOptimized by tools/vcsim.
Glance is a fake standing in for vcdriver.images.glance.upload. Record
them again (needs Go; after changing the SOAP calls of vcdriver/snapshot.py
or vcdriver/vsphere/nfc.py, or the launcher) with::

    /tmp/nv/bin/python -m tests.unit.test_snapshot --record
"""

import contextlib
import hashlib
import json
import os
import queue
import re
import socket
import sys
import threading
import time
import types
from unittest import mock

import pytest
from nova import exception as nova_exception
from pyVmomi import vim

from tests.unit import soap_cassettes
from vcdriver import snapshot
from vcdriver import vm
from vcdriver.images import formats
from vcdriver.images import glance
from vcdriver.images import transfer
from vcdriver.vsphere import nfc
from vcdriver.vsphere import session as session_mod

MiB = 1024 * 1024
META_FILE = os.path.join(soap_cassettes.CASSETTE_DIR, 'snapshot.json')
IMAGE_ID = '5ad0c0de-0000-4000-8000-00000000cafe'
SIM_OPTIONS = {'clusters': 1, 'hosts_per_cluster': 1, 'nfs': 1, 'vms': 1,
               'username': 'vcdriver', 'password': 'vcsim-secret'}
VM_PATH = 'DC0/vm/DC0_C0_RP0_VM0'
# The recorder writes this into the VM's 1 GiB disk, then zeros.
DISK_DATA = (b'vcdriver snapshot cassette\n' * 12000)[:300000]
CAPACITY = 1024 * MiB
CASSETTES = ('snapshot', 'snapshot_lease_error', 'snapshot_upload_refused')


# --- replay -----------------------------------------------------------------

@pytest.fixture
def meta():
    with open(META_FILE) as f:
        return json.load(f)


@pytest.fixture
def no_network(monkeypatch):
    """Replays must never reach a socket."""
    def refuse(sock, address):
        raise AssertionError('unit test tried to connect to %r' % (address,))
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket.socket, 'connect_ex', refuse)


@contextlib.contextmanager
def _replay(name):
    with soap_cassettes.make_vcr('none').use_cassette(
            name + '.yaml') as cassette:
        yield cassette
        assert cassette.all_played, (
            '%s.yaml: %d of %d recorded requests were not made'
            % (name, len(cassette) - cassette.play_count, len(cassette)))


def _calls(cassette):
    """The calls made, in order: SOAP method names, or 'GET /nfc/'."""
    names = []
    for request in cassette.requests:
        if request.method == 'GET':
            names.append('GET ' + request.path.split('/', 2)[1])
            continue
        body = request.body or b''
        body = body.decode() if isinstance(body, bytes) else body
        names.append(body.split('<soapenv:Body><', 1)[1].split(
            ' ', 1)[0].split('>', 1)[0])
    return names


class FakeGlance:
    """vcdriver.images.glance.upload, Nova's side: keeps what it got."""

    def __init__(self, fail=None):
        self.fail = fail
        self.metadata = None
        self.data = b''

    def upload(self, context, image_id, metadata, chunks):
        self.metadata = metadata
        self.data = b''.join(chunks)
        if self.fail:
            raise self.fail
        return {'id': image_id, 'status': 'active', 'size': len(self.data),
                'os_hash_algo': 'sha512',
                'os_hash_value': hashlib.sha512(self.data).hexdigest()}


def _instance(meta):
    return types.SimpleNamespace(uuid=meta['instance_uuid'],
                                 project_id='project-1')


def _session(meta):
    return session_mod.Session(meta['host'], meta['port'], meta['username'],
                               meta['password'], protocol=meta['protocol'],
                               retry_count=0)


def _snapshot(meta, fake_glance, task_states=None):
    """What driver.snapshot does, with the keep-alive out of the way (a
    timer would make the traffic differ between runs)."""
    session = _session(meta)
    session.connect()
    instance = _instance(meta)
    vm_ref = vm.find(session, instance.uuid)
    states = task_states if task_states is not None else []
    with mock.patch.object(glance, 'upload', fake_glance.upload):
        snapshot.snapshot(session, None, instance, vm_ref, IMAGE_ID,
                          lambda **kw: states.append(kw),
                          keepalive_interval=3600)


def _flat(data):
    flat = formats.open_flat(iter([data]), 'vmdk',
                             vmware_disktype='streamOptimized',
                             source_size=len(data))
    return flat.virtual_size, b''.join(flat)


def test_snapshot_uploads_the_disk_as_stream_optimized(meta, no_network):
    fake = FakeGlance()
    states = []
    with _replay('snapshot') as cassette:
        _snapshot(meta, fake, states)

    assert states == [
        {'task_state': 'image_pending_upload'},
        {'task_state': 'image_uploading',
         'expected_state': 'image_pending_upload'}]
    calls = _calls(cassette)
    order = [c for c in calls if c in (
        'CreateSnapshot_Task', 'ExportSnapshot', 'GET nfc',
        'HttpNfcLeaseProgress', 'HttpNfcLeaseComplete', 'HttpNfcLeaseAbort',
        'RemoveSnapshot_Task')]
    assert order == ['CreateSnapshot_Task', 'ExportSnapshot', 'GET nfc',
                     'HttpNfcLeaseProgress', 'HttpNfcLeaseComplete',
                     'RemoveSnapshot_Task']
    def args(call):
        body = cassette.requests[calls.index(call)].body
        body = body.decode() if isinstance(body, bytes) else body
        return dict(re.findall(r'<(\w+)(?: [^>]*)?>([^<]*)</\1>', body))
    assert args('CreateSnapshot_Task') == {
        'name': 'vcdriver-snapshot-%s' % IMAGE_ID,
        'description': 'Taken by Nova for image %s of instance %s; removed '
                       'when the upload ends' % (IMAGE_ID,
                                                 meta['instance_uuid']),
        'memory': 'false',
        'quiesce': 'false',     # no VMware Tools running
        '_this': meta['vm']}
    remove = args('RemoveSnapshot_Task')
    assert (remove['removeChildren'], remove['consolidate']) == (
        'false', 'true')

    assert fake.metadata == {
        'disk_format': 'vmdk', 'container_format': 'bare',
        'properties': {'vmware_disktype': 'streamOptimized',
                       'vmware_image_version': '1',
                       'owner_id': 'project-1',
                       'vmware_adaptertype': 'paraVirtual',
                       'vmware_ostype': 'otherGuest'}}
    assert fake.data[:4] == b'KDMV'
    assert len(fake.data) < 1 * MiB     # zeros are left out
    size, disk = _flat(fake.data)
    assert size == CAPACITY
    assert disk[:len(DISK_DATA)] == DISK_DATA
    assert disk.count(0, len(DISK_DATA)) == CAPACITY - len(DISK_DATA)


def test_lease_error_aborts_and_removes_the_snapshot(meta, no_network):
    fake = FakeGlance()
    with _replay('snapshot_lease_error') as cassette:
        with pytest.raises(snapshot.SnapshotFailed) as err:
            _snapshot(meta, fake)
    message = str(err.value)
    assert message.startswith('Snapshot to image %s failed: Export lease'
                              % IMAGE_ID)
    assert 'FileNotFound' in message and 'disk1.vmdk was not found' in message
    calls = _calls(cassette)
    assert 'GET nfc' not in calls
    assert calls.index('HttpNfcLeaseAbort') < calls.index(
        'RemoveSnapshot_Task')
    assert 'HttpNfcLeaseComplete' not in calls
    assert fake.metadata is None


def test_refused_upload_aborts_and_removes_the_snapshot(meta, no_network):
    fake = FakeGlance(fail=nova_exception.ImageBadRequest(
        image_id=IMAGE_ID, response='413 image too large'))
    with _replay('snapshot_upload_refused') as cassette:
        with pytest.raises(snapshot.SnapshotFailed) as err:
            _snapshot(meta, fake)
    assert 'uploading to Glance failed' in str(err.value)
    assert '413 image too large' in str(err.value)
    calls = _calls(cassette)
    assert calls.index('HttpNfcLeaseAbort') < calls.index(
        'RemoveSnapshot_Task')
    assert 'HttpNfcLeaseComplete' not in calls


def test_image_deleted_meanwhile_is_nova_s_to_handle(meta, no_network):
    """ImageNotFound passes unwrapped: the compute manager expects it."""
    fake = FakeGlance(fail=nova_exception.ImageNotFound(image_id=IMAGE_ID))
    with _replay('snapshot_upload_refused'):
        with pytest.raises(nova_exception.ImageNotFound):
            _snapshot(meta, fake)


# --- pure parts -------------------------------------------------------------

def _disk(key, controller_key, file_name, capacity=CAPACITY):
    return vim.vm.device.VirtualDisk(
        key=key, controllerKey=controller_key, capacityInBytes=capacity,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=file_name))


def test_root_disk_is_the_one_named_after_the_instance():
    instance = types.SimpleNamespace(uuid='u-1')
    devices = [
        vim.vm.device.VirtualLsiLogicSASController(key=1000),
        vim.vm.device.VirtualIDEController(key=200),
        _disk(2000, 200, '[ds] u-1/ephemeral_0.vmdk'),
        _disk(2001, 1000, '[ds] u-1/u-1.vmdk', 2 * CAPACITY),
    ]
    root = snapshot._root_disk(instance, devices, IMAGE_ID)
    assert (root.index, root.adapter, root.capacity) == (
        1, 'lsiLogicsas', 2 * CAPACITY)
    devices[3].backing.fileName = '[ds] u-1/other.vmdk'
    root = snapshot._root_disk(instance, devices, IMAGE_ID)
    assert (root.index, root.adapter) == (1, 'lsiLogicsas')
    # The ephemeral disk is first on the boot controller (IDE), but it is
    # never the root: with a root disk of another name, that one is.
    devices[2].backing.fileName = '[ds] u-1/first.vmdk'
    root = snapshot._root_disk(instance, devices, IMAGE_ID)
    assert (root.index, root.adapter) == (0, 'ide')
    with pytest.raises(snapshot.SnapshotFailed, match='has no disk'):
        snapshot._root_disk(instance, devices[:2], IMAGE_ID)


def _lease(*device_urls):
    lease = nfc.Lease(None, vim.HttpNfcLease('lease-1', None),
                      vim.HttpNfcLease.Info(deviceUrl=list(device_urls)))
    return lease


def _device_url(url, disk=True, target=None):
    return vim.HttpNfcLease.DeviceUrl(url=url, disk=disk, targetId=target,
                                      key='k', importKey='i',
                                      sslThumbprint='')


def test_disk_url_by_name_else_by_position():
    root = types.SimpleNamespace(file='[ds] u/u.vmdk', index=1)
    nvram = _device_url('https://*/nfc/l/nvram', disk=False)
    first = _device_url('https://*/nfc/l/disk-0.vmdk')
    second = _device_url('https://*/nfc/l/disk-1.vmdk')
    assert snapshot._disk_url(_lease(nvram, first, second),
                              root) == second.url
    named = _device_url('https://*/nfc/l/u.vmdk', target='u.vmdk')
    assert snapshot._disk_url(_lease(named, second), root) == named.url
    with pytest.raises(nfc.LeaseFailed, match='offers no disk'):
        snapshot._disk_url(_lease(nvram), root)


@pytest.mark.parametrize('image, reason', [
    ({'status': 'queued', 'size': 3}, 'left the image queued'),
    ({'status': 'active', 'size': 2}, 'stored 2 bytes of the 3 sent'),
    ({'status': 'active', 'size': 3, 'os_hash_algo': 'sha512',
      'os_hash_value': 'f00'}, 'differs from the bytes sent'),
])
def test_upload_is_checked_against_what_was_sent(image, reason):
    result = transfer.Result(3, hashlib.sha512(b'abc').hexdigest(), 1)
    with pytest.raises(snapshot.SnapshotFailed, match=reason):
        snapshot._check_upload(IMAGE_ID, result, image)
    image = dict(image, status='active', size=3, os_hash_value=result.digest)
    snapshot._check_upload(IMAGE_ID, result, image)


def test_pipe_hands_chunks_over_in_order():
    pipe = snapshot._Pipe()
    got = []
    reader = threading.Thread(target=lambda: got.extend(pipe))
    reader.start()
    for i in range(50):
        pipe.write(b'%d' % i)
    pipe.close()
    reader.join(5)
    assert got == [b'%d' % i for i in range(50)]


def test_pipe_writer_blocked_on_a_reader_that_stops_is_released():
    pipe = snapshot._Pipe(depth=2)
    chunks = iter(pipe)
    stopped = threading.Event()

    def writer():
        try:
            while True:
                pipe.write(b'x')
        except snapshot._UploadStopped:
            stopped.set()
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert next(chunks) == b'x'
    time.sleep(0.05)            # the writer is blocked on a full queue
    chunks.close()              # the upload stops reading
    assert stopped.wait(5)
    pipe.close()                # never blocks once the reader is gone


def test_upload_failing_mid_stream_never_leaves_the_writer_blocked(
        monkeypatch):
    """glanceclient reads some of the data, then fails; its exception's
    traceback holds the pipe's iterator, never closed. The copy must end
    with the upload's error, not wait for ever on a full pipe."""
    def upload(context, image_id, metadata, chunks):
        data = glance._ChunkFile(chunks)
        data.read(10)
        raise RuntimeError('glance-api went away')
    monkeypatch.setattr(glance, 'upload', upload)
    reader = iter([b'x' * 65536] * 50)
    raised = []

    def run():
        try:
            snapshot._upload(None, IMAGE_ID, {}, reader, 'test')
        except Exception as e:
            raised.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), 'the copy hangs on the pipe'
    assert 'glance-api went away' in str(raised[0])


def test_pipe_failure_reaches_the_reader_even_when_full():
    pipe = snapshot._Pipe(depth=2)
    pipe.write(b'a')
    pipe.write(b'b')
    pipe.fail(transfer.SourceError('NFC went away'))
    with pytest.raises(transfer.SourceError, match='NFC went away'):
        list(pipe)


def test_chunk_file_reads_what_glanceclient_asks_for():
    f = glance._ChunkFile(iter([b'abcdef', b'', b'gh']))
    assert f.read(4) == b'abcd'
    assert f.read(4) == b'ef'
    assert f.read(4) == b'gh'
    assert f.read(4) == b''
    assert glance._ChunkFile([b'ab', b'cd']).read() == b'ab'


class FakeLease:
    name = 'lease-7'

    def __init__(self, fail=False):
        self.reports = queue.Queue()
        self.fail = fail

    def progress(self, percent):
        self.reports.put(percent)
        if self.fail:
            raise OSError('vCenter unreachable')


@pytest.mark.parametrize('fail', [False, True])
def test_keep_alive_reports_progress_until_the_block_ends(fail):
    lease = FakeLease(fail)
    done = [10]
    with nfc.KeepAlive(lease, lambda: done[0], 0.01) as keep_alive:
        assert lease.reports.get(timeout=5) == 10
        done[0] = 60
        while lease.reports.get(timeout=5) != 60:
            pass
    assert not keep_alive._thread.is_alive()


def test_keep_alive_interval_follows_the_lease_timeout():
    lease = nfc.Lease(None, vim.HttpNfcLease('lease-1', None),
                      vim.HttpNfcLease.Info(leaseTimeout=300))
    assert lease.keep_alive(lambda: 0)._interval == 60
    lease.info.leaseTimeout = 30
    assert lease.keep_alive(lambda: 0)._interval == 10


@pytest.mark.parametrize('url, expected', [
    ('https://*/nfc/l/disk-0.vmdk', ('vc.example.org', 8443)),
    ('https://*:9443/nfc/l/disk-0.vmdk', ('vc.example.org', 9443)),
    ('https://esx-1.example.org/nfc/l/disk-0.vmdk',
     ('esx-1.example.org', 443)),
])
def test_device_url_host_star_means_vcenter(url, expected):
    session = session_mod.Session('vc.example.org', 8443, 'u', 'p',
                                  insecure=True)
    conn = nfc._connection(session, url, 5)
    assert (conn.host, conn.port) == expected
    assert conn._context.verify_mode == 0   # [vmware] insecure honoured


@pytest.mark.parametrize('error, stage, reason', [
    (vim.fault.InvalidState(msg='The operation is not allowed in the '
                                'current state.'),
     'taking a vSphere snapshot failed',
     'taking a vSphere snapshot failed: vim.fault.InvalidState: The '
     'operation is not allowed in the current state.'),
    (nfc.NfcReadError(url='http://vc/nfc/l/d.vmdk', reason='timed out'),
     None, 'Reading http://vc/nfc/l/d.vmdk from the export lease failed: '
           'timed out'),
])
def test_failures_say_what_failed(error, stage, reason):
    failure = snapshot._failure(IMAGE_ID, None, error, stage)
    assert str(failure) == 'Snapshot to image %s failed: %s' % (IMAGE_ID,
                                                                reason)


def test_source_errors_name_vcenter():
    try:
        raise transfer.SourceError('x') from OSError('connection reset')
    except transfer.SourceError as e:
        failure = snapshot._failure(IMAGE_ID, None, e)
    assert str(failure).endswith(
        'failed: reading the disk from vCenter failed: connection reset')


# --- recording --------------------------------------------------------------

def _record():
    """Record CASSETTES against a fresh launcher (needs Go)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    from tests.harness import vcsim as vcsim_harness

    vcr_ = soap_cassettes.make_vcr(record_mode='all')
    with vcsim_harness.Vcsim(**SIM_OPTIONS) as sim:
        si = vcsim_harness.connect(sim)
        vm_ref = si.content.searchIndex.FindByInventoryPath(VM_PATH)
        meta = {'host': sim.host, 'port': sim.port,
                'protocol': sim.url.split(':', 1)[0],
                'username': sim.username, 'password': sim.password,
                'instance_uuid': vm_ref.config.instanceUuid,
                'vm': vm_ref._moId,
                'options': SIM_OPTIONS}
        disk = next(d for d in vm_ref.config.hardware.device
                    if isinstance(d, vim.vm.device.VirtualDisk))
        ds, _, rel = disk.backing.fileName[1:].partition(']')
        descriptor = os.path.join(sim.datastores[ds], rel.strip())
        extent = descriptor[:-len('.vmdk')] + '-flat.vmdk'

        def write_disk():
            with open(descriptor, 'w') as f:
                f.write('# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'
                        'parentCID=ffffffff\ncreateType="vmfs"\n\n'
                        'RW %d VMFS "%s"\n' % (CAPACITY // 512,
                                               os.path.basename(extent)))
            with open(extent, 'wb') as f:
                f.write(DISK_DATA)

        for name in CASSETTES:
            write_disk()
            fake = FakeGlance()
            if name == 'snapshot_lease_error':
                os.unlink(descriptor)
            if name == 'snapshot_upload_refused':
                fake = FakeGlance(fail=nova_exception.ImageBadRequest(
                    image_id=IMAGE_ID, response='413 image too large'))
            path = os.path.join(soap_cassettes.CASSETTE_DIR, name + '.yaml')
            if os.path.exists(path):
                os.remove(path)
            with vcr_.use_cassette(name + '.yaml') as cassette:
                try:
                    _snapshot(meta, fake)
                except snapshot.SnapshotFailed as e:
                    print('%s: %s' % (name, e))
            print('%s.yaml: %d requests: %s' % (name, len(cassette),
                                                ' '.join(_calls(cassette))))
    with open(META_FILE, 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write('\n')


if __name__ == '__main__':
    if sys.argv[1:] != ['--record']:
        raise SystemExit('usage: python -m tests.unit.test_snapshot --record')
    _record()
