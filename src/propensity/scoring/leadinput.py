"""One lead as a service holds it: its rows checked, forgiving, fast; and its cutoff.

A service calls the scorer with one lead's rows (a ``LeadInput``, or a dict of
one-row DataFrames: :func:`lead_from_frames` takes the lead's rows out of those).
:func:`lead_rows` checks them field by field, as a lenient ``read_export`` would,
and returns the lead as plain values (:class:`LeadRows`: dicts, a list of activity
types and int64 µs arrays of times) together with its cutoff: the as-of time, or
the end of the lead's data. From those
:class:`propensity.features.onelead.OneLead` computes the features without any
DataFrame. :func:`lead_export` turns the same rows into a one-lead
:class:`~propensity.data.export.CrmExport` (ids as str, timestamps
``datetime64[us, UTC]``, an absent or empty ``recorded_at`` taken as
``occurred_at``) and :func:`lead_cutoffs` into its cutoff table, so the batch
path's features are the same.

What it forgives, with a note for the lead: a missing or unreadable ICP field
(scored as unknown), a missing account (every account field unknown), extra
fields (ignored), an activity that lacks a type or a readable time, belongs to
another lead, or is dated after ``as_of`` (or, with no ``as_of``, after the
current time: a clock error, not an event), or is of a type no engagement signal
lists (noted by the scorer, see :func:`propensity.features.rules.unknown_types_note`).
A value of the wrong type for a numeric ICP field (text that is not a number,
``"1,200"``, a bool: ``True`` is not a number of employees, or ``inf``) is unknown,
with one note for the field. What it refuses, with a ``ValueError`` naming the field: no
``lead_id``; no readable ``created_at``; a ``created_at`` that is a bare number
(``1735689600`` would silently be read as nanoseconds after 1970: a time must be an
ISO-8601 string with a time zone, or a datetime); with no ``as_of``, a
``created_at`` in the future (more than a day after now, the export's rule for
future timestamps: a clock or time-zone error); a timestamp without a time zone
(``created_at``, ``occurred_at`` or ``recorded_at`` written ``2025-01-31 09:00:00``,
or a naive datetime): as in a CRM export, no zone is assumed
(:mod:`propensity.core.times`). ``as_of`` is an argument, not data: it is read
once, by :func:`propensity.core.times.as_of_utc` (a naive one is UTC, as for a batch). An activity time that is a bare
number is unreadable: the activity is ignored with a note; so is one whose
``recorded_at`` is there but unreadable (as a lenient ``read_export`` drops it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import IcpConfig
from propensity.core.times import as_of_utc, has_zone
from propensity.data.export import CrmExport
from propensity.features.rules import number_note, read_number

__all__ = ["LeadRows", "NoZoneError", "is_one_lead_frames", "lead_cutoffs", "lead_export", "lead_from_frames",
           "lead_rows"]

_EMPTY_OPPS = {"opportunity_id": "object", "lead_id": "object", "created_at": "datetime64[us, UTC]",
               "closed_at": "datetime64[us, UTC]", "stage": "object"}


def _missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


FUTURE_SLACK = pd.Timedelta(days=1)  # as read_export: a time more than this after now is in the future


def _bare_number(v: object) -> bool:
    """A number where a time is expected: pandas would read 1735689600 as ns after 1970, silently."""
    return isinstance(v, (bool, int, float, np.number)) and not _missing(v)


class NoZoneError(ValueError):
    """A readable timestamp without a time zone; ``field`` and ``value`` say where (the caller names the lead)."""

    def __init__(self, field: str, value: object):
        super().__init__(field, value)
        self.field, self.value = field, value

    def message(self, lead_id: str) -> str:
        return (f"lead {lead_id!r}: {self.field} has no time zone ({self.value!r}); expected an ISO-8601 "
                "timestamp with its zone, e.g. 2025-01-31T09:00:00Z, or an aware datetime: no zone is assumed, "
                "as for a CRM export")


def _stamp(v: object, field: str = "") -> pd.Timestamp | None:
    """A UTC timestamp, or None when missing or unreadable (a bare number is unreadable).

    A readable one without a zone raises :class:`NoZoneError` naming ``field``.
    """
    if _missing(v) or _bare_number(v):
        return None
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError, OverflowError):
        return None
    if t is pd.NaT:
        return None
    if not has_zone(v):
        raise NoZoneError(field, v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _stamp_us(t: pd.Timestamp, ceil: bool = False) -> int:
    """:func:`propensity.core.times.stamp_us`, from the Timestamp's own integer.

    One lead's activity times are converted one by one, and ``Timestamp.as_unit``
    (which the core function uses) is much slower per call for the same value
    (docs/scoring-speed.md).
    """
    unit = t.unit
    if unit == "ns":
        return -(-t._value // 1000) if ceil else t._value // 1000
    return t._value * _UNIT_US[unit]


def _value_us(v: object) -> int | None:
    """One time value as int µs (UTC), None when missing or unreadable; :class:`NoZoneError` without a zone."""
    if type(v) is not pd.Timestamp:
        v = _stamp(v)
        if v is None:
            return None
    elif v is pd.NaT:
        return None
    elif v.tzinfo is None:
        raise NoZoneError("", v)
    return _stamp_us(v)


def _times_us(acts: list[dict[str, Any]], name: str, empty: list[int] | None = None) -> list[int | None]:
    """:func:`_value_us` of field ``name`` of each activity; ``empty``: what an empty value gives, per activity
    (None: as :func:`_value_us`). A time without a zone raises :class:`NoZoneError` naming ``activities[i].name``.
    """
    try:
        if empty is None:
            return [_value_us(a.get(name)) for a in acts]
        return [e if _missing(v := a.get(name)) else _value_us(v) for a, e in zip(acts, empty, strict=True)]
    except NoZoneError as exc:  # which one: found again only now, so the usual call builds no field names
        i = next(i for i, a in enumerate(acts) if a.get(name) is exc.value)
        raise NoZoneError(f"activities[{i}].{name}", exc.value) from None


def _us(stamps: list[pd.Timestamp]) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(stamps).as_unit("us"))


def _series_us(us: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]")).dt.tz_localize("UTC")


def _times(acts: pd.DataFrame, col: str, n: int) -> pd.Series:
    """A column as datetime64[us, UTC]; missing or unreadable values become NaT."""
    if col not in acts.columns:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    c = acts[col].reset_index(drop=True)
    if isinstance(c.dtype, pd.DatetimeTZDtype):
        return c.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(c.dtype):
        if c.notna().any():
            raise NoZoneError(f"activities column '{col}'", c.dropna().iloc[0])
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    if pd.api.types.is_numeric_dtype(c.dtype) or pd.api.types.is_bool_dtype(c.dtype):  # bare numbers: unreadable
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    values = c.tolist()
    bare = np.fromiter((_bare_number(v) for v in values), dtype=bool, count=len(c))
    if bare.any():
        c = c.where(~bare, None)
    for v in values:  # a readable time without a zone is refused, as read_export refuses it
        if not _missing(v) and not _bare_number(v) and not has_zone(v):
            _stamp(v, f"activities column '{col}'")  # raises NoZoneError when readable
    return pd.to_datetime(c, utc=True, errors="coerce", format="mixed").astype("datetime64[us, UTC]")


_NAT = np.iinfo(np.int64).min  # NaT as int64


@dataclass(frozen=True)
class LeadRows:
    """One lead's checked rows as plain values, and its cutoff: what :func:`lead_export` puts in frames.

    ``lead`` has ``lead_id`` and ``account_id`` as str and ``created_at`` as a UTC
    Timestamp; ``account`` is None when there is no account row. ``types``, ``occ``
    and ``rec`` are the kept activities (type as str, occurred and recorded times
    as int64 µs since the epoch; ``rec`` defaults to ``occ``), in input order.
    ``cutoff`` is the time the lead is scored at, in µs: the as-of time (floored),
    or without one the end of the lead's data plus 1 µs, as ``scoring_cutoffs``
    puts it for any export; ``scorable`` says the lead was created before it (else
    it has no cutoff and is not scored).
    """

    lead_id: str
    lead: dict[str, Any]
    account: dict[str, Any] | None
    created: int  # µs, floored like the export's datetime64[us] column
    types: list[str]
    occ: np.ndarray
    rec: np.ndarray
    notes: list[str]
    cutoff: int
    scorable: bool

    def end(self) -> int:
        """The end of the data in µs: what ``CrmExport.end()`` gives for the one-lead export."""
        return max(self.created, int(self.occ.max())) if len(self.occ) else self.created


def lead_rows(lead: dict[str, Any], account: dict[str, Any] | None,
              activities: list[dict[str, Any]] | pd.DataFrame,
              as_of: pd.Timestamp | None, icp: IcpConfig | None = None) -> LeadRows:
    """The lead's checked rows, the notes on what was left out or unknown, and its cutoff.

    ``as_of``: the as-of time as :func:`~propensity.core.times.as_of_utc` reads it
    (anything else is read so first), or None for the end of the lead's data.
    Raises ``ValueError`` naming the field when the lead cannot be scored at all.
    """
    if as_of is not None and not isinstance(as_of, pd.Timestamp):
        as_of = as_of_utc(as_of)
    notes: list[str] = []
    lead = dict(lead)
    account = dict(account or {})
    lead_id = lead.get("lead_id")
    if _missing(lead_id):
        raise ValueError("lead: field 'lead_id' is missing or empty")
    lead_id = str(lead_id)
    raw_created = lead.get("created_at")
    if _bare_number(raw_created):
        raise ValueError(f"lead {lead_id!r}: field 'created_at' is a bare number ({raw_created!r}); expected an "
                         "ISO-8601 timestamp with a time zone, e.g. 2025-01-31T09:00:00Z (a number's unit, "
                         "seconds or nanoseconds, would be a guess)")
    try:
        created = _stamp(raw_created, "field 'created_at'")
    except NoZoneError as exc:
        raise ValueError(exc.message(lead_id)) from None
    if created is None:
        raise ValueError(f"lead {lead_id!r}: field 'created_at' is missing or not a timestamp "
                         f"(got {raw_created!r}; expected e.g. 2025-01-31T09:00:00Z)")
    now = pd.Timestamp.now(tz="UTC")
    if as_of is None and created > now + FUTURE_SLACK:
        raise ValueError(f"lead {lead_id!r}: created_at {created.isoformat()} is in the future (now is "
                         f"{now:%Y-%m-%d %H:%M} UTC); check the CRM's clock and time zone, or pass as_of")
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
            if c.numeric and not _missing(v):
                why = read_number(v)[1]
                if why is not None:  # unknown for the features too (so no second note from the scorer)
                    notes.append(number_note(c.display, v, why))
                    row[c.column] = None

    # an event at or after ``limit`` is late: occ >= limit, exactly, in µs (limit ceiled)
    limit_us = _stamp_us(now if as_of is None else as_of, ceil=True)
    try:
        if isinstance(activities, pd.DataFrame):
            kind, occ, rec, ids = _frame_columns(activities)
        else:
            kind, occ, rec, ids = _dict_columns(activities)
    except NoZoneError as exc:
        raise ValueError(exc.message(lead_id)) from None
    n = len(kind)
    no_type = np.array([_missing(v) for v in kind], dtype=bool)
    no_time = (occ == _NAT) | (rec == _NAT)
    other = np.zeros(n, dtype=bool)
    if ids is not None:
        other = np.array([not _missing(v) and str(v) != lead_id for v in ids], dtype=bool)
    late = (occ >= limit_us) & ~no_time
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
    if drop.any():
        keep = np.flatnonzero(~drop)
        types = [str(kind[i]) for i in keep.tolist()]
        occ, rec = occ[keep], rec[keep]
    else:
        types = [str(v) for v in kind]
    created_us = _stamp_us(created)
    if as_of is None:  # the end of the data + 1 µs, as for any export
        end = max(created_us, int(occ.max())) if len(occ) else created_us
        cutoff = ceiled = end + 1
    else:
        cutoff, ceiled = _stamp_us(as_of), limit_us
    return LeadRows(lead_id=lead_id, lead=lead, account=account or None, created=created_us, types=types, occ=occ,
                    rec=rec, notes=notes, cutoff=cutoff, scorable=created_us < ceiled)


def _dict_columns(activities: list[dict[str, Any]]) -> tuple[list, np.ndarray, np.ndarray, list | None]:
    """(types, occurred µs, recorded µs, lead ids or None) of activity dicts; NaT as ``_NAT``."""
    acts = list(activities)
    n = len(acts)
    kind = [a.get("activity_type") for a in acts]
    occ = np.fromiter((_NAT if v is None else v for v in _times_us(acts, "occurred_at")), dtype=np.int64, count=n)
    # As read_export: an empty recorded_at is "recorded when it occurred"; one that is there but no
    # timestamp (text, a bare number) leaves the activity without a readable time.
    rec = np.fromiter((_NAT if v is None else v for v in _times_us(acts, "recorded_at", occ.tolist())),
                      dtype=np.int64, count=n)
    ids = [a.get("lead_id") for a in acts] if any("lead_id" in a for a in acts) else None
    return kind, occ, rec, ids


def _frame_columns(acts: pd.DataFrame) -> tuple[list, np.ndarray, np.ndarray, np.ndarray | None]:
    """The same columns of an activities DataFrame (vectorised: pandas' own parsing)."""
    n = len(acts)
    occ = _column_us(acts, "occurred_at", n)
    if "recorded_at" in acts.columns:
        rec = _column_us(acts, "recorded_at", n)
        empty = rec == _NAT
        if empty.any() and not isinstance(acts["recorded_at"].dtype, pd.DatetimeTZDtype):  # empty or unreadable?
            empty = np.fromiter((_missing(v) for v in acts["recorded_at"].tolist()), dtype=bool, count=n)
        rec = np.where(empty, occ, rec)  # as read_export: empty = when it occurred; unreadable stays NaT
    else:
        rec = occ
    kind = acts["activity_type"].to_numpy(dtype=object).tolist() if "activity_type" in acts.columns else [None] * n
    ids = acts["lead_id"].to_numpy(dtype=object) if "lead_id" in acts.columns else None
    return kind, occ, rec, ids


def _column_us(acts: pd.DataFrame, col: str, n: int) -> np.ndarray:
    """:func:`_times` as int64 µs (NaT as ``_NAT``); a UTC-aware column is read without a copy in pandas."""
    c = acts[col] if col in acts.columns else None
    if c is not None and isinstance(c.dtype, pd.DatetimeTZDtype) and c.dtype.unit in ("s", "ms", "us", "ns"):
        v = np.asarray(c.array.asi8, dtype=np.int64)  # UTC whatever the zone; in the column's unit
        unit = c.dtype.unit
        if unit == "us":
            return v
        nat = v == _NAT
        v = v // 1000 if unit == "ns" else v * _UNIT_US[unit]  # floored, as astype("datetime64[us]")
        v[nat] = _NAT
        return v
    return np.asarray(_times(acts, col, n).array.asi8, dtype=np.int64)


def lead_export(r: LeadRows, icp: IcpConfig | None = None) -> CrmExport:
    """The one-lead export of the checked rows ``r``: the frames a batch read would give."""
    k = len(r.types)
    kept = pd.DataFrame({
        "lead_id": pd.Series([r.lead_id] * k, dtype=object),
        "activity_type": pd.Series(r.types, dtype=object),
        "occurred_at": _series_us(r.occ),
        "recorded_at": _series_us(r.rec),
    })
    # dtype=object: no string inference, which would change no value
    lead = dict(r.lead)
    created = lead.pop("created_at")
    leads = pd.DataFrame({k: [v] for k, v in lead.items()}, dtype=object)
    leads["created_at"] = _us([created])
    if r.account:
        accounts = pd.DataFrame({k: [v] for k, v in r.account.items()}, dtype=object)
    else:  # no account row: an empty table that still has the columns the ICP reads
        columns = ["account_id", *dict.fromkeys(c.column for c in (icp.criteria if icp else [])
                                                if c.table == "accounts")]
        accounts = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    opps = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in _EMPTY_OPPS.items()})
    return CrmExport.of_one_lead(accounts, leads, kept, opps)


