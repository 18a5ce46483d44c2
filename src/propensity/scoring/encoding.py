"""The model matrix: feature values → the float64 rows LightGBM scores, and per row what could not be used.

One path for a batch (a feature table) and for one lead (a dict of its feature
values): both become two blocks, the numeric features as float64 and the
categorical ones as objects, and :meth:`ModelEncoder.encode_blocks` applies every
rule to them at once. Getting the blocks out of a container is the only part that
depends on the input: a large table is read column by column, a few rows or one
lead's values go through plain Python, which is cheaper there than pandas.

The rules:

- a numeric feature's value is the number Python's ``float`` reads from it (a bool
  is 0 or 1); anything else (``None``, NaN, text that is no number) is missing;
- a categorical feature's value is looked up as text among the categories the model
  was trained with, and becomes the code LightGBM gives that category (the
  booster's own category order, so the matrix goes in as plain floats and LightGBM's
  pandas handling is skipped); a value never seen in training is missing;
- notes, one at most per ICP criterion and row, in criterion order: a raw numeric
  value that is not finite (``inf``) is missing, with its match flag, and noted
  ``"<display>: not a finite number, treated as unknown"``; a raw category never
  seen in training ``"<display>: '<value>' not seen in training, treated as
  unknown"``; a missing value, or a missing match when the criterion keeps no raw
  value, ``"<display>: unknown"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import cycle
from typing import Any

import numpy as np
import pandas as pd

from propensity.core.names import fit_match, fit_value
from propensity.scoring.bundle import Bundle

__all__ = ["SMALL_BATCH", "ModelEncoder", "category_codes", "to_number"]

SMALL_BATCH = 32  # up to this many rows, a table's blocks are read in plain Python: pandas costs more per call

_NOT_FINITE, _UNSEEN, _UNKNOWN = 1, 2, 3  # the note a criterion gives a row
_VALUE_RULE = (0, _UNKNOWN, 0, 0)  # a number, or a match flag: missing is unknown
_CATEGORY_RULE = (0, _UNKNOWN, 0, _UNSEEN)  # a raw category: absent is unknown, present without a code unseen


def to_number(v: object) -> float:
    """A numeric feature's value: what ``float`` reads from ``v`` (a bool as 0/1); NaN for anything else."""
    if v is None or isinstance(v, (bool, np.bool_)):
        return float(v) if v is not None else math.nan
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _numbers(values: list) -> np.ndarray:
    """:func:`to_number` of each value, as float64.

    NumPy reads a list of scalars as ``float`` does (and None as NaN) in one step;
    only when it refuses one value (text that is no number, a missing marker) is
    each value read on its own.
    """
    try:
        out = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        out = None
    if out is not None and out.ndim == 1:
        return out
    return np.fromiter(map(to_number, values), dtype=np.float64, count=len(values))


def category_codes(bundle: Bundle) -> dict[str, dict[str, float]]:
    """Per categorical feature, each category's code as LightGBM reads it.

    LightGBM maps a pandas category to its position among the categories the booster
    was trained with (``pandas_categorical``): the bundle's own categories, for
    bundles written by training. A category the bundle lists but the booster does
    not know has no code (missing), as LightGBM would treat it. A booster trained
    without pandas categories takes the bundle's order.
    """
    names = [f.name for f in bundle.spec if f.kind == "categorical"]
    trained = getattr(bundle.booster, "pandas_categorical", None) or []
    if len(trained) != len(names):
        return {n: {str(c): float(i) for i, c in enumerate(bundle.categories.get(n, []))} for n in names}
    out = {}
    for name, cats in zip(names, trained, strict=True):
        known = set(bundle.categories.get(name, []))
        out[name] = {c: float(i) for i, c in enumerate(cats) if isinstance(c, str) and c in known}
    return out


