"""Realistic disk images for the image_transfer bench, made locally.

A realistic image is a large disk holding far less data: ``data`` bytes
in extents spread evenly over a ``virtual``-byte disk, holes between them,
every other extent incompressible (random bytes) and the rest text-like
(words of a Zipf-distributed vocabulary, lines of a dozen words: deflate
level 1 leaves 45 % of it). The raw source is a sparse file; ``qemu-img
convert`` makes the other formats from it:

    layout = Layout(virtual=8 << 30, data=1 << 30)
    raw = write_raw(path, layout)             # sparse, ``data`` allocated
    convert(raw, 'qcow2', out)                # or vmdk_stream, vmdk_sparse
    compare(out, 'qcow2', flat_on_datastore)  # qemu-img compare

The bytes are seeded: two runs make the same images.
"""

import dataclasses
import itertools
import os
import random
import subprocess

MiB = 1 << 20
EXTENT = 4 * MiB               # one piece of data; a kind each
BLOCK = 16 * MiB               # pieces are cut from blocks this large
SEED = 14                      # issue 14

# Bench format name -> (qemu-img -O, extra -o options, Glance disk_format,
# Glance properties).
FORMATS = {
    'qcow2': ('qcow2', [], 'qcow2', {}),
    'vmdk_stream': ('vmdk', ['subformat=streamOptimized',
                             'adapter_type=lsilogic'],
                    'vmdk', {'vmware_disktype': 'streamOptimized'}),
    'vmdk_sparse': ('vmdk', ['subformat=monolithicSparse',
                             'adapter_type=lsilogic'],
                    'vmdk', {'vmware_disktype': 'sparse'}),
    'raw': ('raw', [], 'raw', {}),
}
# qemu-img's -f for the files this module makes.
QEMU_FORMAT = {name: spec[0] for name, spec in FORMATS.items()}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the data of a ``virtual``-byte disk holding ``data`` bytes
    lies: ``data // extent`` extents, one every ``virtual / count`` bytes
    (the first at 0, where partition tables and boot loaders live),
    alternately random and text."""

    virtual: int
    data: int
    extent: int = EXTENT

    def __post_init__(self):
        if self.extent <= 0 or self.extent % MiB:
            raise ValueError('extent %d is not a whole number of MiB'
                             % self.extent)
        if self.data <= 0 or self.data % (2 * self.extent):
            raise ValueError('data (%d bytes) is not a positive multiple of '
                             '%d MiB (two extents: one random, one text)'
                             % (self.data, 2 * self.extent // MiB))
        if self.virtual < self.data or self.virtual % MiB:
            raise ValueError('virtual size %d is not a whole number of MiB '
                             'at least the data (%d)'
                             % (self.virtual, self.data))

    @property
    def count(self):
        return self.data // self.extent

    def extents(self):
        """``(offset, kind)`` of every extent, kind 'random' or 'text',
        offsets MiB-aligned, ascending, never overlapping."""
        spacing = self.virtual // self.count // MiB * MiB
        return [(i * spacing, 'random' if i % 2 == 0 else 'text')
                for i in range(self.count)]


def text_block(size, seed=SEED):
    """``size`` bytes of text-like data: lines of Zipf-weighted words."""
    rng = random.Random(seed)
    letters = 'etaoinshrdlcumwfgypbvkjxqz'
    vocabulary = []
    for _ in range(4096):
        n = min(12, max(1, int(rng.expovariate(1 / 5.0)) + 1))
        vocabulary.append(''.join(rng.choices(letters, k=n)))
    cum = list(itertools.accumulate(1.0 / rank for rank in
                                    range(1, len(vocabulary) + 1)))
    # Words of 6.2 bytes on average with their space: a few too many.
    words = rng.choices(vocabulary, cum_weights=cum, k=size // 5)
    out = []
    total = 0
    for i in range(0, len(words), 12):
        line = (' '.join(words[i:i + 12]) + '.\n').capitalize()
        out.append(line)
        total += len(line)
        if total >= size:
            break
    else:
        raise AssertionError('too few words for %d bytes' % size)
    return ''.join(out).encode('ascii')[:size]


def random_block(size, seed=SEED):
    return random.Random(seed).randbytes(size)


def write_raw(path, layout, block=BLOCK):
    """Write the sparse raw disk of ``layout`` to ``path``; return the
    number of data bytes written (``layout.data``)."""
    blocks = {'random': random_block(block), 'text': text_block(block)}
    span = block - layout.extent
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i, (offset, kind) in enumerate(layout.extents()):
            # A different cut of the block each time: no two extents alike.
            start = (i * 7 * MiB) % (span + 1) if span else 0
            piece = blocks[kind][start:start + layout.extent]
            os.pwrite(fd, piece, offset)
            written += len(piece)
        os.ftruncate(fd, layout.virtual)
    finally:
        os.close(fd)
    return written


def convert_command(source, fmt, out):
    """The qemu-img command making ``fmt`` of the raw ``source``."""
    qemu_fmt, options, _disk_format, _props = FORMATS[fmt]
    argv = ['qemu-img', 'convert', '-f', 'raw', '-O', qemu_fmt]
    if options:
        argv += ['-o', ','.join(options)]
    return argv + [source, out]


def convert(source, fmt, out):
    _run(convert_command(source, fmt, out))
    return out


def compare_command(image, fmt, flat):
    """qemu-img compare of an image with a flat extent (raw)."""
    return ['qemu-img', 'compare', '-f', QEMU_FORMAT[fmt], '-F', 'raw',
            image, flat]


def compare(image, fmt, flat):
    """None if the flat extent holds the image's disk, else why not."""
    proc = subprocess.run(compare_command(image, fmt, flat),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode == 0:
        return None
    return 'qemu-img compare exit %d: %s' % (proc.returncode,
                                             proc.stdout.strip()[-300:])


def allocated(path):
    """Bytes a file takes on its file system (st_blocks * 512)."""
    return os.stat(path).st_blocks * 512


def _run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise RuntimeError('%s failed (exit %d): %s'
                           % (' '.join(argv), proc.returncode,
                              proc.stdout.strip()[-500:]))
    return proc.stdout
