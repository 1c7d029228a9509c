"""Bench section: a soak of boot/delete cycles through real Nova.

Issue 6, load: ``--soak-cycles`` (default 500) cycles, each a server
booted through Nova's API (POST, then polled until ACTIVE) and deleted
(DELETE, then polled until Nova answers 404), ``--soak-concurrency``
(default 4) of them in flight at once. Nova runs in-process in a worker
process (API, conductor, scheduler, placement and a compute with
vcdriver: ``tests/harness/nova.py``'s ``VcdriverTestCase``, run as one
unittest), in native-threading mode as Nova 34 runs by default, or under
eventlet with ``--soak-eventlet``; its compute
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
``fds_end``, ``objects_start``/``objects_end``, ``blocks_start``/
``blocks_end``, ``warmup`` (cycles before the start figures) and
``purged_rows`` (database rows dropped at the checkpoints).

``--soak-warmup`` untimed cycles (default 50, run as the others are)
come before the start figures: they fill the datastore image cache,
import what the first spawn imports and fill the pools and caches that
are bounded (connection pools, SQLAlchemy's statement cache), so that
the start figure is a process at work, not one just started. At each
checkpoint, before anything is read, the worker drops what only the
in-process set-up accumulates and runs the garbage collector:

- the harness's captured log and fake notifications;
- the rows of servers deleted more than ``PURGE_AFTER`` seconds ago from
  Nova's in-memory sqlite databases (soft-deleted rows and the rows that
  name those instances), as ``nova-manage db archive_deleted_rows
  --purge`` does in production, where those rows live in a database
  server, not in the compute's memory;
- Nova's ``nova.objects.ec2`` memo (one entry per server, kept a week),
  which lives in nova-api in production.

What grows after that is the driver's (or the rest of nova-compute's).
``objects`` (live objects the garbage collector tracks) and ``blocks``
(``sys.getallocatedblocks``) show the Python heap beside RSS. With
``VCDRIVER_SOAK_TRACE=1`` the worker also reports which object types
grew most between start and end.
"""

import json
import math
import os
import sys
import time

from tools.bench import report
from tools.bench import worker

NAME = 'soak'
DEFAULT_CYCLES = 500
DEFAULT_CONCURRENCY = 4
DEFAULT_WARMUP = 50
PURGE_AFTER = 30.0               # seconds a deleted server's rows stay
CHECKPOINTS = 10                 # every 10 % of the cycles
CLUSTERS = 2
HOSTS_PER_CLUSTER = 3
HOST_MEMORY_MB = 256 * 1024
HOST_CPU_CORES = 64
IMAGE_SIZE = 2 * 1024 * 1024
CYCLE_TIMEOUT = 300.0            # one boot or one delete, seconds
POLL = 0.05
WORKER_TIMEOUT = 4 * 3600
MiB = 1024 * 1024

