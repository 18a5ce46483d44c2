"""A flat table's columns read as the model's schema says, and the values that cannot be read so.

:func:`read_column` turns one input column into the float64 values the model matrix
holds for it (see :func:`propensity.tabular.matrix.table_matrix`) and names the
present values the trained kind cannot use: text in a numeric column (``"49 yrs"``,
``"1,200"``), ``inf``, a yes/no column holding ``"maybe"``, a date column holding
``"soon"``, a category never seen in training (when training pooled no rare values
into ``__other__``). Each is missing for the model (never a category or zero) and is
counted and named: :class:`Unreadable` per column, :func:`row_notes` per row and
:func:`warning_text` for the batch. Missing values (empty, NaN, blank text) are not
unreadable: they are simply missing.

A free-text column is read as words instead (:func:`text_tokens`,
:func:`text_features`): a value holds a token or not, and tokens not seen in
training are ignored, so no text value is unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from propensity.tabular.schema import TableColumn

__all__ = ["BOOL_FALSE", "BOOL_TRUE", "EXPECTED", "TOKEN", "Unreadable", "bool_values", "dates", "read_column",
           "row_notes", "text_features", "text_tokens", "warning_text"]

BOOL_TRUE = frozenset({"1", "1.0", "yes", "y", "true", "t"})
BOOL_FALSE = frozenset({"0", "0.0", "no", "n", "false", "f"})

EXPECTED = {  # what a value of each kind must be, as the notes say it
    "numeric": "a finite number",
    "boolean": "yes/no, true/false or 1/0",
    "categorical": "a category seen in training",
    "date": "a date",
}


@dataclass(frozen=True)
class Unreadable:
    """The present values of one column that its kind cannot use: their rows (positions) and raw values."""

    column: str
    kind: str
    rows: np.ndarray
    values: np.ndarray

    def note(self, i: int) -> str:
        """The note for the ``i``-th of them."""
        v = self.values[i]
        v = v.item() if isinstance(v, np.generic) else v  # np.float64(inf) is inf to the reader
        return f"{self.column}: {v!r} is not {EXPECTED[self.kind]}, treated as missing"


def _present(s: pd.Series) -> np.ndarray:
    """Values that are there: not missing, not blank text."""
    present = s.notna().to_numpy(dtype=bool)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        blank = s.astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        present = present & ~blank
    return present


def bool_values(s: pd.Series) -> np.ndarray:
    """yes/no, true/false, 1/0 (any case, stripped) as 1.0/0.0; anything else NaN."""
    text = s.astype("string").str.strip().str.lower()
    out = np.full(len(s), np.nan)
    out[text.isin(BOOL_TRUE).fillna(False).to_numpy(dtype=bool)] = 1.0
    out[text.isin(BOOL_FALSE).fillna(False).to_numpy(dtype=bool)] = 0.0
    return out


def dates(s: pd.Series) -> pd.Series:
    """UTC timestamps (naive ones taken as UTC: a flat table's dates are days, not instants); NaT if unreadable."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.dt.tz_localize("UTC")
    return pd.to_datetime(s.astype("string"), errors="coerce", utc=True, format="mixed")


def read_column(s: pd.Series, column: TableColumn) -> tuple[np.ndarray | pd.Series, np.ndarray]:
    """(the column's values as the model reads them, mask of present values it cannot read).

    ``numeric``: float64 (text through ``pd.to_numeric``; a bool column or ``±inf``
    is unreadable); ``boolean``: 1.0/0.0; ``categorical``: the category's code, the
    ``__other__`` code for an unseen value when training pooled rare values, else
    unreadable; ``date``: UTC timestamps (a Series). Unreadable values are NaN / NaT.
    """
    kind = column.kind
    if kind == "numeric":
        if pd.api.types.is_bool_dtype(s.dtype):  # True is not a number of anything
            return np.full(len(s), np.nan), s.notna().to_numpy(dtype=bool)
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(v)
        if pd.api.types.is_numeric_dtype(s.dtype):
            bad &= ~np.isnan(v)  # NaN is missing; only ±inf is unreadable
        else:
            bad &= _present(s)
        return (np.where(bad, np.nan, v) if bad.any() else v), bad
    if kind == "boolean":
        v = bool_values(s)
        return v, np.isnan(v) & _present(s)
    if kind == "categorical":
        codes = {v: float(i) for i, v in enumerate(column.categories or [])}
        other = codes.get("__other__", np.nan)
        text = s.astype("string").str.strip()
        mapped = text.map(lambda v: codes.get(v, other), na_action="ignore")
        v = mapped.to_numpy(dtype=np.float64, na_value=np.nan)
        return v, np.isnan(v) & _present(s)
    if kind == "date":
        d = dates(s)
        return d, d.isna().to_numpy(dtype=bool) & _present(s)
    raise ValueError(f"read_column: kind {kind!r} has no reader here")


def row_notes(found: list[Unreadable], n: int) -> list[str]:
    """Per row, ``"; "``-joined notes on its unreadable values (``""`` when none), in schema column order."""
    notes: list[list[str]] = [[] for _ in range(n)]
    for u in found:
        for i, r in enumerate(u.rows.tolist()):
            notes[r].append(u.note(i))
    return ["; ".join(x) for x in notes]


def warning_text(u: Unreadable, n: int, source: str, rows: np.ndarray | None = None) -> str:
    """One line for the batch: the column, how many of ``n`` values, a sample, the rows (``rows``: the file's)."""
    at = u.rows if rows is None else rows[u.rows]
    sample = list(pd.unique(pd.Series(u.values, dtype=object).astype(str))[:3])
    return (f"{source}: column {u.column!r}: {len(u.rows):,} of {n:,} values are not {EXPECTED[u.kind]}, e.g. "
            f"{sample} (rows {at[:3].tolist()}); each is treated as missing (never as a category or zero)")


TOKEN = r"[^\W_]{2,}"  # a word: a run of letters/digits, length >= 2


def text_tokens(s: pd.Series) -> list[list[str] | None]:
    """Lower-cased word tokens (letters/digits, length ≥ 2) of each value; ``None`` for a missing value."""
    found = s.astype("string").str.lower().str.findall(TOKEN)
    return [v if isinstance(v, list) else None for v in found.astype(object)]


def text_features(s: pd.Series, tokens: list[str]) -> list[np.ndarray]:
    """A free-text column's features: 0/1 per schema token, then the token count; NaN where missing."""
    found = text_tokens(s)
    missing = np.array([t is None for t in found], dtype=bool)
    sets = [frozenset(t) if t is not None else frozenset() for t in found]
    cols = []
    for token in tokens:
        v = np.fromiter((token in d for d in sets), dtype=np.float64, count=len(sets))
        v[missing] = np.nan
        cols.append(v)
    cols.append(np.array([np.nan if t is None else float(len(t)) for t in found], dtype=np.float64))
    return cols
