"""The ``propensity`` entry points: :func:`run` (the console script) and :func:`main` (the command itself).

Every command fails on bad input with one line on stderr naming the file and the
field, and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from propensity.cli.crashlog import CRASH_LOG_ENV, start_crash_log
from propensity.core.errors import PropensityError

__all__ = ["COMMAND_ENVIRONMENT", "FEATURES_ENVIRONMENT", "command_environment", "main", "run"]


# Memory settings of the command's process, where the user has not set them, on Linux (elsewhere the pyarrow
# wheel may lack jemalloc, and NumPy asks for no huge pages). Every command: Arrow's jemalloc pool rather than
# its default mimalloc. `features` also: NumPy without transparent huge pages (the reason of data/buffers.py,
# for every array). With both, `features` at a million leads reads its export and builds its features seconds
# faster; without huge pages `propensity demo` (mostly training) was slower (figures: docs/performance.md).
COMMAND_ENVIRONMENT = {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"} if sys.platform == "linux" else {}
FEATURES_ENVIRONMENT = COMMAND_ENVIRONMENT | {"NUMPY_MADVISE_HUGEPAGE": "0"} if sys.platform == "linux" else {}


def command_environment(argv: list[str], environ=os.environ) -> None:
    """Set the memory settings of the command ``argv`` names, where the user has not; before NumPy or pyarrow
    is loaded."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)  # after --debug, which takes no value
    settings = FEATURES_ENVIRONMENT if command == "features" else COMMAND_ENVIRONMENT
    for name, value in settings.items():
        environ.setdefault(name, value)


def run() -> int:
    """The ``propensity`` console command: :func:`main` in a child process that reports a native crash.

    See :mod:`propensity.cli.supervisor`; the child is ``python -m propensity.cli``.
    """
    if CRASH_LOG_ENV in os.environ:  # already the child (or a caller that set it): no second level
        return main()
    from propensity.cli.supervisor import run_supervised

    return run_supervised(sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments), run the command, return its exit code."""
    from propensity.cli import printing
    from propensity.cli.parser import build_parser

    start_crash_log()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.debug:
        warnings.filterwarnings("ignore", module="mlflow")
    formatwarning = warnings.formatwarning
    if not args.debug:  # "warning: <message>", without the path and source line of the call that warned
        warnings.formatwarning = printing.one_line_warning
    try:
        return args.func(args)
    except KeyboardInterrupt:
        printing.interrupted()
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, KeyError) and exc.args:
            msg = str(exc.args[0])
        elif isinstance(exc, (PropensityError, ValueError, OSError, RuntimeError)):
            msg = str(exc)
        else:
            msg = f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
        printing.error(msg)
        return 2
    finally:
        warnings.formatwarning = formatwarning
