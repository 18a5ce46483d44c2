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
    leads = export.leads.sort_values("lead_id", kind="stable")
    lead_ids = leads["lead_id"].to_numpy()
    created = _us(leads["created_at"])
    first_opp = _first_opportunity_us(export, lead_ids)
    max_age = cutoffs.max_lead_age_days * _DAY_US

    parts_lead, parts_t = [], []
    for t in _us(pd.Series(dates)):
        keep = (created < t) & (created >= t - max_age) & (first_opp >= t)
        parts_lead.append(lead_ids[keep])
        parts_t.append(np.full(int(keep.sum()), t, dtype=np.int64))
    lead_col = np.concatenate(parts_lead) if parts_lead else np.array([], dtype=object)
    t_col = np.concatenate(parts_t) if parts_t else np.array([], dtype=np.int64)

    label = _labels(export, lead_col, t_col, horizon_days * _DAY_US)
    return pd.DataFrame({
        "lead_id": pd.Series(lead_col, dtype=export.leads["lead_id"].dtype),
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
    leads = export.leads.sort_values("lead_id", kind="stable")
    lead_ids = leads["lead_id"].to_numpy()
    keep = (_us(leads["created_at"]) < t) & (_first_opportunity_us(export, lead_ids) >= t)
    n = int(keep.sum())
    return pd.DataFrame({
        "lead_id": pd.Series(lead_ids[keep], dtype=export.leads["lead_id"].dtype),
        "cutoff": pd.Series(_stamps(np.full(n, t, dtype=np.int64))),
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


def _labels(export: CrmExport, lead_col: np.ndarray, t_col: np.ndarray, horizon_us: int) -> np.ndarray:
    label = np.zeros(len(lead_col), dtype=np.int8)
    opps = export.opportunities
    won = opps[(opps["stage"] == "closed_won") & opps["closed_at"].notna()]
    if len(won) == 0 or len(lead_col) == 0:
        return label
    rows = pd.DataFrame({"row": np.arange(len(lead_col)), "lead_id": lead_col, "t": t_col})
    won = pd.DataFrame({"lead_id": won["lead_id"].to_numpy(dtype=object), "closed": _us(won["closed_at"])})
    pairs = rows.astype({"lead_id": object}).merge(won, on="lead_id", how="inner")
    hit = (pairs["closed"] >= pairs["t"]) & (pairs["closed"] < pairs["t"] + horizon_us)
    label[pairs.loc[hit, "row"].to_numpy()] = 1
    return label
