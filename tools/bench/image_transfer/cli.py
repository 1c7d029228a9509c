"""The section's command-line options, and the Realistic they ask for."""

import argparse

from tools.bench import arg_types
from tools.bench.image_transfer.figures import DEFAULT_SIZES
from tools.bench.image_transfer.figures import LINKS
from tools.bench.image_transfer.figures import SWEEP_CHUNKS
from tools.bench.image_transfer.figures import SWEEP_DEPTHS
from tools.bench.image_transfer.naming import GiB
from tools.bench.image_transfer.naming import size_bytes
from tools.bench.image_transfer.realistic import DEFAULT_INCOMPRESSIBLE
from tools.bench.image_transfer.realistic import DEFAULT_REALISTIC_DATA
from tools.bench.image_transfer.realistic import DEFAULT_REALISTIC_VIRTUAL
from tools.bench.image_transfer.realistic import IMAGE_KINDS
from tools.bench.image_transfer.realistic import R_CASES
from tools.bench.image_transfer.realistic import Realistic


def _float_list(text):
    return [float(x) for x in text.split(',') if x.strip()]


def _size_list(text):
    sizes = _float_list(text)
    for s in sizes:
        if s <= 0 or size_bytes(s) != s * GiB:
            raise argparse.ArgumentTypeError(
                'size %g GiB is not a whole number of MiB' % s)
    return [int(s) if s == int(s) else s for s in sizes]


_links = arg_types.choice_list('link', LINKS)


def _byte_sizes(text):
    out = []
    for part in text.split(','):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        for suffix, m in (('kib', 1 << 10), ('k', 1 << 10),
                          ('mib', 1 << 20), ('m', 1 << 20)):
            if part.endswith(suffix):
                part, mult = part[:-len(suffix)], m
                break
        out.append(int(float(part) * mult))
    return out


def _int_list(text):
    return [int(x) for x in text.split(',') if x.strip()]


def _gib(text):
    """A size in GiB, a whole number of MiB."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a number of GiB'
                                         % text) from None
    if value <= 0 or size_bytes(value) != value * GiB:
        raise argparse.ArgumentTypeError(
            'size %g GiB is not a whole number of MiB' % value)
    return int(value) if value == int(value) else value


def _levels(text):
    try:
        levels = _int_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a list of zlib levels'
                                         % text) from None
    for level in levels:
        if not 0 <= level <= 9:
            raise argparse.ArgumentTypeError('zlib level %d is not 0..9'
                                             % level)
    return levels


_image_kinds = arg_types.choice_list('image', IMAGE_KINDS)
_r_cases = arg_types.choice_list('case', R_CASES)


def add_arguments(parser):
    group = parser.add_argument_group('image transfer')
    group.add_argument('--sizes', type=_size_list,
                       default=list(DEFAULT_SIZES),
                       help='image sizes in GiB, comma separated (default '
                            '1,4; 0.25 for a quick look)')
    group.add_argument('--links', type=_links, default=list(LINKS),
                       help='loopback and/or tbf (default both)')
    group.add_argument('--sweep', action='store_true',
                       help='also measure ours at several [vcdriver] '
                            'image_transfer_chunk_size x '
                            'image_transfer_buffer_chunks on loopback')
    group.add_argument('--only-sweep', action='store_true',
                       help='only the sweep')
    group.add_argument('--sweep-size', type=float, default=None,
                       help='image size of the sweep in GiB (default: the '
                            'smallest of --sizes)')
    group.add_argument('--sweep-chunks', type=_byte_sizes,
                       default=list(SWEEP_CHUNKS),
                       help='chunk sizes of the sweep (default 64k,256k,'
                            '1m,4m)')
    group.add_argument('--sweep-depths', type=_int_list,
                       default=list(SWEEP_DEPTHS),
                       help='buffer chunks of the sweep (default 2,8,32)')
    group.add_argument('--no-realistic', dest='realistic',
                       action='store_false',
                       help='leave out the realistic images')
    group.add_argument('--only-realistic', action='store_true',
                       help='only the realistic images (not --sizes)')
    group.add_argument('--realistic-virtual-gib', type=_gib,
                       default=DEFAULT_REALISTIC_VIRTUAL,
                       help='virtual size of the realistic disks in GiB '
                            '(default 8)')
    group.add_argument('--realistic-data-gib', type=_gib,
                       default=DEFAULT_REALISTIC_DATA,
                       help='data they hold in GiB, a multiple of 8 MiB, '
                            'half random, half text (default 1; 0.125 '
                            'with a virtual size of 1 for a quick look)')
    group.add_argument('--incompressible-gib', type=_gib,
                       default=DEFAULT_INCOMPRESSIBLE,
                       help='size of the flat incompressible image in GiB '
                            '(default 1)')
    group.add_argument('--images', type=_image_kinds,
                       default=list(IMAGE_KINDS),
                       help='realistic images, comma separated (default '
                            '%s)' % ','.join(IMAGE_KINDS))
    group.add_argument('--realistic-cases', type=_r_cases,
                       default=list(R_CASES),
                       help='cases on them (default %s)' % ','.join(R_CASES))
    group.add_argument('--deflate-levels', type=_levels, default=[],
                       help='also run ours at these [vcdriver] '
                            'image_deflate_level on the realistic images, '
                            'e.g. 0,1,6 (default: none)')


def realistic_config(args):
    """The Realistic of the command line, or None (--no-realistic,
    --only-sweep); ValueError if its sizes make no layout."""
    if not args.realistic or args.only_sweep:
        return None
    return Realistic(virtual=args.realistic_virtual_gib,
                     data=args.realistic_data_gib,
                     incompressible=args.incompressible_gib,
                     images=tuple(args.images),
                     cases=tuple(args.realistic_cases),
                     levels=tuple(args.deflate_levels)).check()
