"""The pipelined copy (vcdriver.images.transfer.copy): bytes, hashes,
failures on either side, memory bound, progress lines."""

import hashlib
import itertools
import logging
import os
import threading
import time

import pytest

from vcdriver.images import transfer

CHUNK = 4096
MiB = 1024 * 1024
_labels = itertools.count()


def label():
    return 'test-%d' % next(_labels)


def reader_threads():
    return [t for t in threading.enumerate()
            if t.name.startswith('transfer-reader-')]


@pytest.fixture(autouse=True)
def no_thread_leak():
    before = set(reader_threads())
    yield
    leaked = set(reader_threads()) - before
    assert not leaked, 'reader threads left running: %s' % leaked


class Sink:
    """A writer that keeps every chunk it is given."""

    def __init__(self, delay=0):
        self.chunks = []
        self.delay = delay

    def __call__(self, chunk):
        if self.delay:
            time.sleep(self.delay)
        self.chunks.append(bytes(chunk))

    @property
    def data(self):
        return b''.join(self.chunks)


def pieces(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def payload(n):
    return os.urandom(n)


# --- bytes and hashes -----------------------------------------------------

@pytest.mark.parametrize('size,piece', [
    (0, CHUNK),
    (1, CHUNK),
    (CHUNK - 1, CHUNK),
    (CHUNK, CHUNK),
    (CHUNK + 1, CHUNK),
    (50 * CHUNK, CHUNK),          # many chunks, exact
    (50 * CHUNK + 7, CHUNK),      # many chunks, short tail
    (10 * CHUNK + 3, 7),          # source pieces far smaller than a chunk
    (10 * CHUNK + 3, CHUNK - 1),  # just smaller: every chunk is two pieces
    (10 * CHUNK + 3, CHUNK + 1),  # just larger
    (10 * CHUNK + 3, 3 * CHUNK + 5),  # larger than a chunk
    (CHUNK, 10 * CHUNK),          # one piece, all of it
])
def test_copies_every_byte_and_hashes_them(size, piece):
    data = payload(size)
    sink = Sink()
    result = transfer.copy(iter(pieces(data, piece)), sink, label=label(),
                           chunk_size=CHUNK, depth=4, expected_size=size)
    assert sink.data == data
    assert result.size == size
    assert result.digest == hashlib.sha512(data).hexdigest()
    # Re-chunked: nothing empty, nothing short but the last.
    assert all(sink.chunks)
    assert all(len(c) >= CHUNK for c in sink.chunks[:-1])


def test_irregular_and_empty_pieces():
    data = payload(20 * CHUNK + 11)
    sizes = itertools.cycle([1, 0, CHUNK * 2, 5, 0, CHUNK - 3, 700])
    source, pos = [], 0
    while pos < len(data):
        n = next(sizes)
        source.append(data[pos:pos + n])
        pos += n
    sink = Sink()
    result = transfer.copy(iter(source), sink, label=label(),
                           chunk_size=CHUNK, depth=2)
    assert sink.data == data
    assert result.digest == hashlib.sha512(data).hexdigest()
    assert all(sink.chunks)


@pytest.mark.parametrize('algo', ['md5', 'sha256', 'sha512'])
def test_hash_algorithm_is_glance_s(algo):
    data = payload(3 * CHUNK + 1)
    result = transfer.copy(iter(pieces(data, 1000)), Sink(), label=label(),
                           hash_algo=algo, chunk_size=CHUNK)
    assert result.digest == hashlib.new(algo, data).hexdigest()


def test_source_with_close_is_not_closed_after_success():
    # A source is closed only when the copy is abandoned.
    class Source:
        closed = False

        def __init__(self, data):
            self._it = iter(pieces(data, CHUNK))

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._it)

        def close(self):
            self.closed = True

    source = Source(payload(3 * CHUNK))
    transfer.copy(source, Sink(), label=label(), chunk_size=CHUNK)
    assert not source.closed


def test_result_rate():
    result = transfer.Result(size=10 * 1024 * 1024, digest='x', seconds=2.0)
    assert result.mib_per_s == pytest.approx(5.0)
    assert transfer.Result(1, 'x', 0).mib_per_s > 0  # no division by zero


# --- the source fails -----------------------------------------------------

class Boom(Exception):
    pass


def failing_source(data, fail_after):
    for i, p in enumerate(pieces(data, CHUNK)):
        if i == fail_after:
            raise Boom('glance went away at piece %d' % i)
        yield p


