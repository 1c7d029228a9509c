"""The leak audit (vcdriver/audit.py) for functional tests: a fault test
ends with ``assert_clean(self)``, which fails with the audit's report if
anything leaked either way.

vcdriver is imported when used, not here: a test module may import this
before tests.harness.nova, which must import nova first.
"""


def nova_instance_uuids(test_case, host=None):
    """Nova's non-deleted instances on the test's compute host (all
    projects), from its API."""
    host = host or test_case.compute_host
    servers = test_case.api.get_servers(search_opts={'all_tenants': '1'})
    return {s['id'] for s in servers
            if s.get('OS-EXT-SRV-ATTR:host') == host}


def run(test_case, compute=None, host=None):
    """The audit's Report for a compute service of the test (default: its
    ``compute``, on ``compute_host``), on that driver's own session."""
    from vcdriver import audit
    from vcdriver import conf
    driver = (compute or test_case.compute).manager.driver
    return audit.audit(driver._session, list(driver._clusters.values()),
                       nova_instance_uuids(test_case, host), conf.CONF)


def assert_clean(test_case, compute=None, host=None):
    report = run(test_case, compute, host)
    if not report.clean:
        test_case.fail('the leak audit found %d orphans:\n%s'
                       % (report.count(), report.text()))
    return report
