"""Flavor extra specs and image properties through real Nova on vcsim:
what each sets is read back from vCenter's VM configuration at spawn,
after a resize to a flavor with other values, and after its revert; an
invalid or impossible value fails the build before any VM or file
exists, or rolls the resize back, with an error naming it.

Simulated: vcsim runs hardware versions up to vmx-21 (ESXi 8.0.2 hosts)
and its hosts' CPUs run at a fixed MHz; a CreateVM_Task's video card is
its own (the driver edits the card afterwards, as on vCenter).
"""

from unittest import mock

from pyVmomi import vim

from tests.functional import vcsim_view
from tests.functional.test_resize import ResizeTestBase
from vcdriver import lifecycle


def quota(resource, limit, reservation, level, share=None):
    specs = {'quota:%s_limit' % resource: str(limit),
             'quota:%s_reservation' % resource: str(reservation),
             'quota:%s_shares_level' % resource: level}
    if share is not None:
        specs['quota:%s_shares_share' % resource] = str(share)
    return specs


# Two flavors' worth of every spec, each value different between them
# (vcsim's hosts have 2 CPU threads: neither flavor can have more vCPUs).
SPECS_A = {
    **quota('cpu', 1000, 200, 'high'),
    **quota('memory', 512, 128, 'custom', 2000),
    **quota('disk_io', 500, 10, 'low'),
    **quota('vif', 100, 5, 'custom', 70),
    'hw:cpu_sockets': '1',
    'hw_video:ram_max_mb': '64',
    'vmware:hw_version': 'vmx-13',
}
SPECS_B = {
    **quota('cpu', 3000, 400, 'custom', 4000),
    **quota('memory', 0, 256, 'low'),
    **quota('disk_io', 800, 20, 'custom', 900),
    **quota('vif', 200, 0, 'high'),
    'hw:cpu_sockets': '2',
    'hw_video:ram_max_mb': '32',
    'vmware:hw_version': 'vmx-15',
}
IMAGE_PROPERTIES = {
    'vmware_ostype': 'ubuntu64Guest', 'hw_firmware_type': 'uefi',
    'os_secure_boot': 'required', 'hw_video_ram': '32',
}


def allocation(info):
    """(limit, reservation, shares level, custom shares) of any of
    vSphere's allocation infos (a NIC's shares are ``share``)."""
    shares = getattr(info, 'shares', None) or info.share
    return (info.limit, info.reservation, shares.level,
            shares.shares if shares.level == 'custom' else None)


def expected(specs, resource):
    key = 'quota:%s_' % resource
    limit = int(specs[key + 'limit']) or -1
    share = specs.get(key + 'shares_share')
    return (limit, int(specs[key + 'reservation']),
            specs[key + 'shares_level'], int(share) if share else None)


