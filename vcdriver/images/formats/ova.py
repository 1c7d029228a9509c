"""OVA (a tar of an OVF descriptor and its disks) read as a stream.

The archive is never staged: tarfile reads it in stream mode, the OVF is
kept (it is small) in case the disk's header leaves its capacity to the
footer, and the first ``.vmdk`` member is converted as it passes; when
that member is a descriptor of FLAT extents, the extents that follow it
are read as one raw disk.
"""

import posixpath
import re
import tarfile
import types
import xml.etree.ElementTree as ElementTree

from vcdriver.images.formats._base import CorruptImage
from vcdriver.images.formats._base import MiB
from vcdriver.images.formats._base import Reader
from vcdriver.images.formats._base import UnsupportedImage

MAX_MEMBERS = 100
# A descriptor is text of a few hundred bytes; a disk is never that small.
MAX_DESCRIPTOR_BYTES = 64 * 1024
DESCRIPTOR_RE = re.compile(rb'^(\xef\xbb\xbf)?[ \t\r\n]*# Disk DescriptorFile')
_EXTENT_RE = re.compile(
    r'^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)\s+"([^"]+)"(?:\s+(\d+))?')
_FIX_HINT = ('qemu-img convert -O vmdk -o subformat=streamOptimized '
             'SOURCE FIXED.vmdk')
MAX_OVF_BYTES = 4 * MiB
_OVF_NS = '{http://schemas.dmtf.org/ovf/envelope/1}'


class _ReaderFile:
    """The file-like face tarfile wants over a Reader."""

    def __init__(self, reader):
        self._reader = reader

    def read(self, n=-1):
        reader = self._reader
        data = reader.peek(n if n >= 0 else MiB)
        reader.advance(len(data))
        return data


def _check_name(name):
    parts = name.replace('\\', '/').split('/')
    if name.startswith(('/', '\\')) or '..' in parts or (
            re.match(r'^[A-Za-z]:', name)):
        raise CorruptImage('OVA member name %r leaves the archive; refusing '
                           'it' % name)


def _member_chunks(archive, member, chunk_size):
    """The member's bytes; a short archive is a corrupt image."""
    f = archive.extractfile(member)
    try:
        while True:
            data = f.read(chunk_size)
            if not data:
                return
            yield data
    except tarfile.ReadError as e:
        raise CorruptImage('OVA is truncated inside %s: %s'
                           % (member.name, e))


def find_disk(reader, chunk_size):
    """(member, OVF bytes or None, inner Reader) for the first ``.vmdk``.
    """
    try:
        archive = tarfile.open(fileobj=_ReaderFile(reader), mode='r|')
    except tarfile.TarError as e:
        raise CorruptImage('OVA is not a readable tar archive: %s' % e)
    ovf = None
    count = 0
    while True:
        try:
            member = archive.next()
        except tarfile.TarError as e:
            raise CorruptImage('OVA is not a readable tar archive: %s' % e)
        if member is None:
            raise CorruptImage('OVA holds no .vmdk disk')
        count += 1
        if count > MAX_MEMBERS:
            raise CorruptImage('OVA has more than %d members before its '
                               'disk; refusing it' % MAX_MEMBERS)
        _check_name(member.name)
        if member.isdir():
            continue
        if not member.isfile():
            raise CorruptImage('OVA member %s is not a regular file'
                               % member.name)
        name = member.name.lower()
        if name.endswith('.ovf') and ovf is None:
            if member.size > MAX_OVF_BYTES:
                raise CorruptImage('OVA descriptor %s is %d bytes; refusing '
                                   'more than %d'
                                   % (member.name, member.size,
                                      MAX_OVF_BYTES))
            ovf = b''.join(_member_chunks(archive, member, chunk_size))
        elif name.endswith('.vmdk'):
            if member.size <= MAX_DESCRIPTOR_BYTES:
                text = b''.join(_member_chunks(archive, member, chunk_size))
                if DESCRIPTOR_RE.match(text):
                    return _flat_extents(archive, member, text, ovf,
                                         chunk_size)
                chunks = iter([text])
            else:
                chunks = _member_chunks(archive, member, chunk_size)
            inner = Reader(chunks, label='OVA disk %s' % member.name)
            return member, ovf, inner


