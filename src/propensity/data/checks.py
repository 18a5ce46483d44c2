"""The checks of a CRM export that need more than one table.

Errors: a timestamp in the future (after now, or after ``exported_at``, by more than
:data:`FUTURE_TOLERANCE`; an open opportunity's ``closed_at`` is exempt). Warnings,
with a count (nothing is dropped): activities or opportunities whose ``lead_id`` is
not in ``leads``, leads whose ``account_id`` is not in ``accounts`` (each naming the
ids that would match once whitespace and case are set aside), activities dated
before their lead's ``created_at``, empty ``recorded_at`` values. The activities are
checked as arrays (:class:`~propensity.data.activities.ActivityArrays`), in blocks.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from propensity.core.errors import DataError
from propensity.core.ids import id_positions, key_positions, near_matches, remember_positions
from propensity.core.times import as_of_utc, stamp_us
from propensity.data.activities import NAT_US, ActivityArrays, arrays_from_frame
from propensity.data.lenient import SetAside, set_aside_bad_rows
from propensity.data.tables import TIMESTAMPS, first_rows, plural

__all__ = ["FUTURE_TOLERANCE", "HEAVY_MIN_EVENTS", "HEAVY_SHARE", "SAMPLE_ROWS", "check_across_tables",
           "events_before_creation", "heaviest_leads", "heaviest_text", "unmatched_accounts"]

FUTURE_TOLERANCE = pd.Timedelta(days=1)  # clock skew between the CRM and this machine
SAMPLE_ROWS = 10_000  # rows of unknown ids read for a warning's sample and near matches
# One lead holding this share of all activities, and at least HEAVY_MIN_EVENTS of them, is warned about: a bot or
# an integration loop, whose counts drown its features and whose join is one long task on Spark. Ordinary leads
# hold a few hundred at most; the minimum keeps small exports, where one busy lead is a large share, quiet.
HEAVY_SHARE = 0.002
HEAVY_MIN_EVENTS = 10_000


def heaviest_leads(lead_pos: np.ndarray, lead_ids, top: int = 3) -> list[tuple[str, int]]:
    """The ``top`` leads with the most activities: (lead_id, count), most first; ``lead_pos``: each activity's lead."""
    if not len(lead_pos):
        return []
    known = lead_pos if lead_pos.min() >= 0 else lead_pos[lead_pos >= 0]  # one pass, no mask, when all are known
    counts = np.bincount(known, minlength=len(lead_ids))
    if not counts.any():
        return []
    k = min(top, len(counts))
    best = np.argpartition(-counts, k - 1)[:k]
    best = best[np.lexsort((best, -counts[best]))]
    ids = np.asarray(lead_ids, dtype=object)
    return [(str(ids[i]), int(counts[i])) for i in best if counts[i] > 0]


def heaviest_text(heavy: list[tuple[str, int]], total: int) -> str:
    """``L1 200,010 activities (52.6%), L2 435 (0.1%), ...`` for a message."""
    return ", ".join(f"{lead} {n:,}{' activities' if i == 0 else ''} ({n / max(total, 1):.1%})"
                     for i, (lead, n) in enumerate(heavy))


