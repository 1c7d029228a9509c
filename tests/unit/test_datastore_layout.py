"""The names of vcdriver's files on datastores (vcdriver.datastore_layout).

These names are on datastores and in image caches shared by services of
every version: each expected string here is what the driver wrote before
the names had a module of their own, and must stay so. Each test also
reads back what it built.
"""

import subprocess
import sys

import pytest

from vcdriver import conf
from vcdriver import datastore_layout as layout

U = '11111111-1111-4111-8111-111111111111'
IMG = 'a8f1e2c0-0000-4000-8000-00000000abcd'
CACHE = 'vcdriver_image_cache'


def test_pure_no_pyvmomi_nova_or_configuration():
    code = ('import sys, vcdriver.datastore_layout; '
            'print(sorted({m.split(".")[0] for m in sys.modules}))')
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         capture_output=True, text=True).stdout
    for name in ('pyVmomi', 'nova', 'oslo_config'):
        assert "'%s'" % name not in out
    loaded = subprocess.run(
        [sys.executable, '-c', 'import sys, vcdriver.datastore_layout; '
         'print(sorted(m for m in sys.modules if m.startswith("vcdriver")))'],
        check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "['vcdriver', 'vcdriver.datastore_layout']"


# --- datastore paths ---------------------------------------------------------

@pytest.mark.parametrize('text,expected', [
    ('[ds1] a/b.vmdk', ('ds1', 'a/b.vmdk')),
    ('[ds1]/a/b', ('ds1', 'a/b')),      # vcsim's folderPath
    ('[ds1] a/', ('ds1', 'a')),
    ('[ds1]', ('ds1', '')),
    ('[ds 1] x', ('ds 1', 'x')),
    (' [ds1] x', (None, '[ds1] x')),
    ('a/b', (None, 'a/b')),
    ('', (None, '')),
    (None, (None, '')),
])
def test_split(text, expected):
    assert layout.split(text) == expected


@pytest.mark.parametrize('text', [None, '', 'a/b.vmdk', '[] a/b.vmdk'])
def test_parse_refuses_what_is_no_datastore_path(text):
    assert layout.parse(text) is None


@pytest.mark.parametrize('ds,parts,text', [
    ('nfs0', (U, U + '.vmdk'), '[nfs0] %s/%s.vmdk' % (U, U)),
    ('my datastore', ('a',), '[my datastore] a'),
    ('nfs0', (), '[nfs0]'),
])
def test_path_and_parse_round_trip(ds, parts, text):
    built = layout.path(ds, *parts)
    assert str(built) == text
    assert layout.parse(text) == built
    assert layout.parse(built) == built      # a DatastorePath is taken too
    assert layout.split(text) == (ds, '/'.join(parts))


def test_parse_takes_vcsims_slash():
    assert layout.parse('[nfs0]/%s/x.vmx' % U) == layout.path('nfs0', U,
                                                               'x.vmx')


def test_parse_url():
    dc, path = layout.parse_url(
        'vsphere://vc.example.org/folder/glance/%s?dcPath=DC0&dsName=nfs1'
        % IMG)
    assert (dc, str(path)) == ('DC0', '[nfs1] glance/%s' % IMG)


# --- an instance's folder ----------------------------------------------------

def folder(ds='nfs0'):
    return layout.instance_folder(ds, U)


def test_instance_folder():
    assert str(folder()) == '[nfs0] %s' % U
    assert layout.vm_path_name('nfs0', U) == '[nfs0] %s/' % U
    assert layout.vm_path_name('my datastore', U) == '[my datastore] %s/' % U
    ds, rel = layout.split(layout.vm_path_name('nfs0', U))
    assert (ds, layout.instance_uuid(rel)) == ('nfs0', U)


@pytest.mark.parametrize('rel,expected', [
    (U, U), (U.upper(), U), (U + '/x.vmdk', None), ('import', None),
    (CACHE, None), (U[:-1], None),
])
def test_instance_uuid(rel, expected):
    assert layout.instance_uuid(rel) == expected


def test_root_disk():
    root = layout.root_disk(folder(), U)
    assert str(root) == '[nfs0] %s/%s.vmdk' % (U, U)
    assert layout.is_root_disk(str(root), U)
    assert layout.is_root_disk(str(layout.root_disk(folder('other'), U)), U)
    for other in (layout.rescue_disk(folder(), U),
                  layout.resize_original(root),
                  layout.flat_extent(root),
                  folder().join(layout.SWAP_DISK)):
        assert not layout.is_root_disk(str(other), U)
    assert not layout.is_root_disk(None, U)
    assert not layout.is_root_disk('', U)


def test_ephemeral_swap_and_config_drive():
    assert [layout.ephemeral_disk_name(n) for n in range(3)] == [
        'ephemeral_0.vmdk', 'ephemeral_1.vmdk', 'ephemeral_2.vmdk']
    assert layout.SWAP_DISK == 'swap.vmdk'
    assert str(folder().join(layout.SWAP_DISK)) == '[nfs0] %s/swap.vmdk' % U
    assert str(layout.config_drive(folder())) == (
        '[nfs0] %s/configdrive.iso' % U)


def test_rescue_disk():
    rescue = layout.rescue_disk(folder(), U)
    assert str(rescue) == '[nfs0] %s/%s-rescue.vmdk' % (U, U)
    assert layout.is_rescue_disk(str(rescue))
    assert not layout.is_rescue_disk(str(layout.root_disk(folder(), U)))
    assert not layout.is_rescue_disk(None)


def test_resize_original():
    root = layout.root_disk(folder(), U)
    orig = layout.resize_original(root)
    assert str(orig) == '[nfs0] %s/%s.orig.vmdk' % (U, U)
    assert layout.resize_original(str(root)) == orig
    # The original and its extent, as vcsim and ESX list them.
    for rel in ('%s/%s.orig.vmdk' % (U, U), '%s/%s.orig-flat.vmdk' % (U, U)):
        assert layout.is_resize_original(rel)
    for rel in ('%s/%s.vmdk' % (U, U), '%s/%s-flat.vmdk' % (U, U),
                '%s/configdrive.iso' % U):
        assert not layout.is_resize_original(rel)


# --- disks and their files ---------------------------------------------------

def test_flat_extent():
    disk = layout.path('nfs0', CACHE, IMG, IMG + '.vmdk')
    flat = layout.flat_extent(disk)
    assert str(flat) == '[nfs0] %s/%s/%s-flat.vmdk' % (CACHE, IMG, IMG)
    assert flat.rel_path == '%s/%s/%s-flat.vmdk' % (CACHE, IMG, IMG)
    assert layout.descriptor(flat.rel_path) == disk.rel_path
    assert layout.flat_extent(layout.path('ds', 'x.vmdk')).rel_path == (
        'x-flat.vmdk')


@pytest.mark.parametrize('name,expected', [
    ('u/u-flat.vmdk', 'u/u.vmdk'), ('u/u-000001-delta.vmdk',
                                    'u/u-000001.vmdk'),
    ('u/u-s001.vmdk', 'u/u.vmdk'), ('u/u-ctk.vmdk', 'u/u.vmdk'),
    ('u/u-sesparse.vmdk', 'u/u.vmdk'), ('u/u-f001.vmdk', 'u/u.vmdk'),
    ('u/u-rdm.vmdk', 'u/u.vmdk'), ('u/u-rdmp.vmdk', 'u/u.vmdk'),
    ('u/u.vmdk', 'u/u.vmdk'), ('u/configdrive.iso', 'u/configdrive.iso'),
    ('u/u-rescue.vmdk', 'u/u-rescue.vmdk'), ('u/swap.vmdk', 'u/swap.vmdk'),
])
def test_descriptor(name, expected):
    assert layout.descriptor(name) == expected


def test_partial_disk():
    grown = layout.path('nfs0', CACHE, IMG, IMG + '.2.vmdk')
    partial = layout.partial_disk(grown, '0123456789ab')
    assert str(partial) == '[nfs0] %s/%s/%s.2.partial-0123456789ab.vmdk' % (
        CACHE, IMG, IMG)
    assert layout.is_partial(partial.basename)
    assert layout.is_partial(layout.flat_extent(partial).basename)
    assert layout.descriptor(layout.flat_extent(partial).rel_path) == (
        partial.rel_path)
    assert not layout.is_partial(grown.basename)


def test_new_token():
    tokens = {layout.new_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) == 12 and int(t, 16) >= 0 for t in tokens)


