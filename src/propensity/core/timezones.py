"""Whether a timestamp says its time zone: the one rule for a CRM export and for one lead.

No zone is ever assumed for data: ``2025-01-31 09:00:00`` could be UTC or the CRM
user's local time, and a guess shifts every event by hours.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["ZONE", "has_zone"]

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
