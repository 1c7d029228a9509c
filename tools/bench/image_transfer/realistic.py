"""The realistic images (issue 14 item 6): what runs, and its figure names,
figures, targets and report.

Realistic says which images, sizes, cases and deflate levels a run has;
the functions turn measured results into figures and tables, with no
server or process (bench.py and runner.py run the cases).
"""

import dataclasses

from tools.bench import disk_images
from tools.bench import report
from tools.bench.image_transfer.naming import MiB
from tools.bench.image_transfer.naming import NAME
from tools.bench.image_transfer.naming import ratio
from tools.bench.image_transfer.naming import size_bytes
from tools.bench.image_transfer.naming import size_label

# Disks of --realistic-virtual-gib holding --realistic-data-gib of data
# (tools/bench/disk_images.py), in these formats, and the flat
# incompressible image of --incompressible-gib.
REALISTIC_FORMATS = ('qcow2', 'vmdk_stream', 'vmdk_sparse', 'raw')
INCOMPRESSIBLE = 'incompressible'
IMAGE_KINDS = REALISTIC_FORMATS + (INCOMPRESSIBLE,)
IMAGE_TITLES = {'qcow2': 'qcow2 (qemu-img)',
                'vmdk_stream': 'VMDK streamOptimized (qemu-img)',
                'vmdk_sparse': 'VMDK monolithicSparse (qemu-img)',
                'raw': 'raw (sparse file, stored whole)',
                INCOMPRESSIBLE: 'raw, incompressible, no holes'}
DEFAULT_REALISTIC_VIRTUAL = 8    # GiB
DEFAULT_REALISTIC_DATA = 1       # GiB
DEFAULT_INCOMPRESSIBLE = 1       # GiB
R_CASES = ('ours', 'ours_flat', 'intree')
R_CASE_TITLES = {'ours': 'vcdriver',
                 'ours_flat': 'vcdriver, upload_method=flat',
                 'intree': 'in-tree'}
# The in-tree driver's path for each kind; None: it refuses the image.
INTREE_PATHS = {'qcow2': None,
                'vmdk_stream': 'streamOptimized: ImportVApp + NFC PUT',
                'vmdk_sparse': 'sparse: PUT + CopyVirtualDisk_Task',
                'raw': 'flat: PUT (declared vmdk/preallocated)',
                INCOMPRESSIBLE: 'flat: PUT (declared vmdk/preallocated)'}
R_METRICS = ('seconds', 'sent_bytes', 'allocated_bytes',
             'cpu_s_per_data_gib', 'rss_growth_mib')
R_DIGITS = {'seconds': 1, 'cpu_s_per_data_gib': 2, 'rss_growth_mib': 1}
IMAGE_METRICS = ('data_bytes', 'glance_bytes', 'virtual_bytes')
LEVEL_METRICS = ('seconds', 'sent_bytes', 'cpu_s_per_data_gib')
# What a case of ours may cost: 1.05 x the data + 1 MiB (sent, allocated).
DATA_ALLOWANCE = 1.05
DATA_SLACK = MiB

# Targets of issue 14 item 6 (reported, never asserted).
TARGET_VS_DATA = 1.0             # sent or allocated / allowance
TARGET_OURS_VS_INTREE = 1.0      # seconds, on tbf
TARGET_QCOW2_VS_STREAM = 1.1     # ours seconds
TARGET_OURS_VS_FLAT = 1.0        # ours seconds, incompressible, on tbf


