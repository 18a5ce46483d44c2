"""Feature names: the one place that spells them.

fit family (one ICP criterion ``c``): ``fit_<c>`` (match flag), ``fit_<c>_value``
(raw value); engagement family (one signal ``s``, windows ``W``):
``eng_<s>_<W>d`` (events in the window), ``eng_<s>_days_since``,
``eng_<s>_decay``, ``eng_active_days_<W>d`` (longest window only),
``eng_days_since_any``; and ``lead_age_days``. ``features/spec.py`` documents
what each means.
"""

from __future__ import annotations

import re

__all__ = ["DAYS_SINCE_ANY", "LEAD_AGE", "active_days", "decay", "days_since", "events_in_window", "fit_match",
           "fit_value", "window_days"]

DAYS_SINCE_ANY = "eng_days_since_any"
LEAD_AGE = "lead_age_days"


def fit_match(criterion: str) -> str:
    return f"fit_{criterion}"


def fit_value(criterion: str) -> str:
    return f"fit_{criterion}_value"


def events_in_window(signal: str, days: int) -> str:
    return f"eng_{signal}_{days}d"


def days_since(signal: str) -> str:
    return f"eng_{signal}_days_since"


def decay(signal: str) -> str:
    return f"eng_{signal}_decay"


def active_days(days: int) -> str:
    return f"eng_active_days_{days}d"


def window_days(name: str) -> int | None:
    """The window ``W`` of a windowed name (:func:`events_in_window`, :func:`active_days`); None for any other."""
    found = _WINDOWED.fullmatch(name)
    return int(found.group(1)) if found else None


_WINDOWED = re.compile(r"eng_.+_(\d+)d")
