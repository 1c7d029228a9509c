"""Clean shutdown and soft reboot with their hard fall-backs, suspend,
pause refused, host operations: vCenter replaced by a stub whose
PropertyCollector hands out scripted updates, on a fake clock that
advances by maxWaitSeconds whenever no update comes."""

import datetime
import types
from unittest import mock

import pytest
from pyVmomi import vim
from pyVmomi import vmodl

from tests.unit import fake_vim
from vcdriver import host
from vcdriver import power
from vcdriver.vsphere import watch

PC = vmodl.query.PropertyCollector


class Guest:
    """A VM's stubbed vCenter: ``updates`` are what WaitForUpdatesEx
    returns after the first (current values) call, one per call."""

    def __init__(self, current, updates=()):
        self.clock = 1000.0
        self.stub = fake_vim.FakeStub(
            CreatePropertyCollector=lambda mo: PC('session[1]pc', self.stub),
            CreateFilter=lambda mo, spec, partial: None,
            DestroyPropertyCollector=lambda mo: None,
            WaitForUpdatesEx=self._wait,
            RetrievePropertiesEx=self._retrieve,
            ShutdownGuest=lambda mo: None,
            RebootGuest=lambda mo: None,
            PowerOffVM_Task=lambda mo: vim.Task('task-off', self.stub),
            ResetVM_Task=lambda mo: vim.Task('task-reset', self.stub))
        self.vm = vim.VirtualMachine('vm-1', self.stub)
        self.current = current
        self.updates = list(updates)
        self.session = fake_vim.session(self.stub)
        self.session.wait_for_task = lambda task: None
        self.first = True

    def _changes(self, values):
        return PC.UpdateSet(version='v', filterSet=[PC.FilterUpdate(
            objectSet=[PC.ObjectUpdate(obj=self.vm, kind='modify', changeSet=[
                PC.Change(name=k, op='assign', val=v)
                for k, v in values.items()])])])

    def _wait(self, mo, version, options):
        if self.first:
            self.first = False
            return self._changes(self.current)
        if self.updates:
            return self._changes(self.updates.pop(0))
        self.clock += options.maxWaitSeconds
        return None

    def _retrieve(self, mo, specs, options):
        return PC.RetrieveResult(objects=[fake_vim.object_content(
            self.vm, **{k.replace('.', '__'): v
                        for k, v in self.current.items()})])

    def run(self, fn, *args, **kwargs):
        with mock.patch.object(watch.time, 'monotonic',
                               lambda: self.clock):
            return fn(self.session, self.vm, *args, **kwargs)

    def calls(self):
        return [n for n in self.stub.names() if n not in (
            'CreatePropertyCollector', 'CreateFilter',
            'DestroyPropertyCollector', 'WaitForUpdatesEx',
            'RetrievePropertiesEx')]


ON = {'runtime.powerState': 'poweredOn',
      'guest.toolsRunningStatus': 'guestToolsRunning'}


def test_power_off_clean_when_the_guest_shuts_down():
    guest = Guest(ON, [{'runtime.powerState': 'poweredOff'}])
    assert guest.run(power.power_off, 60, 10) == 'clean'
    assert guest.calls() == ['ShutdownGuest']


def test_power_off_asks_again_then_powers_off_hard():
    guest = Guest(ON)
    assert guest.run(power.power_off, 30, 10) == 'hard'
    # At 0, 10 and 20 s; powered off hard at 30 s.
    assert guest.calls() == ['ShutdownGuest'] * 3 + ['PowerOffVM_Task']
    assert guest.clock == 1030


def test_power_off_without_timeout_or_tools_is_hard():
    guest = Guest(ON)
    assert guest.run(power.power_off, 0, 0) == 'hard'
    guest = Guest({'guest.toolsRunningStatus': 'guestToolsNotRunning'})
    assert guest.run(power.power_off, 60, 0) == 'hard'
    assert guest.calls() == ['PowerOffVM_Task']


