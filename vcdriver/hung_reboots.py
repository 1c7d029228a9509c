"""Reboots Nova has waited on longer than ``[DEFAULT] reboot_timeout``
(a reboot request lost on its way, a compute that died mid-reboot): each
is hard rebooted.

The hard reboot is asked of Nova's compute API, as in-tree, not done
behind Nova's back: Nova records it (task state, instance action,
notifications) and calls the driver's reboot, a ResetVM_Task, or a
power-on of a VM found off (``power.reboot``). Nova's ends are the
operator's: the server running again, or, for an instance whose VM is
gone from vCenter, in ERROR (the reason in the reboot's instance action
event and the compute's log), rather than left rebooting for ever and
tried again at every period. One instance's refusal stops no other.
"""

from nova import context as nova_context
from nova.compute import api as compute_api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def hard_reboot(instances, timeout, api=None):
    """Ask Nova to hard reboot each instance; ``api`` is Nova's compute
    API (made here when not given)."""
    if not instances:
        return
    LOG.warning('%d instance(s) stuck rebooting for more than %d s '
                '([DEFAULT] reboot_timeout): hard rebooting them',
                len(instances), timeout)
    api = api or compute_api.API()
    context = nova_context.get_admin_context()
    for instance in instances:
        LOG.warning('Stuck in task state %s since %s: asking Nova for a '
                    'hard reboot', instance.task_state, instance.updated_at,
                    instance=instance)
        try:
            api.reboot(context, instance, 'HARD')
        except Exception as e:
            LOG.warning('Nova refused the hard reboot of a stuck instance, '
                        'which stays as it is: %s', e, instance=instance)
