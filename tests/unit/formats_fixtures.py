"""Test images for vcdriver.images.formats, made with qemu-img.

qemu-img is the independent oracle: it writes the images, and where a test
image is not a straight conversion of a known raw disk, ``qemu-img convert
-O raw`` says what the flat bytes must be.
"""

import io
import os
import pickle
import random
import shutil
import struct
import subprocess
import tarfile
import zlib

import pytest

MiB = 1024 * 1024
INSTALL = 'apt-get install qemu-utils'


def memoised(name, make):
    """``make()``, or what it gave earlier in this mutation run.

    tools/mutation.py runs these tests once per mutant, each time in a
    pytest session of its own; it sets VCDRIVER_TEST_IMAGES to a folder of
    its scratch copy (new each run), so that qemu-img makes a module's
    images once per run, not once per mutant. Unset, ``make()`` is called.
    """
    folder = os.environ.get('VCDRIVER_TEST_IMAGES')
    if not folder:
        return make()
    path = os.path.join(folder, name + '.pickle')
    if os.path.exists(path):
        with open(path, 'rb') as f:
            return pickle.load(f)
    value = make()
    os.makedirs(folder, exist_ok=True)
    with open(path + '.tmp', 'wb') as f:
        pickle.dump(value, f)
    os.replace(path + '.tmp', path)
    return value


def tool(name):
    """Path of a qemu tool; failing (not skipping) the test without it."""
    path = shutil.which(name)
    if not path:
        pytest.fail('%s is missing: the image format tests need it as '
                    'their oracle; run `%s`' % (name, INSTALL))
    return path


def run(name, *args):
    result = subprocess.run([tool(name)] + [str(a) for a in args],
                            capture_output=True, text=True, check=False)
    if result.returncode:
        raise AssertionError('%s %s failed: %s%s' % (
            name, ' '.join(map(str, args)), result.stdout, result.stderr))
    return result.stdout


def qemu_img(*args):
    return run('qemu-img', *args)


def qemu_io(fmt, path, *commands):
    args = ['-f', fmt]
    for command in commands:
        args += ['-c', command]
    return run('qemu-io', *(args + [path]))


def to_raw(path, fmt):
    """The flat bytes of ``path`` according to qemu-img."""
    out = str(path) + '.oracle.raw'
    qemu_img('convert', '-f', fmt, '-O', 'raw', path, out)
    with open(out, 'rb') as f:
        data = f.read()
    os.unlink(out)
    return data


def source_disk(size=3 * MiB + 1536, seed=7):
    """A raw disk with random data, compressible data and holes."""
    rnd = random.Random(seed)
    disk = bytearray(size)

    def put(offset, data):
        disk[offset:offset + len(data)] = data[:size - offset]
    put(0, rnd.randbytes(100000))
    text = b''.join(b'line %06d of a compressible region\n' % i
                    for i in range(6000))
    put(300000, text[:200000])
    put(2 * MiB + 4096, rnd.randbytes(70000))
    put(size - 1000, rnd.randbytes(1000))
    return bytes(disk)


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def file_pieces(path, block=MiB):
    """A sparse file as the converters give a disk: bytes of its data
    (at most ``block``, cut at multiples of it) and an int for each hole,
    which is never read."""
    with open(path, 'rb') as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        at = 0
        while at < size:
            try:
                data = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:         # ENXIO: only a hole is left
                data = size
            if data > at:
                yield data - at
            at = data
            end = os.lseek(fd, at, os.SEEK_HOLE) if at < size else size
            while at < end:
                chunk = os.pread(fd, min(block - at % block, end - at), at)
                yield chunk
                at += len(chunk)


def data_bytes(path, sector=512):
    """A raw disk's data: the bytes of its sectors that are not all
    zero."""
    zero = bytes(sector)
    return sum(sector for piece in file_pieces(path) if type(piece) is bytes
               for i in range(0, len(piece), sector)
               if piece[i:i + sector] != zero)


