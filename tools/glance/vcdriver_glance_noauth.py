"""Keystone-less identity for vcdriver's test Glance (a paste filter).

Runs inside glance-api (its own venv), in front of Glance's
ContextMiddleware: marks every request as authenticated for a fixed project,
user and roles, as keystonemiddleware would. Requests that already carry
X-Project-Id / X-User-Id / X-Roles keep them, so a test can act as another
project. Any X-Auth-Token (clients need one) is accepted and ignored.

Only for tests on loopback: it trusts whoever connects.
"""


def filter_factory(global_conf, **local_conf):
    defaults = {
        'HTTP_X_PROJECT_ID': local_conf.get('project_id', 'vcdriver'),
        'HTTP_X_USER_ID': local_conf.get('user_id', 'vcdriver'),
        'HTTP_X_ROLES': local_conf.get('roles', 'admin,member,reader'),
    }

    def _filter(app):
        def noauth(environ, start_response):
            environ['HTTP_X_IDENTITY_STATUS'] = 'Confirmed'
            for key, value in defaults.items():
                if not environ.get(key):
                    environ[key] = value
            return app(environ, start_response)
        return noauth
    return _filter
