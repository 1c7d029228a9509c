"""Hosted sparse VMDK (monolithicSparse, streamOptimized) to flat.

Layout per VMware's Virtual Disk Format 5.0: a 512-byte little-endian
header, an embedded descriptor, then grain tables and grains (sparse) or a
run of sector-aligned markers, each grain deflated behind its own marker
(streamOptimized). ESXi and ovftool end a streamOptimized stream with
grain tables, grain directory, footer and end-of-stream marker; qemu-img
puts its tables in the head and ends the file after the last grain.
"""

import re
import struct

from vcdriver.images.formats import _mapped
from vcdriver.images.formats import deflate
from vcdriver.images.formats._base import CorruptImage
from vcdriver.images.formats._base import MiB
from vcdriver.images.formats._base import SECTOR
from vcdriver.images.formats._base import table
from vcdriver.images.formats._base import UnsupportedImage

MAGIC = b'KDMV'
_HEADER = struct.Struct('<4sIIQQQQIQQQ?ccccH')
GD_AT_END = 0xffffffffffffffff
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
_COMPRESS_DEFLATE = 1
_MAX_GRAIN = 2 * MiB
_MAX_TABLE = 32 * MiB
_MARKER = struct.Struct('<QI')
# The grain size our encoder writes (formats/stream_optimized.py): grains
# of that size are passed through deflated.
_PASS_GRAIN = 64 * 1024
_EOS, _GT, _GD, _FOOTER = 0, 1, 2, 3
FIX_HINT = ('qemu-img convert -O vmdk -o subformat=streamOptimized '
            'SOURCE FIXED.vmdk')


class Deflated(bytes):
    """A grain's bytes that also carry ``deflated``, the zlib stream they
    were inflated from, so that an encoder of the same grain size can
    send them on without deflating them again."""

    deflated = None


class Header:
    """The fields of a sparse extent header that conversion needs."""

    def __init__(self, data, label):
        if len(data) < _HEADER.size:
            raise CorruptImage('%s is truncated inside its VMDK header'
                               % label)
        (magic, self.version, self.flags, self.capacity, self.grain_sectors,
         self.descriptor_offset, self.descriptor_size, self.gtes_per_gt, _,
         self.gd_offset, self.overhead, _, _, _, _, _,
         self.compress_algorithm) = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise CorruptImage('%s has no VMDK header magic' % label)

    @property
    def compressed(self):
        return bool(self.flags & FLAG_COMPRESSED)


def check_header(header, descriptor):
    """Refuse VMDKs that are not one self-contained sparse extent."""
    if header.version not in (1, 2, 3):
        raise UnsupportedImage('VMDK sparse version %d is not supported; '
                               'convert it with `%s`'
                               % (header.version, FIX_HINT))
    grain = header.grain_sectors * SECTOR
    if not 0 < grain <= _MAX_GRAIN or grain & (grain - 1):
        raise UnsupportedImage('VMDK grain size of %d sectors is not '
                               'supported; convert it with `%s`'
                               % (header.grain_sectors, FIX_HINT))
    if not 0 < header.gtes_per_gt * 4 <= _MAX_TABLE:
        raise CorruptImage('VMDK header has %d entries per grain table'
                           % header.gtes_per_gt)
    if descriptor is None:
        return
    if re.search(rb'(?m)^\s*parentFileNameHint\s*=', descriptor):
        raise UnsupportedImage(
            'VMDK is a delta (child) disk of another disk; flatten the '
            'chain with `%s` and upload the result' % FIX_HINT)
    extents = re.findall(rb'(?m)^\s*(?:RW|RDONLY|NOACCESS)\s+\d+',
                         descriptor)
    if len(extents) > 1:
        raise UnsupportedImage(
            'VMDK has %d extents; only single-file disks can be uploaded: '
            'convert it with `%s`' % (len(extents), FIX_HINT))


def descriptor(header, head):
    """The embedded descriptor's bytes when they are in ``head``."""
    start = header.descriptor_offset * SECTOR
    end = start + header.descriptor_size * SECTOR
    if not header.descriptor_offset or end > len(head):
        return None
    return head[start:end].split(b'\0', 1)[0]


