"""The soak bench's pure pieces: statistics, checkpoints, figure names,
the table, arguments, the README's list.

No Nova and nothing timed (the bench is tox -e bench).
"""

import os
import re

import pytest

from tools.bench import soak

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_percentile_is_nearest_rank():
    assert soak.percentile([], 50) is None
    assert soak.percentile([7], 99) == 7
    values = list(range(1, 101))          # 1..100
    assert soak.percentile(values, 50) == 50
    assert soak.percentile(values, 99) == 99
    assert soak.percentile(values, 100) == 100
    assert soak.percentile([5, 1, 3], 50) == 3   # unsorted input


def test_slope():
    assert soak.slope([]) is None
    assert soak.slope([(0, 1.0), (0, 2.0)]) is None
    assert soak.slope([(0, 1.0), (100, 3.0)]) == pytest.approx(0.02)
    flat = [(x, 120.0) for x in range(0, 501, 50)]
    assert soak.slope(flat) == pytest.approx(0.0)
    noisy = [(0, 10.0), (1, 12.0), (2, 14.0), (3, 16.0), (4, None)]
    assert soak.slope(noisy) == pytest.approx(2.0)


def test_checkpoint_marks():
    assert soak.checkpoint_marks(0) == []
    assert soak.checkpoint_marks(500) == list(range(50, 501, 50))
    assert soak.checkpoint_marks(20) == list(range(2, 21, 2))
    assert soak.checkpoint_marks(5) == [1, 2, 3, 4, 5]
    assert soak.checkpoint_marks(1) == [1]


def _result(cycles=100):
    points = [{'label': 'start', 'cycle': 0, 'rss_mib': 200.0,
               'threads': 12, 'os_threads': 9, 'greenthreads': 30,
               'sockets': 6, 'fds': 20, 'objects': 5000, 'blocks': 9000,
               'malloc_used_mib': 50.0, 'malloc_free_mib': 5.0,
               'rss_trimmed_mib': 190.0}]
    for i, c in enumerate(soak.checkpoint_marks(cycles)[:-1]):
        points.append({'label': '%d %%' % ((i + 1) * 10), 'cycle': c,
                       'rss_mib': 200.0 + c / 100.0, 'threads': 12,
                       'os_threads': 9, 'greenthreads': 31, 'sockets': 6,
                       'fds': 20, 'objects': 5100, 'blocks': 9100,
                       'malloc_used_mib': 50.0, 'malloc_free_mib': 6.0,
                       'rss_trimmed_mib': 190.0})
    points.append({'label': 'end', 'cycle': cycles,
                   'rss_mib': 200.0 + cycles / 100.0, 'threads': 12,
                   'os_threads': 9, 'greenthreads': 30, 'sockets': 7,
                   'fds': 21, 'objects': 5010, 'blocks': 9020,
                   'malloc_used_mib': 50.0, 'malloc_free_mib': 7.0,
                   'rss_trimmed_mib': 190.0})
    return {'cycles': cycles, 'errors': 1, 'concurrency': 4,
            'warmup': 50, 'purged_rows': 1234,
            'seconds': 120.0, 'mode': 'eventlet',
            'spawn_ms': [float(x) for x in range(1, cycles + 1)],
            'delete_ms': [10.0] * cycles, 'checkpoints': points}


def test_figures_are_exactly_the_names():
    figs = soak.figures(_result())
    assert set(figs) == {soak.figure_name(m) for m in soak.FIGURES}
    assert all(n.startswith('soak.') for n in figs)
    assert figs['soak.cycles'] == 100
    assert figs['soak.cycles_per_min'] == pytest.approx(50.0)
    assert figs['soak.spawn_p50_ms'] == 50.0
    assert figs['soak.spawn_p99_ms'] == 99.0
    assert figs['soak.delete_p50_ms'] == 10.0
    assert figs['soak.rss_start_mib'] == 200.0
    assert figs['soak.rss_end_mib'] == 201.0
    assert figs['soak.rss_max_mib'] == 201.0
    assert figs['soak.rss_slope_mib_per_100'] == pytest.approx(1.0)
    assert figs['soak.threads_start'] == figs['soak.threads_end'] == 12
    assert (figs['soak.sockets_start'], figs['soak.sockets_end']) == (6, 7)
    assert figs['soak.greenthreads_end'] == 30
    assert (figs['soak.objects_start'], figs['soak.objects_end']) == (
        5000, 5010)
    assert (figs['soak.blocks_start'], figs['soak.blocks_end']) == (
        9000, 9020)
    assert (figs['soak.warmup'], figs['soak.purged_rows']) == (50, 1234)
    assert figs['soak.malloc_used_slope_mib_per_100'] == pytest.approx(0)
    assert figs['soak.rss_trimmed_slope_mib_per_100'] == pytest.approx(0)
    assert (figs['soak.malloc_free_start_mib'],
            figs['soak.malloc_free_end_mib']) == (5.0, 7.0)
    from tools.bench import report
    report.check_figures(figs)


