"""``python -m propensity.cli``: the command in this process (the supervisor's child, or a direct call)."""

import sys

from propensity.cli.app import main, prefer_arrow_pool

prefer_arrow_pool()  # before any import of pyarrow
sys.exit(main())
