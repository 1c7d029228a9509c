"""Reboots stuck past ``[DEFAULT] reboot_timeout`` (hung_reboots): each
is hard rebooted through Nova's compute API, one's refusal stopping no
other."""

import types

from nova import exception as nova_exception

from vcdriver import hung_reboots


class ComputeAPI:
    """Nova's compute API as hung_reboots calls it, refusing some."""

    def __init__(self, refuse=()):
        self.refuse = set(refuse)
        self.calls = []

    def reboot(self, context, instance, reboot_type):
        self.calls.append((context.is_admin, instance.uuid, reboot_type))
        if instance.uuid in self.refuse:
            raise nova_exception.InstanceInvalidState(
                attr='task_state', instance_uuid=instance.uuid,
                state='deleting', method='reboot')


def instance(uuid, task_state='reboot_started'):
    return types.SimpleNamespace(uuid=uuid, task_state=task_state,
                                 updated_at='2024-01-01T00:00:00')


def test_each_stuck_instance_is_hard_rebooted_through_nova(caplog):
    api = ComputeAPI()
    hung_reboots.hard_reboot([instance('a', 'rebooting'), instance('b')],
                             120, api=api)
    assert api.calls == [(True, 'a', 'HARD'), (True, 'b', 'HARD')]
    assert '2 instance(s) stuck rebooting for more than 120 s' in caplog.text
    assert 'Stuck in task state rebooting since' in caplog.text


def test_a_refusal_stops_no_other_instance(caplog):
    api = ComputeAPI(refuse={'a'})
    hung_reboots.hard_reboot([instance('a'), instance('b'), instance('c')],
                             60, api=api)
    assert [c[1] for c in api.calls] == ['a', 'b', 'c']
    assert ('Nova refused the hard reboot of a stuck instance, which '
            'stays as it is: Instance a in task_state deleting' in
            caplog.text)


def test_nothing_stuck_asks_nothing(monkeypatch):
    def no_api():
        raise AssertionError('the compute API was made for nothing')
    monkeypatch.setattr(hung_reboots.compute_api, 'API', no_api)
    hung_reboots.hard_reboot([], 120)
