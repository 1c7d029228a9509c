"""Bench section: what one inventory refresh costs at scale.

Issue 4 item 3: the inventory of every configured cluster is read in a
constant number of PropertyCollector round trips, whatever the host and VM
counts. One scenario is one vcsim (our launcher, tools/vcsim) with
``clusters`` clusters of ``hosts`` hosts and ``vms`` powered-on VMs each,
all served by one driver (``[vcdriver] cluster_names``); the VMs are made
at start-up by the launcher (``-vms``, ``-vm-workers``).

A refresh is what a Nova ``update_available_resource`` periodic asks of
the driver, measured in a fresh worker process against the real
``vcdriver.driver.VMwareVCDriver`` after one untimed refresh (the VM view
of the clusters, vsphere/vm_view.py, loads every VM then):

``paged`` (the figures without a mode in their name)
    ``cluster.read_state`` of all configured clusters in one go, as the
    driver's ``_state`` does once per periodic; VMs come from the VM view
    (one WaitForUpdatesEx for what changed since the last refresh); then
    for every node ``get_available_resource`` and
    ``update_provider_tree`` answered from that state (the placement
    inventory math, no reads). ``[vmware] maximum_objects`` is Nova's
    default, 100, so continuation pages show in the round trips.
``unpaged``
    the same with ``maximum_objects`` large enough for one page per read.
``cold``
    the same without the VM view: every VM's size read at each refresh,
    as before the view existed (paged).
``instances``
    ``list_instance_uuids`` alone (``vm.instances``). Not part of the
    refresh: Nova asks for it at start-up and in the
    ``running_deleted_instance_poll_interval`` periodic (30 min).
``one_node``
    ``get_available_resource`` of the first node alone, paged: what the
    in-tree figure measures.

Every SOAP request the worker's session sends is counted at the client
(the pyVmomi SOAP stub) and at the launcher (``/vcdriver/stats``,
``soap_calls``); the two must agree. Latency: one untimed refresh, then
``--refresh-repeat`` timed ones; the median and the nearest-rank 95th
percentile.

The in-tree driver (``nova.virt.vmwareapi``) is tried on the same vcsim in
a worker of its own: its oslo.vmware session needs the vSphere WSDL, which
vcsim does not serve and pyVmomi does not ship; when it cannot run, the
report says why in one line and has no in-tree figures.
"""

import argparse
import collections
import dataclasses
import json
import math
import os
import sys
import time
import urllib.request

from tools.bench import arg_types
from tools.bench import report
from tools.bench import worker

NAME = 'inventory_refresh'

DEFAULT_HOSTS = (3, 32, 64)          # hosts per cluster, one cluster
DEFAULT_VMS = (200, 2000, 10000)     # VMs per cluster, one cluster
DEFAULT_BASE_HOSTS = 64              # hosts of the VM sweep, many clusters
DEFAULT_BASE_VMS = 200               # VMs of the host sweep, per cluster
DEFAULT_CLUSTERS = 10
DEFAULT_REPEAT = 5
DEFAULT_PAGE = 100                   # Nova's [vmware] maximum_objects
UNPAGED_PAGE = 1000000               # more than any scenario's objects
VM_WORKERS = 32                      # launcher -vm-workers
HOST_MEMORY_MB = 1024 * 1024         # every host: 1 TiB, 64 cores
HOST_CPU_CORES = 64
START_TIMEOUT = 900
WORKER_TIMEOUT = 3600

MODES = ('paged', 'unpaged', 'cold', 'instances', 'one_node')
MODE_TITLES = {
    'paged': 'one read_state for all clusters, maximum_objects %d'
             % DEFAULT_PAGE,
    'unpaged': 'the same in one page per read (maximum_objects %d)'
               % UNPAGED_PAGE,
    'cold': 'the same without the VM view: every VM read each time',
    'instances': 'list_instance_uuids alone (not part of a refresh)',
    'one_node': 'get_available_resource of one node (as intree)',
    'intree': 'nova.virt.vmwareapi get_available_resource of one node '
              '(round trips counted at the launcher)',
}
PHASES = ('read_state', 'placement')
CONTINUE = 'ContinueRetrievePropertiesEx'


Scenario = collections.namedtuple('Scenario', 'clusters hosts vms')


