"""Where a new VM's files go, through real Nova: the usable datastore
with the most free space, as vCenter reports it at the time of the boot.

A vcsim vCenter of our own: one cluster of one host that mounts two NFS
datastores of 100 GiB, whose free space the test changes while everything
runs (the launcher's /vcdriver/datastores, which announces the change to
property collectors as vCenter does).
"""

from pyVmomi import vim

from tests.harness import nova as nova_harness


class TestDatastoreChoice(nova_harness.OwnVcsimTestCase):
    vcsim_args = dict(clusters=1, hosts_per_cluster=1, nfs=2,
                      datastore_capacity_gb=100)

    def _files_on(self, server):
        """The datastore holding all of the server's VM files."""
        vm = self.instance_vm(server)
        self.assertIsNotNone(vm, 'no VM for server %s' % server['id'])
        paths = [vm.config.files.vmPathName] + [
            d.backing.fileName for d in vm.config.hardware.device
            if isinstance(d, vim.vm.device.VirtualDisk)]
        names = {p[1:p.index(']')] for p in paths}
        self.assertEqual(1, len(names), 'VM files on several: %s' % paths)
        name = names.pop()
        self.assertEqual([name], [ds.name for ds in vm.datastore])
        home = vm.config.files.vmPathName.split('] ', 1)[1].split('/')[0]
        self.assertTrue(
            any(f.startswith(home + '/')
                for f in self.datastore_files(name)),
            'no %s/ on %s' % (home, name))
        return name

    def test_boot_follows_the_free_space(self):
        image = self.upload_flat_vmdk('ds-choice')
        # 2 GiB still holds a 1 GB flavor disk and the image: nfs0 is
        # passed over for having less room, not for having none.
        self.sim.set_datastore_space('nfs0', 2)
        self.sim.set_datastore_space('nfs1', 90)
        first = self.boot(image['id'])
        self.assertEqual('nfs1', self._files_on(first))

        self.sim.set_datastore_space('nfs0', 90)
        self.sim.set_datastore_space('nfs1', 2)
        second = self.boot(image['id'])
        self.assertEqual('nfs0', self._files_on(second))
        self.assertEqual('nfs1', self._files_on(first))  # not moved

        log = self.stdlog.logger.output
        self.assertIn('datastore nfs1, from image %s' % image['id'], log)
        self.assertIn('datastore nfs0, from image %s' % image['id'], log)
        for server in (first, second):
            self._delete_server(server)
