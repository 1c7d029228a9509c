"""Wait for properties of one object to change, as vCenter reports them.

The same wait as Session.wait_for_task and the NFC lease wait: a private
PropertyCollector and WaitForUpdatesEx, so vCenter wakes us when a value
changes rather than us polling it.
"""

import time

from oslo_log import log as logging
from pyVmomi import vmodl

LOG = logging.getLogger(__name__)
PC = vmodl.query.PropertyCollector


class PropertyWatch:
    """A context manager watching ``paths`` of ``obj`` (of ``obj_type``).

    ``values`` holds the latest value of each path. The first ``wait``
    call reads the current values; each later one only sees changes, so a
    watch opened before a call to vCenter sees every change it causes.
    """

    def __init__(self, session, obj, obj_type, paths):
        self._session = session
        self._obj = obj
        self._type = obj_type
        self._paths = list(paths)
        self._collector = None
        self._version = ''
        self.values = {}

    def __enter__(self):
        content = self._session.content
        self._collector = content.propertyCollector.CreatePropertyCollector()
        self._collector.CreateFilter(PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=self._obj, skip=False)],
            propSet=[PC.PropertySpec(type=self._type,
                                     pathSet=self._paths)]),
            partialUpdates=False)
        self._update(1)
        return self

    def __exit__(self, *exc):
        try:
            self._collector.DestroyPropertyCollector()
        except Exception:
            LOG.debug('Could not destroy property collector', exc_info=True)

    def _update(self, max_wait):
        """One WaitForUpdatesEx; returns the changes as [(path, value)]."""
        update = self._collector.WaitForUpdatesEx(
            self._version, PC.WaitOptions(maxWaitSeconds=max(1, max_wait)))
        changes = []
        if update is None:
            return changes
        self._version = update.version
        for filter_update in update.filterSet:
            for obj in filter_update.objectSet:
                for change in obj.changeSet or ():
                    self.values[change.name] = change.val
                    changes.append((change.name, change.val))
        return changes

    def wait(self, until, timeout, every=None, tick=None):
        """Wait until ``until(path, value)`` holds for a change (or for a
        current value, on the first wait), at most ``timeout`` seconds.

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