class ModelEncoder:
    """Turns a bundle's feature values into its model matrix and notes (see the module docstring).

    Built once per scorer; keeps no state between calls, so one instance is safe across threads.
    """

    def __init__(self, bundle: Bundle):
        spec = bundle.spec
        self.names = [f.name for f in spec]
        self.numeric = [f.name for f in spec if f.kind != "categorical"]
        self.categorical = [f.name for f in spec if f.kind == "categorical"]
        pos = {n: j for j, n in enumerate(self.names)}
        self._num_pos = np.array([pos[n] for n in self.numeric], dtype=np.intp)
        self._cat_pos = np.array([pos[n] for n in self.categorical], dtype=np.intp)
        codes = category_codes(bundle)
        self._codes = [codes[n] for n in self.categorical]
        # One column of the matrix per criterion tells its note: the raw value when the criterion keeps
        # one, else its match flag. Raw values of categorical features also need the category's text.
        cat_index = {n: k for k, n in enumerate(self.categorical)}
        self._display: list[str] = []
        check, numeric_raw, flag_of, cat_k, cat_cols = [], [], [], [], []
        for c in bundle.icp.criteria:
            flag, value = pos.get(fit_match(c.name)), pos.get(fit_value(c.name))
            k = len(self._display)
            if value is not None and c.raw:
                check.append(value)
                categorical = not c.numeric and fit_value(c.name) in cat_index
                numeric_raw.append(not categorical)
                if categorical:
                    cat_k.append(k)
                    cat_cols.append(cat_index[fit_value(c.name)])
            elif flag is not None:
                check.append(flag)
                numeric_raw.append(False)
            else:
                continue
            flag_of.append(-1 if flag is None or value is None or not c.raw else flag)
            self._display.append(c.display)
        self._check = np.array(check, dtype=np.intp)
        self._numeric_raw = np.array(numeric_raw, dtype=bool)
        self._flag_of = flag_of
        self._cat_k = np.array(cat_k, dtype=np.intp)
        self._cat_cols = np.array(cat_cols, dtype=np.intp)
        self._cat_col_of = dict(zip(cat_k, cat_cols, strict=True))
        # The note per criterion and state (0: known, 1: missing, 2: a raw category seen in training,
        # 3: a raw category present but never seen in training).
        self._criteria = np.arange(len(self._display))[None, :]
        self._rules = np.array([_CATEGORY_RULE if k in self._cat_col_of else _VALUE_RULE
                                for k in range(len(self._display))], dtype=np.int8).reshape(-1, 4)

    # ------------------------------------------------------------------ inputs

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[list[str]]]:
        """The model matrix of a feature table (rows in order) and, per row, its notes.

        Raises ``KeyError`` naming the missing features when ``frame`` lacks some.
        """
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise KeyError(f"feature table lacks {len(missing)} feature(s) the model needs, e.g. {missing[:5]}")
        n = len(frame)
        if n <= SMALL_BATCH:
            values = frame.to_numpy(dtype=object)
            at = frame.columns.get_indexer(self.names)
            num_at, cat_at = at[self._num_pos], at[self._cat_pos]
            numbers = _numbers(values[:, num_at].ravel().tolist()).reshape(n, len(num_at))
            return self.encode_blocks(numbers, values[:, cat_at])
        numbers = np.empty((n, len(self.numeric)), dtype=np.float64)
        for k, name in enumerate(self.numeric):
            col = frame[name]
            if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
                numbers[:, k] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                numbers[:, k] = _numbers(col.to_numpy(dtype=object).tolist())
        cats = np.empty((n, len(self.categorical)), dtype=object)
        for k, name in enumerate(self.categorical):
            cats[:, k] = frame[name].to_numpy(dtype=object)
        return self.encode_blocks(numbers, cats)

    def encode_values(self, values: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
        """One row of the model matrix (shape ``(1, n_features)``) from one lead's feature values, and its notes."""
        numbers = _numbers([values[n] for n in self.numeric]).reshape(1, -1)
        cats = np.empty((1, len(self.categorical)), dtype=object)
        cats[0, :] = [values[n] for n in self.categorical]
        m, notes = self.encode_blocks(numbers, cats)
        return m, notes[0]

    # ------------------------------------------------------------------ rules

    def encode_blocks(self, numbers: np.ndarray, cats: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        """The model matrix from the numeric block (float64, one column per numeric feature, spec order) and
        the categorical block (objects, likewise), and the notes per row."""
        n = len(numbers)
        m = np.empty((n, len(self.names)), dtype=np.float64)
        m[:, self._num_pos] = numbers
        present = pd.notna(cats)
        if self._codes:
            nan = math.nan
            codes = [c.get(str(v), nan) if ok else nan
                     for c, v, ok in zip(cycle(self._codes), cats.ravel().tolist(), present.ravel().tolist())]
            m[:, self._cat_pos] = np.array(codes, dtype=np.float64).reshape(n, len(self._codes))
        return m, self._notes(m, cats, present)

    def _notes(self, m: np.ndarray, cats: np.ndarray, present: np.ndarray) -> list[list[str]]:
        """Per row, the notes of the criteria (module docstring), in criterion order; ``m`` loses its infinities."""
        n = len(m)
        v = m[:, self._check]
        state = np.isnan(v).view(np.uint8)  # 1: missing, +2 for a raw category that is present
        if len(self._cat_k):
            state[:, self._cat_k] += present[:, self._cat_cols].view(np.uint8) * np.uint8(2)
        why = self._rules[self._criteria, state]
        if np.isinf(v).any():  # a raw number that is not finite: missing, with its match flag
            rows, ks = np.nonzero(np.isinf(v) & self._numeric_raw)
            for i, k in zip(rows.tolist(), ks.tolist(), strict=True):
                m[i, self._check[k]] = math.nan
                if self._flag_of[k] >= 0:
                    m[i, self._flag_of[k]] = math.nan
            why[rows, ks] = _NOT_FINITE
        notes: list[list[str]] = [[] for _ in range(n)]
        rows, ks = np.nonzero(why)
        for i, k, w in zip(rows.tolist(), ks.tolist(), why[rows, ks].tolist(), strict=True):
            display = self._display[k]
            if w == _UNKNOWN:
                notes[i].append(f"{display}: unknown")
            elif w == _NOT_FINITE:
                notes[i].append(f"{display}: not a finite number, treated as unknown")
            else:
                value = cats[i, self._cat_col_of[k]]
                notes[i].append(f"{display}: {value!r} not seen in training, treated as unknown")
        return notes