FIGURES = (
    'cycles', 'errors', 'concurrency', 'seconds', 'cycles_per_min',
    'spawn_p50_ms', 'spawn_p99_ms', 'delete_p50_ms', 'delete_p99_ms',
    'rss_start_mib', 'rss_end_mib', 'rss_max_mib', 'rss_slope_mib_per_100',
    'threads_start', 'threads_end', 'os_threads_start', 'os_threads_end',
    'sockets_start', 'sockets_end', 'fds_start', 'fds_end',
    'greenthreads_start', 'greenthreads_end', 'objects_start',
    'objects_end', 'blocks_start', 'blocks_end', 'warmup', 'purged_rows',
    'rss_trimmed_start_mib', 'rss_trimmed_end_mib',
    'rss_trimmed_slope_mib_per_100', 'malloc_used_start_mib',
    'malloc_used_end_mib', 'malloc_used_slope_mib_per_100',
    'malloc_free_start_mib', 'malloc_free_end_mib',
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
        'warmup': result.get('warmup'),
        'purged_rows': result.get('purged_rows'),
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
    for key in ('rss', 'rss_trimmed', 'malloc_used'):
        fit = slope([(p['cycle'], p.get(key + '_mib')) for p in points])
        if fit is not None:
            out[key + '_slope_mib_per_100'] = fit * 100.0
    for key in ('rss_trimmed', 'malloc_used', 'malloc_free'):
        if start.get(key + '_mib') is not None:
            out[key + '_start_mib'] = start[key + '_mib']
            out[key + '_end_mib'] = end[key + '_mib']
    for key in ('threads', 'os_threads', 'sockets', 'fds', 'greenthreads',
                'objects', 'blocks'):
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
             'in flight, %s; one compute, %d clusters of vcsim; %s warm-up '
             'cycles before the start figures'
             % (_int(f('cycles')), _int(f('concurrency')),
                result.get('mode', 'eventlet'), CLUSTERS,
                _int(f('warmup'))), '']
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
                     _int(p.get('fds')), _int(p.get('objects')),
                     _int(p.get('blocks')), _fmt(p.get('malloc_used_mib')),
                     _fmt(p.get('malloc_free_mib')),
                     _fmt(p.get('rss_trimmed_mib'))])
    lines.append('the worker process (Nova and the driver) at each '
                 'checkpoint:')
    lines.append(report.format_table(
        ['checkpoint', 'cycles', 'RSS MiB', 'threads', 'OS threads',
         'greenthreads', 'sockets', 'fds', 'objects', 'blocks',
         'malloc used', 'malloc free', 'RSS trimmed'], rows,
        align='l' + 'r' * 12))
    lines.append('')
    lines.append('RSS least-squares slope: %s MiB per 100 cycles (start '
                 '%s, end %s, max %s MiB)'
                 % (_fmt(f('rss_slope_mib_per_100'), 2),
                    _fmt(f('rss_start_mib')), _fmt(f('rss_end_mib')),
                    _fmt(f('rss_max_mib'))))
    if f('malloc_used_slope_mib_per_100') is not None:
        lines.append('malloc in use: %s MiB per 100 cycles; RSS once the '
                     'allocator has handed back its free memory '
                     '(malloc_trim): %s MiB per 100 cycles'
                     % (_fmt(f('malloc_used_slope_mib_per_100'), 2),
                        _fmt(f('rss_trimmed_slope_mib_per_100'), 2)))
    if f('purged_rows') is not None:
        lines.append("%s rows of deleted servers purged from Nova's "
                     'in-memory databases at the checkpoints'
                     % _int(f('purged_rows')))
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
    except ImportError:
        return None
    return len(_live_greenlets())


def _live_greenlets():
    try:
        import greenlet
    except ImportError:
        return []
    import gc
    return [o for o in gc.get_objects()
            if isinstance(o, greenlet.greenlet) and not o.dead]


def sample(label, cycle):
    """The process's figures now."""
    import gc
    import threading
    out = {'label': label, 'cycle': cycle,
           'objects': len(gc.get_objects()),
           'blocks': sys.getallocatedblocks(),
           'rss_mib': _proc_status_int('VmRSS') / 1024.0,
           'threads': threading.active_count(),
           'os_threads': _proc_status_int('Threads'),
           'greenthreads': _greenthreads()}
    out.update(_fds())
    out.update(_malloc())
    return out


def _malloc():
    """glibc's heap: what is in use, what it holds free, and RSS once
    the free part is handed back (malloc_trim). RSS can grow while the
    Python heap and the C heap in use stay flat: free memory the
    allocator keeps in fragments; these tell the two apart."""
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
            'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

    try:
        libc = ctypes.CDLL('libc.so.6')
        libc.mallinfo2.restype = Mallinfo2
    except (OSError, AttributeError):
        return {}   # not glibc 2.33+
    info = libc.mallinfo2()
    libc.malloc_trim(0)
    return {'malloc_used_mib': (info.uordblks + info.hblkhd) / MiB,
            'malloc_free_mib': info.fordblks / MiB,
            'rss_trimmed_mib': _proc_status_int('VmRSS') / 1024.0}


def _type_counts():
    import collections
    import gc
    return collections.Counter(type(o).__qualname__
                               for o in gc.get_objects())


def _thread_kinds():
    """{thread name with its numbers as N: live threads}: which kind grows
    when the thread count does."""
    import collections
    import re
    import threading
    return collections.Counter(re.sub(r'\d+', 'N', t.name)
                               for t in threading.enumerate())


def _growth(before, after, top=15):
    """The keys whose count grew most."""
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
    """Drop what only the in-process set-up accumulates (module
    docstring); collect garbage. Returns the database rows purged."""
    import gc

    from nova.objects import ec2
    case.stdlog.logger.reset_output()
    case.notifier.reset()
    ec2._CACHE = None
    purged = _purge_deleted_servers(case)
    gc.collect()
    return purged


