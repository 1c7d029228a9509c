"""The datastore image cache (vcdriver.images.cache) on an in-memory
datastore with vSphere's semantics: MakeDirectory without parents fails
on a missing parent and, for the lock, on an existing folder; a move
fails on a missing source or an existing destination; a small file's PUT
needs its folder. Other compute services are played by hooks on those
operations and on the waiter's sleep; vCenter's clock is the session's.

tests/functional/test_image_cache.py runs the same cache on vcsim.
"""

import json
import logging
import os
import posixpath
import socket
import threading
import time
import types

import pytest
from pyVmomi import vim

from vcdriver import datastore_layout as layout
from vcdriver import exception
from vcdriver.images import cache as image_cache
from vcdriver.images import disk_import
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files

DS = 'nfs0'
ROOT = 'vcdriver_image_cache'
IMG = '0b5e1c2a-9d7f-4c3e-8a61-2f0e4d5c6b7a'
OTHER = '7f6e5d4c-3b2a-4190-8877-665544332211'
NOW = 1_800_000_000.0
GIB = 1024 ** 3


class Datastore:
    """Folders and files by their path below the datastore's root."""

    def __init__(self):
        self.session = self.cluster = None
        self.folders = set()
        self.files = {}
        # path -> when it last changed, as the datastore browser says
        self.changed = {}
        self.shells_removed = []
        # operation name -> callables run (with its arguments) before it
        self.hooks = {}

    def on(self, operation, hook):
        self.hooks.setdefault(operation, []).append(hook)

    def exists(self, rel):
        return rel in self.folders or rel in self.files

    def names(self, rel=ROOT):
        """One folder's names, as the datastore browser lists them."""
        return sorted(p[len(rel) + 1:] for p in self.folders | set(self.files)
                      if posixpath.dirname(p) == rel)

    def read(self, rel):
        return json.loads(self.files[rel])

    def write(self, rel, value):
        self.files[rel] = json.dumps(value).encode()

    def _rel(self, path):
        assert path.datastore == DS
        return path.rel_path

    def _below(self, rel):
        return [p for p in self.folders | set(self.files)
                if p == rel or p.startswith(rel + '/')]

    # -- the operations the cache calls ---------------------------------

    def make_directory(self, session, datacenter, path):
        parts = self._rel(path).split('/')
        self.folders.update('/'.join(parts[:i + 1])
                            for i in range(len(parts)))

    def make_directory_exclusive(self, session, datacenter, path):
        rel = self._rel(path)
        if self.exists(rel):
            return False
        if posixpath.dirname(rel) not in self.folders:
            raise vim.fault.FileNotFound(file=str(path))
        self.folders.add(rel)
        return True

    def move(self, session, datacenter, source, destination):
        src, dst = self._rel(source), self._rel(destination)
        if not self.exists(src):
            raise vim.fault.FileNotFound(file=str(source))
        if self.exists(dst):
            raise vim.fault.FileAlreadyExists(file=str(destination))
        for p in self._below(src):
            moved = dst + p[len(src):]
            if p in self.folders:
                self.folders.remove(p)
                self.folders.add(moved)
            else:
                self.files[moved] = self.files.pop(p)

    def delete(self, session, datacenter, path):
        for p in self._below(self._rel(path)):
            self.folders.discard(p)
            self.files.pop(p, None)

    def folder_contents(self, session, datastore, path):
        rel = self._rel(path)
        return {name: self.changed.get(rel + '/' + name)
                for name in self.names(rel)}

    def read_small(self, session, datacenter, datastore, path):
        assert datastore == DS
        return self.files.get(path)

    def write_small(self, session, datacenter, datastore, path, data):
        assert datastore == DS
        if posixpath.dirname(path) not in self.folders:
            raise exception.DatastoreHTTPError(
                method='PUT', path=path, reason='HTTP 404')
        self.files[path] = bytes(data)

    def remove_shell(self, session, cluster, folder):
        self.shells_removed.append(str(folder))