@pytest.mark.parametrize('fail_after', [0, 1, 5])
def test_source_failure_is_source_error_and_writes_stop(fail_after):
    data = payload(20 * CHUNK)
    sink = Sink(delay=0.001)
    with pytest.raises(transfer.SourceError) as err:
        transfer.copy(failing_source(data, fail_after), sink, label=label(),
                      chunk_size=CHUNK, depth=2, expected_size=len(data))
    assert isinstance(err.value.__cause__, Boom)
    assert 'glance went away at piece %d' % fail_after in str(err.value)
    # What was written came before the failure: a prefix of it, since the
    # writer stops at once rather than flush what is queued.
    assert data[:fail_after * CHUNK].startswith(sink.data)
    written = len(sink.chunks)
    assert not reader_threads()
    time.sleep(0.05)
    assert len(sink.chunks) == written, 'writes after copy() raised'


def test_source_failure_is_not_a_size_mismatch():
    data = payload(4 * CHUNK)
    with pytest.raises(transfer.SourceError):
        transfer.copy(failing_source(data, 2), Sink(), label=label(),
                      chunk_size=CHUNK, expected_size=len(data))


# --- the writer fails -----------------------------------------------------

class ClosableEndless:
    """An endless source that records when it is closed."""

    def __init__(self):
        self.closed = threading.Event()
        self.pulled = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.pulled += 1
        return b'x' * CHUNK

    def close(self):
        self.closed.set()


@pytest.mark.parametrize('fail_at', [0, 3])
def test_writer_failure_propagates_and_stops_the_reader(fail_at):
    boom = OSError('datastore connection reset')
    calls = []

    def write(chunk):
        calls.append(len(chunk))
        if len(calls) > fail_at:
            raise boom

    source = ClosableEndless()
    started = time.monotonic()
    with pytest.raises(OSError) as err:
        transfer.copy(source, write, label=label(), chunk_size=CHUNK,
                      depth=4)
    assert err.value is boom
    assert time.monotonic() - started < 5
    # The reader is gone (not left pulling an endless source) ...
    assert not reader_threads(), threading.enumerate()
    # ... having closed the source it abandoned ...
    assert source.closed.is_set()
    # ... and it stopped pulling.
    pulled = source.pulled
    time.sleep(0.05)
    assert source.pulled == pulled
    assert len(calls) == fail_at + 1


def test_writer_failure_wins_over_a_later_source_failure():
    def write(chunk):
        raise ValueError('disk full')

    with pytest.raises(ValueError, match='disk full'):
        transfer.copy(failing_source(payload(8 * CHUNK), 3), write,
                      label=label(), chunk_size=CHUNK, depth=1)


# --- sizes ----------------------------------------------------------------

@pytest.mark.parametrize('actual,expected', [
    (CHUNK, CHUNK + 1),
    (CHUNK + 1, CHUNK),
    (0, 512),
])
def test_size_mismatch(actual, expected):
    with pytest.raises(transfer.SizeMismatch) as err:
        transfer.copy(iter(pieces(payload(actual), 1000)), Sink(),
                      label=label(), chunk_size=CHUNK,
                      expected_size=expected)
    assert (err.value.expected, err.value.actual) == (expected, actual)
    assert str(err.value) == 'expected %d bytes, got %d' % (expected, actual)


def test_no_expected_size_no_check():
    result = transfer.copy(iter([b'abc']), Sink(), label=label(),
                           chunk_size=CHUNK)
    assert result.size == 3


# --- memory bound ---------------------------------------------------------

@pytest.mark.parametrize('depth', [1, 3, 8])
def test_reader_runs_at_most_depth_plus_two_chunks_ahead(depth):
    """Chunks alive at once: ``depth`` queued, one the reader holds while
    it waits for room, one the writer is writing."""
    pulled = [0]
    ahead = []
    total = 6 * depth + 10

    def source():
        for _ in range(total):
            pulled[0] += 1
            yield b'y' * CHUNK

    written = [0]

    def slow_write(chunk):
        # This chunk is in hand; pulled - written = chunks alive.
        ahead.append(pulled[0] - written[0])
        time.sleep(0.002)
        written[0] += 1

    result = transfer.copy(source(), slow_write, label=label(),
                           chunk_size=CHUNK, depth=depth)
    assert result.size == total * CHUNK
    assert max(ahead) <= depth + 2, (depth, ahead)
    # And the pipeline does overlap: with a slow writer the reader fills
    # the queue.
    assert max(ahead) >= depth + 1, (depth, ahead)


def test_small_pieces_are_joined_not_queued_one_by_one():
    # 1000 pieces of 100 bytes with chunk 4096: the writer sees ~25 writes.
    sink = Sink()
    transfer.copy(iter([b'z' * 100] * 1000), sink, label=label(),
                  chunk_size=CHUNK, depth=2)
    assert len(sink.chunks) <= 100 * 1000 // CHUNK + 1
    assert max(len(c) for c in sink.chunks) < CHUNK + 100


