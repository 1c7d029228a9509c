"""Consoles: VNC on the VM's ESX host, WebMKS tickets, serial ports on a
virtual serial port concentrator.

VNC ports come from ``[vmware] vnc_port`` .. ``vnc_port + vnc_port_total
- 1`` (ESX's firewall opens 5900-6105 for VNC) and live in the VM's
extraConfig (``RemoteDisplay.vnc.port``). A port is free when no other VM
on the same host has it: the host's VMs are read in one batch, and a VM
that DRS moved onto a host where its port is taken gets a new one.
"""

import os
import threading
import urllib.parse

from nova import exception as nova_exception
from nova.console import type as ctype
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import units
from pyVmomi import vim

from vcdriver import conf
from vcdriver import exception
from vcdriver import vm_spec
from vcdriver.vsphere import props
from vcdriver.vsphere import virtual_machine

LOG = logging.getLogger(__name__)
CONF = conf.CONF

VNC_ENABLED_KEY = 'RemoteDisplay.vnc.enabled'
VNC_PORT_KEY = 'RemoteDisplay.vnc.port'
_VNC_PORT_PROP = 'config.extraConfig["%s"]' % VNC_PORT_KEY
# What Nova shows of a console log, as in-tree.
MAX_CONSOLE_BYTES = 100 * units.Ki
# One allocation at a time in this service: two consoles asked for at once
# must not both see the same port free.
_VNC_LOCK = threading.Lock()


def vnc_port_range(conf_=CONF):
    first = conf_.vmware.vnc_port
    return range(first, first + conf_.vmware.vnc_port_total)


def _port(value):
    value = getattr(value, 'value', value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def choose_vnc_port(own, taken, ports):
    """The VM's port if no other VM on its host has it, else the lowest
    free one of ``ports`` (pure)."""
    if own in ports and own not in taken:
        return own
    for port in ports:
        if port not in taken:
            return port
    return None


def _host_view(session, vm):
    """(host name, the VM's VNC port, ports of the host's other VMs):
    two reads whatever the number of VMs on the host."""
    p = props.properties(session, [vm], vim.VirtualMachine,
                         ['runtime.host', _VNC_PORT_PROP]).get(vm, {})
    host = p.get('runtime.host')
    if host is None:
        raise exception.VMHasNoHost(moref=props.moid(vm))
    hosts, vms, _links = props.properties_and_children(
        session, [host], vim.HostSystem, ['name'], 'vm',
        vim.VirtualMachine, [_VNC_PORT_PROP])
    taken = {_port(q.get(_VNC_PORT_PROP)) for ref, q in vms.items()
             if ref != vm} - {None}
    return (hosts.get(host, {}).get('name'), _port(p.get(_VNC_PORT_PROP)),
            taken)


def vnc_console(session, vm):
    """The VM's VNC console on its host, a port given to it first if it
    has none (or one another VM on the host has)."""
    with _VNC_LOCK:
        host_name, own, taken = _host_view(session, vm)
        ports = vnc_port_range()
        port = choose_vnc_port(own, taken, ports)
        if port is None:
            raise exception.NoFreeVNCPort(host=host_name, first=ports.start,
                                          last=ports.stop - 1)
        if port != own:
            LOG.info('VM %s gets VNC port %d on host %s', props.moid(vm),
                     port, host_name)
            virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
                extraConfig=vm_spec.extra_config({
                    VNC_ENABLED_KEY: 'true', VNC_PORT_KEY: str(port)})))
    return ctype.ConsoleVNC(host=host_name, port=port)


def mks_console(session, vm):
    """A WebMKS ticket from the VM's host, in the form Nova's MKS proxy
    takes (ticket, cfgFile and the host's thumbprint, as in-tree)."""
    try:
        ticket = virtual_machine.acquire_ticket(session, vm, 'webmks')
    except vim.fault.InvalidState as e:
        raise nova_exception.ConsoleTypeUnavailable(console_type='webmks') \
            from e
    thumbprint = (ticket.sslThumbprint or '').replace(':', '').lower()
    access = jsonutils.dumps({'ticket': ticket.ticket,
                              'cfgFile': ticket.cfgFile,
                              'thumbprint': thumbprint})
    host = ticket.host
    if not host:
        host = _host_view(session, vm)[0]
    return ctype.ConsoleMKS(host=host, port=ticket.port,
                            internal_access_path=access)


def serial_port_change(conf_=CONF):
    """The serial port a new VM gets, or None without a concentrator."""
    service_uri = conf_.vmware.serial_port_service_uri
    if not service_uri:
        return None
    return vm_spec.serial_port_uri(-400, service_uri,
                                   conf_.vmware.serial_port_proxy_uri)


def add_serial_port_at_spawn(session, vm):
    """Connect a new VM's serial port to the concentrator, before it
    powers on."""
    change = serial_port_change()
    if change is not None:
        virtual_machine.reconfigure(session, vm, vim.vm.ConfigSpec(
            deviceChange=[change]))


def serial_console(conf_=CONF):
    """Where clients reach the concentrator for this VM's serial port."""
    if not (conf_.vmware.serial_port_service_uri and
            conf_.vmware.serial_port_proxy_uri):
        raise nova_exception.ConsoleTypeUnavailable(console_type='serial')
    proxy = urllib.parse.urlparse(conf_.vmware.serial_port_proxy_uri)
    return ctype.ConsoleSerial(host=proxy.hostname, port=proxy.port)


def console_log(instance, conf_=CONF):
    """The tail of what the concentrator logged for the VM
    (``<serial_log_dir>/<uuid without dashes>``, as in-tree)."""
    log_dir = conf_.vmware.serial_log_dir
    if not log_dir or not conf_.vmware.serial_port_service_uri:
        raise NotImplementedError(
            'Console output needs a virtual serial port concentrator: set '
            '[vmware] serial_port_service_uri and serial_log_dir')
    path = os.path.join(log_dir, instance.uuid.replace('-', ''))
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - MAX_CONSOLE_BYTES))
            return f.read()
    except FileNotFoundError:
        LOG.warning('No console log at %s: is the serial port '
                    'concentrator writing there?', path, instance=instance)
        return b''
