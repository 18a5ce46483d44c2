"""Time: the one integer axis (µs since the epoch, UTC) and the one rule for reading a time.

Every time inside the package is an int64 count of microseconds since the epoch
in UTC (:data:`DAY_US` to a day). Two kinds of input, two rules:

- **data** (a CRM export's or one lead's timestamps) must say its zone: text
  ending in ``Z``/``UTC``/``+hh:mm`` or an aware datetime (:func:`has_zone`).
  ``2025-01-31 09:00:00`` could be UTC or the CRM user's local time, and a guess
  shifts every event by hours, so no zone is assumed; the readers refuse it;
- **an as-of time** a person types (``--as-of 2025-06-01``, ``as_of=``) is read as
  UTC when it has no zone (:func:`as_of_utc`). A bare number is refused in both
  cases: epoch seconds and milliseconds look alike, and pandas would read either
  as nanoseconds in 1970.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np
import pandas as pd

from propensity.core.errors import DataError

__all__ = ["DAY_US", "ZONE", "as_of_utc", "from_us", "has_zone", "stamp_us", "to_us"]

DAY_US = 86_400_000_000  # microseconds in a day

# A time of day followed by a zone: "...09:00:00Z", "...09:00:00.5+00:00", "... 09:00 UTC".
ZONE = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d*)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


def has_zone(v: object) -> bool:
    """Whether a timestamp value carries its zone: text ending in one (:data:`ZONE`), or an aware datetime.

    ``numpy.datetime64`` has no zone at all; other values (numbers, None) are not
    timestamps and have none either (callers decide what they are).
    """
    if isinstance(v, str):  # stripped only when it has to be: one lead's times are checked one by one
        return ZONE.search(v) is not None or (v[-1:].isspace() and ZONE.search(v.rstrip()) is not None)
    if isinstance(v, datetime):  # pandas.Timestamp is one
        return v.tzinfo is not None
    return False


def as_of_utc(value: object, field: str = "as_of") -> pd.Timestamp:
    """An as-of time given by a person, as a UTC ``Timestamp``; a time without a zone is UTC.

    Raises :class:`~propensity.core.errors.DataError` naming ``field`` for a bare
    number, an empty value or text that is no timestamp.
    """
    if isinstance(value, (bool, int, float, np.number)) and not (isinstance(value, float) and math.isnan(value)):
        raise DataError(f"{field}: expected an ISO-8601 timestamp with a time zone, e.g. 2025-01-31T09:00:00Z; "
                        f"got the bare number {value!r}")
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{field}: expected a timestamp, e.g. 2025-01-31T09:00:00Z; got {value!r} ({exc})") from None
    if pd.isna(t):
        raise DataError(f"{field}: expected a timestamp; got an empty value")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def to_us(col: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Datetimes (aware: converted to UTC; naive: taken as UTC wall times) as int64 µs since the epoch."""
    col = pd.Series(col)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_convert("UTC").dt.tz_localize(None)
    return col.astype("datetime64[us]").to_numpy().view(np.int64)


def from_us(us: np.ndarray) -> pd.DatetimeIndex:
    """int64 µs since the epoch as a UTC ``DatetimeIndex`` (no copy of the values' meaning, no zone pass)."""
    return pd.DatetimeIndex(np.asarray(us, dtype=np.int64).view("datetime64[us]"), dtype="datetime64[us, UTC]")


def stamp_us(t: pd.Timestamp, ceil: bool = False) -> int:
    """One ``Timestamp`` as int µs since the epoch: floored (as ``astype("datetime64[us]")``) or ceiled."""
    if t.unit == "ns":
        ns = t.value
        return -(-ns // 1000) if ceil else ns // 1000
    return int(t.as_unit("us").asm8.view(np.int64))  # seconds or ms: whole µs, and no ns overflow far from 1970
