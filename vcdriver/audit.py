"""Leak audit: what vCenter and the datastores hold that Nova does not
know of, and what Nova knows of that vCenter lacks.

``audit()`` compares Nova's instances of a compute service (their uuids,
given) with

- the VMs carrying Nova's ``nvp.vm-uuid`` marker in the served clusters
  (vm.instances: two reads);
- the folders and files on the clusters' usable datastores: one recursive
  ``SearchDatastoreSubFolders_Task`` per datastore, set against the files
  every VM on those datastores uses (one read of all of them through the
  datastores' ``vm`` property);
- the image cache on those datastores (datastore_layout.py's names), for
  downloads, temporary copies and locks nobody is working on.

It only reads. The pure classification is in the functions below
``audit()``, which the unit tests drive with made-up listings.
"""

import dataclasses

from oslo_log import log as logging
from pyVmomi import vim
from pyVmomi import vmodl

from vcdriver import cluster as cluster_mod
from vcdriver import datastore_layout as layout
from vcdriver import vm
from vcdriver.images import cache as image_cache
from vcdriver.images import disk_import
from vcdriver.vsphere import files
from vcdriver.vsphere import props

LOG = logging.getLogger(__name__)

# Files of an instance folder that no VM may reference and still matter.
STRAY_SUFFIXES = (layout.VMDK, layout.ISO)
VM_FILE_PROPS = ['name', 'runtime.powerState', 'config.files.vmPathName',
                 'layoutEx.file', 'config.hardware.device',
                 vm.INSTANCE_MARKER_PROP]
LISTS = ('vms_without_instance', 'instances_without_vm', 'orphan_folders',
         'cache_debris')


@dataclasses.dataclass
class Item:
    """A file or folder on a datastore, from the recursive search."""
    path: str               # from the datastore's root, '/'-separated
    folder: bool = False
    modified: float = None  # epoch seconds (the datastore host's clock)
    size: int = None

    @property
    def name(self):
        return self.path.rpartition('/')[2]


@dataclasses.dataclass
class Report:
    """Each list holds dicts an operator can act on (and json can dump)."""
    vms_without_instance: list = dataclasses.field(default_factory=list)
    instances_without_vm: list = dataclasses.field(default_factory=list)
    orphan_folders: list = dataclasses.field(default_factory=list)
    cache_debris: list = dataclasses.field(default_factory=list)

    @property
    def clean(self):
        return not any(getattr(self, name) for name in LISTS)

    def count(self):
        return sum(len(getattr(self, name)) for name in LISTS)

    def as_dict(self):
        return {name: getattr(self, name) for name in LISTS}

    def text(self):
        from vcdriver import cli_render
        return cli_render.render_audit(self.as_dict())


def audit(session, clusters, instance_uuids, conf, states=None):
    """The orphans either way between Nova's instances (``instance_uuids``
    of the nodes ``clusters`` are) and vCenter and its datastores.

    ``states`` (cluster.read_state of the clusters) if the caller has them.
    """
    nova = {u.lower() for u in instance_uuids}
    marked = vm.instances(session, clusters)
    if states is None:
        states = cluster_mod.read_state(session, clusters)
    datastores = usable_datastores(clusters, states,
                                   conf.vmware.datastore_regex)
    ds_props, vms, _links = props.properties_and_children(
        session, datastores, vim.Datastore, ['browser'], 'vm',
        vim.VirtualMachine, VM_FILE_PROPS)
    now = session.current_time()
    listings = {ref: search(session, ds_props.get(ref, {}).get('browser')
                            or ref.browser, name)
                for ref, (name, _cluster) in datastores.items()}
    report = Report()
    report.vms_without_instance = vms_without_instance(
        session, marked, nova, vms)
    folders = {}  # instance uuid -> ['[ds] uuid'], of unused folders
    refs = referenced_files(vms.values())
    elsewhere = {_marker(p): (vm_ref, p) for vm_ref, p in vms.items()
                 if _marker(p)}
    cache_folder = conf.vcdriver.image_cache_folder
    stale = conf.vcdriver.image_cache_lock_stale_seconds
    for ref, (name, cluster) in datastores.items():
        items = listings[ref]
        orphans, unused = instance_folders(name, items, refs, nova, marked)
        report.orphan_folders += orphans
        for uuid, path in unused:
            folders.setdefault(uuid, []).append(path)
        owners = lock_owners(session, cluster, name, items, cache_folder)
        report.cache_debris += cache_debris(name, items, cache_folder,
                                            owners, now, stale)
    report.cache_debris += import_shells(vms, listings.values(),
                                         report.cache_debris, cache_folder)
    for uuid in sorted(nova - set(marked)):
        entry = {'uuid': uuid, 'folders': folders.get(uuid, []),
                 'vm_elsewhere': None}
        if uuid in elsewhere:
            vm_ref, p = elsewhere[uuid]
            entry['vm_elsewhere'] = '%s (%s)' % (p.get('name'),
                                                 props.moid(vm_ref))
        report.instances_without_vm.append(entry)
    return report


