"""Bench section: the driver in a real OpenStack on this machine.

The in-process soak (``soak.py``) runs all of Nova in one process; this
section asks the same questions of the stack ``tools/stack`` starts:
MariaDB, RabbitMQ, Keystone, Glance, Placement, Nova's API, conductor and
scheduler, and two nova-compute services running vcdriver on our vcsim
launcher (``compute1`` serving clusters DC0_C0 and DC0_C1, ``compute2``
DC0_C2), each a process of its own, as deployed. Everything is driven
through openstacksdk as the admin, servers booted with no network
(``--nic none``) and flavor ``bench-tiny`` (1 vCPU, 512 MB, 1 GB).

The stack lives in its own state directory (``--stack-root``, default
``.cache/stack-bench``), Nova's services in native threads unless
``--stack-eventlet``; it is downed at the end unless ``--stack-keep``.

Part one, time to ACTIVE (``--stack-in-flight``, default 1,10,30; empty
skips it): for each N a fresh qcow2 image (64 MiB, 1 MiB written with a
pattern of its own) is uploaded, N servers are booted from it at once (N
``create_server`` calls from N threads, each with a connection of its
own): ``uncached``, the first boot of the image on each datastore is
among them; all are deleted, then N more are booted from the same image:
``cached``. A server's time is from just before its POST to the first
listing (every ``POLL`` s) that shows it ACTIVE.

Part two, a soak (``--stack-soak-cycles``, default 300; 0 skips it):
cycles of one server booted (POST, polled until ACTIVE) and deleted
(DELETE, polled until 404), ``--stack-soak-in-flight`` (default 4) at
once, from an image first booted once on every node, then
``--stack-soak-warmup`` (default 20) untimed cycles. At the start, at
every 10 % of the cycles and at the end, each nova-compute's process (and
any it forked) is read from /proc: RSS, threads, file descriptors. Unlike
the in-process soak nothing is dropped or collected first: these are the
processes as they run.

Figures (``stack.``): ``up_seconds`` (what ``Stack.up`` took: seconds to
start what was not running); ``{image}_n{n}_p50_s``/``_p95_s`` (time to
ACTIVE, nearest rank) and ``{image}_n{n}_errors`` (servers that ended in
ERROR, or whose POST failed, or still building after ``BATCH_TIMEOUT``),
``{image}`` ``uncached`` or ``cached``, ``{n}`` each N in flight;
``soak_cycles``, ``soak_in_flight``, ``soak_warmup``, ``soak_errors``,
``soak_seconds``, ``soak_cycles_per_min``,
``soak_boot_p50_s``/``soak_boot_p95_s`` (POST to ACTIVE),
``soak_delete_p50_s``/``soak_delete_p95_s`` (DELETE to 404), and for each
``{compute}`` (``compute1``, ``compute2``): ``soak_rss_start_mib_``,
``soak_rss_end_mib_``, ``soak_rss_max_mib_``,
``soak_rss_slope_mib_per_100_`` (least squares over the checkpoints),
``soak_threads_start_``/``soak_threads_end_`` and
``soak_fds_start_``/``soak_fds_end_``, each followed by the compute.
"""

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from concurrent import futures

from tools.bench import report
from tools.bench import soak

NAME = 'stack'
DEFAULT_IN_FLIGHT = '1,10,30'
DEFAULT_SOAK_CYCLES = 300
DEFAULT_SOAK_IN_FLIGHT = 4
DEFAULT_SOAK_WARMUP = 20
IMAGES = ('uncached', 'cached')
FLAVOR = {'name': 'bench-tiny', 'vcpus': 1, 'ram': 512, 'disk': 1}
PREFIX = 'bench-stack-'     # every server and image this section makes
POLL = 0.5                  # seconds between listings
BATCH_TIMEOUT = 900.0       # a bound on a hang, not an expectation
CYCLE_TIMEOUT = 600.0       # one boot or one delete of the soak
FAILURES_IN_A_ROW = 5       # soak cycles failing in a row end the soak
MiB = 1024 * 1024

