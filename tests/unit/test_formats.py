"""Streamed image conversion to flat disks, checked against qemu-img.

qemu-img (Debian's qemu-utils) writes every test image; the tests fail,
not skip, without it.
"""

import os
import random
import struct
import tarfile
import tracemalloc
import zlib

import pytest

from tests.unit import formats_fixtures as ff
from vcdriver.images import formats
from vcdriver.images.formats import CorruptImage
from vcdriver.images.formats import FormatMismatch
from vcdriver.images.formats import UnsupportedImage

MiB = ff.MiB
CHUNK_SIZES = [1, 7, 4096, MiB + 3]


@pytest.fixture(scope='module')
def disk(tmp_path_factory):
    """The raw source and its conversions, made once: name -> bytes."""
    return ff.memoised('test_formats.disk', lambda: _images(
        tmp_path_factory.mktemp('formats')))


def _images(d):
    raw = ff.source_disk()
    src = ff.write(d / 'src.raw', raw)
    images = {'raw': raw}
    images['qcow2'] = ff.convert(src, d / 'v3.qcow2', 'qcow2')
    images['qcow2-v2'] = ff.convert(src, d / 'v2.qcow2', 'qcow2', '-o',
                                    'compat=0.10')
    images['qcow2-compressed'] = ff.convert(src, d / 'c.qcow2', 'qcow2',
                                            '-c')
    images['qcow2-compressed-v2'] = ff.convert(
        src, d / 'c2.qcow2', 'qcow2', '-c', '-o', 'compat=0.10')
    images['qcow2-512'] = ff.convert(src, d / 's.qcow2', 'qcow2', '-c',
                                     '-o', 'cluster_size=512')
    images['qcow2-2m'] = ff.convert(src, d / 'l.qcow2', 'qcow2', '-o',
                                    'cluster_size=2M')
    images['vmdk-sparse'] = ff.convert(src, d / 's.vmdk', 'vmdk', '-o',
                                       'subformat=monolithicSparse')
    images['vmdk-stream'] = ff.convert(src, d / 'so.vmdk', 'vmdk', '-o',
                                       'subformat=streamOptimized')
    return images


# (image, disk_format, container_format, vmware_disktype, detected)
CASES = {
    'raw': ('raw', 'raw', 'bare', None, 'raw'),
    'vmdk-flat': ('raw', 'vmdk', 'bare', 'preallocated', 'raw'),
    'vmdk-flat-nohint': ('raw', 'vmdk', 'bare', None, 'raw'),
    'qcow2': ('qcow2', 'qcow2', 'bare', None, 'qcow2'),
    'qcow2-v2': ('qcow2-v2', 'qcow2', 'bare', None, 'qcow2'),
    'qcow2-compressed': ('qcow2-compressed', 'qcow2', 'bare', None,
                         'qcow2'),
    'qcow2-compressed-v2': ('qcow2-compressed-v2', 'qcow2', 'bare', None,
                            'qcow2'),
    'qcow2-512': ('qcow2-512', 'qcow2', 'bare', None, 'qcow2'),
    'qcow2-2m': ('qcow2-2m', 'qcow2', 'bare', None, 'qcow2'),
    'vmdk-sparse': ('vmdk-sparse', 'vmdk', 'bare', 'sparse',
                    'vmdk-sparse'),
    'vmdk-sparse-nohint': ('vmdk-sparse', 'vmdk', 'bare', None,
                           'vmdk-sparse'),
    'vmdk-stream': ('vmdk-stream', 'vmdk', 'ovf', 'streamOptimized',
                    'vmdk-stream'),
    'ova-stream': ('ova:vmdk-stream', 'vmdk', 'ova', None, 'vmdk-stream'),
    'ova-sparse': ('ova:vmdk-sparse', 'vmdk', 'ova', None, 'vmdk-sparse'),
}


def image_bytes(disk, name):
    if name.startswith('ova:'):
        vmdk = disk[name[4:]]
        return ff.ova([('disk.ovf', ff.ovf('disk1.vmdk', len(disk['raw']))),
                       ('disk1.vmdk', vmdk),
                       ('disk.mf', b'SHA256(disk1.vmdk)= 00\n')])
    return disk[name]


def flatten(image, chunk_size):
    """All the bytes of ``image``, checking the chunking contract: full
    chunks of immutable bytes (a queue may hold them while the converter
    reuses its buffers)."""
    chunks = list(image)
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert all(type(c) is bytes for c in chunks)
    assert chunks and 0 < len(chunks[-1]) <= chunk_size
    assert all(type(c) is bytes for c in chunks)
    return b''.join(chunks)


def convert(data, disk_format, container_format='bare', disktype=None,
            in_chunk=65536, out_chunk=65536, **kwargs):
    kwargs.setdefault('source_size', len(data))
    image = formats.open_flat(ff.chunked(data, in_chunk), disk_format,
                              container_format, disktype,
                              chunk_size=out_chunk, **kwargs)
    out = flatten(image, out_chunk)
    assert len(out) == image.virtual_size
    return image, out


@pytest.mark.parametrize('in_chunk', CHUNK_SIZES)
@pytest.mark.parametrize('case', sorted(CASES))
def test_converts_to_the_raw_source(disk, case, in_chunk):
    name, disk_format, container, disktype, detected = CASES[case]
    data = image_bytes(disk, name)
    if in_chunk < 64 and len(data) > MiB:
        in_chunk = in_chunk * 8 + 1     # still odd; byte by byte is slow
    source = ff.Counting(ff.chunked(data, in_chunk))
    image = formats.open_flat(source, disk_format, container, disktype,
                              chunk_size=100000, source_size=len(data))
    assert image.virtual_size == len(disk['raw'])
    assert image.source_format == detected
    assert flatten(image, 100000) == disk['raw']
    assert source.pulled == len(data)   # read to the end: hashes see all


@pytest.mark.parametrize('out_chunk', [512, 65536, MiB, 4 * MiB])
def test_output_chunk_sizes(disk, out_chunk):
    for name in ('qcow2-compressed', 'vmdk-stream', 'raw'):
        fmt = 'qcow2' if name.startswith('qcow2') else 'vmdk'
        image, out = convert(disk[name], fmt, out_chunk=out_chunk,
                             in_chunk=MiB + 3)
        assert out == disk['raw']


def test_detect(disk):
    assert formats.detect(disk['qcow2']) == 'qcow2'
    assert formats.detect(disk['vmdk-sparse']) == 'vmdk-sparse'
    assert formats.detect(disk['vmdk-stream'][:64]) == 'vmdk-stream'
    assert formats.detect(image_bytes(disk, 'ova:vmdk-stream')) == 'ova'
    assert formats.detect(disk['raw']) == 'raw'
    assert formats.detect(b'') == 'raw'
    assert formats.detect(b'# Disk DescriptorFile\nversion=1\n') == (
        'vmdk-descriptor')
    assert formats.detect(iso_bytes()) == 'iso'
    assert formats.detect(b'conectix' + bytes(504)) == 'vhd'
    assert formats.detect(b'vhdxfile' + bytes(504)) == 'vhdx'


def iso_bytes():
    """The start of an ISO 9660 image: a primary volume descriptor at
    sector 16 (of 2048 bytes)."""
    return bytes(0x8000) + b'\x01CD001\x01' + bytes(0x800 - 7)


