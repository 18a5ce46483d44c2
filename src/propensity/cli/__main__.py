"""``python -m propensity.cli``: the command in this process (the supervisor's child, or a direct call)."""

import sys

from propensity.cli.app import command_environment, main

command_environment(sys.argv[1:])  # before NumPy and pyarrow are loaded
sys.exit(main())
