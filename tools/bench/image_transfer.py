"""Bench section: an image from a real Glance onto a vcsim datastore.

Three ways to move the same raw image (incompressible bytes), each run in a
fresh process and measured inside it (tools/bench/measure.py):

``raw``
    ``curl GET | curl -T - PUT``: the bytes, no verification, no Python.
``intree``
    ``nova.virt.vmwareapi.images.fetch_image`` as installed with Nova:
    ``IMAGE_API.download`` (glanceclient checks the sha512) into
    oslo.vmware's ``ImageReadHandle``/``FileWriteHandle``. Its loop asks
    for 64 KiB, but ``ImageReadHandle`` ignores the size and passes on
    glanceclient's chunks: 1 MiB with glanceclient 4.x.
``ours``
    ``vcdriver.images.pipeline.fill`` as spawn calls it (image
    record, disk creation, pipelined copy, sha512 verification).

Each on loopback (everything in one network namespace on 127.0.0.1) and
over a link shaped with tbf (servers in ``vcb-srv``, the transfer in
``vcb-cli``; tools/bench/netns.py). One Glance and one vcsim serve every
case, both listening on all addresses of the server namespace. After
every case the datastore file is hashed against Glance's
``os_hash_value`` and its size checked, then deleted.

vcsim serves TLS, as every vCenter does: the in-tree handles only speak
https to a datastore. Certificates are not verified (in-tree default).
``VCDRIVER_BENCH_VERBOSE=1`` shows each worker's INFO log (vcdriver's
transfer progress and rate).

Realistic images (issue 14 item 6; ``--no-realistic`` leaves them out,
``--only-realistic`` runs nothing else): a disk of
``--realistic-virtual-gib`` (8) holding ``--realistic-data-gib`` (1) of
data, in 4 MiB extents spread evenly with holes between, every other one
random and the rest text-like (tools/bench/disk_images.py), as qcow2,
streamOptimized and monolithicSparse VMDKs made by ``qemu-img convert``
and as the raw disk itself (Glance stores it whole), and the flat
incompressible image of ``--incompressible-gib`` (1). Their cases, each to
a cached disk as spawn has one:

``ours``
    ``vcdriver.images.pipeline.cached`` with default settings (the disk
    goes as a streamOptimized VMDK through an NFC import lease).
``ours_flat``
    the same with ``[vcdriver] image_upload_method = flat``: one PUT of
    the whole flat extent, as before the import lease.
``intree``
    ``VMwareVMOps._fetch_image_if_missing`` of a started in-tree driver
    (tools/bench/intree.py), as its spawn calls it: ImportVApp for a
    streamOptimized VMDK, PUT then CopyVirtualDisk_Task for a
    monolithicSparse one, a PUT of the flat extent for raw bytes
    (declared ``vmdk``/``preallocated``, as the in-tree driver needs
    them); it refuses qcow2 (n/a). What fails is reported in one line,
    without figures.

For each: wall seconds, bytes sent to vSphere (what the launcher received
on NFC import leases, GET /vcdriver/nfc, plus flat PUT bodies counted in
the worker), bytes allocated on the datastore by what the case left
(st_blocks), CPU seconds per GiB of data, RSS growth; and the issue's
ratios. Every disk is compared with its image (``qemu-img compare``; the
sha512 for the incompressible one) and removed. ``--deflate-levels 0,1,6``
adds ours at those ``[vcdriver] image_deflate_level`` on the realistic
images whose grains ours deflates.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

from tools.bench import arg_types
from tools.bench import disk_images
from tools.bench import measure
from tools.bench import netns
from tools.bench import report
from tools.bench import worker

NAME = 'image_transfer'
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

PATTERN_BLOCK = 16 << 20         # random block repeated: incompressible
BENCH_FOLDER = 'vcdriver-bench'
WORKER_TIMEOUT = 1800

MiB = 1 << 20
GiB = 1 << 30

# -- realistic images (issue 14 item 6) --
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


# -- names --------------------------------------------------------------

def size_label(gib):
    """1 -> '1gib', 0.25 -> '256mib': a figure-name part without dots."""
    mib = round(gib * 1024)
    if mib % 1024 == 0:
        return '%dgib' % (mib // 1024)
    return '%dmib' % mib


def size_bytes(gib):
    return round(gib * 1024) * MiB


def bytes_label(n):
    if n % MiB == 0:
        return '%dmib' % (n // MiB)
    return '%dkib' % (n // 1024)


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

def _ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


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
            out[base + 'ours_vs_raw'] = _ratio(ours,
                                               got['raw'].get('mib_per_s'))
            out[base + 'ours_cpu_vs_intree'] = _ratio(
                got['ours'].get('cpu_s_per_gib'),
                got['intree'].get('cpu_s_per_gib'))
            if link == 'tbf':
                out[base + 'ours_vs_link'] = _ratio(ours, link_mib_per_s)
                out[base + 'raw_vs_link'] = _ratio(
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


# -- realistic images: names, figures, report ------------------------------

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
                    out[base + case + '.sent_vs_data'] = _ratio(
                        got[case].get('sent_bytes'), limit)
                    out[base + case + '.allocated_vs_data'] = _ratio(
                        got[case].get('allocated_bytes'), limit)
            ours = got['ours'].get('seconds')
            if r.runs(kind, 'ours'):
                out[base + 'ours_vs_intree'] = _ratio(
                    ours, got['intree'].get('seconds'))
                out[base + 'ours_vs_flat'] = _ratio(
                    ours, got['ours_flat'].get('seconds'))
                if kind == 'qcow2' and r.runs('vmdk_stream', 'ours'):
                    out[base + 'ours_vs_vmdk_stream'] = _ratio(
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
                      report.fmt_number(_ratio(glance, data), 2)])
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
                    report.fmt_number(_ratio(v['sent_bytes'],
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


# -- the worker: one case in one fresh process ------------------------------

def _datastore_url(spec):
    query = urllib.parse.urlencode({'dcPath': spec['dc'],
                                    'dsName': spec['ds']})
    return 'https://%s:%d/folder/%s?%s' % (
        spec['vc_host'], spec['vc_port'],
        urllib.parse.quote('%s/%s' % (spec['folder'], spec['name'])), query)


def _worker_raw(spec):
    get = ['curl', '-sS', '-f', '-H', 'X-Auth-Token: bench',
           '%s/v2/images/%s/file' % (spec['glance'], spec['image_id'])]
    put = ['curl', '-sS', '-f', '-k', '-T', '-', '-o', '/dev/null',
           '-H', 'Content-Type: application/octet-stream',
           _datastore_url(spec)]
    m = measure.Measurement(self_cpu=False, children=True).start()
    reader = subprocess.Popen(get, stdout=subprocess.PIPE)
    writer = subprocess.Popen(put, stdin=reader.stdout)
    reader.stdout.close()
    codes = (writer.wait(), reader.wait())
    result = m.stop()
    if any(codes):
        raise RuntimeError('curl | curl failed: exit codes %s' % (codes,))
    return result


def _nova_setup(spec):
    """Nova's CONF and a context, as nova-compute in threading mode."""
    import oslo_service.backend as service_backend
    service_backend.init_backend(service_backend.BackendType.THREADING)
    import nova.conf
    from nova import context as nova_context
    from nova import objects

    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[], default_config_dirs=[])
    conf.set_override('api_servers', [spec['glance']], group='glance')
    objects.register_all()
    ctx = nova_context.RequestContext(user_id='bench', project_id='bench',
                                      auth_token='bench-token')
    return conf, ctx


