"""Bench section: a soak of boot/delete cycles through real Nova.

Issue 6, load: ``--soak-cycles`` (default 500) cycles, each a server
booted through Nova's API (POST, then polled until ACTIVE) and deleted
(DELETE, then polled until Nova answers 404), ``--soak-concurrency``
(default 4) of them in flight at once. Nova runs in-process in a worker
process (API, conductor, scheduler, placement and a compute with
vcdriver: ``tests/harness/nova.py``'s ``VcdriverTestCase``, run as one
unittest), under eventlet (concurrent builds through Nova's API deadlock
in Nova's test fixtures under native threads, see tox.ini); its compute
serves two clusters of a vcsim launcher (``tools/vcsim``), and its
images come from a real Glance (``tests/harness/glance.py``); both are
started by the orchestrating process.

Figures (``soak.``): ``cycles``, ``errors`` (servers that ended in ERROR),
``seconds``, ``cycles_per_min``, ``spawn_p50_ms``/``spawn_p99_ms`` (POST
to ACTIVE, nearest rank), ``delete_p50_ms``/``delete_p99_ms`` (DELETE to
404), ``rss_start_mib``, ``rss_end_mib``, ``rss_max_mib`` and
``rss_slope_mib_per_100`` (least squares over the checkpoints: start,
every 10 % of the cycles, end), ``threads_start``/``threads_end``
(``threading.active_count``), ``os_threads_start``/``os_threads_end``
(``Threads`` of /proc/self/status), ``sockets_start``/``sockets_end``
(socket fds in /proc/self/fd), ``greenthreads_start``/
``greenthreads_end`` (live greenlets, eventlet only), ``fds_start``/
``fds_end``.

One untimed warm-up cycle comes before the start figures (it fills the
datastore image cache and imports what the first spawn imports). At each
checkpoint, before RSS is read, the worker drops what only the test
harness accumulates (its captured log and fake notifications) and runs
the garbage collector: what grows after that is Nova's (its in-memory
sqlite databases keep soft-deleted rows) or the driver's. With
``VCDRIVER_SOAK_TRACE=1`` the worker also reports which object types
grew most between start and end.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time

from tools.bench import report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

NAME = 'soak'
DEFAULT_CYCLES = 500
DEFAULT_CONCURRENCY = 4
CHECKPOINTS = 10                 # every 10 % of the cycles
CLUSTERS = 2
HOSTS_PER_CLUSTER = 3
HOST_MEMORY_MB = 256 * 1024
HOST_CPU_CORES = 64
IMAGE_SIZE = 2 * 1024 * 1024
CYCLE_TIMEOUT = 300.0            # one boot or one delete, seconds
POLL = 0.05
WORKER_TIMEOUT = 4 * 3600
RESULT_MARK = 'SOAK-RESULT '
MiB = 1024 * 1024

FIGURES = (
    'cycles', 'errors', 'concurrency', 'seconds', 'cycles_per_min',
    'spawn_p50_ms', 'spawn_p99_ms', 'delete_p50_ms', 'delete_p99_ms',
    'rss_start_mib', 'rss_end_mib', 'rss_max_mib', 'rss_slope_mib_per_100',
    'threads_start', 'threads_end', 'os_threads_start', 'os_threads_end',
    'sockets_start', 'sockets_end', 'fds_start', 'fds_end',
    'greenthreads_start', 'greenthreads_end',
)


def figure_name(metric):
    return '%s.%s' % (NAME, metric)


# -- statistics (pure) -------------------------------------------------------

def percentile(values, pct):
    """Nearest-rank percentile (None for no values)."""
    values = sorted(values)
    if not values:
        return None
    rank = max(1, int(math.ceil(pct / 100.0 * len(values))))
    return values[min(rank, len(values)) - 1]


def slope(points):
    """Least-squares slope of ``[(x, y)]``; None under two distinct x."""
    points = [(float(x), float(y)) for x, y in points if y is not None]
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx


def checkpoint_marks(cycles, parts=CHECKPOINTS):
    """Cycle counts after which a checkpoint is taken: every 1/parts of
    ``cycles`` (distinct, ascending, ending at ``cycles``)."""
    if cycles <= 0:
        return []
    return sorted({max(1, int(round(cycles * i / float(parts))))
                   for i in range(1, parts + 1)})


def figures(result):
    """Flat ``soak.*`` figures from a worker result."""
    spawn = [ms for ms in result['spawn_ms'] if ms is not None]
    delete = [ms for ms in result['delete_ms'] if ms is not None]
    points = result['checkpoints']
    start, end = points[0], points[-1]
    out = {
        'cycles': result['cycles'],
        'errors': result['errors'],
        'concurrency': result['concurrency'],
        'seconds': result['seconds'],
        'cycles_per_min': (result['cycles'] * 60.0
                           / max(result['seconds'], 1e-9)),
        'spawn_p50_ms': percentile(spawn, 50),
        'spawn_p99_ms': percentile(spawn, 99),
        'delete_p50_ms': percentile(delete, 50),
        'delete_p99_ms': percentile(delete, 99),
        'rss_start_mib': start['rss_mib'],
        'rss_end_mib': end['rss_mib'],
        'rss_max_mib': max(p['rss_mib'] for p in points),
    }
    fit = slope([(p['cycle'], p['rss_mib']) for p in points])
    if fit is not None:
        out['rss_slope_mib_per_100'] = fit * 100.0
    for key in ('threads', 'os_threads', 'sockets', 'fds', 'greenthreads'):
        if start.get(key) is not None:
            out[key + '_start'] = start[key]
        if end.get(key) is not None:
            out[key + '_end'] = end[key]
    return {figure_name(k): v for k, v in out.items() if v is not None}


def _fmt(value, digits=1):
    return report.fmt_number(value, digits)


def _int(value):
    return '-' if value is None else '%d' % value


def format_results(figs, result, notes=()):
    def f(metric):
        return figs.get(figure_name(metric))

    lines = ['Soak (issue 6): %s boot/delete cycles through real Nova, %s '
             'in flight, %s; one compute, %d clusters of vcsim'
             % (_int(f('cycles')), _int(f('concurrency')),
                result.get('mode', 'eventlet'), CLUSTERS), '']
    lines.append(report.format_table(
        ['cycles', 'errors', 'seconds', 'cycles/min', 'spawn p50 ms',
         'spawn p99 ms', 'delete p50 ms', 'delete p99 ms'],
        [[_int(f('cycles')), _int(f('errors')), _fmt(f('seconds')),
          _fmt(f('cycles_per_min')), _fmt(f('spawn_p50_ms'), 0),
          _fmt(f('spawn_p99_ms'), 0), _fmt(f('delete_p50_ms'), 0),
          _fmt(f('delete_p99_ms'), 0)]], align='r' * 8))
    lines.append('')
    rows = []
    for p in result['checkpoints']:
        rows.append([p['label'], _int(p['cycle']), _fmt(p['rss_mib']),
                     _int(p.get('threads')), _int(p.get('os_threads')),
                     _int(p.get('greenthreads')), _int(p.get('sockets')),
                     _int(p.get('fds'))])
    lines.append('the worker process (Nova and the driver) at each '
                 'checkpoint:')
    lines.append(report.format_table(
        ['checkpoint', 'cycles', 'RSS MiB', 'threads', 'OS threads',
         'greenthreads', 'sockets', 'fds'], rows, align='l' + 'r' * 7))
    lines.append('')
    lines.append('RSS least-squares slope: %s MiB per 100 cycles (start '
                 '%s, end %s, max %s MiB)'
                 % (_fmt(f('rss_slope_mib_per_100'), 2),
                    _fmt(f('rss_start_mib')), _fmt(f('rss_end_mib')),
                    _fmt(f('rss_max_mib'))))
    lines.extend(notes)
    return '\n'.join(lines).rstrip()


# -- the worker (a fresh process with Nova in it) ----------------------------

def _proc_status_int(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return None


def _fds():
    kinds = {'sockets': 0, 'fds': 0}
    for name in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink('/proc/self/fd/' + name)
        except OSError:
            continue  # closed while we looked (the listing's own fd)
        kinds['fds'] += 1
        if target.startswith('socket:'):
            kinds['sockets'] += 1
    return kinds


def _greenthreads():
    if 'eventlet' not in sys.modules:
        return None
    try:
        import eventlet.patcher
        if not eventlet.patcher.is_monkey_patched('thread'):
            return None
        import gc

        import greenlet
    except ImportError:
        return None
    return sum(1 for o in gc.get_objects()
               if isinstance(o, greenlet.greenlet) and not o.dead)


def sample(label, cycle):
    """The process's figures now."""
    import threading
    out = {'label': label, 'cycle': cycle,
           'rss_mib': _proc_status_int('VmRSS') / 1024.0,
           'threads': threading.active_count(),
           'os_threads': _proc_status_int('Threads'),
           'greenthreads': _greenthreads()}
    out.update(_fds())
    return out


