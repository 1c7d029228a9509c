"""Power and state through Nova's API on vcsim: suspend and resume, pause
refused, clean stop and soft reboot through VMware Tools with their timed
hard fall-backs, resuming state when the compute service starts,
diagnostics, and the host operations Nova's API still reaches.

Simulated (tools/vcsim): VMware Tools run in every powered-on VM
(``-guest-tools``); RebootGuest takes Tools down for half a second as a
rebooting guest does, and a guest can be made unresponsive, accepting
ShutdownGuest and RebootGuest but never acting on them (guest_ops.go).
vCenter's side is read after each step with the test's own session.
"""

import json
import time
import urllib.request
from unittest import mock

import pytest
from nova import context as nova_context
from nova.tests.functional.api import client as api_client

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness


@pytest.fixture(scope='module')
def vcsim():
    """A simulator of this module's own, with VMware Tools in its VMs."""
    with vcsim_harness.Vcsim(clusters=1, hosts_per_cluster=2, nfs=1,
                             guest_tools=True) as sim:
        yield sim


class TestPowerAndState(nova_harness.VcdriverTestCase):

    # Real casts: Nova's API answers before the compute acts, as deployed.
    cast_as_call = False

    def setUp(self):
        super().setUp()
        self.addCleanup(self._guest_request, 'DELETE')
        self.image = self.upload_flat_vmdk('power')

    def _guest_request(self, method, body=None):
        request = urllib.request.Request(
            self.vcsim.http_url('/vcdriver/guest'), method=method,
            data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read()) if method == 'GET' else None

    def _guest(self, server):
        """The simulated guest's record: unresponsive, calls seen."""
        return self._guest_request('GET')['guests'].get(server['id'], {})

    def _unresponsive(self, server):
        self._guest_request('POST', {'vm': server['id'],
                                     'unresponsive': True})

    def _power(self, server):
        return vcsim_view.vm_of(self.vcsim, server['id']).runtime.powerState

    def _boot_time(self, server):
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        return vm.summary.runtime.bootTime

    def test_suspend_and_resume(self):
        server = self.boot(self.image['id'])
        self._suspend_server(server)
        self.assertEqual('suspended', self._power(server))
        self._resume_server(server)
        self.assertEqual('poweredOn', self._power(server))
        self._delete_server(server)

    def test_pause_is_refused_and_the_server_keeps_running(self):
        server = self.boot(self.image['id'])
        self.api.post_server_action(server['id'], {'pause': {}})
        self._wait_for_instance_action_event(
            server, 'pause', 'compute_pause_instance', 'Error')
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        self.assertEqual('poweredOn', self._power(server))
        self._delete_server(server)

    def test_stop_shuts_the_guest_down_cleanly(self):
        self.flags(shutdown_timeout=30)
        server = self.boot(self.image['id'])
        self._stop_server(server)
        self.assertEqual('poweredOff', self._power(server))
        self.assertEqual(1, self._guest(server)['shutdownGuest'])
        self._start_server(server)
        self.assertEqual('poweredOn', self._power(server))
        self._delete_server(server)

    def test_stop_powers_off_a_guest_that_does_not_shut_down(self):
        self.flags(shutdown_timeout=3)
        self.flags(shutdown_retry_interval=1, group='compute')
        server = self.boot(self.image['id'])
        self._unresponsive(server)
        self._stop_server(server)
        self.assertEqual('poweredOff', self._power(server))
        # Asked again every retry interval, then powered off.
        self.assertGreaterEqual(self._guest(server)['shutdownGuest'], 2)
        self._delete_server(server)

    def test_soft_reboot_goes_through_the_guest(self):
        server = self.boot(self.image['id'])
        booted = self._boot_time(server)
        self._reboot_server(server)
        self.assertEqual(1, self._guest(server)['rebootGuest'])
        self.assertEqual(booted, self._boot_time(server),
                         'the VM was reset, not rebooted by its guest')
        self.assertEqual('poweredOn', self._power(server))
        self._delete_server(server)

    def test_soft_reboot_resets_a_guest_that_does_not_reboot(self):
        self.flags(soft_reboot_timeout=2, group='vcdriver')
        server = self.boot(self.image['id'])
        booted = self._boot_time(server)
        self._unresponsive(server)
        self._reboot_server(server)
        self.assertEqual(1, self._guest(server)['rebootGuest'])
        self.assertNotEqual(booted, self._boot_time(server),
                            'the VM was not reset')
        self.assertEqual('poweredOn', self._power(server))
        self._delete_server(server)

    def test_hard_reboot_resets(self):
        server = self.boot(self.image['id'])
        booted = self._boot_time(server)
        self._reboot_server(server, hard=True)
        self.assertEqual(0, self._guest(server).get('rebootGuest', 0))
        self.assertNotEqual(booted, self._boot_time(server))
        self._delete_server(server)

    def test_reboots_stuck_past_reboot_timeout_are_hard_rebooted(self):
        """Nova's periodic hands the driver the instances stuck rebooting
        longer than [DEFAULT] reboot_timeout, here three whose reboot
        request was lost on its way to the compute. Each is hard rebooted
        through Nova: a running VM is reset, one powered off behind Nova's
        back is powered on, one whose VM is gone ends in ERROR; the
        failure stops neither of the others."""
        servers = [self.boot(self.image['id']) for _ in range(3)]
        running, off, gone = servers
        booted = self._boot_time(running)
        with mock.patch('nova.compute.rpcapi.ComputeAPI.reboot_instance'):
            for server in servers:
                self.api.post_server_action(server['id'],
                                            {'reboot': {'type': 'SOFT'}})
        for server in servers:
            self._wait_for_server_parameter(
                server, {'status': 'REBOOT',
                         'OS-EXT-STS:task_state': 'rebooting'})
        vcsim_harness.wait_task(
            vcsim_view.vm_of(self.vcsim, off['id']).PowerOffVM_Task())
        vcsim_view.destroy_vm(vcsim_view.vm_of(self.vcsim, gone['id']))
        self.flags(reboot_timeout=1)
        time.sleep(2)
        self.compute.manager._poll_rebooting_instances(
            nova_context.get_admin_context())

        for server in (running, off):
            self._wait_for_server_parameter(
                server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
            self.assertEqual('poweredOn', self._power(server))
            self._wait_for_instance_action_event(
                server, 'reboot', 'compute_reboot_instance', 'Success')
        self.assertNotEqual(booted, self._boot_time(running),
                            'the VM was not reset')
        self.assertEqual(0, self._guest(running).get('rebootGuest', 0))
        # Nova records no fault for InstanceNotFound: the reason is in the
        # instance action's event and the compute's log.
        gone = self._wait_for_server_parameter(
            gone, {'status': 'ERROR', 'OS-EXT-STS:task_state': None},
            wait_for_fault_key=False)
        self._wait_for_instance_action_event(
            gone, 'reboot', 'compute_reboot_instance', 'Error')
        log = self.stdlog.logger.output
        self.assertIn('Cannot reboot instance: Instance %s could not be '
                      'found' % gone['id'], log)
        self.assertIn('3 instance(s) stuck rebooting for more than 1 s', log)
        self.assertEqual(3, log.count('Stuck in task state rebooting since'))
        for server in (running, off, gone):
            self._delete_server(server)

    def test_resume_state_on_host_boot(self):
        self.flags(resume_guests_state_on_host_boot=True)
        server = self.boot(self.image['id'])
        # Powered off behind Nova's back, as a host failure would leave it.
        vcsim_harness.wait_task(
            vcsim_view.vm_of(self.vcsim, server['id']).PowerOffVM_Task())
        self.compute = self.restart_compute_service(
            self.compute, keep_hypervisor_state=False)
        self.assertEqual('poweredOn', self._power(server))
        self.assertEqual('ACTIVE', self._show_server(server)['status'])
        self._delete_server(server)

    def test_diagnostics(self):
        server = self.boot(self.image['id'])
        self.api.microversion = '2.47'
        legacy = self.api.api_get(
            '/servers/%s/diagnostics' % server['id']).body
        self.assertEqual('poweredOn', legacy['vmware:powerState'])
        self.assertEqual(1, legacy['vmware:numCpu'])
        self.assertEqual(512, legacy['vmware:memorySizeMB'])
        self.assertEqual('[nfs0] %s/%s.vmdk' % (server['id'], server['id']),
                         legacy['vmware:disk0'])
        self.api.microversion = 'latest'
        diags = self.api.api_get(
            '/servers/%s/diagnostics' % server['id']).body
        self.assertEqual('running', diags['state'])
        self.assertEqual('vmwareapi', diags['driver'])
        self.assertEqual('esxi', diags['hypervisor_os'])
        self.assertEqual(1, diags['num_cpus'])
        self.assertEqual(1, diags['num_disks'])
        self.assertEqual(512, diags['memory_details']['maximum'])
        self.assertFalse(diags['config_drive'])
        self._delete_server(server)

    def test_host_uptime_and_refused_host_actions(self):
        [hypervisor] = self.api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        uptime = hypervisor['uptime']
        self.assertIn(' up ', uptime)
        self.assertIn('2 of 2 hosts up', uptime)
        # os-hosts is gone after 2.42; what it did reaches the driver only
        # through it.
        self.api.microversion = '2.42'
        host_url = '/os-hosts/%s' % self.compute_host
        with self.assertRaises(api_client.OpenStackApiException) as e:
            self.api.api_put(host_url, {'maintenance_mode': 'enable'})
        self.assertEqual(501, e.exception.response.status_code)
        # Disabling needs nothing of the driver: Nova marks every node of
        # the service COMPUTE_STATUS_DISABLED in placement, so no cluster
        # of it gets new servers.
        body = self.api.api_put(host_url, {'status': 'disable'}).body
        self.assertEqual('disabled', body['status'])
        self.assertIn('COMPUTE_STATUS_DISABLED', self._get_provider_traits(
            hypervisor['id']))
        self.api.api_put(host_url, {'status': 'enable'})
        self.assertNotIn('COMPUTE_STATUS_DISABLED',
                         self._get_provider_traits(hypervisor['id']))
        with self.assertRaises(api_client.OpenStackApiException) as e:
            self.api.api_get('/os-hosts/%s/reboot' % self.compute_host)
        self.assertEqual(501, e.exception.response.status_code)