SOAK_FIGURES = (
    'soak_cycles', 'soak_in_flight', 'soak_warmup', 'soak_errors',
    'soak_seconds', 'soak_cycles_per_min', 'soak_boot_p50_s',
    'soak_boot_p95_s', 'soak_delete_p50_s', 'soak_delete_p95_s',
)
COMPUTE_FIGURES = (
    'soak_rss_start_mib', 'soak_rss_end_mib', 'soak_rss_max_mib',
    'soak_rss_slope_mib_per_100', 'soak_threads_start', 'soak_threads_end',
    'soak_fds_start', 'soak_fds_end',
)


def figure_name(metric):
    return '%s.%s' % (NAME, metric)


def figure_names(in_flight, computes):
    """Every name a run with both parts makes."""
    names = {figure_name('up_seconds')}
    for image in IMAGES:
        for n in in_flight:
            names |= {figure_name('%s_n%d_%s' % (image, n, m))
                      for m in ('p50_s', 'p95_s', 'errors')}
    names |= {figure_name(m) for m in SOAK_FIGURES}
    names |= {figure_name('%s_%s' % (m, c))
              for m in COMPUTE_FIGURES for c in computes}
    return names


def in_flight_list(text):
    """``--stack-in-flight``: positive integers, comma-separated; empty
    is none (the part is skipped)."""
    try:
        values = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('not a list of integers: %r'
                                         % text)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError('in flight must be at least 1')
    return values


# -- /proc (pure, given a root) ---------------------------------------------

def parse_status(text):
    """VmRSS (as MiB) and Threads of a /proc/<pid>/status."""
    out = {'rss_mib': None, 'threads': None}
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key == 'VmRSS':
            out['rss_mib'] = int(value.split()[0]) / 1024.0
        elif key == 'Threads':
            out['threads'] = int(value.split()[0])
    return out


def parent_pid(stat):
    """The parent's pid in a /proc/<pid>/stat: the field after the state,
    counted from the last ')' since the command name may hold spaces
    and parentheses."""
    return int(stat.rpartition(')')[2].split()[1])


def process_tree(pid, proc='/proc'):
    """``pid`` and every process descended from it (oslo.service forks
    workers for some services; the computes are meant to be one
    process, and this shows it)."""
    children = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, 'stat')) as f:
                ppid = parent_pid(f.read())
        except (OSError, ValueError, IndexError):
            continue        # gone while we looked
        children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        tree.append(p)
        todo.extend(sorted(children.get(p, ())))
    return tree


def read_process(pid, proc='/proc'):
    """RSS MiB, threads and fds of ``pid`` and its descendants, summed,
    and how many processes that was; None if ``pid`` is gone."""
    out = {'rss_mib': 0.0, 'threads': 0, 'fds': 0, 'processes': 0}
    for p in process_tree(pid, proc):
        base = os.path.join(proc, str(p))
        try:
            with open(os.path.join(base, 'status')) as f:
                status = parse_status(f.read())
            fds = len(os.listdir(os.path.join(base, 'fd')))
        except OSError:
            continue        # exited meanwhile
        out['rss_mib'] += status['rss_mib'] or 0.0
        out['threads'] += status['threads'] or 0
        out['fds'] += fds
        out['processes'] += 1
    return out if out['processes'] else None


# -- figures and tables (pure) ------------------------------------------------

def ttl_figures(results):
    """``results``: {(image, n): {'seconds': [...], 'errors': k}}."""
    out = {}
    for (image, n), r in results.items():
        key = '%s_n%d_' % (image, n)
        out[key + 'p50_s'] = soak.percentile(r['seconds'], 50)
        out[key + 'p95_s'] = soak.percentile(r['seconds'], 95)
        out[key + 'errors'] = r['errors']
    return {figure_name(k): v for k, v in out.items() if v is not None}


def ttl_table(results):
    rows = []
    for n in sorted({n for _, n in results}):
        for image in IMAGES:
            r = results.get((image, n))
            if r is None:
                continue
            rows.append([n, image,
                         _fmt(soak.percentile(r['seconds'], 50)),
                         _fmt(soak.percentile(r['seconds'], 95)),
                         r['errors']])
    return report.format_table(
        ['in flight', 'image', 'p50 s', 'p95 s', 'errors'], rows,
        align='rlrrr')