class Clock:
    """The cache's ``time``: a monotonic clock that its sleeps advance."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []
        self.on_sleep = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()


class Session:
    def __init__(self):
        self.now = NOW

    def current_time(self):
        return self.now


@pytest.fixture
def store(monkeypatch):
    ds = Datastore()

    def hooked(name):
        method = getattr(ds, name)

        def call(*args):
            # vSphere answers only the cache's own session, about its
            # cluster's datacenter (or, for a listing, the datastore).
            assert args[0] is ds.session, (name, args)
            assert args[1] == {'folder_contents': 'datastore-ref',
                               'read_small': 'dc', 'write_small': 'dc',
                               'remove_shell': ds.cluster}.get(
                                   name, 'dc-ref'), (name, args)
            for hook in ds.hooks.get(name, ()):
                hook(*args)
            return method(*args)
        return call

    for name in ('make_directory', 'make_directory_exclusive', 'move',
                 'delete', 'folder_contents'):
        monkeypatch.setattr(files, name, hooked(name))
    for name in ('read_small', 'write_small'):
        monkeypatch.setattr(datastore_http, name, hooked(name))
    monkeypatch.setattr(disk_import, 'remove_shell', hooked('remove_shell'))
    return ds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(image_cache, 'time', fake)
    return fake


@pytest.fixture
def cache(store, clock):
    store.cluster = types.SimpleNamespace(datacenter='dc',
                                          datacenter_ref='dc-ref')
    store.session = Session()
    return image_cache.DatastoreCache(store.session, store.cluster, DS)


def image(image_id=IMG):
    return types.SimpleNamespace(id=image_id, hash_algo='sha256',
                                 hash_value='ab' * 32)


class Fetch:
    """A download into the cache: writes the disk, says its size."""

    def __init__(self, store, size=5 * GIB, during=None):
        self.store = store
        self.size = size
        self.during = during
        self.paths = []

    def __call__(self, path):
        self.paths.append(path)
        self.store.files[path.rel_path] = b'disk'
        if self.during:
            self.during(path)
        return self.size


def entry_path(name, image_id=IMG):
    return '%s/%s/%s' % (ROOT, image_id, name)


def lock_of(image_id=IMG):
    return '%s/%s.lock' % (ROOT, image_id)


def other_service_holds(store, token='deadbeef', heartbeat=NOW,
                        image_id=IMG):
    """Another compute service's lock, and its download's folder."""
    store.make_directory(None, None, layout.DatastorePath(
        DS, ROOT, '%s.partial-%s' % (image_id, token)))
    store.folders.add(lock_of(image_id))
    store.write(lock_of(image_id) + '/owner', {
        'owner': 'other-host pid 7', 'token': token,
        'heartbeat': heartbeat})


def fill_as_other_service(store, image_id=IMG, size=GIB):
    store.make_directory(None, None, layout.DatastorePath(
        DS, ROOT, image_id))
    store.write(entry_path('image.json', image_id), {
        'image_id': image_id, 'virtual_size': size,
        'file': image_id + '.vmdk'})


# --- filling and finding ----------------------------------------------------

def test_fills_an_empty_cache_once_and_finds_it_after(cache, store, clock):
    seen = {}

    def during(path):
        # The download goes into a partial folder named for the lock
        # that guards it, which the owner file names (for ageing).
        seen['folder'] = posixpath.dirname(path.rel_path)
        seen['owner'] = store.read(lock_of() + '/owner')
        seen['names'] = store.names()
        # Named for thread dumps; a daemon, never holding the process.
        seen['beating'] = [t.daemon for t in threading.enumerate()
                           if t.name == 'image-cache-heartbeat']

    fetch = Fetch(store, during=during)
    entry = cache.ensure(image(), fetch)

    assert entry == image_cache.Entry(
        IMG, layout.DatastorePath(DS, ROOT, IMG, IMG + '.vmdk'), 5 * GIB)
    assert [p.rel_path for p in fetch.paths] == [
        seen['folder'] + '/' + IMG + '.vmdk']
    token = seen['owner']['token']
    assert seen['folder'] == '%s/%s.partial-%s' % (ROOT, IMG, token)
    assert seen['names'] == sorted([IMG + '.lock', IMG + '.partial-' + token])
    assert seen['owner']['heartbeat'] == NOW
    assert seen['owner']['owner'] == '%s pid %d' % (socket.gethostname(),
                                                    os.getpid())
    assert seen['beating'] == [True]
    assert not [t for t in threading.enumerate()
                if t.name == 'image-cache-heartbeat']
    # Only the entry is left: its disk, its record, when it was used.
    assert store.names() == [IMG]
    assert store.names(ROOT + '/' + IMG) == sorted(
        [IMG + '.vmdk', 'image.json', 'last-used'])
    assert store.read(entry_path('image.json')) == {
        'image_id': IMG, 'virtual_size': 5 * GIB, 'file': IMG + '.vmdk',
        'hash_algo': 'sha256', 'hash_value': 'ab' * 32}
    assert cache.last_used(IMG) == NOW
    assert clock.sleeps == []

    cache.session.now = NOW + 60
    again = Fetch(store)
    assert cache.ensure(image(), again) == entry
    assert again.paths == []
    assert cache.last_used(IMG) == NOW + 60
    assert store.names() == [IMG]


def test_an_iso_is_cached_under_its_own_name(cache, store):
    entry = cache.ensure(image(), Fetch(store, size=3), IMG + '.iso')
    assert entry.disk == layout.DatastorePath(DS, ROOT, IMG, IMG + '.iso')
    assert entry.virtual_size == 3
    assert store.read(entry_path('image.json'))['file'] == IMG + '.iso'
    assert cache.lookup(IMG) == entry


def test_lookup_of_a_missing_or_unreadable_entry_is_none(cache, store):
    assert cache.lookup(IMG) is None
    assert cache.last_used(IMG) is None
    fill_as_other_service(store)
    store.files[entry_path('image.json')] = b'{"virtual_size": '
    assert cache.lookup(IMG) is None


def test_an_entry_made_between_look_and_lock_is_not_filled_again(
        cache, store, clock):
    store.on('make_directory_exclusive',
             lambda *a: fill_as_other_service(store))
    fetch = Fetch(store)
    entry = cache.ensure(image(), fetch)
    assert fetch.paths == []
    assert entry.virtual_size == GIB
    assert store.names() == [IMG]


def test_different_images_fill_at_once(cache, store):
    # The process's lock is per image: a long download does not hold
    # up another image's.
    both = threading.Barrier(2, timeout=10)
    fetch = Fetch(store, during=lambda path: both.wait())
    other = threading.Thread(target=cache.ensure, args=(image(OTHER),
                                                        fetch))
    other.start()
    cache.ensure(image(), fetch)
    other.join(10)
    assert store.names() == sorted([IMG, OTHER])


def test_threads_of_one_service_fill_once(cache, store):
    started = threading.Event()
    go_on = threading.Event()

    def during(path):
        started.set()
        assert go_on.wait(10)

    fetch = Fetch(store, during=during)
    results = []
    first = threading.Thread(
        target=lambda: results.append(cache.ensure(image(), fetch)))
    first.start()
    assert started.wait(10)
    # The second thread waits in the process, not on the datastore (whose
    # waiter would sleep: the fake clock's sleep would not return).
    second = threading.Thread(
        target=lambda: results.append(cache.ensure(image(), fetch)))
    second.start()
    second.join(0.2)
    assert second.is_alive()
    go_on.set()
    first.join(10)
    second.join(10)
    assert len(fetch.paths) == 1
    assert len(results) == 2 and results[0] == results[1]


# --- a failed download ------------------------------------------------------

def test_a_failed_download_leaves_nothing_and_is_tried_again(cache, store):
    def cut(path):
        raise exception.ImageTransferFailed(
                image_id=IMG, reason='connection reset')

    with pytest.raises(exception.ImageTransferFailed):
        cache.ensure(image(), Fetch(store, during=cut))
    assert store.names() == []
    fetch = Fetch(store)
    assert cache.ensure(image(), fetch).virtual_size == 5 * GIB
    assert len(fetch.paths) == 1


def test_a_partial_folder_that_cannot_go_does_not_hide_the_error(
        cache, store):
    def refuse(session, datacenter, path):
        if '.partial-' in str(path):
            raise vim.fault.CannotDeleteFile(file=str(path))
    store.on('delete', refuse)

    def cut(path):
        raise exception.ImageTransferFailed(
                image_id=IMG, reason='connection reset')

    with pytest.raises(exception.ImageTransferFailed):
        cache.ensure(image(), Fetch(store, during=cut))
    # The lock goes all the same; the partial folder is for ageing.
    assert [layout.cache_name(n).kind for n in store.names()] == [
        layout.PARTIAL]


def test_a_lock_whose_owner_file_cannot_be_written_is_removed(
        cache, store):
    def refuse(session, datacenter, datastore, path, data):
        raise exception.DatastoreHTTPError(method='PUT', path=path,
                                           reason='HTTP 503')
    store.on('write_small', refuse)
    fetch = Fetch(store)
    with pytest.raises(exception.DatastoreHTTPError):
        cache.ensure(image(), fetch)
    assert fetch.paths == []
    assert store.names() == []


def test_a_lock_that_cannot_be_removed_either_keeps_the_first_error(
        cache, store):
    def refuse_put(session, datacenter, datastore, path, data):
        raise exception.DatastoreHTTPError(method='PUT', path=path,
                                           reason='HTTP 503')

    def refuse_delete(session, datacenter, path):
        raise vim.fault.CannotDeleteFile(file=str(path))
    store.on('write_small', refuse_put)
    store.on('delete', refuse_delete)
    with pytest.raises(exception.DatastoreHTTPError):
        cache.ensure(image(), Fetch(store))
    assert store.names() == [IMG + '.lock']


# --- another service fills it -----------------------------------------------

def test_a_waiter_polls_more_slowly_then_gives_up(cache, store, clock,
                                                  flags, caplog):
    flags.config(image_cache_wait_timeout=30, group='vcdriver')
    other_service_holds(store)
    caplog.set_level(logging.DEBUG, logger='vcdriver.images.cache')

    def beat():
        # The owner is alive: its heartbeat follows vCenter's clock.
        cache.session.now += 1
        owner = store.read(lock_of() + '/owner')
        store.write(lock_of() + '/owner', dict(owner,
                                               heartbeat=cache.session.now))
    clock.on_sleep.append(beat)

    fetch = Fetch(store)
    with pytest.raises(exception.ImageCacheTimeout) as raised:
        cache.ensure(image(), fetch)
    assert 'other-host pid 7' in str(raised.value)
    assert fetch.paths == []
    # Half a second first, doubling up to 5 s; past the deadline (30 s
    # after the first look) it gives up.
    assert clock.sleeps == [0.5, 1, 2, 4, 5, 5, 5, 5, 5]
    # The other service's lock and download are left alone.
    assert store.names() == [IMG + '.lock', IMG + '.partial-deadbeef']
    waits = [r.levelno for r in caplog.records
             if r.getMessage().startswith('Waiting for other-host pid 7 ')]
    assert waits == [logging.INFO] + [logging.DEBUG] * 8


def test_a_waiter_without_owner_file_names_another_service(
        cache, store, clock, flags):
    flags.config(image_cache_wait_timeout=1, group='vcdriver')
    store.make_directory(None, None, layout.DatastorePath(DS, lock_of()))
    with pytest.raises(exception.ImageCacheTimeout,
                       match='waiting for another compute service to cache'):
        cache.ensure(image(), Fetch(store))
    assert clock.sleeps == [0.5, 1]


def test_a_waiter_takes_the_entry_the_owner_made(cache, store, clock):
    other_service_holds(store)

    def finish():
        if len(clock.sleeps) == 3:
            store.delete(None, None, layout.DatastorePath(
                DS, ROOT, IMG + '.partial-deadbeef'))
            fill_as_other_service(store)
            store.delete(None, None, layout.DatastorePath(DS, lock_of()))
    clock.on_sleep.append(finish)
    cache.session.now = NOW + 10
    fetch = Fetch(store)
    entry = cache.ensure(image(), fetch)
    assert fetch.paths == []
    assert entry.virtual_size == GIB
    assert clock.sleeps == [0.5, 1, 2]
    assert cache.last_used(IMG) == NOW + 10


# --- a dead owner -----------------------------------------------------------

@pytest.mark.parametrize('silent,stale', [(119, False), (120, True),
                                          (3600, True)])
def test_a_lock_is_stale_after_its_owner_stopped_beating(
        cache, store, silent, stale):
    other_service_holds(store, heartbeat=NOW - silent)
    assert cache.remove_stale_lock(IMG + '.lock') is stale
    if stale:
        # Gone with the dead fill's download and import shell VM.
        assert store.names() == []
        assert store.shells_removed == [
            '[%s] %s/%s.partial-deadbeef' % (DS, ROOT, IMG)]
    else:
        assert store.names() == [IMG + '.lock', IMG + '.partial-deadbeef']
        assert store.shells_removed == []


@pytest.mark.parametrize('age,stale', [(119, False), (120, True),
                                       (3600, True)])
def test_a_lock_without_owner_file_ages_by_its_folder(cache, store, age,
                                                      stale):
    """Its maker died between the folder and the owner file: the
    periodic ageing, a new lock object each time, goes by when the folder
    last changed."""
    store.folders.add(lock_of())
    store.changed[lock_of()] = NOW - age
    changed = cache.contents('datastore-ref')[IMG + '.lock']
    assert cache.remove_stale_lock(IMG + '.lock', changed) is stale
    assert store.names() == ([] if stale else [IMG + '.lock'])


def test_a_stale_lock_is_taken_over_and_filled(cache, store, clock, flags):
    flags.config(image_cache_lock_stale_seconds=60, group='vcdriver')
    other_service_holds(store, heartbeat=NOW - 60)
    moves = []
    store.on('move', lambda s, dc, source, destination: moves.append(
        (source.rel_path, destination.rel_path)))
    owners = []
    fetch = Fetch(store, during=lambda path: owners.append(
        store.read(lock_of() + '/owner')['token']))
    entry = cache.ensure(image(), fetch)
    # Renamed away under a name of the taker's own (the token it then
    # holds the lock with), so that two takers never collide.
    assert moves[0] == (lock_of(), lock_of() + '.stale-' + owners[0])
    assert len(fetch.paths) == 1
    assert entry.virtual_size == 5 * GIB
    assert store.names() == [IMG]
    assert store.shells_removed == [
        '[%s] %s/%s.partial-deadbeef' % (DS, ROOT, IMG)]
    assert clock.sleeps == []


def test_a_lock_without_owner_file_is_stale_only_after_a_while(
        cache, store, clock, flags):
    # Its maker died between the folder and the file, or is just slow.
    flags.config(image_cache_lock_stale_seconds=10, group='vcdriver')
    store.folders.update({ROOT, lock_of()})
    fetch = Fetch(store)
    cache.ensure(image(), fetch)
    assert len(fetch.paths) == 1
    # 0.5 + 1 + 2 + 4 = 7.5 s < 10 s: one more wait.
    assert clock.sleeps == [0.5, 1, 2, 4, 5]
    assert store.names() == [IMG]
    assert store.shells_removed == []


def test_a_lock_another_waiter_broke_first(cache, store, clock):
    other_service_holds(store, heartbeat=NOW - 3600)

    def other_waiter_first(session, datacenter, source, destination):
        if source.rel_path == lock_of() and store.exists(lock_of()):
            store.move(session, datacenter, source, layout.DatastorePath(
                DS, ROOT, IMG + '.lock.stale-0ther'))
    store.on('move', other_waiter_first)
    fetch = Fetch(store)
    cache.ensure(image(), fetch)
    assert len(fetch.paths) == 1
    assert clock.sleeps == []
    # What the other waiter took over is its to clear.
    assert store.shells_removed == []
    assert store.names() == sorted([IMG, IMG + '.lock.stale-0ther',
                                    IMG + '.partial-deadbeef'])


def test_a_lock_taken_over_meanwhile_is_not_ours_to_remove(cache, store):
    def taken_over(path):
        store.write(lock_of() + '/owner', {
            'owner': 'other-host pid 7', 'token': 'cafe', 'heartbeat': NOW})
    cache.ensure(image(), Fetch(store, during=taken_over))
    assert store.names() == [IMG, IMG + '.lock']
    assert store.read(lock_of() + '/owner')['token'] == 'cafe'


def test_the_owner_keeps_its_lock_alive(cache, store, flags, caplog):
    # A third of image_cache_lock_stale_seconds: one second; a failed
    # beat is logged and the next one tried.
    flags.config(image_cache_lock_stale_seconds=3, group='vcdriver')
    writes = []

    def first_beat_fails(session, datacenter, datastore, path, data):
        if path.endswith('/owner'):
            writes.append(time.monotonic())
            if len(writes) == 2:
                raise exception.DatastoreHTTPError(
                    method='PUT', path=path, reason='HTTP 503')
    store.on('write_small', first_beat_fails)

    def wait_for_beats(path):
        cache.session.now = NOW + 1
        deadline = time.monotonic() + 10
        while (store.read(lock_of() + '/owner')['heartbeat'] == NOW and
               time.monotonic() < deadline):
            time.sleep(0.02)

    cache.ensure(image(), Fetch(store, during=wait_for_beats))
    assert len(writes) == 3
    assert 1.8 < writes[2] - writes[0] < 2.5
    assert 'Could not refresh the lock' in caplog.text
    assert store.names() == [IMG]


def test_the_lock_goes_only_after_its_last_beat(cache, store, flags,
                                               caplog):
    # A beat in progress when the fill ends is waited for: it would
    # otherwise write its owner file into a lock folder already gone.
    flags.config(image_cache_lock_stale_seconds=3, group='vcdriver')
    beating = threading.Event()

    def slow_beat(session, datacenter, datastore, path, data):
        if (path.endswith('/owner') and
                threading.current_thread().name == 'image-cache-heartbeat'):
            beating.set()
            time.sleep(0.3)
    store.on('write_small', slow_beat)
    cache.ensure(image(), Fetch(store, during=lambda path: beating.wait(5)))
    for t in threading.enumerate():
        if t.name == 'image-cache-heartbeat':
            t.join(5)
    assert store.names() == [IMG]
    assert 'Could not refresh the lock' not in caplog.text


# --- ageing -----------------------------------------------------------------

def aged(store, age, image_id=IMG):
    fill_as_other_service(store, image_id)
    if age is not None:
        store.write(entry_path('last-used', image_id), {'time': NOW - age})


@pytest.mark.parametrize('age,removed', [(3599, False), (3600, True),
                                         (None, True)])
def test_an_entry_unused_for_max_age_is_removed(cache, store, age, removed):
    aged(store, age)
    assert cache.remove_if_unused(IMG, 3600, NOW) is removed
    assert store.names() == ([] if removed else [IMG])


def test_a_recently_used_entry_is_kept_without_taking_its_lock(cache,
                                                              store):
    # Ageing looks at every entry of every datastore: the ones in use
    # cost a read, not a lock.
    aged(store, 3599)
    store.on('make_directory_exclusive', lambda *a: pytest.fail('locked'))
    assert cache.remove_if_unused(IMG, 3600, NOW) is False


def test_a_lock_without_owner_is_stale_after_exactly_stale_seconds(
        cache, store, clock, flags):
    flags.config(image_cache_lock_stale_seconds=10, group='vcdriver')
    store.folders.update({ROOT, lock_of()})
    lock = image_cache._Lock(cache, IMG)
    assert lock.take_over_if_stale() is False
    clock.now += 9.5
    assert lock.take_over_if_stale() is False
    clock.now += 0.5
    assert lock.take_over_if_stale() is True
    assert store.names() == []


def test_an_entry_being_filled_is_not_removed(cache, store):
    aged(store, 10 ** 6)
    other_service_holds(store)
    assert cache.remove_if_unused(IMG, 3600, NOW) is False
    assert IMG in store.names()


def test_an_entry_used_between_look_and_lock_is_kept(cache, store):
    aged(store, 10 ** 6)
    store.on('make_directory_exclusive', lambda *a: store.write(
        entry_path('last-used'), {'time': NOW - 1}))
    assert cache.remove_if_unused(IMG, 3600, NOW) is False
    assert store.names() == [IMG]


def test_only_complete_entries_are_images(cache, store):
    store.folders.update({ROOT, ROOT + '/' + OTHER, ROOT + '/' + IMG,
                          lock_of(), ROOT + '/' + IMG + '.partial-ab',
                          ROOT + '/' + IMG + '.lock.stale-cd'})
    store.files[ROOT + '/notes.txt'] = b''
    assert cache.image_ids('datastore-ref') == sorted([IMG, OTHER])
    assert cache.names('datastore-ref') == store.names()


@pytest.mark.parametrize('lock_token,removed', [('ab', False),
                                                ('cd', True),
                                                (None, True)])
def test_a_partial_folder_without_its_lock_is_removed(
        cache, store, lock_token, removed):
    store.make_directory(None, None, layout.DatastorePath(
        DS, ROOT, IMG + '.partial-ab'))
    if lock_token:
        other_service_holds(store, token=lock_token)
    assert cache.remove_orphan_partial(IMG + '.partial-ab') is removed
    assert (IMG + '.partial-ab' in store.names()) is not removed
    assert store.shells_removed == (
        ['[%s] %s/%s.partial-ab' % (DS, ROOT, IMG)] if removed else [])


def test_lock_owner_says_who_fills_an_image(cache, store):
    assert image_cache.lock_owner(cache, IMG) is None
    other_service_holds(store, token='ab')
    assert image_cache.lock_owner(cache, IMG) == {
        'owner': 'other-host pid 7', 'token': 'ab', 'heartbeat': NOW}
