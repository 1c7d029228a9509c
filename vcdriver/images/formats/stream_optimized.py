"""A flat disk to a streamOptimized VMDK, streamed, as ESXi exports one.

vSphere's NFC import lease takes streamOptimized VMDKs; sending one
instead of the flat disk means all-zero grains never cross the wire and
the rest crosses deflated. The layout is VMware's Virtual Disk Format 5.0
as ESXi and ovftool write it: header, embedded descriptor, then each grain
behind its marker in LBA order, a grain table behind a marker after each
table's span, the grain directory, a footer (the header again, with the
directory's offset) and an end-of-stream marker. The grain directory is
at the end (GD_AT_END) because it is only known there; memory holds one
grain table, the directory and a few batches of grains, whatever the disk
size.

    encoder = Encoder(image.virtual_size)
    for chunk in encoder.encode(pieces):
        send(chunk)
    log(encoder.data_grains, encoder.zero_grains, encoder.bytes_out)
"""

import array
import functools
import itertools
import random
import struct
import sys
import threading
import zlib

from vcdriver.images.formats import deflate
from vcdriver.images.formats._base import CorruptImage
from vcdriver.images.formats._base import MiB
from vcdriver.images.formats._base import SECTOR
from vcdriver.images.formats._base import UnsupportedImage

GRAIN_SIZE = 64 * 1024
GRAIN_SECTORS = GRAIN_SIZE // SECTOR
GTES_PER_GT = 512               # a grain table maps 32 MiB
GT_SECTORS = GTES_PER_GT * 4 // SECTOR
OVERHEAD_ALIGN = 128            # sectors; ESXi starts grains at 64 KiB
BATCH_GRAINS = 32               # grains handed to compress_map at a time
TASK_GRAINS = 8                 # grains deflated by one call of its func
# A grain whose first SAMPLE bytes deflate to more than this share of
# their size is taken not to compress.
SAMPLE = 4096
INCOMPRESSIBLE = 0.97

_HEADER = struct.Struct('<4sIIQQQQIQQQ?ccccH')
_MARKER = struct.Struct('<QI')
_META_MARKER = struct.Struct('<QII')
_GD_AT_END = 0xffffffffffffffff
_FLAGS = 0x30001        # newline detection, compressed grains, markers
_EOS, _GT, _GD, _FOOTER = 0, 1, 2, 3
# RFC 1950/1951: zlib header (deflate, 32 KiB window, no preset
# dictionary, fastest), a stored block's BFINAL/BTYPE byte, LEN and NLEN.
_ZLIB_HEADER = b'\x78\x01'
_STORED_BLOCK = struct.Struct('<BHH')
_STORED_MAX = 0xffff
_MAX_SECTOR = 0xffffffff        # grain tables and directory hold u32

_local = threading.local()
_ZERO_GRAIN = bytes(GRAIN_SIZE)
_ZERO_SECTOR = bytes(SECTOR)
_EMPTY_TABLE = (_META_MARKER.pack(GT_SECTORS, 0, _GT).ljust(SECTOR, b'\0')
                + bytes(GT_SECTORS * SECTOR))

# Nova's adapter types in the descriptor's words; the VM's own controller
# is set by its config, the descriptor only has to be one ESXi accepts.
_ADAPTERS = {'ide': 'ide', 'buslogic': 'buslogic', 'lsilogic': 'lsilogic',
             'lsilogicsas': 'lsilogic', 'paravirtual': 'lsilogic'}


def _new_cid():
    """A content ID: tells ESXi this disk's content is new."""
    return random.SystemRandom().getrandbits(32)


