"""The shared datastore image cache, through Nova and against vcsim."""

import json
import os
import threading
import time

from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from vcdriver import audit
from vcdriver import conf
from vcdriver.images import cache as image_cache
from vcdriver.images import disk_import
from vcdriver.images import glance as glance_image
from vcdriver.vsphere import files

CONF = conf.CONF


def image_uploads(case, image_id):
    """How often the image's disk crossed the wire since the simulator's
    last reset: flat PUTs of its extent, and import leases sent its
    grains."""
    flat = sum(n for path, n in case.vcsim.stats()['folder_puts'].items()
               if image_id in path and path.endswith('-flat.vmdk'))
    return flat + sum(
        1 for lease in case.import_leases() for f in lease['files']
        if image_id in f['file'] and f['bytes_received'])


class TestImageCacheThroughNova(nova_harness.VcdriverTestCase):
    cast_as_call = False

    def test_concurrent_boots_download_once(self):
        image = self.upload_flat_vmdk('cache-10', size=8 * 1024 * 1024)
        self.vcsim.reset_stats()
        # One multi-create request: the scheduler places all ten, then the
        # compute builds them concurrently.
        request = self._build_server(image_uuid=image['id'], flavor_id='1',
                                     networks='none')
        request.update(min_count=10, max_count=10,
                       return_reservation_id=True)
        reservation = self.api.post_server({'server': request})
        servers = self.api.get_servers(
            search_opts={'reservation_id': reservation['reservation_id']})
        self.assertEqual(10, len(servers))
        servers = [self._wait_for_state_change(s, 'ACTIVE', max_retries=240)
                   for s in servers]
        self.assertEqual(1, image_uploads(self, image['id']),
                         'the image crossed the wire more than once')
        cache_root = os.path.join(self.vcsim.datastores['nfs0'],
                                  'vcdriver_image_cache')
        self.assertEqual([image['id']], sorted(
            n for n in os.listdir(cache_root) if n.startswith(image['id'])),
            'locks or partial downloads left behind')
        for server in servers:
            self.assertEqual(*vcsim_view.root_disk_and_image(
                self.vcsim, server['id'],
                self.glance.image_path(image['id'])))

        for server in servers:
            self._delete_server(server)

        # A later boot copies from the cache: no upload at all.
        self.vcsim.reset_stats()
        again = self.boot(image['id'])
        self.assertEqual(0, image_uploads(self, image['id']))
        self._delete_server(again)

    def test_cut_stream_leaves_no_entry(self):
        image = self.upload_flat_vmdk('cache-cut', size=8 * 1024 * 1024)
        with open(self.glance.image_path(image['id']), 'r+b') as f:
            f.truncate(4 * 1024 * 1024)  # Glance now serves half of it
        before = self.datastore_files()
        server = self.boot(image['id'], expected='ERROR')
        self.assertIn('could not be transferred', server['fault']['message'])
        self.assertIn('4194304', server['fault']['message'])
        self.assertEqual(before, self.datastore_files(),
                         'files left on the datastore')
        self._delete_server(server)


class TestImagePrecache(nova_harness.VcdriverTestCase):
    clusters = ('DC0_C0', 'DC0_C1')

    def test_aggregate_precache_fills_the_cache_once(self):
        image = self.upload_flat_vmdk('precache', size=8 * 1024 * 1024)
        aggregate = self.api.post_aggregate(
            {'aggregate': {'name': 'vc-precache'}})
        self.api.add_host_to_aggregate(aggregate['id'], self.compute_host)
        self.vcsim.reset_stats()
        # Nova's API (2.81): the conductor asks each compute service of
        # the aggregate to cache the images.
        self.api.api_post('/os-aggregates/%s/images' % aggregate['id'],
                          {'cache': [{'id': image['id']}]},
                          check_response_status=[202])
        # Both clusters share nfs0: one download serves both.
        self.assertEqual(1, image_uploads(self, image['id']))
        entry = os.path.join(self.vcsim.datastores['nfs0'],
                             'vcdriver_image_cache', image['id'])
        self.assertTrue(os.path.isdir(entry))
        # Asked again: nothing crosses the wire.
        self.vcsim.reset_stats()
        self.api.api_post('/os-aggregates/%s/images' % aggregate['id'],
                          {'cache': [{'id': image['id']}]},
                          check_response_status=[202])
        self.assertEqual(0, image_uploads(self, image['id']))
        # The first boot takes it from the cache.
        server = self.boot(image['id'])
        self.assertEqual(0, image_uploads(self, image['id']))
        self._delete_server(server)