def _worker_intree(spec):
    conf, ctx = _nova_setup(spec)
    from nova import objects
    from nova.virt.vmwareapi import images
    from oslo_utils import uuidutils
    from pyVim.connect import SmartConnect

    si = SmartConnect(host=spec['vc_host'], port=spec['vc_port'],
                      user=spec['user'], pwd=spec['password'],
                      disableSslCertValidation=True)
    cookies = si._stub.cookie
    instance = objects.Instance(uuid=uuidutils.generate_uuid(),
                                image_ref=spec['image_id'])
    m = measure.Measurement().start()
    images.fetch_image(ctx, instance, spec['vc_host'], spec['vc_port'],
                       spec['dc'], spec['ds'],
                       '%s/%s' % (spec['folder'], spec['name']),
                       cookies=cookies)
    return m.stop()


def _worker_ours(spec):
    conf, ctx = _nova_setup(spec)
    from oslo_vmware.objects import datastore as ds_obj

    from vcdriver import cluster as cluster_mod
    from vcdriver.images import disk
    from vcdriver.images import glance
    from vcdriver.images import pipeline
    from vcdriver.vsphere import session as session_mod

    for key, value in (spec.get('conf') or {}).items():
        conf.set_override(key, value, group='vcdriver')
    session = session_mod.Session(spec['vc_host'], spec['vc_port'],
                                  spec['user'], spec['password'],
                                  protocol='https', insecure=True)
    session.connect()
    target = cluster_mod.resolve(session, [spec['cluster']])[0]
    path = ds_obj.DatastorePath(spec['ds'], spec['folder'], spec['name'])
    m = measure.Measurement().start()
    image = glance.get(ctx, spec['image_id'])
    pipeline.fill(session, ctx, target, image,
                  disk.check_acceptable(image), path)
    result = m.stop()
    session.logout()
    return result


def _count_writes(cls, counter):
    """Count what goes through ``cls.write`` in ``counter[0]`` (bytes):
    the body of a flat PUT, which the launcher does not count."""
    write = cls.write

    def counting_write(self, data):
        counter[0] += len(data)
        return write(self, data)
    cls.write = counting_write


def _worker_cached(spec):
    """ours, to a cached disk as spawn has one: ``pipeline.cached`` (the
    cache's lock and partial folder, ``fill``, publication)."""
    conf, ctx = _nova_setup(spec)
    from vcdriver import cluster as cluster_mod
    from vcdriver.images import disk
    from vcdriver.images import glance
    from vcdriver.images import pipeline
    from vcdriver.vsphere import datastore_http
    from vcdriver.vsphere import session as session_mod

    for key, value in (spec.get('conf') or {}).items():
        conf.set_override(key, value, group='vcdriver')
    put = [0]
    _count_writes(datastore_http.FileWriter, put)
    session = session_mod.Session(spec['vc_host'], spec['vc_port'],
                                  spec['user'], spec['password'],
                                  protocol='https', insecure=True)
    session.connect()
    target = cluster_mod.resolve(session, [spec['cluster']])[0]
    m = measure.Measurement().start()
    image = glance.get(ctx, spec['image_id'])
    entry = pipeline.cached(session, ctx, target, image,
                            disk.check_acceptable(image), spec['ds'])
    result = m.stop()
    session.logout()
    result.update(disk=str(entry.disk), put_bytes=put[0])
    return result