def test_raw_rounds_up_to_a_sector():
    data = os.urandom(1000)
    image, out = convert(data, 'raw', in_chunk=7, out_chunk=4096)
    assert image.virtual_size == 1024
    assert out == data + bytes(24)


def test_raw_needs_source_size():
    with pytest.raises(ValueError):
        formats.open_flat([b'x' * 512], 'raw')


@pytest.mark.parametrize('disk_format,disktype',
                         [('raw', None), ('vmdk', 'thin')])
def test_raw_shorter_or_longer_than_recorded(disk_format, disktype):
    data = os.urandom(8192)
    for size in (8192 + 512, 8192 - 512):
        image = formats.open_flat(ff.chunked(data, 1000), disk_format,
                                  vmware_disktype=disktype,
                                  source_size=size, chunk_size=4096)
        received = 0
        with pytest.raises(CorruptImage):
            for chunk in image:
                received += len(chunk)
        assert received < image.virtual_size    # the upload cannot land


def test_size_check_fails_before_the_last_chunk(disk):
    data = disk['qcow2']
    image = formats.open_flat(ff.chunked(data, 4096), 'qcow2',
                              source_size=len(data) + 1, chunk_size=65536)
    received = 0
    with pytest.raises(CorruptImage, match='Glance records'):
        for chunk in image:
            received += len(chunk)
    assert received < image.virtual_size


def test_iterable_once(disk):
    image = formats.open_flat([disk['qcow2']], 'qcow2')
    list(image)
    with pytest.raises(RuntimeError):
        iter(image)


MISMATCHES = [
    # (image, disk_format, container, disktype, words in the message)
    ('vmdk-sparse', 'qcow2', 'bare', None, ['qcow2', 'sparse']),
    ('vmdk-stream', 'qcow2', 'bare', None, ['qcow2', 'streamOptimized']),
    ('qcow2', 'raw', 'bare', None, ['raw', 'qcow2']),
    ('vmdk-sparse', 'raw', 'bare', None, ['raw', 'VMDK']),
    ('qcow2', 'vmdk', 'bare', None, ['vmdk', 'qcow2']),
    ('raw', 'qcow2', 'bare', None, ['qcow2', 'raw']),
    ('raw', 'vmdk', 'bare', 'sparse', ['sparse', 'flat']),
    ('raw', 'vmdk', 'bare', 'streamOptimized', ['streamOptimized', 'flat']),
    ('vmdk-sparse', 'vmdk', 'bare', 'preallocated',
     ['preallocated', 'sparse']),
    ('vmdk-stream', 'vmdk', 'bare', 'thin', ['thin', 'streamOptimized']),
    ('ova:vmdk-stream', 'vmdk', 'bare', None, ['bare', 'OVA']),
    ('qcow2', 'vmdk', 'ova', None, ['ova', 'qcow2']),
    ('iso', 'raw', 'bare', None, ['raw', 'ISO']),
    ('iso', 'qcow2', 'bare', None, ['qcow2', 'ISO']),
    ('raw', 'iso', 'bare', None, ['iso', 'raw']),
    ('vhd', 'raw', 'bare', None, ['raw', 'VHD']),
]


@pytest.mark.parametrize('name,disk_format,container,disktype,words',
                         MISMATCHES)
def test_format_mismatch(disk, name, disk_format, container, disktype,
                         words):
    if name == 'iso':
        data = iso_bytes() + bytes(MiB)
    elif name == 'vhd':
        data = b'conectix' + bytes(MiB)
    else:
        data = image_bytes(disk, name)
    with pytest.raises(FormatMismatch) as e:
        formats.open_flat(ff.chunked(data, 4096), disk_format, container,
                          disktype, source_size=len(data))
    for word in words:
        assert word in str(e.value)


def test_iso_passes_unchanged():
    data = iso_bytes() + bytes(range(256)) * 4096
    image = formats.open_flat(ff.chunked(data, 4096), 'iso',
                              source_size=len(data))
    assert image.source_format == 'iso'
    assert image.virtual_size == len(data)
    assert b''.join(image) == data


def test_iso_declared_but_not_iso():
    data = bytes(range(256)) * 4096
    with pytest.raises(FormatMismatch, match='its bytes are a raw disk'):
        formats.open_flat(ff.chunked(data, 4096), 'iso',
                          source_size=len(data))


@pytest.mark.parametrize('disk_format,container',
                         [('vhd', 'bare'), ('raw', 'docker')])
def test_unsupported_declarations(disk, disk_format, container):
    with pytest.raises(UnsupportedImage):
        formats.open_flat([disk['raw']], disk_format, container,
                          source_size=len(disk['raw']))


def test_vmdk_descriptor_alone(tmp_path):
    ff.qemu_img('create', '-f', 'vmdk', '-o', 'subformat=monolithicFlat',
                tmp_path / 'd.vmdk', '1M')
    data = ff.read(tmp_path / 'd.vmdk')
    assert formats.detect(data) == 'vmdk-descriptor'
    with pytest.raises(UnsupportedImage, match='descriptor'):
        formats.open_flat([data], 'vmdk', source_size=len(data))


def consume(data, disk_format, container='bare', in_chunk=4096, **kw):
    image = formats.open_flat(ff.chunked(data, in_chunk), disk_format,
                              container, chunk_size=65536, **kw)
    return flatten(image, 65536)


TRUNCATABLE = [('qcow2', 'qcow2'), ('qcow2-compressed', 'qcow2'),
               ('qcow2-v2', 'qcow2'), ('qcow2-2m', 'qcow2'),
               ('vmdk-sparse', 'vmdk'), ('vmdk-stream', 'vmdk'),
               ('ova:vmdk-stream', 'vmdk'), ('ova:vmdk-sparse', 'vmdk')]


@pytest.mark.parametrize('name,disk_format', TRUNCATABLE)
@pytest.mark.parametrize('keep', [50, 1000, 0.3, 0.6, 0.9])
def test_truncated(disk, name, disk_format, keep):
    """Cut anywhere before the end of the data, without Glance's size to
    compare: the structure alone says it is short."""
    data = image_bytes(disk, name)
    end = stream_end(data) if name == 'vmdk-stream' else len(data)
    if name.startswith('ova:'):
        end = len(data) - 3 * 512 - 1024    # the .mf and the tar's end
        end -= (-len(disk[name[4:]])) % 512
        if name.endswith('stream'):
            end -= len(disk['vmdk-stream']) - stream_end(disk['vmdk-stream'])
    cut = int(end * keep) if isinstance(keep, float) else keep
    container = 'ova' if name.startswith('ova:') else 'bare'
    if container == 'ova':
        cut = max(cut, 600)     # 50 bytes of tar are not yet a tar
    with pytest.raises(CorruptImage, match='truncated') as e:
        consume(data[:cut], disk_format, container)
    if container == 'bare' and 'ends at byte' in str(e.value):
        # Where the upload stopped, for whoever compares it with the file.
        assert 'it ends at byte %d,' % cut in str(e.value)


def stream_end(data):
    """Where the grains of a streamOptimized VMDK end: past its
    end-of-stream marker, or the file's end (qemu-img writes none; but it
    pads a partial last grain with zero sectors, read as one)."""
    return ff.grain_markers(data)[1]


