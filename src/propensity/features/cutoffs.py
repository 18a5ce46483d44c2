"""Cutoffs ("as of" times) and labels: which (lead, time) rows exist and what happened next.

A cutoff ``T`` is always explicit data. Features for a row see only what was known
strictly before ``T`` (see :func:`propensity.features.pipeline.build_features`);
the label looks at what happened from ``T`` on.

Training rows are snapshots of the open leads taken every ``every_days``, counted
back from the last day whose label horizon has fully elapsed by the end of the
export. A lead stops having rows once it becomes an opportunity: what happens to
an opportunity is the outcome, never a feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.config import CutoffConfig
from propensity.core.ids import arrow_text, id_positions, remember_positions
from propensity.core.times import DAY_US, as_of_utc, from_us, to_us
from propensity.data.export import CrmExport

__all__ = ["scoring_cutoffs", "snapshot_dates", "snapshot_dates_between", "training_cutoffs"]


def snapshot_dates(export: CrmExport, cutoffs: CutoffConfig, horizon_days: int) -> pd.DatetimeIndex:
    """The training snapshot dates, oldest first.

    The newest is ``floor_to_day(export.end() - horizon_days)``, so its whole label
    window lies inside the data; the others follow every ``cutoffs.every_days``
    backwards, down to the first date at or after the earliest lead's ``created_at``.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive; got {horizon_days}")
    if len(export.leads) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[us, UTC]")
    return snapshot_dates_between(export.end(), export.leads["created_at"].min(), cutoffs, horizon_days)


