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
from tools.bench.image_transfer import bench
from tools.bench.image_transfer import cli
from tools.bench.image_transfer import figures
from tools.bench.image_transfer import naming
from tools.bench.image_transfer import realistic

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


# The README's example of the deflate-level sweep.
README_LEVELS = (0, 1, 6)


def _realistic(**kwargs):
    kwargs.setdefault('levels', README_LEVELS)
    return realistic.Realistic(**kwargs)


def _documented_exception(name):
    """Names the README's templates expand to that no run makes, as its
    text says: no in-tree case of qcow2 (it refuses it); no deflate sweep
    of vmdk_stream (grains pass through) or of the incompressible image."""
    return (('.qcow2_' in name and 'intree' in name) or
            ('.deflate_' in name and ('.vmdk_stream_' in name or
                                      '.incompressible_' in name)))


def _readme_names():
    section = _readme_section('Benchmark')
    templates = set(re.findall(r'`(image_transfer\.[^`]+)`', section))
    sizes = [naming.size_label(s) for s in figures.DEFAULT_SIZES]
    r = _realistic()
    common = dict(link=figures.LINKS, case=figures.CASES,
                  metric=figures.METRICS,
                  chunk=[naming.bytes_label(c)
                         for c in figures.SWEEP_CHUNKS],
                  depth=figures.SWEEP_DEPTHS,
                  image=[r.label(k) for k in realistic.IMAGE_KINDS],
                  rcase=realistic.R_CASES, ocase=('ours', 'ours_flat'),
                  level=README_LEVELS)
    names = set()
    for template in templates:
        # The sweep runs at the smallest size only.
        size = sizes[:1] if '.sweep.' in template else sizes
        names |= _expand(template, size=size, **common)
    return {n for n in names if not _documented_exception(n)}


def _default_sweep():
    return (min(figures.DEFAULT_SIZES), figures.SWEEP_CHUNKS,
            figures.SWEEP_DEPTHS)


def test_readme_lists_every_figure_name():
    expected = set(figures.figure_names(figures.DEFAULT_SIZES,
                                        figures.LINKS, _default_sweep(),
                                        _realistic()))
    assert _readme_names() == expected


def _summary(sizes, links):
    summary = {}
    for n, (link, size, case) in enumerate(
            itertools.product(links, sizes, figures.CASES)):
        summary[(link, size, case)] = {'mib_per_s': 100.0 + n,
                                       'cpu_s_per_gib': 1.0 + n / 10,
                                       'rss_growth_mib': 10.0 + n}
    return summary


def test_figures_of_a_full_run_are_exactly_the_names():
    sweep = {(1, c, d): {'mib_per_s': 1.0, 'cpu_s_per_gib': 2.0,
                         'rss_growth_mib': 3.0}
             for c in figures.SWEEP_CHUNKS for d in figures.SWEEP_DEPTHS}
    figs = figures.figures(_summary(figures.DEFAULT_SIZES, figures.LINKS),
                           figures.DEFAULT_SIZES, figures.LINKS, 119.2, sweep,
                           1.5)
    assert set(figs) == set(figures.figure_names(
        figures.DEFAULT_SIZES, figures.LINKS, _default_sweep()))
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
    figs = figures.figures(summary, [1], ['tbf'], 119.2)
    assert figs['image_transfer.tbf.1gib.ours_vs_raw'] == \
        pytest.approx(113.0 / 110)
    assert figs['image_transfer.tbf.1gib.ours_cpu_vs_intree'] == 0.75
    assert figs['image_transfer.tbf.1gib.ours_vs_link'] == \
        pytest.approx(113.0 / 119.2)
    assert figs['image_transfer.tbf.link_mib_per_s'] == 119.2
    targets = {t.label: t for t in figures.targets(figs, [1], ['tbf'])}
    assert targets['tbf 1gib: ours / in-tree CPU s per GiB'].met is False
    assert targets['tbf 1gib: ours / link rate'].met is False


