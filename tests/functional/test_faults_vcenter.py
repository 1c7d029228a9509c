"""Issue 6 fault scenarios through real Nova, part A: vCenter sessions
that expire, a vCenter that restarts, destroys that meet a vanished VM or
a build still under way.

Each class has a vcsim vCenter of its own (faults act on every session
of a simulator). A spawn or destroy is held in vCenter with a task_hang
rule; a watcher thread arms the next fault once vCenter has seen the held
call (the rule's hits), while the test's thread is inside Nova's API call
(casts run as calls). Every scenario ends with its final state checked
on vCenter's side and a clean leak audit.
"""

import os
import threading
import time

from nova.tests.functional.api import client as api_client

from tests.functional import audit_helpers
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness


class _OwnVcenter(nova_harness.OwnVcsimTestCase):
    clusters = ('DC0_C0',)
    vcsim_args = dict(clusters=1, hosts_per_cluster=2, nfs=1)

    def setUp(self):
        super().setUp()
        self.addCleanup(self.sim.clear_faults)
        self._watchers = []
        self.addCleanup(self._join_watchers)

    # -- helpers ---------------------------------------------------------

    def _hits(self, fault_id):
        for rule in self.sim.faults():
            if rule['id'] == fault_id:
                return rule['hits']
        return 0

    def _wait_hit(self, fault_id, timeout=120):
        deadline = time.monotonic() + timeout
        while self._hits(fault_id) < 1:
            if time.monotonic() > deadline:
                self.fail('fault %d never fired' % fault_id)
            time.sleep(0.05)

    def _when_hit(self, fault_id, action, delay=0.3):
        """Run ``action`` on a thread ``delay`` seconds after the rule
        ``fault_id`` first fired (so the held call is being waited on)."""
        errors = []

        def watch():
            try:
                self._wait_hit(fault_id)
                time.sleep(delay)
                action()
            except BaseException as e:  # reported by _join_watchers
                errors.append(e)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        self._watchers.append((thread, errors))
        return thread

    def _join_watchers(self):
        for thread, errors in self._watchers:
            thread.join(120)
            if errors:
                raise errors[0]
        self._watchers = []

    def _vm(self, uuid):
        return self.instance_vm({'id': uuid})

    def _folder(self, uuid):
        return self.sim.datastore_path('nfs0', uuid)

    def _assert_gone_from_vcenter(self, uuid):
        self.assertIsNone(self._vm(uuid), 'VM left in vCenter')
        folder = self._folder(uuid)
        if os.path.exists(folder):
            self.fail('instance folder left: %s' % sorted(os.listdir(folder)))

    def _server_or_none(self, uuid):
        try:
            return self.api.get_server(uuid)
        except api_client.OpenStackApiNotFoundException:
            return None

    def _wait_deleted_or_error(self, uuid, timeout=120):
        """None once Nova has no server, else the server in ERROR."""
        deadline = time.monotonic() + timeout
        while True:
            server = self._server_or_none(uuid)
            if server is None or server['status'] == 'ERROR':
                return server
            if time.monotonic() > deadline:
                self.fail('server %s neither deleted nor in ERROR: %s'
                          % (uuid, server['status']))
            time.sleep(0.2)

    def _boot_and_delete(self, image_id):
        server = self.boot(image_id)
        self.assertEqual('poweredOn', self._vm(server['id']).runtime
                         .powerState)
        self._delete_server(server)
        self._assert_gone_from_vcenter(server['id'])


class TestSessionExpiry(_OwnVcenter):

    def test_session_expires_mid_spawn(self):
        """Every session ends while CreateVM_Task is held: the driver
        logs in again and the spawn completes."""
        image = self.upload_flat_vmdk('expiry')
        first_cookie = self.driver._session.cookie
        hang = self.sim.inject(kind='task_hang', method='CreateVM_Task',
                               seconds=3)
        expiry = []
        self._when_hit(hang, lambda: expiry.append(
            self.sim.inject(kind='session_expiry')))
        server = self.boot(image['id'])
        self._join_watchers()

        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(1, self._hits(hang))
        self.assertGreaterEqual(self._hits(expiry[0]), 1,
                                'no session was expired')
        self.assertNotEqual(first_cookie, self.driver._session.cookie,
                            'the driver did not log in again')
        vm = self._vm(server['id'])
        self.assertEqual('poweredOn', vm.runtime.powerState)
        audit_helpers.assert_clean(self)

        self._delete_server(server)
        self._assert_gone_from_vcenter(server['id'])
        audit_helpers.assert_clean(self)


