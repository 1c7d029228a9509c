"""Power operations that need the guest's help: clean shutdown and soft
reboot through VMware Tools, each falling back to the hard operation when
the guest does not act in time; suspend and resume.

Waits watch the VM's properties through a PropertyCollector
(vsphere/watch.py): vCenter wakes us, nothing polls.
"""

from oslo_log import log as logging
from pyVmomi import vim

from vcdriver import vm as vm_mod
from vcdriver.vsphere import props
from vcdriver.vsphere import watch

LOG = logging.getLogger(__name__)

TOOLS_RUNNING = 'guestToolsRunning'
POWERED_OFF = 'poweredOff'


def tools_running(session, vm):
    p = props.properties(session, [vm], vim.VirtualMachine,
                         ['guest.toolsRunningStatus'])
    return p.get(vm, {}).get('guest.toolsRunningStatus') == TOOLS_RUNNING


def power_off(session, vm, timeout=0, retry_interval=0):
    """Shut the guest down cleanly (ShutdownGuest, repeated every
    ``retry_interval`` s) when Tools run and ``timeout`` allows; power off
    hard if it is not off within ``timeout`` s. Returns 'clean' or 'hard'.
    """
    if timeout and tools_running(session, vm):
        with watch.PropertyWatch(session, vm, vim.VirtualMachine,
                                 ['runtime.powerState']) as w:
            if w.values.get('runtime.powerState') == POWERED_OFF:
                return 'clean'
            if _shutdown_guest(vm) and w.wait(
                    lambda path, value: (path == 'runtime.powerState' and
                                         value == POWERED_OFF), timeout,
                    every=retry_interval or None,
                    tick=lambda: _shutdown_guest(vm)):
                return 'clean'
        LOG.info('The guest of %s did not shut down within %s s: powering '
                 'it off', vm._moId, timeout)
    vm_mod.power_off(session, vm)
    return 'hard'


def _shutdown_guest(vm):
    try:
        vm.ShutdownGuest()
        return True
    except vim.fault.InvalidPowerState:
        return True  # off already, or going
    except (vim.fault.ToolsUnavailable, vim.fault.InvalidState) as e:
        LOG.info('ShutdownGuest of %s refused (%s)', vm._moId,
                 type(e).__name__)
        return False


def reboot(session, vm, soft, timeout):
    """Soft reboot through VMware Tools (RebootGuest); a hard reset when
    Tools do not run, refuse, or the guest has not gone down to reboot
    within ``timeout`` s (Tools stop running while it reboots). Returns
    'soft' or 'hard'.
    """
    if soft:
        with watch.PropertyWatch(session, vm, vim.VirtualMachine,
                                 ['guest.toolsRunningStatus']) as w:
            running = (w.values.get('guest.toolsRunningStatus') ==
                       TOOLS_RUNNING)
            if running and _reboot_guest(vm):
                if w.wait(lambda path, value: (
                        path == 'guest.toolsRunningStatus' and
                        value != TOOLS_RUNNING), timeout):
                    return 'soft'
                LOG.warning('The guest of %s did not begin to reboot within '
                            '%s s: resetting it', vm._moId, timeout)
            elif not running:
                LOG.info('VMware Tools not running in %s: hard reset '
                         'instead of a soft reboot', vm._moId)
    session.wait_for_task(vm.ResetVM_Task())
    return 'hard'


def _reboot_guest(vm):
    try:
        vm.RebootGuest()
        return True
    except (vim.fault.ToolsUnavailable, vim.fault.InvalidState) as e:
        LOG.warning('Soft reboot of %s refused (%s), resetting', vm._moId,
                    type(e).__name__)
        return False


def suspend(session, vm):
    session.wait_for_task(vm.SuspendVM_Task())


def resume(session, vm):
    """A suspended VM resumes by powering on."""
    vm_mod.power_on(session, vm)
