"""The datastore image cache: one verified copy of each image per datastore,
shared by every nova-compute and every cluster that sees the datastore.

Its layout (datastore_layout.py)::

    <image id>/                 an entry: the verified disk or ISO,
                                image.json, last-used
    <image id>.lock/owner       who fills the entry now, with a heartbeat
    <image id>.partial-<token>/ a download in progress

An entry appears only when a complete, verified partial folder is renamed
to it, so a cut download never becomes an entry. The lock is a folder made
with MakeDirectory, which fails when it exists: atomic on the datastore, so
one download serves every process and host. Its owner rewrites a heartbeat
in vCenter's clock; a lock not refreshed for image_cache_lock_stale_seconds
is taken over (renamed away first, so only one waiter wins) and its partial
folder removed.
"""

import dataclasses
import json
import os
import socket
import threading
import time

from oslo_concurrency import lockutils
from oslo_log import log as logging
from pyVmomi import vim

from vcdriver import conf
from vcdriver import datastore_layout as layout
from vcdriver import exception
from vcdriver.images import disk_import
from vcdriver.vsphere import datastore_http
from vcdriver.vsphere import files

LOG = logging.getLogger(__name__)
CONF = conf.CONF


@dataclasses.dataclass
class Entry:
    image_id: str
    disk: layout.DatastorePath
    virtual_size: int


