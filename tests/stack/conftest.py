"""The stack (tools/stack) for these tests: up once for the session, in
its own state directory (``.cache/stack-tests``), down at the end.

The cloud is driven only as a user drives it: the ``openstack`` CLI with
the admin's ``OS_*`` variables. What vCenter holds is read from the
launcher with pyVmomi.

``VCDRIVER_STACK_EVENTLET=1`` runs Nova's services under eventlet;
``VCDRIVER_STACK_KEEP=1`` leaves the stack up afterwards.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.harness import venvs
from tools.stack import cloud

BIN = os.path.dirname(sys.executable)


class Cloud:
    """The stack as its users see it."""

    def __init__(self, stack):
        self.stack = stack
        self.env = dict(os.environ, **stack.credentials())
        self.env['PATH'] = BIN + os.pathsep + self.env.get('PATH', '')

    def openstack(self, *args, check=True):
        """``openstack ARGS -f json``, parsed; or the CompletedProcess
        with ``check=False``."""
        argv = [os.path.join(BIN, 'openstack')] + list(args)
        if check:
            argv += ['-f', 'json']
        proc = subprocess.run(argv, env=self.env, capture_output=True,
                              text=True, timeout=600)
        if not check:
            return proc
        if proc.returncode:
            raise AssertionError('openstack %s failed (%d):\n%s%s' % (
                ' '.join(args), proc.returncode, proc.stdout, proc.stderr))
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def delete_all_servers(self):
        servers = self.openstack('server', 'list', '--all-projects')
        if servers:
            self.openstack('server', 'delete', '--wait',
                           *[s['ID'] for s in servers], check=False)

    def audit(self, host):
        """``vcdriver audit`` of compute service ``host``, as JSON."""
        proc = subprocess.run(
            [os.path.join(BIN, 'vcdriver'), 'audit', '--format', 'json',
             '--config-file', self.stack.path('nova', 'nova.conf'),
             '--config-file', self.stack.path('nova', host + '.conf')],
            capture_output=True, text=True, timeout=300)
        if proc.returncode == 2:
            raise AssertionError('vcdriver audit failed:\n%s%s'
                                 % (proc.stdout, proc.stderr))
        return proc.returncode, json.loads(proc.stdout or '{}')


@pytest.fixture(scope='session')
def stack():
    root = os.path.join(venvs.cache_dir(), 'stack-tests')
    s = cloud.Stack(root)
    try:
        s.up(eventlet=os.environ.get('VCDRIVER_STACK_EVENTLET') == '1')
        c = Cloud(s)
        c.delete_all_servers()      # left by a run that was cut short
        yield c
    finally:
        if os.environ.get('VCDRIVER_STACK_KEEP') != '1':
            s.down()
