"""A section's worker process: the worker's side and the orchestrator's.

Each measured case runs in a fresh ``python -m tools.bench.<section>
worker SPEC_JSON``, so that its imports, RSS, threads and sockets are its
own. The worker prints one marked result line on stdout (libraries may
print there too); its log goes to stderr.
"""

import json
import os
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RESULT_MARK = 'BENCH-RESULT '
VERBOSE = 'VCDRIVER_BENCH_VERBOSE'


# -- in the worker ------------------------------------------------------------

def setup_logging():
    """Log to stderr: INFO with VCDRIVER_BENCH_VERBOSE, else WARNING."""
    # Imported when used: the soak worker loads this module before Nova's
    # eventlet monkey patching.
    import logging

    logging.basicConfig(
        stream=sys.stderr, format='%(asctime)s %(name)s: %(message)s',
        level=logging.INFO if os.environ.get(VERBOSE) else logging.WARNING)


def emit(result):
    """Print ``result`` as the result line; returns the exit status 0."""
    sys.stdout.write(RESULT_MARK + json.dumps(result) + '\n')
    sys.stdout.flush()
    return 0


def main(argv, worker_main, section):
    """``python -m tools.bench.<section>``: run a worker, else usage (2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['worker'] and len(argv) == 2:
        return worker_main(argv[1])
    print('usage: python -m tools.bench.%s worker SPEC_JSON '
          '(run by python -m tools.bench)' % section, file=sys.stderr)
    return 2


# -- in the orchestrator ------------------------------------------------------

def _echo_verbose(err, log):
    if os.environ.get(VERBOSE) and err:
        log('%s', err.rstrip())


def run(section, spec, log, timeout, what=None, prefix=(), env=None,
        log_path=None, log_file_prefix=None, echo=_echo_verbose,
        stdout_tail=0, stderr_tail=4000):
    """Run one worker of ``section`` on ``spec``; returns its result.

    ``prefix`` goes before the command (``ip netns exec ...``); ``env``
    adds to os.environ, PYTHONPATH starts with the repository. The
    worker's stderr goes to ``log_path`` (kept), or to a temporary
    ``log_file_prefix*.log`` named in the log, to be followed while the
    worker runs and removed once it has succeeded, or else to an unnamed
    temporary file; ``echo(err, log)`` then shows it. A failure (exit
    status, no result line) raises RuntimeError saying "``what`` failed"
    with the ends of stdout and stderr.
    """
    argv = list(prefix) + [sys.executable, '-m', 'tools.bench.' + section,
                           'worker', json.dumps(spec)]
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT] + [p for p in env.get('PYTHONPATH', '').split(
            os.pathsep) if p])
    if log_path:
        errf = open(log_path, 'w+', errors='replace')
    elif log_file_prefix:
        errf = tempfile.NamedTemporaryFile(
            'w+', errors='replace', prefix=log_file_prefix, suffix='.log',
            delete=False)
        log('bench: %s: worker log %s', section, errf.name)
    else:
        errf = tempfile.TemporaryFile('w+', errors='replace')
    with errf:
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=errf,
                              text=True, timeout=timeout)
        errf.seek(0)
        err = errf.read()
    echo(err, log)
    out = proc.stdout
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        kept = ('\n(whole log: %s)' % errf.name
                if log_file_prefix and not log_path else '')
        raise RuntimeError('%s failed (exit %d):\n%s%s%s'
                           % (what or section + ' worker', proc.returncode,
                              out[-stdout_tail:] if stdout_tail else '',
                              err[-stderr_tail:], kept))
    if log_file_prefix and not log_path:
        os.unlink(errf.name)
    return json.loads(lines[-1][len(RESULT_MARK):])
