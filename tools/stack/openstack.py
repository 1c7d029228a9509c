"""The OpenStack services of the stack, each a real process: Keystone,
Placement and the Nova API under gunicorn, nova-conductor, nova-scheduler,
two nova-compute services running vcdriver, Glance behind Keystone, and
our vcsim launcher as vCenter."""

import configparser
import json
import os
import shutil
import sys

from tests.harness import glance as glance_harness
from tests.harness import vcsim as vcsim_harness
from tests.harness import venvs
from tools.stack import procs

KEYSTONE_REQUIREMENTS = ('keystone==30.0.0', 'gunicorn==27.0.1',
                         'PyMySQL==1.1.2')
NEUTRON_REQUIREMENTS = ('neutron==29.0.0', 'gunicorn==27.0.1',
                        'PyMySQL==1.1.2')
REGION = 'RegionOne'
# Clusters of the launcher and the compute service serving each.
COMPUTES = {'compute1': ('DC0_C0', 'DC0_C1'), 'compute2': ('DC0_C2',)}
CLUSTERS = sum(COMPUTES.values(), ())
HOSTS_PER_CLUSTER = 2
SERVICE_USERS = ('nova', 'placement', 'glance', 'neutron')
STALE_LOCK = 30      # [vcdriver] image_cache_lock_stale_seconds
BUILD_TIMEOUT = 180  # [DEFAULT] instance_build_timeout


def write_ini(path, sections):
    """``sections``: {section: {option: value}}, written in order."""
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str
    for section, options in sections.items():
        if section != 'DEFAULT':
            parser.add_section(section)
        for key, value in options.items():
            parser.set(section, key, str(value))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        parser.write(f)


def authtoken(stack, user):
    """[keystone_authtoken] (and the like) for service user ``user``."""
    return {'www_authenticate_uri': stack.keystone_url,
            'auth_url': stack.keystone_url,
            'auth_type': 'password',
            'project_domain_name': 'Default',
            'user_domain_name': 'Default',
            'project_name': 'service',
            'username': user,
            'password': stack.secret(user),
            'region_name': REGION}


# gunicorn closes an idle client connection after 2 s by default: a
# client polling every 2 s (``openstack server delete --wait``) then sends
# on a connection being closed and gets "Connection reset by peer".
KEEP_ALIVE = ['--keep-alive', '75']


def gunicorn(venv_bin, app, port, threads=8, workers=1):
    return [os.path.join(venv_bin, 'gunicorn'), '--bind',
            '127.0.0.1:%d' % port, '--workers', str(workers), '--threads',
            str(threads), '--timeout', '600', '--graceful-timeout', '5',
            '--no-control-socket'] + KEEP_ALIVE + [app]


class _VenvAPI:
    """An API in a venv of its own (``<cache>/<name>-venv``), under
    gunicorn as ``apps:<name>`` (tools/stack/wsgi/apps.py), its config
    named by ``config_env``."""
    requirements = ()
    executables = ()

    @property
    def ports(self):
        return (self.name,)

    def _venv(self, stack):
        return venvs.ensure(
            os.path.join(venvs.cache_dir(), self.name + '-venv'),
            self.requirements,
            executables=('gunicorn',) + self.executables, label=self.name,
            log=stack.out)

    def env(self, stack):
        env = _clean_env()
        env.update(self.config_env(stack))
        env['PYTHONPATH'] = os.path.join(stack.tools, 'wsgi')
        return env

    def argv(self, stack):
        return gunicorn(os.path.join(self._venv(stack), 'bin'),
                        'apps:' + self.name, stack.port(self.name))

    def ready(self, stack):
        return procs.http_ok(getattr(stack, self.name + '_url'))()

    def after_start(self, stack):
        pass


