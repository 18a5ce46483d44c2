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
from propensity.data.export import CrmExport, DataError

__all__ = ["scoring_cutoffs", "snapshot_dates", "training_cutoffs"]

_DAY_US = 86_400_000_000


def snapshot_dates(export: CrmExport, cutoffs: CutoffConfig, horizon_days: int) -> pd.DatetimeIndex:
    """The training snapshot dates, oldest first.

    The newest is ``floor_to_day(export.end() - horizon_days)``, so its whole label
    window lies inside the data; the others follow every ``cutoffs.every_days``
    backwards, down to the first date at or after the earliest lead's ``created_at``.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive; got {horizon_days}")
    last = (export.end() - pd.Timedelta(days=horizon_days)).floor("D")
    if len(export.leads) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[us, UTC]")
    earliest = export.leads["created_at"].min()
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
    ids = export.leads["lead_id"]
    order = np.asarray(ids.argsort(kind="stable"), dtype=np.int64)  # lead_id order (Arrow sorts, not Python)
    created = _us(export.leads["created_at"])[order]
    first_opp = _first_opportunity_us(export, ids.to_numpy(dtype=object))[order]
    max_age = cutoffs.max_lead_age_days * _DAY_US

    # Rows as integer positions into export.leads, per snapshot in lead_id order.
    parts_pos, parts_t = [], []
    dates_us = [int(t) for t in _us(pd.Series(dates))]
    for t in dates_us:
        keep = (created < t) & (created >= t - max_age) & (first_opp >= t)
        parts_pos.append(order[keep])
        parts_t.append(np.full(len(parts_pos[-1]), t, dtype=np.int64))
    pos = np.concatenate(parts_pos) if parts_pos else np.zeros(0, dtype=np.int64)
    t_col = np.concatenate(parts_t) if parts_t else np.zeros(0, dtype=np.int64)

    label = _labels_by_position(export, parts_pos, dates_us, horizon_days * _DAY_US)
    return pd.DataFrame({
        "lead_id": ids.take(pos).reset_index(drop=True),  # Arrow-backed ids: a take, no Python str per row
        "cutoff": pd.Series(_stamps(t_col)),
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
    as_of = _utc(as_of)
    t = int(_us(pd.Series([as_of]))[0])
    ids = export.leads["lead_id"]
    order = np.asarray(ids.argsort(kind="stable"), dtype=np.int64)  # lead_id order
    keep = (_us(export.leads["created_at"]) < t) & (_first_opportunity_us(export, ids.to_numpy(dtype=object)) >= t)
    pos = order[keep[order]]
    return pd.DataFrame({
        "lead_id": ids.take(pos).reset_index(drop=True),
        "cutoff": pd.Series(_stamps(np.full(len(pos), t, dtype=np.int64))),
    })


# ------------------------------------------------------------------ helpers


def _utc(ts: object) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise DataError(f"as_of: expected a timestamp, e.g. 2025-01-31T09:00:00Z; got {ts!r} ({exc})") from None
    if pd.isna(stamp):
        raise DataError("as_of: expected a timestamp; got an empty value")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _us(col: pd.Series) -> np.ndarray:
    """Microseconds since the epoch as int64 (the exact integer time axis used throughout)."""
    col = pd.Series(col)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_convert("UTC").dt.tz_localize(None)
    return col.astype("datetime64[us]").to_numpy().view(np.int64)


def _stamps(us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")


def _first_opportunity_us(export: CrmExport, lead_ids: np.ndarray) -> np.ndarray:
    """Per lead, the earliest opportunity ``created_at`` in µs (int64 max when none)."""
    out = np.full(len(lead_ids), np.iinfo(np.int64).max, dtype=np.int64)
    opps = export.opportunities
    opps = opps[opps["created_at"].notna()]
    if len(opps) == 0 or len(lead_ids) == 0:
        return out
    first = opps.groupby("lead_id", sort=False)["created_at"].min()
    pos = pd.Index(lead_ids).get_indexer(first.index)
    found = pos >= 0
    out[pos[found]] = _us(first)[found]
    return out


def _labels_by_position(export: CrmExport, parts_pos: list[np.ndarray], dates_us: list[int],
                        horizon_us: int) -> np.ndarray:
    """Labels of the rows ``concat(parts_pos)``, part ``k`` being snapshot ``dates_us[k]``.

    A row (lead, T) is 1 when the lead has a ``closed_won`` opportunity with
    ``T <= closed_at < T + horizon``. Per snapshot, the few won leads are looked up
    among that snapshot's rows by their lead position, never by string.
    """
    n = sum(len(p) for p in parts_pos)
    label = np.zeros(n, dtype=np.int8)
    opps = export.opportunities
    won = opps[(opps["stage"] == "closed_won") & opps["closed_at"].notna()]
    if len(won) == 0 or n == 0:
        return label
    won_pos = pd.Index(export.leads["lead_id"].to_numpy(dtype=object)).get_indexer(
        won["lead_id"].to_numpy(dtype=object))
    closed = _us(won["closed_at"])
    closed, won_pos = closed[won_pos >= 0], won_pos[won_pos >= 0]
    offset = 0
    for part, t in zip(parts_pos, dates_us, strict=True):
        hit = (closed >= t) & (closed < t + horizon_us)
        if hit.any() and len(part):
            sorter = np.argsort(part, kind="stable")
            wanted = won_pos[hit]
            at = np.searchsorted(part, wanted, sorter=sorter)
            at = np.minimum(at, len(part) - 1)
            found = part[sorter[at]] == wanted
            label[offset + sorter[at[found]]] = 1
        offset += len(part)
    return label