def lead_cutoffs(r: LeadRows) -> pd.DataFrame:
    """The cutoff table ``scoring_cutoffs`` gives the one-lead export of ``r`` (no rows when not scorable)."""
    ids = [r.lead_id] if r.scorable else []
    return pd.DataFrame({"lead_id": pd.Series(ids, dtype=object),
                         "cutoff": _series_us(np.array([r.cutoff] * len(ids), dtype=np.int64))})


# ------------------------------------------------------------ one-row frames

def is_one_lead_frames(data: dict) -> bool:
    """Whether ``data`` is one lead as one-row DataFrames keyed like an export's tables (``leads`` one row)."""
    leads = data.get("leads")
    return (isinstance(leads, pd.DataFrame) and len(leads) == 1 and set(data) <= {"leads", "accounts", "activities"}
            and all(isinstance(data.get(k), pd.DataFrame) for k in ("accounts", "activities") if k in data))


def lead_from_frames(data: dict[str, pd.DataFrame], lead_columns: list[str] | None = None,
                     account_columns: list[str] | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any] | None, pd.DataFrame | list]:
    """(lead row, its account row or None, its activities) of one lead's one-row frames.

    ``lead_columns`` / ``account_columns``: the columns to take (those present), when
    not every column is needed: a CRM row has dozens, and pandas pays per column.
    """
    lead = _row(data["leads"], 0, lead_columns)
    acts = data.get("activities")
    account = _account_row(data.get("accounts"), lead.get("account_id"), account_columns)
    return lead, account, [] if acts is None else acts


def _account_row(df: pd.DataFrame | None, account_id: object, columns: list[str] | None = None) -> dict | None:
    """The lead's account row of a small accounts frame (its only row when ids are absent)."""
    if df is None or len(df) == 0:
        return None
    k = 0
    if "account_id" in df.columns and account_id is not None:
        wanted = str(account_id)  # str() per id: ``astype(str)``'s text, without a pandas copy
        hit = [i for i, v in enumerate(df["account_id"].to_numpy(dtype=object).tolist()) if str(v) == wanted]
        if not hit:
            return None
        k = hit[0]
    return _row(df, k, columns)


def _row(df: pd.DataFrame, k: int, columns: list[str] | None = None) -> dict:
    """Row ``k`` of ``df`` as a dict, of ``columns`` only (those present) when given.

    ``DataFrame.iat`` per wanted column costs a fraction of ``iloc[k].to_dict()``,
    which converts every column of the row.
    """
    cols = df.columns
    if columns is None or not cols.is_unique:
        return df.iloc[k].to_dict()
    at, loc = df.iat, cols.get_loc
    return {c: at[k, loc(c)] for c in columns if c in cols}
