"""The inventory refresh bench's pure pieces: names, scenarios, statistics,
the round-trip counter, figures, tables, arguments, the made-up WSDL.

No simulator and nothing timed (the bench is tox -e bench).
"""

import itertools
import os
import re
import types

import pytest

from tools.bench import inventory_refresh as ir
from tools.bench import report
from tools.bench import vim_wsdl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
S = ir.Scenario


def test_names():
    s = S(clusters=10, hosts=64, vms=200)
    assert ir.scenario_base(s) == \
        'inventory_refresh.hosts_64.vms_200.clusters_10'
    assert ir.figure_name(s, 'p50_ms') == \
        'inventory_refresh.hosts_64.vms_200.clusters_10.p50_ms'
    assert ir.figure_name(s, 'round_trips', 'unpaged') == \
        'inventory_refresh.hosts_64.vms_200.clusters_10.unpaged.round_trips'
    names = ir.scenario_names(s, intree=True)
    assert len(names) == len(set(names))
    assert all('..' not in n and ' ' not in n for n in names)
    assert ir.figure_name(s, 'p95_ms', 'intree') in names


def test_default_scenarios():
    scens = ir.scenarios(ir.DEFAULT_HOSTS, ir.DEFAULT_VMS,
                         ir.DEFAULT_CLUSTERS)
    assert scens == [S(1, 3, 200), S(1, 32, 200), S(1, 64, 200),
                     S(1, 64, 2000), S(1, 64, 10000), S(10, 64, 200)]
    # One cluster only: no many-cluster scenario.
    assert ir.scenarios([3], [], 1) == [S(1, 3, 200)]


def test_percentile_and_slope():
    assert ir.percentile([5, 1, 4, 2, 3], 95) == 5
    assert ir.percentile([5, 1, 4, 2, 3], 50) == 3
    assert ir.percentile(list(range(1, 101)), 95) == 95
    assert ir.percentile([], 95) is None
    b, a = ir.slope([(3, 16.0), (32, 45.0), (64, 77.0)])
    assert b == pytest.approx(1.0)
    assert a == pytest.approx(13.0)
    assert ir.slope([(64, 1.0), (64, 2.0)]) is None
    assert ir.slope([(1, 1.0), (2, None)]) is None


class FakeStub:
    def __init__(self):
        self.sent = []

    def InvokeMethod(self, mo, info, args):
        self.sent.append(info.wsdlName)
        return len(self.sent)


def _info(name):
    return types.SimpleNamespace(wsdlName=name)


def test_round_trip_counter_counts_every_request_by_method():
    stub = FakeStub()
    counter = ir.RoundTripCounter().install(stub)
    assert stub.InvokeMethod('pc', _info('RetrievePropertiesEx'), ()) == 1
    stub.InvokeMethod('pc', _info(ir.CONTINUE), ())
    stub.InvokeMethod('pc', _info(ir.CONTINUE), ())
    assert stub.sent == ['RetrievePropertiesEx', ir.CONTINUE, ir.CONTINUE]
    assert counter.total == 3
    assert counter.pages == 2
    before = counter.snapshot()
    stub.InvokeMethod('pc', _info('RetrievePropertiesEx'), ())
    assert ir.diff_calls(counter.snapshot(), before) == {
        'RetrievePropertiesEx': 1}
    counter.reset()
    assert counter.total == 0 and counter.snapshot() == {}


def _samples(totals, calls):
    return [{'times': {'total': t, 'cpu': t / 2, 'read_state': t / 2,
                       'placement': 0.001},
             'client_calls': dict(calls), 'server_calls': dict(calls)}
            for t in totals]


def _results(scens, modes=ir.MODES):
    out = {}
    for n, s in enumerate(scens):
        pages = s.vms // 100
        ours = {}
        for mode in modes:
            calls = {'RetrievePropertiesEx': 5}
            if mode != 'unpaged' and pages:
                calls[ir.CONTINUE] = pages
            ours[mode] = ir._summary(_samples(
                [0.01 * (n + 1), 0.02 * (n + 1), 0.03 * (n + 1)], calls))
        out[s] = {'ours': ours, 'intree': {'p50_ms': 100.0,
                                           'p95_ms': 120.0,
                                           'round_trips': 4}}
    return out