# --- progress -------------------------------------------------------------

@pytest.fixture
def transfer_log(caplog):
    caplog.set_level(logging.INFO, logger='vcdriver.images.transfer')
    return caplog


def _lines(caplog, name):
    return [r.getMessage() for r in caplog.records
            if r.name == 'vcdriver.images.transfer' and name in r.getMessage()]


def test_progress_lines_with_known_size(transfer_log):
    name = label()
    data = payload(8 * CHUNK)
    transfer.copy(iter(pieces(data, CHUNK)), Sink(delay=0.002), label=name,
                  chunk_size=CHUNK, expected_size=len(data),
                  progress_interval=1e-6)
    lines = _lines(transfer_log, name)
    progress = [line for line in lines if 'ETA' in line]
    assert progress, lines
    assert all('MiB/s' in line and '%' in line for line in progress)
    # The last line is the summary.
    assert 'MiB in' in lines[-1] and 'MiB/s' in lines[-1]


def test_progress_lines_with_unknown_size(transfer_log):
    name = label()
    transfer.copy(iter([b'q' * CHUNK] * 5), Sink(delay=0.002), label=name,
                  chunk_size=CHUNK, progress_interval=1e-6)
    lines = _lines(transfer_log, name)
    progress = [line for line in lines if ' MiB at ' in line]
    assert progress, lines
    assert all('MiB/s' in line for line in progress)


def test_progress_interval_zero_logs_only_the_summary(transfer_log):
    name = label()
    transfer.copy(iter([b'q' * CHUNK] * 5), Sink(delay=0.001), label=name,
                  chunk_size=CHUNK, expected_size=5 * CHUNK,
                  progress_interval=0)
    lines = _lines(transfer_log, name)
    assert len(lines) == 1, lines
    assert 'MiB/s' in lines[0]


def test_progress_respects_interval(transfer_log):
    name = label()
    transfer.copy(iter([b'q' * CHUNK] * 20), Sink(), label=name,
                  chunk_size=CHUNK, progress_interval=3600)
    assert len(_lines(transfer_log, name)) == 1


class FakeClock:
    """transfer's ``time``: a monotonic clock the test sets."""

    def __init__(self, now=100.0):
        self.now = now

    def monotonic(self):
        return self.now


@pytest.mark.parametrize('elapsed,done,line', [
    # 50 of 200 MiB in 10 s: 5 MiB/s, 150 MiB to go, 30 s.
    (10, 50, 'p: 25% (50 of 200 MiB) at 5.0 MiB/s, ETA 30 s'),
    # Half a second: the rate is not damped by a one-second floor.
    (0.5, 1, 'p: 0% (1 of 200 MiB) at 2.0 MiB/s, ETA 99 s'),
    # A line as soon as the interval has passed.
    (0.25, 1, 'p: 0% (1 of 200 MiB) at 4.0 MiB/s, ETA 49 s'),
    # Nothing yet: no rate, no ETA (and no division by it).
    (10, 0, 'p: 0% (0 of 200 MiB) at 0.0 MiB/s, ETA 0 s'),
])
def test_progress_rate_and_eta(monkeypatch, transfer_log, elapsed, done,
                               line):
    clock = FakeClock()
    monkeypatch.setattr(transfer, 'time', clock)
    progress = transfer._Progress('p', 200 * MiB, 0.25)
    clock.now += elapsed
    progress.update(done * MiB)
    assert _lines(transfer_log, 'p: ') == [line]


