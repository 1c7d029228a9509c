"""The benchmark's pure pieces: names, figures, tables, JSON, arguments.

Nothing here runs a transfer or times anything (the bench is tox -e
bench); no network namespaces either.
"""

import argparse
import itertools
import json
import os
import re

import pytest

from tools.bench import image_transfer as it
from tools.bench import measure
from tools.bench import netns
from tools.bench import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _readme_section(title):
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    start = text.index('\n## %s\n' % title)
    end = text.find('\n## ', start + 1)
    return text[start:end if end != -1 else len(text)]


def _expand(template, **domains):
    keys = re.findall(r'{(\w+)}', template)
    out = set()
    for values in itertools.product(*(domains[k] for k in keys)):
        name = template
        for key, value in zip(keys, values, strict=True):
            name = name.replace('{%s}' % key, str(value), 1)
        out.add(name)
    return out


def _readme_names():
    section = _readme_section('Benchmark')
    templates = set(re.findall(r'`(image_transfer\.[^`]+)`', section))
    sizes = [it.size_label(s) for s in it.DEFAULT_SIZES]
    common = dict(link=it.LINKS, case=it.CASES, metric=it.METRICS,
                  chunk=[it.bytes_label(c) for c in it.SWEEP_CHUNKS],
                  depth=it.SWEEP_DEPTHS)
    names = set()
    for template in templates:
        # The sweep runs at the smallest size only.
        size = sizes[:1] if '.sweep.' in template else sizes
        names |= _expand(template, size=size, **common)
    return names


def _default_sweep():
    return (min(it.DEFAULT_SIZES), it.SWEEP_CHUNKS, it.SWEEP_DEPTHS)


def test_readme_lists_every_figure_name():
    expected = set(it.figure_names(it.DEFAULT_SIZES, it.LINKS,
                                   _default_sweep()))
    assert _readme_names() == expected


def _summary(sizes, links):
    summary = {}
    for n, (link, size, case) in enumerate(
            itertools.product(links, sizes, it.CASES)):
        summary[(link, size, case)] = {'mib_per_s': 100.0 + n,
                                       'cpu_s_per_gib': 1.0 + n / 10,
                                       'rss_growth_mib': 10.0 + n}
    return summary


def test_figures_of_a_full_run_are_exactly_the_names():
    sweep = {(1, c, d): {'mib_per_s': 1.0, 'cpu_s_per_gib': 2.0,
                         'rss_growth_mib': 3.0}
             for c in it.SWEEP_CHUNKS for d in it.SWEEP_DEPTHS}
    figs = it.figures(_summary(it.DEFAULT_SIZES, it.LINKS),
                      it.DEFAULT_SIZES, it.LINKS, 119.2, sweep, 1.5)
    assert set(figs) == set(it.figure_names(it.DEFAULT_SIZES, it.LINKS,
                                            _default_sweep()))
    report.check_figures(figs)


def test_ratios():
    summary = {
        ('tbf', 1, 'raw'): {'mib_per_s': 110.0, 'cpu_s_per_gib': 2.0,
                            'rss_growth_mib': 5.0},
        ('tbf', 1, 'intree'): {'mib_per_s': 100.0, 'cpu_s_per_gib': 4.0,
                               'rss_growth_mib': 5.0},
        ('tbf', 1, 'ours'): {'mib_per_s': 113.0, 'cpu_s_per_gib': 3.0,
                             'rss_growth_mib': 5.0},
    }
    figs = it.figures(summary, [1], ['tbf'], 119.2)
    assert figs['image_transfer.tbf.1gib.ours_vs_raw'] == \
        pytest.approx(113.0 / 110)
    assert figs['image_transfer.tbf.1gib.ours_cpu_vs_intree'] == 0.75
    assert figs['image_transfer.tbf.1gib.ours_vs_link'] == \
        pytest.approx(113.0 / 119.2)
    assert figs['image_transfer.tbf.link_mib_per_s'] == 119.2
    targets = {t.label: t for t in it.targets(figs, [1], ['tbf'])}
    assert targets['tbf 1gib: ours / in-tree CPU s per GiB'].met is False
    assert targets['tbf 1gib: ours / link rate'].met is False


def test_failed_cases_leave_figures_out():
    summary = _summary([1], ['loopback'])
    del summary[('loopback', 1, 'raw')]
    figs = it.figures(summary, [1], ['loopback'])
    assert 'image_transfer.loopback.1gib.raw.mib_per_s' not in figs
    assert 'image_transfer.loopback.1gib.ours_vs_raw' not in figs
    assert 'image_transfer.loopback.1gib.ours_cpu_vs_intree' in figs
    text = it.format_results(figs, [1], ['loopback'])
    assert 'not measured' in text


