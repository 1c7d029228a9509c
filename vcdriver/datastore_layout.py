"""Where vcdriver keeps its files on a datastore, and what they are called.

The one module that makes the names of the files and folders the driver
writes to datastores, tells them apart again in listings, and parses and
joins datastore paths (oslo.vmware's ``DatastorePath``: ``[ds] a/b``).
These names are on every datastore a driver ever wrote to, and services
of several versions share a datastore's image cache: a name changed here
orphans files and caches, so none may change.

Pure: no vSphere call, no Nova, no configuration (the image cache's
folder, ``[vcdriver] image_cache_folder``, is given).

An instance, in ``[<datastore>] <instance uuid>/`` (vCenter makes the
folder at CreateVM_Task and puts the VM's own files in it)::

    <uuid>.vmdk         the root disk (a copy, or a delta of a cached image)
    ephemeral_<n>.vmdk  ephemeral disks, from 0
    swap.vmdk           the swap disk
    configdrive.iso     the config drive
    <uuid>-rescue.vmdk  the rescue disk, while rescued
    <uuid>.orig.vmdk    the root disk as it was before a resize grew it,
                        until the resize is confirmed or reverted

The image cache, in ``[<datastore>] <image cache folder>/``::

    <image id>/<image id>.vmdk  the verified disk (and its -flat.vmdk),
    <image id>/<image id>.iso   or the ISO, kept as it is
    <image id>/<image id>.<GB>.vmdk  grown copies, parents of linked clones
    <image id>/image.json       what it is: virtual size, Glance hash
    <image id>/last-used        vCenter time of its last use
    <image id>.lock/owner       who fills the entry now, with a heartbeat
    <image id>.lock.stale-<token>/  a stale lock taken over, being removed
    <image id>.partial-<token>/ a download in progress (its import/
                                holds the files of the import's shell VM)

A disk ``x.vmdk`` is its descriptor; its bytes are in extents named after
it (``x-flat.vmdk``, ``x-000001-delta.vmdk``...). A disk made under a
temporary name is ``x.partial-<token>.vmdk`` beside the ``x.vmdk`` it is
renamed to when complete. A volume's disk being swapped gets
``<disk>-swap.vmdk`` (the copy being made) and ``<disk>-swapped.vmdk``
(its own file set aside) beside it.
"""

import dataclasses
import re
import uuid as uuid_lib

from oslo_vmware.objects import datastore as ds_obj

DatastorePath = ds_obj.DatastorePath

VMDK = '.vmdk'
ISO = '.iso'
# Extents and change tracking files carry their descriptor's name.
_EXTENT_RE = re.compile(r'-(flat|delta|sesparse|ctk|rdm|rdmp|s\d{3}|f\d{3})'
                        r'\.vmdk$')
# An instance's folder is named by its uuid.
UUID_RE = re.compile(r'^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$')

SWAP_DISK = 'swap.vmdk'
_EPHEMERAL = re.compile(r'ephemeral_\d+\.vmdk')
CONFIG_DRIVE = 'configdrive.iso'
_RESCUE = '-rescue.vmdk'
_ORIG = '.orig.vmdk'
_FLAT = '-flat.vmdk'

DEFAULT_CACHE_FOLDER = 'vcdriver_image_cache'
CACHE_META = 'image.json'
CACHE_LAST_USED = 'last-used'
LOCK_OWNER = 'owner'
IMPORT_FOLDER = 'import'
_LOCK = '.lock'
_PARTIAL = '.partial-'
_STALE = '.stale-'


# --- datastore paths ---------------------------------------------------------

def path(datastore, *parts):
    """``[datastore] part/part``; ``[datastore]`` alone without parts."""
    return DatastorePath(datastore, *parts)


def parse(text):
    """The DatastorePath of ``[ds] a/b`` (or vcsim's ``[ds]/a/b``; a
    DatastorePath is taken too), or None when ``text`` is not one."""
    text = str(text) if text is not None else ''
    if not text.startswith('['):
        return None
    try:
        found = DatastorePath.parse(text)
    except ValueError:
        return None  # '[] a': no datastore name
    return DatastorePath(found.datastore, found.rel_path.strip('/'))