@pytest.mark.parametrize('name,disk_format', TRUNCATABLE[:5])
def test_truncated_in_the_last_clusters_padding(disk, name, disk_format):
    """qemu pads the last cluster past the virtual size; a file cut there
    still has every byte of the disk (qemu reads it too), so only
    Glance's size shows the cut."""
    data = disk[name][:-300]
    assert consume(data, disk_format) == disk['raw']
    with pytest.raises(CorruptImage, match='Glance records'):
        consume(data, disk_format, source_size=len(disk[name]))


def test_truncated_with_glance_size(disk):
    """Cut after the stream's end marker: only Glance's size tells."""
    data = disk['vmdk-stream']
    cut = data[:stream_end(data) + 512]
    with pytest.raises(CorruptImage, match='Glance records'):
        consume(cut, 'vmdk', source_size=len(data))
    assert consume(cut, 'vmdk') == disk['raw']


def test_qcow2_backing_file(tmp_path):
    ff.qemu_img('create', '-f', 'qcow2', tmp_path / 'base.qcow2', '1M')
    ff.qemu_img('create', '-f', 'qcow2', '-F', 'qcow2', '-b',
                tmp_path / 'base.qcow2', tmp_path / 'child.qcow2')
    data = ff.read(tmp_path / 'child.qcow2')
    with pytest.raises(UnsupportedImage, match='backing file.*base.qcow2'):
        formats.open_flat([data], 'qcow2')


@pytest.mark.parametrize('options,match', [
    ('compression_type=zstd', 'zstd'),
    ('extended_l2=on', 'extended L2'),
    ('data_file={tmp}/data.raw', 'external file'),
])
def test_qcow2_unsupported_features(tmp_path, options, match):
    path = tmp_path / 'f.qcow2'
    ff.qemu_img('create', '-f', 'qcow2', '-o',
                options.format(tmp=tmp_path), path, '1M')
    with pytest.raises(UnsupportedImage, match=match):
        formats.open_flat([ff.read(path)], 'qcow2')


def patched(data, offset, fmt, value):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def test_qcow2_header_checks(disk):
    data = disk['qcow2']
    with pytest.raises(UnsupportedImage, match='encrypted'):
        formats.open_flat([patched(data, 32, '>I', 2)], 'qcow2')
    with pytest.raises(UnsupportedImage, match='version 4'):
        formats.open_flat([patched(data, 4, '>I', 4)], 'qcow2')
    with pytest.raises(CorruptImage, match='marked corrupt'):
        formats.open_flat([patched(data, 72, '>Q', 2)], 'qcow2')
    with pytest.raises(UnsupportedImage, match='unknown incompatible'):
        formats.open_flat([patched(data, 72, '>Q', 1 << 40)], 'qcow2')
    with pytest.raises(CorruptImage, match='cluster_bits'):
        formats.open_flat([patched(data, 20, '>I', 30)], 'qcow2')
    with pytest.raises(CorruptImage, match='truncated'):
        formats.open_flat([data[:40]], 'qcow2')
    # The dirty bit (lazy refcounts) leaves the mapping intact.
    dirty = patched(data, 72, '>Q', 1)
    assert consume(dirty, 'qcow2') == disk['raw']


def test_qcow2_zero_clusters(tmp_path):
    """v3 zero flags, over allocated clusters and unallocated ones."""
    path = tmp_path / 'z.qcow2'
    ff.qemu_img('create', '-f', 'qcow2', path, '4M')
    ff.qemu_io('qcow2', path, 'write -P 0x11 0 1M', 'write -z 64k 128k',
               'write -z 2M 64k', 'write -P 0x22 3M 4k')
    assert '"zero": true' in ff.qemu_img('map', '--output=json', path)
    data = ff.read(path)
    assert consume(data, 'qcow2', in_chunk=7) == ff.to_raw(path, 'qcow2')


def test_qcow2_internal_snapshot_is_ignored(tmp_path):
    path = tmp_path / 'snap.qcow2'
    ff.qemu_img('create', '-f', 'qcow2', path, '4M')
    ff.qemu_io('qcow2', path, 'write -P 0x11 0 1M')
    ff.qemu_img('snapshot', '-c', 'before', path)
    data = ff.read(path)
    assert consume(data, 'qcow2') == ff.to_raw(path, 'qcow2')


def test_qcow2_written_after_a_snapshot(tmp_path):
    """Copy-on-write after a snapshot moves tables after the data they
    map: converted if it can be, else refused with the fix."""
    path = tmp_path / 'snap.qcow2'
    ff.qemu_img('create', '-f', 'qcow2', path, '4M')
    ff.qemu_io('qcow2', path, 'write -P 0x11 0 1M')
    ff.qemu_img('snapshot', '-c', 'before', path)
    ff.qemu_io('qcow2', path, 'write -P 0x22 512k 64k')
    try:
        out = consume(ff.read(path), 'qcow2')
    except UnsupportedImage as e:
        assert 'qemu-img convert -O qcow2' in str(e)
    else:
        assert out == ff.to_raw(path, 'qcow2')


@pytest.fixture
def reversed_images(tmp_path):
    """qcow2 and sparse VMDK whose first cluster is stored after the one
    at 8 MiB: written in that order by qemu-io."""
    images = {}
    for fmt, options in (('qcow2', []),
                         ('vmdk', ['-o', 'subformat=monolithicSparse'])):
        path = tmp_path / ('r.' + fmt)
        ff.qemu_img('create', '-f', fmt, *options, path, '16M')
        ff.qemu_io(fmt, path, 'write -P 1 8M 64k', 'write -P 2 0 64k')
        images[fmt] = ff.read(path), ff.to_raw(path, fmt)
    return images


@pytest.mark.parametrize('fmt', ['qcow2', 'vmdk'])
def test_out_of_order_within_the_spill_limit(reversed_images, fmt):
    data, raw = reversed_images[fmt]
    assert raw[:2] == b'\2\2' and raw[8 * MiB:8 * MiB + 2] == b'\1\1'
    for in_chunk in (1, 4096):
        assert consume(data, fmt, in_chunk=in_chunk,
                       spill_limit=64 * 1024) == raw


@pytest.mark.parametrize('fmt,hint', [
    ('qcow2', 'qemu-img convert -O qcow2'),
    ('vmdk', 'qemu-img convert -O vmdk -o subformat=streamOptimized')])
def test_out_of_order_beyond_the_spill_limit(reversed_images, fmt, hint):
    data, _ = reversed_images[fmt]
    with pytest.raises(UnsupportedImage, match='out of guest order') as e:
        consume(data, fmt, spill_limit=64 * 1024 - 1)
    assert hint in str(e.value)


