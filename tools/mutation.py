"""Mutation testing of the modules whose arithmetic and byte layouts
matter most: ``tox -e mutation`` (issue 18).

mutmut mutates one target at a time, in a scratch copy of the tree of its
own (mutmut keeps its mutants and results in ``mutants/`` beside its
configuration), with that target's own unit tests only: mutmut runs each
mutant against those of them that call the mutated function. One worker
(``--max-children 1``) by default: the machine is shared. A table per
target: mutants, killed, survived, timeout, score; the score counts a
timeout as killed (the mutant changed what the tests saw) and a mutant no
selected test reaches as survived.

The mutants left alive on purpose are listed, each with why it is
equivalent, in tests/mutation/equivalent.txt: the run lists any other
survivor, and fails when a target scores under ``--min-score``.

    python tools/mutation.py [--target NAME ...] [--workdir DIR] [--keep]
    python tools/mutation.py --workdir DIR --report    # the table so far
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / 'tests' / 'mutation' / 'equivalent.txt'

# Target name -> (files to mutate, as only_mutate globs; the unit test
# files that exercise them).
TARGETS = {
    'capacity': (
        ['vcdriver/capacity.py'],
        ['tests/unit/test_capacity.py']),
    # Not test_formats_corpus.py: the same conversions against the same
    # oracle (qemu-img) at sizes up to 2 GiB, whose images each mutant's
    # pytest session would make again. Nor the conversions fed a byte at
    # a time (``-1]``): the same paths as 7-byte pieces, through mutmut's
    # trampoline on every call, take minutes.
    'formats': (
        ['vcdriver/images/formats/*'],
        ['tests/unit/test_formats.py', 'tests/unit/test_deflate.py',
         'tests/unit/test_stream_optimized.py', '-k', 'not -1]']),
    'transfer': (
        ['vcdriver/images/transfer.py'],
        ['tests/unit/test_transfer.py']),
    'cache': (
        ['vcdriver/images/cache.py'],
        ['tests/unit/test_image_cache.py']),
}

# What a scratch copy needs: the package (mutmut copies it into mutants/
# and mutates it there), the tests, pytest's configuration.
COPY = ['vcdriver', 'nova', 'tests', 'pyproject.toml']

# Lines whose expressions are not mutated: what a log line or an
# exception says is text for people, which no test pins word for word
# (mutmut would make three mutants of each literal: XX-wrapped, lower and
# upper case). The statements stay mutated: a raise still has to happen
# when it should, a log call still runs.
DO_NOT_MUTATE = [r'\bLOG\.', r'^\s*raise\s']

# A test that hangs under a mutant (a loop that no longer ends) fails
# after this many seconds (pytest-timeout): killed, not waited for. The
# slowest selected test takes about 3 s on an idle machine, ten times
# that traced (mutmut's first run, which finds the tests of each
# function) on a loaded one.
TEST_TIMEOUT = 60

# mutmut's exit codes (mutmut/stats.py) -> our columns.
KILLED = {1, 3, 37}
TIMEOUT = {24, -24, 36, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def setup_cfg(mutate, tests):
    def lines(values):
        return ''.join('\n    %s' % v for v in values)
    return ('[mutmut]\n'
            'source_paths = vcdriver\n'
            'only_mutate =%s\n'
            'do_not_mutate_patterns =%s\n'
            'pytest_add_cli_args_test_selection =%s\n'
            'pytest_add_cli_args =%s\n'
            # The copy is new each run: nothing to invalidate.
            'use_git_change_detection = false\n'
            # A mutant gets (its tests' traced time + 1 s) x 6 of CPU
            # (mutmut's default is x 30): a loop that no longer ends is
            # a timeout within seconds, not a minute.
            'timeout_multiplier = 3\n'
            % (lines(mutate), lines(DO_NOT_MUTATE), lines(tests),
               lines(['-p', 'no:cacheprovider',
                      '--timeout=%d' % TEST_TIMEOUT])))


def prepare(workdir, name):
    scratch = workdir / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for item in COPY:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, scratch / item, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))
        else:
            shutil.copy2(src, scratch / item)
    mutate, tests = TARGETS[name]
    (scratch / 'setup.cfg').write_text(setup_cfg(mutate, tests))
    return scratch


def results(scratch):
    """mutant name -> mutmut exit code, from mutmut's .meta files."""
    found = {}
    for meta in (scratch / 'mutants').rglob('*.py.meta'):
        found.update(json.loads(meta.read_text())['exit_code_by_key'])
    return found


def count(codes):
    pending = sum(c is None for c in codes)    # --report of a cut run
    codes = [c for c in codes if c is not None]
    killed = sum(c in KILLED for c in codes)
    timeout = sum(c in TIMEOUT for c in codes)
    survived = len(codes) - killed - timeout
    score = 100.0 * (killed + timeout) / len(codes) if codes else 100.0
    return {'mutants': len(codes), 'killed': killed, 'survived': survived,
            'timeout': timeout, 'score': score, 'pending': pending}


