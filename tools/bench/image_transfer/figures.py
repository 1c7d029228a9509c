"""The raw-image cases (1 and 4 GiB by default) and the chunk/depth sweep:
their figure names, figures, targets and table.

Pure functions of the measured results: nothing here starts a server or a
process, so the unit tests check every name against the README.
``figure_names`` covers the whole run, the realistic part's names
(realistic.py) included.
"""

from tools.bench import report
from tools.bench.image_transfer.naming import bytes_label
from tools.bench.image_transfer.naming import MiB
from tools.bench.image_transfer.naming import NAME
from tools.bench.image_transfer.naming import ratio
from tools.bench.image_transfer.naming import size_label
from tools.bench.image_transfer.realistic import realistic_figure_names

CASES = ('raw', 'intree', 'ours')
CASE_TITLES = {'raw': 'raw pipe (curl | curl)',
               'intree': 'in-tree (nova.virt.vmwareapi)',
               'ours': 'vcdriver'}
LINKS = ('loopback', 'tbf')
DEFAULT_SIZES = (1, 4)           # GiB
METRICS = ('mib_per_s', 'cpu_s_per_gib', 'rss_growth_mib')
DIGITS = {'mib_per_s': 1, 'cpu_s_per_gib': 2, 'rss_growth_mib': 1}

# --sweep: [vcdriver] image_transfer_chunk_size x _buffer_chunks, loopback.
SWEEP_CHUNKS = (64 << 10, 256 << 10, 1 << 20, 4 << 20)
SWEEP_DEPTHS = (2, 8, 32)

# Targets of issue 3 item 6 (reported, never asserted).
TARGET_LOOPBACK_VS_RAW = 0.9
TARGET_LINK_FRACTION = 0.95
TARGET_CPU_VS_INTREE = 0.6
TARGET_RSS_MIB = 64
TARGET_RSS_SIZE_GIB = 4


# -- names --------------------------------------------------------------

def case_name(link, size, case, metric):
    return '%s.%s.%s.%s.%s' % (NAME, link, size_label(size), case, metric)


def sweep_name(size, chunk, depth, metric):
    return '%s.sweep.%s.chunk_%s.depth_%d.%s' % (
        NAME, size_label(size), bytes_label(chunk), depth, metric)


def ratio_names(link, size):
    base = '%s.%s.%s.' % (NAME, link, size_label(size))
    names = [base + 'ours_vs_raw', base + 'ours_cpu_vs_intree']
    if link == 'tbf':
        names += [base + 'ours_vs_link', base + 'raw_vs_link']
    return names


LINK_RATE_NAME = NAME + '.tbf.link_mib_per_s'
LOAD_NAME = NAME + '.load_average'


def figure_names(sizes, links, sweep=None, realistic=None):
    """Every figure a run produces, in a stable order.

    ``sweep`` is None or ``(size, chunks, depths)``; ``realistic`` None
    or a Realistic (its images on the same links).
    """
    names = [LOAD_NAME]
    for link in links:
        if link == 'tbf':
            names.append(LINK_RATE_NAME)
        for size in sizes:
            for case in CASES:
                names += [case_name(link, size, case, m) for m in METRICS]
            names += ratio_names(link, size)
    if sweep:
        size, chunks, depths = sweep
        for chunk in chunks:
            for depth in depths:
                names += [sweep_name(size, chunk, depth, m) for m in METRICS]
    if realistic:
        names += realistic_figure_names(realistic, links)
    return names


# -- figures from results -------------------------------------------------

def summarize(results, repeat_values=report.median):
    """``results``: {(link, size, case): [rates dict, ...]} -> medians
    (of the METRICS and, where recorded, ``load``)."""
    return {key: {m: repeat_values([r.get(m) for r in runs])
                  for m in METRICS + ('load',)}
            for key, runs in results.items()}


