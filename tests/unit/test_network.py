"""Neutron VIFs to vSphere NIC backings and specs (pure: no simulator)."""

import pytest
from nova import exception as nova_exception
from pyVmomi import vim

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
