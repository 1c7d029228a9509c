"""What a transfer costs the process doing it: wall time, CPU, peak RSS.

Used inside the measured process itself (each case runs in a fresh one,
so peaks of different cases never mix):

    m = Measurement(children=False)
    m.start()                 # after imports and login
    do_the_transfer()
    figures = m.stop()        # seconds, cpu_seconds, rss_growth_bytes ...

CPU is ``getrusage`` user + system time of the process (all its threads)
and/or of its waited-for children. The RSS peak is reset just before the
transfer (``/proc/self/clear_refs`` = 5 resets VmHWM), so the growth is
the peak during the transfer minus VmRSS at its start; where the reset is
not allowed, ``ru_maxrss`` (peak since the process started) is used.
"""

import resource
import time

KIB = 1024


def proc_status(field, pid='self'):
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM) in bytes."""
    with open('/proc/%s/status' % pid) as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * KIB
    raise KeyError(field)


def reset_peak_rss(pid='self'):
    """Reset VmHWM to the current RSS; False where Linux refuses."""
    try:
        with open('/proc/%s/clear_refs' % pid, 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class Measurement:
    """Wall clock, CPU and peak RSS of one transfer in this process.

    ``self_cpu``/``children``: whose CPU counts (the process, its
    waited-for children, or both). With ``children=True`` the reported
    RSS peak is also the children's (``ru_maxrss`` of the largest
    child): a pipe of child processes has no baseline in this process.
    """

    def __init__(self, self_cpu=True, children=False):
        self.self_cpu = self_cpu
        self.children = children
        self._t0 = None

    def _cpu_now(self):
        """(user, system) seconds so far of whom ``self_cpu``/``children``
        say."""
        who = []
        if self.self_cpu:
            who.append(resource.RUSAGE_SELF)
        if self.children:
            who.append(resource.RUSAGE_CHILDREN)
        usage = [resource.getrusage(w) for w in who]
        return (sum(u.ru_utime for u in usage),
                sum(u.ru_stime for u in usage))

    def start(self):
        self.rss_before = proc_status('VmRSS')
        self.peak_reset = reset_peak_rss()
        self._cpu0 = self._cpu_now()
        self._t0 = time.perf_counter()
        return self

    def stop(self):
        seconds = time.perf_counter() - self._t0
        user, system = (b - a for a, b in zip(self._cpu0, self._cpu_now(),
                                             strict=True))
        if self.children and not self.self_cpu:
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            growth = peak * KIB
        else:
            if self.peak_reset:
                peak = proc_status('VmHWM')
            else:
                peak = resource.getrusage(
                    resource.RUSAGE_SELF).ru_maxrss * KIB
            growth = max(0, peak - self.rss_before)
        return {'seconds': seconds, 'cpu_seconds': user + system,
                'user_seconds': user, 'system_seconds': system,
                'rss_before_bytes': self.rss_before,
                'rss_growth_bytes': growth,
                'peak_reset': self.peak_reset}


def rates(size_bytes, measured):
    """MiB/s, CPU s per GiB and RSS growth in MiB from a stop() result."""
    gib = size_bytes / float(1 << 30)
    return {
        'mib_per_s': size_bytes / float(1 << 20) / max(measured['seconds'],
                                                       1e-9),
        'cpu_s_per_gib': measured['cpu_seconds'] / gib,
        'rss_growth_mib': measured['rss_growth_bytes'] / float(1 << 20),
    }
