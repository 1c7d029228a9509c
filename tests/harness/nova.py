"""Real Nova in-process (API, conductor, scheduler, compute, placement)
with vcdriver as its compute driver, a vcsim vCenter and a real Glance.

Import ``nova.tests.functional`` before any other nova module: it applies
(or, with OS_NOVA_DISABLE_EVENTLET_PATCHING=true, refuses) eventlet's
monkey patching, and must run first.
"""

import nova.tests.functional  # noqa: F401  (must be first: patching mode)

# isort: split

import os
import sys
import time

import fixtures

# pyVmomi calls os.uname() when first imported, which nova's test fixtures
# forbid inside a test: import it (and so the driver) up front.
import pyVmomi  # noqa: F401
from nova import context as nova_context
from nova import test
from nova import thread_pool_factory
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional import fixtures as func_fixtures
from nova.tests.functional import integrated_helpers

DRIVER = 'vcdriver.VMwareVCDriver'

# The compute manager's cleanup_host ends in shutdown_all_executors, which
# marks the process's one thread-pool factory shut down for good. Nova's
# ServiceFixture patches it out only while the fixture lives, but
# service.stop runs the manager's graceful shutdown on a thread of its own
# and waits 0 s for it: under load the call lands after the patch is gone,
# and the test fails in Nova's executor check, every later one with
# "thread pool shutdown already started" (seen in test_rescue at load
# 13-15). A test process never shuts down for real: a no-op for the run.
thread_pool_factory.shutdown_all_executors = lambda: None


def _context_with_token(env, **kwargs):
    """Nova's stub Keystone context, plus the token glanceclient needs."""
    user_id = env['HTTP_X_AUTH_USER']
    return nova_context.RequestContext(
        user_id, env['HTTP_X_AUTH_PROJECT_ID'],
        is_admin=user_id == 'admin', roles=env['HTTP_X_ROLES'].split(','),
        auth_token='vcdriver-test-token', **kwargs)