def figures(summary, sizes, links, link_mib_per_s=None, sweep=None,
            load_average=None):
    """The flat name -> number mapping of a run.

    ``summary``: {(link, size, case): {metric: value}}; ``sweep``:
    {(size, chunk, depth): {metric: value}}; ``load_average``: the
    machine's, while the cases ran. Figures not measured (a failed case)
    are left out.
    """
    out = {LOAD_NAME: load_average}
    for link in links:
        if link == 'tbf' and link_mib_per_s:
            out[LINK_RATE_NAME] = link_mib_per_s
        for size in sizes:
            got = {c: summary.get((link, size, c)) or {} for c in CASES}
            for case in CASES:
                for metric in METRICS:
                    out[case_name(link, size, case, metric)] = \
                        got[case].get(metric)
            base = '%s.%s.%s.' % (NAME, link, size_label(size))
            ours = got['ours'].get('mib_per_s')
            out[base + 'ours_vs_raw'] = ratio(ours,
                                               got['raw'].get('mib_per_s'))
            out[base + 'ours_cpu_vs_intree'] = ratio(
                got['ours'].get('cpu_s_per_gib'),
                got['intree'].get('cpu_s_per_gib'))
            if link == 'tbf':
                out[base + 'ours_vs_link'] = ratio(ours, link_mib_per_s)
                out[base + 'raw_vs_link'] = ratio(
                    got['raw'].get('mib_per_s'), link_mib_per_s)
    for (size, chunk, depth), values in (sweep or {}).items():
        for metric in METRICS:
            out[sweep_name(size, chunk, depth, metric)] = values.get(metric)
    return {k: v for k, v in out.items() if v is not None}


def targets(figs, sizes, links, link_mib_per_s=None):
    out = []
    for link in links:
        for size in sizes:
            base = '%s.%s.%s.' % (NAME, link, size_label(size))
            where = '%s %s' % (link, size_label(size))
            if link == 'loopback':
                out.append(report.Target(
                    '%s: ours / raw pipe MiB/s' % where,
                    figs.get(base + 'ours_vs_raw'), '>=',
                    TARGET_LOOPBACK_VS_RAW))
            else:
                out.append(report.Target(
                    '%s: ours / link rate' % where,
                    figs.get(base + 'ours_vs_link'), '>=',
                    TARGET_LINK_FRACTION))
            out.append(report.Target(
                '%s: ours / in-tree CPU s per GiB' % where,
                figs.get(base + 'ours_cpu_vs_intree'), '<=',
                TARGET_CPU_VS_INTREE))
            if size >= TARGET_RSS_SIZE_GIB:
                out.append(report.Target(
                    '%s: ours RSS growth MiB' % where,
                    figs.get(case_name(link, size, 'ours',
                                       'rss_growth_mib')),
                    '<', TARGET_RSS_MIB))
    return out


def format_results(figs, sizes, links, link_mib_per_s=None, sweep=None,
                   notes=(), loads=None):
    """The human-readable report: cases, targets and the sweep.

    ``loads``: {(link, size, case) or (size, chunk, depth): load
    average}, for a column that says how busy the machine was.
    """
    loads = loads or {}
    rows = []
    for link in links:
        for size in sizes:
            for case in CASES:
                row = [link, '%g GiB' % size, CASE_TITLES[case]]
                for metric in METRICS:
                    row.append(report.fmt_number(
                        figs.get(case_name(link, size, case, metric)),
                        DIGITS[metric]))
                row.append(report.fmt_number(loads.get((link, size, case))))
                rows.append(row)
    parts = ['Image transfer: Glance -> vcsim datastore (TLS), raw image, '
             'sha512 checked after every case']
    if rows:
        parts.append(report.format_table(
            ['link', 'size', 'case', 'MiB/s', 'CPU s/GiB',
             'RSS growth MiB', 'load'], rows, align='lllrrrr'))
        if 'tbf' in links and link_mib_per_s:
            parts.append('tbf link rate: %.1f MiB/s' % link_mib_per_s)
        parts.append('')
        parts.append(report.format_targets(
            targets(figs, sizes, links, link_mib_per_s)))
    if sweep:
        size, chunks, depths = sweep
        srows = []
        for chunk in chunks:
            for depth in depths:
                srows.append([
                    bytes_label(chunk).replace('kib', ' KiB')
                    .replace('mib', ' MiB'), depth,
                    '%g MiB' % (chunk * depth / MiB)] + [
                    report.fmt_number(figs.get(
                        sweep_name(size, chunk, depth, m)), DIGITS[m])
                    for m in METRICS] + [report.fmt_number(
                        loads.get((size, chunk, depth)))])
        parts += ['', 'Sweep, ours on loopback, %g GiB: [vcdriver] '
                      'image_transfer_chunk_size x image_transfer_buffer_'
                      'chunks' % size,
                  report.format_table(
                      ['chunk', 'chunks', 'buffer', 'MiB/s', 'CPU s/GiB',
                       'RSS growth MiB', 'load'], srows)]
    parts += list(notes)
    return '\n'.join(parts)