# -- names --------------------------------------------------------------------

def scenario_base(s):
    """``inventory_refresh.hosts_<n>.vms_<m>.clusters_<c>`` (per cluster)."""
    return '%s.hosts_%d.vms_%d.clusters_%d' % (NAME, s.hosts, s.vms,
                                               s.clusters)


def figure_name(s, metric, mode='paged'):
    """``paged`` figures carry no mode part; the others do."""
    base = scenario_base(s)
    if mode != 'paged':
        base += '.' + mode
    return '%s.%s' % (base, metric)


MODE_METRICS = {
    'paged': ('p50_ms', 'p95_ms', 'round_trips', 'continue_pages',
              'cpu_p50_ms') + tuple('%s_p50_ms' % p for p in PHASES),
    'unpaged': ('p50_ms', 'p95_ms', 'round_trips'),
    'cold': ('p50_ms', 'p95_ms', 'round_trips'),
    'instances': ('p50_ms', 'p95_ms', 'round_trips'),
    'one_node': ('p50_ms', 'p95_ms', 'round_trips'),
}
INTREE_METRICS = ('p50_ms', 'p95_ms', 'round_trips')
SLOPE_NAMES = {
    'hosts': NAME + '.slope.ms_per_host',
    'vms': NAME + '.slope.ms_per_1000_vms',
    'hosts_unpaged': NAME + '.slope.unpaged.ms_per_host',
    'vms_unpaged': NAME + '.slope.unpaged.ms_per_1000_vms',
}


def scenario_names(s, modes=MODES, intree=False):
    names = [figure_name(s, m, mode) for mode in modes
             for m in MODE_METRICS[mode]]
    if intree:
        names += [figure_name(s, m, 'intree') for m in INTREE_METRICS]
    return names


def scenarios(hosts, vms, clusters, base_hosts=DEFAULT_BASE_HOSTS,
              base_vms=DEFAULT_BASE_VMS):
    """Host sweep (one cluster, ``base_vms`` VMs), VM sweep (one cluster
    of ``base_hosts``), then ``clusters`` x ``base_hosts`` with
    ``base_vms`` each (when ``clusters`` > 1); duplicates once, in order."""
    out = [Scenario(1, h, base_vms) for h in hosts]
    out += [Scenario(1, base_hosts, m) for m in vms]
    if clusters > 1:
        out.append(Scenario(clusters, base_hosts, base_vms))
    seen = set()
    return [s for s in out if not (s in seen or seen.add(s))]


# -- statistics ---------------------------------------------------------------

def percentile(values, pct):
    """Nearest-rank percentile (of 5 values, p95 is the largest)."""
    values = sorted(values)
    if not values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(values)))
    return values[rank - 1]


def slope(points):
    """Least-squares slope and intercept of ``[(x, y)]``; None when the
    x values do not vary."""
    points = [(x, y) for x, y in points if y is not None]
    if len({x for x, _y in points}) < 2:
        return None
    n = float(len(points))
    mx = sum(x for x, _y in points) / n
    my = sum(y for _x, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    return b, my - b * mx


# -- counting round trips -----------------------------------------------------

class RoundTripCounter:
    """Counts the SOAP requests a pyVmomi SOAP stub sends, by method.

    ``install`` wraps the stub's ``InvokeMethod``, through which every
    request goes (property reads by attribute too: ``InvokeAccessor``
    calls it).
    """

    def __init__(self):
        self.calls = collections.Counter()

    def install(self, soap_stub):
        original = soap_stub.InvokeMethod

        def invoke(mo, info, args, *more, **kwargs):
            self.calls[info.wsdlName] += 1
            return original(mo, info, args, *more, **kwargs)

        soap_stub.InvokeMethod = invoke
        return self

    def reset(self):
        self.calls.clear()

    @property
    def total(self):
        return sum(self.calls.values())

    @property
    def pages(self):
        return self.calls[CONTINUE]

    def snapshot(self):
        return dict(self.calls)


def diff_calls(after, before):
    out = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in out.items() if v}


# -- worker: the measured process ---------------------------------------------

def _stats(url, method='GET'):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else {}