def test_failed_cases_leave_figures_out():
    summary = _summary([1], ['loopback'])
    del summary[('loopback', 1, 'raw')]
    figs = figures.figures(summary, [1], ['loopback'])
    assert 'image_transfer.loopback.1gib.raw.mib_per_s' not in figs
    assert 'image_transfer.loopback.1gib.ours_vs_raw' not in figs
    assert 'image_transfer.loopback.1gib.ours_cpu_vs_intree' in figs
    text = figures.format_results(figs, [1], ['loopback'])
    assert 'not measured' in text


def test_names():
    assert naming.size_label(1) == '1gib'
    assert naming.size_label(4.0) == '4gib'
    assert naming.size_label(0.25) == '256mib'
    assert naming.size_bytes(0.25) == 256 << 20
    assert naming.bytes_label(64 << 10) == '64kib'
    assert naming.bytes_label(4 << 20) == '4mib'
    assert figures.case_name('tbf', 4, 'ours', 'mib_per_s') == \
        'image_transfer.tbf.4gib.ours.mib_per_s'
    assert figures.sweep_name(1, 1 << 20, 8, 'cpu_s_per_gib') == \
        'image_transfer.sweep.1gib.chunk_1mib.depth_8.cpu_s_per_gib'
    for name in figures.figure_names([0.25, 1], figures.LINKS,
                                     _default_sweep()):
        assert re.fullmatch(r'[a-z0-9_]+(\.[a-z0-9_]+)+', name), name


def test_format_table():
    text = report.format_table(['name', 'x'], [['a', 1.5], ['long', 10]])
    assert text.splitlines() == ['name    x',
                                 '----  ---',
                                 'a     1.5',
                                 'long   10']


def test_format_results_table():
    figs = figures.figures(_summary([1], ['loopback']), [1], ['loopback'])
    text = figures.format_results(figs, [1], ['loopback'])
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


# -- realistic images (issue 14 item 6) -------------------------------------

def _realistic_run(r, links=figures.LINKS):
    """A made-up full run of ``r``: summary, images, sweep."""
    summary, levels, info = {}, {}, {}
    for n, (link, kind, case) in enumerate(
            itertools.product(links, r.images, realistic.R_CASES)):
        if r.runs(kind, case):
            summary[(link, kind, case)] = {
                'seconds': 10.0 + n, 'sent_bytes': 100 * (n + 1) << 20,
                'allocated_bytes': 128 << 20, 'cpu_s_per_data_gib': 2.0,
                'rss_growth_mib': 30.0}
        if r.swept(kind) and case == 'ours':
            for level in r.levels:
                levels[(link, kind, level)] = {
                    'seconds': 5.0 + level, 'sent_bytes': 90 << 20,
                    'cpu_s_per_data_gib': 1.0 + level}
    for kind in r.images:
        info[kind] = {'data_bytes': r.data_bytes(kind),
                      'glance_bytes': r.data_bytes(kind) + 4096,
                      'virtual_bytes': r.virtual_bytes(kind)}
    return summary, info, levels


def test_realistic_labels_and_names():
    r = realistic.Realistic()
    assert r.label('qcow2') == 'qcow2_8gib_1gib'
    assert r.label('vmdk_stream') == 'vmdk_stream_8gib_1gib'
    assert r.label('incompressible') == 'incompressible_1gib'
    small = realistic.Realistic(virtual=1, data=0.125, incompressible=0.25)
    assert small.label('raw') == 'raw_1gib_128mib'
    assert small.label('incompressible') == 'incompressible_256mib'
    assert small.data_bytes('raw') == 128 << 20
    assert small.virtual_bytes('raw') == 1 << 30
    assert small.data_bytes('incompressible') == 256 << 20
    assert small.virtual_bytes('incompressible') == 256 << 20
    assert realistic.r_name('tbf', 'raw_8gib_1gib', 'ours', 'seconds') == \
        'image_transfer.tbf.raw_8gib_1gib.ours.seconds'
    assert realistic.image_name('raw_8gib_1gib', 'glance_bytes') == \
        'image_transfer.image.raw_8gib_1gib.glance_bytes'
    assert realistic.level_name('loopback', 'qcow2_8gib_1gib', 6,
                                'sent_bytes') == \
        'image_transfer.loopback.qcow2_8gib_1gib.ours.deflate_6.sent_bytes'
    names = figures.figure_names([0.25], figures.LINKS, None, _realistic())
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r'[a-z0-9_]+(\.[a-z0-9_]+)+', name), name
    # Nothing of the sizes part is named like the realistic part.
    sizes_part = set(figures.figure_names(figures.DEFAULT_SIZES,
                                          figures.LINKS, _default_sweep()))
    assert not sizes_part & set(realistic.realistic_figure_names(
        _realistic(), figures.LINKS))