def snapshot_dates_between(end: pd.Timestamp, earliest: pd.Timestamp, cutoffs: CutoffConfig,
                           horizon_days: int) -> pd.DatetimeIndex:
    """:func:`snapshot_dates` from the end of the data and the earliest lead's ``created_at`` (for other engines)."""
    last = (end - pd.Timedelta(days=horizon_days)).floor("D")
    n = 0 if last < earliest else int((last - earliest) // pd.Timedelta(days=cutoffs.every_days)) + 1
    dates = [last - pd.Timedelta(days=cutoffs.every_days * k) for k in range(n)]
    return pd.DatetimeIndex(sorted(dates), dtype="datetime64[us, UTC]")


def training_cutoffs(export: CrmExport, cutoffs: CutoffConfig, horizon_days: int) -> pd.DataFrame:
    """Labelled (lead, cutoff) rows for training.

    A lead has a row at snapshot ``T`` (see :func:`snapshot_dates`) when
    ``T - max_lead_age_days <= created_at < T`` and it has no opportunity with
    ``created_at < T``: rows stop when the lead converts to pipeline.

    ``label`` is 1 when the lead has a ``closed_won`` opportunity with
    ``T <= closed_at < T + horizon_days``, else 0. Snapshots whose horizon has not
    elapsed by ``export.end()`` are never produced, so an open question is never
    counted as a negative.

    Returns
    -------
    DataFrame with columns ``lead_id`` (str), ``cutoff`` (datetime64[us, UTC]) and
    ``label`` (int8), sorted by cutoff then lead_id, index 0..n-1.
    """
    dates = snapshot_dates(export, cutoffs, horizon_days)
    dates_us = to_us(pd.Series(dates))
    ids = export.leads["lead_id"]
    # Everything below works on integer "ranks": a lead's place in lead_id order.
    order = _id_order(ids)  # None: the leads are already in lead_id order (rank = position)
    created = to_us(export.leads["created_at"])
    opp_pos = id_positions(export.opportunities["lead_id"], ids)  # each opportunity's lead (-1: none)
    first_opp = _first_opportunity_us(export, opp_pos)
    if order is not None:
        created, first_opp = created[order], first_opp[order]
    max_age = cutoffs.max_lead_age_days * DAY_US

    # Per snapshot, its rows' ranks (ascending: lead_id order).
    parts = [np.flatnonzero((created < t) & (created >= t - max_age) & (first_opp >= t)) for t in dates_us]
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    ranks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    parts = np.split(ranks, np.cumsum(counts)[:-1]) if parts else []  # views: no second copy kept

    label = np.zeros(len(ranks), dtype=np.int8)
    won = (export.opportunities["stage"] == "closed_won").to_numpy(dtype=bool, na_value=False) & \
        export.opportunities["closed_at"].notna().to_numpy(dtype=bool) & (opp_pos >= 0)
    if won.any() and len(ranks):
        closed = to_us(export.opportunities["closed_at"][won])
        won_rank = opp_pos[won] if order is None else _inverse(order)[opp_pos[won]]
        by_rank = np.argsort(won_rank, kind="stable")  # sorted needles: cache-friendly binary searches
        won_rank, closed = won_rank[by_rank], closed[by_rank]
        # Snapshot k sees the opportunity when dates[k] <= closed < dates[k] + horizon.
        first_k = np.searchsorted(dates_us, closed - horizon_days * DAY_US, side="right")
        end_k = np.searchsorted(dates_us, closed, side="right")
        offset = np.cumsum(counts) - counts  # where each snapshot's rows start
        for k, part in enumerate(parts):  # the won leads among the snapshot's rows, by binary search
            wanted = won_rank[(first_k <= k) & (k < end_k)]
            if len(wanted) and len(part):
                at = np.minimum(np.searchsorted(part, wanted), len(part) - 1)
                label[offset[k] + at[part[at] == wanted]] = 1

    pos = ranks if order is None else order[ranks]
    lead_id = _take_ids(ids, pos)
    remember_positions(lead_id, ids, pos)  # build_features need not match these ids again
    return pd.DataFrame({
        "lead_id": lead_id,
        "cutoff": pd.Series(from_us(np.repeat(dates_us, counts))),
        "label": label,
    })


def scoring_cutoffs(export: CrmExport, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """(lead, cutoff) rows for scoring every open lead as of one time.

    Every lead created before ``as_of`` that has no opportunity created before
    ``as_of`` gets one row with ``cutoff = as_of``. ``as_of`` defaults to
    ``export.end() + 1 µs`` so that the latest event in the export counts (features
    see events strictly before the cutoff). A naive ``as_of`` is taken as UTC.

    Returns
    -------
    DataFrame with columns ``lead_id`` (str) and ``cutoff`` (datetime64[us, UTC]),
    ordered by lead_id, index 0..n-1.
    """
    if as_of is None:
        as_of = export.end() + pd.Timedelta(microseconds=1)
    as_of = as_of_utc(as_of)
    t = int(to_us(pd.Series([as_of]))[0])
    ids = export.leads["lead_id"]
    first_opp = _first_opportunity_us(export, id_positions(export.opportunities["lead_id"], ids))
    keep = (to_us(export.leads["created_at"]) < t) & (first_opp >= t)
    order = _id_order(ids)
    pos = np.flatnonzero(keep) if order is None else order[keep[order]]
    lead_id = _take_ids(ids, pos)
    remember_positions(lead_id, ids, pos)  # build_features need not match these ids again
    return pd.DataFrame({
        "lead_id": lead_id,
        "cutoff": pd.Series(from_us(np.full(len(pos), t, dtype=np.int64))),
    })


# ------------------------------------------------------------------ helpers


def _first_opportunity_us(export: CrmExport, opp_pos: np.ndarray) -> np.ndarray:
    """Per lead (position in ``export.leads``), the earliest opportunity ``created_at`` in µs (int64 max when none).

    ``opp_pos`` is each opportunity's lead position (-1: not a lead of the export).
    """
    out = np.full(len(export.leads), np.iinfo(np.int64).max, dtype=np.int64)
    created = export.opportunities["created_at"]
    use = created.notna().to_numpy(dtype=bool) & (opp_pos >= 0)
    if use.any():
        np.minimum.at(out, opp_pos[use], to_us(created[use]))
    return out


def _inverse(order: np.ndarray) -> np.ndarray:
    inv = np.empty(len(order), dtype=np.int64)
    inv[order] = np.arange(len(order), dtype=np.int64)
    return inv


def _id_order(ids: pd.Series) -> np.ndarray | None:
    """Positions of the (unique) ids in sorted order; None when they already are (the usual export)."""
    arr = arrow_text(ids) if len(ids) > 1 else None
    if arr is not None and arr.null_count == 0:
        import pyarrow.compute as pc

        if pc.all(pc.less(arr[:-1], arr[1:])).as_py():  # bytewise UTF-8 = code point order, as sorting uses
            return None
        return np.asarray(pc.sort_indices(arr), dtype=np.int64)
    order = np.asarray(ids.argsort(kind="stable"), dtype=np.int64)
    return None if (order == np.arange(len(order))).all() else order


def _take_ids(ids: pd.Series, pos: np.ndarray) -> pd.Series:
    """``ids.take(pos)`` with index 0..n-1; Arrow-backed str ids are taken in Arrow (no Python str per row)."""
    if isinstance(ids.dtype, pd.StringDtype) and ids.dtype.storage == "pyarrow":
        try:
            import pyarrow as pa

            return pd.Series(pa.array(ids.array).take(pa.array(pos, type=pa.int64())), dtype=ids.dtype)
        except (ImportError, TypeError, ValueError):
            pass
    return ids.take(pos).reset_index(drop=True)
