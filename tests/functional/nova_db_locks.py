"""Nova's in-process database locks under native threads: the deadlock
between them broken, and a watch on what is left.

Issue 15: full runs under native threads hung in the load test. Nova's
functional fixtures take two locks that no real deployment has, and take
them in opposite orders:

- ``DatabaseWriteLock`` (one RLock per SQLite file) around every writer
  transaction;
- ``CellDatabases``' cell lock (a fasteners ReaderWriterLock), as a reader
  for every DB access and around a ``target_cell`` block, as a writer when
  a ``target_cell`` switches the fixture's global "current cell".

The conductor holds the cell lock as a reader for a whole ``target_cell``
block and writes inside it (wants the DB lock); a service-state update
holds the DB lock and, inside its transaction, reads through the fixture
(wants the cell lock as a reader). That alone is fine, as readers share.
But fasteners lets no new reader in while a writer waits, and the API's
scatter-gather waits as a writer for the conductor's read to end: the
three wait on each other for ever (py-spy dump of the fresh-clone CI of
0b37954: MainThread in ``set_last_ctxt_mgr``'s write lock, the
conductor's ``schedule_and_build_instances`` on the DB lock inside
``obj_target_cell``, ``Service.save`` holding the DB lock and waiting to
read the cell lock).

:class:`CellLock` breaks the cycle at its cheapest edge: a thread that
holds a DB writer lock may take the cell lock as a reader while a writer
only waits (never while one holds it). Writers still get the lock as soon
as the readers are gone, and nothing else changes.

The watch stays: every ``DatabaseWriteLock`` lock keeps the thread and
the stack of its outermost acquire, and a watchdog writes both (and every
thread's stack) to stderr and to ``lock-watch-<pid>.txt`` under the temp
directory once a lock has been held for ``HOLD`` seconds. Unraisable
exceptions (a generator's ``with`` block closed by the garbage collector
on another thread fails to release its lock there) are reported the same
way.
"""

import os
import sys
import tempfile
import threading
import time
import traceback
import weakref

HOLD = float(os.environ.get('VCDRIVER_LOCK_WATCH_HOLD', '120'))

# How many DB writer locks the current thread holds.
_held = threading.local()


class WatchedRLock:
    """An RLock that remembers who took it first, and where."""

    def __init__(self, name, registry):
        self.name = name
        self._lock = threading.RLock()
        self.owner = None
        self.depth = 0
        self.since = None
        self.stack = None
        registry.add(self)

    def acquire(self, blocking=True, timeout=-1):
        if not self._lock.acquire(blocking, timeout):
            return False
        self.depth += 1
        if self.depth == 1:
            _held.count = getattr(_held, 'count', 0) + 1
            self.owner = threading.current_thread()
            self.since = time.monotonic()
            self.stack = traceback.format_stack(limit=60)[:-1]
        return True

    def release(self):
        if self.owner is not threading.current_thread():
            _report('%s released by %s, held by %s' % (
                self.name, threading.current_thread().name,
                self.owner and self.owner.name), self)
        else:
            self.depth -= 1
            if not self.depth:
                _held.count -= 1
                self.owner = self.since = self.stack = None
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()


def _cell_lock_class():
    from nova.tests import fixtures as nova_fixtures

    class CellLock(nova_fixtures.ReaderWriterLock):
        """CellDatabases' lock, but a DB writer may read past a waiting
        writer (see the module's docstring)."""

        def _acquire_read_lock(self, me):
            if not getattr(_held, 'count', 0):
                return super()._acquire_read_lock(me)
            with self._cond:
                while self._writer is not None and self._writer != me:
                    self._cond.wait()
                self._readers[me] = self._readers.get(me, 0) + 1

    return CellLock


_locks = weakref.WeakSet()
_reported = set()
_guard = threading.Lock()


def _report(headline, lock=None):
    lines = ['=' * 70, 'lock watch: ' + headline]
    if lock is not None and lock.owner is not None:
        lines.append('owner %s (alive: %s), held %.0f s, depth %d; '
                     'acquired at:' % (lock.owner.name,
                                       lock.owner.is_alive(),
                                       time.monotonic() - lock.since,
                                       lock.depth))
        lines.extend(lock.stack or ())
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        lines.append('--- thread %s (%s)' % (names.get(ident, '?'), ident))
        lines.extend(traceback.format_stack(frame, limit=40))
    text = '\n'.join(line.rstrip('\n') for line in lines) + '\n'
    sys.stderr.write(text)
    path = os.path.join(tempfile.gettempdir(),
                        'lock-watch-%d.txt' % os.getpid())
    with open(path, 'a') as f:
        f.write(text)


def _watch():
    while True:
        time.sleep(10)
        now = time.monotonic()
        for lock in list(_locks):
            since = lock.since
            if since is None or now - since < HOLD:
                continue
            with _guard:
                if (lock, since) in _reported:
                    continue
                _reported.add((lock, since))
            _report('%s held for over %.0f s' % (lock.name, HOLD), lock)


def _unraisable(hook):
    def report(unraisable):
        _report('unraisable %r in %r' % (unraisable.exc_value,
                                         unraisable.object))
        hook(unraisable)
    return report


def install():
    """Make every ``DatabaseWriteLock`` lock a watched one and every
    ``CellDatabases`` cell lock a :class:`CellLock`, once."""
    from nova.tests import fixtures as nova_fixtures

    fixture = nova_fixtures.DatabaseWriteLock
    if getattr(fixture, '_watched', False):
        return
    fixture._watched = True

    cell_lock = _cell_lock_class()
    cells = nova_fixtures.CellDatabases
    cells_init = cells.__init__

    def __init__(self, *args, **kwargs):
        cells_init(self, *args, **kwargs)
        self._cell_lock = cell_lock()

    cells.__init__ = __init__

    def _get_lock(self, db_url):
        with self._locks_guard:
            lock = self._locks.get(db_url)
            if not isinstance(lock, WatchedRLock):
                lock = self._locks[db_url] = WatchedRLock(
                    'DatabaseWriteLock(%s)' % (db_url,), _locks)
            return lock

    fixture._get_lock = _get_lock
    sys.unraisablehook = _unraisable(sys.unraisablehook)
    threading.Thread(target=_watch, name='lock-watch', daemon=True).start()
