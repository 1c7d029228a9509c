"""The section's run: every case, on every link, ``--repeat`` times; then
the figures and the report of both parts.

Bench (bench.py) holds the servers; the figures and tables come from
figures.py and realistic.py; a realistic case that fails is reported, not
fatal.
"""

import itertools
import os
import time

from tools.bench import report
from tools.bench.image_transfer.bench import Bench
from tools.bench.image_transfer.bench import say
from tools.bench.image_transfer.cli import realistic_config
from tools.bench.image_transfer.figures import CASES
from tools.bench.image_transfer.figures import figures
from tools.bench.image_transfer.figures import format_results
from tools.bench.image_transfer.figures import summarize
from tools.bench.image_transfer.naming import bytes_label
from tools.bench.image_transfer.naming import MiB
from tools.bench.image_transfer.naming import size_label
from tools.bench.image_transfer.realistic import format_realistic
from tools.bench.image_transfer.realistic import LEVEL_METRICS
from tools.bench.image_transfer.realistic import R_CASES
from tools.bench.image_transfer.realistic import R_METRICS
from tools.bench.image_transfer.realistic import realistic_figures
from vcdriver.images.formats import deflate

INTREE_NOTE = (
    'In-tree, three adjustments to run on the launcher '
    '(tools/bench/image_transfer/workers.py _intree_fetch), none changing '
    'a byte sent: its PUTs go through vCenter (its own fallback when it '
    "gets no ESX ticket: vcsim's hosts have no address of their own); "
    'CreateVirtualDisk_Task gets capacityKb as an integer (it sends '
    'file_size / 1024, a float, "1048576.0", which vCenter takes and '
    "vcsim's decoder refuses); its VmdkWriteHandle reads its NFC PUT's "
    'response before HttpNfcLeaseComplete (it completes first and never '
    'reads it; the launcher ends a transfer still in flight at Complete, '
    'which cut the disk short).')


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


def run(args, log=say):
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
            "as each spawn calls them, Glance's image record read "
            'included); sent: bytes the launcher received on NFC import '
            'leases plus the body of flat PUTs (counted in the worker: '
            'the launcher counts PUTs, not their bytes); alloc: st_blocks x '
            '512 of every file the case left on the datastore (disk, '
            'descriptor, cache metadata); CPU per GiB of data, not of '
            'virtual size. Grains deflated and inflated by %s.'
            % deflate.LIBRARY)
        notes.append(INTREE_NOTE)
    notes += where
    notes += failures
    return figs, '\n'.join(texts + notes)
