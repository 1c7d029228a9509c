"""Glance image bytes to a flat VMDK extent, streamed.

A flat extent is the raw disk, ``virtual_size`` bytes long, which the
driver PUTs to a datastore in one request; so every format is converted
in one front-to-back pass over Glance's chunks, with bounded memory, and
what cannot be (backing files, data out of order, ...) is refused up front
or as soon as it shows, with the ``qemu-img`` command that fixes it.

    image = open_flat(chunks, 'qcow2', source_size=glance_size)
    put(image, content_length=image.virtual_size)

or, through an NFC import lease, the same disk as a streamOptimized VMDK
(all-zero grains left out, the rest deflated):

    encoder = image.stream_optimized(compress_map=pool.map)
    post(encoder)
"""

from vcdriver.images.formats import ova
from vcdriver.images.formats import qcow2
from vcdriver.images.formats import stream_optimized
from vcdriver.images.formats import vmdk
from vcdriver.images.formats._base import CorruptImage
from vcdriver.images.formats._base import FormatMismatch
from vcdriver.images.formats._base import ImageFormatError
from vcdriver.images.formats._base import MiB
from vcdriver.images.formats._base import Reader
from vcdriver.images.formats._base import rechunk
from vcdriver.images.formats._base import round_up
from vcdriver.images.formats._base import UnsupportedImage

__all__ = ['CorruptImage', 'FlatImage', 'FormatMismatch', 'ImageFormatError',
           'UnsupportedImage', 'detect', 'open_flat']

HEAD_BYTES = 64 * 1024      # enough for every magic, ISO's at 32 KiB too
SPILL_LIMIT = 64 * MiB
FLAT_DISK_TYPES = ('preallocated', 'thin', 'eagerZeroedThick')
SPARSE_DISK_TYPES = ('sparse', 'streamOptimized')
BARE_CONTAINERS = ('bare', 'ovf')

_DESCRIBE = {
    'qcow2': 'a qcow2 disk',
    'vmdk-sparse': 'a sparse (monolithicSparse) VMDK',
    'vmdk-stream': 'a streamOptimized VMDK',
    'vmdk-descriptor': 'a VMDK descriptor (text, no disk data)',
    'ova': 'an OVA (tar) archive',
    'iso': 'an ISO 9660 CD image',
    'raw': 'a raw disk (or flat VMDK extent)',
    'vhd': 'a VHD disk',
    'vhdx': 'a VHDX disk',
    'vdi': 'a VirtualBox VDI disk',
    'luks': 'a LUKS encrypted volume',
}
_FIX = {
    'qcow2': 'set disk_format=qcow2',
    'vmdk-sparse': 'set disk_format=vmdk, vmware_disktype=sparse',
    'vmdk-stream': 'set disk_format=vmdk, vmware_disktype=streamOptimized',
    'ova': 'set container_format=ova, disk_format=vmdk',
    'iso': 'set disk_format=iso',
    'raw': 'set disk_format=raw',
}


def detect(head):
    """What the first bytes of an image (64 KiB is plenty) say it is.

    One of 'qcow2', 'vmdk-sparse', 'vmdk-stream' (streamOptimized),
    'vmdk-descriptor', 'ova' (tar), 'iso', 'raw'; and, so that they are
    not taken for raw disks, 'vhd', 'vhdx', 'vdi', 'luks'.
    """
    head = bytes(head)
    if head[:4] == qcow2.MAGIC:
        return 'qcow2'
    if head[:4] == vmdk.MAGIC:
        flags = int.from_bytes(head[8:12], 'little')
        return ('vmdk-stream' if flags & vmdk.FLAG_COMPRESSED
                else 'vmdk-sparse')
    if head.lstrip(b'\xef\xbb\xbf \t\r\n').startswith(
            b'# Disk DescriptorFile'):
        return 'vmdk-descriptor'
    if head[257:262] == b'ustar':
        return 'ova'
    if any(head[at:at + 5] == b'CD001' for at in (0x8001, 0x8801, 0x9001)):
        return 'iso'
    if head[:8] == b'vhdxfile':
        return 'vhdx'
    if head[:8] == b'conectix':
        return 'vhd'
    if head[64:68] == b'\x7f\x10\xda\xbe':
        return 'vdi'
    if head[:6] == b'LUKS\xba\xbe':
        return 'luks'
    return 'raw'