class VcdriverTestCase(test.TestCase,
                       integrated_helpers.PlacementInstanceHelperMixin):
    """Nova services with vcdriver. Set ``vcsim``, ``glance`` before setUp.

    ``clusters`` names the clusters the compute serves: the first becomes
    ``[vmware] cluster_name``, the rest ``[vcdriver] cluster_names``.
    """

    REQUIRES_LOCKING = True
    NUMBER_OF_CELLS = 1
    clusters = ('DC0_C0',)
    compute_host = 'compute-vc'
    start_compute = True
    #: Nova's casts run synchronously; False for concurrent builds.
    cast_as_call = True
    vcsim = None
    glance = None

    def _clear_attrs(self):
        # As nova's, but leaves the test method: pytest removes it itself.
        for key in [k for k in self.__dict__
                    if k[0] != '_' and not k.startswith('test')]:
            del self.__dict__[key]

    def configure(self):
        self.flags(compute_driver=DRIVER)
        self.flags(host_ip=self.vcsim.host, host_port=self.vcsim.port,
                   host_username=self.vcsim.username,
                   host_password=self.vcsim.password,
                   cluster_name=self.clusters[0], api_retry_count=3,
                   group='vmware')
        self.flags(vcenter_protocol='http',
                   cluster_names=list(self.clusters[1:]),
                   image_transfer_progress_interval=1, group='vcdriver')
        self.flags(api_servers=[self.glance.url], group='glance')
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')

    def setUp(self):
        assert self.vcsim and self.glance, 'vcsim and glance must be set'
        super().setUp()
        import vcdriver.conf  # noqa: F401  (registers [vcdriver])
        self.configure()
        if self.cast_as_call:
            self.useFixture(nova_fixtures.CastAsCallFixture(self))
        self.placement = self.useFixture(func_fixtures.PlacementFixture()).api
        self.neutron = self.useFixture(nova_fixtures.NeutronFixture(self))
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        self.useFixture(nova_fixtures.RealPolicyFixture())
        self.notifier = self.useFixture(
            nova_fixtures.NotificationFixture(self))
        self.conductor = self.start_service('conductor')
        self.scheduler = self.start_service('scheduler')
        self.api_fixture = self.useFixture(
            nova_fixtures.OSAPIFixture(api_version='v2.1'))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.api.auth.NovaKeystoneContext._create_context',
            _context_with_token))
        self.api = self.admin_api = self.api_fixture.admin_api
        self.api.microversion = 'latest'
        if self.start_compute:
            self.compute = self.start_service('compute',
                                              host=self.compute_host)
            self.computes[self.compute_host] = self.compute  # periodics

    @property
    def driver(self):
        return self.compute.manager.driver

    def start_computes(self, cluster_by_host):
        """One compute service per host, each serving its one cluster,
        in this process; returns them in the order given.

        The driver keeps the host's own node uuid (a file Nova writes per
        host) for ``[vmware] cluster_name``; services sharing a process
        would share that file, so here every node uuid is derived from the
        cluster, as the driver does for its other clusters.
        """
        import uuid

        from vcdriver import driver as vc_driver
        self.useFixture(fixtures.MockPatch(
            'vcdriver.driver.VMwareVCDriver._node_uuid',
            lambda _self, cluster: str(uuid.uuid5(
                vc_driver.NODE_UUID_NAMESPACE, cluster.nodename))))
        started = []
        for host, cluster in cluster_by_host.items():
            self.flags(cluster_name=cluster, group='vmware')
            self.computes[host] = self.start_service('compute', host=host)
            started.append(self.computes[host])
        return started

    def upload_flat_vmdk(self, name, size=4 * 1024 * 1024, **props):
        """A flat VMDK extent (whole sectors, recognisable bytes)."""
        data = (b'vcdriver-test-disk-' * (size // 19 + 1))[:size]
        return self.glance.upload(data, name, disk_format='vmdk',
                                  container_format='bare', **props)

    def create_server(self, image_id, flavor_id='1', node=None,
                      networks='none', **kwargs):
        """POST a server; ``node`` targets a hypervisor (needs 2.74);
        ``networks`` as Nova's API takes it (``[{'port': id}]``)."""
        server = self._build_server(image_uuid=image_id, flavor_id=flavor_id,
                                    networks=networks, **kwargs)
        if node:
            server['hypervisor_hostname'] = node
        return self.api.post_server({'server': server})

    def boot(self, image_id, flavor_id='1', expected='ACTIVE', node=None,
             **kwargs):
        server = self.create_server(image_id, flavor_id, node, **kwargs)
        return self._wait_for_state_change(server, expected,
                                           max_retries=120)

    def datastore_files(self, datastore='nfs0'):
        """Every file on a datastore, relative to it."""
        root = self.vcsim.datastores[datastore]
        return {os.path.relpath(os.path.join(d, f), root)
                for d, _dirs, names in os.walk(root) for f in names}

    def snapshot_server(self, server, name):
        """createImage, then wait for the server's task to end; return the
        image id (the image is active, or deleted by Nova on failure)."""
        body = self.api.post_server_action(server['id'],
                                           {'createImage': {'name': name}})
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None}, max_retries=240)
        return body['image_id']

    def glance_image(self, image_id):
        """Glance's record of an image, or None once it is deleted."""
        from glanceclient import exc as glance_exc
        try:
            return dict(self.glance.client().images.get(image_id))
        except glance_exc.HTTPNotFound:
            return None

    def instance_vm(self, server):
        """The server's VM, read with a pyVmomi session of the test's."""
        from tests.harness import vcsim as vcsim_harness
        si = vcsim_harness.connect(self.vcsim)
        return si.content.searchIndex.FindByUuid(
            None, server['id'], vmSearch=True, instanceUuid=True)

    def _simulator_leases(self):
        import json
        import urllib.request
        url = self.vcsim.http_url('/vcdriver/nfc')
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())['leases']

    def nfc_leases(self, vm=None):
        """The simulator's export leases, oldest first, optionally of one
        VM: [{lease, entity, state, error, bytes}] (tools/vcsim)."""
        return [x for x in self._simulator_leases()
                if x.get('kind', 'export') == 'export' and
                (vm is None or x['entity'] == vm._moId)]

    def import_leases(self):
        """The simulator's ImportVApp leases, oldest first, with what they
        were sent: [{lease, entity, state, bytes_received, ...}]."""
        return [x for x in self._simulator_leases()
                if x.get('kind') == 'import']

    def import_shells(self):
        """Names of the VMs an image import made that are still
        registered."""
        from pyVmomi import vim

        from tests.harness import vcsim as vcsim_harness
        from vcdriver.images import disk_import
        content = vcsim_harness.connect(self.vcsim).content
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True)
        try:
            return sorted(vm.name for vm in view.view
                          if vm.name.startswith(disk_import.SHELL_PREFIX))
        finally:
            view.Destroy()

    def _wait_for_refusals(self, server, count):
        """Until ``count`` of the server's resizes have ended refused by
        the source compute. Nova sets the server ACTIVE first and puts
        the allocations back after: a resize asked before then can find
        them still with the migration."""
        for _attempt in range(240):
            refused = 0
            for action in self.api.get_instance_actions(server['id']):
                if action['action'] != 'resize':
                    continue
                events = self.api.get_instance_action_details(
                    server['id'], action['request_id'])['events']
                refused += any(
                    e['event'] == 'compute_resize_instance' and
                    (e['result'] or '').lower() == 'error' for e in events)
            if refused >= count:
                return
            time.sleep(0.5)
        self.fail('%d refused resize(s) of %s never ended'
                  % (count, server['id']))

    def neutron_port(self, vif_type='ovs', **vif_details):
        """A port of the Neutron fixture bound as Neutron's VMware
        back-ends bind: ``binding:vif_type`` and ``binding:vif_details``
        as given. Returns the port (id, mac_address)."""
        port = self.neutron.create_port({'port': {}})['port']
        stored = self.neutron._ports[port['id']]
        stored.update({'binding:vif_type': vif_type,
                       'binding:vif_details': dict(vif_details)})
        return dict(stored)


