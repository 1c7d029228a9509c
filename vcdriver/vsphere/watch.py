"""Changes as vCenter reports them: WaitForUpdatesEx on a private collector.

Every wait in the driver (tasks, NFC leases, power states, the VM view of
the served clusters) goes through ``Collector``: vCenter wakes us when a
value changes, nothing polls. The collector is private, not the session's
shared one, so threads waiting at once never take each other's updates.
"""

import http.client
import time

from oslo_log import log as logging
from pyVmomi import vim
from pyVmomi import vmodl

LOG = logging.getLogger(__name__)
PC = vmodl.query.PropertyCollector

# vCenter holds a wait at most this long; a longer one is made of several.
# Well under the SOAP socket timeout (session.SOAP_TIMEOUT_SECONDS): a
# wait that vCenter ends on time must never look like a dead connection
# (pyVmomi would send the same wait again, up to api_retry_count times).
MAX_WAIT_SECONDS = 30

# The collector is gone with the session that made it (expired, vCenter
# restarted): the caller opens a new one, which starts from the current
# values again.
COLLECTOR_LOST = (vmodl.fault.ManagedObjectNotFound,
                  vim.fault.NotAuthenticated, vmodl.fault.RequestCanceled,
                  vmodl.query.InvalidCollectorVersion)

# vCenter went away (restarting, a network cut) after pyVmomi's own
# retries: a wait tries again for this long, as what it waits for goes on
# (a task in vCenter, a guest's power state), then gives up with the error.
VCENTER_AWAY = (OSError, http.client.HTTPException)
VCENTER_RETURN_SECONDS = 300
RECONNECT_DELAY = 1.0


class Collector:
    """A private PropertyCollector with one filter.

    The first ``updates`` call returns the filter's current objects; each
    later one only what changed since (vCenter keeps the version).
    """

    def __init__(self, session, filter_spec):
        self._session = session
        self._spec = filter_spec
        self._collector = None
        self._version = ''

    def open(self):
        for attempt in (1, 2):
            content = self._session.content
            self._collector = (
                content.propertyCollector.CreatePropertyCollector())
            self._version = ''
            try:
                self._collector.CreateFilter(self._spec, partialUpdates=False)
                return
            except COLLECTOR_LOST:
                # The session that made the collector ended before its
                # filter was made (the session logged in again for
                # CreateFilter, and the new one has no such collector).
                self._collector = None
                if attempt == 2:
                    raise

    def close(self):
        collector, self._collector = self._collector, None
        if collector is None:
            return
        try:
            collector.DestroyPropertyCollector()
        except Exception:
            LOG.debug('Could not destroy property collector', exc_info=True)

    @property
    def is_open(self):
        return self._collector is not None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def updates(self, max_wait):
        """ObjectUpdates since the last call, waiting at most ``max_wait``
        seconds for the first (0: only what is there now). Truncated
        update sets (vCenter's page of maxObjectUpdates) are read to the
        end."""
        found = []
        options = PC.WaitOptions(maxWaitSeconds=max_wait)
        while True:
            update = self._collector.WaitForUpdatesEx(self._version, options)
            if update is None:
                return found
            self._version = update.version
            for filter_update in update.filterSet:
                found.extend(filter_update.objectSet)
            if not update.truncated:
                return found
            options = PC.WaitOptions(maxWaitSeconds=0)


class PropertyWatch(Collector):
    """A context manager watching ``paths`` of ``obj`` (of ``obj_type``).

    ``values`` holds the latest value of each path. Entering reads the
    current values; each ``wait`` only sees changes, so a watch opened
    before a call to vCenter sees every change it causes.
    """

    def __init__(self, session, obj, obj_type, paths):
        super().__init__(session, PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
            propSet=[PC.PropertySpec(type=obj_type, pathSet=list(paths))]))
        self.values = {}

    def __enter__(self):
        self.open()
        try:
            self._update(1)
        except BaseException:
            self.close()
            raise
        return self

    def _update(self, max_wait):
        """One wait; returns the changes as [(path, value)]."""
        max_wait = max(1, min(max_wait, MAX_WAIT_SECONDS))
        try:
            updates = self.updates(max_wait)
        except COLLECTOR_LOST as e:
            # A task or lease outlives the session: watch it again.
            LOG.info('Property collector lost (%s); watching again',
                     type(e).__name__)
            updates = self._watch_again(max_wait)
        except VCENTER_AWAY as e:
            LOG.warning('vCenter unreachable while waiting (%s); waiting up '
                        'to %d s for it to come back', e,
                        VCENTER_RETURN_SECONDS)
            updates = self._watch_again(max_wait)
        changes = []
        for obj in updates:
            for change in obj.changeSet or ():
                self.values[change.name] = change.val
                changes.append((change.name, change.val))
        return changes

    def _watch_again(self, max_wait):
        """A new collector (vCenter has forgotten the old one), opened
        once vCenter answers again; its first updates."""
        give_up = time.monotonic() + VCENTER_RETURN_SECONDS
        while True:
            self.close()
            try:
                self.open()
                return self.updates(max_wait)
            except VCENTER_AWAY:
                if time.monotonic() >= give_up:
                    raise
                time.sleep(RECONNECT_DELAY)

    def wait(self, until, timeout, every=None, tick=None):
        """Wait until ``until(path, value)`` holds for a change (or for a
        current value), at most ``timeout`` seconds.

        ``tick()`` runs every ``every`` seconds while waiting (a shutdown
        request repeated, say). Returns True if the condition was met.
        """
        if any(until(p, v) for p, v in self.values.items()):
            return True
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + every if every else None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if next_tick is not None and now >= next_tick:
                tick()
                next_tick = now + every
            horizon = min(deadline, next_tick or deadline)
            for path, value in self._update(int(-(-(horizon - now) // 1))):
                if until(path, value):
                    return True
