"""Neutron ports as vSphere NICs: standard port groups, distributed port
groups and NSX networks, as Neutron's VIF details describe them.

What the VIF names is looked up in one PropertyCollector read of the
datacenter's networks and switches, whatever their number. Each NIC has
Neutron's MAC and carries the port id in extraConfig
(``nvp.iface-id.<n>``, as in-tree) so detach finds it again.

``inject_network_info`` writes the ports' IPv4 settings into the VM's
extraConfig ``machine.id`` in the in-tree driver's format, which guest
scripts read through VMware Tools to configure the NICs.
"""

import dataclasses
import ipaddress

from nova import exception as nova_exception
from oslo_log import log as logging
from pyVmomi import vim

from vcdriver import vm_spec
from vcdriver.vsphere import props
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)

# Neutron's VIF types and details keys (nova.network.model; the VMware
# DVS and NSX plugins' binding details).
VIF_TYPE_DVS = 'dvs'
DVS_ID = 'dvs_id'
DVS_PORTGROUP_KEY = 'pg_id'
DVS_PORTGROUP_NAME = 'dvs_port_group_name'
DVS_PORT_KEY = 'dvs_port_key'
NSX_LOGICAL_SWITCH = 'nsx-logical-switch-id'
NSX_NETWORK_TYPE = 'nsx.LogicalSwitch'

_NIC_KEY = -300
_DVPG = vim.dvs.DistributedVirtualPortgroup
_DVS = vim.DistributedVirtualSwitch


@dataclasses.dataclass
class Networks:
    """One read of a datacenter's networks: by name, DVPGs by key and by
    NSX logical switch, opaque networks by id, switch uuids by moref."""
    standard: dict
    portgroups: dict      # name -> (switch moref, portgroup key)
    by_key: dict          # portgroup key -> (switch moref, portgroup key)
    by_logical_switch: dict
    opaque: dict          # opaque network id -> its type
    switch_uuids: dict


def read_networks(session, datacenter_ref):
    """The datacenter's networks and distributed switches, in one read."""
    found = props.view_properties(
        session, datacenter_ref, [vim.Network, _DVS],
        {vim.Network: ['name'],
         _DVPG: ['name', 'key', 'config.distributedVirtualSwitch',
                 'config.logicalSwitchUuid'],
         vim.OpaqueNetwork: ['name', 'summary'],
         _DVS: ['uuid']})
    return networks_from(found)


def networks_from(found):
    """Networks from a read's {moref: {path: value}} (pure)."""
    nets = Networks({}, {}, {}, {}, {}, {})
    for ref, p in found.items():
        if isinstance(ref, _DVS):
            nets.switch_uuids[ref] = p.get('uuid')
        elif isinstance(ref, _DVPG):
            pg = (p.get('config.distributedVirtualSwitch'), p.get('key'))
            nets.portgroups[p.get('name')] = pg
            nets.by_key[p.get('key')] = pg
            if p.get('config.logicalSwitchUuid'):
                nets.by_logical_switch[p['config.logicalSwitchUuid']] = pg
        elif isinstance(ref, vim.OpaqueNetwork):
            summary = p.get('summary')
            if summary is not None:
                nets.opaque[summary.opaqueNetworkId] = (
                    summary.opaqueNetworkType)
        else:
            nets.standard[p.get('name')] = ref
    return nets


def backing_for(nets, vif):
    """The NIC backing for a Neutron VIF.

    NSX (``nsx-logical-switch-id``): the distributed port group of that
    logical switch (NSX-T on a vSphere 7 switch), else the opaque network.
    ``dvs``: the port group by key (``pg_id``), by name
    (``dvs_port_group_name``) or by the network id the port group is named
    after. Others: the port group named by the VIF's bridge.
    """
    details = vif.get('details') or {}
    bridge = (vif.get('network') or {}).get('bridge')
    switch = details.get(NSX_LOGICAL_SWITCH)
    if switch:
        if switch in nets.by_logical_switch:
            return _dvport(nets, nets.by_logical_switch[switch], details)
        if switch in nets.opaque:
            return vm_spec.opaque_network_backing(switch,
                                                  nets.opaque[switch])
        raise nova_exception.NetworkNotFoundForBridge(bridge=switch)
    if vif.get('type') == VIF_TYPE_DVS:
        pg = (nets.by_key.get(details.get(DVS_PORTGROUP_KEY)) or
              nets.portgroups.get(details.get(DVS_PORTGROUP_NAME)) or
              nets.portgroups.get(bridge))
        if pg is None:
            raise nova_exception.NetworkNotFoundForBridge(
                bridge=details.get(DVS_PORTGROUP_NAME) or bridge)
        return _dvport(nets, pg, details)
    if bridge in nets.standard:
        return vm_spec.standard_network_backing(bridge)
    if bridge in nets.portgroups:
        return _dvport(nets, nets.portgroups[bridge], details)
    raise nova_exception.NetworkNotFoundForBridge(bridge=bridge)


def _dvport(nets, portgroup, details):
    switch_ref, key = portgroup
    switch_uuid = details.get(DVS_ID) or nets.switch_uuids.get(switch_ref)
    return vm_spec.distributed_port_backing(switch_uuid, key,
                                            details.get(DVS_PORT_KEY))