def test_realistic_what_runs():
    r = _realistic()
    assert not r.runs('qcow2', 'intree')
    assert r.runs('vmdk_stream', 'intree') and r.runs('raw', 'intree')
    assert r.runs('qcow2', 'ours') and r.runs('qcow2', 'ours_flat')
    assert [k for k in realistic.IMAGE_KINDS if r.swept(k)] == \
        ['qcow2', 'vmdk_sparse', 'raw']
    assert not realistic.Realistic().swept('qcow2')   # no levels, no sweep
    some = realistic.Realistic(images=('raw',), cases=('ours',))
    assert not some.runs('qcow2', 'ours') and not some.runs('raw', 'intree')
    names = realistic.realistic_figure_names(some, ['tbf'])
    assert 'image_transfer.tbf.raw_8gib_1gib.ours_vs_intree' not in names
    assert 'image_transfer.tbf.raw_8gib_1gib.ours.sent_vs_data' in names


def test_realistic_figures_of_a_full_run_are_exactly_the_names():
    r = _realistic()
    summary, info, levels = _realistic_run(r)
    figs = realistic.realistic_figures(summary, r, figures.LINKS, info,
                                       levels)
    assert set(figs) == set(realistic.realistic_figure_names(
        r, figures.LINKS))
    report.check_figures(figs)


def test_realistic_ratios():
    r = realistic.Realistic(images=('qcow2', 'vmdk_stream',
                                    'incompressible'))
    data = 1 << 30
    allow = 1.05 * data + (1 << 20)
    summary = {
        ('tbf', 'qcow2', 'ours'): {'seconds': 11.0, 'sent_bytes': 800 << 20,
                                   'allocated_bytes': data + (8 << 20)},
        ('tbf', 'qcow2', 'ours_flat'): {'seconds': 80.0,
                                        'sent_bytes': 8 << 30,
                                        'allocated_bytes': 8 << 30},
        ('tbf', 'vmdk_stream', 'ours'): {'seconds': 10.0},
        ('tbf', 'vmdk_stream', 'intree'): {'seconds': 8.0},
        ('tbf', 'incompressible', 'ours'): {'seconds': 9.0},
        ('tbf', 'incompressible', 'ours_flat'): {'seconds': 9.5},
    }
    info = {k: {'data_bytes': data} for k in r.images}
    figs = realistic.realistic_figures(summary, r, ['tbf'], info)
    base = 'image_transfer.tbf.qcow2_8gib_1gib.'
    assert figs[base + 'ours.sent_vs_data'] == pytest.approx((800 << 20) /
                                                             allow)
    assert figs[base + 'ours.allocated_vs_data'] == pytest.approx(
        (data + (8 << 20)) / allow)
    assert figs[base + 'ours_flat.sent_vs_data'] == pytest.approx(
        (8 << 30) / allow)
    assert figs[base + 'ours_vs_vmdk_stream'] == 1.1
    assert figs[base + 'ours_vs_flat'] == pytest.approx(11 / 80)
    assert base + 'ours_vs_intree' not in figs          # it refuses qcow2
    assert figs['image_transfer.tbf.vmdk_stream_8gib_1gib.ours_vs_intree'] \
        == 1.25
    # Not measured: no ratio.
    assert 'image_transfer.tbf.vmdk_stream_8gib_1gib.ours_vs_flat' \
        not in figs
    targets = {t.label: t
               for t in realistic.realistic_targets(figs, r, ['tbf'])}
    assert targets['tbf qcow2_8gib_1gib: ours sent / (1.05 x data + 1 MiB)'
                   ].met is True
    assert targets['tbf qcow2_8gib_1gib: ours qcow2 / ours vmdk_stream '
                   'seconds'].met is True       # 1.1 <= 1.1
    assert targets['tbf vmdk_stream_8gib_1gib: ours / in-tree seconds'
                   ].met is False
    assert targets['tbf incompressible_1gib: ours / ours_flat (the flat '
                   'PUT) seconds'].met is True
    assert targets['tbf vmdk_stream_8gib_1gib: ours sent / (1.05 x data '
                   '+ 1 MiB)'].met is None
    # On loopback no seconds targets but the qcow2 one.
    loop = {t.label for t in realistic.realistic_targets({}, r, ['loopback'])}
    assert not any('in-tree' in t or 'ours_flat' in t for t in loop)
    assert any('ours qcow2 / ours vmdk_stream' in t for t in loop)