class Keystone(_VenvAPI):
    name = 'keystone'
    requirements = KEYSTONE_REQUIREMENTS
    executables = ('keystone-manage',)

    def _conf(self, stack):
        return os.path.join(stack.path('keystone'), 'keystone.conf')

    def prepare(self, stack):
        venv = self._venv(stack)
        home = stack.path('keystone')
        write_ini(self._conf(stack), {
            'DEFAULT': {'use_stderr': 'true'},
            'database': {'connection': stack.mariadb.url(stack,
                                                         'keystone')},
            'token': {'provider': 'fernet'},
            'fernet_tokens': {'key_repository': os.path.join(home, 'fernet')},
            'credential': {'key_repository': os.path.join(home,
                                                          'credential')},
        })
        manage = [os.path.join(venv, 'bin', 'keystone-manage'),
                  '--config-file', self._conf(stack)]
        done = os.path.join(home, '.bootstrapped')
        if os.path.exists(done):
            return
        procs.run(manage + ['db_sync'], 'keystone-manage db_sync')
        for what in ('fernet_setup', 'credential_setup'):
            procs.run(manage + [what, '--keystone-user', stack.user,
                                '--keystone-group', stack.group],
                      'keystone-manage ' + what)
        procs.run(manage + [
            'bootstrap', '--bootstrap-password', stack.secret('admin'),
            '--bootstrap-admin-url', stack.keystone_url,
            '--bootstrap-internal-url', stack.keystone_url,
            '--bootstrap-public-url', stack.keystone_url,
            '--bootstrap-region-id', REGION], 'keystone-manage bootstrap')
        open(done, 'w').close()

    def config_env(self, stack):
        return {'OS_KEYSTONE_CONFIG_FILES': self._conf(stack)}

    def after_start(self, stack):
        """Service project, users and the catalog (idempotent)."""
        conn = stack.connection()
        identity = conn.identity
        project = identity.find_project('service', domain_id='default')
        if project is None:
            project = identity.create_project(name='service',
                                              domain_id='default')
        # As devstack: services' users hold admin and service; Keystone's
        # middleware accepts a service token only from a holder of service.
        roles = [identity.find_role('admin'),
                 identity.find_role('service')
                 or identity.create_role(name='service')]
        for name in SERVICE_USERS:
            user = identity.find_user(name, domain_id='default')
            if user is None:
                user = identity.create_user(name=name, domain_id='default',
                                            password=stack.secret(name))
            for role in roles:
                identity.assign_project_role_to_user(project, user, role)
        for name, kind, url in (
                ('nova', 'compute', stack.nova_url),
                ('placement', 'placement', stack.placement_url),
                ('glance', 'image', stack.glance_url),
                ('neutron', 'network', stack.neutron_url)):
            service = identity.find_service(name)
            if service is None:
                service = identity.create_service(name=name, type=kind)
            have = {e.interface: e for e in identity.endpoints(
                service_id=service.id)}
            for interface in ('public', 'internal'):
                if interface in have and have[interface].url == url:
                    continue
                if interface in have:
                    identity.delete_endpoint(have[interface])
                identity.create_endpoint(service_id=service.id, url=url,
                                         interface=interface,
                                         region_id=REGION)
        # Its token's catalog predates these endpoints.
        stack.forget_connection()


class Glance:
    """Our test Glance (tests/harness/glance.py), behind Keystone."""
    name = 'glance'
    ports = ('glance',)

    def prepare(self, stack):
        self.venv = glance_harness.ensure_glance_venv(log=stack.out)
        self.conf = glance_harness.write_config(
            stack.path('glance'), self.venv,
            keystone=authtoken(stack, 'glance'))
        glance_harness.db_sync(self.venv, self.conf)

    def env(self, stack):
        return glance_harness.gunicorn_env(self.conf)

    def argv(self, stack):
        # The access log counts image downloads (GET .../file) for tests.
        return glance_harness.gunicorn_argv(
            self.venv, '127.0.0.1:%d' % stack.port('glance'),
            extra=['--access-logfile', '-'] + KEEP_ALIVE)

    def ready(self, stack):
        return procs.http_ok(stack.glance_url + '/healthcheck')()

    def after_start(self, stack):
        pass