class TestVcenterRestart(_OwnVcenter):

    def _restart_mid_spawn(self, seconds, method):
        """vCenter goes away while the spawn waits for ``method``'s task
        (held 3 s) and comes back ``seconds`` later: the wait watches the
        task again once vCenter answers, and the spawn goes on."""
        image = self.upload_flat_vmdk('restart-%s' % seconds)
        hang = self.sim.inject(kind='task_hang', method=method, seconds=3)
        restart = []
        self._when_hit(hang, lambda: restart.append(
            self.sim.inject(kind='restart', seconds=seconds)))
        server = self.boot(image['id'])
        self._join_watchers()
        self.assertEqual(1, self._hits(hang))
        self.assertGreaterEqual(self._hits(restart[0]), 1,
                                'vCenter was never found away')
        uuid = server['id']
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('poweredOn', self._vm(uuid).runtime.powerState)
        audit_helpers.assert_clean(self)

        self._delete_server(server)
        self._assert_gone_from_vcenter(uuid)
        audit_helpers.assert_clean(self)
        # A new boot of the same image.
        self._boot_and_delete(image['id'])
        audit_helpers.assert_clean(self)

    def test_short_restart_mid_spawn(self):
        self._restart_mid_spawn(2, 'PowerOnVM_Task')

    def test_long_restart_mid_spawn(self):
        # Longer than pyVmomi's own resends of a call: the image cache's
        # copy for the linked clone.
        self._restart_mid_spawn(8, 'CopyVirtualDisk_Task')
        # The task wait's call backs off, or the wait opens a new
        # collector once vCenter answers, as the timing falls.
        self.assertRegex(self.stdlog.logger.output,
                         'vCenter call WaitForUpdatesEx failed \\(vCenter '
                         'unreachable|vCenter unreachable while waiting')

    def _restart_as_the_spawn_calls(self, seconds, expected):
        """vCenter goes away as the spawn calls PowerOnVM_Task (no task
        to wait for yet) for ``seconds``; the server that results."""
        # One compute service: no other host to try, and the fault says
        # what failed (a reschedule would say "Exhausted all hosts").
        self.flags(max_attempts=1, group='scheduler')
        image = self.upload_flat_vmdk('restart-call-%d' % seconds)
        held = self.sim.inject(kind='latency', method='PowerOnVM_Task',
                               ms=1000, times=1)
        restart = []
        self._when_hit(held, lambda: restart.append(
            self.sim.inject(kind='restart', seconds=seconds)), delay=0.1)
        server = self.boot(image['id'], expected=expected)
        self._join_watchers()
        self.assertGreaterEqual(self._hits(restart[0]), 1)
        self.assertIn('vCenter call PowerOnVM_Task failed (vCenter '
                      'unreachable', self.stdlog.logger.output)
        return image, server

    def test_long_restart_as_the_spawn_calls(self):
        """Longer than pyVmomi's own resends: the call backs off until
        vCenter answers, and the spawn goes on."""
        image, server = self._restart_as_the_spawn_calls(8, 'ACTIVE')
        uuid = server['id']
        self.assertEqual('poweredOn', self._vm(uuid).runtime.powerState)
        self._delete_server(server)
        self._assert_gone_from_vcenter(uuid)
        audit_helpers.assert_clean(self)

    def test_vcenter_away_longer_than_the_retries(self):
        """Away longer than the call's back-off (api_retry_count 3 here:
        about 10 s): the spawn fails, and its cleanup waits for vCenter
        to remove the VM and its folder (Nova forgets a failed build's
        host: nothing else would)."""
        image, server = self._restart_as_the_spawn_calls(25, 'ERROR')
        uuid = server['id']
        self.sim.clear_faults()  # vCenter back, if it is not yet
        self._assert_gone_from_vcenter(uuid)
        # The connection's own error (threads: a reset; eventlet: a close).
        self.assertRegex(server['fault']['message'],
                         'Connection reset|Remote end closed connection')
        self.assertIn('while removing a failed spawn',
                      self.stdlog.logger.output)
        self._delete_server(server)
        audit_helpers.assert_clean(self)
        self._boot_and_delete(image['id'])
        audit_helpers.assert_clean(self)

    def test_restart_mid_destroy(self):
        """vCenter restarts while Destroy_Task is held."""
        image = self.upload_flat_vmdk('restart-destroy')
        server = self.boot(image['id'])
        uuid = server['id']
        hang = self.sim.inject(kind='task_hang', method='Destroy_Task',
                               seconds=3)
        restart = []
        self._when_hit(hang, lambda: restart.append(
            self.sim.inject(kind='restart', seconds=2)))
        # The destroy's task wait watches the task again once vCenter is
        # back: the delete ends at once, no second one needed.
        self._delete_server(server)
        self._join_watchers()
        self.assertEqual(1, self._hits(hang))
        self.assertGreaterEqual(self._hits(restart[0]), 1,
                                'vCenter was never found away')
        self.assertIsNone(self._server_or_none(uuid))
        self._assert_gone_from_vcenter(uuid)
        audit_helpers.assert_clean(self)