def usable_datastores(clusters, states, regex):
    """{datastore ref: (name, a cluster that sees it)}, each once."""
    found = {}
    for cluster, state in zip(clusters, states, strict=True):
        for ds in state.datastores:
            if ds.usable(regex) and ds.ref not in found:
                found[ds.ref] = (ds.name, cluster)
    return found


def search(session, browser, datastore_name):
    """[Item] of everything on a datastore: one recursive search."""
    spec = vim.host.DatastoreBrowser.SearchSpec(
        matchPattern=['*'],
        details=vim.host.DatastoreBrowser.FileInfo.Details(
            fileType=True, fileSize=True, modification=True))
    results = files.search_subfolders(session, browser,
                                      layout.path(datastore_name), spec)
    return items_of(results)


def items_of(results):
    """Flatten HostDatastoreBrowserSearchResults into [Item]."""
    items = []
    for result in results or ():
        folder = layout.split(result.folderPath)[1]
        for f in result.file or ():
            modified = getattr(f, 'modification', None)
            items.append(Item(
                path='%s/%s' % (folder, f.path) if folder else f.path,
                folder=isinstance(f, vim.host.DatastoreBrowser.FolderInfo),
                modified=modified.timestamp() if modified else None,
                size=getattr(f, 'fileSize', None)))
    return items


def _backing_files(device):
    backing = getattr(device, 'backing', None)
    while backing is not None:
        name = getattr(backing, 'fileName', None)
        if isinstance(name, str):
            yield name
        backing = getattr(backing, 'parent', None)


def referenced_files(vm_props):
    """{(datastore, path)} of every file the VMs use: their layout, .vmx,
    and every device backing (disks with their parents, ISOs)."""
    names = set()
    for p in vm_props:
        names.add(p.get('config.files.vmPathName'))
        names.update(f.name for f in p.get('layoutEx.file') or ())
        for device in p.get('config.hardware.device') or ():
            names.update(_backing_files(device))
    refs = set()
    for name in names:
        ds, rel = layout.split(name)
        if ds is not None and rel:
            refs.add((ds, rel))
            refs.add((ds, layout.descriptor(rel)))
    return refs


def _marker(p):
    value = p.get(vm.INSTANCE_MARKER_PROP)
    value = getattr(value, 'value', value)
    return value.lower() if isinstance(value, str) and value else None


def vms_without_instance(session, marked, nova, known_props):
    """Marked VMs of the clusters whose uuid Nova does not know."""
    orphans = {u: vm_c for u, vm_c in marked.items() if u.lower() not in nova}
    missing = [vm_ref for vm_ref, _c in orphans.values()
               if vm_ref not in known_props]
    details = dict(known_props)
    if missing:  # VMs on datastores we do not scan: one more read
        try:
            details.update(props.properties(
                session, missing, vim.VirtualMachine, VM_FILE_PROPS[:3]))
        except vmodl.fault.ManagedObjectNotFound:
            LOG.debug('A VM went away while the audit read it')
    found = []
    for uuid, (vm_ref, cluster) in sorted(orphans.items()):
        p = details.get(vm_ref, {})
        found.append({'uuid': uuid, 'name': p.get('name'),
                      'moref': props.moid(vm_ref), 'cluster': cluster.name,
                      'power_state': p.get('runtime.powerState'),
                      'vmx': p.get('config.files.vmPathName')})
    return found


