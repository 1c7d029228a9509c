"""Cinder volumes on servers, through Nova's API on vcsim.

Simulated: Cinder's side, and for iSCSI the storage array. Nova's
CinderFixture answers for Cinder, and for the volumes made here it hands
out the connection info of Cinder's drivers. For ``vmdk``, ``data.volume``
names a "shadow" VM the test creates in vCenter the way Cinder's VMDK
driver does (named after the volume, the volume id as instanceUuid, one
disk, no marker of Nova's). For ``iscsi``, the target is declared to our
vcsim launcher (tools/vcsim/iscsi.go), whose hosts have a software iSCSI
adapter; no data path is behind a LUN, so there devices and the hosts'
adapters are checked, not bytes. Real: Nova's API, conductor, scheduler
and compute manager, the driver, and vCenter's side (vcsim), read after
each step: devices, backings, extraConfig, host adapters, and the
volume's bytes over the datastore's HTTP interface.
"""

import json
import os
import shutil
import urllib.request

import fixtures
from nova import objects
from nova.tests.fixtures import cinder as cinder_fixture
from nova.tests.functional.api import client
from oslo_utils import uuidutils
from pyVmomi import vim

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness
from vcdriver import vm

MiB = 1024 ** 2
VOLUME_BYTES = 4 * MiB