def test_volume_swap_paths():
    assert layout.volume_swap_paths('[ds] v/volume-1.vmdk') == (
        layout.path('ds', 'v', 'volume-1-swap.vmdk'),
        layout.path('ds', 'v', 'volume-1-swapped.vmdk'))
    assert layout.volume_swap_paths(layout.path('ds', 'v', 'x')) == (
        layout.path('ds', 'v', 'x-swap.vmdk'),
        layout.path('ds', 'v', 'x-swapped.vmdk'))


# --- the image cache ---------------------------------------------------------

def root(ds='nfs0', cache_folder=CACHE):
    return layout.cache_root(ds, cache_folder)


def test_default_cache_folder():
    assert layout.DEFAULT_CACHE_FOLDER == 'vcdriver_image_cache'
    assert conf.CONF.vcdriver.image_cache_folder == 'vcdriver_image_cache'


def test_cache_entry_and_its_files():
    assert str(root()) == '[nfs0] vcdriver_image_cache'
    entry = layout.cache_entry(root(), IMG)
    assert str(entry) == '[nfs0] %s/%s' % (CACHE, IMG)
    assert str(layout.cache_disk(root(), IMG)) == (
        '[nfs0] %s/%s/%s.vmdk' % (CACHE, IMG, IMG))
    assert str(layout.cache_disk(root(), IMG, layout.cache_file_name(
        IMG, iso=True))) == '[nfs0] %s/%s/%s.iso' % (CACHE, IMG, IMG)
    assert layout.cache_file_name(IMG) == IMG + '.vmdk'
    assert layout.cache_file_name(IMG, True) == IMG + '.iso'
    assert str(layout.flat_extent(layout.cache_disk(root(), IMG))) == (
        '[nfs0] %s/%s/%s-flat.vmdk' % (CACHE, IMG, IMG))
    assert str(layout.cache_meta(entry)) == (
        '[nfs0] %s/%s/image.json' % (CACHE, IMG))
    assert str(layout.cache_last_used(root(), IMG)) == (
        '[nfs0] %s/%s/last-used' % (CACHE, IMG))
    assert layout.cache_name(entry.basename) == layout.CacheName(
        layout.ENTRY, IMG)


