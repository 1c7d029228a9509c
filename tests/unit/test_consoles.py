"""Console choices that need no simulator: VNC ports, serial consoles,
the concentrator's log."""

import types

import pytest
from nova import exception as nova_exception
from nova.console import type as ctype
from pyVmomi import vim

from vcdriver import consoles


def conf(**vmware):
    base = {'vnc_port': 5900, 'vnc_port_total': 206,
            'serial_port_service_uri': None, 'serial_port_proxy_uri': None,
            'serial_log_dir': None}
    base.update(vmware)
    return types.SimpleNamespace(vmware=types.SimpleNamespace(**base))


def test_vnc_port_range_from_novas_options():
    ports = consoles.vnc_port_range(conf(vnc_port=5900, vnc_port_total=206))
    assert (ports[0], ports[-1]) == (5900, 6105)


@pytest.mark.parametrize('own, taken, expected', [
    (None, set(), 5900),
    (None, {5900, 5901}, 5902),
    (5902, {5900}, 5902),      # kept
    (5900, {5900}, 5901),      # moved onto a host where 5900 is taken
    (7000, set(), 5900),       # outside a range made smaller
    (None, {5900, 5901, 5902}, None),
])
def test_choose_vnc_port(own, taken, expected):
    assert consoles.choose_vnc_port(own, taken,
                                    range(5900, 5903)) == expected


def test_serial_port_only_with_a_concentrator():
    assert consoles.serial_port_change(conf()) is None
    change = consoles.serial_port_change(conf(
        serial_port_service_uri='vSPC.py',
        serial_port_proxy_uri='telnet://proxy.example.org:13370'))
    port = change.device
    assert isinstance(port, vim.vm.device.VirtualSerialPort)
    assert port.backing.serviceURI == 'vSPC.py'
    assert port.backing.proxyURI == 'telnet://proxy.example.org:13370'
    assert port.backing.direction == 'server'


def test_serial_console_is_the_proxy():
    with pytest.raises(nova_exception.ConsoleTypeUnavailable):
        consoles.serial_console(conf())
    console = consoles.serial_console(conf(
        serial_port_service_uri='vSPC.py',
        serial_port_proxy_uri='telnet://proxy.example.org:13370'))
    assert isinstance(console, ctype.ConsoleSerial)
    assert (console.host, console.port) == ('proxy.example.org', 13370)


def test_console_output_needs_a_concentrator_log():
    instance = types.SimpleNamespace(uuid='6b2f-aa')
    with pytest.raises(NotImplementedError, match='serial_log_dir'):
        consoles.console_log(instance, conf())


def test_console_output_is_the_logs_tail(tmp_path):
    instance = types.SimpleNamespace(uuid='6b2f-aa')
    data = b'x' * consoles.MAX_CONSOLE_BYTES + b'login: '
    (tmp_path / '6b2faa').write_bytes(data)
    c = conf(serial_port_service_uri='vSPC.py', serial_log_dir=str(tmp_path))
    out = consoles.console_log(instance, c)
    assert len(out) == consoles.MAX_CONSOLE_BYTES
    assert out.endswith(b'login: ')
    missing = types.SimpleNamespace(uuid='00-11')
    assert consoles.console_log(missing, c) == b''