@dataclasses.dataclass(frozen=True)
class Realistic:
    """What the realistic part runs: sizes in GiB, image kinds, cases and
    the deflate levels of its sweep (none: no sweep)."""

    virtual: float = DEFAULT_REALISTIC_VIRTUAL
    data: float = DEFAULT_REALISTIC_DATA
    incompressible: float = DEFAULT_INCOMPRESSIBLE
    images: tuple = IMAGE_KINDS
    cases: tuple = R_CASES
    levels: tuple = ()

    def check(self):
        """Raise ValueError unless the sizes make a layout."""
        if any(k in REALISTIC_FORMATS for k in self.images):
            disk_images.Layout(size_bytes(self.virtual),
                               size_bytes(self.data))
        for level in self.levels:
            if not 0 <= level <= 9:
                raise ValueError('deflate level %d is not 0..9' % level)
        return self

    def label(self, kind):
        """'qcow2_8gib_1gib', 'incompressible_1gib': a figure-name part."""
        if kind == INCOMPRESSIBLE:
            return '%s_%s' % (kind, size_label(self.incompressible))
        return '%s_%s_%s' % (kind, size_label(self.virtual),
                             size_label(self.data))

    def data_bytes(self, kind):
        return size_bytes(self.incompressible if kind == INCOMPRESSIBLE
                          else self.data)

    def virtual_bytes(self, kind):
        return size_bytes(self.incompressible if kind == INCOMPRESSIBLE
                          else self.virtual)

    def runs(self, kind, case):
        """Whether (kind, case) is measured: asked for, and not an image
        the in-tree driver refuses."""
        return (kind in self.images and case in self.cases and
                not (case == 'intree' and INTREE_PATHS[kind] is None))

    def swept(self, kind):
        """The deflate-level sweep's images: the realistic ones whose
        grains ours deflates (a streamOptimized source's grains pass
        through as Glance holds them, whatever the level)."""
        return (bool(self.levels) and kind in self.images and
                kind in REALISTIC_FORMATS and kind != 'vmdk_stream')


def allowance(data_bytes):
    """What ours may send and allocate for ``data_bytes`` of data."""
    return DATA_ALLOWANCE * data_bytes + DATA_SLACK


def r_name(link, label, case, metric):
    return '%s.%s.%s.%s.%s' % (NAME, link, label, case, metric)


def image_name(label, metric):
    return '%s.image.%s.%s' % (NAME, label, metric)


def level_name(link, label, level, metric):
    return '%s.%s.%s.ours.deflate_%d.%s' % (NAME, link, label, level, metric)


def r_ratio_names(r, link, kind):
    base = '%s.%s.%s.' % (NAME, link, r.label(kind))
    names = []
    for case in ('ours', 'ours_flat'):
        if r.runs(kind, case):
            names += [base + case + '.sent_vs_data',
                      base + case + '.allocated_vs_data']
    if r.runs(kind, 'ours'):
        if r.runs(kind, 'intree'):
            names.append(base + 'ours_vs_intree')
        if r.runs(kind, 'ours_flat'):
            names.append(base + 'ours_vs_flat')
        if kind == 'qcow2' and r.runs('vmdk_stream', 'ours'):
            names.append(base + 'ours_vs_vmdk_stream')
    return names


def realistic_figure_names(r, links):
    names = [image_name(r.label(k), m) for k in r.images
             for m in IMAGE_METRICS]
    for link in links:
        for kind in r.images:
            label = r.label(kind)
            for case in R_CASES:
                if r.runs(kind, case):
                    names += [r_name(link, label, case, m)
                              for m in R_METRICS]
            names += r_ratio_names(r, link, kind)
            if r.swept(kind):
                for level in r.levels:
                    names += [level_name(link, label, level, m)
                              for m in LEVEL_METRICS]
    return names


