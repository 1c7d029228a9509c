"""Real crashes: a nova-compute killed (``kill -9``) in the middle of a
spawn, and vCenter, RabbitMQ and MariaDB restarted under a batch of boots.
Nova's own recovery decides what becomes of the instances; the driver
must leave no VM, no file and no lock behind, and take over what a dead
process held."""

import time

import pytest

from tests.stack import clock
from tests.stack import images
from tests.stack import vcenter
from tools.stack import openstack

HOST = 'compute2'        # serves one cluster; its node is the one below


@pytest.fixture(scope='module')
def node(stack):
    return next(n for n, h in stack.nodes().items() if h == HOST)


@pytest.fixture(scope='module')
def cached_image(stack, flavor, node, tmp_path_factory):
    """An image already in the cache of ``node``'s datastore."""
    path = images.qcow2(tmp_path_factory.mktemp('img') / 'cached.qcow2',
                        pattern=0x21)
    image_id = stack.create_image(path, 'qcow2', 'stack-crash-cached')
    server = stack.boot(image_id, flavor, 'stack-crash-warm', node, HOST)
    stack.delete_servers([server['id']])
    yield image_id
    stack.openstack('image', 'delete', image_id, check=False)


def _nothing_left(stack, si, vms_before, image_id=None, timeout=0):
    """No VM the test made, no cache leftovers (waiting ``timeout`` s for
    the cache's ageing to remove them), clean audits."""
    deadline = time.monotonic() + timeout
    while True:
        vms = vcenter.vm_names(si)
        leftovers = [f for f in vcenter.cache_files(si, image_id)
                     if f[1] != image_id] if image_id else []
        if (vms == vms_before and not leftovers) or \
                time.monotonic() > deadline:
            break
        time.sleep(2)
    assert vms == vms_before, 'VMs left behind: %s' % sorted(
        set(vms) - set(vms_before))
    assert not leftovers, 'cache leftovers: %s' % leftovers
    for host in ('compute1', 'compute2'):
        code, found = stack.audit(host)
        assert code == 0, 'vcdriver audit of %s found: %s' % (host, found)


def test_compute_killed_during_image_download(stack, flavor, node,
                                              tmp_path):
    """The dead compute held the image's cache lock, an import lease and
    its shell VM, and the instance's VM: after a restart the instance is
    ERROR and deleting it removes its VM. The next boot of the image
    fetches it again, and the dead fill's lock is taken over with its
    partial folder and shell VM: by that boot if it picks the same
    datastore, else by the cache's ageing."""
    si = vcenter.connect(stack)
    ctl = vcenter.control(stack)
    vms_before = vcenter.vm_names(si)
    image_id = stack.create_image(
        images.qcow2(tmp_path / 'big.qcow2', data='8M', pattern=0x17),
        'qcow2', 'stack-crash-download')
    rule = ctl.inject(kind='stall', target='nfc', cut_after_bytes=1 << 20)
    try:
        server = stack.boot(image_id, flavor, 'stack-crash-download', node,
                            HOST, wait=False)
        vcenter.wait_rule(ctl, rule, 'stalled')
        names = [n for _ds, n in vcenter.cache_files(si, image_id)]
        assert image_id + '.lock' in names, names
        stack.stack.kill(HOST)
    finally:
        ctl.clear_faults(rule)
    stack.stack.start(HOST)
    crashed = stack.wait_servers('stack-crash-download', 1)[server['id']]
    assert crashed.status == 'ERROR', crashed.status
    stack.delete_servers([server['id']])
    assert vcenter.vm_of(si, server['id']) is None

    again = stack.boot(image_id, flavor, 'stack-crash-again', node, HOST)
    assert again['status'] == 'ACTIVE', again
    assert stack.image_downloads(image_id) == 2
    stack.delete_servers([again['id']])
    _nothing_left(stack, si, vms_before, image_id,
                  timeout=4 * openstack.STALE_LOCK)
    stack.openstack('image', 'delete', image_id, parse=False)


