"""``python -m tools.bench.image_transfer worker SPEC_JSON``: one case in
this fresh process (tools/bench/worker.py starts it)."""

import sys

from tools.bench.image_transfer import main

if __name__ == '__main__':
    sys.exit(main())