def test_qcow2_data_before_its_table(tmp_path):
    """qemu itself does this with compressed clusters packed into a host
    cluster before a new L2 table: the bytes passed last are kept, up to
    the spill limit."""
    cluster = bytes(range(256)) * 256
    data = ff.qcow2_by_hand(MiB, {2: cluster}, [2, 'L1', 'L2'])
    path = ff.write(tmp_path / 'h.qcow2', data)
    assert consume(data, 'qcow2', in_chunk=7) == ff.to_raw(path, 'qcow2')
    # Read at 256 KiB, the cluster at 64 KiB is 192 KiB back.
    assert consume(data, 'qcow2', spill_limit=192 * 1024) == (
        ff.to_raw(path, 'qcow2'))
    with pytest.raises(UnsupportedImage) as e:
        consume(data, 'qcow2', spill_limit=192 * 1024 - 1)
    # The whole of what the operator reads: where, by how much, the fix.
    assert str(e.value) == (
        'qcow2 image cannot be converted in one pass: its cluster at byte '
        '65536 comes before the table that maps it, by more than the 191 '
        'KiB the driver keeps (or it overlaps other data). Rewrite the '
        'image in order with `qemu-img convert -O qcow2 SOURCE '
        'FIXED.qcow2` and upload the result')
    with pytest.raises(UnsupportedImage, match='more than the 100 KiB'):
        consume(data, 'qcow2', spill_limit=100 * 1024)


def test_qcow2_compressed_across_a_table(tmp_path):
    """Small clusters put many L2 tables among packed compressed data."""
    src = ff.write(tmp_path / 'src.raw', ff.source_disk(size=6 * MiB))
    for options in (['-o', 'cluster_size=512'],
                    ['-o', 'cluster_size=1024,compat=0.10']):
        data = ff.convert(src, tmp_path / 'c.qcow2', 'qcow2', '-c',
                          *options)
        assert consume(data, 'qcow2', in_chunk=4096) == ff.read(src)


def test_qcow2_by_hand_in_order(tmp_path):
    """A layout qemu does not write but streaming allows: tables last
    before their data, clusters in guest order."""
    clusters = {0: os.urandom(65536), 5: os.urandom(65536),
                15: os.urandom(1000)}
    data = ff.qcow2_by_hand(MiB, clusters, ['L1', 'L2', 0, 5, 15])
    path = ff.write(tmp_path / 'h.qcow2', data)
    assert consume(data, 'qcow2', in_chunk=7) == ff.to_raw(path, 'qcow2')


def test_vmdk_zeroed_grains(tmp_path):
    path = tmp_path / 'zg.vmdk'
    ff.qemu_img('create', '-f', 'vmdk', '-o',
                'subformat=monolithicSparse,zeroed_grain=on', path, '4M')
    ff.qemu_io('vmdk', path, 'write -P 5 0 256k', 'write -z 64k 64k')
    assert consume(ff.read(path), 'vmdk') == ff.to_raw(path, 'vmdk')


def test_vmdk_delta_disk(tmp_path):
    ff.qemu_img('create', '-f', 'vmdk', tmp_path / 'base.vmdk', '1M')
    ff.qemu_img('create', '-f', 'vmdk', '-F', 'vmdk', '-b',
                tmp_path / 'base.vmdk', tmp_path / 'child.vmdk')
    with pytest.raises(UnsupportedImage, match='delta'):
        formats.open_flat([ff.read(tmp_path / 'child.vmdk')], 'vmdk')


def test_stream_vmdk_out_of_order():
    grains = [(128, b'\1' * 65536), (0, b'\2' * 65536)]
    data = ff.stream_vmdk_by_hand(MiB, grains)
    with pytest.raises(UnsupportedImage, match='out of order'):
        consume(data, 'vmdk')
    data = ff.stream_vmdk_by_hand(MiB, grains[::-1])
    assert consume(data, 'vmdk') == (b'\2' * 65536 + b'\1' * 65536
                                     + bytes(MiB - 2 * 65536))


def test_stream_vmdk_bad_grain():
    data = bytearray(ff.stream_vmdk_by_hand(MiB, [(0, b'\1' * 65536)]))
    data[512 + 12:512 + 20] = b'garbage!'
    with pytest.raises(CorruptImage, match='inflate'):
        consume(bytes(data), 'vmdk')