def soak_figures(result):
    """``result``: what ``_soak`` returns (checkpoints: {'cycle': n,
    'computes': {name: read_process(...) or None}})."""
    boot, delete = result['boot_s'], result['delete_s']
    out = {
        'soak_cycles': result['cycles'],
        'soak_in_flight': result['in_flight'],
        'soak_warmup': result['warmup'],
        'soak_errors': result['errors'],
        'soak_seconds': result['seconds'],
        'soak_cycles_per_min': (result['cycles'] * 60.0
                                / max(result['seconds'], 1e-9)),
        'soak_boot_p50_s': soak.percentile(boot, 50),
        'soak_boot_p95_s': soak.percentile(boot, 95),
        'soak_delete_p50_s': soak.percentile(delete, 50),
        'soak_delete_p95_s': soak.percentile(delete, 95),
    }
    points = result['checkpoints']
    for compute in result['computes']:
        seen = [(p['cycle'], p['computes'].get(compute)) for p in points]
        seen = [(c, s) for c, s in seen if s is not None]
        if not seen:
            continue
        (_, start), (_, end) = seen[0], seen[-1]
        fit = soak.slope([(c, s['rss_mib']) for c, s in seen])
        out.update({
            'soak_rss_start_mib_' + compute: start['rss_mib'],
            'soak_rss_end_mib_' + compute: end['rss_mib'],
            'soak_rss_max_mib_' + compute: max(s['rss_mib']
                                               for _, s in seen),
            'soak_rss_slope_mib_per_100_' + compute: (
                None if fit is None else fit * 100.0),
            'soak_threads_start_' + compute: start['threads'],
            'soak_threads_end_' + compute: end['threads'],
            'soak_fds_start_' + compute: start['fds'],
            'soak_fds_end_' + compute: end['fds'],
        })
    return {figure_name(k): v for k, v in out.items() if v is not None}


def soak_table(figs, result):
    def f(metric):
        return figs.get(figure_name(metric))

    computes = result['computes']
    headers = ['checkpoint', 'cycles']
    for c in computes:
        headers += ['%s RSS MiB' % c, '%s threads' % c, '%s fds' % c]
    rows = []
    for p in result['checkpoints']:
        row = [p['label'], p['cycle']]
        for c in computes:
            s = p['computes'].get(c) or {}
            row += [_fmt(s.get('rss_mib')), _int(s.get('threads')),
                    _int(s.get('fds'))]
        rows.append(row)
    lines = [report.format_table(headers, rows,
                                 align='l' + 'r' * (len(headers) - 1)), '']
    lines.append(report.format_table(
        ['cycles', 'errors', 'seconds', 'cycles/min', 'boot p50 s',
         'boot p95 s', 'delete p50 s', 'delete p95 s'],
        [[_int(f('soak_cycles')), _int(f('soak_errors')),
          _fmt(f('soak_seconds')), _fmt(f('soak_cycles_per_min')),
          _fmt(f('soak_boot_p50_s')), _fmt(f('soak_boot_p95_s')),
          _fmt(f('soak_delete_p50_s')), _fmt(f('soak_delete_p95_s'))]],
        align='r' * 8))
    lines.append('')
    lines.append('RSS least-squares slope, MiB per 100 cycles: %s' % ', '.join(
        '%s %s' % (c, _fmt(f('soak_rss_slope_mib_per_100_' + c), 2))
        for c in computes))
    forked = sorted({c for p in result['checkpoints']
                     for c, s in p['computes'].items()
                     if s and s['processes'] > 1})
    if forked:
        lines.append('%s forked: the figures are summed over the process '
                     'and its children' % ', '.join(forked))
    return '\n'.join(lines)


def _fmt(value, digits=1):
    return report.fmt_number(value, digits)


def _int(value):
    return '-' if value is None else '%d' % value


# -- the cloud ----------------------------------------------------------------

def _say(fmt, *args):
    print('bench: stack: ' + fmt % args, file=sys.stderr, flush=True)