def test_summary_and_figures_are_exactly_the_names():
    scens = ir.scenarios([3, 64], [2000], 2)
    results = _results(scens)
    got = results[scens[0]]['ours']['paged']
    assert got['p50_ms'] == pytest.approx(20.0)
    assert got['p95_ms'] == pytest.approx(30.0)
    assert got['round_trips'] == got['server_round_trips'] == 7
    assert got['continue_pages'] == 2
    figs = ir.figures(results)
    expected = set(itertools.chain.from_iterable(
        ir.scenario_names(s, intree=True) for s in scens))
    assert set(figs) == expected
    report.check_figures(figs)


def test_fits_and_report():
    scens = ir.scenarios([3, 32, 64], [200, 2000, 10000], 10)
    results = _results(scens)
    figs = ir.figures(results)
    figs.update(ir.fits(figs, scens, 64, 200))
    assert set(ir.SLOPE_NAMES.values()) <= set(figs)
    notes = ir.round_trip_notes(results, scens, ir.MODES)
    assert any('unpaged round trips per refresh, one cluster: constant, 5'
               in n for n in notes)
    assert any('equals the launcher' in n for n in notes)
    text = ir.format_results(figs, results, scens, ir.MODES, 3, notes)
    assert 'round trips' in text and 'intree p50' in text
    assert len(text.splitlines()[0]) < 200


def test_counts_that_disagree_are_reported():
    s = S(1, 3, 200)
    results = _results([s])
    results[s]['ours']['paged']['server_round_trips'] = 8
    notes = ir.round_trip_notes(results, [s], ir.MODES)
    assert any('DIFFER' in n for n in notes)


def test_arguments_do_not_collide_with_the_other_sections():
    from tools.bench import __main__ as bench_main
    p = bench_main.parser()
    args = p.parse_args(['--section', 'inventory_refresh',
                         '--refresh-hosts', '3,8', '--refresh-vms', '50',
                         '--refresh-clusters', '2', '--refresh-repeat', '3',
                         '--refresh-modes', 'paged,one_node',
                         '--refresh-no-intree'])
    assert args.refresh_hosts == [3, 8] and args.refresh_vms == [50]
    assert args.refresh_modes == ['paged', 'one_node']
    assert not args.refresh_intree and args.refresh_repeat == 3
    defaults = p.parse_args([])
    assert defaults.refresh_hosts == list(ir.DEFAULT_HOSTS)
    assert defaults.refresh_modes == list(ir.MODES)
    with pytest.raises(SystemExit):
        p.parse_args(['--refresh-modes', 'sideways'])


def test_readme_lists_the_figure_names():
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    templates = set(re.findall(r'`(inventory_refresh\.[^`]+)`', text))
    s = S(2, 64, 200)
    domains = {'n': [s.hosts], 'm': [s.vms], 'c': [s.clusters],
               'mode': list(ir.MODES[1:]) + ['intree']}
    listed = set()
    for t in templates:
        metrics = (ir.MODE_METRICS['paged'] if '{mode}' not in t
                   else ir.INTREE_METRICS)
        keys = re.findall(r'{(\w+)}', t)
        for values in itertools.product(*(
                metrics if k == 'metric' else domains[k] for k in keys)):
            name = t
            for k, v in zip(keys, values, strict=True):
                name = name.replace('{%s}' % k, str(v), 1)
            listed.add(name)
    assert listed == (set(ir.scenario_names(s, intree=True)) |
                      set(ir.SLOPE_NAMES.values()))


def test_wsdl_from_pyvmomi_and_oslo_schemas(tmp_path):
    if vim_wsdl.schema_dir() is None:
        pytest.skip('oslo.vmware ships no vim25 schemas')
    url, count, version = vim_wsdl.write(str(tmp_path),
                                         'http://127.0.0.1:1/sdk')
    assert url == 'file://' + str(tmp_path / 'vimService.wsdl')
    assert count > 500
    wsdl = (tmp_path / 'vim.wsdl').read_text()
    for method in ('RetrievePropertiesEx', 'ContinueRetrievePropertiesEx',
                   'Login', 'RetrieveServiceContent', 'CreateVM_Task'):
        assert '<operation name="%s">' % method in wsdl
    messages = (tmp_path / 'vim-messagetypes.xsd').read_text()
    assert '<complexType name="RetrievePropertiesExRequestType">' in messages
    assert 'location="http://127.0.0.1:1/sdk"' in (
        tmp_path / 'vimService.wsdl').read_text()