def realistic_figures(summary, r, links, images_info, levels=None):
    """Flat figures of the realistic part.

    ``summary``: {(link, kind, case): {metric: value}}; ``images_info``:
    {kind: {data_bytes, glance_bytes, virtual_bytes}}; ``levels``:
    {(link, kind, level): {metric: value}}. Figures not measured are left
    out, and so are ratios of figures not measured.
    """
    levels = levels or {}
    out = {}
    for kind in r.images:
        info = images_info.get(kind) or {}
        for metric in IMAGE_METRICS:
            out[image_name(r.label(kind), metric)] = info.get(metric)
    for link in links:
        for kind in r.images:
            label = r.label(kind)
            base = '%s.%s.%s.' % (NAME, link, label)
            data = (images_info.get(kind) or {}).get('data_bytes')
            limit = allowance(data) if data else None
            got = {c: (summary.get((link, kind, c)) or {}
                       if r.runs(kind, c) else {}) for c in R_CASES}
            for case in R_CASES:
                if r.runs(kind, case):
                    for metric in R_METRICS:
                        out[r_name(link, label, case, metric)] = \
                            got[case].get(metric)
            for case in ('ours', 'ours_flat'):
                if r.runs(kind, case):
                    out[base + case + '.sent_vs_data'] = ratio(
                        got[case].get('sent_bytes'), limit)
                    out[base + case + '.allocated_vs_data'] = ratio(
                        got[case].get('allocated_bytes'), limit)
            ours = got['ours'].get('seconds')
            if r.runs(kind, 'ours'):
                out[base + 'ours_vs_intree'] = ratio(
                    ours, got['intree'].get('seconds'))
                out[base + 'ours_vs_flat'] = ratio(
                    ours, got['ours_flat'].get('seconds'))
                if kind == 'qcow2' and r.runs('vmdk_stream', 'ours'):
                    out[base + 'ours_vs_vmdk_stream'] = ratio(
                        ours, (summary.get((link, 'vmdk_stream', 'ours'))
                               or {}).get('seconds'))
            if r.swept(kind):
                for level in r.levels:
                    values = levels.get((link, kind, level)) or {}
                    for metric in LEVEL_METRICS:
                        out[level_name(link, label, level, metric)] = \
                            values.get(metric)
    wanted = set(realistic_figure_names(r, links))
    return {k: v for k, v in out.items() if v is not None and k in wanted}


def realistic_targets(figs, r, links):
    out = []
    for link in links:
        for kind in r.images:
            if not r.runs(kind, 'ours'):
                continue
            base = '%s.%s.%s.' % (NAME, link, r.label(kind))
            where = '%s %s' % (link, r.label(kind))
            out.append(report.Target(
                '%s: ours sent / (1.05 x data + 1 MiB)' % where,
                figs.get(base + 'ours.sent_vs_data'), '<=', TARGET_VS_DATA))
            out.append(report.Target(
                '%s: ours allocated / (1.05 x data + 1 MiB)' % where,
                figs.get(base + 'ours.allocated_vs_data'), '<=',
                TARGET_VS_DATA))
            if link == 'tbf' and r.runs(kind, 'intree'):
                out.append(report.Target(
                    '%s: ours / in-tree seconds' % where,
                    figs.get(base + 'ours_vs_intree'), '<=',
                    TARGET_OURS_VS_INTREE))
            if kind == 'qcow2' and r.runs('vmdk_stream', 'ours'):
                out.append(report.Target(
                    '%s: ours qcow2 / ours vmdk_stream seconds' % where,
                    figs.get(base + 'ours_vs_vmdk_stream'), '<=',
                    TARGET_QCOW2_VS_STREAM))
            if (link == 'tbf' and kind == INCOMPRESSIBLE and
                    r.runs(kind, 'ours_flat')):
                out.append(report.Target(
                    '%s: ours / ours_flat (the flat PUT) seconds' % where,
                    figs.get(base + 'ours_vs_flat'), '<=',
                    TARGET_OURS_VS_FLAT))
    return out


def _mib(value):
    return None if value is None else value / MiB