def parse_url(url):
    """``vsphere://<vCenter>/folder/<path>?dcPath=<dc>&dsName=<ds>``
    (Glance's VMware store) -> (datacenter path, ``[ds] <path>``)."""
    location = ds_obj.DatastoreURL.urlparse(url)
    return location.datacenter_path, DatastorePath(
        location.datastore_name, location.path.lstrip('/'))


def split(text):
    """``[ds] a/b`` (or vcsim's ``[ds]/a/b``) -> ``('ds', 'a/b')``; a
    text that is no datastore path -> ``(None, text)``."""
    found = parse(text)
    if found is None:
        return None, (text or '').strip('/ ')
    return found.datastore, found.rel_path


def _stem(name):
    return name[:-len(VMDK)] if name.endswith(VMDK) else name


def _beside(disk, suffix):
    """A file next to a disk, named after it: ``x.vmdk`` -> ``x<suffix>``."""
    disk = parse(disk) if isinstance(disk, str) else disk
    return DatastorePath(disk.datastore, _stem(disk.rel_path) + suffix)


# --- disks and their files ---------------------------------------------------

def flat_extent(disk):
    """``[ds] a/x.vmdk`` -> ``[ds] a/x-flat.vmdk``: the extent holding a
    flat disk's bytes, behind its descriptor."""
    return _beside(disk, _FLAT)


def descriptor(rel_path):
    """The descriptor a disk file belongs to (``x-flat.vmdk`` ->
    ``x.vmdk``); any other file is its own."""
    return _EXTENT_RE.sub(VMDK, rel_path)


def partial_disk(disk, token):
    """``x.vmdk`` -> ``x.partial-<token>.vmdk``: the disk being made under
    a temporary name, renamed to ``disk`` when complete."""
    return _beside(disk, '%s%s%s' % (_PARTIAL, token, VMDK))


def is_partial(name):
    """A download or disk being made (``.partial-`` in its name)."""
    return _PARTIAL in name


def new_token():
    """The unique part of a temporary name (and of a lock's owner)."""
    return uuid_lib.uuid4().hex[:12]


def volume_swap_paths(disk):
    """(staging, aside) beside a volume's disk being swapped in: its copy
    being made, and its own file while the copy takes its name."""
    return _beside(disk, '-swap' + VMDK), _beside(disk, '-swapped' + VMDK)


# --- an instance's folder ----------------------------------------------------

def instance_folder(datastore, instance_uuid):
    return DatastorePath(datastore, instance_uuid)


def vm_path_name(datastore, instance_uuid):
    """CreateVM_Task's ``files.vmPathName``: ``[ds] <uuid>/``, a folder
    vCenter makes and puts the VM's files in."""
    return '%s/' % instance_folder(datastore, instance_uuid)


def instance_uuid(rel_path):
    """The instance uuid a path from a datastore's root names as its
    folder (``<uuid>``, lower case), or None."""
    if '/' in rel_path or not UUID_RE.match(rel_path.lower()):
        return None
    return rel_path.lower()


def root_disk(folder, instance_uuid):
    """``<folder>/<uuid>.vmdk``."""
    return folder.join(instance_uuid + VMDK)


def is_root_disk(file_name, instance_uuid):
    """Whether a disk's file (``[ds] a/b.vmdk``) is the instance's root
    disk, named by spawn."""
    return bool(file_name) and file_name.endswith(
        '/%s%s' % (instance_uuid, VMDK))


def ephemeral_disk_name(n):
    """The n-th ephemeral disk's file name (from 0) in the folder."""
    return 'ephemeral_%d%s' % (n, VMDK)


def is_ephemeral_or_swap(file_name):
    """Whether a disk's file is one the flavor adds beside the root
    (``ephemeral_<n>.vmdk``, ``swap.vmdk``)."""
    name = (file_name or '').rpartition('/')[2]
    return name == SWAP_DISK or bool(_EPHEMERAL.fullmatch(name))