class DatastoreCache:
    """The cache folder on one datastore, as seen from one cluster."""

    def __init__(self, session, cluster, datastore_name):
        self.session = session
        self.cluster = cluster
        self.datastore = datastore_name
        self.root = layout.cache_root(datastore_name,
                                      CONF.vcdriver.image_cache_folder)

    # -- small files ---------------------------------------------------------

    def _read_json(self, path):
        data = datastore_http.read_small(self.session, self.cluster.datacenter,
                                         self.datastore, path.rel_path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            LOG.warning('Ignoring unreadable %s', path)
            return None

    def _write_json(self, path, value):
        datastore_http.write_small(self.session, self.cluster.datacenter,
                                   self.datastore, path.rel_path,
                                   json.dumps(value).encode())

    # -- entries -------------------------------------------------------------

    def entry_folder(self, image_id):
        return layout.cache_entry(self.root, image_id)

    def lookup(self, image_id):
        meta = self._read_json(layout.cache_meta(
            self.entry_folder(image_id)))
        if not meta:
            return None
        return Entry(image_id, layout.cache_disk(self.root, image_id,
                                                 meta.get('file')),
                     int(meta['virtual_size']))

    def touch(self, image_id):
        self._write_json(layout.cache_last_used(self.root, image_id),
                         {'time': self.session.current_time()})

    def last_used(self, image_id):
        value = self._read_json(layout.cache_last_used(self.root, image_id))
        return (value or {}).get('time')

    def ensure(self, image, fetch, file_name=None):
        """The image's entry, filling it once if nobody has.

        ``fetch(path)`` writes the verified disk (or ISO) ``file_name``
        (default ``<image id>.vmdk``) and returns its virtual size in bytes.
        """
        # Threads of this process wait here, not on the datastore.
        with lockutils.lock('vcdriver-image-%s-%s' % (self.datastore,
                                                      image.id)):
            return self._ensure(image, fetch, file_name or
                                layout.cache_file_name(image.id))

    def _ensure(self, image, fetch, file_name):
        files.make_directory(self.session, self.cluster.datacenter_ref,
                             self.root)
        lock = _Lock(self, image.id)
        deadline = time.monotonic() + CONF.vcdriver.image_cache_wait_timeout
        delay = 0.5
        while True:
            entry = self.lookup(image.id)
            if entry:
                LOG.debug('Image %s is cached on %s', image.id,
                          self.datastore)
                self.touch(image.id)
                return entry
            if lock.acquire():
                try:
                    return self.lookup(image.id) or self._fill(
                        image, fetch, file_name, lock)
                finally:
                    lock.release()
            if lock.take_over_if_stale():
                continue
            if time.monotonic() > deadline:
                raise exception.ImageCacheTimeout(
                    image_id=image.id, datastore=self.datastore,
                    owner=lock.owner_description())
            # Said once at INFO: a spawn that waits on another service's
            # download is worth an operator's knowing, every retry not.
            (LOG.debug if delay > 0.5 else LOG.info)(
                'Waiting for %s to cache image %s on %s',
                lock.owner_description(), image.id, self.datastore)
            time.sleep(delay)
            delay = min(delay * 2, 5)

    def _fill(self, image, fetch, file_name, lock):
        partial = layout.cache_partial(self.root, image.id, lock.token)
        files.make_directory(self.session, self.cluster.datacenter_ref,
                             partial)
        try:
            size = fetch(partial.join(file_name))
            self._write_json(layout.cache_meta(partial), {
                'image_id': image.id, 'virtual_size': size,
                'file': file_name,
                'hash_algo': image.hash_algo, 'hash_value': image.hash_value})
            files.move(self.session, self.cluster.datacenter_ref, partial,
                       self.entry_folder(image.id))
        except BaseException:
            # The upload was aborted (FileWriter.abort waits for the
            # server to let go of it): this removal is final.
            try:
                files.delete(self.session, self.cluster.datacenter_ref,
                             partial)
            except Exception:
                LOG.exception('Could not remove the partial download %s',
                              partial)
            raise
        self.touch(image.id)
        LOG.info('Image %s cached on datastore %s', image.id, self.datastore)
        return self.lookup(image.id)

    # -- ageing --------------------------------------------------------------

    def names(self, datastore_ref):
        return list(self.contents(datastore_ref))

    def contents(self, datastore_ref):
        """{name: when it last changed} of the cache folder."""
        return files.folder_contents(self.session, datastore_ref, self.root)

    def image_ids(self, datastore_ref):
        """The complete entries: not locks, partial or stale folders."""
        return sorted(n for n in self.names(datastore_ref)
                      if layout.cache_name(n).kind == layout.ENTRY)

    def remove_if_unused(self, image_id, max_age, now):
        """Remove an entry nobody used for ``max_age`` seconds."""
        last = self.last_used(image_id)
        if last is not None and now - last < max_age:
            return False
        lock = _Lock(self, image_id)
        if not lock.acquire():
            return False  # being filled right now
        try:
            # Used again between our look and the lock?
            last = self.last_used(image_id)
            if last is not None and now - last < max_age:
                return False
            files.delete(self.session, self.cluster.datacenter_ref,
                         self.entry_folder(image_id))
            LOG.info('Removed image %s from the cache on %s (unused for '
                     '%d s)', image_id, self.datastore, max_age)
            return True
        finally:
            lock.release()

    def _delete_partial(self, folder):
        """A dead fill's folder, with the import shell VM it may have left
        registered."""
        disk_import.remove_shell(self.session, self.cluster, folder)
        files.delete(self.session, self.cluster.datacenter_ref, folder)

    def remove_orphan_partial(self, name):
        """A partial folder whose lock is gone was left by a dead fill."""
        partial = layout.cache_name(name)
        owner = _Lock(self, partial.image_id).owner()
        if owner and owner.get('token') == partial.token:
            return False
        self._delete_partial(self.root.join(name))
        LOG.info('Removed %s left by an interrupted download on %s', name,
                 self.datastore)
        return True


    def remove_stale_lock(self, name, changed=None):
        """A lock whose owner stopped beating: taken over and removed with
        its dead fill's partial folder and import shell VM. True if it
        was stale. ``changed``: when its folder last changed (``contents``),
        by which a lock whose maker died before writing its owner file is
        stale too."""
        return _Lock(self, layout.cache_name(name).image_id
                     ).take_over_if_stale(changed)


def lock_owner(cache, image_id):
    """Who holds the cache lock of an image, as its owner file says
    (None without one): for audits."""
    return _Lock(cache, image_id).owner()


class _Lock:
    """The datastore lock folder of one image, with its heartbeat."""

    def __init__(self, cache, image_id):
        self.cache = cache
        self.image_id = image_id
        self.folder = layout.cache_lock(cache.root, image_id)
        self.token = layout.new_token()
        self._stop = threading.Event()
        self._heartbeat = None
        self._missing_since = None

    def owner(self):
        return self.cache._read_json(layout.lock_owner(self.folder))

    def owner_description(self):
        owner = self.owner() or {}
        return owner.get('owner', 'another compute service')

    def _beat(self):
        self.cache._write_json(layout.lock_owner(self.folder), {
            'owner': '%s pid %d' % (socket.gethostname(), os.getpid()),
            'token': self.token,
            'heartbeat': self.cache.session.current_time()})

    def acquire(self):
        if not files.make_directory_exclusive(
                self.cache.session, self.cache.cluster.datacenter_ref,
                self.folder):
            return False
        try:
            self._beat()
        except BaseException:
            # Without its owner file the folder would hold every waiter
            # for image_cache_lock_stale_seconds: remove it.
            try:
                files.delete(self.cache.session,
                             self.cache.cluster.datacenter_ref, self.folder)
            except Exception:
                LOG.warning('Could not remove the lock %s', self.folder,
                            exc_info=True)
            raise
        interval = CONF.vcdriver.image_cache_lock_stale_seconds / 3.0
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat_until_stopped, args=(interval,), daemon=True,
            name='image-cache-heartbeat')
        self._heartbeat.start()
        return True

    def _beat_until_stopped(self, interval):
        while not self._stop.wait(interval):
            try:
                self._beat()
            except Exception:
                LOG.warning('Could not refresh the lock %s', self.folder,
                            exc_info=True)

    def release(self):
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        owner = self.owner()
        if owner and owner.get('token') != self.token:
            return  # taken over meanwhile: not ours to remove
        files.delete(self.cache.session, self.cache.cluster.datacenter_ref,
                     self.folder)

    def take_over_if_stale(self, changed=None):
        """Break a lock whose owner stopped beating; True if we did.
        ``changed``: when the lock folder last changed, by the datastore
        (None: this lock's waiter times an ownerless folder itself)."""
        stale_after = CONF.vcdriver.image_cache_lock_stale_seconds
        owner = self.owner()
        if owner is None and changed is not None:
            # Made but not written yet, or its maker died in between.
            if self.cache.session.current_time() - changed < stale_after:
                return False
        elif owner is None:
            now = time.monotonic()
            self._missing_since = self._missing_since or now
            if now - self._missing_since < stale_after:
                return False
        elif (self.cache.session.current_time() - owner['heartbeat'] <
              stale_after):
            return False
        graveyard = layout.stale_lock(self.folder, self.token)
        dc = self.cache.cluster.datacenter_ref
        try:
            files.move(self.cache.session, dc, self.folder, graveyard)
        except vim.fault.FileNotFound:
            return True  # another waiter broke it first
        LOG.warning('Took over the stale image cache lock %s of %s',
                    self.folder, (owner or {}).get('owner', 'nobody'))
        files.delete(self.cache.session, dc, graveyard)
        if owner and owner.get('token'):
            self.cache._delete_partial(layout.cache_partial(
                self.cache.root, self.image_id, owner['token']))
        return True