class TestExtraSpecs(ResizeTestBase):

    def setUp(self):
        super().setUp()
        self.flavor_a = self._create_flavor(
            memory_mb=512, vcpu=2, disk=1, ephemeral=1, name='specs-a',
            extra_spec=SPECS_A)
        self.flavor_b = self._create_flavor(
            memory_mb=1024, vcpu=2, disk=2, ephemeral=1, name='specs-b',
            extra_spec=SPECS_B)
        self.specs_image = self.upload_flat_vmdk('specs', size=1024 * 1024,
                                                 **IMAGE_PROPERTIES)

    def _config(self, server):
        """What vCenter shows of every spec and property."""
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        disks = [d for _bus, d in vcsim_view.disks(self.vcsim,
                                                   server['id'])]
        nics = vcsim_view.devices(self.vcsim, server['id'],
                                  vim.vm.device.VirtualEthernetCard)
        video, = vcsim_view.devices(self.vcsim, server['id'],
                                    vim.vm.device.VirtualVideoCard)
        return {
            'cpu': allocation(vm.config.cpuAllocation),
            'memory': allocation(vm.config.memoryAllocation),
            'disk_io': {allocation(d.storageIOAllocation) for d in disks},
            'disks': len(disks),
            'vif': {allocation(n.resourceAllocation) for n in nics},
            'nics': len(nics),
            'cores_per_socket': vm.config.hardware.numCoresPerSocket,
            'video_ram_kb': video.videoRamSizeInKB,
            'hw_version': vm.config.version,
            'guest_id': vm.config.guestId,
            'firmware': vm.config.firmware,
            'secure_boot': vm.config.bootOptions.efiSecureBootEnabled,
        }

    def _expected(self, specs, cores, hw_version):
        return {
            'cpu': expected(specs, 'cpu'),
            'memory': expected(specs, 'memory'),
            'disk_io': {expected(specs, 'disk_io')}, 'disks': 2,
            'vif': {expected(specs, 'vif')}, 'nics': 1,
            'cores_per_socket': cores, 'video_ram_kb': 32 * 1024,
            'hw_version': hw_version, 'guest_id': 'ubuntu64Guest',
            'firmware': 'efi', 'secure_boot': True,
        }

    def test_specs_at_spawn_after_resize_and_revert(self):
        port = self.neutron_port('ovs', bridge_name='VM Network')
        server = self.boot(self.specs_image['id'], flavor_id=self.flavor_a,
                           node=self.c0, networks=[{'port': port['id']}])
        # 2 vCPU on one socket; root and ephemeral disk.
        self.assertEqual(self._expected(SPECS_A, 2, 'vmx-13'),
                         self._config(server))

        server = self._resize(server, self.flavor_b, self.c1)
        # 2 vCPU on two sockets; the hardware is upgraded.
        self.assertEqual(self._expected(SPECS_B, 1, 'vmx-15'),
                         self._config(server))
        self.assertEqual(('DC0_C1', 2, 1024), self._vcenter(server)[:3])

        self.api.post_server_action(server['id'], {'revertResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE',
                                             max_retries=120)
        # Flavor A's settings are back; vSphere cannot downgrade hardware.
        self.assertEqual(self._expected(SPECS_A, 2, 'vmx-15'),
                         self._config(server))
        self._delete_server(server)

    def test_image_cpu_topology_and_plain_flavor(self):
        image = self.upload_flat_vmdk('topology', size=1024 * 1024,
                                      hw_cpu_cores='2')
        plain = self._create_flavor(memory_mb=512, vcpu=2, disk=1,
                                    ephemeral=0, name='plain')
        server = self.boot(image['id'], flavor_id=plain, node=self.c0)
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        self.assertEqual(2, vm.config.hardware.numCoresPerSocket)
        self.assertEqual((-1, 0, 'normal', None),
                         allocation(vm.config.cpuAllocation))
        self.assertEqual('bios', vm.config.firmware)
        # To a flavor without specs: vSphere's defaults stay.
        server = self._resize(server, self.big, self.c0)
        vm = vcsim_view.vm_of(self.vcsim, server['id'])
        self.assertEqual(2, vm.config.hardware.numCoresPerSocket)
        self.assertEqual((-1, 0, 'normal', None),
                         allocation(vm.config.memoryAllocation))
        self.api.post_server_action(server['id'], {'confirmResize': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self._delete_server(server)


class TestInvalidSpecs(ResizeTestBase):
    # Casts stay casts: the compute's refusal must not reach the API call.
    cast_as_call = False

    def _flavor(self, name, extra_spec, memory_mb=512, vcpu=1):
        """A flavor with extra specs as Nova before 2.86 takes them:
        unchecked (from 2.86 its API refuses some of these itself)."""
        self.api.microversion = '2.85'
        try:
            return self._create_flavor(memory_mb=memory_mb, vcpu=vcpu,
                                       disk=1, ephemeral=0, name=name,
                                       extra_spec=extra_spec)
        finally:
            self.api.microversion = 'latest'

    def _assert_refused(self, image_id, flavor_id, message):
        before = self.datastore_files()
        server = self.boot(image_id, flavor_id=flavor_id, expected='ERROR',
                           node=self.c0)
        self.assertIn(message, server['fault']['message'])
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))
        self.assertEqual(before, self.datastore_files(),
                         'files left on the datastore')
        self._delete_server(server)

    def test_invalid_values_fail_the_build_before_any_vm(self):
        image = self.image['id']
        for name, specs, memory_mb, message in [
                ('reservation-above-flavor',
                 {'quota:memory_reservation': '1024'}, 512,
                 "quota:memory_reservation=1024: above the flavor's "
                 "memory_mb=512"),
                ('cpu-reservation-above-hosts',
                 {'quota:cpu_reservation': '1000000'}, 512,
                 "quota:cpu_reservation=1000000: above the flavor's 1 vCPU"),
                ('share-level', {'quota:cpu_shares_level': 'loud'}, 512,
                 'quota:cpu_shares_level=loud: not a share level'),
                ('custom-without-share',
                 {'quota:vif_shares_level': 'custom'}, 512,
                 'quota:vif_shares_level=custom: needs the number of '
                 'shares'),
                ('hw-version-unknown', {'vmware:hw_version': 'vmx-99'}, 512,
                 'vmware:hw_version=vmx-99: no host of the cluster runs it '
                 '(they run up to vmx-21)'),
                ('hw-version-malformed', {'vmware:hw_version': '13'}, 512,
                 'vmware:hw_version=13: not a vSphere hardware version')]:
            with self.subTest(name):
                self._assert_refused(
                    image, self._flavor(name, specs, memory_mb), message)

    def test_memory_not_in_4_mb_fails_in_prepare_for_spawn(self):
        """Nova's early driver check refuses it: the build is aborted
        (InstanceUnacceptable, not rescheduled), naming the value, before
        block devices are mapped or the spawn asks vCenter anything."""
        flavor = self._flavor('memory-granule', {}, 510)
        before = self.datastore_files()
        with mock.patch.object(lifecycle, 'spawn',
                               wraps=lifecycle.spawn) as spawn:
            server = self.boot(self.image['id'], flavor_id=flavor,
                               expected='ERROR', node=self.c0)
        spawn.assert_not_called()
        self.assertEqual(
            'Build of instance %s aborted: Instance %s is unacceptable: '
            'memory_mb=510: vSphere needs a multiple of 4 MB'
            % (server['id'], server['id']), server['fault']['message'])
        self.assertIsNone(vcsim_view.vm_of(self.vcsim, server['id']))
        self.assertEqual(before, self.datastore_files(),
                         'files left on the datastore')
        self._delete_server(server)

    def test_invalid_image_properties_fail_the_build_before_any_vm(self):
        flavor = self._flavor('video-max', {'hw_video:ram_max_mb': '16'})
        for properties, message in [
                ({'hw_video_ram': '32'},
                 "hw_video_ram=32: above the flavor's "
                 "hw_video:ram_max_mb=16"),
                ({'hw_firmware_type': 'bios', 'os_secure_boot': 'required'},
                 'os_secure_boot=required: secure boot needs '
                 'hw_firmware_type=uefi (it is bios)')]:
            with self.subTest(properties):
                image = self.upload_flat_vmdk('bad-props', size=1024 * 1024,
                                              **properties)
                self._assert_refused(image['id'], flavor, message)

    def test_invalid_resize_target_is_rolled_back(self):
        server = self.boot(self.image['id'], flavor_id=self._flavor(
            'v15', {'vmware:hw_version': 'vmx-15'}), node=self.c0)
        self._schedule_to(self.c1)
        for count, (name, specs, message) in enumerate([
                ('loud', {'quota:cpu_shares_level': 'loud'},
                 'quota:cpu_shares_level=loud: not a share level'),
                ('downgrade', {'vmware:hw_version': 'vmx-13'},
                 "vmware:hw_version=vmx-13: below the VM's hardware "
                 'version vmx-15')], 1):
            with self.subTest(name):
                flavor = self._flavor(name, specs, memory_mb=1024)
                self.api.post_server_action(
                    server['id'], {'resize': {'flavorRef': flavor}})
                server = self._wait_for_server_parameter(
                    server, {'status': 'ACTIVE',
                             'OS-EXT-STS:task_state': None},
                    max_retries=120)
                self._wait_for_refusals(server, count)
                self.assertIn(message, self.stdlog.logger.output)
                self.assertEqual(('DC0_C0', 1, 512),
                                 self._vcenter(server)[:3])
                vm = vcsim_view.vm_of(self.vcsim, server['id'])
                self.assertEqual(('vmx-15', 'poweredOn'),
                                 (vm.config.version, vm.runtime.powerState))
        self._delete_server(server)