def test_allowance():
    assert realistic.allowance(0) == 1 << 20
    assert realistic.allowance(1 << 30) == 1.05 * (1 << 30) + (1 << 20)


def test_format_realistic():
    r = _realistic()
    summary, info, levels = _realistic_run(r, ['loopback'])
    figs = realistic.realistic_figures(summary, r, ['loopback'], info, levels)
    text = realistic.format_realistic(
        figs, r, ['loopback'], skipped={('vmdk_sparse', 'intree'): 'why'})
    assert 'refuses it' in text and 'n/a' in text
    assert 'vmdk_sparse_8gib_1gib intree: not run against vcsim, why' in text
    assert 'image_deflate_level' in text
    assert 'loopback qcow2_8gib_1gib: ours sent / (1.05 x data + 1 MiB)' \
        in text
    # Without levels, no sweep table.
    plain = realistic.Realistic()
    summary, info, _ = _realistic_run(plain, ['loopback'])
    text = realistic.format_realistic(realistic.realistic_figures(
        summary, plain, ['loopback'], info), plain, ['loopback'])
    assert 'image_deflate_level' not in text


def test_realistic_arguments():
    parser = argparse.ArgumentParser()
    it.add_arguments(parser)
    args = parser.parse_args([])
    assert args.realistic and not args.only_realistic
    assert (args.realistic_virtual_gib, args.realistic_data_gib,
            args.incompressible_gib) == (8, 1, 1)
    assert args.images == list(realistic.IMAGE_KINDS)
    assert args.realistic_cases == list(realistic.R_CASES)
    assert args.deflate_levels == []
    assert cli.realistic_config(args) == realistic.Realistic()
    args = parser.parse_args([
        '--realistic-virtual-gib', '1', '--realistic-data-gib', '0.125',
        '--incompressible-gib', '0.25', '--images', 'qcow2,raw',
        '--realistic-cases', 'ours,intree', '--deflate-levels', '0,1,6'])
    assert cli.realistic_config(args) == realistic.Realistic(
        virtual=1, data=0.125, incompressible=0.25, images=('qcow2', 'raw'),
        cases=('ours', 'intree'), levels=(0, 1, 6))
    assert cli.realistic_config(parser.parse_args(['--no-realistic'])) is None
    assert cli.realistic_config(parser.parse_args(['--only-sweep'])) is None
    for bad in (['--deflate-levels', '10'], ['--deflate-levels', 'fast'],
                ['--images', 'vhd'], ['--realistic-cases', 'raw'],
                ['--realistic-data-gib', '0'],
                ['--realistic-virtual-gib', '0.0001']):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    # Parsed, but no layout: data not a multiple of 8 MiB, or over the
    # virtual size.
    for bad in (['--realistic-data-gib', '0.0048828125'],
                ['--realistic-virtual-gib', '1', '--realistic-data-gib',
                 '2']):
        with pytest.raises(ValueError):
            cli.realistic_config(parser.parse_args(bad))
    # ... unless no realistic format is asked for.
    args = parser.parse_args(['--realistic-data-gib', '2',
                              '--realistic-virtual-gib', '1',
                              '--images', 'incompressible'])
    assert cli.realistic_config(args).images == ('incompressible',)


