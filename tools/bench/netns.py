"""A rate-limited link of our own: two network namespaces and a veth pair.

    with ShapedLink() as link:        # needs root, `ip` and `tc`
        link.enter_server()           # this process now lives in vcb-srv
        ...start servers on 0.0.0.0...
        subprocess.run(link.client_prefix() + [sys.executable, ...])

The server namespace (``vcb-srv``, address 10.213.0.1) and the client
namespace (``vcb-cli``, 10.213.0.2) are joined by a veth pair with a
``tbf`` qdisc on both ends (``netem`` is not available on the kernels we
run on). Both namespaces have their own loopback, so in the server
namespace 127.0.0.1 still reaches the servers unshaped.

The namespaces are created fresh (stale ones of an earlier, killed run are
removed first) and always removed on exit; the veth pair goes with them.
"""

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess

SERVER_NS = 'vcb-srv'
CLIENT_NS = 'vcb-cli'
SERVER_IF = 'vcb-s'
CLIENT_IF = 'vcb-c'
SERVER_IP = '10.213.0.1'
CLIENT_IP = '10.213.0.2'
PREFIX_LEN = 30

DEFAULT_RATE = '1gbit'
DEFAULT_BURST = '256k'
DEFAULT_LATENCY = '10ms'

_CLONE_NEWNET = 0x40000000
_RATE_UNITS = {'': 1, 'k': 10 ** 3, 'm': 10 ** 6, 'g': 10 ** 9}


class NetnsError(RuntimeError):
    """The link could not be set up (not root, no `ip`/`tc`, ...)."""


def rate_bytes_per_s(rate):
    """tc's ``1gbit``/``500mbit``/``100kbit`` as bytes per second."""
    text = rate.lower()
    if not text.endswith('bit'):
        raise ValueError('rate %r is not in bit/s (e.g. 1gbit)' % rate)
    number = text[:-3]
    unit = number[-1:] if number[-1:] in _RATE_UNITS else ''
    number = number[:-1] if unit else number
    return float(number) * _RATE_UNITS[unit] / 8


def _run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise NetnsError('%s failed (exit %d): %s'
                         % (' '.join(argv), proc.returncode,
                            proc.stdout.strip()))
    return proc.stdout


def exec_prefix(namespace):
    """The argv prefix that runs a command in ``namespace``."""
    return ['ip', 'netns', 'exec', namespace]


def _setns_fd(fd, what):
    setns_fn = getattr(os, 'setns', None)   # Python 3.12+
    if setns_fn is not None:
        setns_fn(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        raise NetnsError('setns(%s): %s'
                         % (what, os.strerror(ctypes.get_errno())))


def setns(namespace):
    """Move the calling thread into ``namespace`` (children inherit it).

    Call it from the main thread before starting any other thread: Linux
    changes only the calling thread's namespace.
    """
    fd = os.open(os.path.join('/run/netns', namespace), os.O_RDONLY)
    try:
        _setns_fd(fd, namespace)
    finally:
        os.close(fd)


def current_netns_inode():
    return os.stat('/proc/thread-self/ns/net').st_ino


class ShapedLink:
    """Two namespaces joined by a veth pair shaped with tbf on both ends."""

    def __init__(self, rate=DEFAULT_RATE, burst=DEFAULT_BURST,
                 latency=DEFAULT_LATENCY):
        self.rate = rate
        self.burst = burst
        self.latency = latency
        self.server_ip = SERVER_IP
        self.client_ip = CLIENT_IP
        self._root_ns_fd = None

    @property
    def bytes_per_s(self):
        return rate_bytes_per_s(self.rate)

    def check(self):
        if os.geteuid() != 0:
            raise NetnsError('a shaped link needs root (network namespaces '
                             'and tc); without it use --links loopback')
        for tool in ('ip', 'tc'):
            if not shutil.which(tool):
                raise NetnsError('%s (iproute2) is not on PATH' % tool)

    def setup(self):
        self.check()
        self.teardown()
        try:
            for ns in (SERVER_NS, CLIENT_NS):
                _run(['ip', 'netns', 'add', ns])
                _run(exec_prefix(ns) + ['ip', 'link', 'set', 'lo', 'up'])
            _run(['ip', 'link', 'add', SERVER_IF, 'netns', SERVER_NS,
                  'type', 'veth', 'peer', 'name', CLIENT_IF,
                  'netns', CLIENT_NS])
            for ns, dev, addr in ((SERVER_NS, SERVER_IF, SERVER_IP),
                                  (CLIENT_NS, CLIENT_IF, CLIENT_IP)):
                ip = exec_prefix(ns)
                _run(ip + ['ip', 'addr', 'add',
                           '%s/%d' % (addr, PREFIX_LEN), 'dev', dev])
                _run(ip + ['ip', 'link', 'set', dev, 'up'])
                _run(ip + ['tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf',
                           'rate', self.rate, 'burst', self.burst,
                           'latency', self.latency])
        except BaseException:
            self.teardown()
            raise
        return self

    def teardown(self):
        """Remove both namespaces (and so the veth pair); idempotent."""
        if self._root_ns_fd is not None:
            self.leave()
        for ns in (SERVER_NS, CLIENT_NS):
            if os.path.exists(os.path.join('/run/netns', ns)):
                with contextlib.suppress(NetnsError):
                    _run(['ip', 'netns', 'del', ns])

    def qdiscs(self):
        """``tc qdisc show`` of both ends, for the record."""
        return {ns: _run(exec_prefix(ns) + ['tc', 'qdisc', 'show', 'dev',
                                            dev]).strip()
                for ns, dev in ((SERVER_NS, SERVER_IF),
                                (CLIENT_NS, CLIENT_IF))}

    def enter_server(self):
        """Move this process's (main) thread into the server namespace."""
        self._root_ns_fd = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
        setns(SERVER_NS)

    def leave(self):
        """Back to the namespace ``enter_server`` left."""
        fd, self._root_ns_fd = self._root_ns_fd, None
        try:
            _setns_fd(fd, 'the namespace we came from')
        finally:
            os.close(fd)

    def client_prefix(self):
        return exec_prefix(CLIENT_NS)

    def server_prefix(self):
        return exec_prefix(SERVER_NS)

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc):
        self.teardown()
