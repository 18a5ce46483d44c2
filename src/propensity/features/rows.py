"""The rows ``build_features`` is asked for: the cutoff table checked, and each row's lead found in the export."""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.core.errors import DataError
from propensity.core.ids import FEW_IDS, few_positions, id_positions
from propensity.data.export import CrmExport

__all__ = ["check_cutoffs", "match_row_leads"]


def check_cutoffs(cutoffs: pd.DataFrame, feature_names: set[str]) -> tuple[pd.Series, pd.Series, dict]:
    """lead_id as a Series of str, cutoff as datetime64[us, UTC], extra columns (index 0..n-1).

    Raises :class:`DataError` naming the column when the table is malformed: columns
    missing or named like features, empty values, cutoffs that are numbers (epoch
    seconds, milliseconds and serial days look alike, so none is guessed) or no
    timestamps. Naive cutoffs are taken as UTC.
    """
    if not isinstance(cutoffs, pd.DataFrame):
        raise DataError(f"cutoffs: expected a DataFrame with columns lead_id, cutoff; got {type(cutoffs).__name__}")
    missing = [c for c in ("lead_id", "cutoff") if c not in cutoffs.columns]
    if missing:
        raise DataError(f"cutoffs: missing column(s) {missing}; found {list(cutoffs.columns)}")
    clash = sorted(set(cutoffs.columns) & feature_names)
    if clash:
        raise DataError(f"cutoffs: column(s) {clash} have the names of features; rename or drop them")
    if cutoffs["lead_id"].isna().any():
        raise DataError(f"cutoffs: column 'lead_id' has {int(cutoffs['lead_id'].isna().sum())} empty value(s)")
    lead_col = cutoffs["lead_id"].astype(str).reset_index(drop=True)
    t = cutoffs["cutoff"]
    if pd.api.types.is_numeric_dtype(t.dtype) or pd.api.types.is_bool_dtype(t.dtype):
        raise DataError(f"cutoffs: column 'cutoff': expected timestamps, got numbers, e.g. {t.head(3).tolist()}; "
                        "epoch seconds, milliseconds and serial days look alike, so none is guessed")
    try:
        if isinstance(t.dtype, pd.DatetimeTZDtype):
            t = t.dt.tz_convert("UTC")
        else:
            t = pd.to_datetime(t, utc=True, format="mixed") if t.dtype == object else pd.to_datetime(t, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cutoffs: column 'cutoff': expected timestamps, e.g. 2025-01-31T09:00:00Z ({exc})") from None
    if t.isna().any():
        raise DataError(f"cutoffs: column 'cutoff' has {int(t.isna().sum())} empty value(s)")
    t = t.astype("datetime64[us, UTC]").reset_index(drop=True)
    extras = {c: cutoffs[c].reset_index(drop=True) for c in cutoffs.columns if c not in ("lead_id", "cutoff")}
    return lead_col, t, extras


def match_row_leads(lead_ser: pd.Series, export: CrmExport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct lead ids, each row's index among them, each distinct lead's position in ``export.leads``).

    Few rows: :func:`_factorize` (first-seen order) and a lookup. Many: each row's
    id is matched against the export's ids once (Arrow hashing; no sort of the
    rows' strings), and the distinct leads are those positions in export order.
    Raises :class:`DataError` naming up to 3 ids (sorted) that the export lacks.
    """
    ids = export.leads["lead_id"]
    if len(lead_ser) <= FEW_IDS:
        uniq, row_lead = _factorize(lead_ser)
        lead_pos = few_positions(ids, uniq)
        missing = uniq[lead_pos < 0]
    else:
        pos = id_positions(lead_ser, ids)
        missing = np.unique(lead_ser[pos < 0].to_numpy(dtype=object)) if (pos < 0).any() else []
        if not len(missing):
            present = np.zeros(len(ids), dtype=bool)
            present[pos] = True
            lead_pos = np.flatnonzero(present)
            rank = np.cumsum(present, dtype=np.int64)
            rank -= 1
            row_lead = rank[pos]
            uniq = ids.to_numpy(dtype=object)[lead_pos] if len(lead_pos) < len(ids) else ids.to_numpy(dtype=object)
    if len(missing):
        raise DataError(f"cutoffs: {len(missing)} lead_id(s) not in the export's leads table "
                        f"({export.source}), e.g. {list(missing[:3])}")
    return uniq, row_lead, lead_pos


def _factorize(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (object array of str, first-seen order) and each value's index among them.

    For a handful of rows (one lead scored on demand), where a loop costs less than
    any vectorised call; :func:`match_row_leads` handles many.
    """
    seen: dict[str, int] = {}
    codes = np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)
    return np.array(list(seen), dtype=object), codes
