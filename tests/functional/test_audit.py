"""The leak audit (vcdriver/audit.py, ``vcdriver audit``) against vcsim:
clean after a boot through real Nova, then each kind of leak made by hand
shows in its own list; and the CLI's exit codes.

A vcsim of our own per class, so leaks of other tests in the shared one
cannot make the "clean" checks here fail.
"""

from tests.harness import nova as nova_harness  # noqa: I001 (nova first)

import json
import os
import shutil
import uuid

import pytest
from pyVmomi import vim

from tests.functional import audit_helpers
from tests.functional import vcsim_view
from tests.harness import vcsim as vcsim_harness
from vcdriver import cli
from vcdriver import conf

CACHE = 'vcdriver_image_cache'


def marker_vm(si, instance_uuid, name=None):
    """A powered-off VM carrying Nova's marker, made behind Nova's back."""
    view = si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.ClusterComputeResource], True)
    try:
        cluster = view.view[0]
    finally:
        view.DestroyView()
    spec = vim.vm.ConfigSpec(
        name=name or instance_uuid, numCPUs=1, memoryMB=64,
        guestId='otherGuest', instanceUuid=instance_uuid,
        files=vim.vm.FileInfo(vmPathName='[nfs0]'),
        extraConfig=[vim.option.OptionValue(key='nvp.vm-uuid',
                                            value=instance_uuid)])
    datacenter = cluster.parent.parent
    return vcsim_harness.wait_task(datacenter.vmFolder.CreateVM_Task(
        config=spec, pool=cluster.resourcePool))


def write(root, path, data=b'x'):
    path = os.path.join(root, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else json.dumps(data).encode())


class TestAudit(nova_harness.OwnVcsimTestCase):
    vcsim_args = dict(clusters=1, hosts_per_cluster=2, nfs=1)

    def setUp(self):
        super().setUp()
        self.root = self.sim.datastores['nfs0']
        self.debris = []
        self.addCleanup(self.remove_debris)

    def remove_debris(self):
        while self.debris:
            self.debris.pop()()

    def _made(self, relpath):
        """``[nfs0] relpath`` (file or folder) goes with the debris."""
        path = os.path.join(self.root, relpath)
        self.debris.append(lambda: shutil.rmtree(path, ignore_errors=True)
                           if os.path.isdir(path) else
                           os.path.exists(path) and os.remove(path))
        return relpath

    def test_each_leak_in_its_list(self):
        image = self.upload_flat_vmdk('audit')
        server = self.boot(image['id'])
        audit_helpers.assert_clean(self)
        # The CLI's default source of Nova's instances: its database.
        self.assertEqual({server['id']},
                         cli.nova_instance_uuids(self.compute_host))

        # A marked VM Nova does not know.
        stranger = str(uuid.uuid4())
        vm = marker_vm(self.si, stranger)
        self.debris.append(lambda: vcsim_view.destroy_vm(vm))
        # An instance folder nobody uses, a stray ISO in the server's.
        lost = str(uuid.uuid4())
        write(self.root, '%s/%s.vmdk' % (self._made(lost), lost), b'1234')
        stray = self._made('%s/leftover.iso' % server['id'])
        write(self.root, stray)
        # In the image cache: a download whose fill died, a stale lock,
        # and a lock held right now with its download (not debris).
        now = self.si.CurrentTime().timestamp()
        dead = self._made('%s/%s.partial-0123456789ab' % (CACHE, image['id']))
        write(self.root, '%s/%s.vmdk' % (dead, image['id']))
        stale = self._made('%s/stale-image.lock' % CACHE)
        write(self.root, stale + '/owner', {
            'owner': 'gone pid 1', 'token': 'aaa', 'heartbeat': now - 3600})
        held = self._made('%s/busy-image.lock' % CACHE)
        write(self.root, held + '/owner', {
            'owner': 'busy pid 2', 'token': 'bbb', 'heartbeat': now})
        busy = self._made('%s/busy-image.partial-bbb' % CACHE)
        write(self.root, busy + '/busy-image.vmdk')

        report = audit_helpers.run(self)
        self.assertFalse(report.clean)
        self.assertEqual([{
            'uuid': stranger, 'name': stranger, 'moref': vm._moId,
            'cluster': 'DC0_C0', 'power_state': 'poweredOff',
            'vmx': vm.config.files.vmPathName}],
            report.vms_without_instance)
        self.assertEqual([], report.instances_without_vm)
        self.assertEqual(
            [('file', '[nfs0] %s' % stray, 1),
             ('folder', '[nfs0] %s' % lost, 1)],
            sorted((o['kind'], o['path'], o['files'])
                   for o in report.orphan_folders))
        self.assertEqual(
            [('partial download', '[nfs0] %s' % dead),
             ('stale lock', '[nfs0] %s' % stale)],
            sorted((d['kind'], d['path']) for d in report.cache_debris))
        text = report.text()
        for word in (stranger, lost, stray, dead, stale, 'gone pid 1'):
            self.assertIn(word, text)

        self.remove_debris()  # the server stays
        audit_helpers.assert_clean(self)

        # Its VM deleted behind Nova's back, files and all.
        vcsim_view.destroy_vm(self.instance_vm(server))
        report = audit_helpers.run(self)
        self.assertEqual([{'uuid': server['id'], 'folders': [],
                           'vm_elsewhere': None}],
                         report.instances_without_vm)
        self.assertEqual(1, report.count())
        # Its folder back: shown with the instance, not as an orphan.
        write(self.root, '%s/%s.vmdk' % (self._made(server['id']),
                                         server['id']))
        report = audit_helpers.run(self)
        self.assertEqual(['[nfs0] %s' % server['id']],
                         report.instances_without_vm[0]['folders'])
        self.assertEqual([], report.orphan_folders)
        # Deleting the server, the driver finds no VM and removes the
        # folder all the same.
        self._delete_server(server)
        self.remove_debris()
        audit_helpers.assert_clean(self)