class TestDatastoreCache(nova_harness.VcdriverTestCase):
    """The cache's locking and ageing, driven directly on vcsim."""

    def setUp(self):
        super().setUp()
        self.session = self.driver._session
        self.cluster = next(iter(self.driver._clusters.values()))
        self.cache = image_cache.DatastoreCache(self.session, self.cluster,
                                                'nfs0')
        self.root = os.path.join(self.vcsim.datastores['nfs0'],
                                 'vcdriver_image_cache')
        self.flags(image_cache_lock_stale_seconds=3, group='vcdriver')

    def _names(self, prefix):
        """Cache folder names of this test's images (the vcsim is shared)."""
        return sorted(n for n in os.listdir(self.root)
                      if n.startswith(prefix))

    def _image(self, image_id):
        return glance_image.Image(
            id=image_id, name='x', size=1024, disk_format='vmdk',
            container_format='bare', hash_algo='sha512', hash_value='0',
            properties={})

    def _fetch(self, calls, delay=0.0):
        def fetch(disk_path):
            calls.append(str(disk_path))
            time.sleep(delay)
            folder = os.path.join(self.vcsim.datastores['nfs0'],
                                  os.path.dirname(disk_path.rel_path))
            with open(os.path.join(folder, disk_path.basename), 'w') as f:
                f.write('disk')
            return 1024
        return fetch

    def _dead_lock(self, image, token):
        """The lock of a fill whose service died a minute ago."""
        os.makedirs(os.path.join(self.root, image.id + '.lock'))
        with open(os.path.join(self.root, image.id + '.lock', 'owner'),
                  'w') as f:
            json.dump({'owner': 'dead-host pid 1', 'token': token,
                       'heartbeat': self.session.current_time() - 60}, f)

    def _dead_import(self, image, token):
        """What a service that died mid-import leaves: its lock, its
        partial folder and the shell VM its import lease made (vCenter
        would remove the shell only when the lease times out). The
        shell's name."""
        self._dead_lock(image, token)
        partial = self.cache.root.join('%s.partial-%s' % (image.id, token))
        files.make_directory(self.session, self.cluster.datacenter_ref,
                             partial)
        dead = disk_import.DiskImport(
            self.session, self.cluster, None,
            partial.join(image.id + '.vmdk'), 1024 * 1024, 'lsiLogic',
            progress=lambda: 0)
        self.addCleanup(dead.lease.abort)
        return 'vcdriver-import-%s.partial-%s' % (image.id, token)

    def test_second_service_waits_for_the_first(self):
        image = self._image('11111111-0000-4000-8000-000000000001')
        calls, results = [], []
        # Two "services": bypass the in-process lock so that only the
        # datastore lock keeps them apart.
        threads = [threading.Thread(target=lambda: results.append(
            self.cache._ensure(image, self._fetch(calls, delay=1.0),
                               '%s.vmdk' % image.id)))
            for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(1, len(calls))
        self.assertEqual([1024, 1024], [r.virtual_size for r in results])
        self.assertEqual([image.id], self._names(image.id))

    def test_stale_lock_is_taken_over_with_its_partial(self):
        image = self._image('11111111-0000-4000-8000-000000000002')
        self._dead_lock(image, 'deadbeef')
        os.makedirs(os.path.join(self.root, image.id + '.partial-deadbeef'))
        calls = []
        entry = self.cache.ensure(image, self._fetch(calls))
        self.assertEqual(1, len(calls))
        self.assertEqual(1024, entry.virtual_size)
        self.assertEqual([image.id], self._names(image.id))

    def test_stale_lock_takeover_removes_the_dead_fills_import_shell(self):
        # A service died mid-import (_dead_import).
        image = self._image('11111111-0000-4000-8000-000000000003')
        shell = self._dead_import(image, 'cafe')
        self.assertEqual([shell], self.import_shells())
        report = audit.audit(self.session, [self.cluster], [], CONF)
        self.assertIn(shell, [d['detail'].split()[1]
                              for d in report.cache_debris
                              if d['kind'] == 'import shell VM'])
        calls = []
        entry = self.cache.ensure(image, self._fetch(calls))
        self.assertEqual(1, len(calls))
        self.assertEqual(1024, entry.virtual_size)
        self.assertEqual([], self.import_shells())
        self.assertEqual([image.id], self._names(image.id))

    def test_ageing_removes_a_dead_fill_no_spawn_needs(self):
        # A service died mid-import of an image that no spawn needs on
        # this datastore again: the periodic ageing takes its stale lock
        # over, with its partial folder and shell VM; a live fill's lock
        # stays.
        dead_image = self._image('11111111-0000-4000-8000-000000000004')
        self._dead_import(dead_image, 'f00d')
        live_image = self._image('11111111-0000-4000-8000-000000000005')
        live = image_cache._Lock(self.cache, live_image.id)
        self.assertTrue(live.acquire())
        self.addCleanup(live.release)
        self.driver.manage_image_cache(None, [])
        self.assertEqual([], self.import_shells())
        self.assertEqual([], self._names(dead_image.id))
        self.assertEqual([live_image.id + '.lock'],
                         self._names(live_image.id))

    def test_ageing_keeps_used_and_recent_entries(self):
        used, old, fresh = (self._image(
            '11111111-0000-4000-8000-00000000001%d' % i) for i in range(3))
        for image in (used, old, fresh):
            self.cache.ensure(image, self._fetch([]))
        now = self.session.current_time()
        for image, age in ((used, 10 ** 6), (old, 10 ** 6), (fresh, 10)):
            with open(os.path.join(self.root, image.id, 'last-used'),
                      'w') as f:
                json.dump({'time': now - age}, f)
        orphan = os.path.join(self.root, old.id + '.partial-0123abcd')
        os.makedirs(orphan)
        self.flags(remove_unused_original_minimum_age_seconds=3600,
                   group='image_cache')
        instance = type('I', (), {'image_ref': used.id})()
        self.driver.manage_image_cache(None, [instance])
        self.assertEqual(sorted([used.id, fresh.id]),
                         self._names('11111111-0000-4000-8000-00000000001'))
        with open(os.path.join(self.root, used.id, 'last-used')) as f:
            self.assertGreater(json.load(f)['time'], now - 60,
                               'a used image was not marked as used')
