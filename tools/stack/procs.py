"""Processes the stack starts, outliving the command that started them.

Each service runs in a session of its own (so ``down`` can end it and
whatever it forked), its output in ``logs/<name>.log``, its pid in the
stack's state. Ports are picked free once and kept, so a warm ``up`` finds
its catalog and configs still right.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


class StackError(RuntimeError):
    """A service did not start, or the stack is not in the state asked."""


def free_port(host='127.0.0.1'):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host='127.0.0.1'):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start(name, argv, log_dir, env=None, cwd=None):
    """Start ``argv`` detached; its pid. Output goes to
    ``log_dir/<name>.log`` (appended: a restart keeps the history)."""
    os.makedirs(log_dir, exist_ok=True)
    log = open(os.path.join(log_dir, name + '.log'), 'ab')
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
    except OSError as e:
        raise StackError('%s: cannot run %s: %s' % (name, argv[0], e))
    finally:
        log.close()
    return proc.pid


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process is dead for our purposes.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    return True


def stop(pid, timeout=20, sig=signal.SIGTERM):
    """End ``pid``'s process group: ``sig``, then SIGKILL after
    ``timeout`` seconds."""
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)


def tail(path, lines=30):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def wait_for(what, ready, timeout, pid=None, log=None):
    """Poll ``ready()`` until it is true; StackError (with the log's tail,
    and what the last check raised) if ``timeout`` passes or ``pid`` dies
    first."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    last = None
    while True:
        try:
            if ready():
                return
            last = None
        except Exception as e:  # not up yet: a refused or reset connection
            last = e
        if pid is not None and not alive(pid):
            raise StackError('%s exited while starting; %s:\n%s'
                             % (what, log, tail(log)))
        if time.monotonic() > deadline:
            raise StackError('%s not ready after %d s (last check: %s); '
                             '%s:\n%s' % (what, timeout,
                                          repr(last) if last else 'not ready',
                                          log, tail(log)))
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def http_ok(url):
    """Whether ``url`` answers at all (any HTTP status)."""
    def ready():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
    return ready


def run(argv, what, env=None, input=None, timeout=600):
    """Run a set-up command to its end; StackError with its output if it
    fails."""
    try:
        proc = subprocess.run(argv, env=env, input=input, timeout=timeout,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StackError('%s: %s' % (what, e))
    if proc.returncode:
        raise StackError('%s failed (exit %d):\n%s'
                         % (what, proc.returncode,
                            '\n'.join(proc.stdout.splitlines()[-30:])))
    return proc.stdout