def convert(raw_path, dst, fmt, *options):
    qemu_img('convert', '-f', 'raw', '-O', fmt, *options, raw_path, dst)
    return read(dst)


def chunked(data, size):
    """``data`` as an iterator of ``size``-byte chunks (the last shorter).
    """
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i:i + size])


class Counting:
    """A chunk iterator that counts what was pulled from it."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self.pulled = 0

    def __iter__(self):
        return self

    def __next__(self):
        chunk = next(self._it)
        self.pulled += len(chunk)
        return chunk


OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="{disk}" ovf:id="file1"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="{units}"
        ovf:diskId="vmdisk1" ovf:fileRef="file1"
        ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
</Envelope>
"""


def ova(members, fmt=tarfile.USTAR_FORMAT):
    """An OVA's bytes from ``(name, bytes)`` pairs, in that order; a
    ``tarfile.TarInfo`` may stand in for a pair."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w', format=fmt) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def ovf(disk, capacity, units='byte'):
    return OVF.format(disk=disk, capacity=capacity, units=units).encode()


def qcow2_by_hand(size, clusters, order, cluster_bits=16):
    """A qcow2 v2 image laid out as ``order`` says, for layouts qemu does
    not write.

    ``clusters`` maps guest cluster index to its data; ``order`` lists the
    host layout after the header: 'L1', 'L2' and guest cluster indexes.
    One L2 table; refcounts after everything.
    """
    cs = 1 << cluster_bits
    host = {item: (i + 1) * cs for i, item in enumerate(order)}
    table = (len(order) + 1) * cs   # refcounts at the end, for qemu
    image = bytearray(table + 2 * cs)
    image[:72] = struct.pack('>4sIQIIQIIQQIIQ', b'QFI\xfb', 2, 0, 0,
                             cluster_bits, size, 0, 1, host['L1'], table, 1,
                             0, 0)
    image[table:table + 8] = struct.pack('>Q', table + cs)
    image[table + cs:table + cs + 2 * (len(order) + 3)] = (
        b'\0\1' * (len(order) + 3))
    image[host['L1']:host['L1'] + 8] = struct.pack('>Q', host['L2'] | 1 << 63)
    for index, data in clusters.items():
        at = host['L2'] + 8 * index
        image[at:at + 8] = struct.pack('>Q', host[index] | 1 << 63)
        image[host[index]:host[index] + len(data)] = data
    return bytes(image)


def stream_vmdk_by_hand(capacity, grains, grain_sectors=128):
    """A streamOptimized VMDK with grains in the order given as ``(lba,
    data)`` pairs: no grain tables, just markers and an end of stream."""
    header = struct.pack('<4sIIQQQQIQQQ?ccccH', b'KDMV', 3, 0x30003,
                         capacity // 512, grain_sectors, 0, 0, 512, 0,
                         0xffffffffffffffff, 1, False, b'\n', b' ', b'\r',
                         b'\n', 1)
    out = bytearray(header.ljust(512, b'\0'))
    for lba, data in grains:
        packed = zlib.compress(data)
        marker = struct.pack('<QI', lba, len(packed)) + packed
        out += marker.ljust(-(-len(marker) // 512) * 512, b'\0')
    out += bytes(512)       # end-of-stream marker: all zero
    return bytes(out)


def grain_markers(data):
    """(byte offsets of a streamOptimized VMDK's grain markers, where its
    stream ends: past an end-of-stream marker, or at the file's end)."""
    at = struct.unpack_from('<Q', data, 64)[0] * 512
    markers = []
    while at < len(data):
        lba, size = struct.unpack_from('<QI', data, at)
        if size:
            markers.append(at)
            at += -(-(12 + size) // 512) * 512
        elif struct.unpack_from('<I', data, at + 12)[0] == 0:
            return markers, at + 512
        else:
            at += 512 + lba * 512
    return markers, at
