"""Consoles through Nova's API on vcsim: VNC ports on the VM's ESX host,
WebMKS tickets, the serial port on a concentrator and its log.

Simulated: vcsim has no AcquireTicket; our launcher answers it
(tools/vcsim/console_tickets.go) with a random ticket naming the VM's
host at port 443, where nothing listens. Nothing serves VNC or a serial
port concentrator either: the test checks what Nova hands its console
proxies (the console auth token's host, port and access path) and what
vCenter holds (the VM's extraConfig and devices).
"""

import os
import urllib.parse

import fixtures
from nova import context as nova_context
from nova import objects
from oslo_serialization import jsonutils
from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness


class ConsolesTestCase(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.image = self.upload_flat_vmdk('console', size=1024 * 1024)

    def remote_console(self, server, protocol, kind, status=200):
        """POST remote-consoles; the console auth token Nova stored (what
        its proxy connects to), or the response for a non-200 status."""
        r = self.api.api_post(
            '/servers/%s/remote-consoles' % server['id'],
            {'remote_console': {'protocol': protocol, 'type': kind}},
            check_response_status=[status])
        if status != 200:
            return r
        url = urllib.parse.urlparse(r.body['remote_console']['url'])
        query = urllib.parse.parse_qs(url.query)
        token = query.get('token') or urllib.parse.parse_qs(
            query['path'][0].partition('?')[2])['token']
        return objects.ConsoleAuthToken.validate(
            nova_context.get_admin_context(), token[0])

    def host_name(self, server):
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        return vm.runtime.host.name


class TestVNC(ConsolesTestCase):

    def test_two_servers_on_one_host_never_share_a_port(self):
        self.flags(vnc_port=5900, vnc_port_total=206, group='vmware')
        first = self.boot(self.image['id'])
        second = self.boot(self.image['id'])
        # vcsim puts VMs on random hosts: bring the second to the first's.
        si = vcsim_harness.connect(self.vcsim)
        vm1 = vcsim_view.vm_of(self.vcsim, first['id'])
        vm2 = vcsim_view.vm_of(self.vcsim, second['id'])
        if vm2.runtime.host != vm1.runtime.host:
            vcsim_harness.wait_task(vm2.RelocateVM_Task(
                vim.vm.RelocateSpec(host=vim.HostSystem(
                    vm1.runtime.host._moId, si._stub))))
        self.assertEqual(self.host_name(first), self.host_name(second))

        token1 = self.remote_console(first, 'vnc', 'novnc')
        token2 = self.remote_console(second, 'vnc', 'novnc')
        self.assertEqual(self.host_name(first), token1.host)
        self.assertEqual((5900, 5901), (token1.port, token2.port))
        for server, port in ((first, '5900'), (second, '5901')):
            self.assertEqual(port, vcsim_view.extra_config(
                self.vcsim, server['id'], 'RemoteDisplay.vnc.port'))
            self.assertEqual('true', vcsim_view.extra_config(
                self.vcsim, server['id'], 'RemoteDisplay.vnc.enabled'))
        # Asked again, each keeps its port.
        self.assertEqual(5901,
                         self.remote_console(second, 'vnc', 'novnc').port)

        # A third on another host may reuse 5900; brought onto the busy
        # host (as DRS may move it), it gets a free port at its next
        # console.
        third = self.boot(self.image['id'])
        vm3 = vcsim_view.vm_of(self.vcsim, third['id'])
        vcsim_harness.wait_task(vm3.ReconfigVM_Task(vim.vm.ConfigSpec(
            extraConfig=[vim.option.OptionValue(
                key='RemoteDisplay.vnc.port', value='5900')])))
        if vm3.runtime.host != vm1.runtime.host:
            vcsim_harness.wait_task(vm3.RelocateVM_Task(
                vim.vm.RelocateSpec(host=vim.HostSystem(
                    vm1.runtime.host._moId, si._stub))))
        self.assertEqual(5902,
                         self.remote_console(third, 'vnc', 'novnc').port)
        for server in (first, second, third):
            self._delete_server(server)

    def test_port_range_is_configurable(self):
        self.flags(vnc_port=6000, vnc_port_total=1, group='vmware')
        server = self.boot(self.image['id'])
        self.assertEqual(6000,
                         self.remote_console(server, 'vnc', 'novnc').port)
        self._delete_server(server)


class TestMKS(ConsolesTestCase):

    def test_webmks_ticket(self):
        # Simulated: our launcher's AcquireTicket (see the module's doc).
        self.flags(enabled=True, group='mks')
        server = self.boot(self.image['id'])
        token = self.remote_console(server, 'mks', 'webmks')
        self.assertEqual(self.host_name(server), token.host)
        self.assertEqual(443, token.port)
        access = jsonutils.loads(token.internal_access_path)
        self.assertEqual(32, len(access['ticket']))
        self.assertTrue(access['cfgFile'].startswith(
            '[nfs0] %s/' % server['id']), access['cfgFile'])
        self.assertTrue(access['cfgFile'].endswith('.vmx'))
        self.assertEqual(40, len(access['thumbprint']))
        self._delete_server(server)


class TestSerial(ConsolesTestCase):

    def test_serial_port_on_the_concentrator_and_its_log(self):
        log_dir = self.useFixture(fixtures.TempDir()).path
        self.flags(enabled=True, group='serial_console')
        self.flags(serial_port_service_uri='vSPC.py',
                   serial_port_proxy_uri='telnet://vspc.example.org:13370',
                   serial_log_dir=log_dir, group='vmware')
        server = self.boot(self.image['id'])
        [port] = vcsim_view.devices(self.vcsim, server['id'],
                                    vim.vm.device.VirtualSerialPort)
        self.assertEqual(('vSPC.py', 'telnet://vspc.example.org:13370',
                          'server'),
                         (port.backing.serviceURI, port.backing.proxyURI,
                          port.backing.direction))
        token = self.remote_console(server, 'serial', 'serial')
        self.assertEqual(('vspc.example.org', 13370),
                         (token.host, token.port))

        # The concentrator logs each VM in a file named by its uuid.
        with open(os.path.join(log_dir, server['id'].replace('-', '')),
                  'wb') as f:
            f.write(b'booting\nlogin: ')
        output = self.api.post_server_action(
            server['id'], {'os-getConsoleOutput': {'length': 1}})
        self.assertEqual('login: ', output['output'])
        self._delete_server(server)

    def test_without_a_concentrator(self):
        server = self.boot(self.image['id'])
        self.assertEqual([], vcsim_view.devices(
            self.vcsim, server['id'], vim.vm.device.VirtualSerialPort))
        self.flags(enabled=True, group='serial_console')
        self.remote_console(server, 'serial', 'serial', status=400)
        r = self.api.api_post(
            '/servers/%s/action' % server['id'],
            {'os-getConsoleOutput': {}}, check_response_status=[501])
        self.assertEqual(501, r.status)
        self._delete_server(server)