def instance_folders(ds_name, items, refs, nova, marked):
    """(orphans, [(uuid, path)] of unused folders of Nova instances) among
    the folders named like an instance uuid at the datastore's root.

    A folder no VM uses is an orphan unless it is a Nova instance's
    without a VM (listed with that instance instead); one whose uuid has a
    VM elsewhere is an orphan too. In folders a VM does use, ``.vmdk`` and
    ``.iso`` files no VM references are stray, but for resize originals
    (kept until the resize is confirmed).
    """
    used = {rel.partition('/')[0] for ds, rel in refs if ds == ds_name}
    below = {}
    for item in items:
        top, sep, _rest = item.path.partition('/')
        if sep:
            below.setdefault(top, []).append(item)
    orphans, unused = [], []
    for item in items:
        uuid = layout.instance_uuid(item.path) if item.folder else None
        if uuid is None:
            continue
        path = str(layout.path(ds_name, item.path))
        content = [i for i in below.get(item.path, ()) if not i.folder]
        if item.path not in used:
            if uuid in nova and uuid not in marked:
                unused.append((uuid, path))
                continue
            orphans.append({
                'kind': 'folder', 'datastore': ds_name, 'path': path,
                'files': len(content),
                'size': sum(i.size or 0 for i in content),
                'reason': 'no VM uses it; its instance has a VM elsewhere'
                if uuid in marked else 'no VM uses it; not a Nova '
                'instance of these nodes'})
            continue
        for i in content:
            if (i.name.endswith(STRAY_SUFFIXES) and
                    (ds_name, i.path) not in refs and
                    (ds_name, layout.descriptor(i.path)) not in refs and
                    not layout.is_resize_original(i.path)):
                orphans.append({
                    'kind': 'file', 'datastore': ds_name,
                    'path': str(layout.path(ds_name, i.path)), 'files': 1,
                    'size': i.size or 0,
                    'reason': "in a VM's folder, but no VM references it"})
    return orphans, unused


def lock_owners(session, cluster, ds_name, items, cache_folder):
    """{image id: owner record} of the cache's locks that have one (few:
    one small read each)."""
    owners = {}
    for item in items:
        rest = layout.below_cache(item.path, cache_folder) or ''
        lock, _, name = rest.partition('/')
        lock = layout.cache_name(lock)
        if name == layout.LOCK_OWNER and lock.kind == layout.LOCK:
            cache = image_cache.DatastoreCache(session, cluster, ds_name)
            owners[lock.image_id] = image_cache.lock_owner(cache,
                                                           lock.image_id)
    return owners


def _lock_live(owner, lock_item, now, stale):
    """cache.py's notion: a lock is held while its owner's heartbeat (in
    vCenter's clock) is younger than image_cache_lock_stale_seconds; one
    without an owner yet, while the folder itself is that young."""
    if lock_item is None:
        return False
    if owner and owner.get('heartbeat') is not None:
        return now - owner['heartbeat'] < stale
    return lock_item.modified is not None and now - lock_item.modified < stale


def _age(now, when):
    return None if when is None else max(0, int(now - when))