def _purge_deleted_servers(case):
    """Delete the rows of servers deleted over ``PURGE_AFTER`` seconds
    ago from every cell database and the API database, without reflecting
    tables (Nova's archive code reflects every table on each call, which
    grows the process by more than the rows take)."""
    import datetime

    from nova import context as nova_context
    from nova.db.api import api as api_db
    from nova.db.api import models as api_models
    from nova.db.main import api as main_db
    from nova.db.main import models as main_models
    from oslo_utils import timeutils

    cutoff = (timeutils.utcnow()
              - datetime.timedelta(seconds=PURGE_AFTER))
    ctxt = nova_context.get_admin_context()
    gone, purged = [], 0
    for cell in case.cell_mappings.values():
        with nova_context.target_cell(ctxt, cell) as cctxt:
            engine = main_db.get_engine(context=cctxt)
            with engine.begin() as conn:
                instances = main_models.Instance.__table__
                uuids = [row[0] for row in conn.execute(
                    instances.select().with_only_columns(instances.c.uuid)
                    .where(instances.c.deleted != 0)
                    .where(instances.c.deleted_at < cutoff))]
                gone += uuids
                purged += _purge(conn, main_models.BASE.metadata, uuids,
                                 cutoff)
    with api_db.get_engine().begin() as conn:
        purged += _purge(conn, api_models.BASE.metadata, gone, cutoff)
    return purged


def _purge(conn, metadata, uuids, cutoff):
    """Rows naming one of ``uuids``, and soft-deleted rows older than
    ``cutoff``, from every table of ``metadata``; the count."""
    purged = 0
    for table in reversed(metadata.sorted_tables):
        cols = table.c
        if 'instance_uuid' in cols and uuids:
            for i in range(0, len(uuids), 500):
                purged += conn.execute(table.delete().where(
                    cols.instance_uuid.in_(uuids[i:i + 500]))).rowcount
        if 'deleted' in cols and 'deleted_at' in cols:
            purged += conn.execute(table.delete().where(
                cols.deleted != 0).where(
                cols.deleted_at < cutoff)).rowcount
    return purged


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
            # Where every thread and greenthread is, in the worker's log:
            # enough to tell a lost message from a wait that never ends.
            _dump_stacks()
            where = server and ' (task_state %s, host %s)' % (
                server.get('OS-EXT-STS:task_state'),
                server.get('OS-EXT-SRV-ATTR:host'))
            raise RuntimeError('server %s still %s%s after %.0f s'
                               % (server_id, server and server['status'],
                                  where or '', timeout))
        time.sleep(POLL)


def _dump_stacks():
    import traceback
    frames = list(sys._current_frames().items())
    frames += [('greenlet %x' % id(g), g.gr_frame)
               for g in _live_greenlets() if g.gr_frame]
    for name, frame in frames:
        sys.stderr.write('--- stack of %s\n%s' % (
            name, ''.join(traceback.format_stack(frame))))
    sys.stderr.flush()


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


