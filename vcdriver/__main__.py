"""``python -m vcdriver``: the operator CLI (see vcdriver.cli)."""

import sys

from vcdriver import cli

sys.exit(cli.main())