class SparseImage(_mapped.MappedImage):
    """monolithicSparse: grain directory, grain tables, then grains."""

    kind_name = 'sparse VMDK'
    grain_name = 'grain'
    fix_hint = FIX_HINT

    def __init__(self, reader, header, spill_limit):
        if header.gd_offset in (0, GD_AT_END):
            raise CorruptImage('sparse VMDK has no grain directory offset')
        grain = header.grain_sectors * SECTOR
        size = header.capacity * SECTOR
        per_table = header.gtes_per_gt
        ntables = -(-size // (grain * per_table))
        if ntables * 4 > _MAX_TABLE:
            raise UnsupportedImage('sparse VMDK of %d bytes is too large'
                                   % size)
        super().__init__(reader, size, grain, per_table,
                         header.gd_offset * SECTOR, ntables * 4,
                         per_table * 4, spill_limit)

    def parse_top(self, data):
        return [e * SECTOR for e in table(data, 'I', 'little')]

    def parse_table(self, data):
        entries = table(data, 'I', 'little')
        n = len(entries)
        kinds = bytearray(n)
        hosts = [0] * n
        grain = self.grain
        for i, e in enumerate(entries):
            if e > 1:       # 0: unallocated, 1: zeroed grain
                kinds[i] = _mapped.DATA
                hosts[i] = e * SECTOR
        return _mapped.Table(kinds, hosts, [grain] * n)


def _head_tables(reader, header, size):
    """(grains named, byte just past the last one's marker) from a grain
    directory and grain tables that lie before the first grain, as
    qemu-img writes them; None when they do not (ESXi: GD_AT_END).

    qemu-img writes neither footer nor end-of-stream marker: the file ends
    after its last grain, so only the tables can tell a clean end from a
    cut one. Only counts are kept, not the tables.
    """
    first_grain = max(header.overhead, 1) * SECTOR
    start = header.gd_offset * SECTOR
    span = header.grain_sectors * SECTOR * header.gtes_per_gt
    ntables = -(-size // span)
    if header.gd_offset in (0, GD_AT_END) or ntables * 4 > _MAX_TABLE or (
            not reader.pos <= start < start + ntables * 4 <= first_grain):
        return None
    reader.goto(start, 'its grain directory')
    directory = table(reader.read(ntables * 4, 'its grain directory'),
                      'I', 'little')
    length = header.gtes_per_gt * 4
    offsets = sorted((e * SECTOR, t) for t, e in enumerate(directory) if e)
    end = reader.pos
    for at, _ in offsets:       # in one pass, before the first grain
        if at < end or at + length > first_grain:
            return None
        end = at + length
    grain = header.grain_sectors * SECTOR
    count = last = 0
    for at, t in offsets:
        reader.goto(at, 'its grain tables')
        used = -(-min(span, size - t * span) // grain)
        entries = table(reader.read(length, 'its grain tables')[:used * 4],
                        'I', 'little')
        count += used - entries.count(0) - entries.count(1)
        last = max(last, max(entries, default=0))
    return count, (last * SECTOR + 12 if last > 1 else 0)


def stream_pieces(reader, header, size):
    """streamOptimized: follow the markers; grains come in LBA order.

    The stream ends at an end-of-stream marker (ESXi, ovftool) or, when
    the grain tables sit in the head (qemu-img), at the end of the source
    once every grain they name has been met.
    """
    grain = header.grain_sectors * SECTOR
    max_compressed = 2 * grain + 4096
    named = _head_tables(reader, header, size)
    reader.goto(max(header.overhead, 1) * SECTOR, 'its first grain')
    next_marker = 'its end-of-stream marker' if named is None else 'a marker'
    done = grains = 0
    while True:
        if named is not None and not reader.peek(1):
            _check_all_grains(reader, named, grains)
            break
        lba, length = _MARKER.unpack(reader.read(12, next_marker))
        if not length:
            kind = struct.unpack('<I', reader.read(4, 'a marker'))[0]
            reader.read(SECTOR - 16, 'a marker')
            if kind == _EOS:
                if named is not None:
                    _check_all_grains(reader, named, grains, eos=True)
                break
            if kind in (_GT, _GD):
                reader.goto(reader.pos + lba * SECTOR, 'a grain table')
            elif kind == _FOOTER:
                _check_footer(reader, header, size)
            else:
                raise CorruptImage('streamOptimized VMDK has an unknown '
                                   'marker type %d at byte %d'
                                   % (kind, reader.pos - SECTOR))
            continue
        at = reader.pos - 12
        if length > max_compressed:
            raise CorruptImage('streamOptimized VMDK grain at byte %d '
                               'claims %d compressed bytes' % (at, length))
        compressed = reader.read(length, 'the end of a grain')
        reader.goto(reader.pos + (-(12 + length)) % SECTOR,
                    'the end of a grain')
        grains += 1
        offset = lba * SECTOR
        if offset < done:
            raise UnsupportedImage(
                'streamOptimized VMDK stores its grains out of order (LBA '
                '%d after byte %d was written), so it cannot be converted '
                'in one pass; rewrite it with `%s`' % (lba, done, FIX_HINT))
        if offset >= size:
            raise CorruptImage('streamOptimized VMDK has a grain at LBA %d, '
                               'beyond its capacity' % lba)
        try:
            data = deflate.inflate(compressed, grain)
        except deflate.error as e:
            raise CorruptImage('streamOptimized VMDK grain at byte %d does '
                               'not inflate: %s' % (at, e))
        need = min(grain, size - offset)
        if len(data) < need:
            raise CorruptImage('streamOptimized VMDK grain at byte %d '
                               'inflates to %d bytes, not %d'
                               % (at, len(data), need))
        if offset > done:
            yield offset - done
        if len(data) == need == _PASS_GRAIN and not offset % _PASS_GRAIN:
            # A whole grain as streamOptimized encoders cut them: passed
            # on deflated as it came, never deflated again.
            data = Deflated(data)
            data.deflated = compressed
        yield data if len(data) == need else data[:need]
        done = offset + need
    if done < size:
        yield size - done


def _check_all_grains(reader, named, grains, eos=False):
    """At the stream's end: every grain the head's tables name was met."""
    count, last_end = named
    if grains >= count and reader.pos >= last_end:
        return
    if not eos:
        raise reader.truncated('grain %d of the %d its grain tables name'
                               % (grains + 1, count), at=reader.pos)
    raise CorruptImage(
        'streamOptimized VMDK has an end-of-stream marker at byte %d after '
        '%d grains, but its grain tables name %d; upload the whole file '
        'again, or rewrite it with `%s`'
        % (reader.pos - SECTOR, grains, count, FIX_HINT))


def _check_footer(reader, header, size):
    footer = Header(reader.read(SECTOR, 'the end of its footer'),
                    'streamOptimized VMDK footer')
    if footer.capacity and footer.capacity * SECTOR != size:
        raise CorruptImage(
            'streamOptimized VMDK footer says %d sectors, its header (or '
            'OVF) %d' % (footer.capacity, size // SECTOR))


def open_vmdk(reader, head, spill_limit, capacity=None):
    """(virtual size, pieces) of a sparse or streamOptimized VMDK.

    ``capacity`` (bytes, from an OVF) stands in for a header capacity of 0,
    which streamOptimized writers may leave for the footer.
    """
    label = reader.label
    header = Header(head, label)
    check_header(header, descriptor(header, head))
    if header.compressed:
        if not header.flags & FLAG_MARKERS or (
                header.compress_algorithm != _COMPRESS_DEFLATE):
            raise UnsupportedImage(
                'VMDK uses compressed grains without streamOptimized '
                'markers (algorithm %d); convert it with `%s`'
                % (header.compress_algorithm, FIX_HINT))
        size = header.capacity * SECTOR
        if not size:
            if not capacity:
                raise UnsupportedImage(
                    'streamOptimized VMDK gives its capacity only in its '
                    'footer, so its size is unknown until the end; upload '
                    'it inside an OVA (whose OVF states the capacity) or '
                    'rewrite it with `%s`' % FIX_HINT)
            size = capacity
        return size, stream_pieces(reader, header, size)
    if not header.capacity:
        raise CorruptImage('sparse VMDK header has a capacity of 0')
    image = SparseImage(reader, header, spill_limit)
    return image.size, image.pieces()