def _iface_indexes(extra_config):
    """{port id: n} of the VM's ``nvp.iface-id.<n>`` entries."""
    prefix = vm_spec.IFACE_ID_KEY.rpartition('%')[0]
    found = {}
    for option in extra_config or ():
        if option.key.startswith(prefix) and option.value:
            suffix = option.key[len(prefix):]
            if suffix.isdigit():
                found[option.value] = int(suffix)
    return found


_CARD = vim.vm.device.VirtualEthernetCard


def nic_changes(nets, vifs, vif_model, taken=(), bandwidth=None):
    """(device changes, extraConfig) adding a NIC for each VIF, numbered
    after the indexes already ``taken``; ``bandwidth`` (the flavor's
    ``quota:vif_*``, an extra_specs.Allocation) on each when given."""
    changes, options = [], {}
    index = max(taken, default=-1) + 1
    for offset, vif in enumerate(vifs):
        change = vm_spec.nic(_NIC_KEY - offset, vif_model, vif['address'],
                             backing_for(nets, vif), port_id=vif['id'])
        if bandwidth is not None:
            change.device.resourceAllocation = vm_spec.resource_allocation(
                bandwidth, _CARD.ResourceAllocation)
        changes.append(change)
        options[vm_spec.IFACE_ID_KEY % (index + offset)] = vif['id']
    return changes, options


def plug_at_spawn(session, cluster, vm, network_info, vif_model):
    """Give a new VM a NIC per Neutron port, before it powers on."""
    vifs = list(network_info or ())
    if not vifs:
        return
    nets = read_networks(session, cluster.datacenter_ref)
    changes, options = nic_changes(nets, vifs, vif_model)
    virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
        deviceChange=changes, extraConfig=vm_spec.extra_config(options)))


def _devices_and_options(session, vm):
    p = props.properties(session, [vm], vim.VirtualMachine, [
        'config.hardware.device', 'config.extraConfig']).get(vm, {})
    return (p.get('config.hardware.device') or [],
            p.get('config.extraConfig') or [])


def attach(session, cluster, vm, vif, vif_model, bandwidth=None):
    """Hot-add a NIC for a Neutron port (a VM that is off gets it too),
    with the flavor's ``bandwidth`` as its NICs made at spawn have."""
    _devices, options = _devices_and_options(session, vm)
    indexes = _iface_indexes(options)
    if vif['id'] in indexes:
        LOG.info('Port %s already has a NIC', vif['id'])
        return
    nets = read_networks(session, cluster.datacenter_ref)
    changes, extra = nic_changes(nets, [vif], vif_model,
                                 taken=indexes.values(), bandwidth=bandwidth)
    virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
        deviceChange=changes, extraConfig=vm_spec.extra_config(extra)))


def find_nic(devices, vif):
    """The NIC of a port: by its external id, else by Neutron's MAC."""
    nics = [d for d in devices
            if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    return (next((d for d in nics if d.externalId == vif['id']), None) or
            next((d for d in nics if (d.macAddress or '').lower() ==
                  (vif.get('address') or '').lower()), None))


def detach(session, vm, vif):
    """Hot-remove a port's NIC and its ``nvp.iface-id`` entry; a port
    without a NIC is detached already."""
    devices, options = _devices_and_options(session, vm)
    index = _iface_indexes(options).get(vif['id'])
    device = find_nic(devices, vif)
    if device is None:
        LOG.info('No NIC for port %s; nothing to detach', vif['id'])
        return
    spec = vim.vm.ConfigSpec(deviceChange=[vm_spec.remove(device)])
    if index is not None:
        spec.extraConfig = vm_spec.extra_config(
            {vm_spec.IFACE_ID_KEY % index: ''})
    virtual_machine.reconfigure(session, vm, spec)


def machine_id(network_info):
    """The ``machine.id`` value for Nova's network info: per port
    ``mac;ip;netmask;gateway;broadcast;dns#`` from its first IPv4 subnet
    (its first address and DNS server; empty fields where it has none),
    as the in-tree driver writes it for the guest scripts that read it.
    """
    entries = []
    for vif in network_info or ():
        subnet = next((s for s in vif['network']['subnets']
                       if s['version'] == 4), None)
        fields = [vif['address']] + [''] * 5
        if subnet is not None:
            net = ipaddress.ip_network(subnet['cidr'], strict=False)
            ips, dns = subnet['ips'], subnet['dns']
            gateway = subnet.get('gateway') or {}
            fields[1:] = [ips[0]['address'] if ips else '',
                          str(net.netmask), gateway.get('address') or '',
                          str(net.broadcast_address),
                          dns[0]['address'] if dns else '']
        entries.append(';'.join(fields) + '#')
    return ''.join(entries)


def inject_network_info(session, vm, network_info):
    """Set the VM's ``machine.id`` to its ports' settings now (emptied,
    i.e. removed, when it has no port); running or not, the guest reads
    it when its scripts next look."""
    virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
        extraConfig=vm_spec.extra_config(
            {vm_spec.MACHINE_ID_KEY: machine_id(network_info)})))