def _type_counts():
    import collections
    import gc
    return collections.Counter(type(o).__qualname__
                               for o in gc.get_objects())


def _growth(before, after, top=15):
    """The types whose live object count grew most."""
    grown = [(after[k] - before.get(k, 0), k) for k in after]
    return ['%s +%d' % (k, n) for n, k in sorted(grown, reverse=True)[:top]
            if n > 0]


def _make_case(spec):
    """A VcdriverTestCase whose one test runs the soak (imports Nova)."""
    import types

    from tests.harness import nova as nova_harness  # nova first
    from tests.harness import vcsim as vcsim_harness

    sim = vcsim_harness.Vcsim()
    for key in ('url', 'host', 'port', 'username', 'password',
                'datastores', 'clusters'):
        setattr(sim, key, spec['vcsim'][key])

    class Soak(nova_harness.VcdriverTestCase):
        cast_as_call = False
        clusters = tuple(spec['vcsim']['clusters'])
        vcsim = sim
        glance = types.SimpleNamespace(url=spec['glance_url'])
        result = {}

        def configure(self):
            super().configure()
            self.flags(instances=-1, cores=-1, ram=-1, group='quota')

        def test_soak(self):
            type(self).result.update(_soak(self, spec))

    return Soak


def _housekeeping(case):
    """Drop what only the harness accumulates; collect garbage.

    Nova's soft-deleted rows stay: archiving them (``nova-manage db
    archive_deleted_rows``' functions) reflects every table into new
    SQLAlchemy metadata on each call, which grows the process by more
    than the rows take.
    """
    import gc
    case.stdlog.logger.reset_output()
    case.notifier.reset()
    gc.collect()


