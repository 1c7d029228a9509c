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
import time

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

    def argv(self, *args):
        return [os.path.join(BIN, 'openstack')] + list(args)

    def openstack(self, *args, check=True, parse=True):
        """``openstack ARGS -f json``, parsed (``parse=False``: without
        ``-f``, for commands that print nothing); or the CompletedProcess
        with ``check=False``."""
        argv = self.argv(*args)
        if check and parse:
            argv += ['-f', 'json']
        proc = subprocess.run(argv, env=self.env, capture_output=True,
                              text=True, timeout=600)
        if not check:
            return proc
        if proc.returncode:
            raise AssertionError('openstack %s failed (%d):\n%s%s' % (
                ' '.join(args), proc.returncode, proc.stdout, proc.stderr))
        return json.loads(proc.stdout) if parse and proc.stdout.strip() \
            else None

    def delete_all_servers(self):
        servers = self.openstack('server', 'list', '--all-projects')
        if servers:
            self.openstack('server', 'delete', '--wait',
                           *[s['ID'] for s in servers], check=False)

    def flavor(self, name, ram, vcpus, disk):
        """Flavor ``name`` as the CLI shows it, created if missing."""
        if self.openstack('flavor', 'show', name, check=False).returncode:
            self.openstack('flavor', 'create', '--ram', str(ram), '--vcpus',
                           str(vcpus), '--disk', str(disk), name)
        return self.openstack('flavor', 'show', name)

    def create_image(self, path, disk_format, name, *properties,
                     container_format='bare'):
        """``openstack image create`` of the file at ``path``; its id."""
        args = ['image', 'create', '--disk-format', disk_format,
                '--container-format', container_format, '--file', str(path)]
        for prop in properties:
            args += ['--property', prop]
        return self.openstack(*args + [name])['id']

    def image_downloads(self, image_id):
        """How often Glance served the data of ``image_id``, from its
        access log."""
        request = '"GET /v2/images/%s/file ' % image_id
        with open(self.stack.log('glance'), errors='replace') as f:
            return sum(1 for line in f if request in line)

    def nodes(self):
        """``{node: compute service host}`` of every hypervisor."""
        found = {}
        for hypervisor in self.openstack('hypervisor', 'list'):
            shown = self.openstack('hypervisor', 'show', hypervisor['ID'])
            found[shown['hypervisor_hostname']] = shown['service_host']
        return found

    def boot(self, image_id, flavor, name, node=None, host=None, count=1,
             wait=True):
        """``openstack server create --nic none`` (onto ``host``'s
        ``node`` if given; ``count`` servers in one request); the server
        as the CLI shows it."""
        args = ['server', 'create', '--image', image_id, '--flavor',
                flavor['id'], '--nic', 'none']
        if node:
            args += ['--availability-zone', 'nova:%s:%s' % (host, node)]
        if count > 1:
            args += ['--min', str(count), '--max', str(count)]
        return self.openstack(*args + (['--wait'] if wait else []) + [name])

    def wait_servers(self, prefix, count, timeout=600,
                     done=('ACTIVE', 'ERROR'), settled=None):
        """Poll through the SDK until the ``count`` servers named
        ``prefix*`` all have a status in ``done`` (or ``settled(server)``
        is true); them, by id. The API failing meanwhile (its database
        restarting) is waited out too."""
        conn = self.stack.new_connection()
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                servers = {s.id: s for s in conn.compute.servers(
                    details=True) if s.name.startswith(prefix)}
                if len(servers) == count and all(
                        s.status in done or (settled and settled(s))
                        for s in servers.values()):
                    return servers
                last = {s.name: s.status for s in servers.values()}
            except Exception as e:      # the API down for a moment
                last = e
            assert time.monotonic() < deadline, (
                'servers %s* not %s after %d s: %s'
                % (prefix, '/'.join(done), timeout, last))
            time.sleep(1)

    def delete_servers(self, ids):
        """``openstack server delete --wait``."""
        if ids:
            self.openstack('server', 'delete', '--wait', *ids, parse=False)

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
def flavor(stack):
    """m1.tiny-like: 1 vCPU, 512 MB, 1 GB."""
    return stack.flavor('stack-tiny', ram=512, vcpus=1, disk=1)


@pytest.fixture(scope='session')
def stack():
    eventlet = os.environ.get('VCDRIVER_STACK_EVENTLET') == '1'
    # A stack for each mode: both envs can run at once.
    root = os.path.join(venvs.cache_dir(), 'stack-tests' + (
        '-eventlet' if eventlet else ''))
    s = cloud.Stack(root)
    try:
        s.up(eventlet=eventlet)
        c = Cloud(s)
        c.delete_all_servers()      # left by a run that was cut short
        yield c
    finally:
        if os.environ.get('VCDRIVER_STACK_KEEP') != '1':
            s.down()