class FlatImage:
    """The flat disk of an image: iterate once for its bytes.

    ``virtual_size`` (whole sectors) is known from the header; the chunks
    yielded (at most ``chunk_size`` each, zeros for holes) total exactly
    that. The source is read to its end, so a hash taken over it covers
    every byte, and a failure at the very end still comes before the last
    chunk.
    """

    def __init__(self, virtual_size, source_format, pieces, reader,
                 source_size, chunk_size):
        self.virtual_size = round_up(virtual_size)
        self.source_format = source_format
        self._pieces = pieces
        self._reader = reader
        self._source_size = source_size
        self._chunk_size = chunk_size
        self._used = False

    def __iter__(self):
        if self._used:
            raise RuntimeError('a FlatImage can be iterated only once')
        self._used = True
        return rechunk(self._all_pieces(), self._chunk_size,
                       self.virtual_size)

    def stream_optimized(self, level=1, adapter_type='lsiLogic',
                         compress_map=map):
        """The disk as a streamOptimized VMDK, for an NFC import lease:
        all-zero grains are left out, the rest deflated at ``level``.

        Returns a ``stream_optimized.Encoder``: iterate it once (instead
        of the FlatImage) for chunks of ``chunk_size`` bytes; then its
        ``data_grains``, ``zero_grains`` and ``bytes_out`` say what was
        sent. The source is read to its end and Glance's size checked
        before the VMDK's footer, so a short or corrupt source never makes
        a complete-looking VMDK. ``compress_map(func, grains)`` is an
        ordered map; a thread pool's deflates in parallel.
        """
        if self._used:
            raise RuntimeError('a FlatImage can be iterated only once')
        self._used = True
        return stream_optimized.Encoder(
            self.virtual_size, level=level, adapter_type=adapter_type,
            chunk_size=self._chunk_size, compress_map=compress_map,
            pieces=self._all_pieces())

    def _all_pieces(self):
        yield from self._pieces
        total = self._reader.drain()
        if self._source_size is not None and total != self._source_size:
            raise CorruptImage(
                'image is %d bytes but Glance records %d; upload it again'
                % (total, self._source_size))


def _mismatch(declared, found):
    fix = _FIX.get(found, 'convert it to qcow2 with `qemu-img convert -O '
                   'qcow2 SOURCE OUT.qcow2`')
    return FormatMismatch('image is declared %s but its bytes are %s; %s'
                          % (declared, _DESCRIBE[found], fix))


def _raw(reader, source_size, found):
    if source_size is None:
        raise ValueError('a raw or flat image needs source_size')
    return source_size, found, reader.pieces(
        source_size, 'the %d bytes Glance records' % source_size)


def _open_vmdk(reader, found, source_size, vmware_disktype, spill_limit,
               capacity=None):
    """(size, format, pieces) of a VMDK whose bytes were detected as
    ``found``."""
    if found == 'raw':
        if vmware_disktype in SPARSE_DISK_TYPES:
            raise FormatMismatch(
                'image is declared vmware_disktype=%s but its bytes are not '
                'a sparse VMDK (no KDMV header): it looks like a flat '
                'extent; set vmware_disktype=preallocated'
                % vmware_disktype)
        return _raw(reader, source_size, found)
    if found in ('vmdk-sparse', 'vmdk-stream'):
        if vmware_disktype in FLAT_DISK_TYPES:
            raise FormatMismatch(
                'image is declared vmware_disktype=%s (a flat extent) but '
                'its bytes are %s; %s' % (vmware_disktype, _DESCRIBE[found],
                                          _FIX[found]))
        size, pieces = vmdk.open_vmdk(reader, reader.peek(HEAD_BYTES),
                                      spill_limit, capacity)
        return size, found, pieces
    if found == 'vmdk-descriptor':
        raise UnsupportedImage(
            'image is only a VMDK descriptor; its disk data lives in '
            'separate extent files. Upload one self-contained disk: '
            '`%s`' % vmdk.FIX_HINT.replace('SOURCE', 'DESCRIPTOR.vmdk'))
    raise _mismatch('disk_format=vmdk', found)


