"""Every single-file format qemu-img writes that the driver takes, of
several raw disks, converted as the driver does and checked against
``qemu-img convert -O raw`` of the same file.

Sizes include ones that are not a whole number of grains or clusters, an
all-zero disk and a 2 GiB disk holding 8 MiB: holes stay holes (ints) in
the conversion, so it takes no longer than the data.
"""

import hashlib
import os
import random

import pytest

from tests.unit import formats_fixtures as ff
from vcdriver.images import formats
from vcdriver.images.formats import CorruptImage

MiB = ff.MiB
GiB = 1024 * MiB
BLOCK = MiB
_ZERO_BLOCK = bytes(BLOCK)
_ZERO_DIGEST = hashlib.sha256(_ZERO_BLOCK).digest()


class TreeHash:
    """sha256 over the sha256 of each MiB (and the length): as telling as
    one sha256 of the bytes, but an all-zero MiB, found by a compare, is a
    known digest, so the 2 GiB disk is not hashed zero by zero."""

    def __init__(self):
        self._top = hashlib.sha256()
        self._buf = bytearray()
        self.size = 0

    def _block(self, block):
        self._top.update(_ZERO_DIGEST if block == _ZERO_BLOCK
                         else hashlib.sha256(block).digest())

    def update(self, data):
        self.size += len(data)
        if not self._buf and len(data) == BLOCK:
            self._block(data)
            return
        self._buf += data
        while len(self._buf) >= BLOCK:
            self._block(bytes(self._buf[:BLOCK]))
            del self._buf[:BLOCK]

    def zeros(self, n):
        """``update(bytes(n))``, whole zero MiBs without a compare."""
        if self._buf or n < BLOCK:
            k = min(n, BLOCK - len(self._buf))
            self.update(bytes(k))
            n -= k
        self.size += n // BLOCK * BLOCK
        for _ in range(n // BLOCK):
            self._top.update(_ZERO_DIGEST)
        if n % BLOCK:
            self.update(bytes(n % BLOCK))

    def hexdigest(self):
        if self._buf:
            self._top.update(hashlib.sha256(self._buf).digest())
            self._buf.clear()
        self._top.update(b'%d' % self.size)
        return self._top.hexdigest()


def file_chunks(path, size=BLOCK):
    """A file's bytes in chunks, as Glance streams them."""
    with open(path, 'rb') as f:
        while True:
            data = f.read(size)
            if not data:
                return
            yield data


def file_digest(path):
    """(size, TreeHash digest) of a file; its holes are not read."""
    digest = TreeHash()
    for piece in ff.file_pieces(path, BLOCK):
        if type(piece) is int:
            digest.zeros(piece)
        else:
            digest.update(piece)
    return digest.size, digest.hexdigest()


def _random(seed):
    return random.Random(seed).randbytes


def _sparse(f):
    """2 GiB holding 8 MiB of random data, some of it unaligned, some
    across a grain table's span (32 MiB) and at the very end."""
    f.truncate(2 * GiB)
    rnd = _random(11)
    for offset, size in ((0, MiB), (300 * MiB + 4608, MiB + MiB // 2),
                         (GiB - 40 * 1024, 2 * MiB),
                         (3 * GiB // 2 + 8704, 2 * MiB),
                         (2 * GiB - 3 * MiB // 2, 3 * MiB // 2)):
        f.seek(offset)
        f.write(rnd(size))


# name -> (virtual size, writer of the raw disk to an open file)
SOURCES = {
    'sector': (512, lambda f: f.write(_random(1)(512))),
    'grain-less-a-sector': (65536 - 512,
                            lambda f: f.write(_random(2)(65536 - 512))),
    '5m-4.5k': (5 * MiB + 4608,
                lambda f: f.write(_random(3)(5 * MiB + 4608))),
    '8m-random': (8 * MiB, lambda f: f.write(_random(4)(8 * MiB))),
    'mixed': (3 * MiB + 1536, lambda f: f.write(ff.source_disk())),
    'zero-4m': (4 * MiB, lambda f: f.truncate(4 * MiB)),
    'sparse-2g': (2 * GiB, _sparse),
}

# name -> (qemu-img -O format and options, or the VMDK an OVA wraps;
#          open_flat's disk_format, container_format, vmware_disktype;
#          the format detected)
FORMATS = {
    'qcow2-v2': (('qcow2', '-o', 'compat=0.10'), 'qcow2', 'bare', None,
                 'qcow2'),
    'qcow2-v3': (('qcow2', '-o', 'compat=1.1'), 'qcow2', 'bare', None,
                 'qcow2'),
    'qcow2-compressed': (('qcow2', '-c'), 'qcow2', 'bare', None, 'qcow2'),
    'vmdk-sparse': (('vmdk', '-o', 'subformat=monolithicSparse'), 'vmdk',
                    'bare', 'sparse', 'vmdk-sparse'),
    'vmdk-stream': (('vmdk', '-o', 'subformat=streamOptimized'), 'vmdk',
                    'bare', 'streamOptimized', 'vmdk-stream'),
    'raw': (('raw',), 'raw', 'bare', None, 'raw'),
    'ova-sparse': ('vmdk-sparse', 'vmdk', 'ova', None, 'vmdk-sparse'),
    'ova-stream': ('vmdk-stream', 'vmdk', 'ova', None, 'vmdk-stream'),
}


class Corpus:
    """Images made on demand, once, with the oracle's digest of each."""

    def __init__(self, directory):
        self.dir = directory
        self._paths = {}
        self._oracles = {}

    def source(self, name):
        path = self.dir / ('%s.raw' % name)
        if not path.exists():
            with open(path, 'wb') as f:
                SOURCES[name][1](f)
        return path

    def image(self, source, fmt):
        """(path, the path qemu-img reads for the oracle, its format)."""
        key = source, fmt
        if key not in self._paths:
            made = FORMATS[fmt][0]
            if isinstance(made, str):       # an OVA of that VMDK
                vmdk, _, _ = self.image(source, made)
                path = self.dir / ('%s.%s.ova' % key)
                size = SOURCES[source][0]
                ff.write(path, ff.ova([
                    ('disk.ovf', ff.ovf('disk1.vmdk', size)),
                    ('disk1.vmdk', ff.read(vmdk)),
                    ('disk.mf', b'SHA256(disk1.vmdk)= 00\n')]))
                self._paths[key] = path, vmdk, 'vmdk'
            else:
                path = self.dir / ('image-%s.%s' % key)
                ff.qemu_img('convert', '-f', 'raw', '-O', made[0],
                            *made[1:], self.source(source), path)
                self._paths[key] = path, path, made[0]
        return self._paths[key]

    def oracle(self, path, fmt):
        """(size, digest) of ``qemu-img convert -O raw`` of ``path``."""
        if path not in self._oracles:
            out = self.dir / 'oracle.raw'
            ff.qemu_img('convert', '-f', fmt, '-O', 'raw', path, out)
            self._oracles[path] = file_digest(out)
            os.unlink(out)
        return self._oracles[path]


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return Corpus(tmp_path_factory.mktemp('corpus'))


@pytest.mark.parametrize('fmt', list(FORMATS))
@pytest.mark.parametrize('source', list(SOURCES))
def test_converts_like_qemu_img(corpus, source, fmt):
    path, oracle_path, oracle_fmt = corpus.image(source, fmt)
    _, disk_format, container, disktype, detected = FORMATS[fmt]
    image = formats.open_flat(file_chunks(path), disk_format, container,
                              disktype, source_size=os.path.getsize(path))
    assert image.source_format == detected
    assert image.virtual_size == SOURCES[source][0]
    digest = TreeHash()
    for chunk in image:         # hashed as it streams: 2 GiB never held
        assert len(chunk) <= MiB
        digest.update(chunk)
    assert (digest.size, digest.hexdigest()) == corpus.oracle(
        oracle_path, oracle_fmt)


def _cut(data, markers, why):
    return {'inside the last grain': len(data) - 1000,
            'inside the last marker': markers[-1] + 6,
            'the last grain dropped': markers[-1],
            'the last 10 grains dropped': markers[-10],
            'every grain dropped': markers[0]}[why]


@pytest.mark.parametrize('why', ['inside the last grain',
                                 'inside the last marker',
                                 'the last grain dropped',
                                 'the last 10 grains dropped',
                                 'every grain dropped'])
@pytest.mark.parametrize('container', ['bare', 'ova'])
def test_truncated_qemu_stream_vmdk(corpus, container, why):
    """qemu-img's streamOptimized VMDK ends after its last grain, with no
    end-of-stream marker: cut inside the last grain or by whole grains,
    it is refused."""
    path, _, _ = corpus.image('8m-random', 'vmdk-stream')
    data = ff.read(path)
    markers, end = ff.grain_markers(data)
    assert end == len(data) and len(markers) == 128
    image = data[:_cut(data, markers, why)]
    if container == 'ova':
        image = ff.ova([('disk.ovf', ff.ovf('disk1.vmdk', 8 * MiB)),
                        ('disk1.vmdk', image)])
    flat = formats.open_flat(ff.chunked(image, 65536), 'vmdk', container,
                             source_size=len(image))
    with pytest.raises(CorruptImage, match='truncated'):
        for _ in flat:
            pass
