"""Instance snapshots: the root disk, to Glance as a streamOptimized VMDK.

1. CreateSnapshot_Task, without memory, quiesced when VMware Tools run:
   a point-in-time disk while the instance keeps running;
2. ExportSnapshot: an NFC lease whose disk URL serves that disk as a
   streamOptimized VMDK, compressed by ESX as it streams;
3. the bytes go through the transfer core into one Glance upload, the
   lease kept alive meanwhile; then HttpNfcLeaseComplete, or
   HttpNfcLeaseAbort on error;
4. RemoveSnapshot_Task (consolidating), whatever happened.

Unlike the in-tree driver, no linked clone is made to ExportVm from:
ExportSnapshot (vSphere 6.0) reads the snapshot's disks itself. On
failure Nova deletes the image (the compute manager's
delete_image_on_error); we leave nothing behind in vCenter.
"""

import queue
import threading

from nova import exception as nova_exception
from nova.compute import task_states
from oslo_log import log as logging
from oslo_utils import units
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import conf
from vcdriver import devices as devices_mod
from vcdriver import exception
from vcdriver.images import glance
from vcdriver.images import transfer
from vcdriver.vsphere import nfc
from vcdriver.vsphere import props
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)
CONF = conf.CONF

SNAPSHOT_NAME = 'vcdriver-snapshot-%s'
HASH_ALGO = 'sha512'    # Glance's default os_hash_algo: compared after
VM_PROPS = ('config.guestId', 'config.hardware.device',
            'guest.toolsRunningStatus')
# Errors Nova's compute manager handles itself: passed on as they are.
_NOVA_HANDLED = (nova_exception.InstanceNotFound,
                 nova_exception.InstanceNotRunning,
                 nova_exception.UnexpectedDeletingTaskStateError,
                 nova_exception.ImageNotFound)


class SnapshotFailed(exception.VCenterError):
    msg_fmt = 'Snapshot to image %(image_id)s failed: %(reason)s'


class _UploadStopped(Exception):
    """The Glance upload stopped reading; its own error says why."""


class _Pipe:
    """Hands the transfer core's chunks over to the Glance upload, which
    reads them in its own thread; at most ``depth`` (>= 2) in between.

    Nothing waits on a timer: a reader that stops drains the queue, so a
    writer blocked on it wakes and learns on its next write. The upload's
    thread says so when it ends (``stop_reading``), not only the
    iterator's ``finally``: an upload that fails mid-stream keeps the
    iterator alive in its exception's traceback, never closed, and a
    writer waiting on it would wait for ever.
    """

    _END = object()

    def __init__(self, depth=2):
        self._queue = queue.Queue(maxsize=max(depth, 2))
        self._reader_gone = threading.Event()
        self._error = None

    # writer side (the transfer core's writer)

    def write(self, chunk):
        if self._reader_gone.is_set():
            raise _UploadStopped()
        self._queue.put(chunk)

    def close(self):
        if not self._reader_gone.is_set():
            self._queue.put(self._END)

    def fail(self, error):
        """Make the reader raise ``error`` instead of seeing an end."""
        self._error = error
        try:
            self._queue.put_nowait(self._END)
        except queue.Full:
            pass  # the reader finds the error at its next chunk

    # reader side (the Glance upload)

    def __iter__(self):
        try:
            while True:
                chunk = self._queue.get()
                if self._error is not None:
                    raise self._error
                if chunk is self._END:
                    return
                yield chunk
        finally:
            self.stop_reading()

    def stop_reading(self):
        """No more reads: a writer blocked on the queue wakes (one
        writer's put after the drain still fits), and its next write
        raises _UploadStopped."""
        self._reader_gone.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break


class _RootDisk:
    """What the image needs to know of the instance's root disk."""

    def __init__(self, disk, index, adapter):
        self.file = getattr(disk.backing, 'fileName', None)
        self.capacity = (disk.capacityInBytes or
                         (disk.capacityInKB or 0) * units.Ki)
        self.index = index          # among the VM's disks, in device order
        self.adapter = adapter      # vmware_adaptertype, None if unknown