def _open_ova(reader, disk_format, vmware_disktype, chunk_size,
              spill_limit):
    if disk_format != 'vmdk':
        raise UnsupportedImage('an OVA holds VMDK disks; set '
                               'disk_format=vmdk (it is %s)' % disk_format)
    member, ovf, inner = ova.find_disk(reader, chunk_size)
    # Flat extents are the raw disk, whatever their first bytes look like.
    found = ('raw' if getattr(member, 'flat_extents', False)
             else detect(inner.peek(HEAD_BYTES)))
    capacity = None
    if found == 'vmdk-stream' and vmdk.Header(
            inner.peek(HEAD_BYTES), inner.label).capacity == 0:
        capacity = ova.ovf_capacity(ovf, member.name)
    if found not in ('raw', 'vmdk-sparse', 'vmdk-stream',
                     'vmdk-descriptor'):
        raise FormatMismatch(
            'OVA disk %s is %s, not a VMDK; repack the OVA with a VMDK made '
            'by `%s`' % (member.name, _DESCRIBE[found], vmdk.FIX_HINT))
    size, found, pieces = _open_vmdk(inner, found, member.size,
                                     vmware_disktype, spill_limit, capacity)

    def all_pieces():
        yield from pieces
        inner.drain()
    return size, found, all_pieces()


def open_flat(chunks, disk_format, container_format='bare',
              vmware_disktype=None, chunk_size=MiB, source_size=None,
              spill_limit=SPILL_LIMIT):
    """Peek at ``chunks`` (an iterator of bytes) and return a FlatImage.

    ``disk_format``/``container_format`` are Glance's, ``vmware_disktype``
    the image property; ``source_size`` is Glance's recorded size, needed
    for raw and flat VMDK (it is their disk size) and checked for all.
    ``spill_limit`` bounds the bytes kept for data stored ahead of its
    turn. Raises ImageFormatError subclasses, here or while iterating.
    """
    if chunk_size <= 0:
        raise ValueError('chunk_size must be positive')
    reader = Reader(chunks)
    found = detect(reader.peek(HEAD_BYTES))
    container = container_format or 'bare'
    if container == 'ova':
        if found != 'ova':
            raise _mismatch('container_format=ova', found)
        reader.label = 'OVA'
        size, found, pieces = _open_ova(reader, disk_format,
                                        vmware_disktype, chunk_size,
                                        spill_limit)
    elif container not in BARE_CONTAINERS:
        raise UnsupportedImage(
            'container_format %s is not supported; use bare (or ova)'
            % container)
    elif found == 'ova':
        raise _mismatch('container_format=%s' % container, found)
    elif disk_format == 'iso':
        # Kept as it is: the instance boots it from a CD-ROM.
        if found != 'iso':
            raise _mismatch('disk_format=iso', found)
        reader.label = 'ISO image'
        size, found, pieces = _raw(reader, source_size, found)
    elif disk_format in ('raw', 'qcow2', 'vmdk') and found == 'iso':
        raise _mismatch('disk_format=%s' % disk_format, found)
    elif disk_format == 'raw':
        if found != 'raw':
            raise _mismatch('disk_format=raw', found)
        reader.label = 'raw image'
        size, found, pieces = _raw(reader, source_size, found)
    elif disk_format == 'qcow2':
        if found != 'qcow2':
            raise _mismatch('disk_format=qcow2', found)
        reader.label = 'qcow2 image'
        image = qcow2.Qcow2Image(reader, reader.peek(HEAD_BYTES),
                                 spill_limit)
        size, pieces = image.size, image.pieces()
    elif disk_format == 'vmdk':
        reader.label = 'VMDK image'
        size, found, pieces = _open_vmdk(reader, found, source_size,
                                         vmware_disktype, spill_limit)
    else:
        raise UnsupportedImage(
            'disk_format %s is not supported; convert the image with '
            '`qemu-img convert -O qcow2 SOURCE OUT.qcow2` and upload it as '
            'disk_format=qcow2' % disk_format)
    return FlatImage(size, found, pieces, reader, source_size, chunk_size)