def test_grown_copy():
    disk = layout.cache_disk(root(), IMG)
    grown = layout.grown_copy(disk, IMG, 2)
    assert str(grown) == '[nfs0] %s/%s/%s.2.vmdk' % (CACHE, IMG, IMG)
    assert str(layout.flat_extent(layout.grown_copy(disk, IMG, 1))) == (
        '[nfs0] %s/%s/%s.1-flat.vmdk' % (CACHE, IMG, IMG))


def test_lock_and_stale_lock():
    lock = layout.cache_lock(root(), IMG)
    assert str(lock) == '[nfs0] %s/%s.lock' % (CACHE, IMG)
    assert lock.basename == layout.lock_name(IMG) == IMG + '.lock'
    assert str(layout.lock_owner(lock)) == (
        '[nfs0] %s/%s.lock/owner' % (CACHE, IMG))
    assert layout.cache_name(lock.basename) == layout.CacheName(
        layout.LOCK, IMG)
    stale = layout.stale_lock(lock, 'cafe01234567')
    assert str(stale) == '[nfs0] %s/%s.lock.stale-cafe01234567' % (CACHE,
                                                                     IMG)
    assert layout.cache_name(stale.basename) == layout.CacheName(
        layout.STALE_LOCK, IMG, 'cafe01234567')


def test_partial_download():
    partial = layout.cache_partial(root(), IMG, '0123456789ab')
    assert str(partial) == '[nfs0] %s/%s.partial-0123456789ab' % (CACHE, IMG)
    assert layout.cache_name(partial.basename) == layout.CacheName(
        layout.PARTIAL, IMG, '0123456789ab')
    assert layout.is_partial(partial.basename)
    assert str(layout.cache_meta(partial)) == (
        '[nfs0] %s/%s.partial-0123456789ab/image.json' % (CACHE, IMG))
    disk = partial.join(layout.cache_file_name(IMG))
    home = layout.import_folder(disk)
    assert str(home) == '[nfs0] %s/%s.partial-0123456789ab/import' % (
        CACHE, IMG)
    assert layout.import_folder(str(disk)) == home


@pytest.mark.parametrize('name', ['x.y', 'image.json', 'owner', 'a.b.c'])
def test_cache_name_of_other_names(name):
    if '.' in name:
        assert layout.cache_name(name) == layout.CacheName()
    else:
        assert layout.cache_name(name).kind == layout.ENTRY


@pytest.mark.parametrize('cache_folder', [CACHE, CACHE + '/', '/' + CACHE,
                                          'a/b'])
def test_below_cache(cache_folder):
    inside = cache_folder.strip('/')
    assert layout.below_cache('%s/%s/x' % (inside, IMG), cache_folder) == (
        '%s/x' % IMG)
    assert layout.below_cache('%s/%s.lock' % (inside, IMG),
                              cache_folder) == IMG + '.lock'
    assert layout.below_cache('%s/x' % U, cache_folder) is None
    assert layout.below_cache(inside, cache_folder) is None
    # Round trip: a name built in the cache, as a listing shows it.
    lock = layout.cache_lock(root(cache_folder=inside), IMG)
    assert layout.below_cache(lock.rel_path, cache_folder) == lock.basename