def _nova_conf(spec, page):
    import oslo_service.backend as service_backend
    try:
        service_backend.init_backend(service_backend.BackendType.THREADING)
    except Exception:   # already initialised
        pass
    import nova.conf
    from nova import objects
    from oslo_config import cfg

    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[], default_config_dirs=[])
    from vcdriver import conf as vc_conf  # noqa: F401  registers [vcdriver]
    conf.set_override('host_ip', spec['host'], group='vmware')
    conf.set_override('host_port', spec['port'], group='vmware')
    conf.set_override('host_username', spec['user'], group='vmware')
    conf.set_override('host_password', spec['password'], group='vmware')
    conf.set_override('insecure', True, group='vmware')
    conf.set_override('maximum_objects', page, group='vmware')
    conf.set_override('cluster_names', spec['clusters'], group='vcdriver')
    conf.set_override('vcenter_protocol', spec['protocol'],
                      group='vcdriver')
    # The DRS rule repair rides on get_available_resource at most every
    # [vcdriver] drs_rule_repair_interval and needs Nova's database: off.
    try:
        conf.set_override('drs_rule_repair_interval', 0, group='vcdriver')
    except cfg.NoSuchOptError:
        pass
    objects.register_all()
    return conf


class Refresher:
    """A started vcdriver driver and the refreshes to time on it."""

    def __init__(self, spec):
        from nova.compute import provider_tree

        from vcdriver import cluster as cluster_mod
        from vcdriver import driver

        _nova_conf(spec, DEFAULT_PAGE)
        self.cluster_mod = cluster_mod
        self.drv = driver.VMwareVCDriver(virtapi=None)
        self.drv.init_host(None)
        self.session = self.drv._session
        self.counter = RoundTripCounter().install(
            self.session._si._stub.soapStub)
        self.nodes = self.drv.get_available_nodes()
        self.tree = provider_tree.ProviderTree()
        for node, uuid in ((n, u) for u, n in
                           self.drv.get_nodenames_by_uuid().items()):
            self.tree.new_root(node, uuid)
        self.stats_url = spec['stats_url']

    def refresh(self, mode):
        """One refresh; returns {phase: seconds} and the total."""
        drv = self.drv
        cpu = time.process_time()
        t = time.perf_counter()
        times = {}
        if mode in ('one_node', 'instances'):
            if mode == 'one_node':
                drv.get_available_resource(self.nodes[0])
            else:
                drv.list_instance_uuids()
            times['total'] = time.perf_counter() - t
            times['cpu'] = time.process_time() - cpu
            return times
        clusters = [drv._cluster(n) for n in self.nodes]
        if mode == 'cold':
            clusters = [dataclasses.replace(c, vm_view=None)
                        for c in clusters]
        states = self.cluster_mod.read_state(self.session, clusters)
        by_node = {s.cluster.nodename: s for s in states}
        t0 = time.perf_counter()
        times['read_state'] = t0 - t
        drv._state = lambda nodename, **_kw: by_node[nodename]
        try:
            for node in self.nodes:
                drv.get_available_resource(node)
                drv.update_provider_tree(self.tree, node)
        finally:
            del drv._state
        t1 = time.perf_counter()
        times['placement'] = t1 - t0
        times['total'] = t1 - t
        times['cpu'] = time.process_time() - cpu
        return times

    def measure(self, mode, repeat):
        self.session.max_objects = (UNPAGED_PAGE if mode == 'unpaged'
                                    else DEFAULT_PAGE)
        self.refresh(mode)                     # warm-up, not timed
        samples = []
        for _ in range(repeat):
            _stats(self.stats_url, 'DELETE')
            self.counter.reset()
            times = self.refresh(mode)
            server = _stats(self.stats_url)
            samples.append({'times': times,
                            'client_calls': self.counter.snapshot(),
                            'server_calls': server.get('soap_calls', {})})
        return samples


def _summary(samples):
    """Turn a mode's samples into its figures and the counts of calls."""
    totals = [s['times']['total'] for s in samples]
    trips = [sum(s['client_calls'].values()) for s in samples]
    server = [sum(s['server_calls'].values()) for s in samples]
    out = {
        'p50_ms': report.median(totals) * 1000.0,
        'p95_ms': percentile(totals, 95) * 1000.0,
        'round_trips': max(trips),
        'round_trips_min': min(trips),
        'server_round_trips': max(server) if server else None,
        'continue_pages': max(s['client_calls'].get(CONTINUE, 0)
                              for s in samples),
        'cpu_p50_ms': report.median(s['times']['cpu']
                                    for s in samples) * 1000.0,
        'calls': samples[-1]['client_calls'],
        'server_calls': samples[-1]['server_calls'],
    }
    for phase in PHASES:
        values = [s['times'][phase] for s in samples
                  if phase in s['times']]
        if values:
            out['%s_p50_ms' % phase] = report.median(values) * 1000.0
    return out