def import_shells(vm_props, listings, debris, cache_folder):
    """The shell VMs of image imports (images/disk_import.py) whose fill
    is not under way: its partial folder is debris, or gone."""
    partials = set()
    for items in listings:
        for i in items:
            rest = layout.below_cache(i.path, cache_folder)
            if i.folder and rest is not None and '/' not in rest:
                partials.add(rest)
    dead = {d['path'].rpartition('/')[2] for d in debris
            if d['kind'] == 'partial download'}
    found = []
    for vm_ref, p in sorted(vm_props.items(),
                            key=lambda kv: props.moid(kv[0])):
        name = p.get('name') or ''
        if not name.startswith(disk_import.SHELL_PREFIX):
            continue
        partial = name[len(disk_import.SHELL_PREFIX):]
        if partial in partials and partial not in dead:
            continue
        path = p.get('config.files.vmPathName')
        found.append({
            'kind': 'import shell VM', 'datastore': layout.split(path)[0],
            'path': path,
            'image_id': layout.cache_name(partial).image_id,
            'age_seconds': None,
            'detail': 'VM %s (%s) made by an image download that died; '
                      'remove it before its folder' % (
                          name, props.moid(vm_ref))})
    return found


def cache_debris(ds_name, items, cache_folder, owners, now, stale):
    """What in ``[ds] <cache folder>/`` nobody is working on and no spawn
    will use, by the cache's names (datastore_layout.py):

    - ``<id>.partial-<token>/``: a download not held by a live lock of
      the same token (the fill died: remove_orphan_partial's rule, or its
      lock went stale);
    - ``<id>.lock/``: a lock whose owner stopped beating;
    - ``<id>.lock.stale-<token>/``: a lock taken over but not removed;
    - in an entry, ``<id>.<GB>.partial-<token>.vmdk`` (grown copies being
      made) untouched for image_cache_lock_stale_seconds;
    - an entry folder without image.json: never complete, and in the way
      of a new fill.
    """
    top, below = {}, {}
    for item in items:
        inside = layout.below_cache(item.path, cache_folder)
        if inside is None:
            continue
        name, sep, rest = inside.partition('/')
        if sep:
            below.setdefault(name, []).append(item)
        else:
            top[name] = item
    debris = []

    def add(kind, item, detail, image_id, when=None):
        debris.append({
            'kind': kind, 'datastore': ds_name,
            'path': str(layout.path(ds_name, item.path)),
            'image_id': image_id,
            'age_seconds': _age(now, item.modified if when is None
                                else when),
            'detail': detail})

    for name, item in sorted(top.items()):
        kind, image_id, token = dataclasses.astuple(layout.cache_name(name))
        if kind == layout.STALE_LOCK:
            add('stale lock remains', item, 'a lock taken over, not removed',
                image_id)
        elif kind == layout.PARTIAL:
            owner = owners.get(image_id) or {}
            lock = top.get(layout.lock_name(image_id))
            if (owner.get('token') == token and
                    _lock_live(owner, lock, now, stale)):
                continue
            size = sum(i.size or 0 for i in below.get(name, ()))
            add('partial download', item, '%d bytes, %s' % (
                size, 'its lock went stale' if owner.get('token') == token
                else 'no lock of its own: the download died'), image_id)
        elif kind == layout.LOCK and item.folder:
            owner = owners.get(image_id)
            if _lock_live(owner, item, now, stale):
                continue
            beat = (owner or {}).get('heartbeat')
            add('stale lock', item, 'held by %s, no heartbeat for %ss' % (
                owner.get('owner', 'unknown'), _age(now, beat))
                if beat is not None else 'no owner recorded', image_id,
                when=beat)
        elif kind == layout.ENTRY and item.folder:
            content = below.get(name, ())
            if not any(i.name == layout.CACHE_META for i in content):
                add('incomplete entry', item, 'no %s: never completed'
                    % layout.CACHE_META, name)
            temps = {}
            for i in content:
                if layout.is_partial(i.name) and not i.folder:
                    temps.setdefault(layout.descriptor(i.path),
                                     []).append(i)
            for path, group in sorted(temps.items()):
                newest = max((i.modified for i in group
                              if i.modified is not None), default=None)
                if newest is not None and now - newest < stale:
                    continue  # being made right now
                add('temporary copy', Item(path, modified=newest),
                    '%d files, %d bytes' % (len(group), sum(
                        i.size or 0 for i in group)), name)
    return debris
