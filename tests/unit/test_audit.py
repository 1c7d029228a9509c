"""The leak audit's pure classification (vcdriver/audit.py) on made-up
listings and VM properties, and the CLI's instance list reader."""

import io
import types

import pytest
from pyVmomi import vim

from vcdriver import audit
from vcdriver import cli

U1 = '11111111-1111-4111-8111-111111111111'
U2 = '22222222-2222-4222-8222-222222222222'
U3 = '33333333-3333-4333-8333-333333333333'
U4 = '44444444-4444-4444-8444-444444444444'
NOW = 1_000_000.0
STALE = 120
CACHE = 'vcdriver_image_cache'


def folder(path, modified=NOW - 10):
    return audit.Item(path, folder=True, modified=modified, size=4096)


def file(path, size=10, modified=NOW - 10):
    return audit.Item(path, modified=modified, size=size)


def test_items_of_flattens_a_recursive_search():
    FI = vim.host.DatastoreBrowser
    results = [
        types.SimpleNamespace(folderPath='[nfs0]', file=[
            FI.FolderInfo(path=U1, fileSize=4096)]),
        types.SimpleNamespace(folderPath='[nfs0] %s/' % U1, file=[
            FI.VmDiskInfo(path='%s.vmdk' % U1, fileSize=512)]),
        types.SimpleNamespace(folderPath='[nfs0] empty', file=None),
    ]
    items = audit.items_of(results)
    assert [(i.path, i.folder, i.size) for i in items] == [
        (U1, True, 4096), ('%s/%s.vmdk' % (U1, U1), False, 512)]
    assert items[1].name == '%s.vmdk' % U1


def _disk(path, parent=None):
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=path)
    if parent:
        backing.parent = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=parent)
    return vim.vm.device.VirtualDisk(backing=backing)


def test_referenced_files_take_layout_vmx_disks_parents_and_isos():
    cdrom = vim.vm.device.VirtualCdrom(
        backing=vim.vm.device.VirtualCdrom.IsoBackingInfo(
            fileName='[nfs0] %s/configdrive.iso' % U1))
    p = {'config.files.vmPathName': '[nfs0] %s/%s.vmx' % (U1, U1),
         'layoutEx.file': [types.SimpleNamespace(
             name='[nfs0] %s/%s-flat.vmdk' % (U1, U1))],
         'config.hardware.device': [
             _disk('[nfs0] %s/%s.vmdk' % (U1, U1),
                   parent='[nfs1] %s/img/img.1.vmdk' % CACHE),
             cdrom, vim.vm.device.VirtualE1000()]}
    refs = audit.referenced_files([p, {}])
    assert refs >= {
        ('nfs0', '%s/%s.vmx' % (U1, U1)), ('nfs0', '%s/%s.vmdk' % (U1, U1)),
        ('nfs0', '%s/%s-flat.vmdk' % (U1, U1)),
        ('nfs0', '%s/configdrive.iso' % U1),
        ('nfs1', '%s/img/img.1.vmdk' % CACHE)}


def test_instance_folders():
    items = [
        folder(U1), file('%s/%s.vmx' % (U1, U1)),
        file('%s/%s.vmdk' % (U1, U1)), file('%s/%s-flat.vmdk' % (U1, U1)),
        file('%s/%s.orig.vmdk' % (U1, U1)),        # resize original
        file('%s/%s.orig-flat.vmdk' % (U1, U1)),
        file('%s/old.iso' % U1, size=99),          # stray
        file('%s/vmware-1.log' % U1),              # not a disk: ignored
        folder(U2), file('%s/%s.vmdk' % (U2, U2), size=5),   # nobody's
        folder(U3), file('%s/x.vmdk' % U3),        # Nova's, VM gone
        folder(U4),                                # Nova's, VM elsewhere
        folder('not-a-uuid'), folder(CACHE),
        file(U2.replace('2', '5')),                # a file, not a folder
    ]
    refs = audit.referenced_files([{
        'config.files.vmPathName': '[nfs0] %s/%s.vmx' % (U1, U1),
        'config.hardware.device': [_disk('[nfs0] %s/%s.vmdk' % (U1, U1))]}])
    orphans, unused = audit.instance_folders(
        'nfs0', items, refs, nova={U1, U3, U4}, marked={U1: 'vm', U4: 'vm'})
    assert unused == [(U3, '[nfs0] %s' % U3)]
    assert [(o['kind'], o['path'], o['files'], o['size'])
            for o in orphans] == [
        ('file', '[nfs0] %s/old.iso' % U1, 1, 99),
        ('folder', '[nfs0] %s' % U2, 1, 5),
        ('folder', '[nfs0] %s' % U4, 0, 0)]
    assert 'not a Nova instance' in orphans[1]['reason']
    assert 'VM elsewhere' in orphans[2]['reason']