class Vcsim:
    """The launcher (tools/vcsim) as the stack's vCenter: three clusters
    of two hosts on a shared NFS datastore, and a VMFS datastore of each
    cluster's own (``ds-<cluster>``). Its inventory lives in its process:
    after ``down`` the datastores' files stay, the VMs do not."""
    name = 'vcsim'
    ports = ('vcsim',)

    def prepare(self, stack):
        self.binary = vcsim_harness.build_launcher()

    def env(self, stack):
        return None

    def argv(self, stack):
        return [self.binary, '-listen', '127.0.0.1:%d' % stack.port('vcsim'),
                '-clusters', str(len(CLUSTERS)),
                '-hosts-per-cluster', str(HOSTS_PER_CLUSTER),
                '-host-memory-mb', '131072', '-host-cpu-cores', '32',
                '-nfs', '1', '-cluster-datastores',
                '-datastore-capacity-gb', '2048',
                '-datastore-root', stack.path('datastores'),
                # Node names carry it: the same vCenter after a restart.
                '-instance-uuid', stack.vcenter_uuid(),
                '-username', 'vcsim', '-password', stack.secret('vcsim')]

    def ready(self, stack):
        return procs.port_open(stack.port('vcsim'))

    def after_start(self, stack):
        # Its first stdout line (in its log) says what it made.
        for line in reversed(procs.tail(stack.log('vcsim'), 400)
                             .splitlines()):
            if line.startswith('{'):
                stack.state['vcsim'] = json.loads(line)
                return


class Neutron(_VenvAPI):
    """neutron-server's API alone (ML2, no mechanism driver, no agent):
    servers are made with ``--nic none``, but Nova's API and computes
    still ask Neutron for ports and security groups."""
    name = 'neutron'
    requirements = NEUTRON_REQUIREMENTS
    executables = ('neutron-db-manage',)

    def _dir(self, stack):
        return stack.path('neutron')

    def prepare(self, stack):
        venv = self._venv(stack)
        home = self._dir(stack)
        write_ini(os.path.join(home, 'neutron.conf'), {
            'DEFAULT': {
                'use_stderr': 'true',
                'core_plugin': 'ml2',
                'service_plugins': '',
                'auth_strategy': 'keystone',
                'transport_url': stack.rabbitmq.url(stack),
                'api_paste_config': os.path.join(venv, 'etc', 'neutron',
                                                 'api-paste.ini'),
                'notify_nova_on_port_status_changes': 'false',
                'notify_nova_on_port_data_changes': 'false',
            },
            'database': {'connection': stack.mariadb.url(stack, 'neutron')},
            'keystone_authtoken': authtoken(stack, 'neutron'),
            'oslo_concurrency': {'lock_path': os.path.join(home, 'locks')},
        })
        write_ini(os.path.join(home, 'ml2_conf.ini'), {
            'ml2': {'type_drivers': 'flat', 'tenant_network_types': '',
                    'mechanism_drivers': '', 'extension_drivers': ''},
        })
        done = os.path.join(home, '.migrated')
        if not os.path.exists(done):
            procs.run([os.path.join(venv, 'bin', 'neutron-db-manage'),
                       '--config-file', os.path.join(home, 'neutron.conf'),
                       '--config-file', os.path.join(home, 'ml2_conf.ini'),
                       'upgrade', 'head'], 'neutron-db-manage upgrade',
                      env=_clean_env())
            open(done, 'w').close()

    def config_env(self, stack):
        return {'OS_NEUTRON_CONFIG_DIR': self._dir(stack),
                'OS_NEUTRON_CONFIG_FILES': 'neutron.conf;ml2_conf.ini'}