def worker_ours(spec):
    r = Refresher(spec)
    result = {'nodes': len(r.nodes)}
    for mode in spec['modes']:
        result[mode] = _summary(r.measure(mode, spec['repeat']))
    r.session.logout()
    return result


def worker_intree(spec):
    """The in-tree driver's get_available_resource, if it can run here."""
    return intree_refresh(spec)


def intree_refresh(spec):
    """Time ``nova.virt.vmwareapi.driver.VMwareVCDriver
    .get_available_resource`` of the first cluster, or say why not.

    Its oslo.vmware session gets a WSDL made from oslo.vmware's own vim25
    schemas and pyVmomi's method list (tools/bench/vim_wsdl.py): vcsim
    serves none. The launcher runs with -typed-traversal (oslo.vmware's
    recursive inventory walk at start-up loops in stock vcsim). Round
    trips are counted at the launcher only.
    """
    import shutil
    import tempfile

    from tools.bench import vim_wsdl
    try:
        import suds  # noqa: F401
        from oslo_vmware import vim as oslo_vim
    except ImportError as e:
        return {'skipped': 'oslo.vmware/suds not importable: %s' % e}
    conf = _nova_conf(spec, DEFAULT_PAGE)
    conf.set_override('cluster_name', spec['clusters'][0], group='vmware')
    # Its VMOps builds a compute API, which wants an RPC transport: the
    # in-memory one (the first init registers the transport options).
    import oslo_messaging
    from nova import rpc
    oslo_messaging.set_transport_defaults('nova')
    rpc.init(conf)
    rpc.cleanup()
    conf.set_override('transport_url', 'fake:/')
    rpc.init(conf)
    workdir = tempfile.mkdtemp(prefix='vcdriver-bench-wsdl-')
    try:
        url, count, schemas = vim_wsdl.write(workdir, spec['soap_url'])
    except (LookupError, OSError) as e:
        shutil.rmtree(workdir, ignore_errors=True)
        return {'skipped': 'no vSphere WSDL for oslo.vmware: vcsim serves '
                           'none, pyVmomi ships none, and making one '
                           'failed: %s' % e}
    init = oslo_vim.Vim.__init__

    def vim_init(self, *args, **kwargs):
        if kwargs.get('wsdl_url') is None:
            kwargs['wsdl_url'] = url
        return init(self, *args, **kwargs)

    oslo_vim.Vim.__init__ = vim_init
    try:
        from nova.virt.vmwareapi import driver as intree
        # Start-up only: its extension record carries a timestamp without
        # a zone, which vcsim refuses to decode (vCenter takes it).
        intree.VMwareVCDriver._register_openstack_extension = (
            lambda self: None)
        drv = intree.VMwareVCDriver(None, scheme=spec['protocol'])
        node = drv.get_available_nodes()[0]
        drv.get_available_resource(node)           # warm-up, not timed
        totals, trips = [], []
        for _ in range(spec['repeat']):
            _stats(spec['stats_url'], 'DELETE')
            t = time.perf_counter()
            drv.get_available_resource(node)
            totals.append(time.perf_counter() - t)
            calls = _stats(spec['stats_url']).get('soap_calls', {})
            trips.append(sum(calls.values()))
    except Exception as e:  # report, do not fail the section
        return {'skipped': 'the in-tree driver failed against vcsim '
                           '(WSDL made from oslo.vmware %s schemas, %d '
                           'methods): %s: %s' % (schemas, count,
                                                  type(e).__name__,
                                                  str(e)[:300])}
    finally:
        oslo_vim.Vim.__init__ = init
        shutil.rmtree(workdir, ignore_errors=True)
    return {'p50_ms': report.median(totals) * 1000.0,
            'p95_ms': percentile(totals, 95) * 1000.0,
            'round_trips': max(trips), 'round_trips_min': min(trips),
            'calls': calls,
            'wsdl': "oslo.vmware's %s vim25 schemas and %d methods from "
                    'pyVmomi' % (schemas, count)}


