"""The stack: its services in start order, its state, up/down/status."""

import datetime
import getpass
import grp
import json
import os
import secrets
import shlex
import signal
import socket
import sys
import time
import uuid

from tests.harness import venvs
from tools.stack import infra
from tools.stack import openstack
from tools.stack import procs

TOOLS = os.path.dirname(os.path.abspath(__file__))
START_TIMEOUT = 180


class Stack:
    """``root`` (default ``<cache>/stack``) holds every service's data,
    configs, logs (``logs/``) and ``state.json``: ports, secrets, pids and
    the threading mode."""

    def __init__(self, root=None, out=sys.stderr):
        self.root = os.path.abspath(
            root or os.path.join(venvs.cache_dir(), 'stack'))
        self.out = out
        self.tools = TOOLS
        self.bin = os.path.dirname(sys.executable)
        self.user = getpass.getuser()
        self.group = grp.getgrgid(os.getgid()).gr_name
        self.db_user = 'stack'
        self.mariadb = infra.MariaDB()
        self.rabbitmq = infra.RabbitMQ()
        self.services = [
            self.mariadb, self.rabbitmq, openstack.Keystone(),
            openstack.Vcsim(), openstack.Glance(), openstack.Neutron(),
            openstack.Placement(),
            openstack.NovaSetup(), openstack.NovaAPI(),
            openstack.NovaService('conductor'),
            openstack.NovaService('scheduler'),
        ] + [openstack.NovaService('compute', host)
             for host in openstack.COMPUTES]
        self.state = self._load()
        self._conn = None
        # When the service being started was started: NovaService.ready
        # counts no report made before it.
        self.started_at = None

    # -- state -----------------------------------------------------------

    def _load(self):
        try:
            with open(self.path('state.json')) as f:
                return json.load(f)
        except FileNotFoundError:
            return {'ports': {}, 'secrets': {}, 'pids': {}}

    def save(self):
        os.makedirs(self.root, exist_ok=True)
        tmp = self.path('state.json.tmp')
        with open(tmp, 'w') as f:
            json.dump(self.state, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path('state.json'))

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def log(self, name):
        return self.path('logs', name + '.log')

    def port(self, key):
        ports = self.state['ports']
        if key not in ports:
            taken = set(ports.values())
            port = procs.free_port()
            while port in taken:
                port = procs.free_port()
            ports[key] = port
            self.save()
        return ports[key]

    def secret(self, key):
        values = self.state['secrets']
        if key not in values:
            values[key] = secrets.token_urlsafe(12)
            self.save()
        return values[key]

    def vcenter_uuid(self):
        if 'vcenter_uuid' not in self.state:
            self.state['vcenter_uuid'] = str(uuid.uuid4())
            self.save()
        return self.state['vcenter_uuid']

    @property
    def eventlet(self):
        return self.state.get('mode') == 'eventlet'

    @property
    def keystone_url(self):
        return 'http://127.0.0.1:%d/v3' % self.port('keystone')

    @property
    def nova_url(self):
        return 'http://127.0.0.1:%d/v2.1' % self.port('nova')

    @property
    def placement_url(self):
        return 'http://127.0.0.1:%d' % self.port('placement')

    @property
    def neutron_url(self):
        return 'http://127.0.0.1:%d' % self.port('neutron')

    @property
    def glance_url(self):
        return 'http://127.0.0.1:%d' % self.port('glance')

    def credentials(self):
        """The ``OS_*`` variables of the admin, for the openstack CLI."""
        return {'OS_AUTH_URL': self.keystone_url,
                'OS_USERNAME': 'admin',
                'OS_PASSWORD': self.secret('admin'),
                'OS_PROJECT_NAME': 'admin',
                'OS_USER_DOMAIN_NAME': 'Default',
                'OS_PROJECT_DOMAIN_NAME': 'Default',
                'OS_REGION_NAME': openstack.REGION,
                'OS_IDENTITY_API_VERSION': '3',
                'OS_INTERFACE': 'public'}

    def exports(self):
        """The credentials as shell ``export`` lines."""
        return ''.join('export %s=%s\n' % (key, shlex.quote(value))
                       for key, value in self.credentials().items())

    def new_connection(self):
        """An openstacksdk connection of the admin."""
        import openstack as sdk
        creds = self.credentials()
        return sdk.connect(
            auth_url=creds['OS_AUTH_URL'], username='admin',
            password=creds['OS_PASSWORD'], project_name='admin',
            user_domain_name='Default', project_domain_name='Default',
            region_name=openstack.REGION)

    def connection(self):
        """The stack's own connection (for its readiness checks)."""
        if self._conn is None:
            self._conn = self.new_connection()
        return self._conn

    def forget_connection(self):
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def nova_env(self):
        env = dict(os.environ)
        env['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = (
            'false' if self.eventlet else 'true')
        return env

    def nova_manage(self):
        return [os.path.join(self.bin, 'nova-manage'), '--config-file',
                self.path('nova', 'nova.conf')]

    def service_up(self, binary, host=None, since=None):
        """Whether nova-``binary`` on ``host`` reports as up, with a
        report made after ``since`` (a UTC datetime): a record left by an
        earlier process does not count."""
        host = host or socket.gethostname()
        for service in self.connection().compute.services(
                binary='nova-' + binary, host=host):
            if service.state != 'up' or not service.updated_at:
                continue
            updated = datetime.datetime.fromisoformat(
                service.updated_at.rstrip('Z'))
            if since is None or updated >= since:
                return True
        return False

    # -- up / down ---------------------------------------------------------

    def up(self, eventlet=False):
        start = time.monotonic()
        mode = 'eventlet' if eventlet else 'native'
        if self.state.get('mode') not in (None, mode):
            # Nova's services restart in the other mode; the rest stays.
            for service in self.services:
                if isinstance(service, (openstack.NovaAPI,
                                        openstack.NovaService)):
                    self._stop(service)
        self.state['mode'] = mode
        self.save()
        for service in self.services:
            self._up(service)
        self._discover_hosts()
        self.state['up_seconds'] = round(time.monotonic() - start, 1)
        self.save()
        with open(self.path('openrc'), 'w') as f:
            f.write(self.exports())
        return self.state['up_seconds']

    def _up(self, service):
        pids = self.state['pids']
        t0 = time.monotonic()
        if not hasattr(service, 'argv'):       # set-up only
            self._say('%s: setting up', service.name)
            service.prepare(self)
            return
        pid = pids.get(service.name)
        if procs.alive(pid):
            # Any report of its own counts, however old the process.
            self.started_at = None
            if _ready(service, self):
                self._say('%s: running (pid %d)', service.name, pid)
                service.after_start(self)     # idempotent: users, catalog
                return
            self._say('%s: pid %d does not answer; restarting it',
                      service.name, pid)
            self._stop(service)
        self._say('%s: starting', service.name)
        service.prepare(self)
        self.started_at = datetime.datetime.now(
            datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
        pid = procs.start(service.name, service.argv(self),
                          self.path('logs'), env=service.env(self))
        pids[service.name] = pid
        self.save()
        try:
            procs.wait_for(service.name, lambda: service.ready(self),
                           START_TIMEOUT, pid=pid,
                           log=self.log(service.name))
        except procs.StackError:
            self._stop(service)
            self.save()
            raise
        service.after_start(self)
        self.save()
        self._say('%s: up in %.1f s (pid %d, log %s)', service.name,
                  time.monotonic() - t0, pid, self.log(service.name))

    def _discover_hosts(self):
        """Map the compute hosts to cell1 now, not on the scheduler's next
        pass; then wait until Placement knows every cluster."""
        procs.run(self.nova_manage() + ['cell_v2', 'discover_hosts'],
                  'nova-manage cell_v2 discover_hosts')
        procs.wait_for(
            'a hypervisor for each of the %d clusters'
            % len(openstack.CLUSTERS),
            lambda: len(list(self.connection().compute.hypervisors()))
            >= len(openstack.CLUSTERS), START_TIMEOUT)

    def down(self):
        for service in reversed(self.services):
            if hasattr(service, 'argv'):
                self._stop(service)
        self.save()

    def _stop(self, service, sig=signal.SIGTERM):
        pid = self.state['pids'].pop(service.name, None)
        if procs.alive(pid):
            self._say('%s: stopping (pid %d, %s)', service.name, pid,
                      signal.Signals(sig).name)
            procs.stop(pid, sig=sig)
        stopped = getattr(service, 'stopped', None)
        if stopped is not None:
            stopped(self)

    def service(self, name):
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError('no service %r in the stack' % name)

    def kill(self, name, sig=signal.SIGKILL):
        """End service ``name`` as a crash does (``kill -9`` of its
        process group by default): it cleans nothing up."""
        self._stop(self.service(name), sig=sig)
        self.save()

    def restart(self, name, sig=signal.SIGTERM):
        """Stop service ``name`` (``sig``, SIGKILL if it lingers) and
        start it again; returns once it is ready."""
        self.kill(name, sig)
        self.start(name)

    def start(self, name):
        """Start service ``name`` (after ``kill``); returns once ready."""
        self._up(self.service(name))

    def status(self):
        """(name, pid, running) of each process."""
        rows = []
        for service in self.services:
            if hasattr(service, 'argv'):
                pid = self.state['pids'].get(service.name)
                rows.append((service.name, pid, procs.alive(pid)))
        return rows

    def _say(self, fmt, *args):
        print('stack: ' + fmt % args, file=self.out, flush=True)


def _ready(service, stack):
    try:
        return service.ready(stack)
    except Exception:
        return False
