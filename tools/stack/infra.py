"""MariaDB and RabbitMQ as private instances: Debian's binaries, the
stack's own data directories and ports, never the machine's services."""

import os
import shutil

from tools.stack import procs

DATABASES = ('keystone', 'placement', 'neutron', 'nova_api', 'nova',
             'nova_cell0')
RABBIT_BIN = '/usr/lib/rabbitmq/bin'    # not /usr/sbin's wrappers: they
                                        # switch to the rabbitmq user


class MariaDB:
    name = 'mariadb'
    ports = ('mysql',)

    def _dirs(self, stack):
        data = stack.path('mariadb')
        return data, os.path.join(data, 'mysqld.sock')

    def prepare(self, stack):
        data, _ = self._dirs(stack)
        if os.path.isdir(os.path.join(data, 'mysql')):
            return
        for tool in ('mariadb-install-db', 'mariadbd', 'mariadb'):
            if not shutil.which(tool) and not os.path.exists(
                    '/usr/sbin/' + tool):
                raise procs.StackError(
                    '%s not found: apt-get install mariadb-server' % tool)
        os.makedirs(data, exist_ok=True)
        procs.run(['mariadb-install-db', '--no-defaults',
                   '--datadir=' + data, '--user=' + stack.user,
                   '--auth-root-authentication-method=normal',
                   '--skip-test-db'], 'mariadb-install-db')

    def argv(self, stack):
        data, sock = self._dirs(stack)
        return ['/usr/sbin/mariadbd', '--no-defaults', '--datadir=' + data,
                '--socket=' + sock, '--port=%d' % stack.port('mysql'),
                '--bind-address=127.0.0.1', '--user=' + stack.user,
                '--pid-file=' + os.path.join(data, 'mysqld.pid'),
                '--skip-log-bin', '--innodb-buffer-pool-size=128M',
                '--innodb-flush-log-at-trx-commit=2',
                '--max-connections=1000', '--character-set-server=utf8mb4']

    def env(self, stack):
        return None

    def ready(self, stack):
        return procs.port_open(stack.port('mysql'))

    def after_start(self, stack):
        _, sock = self._dirs(stack)
        user, password = stack.db_user, stack.secret('mysql')
        sql = ["CREATE USER IF NOT EXISTS '%s'@'127.0.0.1' IDENTIFIED BY "
               "'%s'" % (user, password),
               "GRANT ALL ON *.* TO '%s'@'127.0.0.1'" % user]
        sql += ['CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4'
                % db for db in DATABASES]
        procs.run(['mariadb', '--no-defaults', '-S', sock, '-uroot'],
                  'creating the databases', input=';\n'.join(sql) + ';\n')

    def url(self, stack, database):
        return 'mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=utf8mb4' % (
            stack.db_user, stack.secret('mysql'), stack.port('mysql'),
            database)


class RabbitMQ:
    name = 'rabbitmq'
    ports = ('amqp', 'amqp_dist', 'epmd')

    def prepare(self, stack):
        if not os.path.exists(os.path.join(RABBIT_BIN, 'rabbitmq-server')):
            raise procs.StackError('rabbitmq-server not found: apt-get '
                                   'install rabbitmq-server')
        home = stack.path('rabbitmq')
        os.makedirs(home, exist_ok=True)
        with open(os.path.join(home, 'enabled_plugins'), 'w') as f:
            f.write('[].\n')
        with open(os.path.join(home, 'rabbitmq.conf'), 'w') as f:
            f.write('loopback_users = none\n'
                    'log.console = true\n'
                    'log.file = false\n')

    def env(self, stack):
        home = stack.path('rabbitmq')
        env = dict(os.environ)
        env.update(
            HOME=home,      # its Erlang cookie
            PATH=RABBIT_BIN + os.pathsep + env.get('PATH', ''),
            RABBITMQ_NODENAME='vcdriver@localhost',
            RABBITMQ_NODE_IP_ADDRESS='127.0.0.1',
            RABBITMQ_NODE_PORT=str(stack.port('amqp')),
            RABBITMQ_DIST_PORT=str(stack.port('amqp_dist')),
            ERL_EPMD_PORT=str(stack.port('epmd')),
            ERL_EPMD_ADDRESS='127.0.0.1',
            RABBITMQ_MNESIA_BASE=os.path.join(home, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(home, 'log'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(home,
                                                       'enabled_plugins'),
            RABBITMQ_CONFIG_FILE=os.path.join(home, 'rabbitmq'),
            RABBITMQ_PID_FILE=os.path.join(home, 'rabbitmq.pid'))
        return env

    def argv(self, stack):
        return [os.path.join(RABBIT_BIN, 'rabbitmq-server')]

    def _ctl(self, stack, *args, what=None):
        return procs.run([os.path.join(RABBIT_BIN, 'rabbitmqctl'), '-q']
                         + list(args), what or 'rabbitmqctl ' + args[0],
                         env=self.env(stack), timeout=120)

    def ready(self, stack):
        return procs.port_open(stack.port('amqp'))

    def after_start(self, stack):
        self._ctl(stack, 'await_startup', '--timeout', '60')
        users = self._ctl(stack, 'list_users')
        if stack.db_user not in users.split():
            self._ctl(stack, 'add_user', stack.db_user,
                      stack.secret('rabbit'))
        self._ctl(stack, 'set_permissions', stack.db_user, '.*', '.*', '.*')

    def stopped(self, stack):
        """Its epmd outlives the node; end it too."""
        if procs.port_open(stack.port('epmd')):
            procs.run(['epmd', '-port', str(stack.port('epmd')), '-kill'],
                      'stopping epmd', env=self.env(stack))

    def url(self, stack):
        return 'rabbit://%s:%s@127.0.0.1:%d/' % (
            stack.db_user, stack.secret('rabbit'), stack.port('amqp'))