def _connections(stack, count):
    """``count`` admin connections, each authenticated now (not in the
    first timed request)."""
    conns = [stack.new_connection() for _ in range(count)]
    for conn in conns:
        conn.authorize()
    return conns


def _flavor(conn):
    flavor = conn.compute.find_flavor(FLAVOR['name'], ignore_missing=True)
    if flavor is None:
        flavor = conn.compute.create_flavor(**FLAVOR)
    return flavor.id


def _upload_image(conn, workdir, name, pattern):
    """A qcow2 as users make them (tests/stack/images.py), in Glance."""
    from tests.stack import images
    path = images.qcow2(os.path.join(workdir, name + '.qcow2'),
                        pattern=pattern)
    image = conn.image.create_image(
        name, filename=path, disk_format='qcow2', container_format='bare',
        wait=True)
    os.unlink(path)
    return image.id


def _listing(conn, prefix):
    """{name: server} of the servers named ``prefix*``."""
    return {s.name: s for s in conn.compute.servers(
        details=True, name='^' + prefix) if s.name.startswith(prefix)}


def boot_batch(conns, poll, image_id, flavor_id, names, zones=None,
               log=_say):
    """Boot one server per name at once, each POST from a thread and a
    connection of its own; poll until every one is ACTIVE or ERROR.
    Returns (seconds to ACTIVE of those ACTIVE, errors, notes)."""
    posted, failed = {}, {}
    prefix = os.path.commonprefix(names)

    def create(i):
        posted[names[i]] = time.monotonic()
        try:
            conns[i].compute.create_server(
                name=names[i], image_id=image_id, flavor_id=flavor_id,
                networks='none',
                **({'availability_zone': zones[i]} if zones else {}))
        except Exception as e:
            failed[names[i]] = e

    settled = {}
    deadline = time.monotonic() + BATCH_TIMEOUT
    with futures.ThreadPoolExecutor(len(names)) as pool:
        posts = [pool.submit(create, i) for i in range(len(names))]
        while True:
            try:
                servers = _listing(poll, prefix)
            except Exception as e:     # the API busy for a moment
                log('listing servers failed (%s); polling on', e)
                servers = {}
            now = time.monotonic()
            for name, s in servers.items():
                if s.status in ('ACTIVE', 'ERROR') and name not in settled:
                    settled[name] = (now, s)
            if all(p.done() for p in posts) and all(
                    n in settled or n in failed for n in names):
                break
            if now > deadline:
                break
            time.sleep(POLL)
    seconds = [t - posted[n] for n, (t, s) in settled.items()
               if s.status == 'ACTIVE']
    notes = ['%s: POST failed: %s' % (n, e) for n, e in failed.items()]
    notes += ['%s: ERROR: %s' % (n, (s.fault or {}).get('message'))
              for n, (_, s) in settled.items() if s.status == 'ERROR']
    late = [n for n in names if n not in settled and n not in failed]
    if late:
        notes.append('%d still building after %.0f s: %s'
                     % (len(late), BATCH_TIMEOUT, ', '.join(late)))
    return seconds, len(names) - len(seconds), notes


def delete_all(conn, prefix, timeout=BATCH_TIMEOUT):
    """Delete every server named ``prefix*`` and wait until none is
    listed; how many there were."""
    from openstack import exceptions
    servers = _listing(conn, prefix)
    for s in servers.values():
        try:
            conn.compute.delete_server(s.id)
        except exceptions.NotFoundException:
            pass
    deadline = time.monotonic() + timeout
    while _listing(conn, prefix):
        if time.monotonic() > deadline:
            raise RuntimeError('servers %s* still there %.0f s after their '
                               'delete: %s' % (prefix, timeout,
                                               sorted(_listing(conn,
                                                               prefix))))
        time.sleep(POLL)
    return len(servers)


