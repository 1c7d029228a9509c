"""The stack bench's pure pieces: percentiles, figure names, the tables,
/proc parsing, arguments, the README's list.

No stack and nothing timed (the bench is tox -e bench).
"""

import argparse
import itertools
import os
import re

import pytest

from tools.bench import report
from tools.bench import stack_cloud as sc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
COMPUTES = ('compute1', 'compute2')


def _ttl_results():
    return {('uncached', 1): {'seconds': [12.5], 'errors': 0},
            ('cached', 1): {'seconds': [4.0], 'errors': 0},
            ('uncached', 10): {'seconds': [float(s) for s in
                                           range(11, 20)], 'errors': 1},
            ('cached', 10): {'seconds': [float(s) for s in range(1, 11)],
                             'errors': 0}}


def test_time_to_active_figures_are_nearest_rank():
    figs = sc.ttl_figures(_ttl_results())
    assert figs['stack.uncached_n1_p50_s'] == 12.5
    assert figs['stack.uncached_n1_p95_s'] == 12.5
    assert figs['stack.cached_n10_p50_s'] == 5.0
    assert figs['stack.cached_n10_p95_s'] == 10.0
    assert figs['stack.uncached_n10_p50_s'] == 15.0   # 9 values: the 5th
    assert figs['stack.uncached_n10_errors'] == 1
    report.check_figures(figs)
    assert set(figs) < sc.figure_names([1, 10], COMPUTES)


def test_a_batch_all_in_error_has_no_percentiles():
    figs = sc.ttl_figures({('uncached', 2): {'seconds': [], 'errors': 2}})
    assert figs == {'stack.uncached_n2_errors': 2}


def test_time_to_active_table():
    lines = sc.ttl_table(_ttl_results()).splitlines()
    assert lines[0].split() == ['in', 'flight', 'image', 'p50', 's', 'p95',
                                's', 'errors']
    rows = [ln.split() for ln in lines[2:]]
    assert rows == [['1', 'uncached', '12.5', '12.5', '0'],
                    ['1', 'cached', '4.0', '4.0', '0'],
                    ['10', 'uncached', '15.0', '19.0', '1'],
                    ['10', 'cached', '5.0', '10.0', '0']]


def _point(label, cycle, rss1, rss2=300.0, processes=1):
    return {'label': label, 'cycle': cycle, 'computes': {
        'compute1': {'rss_mib': rss1, 'threads': 40, 'fds': 30,
                     'processes': processes},
        'compute2': {'rss_mib': rss2, 'threads': 38, 'fds': 28,
                     'processes': 1}}}


def _soak_result(cycles=100):
    points = [_point('start', 0, 200.0)]
    for i, c in enumerate(sc.soak.checkpoint_marks(cycles)[:-1]):
        points.append(_point('%d %%' % ((i + 1) * 10), c, 200.0 + c / 50.0))
    points.append(_point('end', cycles, 200.0 + cycles / 50.0))
    points[-1]['computes']['compute2']['fds'] = 29
    return {'cycles': cycles, 'in_flight': 4, 'warmup': 20, 'errors': 2,
            'seconds': 600.0,
            'boot_s': [float(x) for x in range(1, cycles + 1)],
            'delete_s': [2.0] * cycles, 'checkpoints': points,
            'computes': list(COMPUTES), 'notes': []}


def test_soak_figures_are_exactly_the_names():
    figs = sc.soak_figures(_soak_result())
    every = sc.figure_names([1], COMPUTES)
    ttl = {n for n in every if re.match(r'stack\.(un)?cached_', n)}
    assert set(figs) == every - ttl - {'stack.up_seconds'}
    assert figs['stack.soak_cycles_per_min'] == pytest.approx(10.0)
    assert figs['stack.soak_boot_p50_s'] == 50.0
    assert figs['stack.soak_boot_p95_s'] == 95.0
    assert figs['stack.soak_delete_p95_s'] == 2.0
    assert figs['stack.soak_rss_start_mib_compute1'] == 200.0
    assert figs['stack.soak_rss_end_mib_compute1'] == 202.0
    assert figs['stack.soak_rss_max_mib_compute1'] == 202.0
    assert figs['stack.soak_rss_slope_mib_per_100_compute1'] == (
        pytest.approx(2.0))
    assert figs['stack.soak_rss_slope_mib_per_100_compute2'] == (
        pytest.approx(0.0))
    assert (figs['stack.soak_fds_start_compute2'],
            figs['stack.soak_fds_end_compute2']) == (28, 29)
    report.check_figures(figs)


def test_a_compute_gone_at_a_checkpoint_is_left_out():
    r = _soak_result(10)
    r['checkpoints'][-1]['computes']['compute2'] = None
    figs = sc.soak_figures(r)
    assert figs['stack.soak_fds_end_compute2'] == 28   # its last reading
    text = sc.soak_table(figs, r)
    end = [ln for ln in text.splitlines() if ln.startswith('end')][0]
    assert end.split()[-3:] == ['-', '-', '-']