class TestDestroys(_OwnVcenter):

    def test_destroy_of_a_vanished_vm(self):
        """The VM was destroyed in vCenter behind Nova's back, leaving a
        file in its folder."""
        image = self.upload_flat_vmdk('vanished')
        server = self.boot(image['id'])
        uuid = server['id']
        vm = self._vm(uuid)
        self.assertTrue(vm.config.files.vmPathName.startswith(
            '[nfs0] %s/' % uuid), vm.config.files.vmPathName)
        vcsim_harness.wait_task(vm.PowerOffVM_Task())
        vcsim_harness.wait_task(vm.Destroy_Task())
        self.assertIsNone(self._vm(uuid))
        # A real vCenter leaves what the VM did not own, a config drive.
        os.makedirs(self._folder(uuid), exist_ok=True)
        with open(os.path.join(self._folder(uuid), 'configdrive.iso'),
                  'wb') as f:
            f.write(b"not the VM's")

        self._delete_server(server)
        self.assertIsNone(self._server_or_none(uuid))
        self._assert_gone_from_vcenter(uuid)
        audit_helpers.assert_clean(self)

    def _destroy_during_spawn(self, method):
        """Delete the server while the spawn waits for ``method``'s task
        (held until cleared), then let the task go."""
        image = self.upload_flat_vmdk('doomed-%s' % method)
        hang = self.sim.inject(kind='task_hang', method=method, seconds=0)
        errors = []

        def boot():
            try:
                self.create_server(image['id'])
            except Exception as e:
                errors.append(e)

        builder = threading.Thread(target=boot, daemon=True)
        builder.start()
        self._wait_hit(hang)
        building = [s for s in self.api.get_servers()
                    if s['status'] == 'BUILD']
        self.assertEqual(1, len(building))
        uuid = building[0]['id']

        # Nova's delete waits for the build (the instance lock), which
        # is let go a moment after the delete is asked for.
        threading.Timer(1.0, self.sim.clear_faults).start()
        self.api.delete_server(uuid)
        builder.join(120)
        self.assertFalse(builder.is_alive(), 'the build never ended')
        self.assertEqual([], errors)
        left = self._wait_deleted_or_error(uuid)
        self.assertIsNone(left, 'the server outlived its delete')
        # The build found the instance deleted under it.
        self.assertIn('instance.create.error', [
            n['event_type'] for n in self.notifier.versioned_notifications])
        self._assert_gone_from_vcenter(uuid)
        audit_helpers.assert_clean(self)

    def test_destroy_while_the_vm_is_created(self):
        self._destroy_during_spawn('CreateVM_Task')

    def test_destroy_while_the_vm_powers_on(self):
        self._destroy_during_spawn('PowerOnVM_Task')


class TestCreateOutlivesTheWait(_OwnVcenter):
    """CreateVM_Task still running at ``[vcdriver] task_timeout``: the
    build fails and Nova cleans up at once; the VM the task makes later
    must not be left behind."""

    def configure(self):
        super().configure()
        self.flags(task_timeout=2, group='vcdriver')

    def test_vm_made_after_the_build_gave_up_is_removed(self):
        image = self.upload_flat_vmdk('late-create')
        hang = self.sim.inject(kind='task_hang', method='CreateVM_Task',
                               seconds=5)
        uuid = self.create_server(image['id'])['id']
        server = self._wait_deleted_or_error(uuid)
        self.assertEqual('ERROR', server['status'])
        self.assertEqual(1, self._hits(hang))
        self.assertIn('did not finish within 2 s', self.stdlog.logger.output)

        # The task ends 5 s after it began, makes the VM, and the driver
        # removes it with its folder.
        deadline = time.monotonic() + 60
        while 'after the build had given up on it; removing it' not in \
                self.stdlog.logger.output:
            if time.monotonic() > deadline:
                self.fail('the late VM was never removed')
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while self._vm(uuid) is not None:
            if time.monotonic() > deadline:
                self.fail('the late VM is still in vCenter')
            time.sleep(0.2)
        self._assert_gone_from_vcenter(uuid)
        audit_helpers.assert_clean(self)

        self._delete_server(server)
        self.assertIsNone(self._server_or_none(uuid))
        # The same image boots once vCenter answers in time again.
        self._boot_and_delete(image['id'])
        audit_helpers.assert_clean(self)