def _wait(case, server_id, done, timeout):
    """Poll until ``done(server or None)``; returns the last answer."""
    from nova.tests.functional.api import client
    deadline = time.monotonic() + timeout
    while True:
        try:
            server = case.api.get_server(server_id)
        except client.OpenStackApiNotFoundException:
            server = None
        if done(server):
            return server
        if time.monotonic() > deadline:
            raise RuntimeError('server %s still %s after %.0f s'
                               % (server_id, server and server['status'],
                                  timeout))
        time.sleep(POLL)


def _cycle(case, image_id):
    """Boot and delete one server: (spawn ms, delete ms, status)."""
    t0 = time.monotonic()
    server = case.create_server(image_id)
    server = _wait(case, server['id'],
                   lambda s: s is not None and s['status'] != 'BUILD',
                   CYCLE_TIMEOUT)
    t1 = time.monotonic()
    case.api.delete_server(server['id'])
    _wait(case, server['id'], lambda s: s is None, CYCLE_TIMEOUT)
    t2 = time.monotonic()
    return (t1 - t0) * 1000.0, (t2 - t1) * 1000.0, server['status']


def _soak(case, spec):
    import threading

    cycles = spec['cycles']
    marks = checkpoint_marks(cycles)
    image_id = spec['image_id']
    _cycle(case, image_id)  # warm-up, untimed
    _housekeeping(case)
    trace = os.environ.get('VCDRIVER_SOAK_TRACE')
    types_before = _type_counts() if trace else None
    checkpoints = [sample('start', 0)]
    spawn_ms, delete_ms, failures = [], [], []
    lock = threading.Lock()
    state = {'started': 0, 'done': 0, 'errors': 0}

    def one_worker():
        while True:
            with lock:
                if state['started'] >= cycles or failures:
                    return
                state['started'] += 1
            try:
                s_ms, d_ms, status = _cycle(case, image_id)
            except Exception as e:
                failures.append(repr(e))
                return
            with lock:
                spawn_ms.append(s_ms)
                delete_ms.append(d_ms)
                state['done'] += 1
                if status != 'ACTIVE':
                    state['errors'] += 1
                done = state['done']
            if done in marks and done != cycles:
                _housekeeping(case)
                checkpoints.append(sample('%d %%' % round(
                    100.0 * done / cycles), done))
                last = checkpoints[-1]
                print('soak: %d/%d cycles, RSS %.1f MiB, %d threads, %s '
                      'greenthreads, %d sockets'
                      % (done, cycles, last['rss_mib'], last['threads'],
                         last['greenthreads'], last['sockets']),
                      file=sys.stderr, flush=True)

    started = time.monotonic()
    workers = [threading.Thread(target=one_worker, name='soak-%d' % i)
               for i in range(spec['concurrency'])]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.monotonic() - started
    if failures:
        raise RuntimeError('soak stopped after %d cycles: %s'
                           % (state['done'], failures[0]))
    _housekeeping(case)
    checkpoints.append(sample('end', state['done']))
    if trace:
        print('soak: objects grown: %s' % ', '.join(
            _growth(types_before, _type_counts())), file=sys.stderr,
            flush=True)
    return {'cycles': state['done'], 'errors': state['errors'],
            'concurrency': spec['concurrency'], 'seconds': seconds,
            'spawn_ms': spawn_ms, 'delete_ms': delete_ms,
            'checkpoints': checkpoints, 'mode': 'eventlet'}


