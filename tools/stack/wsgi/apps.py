"""WSGI applications for gunicorn: ``apps:keystone``, ``apps:neutron``,
``apps:nova_api``.

Keystone, Neutron and the Nova API parse ``sys.argv`` as their own command
line when they load, and gunicorn's arguments are not theirs: they are
given none. Their config files come from the environment
(``OS_KEYSTONE_CONFIG_FILES``, ``OS_NEUTRON_CONFIG_DIR``,
``OS_NOVA_CONFIG_DIR``).
"""

import importlib
import sys

_MODULES = {'keystone': 'keystone.wsgi.api',
            'neutron': 'neutron.wsgi.api',
            'nova_api': 'nova.wsgi.osapi_compute'}


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(name)
    sys.argv = sys.argv[:1]
    application = importlib.import_module(_MODULES[name]).application
    if name == 'neutron':
        # Its port queries name Port.port_forwardings, a backref that
        # exists once SQLAlchemy has configured the mappers; with ML2 and
        # no service plugin nothing has when the first GET /v2.0/ports
        # comes, which then fails with AttributeError.
        import sqlalchemy.orm
        sqlalchemy.orm.configure_mappers()
    return application