@pytest.fixture(scope='module')
def own_vcsim():
    sim = vcsim_harness.Vcsim(clusters=1, hosts_per_cluster=1, nfs=1)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def cli_conf(own_vcsim, tmp_path):
    path = tmp_path / 'nova.conf'
    path.write_text(
        '[vmware]\nhost_ip = %s\nhost_port = %s\nhost_username = %s\n'
        'host_password = %s\ncluster_name = %s\n'
        '[vcdriver]\nvcenter_protocol = http\n' % (
            own_vcsim.host, own_vcsim.port, own_vcsim.username,
            own_vcsim.password, own_vcsim.clusters[0]))
    yield str(path)
    conf.CONF.clear()  # the next test parses its own


def test_cli_audit_exit_codes(own_vcsim, cli_conf, tmp_path, capsys):
    ids = tmp_path / 'ids'
    ids.write_text('# nothing in Nova\n')

    def audit(*extra):
        code = cli.main(['audit', '--config-file', cli_conf, '--instances',
                         str(ids)] + list(extra))
        return code, capsys.readouterr().out

    code, out = audit()
    assert (code, out.strip()) == (0, 'No orphans found.')

    lost, missing = str(uuid.uuid4()), str(uuid.uuid4())
    folder = own_vcsim.datastore_path('nfs0', lost)
    write(folder, 'disk.vmdk')
    ids.write_text('%s\n' % missing)
    try:
        code, out = audit()
        assert code == 1, out
        assert 'Nova instances without a VM (1):' in out
        assert 'Orphan folders and stray files on the datastores (1):' in out
        assert 'warning: 2 orphans found' in out
        code, out = audit('--format', 'json')
        data = json.loads(out)
        assert (code, data['status'], data['instances']) == (1, 'warning', 1)
        assert [i['uuid'] for i in data['instances_without_vm']] == [missing]
        assert [(f['kind'], f['path']) for f in data['orphan_folders']] == [
            ('folder', '[nfs0] %s' % lost)]
        assert data['vms_without_instance'] == data['cache_debris'] == []
    finally:
        shutil.rmtree(folder)

    ids.write_text('server-1\n')
    code, out = audit()
    assert code == 2, out
    assert "error: Nova's instances: %s: not instance uuids: server-1" % (
        ids) in out