def config_drive(folder):
    return folder.join(CONFIG_DRIVE)


def rescue_disk(folder, instance_uuid):
    """``<folder>/<uuid>-rescue.vmdk``."""
    return folder.join(instance_uuid + _RESCUE)


def is_rescue_disk(file_name):
    return bool(file_name) and file_name.endswith(_RESCUE)


def resize_original(disk):
    """``<uuid>.vmdk`` -> ``<uuid>.orig.vmdk``: the root disk kept, detached,
    while a resize grew a copy of it."""
    return _beside(disk, _ORIG)


def is_resize_original(rel_path):
    """Whether a file is (an extent of) a resize's original root disk."""
    return descriptor(rel_path).endswith(_ORIG)


# --- the image cache ---------------------------------------------------------

def cache_root(datastore, cache_folder):
    """``[ds] <cache folder>``."""
    return DatastorePath(datastore, cache_folder)


def below_cache(rel_path, cache_folder):
    """What of a path from the datastore's root is inside the cache folder
    (``<cache folder>/x/y`` -> ``x/y``), or None outside."""
    prefix = cache_folder.strip('/') + '/'
    return rel_path[len(prefix):] if rel_path.startswith(prefix) else None


def cache_entry(root, image_id):
    """An image's entry folder in the cache ``root``."""
    return root.join(image_id)


def cache_file_name(image_id, iso=False):
    """The file an image is cached as in its entry: a disk, or an ISO kept
    as it is."""
    return image_id + (ISO if iso else VMDK)


def cache_disk(root, image_id, file_name=None):
    """The cached disk (or ISO ``file_name``) of an image."""
    return cache_entry(root, image_id).join(
        file_name or cache_file_name(image_id))


def cache_meta(folder):
    """An entry's (or a partial folder's) record of what it holds."""
    return folder.join(CACHE_META)


def cache_last_used(root, image_id):
    return cache_entry(root, image_id).join(CACHE_LAST_USED)


def lock_name(image_id):
    return image_id + _LOCK


def cache_lock(root, image_id):
    """The lock folder of an image's entry."""
    return root.join(lock_name(image_id))


def lock_owner(lock):
    """The file in a lock folder that says who holds it."""
    return lock.join(LOCK_OWNER)


def stale_lock(lock, token):
    """Where a stale lock is renamed to by the waiter taking it over."""
    return lock.parent.join('%s%s%s' % (lock.basename, _STALE, token))


def cache_partial(root, image_id, token):
    """The folder an image is downloaded into before it becomes its
    entry."""
    return root.join('%s%s%s' % (image_id, _PARTIAL, token))


def import_folder(disk):
    """Where the shell VM of an import into ``disk`` keeps its files: in
    the disk's (partial) folder, so it goes with it."""
    return parse(disk).parent.join(IMPORT_FOLDER)


def grown_copy(cached_disk, image_id, gb):
    """``<image id>.<GB>.vmdk`` beside the cached disk: the image grown to
    a flavor's root disk, the parent of linked clones that big."""
    return cached_disk.parent.join('%s.%d%s' % (image_id, gb, VMDK))


ENTRY = 'entry'
LOCK = 'lock'
PARTIAL = 'partial'
STALE_LOCK = 'stale lock'


@dataclasses.dataclass(frozen=True)
class CacheName:
    """What a name in the cache folder is: ``kind`` (ENTRY, LOCK, PARTIAL,
    STALE_LOCK; None for no name of ours) and the image it is for."""
    kind: str = None
    image_id: str = None
    token: str = None


def cache_name(name):
    """Tell the names of the cache folder apart (image ids have no dot)."""
    if _STALE in name:
        return CacheName(STALE_LOCK, name.partition('.')[0],
                         name.rpartition(_STALE)[2])
    if _PARTIAL in name:
        image_id, _, token = name.partition(_PARTIAL)
        return CacheName(PARTIAL, image_id, token)
    if name.endswith(_LOCK):
        return CacheName(LOCK, name[:-len(_LOCK)])
    if '.' not in name:
        return CacheName(ENTRY, name)
    return CacheName()
