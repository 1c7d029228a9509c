"""Host operations for a compute service that stands for whole clusters.

Nova's host operations (uptime, maintenance, enable, power) address one
hypervisor host; here that "host" is every ESX host of the clusters
served. Uptime is reported from the hosts' boot times; maintenance,
enabling and powering are refused: done to a whole cluster at once they
would evacuate or stop it, which is vCenter's business per ESX host.
"""

import datetime

from pyVmomi import vim

from vcdriver.vsphere import props


def _span(seconds):
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return '%d day%s, %d:%02d' % (days, '' if days == 1 else 's', hours,
                                  rest // 60)


def uptime(session, clusters):
    """``uptime``-like text of the ESX hosts of ``clusters`` at vCenter's
    time (``uptime_text``)."""
    cluster_hosts = props.properties(session, [c.ref for c in clusters],
                                     vim.ClusterComputeResource, ['host'])
    hosts = [h for p in cluster_hosts.values() for h in p.get('host', [])]
    host_props = props.properties(
        session, hosts, vim.HostSystem,
        ['runtime.bootTime', 'runtime.connectionState',
         'runtime.powerState'])
    return uptime_text(session.current_time(), len(hosts), [
        p['runtime.bootTime'].timestamp() for p in host_props.values()
        if p.get('runtime.bootTime') and
        p.get('runtime.connectionState') == 'connected' and
        p.get('runtime.powerState') == 'poweredOn'])


def node_uptime(hosts, now):
    """``uptime_text`` of one cluster's capacity.Host ``hosts``, read at
    ``now``: Nova's API shows a node's uptime from its stats."""
    return uptime_text(now, len(hosts), [
        h.boot_time for h in hosts
        if h.boot_time and h.connected and h.powered_on])


def uptime_text(now, count, boots):
    """The clock at ``now`` (seconds since the epoch), how long the hosts
    up (booted at ``boots``) have been, the longest and the shortest, and
    how many of ``count`` they are."""
    boots = sorted(boots)
    clock = datetime.datetime.fromtimestamp(
        now, datetime.timezone.utc).strftime('%H:%M:%S')
    if not boots:
        return '%s no ESX host up in %d hosts' % (clock, count)
    return '%s up %s, %d of %d hosts up (the latest booted up %s)' % (
        clock, _span(now - boots[0]), len(boots), count,
        _span(now - boots[-1]))
