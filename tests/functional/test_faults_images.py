"""Issue 6 fault scenarios, part B, through real Nova on vcsim: images
that break on the way (a Glance stream cut short, bytes that do not match
Glance's hash), vCenter out of room (Nova reschedules), hostile image
metadata, and server names with any Unicode.

Each test ends with the final state asserted and the leak audit clean.
"""

import os
import re
import tarfile

import fixtures
from nova.tests.functional.api import client

from tests.functional import audit_helpers
from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.harness import vcsim as vcsim_harness
from tests.unit import formats_fixtures as ff
from vcdriver import conf as vc_conf

MiB = 1024 * 1024
EiB = 1 << 60


def _cache_folder():
    return vc_conf.CONF.vcdriver.image_cache_folder


class _ImageFaults(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(self.vcsim.clear_faults)

    def cache_files(self, image_id):
        """Files of the image's cache entry, partial downloads and lock."""
        prefix = '%s/%s' % (_cache_folder(), image_id)
        return {f for f in self.datastore_files() if f.startswith(prefix)}

    def outside_files(self):
        """What is next to the datastore, to catch writes that leave it."""
        root = os.path.dirname(self.vcsim.datastores['nfs0'].rstrip('/'))
        return set(os.listdir(root))

    def assert_refused(self, image, *words, **boot_args):
        """The server ends in ERROR with a fault saying ``words``; no VM,
        no file, no cache entry is left; returns the fault message."""
        before, outside = self.datastore_files(), self.outside_files()
        server = self.boot(image['id'], expected='ERROR', **boot_args)
        fault = server['fault']['message']
        for word in words:
            self.assertIn(word, fault)
        self.assertNotIn('Traceback', fault)
        self.assertIsNone(self.instance_vm(server))
        self.assertEqual(before, self.datastore_files(),
                         'files left on the datastore')
        self.assertEqual(set(), self.cache_files(image['id']))
        self.assertEqual(outside, self.outside_files(),
                         'files written next to the datastore')
        self._delete_server(server)
        audit_helpers.assert_clean(self)
        return fault


class TestGlanceStreamCut(nova_harness.GlanceBehindProxy, _ImageFaults):
    """Nova's Glance endpoint is a FaultyProxy in front of the real one."""

    def test_cut_at_half_fails_cleanly_then_boots(self):
        image = self.upload_flat_vmdk('cut', size=8 * MiB)
        self.proxy.arm(cut_after_percent=50, image_id=image['id'])
        fault = self.assert_refused(image, image['id'], 'could not be '
                                    'transferred', 'the download from '
                                    'Glance broke off after')
        got = int(re.search(r'after (\d+) of %d bytes' % (8 * MiB),
                            fault).group(1))
        self.assertLess(got, 8 * MiB)
        self.assertEqual((1, 1), (self.proxy.hits, self.proxy.downloads))

        self.proxy.clear()
        server = self.boot(image['id'])
        self.assertEqual('poweredOn',
                         self.instance_vm(server).runtime.powerState)
        self.assertEqual(*vcsim_view.root_disk_and_image(
            self.vcsim, server['id'], self.glance.image_path(image['id'])))
        cached = self.cache_files(image['id'])
        self.assertIn('%s/%s/%s.vmdk' % (_cache_folder(), image['id'],
                                         image['id']), cached)
        self.assertFalse([f for f in cached if '.partial-' in f
                          or '.lock' in f], cached)
        audit_helpers.assert_clean(self)
        self._delete_server(server)
        self.assertIsNone(self.instance_vm(server))
        audit_helpers.assert_clean(self)


class TestImageBytes(_ImageFaults):

    def test_checksum_mismatch(self):
        image = self.upload_flat_vmdk('corrupt-b')
        self.glance.corrupt(image['id'])
        # Nova keeps 255 characters of the message: not both hashes.
        self.assert_refused(image, image['id'], 'is corrupt', 'sha512')

    # -- hostile metadata --------------------------------------------------

    def test_path_traversal_in_name_and_properties(self):
        # Nothing takes a path from the image's name or properties: it
        # boots, its files in [nfs0] <uuid>/ and the cache entry only.
        image = self.upload_flat_vmdk('../../etc/x', vmware_ostype='../x/y',
                                      os_distro='../../etc/passwd')
        before, outside = self.datastore_files(), self.outside_files()
        server = self.boot(image['id'])
        vm = self.instance_vm(server)
        self.assertRegex(vm.config.files.vmPathName,
                         r'^\[nfs0\] %s/[^/]+\.vmx$' % server['id'])
        new = self.datastore_files() - before
        self.assertIn('%s/%s.vmdk' % (server['id'], server['id']), new)
        self.assertEqual(set(), {f for f in new if not f.startswith(
            (server['id'] + '/', '%s/%s/' % (_cache_folder(),
                                             image['id'])))})
        self.assertEqual(outside, self.outside_files())
        audit_helpers.assert_clean(self)
        self._delete_server(server)
        self.assertIsNone(self.instance_vm(server))
        self.assertEqual(set(), {f for f in self.datastore_files()
                                 if f.startswith(server['id'])})
        audit_helpers.assert_clean(self)

    def test_absurd_qcow2_virtual_size(self):
        path = os.path.join(self.tmp, 'huge.qcow2')
        ff.qemu_img('create', '-f', 'qcow2', '-o', 'cluster_size=2M', path,
                    '1P')
        image = self.glance.upload(path, 'huge-qcow2', disk_format='qcow2',
                                   container_format='bare')
        self.assert_refused(image, 'virtual size', str(1 << 50))

    def test_absurd_vmdk_capacity(self):
        data = ff.stream_vmdk_by_hand(EiB, [])
        image = self.glance.upload(data, 'huge-vmdk', disk_format='vmdk',
                                   vmware_disktype='streamOptimized')
        self.assert_refused(image, 'virtual size', str(EiB))

    def test_unknown_adapter_type(self):
        # Nova's API checks vmware_adaptertype against its SCSI models.
        image = self.upload_flat_vmdk('nvme-x', vmware_adaptertype='nvme-x')
        before = self.datastore_files()
        error = self.assertRaises(client.OpenStackApiException,
                                  self.create_server, image['id'])
        self.assertEqual(400, error.response.status_code)
        self.assertIn('nvme-x is invalid', str(error))
        self.assertEqual(before, self.datastore_files())
        self.assertEqual([], self.api.get_servers())
        audit_helpers.assert_clean(self)

    def test_adapter_type_nova_knows_but_vcenter_does_not(self):
        image = self.upload_flat_vmdk('virtio-scsi',
                                      vmware_adaptertype='virtio-scsi')
        self.assert_refused(image,
                            'vmware_adaptertype virtio-scsi is unknown')

    def test_unknown_disk_type(self):
        image = self.upload_flat_vmdk('odd-type', vmware_disktype='bogus')
        self.assert_refused(image, 'vmware_disktype bogus is not supported')

    def test_stream_optimized_that_is_raw(self):
        image = self.upload_flat_vmdk('lying-stream',
                                      vmware_disktype='streamOptimized')
        self.assert_refused(image, 'vmware_disktype=streamOptimized',
                            'not a sparse VMDK')

    def test_qcow2_that_is_raw(self):
        image = self.glance.upload(ff.source_disk(size=MiB), 'lying-qcow2',
                                   disk_format='qcow2',
                                   container_format='bare')
        self.assert_refused(image, 'declared disk_format=qcow2',
                            'raw disk')

    def test_flat_disk_type_on_sparse_bytes(self):
        raw = ff.write(os.path.join(self.tmp, 'disk.raw'),
                       ff.source_disk(size=MiB))
        sparse = ff.convert(raw, os.path.join(self.tmp, 'disk.vmdk'),
                            'vmdk', '-o', 'subformat=monolithicSparse')
        image = self.glance.upload(sparse, 'lying-flat', disk_format='vmdk',
                                   vmware_disktype='preallocated')
        self.assert_refused(image, 'vmware_disktype=preallocated',
                            'sparse (monolithicSparse) VMDK')

    # -- tar bombs -------------------------------------------------------

    def _ova(self, data, name):
        return self.glance.upload(data, name, disk_format='vmdk',
                                  container_format='ova')

    def test_ova_with_too_many_members(self):
        members = [('f%04d.txt' % i, b'x') for i in range(150)]
        image = self._ova(ff.ova(members + [('disk.vmdk', bytes(MiB))]),
                          'bomb-many')
        self.assert_refused(image, 'more than 100 members')

    def test_ova_member_leaving_the_archive(self):
        image = self._ova(ff.ova([('../../../tmp/evil.vmdk', bytes(MiB))]),
                          'bomb-traversal')
        self.assert_refused(image, 'leaves the archive')

    def test_ova_absolute_member_name(self):
        image = self._ova(ff.ova([('/etc/evil.vmdk', bytes(MiB))],
                                 fmt=tarfile.GNU_FORMAT), 'bomb-absolute')
        self.assert_refused(image, 'leaves the archive')

    def test_ova_member_declaring_a_huge_size(self):
        # A pax header says the disk is 1 EiB; 1 MiB follows.
        info = tarfile.TarInfo('disk.vmdk')
        info.size = EiB
        data = info.tobuf(tarfile.PAX_FORMAT) + bytes(MiB) + bytes(1024)
        image = self._ova(data, 'bomb-huge')
        self.assert_refused(image, 'virtual size', str(EiB))

    def test_ova_with_huge_descriptor(self):
        info = tarfile.TarInfo('disk.ovf')
        info.size = 8 * EiB // 8
        data = info.tobuf(tarfile.PAX_FORMAT) + bytes(4096)
        image = self._ova(data, 'bomb-ovf')
        self.assert_refused(image, 'disk.ovf', 'refusing')


class TestUnicodeNames(_ImageFaults):

    NAMES = (
        'symbols \u2603\u2764\u262f \u00a9\u2122 \u20ac\u00a5',
        '\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 rtl',
        'combining e\u0301\u0308\u0323 a\u030a',
        '\u4e2d\u6587\u540d\u5b57 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4',
        'a/b/../../c %2f %25 \\x\\ "quoted" \'single\' <tag> &amp;',
        '../../../../../../tmp/escape',
        '..\\..\\..\\windows',
        '\u00e9' * 30 + '\u4e2d' * 30 + '/' * 30,
    )
    # Nova's API takes no character beyond the BMP (emoji) in a name.
    REFUSED = ('emoji \U0001f680\U0001f525', '\U0001f600' * 90)

    def test_names_nova_refuses(self):
        image = self.upload_flat_vmdk('emoji')
        before = self.datastore_files()
        for display in self.REFUSED:
            error = self.assertRaises(client.OpenStackApiException,
                                      self.create_server, image['id'],
                                      name=display)
            self.assertEqual(400, error.response.status_code)
        self.assertEqual([], self.api.get_servers())
        self.assertEqual(before, self.datastore_files())
        audit_helpers.assert_clean(self)

    def test_any_unicode_display_name(self):
        image = self.upload_flat_vmdk('unicode')
        before, outside = self.datastore_files(), self.outside_files()
        si = vcsim_harness.connect(self.vcsim)
        for display in self.NAMES:
            server = self.boot(image['id'], name=display)
            self.assertEqual(display, server['name'])
            vm = si.content.searchIndex.FindByUuid(
                None, server['id'], vmSearch=True, instanceUuid=True)
            self.assertIsNotNone(vm, display)
            # As vCenter keeps it: '%', '/' and '\\' escaped, 80 at most.
            stored = vm.name
            self.assertLessEqual(len(stored), 80, stored)
            name = re.sub('%(25|2f|5c)', lambda m: bytes.fromhex(
                m.group(1)).decode(), stored, flags=re.I)
            suffix = ' (%s)' % server['id']
            self.assertTrue(name.endswith(suffix), name)
            self.assertTrue(display.startswith(name[:-len(suffix)]), name)
            self.assertGreater(len(name), len(suffix) + 10, name)
            # The folder is the uuid; the files (named after the VM by
            # vCenter) are right in it, whatever the name holds.
            self.assertRegex(vm.config.files.vmPathName,
                             r'^\[nfs0\] %s/[^/]+\.vmx$' % server['id'])
            new = {f for f in self.datastore_files() - before
                   if not f.startswith(_cache_folder() + '/')}
            self.assertIn('%s/%s.vmdk' % (server['id'], server['id']), new)
            self.assertEqual(set(), {
                f for f in new if f.count('/') != 1 or not f.startswith(
                    server['id'] + '/')})
            self.assertEqual(outside, self.outside_files())
            audit_helpers.assert_clean(self)
            self._delete_server(server)
            self.assertIsNone(self.instance_vm(server))
            self.assertFalse([f for f in self.datastore_files()
                              if f.startswith(server['id'])])
        audit_helpers.assert_clean(self)


SECOND = 'compute-vc2'


class TestOutOfRoomReschedules(_ImageFaults):
    """Two compute services, one cluster each: a VM vCenter has no room
    for on the first goes to the other."""

    start_compute = False
    CLUSTERS = {'compute-vc': 'DC0_C0', SECOND: 'DC0_C1'}

    def setUp(self):
        super().setUp()
        self.compute, self.compute2 = self.start_computes(self.CLUSTERS)
        self.image = self.upload_flat_vmdk('room')

    def _build_hosts(self, server):
        """The hosts of the server's build attempts, first first."""
        actions = self.api.api_get(
            '/servers/%s/os-instance-actions' % server['id']
        ).body['instanceActions']
        create = [a for a in actions if a['action'] == 'create'][0]
        action = self.api.api_get('/servers/%s/os-instance-actions/%s' % (
            server['id'], create['request_id'])).body['instanceAction']
        build = 'compute__do_build_and_run_instance'
        events = sorted((e for e in action['events']
                         if e['event'] == build),
                        key=lambda e: e['start_time'])
        return [e['host'] for e in events]

    def _boot_rescheduled(self, *words,
                          exception='ComputeResourcesUnavailable'):
        before = self.datastore_files()
        server = self.boot(self.image['id'])
        first, last = self._build_hosts(server)
        self.assertNotEqual(first, last)
        self.assertEqual(last, server['OS-EXT-SRV-ATTR:host'])
        # What the first compute said, as Nova notified it.
        errors = [n for n in self.notifier.versioned_notifications
                  if n['event_type'] == 'instance.create.error']
        self.assertEqual(['nova-compute:%s' % first],
                         [n['publisher_id'] for n in errors])
        fault = errors[0]['payload']['nova_object.data']['fault'][
            'nova_object.data']
        self.assertEqual(exception, fault['exception'])
        message = fault['exception_message']
        for word in words:
            self.assertIn(word, message)
        vm = self.instance_vm(server)
        self.assertEqual(self.CLUSTERS[last], vm.runtime.host.parent.name)
        self.assertEqual('poweredOn', vm.runtime.powerState)
        new = self.datastore_files() - before
        self.assertEqual(set(), {
            f for f in new if not f.startswith(
                (server['id'] + '/', _cache_folder() + '/'))})
        for host, compute in self.computes.items():
            audit_helpers.assert_clean(self, compute=compute, host=host)
        self._delete_server(server)
        self.assertIsNone(self.instance_vm(server))
        for host, compute in self.computes.items():
            audit_helpers.assert_clean(self, compute=compute, host=host)
        return message

    def test_no_disk_space_at_create(self):
        self.vcsim.inject(kind='soap_fault', method='CreateVM_Task',
                          fault='NoDiskSpace', message='datastore nfs0 '
                          'is full', times=1)
        message = self._boot_rescheduled('vCenter refused the VM',
                                         'NoDiskSpace', 'datastore nfs0 '
                                         'is full')
        self.assertRegex(message, 'on cluster DC0_C[01]')
        self.assertEqual(1, self.vcsim.faults()[0]['hits'])

    def test_insufficient_resources_at_power_on(self):
        self.vcsim.inject(kind='task_fail', method='PowerOnVM_Task',
                          fault='InsufficientResourcesFault',
                          message='not enough memory for the VM', times=1)
        self._boot_rescheduled('vCenter refused the VM',
                               'InsufficientResourcesFault',
                               'not enough memory for the VM')
        self.assertEqual(1, self.vcsim.faults()[0]['hits'])

    def _datastore_full_during_the_upload(self, *words):
        # DatastoreFull is a ComputeResourcesUnavailable: Nova reschedules.
        self._boot_rescheduled('The datastore filled up while',
                               'HTTP 507', *words,
                               exception='DatastoreFull')
        self.assertEqual(1, self.vcsim.faults()[0]['hits'])
        # No partial download became (or stayed as) a cache entry, and
        # no import shell VM stayed.
        self.assertEqual([], [f for f in self.datastore_files()
                              if '.partial-' in f or '.lock' in f])
        self.assertEqual([], self.import_shells())

    def test_datastore_full_during_the_image_import(self):
        # ESX answers 507 after 16 KiB of the streamOptimized upload (the
        # test image deflates to a few dozen KiB) and reads no more.
        self.vcsim.inject(kind='http_error', target='nfc',
                          http_method='POST', status=507,
                          cut_after_bytes=16 * 1024, times=1)
        self._datastore_full_during_the_upload('.vmdk was written')

    def test_datastore_full_during_the_flat_upload(self):
        # The datastore answers 507 after 1 MiB of the 4 MiB image and
        # reads no more (thin disks of other VMs grew meanwhile).
        self.flags(image_upload_method='flat', group='vcdriver')
        self.vcsim.inject(kind='http_error', http_method='PUT',
                          path='-flat.vmdk', status=507,
                          cut_after_bytes=1024 * 1024, times=1)
        self._datastore_full_during_the_upload('-flat.vmdk was written')