WORKERS = {'ours': worker_ours, 'intree': worker_intree}


def worker_main(spec_json):
    worker.setup_logging()
    spec = json.loads(spec_json)
    return worker.emit(WORKERS[spec['worker']](spec))


# -- the orchestrator ---------------------------------------------------------

def _say(fmt, *args):
    print(fmt % args, file=sys.stderr, flush=True)


def _run_worker(spec, log):
    return worker.run(NAME, spec, log, WORKER_TIMEOUT,
                      what='%s worker' % spec['worker'])


def run_scenario(s, repeat, modes, intree, log=_say):
    """Start a launcher for ``s``, measure; returns the worker results."""
    from tests.harness import vcsim as vcsim_harness

    start = time.monotonic()
    sim = vcsim_harness.Vcsim(
        clusters=s.clusters, hosts_per_cluster=s.hosts, vms=s.vms,
        host_memory_mb=HOST_MEMORY_MB, host_cpu_cores=HOST_CPU_CORES,
        extra_args=['-vm-workers', str(VM_WORKERS), '-typed-traversal'],
        start_timeout=START_TIMEOUT)
    with sim:
        log('bench: %s: vcsim with %d x %d hosts, %d VMs up in %.0f s',
            NAME, s.clusters, s.hosts, s.clusters * s.vms,
            time.monotonic() - start)
        spec = {
            'worker': 'ours', 'host': sim.host, 'port': sim.port,
            'protocol': sim.url.split(':', 1)[0],
            'soap_url': sim.url.split('?')[0].rstrip('/'),
            'user': sim.username, 'password': sim.password,
            'clusters': list(sim.clusters),
            'stats_url': sim.http_url('/vcdriver/stats'),
            'repeat': repeat, 'modes': list(modes),
        }
        result = {'ours': _run_worker(spec, log)}
        if intree:
            result['intree'] = _run_worker(dict(spec, worker='intree'), log)
    result['seconds'] = time.monotonic() - start
    return result


def figures(results, modes=MODES):
    """Flat figures from ``{scenario: run_scenario() result}``."""
    out = {}
    for s, r in results.items():
        for mode in modes:
            got = r['ours'].get(mode)
            if not got:
                continue
            for metric in MODE_METRICS[mode]:
                if got.get(metric) is not None:
                    out[figure_name(s, metric, mode)] = got[metric]
        intree = r.get('intree') or {}
        if 'p50_ms' in intree:
            for metric in INTREE_METRICS:
                out[figure_name(s, metric, 'intree')] = intree[metric]
    return out


def fits(figs, scens, base_hosts, base_vms):
    """Slopes of p50 over hosts (one cluster, ``base_vms`` VMs) and over
    VMs (one cluster of ``base_hosts``), paged and unpaged."""
    out = {}
    for suffix, mode in (('', 'paged'), ('_unpaged', 'unpaged')):
        by_hosts = [(s.hosts, figs.get(figure_name(s, 'p50_ms', mode)))
                    for s in scens if s.clusters == 1 and s.vms == base_vms]
        by_vms = [(s.vms / 1000.0, figs.get(figure_name(s, 'p50_ms', mode)))
                  for s in scens
                  if s.clusters == 1 and s.hosts == base_hosts]
        for key, points in (('hosts', by_hosts), ('vms', by_vms)):
            fit = slope(points)
            if fit is not None:
                out[SLOPE_NAMES[key + suffix]] = fit[0]
    return out


def _fmt(value, digits=1):
    return report.fmt_number(value, digits)


def _int(value):
    return '-' if value is None else '%d' % value


