"""The chunked transfer core: a reader thread and a writer, bounded between.

The reader pulls from the source iterator, hashes and re-chunks; the writer
sends to the sink. They overlap through a queue of at most ``depth`` chunks,
so memory stays near ``depth * chunk_size`` whatever the image size. Works
with native threads and, monkey-patched, with eventlet's green threads.
"""

import hashlib
import queue
import threading
import time

from oslo_log import log as logging
from oslo_utils import units

LOG = logging.getLogger(__name__)

_END = object()


class SourceError(Exception):
    """The source iterator failed; ``__cause__`` says how."""


class SizeMismatch(Exception):
    def __init__(self, expected, actual):
        super().__init__('expected %d bytes, got %d' % (expected, actual))
        self.expected = expected
        self.actual = actual


class Result:
    def __init__(self, size, digest, seconds):
        self.size = size
        self.digest = digest
        self.seconds = seconds

    @property
    def mib_per_s(self):
        return self.size / units.Mi / max(self.seconds, 1e-9)


class _Progress:
    def __init__(self, label, total, interval):
        self.label = label
        self.total = total
        self.interval = interval
        self.start = self.last = time.monotonic()

    def update(self, done):
        now = time.monotonic()
        if not self.interval or now - self.last < self.interval:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            eta = (self.total - done) / rate if rate else 0
            LOG.info('%s: %d%% (%d of %d MiB) at %.1f MiB/s, ETA %d s',
                     self.label, 100 * done // self.total, done // units.Mi,
                     self.total // units.Mi, rate / units.Mi, eta)
        else:
            LOG.info('%s: %d MiB at %.1f MiB/s', self.label,
                     done // units.Mi, rate / units.Mi)


def _rechunk(source, chunk_size):
    pending, pending_len = [], 0
    for piece in source:
        if not piece:
            continue
        if not pending and len(piece) >= chunk_size:
            yield piece
            continue
        pending.append(piece)
        pending_len += len(piece)
        if pending_len >= chunk_size:
            yield b''.join(pending)
            pending, pending_len = [], 0
    if pending:
        yield b''.join(pending)


def _finish_reader(reader, chunks, source, timeout=30):
    """Let the reader go: drain what blocks it; if it hangs in the source,
    close the source and, failing that, leave the daemon thread behind
    rather than hang the spawn with it."""
    deadline = time.monotonic() + timeout
    closed = False
    while reader.is_alive():
        try:
            chunks.get(timeout=0.1)
        except queue.Empty:
            pass
        if not closed and time.monotonic() > deadline - timeout / 2:
            close = getattr(source, 'close', None)
            if close:
                try:
                    close()
                except Exception:
                    LOG.debug('Closing the image source failed',
                              exc_info=True)
            closed = True
        if time.monotonic() > deadline:
            LOG.warning('Image reader %s still blocked after %d s; leaving '
                        'it behind', reader.name, timeout)
            return


def copy(source, write, *, label, hash_algo='sha512', chunk_size=units.Mi,
         depth=16, expected_size=None, progress_interval=10):
    """Copy ``source`` (iterable of bytes) into ``write``; return a Result.

    Raises SourceError when reading fails, whatever ``write`` raises when
    writing fails, and SizeMismatch when the byte count is not
    ``expected_size``. The caller compares ``Result.digest``.
    """
    chunks = queue.Queue(maxsize=depth)
    stop = threading.Event()
    hasher = hashlib.new(hash_algo) if hash_algo else None
    failure = []

    def read():
        try:
            for chunk in _rechunk(source, chunk_size):
                if hasher:
                    hasher.update(chunk)
                while not stop.is_set():
                    try:
                        chunks.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # handed over to the writer's thread
            failure.append(e)
        finally:
            close = getattr(source, 'close', None)
            if close and stop.is_set():
                close()
            chunks.put(_END)

    progress = _Progress(label, expected_size, progress_interval)
    reader = threading.Thread(target=read, name='transfer-reader-%s' % label,
                              daemon=True)
    done = 0
    reader.start()
    try:
        while True:
            chunk = chunks.get()
            # A failed source ends the copy now, not after what is queued.
            if chunk is _END or failure:
                break
            write(chunk)
            done += len(chunk)
            progress.update(done)
    finally:
        stop.set()
        _finish_reader(reader, chunks, source)
    if failure:
        raise SourceError(str(failure[0])) from failure[0]
    if expected_size is not None and done != expected_size:
        raise SizeMismatch(expected_size, done)
    seconds = time.monotonic() - progress.start
    result = Result(done, hasher.hexdigest() if hasher else None, seconds)
    LOG.info('%s: %d MiB in %.1f s (%.1f MiB/s)', label, done // units.Mi,
             seconds, result.mib_per_s)
    return result
