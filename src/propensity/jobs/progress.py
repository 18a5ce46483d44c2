"""How a job tells whoever runs it what it is doing: the base class says nothing (library use).

The command line passes a subclass that draws a progress bar on a terminal and
writes plain lines otherwise; a notebook or a scheduler can pass its own.
"""

from __future__ import annotations

__all__ = ["Progress"]


class Progress:
    """Receives a job's progress; every method does nothing here."""

    def plan(self, steps: int) -> None:
        """The job will report ``steps`` named steps next (then :meth:`finish`)."""

    def step(self, message: str) -> None:
        """The job starts the named step ``message``."""

    def count(self, done: int, total: int | None) -> None:
        """``done`` of ``total`` items (leads) are finished; ``total`` is None while it is not known yet."""

    def finish(self) -> None:
        """The planned steps or the counted items are over (also after a failure)."""