def _run_cycles(case, image_id, count, concurrency, on_done=None):
    """``count`` cycles, ``concurrency`` at a time; ``on_done(n)`` after
    the n-th. Returns (spawn ms, delete ms, errors); raises on the first
    cycle that could not finish."""
    import threading

    spawn_ms, delete_ms, failures = [], [], []
    lock = threading.Lock()
    state = {'started': 0, 'done': 0, 'errors': 0}

    def one_worker():
        while True:
            with lock:
                if state['started'] >= count or failures:
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
            if on_done is not None:
                on_done(done)

    workers = [threading.Thread(target=one_worker, name='soak-%d' % i)
               for i in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise RuntimeError('soak stopped after %d cycles: %s'
                           % (state['done'], failures[0]))
    return spawn_ms, delete_ms, state['errors']


def _soak(case, spec):
    cycles = spec['cycles']
    marks = checkpoint_marks(cycles)
    image_id = spec['image_id']
    warmup = max(1, spec.get('warmup', DEFAULT_WARMUP))
    _run_cycles(case, image_id, warmup, spec['concurrency'])
    purged = _housekeeping(case)
    trace = os.environ.get('VCDRIVER_SOAK_TRACE')
    types_before = _type_counts() if trace else None
    threads_before = _thread_kinds()
    checkpoints = [sample('start', 0)]

    def checkpoint(done):
        nonlocal purged
        if done not in marks or done == cycles:
            return
        purged += _housekeeping(case)
        checkpoints.append(sample('%d %%' % round(100.0 * done / cycles),
                                  done))
        last = checkpoints[-1]
        print('soak: %d/%d cycles, RSS %.1f MiB, %d threads, %s '
              'greenthreads, %d sockets, %d objects'
              % (done, cycles, last['rss_mib'], last['threads'],
                 last['greenthreads'], last['sockets'], last['objects']),
              file=sys.stderr, flush=True)

    started = time.monotonic()
    spawn_ms, delete_ms, errors = _run_cycles(
        case, image_id, cycles, spec['concurrency'], checkpoint)
    seconds = time.monotonic() - started
    # The last cycles' rows are purged once they are old enough.
    time.sleep(PURGE_AFTER)
    purged += _housekeeping(case)
    checkpoints.append(sample('end', cycles))
    print('soak: threads grown: %s' % (', '.join(
        _growth(threads_before, _thread_kinds())) or 'none'),
        file=sys.stderr, flush=True)
    if trace:
        print('soak: objects grown: %s' % ', '.join(
            _growth(types_before, _type_counts())), file=sys.stderr,
            flush=True)
    return {'cycles': cycles, 'errors': errors, 'warmup': warmup,
            'purged_rows': purged,
            'concurrency': spec['concurrency'], 'seconds': seconds,
            'spawn_ms': spawn_ms, 'delete_ms': delete_ms,
            'checkpoints': checkpoints,
            'mode': 'eventlet' if spec.get('eventlet') else 'native threads'}


def worker_main(spec_json):
    import unittest

    spec = json.loads(spec_json)
    case_class = _make_case(spec)
    outcome = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        unittest.TestSuite([case_class('test_soak')]))
    if not outcome.wasSuccessful() or not case_class.result:
        return 1
    return worker.emit(case_class.result)


# -- the orchestrator ---------------------------------------------------------

def _say(fmt, *args):
    print(fmt % args, file=sys.stderr, flush=True)


def _echo_progress(err, log):
    """The worker's progress lines; all its log with VCDRIVER_BENCH_VERBOSE."""
    for line in err.splitlines():
        if line.startswith('soak: ') or os.environ.get(worker.VERBOSE):
            log('bench: %s', line)


def _run_worker(spec, log):
    # Nova in the mode asked for; the worker's log goes to a file, where
    # its progress lines can be followed while it runs.
    native = 'false' if spec.get('eventlet') else 'true'
    return worker.run(NAME, spec, log, WORKER_TIMEOUT,
                      env={'OS_NOVA_DISABLE_EVENTLET_PATCHING': native},
                      log_file_prefix='vcdriver-soak-', echo=_echo_progress,
                      stderr_tail=6000)


def run(args, log=_say):
    """Run the section; returns (figures, text report)."""
    from tests.harness import glance as glance_harness
    from tests.harness import vcsim as vcsim_harness

    if min(args.soak_cycles, args.soak_concurrency, args.soak_warmup) < 1:
        raise ValueError('--soak-cycles, --soak-concurrency and '
                         '--soak-warmup must be at least 1')
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
                'warmup': args.soak_warmup,
                'eventlet': args.soak_eventlet,
                'image_id': image['id'], 'glance_url': glance.url,
                'vcsim': {'url': sim.url, 'host': sim.host,
                          'port': sim.port, 'username': sim.username,
                          'password': sim.password,
                          'datastores': sim.datastores,
                          'clusters': list(sim.clusters)[:CLUSTERS]}}
        log('bench: %s: %d cycles, %d in flight, %s', NAME,
            args.soak_cycles, args.soak_concurrency,
            'eventlet' if args.soak_eventlet else 'native threads')
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
    group.add_argument('--soak-warmup', type=int, default=DEFAULT_WARMUP,
                       help='untimed cycles before the start figures '
                            '(default %d)' % DEFAULT_WARMUP)
    group.add_argument('--soak-eventlet', action='store_true',
                       help='run Nova under eventlet (default: native '
                            "threads, Nova 34's default)")


def main(argv=None):
    return worker.main(argv, worker_main, NAME)


if __name__ == '__main__':
    sys.exit(main())
