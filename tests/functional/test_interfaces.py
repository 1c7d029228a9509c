"""Neutron ports as NICs, through Nova's API on vcsim: at boot and by
interface attach/detach, on a standard port group, a distributed port
group and an NSX logical switch, as the port's VIF details say.

The Neutron fixture's ports are bound as Neutron's VMware back-ends bind
them (``binding:vif_type``/``binding:vif_details``). vcsim's model has
the standard port group ``VM Network`` and the distributed switch
``DVS0`` with port group ``DC0_DVPG0``; the NSX-backed port group (an
NSX-T logical switch on a distributed switch) is added by the test.
vCenter's side is read after each step.
"""

import uuid

from pyVmomi import SoapAdapter
from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness


class TestInterfaces(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        si = vcsim_harness.connect(self.vcsim)
        view = si.content.viewManager.CreateContainerView(
            si.content.rootFolder, [vim.DistributedVirtualSwitch], True)
        self.dvs = next(d for d in view.view if d.name == 'DVS0')
        view.DestroyView()
        self.dvpg = next(p for p in self.dvs.portgroup
                         if p.name == 'DC0_DVPG0')
        self.image = self.upload_flat_vmdk('nics', size=1024 * 1024)

    def _nsx_port_group(self):
        """A port group of an NSX-T logical switch on DVS0.

        Made on a session speaking API 8.0: vcsim answers version probes
        with 6.5, and pyVmomi leaves 7.0's ``logicalSwitchUuid`` out of
        what it sends in 6.5 (reading it back works in any version)."""
        switch_id = str(uuid.uuid4())
        name = 'nsx-%s' % switch_id[:8]
        stub = SoapAdapter.SoapStubAdapter(
            host=self.vcsim.host, port=-self.vcsim.port, path='/sdk',
            version='vim.version.v8_0_0_0')
        vim.ServiceInstance('ServiceInstance', stub).content.sessionManager\
            .Login(self.vcsim.username, self.vcsim.password)
        dvs = vim.DistributedVirtualSwitch(self.dvs._moId, stub)
        vcsim_harness.wait_task(dvs.AddDVPortgroup_Task([
            vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
                name=name, type='earlyBinding', numPorts=8,
                logicalSwitchUuid=switch_id, backingType='nsx')]))
        pg = next(p for p in self.dvs.portgroup if p.name == name)
        self.addCleanup(lambda: vcsim_harness.wait_task(pg.Destroy_Task()))
        return switch_id, pg

    def _dvs(self, pg):
        return 'dvs:%s:%s' % (self.dvs.uuid, pg.key)

    def test_boot_with_three_kinds_of_port(self):
        standard = self.neutron_port('ovs', bridge_name='VM Network')
        distributed = self.neutron_port(
            'dvs', dvs_port_group_name='DC0_DVPG0')
        switch_id, nsx_pg = self._nsx_port_group()
        nsx = self.neutron_port('ovs', **{'nsx-logical-switch-id':
                                          switch_id})
        ports = [standard, distributed, nsx]
        server = self.boot(self.image['id'],
                           networks=[{'port': p['id']} for p in ports])
        nics = vcsim_view.nics(self.vcsim, server['id'])
        self.assertEqual([
            {'model': 'VirtualVmxnet3', 'mac': p['mac_address'],
             'address_type': 'manual', 'port_id': p['id'], 'network': net}
            for p, net in zip(ports, [
                'standard:VM Network', self._dvs(self.dvpg),
                self._dvs(nsx_pg)], strict=True)], nics)
        self.assertEqual(
            {'nvp.iface-id.%d' % i: p['id'] for i, p in enumerate(ports)},
            vcsim_view.extra_config_items(self.vcsim, server['id'],
                                          'nvp.iface-id.'))
        self._delete_server(server)

    def test_vif_model_from_the_image(self):
        image = self.upload_flat_vmdk('e1000e', size=1024 * 1024,
                                      hw_vif_model='e1000e')
        port = self.neutron_port('dvs', pg_id=self.dvpg.key)
        server = self.boot(image['id'], networks=[{'port': port['id']}])
        [nic] = vcsim_view.nics(self.vcsim, server['id'])
        self.assertEqual('VirtualE1000e', nic['model'])
        self.assertEqual(self._dvs(self.dvpg), nic['network'])
        # A port attached later gets the image's model too.
        later = self.neutron_port('ovs', bridge_name='VM Network')
        self.api.attach_interface(server['id'], {'interfaceAttachment': {
            'port_id': later['id']}})
        self.assertEqual(['VirtualE1000e', 'VirtualE1000e'],
                         [n['model'] for n in
                          vcsim_view.nics(self.vcsim, server['id'])])
        self._delete_server(server)

    def test_attach_and_detach_while_running(self):
        first = self.neutron_port('ovs', bridge_name='VM Network')
        server = self.boot(self.image['id'],
                           networks=[{'port': first['id']}])
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)
        second = self.neutron_port('dvs', dvs_port_group_name='DC0_DVPG0')
        self.api.attach_interface(server['id'], {'interfaceAttachment': {
            'port_id': second['id']}})
        nics = vcsim_view.nics(self.vcsim, server['id'])
        self.assertEqual([(first['id'], first['mac_address'],
                           'standard:VM Network'),
                          (second['id'], second['mac_address'],
                           self._dvs(self.dvpg))],
                         [(n['port_id'], n['mac'], n['network'])
                          for n in nics])
        self.assertEqual(
            {'nvp.iface-id.0': first['id'], 'nvp.iface-id.1': second['id']},
            vcsim_view.extra_config_items(self.vcsim, server['id'],
                                          'nvp.iface-id.'))
        attachments = self.api.get_port_interfaces(server['id'])
        self.assertEqual({first['id'], second['id']},
                         {a['port_id'] for a in attachments})

        self.api.detach_interface(server['id'], first['id'])
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})
        nics = vcsim_view.nics(self.vcsim, server['id'])
        self.assertEqual([second['id']], [n['port_id'] for n in nics])
        self.assertEqual(
            {'nvp.iface-id.1': second['id']},
            vcsim_view.extra_config_items(self.vcsim, server['id'],
                                          'nvp.iface-id.'))
        # The next port takes a new index, never the freed one's port.
        third = self.neutron_port('ovs', bridge_name='VM Network')
        self.api.attach_interface(server['id'], {'interfaceAttachment': {
            'port_id': third['id']}})
        self.assertEqual(
            {'nvp.iface-id.1': second['id'], 'nvp.iface-id.2': third['id']},
            vcsim_view.extra_config_items(self.vcsim, server['id'],
                                          'nvp.iface-id.'))
        self._delete_server(server)

    def test_attached_nic_gets_the_flavors_bandwidth(self):
        flavor = self._create_flavor(
            memory_mb=512, vcpu=1, disk=1, name='vif-quota',
            extra_spec={'quota:vif_limit': '300',
                        'quota:vif_reservation': '20',
                        'quota:vif_shares_level': 'custom',
                        'quota:vif_shares_share': '60'})
        first = self.neutron_port('ovs', bridge_name='VM Network')
        server = self.boot(self.image['id'], flavor_id=flavor,
                           networks=[{'port': first['id']}])
        second = self.neutron_port('dvs', dvs_port_group_name='DC0_DVPG0')
        self.api.attach_interface(server['id'], {'interfaceAttachment': {
            'port_id': second['id']}})
        # The NIC made at spawn and the one attached later alike.
        self.assertEqual(
            {first['id']: (300, 20, 'custom', 60),
             second['id']: (300, 20, 'custom', 60)},
            {n.externalId: (n.resourceAllocation.limit,
                            n.resourceAllocation.reservation,
                            n.resourceAllocation.share.level,
                            n.resourceAllocation.share.shares)
             for n in vcsim_view.devices(
                 self.vcsim, server['id'],
                 vim.vm.device.VirtualEthernetCard)})
        self._delete_server(server)

    def test_inject_network_info_writes_machine_id(self):
        """Nova's injectNetworkInfo (an admin action, also what a fixed
        IP's addition or removal calls) writes the ports' IPv4 settings
        into extraConfig ``machine.id``, in-tree's format, for the guest's
        scripts to read through VMware Tools."""
        first = self.neutron_port('ovs', bridge_name='VM Network')
        server = self.boot(self.image['id'],
                           networks=[{'port': first['id']}])
        self.assertIsNone(vcsim_view.extra_config(
            self.vcsim, server['id'], 'machine.id'))
        self.api.post_server_action(server['id'],
                                    {'injectNetworkInfo': None})
        # The Neutron fixture's subnet: 192.168.1.1/24, gateway .1, no DNS.
        settings = '%s;%s;255.255.255.0;192.168.1.1;192.168.1.255;#'
        expected = settings % (first['mac_address'],
                               first['fixed_ips'][0]['ip_address'])
        self.assertEqual(expected, vcsim_view.extra_config(
            self.vcsim, server['id'], 'machine.id'))
        # Another port, then injected again: both, in the server's order.
        second = self.neutron_port('dvs', dvs_port_group_name='DC0_DVPG0')
        self.neutron._ports[second['id']]['fixed_ips'] = [
            dict(first['fixed_ips'][0], ip_address='192.168.1.77')]
        self.api.attach_interface(server['id'], {'interfaceAttachment': {
            'port_id': second['id']}})
        self.api.post_server_action(server['id'],
                                    {'injectNetworkInfo': None})
        self.assertEqual(
            expected + settings % (second['mac_address'], '192.168.1.77'),
            vcsim_view.extra_config(self.vcsim, server['id'], 'machine.id'))
        self._delete_server(server)

    def test_unknown_port_group_fails_the_boot(self):
        port = self.neutron_port('ovs', bridge_name='no-such-pg')
        server = self.boot(self.image['id'], expected='ERROR',
                           networks=[{'port': port['id']}])
        # Nova rescheduled it (another service may have the port group)
        # and found no other host; the VM is gone.
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))
        self._delete_server(server)