def _root_disk(instance, devices, image_id):
    """The instance's root disk (``vcdriver.devices``' one rule)."""
    found = devices_mod.Devices(devices)
    disk = found.root_disk(instance.uuid)
    if disk is None:
        raise SnapshotFailed(image_id=image_id, reason=(
            "the instance's VM has no disk" if not found.disks else
            "the instance's VM has no root disk (only volumes, "
            "ephemeral or swap disks)"))
    index = next(i for i, d in enumerate(found.disks) if d is disk)
    return _RootDisk(disk, index, found.adapter_type(disk))


def _disk_url(lease, root):
    """The root disk's device URL: the one whose file name matches (as
    vcsim names targets), else the disk at the root disk's position (a
    lease lists disks in the VM's device order)."""
    urls = lease.disk_urls()
    if not urls:
        raise nfc.LeaseFailed(lease=lease.name,
                               reason='it offers no disk to read')
    name = (root.file or '').rpartition('/')[2]
    for device_url in urls:
        if name and (device_url.targetId == name or
                     device_url.url.endswith('/' + name)):
            return device_url.url
    return urls[min(root.index, len(urls) - 1)].url


def image_metadata(instance, guest_id, root):
    """What Glance records for the snapshot, besides the properties Nova
    copied from the instance's image (kept: purge_props=False)."""
    properties = {
        'vmware_disktype': 'streamOptimized',
        'vmware_image_version': '1',
        'owner_id': instance.project_id,
    }
    if root.adapter:
        properties['vmware_adaptertype'] = root.adapter
    if guest_id:
        properties['vmware_ostype'] = guest_id
    return {'disk_format': 'vmdk', 'container_format': 'bare',
            'properties': properties}


def snapshot(session, context, instance, vm_ref, image_id,
             update_task_state, keepalive_interval=None):
    """Snapshot the instance's root disk into Glance image ``image_id``."""
    p = props.properties(session, [vm_ref], vim.VirtualMachine,
                         VM_PROPS).get(vm_ref, {})
    root = _root_disk(instance, p.get('config.hardware.device') or [],
                      image_id)
    quiesce = p.get('guest.toolsRunningStatus') == 'guestToolsRunning'
    metadata = image_metadata(instance, p.get('config.guestId'), root)

    update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
    try:
        snap = _create_snapshot(session, vm_ref, image_id, quiesce, instance)
    except _NOVA_HANDLED:
        raise
    except Exception as e:
        raise _failure(image_id, instance, e,
                       'taking a vSphere snapshot failed') from e
    try:
        update_task_state(task_state=task_states.IMAGE_UPLOADING,
                          expected_state=task_states.IMAGE_PENDING_UPLOAD)
        _export(session, context, instance, snap, image_id, root, metadata,
                keepalive_interval)
    except _NOVA_HANDLED:
        raise
    except Exception as e:
        failure = _failure(image_id, instance, e)
        if failure is e:
            raise
        raise failure from e
    finally:
        _remove_snapshot(session, snap, image_id, instance)


def _failure(image_id, instance, error, stage=None):
    """The SnapshotFailed to raise for ``error``, logged: one line that
    says what failed, and the traceback."""
    if isinstance(error, SnapshotFailed):
        failure = error
    else:
        if isinstance(error, transfer.SourceError) and error.__cause__:
            stage, error = ('reading the disk from vCenter failed',
                            error.__cause__)
        if isinstance(error, vmodl.MethodFault):
            text = '%s: %s' % (type(error).__name__,
                               error.msg or 'no message')
        else:
            text = str(error) or type(error).__name__
        failure = SnapshotFailed(
            image_id=image_id,
            reason='%s: %s' % (stage, text) if stage else text)
    LOG.error('%s', failure, instance=instance, exc_info=True)
    return failure


def _create_snapshot(session, vm_ref, image_id, quiesce, instance):
    name = SNAPSHOT_NAME % image_id
    description = ('Taken by Nova for image %s of instance %s; removed '
                   'when the upload ends' % (image_id, instance.uuid))
    try:
        return virtual_machine.create_snapshot(
            session, vm_ref, name, description, memory=False,
            quiesce=quiesce)
    except vim.fault.ApplicationQuiesceFault as e:
        # A guest that cannot quiesce still gets a crash-consistent image.
        LOG.warning('Quiescing the guest failed (%s); taking a snapshot '
                    'without quiescing', e.msg, instance=instance)
        return virtual_machine.create_snapshot(
            session, vm_ref, name, description, memory=False,
            quiesce=False)