def test_rechunking_never_makes_chunks_larger_than_asked():
    # Halves of a chunk make whole chunks: the memory bound is
    # depth * chunk_size, not more.
    data = payload(6 * CHUNK)
    sink = Sink()
    transfer.copy(iter(pieces(data, CHUNK // 2)), sink, label=label(),
                  chunk_size=CHUNK)
    assert [len(c) for c in sink.chunks] == [CHUNK] * 6
    assert sink.data == data


# --- letting a stuck reader go (_finish_reader) -----------------------------

class StuckSource:
    """A source blocked in its next read until closed (if ``closable``)."""

    def __init__(self, closable=True, first=()):
        self.closable = closable
        self.closes = []
        self.released = threading.Event()
        self.first = list(first)

    def __iter__(self):
        return self

    def __next__(self):
        if self.first:
            return self.first.pop(0)
        self.released.wait(30)
        raise StopIteration

    def close(self):
        self.closes.append(time.monotonic())
        if self.closable:
            self.released.set()


def stuck_reader(source, chunks):
    def read():
        for _ in source:
            pass
        chunks.put(None)
    reader = threading.Thread(target=read, name='stuck-%s' % label(),
                              daemon=True)
    reader.start()
    return reader


def test_a_reader_stuck_in_its_source_is_closed_halfway(transfer_log):
    source = StuckSource()
    chunks = transfer.queue.Queue(maxsize=1)
    reader = stuck_reader(source, chunks)
    start = time.monotonic()
    transfer._finish_reader(reader, chunks, source, timeout=2.0)
    assert not reader.is_alive()
    # Closed once, at half the timeout; the reader ended with it.
    assert len(source.closes) == 1
    assert 0.9 < source.closes[0] - start < 1.25
    assert time.monotonic() - start < 1.6
    assert not [r for r in transfer_log.records if r.levelno >= logging.WARN]


def test_a_reader_that_stays_stuck_is_left_behind(transfer_log):
    source = StuckSource(closable=False)
    chunks = transfer.queue.Queue(maxsize=1)
    reader = stuck_reader(source, chunks)
    start = time.monotonic()
    transfer._finish_reader(reader, chunks, source, timeout=1.0)
    took = time.monotonic() - start
    assert reader.is_alive()
    assert len(source.closes) == 1
    assert 1.0 <= took < 1.5
    assert any('still blocked after 1 s' in r.getMessage()
               for r in transfer_log.records)
    source.released.set()
    reader.join(5)


def test_a_source_whose_close_fails_is_still_let_go(transfer_log):
    source = StuckSource(closable=False)

    def close():
        source.closes.append(time.monotonic())
        raise OSError('socket already closed')
    source.close = close
    chunks = transfer.queue.Queue(maxsize=1)
    reader = stuck_reader(source, chunks)
    transfer._finish_reader(reader, chunks, source, timeout=1.0)
    assert len(source.closes) == 1
    source.released.set()
    reader.join(5)


def test_a_reader_blocked_on_a_full_queue_is_drained_not_closed():
    chunks = transfer.queue.Queue(maxsize=1)
    chunks.put(b'x')
    source = StuckSource()

    def read():
        chunks.put(b'y')        # blocks until drained
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.monotonic()
    transfer._finish_reader(reader, chunks, source, timeout=2.0)
    assert not reader.is_alive()
    assert source.closes == []
    assert time.monotonic() - start < 0.5


def test_the_reader_is_a_daemon_thread_named_after_the_copy():
    # Named for thread dumps (and no_thread_leak); a daemon, so that a
    # reader left behind in a stuck source never holds the process.
    name = label()
    seen = []
    source = StuckSource(first=[b'x' * CHUNK])

    def write(chunk):
        seen.extend((t.name, t.daemon) for t in reader_threads())
        source.released.set()
    transfer.copy(source, write, label=name, chunk_size=CHUNK)
    assert seen == [('transfer-reader-' + name, True)]


def test_a_failing_writer_closes_the_source_its_reader_is_stuck_in(
        monkeypatch):
    finish = transfer._finish_reader
    monkeypatch.setattr(transfer, '_finish_reader',
                        lambda reader, chunks, source: finish(
                            reader, chunks, source, timeout=1.0))
    stuck = StuckSource(first=[b'x' * CHUNK])

    def write(chunk):
        raise OSError('datastore went away')
    start = time.monotonic()
    with pytest.raises(OSError, match='datastore went away'):
        transfer.copy(stuck, write, label=label(), chunk_size=CHUNK)
    # Closed halfway through the (1 s) grace, which let the reader end.
    assert stuck.closes and stuck.closes[0] - start < 0.9
    assert time.monotonic() - start < 0.95


def test_without_a_hash():
    result = transfer.copy(iter([b'x' * 10]), Sink(), label=label(),
                           hash_algo=None)
    assert (result.size, result.digest) == (10, None)
    # The copy's own duration, not a clock reading.
    assert 0 <= result.seconds < 5


def test_a_chunk_waiting_for_room_in_the_queue_is_not_dropped():
    # depth 1 and a writer slower than the reader's half-second wait for
    # room: the reader waits again, it never skips the chunk.
    data = payload(3 * CHUNK)
    sink = Sink(delay=0.6)
    transfer.copy(iter(pieces(data, CHUNK)), sink, label=label(),
                  chunk_size=CHUNK, depth=1)
    assert sink.data == data


def test_a_stuck_source_without_close_is_left_behind(transfer_log):
    released = threading.Event()

    class Uncloseable:
        def __iter__(self):
            return self

        def __next__(self):
            released.wait(30)
            raise StopIteration
    source = Uncloseable()
    chunks = transfer.queue.Queue(maxsize=1)
    reader = stuck_reader(source, chunks)
    transfer._finish_reader(reader, chunks, source, timeout=1.0)
    assert reader.is_alive()
    released.set()
    reader.join(5)
