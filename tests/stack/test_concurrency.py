"""Concurrency in the stack's runtime (native threads unless the stack
runs under eventlet): 30 servers in one request and 30 in separate
requests, all at once, from one uncached image."""

import statistics
import subprocess
import threading
import time
from concurrent import futures

from tests.stack import clock
from tests.stack import images
from tests.stack import vcenter

SERVERS = 30          # in one request, and as many requests again
SETTLE_TIMEOUT = 900  # a bound on a hang, not an expectation


def _create_separately(stack, image_id, flavor_id, names):
    """One ``create_server`` per name through openstacksdk, 10 at a time,
    each thread with a connection of its own; their start times."""
    local = threading.local()
    started = {}

    def create(name):
        if not hasattr(local, 'conn'):
            local.conn = stack.stack.new_connection()
        started[name] = time.monotonic()
        local.conn.compute.create_server(
            name=name, image_id=image_id, flavor_id=flavor_id,
            networks='none')

    with futures.ThreadPoolExecutor(10) as pool:
        for done in [pool.submit(create, n) for n in names]:
            done.result()
    return started


def _settle(conn, prefixes, count):
    """Poll until ``count`` servers named with ``prefixes`` are out of
    BUILD; ``(servers by id, monotonic time each was first seen out of
    BUILD)``."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    settled_at = {}
    while True:
        servers = {s.id: s for s in conn.compute.servers(details=True)
                   if s.name.startswith(prefixes)}
        now = time.monotonic()
        for s in servers.values():
            if s.status != 'BUILD':
                settled_at.setdefault(s.id, now)
        if len(servers) == count and len(settled_at) == count:
            return servers, settled_at
        assert now < deadline, '%d of %d servers still in BUILD after ' \
            '%d s' % (count - len(settled_at), count, SETTLE_TIMEOUT)
        time.sleep(0.5)


def test_sixty_servers_at_once_one_download_per_datastore(stack, flavor,
                                                          tmp_path):
    stack.openstack('quota', 'set', '--instances', '-1', '--cores', '-1',
                    '--ram', '-1', 'admin', parse=False)
    image_id = stack.create_image(
        images.qcow2(tmp_path / 'many.qcow2', pattern=0x3c), 'qcow2',
        'stack-concurrency')
    conn = stack.stack.connection()
    si = vcenter.connect(stack)
    nodes = vcenter.clusters_by_node(stack, si)
    try:
        t0 = time.monotonic()
        # 30 in one request, through the CLI, while 30 more go in one by
        # one through the SDK.
        multi = subprocess.Popen(
            stack.argv('server', 'create', '--image', image_id,
                       '--flavor', flavor['id'], '--nic', 'none',
                       '--min', str(SERVERS), '--max', str(SERVERS),
                       'stack-many'),
            env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        started = _create_separately(
            stack, image_id, flavor['id'],
            ['stack-one-%02d' % i for i in range(SERVERS)])
        out, err = multi.communicate(timeout=600)
        assert multi.returncode == 0, out + err
        servers, settled_at = _settle(conn, ('stack-many', 'stack-one'),
                                      2 * SERVERS)
        errors = {s.name: (s.fault or {}).get('message')
                  for s in servers.values() if s.status != 'ACTIVE'}
        assert not errors, 'servers not ACTIVE: %s' % errors

        # Each VM as its flavor says, in its node's cluster, powered on.
        per_node = {}
        for s in servers.values():
            node = s.hypervisor_hostname
            per_node[node] = per_node.get(node, 0) + 1
            vm = vcenter.vm_of(si, s.id)
            assert vm is not None, 'no VM for %s' % s.name
            assert vm.runtime.powerState == 'poweredOn', s.name
            assert vm.config.hardware.numCPU == flavor['vcpus'], s.name
            assert vm.config.hardware.memoryMB == flavor['ram'], s.name
            assert vm.resourcePool.owner == nodes[node], s.name
        assert sorted(per_node) == sorted(nodes), (
            'not spread over every cluster: %s' % per_node)

        # One download per datastore that caches the image, and every
        # VM on one of those.
        caching = vcenter.datastores_caching(si, image_id)
        used = {vcenter.datastore_of(vcenter.vm_of(si, s.id))
                for s in servers.values()}
        assert used <= set(caching), (used, caching)
        downloads = stack.image_downloads(image_id)
        assert downloads == len(caching), (
            '%d downloads of the image for %d datastores caching it (%s)'
            % (downloads, len(caching), caching))

        waits = sorted(settled_at[s.id] - (
            started.get(s.name, t0)) for s in servers.values())
        print('\n60 servers ACTIVE (%s) in %.0f s; time to ACTIVE p50 '
              '%.1f s, p95 %.1f s; %d downloads for datastores %s'
              % (', '.join('%s: %d' % (n.split('.')[0], c)
                           for n, c in sorted(per_node.items())),
                 max(settled_at.values()) - t0,
                 statistics.median(waits),
                 waits[int(0.95 * (len(waits) - 1))], downloads, caching))
    finally:
        _delete_all(stack, conn, si, ('stack-many', 'stack-one'))
        stack.openstack('image', 'delete', image_id, check=False)
    for host in ('compute1', 'compute2'):
        code, found = stack.audit(host)
        assert code == 0, 'vcdriver audit of %s found: %s' % (host, found)


def _delete_all(stack, conn, si, prefixes):
    ids = [s.id for s in conn.compute.servers()
           if s.name.startswith(prefixes)]
    if not ids:
        return
    stack.openstack('server', 'delete', '--wait', *ids, check=False)
    left = [i for i in ids if vcenter.vm_of(si, i) is not None]
    assert not left, 'VMs left after delete: %s' % left


HOLD_MS = 30000    # the first fill's ImportVApp held: the other must wait


def test_two_compute_services_one_download_on_a_shared_datastore(
        stack, flavor, tmp_path):
    """compute1 and compute2 boot the same uncached image onto the NFS
    datastore both see, the second while the first fills the cache: one
    downloads it, the other waits on the cache lock that lives on the
    datastore (and says so in its log) and uses the entry. The
    per-cluster datastores are made nearly full (the launcher's datastore
    control) so both pick the shared one, and the first fill's ImportVApp
    is held 30 s; the second server is created once it is held."""
    si = vcenter.connect(stack)
    ctl = vcenter.control(stack)
    nodes = stack.nodes()
    node1 = next(n for n, h in nodes.items() if h == 'compute1')
    node2 = next(n for n, h in nodes.items() if h == 'compute2')
    before = {d['name']: d for d in ctl.list_datastores()}
    shared = 'nfs0'
    for name in set(before) - {shared}:
        ctl.set_datastore_space(name, free_gb=0.5)
    image_id = stack.create_image(
        images.qcow2(tmp_path / 'shared.qcow2', pattern=0x77), 'qcow2',
        'stack-shared')
    hold = ctl.inject(kind='latency', method='ImportVApp', ms=HOLD_MS,
                      times=1)
    made = []
    try:
        made.append(stack.boot(image_id, flavor, 'stack-shared-1', node1,
                               'compute1', wait=False)['id'])
        vcenter.wait_rule(ctl, hold, 'hits')
        made.append(stack.boot(image_id, flavor, 'stack-shared-2', node2,
                               'compute2', wait=False)['id'])
        servers = stack.wait_servers('stack-shared-', 2)
        errors = {s.name: s.fault for s in servers.values()
                  if s.status != 'ACTIVE'}
        assert not errors, errors
        by_name = {s.name: s for s in servers.values()}
        assert by_name['stack-shared-2'].compute_host == 'compute2'
        on = {s.name: vcenter.datastore_of(vcenter.vm_of(si, s.id))
              for s in servers.values()}
        assert set(on.values()) == {shared}, on
        hits = next(f['hits'] for f in ctl.faults() if f['id'] == hold)
        assert hits == 1, 'one import, held'
        assert vcenter.datastores_caching(si, image_id) == [shared]
        downloads = stack.image_downloads(image_id)
        assert downloads == 1, '%d downloads by two services' % downloads
        # The second was created while the first's fill was held, and
        # its service waited on the lock the first holds on nfs0.
        assert (clock.api_time(by_name['stack-shared-2'].created_at) <
                clock.api_time(by_name['stack-shared-1'].launched_at))
        with open(stack.stack.log('compute2'), errors='replace') as f:
            waited = [line for line in f if 'Waiting for' in line and
                      'to cache image %s on %s' % (image_id, shared) in line]
        assert waited, 'compute2 never waited on the cache lock'
    finally:
        ctl.clear_faults()
        stack.delete_servers(made)
        stack.openstack('image', 'delete', image_id, check=False)
        for name in set(before) - {shared}:
            ctl.set_datastore_space(name, free_gb=min(
                before[name]['free_gb'], before[name]['capacity_gb']))
    for host in ('compute1', 'compute2'):
        code, found = stack.audit(host)
        assert code == 0, 'vcdriver audit of %s found: %s' % (host, found)
