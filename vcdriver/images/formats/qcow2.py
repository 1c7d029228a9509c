"""qcow2 (versions 2 and 3) to flat, in one pass over the file.

``qemu-img convert -O qcow2`` writes each L2 table before the clusters it
maps and the clusters in guest order, which is what streaming needs; the
active L1 alone is followed (internal snapshots are ignored).
"""

import struct
import zlib

from vcdriver.images.formats import _mapped
from vcdriver.images.formats._base import CorruptImage
from vcdriver.images.formats._base import MiB
from vcdriver.images.formats._base import table
from vcdriver.images.formats._base import UnsupportedImage

MAGIC = b'QFI\xfb'
_HEADER = struct.Struct('>4sIQIIQIIQQIIQ')
_HEADER_V3 = struct.Struct('>QQQII')
_OFFSET_MASK = 0x00fffffffffffe00
_COMPRESSED = 1 << 62
_ZERO = 1
_MAX_L1_BYTES = 32 * MiB        # qemu's own limit
FIX_HINT = 'qemu-img convert -O qcow2 SOURCE FIXED.qcow2'

# v3 incompatible feature bits.
_DIRTY = 1 << 0
_CORRUPT = 1 << 1
_DATA_FILE = 1 << 2
_COMPRESSION_TYPE = 1 << 3
_EXTENDED_L2 = 1 << 4


class Qcow2Image(_mapped.MappedImage):
    kind_name = 'qcow2 image'
    grain_name = 'cluster'
    fix_hint = FIX_HINT

    def __init__(self, reader, head, spill_limit):
        if len(head) < _HEADER.size:
            raise reader.truncated('the end of its qcow2 header',
                                   at=len(head))
        (_, version, backing_offset, backing_length, cluster_bits, size,
         crypt_method, l1_size, l1_offset, _, _, _,
         _) = _HEADER.unpack_from(head)
        if version not in (2, 3):
            raise UnsupportedImage(
                'qcow2 version %d is not supported (only 2 and 3); '
                'convert it with `%s`' % (version, FIX_HINT))
        if backing_offset:
            name = head[backing_offset:backing_offset + backing_length]
            raise UnsupportedImage(
                'qcow2 image has a backing file (%s): only self-contained '
                'images can be used; flatten it with `qemu-img convert '
                '-O qcow2 IMAGE FLAT.qcow2` (which merges the backing '
                'chain) and upload the result'
                % (name.decode('utf-8', 'replace') or 'unnamed'))
        if crypt_method:
            raise UnsupportedImage(
                'qcow2 image is encrypted (method %d); decrypt it with '
                '`qemu-img convert -O qcow2` and upload the result'
                % crypt_method)
        if version == 3:
            self._check_v3(reader, head)
        if not 9 <= cluster_bits <= 21:
            raise CorruptImage('qcow2 header has cluster_bits %d (must be '
                               '9 to 21)' % cluster_bits)
        cluster = 1 << cluster_bits
        per_table = cluster // 8
        ntables = -(-size // (cluster * per_table))
        if l1_size < ntables:
            raise CorruptImage(
                'qcow2 L1 table has %d entries, too few for a %d-byte '
                'disk' % (l1_size, size))
        if ntables * 8 > _MAX_L1_BYTES:
            raise UnsupportedImage('qcow2 image of %d bytes is too large'
                                   % size)
        if size and (l1_offset % cluster or l1_offset < cluster):
            raise CorruptImage('qcow2 L1 table offset %d is invalid'
                               % l1_offset)
        self.cluster_bits = cluster_bits
        shift = 62 - (cluster_bits - 8)
        self._csize_shift = shift
        self._csize_mask = (1 << (cluster_bits - 8)) - 1
        self._coffset_mask = (1 << shift) - 1
        super().__init__(reader, size, cluster, per_table, l1_offset,
                         ntables * 8, cluster, spill_limit)

    @staticmethod
    def _check_v3(reader, head):
        if len(head) < _HEADER.size + _HEADER_V3.size:
            raise reader.truncated('the end of its qcow2 header',
                                   at=len(head))
        incompatible, _, _, _, header_length = _HEADER_V3.unpack_from(
            head, _HEADER.size)
        compression = head[104] if header_length > 104 else 0
        if incompatible & _CORRUPT:
            raise CorruptImage(
                'qcow2 image is marked corrupt by qemu; repair it with '
                '`qemu-img check -r all` and upload it again')
        if incompatible & _DATA_FILE:
            raise UnsupportedImage(
                'qcow2 image keeps its data in an external file; make a '
                'self-contained one with `%s`' % FIX_HINT)
        if incompatible & _EXTENDED_L2:
            raise UnsupportedImage(
                'qcow2 image uses extended L2 entries (subclusters); '
                'convert it with `%s`' % FIX_HINT)
        if incompatible & _COMPRESSION_TYPE and compression != 0:
            raise UnsupportedImage(
                'qcow2 image is compressed with zstd; only zlib is '
                'supported: convert it with `qemu-img convert -O qcow2 -c '
                '-o compression_type=zlib` (or without -c)')
        known = _DIRTY | _COMPRESSION_TYPE
        if incompatible & ~known:
            raise UnsupportedImage(
                'qcow2 image uses unknown incompatible features (0x%x); '
                'convert it with `%s`' % (incompatible & ~known, FIX_HINT))

    def parse_top(self, data):
        tops = [e & _OFFSET_MASK for e in table(data, 'Q', 'big')]
        for host in tops:
            if host % self.grain:
                raise CorruptImage('qcow2 L1 entry points at byte %d, not '
                                   'a cluster boundary' % host)
        return tops

    def parse_table(self, data):
        n = len(data) // 8
        kinds = bytearray(n)
        hosts = [0] * n
        lengths = [0] * n
        shift, mask = self._csize_shift, self._csize_mask
        omask = self._coffset_mask
        for i, e in enumerate(table(data, 'Q', 'big')):
            if e & _COMPRESSED:
                host = e & omask
                kinds[i] = _mapped.COMPRESSED
                hosts[i] = host
                lengths[i] = ((e >> shift & mask) + 1) * 512 - (host & 511)
            elif not e & _ZERO:
                host = e & _OFFSET_MASK
                if host:
                    if host % self.grain:
                        raise CorruptImage(
                            'qcow2 L2 entry points at byte %d, not a '
                            'cluster boundary' % host)
                    kinds[i] = _mapped.DATA
                    hosts[i] = host
        return _mapped.Table(kinds, hosts, lengths)

    def read_compressed(self, length, need):
        reader = self.reader
        raw = reader.peek(length)
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, self.grain)
        except zlib.error as e:
            raise CorruptImage('qcow2 compressed cluster at byte %d does '
                               'not inflate: %s' % (reader.pos, e))
        if len(data) < need:
            if len(raw) < length:
                raise reader.truncated('a compressed cluster')
            raise CorruptImage('qcow2 compressed cluster at byte %d '
                               'inflates to %d bytes, not %d'
                               % (reader.pos, len(data), need))
        # Compressed clusters are packed byte-tight and the length in the
        # L2 entry rounds up to a sector, so consume only what inflated.
        reader.advance(len(raw) - len(inflater.unconsumed_tail)
                       - len(inflater.unused_data))
        return data