class TestVolumes(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.connection_info = dict(
            cinder_fixture.CinderFixture.VOLUME_CONNECTION_INFO)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.cinder.CinderFixture.'
            'VOLUME_CONNECTION_INFO', self.connection_info))
        self.si = vcsim_harness.connect(self.vcsim)

    # --- Cinder's side, simulated -----------------------------------------

    def _datacenter_and_cluster(self):
        content = self.si.content
        dc = next(e for e in content.rootFolder.childEntity
                  if e.name == 'DC0')
        cluster = next(c for c in dc.hostFolder.childEntity
                       if c.name == self.clusters[0])
        return dc, cluster

    def write_volume(self, disk, data):
        """Write through the datastore as the guest would."""
        ds, _, rel = disk.backing.fileName[1:].partition('] ')
        request = urllib.request.Request(
            self.vcsim.datastore_url(
                ds, rel[:-len('.vmdk')] + '-flat.vmdk'),
            data=data, method='PUT')
        with urllib.request.urlopen(request, timeout=30):
            pass

    def make_volume(self, data):
        """A volume as Cinder's VMDK driver keeps it: a shadow VM with one
        disk in its own folder; ``data`` is written into the disk's flat
        extent over the datastore's HTTP interface. Returns (volume id,
        shadow VM, the disk's datastore path)."""
        volume_id = uuidutils.generate_uuid()
        name = 'volume-%s' % volume_id
        dc, cluster = self._datacenter_and_cluster()
        shadow = vcsim_harness.wait_task(dc.vmFolder.CreateVM_Task(
            config=vim.vm.ConfigSpec(
                name=name, guestId='otherGuest', instanceUuid=volume_id,
                numCPUs=1, memoryMB=128,
                files=vim.vm.FileInfo(vmPathName='[nfs0] %s/' % name),
                deviceChange=[vim.vm.device.VirtualDeviceSpec(
                    operation='add',
                    device=vim.vm.device.VirtualLsiLogicController(
                        key=-100, busNumber=0, sharedBus='noSharing'))]),
            pool=cluster.resourcePool))
        self.addCleanup(self._remove_shadow, shadow)
        path = '[nfs0] %s/%s.vmdk' % (name, name)
        controller = next(
            d for d in shadow.config.hardware.device
            if isinstance(d, vim.vm.device.VirtualLsiLogicController))
        vcsim_harness.wait_task(shadow.ReconfigVM_Task(vim.vm.ConfigSpec(
            deviceChange=[vim.vm.device.VirtualDeviceSpec(
                operation='add', fileOperation='create',
                device=vim.vm.device.VirtualDisk(
                    key=-101, controllerKey=controller.key, unitNumber=0,
                    capacityInKB=VOLUME_BYTES // 1024,
                    backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                        fileName=path, diskMode='persistent',
                        thinProvisioned=True)))])))
        ds, _, rel = path[1:].partition('] ')
        flat = rel[:-len('.vmdk')] + '-flat.vmdk'
        request = urllib.request.Request(
            self.vcsim.datastore_url(ds, flat), data=data, method='PUT')
        with urllib.request.urlopen(request, timeout=30):
            pass
        self.connection_info[volume_id] = {
            'driver_volume_type': 'vmdk',
            'data': {'volume': shadow._moId, 'volume_id': volume_id,
                     'name': name, 'profile_id': None}}
        return volume_id, shadow, path

    @staticmethod
    def _remove_shadow(shadow):
        try:
            vcsim_harness.wait_task(shadow.Destroy_Task())
        except Exception:
            pass  # gone already

    @staticmethod
    def shadow_disk_path(shadow):
        [disk] = [d for d in shadow.config.hardware.device
                  if isinstance(d, vim.vm.device.VirtualDisk)]
        return disk.backing.fileName

    def make_iscsi_volume(self):
        """A LUN behind an iSCSI target, as Cinder's iSCSI drivers export
        one; returns (volume id, LUN uuid, portal, target IQN)."""
        volume_id = uuidutils.generate_uuid()
        lun_uuid = '0200' + uuidutils.generate_uuid(dashed=False)
        portal = '192.0.2.10:3260'
        iqn = 'iqn.2010-10.org.openstack:volume-%s' % volume_id
        request = urllib.request.Request(
            self.vcsim.http_url('/vcdriver/iscsi-targets'), method='POST',
            data=json.dumps({'portal': portal, 'iqn': iqn, 'luns': [
                {'lun': 1, 'uuid': lun_uuid, 'blocks': 8192}]}).encode(),
            headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=10):
            pass
        self.connection_info[volume_id] = {
            'driver_volume_type': 'iscsi',
            'data': {'target_portal': portal, 'target_iqn': iqn,
                     'target_lun': 1, 'target_discovered': False,
                     'volume_id': volume_id}}
        return volume_id, lun_uuid, portal, iqn

    # --- Nova's API ---------------------------------------------------------

    def attach(self, server, volume_id):
        return self.api.post_server_volume(
            server['id'], {'volumeAttachment': {'volumeId': volume_id}})

    def detach(self, server, volume_id):
        self.api.delete_server_volume(server['id'], volume_id)

    def attached_ids(self, server):
        return [a['volumeId'] for a in
                self.api.get_server_volumes(server['id'])]

    def volume_disks(self, server):
        """The server's disks other than its root: (bus, device)."""
        return vcsim_view.disks(self.vcsim, server['id'])[1:]

    # --- tests --------------------------------------------------------------

    def test_volume_moves_between_servers_with_its_bytes(self):
        data = bytes(range(256)) * (VOLUME_BYTES // 256)
        volume_id, shadow, path = self.make_volume(b'\0' * VOLUME_BYTES)
        image = self.upload_flat_vmdk('vol-scsi')
        sata_image = self.upload_flat_vmdk('vol-sata', hw_disk_bus='sata')
        first = self.boot(image['id'])
        second = self.boot(sata_image['id'])
        [(_bus, root)] = vcsim_view.disks(self.vcsim, first['id'])

        # Attached: the shadow VM's disk, on the root disk's controller,
        # next free unit, independent (no instance snapshot writes on it).
        self.attach(first, volume_id)
        self.assertEqual([volume_id], self.attached_ids(first))
        [(bus, disk)] = self.volume_disks(first)
        self.assertEqual('VirtualLsiLogicController', bus)
        self.assertEqual((root.controllerKey, 1),
                         (disk.controllerKey, disk.unitNumber))
        self.assertEqual(path, disk.backing.fileName)
        self.assertEqual('independent_persistent', disk.backing.diskMode)
        self.assertEqual(VOLUME_BYTES, disk.capacityInBytes)
        self.assertEqual(disk.backing.uuid, vcsim_view.extra_config(
            self.vcsim, first['id'], 'volume-%s' % volume_id))
        self.assertEqual(path, self.shadow_disk_path(shadow))

        # The guest writes: bytes land in the disk the server has.
        self.write_volume(disk, data)

        # Detached: the device goes, the file and the shadow's disk stay.
        self.detach(first, volume_id)
        self.assertEqual([], self.attached_ids(first))
        self.assertEqual([], self.volume_disks(first))
        self.assertIsNone(vcsim_view.extra_config(
            self.vcsim, first['id'], 'volume-%s' % volume_id))
        self.assertEqual(path, self.shadow_disk_path(shadow))
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, path, '-flat'))

        # Attached to the second server, on its SATA bus: same bytes.
        self.attach(second, volume_id)
        [(bus, disk)] = self.volume_disks(second)
        self.assertEqual('VirtualAHCIController', bus)
        self.assertEqual(path, disk.backing.fileName)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, disk.backing.fileName, '-flat'))
        self.detach(second, volume_id)
        self.assertEqual([], self.volume_disks(second))

        for server in (first, second):
            self._delete_server(server)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, path, '-flat'))

    def test_two_volumes_take_the_next_free_units(self):
        first_id, _s1, first_path = self.make_volume(b'1' * VOLUME_BYTES)
        second_id, _s2, second_path = self.make_volume(b'2' * VOLUME_BYTES)
        server = self.boot(self.upload_flat_vmdk('two-vols')['id'])
        self.attach(server, first_id)
        self.attach(server, second_id)
        self.assertEqual(
            [(first_path, 1), (second_path, 2)],
            [(d.backing.fileName, d.unitNumber)
             for _b, d in self.volume_disks(server)])
        # The first one goes; the second keeps its unit.
        self.detach(server, first_id)
        self.assertEqual([(second_path, 2)],
                         [(d.backing.fileName, d.unitNumber)
                          for _b, d in self.volume_disks(server)])
        self.detach(server, second_id)
        self._delete_server(server)

    def test_deleting_a_server_keeps_its_volumes(self):
        data = b'keep-me!' * (VOLUME_BYTES // 8)
        volume_id, shadow, path = self.make_volume(data)
        server = self.boot(self.upload_flat_vmdk('vol-delete')['id'])
        self.attach(server, volume_id)
        self.assertEqual(1, len(self.volume_disks(server)))
        # Real vCenter's Destroy_Task deletes every disk of the VM (vcsim
        # only the VM's folder): the volume must be off it by then.
        disks_at_destroy = []
        destroy = vm.destroy

        def spy(session, vm_ref):
            disks_at_destroy.append(
                [d.backing.fileName for _b, d in self.volume_disks(server)])
            return destroy(session, vm_ref)

        self.useFixture(fixtures.MonkeyPatch('vcdriver.vm.destroy', spy))
        self._delete_server(server)
        self.assertEqual([[]], disks_at_destroy)
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))
        self.assertEqual(path, self.shadow_disk_path(shadow))
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, path, '-flat'))

    def test_volume_moved_with_its_server_goes_back_to_its_backing(self):
        """Storage vMotion (Storage DRS, a migration) takes an attached
        volume's file into the server's folder, which goes with the
        server. Simulated: that move, by the test's own session, as
        vCenter makes it (file moved, device re-pointed, disk uuid kept).
        """
        data = b'moved!!!' * (VOLUME_BYTES // 8)
        volume_id, shadow, path = self.make_volume(data)
        server = self.boot(self.upload_flat_vmdk('vol-moved')['id'])
        self.attach(server, volume_id)
        [(_bus, disk)] = self.volume_disks(server)
        moved = '[nfs0] %s/volume-%s.vmdk' % (server['id'], volume_id)
        dc, _cluster = self._datacenter_and_cluster()
        vcsim_harness.wait_task(
            self.si.content.virtualDiskManager.MoveVirtualDisk_Task(
                sourceName=path, sourceDatacenter=dc, destName=moved,
                destDatacenter=dc, force=False))
        vm_ref = vcsim_view.vm_of(self.vcsim, server['id'])
        vcsim_harness.wait_task(vm_ref.ReconfigVM_Task(vim.vm.ConfigSpec(
            deviceChange=[
                vim.vm.device.VirtualDeviceSpec(operation='remove',
                                                device=disk),
                vim.vm.device.VirtualDeviceSpec(
                    operation='add', device=vim.vm.device.VirtualDisk(
                        key=-1, controllerKey=disk.controllerKey,
                        unitNumber=disk.unitNumber,
                        capacityInKB=disk.capacityInKB,
                        backing=vim.vm.device.VirtualDisk.
                        FlatVer2BackingInfo(
                            fileName=moved, diskMode=disk.backing.diskMode,
                            uuid=disk.backing.uuid)))])))
        [(_bus, disk)] = self.volume_disks(server)
        self.assertEqual(moved, disk.backing.fileName)

        self.detach(server, volume_id)
        self.assertEqual([], self.volume_disks(server))
        # The file is back in the backing's folder, and the backing's disk
        # names it.
        self.assertEqual(path, self.shadow_disk_path(shadow))
        self._delete_server(server)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, path, '-flat'))

    def test_volume_given_at_boot(self):
        data = b'at-boot!' * (VOLUME_BYTES // 8)
        volume_id, _shadow, path = self.make_volume(data)
        image = self.upload_flat_vmdk('vol-boot')
        server = self._build_server(image_uuid=image['id'], flavor_id='1',
                                    networks='none')
        server['block_device_mapping_v2'] = [
            {'boot_index': 0, 'uuid': image['id'], 'source_type': 'image',
             'destination_type': 'local'},
            {'boot_index': -1, 'uuid': volume_id, 'source_type': 'volume',
             'destination_type': 'volume'}]
        server = self._wait_for_state_change(
            self.api.post_server({'server': server}), 'ACTIVE',
            max_retries=120)
        self.assertEqual([volume_id], self.attached_ids(server))
        [(_bus, disk)] = self.volume_disks(server)
        self.assertEqual((path, 1), (disk.backing.fileName, disk.unitNumber))
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)
        self._delete_server(server)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, path, '-flat'))

    def test_iscsi_volume_as_a_raw_device_mapping(self):
        volume_id, lun_uuid, portal, iqn = self.make_iscsi_volume()
        image = self.upload_flat_vmdk('vol-iscsi')
        servers = [self.boot(image['id']), self.boot(image['id'])]
        for server in servers:
            self.attach(server, volume_id)
            vm_ref = vcsim_view.vm_of(self.vcsim, server['id'])
            # The VM's host has the target and found the LUN.
            storage = vm_ref.runtime.host.config.storageDevice
            [hba] = [h for h in storage.hostBusAdapter
                     if isinstance(h, vim.host.InternetScsiHba)]
            self.assertIn(('192.0.2.10', 3260, iqn),
                          [(t.address, t.port, t.iScsiName)
                           for t in hba.configuredStaticTarget])
            [lun] = [x for x in storage.scsiLun if x.uuid == lun_uuid]
            # The instance has it as a physical RDM on its SCSI bus.
            [(bus, disk)] = self.volume_disks(server)
            self.assertEqual('VirtualLsiLogicController', bus)
            backing = disk.backing
            self.assertIsInstance(
                backing, vim.vm.device.VirtualDisk.
                RawDiskMappingVer1BackingInfo)
            self.assertEqual((lun_uuid, lun.deviceName, 'physicalMode'),
                             (backing.lunUuid, backing.deviceName,
                              backing.compatibilityMode))
            self.assertEqual(4 * MiB, disk.capacityInBytes)
            self.assertEqual(lun_uuid, vcsim_view.extra_config(
                self.vcsim, server['id'], 'volume-%s' % volume_id))
            mapping = vcsim_view.local_path(self.vcsim, backing.fileName)
            self.assertTrue(mapping.startswith(vcsim_view.local_path(
                self.vcsim, '[nfs0] %s/' % server['id'])))

            self.detach(server, volume_id)
            self.assertEqual([], self.volume_disks(server))
            self.assertIsNone(vcsim_view.extra_config(
                self.vcsim, server['id'], 'volume-%s' % volume_id))
            self.assertFalse(os.path.exists(mapping),
                             'the mapping file was left behind')
        for server in servers:
            self._delete_server(server)

    def test_volume_connector_names_the_vm(self):
        server = self.boot(self.upload_flat_vmdk('vol-connector')['id'])
        vm_ref = vcsim_view.vm_of(self.vcsim, server['id'])
        connector = self.driver.get_volume_connector(
            objects.Instance(uuid=server['id']))
        # tools/vcsim gives every host a software iSCSI adapter.
        iqn = next(h.iScsiName
                   for h in vm_ref.runtime.host.config.storageDevice.
                   hostBusAdapter
                   if isinstance(h, vim.host.InternetScsiHba))
        self.assertEqual(
            {'ip': self.vcsim.host, 'host': self.vcsim.host,
             'instance': vm_ref._moId, 'initiator': iqn}, connector)
        self.assertTrue(iqn.startswith('iqn.1998-01.com.vmware:'))
        self._delete_server(server)

    # --- swap (Cinder's volume migration) and extend -------------------------

    def cinder_reports(self, volume_id, **fields):
        """Fields Cinder's GET of a volume shows on top of the fixture's
        (``size`` in GB, ``migration_status``)."""
        if not hasattr(self, '_cinder_fields'):
            self._cinder_fields = {}
            fixture_get = self.cinder.fake_get
            overrides = self._cinder_fields

            def get(_api, context, volume_id, microversion=None):
                volume = fixture_get(context, volume_id, microversion)
                volume.update(overrides.get(volume_id, {}))
                return volume

            self.useFixture(fixtures.MonkeyPatch(
                'nova.volume.cinder.API.get', get))
        self._cinder_fields.setdefault(volume_id, {}).update(fields)

    def swap(self, server, old_id, new_id):
        """What Cinder does migrating a volume in use: the old volume is
        'migrating', Cinder asks Nova to swap it for the new one."""
        self.cinder_reports(old_id, migration_status='migrating')
        self.api.put_server_volume(server['id'], old_id, new_id)

    def test_swap_puts_the_data_on_the_new_volume_at_the_same_unit(self):
        data = bytes(range(255, -1, -1)) * (VOLUME_BYTES // 256)
        old_id, old_shadow, old_path = self.make_volume(b'\0' * VOLUME_BYTES)
        new_id, new_shadow, new_path = self.make_volume(b'\0' * VOLUME_BYTES)
        [new_disk] = [d for d in new_shadow.config.hardware.device
                      if isinstance(d, vim.vm.device.VirtualDisk)]
        # The new volume is bigger (Cinder's retype to a larger size): Nova
        # asks for it to be grown to 2 GB.
        self.cinder_reports(new_id, size=2)
        server = self.boot(self.upload_flat_vmdk('vol-swap')['id'])
        self.attach(server, old_id)
        [(_bus, old_disk)] = self.volume_disks(server)
        self.write_volume(old_disk, data)

        self.swap(server, old_id, new_id)

        # Nova's side: the server has the new volume.
        self.assertEqual([new_id], self.attached_ids(server))
        # vCenter's: the new volume's disk at the old one's slot, grown,
        # with the new shadow's disk uuid recorded; the old one gone.
        [(_bus, disk)] = self.volume_disks(server)
        self.assertEqual(
            (new_path, old_disk.controllerKey, old_disk.unitNumber,
             'independent_persistent', 2 * 1024 ** 3),
            (disk.backing.fileName, disk.controllerKey, disk.unitNumber,
             disk.backing.diskMode, disk.capacityInBytes))
        self.assertEqual(new_disk.backing.uuid, vcsim_view.extra_config(
            self.vcsim, server['id'], 'volume-%s' % new_id))
        self.assertIsNone(vcsim_view.extra_config(
            self.vcsim, server['id'], 'volume-%s' % old_id))
        # The bytes are in the new volume's file, which its shadow keeps.
        self.assertEqual(new_path, self.shadow_disk_path(new_shadow))
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, new_path, '-flat'))
        # The old volume is back with its shadow, bytes intact; no copy or
        # set-aside file stays behind.
        self.assertEqual(old_path, self.shadow_disk_path(old_shadow))
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, old_path, '-flat'))
        folder = os.path.dirname(vcsim_view.local_path(self.vcsim, new_path))
        self.assertEqual(
            sorted([os.path.basename(new_path),
                    os.path.basename(new_path)[:-5] + '-flat.vmdk']),
            sorted(f for f in os.listdir(folder) if f.endswith('.vmdk')))

        # The new volume detaches as any other.
        self.detach(server, new_id)
        self.assertEqual([], self.volume_disks(server))
        self._delete_server(server)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, new_path, '-flat'))

    def test_failed_swap_leaves_the_old_volume_attached(self):
        data = b'stay-put' * (VOLUME_BYTES // 8)
        old_id, old_shadow, old_path = self.make_volume(data)
        new_id, _new_shadow, new_path = self.make_volume(b'\0' * VOLUME_BYTES)
        server = self.boot(self.upload_flat_vmdk('vol-swap-fail')['id'])
        self.attach(server, old_id)
        [(_bus, old_disk)] = self.volume_disks(server)
        # The new volume's files are gone from the datastore (its shadow
        # still names them): the copy onto it fails.
        shutil.rmtree(os.path.dirname(
            vcsim_view.local_path(self.vcsim, new_path)))

        try:
            self.swap(server, old_id, new_id)
        except client.OpenStackApiException:
            pass  # the compute's error, the cast being a call here
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})
        # The compute's swap failed, saying why.
        [action] = [a for a in self.api.get_instance_actions(server['id'])
                    if a['action'] == 'swap_volume']
        [event] = self.api.api_get('/servers/%s/os-instance-actions/%s' % (
            server['id'], action['request_id'])).body[
                'instanceAction']['events']
        self.assertEqual('Error', event['result'])
        self.assertIn('is attached again with its data', event['details'])

        self.assertEqual([old_id], self.attached_ids(server))
        [(_bus, disk)] = self.volume_disks(server)
        self.assertEqual(
            (old_path, old_disk.controllerKey, old_disk.unitNumber,
             old_disk.backing.uuid),
            (disk.backing.fileName, disk.controllerKey, disk.unitNumber,
             disk.backing.uuid))
        self.assertEqual(old_disk.backing.uuid, vcsim_view.extra_config(
            self.vcsim, server['id'], 'volume-%s' % old_id))
        self.assertIsNone(vcsim_view.extra_config(
            self.vcsim, server['id'], 'volume-%s' % new_id))
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, old_path, '-flat'))
        self.assertEqual(old_path, self.shadow_disk_path(old_shadow))
        self.detach(server, old_id)
        self._delete_server(server)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, old_path, '-flat'))

    def test_extended_volume_grows_on_the_server(self):
        data = b'growing!' * (VOLUME_BYTES // 8)
        volume_id, _shadow, path = self.make_volume(data)
        server = self.boot(self.upload_flat_vmdk('vol-extend')['id'])
        self.attach(server, volume_id)
        [(_bus, before)] = self.volume_disks(server)
        self.assertEqual(VOLUME_BYTES, before.capacityInBytes)
        self.assertTrue(self.driver.capabilities['supports_extend_volume'])

        # Cinder extended the volume to 3 GB and tells Nova.
        self.cinder_reports(volume_id, size=3)
        [event] = self.api.create_server_external_events([{
            'name': 'volume-extended', 'server_uuid': server['id'],
            'tag': volume_id}])
        self.assertEqual('completed', event['status'])

        [(_bus, disk)] = self.volume_disks(server)
        self.assertEqual(
            (path, before.unitNumber, 3 * 1024 ** 3, before.backing.uuid),
            (disk.backing.fileName, disk.unitNumber, disk.capacityInBytes,
             disk.backing.uuid))
        self.assertEqual('poweredOn', vcsim_view.vm_of(
            self.vcsim, server['id']).runtime.powerState)
        actions = [a['action']
                   for a in self.api.get_instance_actions(server['id'])]
        self.assertIn('extend_volume', actions)
        self.detach(server, volume_id)
        self._delete_server(server)
        self.assertEqual(data, vcsim_view.read_datastore_file(
            self.vcsim, path, '-flat'))