def test_names():
    assert it.size_label(1) == '1gib'
    assert it.size_label(4.0) == '4gib'
    assert it.size_label(0.25) == '256mib'
    assert it.size_bytes(0.25) == 256 << 20
    assert it.bytes_label(64 << 10) == '64kib'
    assert it.bytes_label(4 << 20) == '4mib'
    assert it.case_name('tbf', 4, 'ours', 'mib_per_s') == \
        'image_transfer.tbf.4gib.ours.mib_per_s'
    assert it.sweep_name(1, 1 << 20, 8, 'cpu_s_per_gib') == \
        'image_transfer.sweep.1gib.chunk_1mib.depth_8.cpu_s_per_gib'
    for name in it.figure_names([0.25, 1], it.LINKS, _default_sweep()):
        assert re.fullmatch(r'[a-z0-9_]+(\.[a-z0-9_]+)+', name), name


def test_format_table():
    text = report.format_table(['name', 'x'], [['a', 1.5], ['long', 10]])
    assert text.splitlines() == ['name    x',
                                 '----  ---',
                                 'a     1.5',
                                 'long   10']


def test_format_results_table():
    figs = it.figures(_summary([1], ['loopback']), [1], ['loopback'])
    text = it.format_results(figs, [1], ['loopback'])
    assert 'vcdriver' in text and 'in-tree' in text and 'raw pipe' in text
    assert 'loopback 1gib: ours / raw pipe MiB/s' in text


def test_targets():
    assert report.Target('t', 0.95, '>=', 0.9).met is True
    assert report.Target('t', 0.5, '<=', 0.6).met is True
    assert report.Target('t', 64, '<', 64).met is False
    assert report.Target('t', None, '<', 64).met is None
    assert report.Target('t', 0.7, '<=', 0.6).row() == \
        ['t', '0.70', '<= 0.60', 'MISSED']
    with pytest.raises(ValueError):
        report.Target('t', 1, '==', 1)


def test_median():
    assert report.median([3.0, 1.0, 2.0]) == 2.0
    assert report.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert report.median([None]) is None


def test_write_json(tmp_path):
    path = tmp_path / 'bench.json'
    report.write_json(str(path), {'b.x': 2, 'a.y': 1.5})
    data = json.loads(path.read_text())
    assert data == {'a.y': 1.5, 'b.x': 2}
    assert list(data) == ['a.y', 'b.x']
    for bad in ({'x': 'fast'}, {'x': True}, {'x': float('nan')},
                {'x': {'y': 1}}):
        with pytest.raises(ValueError):
            report.write_json(str(path), bad)


def test_arguments():
    parser = argparse.ArgumentParser()
    it.add_arguments(parser)
    args = parser.parse_args([])
    assert args.sizes == [1, 4] and args.links == ['loopback', 'tbf']
    args = parser.parse_args(['--sizes', '0.25,1', '--links', 'tbf',
                              '--sweep-chunks', '64k,1m,2MiB',
                              '--sweep-depths', '4,16'])
    assert args.sizes == [0.25, 1]
    assert args.links == ['tbf']
    assert args.sweep_chunks == [64 << 10, 1 << 20, 2 << 20]
    assert args.sweep_depths == [4, 16]
    for bad in (['--links', 'wan'], ['--sizes', '0.0001']):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_rate():
    assert netns.rate_bytes_per_s('1gbit') / (1 << 20) == \
        pytest.approx(119.2, abs=0.05)
    assert netns.rate_bytes_per_s('500mbit') == 62.5e6
    with pytest.raises(ValueError):
        netns.rate_bytes_per_s('1gbps')


def test_measurement_shape():
    m = measure.Measurement().start()
    sum(range(1000))
    result = m.stop()
    assert set(result) >= {'seconds', 'cpu_seconds', 'rss_growth_bytes'}
    assert result['rss_growth_bytes'] >= 0 and result['cpu_seconds'] >= 0
    rates = measure.rates(1 << 30, {'seconds': 2.0, 'cpu_seconds': 3.0,
                                    'rss_growth_bytes': 8 << 20})
    assert rates == {'mib_per_s': 512.0, 'cpu_s_per_gib': 3.0,
                     'rss_growth_mib': 8.0}
