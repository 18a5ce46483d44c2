"""Turn a feature table into the model matrix: the spec's columns, categories fixed.

Categorical features become pandas ``category`` columns whose categories were fixed
at training time, so codes mean the same thing when scoring; a category never seen
in training becomes missing rather than an error.
"""

from __future__ import annotations

import pandas as pd

from propensity.features.spec import FeatureDef

__all__ = ["fit_categories", "to_matrix"]

MAX_CATEGORIES = 200


def fit_categories(frame: pd.DataFrame, spec: list[FeatureDef]) -> dict[str, list[str]]:
    """The categories of each categorical feature, most frequent first (capped)."""
    out: dict[str, list[str]] = {}
    for f in spec:
        if f.kind == "categorical":
            counts = frame[f.name].dropna().astype(str).value_counts()
            out[f.name] = sorted(counts.index[:MAX_CATEGORIES].tolist())
    return out


def to_matrix(frame: pd.DataFrame, spec: list[FeatureDef], categories: dict[str, list[str]]) -> pd.DataFrame:
    """The model's input: one column per feature in spec order.

    Raises ``KeyError`` naming the missing features when ``frame`` lacks some.
    """
    missing = [f.name for f in spec if f.name not in frame.columns]
    if missing:
        raise KeyError(f"feature table lacks {len(missing)} feature(s) the model needs, e.g. {missing[:5]}")
    cols = {}
    for f in spec:
        col = frame[f.name]
        if f.kind == "categorical":
            known = categories.get(f.name, [])
            allowed = set(known)
            values = [str(v) if str(v) in allowed else None for v in col.astype(object).where(col.notna(), None)]
            cols[f.name] = pd.Categorical(values, categories=known)
        else:
            cols[f.name] = pd.to_numeric(col, errors="coerce").astype("float64")
    return pd.DataFrame(cols, index=frame.index)
