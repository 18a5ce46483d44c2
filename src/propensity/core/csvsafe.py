"""CSV that a spreadsheet shows as text and never runs as a formula.

OWASP's rule against CSV injection: a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is written with a single quote in front, which
spreadsheets take as "this cell is text". Lead ids, reasons and raw CRM values come
from outside, so every text cell (and column name) of every CSV the tool writes goes
through :func:`escape_cell`. Numbers are not touched: numeric columns stay numeric (a
negative number is not text), and a text cell that is a plain number (``-12``,
``+3.5``, ``-1e-3``) cannot be a formula, so it is written as it is. Parquet keeps the
exact values; only CSV is escaped. Lines end in CRLF, so a line break inside a value is
always quoted (see :func:`write_csv`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

__all__ = ["TRIGGERS", "escape_cell", "spreadsheet_safe", "write_csv"]

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _needs_quote(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value)


def escape_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would read as a formula; else unchanged."""
    return "'" + value if _needs_quote(value) else value


def _is_text(dtype: object) -> bool:
    return pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text cells and column names escaped; ``frame`` itself when nothing needed it."""
    out = frame
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if not _is_text(col.dtype):
            continue
        values = col.astype(object).tolist()
        if not any(_needs_quote(v) for v in values):
            continue
        if out is frame:
            out = frame.copy()
        out.isetitem(i, pd.Series([escape_cell(v) for v in values], index=frame.index, dtype=object))
    if any(_needs_quote(c) for c in frame.columns):
        out = out.set_axis([escape_cell(c) for c in frame.columns], axis=1)
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, **kwargs) -> None:
    """``frame.to_csv(path, index=False, **kwargs)`` with every text cell escaped (see the module doc).

    Lines end in CRLF (RFC 4180): the CSV writer then quotes any value holding a carriage
    return, which would otherwise end the row in a spreadsheet and let the rest of the
    value start a new cell (and so a formula).
    """
    spreadsheet_safe(frame).to_csv(path, index=False, lineterminator="\r\n", **kwargs)
