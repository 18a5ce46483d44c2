"""One lead as a service holds it, turned into a one-lead CRM export, fast and forgiving.

A service calls the scorer with one lead's rows (a ``LeadInput`` or one-row
DataFrames). :func:`lead_export` checks them field by field and builds the
:class:`~propensity.data.export.CrmExport` directly, which costs a fraction of the
general ``CrmExport.from_frames`` validation. It yields the same tables (ids as
str, timestamps ``datetime64[us, UTC]``, ``recorded_at`` defaulting to
``occurred_at``), so features are the same as in a batch.

What it forgives, with a note for the lead: a missing or unreadable ICP field
(scored as unknown), extra fields (ignored), an activity that lacks a type or a
readable time, belongs to another lead, or is dated after ``as_of`` (or, with no
``as_of``, after the current time: a clock error, not an event). What it refuses,
with a ``ValueError`` naming the field: no ``lead_id``, no readable ``created_at``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import IcpConfig
from propensity.data.export import CrmExport

__all__ = ["lead_export"]

_EMPTY_OPPS = {"opportunity_id": "object", "lead_id": "object", "created_at": "datetime64[us, UTC]",
               "closed_at": "datetime64[us, UTC]", "stage": "object"}


def _missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _stamp(v: object) -> pd.Timestamp | None:
    """A UTC timestamp, or None when missing or unreadable."""
    if _missing(v):
        return None
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError, OverflowError):
        return None
    if t is pd.NaT:
        return None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _us(stamps: list[pd.Timestamp]) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(stamps).as_unit("us"))


def _times(acts: pd.DataFrame, col: str, n: int) -> pd.Series:
    """A column as datetime64[us, UTC]; missing or unreadable values become NaT."""
    if col not in acts.columns:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    c = acts[col].reset_index(drop=True)
    if isinstance(c.dtype, pd.DatetimeTZDtype):
        return c.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(c.dtype):
        return c.dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    return pd.to_datetime(c, utc=True, errors="coerce", format="mixed").astype("datetime64[us, UTC]")


def lead_export(lead: dict[str, Any], account: dict[str, Any] | None,
                activities: list[dict[str, Any]] | pd.DataFrame,
                as_of: object, icp: IcpConfig | None = None) -> tuple[CrmExport, list[str]]:
    """A one-lead export and the notes on what was left out or unknown.

    Raises ``ValueError`` naming the field when the lead cannot be scored at all.
    """
    notes: list[str] = []
    lead = dict(lead)
    account = dict(account or {})
    lead_id = lead.get("lead_id")
    if _missing(lead_id):
        raise ValueError("lead: field 'lead_id' is missing or empty")
    lead_id = str(lead_id)
    created = _stamp(lead.get("created_at"))
    if created is None:
        raise ValueError(f"lead {lead_id!r}: field 'created_at' is missing or not a timestamp "
                         f"(got {lead.get('created_at')!r}; expected e.g. 2025-01-31T09:00:00Z)")
    account_id = lead.get("account_id")
    if _missing(account_id):
        account_id = account.get("account_id", "__none__")
    account_id = "__none__" if _missing(account_id) else str(account_id)
    lead.update(lead_id=lead_id, account_id=account_id, created_at=created)
    if account:
        account["account_id"] = account_id
    if icp is not None:
        for c in icp.criteria:
            row = lead if c.table == "leads" else account
            if c.table == "accounts" and not account:
                continue  # no account row: every account field is unknown, noted by the scorer
            v = row.setdefault(c.column, None)
            if c.numeric and not _missing(v) and not isinstance(v, (int, float, np.number)):
                try:
                    float(v)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    notes.append(f"{c.display}: {v!r} is not a number, treated as unknown")

    limit = _stamp(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC")
    acts = activities if isinstance(activities, pd.DataFrame) else pd.DataFrame(list(activities))
    n = len(acts)
    occ = _times(acts, "occurred_at", n)
    rec = _times(acts, "recorded_at", n) if "recorded_at" in acts.columns else occ
    rec = rec.where(rec.notna(), occ)
    kind = acts["activity_type"] if "activity_type" in acts.columns else pd.Series([None] * n, dtype=object)
    kind = kind.astype(object).where(kind.notna(), None).to_numpy(dtype=object)
    no_type = np.array([_missing(v) for v in kind], dtype=bool)
    no_time = (occ.isna() | rec.isna()).to_numpy(dtype=bool)
    other = np.zeros(n, dtype=bool)
    if "lead_id" in acts.columns:
        ids = acts["lead_id"].to_numpy(dtype=object)
        other = np.array([not _missing(v) and str(v) != lead_id for v in ids], dtype=bool)
    late = (occ >= limit).to_numpy(dtype=bool) & ~no_time
    counts = {"with no type": no_type, "with no readable time": no_time & ~no_type,
              "of another lead": other & ~no_type & ~no_time}
    drop = no_type | no_time | other
    if as_of is None:  # an event after the current time is a clock error, not an event
        counts["dated in the future"] = late & ~drop
        drop |= late
    else:  # kept: the time contract leaves it out of the features anyway
        counts["after the as-of time"] = late & ~drop
    for what, mask in counts.items():
        count = int(mask.sum())
        if count:
            notes.append(f"{count} activit{'y' if count == 1 else 'ies'} {what} ignored")
    keep = ~drop
    kept = pd.DataFrame({
        "lead_id": pd.Series([lead_id] * int(keep.sum()), dtype=object),
        "activity_type": pd.Series([str(v) for v in kind[keep]], dtype=object),
        "occurred_at": occ[keep].reset_index(drop=True),
        "recorded_at": rec[keep].reset_index(drop=True),
    })

    # dtype=object: pandas' string inference costs ~0.1 ms a column and changes no value
    lead.pop("created_at")
    leads = pd.DataFrame({k: [v] for k, v in lead.items()}, dtype=object)
    leads["created_at"] = _us([created])
    accounts = pd.DataFrame({k: [v] for k, v in account.items()}, dtype=object) if account else pd.DataFrame(
        {"account_id": pd.Series([], dtype=object)})
    opps = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in _EMPTY_OPPS.items()})
    return CrmExport(accounts=accounts, leads=leads, activities=kept, opportunities=opps, source="<lead>"), notes