def _remove_snapshot(session, snap, image_id, instance):
    """Remove our vSphere snapshot (its delta merged back); a failure is
    logged, not raised: the image, if uploaded, is good."""
    try:
        virtual_machine.remove_snapshot(session, snap, consolidate=True)
        LOG.debug('Removed vSphere snapshot %s', props.moid(snap),
                  instance=instance)
    except Exception as e:
        LOG.error('Could not remove vSphere snapshot %s (%s) from the '
                  "instance's VM: %s. Remove it in vCenter, or the VM "
                  'keeps running on a growing delta disk.', props.moid(snap),
                  SNAPSHOT_NAME % image_id, e, instance=instance)


def _export(session, context, instance, snap, image_id, root, metadata,
            keepalive_interval):
    """Export the snapshot's root disk and upload it; the lease ends
    completed on success, aborted on any failure."""
    lease = nfc.export_snapshot(session, snap)
    try:
        url = _disk_url(lease, root)
        reader = nfc.DeviceReader(
            session, url, CONF.vcdriver.image_transfer_chunk_size,
            timeout=CONF.vcdriver.http_timeout)

        def percent():
            # Compressed bytes against the disk's capacity: an
            # underestimate, which is all a keep-alive needs.
            return reader.bytes_read * 100 // max(root.capacity, 1)

        with lease.keep_alive(percent, keepalive_interval):
            result, image = _upload(context, image_id, metadata, reader,
                                    'Snapshot %s to image %s'
                                    % (instance.uuid, image_id))
        lease.progress(100)
        lease.complete()
    except BaseException:
        lease.abort()
        raise
    _check_upload(image_id, result, image)
    LOG.info('Uploaded image %s: %d bytes (streamOptimized) of a %d MiB '
             'disk in %.1f s', image_id, result.size,
             root.capacity // units.Mi, result.seconds, instance=instance)


def _upload(context, image_id, metadata, reader, label):
    """Copy ``reader`` into Glance: the transfer core's reader thread
    pulls from vCenter, its writer hands over to the upload's thread."""
    pipe = _Pipe()
    outcome = {}

    def upload():
        try:
            outcome['image'] = glance.upload(context, image_id, metadata,
                                             pipe)
        except BaseException as e:  # handed over to the caller's thread
            outcome['error'] = e
        finally:
            pipe.stop_reading()

    uploader = threading.Thread(target=upload, daemon=True,
                                name='glance-upload-%s' % image_id)
    uploader.start()
    try:
        result = transfer.copy(
            reader, pipe.write, label=label, hash_algo=HASH_ALGO,
            chunk_size=CONF.vcdriver.image_transfer_chunk_size,
            depth=CONF.vcdriver.image_transfer_buffer_chunks,
            progress_interval=CONF.vcdriver.image_transfer_progress_interval)
    except _UploadStopped:
        uploader.join()
        _raise_upload_error(image_id, outcome.get('error'))
    except BaseException as e:
        pipe.fail(e)
        uploader.join()
        raise
    pipe.close()
    uploader.join()
    if 'error' in outcome:
        _raise_upload_error(image_id, outcome['error'])
    return result, outcome['image']


def _raise_upload_error(image_id, error):
    if isinstance(error, _NOVA_HANDLED):
        raise error
    raise SnapshotFailed(
        image_id=image_id, reason='uploading to Glance failed: %s'
        % (error or 'it stopped reading')) from error


def _check_upload(image_id, result, image):
    """Glance must have stored what we sent: same size, same hash."""
    def fail(reason):
        raise SnapshotFailed(image_id=image_id, reason=reason)
    if image.get('status') != 'active':
        fail('Glance left the image %s after the upload'
             % image.get('status'))
    if not result.size:
        fail('vCenter sent no bytes for the disk')
    if int(image.get('size') or 0) != result.size:
        fail('Glance stored %s bytes of the %d sent'
             % (image.get('size'), result.size))
    if (image.get('os_hash_algo') == HASH_ALGO and
            image.get('os_hash_value') != result.digest):
        fail("Glance's %s of the upload differs from the bytes sent"
             % HASH_ALGO)
