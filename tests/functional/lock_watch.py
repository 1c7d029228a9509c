"""A watch on the writer locks of Nova's in-process database fixture.

Issue 15: a full run under native threads hung once in the load test.
The dump showed every DB writer waiting on ``DatabaseWriteLock``'s
per-database RLock while no live thread was inside a DB call: the lock
had been left held. A plain RLock cannot say by whom, so this one keeps
the thread and the stack of its outermost acquire, and a watchdog writes
both (and every thread's stack) to stderr and to ``lock-watch-<pid>.txt``
under the temp directory once a lock has been held for ``HOLD`` seconds.
Unraisable exceptions (a generator's ``with`` block closed by the garbage
collector on another thread fails to release its lock there) are
reported the same way.
"""

import os
import sys
import tempfile
import threading
import time
import traceback
import weakref

HOLD = float(os.environ.get('VCDRIVER_LOCK_WATCH_HOLD', '120'))


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
                self.owner = self.since = self.stack = None
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()


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
    """Make every ``DatabaseWriteLock`` lock a watched one, once."""
    from nova.tests import fixtures as nova_fixtures

    fixture = nova_fixtures.DatabaseWriteLock
    if getattr(fixture, '_watched', False):
        return
    fixture._watched = True

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