def test_layout():
    from tools.bench import disk_images
    layout = disk_images.Layout(virtual=8 << 30, data=1 << 30)
    extents = layout.extents()
    assert layout.count == len(extents) == 256
    assert extents[0] == (0, 'random') and extents[1][1] == 'text'
    assert [k for _, k in extents].count('random') == 128
    offsets = [o for o, _ in extents]
    assert offsets == sorted(offsets)
    assert all(o % (1 << 20) == 0 for o in offsets)
    assert all(b - a > layout.extent for a, b in
               zip(offsets, offsets[1:], strict=False))
    assert offsets[-1] + layout.extent <= layout.virtual
    full = disk_images.Layout(virtual=64 << 20, data=64 << 20)
    assert [o for o, _ in full.extents()] == [i << 22 for i in range(16)]
    for virtual, data in ((8 << 20, 16 << 20), (1 << 30, 12 << 20),
                          (1 << 30, 0), ((1 << 30) + 1, 8 << 20)):
        with pytest.raises(ValueError):
            disk_images.Layout(virtual=virtual, data=data)


def test_disk_image_bytes():
    import zlib

    from tools.bench import disk_images
    text = disk_images.text_block(1 << 20)
    assert len(text) == 1 << 20 and text.isascii() and b'\0' not in text
    assert text == disk_images.text_block(1 << 20)          # seeded
    ratio = len(zlib.compress(text, 1)) / len(text)
    assert 0.3 < ratio < 0.6, ratio
    rand = disk_images.random_block(1 << 20)
    assert len(zlib.compress(rand, 1)) > len(rand)


def test_write_raw(tmp_path):
    from tools.bench import disk_images
    layout = disk_images.Layout(virtual=64 << 20, data=16 << 20)
    path = str(tmp_path / 'disk.raw')
    assert disk_images.write_raw(path, layout, block=8 << 20) == 16 << 20
    assert os.path.getsize(path) == 64 << 20
    with open(path, 'rb') as f:
        for offset, _kind in layout.extents():
            f.seek(offset)
            assert f.read(layout.extent).count(0) < layout.extent // 100
            assert f.read(1 << 20) == bytes(1 << 20)     # a hole after
    # Sparse where the file system can be (tmpfs, ext4, xfs ...).
    assert disk_images.allocated(path) < 32 << 20


def test_qemu_img_commands():
    from tools.bench import disk_images
    assert disk_images.convert_command('a.raw', 'vmdk_stream', 'b.vmdk') == [
        'qemu-img', 'convert', '-f', 'raw', '-O', 'vmdk', '-o',
        'subformat=streamOptimized,adapter_type=lsilogic', 'a.raw', 'b.vmdk']
    assert disk_images.convert_command('a.raw', 'qcow2', 'b') == [
        'qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', 'a.raw', 'b']
    assert disk_images.compare_command('b.vmdk', 'vmdk_sparse', 'f') == [
        'qemu-img', 'compare', '-f', 'vmdk', '-F', 'raw', 'b.vmdk', 'f']
    assert set(disk_images.FORMATS) == set(realistic.REALISTIC_FORMATS)


def test_tree_and_topmost(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    (tmp_path / 'a' / 'b' / 'f').write_text('x')
    (tmp_path / 'g').write_text('y')
    before = {'g'}
    new = bench._tree(str(tmp_path)) - before
    assert new == {'a', 'a/b', 'a/b/f'}
    assert bench._topmost(new) == ['a']
    assert bench._topmost({'a/b', 'a/b/f', 'c'}) == ['a/b', 'c']
