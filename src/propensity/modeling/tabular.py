"""Type inference for a flat lead table: what each column is and how the model sees it.

:func:`infer_schema` looks at the training rows only and returns the JSON schema
that :func:`propensity.scoring.scorer.table_matrix` turns into the model matrix,
at training and at scoring time alike. Rules, in order, per column:

- fewer than two distinct values: dropped (constant);
- datetime dtype, or text that parses as dates: ``date`` (days, month, day of week);
- at most two distinct values that read as yes/no, true/false, 1/0: ``boolean``;
- numbers (or text that is ≥ 95 % numbers): ``numeric``; an integer column with a
  distinct value on every row, or named like an id, is dropped (id-like); a
  sentinel (999, -1, 9999, ...) that sits at the extreme of the range, far from
  the other values, on ≥ 2 % of rows is flagged: it becomes missing plus a flag;
- other text: ``categorical`` with values seen at least ``min_count`` times
  (rarer ones pooled into ``__other__``); text with a distinct value on ≥ 90 % of
  rows is dropped (id-like or free text).

:func:`leakage_warnings` names columns that look known only after the outcome.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from propensity.scoring.scorer import BOOL_FALSE, BOOL_TRUE, table_feature_names

__all__ = ["infer_schema", "leakage_warnings", "normalise_target"]

SENTINELS = (999.0, 9999.0, 99999.0, 999999.0, -1.0, -99.0, -999.0, -9999.0)
POSITIVE = frozenset({"1", "1.0", "yes", "y", "true", "t", "won", "converted", "positive", "pos"})
NEGATIVE = frozenset({"0", "0.0", "no", "n", "false", "f", "lost", "negative", "neg"})
_ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|guid|^key$|_key$|^index$|^unnamed)", re.IGNORECASE)
_LEAKY_NAME = re.compile(r"(duration|outcome|result|status|closed|close_date|won|lost|converted|conversion|"
                         r"churn|stage|response|responded|purchased|signed|paid|refund)", re.IGNORECASE)


def normalise_target(s: pd.Series, column: str, source: str) -> tuple[np.ndarray, str, np.ndarray]:
    """Map a binary target to 1/0.

    Returns ``(y, positive_value, kept)``: ``kept`` masks out rows whose target is
    missing. Raises a one-line ``ValueError`` for one class or more than two values.
    """
    kept = s.notna().to_numpy()
    text = s[kept].astype("string").str.strip().str.lower()
    values = sorted(set(text.unique()))
    if len(values) == 0:
        raise ValueError(f"{source}: target column {column!r} has no values")
    if len(values) == 1:
        raise ValueError(f"{source}: target column {column!r} has one class only ({values[0]!r}); "
                         "need both converted and not converted rows")
    if len(values) > 2:
        shown = ", ".join(map(repr, values[:6])) + (", ..." if len(values) > 6 else "")
        raise ValueError(f"{source}: target column {column!r} is not binary: {len(values)} distinct values "
                         f"({shown}); expected two, e.g. yes/no, true/false or 1/0")
    pos = [v for v in values if v in POSITIVE]
    neg = [v for v in values if v in NEGATIVE]
    if len(pos) != 1 or (neg and neg[0] == pos[0]):
        raise ValueError(f"{source}: target column {column!r} has values {values[0]!r} and {values[1]!r}; "
                         "cannot tell which is the conversion: use yes/no, true/false or 1/0")
    y = np.zeros(len(s), dtype=int)
    y[np.flatnonzero(kept)] = (text.to_numpy() == pos[0]).astype(int)
    return y, pos[0], kept


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.dropna().head(500)
    if sample.empty or sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").mean() > 0.5:
        return False
    if sample.str.contains(r"\d", regex=True).mean() < 0.9:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def _sentinels(v: np.ndarray) -> list[float]:
    v = v[~np.isnan(v)]
    if len(v) < 20:
        return []
    found = []
    lo, hi = float(v.min()), float(v.max())
    for s in SENTINELS:
        share = float(np.mean(v == s))
        if share < 0.02 or s not in (lo, hi):
            continue
        rest = v[v != s]
        if len(rest) == 0:
            continue
        # A sentinel stands apart: 999 days when real values stop near 30, -1 when real ones are ≥ 0.
        if (s > 0 and rest.max() < 0.5 * s) or (s < 0 and rest.min() >= 0):
            found.append(s)
    return found


def _column(s: pd.Series, name: str, min_count: int) -> tuple[dict | None, str]:
    """The schema entry for one column, or ``(None, reason)`` when it is dropped."""
    nonnull = s.dropna()
    n_unique = int(nonnull.nunique())
    if n_unique <= 1:
        return None, "constant (fewer than two distinct values)"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return {"name": name, "kind": "date"}, ""
    if pd.api.types.is_bool_dtype(s.dtype):
        return {"name": name, "kind": "boolean"}, ""
    numeric = pd.api.types.is_numeric_dtype(s.dtype)
    text = None if numeric else nonnull.astype("string").str.strip()
    if not numeric:
        lowered = set(text.str.lower().unique())
        if n_unique <= 2 and lowered <= (BOOL_TRUE | BOOL_FALSE) and lowered & BOOL_TRUE and lowered & BOOL_FALSE:
            return {"name": name, "kind": "boolean"}, ""
        coerced = pd.to_numeric(text, errors="coerce")
        if coerced.notna().mean() >= 0.95:
            numeric = True
        elif _looks_like_dates(text):
            return {"name": name, "kind": "date"}, ""
    if numeric:
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        known = v[~np.isnan(v)]
        integral = bool(np.all(np.mod(known, 1) == 0))
        if integral and len(known) >= 50 and (n_unique == len(known) or (_ID_NAME.search(name)
                                                                        and n_unique > 0.5 * len(known))):
            return None, "id-like (a distinct integer on every row)"
        return {"name": name, "kind": "numeric", "sentinels": _sentinels(v)}, ""
    if _ID_NAME.search(name) and n_unique > 0.5 * len(nonnull):
        return None, "id-like (named like an id, mostly distinct values)"
    if n_unique >= 0.9 * len(nonnull) and n_unique > 20:
        return None, "id-like or free text (a distinct value on nearly every row)"
    counts = text.value_counts()
    keep = counts[counts >= min_count].index[:200].tolist()
    cats = sorted(map(str, keep))
    if len(keep) < len(counts):
        cats.append("__other__")
    if len(keep) == 0:
        return None, f"high-cardinality text (no value seen {min_count} times)"
    return {"name": name, "kind": "categorical", "categories": cats}, ""


def infer_schema(df: pd.DataFrame, target: str, id_column: str | None = None, time_column: str | None = None,
                 exclude: tuple[str, ...] = (), min_count: int = 10) -> dict:
    """Infer column kinds from ``df`` (the training rows only).

    Returns the schema stored in the bundle: ``target``, ``id_column``,
    ``time_column``, ``input_columns`` (the table's columns minus the target: what
    scoring must receive), ``columns`` (kept, with kind and details), ``dropped``
    (``{column: reason}``) and ``features`` (the model matrix's column names).
    """
    columns, dropped = [], {}
    for name in df.columns:
        if name in (target, id_column, time_column):
            continue
        if name in exclude:
            dropped[name] = "excluded by --exclude"
            continue
        entry, why = _column(df[name], name, min_count)
        if entry is None:
            dropped[name] = why
        else:
            columns.append(entry)
    if not columns:
        raise ValueError("no usable feature columns: every column was dropped ("
                         + "; ".join(f"{k}: {v}" for k, v in list(dropped.items())[:5]) + ")")
    return {"target": target, "id_column": id_column, "time_column": time_column,
            "input_columns": [str(c) for c in df.columns if c != target],
            "columns": columns, "dropped": dropped, "features": table_feature_names(columns)}


def leakage_warnings(x: np.ndarray, y: np.ndarray, schema: dict, threshold: float = 0.95) -> list[str]:
    """Columns that look known only after the outcome: by name, or one feature alone ranking with AUC > threshold."""
    out = []
    for c in schema["columns"]:
        if _LEAKY_NAME.search(c["name"]):
            out.append(f"{c['name']}: the name suggests a value known only after the outcome; "
                       "if so, leave it out (--exclude)")
    for j, name in enumerate(schema["features"]):
        v = x[:, j]
        known = ~np.isnan(v)
        if known.sum() < 20 or len(set(y[known])) < 2:
            continue
        score = v[known]
        if len(np.unique(score)) <= 50:  # categorical-like: rank by each value's own conversion rate
            rates = pd.Series(y[known]).groupby(score).mean()
            score = rates.reindex(score).to_numpy()
        auc = roc_auc_score(y[known], score)
        auc = max(auc, 1 - auc)
        if auc > threshold:
            out.append(f"{name}: alone ranks the target with AUC {auc:.3f}; a value this telling is usually "
                       "recorded after the outcome")
    return out