class GlanceBehindProxy:
    """Mixed into a VcdriverTestCase: Nova's Glance endpoint is a
    FaultyProxy (``self.proxy``) in front of the real Glance, which
    counts and can break what crosses it."""

    def setUp(self):
        from nova.image import glance as nova_glance

        from tests.harness import faulty_proxy
        # Before the test case's setUp: configure() points Nova at it.
        self.proxy = faulty_proxy.FaultyProxy(self.glance.url).start()
        self.addCleanup(self.proxy.stop)
        super().setUp()
        # The driver's image API keeps the endpoints it first used.
        self.useFixture(fixtures.MonkeyPatch(
            'vcdriver.images.glance._API', nova_glance.API()))

    def configure(self):
        super().configure()
        self.flags(api_servers=[self.proxy.url], group='glance')


class OwnVcsimTestCase(VcdriverTestCase):
    """A class of tests on a vCenter of its own (``vcsim_args`` for
    tests.harness.vcsim.Vcsim), for tests whose VMs, faults or leftovers
    must not meet other tests'. ``self.si`` is a pyVmomi connection to it.

    Each test ends with the leak audit (audit_helpers.assert_nothing_left)
    while Nova still runs, after the cleanups the test and its class's
    setUp add: a test fails if it leaves a VM of Nova's (a server not
    deleted included), a file on a datastore or image cache debris. What
    a test makes on purpose it removes in such a cleanup. Last, after the
    services stopped, instance VMs are removed all the same: a failed test
    must not fail the next ones (a compute service refuses to start on
    instance VMs it does not know).
    """

    vcsim_args = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tests.harness import vcsim as vcsim_harness
        cls.sim = vcsim_harness.Vcsim(**cls.vcsim_args)
        cls.sim.start()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        super().tearDownClass()

    def setUp(self):
        from tests.functional import audit_helpers
        from tests.functional import vcsim_view
        from tests.harness import vcsim as vcsim_harness
        self.vcsim = self.sim
        self.addCleanup(vcsim_view.remove_instance_vms, self.sim)
        super().setUp()
        self.si = vcsim_harness.connect(self.sim)
        self.addCleanup(audit_helpers.assert_nothing_left, self)
