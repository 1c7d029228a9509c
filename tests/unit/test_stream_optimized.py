"""The streamOptimized encoder, checked by qemu-img and by our decoder.

qemu-img is the independent oracle: it must read what we write back to
the source (``convert -O raw``, or ``compare`` for sparse GiBs) and find
nothing wrong in it (``check``).
"""

import concurrent.futures
import json
import os
import random
import re
import struct
import time
import tracemalloc
import zlib

import pytest

from tests.unit import formats_fixtures as ff
from vcdriver.images import formats
from vcdriver.images.formats import CorruptImage
from vcdriver.images.formats import stream_optimized as so
from vcdriver.images.formats import UnsupportedImage

MiB = ff.MiB
GiB = 1024 * MiB
GRAIN = so.GRAIN_SIZE
SPAN = GRAIN * so.GTES_PER_GT


def text(size):
    lines = b''.join(b'%08d: the quick brown fox jumps over the lazy dog\n'
                     % i for i in range(20000))
    return (lines * (size // len(lines) + 1))[:size]


# name -> raw disk bytes
SOURCES = {
    'sector': lambda: random.Random(1).randbytes(512),
    'grain-less-a-sector': lambda: random.Random(2).randbytes(GRAIN - 512),
    '5m-4.5k': lambda: random.Random(3).randbytes(5 * MiB + 4608),
    '8m-random': lambda: random.Random(4).randbytes(8 * MiB),
    'mixed': ff.source_disk,
    'text-two-tables': lambda: text(SPAN + 3 * MiB + 1000),
    'zero-4m': lambda: bytes(4 * MiB),
    'odd-size': lambda: random.Random(5).randbytes(GRAIN + 1000),
}


def pieces(data, size, holes=False):
    """``data`` in pieces of ``size`` bytes; with ``holes``, every
    all-zero piece as an int, as the decoders give them."""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        if holes and piece.count(0) == len(piece):
            yield len(piece)
        else:
            yield piece


def encode(data_pieces, virtual_size, **kwargs):
    encoder = so.Encoder(virtual_size, **kwargs)
    chunks = list(encoder.encode(data_pieces))
    out = b''.join(chunks)
    size = kwargs.get('chunk_size', MiB)
    assert all(len(c) == size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= size
    assert encoder.bytes_out == len(out)
    return encoder, out


def data_grains(raw):
    """How many grains of ``raw`` are not all zero."""
    padded = raw + bytes(-len(raw) % GRAIN)
    zero = bytes(GRAIN)
    return sum(padded[i:i + GRAIN] != zero
               for i in range(0, len(padded), GRAIN))


def layout(out):
    """The VMDK's structure as its markers tell it."""
    header = struct.unpack_from('<4sIIQQQQIQQQ?ccccH', out)
    at = header[10] * 512
    grains, kinds = [], []
    while True:
        lba, size = struct.unpack_from('<QI', out, at)
        if size:
            grains.append((at, lba, size))
            at += -(-(12 + size) // 512) * 512
            continue
        kind = struct.unpack_from('<I', out, at + 12)[0]
        assert out[at + 16:at + 512] == bytes(496)
        kinds.append(kind)
        if kind == 0:
            assert lba == 0
            at += 512
            break
        at += 512 + lba * 512
    assert at == len(out)
    return header, grains, kinds


def check(tmp_path, out, raw, encoder=None):
    """qemu-img and our decoder read ``out`` back as ``raw``."""
    size = -(-len(raw) // 512) * 512
    flat = raw + bytes(size - len(raw))
    path = ff.write(tmp_path / 'out.vmdk', out)
    info = json.loads(ff.qemu_img('info', '--output=json', '-f', 'vmdk',
                                  path))
    assert info['virtual-size'] == size
    assert info['format-specific']['data']['create-type'] == (
        'streamOptimized')
    assert 'No errors' in ff.qemu_img('check', '-f', 'vmdk', path)
    assert ff.to_raw(path, 'vmdk') == flat
    image = formats.open_flat(ff.chunked(out, 65536), 'vmdk',
                              vmware_disktype='streamOptimized',
                              source_size=len(out))
    assert image.source_format == 'vmdk-stream'
    assert b''.join(image) == flat
    archive = ff.ova([('a.ovf', ff.ovf('a.vmdk', size)), ('a.vmdk', out)])
    image = formats.open_flat(ff.chunked(archive, 65536), 'vmdk', 'ova',
                              source_size=len(archive))
    assert b''.join(image) == flat
    header, grains, kinds = layout(out)
    tables = -(-size // SPAN)
    assert kinds == [1] * tables + [2, 3, 0]
    assert len(grains) == data_grains(raw)
    if encoder is not None:
        assert encoder.data_grains == len(grains)
        assert encoder.zero_grains == -(-size // GRAIN) - len(grains)
    return header, grains


@pytest.mark.parametrize('name', list(SOURCES))
def test_round_trips(tmp_path, name):
    raw = SOURCES[name]()
    for size, holes in ((len(raw) or 1, False), (65536 + 7, True),
                        (4096, True), (1000 + 7, False)):
        if size < 4096 and len(raw) > MiB:
            continue
        encoder, out = encode(pieces(raw, size, holes), len(raw))
        check(tmp_path, out, raw, encoder)


def test_header_and_descriptor(tmp_path):
    raw = ff.source_disk()
    encoder, out = encode([raw], len(raw), adapter_type='ide')
    header, grains = check(tmp_path, out, raw, encoder)
    (magic, version, flags, capacity, grain_sectors, descriptor_offset,
     descriptor_size, gtes, rgd, gd, overhead, unclean, nl1, nl2, nl3, nl4,
     algorithm) = header
    assert (magic, version, flags, grain_sectors, gtes, rgd, gd) == (
        b'KDMV', 3, 0x30001, 128, 512, 0, 2 ** 64 - 1)
    assert capacity == -(-len(raw) // 512)
    assert (descriptor_offset, unclean, algorithm) == (1, False, 1)
    assert (nl1, nl2, nl3, nl4) == (b'\n', b' ', b'\r', b'\n')
    assert overhead == 128 and grains[0][0] == 128 * 512
    text = out[512:512 + descriptor_size * 512].rstrip(b'\0').decode()
    assert 'createType="streamOptimized"' in text
    assert 'RW %d SPARSE "disk.vmdk"' % capacity in text
    assert 'ddb.adapterType = "ide"' in text
    assert 'ddb.geometry.heads = "16"' in text
    # The footer is the header with the grain directory's sector.
    footer = out[-1024:-512]
    gd_sector = struct.unpack_from('<Q', footer, 56)[0]
    assert footer[:56] == out[:56] and footer[64:512] == out[64:512]
    assert out[gd_sector * 512 - 512 + 12:][:4] == b'\2\0\0\0'
    first_gt = struct.unpack_from('<I', out, gd_sector * 512)[0]
    assert struct.unpack_from('<I', out, first_gt * 512)[0] == (
        grains[0][0] // 512)
    for adapter, word in (('lsiLogic', 'lsilogic'), ('busLogic', 'buslogic'),
                          ('paraVirtual', 'lsilogic')):
        _, out = encode([raw], len(raw), adapter_type=adapter)
        assert b'ddb.adapterType = "%s"' % word.encode() in out[:4096]


@pytest.mark.parametrize('level', [0, 1, 6, 9])
def test_levels(tmp_path, level):
    raw = ff.source_disk()
    encoder, out = encode(pieces(raw, 100000), len(raw), level=level)
    check(tmp_path, out, raw, encoder)


def test_thread_pool_gives_the_same_bytes(monkeypatch):
    monkeypatch.setattr(so, '_new_cid', lambda: 0x12345678)
    raw = ff.source_disk(size=SPAN + 5 * MiB + 512) + text(3 * MiB)
    _, plain = encode(pieces(raw, 65536, True), len(raw))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        encoder, pooled = encode(pieces(raw, 65536, True), len(raw),
                                 compress_map=pool.map)
    assert pooled == plain
    assert encoder.data_grains == data_grains(raw)


def test_ints_skip_whole_grains_and_tables(tmp_path):
    """Holes given as ints, across grains and grain tables, around bytes
    that start and end inside grains; a disk short of a sector."""
    layout_pieces = [3 * MiB, os.urandom(100000), 1000, os.urandom(65536),
                     2 * SPAN + 7, b'\0' * 70000, os.urandom(7), GRAIN,
                     text(MiB + 5), 4 * MiB]
    raw = b''.join(bytes(p) if type(p) is int else p
                   for p in layout_pieces)
    size = len(raw) + 300       # the end reads as zeros, as in rechunk
    encoder, out = encode(layout_pieces, size)
    check(tmp_path, out, raw + bytes(300), encoder)


def test_all_zero_writes_no_grain(tmp_path):
    for source in ([bytes(4 * MiB)], [4 * MiB], [MiB, bytes(MiB), 2 * MiB]):
        encoder, out = encode(source, 4 * MiB)
        assert encoder.data_grains == 0 and encoder.zero_grains == 64
        check(tmp_path, out, bytes(4 * MiB), encoder)


def test_more_than_the_virtual_size():
    encoder = so.Encoder(MiB)
    with pytest.raises(CorruptImage, match='more data'):
        list(encoder.encode([MiB, b'x']))


def test_beyond_what_grain_tables_address(monkeypatch):
    monkeypatch.setattr(so, '_MAX_SECTOR', 1000)
    encoder = so.Encoder(MiB)
    with pytest.raises(UnsupportedImage, match='2 TiB'):
        list(encoder.encode([os.urandom(MiB)]))


def test_arguments():
    for size in (0, -512):
        with pytest.raises(ValueError):
            so.Encoder(size)
    with pytest.raises(ValueError):
        so.Encoder(MiB, level=10)
    with pytest.raises(ValueError):
        so.Encoder(MiB, chunk_size=0)
    with pytest.raises(TypeError):
        iter(so.Encoder(MiB))
    encoder = so.Encoder(MiB, adapter_type=None)
    assert b'"lsilogic"' in next(encoder.encode([MiB]))
    with pytest.raises(RuntimeError):
        encoder.encode([MiB])


def sparse_regions():
    """8 MiB of random data over 2 GiB: unaligned, across a grain
    table's span and at the very end."""
    rnd = random.Random(11)
    return [(offset, rnd.randbytes(size)) for offset, size in (
        (0, MiB), (300 * MiB + 4608, MiB + MiB // 2),
        (GiB - 40 * 1024, 2 * MiB), (3 * GiB // 2 + 8704, 2 * MiB),
        (2 * GiB - 3 * MiB // 2, 3 * MiB // 2))]


def test_mostly_empty_2g(tmp_path):
    regions = sparse_regions()
    done = 0
    source = []
    raw = tmp_path / 'sparse.raw'
    with open(raw, 'wb') as f:
        f.truncate(2 * GiB)
        for offset, data in regions:
            f.seek(offset)
            f.write(data)
            source += [offset - done, data]
            done = offset + len(data)
    source.append(2 * GiB - done)
    encoder = so.Encoder(2 * GiB)
    path = tmp_path / 'out.vmdk'
    with open(path, 'wb') as f:
        for chunk in encoder.encode(source):
            f.write(chunk)
    assert encoder.bytes_out == os.path.getsize(path)
    assert encoder.bytes_out <= 1.05 * 8 * MiB + MiB, encoder.bytes_out
    grains = set()
    for offset, data in regions:
        grains.update(range(offset // GRAIN,
                            -(-(offset + len(data)) // GRAIN)))
    assert encoder.data_grains == len(grains)
    assert encoder.zero_grains == 2 * GiB // GRAIN - len(grains)
    assert 'No errors' in ff.qemu_img('check', '-f', 'vmdk', path)
    ff.qemu_img('compare', '-f', 'vmdk', '-F', 'raw', path, raw)
    out = ff.read(path)
    _, markers, kinds = layout(out)
    assert len(markers) == len(grains) and kinds.count(1) == 64


def test_memory_is_bounded():
    """256 MiB of mostly random data, made as it is read, encodes holding
    a few batches of grains: level 0 keeps every grain's full size."""
    def source():
        rnd = random.Random(3)
        for i in range(256):
            if i % 16 == 5:
                yield MiB
            else:
                yield rnd.randbytes(MiB - 4096)
                yield bytes(4096)
    tracemalloc.start()
    try:
        encoder = so.Encoder(256 * MiB, level=0)
        total = sum(len(chunk) for chunk in encoder.encode(source()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == encoder.bytes_out > 240 * MiB
    assert encoder.data_grains == 240 * 16
    assert peak < 16 * MiB, peak


def test_2t_of_holes_is_quick_and_small():
    """Empty grain tables are all alike and go out in runs."""
    size = 2 * 1024 * GiB
    tracemalloc.start()
    try:
        started = time.monotonic()
        encoder = so.Encoder(size)
        tail = []
        for chunk in encoder.encode([size // 2, b'\1' * 512,
                                     size // 2 - 512]):
            tail = [tail[-1] if tail else b'', chunk]
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 3, elapsed       # about 0.2 s when not contended
    assert peak < 8 * MiB, peak
    assert (encoder.data_grains, encoder.zero_grains) == (1, 2 ** 25 - 1)
    tables = 2 ** 16
    assert encoder.bytes_out == (65536 + 512 + tables * 2560
                                 + 512 + tables * 4 + 3 * 512)
    # The directory names each grain table, 5 sectors apart but for the
    # one after the data grain (1 sector: its marker and deflated grain).
    end = b''.join(tail)
    directory = end[-1536 - tables * 4:-1536]
    entries = struct.unpack('<%dI' % tables, directory)
    steps = {b - a for a, b in zip(entries, entries[1:], strict=False)}
    assert steps == {5, 6}
    footer = end[-1024:-512]
    assert struct.unpack_from('<Q', footer, 12)[0] == size // 512


def test_flat_image_stream_optimized(tmp_path):
    """From Glance's qcow2 to a streamOptimized VMDK, as the driver sends
    it through an NFC import lease."""
    raw = ff.source_disk()
    src = ff.write(tmp_path / 'src.raw', raw)
    data = ff.convert(src, tmp_path / 'src.qcow2', 'qcow2', '-c')
    image = formats.open_flat(ff.chunked(data, 4096), 'qcow2',
                              source_size=len(data), chunk_size=65536)
    encoder = image.stream_optimized(level=6, adapter_type='busLogic')
    chunks = list(encoder)
    out = b''.join(chunks)
    # The FlatImage's chunk size, and grains deflated at level 6: zlib's
    # header says its default level (RFC 1950, FLEVEL 2; incompressible
    # grains are stored, FLEVEL 0).
    assert [len(c) for c in chunks] == [65536] * (len(out) // 65536) + (
        [len(out) % 65536] if len(out) % 65536 else [])
    assert len(chunks) > 1
    check(tmp_path, out, raw, encoder)
    assert b'ddb.adapterType = "buslogic"' in out[:4096]
    markers, _end = ff.grain_markers(out)
    assert {out[at + 12:at + 14] for at in markers} == {b'\x78\x9c',
                                                         b'\x78\x01'}
    with pytest.raises(RuntimeError):
        iter(image)
    with pytest.raises(RuntimeError):
        iter(encoder)


def test_flat_image_short_source_sends_no_footer(tmp_path):
    """Glance's size not matching fails before the footer: what was sent
    is no complete VMDK."""
    src = ff.write(tmp_path / 'src.raw', ff.source_disk())
    data = ff.convert(src, tmp_path / 'src.qcow2', 'qcow2')
    image = formats.open_flat(ff.chunked(data, 4096), 'qcow2',
                              source_size=len(data) + 1)
    sent = []
    with pytest.raises(CorruptImage, match='Glance records'):
        for chunk in image.stream_optimized():
            sent.append(chunk)
    assert not b''.join(sent).endswith(bytes(512))


def test_cut_short_is_refused_by_our_decoder():
    """ESXi's layout ends with an end-of-stream marker: without it, at a
    grain's boundary or inside one, the VMDK is truncated."""
    raw = ff.source_disk()
    _, out = encode([raw], len(raw))
    _, grains, _ = layout(out)
    for cut in (len(out) - 512, len(out) - 1536, grains[-1][0],
                grains[-1][0] + 100, grains[0][0], 65536 - 512):
        image = formats.open_flat(ff.chunked(out[:cut], 4096), 'vmdk')
        with pytest.raises(CorruptImage, match='truncated'):
            list(image)


@pytest.mark.parametrize('container', ['bare', 'ova'])
def test_stream_optimized_source_passes_through_deflated(tmp_path,
                                                         container):
    """A qemu-img streamOptimized image's grains reach the output as
    qemu-img deflated them (level 9 here, our level 1): not one is
    deflated again, and qemu-img still reads the result as the source."""
    raw = ff.source_disk(size=3 * MiB + 1536)
    src = ff.write(tmp_path / 'src.raw', raw)
    data = ff.convert(src, tmp_path / 'src.vmdk', 'vmdk',
                      '-o', 'subformat=streamOptimized')
    if container == 'ova':
        data = ff.ova([('a.ovf', ff.ovf('a.vmdk', len(raw))),
                       ('a.vmdk', data)])
        vmdk = data[data.index(b'KDMV'):]
    else:
        vmdk = data
    image = formats.open_flat(ff.chunked(data, 65536), 'vmdk', container,
                              vmware_disktype='streamOptimized',
                              source_size=len(data))
    calls = []

    def counting_map(func, tasks):
        tasks = list(tasks)
        calls.append(tasks)
        return map(func, tasks)
    encoder = image.stream_optimized(level=1, compress_map=counting_map)
    out = b''.join(encoder)
    _header, grains = check(tmp_path, out, raw, encoder)

    def payloads(blob, markers):
        return [blob[at + 12:at + 12 + struct.unpack_from('<I', blob,
                                                          at + 8)[0]]
                for at in markers]
    theirs = payloads(vmdk, ff.grain_markers(vmdk)[0])
    ours = payloads(out, [at for at, _lba, _size in grains])
    # All but the disk's last grain, of which only 1536 bytes are disk:
    # that one is padded anew.
    assert len(ours) == len(theirs) > 2
    assert ours[:-1] == theirs[:-1]
    assert ours[-1] != theirs[-1]
    sent = [g for tasks in calls for task in tasks for g in task]
    assert [getattr(g, 'deflated', None) for g in sent[:-1]] == theirs[:-1]


def test_incompressible_grains_are_stored(tmp_path):
    """A grain whose sample does not compress goes out stored (level 0):
    the random grains cost no deflate, the text ones still shrink, and
    qemu-img reads it all back."""
    rnd = random.Random(9)
    raw = (rnd.randbytes(16 * GRAIN) + text(16 * GRAIN) +
           rnd.randbytes(3 * GRAIN))
    encoder, out = encode(pieces(raw, 65536), len(raw), level=6)
    _header, grains = check(tmp_path, out, raw, encoder)
    levels = [out[at + 12:at + 14] for at, _lba, _size in grains]
    # zlib's second header byte: 0x01 for level 0, 0x9c for 6.
    stored = [i for i, h in enumerate(levels) if h == b'\x78\x01']
    assert stored == list(range(16)) + [32, 33, 34]
    assert all(h == b'\x78\x9c' for h in levels[16:32])
    assert max(size for _at, _lba, size in grains[16:32]) < GRAIN // 4


@pytest.mark.parametrize('size', [0, 1, 65535, 65536, 65537, 3 * 65535 + 7])
def test_stored_is_zlib_at_level_0(size):
    """Our stored stream is one zlib inflates to the data, no longer than
    zlib's own level 0 (header, 5 bytes a block, Adler-32)."""
    data = random.Random(size).randbytes(size)
    ours = so._stored(data)
    assert zlib.decompress(ours) == data
    blocks = max(1, -(-size // 65535))
    assert len(ours) == 2 + 5 * blocks + size + 4
    assert len(ours) <= len(zlib.compress(data, 0))
    assert ours[:2] == zlib.compress(data, 0)[:2]


def test_each_encoding_has_a_new_32_bit_content_id():
    cids = set()
    for _ in range(32):
        head = b''.join(so.Encoder(GRAIN).encode([bytes(GRAIN)]))[:4096]
        cid = re.search(rb'\nCID=([0-9a-f]+)\n', head).group(1)
        assert len(cid) == 8
        cids.add(cid)
    assert len(cids) > 1
