"""Run the benchmarks: ``python -m tools.bench [--section NAME] ...``.

Each section prints its table; ``--json FILE`` writes every figure of the
run as one flat JSON object of name -> number (names in README.md,
"Benchmark"). The figures are reported, never asserted: this is not a test.
"""

import argparse
import os
import signal
import sys

if __package__ in (None, ''):   # python tools/bench/__main__.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from tools.bench import image_transfer  # noqa: E402
from tools.bench import inventory_refresh  # noqa: E402
from tools.bench import report  # noqa: E402
from tools.bench import soak  # noqa: E402
from tools.bench import stack_cloud  # noqa: E402

# Section name -> module with add_arguments(parser) and run(args) ->
# (figures, text).
SECTIONS = {
    image_transfer.NAME: image_transfer,
    inventory_refresh.NAME: inventory_refresh,
    soak.NAME: soak,
    stack_cloud.NAME: stack_cloud,
}


def parser():
    p = argparse.ArgumentParser(
        prog='python -m tools.bench',
        description='vcdriver benchmarks (issue 3): print a table; '
                    'optionally write every figure as flat JSON.')
    p.add_argument('--section', action='append', choices=sorted(SECTIONS),
                   help='run only this section (repeatable; default all)')
    p.add_argument('--json', metavar='FILE',
                   help='also write every figure to FILE as a flat JSON '
                        'object of name -> number')
    p.add_argument('--repeat', type=int, default=1, metavar='N',
                   help='run every case N times and report medians')
    for module in SECTIONS.values():
        module.add_arguments(p)
    return p


def _exit_on_sigterm(signum, frame):
    # Unwind, so servers stop and the network namespaces are removed.
    sys.exit(128 + signum)


def main(argv=None):
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.repeat < 1:
        print('--repeat must be at least 1', file=sys.stderr)
        return 2
    figures = {}
    for name in args.section or list(SECTIONS):
        figs, text = SECTIONS[name].run(args)
        overlap = set(figs) & set(figures)
        if overlap:
            raise RuntimeError('sections report the same figures: %s'
                               % ', '.join(sorted(overlap)))
        figures.update(figs)
        print(text, flush=True)
        print(flush=True)
    if args.json:
        report.write_json(args.json, figures)
        print('wrote %d figures to %s' % (len(figures), args.json))
    return 0


if __name__ == '__main__':
    sys.exit(main())