def _geometry(sectors, adapter):
    """(cylinders, heads, sectors per track), as VMware's tools compute
    them."""
    if adapter == 'ide':
        heads, per_track, most = 16, 63, 16383
    elif sectors < 2 * 1024 * 1024:     # under 1 GiB
        heads, per_track, most = 64, 32, 65535
    else:
        heads, per_track, most = 255, 63, 65535
    return (max(1, min(most, sectors // (heads * per_track))), heads,
            per_track)


def descriptor(capacity, adapter_type='lsiLogic', cid=None):
    """The embedded descriptor text for ``capacity`` sectors."""
    adapter = _ADAPTERS.get((adapter_type or '').lower(), 'lsilogic')
    cylinders, heads, per_track = _geometry(capacity, adapter)
    return ('# Disk DescriptorFile\n'
            'version=1\n'
            'CID=%08x\n'
            'parentCID=ffffffff\n'
            'createType="streamOptimized"\n'
            '\n'
            '# Extent description\n'
            'RW %d SPARSE "disk.vmdk"\n'
            '\n'
            '# The Disk Data Base\n'
            '#DDB\n'
            '\n'
            'ddb.adapterType = "%s"\n'
            'ddb.geometry.cylinders = "%d"\n'
            'ddb.geometry.heads = "%d"\n'
            'ddb.geometry.sectors = "%d"\n'
            'ddb.virtualHWVersion = "4"\n'
            'ddb.toolsVersion = "0"\n'
            % (_new_cid() if cid is None else cid, capacity, adapter,
               cylinders, heads, per_track)).encode('ascii')


def _header(capacity, descriptor_sectors, overhead, gd_offset):
    return _HEADER.pack(
        b'KDMV', 3, _FLAGS, capacity, GRAIN_SECTORS, 1, descriptor_sectors,
        GTES_PER_GT, 0, gd_offset, overhead, False, b'\n', b' ', b'\r',
        b'\n', 1).ljust(SECTOR, b'\0')


def _u32_bytes(entries):
    """A table of u32 entries as little-endian bytes."""
    if sys.byteorder != 'little':
        entries = array.array('I', entries)
        entries.byteswap()
    return entries.tobytes()


class Encoder:
    """Pieces of a flat disk (bytes, or int = that many zero bytes, in
    order, totalling ``virtual_size`` at most: the rest reads as zeros)
    to the bytes of a streamOptimized VMDK, ESXi's layout.

    ``encode(pieces)`` yields chunks of ``chunk_size`` bytes (the last
    shorter); ``pieces`` given here instead makes the Encoder itself
    iterable, once. Grains that are all zero are not written. Each batch
    of grains is deflated at ``level`` through ``compress_map(func,
    grains)``, an ordered map (a thread pool's parallelises: zlib lets go
    of the GIL). ``data_grains``, ``zero_grains`` and ``bytes_out`` are
    final once the chunks are exhausted. An error from ``pieces`` comes
    before the footer, so a consumer never holds a complete-looking disk.
    """

    def __init__(self, virtual_size, *, level=1, adapter_type='lsiLogic',
                 chunk_size=MiB, compress_map=map, pieces=None):
        if virtual_size <= 0:
            raise ValueError('virtual_size must be positive')
        if chunk_size <= 0:
            raise ValueError('chunk_size must be positive')
        if not -1 <= level <= 9:
            raise ValueError('level must be -1 to 9')
        self.virtual_size = virtual_size
        self.capacity = -(-virtual_size // SECTOR)
        self.level = level
        self.adapter_type = adapter_type
        self.chunk_size = chunk_size
        self.compress_map = compress_map
        self._ngrains = -(-self.capacity // GRAIN_SECTORS)
        self._ntables = -(-self._ngrains // GTES_PER_GT)
        self.data_grains = 0
        self.zero_grains = 0
        self.bytes_out = 0
        self._pieces = pieces
        self._used = False

    def __iter__(self):
        if self._pieces is None:
            raise TypeError('this Encoder was given no pieces; iterate '
                            'encode(pieces)')
        return self.encode(self._pieces)

    def _data_grains(self, pieces):
        """(index, bytes or a memoryview of a piece) of each grain that is
        not all zero, in order; the last grain padded with zeros to a full
        one."""
        grain = GRAIN_SIZE
        zero = _ZERO_GRAIN
        buf = bytearray()       # the grain being filled, at ``index``
        index = 0
        done = 0
        limit = self.virtual_size
        for piece in pieces:
            hole = type(piece) is int
            n = piece if hole else len(piece)
            done += n
            if done > limit:
                raise CorruptImage('image holds more data (%d bytes) than '
                                   'its virtual size (%d bytes)'
                                   % (done, limit))
            if not hole and not isinstance(piece, bytes):
                piece = bytes(piece)
            # A hole reads as zeros: the grain being filled takes them
            # from the zero grain, as it takes data from the piece.
            view = zero if hole else memoryview(piece)
            at = 0
            if buf:
                at = min(n, grain - len(buf))
                buf += view[:at]
                if len(buf) < grain:
                    continue
                data = bytes(buf)
                buf.clear()
                if data != zero:
                    yield index, data
                index += 1
            if hole:
                index += (n - at) // grain
                buf += zero[:(n - at) % grain]
                continue
            while n - at >= grain:
                # A compare, and zlib reads the piece: no copy.
                if not piece.startswith(zero, at):
                    yield index, piece if n == grain else view[
                        at:at + grain]
                index += 1
                at += grain
            if at < n:
                buf += view[at:]
        if buf:
            buf += zero[:grain - len(buf)]
            if buf != zero:
                yield index, bytes(buf)

    def _deflated(self, pieces):
        """(index, deflated grain) in order. Each batch is handed to
        ``compress_map`` before the previous one is taken, so that a pool
        deflates while the caller sends; two batches at most are held.
        A pool's task is a few grains, not one: fewer hand-overs of the
        GIL between the caller and the pool."""
        deflate = functools.partial(_deflate, self.level)
        grains = self._data_grains(pieces)
        pending = None
        while batch := list(itertools.islice(grains, BATCH_GRAINS)):
            indexes = [i for i, _ in batch]
            data = [d for _, d in batch]
            del batch
            results = self.compress_map(deflate, [
                data[i:i + TASK_GRAINS]
                for i in range(0, len(data), TASK_GRAINS)])
            del data
            if pending is not None:
                yield from _flat(*pending)
            pending = indexes, results
        if pending is not None:
            yield from _flat(*pending)

    def encode(self, pieces):
        """An iterator of the VMDK's bytes, in chunks of ``chunk_size``.
        """
        if self._used:
            raise RuntimeError('an Encoder encodes once')
        self._used = True
        return self._encode(pieces)

    def _encode(self, pieces):
        cs = self.chunk_size
        self._out = out = bytearray()
        text = descriptor(self.capacity, self.adapter_type)
        descriptor_sectors = -(-len(text) // SECTOR)
        overhead = -(-(1 + descriptor_sectors) // OVERHEAD_ALIGN) * (
            OVERHEAD_ALIGN)
        out += _header(self.capacity, descriptor_sectors, overhead,
                       _GD_AT_END)
        out += text
        out += bytes(overhead * SECTOR - len(out))
        self._written = len(out)    # bytes put in ``out``: the file offset
        self._directory = array.array('I', bytes(4 * self._ntables))
        self._entries = array.array('I', bytes(4 * GTES_PER_GT))
        self._table = 0             # the grain table being filled
        marker = _MARKER.pack
        zero_sector = _ZERO_SECTOR
        for index, packed in self._deflated(pieces):
            if index // GTES_PER_GT != self._table:
                yield from self._tables_before(index // GTES_PER_GT)
            self._entries[index % GTES_PER_GT] = _sector(self._written)
            length = len(packed)
            pad = -(12 + length) % SECTOR
            out += marker(index * GRAIN_SECTORS, length)
            out += packed
            out += zero_sector[:pad]
            self._written += 12 + length + pad
            self.data_grains += 1
            if len(out) >= cs:
                yield from self._cut()
        yield from self._tables_before(self._ntables)

        gd_sectors = -(-4 * self._ntables // SECTOR)
        out += _META_MARKER.pack(gd_sectors, 0, _GD).ljust(SECTOR, b'\0')
        gd_offset = _sector(self._written + SECTOR)
        data = _u32_bytes(self._directory)
        self._directory = self._entries = None
        out += data
        out += bytes(gd_sectors * SECTOR - len(data))
        out += _META_MARKER.pack(1, 0, _FOOTER).ljust(SECTOR, b'\0')
        out += _header(self.capacity, descriptor_sectors, overhead,
                       gd_offset)
        out += zero_sector      # end-of-stream marker
        self.zero_grains = self._ngrains - self.data_grains
        yield from self._cut()
        if out:
            self.bytes_out += len(out)
            yield bytes(out)
            out.clear()

    def _cut(self):
        out = self._out
        cs = self.chunk_size
        while len(out) >= cs:
            with memoryview(out) as view:
                chunk = bytes(view[:cs])
            del out[:cs]
            self.bytes_out += cs
            yield chunk

    def _tables_before(self, end):
        """Write the grain table being filled, then empty ones, up to
        table ``end``: every table is written, as ESXi does. Empty ones
        are all alike, and go out in runs of about a chunk."""
        out = self._out
        directory = self._directory
        size = len(_EMPTY_TABLE)
        out += _EMPTY_TABLE[:SECTOR]
        directory[self._table] = _sector(self._written + SECTOR)
        out += _u32_bytes(self._entries)
        self._written += size
        self._table += 1
        self._entries = array.array('I', bytes(4 * GTES_PER_GT))
        run = max(1, self.chunk_size // size)
        while self._table < end:
            n = min(run, end - self._table)
            first = _sector(self._written + SECTOR)
            _sector(self._written + n * size)       # the run's last fits
            step = size // SECTOR
            directory[self._table:self._table + n] = array.array(
                'I', range(first, first + step * n, step))
            out += _EMPTY_TABLE * n
            self._written += n * size
            self._table += n
            if len(out) >= self.chunk_size:
                yield from self._cut()
        if len(out) >= self.chunk_size:
            yield from self._cut()


def _deflate(level, grains):
    """A task's grains, deflated.

    Grains that come deflated already (vmdk.Deflated, from a
    streamOptimized source) go as they are. Data that does not compress
    (already compressed or encrypted) costs zlib about as much per grain
    whether it gains or not, so a sample of each grain is deflated first,
    at a sixteenth of the cost, and a grain whose sample does not shrink
    is stored (level 0)."""
    out = []
    for grain in grains:
        deflated = getattr(grain, 'deflated', None)
        if deflated is not None:
            out.append(deflated)
            continue
        if level and _sample_size(grain) > SAMPLE * INCOMPRESSIBLE:
            out.append(_stored(grain))
        else:
            out.append(deflate.compress(grain, level))
    return out


def _sample_size(grain):
    """The first SAMPLE bytes of ``grain`` deflated at level 1, in
    bytes. Each thread keeps one raw deflater and resets it with a full
    flush: setting one up per grain cost more than deflating the sample.
    """
    sampler = getattr(_local, 'sampler', None)
    if sampler is None:
        sampler = _local.sampler = deflate.raw_deflater(1)
    return (len(sampler.compress(grain[:SAMPLE]))
            + len(sampler.flush(zlib.Z_FULL_FLUSH)))


def _stored(data):
    """``data`` as a zlib stream of stored blocks: what
    ``zlib.compress(data, 0)`` makes, at a sixth of its CPU. zlib sets up
    a whole compressor (windows and hash tables) even to store, which
    costs more than the copy and the Adler-32 that storing needs."""
    parts = [_ZLIB_HEADER]
    view = memoryview(data)
    size = len(data)
    at = 0
    while True:
        n = min(_STORED_MAX, size - at)
        final = at + n == size
        parts.append(_STORED_BLOCK.pack(final, n, n ^ 0xffff))
        parts.append(view[at:at + n])
        at += n
        if final:
            break
    parts.append(zlib.adler32(data).to_bytes(4, 'big'))
    return b''.join(parts)


def _flat(indexes, results):
    """(index, deflated grain) pairs from the results of each task."""
    deflated = itertools.chain.from_iterable(results)
    yield from zip(indexes, deflated, strict=True)


def _sector(offset):
    """The sector of byte ``offset``, as a grain table or directory holds
    it."""
    sector = offset // SECTOR
    if sector > _MAX_SECTOR:
        raise UnsupportedImage(
            'the disk does not fit a streamOptimized VMDK: it would be '
            'over 2 TiB even deflated, more than its grain tables can '
            'address')
    return sector
