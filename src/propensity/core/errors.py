"""The errors a user can cause: one base class, so the command line catches them all as one line.

Each is also a ``ValueError`` (a ``RuntimeError`` for tracking), as it was before
the base class existed, so callers that catch those keep working.
"""

from __future__ import annotations

__all__ = ["BundleError", "ConfigError", "DataError", "OutputError", "PropensityError", "TrackingError"]


class PropensityError(Exception):
    """Something the user can fix: the message names the file, the field and what was expected."""


class DataError(PropensityError, ValueError):
    """Input data is missing or malformed; the message names the file and column."""


class ConfigError(PropensityError, ValueError):
    """A configuration file is missing, unreadable or invalid; the message names it."""


class BundleError(PropensityError, ValueError):
    """A model bundle is missing, damaged, invalid or from an incompatible version."""


class OutputError(PropensityError, ValueError):
    """An output path that must not be replaced or cannot be written; the message names it."""


class TrackingError(PropensityError, RuntimeError):
    """The tracking server or model registry cannot be used; the message says why."""