def time_to_active(stack, conn, run, flavor_id, workdir, in_flight, images,
                   log=_say):
    """Part one; (results by (image, n), notes)."""
    results, notes = {}, []
    for i, n in enumerate(in_flight):
        conns = _connections(stack, n)
        image_id = _upload_image(conn, workdir, '%sttl-n%d' % (run, n),
                                 pattern=(run_pattern(run) + i) % 255 + 1)
        images.append(image_id)
        for image in IMAGES:
            prefix = '%s%s-n%d-' % (run, image, n)
            seconds, errors, why = boot_batch(
                conns, conn, image_id, flavor_id,
                ['%s%02d' % (prefix, k) for k in range(n)])
            results[(image, n)] = {'seconds': seconds, 'errors': errors}
            notes += why
            log('%d in flight, %s: p50 %s s, p95 %s s, %d errors', n, image,
                _fmt(soak.percentile(seconds, 50)),
                _fmt(soak.percentile(seconds, 95)), errors)
            delete_all(conn, prefix)
        conn.image.delete_image(image_id, ignore_missing=True)
        images.remove(image_id)
        for c in conns:
            c.close()
    return results, notes


def run_pattern(run):
    """A byte pattern from the run's name: the images of one run differ
    from another run's (the cache keys by image id; this keeps even the
    bytes apart)."""
    return int.from_bytes(run.encode(), 'big') % 255


def _wait_server(conn, server_id, done, timeout):
    from openstack import exceptions
    deadline = time.monotonic() + timeout
    while True:
        try:
            server = conn.compute.get_server(server_id)
        except exceptions.NotFoundException:
            server = None
        if done(server):
            return server
        if time.monotonic() > deadline:
            raise RuntimeError('server %s still %s after %.0f s' % (
                server_id, server and server.status, timeout))
        time.sleep(POLL)


def _cycle(conn, image_id, flavor_id, name):
    """Boot and delete one server: (boot s, delete s, status)."""
    t0 = time.monotonic()
    server = conn.compute.create_server(name=name, image_id=image_id,
                                        flavor_id=flavor_id, networks='none')
    server = _wait_server(conn, server.id,
                          lambda s: s is not None and s.status != 'BUILD',
                          CYCLE_TIMEOUT)
    t1 = time.monotonic()
    conn.compute.delete_server(server.id)
    _wait_server(conn, server.id, lambda s: s is None, CYCLE_TIMEOUT)
    return t1 - t0, time.monotonic() - t1, server.status