def check_across_tables(tables: dict[str, pd.DataFrame | None], where: dict[str, str], exported_at: object,
                        arrays: ActivityArrays | None = None, activity_ids=None, *, lenient: bool = False,
                        unreadable: dict[tuple[str, str], pd.Series] | None = None) -> tuple[ActivityArrays, SetAside]:
    """Checks that need more than one table: orphans, events before the lead, the future.

    The activities are checked as :class:`ActivityArrays`: ``arrays`` when the
    fast reader built them (then ``tables["activities"]`` may be None and
    ``activity_ids(rows)`` returns the lead_id str of those rows, for samples),
    else derived from the activities frame. ``lenient``: bad rows are first set
    aside by :func:`~propensity.data.lenient.set_aside_bad_rows` (``tables`` is
    updated in place). Returns the arrays and what was set aside.
    """
    now = pd.Timestamp.now(tz="UTC") if exported_at is None else as_of_utc(exported_at, "exported_at")
    limit = now + FUTURE_TOLERANCE
    leads, acts, opps = tables["leads"], tables["activities"], tables["opportunities"]
    if arrays is None:
        arrays = arrays_from_frame(acts, leads["lead_id"])
        activity_ids = lambda rows: acts["lead_id"].to_numpy(dtype=object)[rows]  # noqa: E731
    aside = SetAside()
    if lenient:
        arrays, aside = set_aside_bad_rows(tables, where, limit, arrays, unreadable or {})
        leads, opps = tables["leads"], tables["opportunities"]
    for name, cols in TIMESTAMPS.items():
        df = tables[name]
        for col in cols:
            if name == "activities":  # recorded_at is always there (it defaults to occurred_at)
                stamps = arrays.occ if col == "occurred_at" else arrays.rec
                limit_us = stamp_us(limit)
                if not len(stamps) or stamps.max() <= limit_us:  # one pass, no mask of every row
                    continue
                late = stamps > limit_us
                values = pd.Series(stamps[late][:3].astype("datetime64[us]")).dt.tz_localize("UTC")
            else:
                if col not in df.columns:
                    continue
                late = (df[col] > limit).to_numpy(dtype=bool)
                if name == "opportunities" and col == "closed_at":
                    late = late & (df["stage"] != "open").to_numpy(dtype=bool)
                values = df[col][late]
            if late.any():
                sample = values.head(3).astype(str).tolist()
                raise DataError(f"{where[name]}: column '{col}' has {int(late.sum())} timestamp(s) in the future "
                                f"(after {limit:%Y-%m-%d %H:%M} UTC, a day after "
                                f"{'now' if exported_at is None else 'the export'}), e.g. {sample} "
                                f"(rows {first_rows(late)}); check the export's clock and time zone")
    pos = arrays.lead
    if len(pos) and pos.min() < 0:
        orphan = pos < 0
        n_orphan = int(np.count_nonzero(orphan))
        # the ids of the first rows only: reading a whole id column for a sample can cost more than the read
        first = np.flatnonzero(orphan)[:SAMPLE_ROWS]
        ids = pd.Series(activity_ids(aside.file_rows(first)), dtype=object)
        none = " (none of the export's activities names a lead in leads)" if n_orphan == len(pos) else ""
        warnings.warn(f"{where['activities']}: {plural(n_orphan, 'activity', 'activities')} name a lead_id not "
                      f"in leads{none}, e.g. {[str(v) for v in pd.unique(ids)[:3]]} (rows "
                      f"{aside.file_rows(first_rows(orphan))}); they are ignored"
                      + _near_match_hint(ids, leads["lead_id"], "a lead",
                                         None if len(first) == n_orphan else len(first)),
                      UserWarning, stacklevel=3)
        del orphan
    heavy = heaviest_leads(pos, leads["lead_id"].to_numpy(dtype=object))
    if heavy and heavy[0][1] >= HEAVY_MIN_EVENTS and heavy[0][1] >= HEAVY_SHARE * len(pos):
        warnings.warn(f"{where['activities']}: one lead holds {heavy[0][1] / len(pos):.1%} of the activities "
                      f"(heaviest: {heaviest_text(heavy, len(pos))}): a bot or an integration loop? Its features "
                      "count every one of them; filter such leads from the export if they are not real people",
                      UserWarning, stacklevel=3)
    n_acc, text = unmatched_accounts(leads, tables["accounts"])
    if n_acc:
        warnings.warn(f"{where['leads']}: {text}", UserWarning, stacklevel=3)
    n_early, early_rows = events_before_creation(pos, arrays.occ, leads["created_at"].array.asi8)
    early_rows = aside.file_rows(early_rows)
    if n_early:
        warnings.warn(f"{where['activities']}: {n_early} activit{'y' if n_early == 1 else 'ies'} "
                      f"occurred before their lead's created_at, e.g. rows {early_rows}; kept as the lead's "
                      "history (marketing tools attribute earlier anonymous visits to a new lead)",
                      UserWarning, stacklevel=3)
    rec = arrays.rec
    if rec is not arrays.occ and len(rec) and int(rec.min()) == NAT_US:  # one pass when nothing is empty
        blank = (rec == NAT_US) & (arrays.occ != NAT_US)
        n_blank = int(np.count_nonzero(blank))
        if n_blank:
            warnings.warn(f"{where['activities']}: column 'recorded_at' has {n_blank} empty value(s), e.g. rows "
                          f"{aside.file_rows(first_rows(blank))}; each is taken as recorded when it occurred "
                          "(occurred_at), as for an export without the column: a backfilled row among them "
                          "would count before the CRM knew of it", UserWarning, stacklevel=3)
        del blank
    if len(opps):
        lost = key_positions(opps["lead_id"], leads["lead_id"]) < 0
        if lost.any():
            sample = [str(v) for v in pd.unique(opps["lead_id"][lost])[:3]]
            warnings.warn(f"{where['opportunities']}: {int(lost.sum())} opportunit"
                          f"{'y' if lost.sum() == 1 else 'ies'} name a lead_id not in leads, e.g. {sample} "
                          f"(rows {first_rows(lost)}); they label no lead"
                          + _near_match_hint(opps["lead_id"][lost], leads["lead_id"], "a lead"),
                          UserWarning, stacklevel=3)
    return arrays, aside


