"""A VM's power: on; off and reboot, cleanly through VMware Tools where
the guest helps, falling back to the hard operation when it does not
act in time; suspend and resume.

Waits watch the VM's properties through a PropertyCollector
(vsphere/watch.py): vCenter wakes us, nothing polls.
"""

from oslo_log import log as logging
from pyVmomi import vim

from vcdriver.vsphere import props
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
        session.wait_for_task(vm_ref.PowerOnVM_Task())
    except vim.fault.InvalidPowerState:
        LOG.debug('%s is already powered on', vm_ref._moId)


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
            if _shutdown_guest(vm_ref) and w.wait(
                    lambda path, value: (path == 'runtime.powerState' and
                                         value == POWERED_OFF), timeout,
                    every=retry_interval or None,
                    tick=lambda: _shutdown_guest(vm_ref)):
                return 'clean'
        LOG.info('The guest of %s did not shut down within %s s: powering '
                 'it off', vm_ref._moId, timeout)
    try:
        session.wait_for_task(vm_ref.PowerOffVM_Task())
    except vim.fault.InvalidPowerState:
        LOG.debug('%s is already powered off', vm_ref._moId)
    return 'hard'


def _shutdown_guest(vm_ref):
    try:
        vm_ref.ShutdownGuest()
        return True
    except vim.fault.InvalidPowerState:
        return True  # off already, or going
    except (vim.fault.ToolsUnavailable, vim.fault.InvalidState) as e:
        LOG.info('ShutdownGuest of %s refused (%s)', vm_ref._moId,
                 type(e).__name__)
        return False


def reboot(session, vm_ref, soft, timeout):
    """Soft reboot through VMware Tools (RebootGuest); a hard reset when
    Tools do not run, refuse, or the guest has not gone down to reboot
    within ``timeout`` s (Tools stop running while it reboots). Returns
    'soft' or 'hard'.
    """
    if soft:
        with watch.PropertyWatch(session, vm_ref, vim.VirtualMachine,
                                 ['guest.toolsRunningStatus']) as w:
            running = (w.values.get('guest.toolsRunningStatus') ==
                       TOOLS_RUNNING)
            if running and _reboot_guest(vm_ref):
                if w.wait(lambda path, value: (
                        path == 'guest.toolsRunningStatus' and
                        value != TOOLS_RUNNING), timeout):
                    return 'soft'
                LOG.warning('The guest of %s did not begin to reboot within '
                            '%s s: resetting it', vm_ref._moId, timeout)
            elif not running:
                LOG.info('VMware Tools not running in %s: hard reset '
                         'instead of a soft reboot', vm_ref._moId)
    session.wait_for_task(vm_ref.ResetVM_Task())
    return 'hard'


def _reboot_guest(vm_ref):
    try:
        vm_ref.RebootGuest()
        return True
    except (vim.fault.ToolsUnavailable, vim.fault.InvalidState) as e:
        LOG.warning('Soft reboot of %s refused (%s), resetting', vm_ref._moId,
                    type(e).__name__)
        return False


def suspend(session, vm_ref):
    session.wait_for_task(vm_ref.SuspendVM_Task())


def resume(session, vm_ref):
    """A suspended VM resumes by powering on."""
    power_on(session, vm_ref)
