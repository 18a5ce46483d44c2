"""Reading a flat table (one row per lead) from a CSV or Parquet file.

Not :func:`propensity.data.export.read_table`, which reads one table of a CRM
export folder and checks it against the export's layout: a flat table has any
columns, and :mod:`propensity.tabular.inference` decides what they are.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["read_flat_table"]


def read_flat_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a one-line ``ValueError`` when it cannot be read or is empty."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".txt", ".gz"):
            df = pd.read_csv(path, sep=None, engine="python") if path.suffix.lower() == ".txt" else pd.read_csv(path)
        else:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: cannot read the table ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise ValueError(f"{path}: the file has a header but no rows")
    return df