def _flat_extents(archive, descriptor, text, ovf, chunk_size):
    """A VMDK descriptor whose disk is in FLAT extents, the members that
    follow it (as qemu-img's monolithicFlat and twoGbMaxExtentFlat, or a
    vSphere datastore's disk, packed): the extents, in the descriptor's
    order, read as one raw disk."""
    extents = []
    for line in text.decode('utf-8', 'replace').splitlines():
        m = _EXTENT_RE.match(line)
        if not m:
            continue
        access, sectors, kind, file_name, offset = m.groups()
        if kind.upper() != 'FLAT' or int(offset or 0):
            raise UnsupportedImage(
                'OVA disk %s has a %s extent (%s); only FLAT extents at '
                'offset 0 can be read from an OVA: convert it with `%s`'
                % (descriptor.name, kind, file_name, _FIX_HINT))
        extents.append((posixpath.basename(file_name), int(sectors) * 512))
    if not extents:
        raise UnsupportedImage('OVA disk %s is a VMDK descriptor naming no '
                               'extent' % descriptor.name)
    if re.search(rb'(?m)^\s*parentFileNameHint\s*=', text):
        raise UnsupportedImage('OVA disk %s is a delta (child) disk; '
                               'flatten it with `%s`'
                               % (descriptor.name, _FIX_HINT))

    def pieces():
        for want, size in extents:
            member = _next_file(archive)
            if member is None or posixpath.basename(member.name) != want:
                raise UnsupportedImage(
                    'OVA disk %s needs its extent %s next in the archive, '
                    'found %s; pack the extents right after their '
                    'descriptor, in its order, or convert the disk with '
                    '`%s`' % (descriptor.name, want,
                              member.name if member else 'the end',
                              _FIX_HINT))
            if member.size != size:
                raise CorruptImage(
                    'OVA extent %s is %d bytes; its descriptor says %d'
                    % (member.name, member.size, size))
            yield from _member_chunks(archive, member, chunk_size)
    disk = types.SimpleNamespace(
        name=descriptor.name, size=sum(size for _name, size in extents),
        flat_extents=True)
    return disk, ovf, Reader(pieces(), label='OVA disk %s' % descriptor.name)


def _next_file(archive):
    """The archive's next regular file (folders skipped), or None."""
    while True:
        try:
            member = archive.next()
        except tarfile.TarError as e:
            raise CorruptImage('OVA is not a readable tar archive: %s' % e)
        if member is None or not member.isdir():
            if member is not None:
                _check_name(member.name)
            return member


_UNITS = re.compile(r'^\s*byte\s*(?:\*\s*(\d+)\s*(?:\^\s*(\d+))?)?\s*$')


def ovf_capacity(ovf, href):
    """The capacity in bytes the OVF gives the disk file ``href``, or None
    (only needed when the disk's header leaves it to its footer)."""
    if not ovf:
        return None
    try:
        root = ElementTree.fromstring(ovf)
    except ElementTree.ParseError:
        return None
    ids = {f.get(_OVF_NS + 'id') for f in root.iter(_OVF_NS + 'File')
           if posixpath.basename(f.get(_OVF_NS + 'href') or '') ==
           posixpath.basename(href)}
    disks = list(root.iter(_OVF_NS + 'Disk'))
    for disk in disks:
        if disk.get(_OVF_NS + 'fileRef') in ids or len(disks) == 1:
            try:
                capacity = int(disk.get(_OVF_NS + 'capacity'))
            except (TypeError, ValueError):
                return None
            units = _UNITS.match(
                disk.get(_OVF_NS + 'capacityAllocationUnits') or 'byte')
            if not units:
                return None
            base, power = units.groups()
            if base:
                capacity *= int(base) ** int(power or 1)
            return capacity
    return None
