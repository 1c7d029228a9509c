"""Neutron VIFs to vSphere NIC backings and specs (pure: no simulator)."""

import pytest
from nova import exception as nova_exception
from pyVmomi import vim

from vcdriver import extra_specs
from vcdriver import network
from vcdriver import vm_spec

DVS = vim.dvs.VmwareDistributedVirtualSwitch('dvs-1')
PG = vim.dvs.DistributedVirtualPortgroup('dvportgroup-1')
NSX_PG = vim.dvs.DistributedVirtualPortgroup('dvportgroup-2')
OPAQUE = vim.OpaqueNetwork('network-o1')
STANDARD = vim.Network('network-7')
CARD = vim.vm.device.VirtualEthernetCard


class Summary:
    opaqueNetworkId = 'ls-opaque'
    opaqueNetworkType = 'nsx.LogicalSwitch'


NETS = network.networks_from({
    DVS: {'uuid': '50 1a dv s0'},
    PG: {'name': 'DC0_DVPG0', 'key': 'dvportgroup-1',
         'config.distributedVirtualSwitch': DVS},
    NSX_PG: {'name': 'NSX-PG', 'key': 'dvportgroup-2',
             'config.distributedVirtualSwitch': DVS,
             'config.logicalSwitchUuid': 'ls-1'},
    OPAQUE: {'name': 'NSX-O', 'summary': Summary()},
    STANDARD: {'name': 'VM Network'},
})


def vif(vif_type='ovs', bridge='VM Network', port='port-1',
        mac='fa:16:3e:00:00:01', **details):
    return {'id': port, 'address': mac, 'type': vif_type,
            'network': {'bridge': bridge}, 'details': details}


def test_standard_port_group_by_bridge():
    backing = network.backing_for(NETS, vif())
    assert isinstance(backing, CARD.NetworkBackingInfo)
    assert backing.deviceName == 'VM Network'


@pytest.mark.parametrize('details', [
    {'pg_id': 'dvportgroup-1'},
    {'dvs_port_group_name': 'DC0_DVPG0'},
    {'dvs_port_group_name': 'DC0_DVPG0', 'dvs_port_key': '17'},
])
def test_distributed_port_group_from_dvs_details(details):
    backing = network.backing_for(NETS, vif('dvs', 'net-uuid', **details))
    assert isinstance(backing, CARD.DistributedVirtualPortBackingInfo)
    assert backing.port.switchUuid == '50 1a dv s0'
    assert backing.port.portgroupKey == 'dvportgroup-1'
    assert backing.port.portKey == details.get('dvs_port_key')


def test_dvs_port_group_named_after_the_network():
    backing = network.backing_for(NETS, vif('dvs', 'DC0_DVPG0'))
    assert backing.port.portgroupKey == 'dvportgroup-1'


def test_nsx_logical_switch_prefers_its_port_group():
    backing = network.backing_for(
        NETS, vif('ovs', 'br-int', **{'nsx-logical-switch-id': 'ls-1'}))
    assert backing.port.portgroupKey == 'dvportgroup-2'


def test_nsx_opaque_network():
    backing = network.backing_for(
        NETS, vif('ovs', 'br-int', **{'nsx-logical-switch-id': 'ls-opaque'}))
    assert isinstance(backing, CARD.OpaqueNetworkBackingInfo)
    assert backing.opaqueNetworkId == 'ls-opaque'
    assert backing.opaqueNetworkType == 'nsx.LogicalSwitch'


@pytest.mark.parametrize('bad', [
    vif(bridge='nowhere'), vif('dvs', 'nowhere'),
    vif(**{'nsx-logical-switch-id': 'nowhere'})])
def test_unknown_network_names_it(bad):
    with pytest.raises(nova_exception.NetworkNotFoundForBridge,
                       match='nowhere'):
        network.backing_for(NETS, bad)


@pytest.mark.parametrize('model', sorted(vm_spec.VIF_MODELS))
def test_nics_have_neutrons_mac_and_port(model):
    changes, options = network.nic_changes(
        NETS, [vif(), vif('dvs', 'DC0_DVPG0', port='port-2',
                          mac='fa:16:3e:00:00:02')], model, taken=[0, 3])
    nics = [c.device for c in changes]
    assert all(isinstance(n, vm_spec.VIF_MODELS[model]) for n in nics)
    assert [n.macAddress for n in nics] == ['fa:16:3e:00:00:01',
                                            'fa:16:3e:00:00:02']
    assert {n.addressType for n in nics} == {'manual'}
    assert [n.externalId for n in nics] == ['port-1', 'port-2']
    assert len({n.key for n in nics}) == 2
    assert options == {'nvp.iface-id.4': 'port-1',
                       'nvp.iface-id.5': 'port-2'}