def format_results(figs, results, scens, modes, repeat, notes=()):
    lines = ['Inventory refresh (issue 4 item 3): one update_available_'
             'resource periodic of one service; ms, median of %d (p95: '
             'nearest rank); hosts and VMs per cluster' % repeat, '']
    if 'paged' in modes:
        rows = []
        for s in scens:
            def f(metric, s=s):
                return figs.get(figure_name(s, metric))
            rows.append([s.clusters, s.hosts, s.vms, _fmt(f('p50_ms')),
                         _fmt(f('p95_ms')), _fmt(f('cpu_p50_ms')),
                         _fmt(f('read_state_p50_ms')),
                         _fmt(f('placement_p50_ms'), 2),
                         _int(f('round_trips')), _int(f('continue_pages'))])
        lines.append("paged: %s; cpu: the worker process's CPU; the "
                     'two phases as in the module docstring'
                     % MODE_TITLES['paged'])
        lines.append(report.format_table(
            ['clusters', 'hosts', 'VMs', 'p50', 'p95', 'cpu',
             'read_state', 'placement', 'round trips',
             'pages'], rows, align='r' * 10))
        lines.append('')
    other = [m for m in MODES[1:] if m in modes]
    if any('p50_ms' in (r.get('intree') or {}) for r in results.values()):
        other.append('intree')
    if other:
        headers = ['clusters', 'hosts', 'VMs']
        for mode in other:
            headers += ['%s p50' % mode, 'p95', 'trips']
        rows = []
        for s in scens:
            row = [s.clusters, s.hosts, s.vms]
            for mode in other:
                row += [_fmt(figs.get(figure_name(s, 'p50_ms', mode))),
                        _fmt(figs.get(figure_name(s, 'p95_ms', mode))),
                        _int(figs.get(figure_name(s, 'round_trips', mode)))]
            rows.append(row)
        for mode in other:
            lines.append('%s: %s' % (mode, MODE_TITLES[mode]))
        lines.append(report.format_table(headers, rows,
                                         align='r' * len(headers)))
        lines.append('')
    slopes = [(SLOPE_NAMES['hosts'], 'ms per host (paged)'),
              (SLOPE_NAMES['hosts_unpaged'], 'ms per host (unpaged)'),
              (SLOPE_NAMES['vms'], 'ms per 1,000 VMs (paged)'),
              (SLOPE_NAMES['vms_unpaged'], 'ms per 1,000 VMs (unpaged)')]
    fitted = ['%s %s' % (_fmt(figs[n], 2), what) for n, what in slopes
              if n in figs]
    if fitted:
        lines.append('p50 least-squares slopes: ' + ', '.join(fitted))
    lines.extend(notes)
    return '\n'.join(lines).rstrip()


def round_trip_notes(results, scens, modes):
    """Constant round trips? Client and launcher counts agree?"""
    notes = []
    for mode in modes:
        counts = {s: results[s]['ours'][mode]['round_trips'] for s in scens
                  if mode in results[s]['ours']}
        if not counts:
            continue
        single = {s: n for s, n in counts.items() if s.clusters == 1}
        values = sorted(set(single.values()))
        if values:
            notes.append('%s round trips per refresh, one cluster: %s'
                         % (mode, 'constant, %d in every scenario'
                            % values[0] if len(values) == 1 else
                            'from %d to %d' % (values[0], values[-1])))
        multi = {s: n for s, n in counts.items() if s.clusters > 1}
        for s, n in multi.items():
            notes.append('%s round trips per refresh, %d clusters: %d'
                         % (mode, s.clusters, n))
    mismatch = []
    unsteady = []
    for s in scens:
        for mode, got in results[s]['ours'].items():
            if not isinstance(got, dict):
                continue
            if got.get('server_round_trips') != got['round_trips']:
                mismatch.append('%s %s: client %s, launcher %s' % (
                    scenario_base(s), mode, got['round_trips'],
                    got.get('server_round_trips')))
            if got.get('round_trips_min') != got['round_trips']:
                unsteady.append('%s %s' % (scenario_base(s), mode))
    if mismatch:
        notes.append('round trips counted at the client and at the '
                     'launcher DIFFER: ' + '; '.join(mismatch))
    else:
        notes.append('round trips: the client count equals the '
                     "launcher's count of SOAP requests in every refresh")
    if unsteady:
        notes.append('round trips varied between repeats: '
                     + ', '.join(unsteady))
    return notes