def format_realistic(figs, r, links, loads=None, skipped=None):
    """The realistic part's report: images, cases, targets, the sweep.

    ``loads``: {(link, kind, case) or (link, kind, level): load average};
    ``skipped``: {(kind, case): why} for cases that could not run.
    """
    loads = loads or {}
    skipped = skipped or {}
    irows = []
    for kind in r.images:
        label = r.label(kind)
        data = figs.get(image_name(label, 'data_bytes'))
        glance = figs.get(image_name(label, 'glance_bytes'))
        irows.append([label, IMAGE_TITLES[kind],
                      report.fmt_number(_mib(figs.get(
                          image_name(label, 'virtual_bytes')))),
                      report.fmt_number(data, 0),
                      report.fmt_number(glance, 0),
                      report.fmt_number(ratio(glance, data), 2)])
    parts = ['Image transfer, realistic images: Glance -> a cached disk on '
             'the vcsim datastore (TLS); every disk checked against its '
             'image (qemu-img compare; sha512 for the incompressible one)',
             report.format_table(['image', 'format', 'virtual MiB',
                                  'data bytes', 'Glance bytes',
                                  'Glance/data'], irows, align='llrrrr'),
             '']
    rows = []
    for link in links:
        for kind in r.images:
            label = r.label(kind)
            for case in r.cases:
                row = [link, label, case]
                if case == 'intree' and INTREE_PATHS[kind] is None:
                    rows.append(row + ['n/a'] * 8 + ['refuses it'])
                    continue
                values = [figs.get(r_name(link, label, case, m))
                          for m in R_METRICS]
                base = '%s.%s.%s.%s.' % (NAME, link, label, case)
                row += [report.fmt_number(values[0], 1),
                        report.fmt_number(_mib(values[1])),
                        report.fmt_number(_mib(values[2])),
                        report.fmt_number(values[3], 2),
                        report.fmt_number(values[4], 1),
                        report.fmt_number(figs.get(base + 'sent_vs_data'),
                                          3),
                        report.fmt_number(
                            figs.get(base + 'allocated_vs_data'), 3),
                        report.fmt_number(loads.get((link, kind, case))),
                        ]
                row.append('not run' if (kind, case) in skipped else '')
                rows.append(row)
    parts.append(report.format_table(
        ['link', 'image', 'case', 's', 'sent MiB', 'alloc MiB',
         'CPU s/data GiB', 'RSS MiB', 'sent/allow', 'alloc/allow', 'load',
         'note'], rows, align='lllrrrrrrrrl'))
    parts.append('(allow = 1.05 x data + 1 MiB; ours_flat is '
                 '[vcdriver] image_upload_method = flat, the one PUT of '
                 'the whole flat extent that was the only way before)')
    parts.append('in-tree paths: ' + '; '.join(
        '%s: %s' % (k, INTREE_PATHS[k] or 'n/a (it refuses disk_format '
                    'qcow2)') for k in r.images))
    for (kind, case), why in sorted(skipped.items()):
        parts.append('%s %s: not run against vcsim, %s'
                     % (r.label(kind), case, why))
    ratio_rows = []
    for link in links:
        for kind in r.images:
            base = '%s.%s.%s.' % (NAME, link, r.label(kind))
            cells = [figs.get(base + n) for n in
                     ('ours_vs_intree', 'ours_vs_flat',
                      'ours_vs_vmdk_stream')]
            if any(c is not None for c in cells):
                ratio_rows.append([link, r.label(kind)] + [
                    report.fmt_number(c, 2) for c in cells])
    if ratio_rows:
        parts += ['', 'Seconds, ours / other (lower is better for ours)',
                  report.format_table(['link', 'image', '/ in-tree',
                                       '/ ours_flat', '/ ours vmdk_stream'],
                                      ratio_rows, align='llrrr')]
    parts += ['', report.format_targets(realistic_targets(figs, r, links))]
    srows = []
    for link in links:
        for kind in r.images:
            if not r.swept(kind):
                continue
            label = r.label(kind)
            data = figs.get(image_name(label, 'data_bytes'))
            for level in r.levels:
                v = {m: figs.get(level_name(link, label, level, m))
                     for m in LEVEL_METRICS}
                srows.append([
                    link, label, level, report.fmt_number(v['seconds']),
                    report.fmt_number(_mib(v['sent_bytes'])),
                    report.fmt_number(ratio(v['sent_bytes'],
                                             allowance(data) if data
                                             else None), 3),
                    report.fmt_number(v['cpu_s_per_data_gib'], 2),
                    report.fmt_number(loads.get((link, kind, level)))])
    if srows:
        parts += ['', 'Sweep, ours: [vcdriver] image_deflate_level (vmdk_'
                      'stream left out: its grains pass through undeflated)',
                  report.format_table(['link', 'image', 'level', 's',
                                       'sent MiB', 'sent/allow',
                                       'CPU s/data GiB', 'load'], srows,
                                      align='llrrrrrr')]
    return '\n'.join(parts)