def test_compute_killed_during_create_vm(stack, flavor, node, cached_image):
    """vCenter finishes the CreateVM task the dead compute asked for: the
    VM exists with nobody to finish the spawn. The instance ends ERROR
    and deleting it removes that VM."""
    si = vcenter.connect(stack)
    ctl = vcenter.control(stack)
    vms_before = vcenter.vm_names(si)
    rule = ctl.inject(kind='task_hang', method='CreateVM_Task', seconds=0)
    try:
        server = stack.boot(cached_image, flavor, 'stack-crash-create',
                            node, HOST, wait=False)
        vcenter.wait_rule(ctl, rule, 'hits')
        stack.stack.kill(HOST)
    finally:
        ctl.clear_faults(rule)
    vm = _wait_vm(si, server['id'])
    assert vm is not None, 'the hung CreateVM_Task made no VM'
    stack.stack.start(HOST)
    crashed = stack.wait_servers('stack-crash-create', 1)[server['id']]
    assert crashed.status == 'ERROR', crashed.status
    stack.delete_servers([server['id']])
    assert vcenter.vm_of(si, server['id']) is None
    _nothing_left(stack, si, vms_before)


def _wait_vm(si, server_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm = vcenter.vm_of(si, server_id)
        if vm is not None:
            return vm
        time.sleep(0.2)
    return None


def _restart_vcenter(stack):
    vcenter.control(stack).inject(kind='restart', seconds=5)
    time.sleep(5)


def _restart_rabbitmq(stack):
    stack.stack.restart('rabbitmq')


def _restart_mariadb(stack):
    stack.stack.restart('mariadb')


def _never_scheduled(server):
    """In BUILD on no compute for a minute: the conductor or scheduler
    lost it while the database was away, and Nova leaves it so (no
    compute owns it to time it out); deleting it is all there is."""
    return (server.status == 'BUILD' and not server.compute_host and
            time.time() - clock.api_time(server.created_at) > 60)


@pytest.mark.parametrize('restart,all_active', [
    (_restart_vcenter, True), (_restart_rabbitmq, False),
    (_restart_mariadb, False)], ids=['vcenter', 'rabbitmq', 'mariadb'])
def test_restart_during_boots(stack, flavor, cached_image, restart,
                              all_active):
    """Four servers in one request, then the service restarts under them.
    The services recover by themselves. A vCenter away for a few seconds
    loses no build: the driver's calls back off until vCenter answers.
    Without RabbitMQ or the database, Nova may lose builds (messages in
    flight, RPC calls that time out: 4 ACTIVE in most runs, once under
    CI load 2 ACTIVE, 1 ERROR after its retries, 1 lost), so every server
    ends ACTIVE or ERROR (one whose build failed on a compute while the
    database was away, so that Nova could not record the failure, is put
    in ERROR by Nova's ``instance_build_timeout``) or, lost before any
    compute had it, stays in BUILD on none. Either way a boot afterwards
    works, and deleting them all leaves no VM."""
    si = vcenter.connect(stack)
    vms_before = vcenter.vm_names(si)
    prefix = 'stack-restart-%s' % restart.__name__.split('_')[-1]
    stack.boot(cached_image, flavor, prefix, count=4, wait=False)
    restart(stack)
    servers = stack.wait_servers(prefix, 4, settled=_never_scheduled)
    si = vcenter.connect(stack)      # a vCenter restart ends sessions
    after = stack.boot(cached_image, flavor, prefix + '-after')
    assert after['status'] == 'ACTIVE', after
    for s in servers.values():
        if s.status == 'ACTIVE':
            vm = vcenter.vm_of(si, s.id)
            assert vm is not None and vm.runtime.powerState == 'poweredOn'
    statuses = sorted(s.status for s in servers.values())
    print('\n%s restarted under 4 boots: %s' % (prefix.split('-')[-1],
                                                 statuses))
    faults = [(s.id, s.status, getattr(s, 'fault', None))
              for s in servers.values() if s.status != 'ACTIVE']
    stack.delete_servers(list(servers) + [after['id']])
    _nothing_left(stack, si, vms_before)
    if all_active:
        assert not faults, faults