def status(code):
    if code in SURVIVED:
        return 'survived'
    if code in NO_TESTS:
        return 'no tests'
    return 'exit %s' % code


def equivalent():
    """The mutant names tests/mutation/equivalent.txt lists."""
    names = set()
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line and not line[0].isspace() and not line.startswith('#'):
                names.add(line.split()[0])
    return names


def table(rows):
    head = ('target', 'mutants', 'killed', 'survived', 'timeout', 'score',
            'time')
    out = ['%-10s %8s %8s %9s %8s %7s %8s' % head]
    for name, row in rows:
        out.append('%-10s %8d %8d %9d %8d %6.1f%% %7.0fs' % (
            name, row['mutants'], row['killed'], row['survived'],
            row['timeout'], row['score'], row['seconds']) + (
                '  (%d not run yet)' % row['pending'] if row['pending']
                else ''))
    return '\n'.join(out)


def run_mutmut(scratch, max_children):
    """(seconds, the finished process, results) of mutmut in ``scratch``.
    """
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1',
               VCDRIVER_TEST_IMAGES=str(scratch / 'test-images'))
    # mutmut's progress line is rewritten in place: a log of it is long,
    # so only its end is shown.
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'mutmut'), 'run',
         '--max-children', str(max_children)],
        cwd=scratch, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors='replace')
    seconds = time.monotonic() - t0
    (scratch / 'mutmut.log').write_text(proc.stdout)
    tail = proc.stdout.replace('\r', '\n').strip().splitlines()[-3:]
    print('\n'.join('   ' + line for line in tail))
    return seconds, proc, results(scratch)


def main(argv=None):
    p = argparse.ArgumentParser(prog='tools/mutation.py',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--target', action='append', choices=sorted(TARGETS),
                   help='only this target (repeatable; default all)')
    p.add_argument('--workdir', type=pathlib.Path,
                   help='where the scratch copies go (default: a '
                        'temporary folder, removed unless --keep)')
    p.add_argument('--keep', action='store_true',
                   help='keep the scratch copies (mutmut show/results '
                        'work in them)')
    p.add_argument('--max-children', type=int, default=1,
                   help='mutmut workers (default 1)')
    p.add_argument('--report', action='store_true',
                   help='run nothing: the table of the results in the '
                        'scratch copies (of a run still going, or cut)')
    p.add_argument('--min-score', type=float, default=90.0,
                   help='fail when a target scores under this (percent)')
    args = p.parse_args(argv)
    targets = args.target or list(TARGETS)
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(
        prefix='vcdriver-mutation-'))
    workdir = workdir.resolve()
    known = equivalent()
    rows, survivors, failed = [], [], False
    started = time.monotonic()
    for name in targets:
        if args.report:
            scratch = workdir / name
            log = scratch / 'mutmut.log'
            codes = results(scratch) if scratch.exists() else {}
            if not codes:
                continue
            # A finished target's time: from its copy to its log.
            seconds = (log.stat().st_mtime - (scratch / 'setup.cfg').stat(
            ).st_mtime if log.exists() else float('nan'))
            proc = subprocess.CompletedProcess([], 0, '')
        else:
            scratch = prepare(workdir, name)
            print('== %s: mutmut in %s' % (name, scratch), flush=True)
            seconds, proc, codes = run_mutmut(scratch, args.max_children)
        if proc.returncode or not codes:
            print('mutmut failed on %s (exit %d): see %s' % (
                name, proc.returncode, scratch / 'mutmut.log'))
            failed = True
            continue
        row = dict(count(list(codes.values())), seconds=seconds)
        rows.append((name, row))
        if row['score'] < args.min_score or row['pending']:
            failed = True
        for mutant, code in sorted(codes.items()):
            if code is None:
                continue
            if code not in KILLED and code not in TIMEOUT:
                survivors.append((name, mutant, status(code),
                                  mutant in known))
            elif mutant in known:
                print('  listed as equivalent but killed: %s' % mutant)
    print()
    print(table(rows))
    if not args.report:
        print('total %.0f s' % (time.monotonic() - started))
    unlisted = [s for s in survivors if not s[3]]
    print('\n%d surviving mutants, %d listed as equivalent in %s' % (
        len(survivors), len(survivors) - len(unlisted),
        EQUIVALENT.relative_to(ROOT)))
    for name, mutant, state, _ in unlisted:
        print('  not listed: %-9s %s (%s)' % (name, mutant, state))
    if args.keep or args.workdir or args.report:
        print('scratch copies kept in %s/TARGET: cd there, mutmut show '
              'NAME' % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print('FAILED: a target scored under %.0f %% or mutmut failed' %
              args.min_score)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