def test_instance_folders_clean():
    items = [folder(U1), file('%s/%s.vmx' % (U1, U1))]
    refs = {('nfs0', '%s/%s.vmx' % (U1, U1))}
    assert audit.instance_folders('nfs0', items, refs, {U1},
                                  {U1: 'vm'}) == ([], [])


def owner(token, age):
    return {'owner': 'host1 pid 7', 'token': token, 'heartbeat': NOW - age}


def debris(items, owners):
    return {(d['kind'], d['path'].split('/', 1)[1])
            for d in audit.cache_debris('nfs0', items, CACHE, owners, NOW,
                                        STALE)}


def c(path):
    return '%s/%s' % (CACHE, path)


def test_cache_download_held_by_a_live_lock_is_no_debris():
    items = [folder(c('img.lock')), file(c('img.lock/owner')),
             folder(c('img.partial-t1')), file(c('img.partial-t1/img.vmdk'))]
    assert debris(items, {'img': owner('t1', 10)}) == set()


def test_cache_partial_without_its_lock_and_stale_lock_are_debris():
    items = [folder(c('a.partial-t1')), file(c('a.partial-t1/a.vmdk'), 7),
             # held, but by another fill: the t1 one died
             folder(c('b.lock')), file(c('b.lock/owner')),
             folder(c('b.partial-old')), folder(c('b.partial-t2')),
             # stale lock and its partial
             folder(c('d.lock')), file(c('d.lock/owner')),
             folder(c('d.partial-t3'))]
    found = audit.cache_debris('nfs0', items, CACHE, {
        'b': owner('t2', 5), 'd': owner('t3', 500)}, NOW, STALE)
    assert {(d['kind'], d['path']) for d in found} == {
        ('partial download', '[nfs0] %s' % c('a.partial-t1')),
        ('partial download', '[nfs0] %s' % c('b.partial-old')),
        ('stale lock', '[nfs0] %s' % c('d.lock')),
        ('partial download', '[nfs0] %s' % c('d.partial-t3'))}
    by_path = {d['path']: d for d in found}
    a = by_path['[nfs0] %s' % c('a.partial-t1')]
    assert (a['image_id'], a['detail']) == (
        'a', '7 bytes, no lock of its own: the download died')
    d_lock = by_path['[nfs0] %s' % c('d.lock')]
    assert d_lock['age_seconds'] == 500
    assert 'host1 pid 7' in d_lock['detail']
    assert 'went stale' in by_path['[nfs0] %s' % c('d.partial-t3')]['detail']


def test_cache_lock_without_owner_is_stale_only_when_old():
    fresh = [folder(c('a.lock'), modified=NOW - 5)]
    old = [folder(c('a.lock'), modified=NOW - 500)]
    assert debris(fresh, {}) == set()
    assert debris(old, {}) == {('stale lock', 'a.lock')}


def test_cache_taken_over_lock_remains_are_debris():
    assert debris([folder(c('a.lock.stale-t9'))], {}) == {
        ('stale lock remains', 'a.lock.stale-t9')}