def call_breakdown(results, scens):
    """One line of SOAP methods per mode, from the largest scenario."""
    if not scens:
        return []
    s = max(scens, key=lambda x: (x.clusters * x.vms, x.hosts))
    out = ['SOAP calls of one refresh, %s:' % scenario_base(s)]
    for mode, got in results[s]['ours'].items():
        if isinstance(got, dict) and 'calls' in got:
            out.append('  %s: %s' % (mode, ', '.join(
                '%s %d' % kv for kv in sorted(got['calls'].items()))))
    return out


def run(args, log=_say):
    """Run the section; returns (figures, text report)."""
    scens = scenarios(args.refresh_hosts, args.refresh_vms,
                      args.refresh_clusters, args.refresh_base_hosts,
                      args.refresh_base_vms)
    modes = args.refresh_modes
    results = {}
    started = time.monotonic()
    intree_note = intree_ran = None
    for i, s in enumerate(scens):
        want_intree = args.refresh_intree and intree_note is None
        r = run_scenario(s, args.refresh_repeat, modes, want_intree, log=log)
        results[s] = r
        intree = r.get('intree') or {}
        if intree.get('skipped'):
            intree_note = intree['skipped']
        elif intree:
            intree_ran = intree.get('wsdl')
        ours = r['ours']
        log('bench: %s [%d/%d] %s: %s', NAME, i + 1, len(scens),
            scenario_base(s), ', '.join(
                '%s p50 %.1f ms %d round trips' % (
                    m, ours[m]['p50_ms'], ours[m]['round_trips'])
                for m in modes))
    figs = figures(results, modes)
    figs.update(fits(figs, scens, args.refresh_base_hosts,
                     args.refresh_base_vms))
    notes = [''] + round_trip_notes(results, scens, modes)
    notes += call_breakdown(results, scens)
    if intree_note:
        notes.append('in-tree comparison: not run, %s' % intree_note)
    elif intree_ran:
        notes.append('in-tree comparison: ran on the same launchers, its '
                     'oslo.vmware session on a WSDL made from %s '
                     '(tools/bench/vim_wsdl.py), launcher with '
                     '-typed-traversal, extension registration skipped'
                     % intree_ran)
    notes.append('%d scenario(s), %.0f s in all (most of it making VMs); '
                 'load average at the end %.2f (2 cores, shared)'
                 % (len(scens), time.monotonic() - started,
                    os.getloadavg()[0]))
    text = format_results(figs, results, scens, modes, args.refresh_repeat,
                          notes)
    return figs, text


# -- command line -------------------------------------------------------------

def _int_list(text):
    try:
        values = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a list of integers'
                                         % text)
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError('negative count in %r' % text)
    return values


_modes = arg_types.choice_list('mode', MODES)


def add_arguments(parser):
    group = parser.add_argument_group('inventory refresh')
    group.add_argument('--refresh-hosts', type=_int_list,
                       default=list(DEFAULT_HOSTS),
                       help='hosts of the one-cluster host sweep (default '
                            '3,32,64)')
    group.add_argument('--refresh-vms', type=_int_list,
                       default=list(DEFAULT_VMS),
                       help='VMs of the one-cluster VM sweep (default '
                            '200,2000,10000)')
    group.add_argument('--refresh-clusters', type=int,
                       default=DEFAULT_CLUSTERS,
                       help='clusters of the many-cluster scenario, each '
                            'of --refresh-base-hosts hosts and '
                            '--refresh-base-vms VMs (default 10; 1 skips '
                            'it)')
    group.add_argument('--refresh-base-hosts', type=int,
                       default=DEFAULT_BASE_HOSTS,
                       help='hosts per cluster of the VM sweep and the '
                            'many-cluster scenario (default 64)')
    group.add_argument('--refresh-base-vms', type=int,
                       default=DEFAULT_BASE_VMS,
                       help='VMs per cluster of the host sweep and the '
                            'many-cluster scenario (default 200)')
    group.add_argument('--refresh-repeat', type=int, default=DEFAULT_REPEAT,
                       help='timed refreshes per scenario and mode '
                            '(default 5)')
    group.add_argument('--refresh-modes', type=_modes, default=list(MODES),
                       help='any of %s (default all)' % ', '.join(MODES))
    group.add_argument('--refresh-no-intree', dest='refresh_intree',
                       action='store_false',
                       help='do not try the in-tree driver')


def main(argv=None):
    return worker.main(argv, worker_main, NAME)


if __name__ == '__main__':
    sys.exit(main())