class Placement:
    name = 'placement'
    ports = ('placement',)

    def _dir(self, stack):
        return stack.path('placement')

    def prepare(self, stack):
        write_ini(os.path.join(self._dir(stack), 'placement.conf'), {
            'DEFAULT': {'use_stderr': 'true'},
            'placement_database': {
                'connection': stack.mariadb.url(stack, 'placement')},
            'api': {'auth_strategy': 'keystone'},
            'keystone_authtoken': authtoken(stack, 'placement'),
        })
        procs.run([os.path.join(stack.bin, 'placement-manage'),
                   '--config-dir', self._dir(stack), 'db', 'sync'],
                  'placement-manage db sync')

    def env(self, stack):
        env = dict(os.environ)
        env['OS_PLACEMENT_CONFIG_DIR'] = self._dir(stack)
        return env

    def argv(self, stack):
        return gunicorn(stack.bin, 'placement.wsgi.api:application',
                        stack.port('placement'))

    def ready(self, stack):
        return procs.http_ok(stack.placement_url)()

    def after_start(self, stack):
        pass


def nova_conf(stack):
    """What every Nova service shares."""
    mariadb = stack.mariadb
    return {
        'DEFAULT': {
            'transport_url': stack.rabbitmq.url(stack),
            'use_stderr': 'true',
            'state_path': stack.path('nova'),
            'my_ip': '127.0.0.1',
        },
        'api_database': {'connection': mariadb.url(stack, 'nova_api')},
        'database': {'connection': mariadb.url(stack, 'nova')},
        'api': {'auth_strategy': 'keystone'},
        'keystone_authtoken': authtoken(stack, 'nova'),
        'placement': authtoken(stack, 'placement'),
        'service_user': dict(authtoken(stack, 'nova'),
                             send_service_user_token='true'),
        'glance': {'region_name': REGION},
        'neutron': authtoken(stack, 'neutron'),
        'wsgi': {'api_paste_config': stack.path('nova/api-paste.ini')},
        # One worker: nova-scheduler's parent talks to Placement before
        # it forks its workers (one per core), which then share that
        # connection, and their answers interleave (BadStatusLine,
        # IncompleteRead: NoValidHost on a fresh stack's first boots).
        'scheduler': {'discover_hosts_in_cells_interval': '2',
                      'workers': '1'},
        'oslo_concurrency': {'lock_path': stack.path('nova/locks')},
        'oslo_messaging_notifications': {'driver': 'noop'},
        'vnc': {'enabled': 'false'},
    }


class NovaSetup:
    """nova.conf, the databases and the cells; not a process."""
    name = 'nova-db'
    ports = ()

    def prepare(self, stack):
        conf = stack.path('nova/nova.conf')
        write_ini(conf, nova_conf(stack))
        os.makedirs(stack.path('nova/locks'), exist_ok=True)
        # Nova's own pipeline; the API reads it beside nova.conf.
        shutil.copyfile(os.path.join(sys.prefix, 'etc', 'nova',
                                     'api-paste.ini'),
                        stack.path('nova/api-paste.ini'))
        done = stack.path('nova/.cells')
        if os.path.exists(done):
            procs.run(stack.nova_manage() + ['db', 'sync'],
                      'nova-manage db sync')
            return
        manage = stack.nova_manage()
        mariadb = stack.mariadb
        procs.run(manage + ['api_db', 'sync'], 'nova-manage api_db sync')
        procs.run(manage + ['cell_v2', 'map_cell0', '--database_connection',
                            mariadb.url(stack, 'nova_cell0')],
                  'nova-manage cell_v2 map_cell0')
        procs.run(manage + ['db', 'sync'], 'nova-manage db sync')
        procs.run(manage + ['cell_v2', 'create_cell', '--name', 'cell1',
                            '--database_connection',
                            mariadb.url(stack, 'nova'), '--transport-url',
                            stack.rabbitmq.url(stack)],
                  'nova-manage cell_v2 create_cell')
        open(done, 'w').close()