def test_nics_take_the_flavors_bandwidth():
    bandwidth = extra_specs.parse({'quota:vif_limit': '100',
                                   'quota:vif_shares_level': 'high'},
                                  {}, 512).vif
    changes, _options = network.nic_changes(NETS, [vif()], 'vmxnet3',
                                            bandwidth=bandwidth)
    allocation = changes[0].device.resourceAllocation
    assert (allocation.limit, allocation.reservation,
            allocation.share.level) == (100, 0, 'high')
    # Without: vSphere's defaults (the NIC says nothing).
    changes, _options = network.nic_changes(NETS, [vif()], 'vmxnet3')
    assert changes[0].device.resourceAllocation is None


def test_iface_indexes_skip_cleared_and_foreign_keys():
    opts = [vim.option.OptionValue(key=k, value=v) for k, v in [
        ('nvp.iface-id.0', 'a'), ('nvp.iface-id.2', 'b'),
        ('nvp.iface-id.3', ''), ('nvp.vm-uuid', 'x'),
        ('nvp.iface-id.x', 'c')]]
    assert network._iface_indexes(opts) == {'a': 0, 'b': 2}


def test_find_nic_by_port_then_mac():
    first = vim.vm.device.VirtualVmxnet3(key=4000, externalId='port-1',
                                         macAddress='fa:16:3e:00:00:09')
    second = vim.vm.device.VirtualE1000(key=4001,
                                        macAddress='FA:16:3E:00:00:02')
    disk = vim.vm.device.VirtualDisk(key=2000)
    devices = [disk, first, second]
    assert network.find_nic(devices, vif()) is first
    assert network.find_nic(
        devices, vif(port='port-2', mac='fa:16:3e:00:00:02')) is second
    assert network.find_nic(devices, vif(port='p3', mac='00:00')) is None


def nova_vif(mac, *subnets):
    from nova.network import model
    return model.VIF(id='port-' + mac[-2:], address=mac,
                     network=model.Network(subnets=list(subnets)))


def subnet(cidr, ips=(), gateway=None, dns=(), version=4):
    from nova.network import model
    return model.Subnet(
        cidr=cidr, version=version,
        ips=[model.FixedIP(address=a) for a in ips],
        gateway=model.IP(address=gateway) if gateway else None,
        dns=[model.IP(address=a) for a in dns])


def test_machine_id_has_each_ports_ipv4_settings_in_in_trees_format():
    info = [
        nova_vif('fa:16:3e:00:00:01',
                 subnet('2001:db8::/64', ['2001:db8::5'], version=6),
                 subnet('192.168.1.0/24', ['192.168.1.30', '192.168.1.31'],
                        '192.168.1.1', ['10.0.0.53', '10.0.0.54'])),
        # No IPv4 (or no subnet at all): its MAC alone.
        nova_vif('fa:16:3e:00:00:02',
                 subnet('2001:db8:1::/64', ['2001:db8:1::5'], version=6)),
        # A subnet without gateway or DNS: those fields empty.
        nova_vif('fa:16:3e:00:00:03', subnet('10.1.0.0/16', ['10.1.2.3']))]
    assert network.machine_id(info) == (
        'fa:16:3e:00:00:01;192.168.1.30;255.255.255.0;192.168.1.1;'
        '192.168.1.255;10.0.0.53#'
        'fa:16:3e:00:00:02;;;;;#'
        'fa:16:3e:00:00:03;10.1.2.3;255.255.0.0;;10.1.255.255;#')
    assert network.machine_id([]) == ''


def test_inject_network_info_sets_machine_id_in_one_reconfigure():
    from tests.unit import fake_vim
    stub = fake_vim.FakeStub(
        ReconfigVM_Task=lambda mo, spec: vim.Task('task-1', stub))
    session = fake_vim.session(stub)
    session.wait_for_task = lambda task: None
    vm = vim.VirtualMachine('vm-1', stub)
    info = [nova_vif('fa:16:3e:00:00:03', subnet('10.1.0.0/16',
                                                 ['10.1.2.3']))]
    network.inject_network_info(session, vm, info)
    [(name, moid, [spec])] = stub.calls
    assert (name, moid) == ('ReconfigVM_Task', 'vm-1')
    assert [(o.key, o.value) for o in spec.extraConfig] == [
        ('machine.id', network.machine_id(info))]
    assert not spec.deviceChange
    # No port left: the key is emptied, which removes it.
    network.inject_network_info(session, vm, [])
    assert [(o.key, o.value) for o in stub.calls[-1][2][0].extraConfig] == [
        ('machine.id', '')]