def test_cache_entries():
    items = [
        folder(c('good')), file(c('good/image.json')),
        file(c('good/good.vmdk')),
        file(c('good/good.2.partial-abc.vmdk'), modified=NOW - 1),  # busy
        folder(c('old')), file(c('old/image.json')),
        file(c('old/old.2.partial-def.vmdk'), modified=NOW - 900),
        file(c('old/old.2.partial-def-flat.vmdk'), size=50,
             modified=NOW - 800),
        folder(c('bare')), file(c('bare/bare.vmdk')),
    ]
    found = audit.cache_debris('nfs0', items, CACHE, {}, NOW, STALE)
    assert [(d['kind'], d['path'], d['image_id'], d['age_seconds'])
            for d in found] == [
        ('incomplete entry', '[nfs0] %s' % c('bare'), 'bare', 10),
        ('temporary copy', '[nfs0] %s' % c('old/old.2.partial-def.vmdk'),
         'old', 800)]
    assert found[1]['detail'] == '2 files, 60 bytes'


def test_cache_outside_the_cache_folder_is_ignored():
    assert debris([folder('other/x.partial-1'), folder('x.lock')], {}) == set()


def test_vms_without_instance_needs_no_read_for_known_vms():
    vm = vim.VirtualMachine('vm-7')
    cluster = types.SimpleNamespace(name='C1')
    found = audit.vms_without_instance(
        None, {U1: (vim.VirtualMachine('vm-1'), cluster), U2: (vm, cluster)},
        {U1}, {vm: {'name': 'orphan', 'runtime.powerState': 'poweredOn',
                    'config.files.vmPathName': '[nfs0] %s/x.vmx' % U2}})
    assert found == [{'uuid': U2, 'name': 'orphan', 'moref': 'vm-7',
                      'cluster': 'C1', 'power_state': 'poweredOn',
                      'vmx': '[nfs0] %s/x.vmx' % U2}]


def test_report():
    report = audit.Report()
    assert report.clean and report.count() == 0
    assert report.text() == 'No orphans found.'
    report.instances_without_vm.append({'uuid': U1, 'folders': [],
                                        'vm_elsewhere': None})
    report.cache_debris.append({
        'kind': 'stale lock', 'path': '[nfs0] %s' % c('a.lock'),
        'age_seconds': 7300, 'detail': 'no owner recorded',
        'datastore': 'nfs0', 'image_id': 'a'})
    assert not report.clean and report.count() == 2
    assert report.as_dict()['instances_without_vm'][0]['uuid'] == U1
    text = report.text()
    assert 'Nova instances without a VM (1):' in text
    assert '  %s  -' % U1 in text
    assert 'Image cache debris (1):' in text
    assert ('stale lock  [nfs0] %s  2h   no owner recorded' % c('a.lock')
            in text)


def test_read_uuids(tmp_path, monkeypatch):
    path = tmp_path / 'ids'
    path.write_text('%s\n\n# a comment\n%s  # trailing\n' % (U1, U2.upper()))
    assert cli.read_uuids(str(path)) == {U1, U2}
    monkeypatch.setattr('sys.stdin', io.StringIO(U3 + '\n'))
    assert cli.read_uuids('-') == {U3}
    path.write_text('%s\nserver-1\n' % U1)
    with pytest.raises(ValueError, match='not instance uuids: server-1'):
        cli.read_uuids(str(path))


def test_import_shells_of_dead_fills_are_debris():
    def shell(moref, partial):
        return vim.VirtualMachine(moref), {
            'name': 'vcdriver-import-' + partial,
            'config.files.vmPathName': '[nfs0] %s/import/x.vmx'
                                       % c(partial)}
    live, dead, gone = (shell('vm-1', 'a.partial-t1'),
                        shell('vm-2', 'b.partial-t2'),
                        shell('vm-3', 'd.partial-t3'))
    other = (vim.VirtualMachine('vm-4'), {'name': 'web (uuid)'})
    listing = [folder(c('a.partial-t1')), folder(c('b.partial-t2'))]
    debris = [{'kind': 'partial download',
               'path': '[nfs0] %s' % c('b.partial-t2')}]
    found = audit.import_shells(dict([live, dead, gone, other]), [listing],
                                debris, CACHE)
    assert [(d['kind'], d['image_id'], d['datastore']) for d in found] == [
        ('import shell VM', 'b', 'nfs0'), ('import shell VM', 'd', 'nfs0')]
    assert 'vcdriver-import-b.partial-t2 (vm-2)' in found[0]['detail']