def test_stream_vmdk_capacity_in_the_footer_only(disk):
    """Header capacity 0: unknown up front when bare, from the OVF in an
    OVA."""
    data = patched(disk['vmdk-stream'], 12, '<Q', 0)
    with pytest.raises(UnsupportedImage, match='capacity'):
        formats.open_flat([data], 'vmdk')
    size = len(disk['raw'])
    for capacity, units in ((size, 'byte'), (size // 512, 'byte * 512')):
        archive = ff.ova([('a.ovf', ff.ovf('a.vmdk', capacity, units)),
                          ('a.vmdk', data)])
        assert consume(archive, 'vmdk', 'ova') == disk['raw']


def test_ova_pax_and_layout(disk):
    """Long names need pax headers; directories and extra files are
    passed over."""
    name = 'x' * 120 + '/disk-1.vmdk'
    directory = tarfile.TarInfo('x' * 120)
    directory.type = tarfile.DIRTYPE
    archive = ff.ova([('vm.ovf', ff.ovf(name, 0)), directory,
                      ('vm.cert', b'cert'), (name, disk['vmdk-stream']),
                      ('second.vmdk', disk['vmdk-sparse'])],
                     fmt=tarfile.PAX_FORMAT)
    image, out = convert(archive, 'vmdk', 'ova', in_chunk=7)
    assert out == disk['raw']
    assert image.source_format == 'vmdk-stream'


def test_ova_flat_disk(disk):
    archive = ff.ova([('a.ovf', b'<x/>'), ('a-flat.vmdk', disk['raw'])])
    image, out = convert(archive, 'vmdk', 'ova')
    assert out == disk['raw'] and image.source_format == 'raw'


@pytest.mark.parametrize('name', ['../evil.vmdk', '/etc/evil.vmdk',
                                  'a/../../evil.vmdk', 'C:\\evil.vmdk'])
def test_ova_path_traversal(disk, name):
    archive = ff.ova([('a.ovf', b''), (name, disk['vmdk-stream'])])
    with pytest.raises(CorruptImage, match='leaves the archive'):
        consume(archive, 'vmdk', 'ova')


def test_ova_member_limit(disk):
    members = [('f%03d.txt' % i, b'x') for i in range(150)]
    archive = ff.ova(members + [('a.vmdk', disk['vmdk-stream'])])
    with pytest.raises(CorruptImage, match='more than 100 members'):
        consume(archive, 'vmdk', 'ova')


def test_ova_links_and_missing_disk(disk):
    link = tarfile.TarInfo('a.vmdk')
    link.type = tarfile.SYMTYPE
    link.linkname = '/dev/sda'
    with pytest.raises(CorruptImage, match='not a regular file'):
        consume(ff.ova([link]), 'vmdk', 'ova')
    with pytest.raises(CorruptImage, match='no .vmdk'):
        consume(ff.ova([('a.ovf', b'<x/>')]), 'vmdk', 'ova')


def test_ova_holding_other_formats(disk):
    archive = ff.ova([('a.vmdk', disk['qcow2'])])
    with pytest.raises(FormatMismatch, match='qcow2'):
        consume(archive, 'vmdk', 'ova')
    archive = ff.ova([('a.vmdk', b'# Disk DescriptorFile\n')])
    with pytest.raises(UnsupportedImage, match='descriptor'):
        consume(archive, 'vmdk', 'ova')
    with pytest.raises(UnsupportedImage, match='disk_format=vmdk'):
        consume(image_bytes(disk, 'ova:vmdk-stream'), 'qcow2', 'ova')


def test_ova_not_a_tar(disk):
    data = bytearray(image_bytes(disk, 'ova:vmdk-stream'))
    data[148:156] = b'00000000'     # the first header's checksum
    with pytest.raises(CorruptImage, match='tar'):
        consume(bytes(data), 'vmdk', 'ova')


@pytest.fixture(scope='module')
def big_raw(tmp_path_factory):
    """A sparse 256 MiB raw disk with data at 100 MiB and at the end."""
    path = tmp_path_factory.mktemp('big') / 'big.raw'
    with open(path, 'wb') as f:
        f.truncate(256 * MiB)
        f.seek(100 * MiB)
        f.write(b'\xab' * 3 * MiB)
        f.seek(255 * MiB)
        f.write(b'\xcd' * MiB)
    return path


@pytest.mark.parametrize('fmt,options', [
    ('raw', []), ('qcow2', []), ('qcow2', ['-c']),
    ('vmdk', ['-o', 'subformat=monolithicSparse']),
    ('vmdk', ['-o', 'subformat=streamOptimized'])])
def test_memory_is_bounded(big_raw, fmt, options):
    """A 256 MiB disk converts holding a few chunks, not the image."""
    path = big_raw
    if fmt != 'raw':
        path = big_raw.with_suffix('.' + fmt)
        ff.qemu_img('convert', '-f', 'raw', '-O', fmt, *options, big_raw,
                    path)
    size = os.path.getsize(path)
    chunk_size = MiB

    def source():
        with open(path, 'rb') as f:
            while True:
                data = f.read(65536)
                if not data:
                    return
                yield data
    tracemalloc.start()
    try:
        image = formats.open_flat(source(), fmt, chunk_size=chunk_size,
                                  source_size=size)
        total = largest = 0
        marks = []
        for chunk in image:
            total += len(chunk)
            largest = max(largest, len(chunk))
            if total in (100 * MiB + chunk_size, 256 * MiB):
                marks.append(chunk[:1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == image.virtual_size == 256 * MiB
    assert largest <= chunk_size
    assert marks == [b'\xab', b'\xcd']
    assert peak < 16 * MiB, peak


def test_missing_qemu_img_fails_not_skips(monkeypatch):
    monkeypatch.setattr(ff.shutil, 'which', lambda name: None)
    with pytest.raises(pytest.fail.Exception,
                       match='apt-get install qemu-utils'):
        ff.qemu_img('--version')


@pytest.fixture(scope='module')
def qemu_stream(tmp_path_factory):
    """qemu-img's streamOptimized VMDK of 8 MiB of random data: grain
    tables in the head, no footer, no end-of-stream marker."""
    def make():
        d = tmp_path_factory.mktemp('qemu-stream')
        raw = os.urandom(8 * MiB)
        src = ff.write(d / 'r.raw', raw)
        return ff.convert(src, d / 'r.vmdk', 'vmdk', '-o',
                          'subformat=streamOptimized'), raw
    return ff.memoised('test_formats.qemu_stream', make)


def test_qemu_stream_vmdk_without_end_of_stream(qemu_stream):
    data, raw = qemu_stream
    assert struct.unpack_from('<Q', data, 56)[0] != 2 ** 64 - 1
    for in_chunk in (512, 4096, MiB + 3):
        assert consume(data, 'vmdk', in_chunk=in_chunk,
                       source_size=len(data)) == raw


def test_qemu_stream_vmdk_truncated(qemu_stream):
    """Without an end-of-stream marker, the grain tables in the head say
    which grains must come: a cut that drops whole grains is caught."""
    data, _ = qemu_stream
    markers, end = ff.grain_markers(data)
    assert len(markers) == 128 and end == len(data)
    cuts = [len(data) - 100, markers[-1] + 12, markers[-1], markers[64],
            markers[0], 65536, 20000]
    for cut in cuts:
        with pytest.raises(CorruptImage, match='truncated') as e:
            consume(data[:cut], 'vmdk')
        assert 'upload the whole file again' in str(e.value)
    with pytest.raises(CorruptImage, match='grain 128 of the 128'):
        consume(data[:markers[-1]], 'vmdk')
    # A zero sector where the last grain was: an early end of stream.
    early = data[:markers[-1]] + bytes(512)
    with pytest.raises(CorruptImage, match='end-of-stream marker at byte '
                       '%d after 127 grains' % markers[-1]):
        consume(early, 'vmdk')


def test_qemu_stream_vmdk_in_an_ova(qemu_stream):
    data, raw = qemu_stream
    archive = ff.ova([('a.ovf', ff.ovf('a.vmdk', len(raw))),
                      ('a.vmdk', data), ('a.mf', b'')])
    assert consume(archive, 'vmdk', 'ova') == raw
    cut = ff.ova([('a.ovf', ff.ovf('a.vmdk', len(raw))),
                  ('a.vmdk', data[:ff.grain_markers(data)[0][-1]])])
    with pytest.raises(CorruptImage, match='grain 128 of the 128'):
        consume(cut, 'vmdk', 'ova')


def test_qemu_stream_vmdk_all_zero(tmp_path):
    """An all-zero disk is only qemu's 64 KiB head."""
    path = tmp_path / 'z.vmdk'
    ff.qemu_img('create', '-f', 'vmdk', '-o', 'subformat=streamOptimized',
                path, '4M')
    data = ff.read(path)
    assert len(data) == 65536
    assert consume(data, 'vmdk', source_size=len(data)) == bytes(4 * MiB)
    with pytest.raises(CorruptImage, match='truncated'):
        consume(data[:30000], 'vmdk')


def _flat_ova(tmp_path, extents_of, order=None):
    """An OVA of a descriptor and its FLAT extents; the descriptor comes
    from ``extents_of(tmp_path)`` -> (descriptor path, [extent paths])."""
    descriptor, extents = extents_of(tmp_path)
    members = [('disk.ovf', b'<x/>'),
               (os.path.basename(descriptor), ff.read(descriptor))]
    order = order or range(len(extents))
    members += [(os.path.basename(extents[i]), ff.read(extents[i]))
                for i in order]
    members.append(('disk.mf', b'SHA256(disk.vmdk)= 00\n'))
    return ff.ova(members), descriptor


def _monolithic_flat(tmp_path):
    raw = ff.write(tmp_path / 'src.raw', ff.source_disk())
    out = tmp_path / 'disk.vmdk'
    ff.qemu_img('convert', '-f', 'raw', '-O', 'vmdk', '-o',
                'subformat=monolithicFlat', raw, out)
    return str(out), [str(tmp_path / 'disk-flat.vmdk')]


def _two_flat_extents(tmp_path):
    """As twoGbMaxExtentFlat splits a disk, at a small size. qemu-img 7.2
    misreads a descriptor whose first extent is not 2 GiB (it maps the
    first extent twice), so the oracle is the format's own definition:
    the extents, one after the other."""
    rnd = random.Random(3)
    one = ff.write(tmp_path / 'disk-f001.vmdk', rnd.randbytes(1536 * 512))
    two = ff.write(tmp_path / 'disk-f002.vmdk',
                   bytes(512 * 100) + rnd.randbytes(412 * 512))
    text = ('# Disk DescriptorFile\nversion=1\nCID=12345678\n'
            'parentCID=ffffffff\ncreateType="twoGbMaxExtentFlat"\n\n'
            'RW 1536 FLAT "disk-f001.vmdk" 0\n'
            'RW 512 FLAT "disk-f002.vmdk" 0\n\n'
            'ddb.adapterType = "lsilogic"\n')
    descriptor = ff.write(tmp_path / 'disk.vmdk', text.encode())
    return str(descriptor), [str(one), str(two)]


@pytest.mark.parametrize('extents_of', [_monolithic_flat,
                                        _two_flat_extents])
def test_ova_descriptor_with_flat_extents(tmp_path, extents_of):
    archive, descriptor = _flat_ova(tmp_path, extents_of)
    image, out = convert(archive, 'vmdk', 'ova')
    assert image.source_format == 'raw'
    if extents_of is _monolithic_flat:
        assert out == ff.to_raw(descriptor, 'vmdk')
    else:
        assert out == b''.join(ff.read(tmp_path / name) for name in (
            'disk-f001.vmdk', 'disk-f002.vmdk'))


def test_ova_flat_extents_out_of_order(tmp_path):
    archive, _ = _flat_ova(tmp_path, _two_flat_extents, order=[1, 0])
    with pytest.raises(UnsupportedImage, match='needs its extent '
                       'disk-f001.vmdk next in the archive'):
        convert(archive, 'vmdk', 'ova')


def test_ova_flat_extent_of_the_wrong_size(tmp_path):
    descriptor, extents = _two_flat_extents(tmp_path)
    with open(extents[1], 'ab') as f:
        f.write(bytes(512))
    archive, _ = _flat_ova(tmp_path, lambda _tmp: (descriptor, extents))
    with pytest.raises(CorruptImage, match='its descriptor says 262144'):
        convert(archive, 'vmdk', 'ova')


def test_ova_descriptor_of_sparse_extents_is_refused(tmp_path):
    text = (b'# Disk DescriptorFile\nversion=1\n'
            b'RW 2048 SPARSE "disk-s001.vmdk"\n')
    archive = ff.ova([('disk.ovf', b'<x/>'), ('disk.vmdk', text),
                      ('disk-s001.vmdk', bytes(4096))])
    with pytest.raises(UnsupportedImage, match='SPARSE extent'):
        convert(archive, 'vmdk', 'ova')


# --- OVF capacities, FLAT extents in an OVA -------------------------------

def _ovf(*disks):
    """An OVF of ``(href, capacity, units)`` disks (units None: none
    given), each with a File and a Disk referring to it."""
    files = ''.join('<File ovf:href="%s" ovf:id="file%d"/>' % (href, i)
                    for i, (href, _c, _u) in enumerate(disks))
    items = ''.join(
        '<Disk ovf:capacity="%s" %s ovf:diskId="d%d" ovf:fileRef="file%d"/>'
        % (capacity, '' if units is None else
           'ovf:capacityAllocationUnits="%s"' % units, i, i)
        for i, (_h, capacity, units) in enumerate(disks))
    return ('<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
            'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">'
            '<References>%s</References><DiskSection>%s</DiskSection>'
            '</Envelope>' % (files, items)).encode()


@pytest.mark.parametrize('ovf,href,capacity', [
    # DSP0243: capacity in capacityAllocationUnits, bytes by default.
    (_ovf(('a.vmdk', 5000, None)), 'a.vmdk', 5000),
    (_ovf(('a.vmdk', 5000, 'byte')), 'a.vmdk', 5000),
    (_ovf(('a.vmdk', 8, 'byte * 512')), 'a.vmdk', 4096),
    (_ovf(('a.vmdk', 3, 'byte * 2^30')), 'a.vmdk', 3 * 1024 ** 3),
    (_ovf(('a.vmdk', 3, 'byte*2^20')), 'a.vmdk', 3 * MiB),
    # Several disks: the one whose File is the member, by base name.
    (_ovf(('a.vmdk', 1, 'byte * 2^30'), ('b.vmdk', 2048, 'byte * 2^20')),
     'b.vmdk', 2 * 1024 ** 3),
    (_ovf(('a.vmdk', 1, 'byte * 2^30'), ('b.vmdk', 2048, 'byte * 2^20')),
     'vm/a.vmdk', 1024 ** 3),
    (_ovf(('a.vmdk', 1, None), ('b.vmdk', 2, None)), 'c.vmdk', None),
    # A single disk is the disk, whatever its File says.
    (_ovf(('other.vmdk', 7, None)), 'a.vmdk', 7),
    # What cannot be read says nothing.
    (_ovf(('a.vmdk', 1, 'kilobyte')), 'a.vmdk', None),
    (_ovf(('a.vmdk', 'lots', None)), 'a.vmdk', None),
    (b'<Envelope', 'a.vmdk', None),
    (b'', 'a.vmdk', None),
    (None, 'a.vmdk', None),
])
def test_ovf_capacity(ovf, href, capacity):
    assert formats.ova.ovf_capacity(ovf, href) == capacity


def _descriptor(*extent_lines, extra=b''):
    return (b'# Disk DescriptorFile\nversion=1\nCID=12345678\n'
            b'parentCID=ffffffff\ncreateType="monolithicFlat"\n' + extra +
            b'\n' + b''.join(line + b'\n' for line in extent_lines))


def _flat_archive(descriptor, extents, between=()):
    return ff.ova([('disk.ovf', b'<x/>'), ('disk.vmdk', descriptor),
                   *between, *extents])


def test_ova_flat_extent_without_offset_or_with_foreign_bytes():
    # The offset of a FLAT extent may be left out (it is 0); a comment in
    # Latin-1 does not stop the descriptor being read.
    data = bytes(range(256)) * 8
    descriptor = _descriptor(b'RW 4 FLAT "disk-flat.vmdk"',
                             extra=b'# cr\xe9\xe9 par un outil\n')
    _, out = convert(_flat_archive(descriptor, [('disk-flat.vmdk', data)]),
                     'vmdk', 'ova', out_chunk=512)
    assert out == data


def test_ova_flat_extent_is_raw_whatever_its_first_bytes():
    # A raw disk may begin with what looks like another format's header.
    data = b'QFI\xfb\x00\x00\x00\x03' + bytes(range(256)) * 8
    data += bytes(-len(data) % 512)
    descriptor = _descriptor(b'RW %d FLAT "disk-flat.vmdk" 0'
                             % (len(data) // 512))
    image, out = convert(_flat_archive(descriptor, [('disk-flat.vmdk',
                                                     data)]), 'vmdk', 'ova',
                         out_chunk=512)
    assert image.source_format == 'raw'
    assert out == data


def test_ova_flat_extent_at_an_offset_is_refused():
    descriptor = _descriptor(b'RW 4 FLAT "disk-flat.vmdk" 8')
    with pytest.raises(UnsupportedImage, match='FLAT extent'):
        convert(_flat_archive(descriptor, [('disk-flat.vmdk',
                                            bytes(4096))]), 'vmdk', 'ova')


def test_ova_flat_delta_disk_is_refused():
    descriptor = _descriptor(b'RW 4 FLAT "disk-flat.vmdk" 0',
                             extra=b'parentFileNameHint="base.vmdk"\n')
    with pytest.raises(UnsupportedImage, match='delta'):
        convert(_flat_archive(descriptor, [('disk-flat.vmdk',
                                            bytes(2048))]), 'vmdk', 'ova')


def test_ova_flat_extents_skip_folders_but_check_names():
    data = bytes(range(256)) * 8
    folder = tarfile.TarInfo('disk')
    folder.type = tarfile.DIRTYPE
    descriptor = _descriptor(b'RW 4 FLAT "disk-flat.vmdk" 0')
    _, out = convert(_flat_archive(descriptor, [('disk-flat.vmdk', data)],
                                   between=[folder]), 'vmdk', 'ova',
                     out_chunk=512)
    assert out == data
    with pytest.raises(CorruptImage, match='leaves the archive'):
        convert(_flat_archive(descriptor, [('../disk-flat.vmdk', data)]),
                'vmdk', 'ova')
    with pytest.raises(UnsupportedImage, match='found the end'):
        convert(_flat_archive(descriptor, []), 'vmdk', 'ova')


def test_ova_flat_extents_are_read_a_chunk_at_a_time():
    # A 64 MiB extent passes holding a few chunks, not the extent.
    size = 64 * MiB
    descriptor = _descriptor(b'RW %d FLAT "disk-flat.vmdk" 0' % (size // 512))
    archive = _flat_archive(descriptor, [('disk-flat.vmdk', bytes(size))])
    tracemalloc.start()
    try:
        image = formats.open_flat(ff.chunked(archive, MiB), 'vmdk', 'ova',
                                  chunk_size=MiB, source_size=len(archive))
        total = sum(len(chunk) for chunk in image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 16 * MiB, peak


def test_ova_truncated_inside_a_flat_extent_names_the_disk():
    data = bytes(4096)
    descriptor = _descriptor(b'RW 8 FLAT "disk-flat.vmdk" 0')
    archive = _flat_archive(descriptor, [('disk-flat.vmdk', data)])
    cut = archive[:archive.index(b'disk-flat.vmdk') + 512 + 1000]
    with pytest.raises(CorruptImage) as e:
        convert(cut, 'vmdk', 'ova', source_size=len(archive))
    assert 'disk-flat.vmdk' in str(e.value)


# --- what an operator reads on a mismatch ---------------------------------

def test_mismatch_messages_say_what_to_set_or_run(disk):
    with pytest.raises(FormatMismatch) as e:
        consume(disk['qcow2'], 'raw', source_size=len(disk['qcow2']))
    assert str(e.value) == (
        'image is declared disk_format=raw but its bytes are a qcow2 disk; '
        'set disk_format=qcow2')
    vhd = b'conectix' + bytes(MiB)
    with pytest.raises(FormatMismatch) as e:
        consume(vhd, 'raw', source_size=len(vhd))
    assert str(e.value).endswith(
        '; convert it to qcow2 with `qemu-img convert -O qcow2 SOURCE '
        'OUT.qcow2`')


def test_qcow2_compressed_cluster_inflates_no_further_than_a_cluster(
        tmp_path):
    """A compressed cluster whose stream inflates far beyond the cluster
    (a deflate bomb in the most sectors an L2 entry can name) costs a
    cluster's memory, as qemu reads it, not the bomb's."""
    text = b''.join(b'line %06d of text\n' % i for i in range(60000))
    src = ff.write(tmp_path / 'src.raw', text)
    data = bytearray(ff.convert(src, tmp_path / 'c.qcow2', 'qcow2', '-c'))
    cluster_bits = struct.unpack_from('>I', data, 20)[0]
    l1 = struct.unpack_from('>Q', data, 40)[0]
    l2 = struct.unpack_from('>Q', data, l1)[0] & 0x00fffffffffffe00
    entry = struct.unpack_from('>Q', data, l2)[0]
    assert entry >> 62 & 1                  # cluster 0 is compressed
    x = 62 - (cluster_bits - 8)             # the qcow2 spec's L2 layout
    most = (1 << (cluster_bits - 8)) - 1
    struct.pack_into('>Q', data, l2, entry | most << x)
    offset = entry & ((1 << x) - 1)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflate.compress(bytes(128 * MiB)) + deflate.flush()
    data[offset:offset + len(bomb)] = bomb
    data += bytes(max(0, offset + (most + 1) * 512 - len(data)))
    tracemalloc.start()
    try:
        consume(bytes(data), 'qcow2', source_size=len(data))
    except CorruptImage:
        pass        # the bomb overwrote the clusters packed after it
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 32 * MiB, peak


def test_qcow2_compressed_clusters_are_read_byte_tight(tmp_path):
    """Packed compressed clusters follow each other byte for byte: read
    in order, they need nothing kept behind (spill limit 0)."""
    text = b''.join(b'line %06d of text\n' % i for i in range(60000))
    src = ff.write(tmp_path / 'src.raw', text)
    data = ff.convert(src, tmp_path / 'c.qcow2', 'qcow2', '-c')
    assert consume(data, 'qcow2', spill_limit=0) == text + bytes(
        -len(text) % 512)


def test_truncated_messages_say_before_what():
    raw = bytes(4096)
    with pytest.raises(CorruptImage) as e:
        consume(raw, 'raw', source_size=5000)
    assert str(e.value) == (
        'raw image is truncated: it ends at byte 4096, before the 5000 '
        'bytes Glance records; upload the whole file again')
    data = b''.join(formats.stream_optimized.Encoder(len(raw)).encode(
        [raw]))
    with pytest.raises(CorruptImage) as e:
        consume(data[:-600], 'vmdk')
    assert str(e.value) == (
        'VMDK image is truncated: it ends at byte %d, before the end of '
        'its footer; upload the whole file again' % (len(data) - 600))


def test_sparse_vmdk_without_grain_directory(disk):
    # VMDK spec, SparseExtentHeader: gdOffset (u64, sector) at byte 56.
    data = patched(disk['vmdk-sparse'], 56, '<Q', 0)
    with pytest.raises(CorruptImage, match='no grain directory offset'):
        consume(data, 'vmdk')


def test_sparse_vmdk_grain_directory_limit(disk):
    """A grain directory of at most 32 MiB: 8 Mi tables of 512 grains of
    64 KiB, 256 TiB (capacity, u64 sectors, at byte 12)."""
    most = 8 * MiB * 512 * 128
    with pytest.raises(UnsupportedImage, match='too large'):
        consume(patched(disk['vmdk-sparse'], 12, '<Q', most + 128), 'vmdk')
    with pytest.raises(CorruptImage) as e:
        consume(patched(disk['vmdk-sparse'], 12, '<Q', most), 'vmdk')
    assert 'too large' not in str(e.value)


@pytest.mark.parametrize('size', [5120, 5 * MiB + 5120])
@pytest.mark.parametrize('in_chunk', [1000, 4096, 5120, MiB + 3])
def test_raw_longer_than_glance_records(in_chunk, size):
    """Its bytes past Glance's size are still counted, so the message
    says how long the upload really is; what Glance's size covers is
    passed on as it is."""
    data = bytes(range(256)) * (size // 256)
    glance = size - 1024
    image = formats.open_flat(ff.chunked(data, in_chunk), 'raw',
                              source_size=glance, chunk_size=65536)
    out = []
    with pytest.raises(CorruptImage) as e:
        for chunk in image:
            assert type(chunk) is bytes
            out.append(chunk)
    assert str(e.value) == ('image is %d bytes but Glance records %d; '
                            'upload it again' % (size, glance))
    assert data[:glance].startswith(b''.join(out))


def test_stream_vmdk_footer_without_magic_is_named():
    # ESXi's layout ends: footer marker, footer (a header), end-of-stream.
    raw = bytes(4096)
    data = bytearray(b''.join(
        formats.stream_optimized.Encoder(len(raw)).encode([raw])))
    assert data[-1024:-1020] == b'KDMV'
    data[-1024:-1020] = b'XXXX'
    with pytest.raises(CorruptImage) as e:
        consume(bytes(data), 'vmdk')
    assert str(e.value) == ('streamOptimized VMDK footer has no VMDK header '
                            'magic')


@pytest.mark.parametrize('fmt,options', [
    ('qcow2', []), ('vmdk', ['-o', 'subformat=monolithicSparse'])])
def test_the_spill_limit_counts_every_grain_kept(tmp_path, fmt, options):
    """Two 64 KiB grains stored before the one at guest offset 0: both
    are kept until it passes, 128 KiB in all."""
    path = tmp_path / ('r.' + fmt)
    ff.qemu_img('create', '-f', fmt, *options, path, '16M')
    ff.qemu_io(fmt, path, 'write -P 1 8M 64k', 'write -P 2 9M 64k',
               'write -P 3 0 64k')
    data, raw = ff.read(path), ff.to_raw(path, fmt)
    assert consume(data, fmt, spill_limit=128 * 1024) == raw
    with pytest.raises(UnsupportedImage, match='out of guest order'):
        consume(data, fmt, spill_limit=128 * 1024 - 1)


def test_qcow2_compressed_cluster_that_inflates_short(tmp_path):
    """Whole on the wire but short once inflated: a corrupt cluster, not
    a cut upload."""
    text = b''.join(b'line %06d of text\n' % i for i in range(60000))
    src = ff.write(tmp_path / 'src.raw', text)
    data = bytearray(ff.convert(src, tmp_path / 'c.qcow2', 'qcow2', '-c'))
    cluster_bits = struct.unpack_from('>I', data, 20)[0]
    l1 = struct.unpack_from('>Q', data, 40)[0]
    l2 = struct.unpack_from('>Q', data, l1)[0] & 0x00fffffffffffe00
    entry = struct.unpack_from('>Q', data, l2)[0]
    offset = entry & ((1 << (62 - (cluster_bits - 8))) - 1)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    short = deflate.compress(b'x' * 100) + deflate.flush()
    data[offset:offset + len(short)] = short
    with pytest.raises(CorruptImage,
                       match='inflates to 100 bytes, not 65536'):
        consume(bytes(data), 'qcow2')


@pytest.mark.parametrize('where', ['directory', 'table'])
def test_sparse_vmdk_offsets_are_unsigned(disk, where):
    """A grain directory or table entry of 2^31 sectors is 1 TiB into
    the file (u32, VMDK spec), past its end: a cut image."""
    data = bytearray(disk['vmdk-sparse'])
    gd = struct.unpack_from('<Q', data, 56)[0] * 512
    at = gd if where == 'directory' else (
        struct.unpack_from('<I', data, gd)[0] * 512)
    struct.pack_into('<I', data, at, 1 << 31)
    with pytest.raises(CorruptImage, match='truncated'):
        consume(bytes(data), 'vmdk')


def test_raw_from_a_source_of_bytearrays_comes_out_as_bytes():
    # A reader may hand over buffers it fills again: what goes on is a
    # copy of its own.
    pieces = [bytearray(b'%d' % i) * 65536 for i in range(3)]
    image = formats.open_flat(iter(pieces), 'raw',
                              source_size=3 * 65536, chunk_size=65536)
    out = list(image)
    assert [type(c) for c in out] == [bytes] * 3
    assert b''.join(out) == b''.join(pieces)


def test_qemu_stream_vmdk_of_two_tables_with_holes_truncated(tmp_path):
    """qemu-img's tables in the head over 40 MiB and a grain (two grain
    tables, the second partly used), grains only here and there: every
    whole grain dropped from the end is caught, the whole image is not."""
    size = 40 * MiB + 65536
    raw = bytearray(size)
    for at in (0, 5 * MiB, 32 * MiB - 65536, 32 * MiB, size - 65536):
        raw[at:at + 65536] = os.urandom(65536)
    src = ff.write(tmp_path / 'h.raw', bytes(raw))
    data = ff.convert(src, tmp_path / 'h.vmdk', 'vmdk', '-o',
                      'subformat=streamOptimized')
    markers, end = ff.grain_markers(data)
    assert len(markers) == 5 and end == len(data)
    assert consume(data, 'vmdk', source_size=len(data)) == bytes(raw)
    for k in range(5):
        with pytest.raises(CorruptImage,
                           match='grain %d of the 5 its grain tables name'
                           % (k + 1)):
            consume(data[:markers[k]], 'vmdk')


def test_stream_vmdk_cut_messages_name_what_was_next(qemu_stream):
    """ESXi's layout (ours) is cut before its end-of-stream marker;
    qemu-img's, with tables in its head, before a marker."""
    raw = bytes(range(256)) * 1024
    ours = b''.join(formats.stream_optimized.Encoder(len(raw)).encode(
        [raw]))
    markers, _ = ff.grain_markers(ours)
    with pytest.raises(CorruptImage,
                       match='before its end-of-stream marker;'):
        consume(ours[:markers[-1] + 5], 'vmdk')
    qemu, _ = qemu_stream
    markers, _ = ff.grain_markers(qemu)
    with pytest.raises(CorruptImage, match='before a marker;'):
        consume(qemu[:markers[64] + 5], 'vmdk')
    overhead = struct.unpack_from('<Q', qemu, 64)[0] * 512
    with pytest.raises(CorruptImage, match='before its first grain;'):
        consume(qemu[:overhead - 100], 'vmdk')


def test_stream_vmdk_grain_size_limit(qemu_stream):
    """A grain may claim at most two grains and 4 KiB of deflate."""
    data, _ = qemu_stream
    first = ff.grain_markers(data)[0][0]
    most = 2 * 65536 + 4096
    with pytest.raises(CorruptImage, match='grain at byte %d claims %d '
                       'compressed bytes' % (first, most + 1)):
        consume(patched(data, first + 8, '<I', most + 1), 'vmdk')
    with pytest.raises(CorruptImage) as e:
        consume(patched(data, first + 8, '<I', most), 'vmdk')
    assert 'grain at byte %d claims' % first not in str(e.value)


def test_stream_vmdk_cut_in_a_grain_or_table_and_a_grain_past_the_end():
    raw = bytes(range(256)) * 1024
    ours = b''.join(formats.stream_optimized.Encoder(len(raw)).encode(
        [raw]))
    markers, _ = ff.grain_markers(ours)
    with pytest.raises(CorruptImage, match='before the end of a grain;'):
        consume(ours[:markers[0] + 100], 'vmdk')
    # ESXi's layout: a grain table marker, then the table, after grains.
    with pytest.raises(CorruptImage, match='before a grain table;'):
        consume(ours[:len(ours) - 1600], 'vmdk')
    # A grain at the LBA of the capacity is one past the last sector.
    capacity = struct.unpack_from('<Q', ours, 12)[0]
    with pytest.raises(CorruptImage, match='grain at LBA %d, beyond its '
                       'capacity' % capacity):
        consume(patched(ours, markers[-1], '<Q', capacity), 'vmdk')