def worker_main(spec_json):
    import unittest

    spec = json.loads(spec_json)
    case_class = _make_case(spec)
    outcome = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        unittest.TestSuite([case_class('test_soak')]))
    if not outcome.wasSuccessful() or not case_class.result:
        return 1
    sys.stdout.write(RESULT_MARK + json.dumps(case_class.result) + '\n')
    sys.stdout.flush()
    return 0


# -- the orchestrator ---------------------------------------------------------

def _say(fmt, *args):
    print(fmt % args, file=sys.stderr, flush=True)


def _run_worker(spec, log):
    argv = [sys.executable, '-m', 'tools.bench.soak', 'worker',
            json.dumps(spec)]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT] + [p for p in env.get('PYTHONPATH', '').split(
            os.pathsep) if p])
    env['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = 'false'
    # The worker's log goes to a file (its progress lines can be followed
    # there while it runs).
    with tempfile.NamedTemporaryFile('w+', prefix='vcdriver-soak-',
                                     suffix='.log', delete=False) as errf:
        log('bench: %s: worker log %s', NAME, errf.name)
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=errf,
                                text=True)
        try:
            out, _ = proc.communicate(timeout=WORKER_TIMEOUT)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        errf.seek(0)
        err = errf.read()
    os.unlink(errf.name)
    for line in err.splitlines():
        if line.startswith('soak: ') or os.environ.get(
                'VCDRIVER_BENCH_VERBOSE'):
            log('bench: %s', line)
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError('soak worker failed (exit %d):\n%s'
                           % (proc.returncode, err[-6000:]))
    return json.loads(lines[-1][len(RESULT_MARK):])


def run(args, log=_say):
    """Run the section; returns (figures, text report)."""
    from tests.harness import glance as glance_harness
    from tests.harness import vcsim as vcsim_harness

    if args.soak_cycles < 1 or args.soak_concurrency < 1:
        raise ValueError('--soak-cycles and --soak-concurrency must be '
                         'at least 1')
    started = time.monotonic()
    sim = vcsim_harness.Vcsim(clusters=CLUSTERS,
                              hosts_per_cluster=HOSTS_PER_CLUSTER, nfs=1,
                              host_memory_mb=HOST_MEMORY_MB,
                              host_cpu_cores=HOST_CPU_CORES)
    with sim, glance_harness.Glance() as glance:
        data = (b'vcdriver-soak-disk-' * (IMAGE_SIZE // 19 + 1))[
            :IMAGE_SIZE]
        image = glance.upload(data, 'soak', disk_format='vmdk',
                              container_format='bare')
        spec = {'cycles': args.soak_cycles,
                'concurrency': args.soak_concurrency,
                'image_id': image['id'], 'glance_url': glance.url,
                'vcsim': {'url': sim.url, 'host': sim.host,
                          'port': sim.port, 'username': sim.username,
                          'password': sim.password,
                          'datastores': sim.datastores,
                          'clusters': list(sim.clusters)[:CLUSTERS]}}
        log('bench: %s: %d cycles, %d in flight', NAME, args.soak_cycles,
            args.soak_concurrency)
        result = _run_worker(spec, log)
    figs = figures(result)
    notes = ['']
    notes += result.get('notes', [])
    notes.append('%.0f s in all; load average at the end %.2f (2 cores, '
                 'shared)' % (time.monotonic() - started,
                              os.getloadavg()[0]))
    return figs, format_results(figs, result, notes)


def add_arguments(parser):
    group = parser.add_argument_group('soak')
    group.add_argument('--soak-cycles', type=int, default=DEFAULT_CYCLES,
                       help='boot/delete cycles (default %d)'
                            % DEFAULT_CYCLES)
    group.add_argument('--soak-concurrency', type=int,
                       default=DEFAULT_CONCURRENCY,
                       help='cycles in flight at once (default %d)'
                            % DEFAULT_CONCURRENCY)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['worker'] and len(argv) == 2:
        return worker_main(argv[1])
    print('usage: python -m tools.bench.soak worker SPEC_JSON (run by '
          'python -m tools.bench)', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
