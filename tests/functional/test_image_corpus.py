"""The whole image corpus of tests/unit/test_formats_corpus.py (qemu-img
at every format it writes that the driver takes, bare and in OVAs, of
disks of awkward sizes, an all-zero one and a 2 GiB one holding 8 MiB)
boots through Nova; for each, qemu-img compares the image with the disk
vCenter's datastore holds, all-zero grains never crossed, and what
crossed and what the disk allocates stay within the image's data.
"""

import os
import pathlib

import fixtures

from tests.functional import test_image_import as image_import
from tests.functional import vcsim_view
from tests.harness import nova as nova_harness
from tests.unit import formats_fixtures as ff
from tests.unit import test_formats_corpus as corpus_mod

# Glance would store the 2 GiB raw disk whole: the one image left out.
SKIPPED = {('sparse-2g', 'raw')}


class TestCorpusBoots(nova_harness.VcdriverTestCase):

    def setUp(self):
        super().setUp()
        self.corpus = corpus_mod.Corpus(pathlib.Path(
            self.useFixture(fixtures.TempDir()).path))
        # Root disks as large as the biggest image: no grown copy.
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=2,
                                          ephemeral=0)

    def _boot_every_source(self, fmt):
        _made, disk_format, container, disktype, _found = (
            corpus_mod.FORMATS[fmt])
        for source in corpus_mod.SOURCES:
            if (source, fmt) in SKIPPED:
                continue
            path, oracle_path, oracle_fmt = self.corpus.image(source, fmt)
            args = dict(disk_format=disk_format, container_format=container)
            if disktype:
                args['vmware_disktype'] = disktype
            name = '%s.%s' % (source, fmt)
            with self.subTest(image=name):
                image = self.glance.upload(ff.read(path), name, **args)
                before = self.import_leases()
                server = self.boot(image['id'], flavor_id=self.flavor)
                extent = vcsim_view.cache_extent(self.vcsim, image['id'])
                ff.qemu_img('compare', '-q', '-f', oracle_fmt, oracle_path,
                            '-F', 'raw', extent)
                sent = [x for x in self.import_leases() if x not in before]
                self.assertEqual(1, len(sent))
                disk = [f for f in sent[0]['files'] if f['disk']][0]
                self.assertEqual(0, disk['zero_grains'])
                budget = image_import.data_sized(
                    ff.data_bytes(self.corpus.source(source)))
                self.assertLessEqual(sent[0]['bytes_received'], budget)
                self.assertLessEqual(os.stat(extent).st_blocks * 512,
                                     budget)
                self._delete_server(server)


def _test(fmt):
    def test(self):
        self._boot_every_source(fmt)
    test.__name__ = 'test_%s' % fmt.replace('-', '_')
    test.__doc__ = 'Every corpus disk as %s boots, its disk equal.' % fmt
    return test


for _fmt in corpus_mod.FORMATS:
    setattr(TestCorpusBoots, 'test_%s' % _fmt.replace('-', '_'),
            _test(_fmt))
