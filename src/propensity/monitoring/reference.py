"""The reference profile: what the training window looked like, sealed into the bundle as ``reference.json``.

Built at training from the test window (the newest labelled snapshots, scored out of
sample, so the score distribution is the one scoring will see, not the optimistic one
of the rows the model was fitted on). It holds, per feature:

- numbers: the share missing, the reference's standard deviation, 100 quantiles at
  the mid-points ``(i + 0.5) / 100`` (the Wasserstein distance is the mean gap between
  two quantile functions) and PSI bins (the distinct deciles) with their shares;
- categories, and numbers with at most :data:`FEW_VALUES` distinct values (as Evidently
  treats them): the share of each value (missing is the value ``"(missing)"``; values
  beyond the :data:`TOP_CATEGORIES` most frequent are pooled as ``"(other)"``);

and the same numeric profile of the calibrated probability, the share of each tier
(by the thresholds) and each tier's conversion rate in the window. A few tens of kilobytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.config import TierConfig
from propensity.core.errors import BundleError
from propensity.features.spec import FeatureDef
from propensity.scoring.bundle_files import read_sealed_file

__all__ = ["FEW_VALUES", "MISSING", "OTHER", "QUANTILES", "REFERENCE_FILE", "TOP_CATEGORIES", "build_reference",
           "category_shares", "numeric_profile", "read_reference", "reference_bytes", "value_profile"]

REFERENCE_FILE = "reference.json"
REFERENCE_VERSION = 1
QUANTILES = 100
FEW_VALUES = 5  # numbers with at most this many distinct values are compared as categories (Evidently's rule)
TOP_CATEGORIES = 50
MISSING = "(missing)"
OTHER = "(other)"


def _mid_quantiles(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(values, (np.arange(QUANTILES) + 0.5) / QUANTILES)]


def numeric_profile(values: np.ndarray, bins: int = 10) -> dict:
    """Missing share, standard deviation, mid-point quantiles and PSI bins (edges, shares) of ``values``."""
    values = np.asarray(values, dtype="float64")
    present = values[~np.isnan(values)]
    n = max(len(values), 1)
    if len(present) == 0:
        return {"kind": "numeric", "rows": len(values), "missing": 1.0, "std": 0.0, "quantiles": [], "edges": [],
                "shares": []}
    edges = [float(e) for e in np.unique(np.quantile(present, np.arange(1, bins) / bins))]
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return {"kind": "numeric", "rows": len(values), "missing": float(1 - len(present) / n),
            "std": float(np.std(present)), "quantiles": _mid_quantiles(present), "edges": edges,
            "shares": [float(c / len(present)) for c in counts]}


def category_shares(values: pd.Series) -> dict[str, float]:
    """The share of each value of ``values`` (as text; missing as :data:`MISSING`)."""
    text = values.astype(object).where(values.notna(), MISSING).astype(str)
    text = text.str.replace(r"\.0$", "", regex=True) if pd.api.types.is_numeric_dtype(values) else text
    shares = text.value_counts(normalize=True, sort=True)
    return {str(k): float(v) for k, v in shares.items()}


def value_profile(values: pd.Series, kind: str, bins: int = 10) -> dict:
    """The profile of one feature's reference values (see the module docstring)."""
    if kind == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        distinct = np.unique(numbers[~np.isnan(numbers)])
        if len(distinct) > FEW_VALUES:
            return numeric_profile(numbers, bins)
        values = pd.Series(numbers)
    shares = category_shares(values)
    if len(shares) > TOP_CATEGORIES:
        top = dict(list(shares.items())[:TOP_CATEGORIES])
        top[OTHER] = float(1 - sum(top.values()))
        shares = top
    return {"kind": "categorical", "rows": len(values), "shares": shares}


def build_reference(features: pd.DataFrame, spec: list[FeatureDef], probability: np.ndarray, label: np.ndarray,
                    tiers: TierConfig, window: dict | None = None) -> dict:
    """The reference profile of the rows ``features`` (one column per spec feature) scored ``probability``."""
    p = np.asarray(probability, dtype="float64")
    y = np.asarray(label, dtype="float64")
    names = np.array([tiers.tier(float(v)) for v in p])
    tier_rows = {}
    for tier in ("SQL", "MQL", "nurture"):
        pick = names == tier
        tier_rows[tier] = {"share": float(pick.mean()) if len(p) else 0.0,
                           "conversion": float(y[pick].mean()) if pick.any() else None,
                           "predicted": float(p[pick].mean()) if pick.any() else None}
    return {
        "version": REFERENCE_VERSION,
        "rows": len(p),
        "window": window or {},
        "base_rate": float(y.mean()) if len(y) else None,
        "features": {f.name: value_profile(features[f.name], f.kind) for f in spec},
        "score": numeric_profile(p),
        "tiers": tier_rows,
    }


def reference_bytes(reference: dict) -> bytes:
    """``reference`` as the bytes of ``reference.json``."""
    return (json.dumps(reference, indent=1, allow_nan=False) + "\n").encode("utf-8")


def read_reference(bundle_dir: str | Path) -> dict:
    """The reference profile sealed into the bundle ``bundle_dir``; :class:`BundleError` when it has none."""
    data = read_sealed_file(bundle_dir, REFERENCE_FILE)
    if data is None:
        raise BundleError(f"{bundle_dir}: the bundle has no reference profile ({REFERENCE_FILE}); it was saved "
                          "without one (by an older propensity, or save_bundle without it): retrain with "
                          "`propensity train` to monitor it")
    try:
        reference = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{Path(bundle_dir) / REFERENCE_FILE}: not valid JSON ({exc})") from None
    if not isinstance(reference, dict) or reference.get("version") != REFERENCE_VERSION:
        raise BundleError(f"{Path(bundle_dir) / REFERENCE_FILE}: version: expected {REFERENCE_VERSION}")
    return reference
