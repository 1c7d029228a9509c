"""Bench section: an image from a real Glance onto a vcsim datastore.

Three ways to move the same raw image (incompressible bytes), each run in a
fresh process and measured inside it (tools/bench/measure.py):

``raw``
    ``curl GET | curl -T - PUT``: the bytes, no verification, no Python.
``intree``
    ``nova.virt.vmwareapi.images.fetch_image`` as installed with Nova:
    ``IMAGE_API.download`` (glanceclient checks the sha512) into
    oslo.vmware's ``ImageReadHandle``/``FileWriteHandle``. Its loop asks
    for 64 KiB, but ``ImageReadHandle`` ignores the size and passes on
    glanceclient's chunks: 1 MiB with glanceclient 4.x.
``ours``
    ``vcdriver.images.pipeline.fill`` as spawn calls it (image
    record, disk creation, pipelined copy, sha512 verification).

Each on loopback (everything in one network namespace on 127.0.0.1) and
over a link shaped with tbf (servers in ``vcb-srv``, the transfer in
``vcb-cli``; tools/bench/netns.py). One Glance and one vcsim serve every
case, both listening on all addresses of the server namespace. After
every case the datastore file is hashed against Glance's
``os_hash_value`` and its size checked, then deleted.

vcsim serves TLS, as every vCenter does: the in-tree handles only speak
https to a datastore. Certificates are not verified (in-tree default).
``VCDRIVER_BENCH_VERBOSE=1`` shows each worker's INFO log (vcdriver's
transfer progress and rate).

Realistic images (issue 14 item 6; ``--no-realistic`` leaves them out,
``--only-realistic`` runs nothing else): a disk of
``--realistic-virtual-gib`` (8) holding ``--realistic-data-gib`` (1) of
data, in 4 MiB extents spread evenly with holes between, every other one
random and the rest text-like (tools/bench/disk_images.py), as qcow2,
streamOptimized and monolithicSparse VMDKs made by ``qemu-img convert``
and as the raw disk itself (Glance stores it whole), and the flat
incompressible image of ``--incompressible-gib`` (1). Their cases, each to
a cached disk as spawn has one:

``ours``
    ``vcdriver.images.pipeline.cached`` with default settings (the disk
    goes as a streamOptimized VMDK through an NFC import lease).
``ours_flat``
    the same with ``[vcdriver] image_upload_method = flat``: one PUT of
    the whole flat extent, as before the import lease.
``intree``
    ``VMwareVMOps._fetch_image_if_missing`` of a started in-tree driver
    (tools/bench/intree.py), as its spawn calls it: ImportVApp for a
    streamOptimized VMDK, PUT then CopyVirtualDisk_Task for a
    monolithicSparse one, a PUT of the flat extent for raw bytes
    (declared ``vmdk``/``preallocated``, as the in-tree driver needs
    them); it refuses qcow2 (n/a). What fails is reported in one line,
    without figures.

For each: wall seconds, bytes sent to vSphere (what the launcher received
on NFC import leases, GET /vcdriver/nfc, plus flat PUT bodies counted in
the worker), bytes allocated on the datastore by what the case left
(st_blocks), CPU seconds per GiB of data, RSS growth; and the issue's
ratios. Every disk is compared with its image (``qemu-img compare``; the
sha512 for the incompressible one) and removed. ``--deflate-levels 0,1,6``
adds ours at those ``[vcdriver] image_deflate_level`` on the realistic
images whose grains ours deflates.

The section, one module per concern: ``naming`` (its name, units and the
parts of figure names), ``figures`` (the raw-image cases and the sweep:
names, figures, targets, table), ``realistic`` (the same for the realistic
images), ``cli`` (the options), ``bench`` (the servers, the images, one
case run and checked), ``workers`` (the worker process's side of a case),
``runner`` (``run``: every case, then figures and report). ``python -m
tools.bench.image_transfer worker SPEC_JSON`` (``__main__``) is a worker.
"""

from tools.bench import worker
from tools.bench.image_transfer.cli import add_arguments
from tools.bench.image_transfer.naming import NAME
from tools.bench.image_transfer.runner import run
from tools.bench.image_transfer.workers import worker_main

__all__ = ['NAME', 'add_arguments', 'main', 'run']


def main(argv=None):
    return worker.main(argv, worker_main, NAME)
