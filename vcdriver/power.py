"""A VM's power: on; off and reboot, cleanly through VMware Tools where
the guest helps, falling back to the hard operation when it does not
act in time; suspend and resume.

Waits watch the VM's properties through a PropertyCollector
(vsphere/watch.py): vCenter wakes us, nothing polls.
"""

from oslo_log import log as logging
from pyVmomi import vim

from vcdriver.vsphere import props
from vcdriver.vsphere import virtual_machine
from vcdriver.vsphere import watch

LOG = logging.getLogger(__name__)

TOOLS_RUNNING = 'guestToolsRunning'
POWERED_OFF = 'poweredOff'


def tools_running(session, vm_ref):
    p = props.properties(session, [vm_ref], vim.VirtualMachine,
                         ['guest.toolsRunningStatus'])
    return p.get(vm_ref, {}).get('guest.toolsRunningStatus') == TOOLS_RUNNING


def power_on(session, vm_ref):
    try:
        virtual_machine.power_on(session, vm_ref)
    except vim.fault.InvalidPowerState:
        LOG.debug('%s is already powered on', props.moid(vm_ref))


def power_off(session, vm_ref, timeout=0, retry_interval=0):
    """Shut the guest down cleanly (ShutdownGuest, repeated every
    ``retry_interval`` s) when Tools run and ``timeout`` allows; power off
    hard if it is not off within ``timeout`` s. Returns 'clean' or 'hard'.
    """
    if timeout and tools_running(session, vm_ref):
        with watch.PropertyWatch(session, vm_ref, vim.VirtualMachine,
                                 ['runtime.powerState']) as w:
            if w.values.get('runtime.powerState') == POWERED_OFF:
                return 'clean'
            if _shutdown_guest(session, vm_ref) and w.wait(
                    lambda path, value: (path == 'runtime.powerState' and
                                         value == POWERED_OFF), timeout,
                    every=retry_interval or None,
                    tick=lambda: _shutdown_guest(session, vm_ref)):
                return 'clean'
        LOG.info('The guest of %s did not shut down within %s s: powering '
                 'it off', props.moid(vm_ref), timeout)
    try:
        virtual_machine.power_off(session, vm_ref)
    except vim.fault.InvalidPowerState:
        LOG.debug('%s is already powered off', props.moid(vm_ref))
    return 'hard'


def _shutdown_guest(session, vm_ref):
    try:
        virtual_machine.shutdown_guest(session, vm_ref)
        return True
    except vim.fault.InvalidPowerState:
        return True  # off already, or going
    except (vim.fault.ToolsUnavailable, vim.fault.InvalidState) as e:
        LOG.info('ShutdownGuest of %s refused (%s)', props.moid(vm_ref),
                 type(e).__name__)
        return False


def reboot(session, vm_ref, soft, timeout):
    """Soft reboot through VMware Tools (RebootGuest); a hard reset when
    Tools do not run, refuse, or the guest has not gone down to reboot
    within ``timeout`` s (Tools stop running while it reboots). Returns
    'soft', 'hard' or 'powered on' (``_reset``).
    """
    if soft:
        with watch.PropertyWatch(session, vm_ref, vim.VirtualMachine,
                                 ['guest.toolsRunningStatus']) as w:
            running = (w.values.get('guest.toolsRunningStatus') ==
                       TOOLS_RUNNING)
            if running and _reboot_guest(session, vm_ref):
                if w.wait(lambda path, value: (
                        path == 'guest.toolsRunningStatus' and
                        value != TOOLS_RUNNING), timeout):
                    return 'soft'
                LOG.warning('The guest of %s did not begin to reboot within '
                            '%s s: resetting it', props.moid(vm_ref),
                            timeout)
            elif not running:
                LOG.info('VMware Tools not running in %s: hard reset '
                         'instead of a soft reboot', props.moid(vm_ref))
    return _reset(session, vm_ref)


def _reset(session, vm_ref):
    """ResetVM_Task; a VM that is not running (vSphere resets only a
    running one) is powered on instead: Nova's hard reboot of a stopped
    server, or of one whose VM was stopped behind its back, ends with it
    running. Returns 'hard' or 'powered on'."""
    try:
        virtual_machine.reset(session, vm_ref)
        return 'hard'
    except vim.fault.InvalidPowerState:
        LOG.info('%s is not running: powering it on instead of a reset',
                 props.moid(vm_ref))
    power_on(session, vm_ref)
    return 'powered on'


def _reboot_guest(session, vm_ref):
    try:
        virtual_machine.reboot_guest(session, vm_ref)
        return True
    except (vim.fault.ToolsUnavailable, vim.fault.InvalidState) as e:
        LOG.warning('Soft reboot of %s refused (%s), resetting',
                    props.moid(vm_ref), type(e).__name__)
        return False


def suspend(session, vm_ref):
    virtual_machine.suspend(session, vm_ref)


def resume(session, vm_ref):
    """A suspended VM resumes by powering on."""
    power_on(session, vm_ref)