class NovaAPI:
    name = 'nova-api'
    ports = ('nova',)

    def prepare(self, stack):
        pass

    def env(self, stack):
        env = stack.nova_env()
        env['OS_NOVA_CONFIG_DIR'] = stack.path('nova')
        env['PYTHONPATH'] = os.path.join(stack.tools, 'wsgi')
        return env

    def argv(self, stack):
        if stack.eventlet:
            # The API monkey-patches itself as it loads: under gunicorn's
            # gthread worker, whose threads are already running, it then
            # answered its first request and hung on the next. Its sync
            # worker (one request at a time each) has no threads to break.
            return gunicorn(stack.bin, 'apps:nova_api', stack.port('nova'),
                            threads=1, workers=4)
        return gunicorn(stack.bin, 'apps:nova_api', stack.port('nova'))

    def ready(self, stack):
        return procs.http_ok(stack.nova_url)()

    def after_start(self, stack):
        pass


class NovaService:
    """nova-conductor, nova-scheduler or a nova-compute: an RPC service,
    ready once it reports to the database."""

    def __init__(self, binary, host=None):
        self.binary = binary
        self.host = host
        self.name = host or binary
        self.ports = ()

    def conf_files(self, stack):
        files = [stack.path('nova/nova.conf')]
        if self.host:
            files.append(stack.path('nova/%s.conf' % self.host))
        return files

    def prepare(self, stack):
        if not self.host:
            return
        conf = self.conf_files(stack)[-1]
        if os.path.exists(conf):
            os.unlink(conf)
        os.makedirs(stack.path('nova/%s/instances' % self.host),
                    exist_ok=True)
        write_ini(conf, {
            'DEFAULT': {
                'host': self.host,
                # A build that failed while the database was away stays
                # in BUILD (Nova cannot record the failure); Nova puts it
                # in ERROR after this, as production clouds set it.
                'instance_build_timeout': BUILD_TIMEOUT,
                'state_path': stack.path('nova/' + self.host),
                'instances_path': stack.path('nova/%s/instances'
                                            % self.host),
            },
            # A dead compute's image-cache lock is taken over after 30 s
            # rather than the default 120, by a spawn or by the cache's
            # ageing, run every 30 s rather than 40 min: crash tests
            # take seconds.
            'vcdriver': {'image_cache_lock_stale_seconds': STALE_LOCK},
            'image_cache': {'manager_interval': STALE_LOCK},
        })
        # The driver's settings: what devstack's plugin writes.
        env = dict(os.environ)
        env.update(
            VCDRIVER_VCENTER_HOST='127.0.0.1',
            VCDRIVER_VCENTER_PORT=str(stack.port('vcsim')),
            VCDRIVER_VCENTER_USER='vcsim',
            VCDRIVER_VCENTER_PASSWORD=stack.secret('vcsim'),
            VCDRIVER_VCENTER_PROTOCOL='http',
            VCDRIVER_INSECURE='True',
            VCDRIVER_USE_VCSIM='False',
            VCDRIVER_CLUSTERS=','.join(COMPUTES[self.host]),
            DATA_DIR=stack.path('devstack-data'),
            PYTHON=sys.executable)
        procs.run(['bash', os.path.join(stack.tools, 'devstack.sh'), conf],
                  'devstack/plugin.sh post-config for ' + self.host, env=env)

    def env(self, stack):
        return stack.nova_env()

    def argv(self, stack):
        argv = [os.path.join(stack.bin, 'nova-' + self.binary)]
        for conf in self.conf_files(stack):
            argv += ['--config-file', conf]
        return argv

    def ready(self, stack):
        return stack.service_up(self.binary, self.host,
                                since=stack.started_at)

    def after_start(self, stack):
        pass


def _clean_env():
    """The environment for a service in a venv of its own."""
    env = dict(os.environ)
    for var in ('PYTHONHOME', 'VIRTUAL_ENV', 'PYTHONPATH'):
        env.pop(var, None)
    return env
