"""Venvs of their own for services whose pins clash with Nova's.

Glance and Keystone pull in SQLAlchemy 2.1, which breaks Nova's harness, so
each gets a venv under the repo's cache, made on first use and marked with
the requirements it holds: a later call with the same requirements returns
at once, and several processes may ask at the same time (an fcntl lock next
to the venv).

Only the standard library: used by pytest fixtures, the stack tool and
shell wrappers alike.
"""

import contextlib
import fcntl
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER_NAME = '.vcdriver-requirements'


class VenvError(RuntimeError):
    """The venv could not be made."""


def cache_dir():
    return os.path.abspath(os.environ.get('VCDRIVER_CACHE_DIR')
                           or os.path.join(REPO_ROOT, '.cache'))


def _marker_text(requirements):
    return '\n'.join(requirements) + '\n'


def ready(venv, requirements, executables=()):
    """Whether ``venv`` holds ``requirements`` and ``executables``."""
    try:
        with open(os.path.join(venv, MARKER_NAME)) as f:
            if f.read() != _marker_text(requirements):
                return False
    except OSError:
        return False
    return all(os.path.exists(os.path.join(venv, 'bin', exe))
               for exe in ('python',) + tuple(executables))


def ensure(venv, requirements, executables=(), label='venv', log=None,
           force=False, python=None, stale=(), check=None):
    """Make (or refresh) ``venv`` with ``requirements``; return its path.

    ``stale`` are files in the venv that a new install invalidates (removed
    first); ``check(venv)`` may raise VenvError after the install. ``log``
    takes progress and pip's output (default: stderr).
    """
    venv = os.path.abspath(venv)
    if not force and ready(venv, requirements, executables):
        return venv
    out = log if log is not None else sys.stderr
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + '.lock', 'w') as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if not force and ready(venv, requirements, executables):
            return venv     # built by somebody else meanwhile
        start = time.monotonic()
        marker = os.path.join(venv, MARKER_NAME)
        for name in (MARKER_NAME,) + tuple(stale):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(venv, name))
        interpreter = os.path.join(venv, 'bin', 'python')
        if not os.path.exists(interpreter):
            print('%s: creating venv %s' % (label, venv), file=out,
                  flush=True)
            run([python or 'python3', '-m', 'venv', '--clear', venv], out)
        print('%s: pip install %s (takes a minute or two cold)'
              % (label, ' '.join(requirements)), file=out, flush=True)
        run([interpreter, '-m', 'pip', 'install', '-q',
             '--disable-pip-version-check'] + list(requirements), out)
        if check is not None:
            check(venv)
        with open(marker + '.tmp', 'w') as f:
            f.write(_marker_text(requirements))
        os.replace(marker + '.tmp', marker)
        print('%s: venv ready in %.1f s' % (label, time.monotonic() - start),
              file=out, flush=True)
    return venv


def run(cmd, out):
    """Run ``cmd``, its output to ``out``; VenvError with its tail if it
    fails."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        raise VenvError('cannot run %s: %s' % (cmd[0], e)) from e
    if proc.stdout:
        out.write(proc.stdout)
        out.flush()
    if proc.returncode:
        tail = '\n'.join(proc.stdout.rstrip().splitlines()[-40:])
        raise VenvError('%s failed (exit %d):\n%s'
                        % (' '.join(cmd), proc.returncode, tail))
