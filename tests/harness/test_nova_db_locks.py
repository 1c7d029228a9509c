"""The deadlock between Nova's in-process DB fixture locks, broken
(tests/functional/nova_db_locks.py): a conductor reading the cell lock and
waiting for the DB lock, a service update holding the DB lock and wanting
to read the cell lock, and the API waiting to write the cell lock."""

import threading

from tests.functional import nova_db_locks


def _thread(target):
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def test_db_writer_reads_the_cell_lock_past_a_waiting_writer():
    cell_lock = nova_db_locks._cell_lock_class()()
    db_lock = nova_db_locks.WatchedRLock('test-db', set())
    service_has_db, conductor_reads, go = (
        threading.Event(), threading.Event(), threading.Event())

    def service():              # Service.save: a DB write that reads
        with db_lock:
            service_has_db.set()
            go.wait()
            with cell_lock.read_lock():
                pass

    def conductor():            # inside obj_target_cell, then a DB write
        with cell_lock.read_lock():
            conductor_reads.set()
            with db_lock:
                pass

    def api():                  # scatter-gather switching the cell
        with cell_lock.write_lock():
            pass

    threads = [_thread(service)]
    assert service_has_db.wait(10)
    threads.append(_thread(conductor))
    assert conductor_reads.wait(10)
    threads.append(_thread(api))
    for _ in range(1000):
        if cell_lock.has_pending_writers:
            break
        threading.Event().wait(0.01)
    assert cell_lock.has_pending_writers
    go.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), 'deadlocked'
    assert not cell_lock.has_pending_writers