def run_cycles(conns, image_id, flavor_id, prefix, count, on_done=None):
    """``count`` cycles, one thread per connection; ``on_done(n)`` after
    the n-th. A cycle that fails counts as an error; ``FAILURES_IN_A_ROW``
    of them in a row end the run (RuntimeError). Returns (boot s,
    delete s, errors, notes)."""
    boot, delete, notes = [], [], []
    lock = threading.Lock()
    state = {'started': 0, 'done': 0, 'errors': 0, 'in_a_row': 0}

    def one_worker(conn):
        while True:
            with lock:
                if (state['started'] >= count
                        or state['in_a_row'] >= FAILURES_IN_A_ROW):
                    return
                state['started'] += 1
                name = '%s%04d' % (prefix, state['started'])
            try:
                b, d, status = _cycle(conn, image_id, flavor_id, name)
                failed = None
            except Exception as e:
                failed = '%s: %s' % (name, e)
            with lock:
                state['done'] += 1
                if failed:
                    state['errors'] += 1
                    state['in_a_row'] += 1
                    notes.append(failed)
                else:
                    state['in_a_row'] = 0
                    boot.append(b)
                    delete.append(d)
                    if status != 'ACTIVE':
                        state['errors'] += 1
                        notes.append('%s: %s' % (name, status))
                done = state['done']
            if on_done is not None:
                on_done(done)

    workers = [threading.Thread(target=one_worker, args=(c,),
                                name='stack-soak-%d' % i)
               for i, c in enumerate(conns)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if state['in_a_row'] >= FAILURES_IN_A_ROW:
        raise RuntimeError('soak stopped after %d cycles, %d failing in a '
                           'row; the last: %s' % (state['done'],
                                                  FAILURES_IN_A_ROW,
                                                  notes[-1]))
    return boot, delete, state['errors'], notes


def _nodes(conn):
    """``nova:<host>:<node>`` of every hypervisor."""
    return ['nova:%s:%s' % (h.service_details['host'], h.name)
            for h in conn.compute.hypervisors(details=True)]


def soak_run(stack, conn, run, flavor_id, workdir, args, computes, images,
             log=_say):
    """Part two; the result ``soak_figures`` reads."""
    conns = _connections(stack, args.stack_soak_in_flight)
    image_id = _upload_image(conn, workdir, run + 'soak',
                             pattern=(run_pattern(run) + 128) % 255 + 1)
    images.append(image_id)
    zones = _nodes(conn)
    seeders = _connections(stack, len(zones))
    _, errors, notes = boot_batch(
        seeders, conn, image_id, flavor_id,
        ['%sseed-%d' % (run, k) for k in range(len(zones))], zones=zones)
    for c in seeders:
        c.close()
    delete_all(conn, run + 'seed-')
    log('soak image booted once on each of %d nodes (%d errors)',
        len(zones), errors)
    if args.stack_soak_warmup:
        _, _, errors, why = run_cycles(conns, image_id, flavor_id,
                                       run + 'warmup-',
                                       args.stack_soak_warmup)
        notes += why
        log('%d warm-up cycles (%d errors)', args.stack_soak_warmup, errors)

    cycles = args.stack_soak_cycles
    marks = soak.checkpoint_marks(cycles)
    lock = threading.Lock()

    def sample(label, done):
        point = {'label': label, 'cycle': done, 'computes': {
            c: read_process(stack.state['pids'][c]) if stack.state[
                'pids'].get(c) else None for c in computes}}
        checkpoints.append(point)
        log('%d/%d cycles: %s', done, cycles, '; '.join(
            '%s RSS %s MiB, %s threads, %s fds' % (
                c, _fmt((s or {}).get('rss_mib')),
                _int((s or {}).get('threads')), _int((s or {}).get('fds')))
            for c, s in point['computes'].items()))

    def checkpoint(done):
        if done in marks and done != cycles:
            with lock:
                sample('%d %%' % round(100.0 * done / cycles), done)

    checkpoints = []
    sample('start', 0)
    started = time.monotonic()
    boot, delete, errors, why = run_cycles(conns, image_id, flavor_id,
                                           run + 'soak-', cycles,
                                           checkpoint)
    seconds = time.monotonic() - started
    sample('end', cycles)
    notes += why
    for c in conns:
        c.close()
    return {'cycles': cycles, 'in_flight': args.stack_soak_in_flight,
            'warmup': args.stack_soak_warmup, 'errors': errors,
            'seconds': seconds, 'boot_s': boot, 'delete_s': delete,
            'checkpoints': sorted(checkpoints, key=lambda p: p['cycle']),
            'computes': list(computes), 'notes': notes}


def _cleanup(conn, images):
    """Every server and image of this section, this run's or one cut
    short (the stack is the section's own)."""
    gone = delete_all(conn, PREFIX)
    for image in conn.image.images():
        if image.name and image.name.startswith(PREFIX):
            images.append(image.id)
    for image_id in set(images):
        conn.image.delete_image(image_id, ignore_missing=True)
    images.clear()
    return gone


def run(args, log=_say):
    """Run the section; returns (figures, text report)."""
    from tests.harness import venvs
    from tools.stack import cloud
    from tools.stack import openstack as services

    if args.stack_soak_cycles < 0 or args.stack_soak_warmup < 0 or (
            args.stack_soak_in_flight < 1):
        raise ValueError('--stack-soak-cycles and --stack-soak-warmup must '
                         'be at least 0, --stack-soak-in-flight at least 1')
    started = time.monotonic()
    root = args.stack_root or os.path.join(venvs.cache_dir(), 'stack-bench')
    stack = cloud.Stack(root)
    computes = list(services.COMPUTES)
    run_name = '%s%s-' % (PREFIX, secrets.token_hex(3))
    figs, sections, notes, images = {}, [], [], []
    try:
        up = stack.up(eventlet=args.stack_eventlet)
        mode = 'eventlet' if stack.eventlet else 'native threads'
        log('stack up in %.1f s (%s), root %s', up, mode, root)
        figs[figure_name('up_seconds')] = up
        conn = stack.new_connection()
        try:
            left = _cleanup(conn, images)
            if left:
                notes.append('%d servers of an earlier run deleted first'
                             % left)
            conn.set_compute_quotas('admin', instances=-1, cores=-1,
                                    ram=-1)
            flavor_id = _flavor(conn)
            with tempfile.TemporaryDirectory(prefix='vcdriver-bench-') as d:
                if args.stack_in_flight:
                    results, why = time_to_active(
                        stack, conn, run_name, flavor_id, d,
                        args.stack_in_flight, images, log)
                    figs.update(ttl_figures(results))
                    notes += why
                    sections += ['time to ACTIVE through the SDK (POST to '
                                 'first listed ACTIVE, polled every %.1f s; '
                                 'nearest rank):' % POLL,
                                 ttl_table(results), '']
                if args.stack_soak_cycles:
                    result = soak_run(stack, conn, run_name, flavor_id, d,
                                      args, computes, images, log)
                    soak_figs = soak_figures(result)
                    figs.update(soak_figs)
                    notes += result['notes']
                    sections += [
                        'soak: %d boot/delete cycles, %d in flight, cached '
                        'image, after %d warm-up cycles; each nova-compute '
                        'process from /proc:' % (
                            result['cycles'], result['in_flight'],
                            result['warmup']),
                        soak_table(soak_figs, result), '']
        except BaseException as e:
            # Delete what the run made, without hiding why it stopped.
            try:
                _cleanup(conn, images)
            except Exception as cleanup_error:
                log('deleting the servers after %r failed too: %s', e,
                    cleanup_error)
            raise
        else:
            left = _cleanup(conn, images)
            if left:
                notes.append('%d servers left at the end, deleted' % left)
        finally:
            conn.close()
    finally:
        if args.stack_keep:
            log('stack left up (--stack-keep): %s', root)
        else:
            stack.down()
    head = ['Stack (tools/stack): a real OpenStack on this machine, Nova '
            'in %s; %s on vcsim; up in %.1f s' % (
                mode, ', '.join('%s serving %s' % (
                    c, '+'.join(services.COMPUTES[c])) for c in computes),
                up), '']
    tail = notes[:20] + (['... and %d more' % (len(notes) - 20)]
                         if len(notes) > 20 else [])
    tail.append('%.0f s in all; load average at the end %.2f (2 cores, '
                'shared)' % (time.monotonic() - started,
                             os.getloadavg()[0]))
    return figs, '\n'.join(head + sections + tail).rstrip()


def add_arguments(parser):
    group = parser.add_argument_group('stack')
    group.add_argument('--stack-root', metavar='DIR',
                       help="the stack's state directory (default "
                            '.cache/stack-bench)')
    group.add_argument('--stack-eventlet', action='store_true',
                       help="run Nova's services under eventlet (default: "
                            'native threads)')
    group.add_argument('--stack-keep', action='store_true',
                       help='leave the stack up afterwards')
    group.add_argument('--stack-in-flight', type=in_flight_list,
                       default=in_flight_list(DEFAULT_IN_FLIGHT),
                       metavar='N,N,...',
                       help='servers booted at once for time to ACTIVE '
                            '(default %s; empty skips it)'
                            % DEFAULT_IN_FLIGHT)
    group.add_argument('--stack-soak-cycles', type=int,
                       default=DEFAULT_SOAK_CYCLES,
                       help='soak boot/delete cycles (default %d; 0 skips '
                            'the soak)' % DEFAULT_SOAK_CYCLES)
    group.add_argument('--stack-soak-in-flight', type=int,
                       default=DEFAULT_SOAK_IN_FLIGHT,
                       help='soak cycles in flight at once (default %d)'
                            % DEFAULT_SOAK_IN_FLIGHT)
    group.add_argument('--stack-soak-warmup', type=int,
                       default=DEFAULT_SOAK_WARMUP,
                       help='untimed cycles before the start figures '
                            '(default %d)' % DEFAULT_SOAK_WARMUP)