def test_soft_reboot_done_when_tools_go_down():
    guest = Guest(ON, [{'guest.toolsRunningStatus': 'guestToolsNotRunning'}])
    assert guest.run(power.reboot, True, 120) == 'soft'
    assert guest.calls() == ['RebootGuest']


def test_soft_reboot_resets_a_guest_that_stays_up():
    guest = Guest(ON)
    assert guest.run(power.reboot, True, 120) == 'hard'
    assert guest.calls() == ['RebootGuest', 'ResetVM_Task']
    assert guest.clock == 1120


def test_soft_reboot_without_tools_and_hard_reboot_reset():
    guest = Guest({'guest.toolsRunningStatus': 'guestToolsNotRunning'})
    assert guest.run(power.reboot, True, 120) == 'hard'
    assert guest.calls() == ['ResetVM_Task']
    guest = Guest(ON)
    assert guest.run(power.reboot, False, 120) == 'hard'
    assert guest.calls() == ['ResetVM_Task']


def test_soft_reboot_refused_by_tools_resets():
    guest = Guest(ON)

    def refuse(mo):
        raise vim.fault.ToolsUnavailable()
    guest.stub.handlers['RebootGuest'] = refuse
    assert guest.run(power.reboot, True, 120) == 'hard'
    assert guest.calls() == ['RebootGuest', 'ResetVM_Task']


def test_pause_and_host_actions_are_refused():
    from vcdriver import driver
    d = driver.VMwareVCDriver.__new__(driver.VMwareVCDriver)
    for call in (lambda: d.pause(None), lambda: d.unpause(None),
                 lambda: d.host_maintenance_mode('h', True),
                 lambda: d.set_host_enabled(False),
                 lambda: d.host_power_action('reboot')):
        with pytest.raises(NotImplementedError):
            call()


def test_host_uptime_from_the_hosts_boot_times():
    now = 1_700_000_000.0
    utc = datetime.timezone.utc

    def boot(seconds_ago):
        return datetime.datetime.fromtimestamp(now - seconds_ago, utc)
    stub = fake_vim.FakeStub()
    hosts = [vim.HostSystem('host-%d' % n, stub) for n in range(3)]
    cluster = vim.ClusterComputeResource('domain-c1', stub)
    answers = [
        [fake_vim.object_content(
            cluster, host=vim.HostSystem.Array(hosts))],
        [fake_vim.object_content(
            hosts[0], runtime__bootTime=boot(3 * 86400 + 3600 * 5 + 60),
            runtime__connectionState='connected',
            runtime__powerState='poweredOn'),
         fake_vim.object_content(
            hosts[1], runtime__bootTime=boot(7200),
            runtime__connectionState='connected',
            runtime__powerState='poweredOn'),
         fake_vim.object_content(
            hosts[2], runtime__bootTime=boot(60),
            runtime__connectionState='disconnected',
            runtime__powerState='poweredOn')]]
    stub.handlers['RetrievePropertiesEx'] = (
        lambda mo, specs, options: PC.RetrieveResult(
            objects=answers.pop(0)))
    session = fake_vim.session(stub)
    session.current_time = lambda: now
    text = host.uptime(session, [types.SimpleNamespace(ref=cluster)])
    assert text == ('22:13:20 up 3 days, 5:01, 2 of 3 hosts up (the latest '
                    'booted up 0 days, 2:00)')


@pytest.mark.parametrize('state', ['poweredOff', 'suspended'])
def test_hard_reboot_powers_on_a_vm_that_is_not_running(state):
    """vSphere resets only a running VM; Nova's hard reboot of a stopped
    server (or of one stuck rebooting whose VM went off) expects it to
    run afterwards."""
    guest = Guest({'runtime.powerState': state})

    def refuse(mo):
        raise vim.fault.InvalidPowerState(existingState=state)
    guest.stub.handlers['ResetVM_Task'] = refuse
    guest.stub.handlers['PowerOnVM_Task'] = (
        lambda mo, host: vim.Task('task-on', guest.stub))
    assert guest.run(power.reboot, False, 120) == 'powered on'
    assert guest.calls() == ['ResetVM_Task', 'PowerOnVM_Task']
