"""The leak audit (vcdriver/audit.py) for functional tests: a fault test
ends with ``assert_clean(self)``, which fails with the audit's report if
anything leaked either way; every test on a vCenter of its own
(tests.harness.nova.OwnVcsimTestCase) ends with ``assert_nothing_left``.

vcdriver is imported when used, not here: a test module may import this
before tests.harness.nova, which must import nova first.
"""

import os


def nova_instance_uuids(test_case, host=None):
    """Nova's non-deleted instances on the test's compute host (all
    projects), from its API."""
    host = host or test_case.compute_host
    servers = test_case.api.get_servers(search_opts={'all_tenants': '1'})
    return {s['id'] for s in servers
            if s.get('OS-EXT-SRV-ATTR:host') == host}


def run(test_case, compute=None, host=None, instance_uuids=None):
    """The audit's Report for a compute service of the test (default: its
    ``compute``, on ``compute_host``), on that driver's own session,
    against ``instance_uuids`` (default: Nova's instances of the host)."""
    from vcdriver import audit
    from vcdriver import conf
    driver = (compute or test_case.compute).manager.driver
    if instance_uuids is None:
        instance_uuids = nova_instance_uuids(test_case, host)
    return audit.audit(driver._session, list(driver._clusters.values()),
                       instance_uuids, conf.CONF)


def assert_clean(test_case, compute=None, host=None):
    report = run(test_case, compute, host)
    if not report.clean:
        test_case.fail('the leak audit found %d orphans:\n%s'
                       % (report.count(), report.text()))
    return report


def assert_nothing_left(test_case):
    """After a test on a vCenter of its own: the audit of every compute
    service's clusters against no Nova instance at all, as the test's Nova
    (its database) ends with the test and the vCenter does not. So a VM of
    Nova's, a file on a datastore that no VM uses, or image cache debris
    (a dead download, a stale lock) is a leak, even of a server Nova still
    has. What is found is removed (the VMs by the test case's last
    cleanup), so that the class's later tests start clean; the test fails
    with the audit's report.
    """
    from vcdriver import conf
    found = []
    for host, compute in sorted(test_case.computes.items()):
        report = run(test_case, compute, host, instance_uuids=())
        if not report.clean:
            found.append('%s: %d orphans:\n%s' % (host, report.count(),
                                                    report.text()))
            _remove_files(test_case.sim, report,
                          conf.CONF.vcdriver.image_cache_folder)
    if found:
        test_case.fail('the test left this behind in its vCenter (leak '
                       'audit):\n%s' % '\n'.join(found))


def _remove_files(sim, report, cache_folder):
    """The orphan folders and files of ``report`` from the simulator's
    datastores, and the image cache of each datastore with debris."""
    import shutil

    from vcdriver import datastore_layout as layout
    paths = {layout.split(o['path']) for o in report.orphan_folders}
    paths |= {(d['datastore'], cache_folder) for d in report.cache_debris}
    for datastore, rel in paths:
        local = sim.datastore_path(datastore, rel)
        if os.path.isdir(local):
            shutil.rmtree(local, ignore_errors=True)
        elif os.path.exists(local):
            os.remove(local)