def _worker_intree_spawn(spec):
    """The in-tree driver to a cached disk as its spawn has one:
    ``VMwareVMOps._fetch_image_if_missing`` (prepare, fetch, cache) for
    the image as spawn sees it; or why it cannot run here."""
    conf, ctx = _nova_setup(spec)
    from tools.bench import intree

    for key, value in (('host_ip', spec['vc_host']),
                       ('host_port', spec['vc_port']),
                       ('host_username', spec['user']),
                       ('host_password', spec['password']),
                       ('insecure', True),
                       ('cluster_name', spec['cluster']),
                       ('datastore_regex', '^%s$' % re.escape(spec['ds']))):
        conf.set_override(key, value, group='vmware')
    try:
        with intree.driver(conf, spec['soap_url']) as drv:
            return _intree_fetch(spec, ctx, drv)
    except intree.Unavailable as e:
        return {'skipped': str(e)}


def _intree_fetch(spec, ctx, drv):
    from nova import objects
    from nova.virt.vmwareapi import images
    from nova.virt.vmwareapi import vm_util
    from nova.virt.vmwareapi import vmops
    from oslo_utils import uuidutils
    from oslo_vmware import rw_handles

    def no_esx_ticket(self, *args, **kwargs):
        # Its PUT would go to the ESX host by name (DC0_C0_H0 ...), which
        # vcsim's hosts have no address for; on failure here the in-tree
        # driver PUTs through vCenter, as it does when no ticket is had.
        raise RuntimeError('bench: vcsim hosts have no address')

    vmops.VMwareVMOps._get_esx_host_and_cookies = no_esx_ticket
    # It sends CreateVirtualDisk_Task's capacityKb as file_size / 1024, a
    # float ("1048576.0"): vCenter takes it, vcsim's decoder does not.
    images.VMwareImage.file_size_in_kb = property(
        lambda self: int(self.file_size) // 1024)
    vmdk_close = rw_handles.VmdkWriteHandle.close

    def close_after_response(self):
        # It completes the lease without reading its PUT's response; the
        # launcher ends a transfer still in flight at HttpNfcLeaseComplete
        # (the disk comes out short), so the response is read first.
        try:
            self._conn.getresponse().read()
        except Exception:
            pass    # as its FileWriteHandle.close: logged by no one
        return vmdk_close(self)
    rw_handles.VmdkWriteHandle.close = close_after_response
    put = [0]
    _count_writes(rw_handles.FileWriteHandle, put)
    copying = []
    copy_virtual_disk = vm_util.copy_virtual_disk

    def timed_copy(*args, **kwargs):
        copying.append(time.perf_counter())
        return copy_virtual_disk(*args, **kwargs)
    vm_util.copy_virtual_disk = timed_copy

    instance = objects.Instance(uuid=uuidutils.generate_uuid(),
                                image_ref=spec['image_id'],
                                flavor=objects.Flavor(root_gb=0))
    m = measure.Measurement().start()
    try:
        meta = images.IMAGE_API.get(ctx, spec['image_id'])
        if spec.get('declare'):
            # Raw bytes as an in-tree operator registers them: a flat VMDK
            # (the in-tree driver refuses disk_format raw).
            meta['disk_format'] = 'vmdk'
            meta.setdefault('properties', {})['vmware_disktype'] = \
                spec['declare']
        image_meta = objects.ImageMeta.from_dict(meta)
        image_info = images.VMwareImage.from_image(ctx, spec['image_id'],
                                                   image_meta)
        vi = drv._vmops._get_vm_config_info(instance, image_info,
                                            vm_util.ExtraSpecs())
        drv._vmops._fetch_image_if_missing(ctx, vi)
    except Exception as e:
        why = '%s: %s' % (type(e).__name__, ' '.join(str(e).split())[:240])
        if copying:
            return {'skipped': 'its PUT of the %.0f MiB file took %.1f s, '
                               'then CopyVirtualDisk_Task failed (%s)'
                               % (put[0] / MiB, copying[0] - m._t0, why)}
        return {'skipped': 'it failed: %s' % why}
    result = m.stop()
    result.update(disk=str(vi.cache_image_path), put_bytes=put[0])
    return result


WORKERS = {'raw': _worker_raw, 'intree': _worker_intree,
           'ours': _worker_ours, 'cached': _worker_cached,
           'intree_spawn': _worker_intree_spawn}


def worker_main(spec_json):
    worker.setup_logging()
    spec = json.loads(spec_json)
    result = WORKERS[spec['case']](spec)
    if 'skipped' not in result:
        result.update(measure.rates(spec['size'], result))
    return worker.emit(result)


# -- the orchestrator -------------------------------------------------------

def _sha512_file(path, block=8 * MiB):
    h = hashlib.sha512()
    with open(path, 'rb') as f:
        while True:
            data = f.read(block)
            if not data:
                return h.hexdigest()
            h.update(data)


def _write_pattern(path, size, block=PATTERN_BLOCK):
    """``size`` bytes of a random block repeated: nothing compresses it."""
    pattern = os.urandom(min(block, size))
    with open(path, 'wb') as f:
        left = size
        while left:
            n = min(left, len(pattern))
            f.write(pattern[:n] if n < len(pattern) else pattern)
            left -= n


def _free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mem_available():
    """MemAvailable of /proc/meminfo in bytes (what tmpfs may take)."""
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    return 0


def _say(fmt, *args):
    print(fmt % args, file=sys.stderr, flush=True)


@dataclasses.dataclass
class RealisticImage:
    kind: str
    path: str            # the local image file (None: check the sha512)
    glance: dict         # Glance's record
    data_bytes: int
    virtual_bytes: int


def _tree(root):
    """Every file and folder under ``root``, relative to it."""
    out = set()
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        for name in dirs + files:
            out.add(os.path.normpath(os.path.join(rel, name)))
    return out


def _topmost(paths):
    """The paths of ``paths`` whose parent folder is not in it."""
    return sorted(p for p in paths if os.path.dirname(p) not in paths)


class Bench:
    """Glance, vcsim and (for tbf) the shaped link, for one run."""

    def __init__(self, sizes, links, workdir=None, log=_say,
                 realistic=None):
        self.sizes = sizes
        self.links = links
        self.log = log
        self.workdir = workdir
        self.realistic = realistic
        self.link = None
        self.glance = None
        self.vcsim = None
        self.images = {}     # size -> Glance record
        self.r_images = {}   # kind -> RealisticImage
        self.notes = []      # where things are, for the report
        self._ds_root = None
        self._stack = contextlib.ExitStack()

    # set-up ---------------------------------------------------------------

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _start(self):
        from tests.harness import glance as glance_harness
        from tests.harness import tls
        from tests.harness import vcsim as vcsim_harness

        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix='vcdriver-bench-')
            self._stack.callback(shutil.rmtree, self.workdir, True)
        if 'tbf' in self.links:
            self.link = netns.ShapedLink()
            self.link.setup()
            self._stack.callback(self.link.teardown)
            # Servers, uploads and loopback cases live in the server
            # namespace; only the shaped cases cross to the client one.
            self.link.enter_server()
            self.log('bench: tbf link %s <-> %s, %s',
                     self.link.server_ip, self.link.client_ip,
                     '; '.join(self.link.qdiscs().values()))
        # The largest file a case writes on the datastore: a flat extent
        # (the flat PUT writes the zeros too).
        biggest = max([size_bytes(s) for s in self.sizes] + [
            self.realistic.virtual_bytes(k) for k in
            (self.realistic.images if self.realistic else ())] + [0])
        # The datastore on tmpfs when it fits in it and in memory: the
        # sink is not what is measured, and disk write-back must not
        # throttle it.
        shm = '/dev/shm'
        if os.path.isdir(shm) and _free_bytes(shm) > biggest + GiB and \
                _mem_available() > biggest + 2 * GiB:
            self._ds_root = tempfile.mkdtemp(prefix='vcdriver-bench-ds-',
                                             dir=shm)
            where = 'tmpfs'
        else:
            self._ds_root = os.path.join(self.workdir, 'datastores')
            os.makedirs(self._ds_root)
            where = 'disk: tmpfs or memory too small'
        self._stack.callback(shutil.rmtree, self._ds_root, True)
        free = _free_bytes(self._ds_root)
        if free < biggest + GiB // 2:
            raise RuntimeError('not enough room for a %d MiB datastore copy '
                               'in %s' % (biggest // MiB, self._ds_root))
        self.notes.append('datastore in %s (%s, %.1f GiB free at start; '
                          'largest file %.1f GiB); work dir %s (%.1f GiB '
                          'free at start)' % (
                              self._ds_root, where, free / GiB,
                              biggest / GiB, self.workdir,
                              _free_bytes(self.workdir) / GiB))
        import pathlib
        tls_dir = pathlib.Path(self.workdir) / 'tls'
        tls_dir.mkdir()
        cert, key, _name = tls.self_signed(tls_dir)
        extra = ['-listen', '0.0.0.0:0']
        if self.realistic and 'intree' in self.realistic.cases:
            # The in-tree driver's start-up walks the inventory with
            # oslo.vmware's recursive TraversalSpec (tools/bench/intree.py).
            extra.append('-typed-traversal')
        self.vcsim = vcsim_harness.Vcsim(
            hosts_per_cluster=1, nfs=1, datastore_root=self._ds_root,
            tls_cert=cert, tls_key=key, extra_args=extra)
        self.vcsim.start()
        self._stack.callback(self.vcsim.stop)
        self.ds = sorted(self.vcsim.datastores)[0]
        self.cluster = self.vcsim.clusters[0]
        self.ds_dir = self.vcsim.datastores[self.ds]
        os.makedirs(os.path.join(self.ds_dir, BENCH_FOLDER), exist_ok=True)
        self.glance = glance_harness.Glance(
            workdir=os.path.join(self.workdir, 'glance'), bind_host='0.0.0.0')
        self.glance.start()
        self._stack.callback(self.glance.stop)
        self.log('bench: vcsim on port %d (datastore %s in %s), Glance on '
                 'port %d', self.vcsim.port, self.ds, self.ds_dir,
                 self.glance.port)
        for size in sorted(set(self.sizes)):
            self.images[size] = self._upload(size)
        if self.realistic:
            self._make_realistic()

    def _make_realistic(self):
        """Make the realistic images (disk_images) and put them in
        Glance; keep the local files, to compare the disks with."""
        r = self.realistic
        formats = [k for k in r.images if k in REALISTIC_FORMATS]
        if formats:
            layout = disk_images.Layout(size_bytes(r.virtual),
                                        size_bytes(r.data))
            # The raw source (data allocated), its conversions (about the
            # data each), and Glance's copies (the raw one whole).
            need = (layout.data * (1 + 2 * len(formats)) +
                    (layout.virtual if 'raw' in formats else 0) + GiB)
            free = _free_bytes(self.workdir)
            if free < need:
                raise RuntimeError(
                    'not enough room in %s for the realistic images: %.1f '
                    'GiB free, %.1f GiB needed (use a smaller '
                    '--realistic-virtual-gib or --images without raw)'
                    % (self.workdir, free / GiB, need / GiB))
            raw = os.path.join(self.workdir, 'realistic.raw')
            start = time.monotonic()
            data = disk_images.write_raw(raw, layout)
            self.log('bench: made a %s raw disk holding %s of data in '
                     '%.1f s', size_label(r.virtual), size_label(r.data),
                     time.monotonic() - start)
        for kind in r.images:
            if kind == INCOMPRESSIBLE:
                glance = (self.images.get(r.incompressible) or
                          self._upload(r.incompressible))
                self.r_images[kind] = RealisticImage(
                    kind, None, glance, r.data_bytes(kind),
                    r.virtual_bytes(kind))
                continue
            start = time.monotonic()
            path = raw
            if kind != 'raw':
                path = disk_images.convert(
                    raw, kind, os.path.join(self.workdir,
                                            'realistic.%s' % kind))
            converted = time.monotonic()
            _qemu, _opts, disk_format, props = disk_images.FORMATS[kind]
            glance = self.glance.upload(path, 'bench-%s' % r.label(kind),
                                        disk_format=disk_format,
                                        container_format='bare', **props)
            if glance['size'] != os.path.getsize(path):
                raise RuntimeError('Glance stored %s bytes of %s, not %d'
                                   % (glance['size'], path,
                                      os.path.getsize(path)))
            self.log('bench: %s: %.1f MiB, converted in %.1f s, uploaded '
                     'in %.1f s as image %s', r.label(kind),
                     glance['size'] / MiB, converted - start,
                     time.monotonic() - converted, glance['id'])
            self.r_images[kind] = RealisticImage(kind, path, glance, data,
                                                 layout.virtual)

    def images_info(self):
        """{kind: {data_bytes, glance_bytes, virtual_bytes}}."""
        return {k: {'data_bytes': i.data_bytes,
                    'glance_bytes': i.glance['size'],
                    'virtual_bytes': i.virtual_bytes}
                for k, i in self.r_images.items()}

    def _upload(self, size):
        n = size_bytes(size)
        need = n + GiB // 2
        if _free_bytes(self.workdir) < 2 * need:
            raise RuntimeError('not enough room in %s for a %d MiB image '
                               '(and its copy in Glance)'
                               % (self.workdir, n // MiB))
        path = os.path.join(self.workdir, 'image-%s.raw' % size_label(size))
        _write_pattern(path, n)
        start = time.monotonic()
        try:
            image = self.glance.upload(path, 'bench-%s' % size_label(size),
                                       disk_format='raw',
                                       container_format='bare')
        finally:
            os.unlink(path)
        self.log('bench: uploaded %s image %s in %.1f s (%s %s...)',
                 size_label(size), image['id'], time.monotonic() - start,
                 image['os_hash_algo'], image['os_hash_value'][:16])
        if image['size'] != n:
            raise RuntimeError('Glance stored %s bytes, not %d'
                               % (image['size'], n))
        return image

    # running --------------------------------------------------------------

    def _spec(self, link, size, case, conf=None):
        host = self.link.server_ip if link == 'tbf' else '127.0.0.1'
        image = self.images[size]
        name = 'ours.vmdk' if case == 'ours' else '%s.img' % case
        return {
            'case': case, 'size': size_bytes(size),
            'image_id': image['id'],
            'glance': 'http://%s:%d' % (host, self.glance.port),
            'vc_host': host, 'vc_port': self.vcsim.port,
            'user': self.vcsim.username, 'password': self.vcsim.password,
            'dc': 'DC0', 'ds': self.ds, 'cluster': self.cluster,
            'folder': BENCH_FOLDER, 'name': name, 'conf': conf or {},
        }

    def _written_file(self, spec):
        name = spec['name']
        if spec['case'] == 'ours':
            name = name[:-len('.vmdk')] + '-flat.vmdk'
        return os.path.join(self.ds_dir, spec['folder'], name)

    def _clean_folder(self):
        folder = os.path.join(self.ds_dir, BENCH_FOLDER)
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def run_case(self, link, size, case, conf=None):
        """One transfer in a fresh process; verified; returns its rates."""
        spec = self._spec(link, size, case, conf)
        self._clean_folder()
        # The tbf case runs in the client's network namespace.
        result = worker.run(
            NAME, spec, self.log, WORKER_TIMEOUT,
            what='%s %s %s' % (link, size_label(size), case),
            prefix=self.link.client_prefix() if link == 'tbf' else (),
            log_path=os.path.join(self.workdir, 'worker.log'),
            stdout_tail=2000)
        self._verify(spec)
        self._clean_folder()
        return result

    def _verify(self, spec):
        image = self.images_by_id()[spec['image_id']]
        path = self._written_file(spec)
        size = os.path.getsize(path)
        if size != image['size']:
            raise RuntimeError('%s wrote %d bytes to %s, the image has %d'
                               % (spec['case'], size, path, image['size']))
        digest = _sha512_file(path)
        if image['os_hash_algo'] != 'sha512' or \
                digest != image['os_hash_value']:
            raise RuntimeError('%s: %s does not hash to Glance\'s %s'
                               % (spec['case'], path, image['os_hash_algo']))

    def images_by_id(self):
        return {i['id']: i for i in self.images.values()}

    # the realistic part -----------------------------------------------------

    def _nfc(self, method='GET'):
        """The launcher's NFC lease list (GET) or forget finished leases
        (DELETE)."""
        import ssl
        import urllib.request
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(self.vcsim.http_url('/vcdriver/nfc'),
                                     method=method)
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            body = resp.read()
        return json.loads(body) if method == 'GET' else None

    def _local(self, ds_path):
        """'[ds] a/b.vmdk' -> the file in the launcher's datastore folder."""
        ds, _, rel = ds_path.partition('] ')
        if ds.lstrip('[') != self.ds:
            raise RuntimeError('%s is not on datastore %s' % (ds_path,
                                                              self.ds))
        return os.path.join(self.ds_dir, rel)

    def run_realistic(self, link, kind, case, level=None):
        """One case of the realistic part in a fresh process, to a cached
        disk; verified. Returns its figures, or {'skipped': why} when the
        in-tree driver cannot run it here."""
        r = self.realistic
        img = self.r_images[kind]
        host = self.link.server_ip if link == 'tbf' else '127.0.0.1'
        conf = {}
        if case == 'ours_flat':
            conf['image_upload_method'] = 'flat'
        if level is not None:
            conf['image_deflate_level'] = level
        spec = {
            'case': 'intree_spawn' if case == 'intree' else 'cached',
            'size': img.data_bytes, 'image_id': img.glance['id'],
            'glance': 'http://%s:%d' % (host, self.glance.port),
            'vc_host': host, 'vc_port': self.vcsim.port,
            'soap_url': 'https://%s:%d/sdk' % (host, self.vcsim.port),
            'user': self.vcsim.username, 'password': self.vcsim.password,
            'dc': 'DC0', 'ds': self.ds, 'cluster': self.cluster,
            'conf': conf,
            'declare': ('preallocated' if img.glance['disk_format'] == 'raw'
                        else None),
        }
        what = '%s %s %s%s' % (link, r.label(kind), case,
                               '' if level is None else ' level %d' % level)
        before = _tree(self.ds_dir)
        self._nfc('DELETE')
        try:
            result = worker.run(
                NAME, spec, self.log, WORKER_TIMEOUT, what=what,
                prefix=self.link.client_prefix() if link == 'tbf' else (),
                log_path=os.path.join(self.workdir, 'worker.log'),
                stdout_tail=2000)
            if 'skipped' in result:
                return result
            leases = [lease for lease in self._nfc().get('leases', [])
                      if lease.get('kind') == 'import']
            new = _tree(self.ds_dir) - before
            allocated = sum(disk_images.allocated(
                os.path.join(self.ds_dir, p)) for p in new
                if os.path.isfile(os.path.join(self.ds_dir, p)))
            self._verify_disk(what, img, self._local(result['disk']))
        finally:
            for path in _topmost(_tree(self.ds_dir) - before):
                full = os.path.join(self.ds_dir, path)
                if os.path.isdir(full):
                    shutil.rmtree(full, ignore_errors=True)
                elif os.path.exists(full):
                    os.unlink(full)
        sent = sum(lease.get('bytes_received', 0) for lease in leases)
        return {'seconds': result['seconds'],
                'sent_bytes': sent + result.get('put_bytes', 0),
                'nfc_bytes': sent, 'put_bytes': result.get('put_bytes', 0),
                'allocated_bytes': allocated,
                'cpu_s_per_data_gib': result['cpu_seconds'] /
                (img.data_bytes / GiB),
                'rss_growth_mib': result['rss_growth_mib'],
                'leases': [lease.get('state') for lease in leases]}

    def _verify_disk(self, what, img, descriptor):
        """The cached disk's flat extent holds the image's disk."""
        flat = descriptor[:-len('.vmdk')] + '-flat.vmdk'
        size = os.path.getsize(flat)
        if size != img.virtual_bytes:
            raise RuntimeError('%s: %s is %d bytes, the disk %d'
                               % (what, flat, size, img.virtual_bytes))
        if img.path is None:
            if _sha512_file(flat) != img.glance['os_hash_value']:
                raise RuntimeError('%s: %s does not hash to Glance\'s %s'
                                   % (what, flat,
                                      img.glance['os_hash_algo']))
            return
        why = disk_images.compare(img.path, img.kind, flat)
        if why:
            raise RuntimeError('%s: %s differs from %s: %s'
                               % (what, flat, img.path, why))


INTREE_NOTE = (
    'In-tree, three adjustments to run on the launcher '
    '(tools/bench/image_transfer.py _intree_fetch), none changing a byte '
    'sent: its PUTs go through vCenter (its own fallback when it gets no '
    'ESX ticket: vcsim\'s hosts have no address of their own); '
    'CreateVirtualDisk_Task gets capacityKb as an integer (it sends '
    'file_size / 1024, a float, "1048576.0", which vCenter takes and '
    'vcsim\'s decoder refuses); its VmdkWriteHandle reads its NFC PUT\'s '
    'response before HttpNfcLeaseComplete (it completes first and never '
    'reads it; the launcher ends a transfer still in flight at Complete, '
    'which cut the disk short).')


def realistic_config(args):
    """The Realistic of the command line, or None (--no-realistic,
    --only-sweep); ValueError if its sizes make no layout."""
    if not args.realistic or args.only_sweep:
        return None
    return Realistic(virtual=args.realistic_virtual_gib,
                     data=args.realistic_data_gib,
                     incompressible=args.incompressible_gib,
                     images=tuple(args.images),
                     cases=tuple(args.realistic_cases),
                     levels=tuple(args.deflate_levels)).check()


def default_deflate_level():
    """``[vcdriver] image_deflate_level``'s default (None if unknown)."""
    try:
        from vcdriver import conf as vc_conf
    except ImportError:
        return None
    return next((o.default for o in vc_conf.vcdriver_opts
                 if o.name == 'image_deflate_level'), None)


def _run_realistic(bench, link, rep, repeat, results, level_results,
                   skipped, failures, log):
    """Every realistic case (and level of the sweep) on ``link`` once."""
    r = bench.realistic
    default_level = default_deflate_level()

    def one(kind, case, level=None):
        try:
            res = bench.run_realistic(link, kind, case, level)
        except RuntimeError as e:
            # Reported, not fatal: one broken case must not lose the run.
            first = str(e).strip().splitlines()[0][:300]
            failures.append('FAILED %s %s %s%s: %s' % (
                link, r.label(kind), case,
                '' if level is None else ' level %d' % level, first))
            log('bench: %s', failures[-1])
            return None
        if 'skipped' in res:
            skipped[(kind, case)] = res['skipped']
            log('bench: %s %s %s not run: %s', link, r.label(kind), case,
                res['skipped'])
            return None
        res['load'] = os.getloadavg()[0]
        log('bench: [%d/%d] %-8s %-22s %-9s%s %6.1f s, sent %7.1f MiB, '
            'allocated %7.1f MiB, %5.2f CPU s/data GiB, %6.1f MiB RSS',
            rep + 1, repeat, link, r.label(kind), case,
            '' if level is None else ' level %d' % level, res['seconds'],
            res['sent_bytes'] / MiB, res['allocated_bytes'] / MiB,
            res['cpu_s_per_data_gib'], res['rss_growth_mib'])
        return res

    for kind in r.images:
        for case in R_CASES:
            if not r.runs(kind, case) or (kind, case) in skipped:
                continue
            res = one(kind, case)
            if res is not None:
                results.setdefault((link, kind, case), []).append(res)
        if not r.swept(kind):
            continue
        for level in r.levels:
            if level == default_level and r.runs(kind, 'ours'):
                # ours with default settings is this level: not again.
                got = results.get((link, kind, 'ours')) or []
                res = got[-1] if len(got) > rep else None
            else:
                res = one(kind, 'ours', level)
            if res is not None:
                level_results.setdefault((link, kind, level),
                                         []).append(res)


def _medians(results, metrics):
    return {key: {m: report.median([r.get(m) for r in runs])
                  for m in tuple(metrics) + ('load',)}
            for key, runs in results.items()}


def run(args, log=_say):
    """Run the section; returns (figures, text report)."""
    sizes = args.sizes
    links = args.links
    sweep = None
    if args.sweep or args.only_sweep:
        sweep = (args.sweep_size or min(sizes), args.sweep_chunks,
                 args.sweep_depths)
    realistic = realistic_config(args)
    run_sizes = [] if args.only_sweep or args.only_realistic else sizes
    run_links = [] if args.only_sweep else links
    bench_sizes = sorted(set(run_sizes) | ({sweep[0]} if sweep else set()))
    bench_links = list(run_links) if run_links else ['loopback']
    results = {}
    sweep_results = {}
    r_results = {}
    level_results = {}
    skipped = {}
    failures = []
    notes = []
    start = time.monotonic()
    with Bench(bench_sizes, bench_links, log=log,
               realistic=realistic) as bench:
        link_rate = (bench.link.bytes_per_s / MiB if bench.link else None)
        for rep in range(args.repeat):
            for link in run_links:
                for size in run_sizes:
                    for case in CASES:
                        r = bench.run_case(link, size, case)
                        r['load'] = os.getloadavg()[0]
                        results.setdefault((link, size, case), []).append(r)
                        log('bench: [%d/%d] %-8s %-6s %-6s %7.1f MiB/s '
                            '%5.2f CPU s/GiB %6.1f MiB RSS', rep + 1,
                            args.repeat, link, size_label(size), case,
                            r['mib_per_s'], r['cpu_s_per_gib'],
                            r['rss_growth_mib'])
                if realistic:
                    _run_realistic(bench, link, rep, args.repeat, r_results,
                                   level_results, skipped, failures, log)
            if sweep:
                size, chunks, depths = sweep
                for chunk in chunks:
                    for depth in depths:
                        r = bench.run_case('loopback', size, 'ours', conf={
                            'image_transfer_chunk_size': chunk,
                            'image_transfer_buffer_chunks': depth})
                        r['load'] = os.getloadavg()[0]
                        sweep_results.setdefault((size, chunk, depth),
                                                 []).append(r)
                        log('bench: [%d/%d] sweep %s chunk %s x %d: %7.1f '
                            'MiB/s %5.2f CPU s/GiB %6.1f MiB RSS', rep + 1,
                            args.repeat, size_label(size),
                            bytes_label(chunk), depth, r['mib_per_s'],
                            r['cpu_s_per_gib'], r['rss_growth_mib'])
        images_info = bench.images_info()
        where = list(bench.notes)
    summary = summarize(results)
    sweep_summary = summarize(sweep_results)
    r_summary = _medians(r_results, R_METRICS)
    level_summary = _medians(level_results, LEVEL_METRICS)
    load = report.median([r['load'] for runs in itertools.chain(
        results.values(), sweep_results.values(), r_results.values(),
        level_results.values()) for r in runs])
    figs = figures(summary, run_sizes, run_links, link_rate, sweep_summary,
                   load)
    texts = []
    if run_sizes or sweep:
        texts.append(format_results(
            figs, run_sizes, run_links, link_rate, sweep, (),
            {k: v.get('load') for k, v in itertools.chain(
                summary.items(), sweep_summary.items())}))
    if realistic:
        rfigs = realistic_figures(r_summary, realistic, run_links,
                                  images_info, level_summary)
        figs.update(rfigs)
        if texts:
            texts.append('')
        texts.append(format_realistic(
            rfigs, realistic, run_links,
            {k: v.get('load') for k, v in itertools.chain(
                r_summary.items(), level_summary.items())}, skipped))
        if 'tbf' in run_links and link_rate and not run_sizes:
            texts.append('tbf link rate: %.1f MiB/s' % link_rate)
    notes.append('')
    notes.append('%d run(s) per case, median shown; %.0f s in all. CPU: the '
                 'transferring process (raw: both curls); RSS growth: peak '
                 'during the transfer minus RSS before it (raw: peak RSS of '
                 'the larger curl); load: 1-minute load average after the '
                 'case (%d CPUs), median %s.'
                 % (args.repeat, time.monotonic() - start, os.cpu_count(),
                    report.fmt_number(load, 2)))
    if realistic:
        notes.append(
            'Realistic part: s is wall time to a cached disk (ours: '
            'pipeline.cached; in-tree: VMwareVMOps._fetch_image_if_missing, '
            'as each spawn calls them, Glance\'s image record read '
            'included); sent: bytes the launcher received on NFC import '
            'leases plus the body of flat PUTs (counted in the worker: '
            'the launcher counts PUTs, not their bytes); alloc: st_blocks x '
            '512 of every file the case left on the datastore (disk, '
            'descriptor, cache metadata); CPU per GiB of data, not of '
            'virtual size.')
        notes.append(INTREE_NOTE)
    notes += where
    notes += failures
    return figs, '\n'.join(texts + notes)


# -- command line ---------------------------------------------------------

def _float_list(text):
    return [float(x) for x in text.split(',') if x.strip()]


def _size_list(text):
    sizes = _float_list(text)
    for s in sizes:
        if s <= 0 or size_bytes(s) != s * GiB:
            raise argparse.ArgumentTypeError(
                'size %g GiB is not a whole number of MiB' % s)
    return [int(s) if s == int(s) else s for s in sizes]


_links = arg_types.choice_list('link', LINKS)


def _byte_sizes(text):
    out = []
    for part in text.split(','):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        for suffix, m in (('kib', 1 << 10), ('k', 1 << 10),
                          ('mib', 1 << 20), ('m', 1 << 20)):
            if part.endswith(suffix):
                part, mult = part[:-len(suffix)], m
                break
        out.append(int(float(part) * mult))
    return out


def _int_list(text):
    return [int(x) for x in text.split(',') if x.strip()]


def _gib(text):
    """A size in GiB, a whole number of MiB."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a number of GiB'
                                         % text) from None
    if value <= 0 or size_bytes(value) != value * GiB:
        raise argparse.ArgumentTypeError(
            'size %g GiB is not a whole number of MiB' % value)
    return int(value) if value == int(value) else value


def _levels(text):
    try:
        levels = _int_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a list of zlib levels'
                                         % text) from None
    for level in levels:
        if not 0 <= level <= 9:
            raise argparse.ArgumentTypeError('zlib level %d is not 0..9'
                                             % level)
    return levels


_image_kinds = arg_types.choice_list('image', IMAGE_KINDS)
_r_cases = arg_types.choice_list('case', R_CASES)


def add_arguments(parser):
    group = parser.add_argument_group('image transfer')
    group.add_argument('--sizes', type=_size_list,
                       default=list(DEFAULT_SIZES),
                       help='image sizes in GiB, comma separated (default '
                            '1,4; 0.25 for a quick look)')
    group.add_argument('--links', type=_links, default=list(LINKS),
                       help='loopback and/or tbf (default both)')
    group.add_argument('--sweep', action='store_true',
                       help='also measure ours at several [vcdriver] '
                            'image_transfer_chunk_size x '
                            'image_transfer_buffer_chunks on loopback')
    group.add_argument('--only-sweep', action='store_true',
                       help='only the sweep')
    group.add_argument('--sweep-size', type=float, default=None,
                       help='image size of the sweep in GiB (default: the '
                            'smallest of --sizes)')
    group.add_argument('--sweep-chunks', type=_byte_sizes,
                       default=list(SWEEP_CHUNKS),
                       help='chunk sizes of the sweep (default 64k,256k,'
                            '1m,4m)')
    group.add_argument('--sweep-depths', type=_int_list,
                       default=list(SWEEP_DEPTHS),
                       help='buffer chunks of the sweep (default 2,8,32)')
    group.add_argument('--no-realistic', dest='realistic',
                       action='store_false',
                       help='leave out the realistic images')
    group.add_argument('--only-realistic', action='store_true',
                       help='only the realistic images (not --sizes)')
    group.add_argument('--realistic-virtual-gib', type=_gib,
                       default=DEFAULT_REALISTIC_VIRTUAL,
                       help='virtual size of the realistic disks in GiB '
                            '(default 8)')
    group.add_argument('--realistic-data-gib', type=_gib,
                       default=DEFAULT_REALISTIC_DATA,
                       help='data they hold in GiB, a multiple of 8 MiB, '
                            'half random, half text (default 1; 0.125 '
                            'with a virtual size of 1 for a quick look)')
    group.add_argument('--incompressible-gib', type=_gib,
                       default=DEFAULT_INCOMPRESSIBLE,
                       help='size of the flat incompressible image in GiB '
                            '(default 1)')
    group.add_argument('--images', type=_image_kinds,
                       default=list(IMAGE_KINDS),
                       help='realistic images, comma separated (default '
                            '%s)' % ','.join(IMAGE_KINDS))
    group.add_argument('--realistic-cases', type=_r_cases,
                       default=list(R_CASES),
                       help='cases on them (default %s)' % ','.join(R_CASES))
    group.add_argument('--deflate-levels', type=_levels, default=[],
                       help='also run ours at these [vcdriver] '
                            'image_deflate_level on the realistic images, '
                            'e.g. 0,1,6 (default: none)')


def main(argv=None):
    return worker.main(argv, worker_main, NAME)


if __name__ == '__main__':
    sys.exit(main())
