"""A flat table as the model's input: one float64 column per schema feature, the one transform for
training and scoring.

Per input column kind: ``numeric`` (text coerced; each listed sentinel becomes
missing plus a 0/1 flag column ``name==value``), ``boolean`` (yes/no, true/false,
1/0 → 1/0), ``categorical`` (category codes; a value unseen in training goes to
``__other__`` when training had rare values, else missing), ``date`` (days since
1970, month, day of week), ``text`` (free text: a 0/1 column ``name__has_token``
per token listed in the schema, then ``name__tokens``, the value's token count;
tokens not listed are ignored). Missing values stay NaN (LightGBM's own
missing-value handling), and so do values the kind cannot read (text in a numeric
column, ``inf``, ...): :func:`checked_table_matrix` names them
(:mod:`propensity.tabular.values`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.tabular.schema import TableSchema
from propensity.tabular.values import Unreadable, read_column, text_features

__all__ = ["check_table_columns", "checked_table_matrix", "table_matrix"]


def table_matrix(df: pd.DataFrame, schema: TableSchema) -> np.ndarray:
    """The model matrix (float64, one column per ``schema.features``) of a flat table (see the module docstring)."""
    return checked_table_matrix(df, schema)[0]


def checked_table_matrix(df: pd.DataFrame, schema: TableSchema) -> tuple[np.ndarray, list[Unreadable]]:
    """:func:`table_matrix` and, per column that has any, the present values its kind could not read.

    See :mod:`propensity.tabular.values`: each such value is missing in the
    matrix, and is listed here (rows and raw values) to be counted and named.
    """
    cols: list[np.ndarray] = []
    found: list[Unreadable] = []
    for c in schema.columns:
        s = df[c.name]
        if c.kind == "text":
            cols += text_features(s, c.tokens or [])
            continue
        v, bad = read_column(s, c)
        if bad.any():
            rows = np.flatnonzero(bad)
            found.append(Unreadable(c.name, c.kind, rows, s.to_numpy(dtype=object)[rows]))
        if c.kind == "numeric":
            flags = []
            for sentinel in c.sentinels or []:
                hit = v == sentinel
                flags.append(np.where(np.isnan(v), np.nan, hit.astype(float)))
                v = np.where(hit, np.nan, v)
            cols += [v, *flags]
        elif c.kind == "date":
            days = (v - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400.0
            cols += [days.to_numpy(dtype=np.float64, na_value=np.nan),
                     v.dt.month.to_numpy(dtype=np.float64, na_value=np.nan),
                     v.dt.day_of_week.to_numpy(dtype=np.float64, na_value=np.nan)]
        else:
            cols.append(v)
    if not cols:
        return np.empty((len(df), 0)), found
    return np.column_stack(cols), found


def check_table_columns(df: pd.DataFrame, schema: TableSchema, source: str = "the table") -> None:
    """Refuse a table whose columns differ from the training table's (the target may be present or not)."""
    expected = list(schema.input_columns)
    have = [str(c) for c in df.columns if str(c) != schema.target]
    missing = [c for c in expected if c not in have]
    extra = [c for c in have if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing[:8]))}")
        if extra:
            parts.append(f"unexpected {', '.join(map(repr, extra[:8]))}")
        raise ValueError(f"{source}: columns do not match the model's ({'; '.join(parts)}); expected the training "
                         f"table's columns minus the target {schema.target!r}")