def unmatched_accounts(leads: pd.DataFrame, accounts: pd.DataFrame) -> tuple[int, str]:
    """How many leads name an account_id that ``accounts`` lacks, and a sentence saying so (ids, rows, near matches).

    The positions are remembered for the feature pipeline, which matches the same columns.
    """
    lead_acc, acc_ids = leads["account_id"], accounts["account_id"]
    pos = id_positions(lead_acc, acc_ids)
    remember_positions(lead_acc, acc_ids, pos)
    miss = pos < 0
    n = int(np.count_nonzero(miss))
    if not n:
        return 0, ""
    ids = lead_acc[miss]
    return n, (f"{n:,} of {len(leads):,} leads ({n / len(leads):.1%}) have an account_id that is not in accounts, "
               f"e.g. {[str(v) for v in pd.unique(ids)[:3]]} (rows {first_rows(miss)}), so their account fields "
               "(firmographics) are unknown" + _near_match_hint(ids, acc_ids, "an account"))


def _near_match_hint(unmatched: pd.Series, ids: pd.Series, what: str, first: int | None = None) -> str:
    """The sentence on ``unmatched`` ids (one per row) that equal one of ``ids`` once whitespace and case are set aside.

    ``first``: the rows are the first ``first`` of more (the count says so). Empty when none does.
    """
    codes, distinct = pd.factorize(unmatched.astype(object), use_na_sentinel=True)
    at = near_matches(np.asarray(distinct, dtype=object), ids)
    hit = at >= 0
    if not hit.any():
        return ""
    k = int(np.count_nonzero(hit[codes[codes >= 0]]))
    among = "of them" if first is None else f"of the first {first:,} of them"
    pairs = ", ".join(f"{distinct[i]!r} ~ {ids.iloc[int(at[i])]!r}" for i in np.flatnonzero(hit)[:3].tolist())
    return (f"; {k:,} {among} would match {what} once surrounding whitespace and case are set aside (e.g. "
            f"{pairs}): fix the ids in the export, nothing is matched by guess")


def events_before_creation(pos: np.ndarray, occ: np.ndarray, created: np.ndarray,
                           block: int = 1 << 20) -> tuple[int, list[int]]:
    """How many activities (of known leads) occurred before their lead's created_at, and the first 3 rows.

    ``pos``: each activity's lead position (-1: unknown lead), ``occ`` its time and
    ``created`` each lead's, in µs. Works in blocks, so that tens of millions of
    activities need a few MB of temporaries, not GBs; two at a time (NumPy releases
    the GIL on such arrays).
    """
    if not len(created):
        return 0, []

    def count_block(at: int) -> tuple[int, list[int]]:
        p = pos[at:at + block]
        early = (occ[at:at + block] < np.take(created, p, mode="clip")) & (p >= 0)  # -1 (unknown) is masked
        k = int(np.count_nonzero(early))
        return k, (np.flatnonzero(early)[:3] + at).tolist() if k else []

    starts = range(0, len(pos), block)
    if len(starts) > 1:
        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(count_block, starts))
    else:
        parts = [count_block(at) for at in starts]
    return sum(k for k, _ in parts), [r for _, rows in parts for r in rows][:3]