def test_no_greenthreads_without_eventlet():
    r = _result()
    for p in r['checkpoints']:
        p['greenthreads'] = None
    figs = soak.figures(r)
    assert 'soak.greenthreads_start' not in figs
    assert 'soak.greenthreads_end' not in figs
    assert 'soak.threads_end' in figs


def test_table():
    r = _result(20)
    figs = soak.figures(r)
    text = soak.format_results(figs, r, notes=['', 'a note'])
    assert 'Soak (issue 6): 20 boot/delete cycles' in text
    assert 'spawn p99 ms' in text and 'cycles/min' in text
    lines = text.splitlines()
    rows = [ln for ln in lines if re.match(r'(start|end|\d+ %)\s', ln)]
    assert [r.split()[0] for r in rows] == (
        ['start'] + [str(p) for p in range(10, 100, 10)] + ['end'])
    assert 'RSS least-squares slope: 1.00 MiB per 100 cycles' in text
    assert '50 warm-up cycles before the start figures' in text
    assert '1234 rows of deleted servers purged' in text
    assert rows[0].split()[-5:] == ['5000', '9000', '50.0', '5.0', '190.0']
    assert ('malloc in use: 0.00 MiB per 100 cycles; RSS once the '
            'allocator has handed back its free memory (malloc_trim): '
            '0.00 MiB per 100 cycles') in text
    assert lines[-1] == 'a note'


def test_sample_reads_this_process():
    s = soak.sample('start', 0)
    assert s['rss_mib'] > 1
    assert s['threads'] >= 1 and s['os_threads'] >= 1
    assert s['fds'] >= 3 and 0 <= s['sockets'] <= s['fds']
    assert s['objects'] > 1000 and s['blocks'] > s['objects'] / 10
    assert 0 < s['malloc_used_mib'] and 0 <= s['malloc_free_mib']
    assert 0 < s['rss_trimmed_mib'] <= s['rss_mib'] + 1


def test_arguments():
    from tools.bench import __main__ as bench_main
    p = bench_main.parser()
    args = p.parse_args(['--section', 'soak', '--soak-cycles', '20',
                         '--soak-concurrency', '2', '--soak-warmup', '3'])
    assert (args.soak_cycles, args.soak_concurrency) == (20, 2)
    assert args.soak_warmup == 3
    defaults = p.parse_args([])
    assert defaults.soak_cycles == soak.DEFAULT_CYCLES == 500
    assert defaults.soak_concurrency == soak.DEFAULT_CONCURRENCY
    assert defaults.soak_warmup == soak.DEFAULT_WARMUP == 50


def test_readme_lists_the_figure_names():
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    listed = set()
    for name in re.findall(r'`(soak\.[^`]+)`', text):
        # `soak.threads_start`/`_end` style pairs are written out in full.
        listed.add(name)
    assert listed == {soak.figure_name(m) for m in soak.FIGURES}


def test_a_stalled_server_is_reported_with_every_stack(monkeypatch,
                                                       capsys):
    class Api:
        def get_server(self, server_id):
            return {'id': server_id, 'status': 'BUILD',
                    'OS-EXT-STS:task_state': 'spawning',
                    'OS-EXT-SRV-ATTR:host': 'compute-vc'}

    class Case:
        api = Api()

    monkeypatch.setattr(soak, 'POLL', 0)
    with pytest.raises(RuntimeError, match=r'server s1 still BUILD '
                       r'\(task_state spawning, host compute-vc\) after 0 s'):
        soak._wait(Case(), 's1', lambda s: False, 0)
    err = capsys.readouterr().err
    # This very thread is among the stacks, down to the dump itself.
    assert '--- stack of' in err
    assert 'test_a_stalled_server_is_reported_with_every_stack' in err
