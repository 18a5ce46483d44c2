"""The crash log of a supervised command: what it is doing now, and its Python stack if it dies of a signal.

The parent (:mod:`propensity.cli.supervisor`) names the log in ``PROPENSITY_CRASH_LOG``;
the child opens it with :func:`start_crash_log` and records each step with
:func:`step`. Outside a supervised child both do nothing.
"""

from __future__ import annotations

import faulthandler
import os
from typing import IO

__all__ = ["CRASH_LOG_ENV", "STEP_PREFIX", "start_crash_log", "step"]

CRASH_LOG_ENV = "PROPENSITY_CRASH_LOG"
STEP_PREFIX = "step: "
_log: IO[str] | None = None


def start_crash_log() -> None:
    """In the child: open the crash log named by the parent and dump the stack there on a fatal signal."""
    global _log
    path = os.environ.pop(CRASH_LOG_ENV, None)  # not inherited by processes this one starts
    if not path or _log is not None:
        return
    try:
        _log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    except OSError:
        return
    faulthandler.enable(file=_log, all_threads=True)


def step(message: str) -> None:
    """Record what the command is doing now, for the crash line (no-op outside a supervised child)."""
    if _log is not None:
        try:
            _log.write(f"{STEP_PREFIX}{message}\n")
            _log.flush()
        except (OSError, ValueError):
            pass