def test_soak_table():
    r = _soak_result(20)
    figs = sc.soak_figures(r)
    text = sc.soak_table(figs, r)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ['checkpoint', 'cycles', 'compute1',
                                    'RSS', 'MiB']
    rows = [ln.split() for ln in lines
            if re.match(r'(start|end|\d+ %)\s', ln)]
    assert [r[0] for r in rows] == (
        ['start'] + [str(p) for p in range(10, 100, 10)] + ['end'])
    assert rows[0][1:] == ['0', '200.0', '40', '30', '300.0', '38', '28']
    assert rows[-1][1:] == ['20', '200.4', '40', '30', '300.0', '38', '29']
    totals = lines[lines.index('') + 3].split()
    assert totals == ['20', '2', '600.0', '2.0', '10.0', '19.0', '2.0',
                      '2.0']
    assert ('RSS least-squares slope, MiB per 100 cycles: compute1 2.00, '
            'compute2 0.00') in text
    assert 'forked' not in text


def test_soak_table_says_when_a_compute_forked():
    r = _soak_result(10)
    r['checkpoints'][1] = _point('10 %', 1, 200.0, processes=3)
    text = sc.soak_table(sc.soak_figures(r), r)
    assert 'compute1 forked: the figures are summed' in text


# -- /proc --------------------------------------------------------------------

STATUS = """Name:\tnova-compute
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t 1547604 kB
VmRSS:\t  189800 kB
RssAnon:\t  150000 kB
Threads:\t17
"""


def test_parse_status():
    assert sc.parse_status(STATUS) == {'rss_mib': pytest.approx(185.35,
                                                                abs=0.01),
                                       'threads': 17}
    assert sc.parse_status('Name:\tkthreadd\n') == {'rss_mib': None,
                                                    'threads': None}


def test_parent_pid_of_a_command_with_spaces_and_parentheses():
    assert sc.parent_pid('7881 (python) S 7880 7881 0 0 -1') == 7880
    assert sc.parent_pid('42 (a (b) c) R 1 42 42 0') == 1


def _fake_proc(root, pid, ppid, rss_kb, threads, fds):
    d = root / str(pid)
    (d / 'fd').mkdir(parents=True)
    (d / 'stat').write_text('%d (nova-compute) S %d %d 0 0' % (pid, ppid,
                                                               pid))
    (d / 'status').write_text('Name:\tx\nVmRSS:\t%d kB\nThreads:\t%d\n'
                              % (rss_kb, threads))
    for i in range(fds):
        (d / 'fd' / str(i)).write_text('')


def test_read_process_sums_the_process_and_its_descendants(tmp_path):
    _fake_proc(tmp_path, 100, 1, 2048, 10, 5)
    _fake_proc(tmp_path, 101, 100, 1024, 3, 4)     # a forked worker
    _fake_proc(tmp_path, 102, 101, 512, 1, 2)      # and its child
    _fake_proc(tmp_path, 200, 1, 9999, 99, 9)      # another service
    (tmp_path / 'self').mkdir()                    # not a pid
    assert sc.process_tree(100, str(tmp_path)) == [100, 101, 102]
    assert sc.read_process(100, str(tmp_path)) == {
        'rss_mib': 3.5, 'threads': 14, 'fds': 11, 'processes': 3}
    assert sc.read_process(200, str(tmp_path))['processes'] == 1
    assert sc.read_process(300, str(tmp_path)) is None


def test_read_process_reads_this_process():
    got = sc.read_process(os.getpid())
    assert got['processes'] >= 1 and got['rss_mib'] > 1
    assert got['threads'] >= 1 and got['fds'] >= 3


# -- arguments and the README ------------------------------------------------

def test_in_flight_list():
    assert sc.in_flight_list('1,10,30') == [1, 10, 30]
    assert sc.in_flight_list('') == []
    assert sc.in_flight_list(' 2 , 4') == [2, 4]
    for bad in ('0', 'a,b', '-1'):
        with pytest.raises(argparse.ArgumentTypeError):
            sc.in_flight_list(bad)


def test_arguments():
    from tools.bench import __main__ as bench_main
    p = bench_main.parser()
    args = p.parse_args(['--section', 'stack', '--stack-in-flight', '1,2',
                         '--stack-soak-cycles', '8', '--stack-soak-warmup',
                         '2', '--stack-soak-in-flight', '2', '--stack-keep',
                         '--stack-eventlet', '--stack-root', '/tmp/s'])
    assert args.stack_in_flight == [1, 2]
    assert (args.stack_soak_cycles, args.stack_soak_warmup,
            args.stack_soak_in_flight) == (8, 2, 2)
    assert args.stack_keep and args.stack_eventlet
    assert args.stack_root == '/tmp/s'
    assert p.parse_args(['--stack-in-flight', '']).stack_in_flight == []
    defaults = p.parse_args([])
    assert defaults.stack_in_flight == [1, 10, 30]
    assert (defaults.stack_soak_cycles, defaults.stack_soak_in_flight,
            defaults.stack_soak_warmup) == (300, 4, 20)
    assert not defaults.stack_keep and not defaults.stack_eventlet
    assert defaults.stack_root is None


def test_readme_lists_the_figure_names():
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    domains = {'image': sc.IMAGES, 'n': [1, 10, 30], 'compute': COMPUTES}
    listed = set()
    for template in re.findall(r'`(stack\.[^`]+)`', text):
        keys = re.findall(r'{(\w+)}', template)
        for values in itertools.product(*(domains[k] for k in keys)):
            name = template
            for key, value in zip(keys, values, strict=True):
                name = name.replace('{%s}' % key, str(value), 1)
            listed.add(name)
    assert listed == sc.figure_names([1, 10, 30], COMPUTES)
