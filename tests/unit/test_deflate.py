"""Deflate and inflate of grains: ISA-L at levels 1 to 3, zlib otherwise.

zlib is the oracle: whatever either library writes, zlib must read back
(ESXi reads grains as any zlib stream); qemu-img reads the encoder's
output in test_stream_optimized.
"""

import random
import struct
import zlib

import pytest
from isal import isal_zlib

from tests.unit import formats_fixtures as ff
from vcdriver.images import formats
from vcdriver.images.formats import deflate
from vcdriver.images.formats import stream_optimized as so

# The second byte of a zlib header says the level class: 0x01 fastest or
# stored, 0x5e fast, 0x9c default, 0xda best. ISA-L marks each of its
# levels 1 to 3 "fast"; zlib marks level 1 "fastest".
ISAL_MARK, ZLIB_1_MARK = b'\x78\x5e', b'\x78\x01'


def grain():
    lines = b''.join(b'%06d the quick brown fox\n' % i for i in range(3000))
    return (lines + random.Random(5).randbytes(8192))[:so.GRAIN_SIZE]


@pytest.mark.parametrize('level', range(10))
def test_every_level_reads_back_with_zlib(level):
    data = grain()
    out = deflate.compress(data, level)
    assert zlib.decompress(out) == data
    if level in (1, 2, 3):
        assert out == isal_zlib.compress(data, level)
        assert out[:2] == ISAL_MARK
    else:
        assert out == zlib.compress(data, level)


def test_without_isal_zlib_does_it_all(monkeypatch):
    monkeypatch.setattr(deflate, 'isal_zlib', None)
    data = grain()
    out = deflate.compress(data, 1)
    assert out == zlib.compress(data, 1)
    assert out[:2] == ZLIB_1_MARK
    assert deflate.inflate(out, so.GRAIN_SIZE) == data
    with pytest.raises(deflate.error):
        deflate.inflate(b'\x78\x9cgarbage!' * 8, so.GRAIN_SIZE)
    sampler = deflate.raw_deflater(1)
    assert isinstance(sampler, type(zlib.compressobj()))
    # Raw deflate: no zlib header, as the sampler's sizes assume.
    raw = sampler.compress(data) + sampler.flush()
    assert zlib.decompressobj(-15).decompress(raw) == data


@pytest.mark.parametrize('library', ['isal', 'zlib'])
def test_inflate_stops_at_the_limit_and_raises_on_garbage(monkeypatch,
                                                          library):
    if library == 'zlib':
        monkeypatch.setattr(deflate, 'isal_zlib', None)
    data = grain() * 2
    assert deflate.inflate(zlib.compress(data), len(data) // 2) == \
        data[:len(data) // 2]
    with pytest.raises(deflate.error):
        deflate.inflate(b'\x78\x9cgarbage!' * 8, so.GRAIN_SIZE)


def test_the_sampler_resets_on_a_full_flush():
    """The incompressible-grain test deflates a sample per grain through
    one raw deflater per thread: a full flush must leave nothing behind,
    so that the same sample costs the same every time."""
    sampler = deflate.raw_deflater(1)
    sample = grain()[:so.SAMPLE]
    sizes = {len(sampler.compress(sample))
             + len(sampler.flush(zlib.Z_FULL_FLUSH)) for _ in range(3)}
    assert len(sizes) == 1
    assert sizes.pop() < so.SAMPLE * so.INCOMPRESSIBLE


def test_encoder_grains_are_isal_at_the_default_level():
    """What the default level sends: ISA-L's stream, which zlib reads."""
    raw = grain() * 4
    out = b''.join(so.Encoder(len(raw), level=1).encode([raw]))
    markers, _end = ff.grain_markers(out)
    assert len(markers) == 4
    for at in markers:
        size = struct.unpack_from('<I', out, at + 8)[0]
        packed = out[at + 12:at + 12 + size]
        assert packed[:2] == ISAL_MARK
        assert zlib.decompress(packed) == grain()


def test_a_grain_isal_cannot_inflate_is_a_corrupt_image():
    data = bytearray(ff.stream_vmdk_by_hand(ff.MiB, [(0, b'\1' * 65536)]))
    data[512 + 12:512 + 20] = b'garbage!'
    assert deflate.LIBRARY == 'isal'
    image = formats.open_flat(ff.chunked(bytes(data), 4096), 'vmdk')
    with pytest.raises(formats.CorruptImage, match='does not inflate'):
        b''.join(image)
