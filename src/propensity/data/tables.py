"""One table of a CRM export: its file found and read, its columns checked and normalised.

The four tables, their required columns, ids and timestamps are listed here; see
:mod:`propensity.data.export` for the format and every check. Per table: a missing
required column, an empty or duplicate id, a timestamp without a time zone, a value
that is no timestamp (set aside instead in a lenient read) and an unknown
opportunity stage are errors naming the file and column; ids of one table that
differ only by surrounding whitespace or case are a warning.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.errors import DataError
from propensity.core.ids import folded_duplicates
from propensity.core.times import ZONE

__all__ = ["ID_COLUMNS", "REQUIRED", "STAGES", "TABLES", "TIMESTAMPS", "find_table", "first_rows",
           "normalise_table", "plural", "read_table", "take_rows", "text_column", "utc_column"]


REQUIRED: dict[str, list[str]] = {
    "accounts": ["account_id"],
    "leads": ["lead_id", "account_id", "created_at"],
    "activities": ["lead_id", "activity_type", "occurred_at"],
    "opportunities": ["opportunity_id", "lead_id", "created_at", "closed_at", "stage"],
}
TABLES = tuple(REQUIRED)
TIMESTAMPS: dict[str, list[str]] = {
    "accounts": [],
    "leads": ["created_at"],
    "activities": ["occurred_at", "recorded_at"],
    "opportunities": ["created_at", "closed_at"],
}
ID_COLUMNS: dict[str, list[str]] = {
    "accounts": ["account_id"],
    "leads": ["lead_id", "account_id"],
    "activities": ["lead_id"],
    "opportunities": ["opportunity_id", "lead_id"],
}
STAGES = ("open", "closed_won", "closed_lost")


def find_table(folder: Path, name: str) -> Path:
    """The table's one file; both a Parquet and a CSV file of the same table is ambiguous, so refused."""
    found = [p for p in (folder / f"{name}.parquet", folder / f"{name}.csv") if p.exists()]
    if len(found) > 1:
        raise DataError(f"{folder}: table '{name}' is there twice ({found[0].name} and {found[1].name}); "
                        "which one is the export is ambiguous: keep one and move the other away")
    if not found:
        raise DataError(f"{folder}: missing table '{name}' (expected {name}.parquet or {name}.csv)")
    return found[0]


def read_table(path: Path) -> pd.DataFrame:
    """Read one Parquet or CSV file, with a one-line error if it cannot be read."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, low_memory=False)
    except Exception as exc:  # noqa: BLE001 - pyarrow and pandas raise many types
        raise DataError(f"{path}: cannot read as {path.suffix[1:]} ({type(exc).__name__}: {exc})") from None
    raise DataError(f"{path}: unsupported file type; expected .parquet or .csv")


def normalise_table(df: pd.DataFrame, name: str, where: str, lenient: bool = False,
                    unreadable: dict[tuple[str, str], pd.Series] | None = None) -> pd.DataFrame:
    """Required columns, ids as str, timestamps as UTC; the checks of one table.

    ``lenient``: empty timestamps are no error here, and unreadable ones become NaT,
    their raw values stored in ``unreadable[(name, column)]`` (indexed by row
    position), for :func:`set_aside_bad_rows` to deal with row by row.
    """
    missing = [c for c in REQUIRED[name] if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing required column(s) {missing}; found {list(df.columns)}")
    df = df.copy()
    for col in ID_COLUMNS[name]:
        if df[col].isna().any():
            raise DataError(f"{where}: column '{col}' has {int(df[col].isna().sum())} empty id(s)")
        df[col] = text_column(df[col])
    for col in TIMESTAMPS[name]:
        if col in df.columns:
            df[col], bad = utc_column(df[col], f"{where}: column '{col}'", lenient)
            if bad is not None and unreadable is not None:
                unreadable[(name, col)] = bad
    if name == "activities":
        if "recorded_at" not in df.columns:
            df["recorded_at"] = df["occurred_at"]
        if not lenient and df["occurred_at"].isna().any():
            raise DataError(f"{where}: column 'occurred_at' has {int(df['occurred_at'].isna().sum())} empty value(s)")
        df["activity_type"] = text_column(df["activity_type"])
    if name == "leads" and not lenient and df["created_at"].isna().any():
        raise DataError(f"{where}: column 'created_at' has {int(df['created_at'].isna().sum())} empty value(s), "
                        f"e.g. rows {first_rows(df['created_at'].isna())}")
    key = {"leads": "lead_id", "accounts": "account_id", "opportunities": "opportunity_id"}.get(name)
    if key is not None and not df[key].is_unique:  # one hash pass; the rows are looked for only for the message
        dupes = df[key].duplicated(keep=False)
        if dupes.any():
            values = pd.unique(df[key][dupes])
            raise DataError(f"{where}: column '{key}' has {len(values)} duplicate id(s), e.g. "
                            f"{[str(v) for v in values[:3]]} (rows {first_rows(dupes)}); ids must be unique")
    if key is not None:
        n, groups = folded_duplicates(df[key])
        if n:
            warnings.warn(f"{where}: column '{key}' has {n:,} ids that differ from another only by surrounding "
                          f"whitespace or case, e.g. {groups}; they are read as different {name}, and a row of "
                          "another table naming one of them joins that one only", UserWarning, stacklevel=3)
    if name == "opportunities":
        df["stage"] = df["stage"].astype(str)
        bad = sorted(set(df["stage"].unique()) - set(STAGES))  # distinct values first: no 1M-item set
        if bad:
            raise DataError(f"{where}: column 'stage' has unknown values {bad[:5]}; expected one of {list(STAGES)}")
    return df


def utc_column(col: pd.Series, where: str, lenient: bool = False) -> tuple[pd.Series, pd.Series | None]:
    """Timestamps as datetime64[us, UTC]; naive ones are an error (no zone is assumed).

    Also returns, when ``lenient``, the raw values that are no timestamp at all
    (indexed by row position; they become NaT), else ``None`` (such values are an
    error naming them). Text that is a timestamp without a zone stays an error
    either way, and so does a column of numbers: epoch seconds, milliseconds and
    spreadsheet serial days look alike, so none is guessed. A bare number among
    text is a value that is no timestamp.
    """
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), None
    if pd.api.types.is_datetime64_dtype(col.dtype):
        sample = col.dropna().head(3).astype(str).tolist()
        raise DataError(f"{where}: timezone-naive timestamps, e.g. {sample}; the export must be in UTC with the "
                        "zone recorded (a Parquet timestamp with tz 'UTC', or text like 2025-01-31T09:00:00Z); "
                        "no zone is assumed")
    present = col.notna().to_numpy(dtype=bool, copy=True)
    if (pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)) and present.any():
        raise DataError(f"{where}: expected timestamps, got numbers, e.g. {col[present].head(3).tolist()} "
                        f"(rows {np.flatnonzero(present)[:3].tolist()}); write them as UTC text such as "
                        "2025-01-31T09:00:00Z (epoch seconds, milliseconds and serial days look alike: none "
                        "is guessed)")
    odd = np.zeros(len(col), dtype=bool)  # read as empty: blank text, and values neither text nor a datetime
    if present.any():
        pos = np.flatnonzero(present)
        values = col[present]
        if _all_str(values):
            is_text = np.ones(len(values), dtype=bool)
        else:  # datetime objects, numbers or a mix: text by its zone, datetimes by their tzinfo
            is_text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
            is_time = values.map(lambda v: isinstance(v, (datetime, np.datetime64))).to_numpy(dtype=bool)
            odd[pos[~(is_text | is_time)]] = True  # still present: no timestamp at all
        text = values.astype(str).str.strip()
        blank = is_text & (text == "").to_numpy(dtype=bool)
        if blank.any():  # blank text is an empty value, as an empty CSV field is
            present[pos[blank]] = False
            odd[pos[blank]] = True
        naive = pd.Series(is_text & ~blank, index=values.index) & ~text.str.contains(ZONE, regex=True)
        if not is_text.all():
            naive |= pd.Series(is_time, index=values.index) & values.map(lambda v: getattr(v, "tzinfo", None)
                                                                          is None)
        if naive.any():  # without a zone: a missing zone if it reads as a time, else no timestamp at all
            readable = pd.to_datetime(text[naive], utc=True, format="mixed", errors="coerce").notna()
            naive = naive & readable.reindex(naive.index, fill_value=True)
        if naive.any():
            rows = pos[naive.to_numpy(dtype=bool)]
            raise DataError(f"{where}: {int(naive.sum())} timestamp(s) without a time zone, e.g. "
                            f"{values[naive].head(3).astype(str).tolist()} (rows {rows[:3].tolist()}); the export "
                            "must be in UTC with the zone written out (2025-01-31T09:00:00Z or +00:00); no zone "
                            "is assumed")
    clean = col.mask(odd) if odd.any() else col
    try:
        parsed = pd.to_datetime(clean, utc=True, format="mixed", errors="coerce")
    except (ValueError, TypeError) as exc:
        sample = col.dropna().astype(str).head(3).tolist()
        raise DataError(f"{where}: expected UTC timestamps, e.g. 2025-01-31T09:00:00Z; got {sample} ({exc})") from None
    lost = present & parsed.isna().to_numpy(dtype=bool)
    if lost.any() and not lenient:
        rows = np.flatnonzero(lost)
        raise DataError(f"{where}: {len(rows)} value(s) that are not timestamps, e.g. "
                        f"{[str(v) for v in col.to_numpy(dtype=object)[rows[:3]]]} (rows {rows[:3].tolist()}); "
                        "expected UTC timestamps such as 2025-01-31T09:00:00Z")
    bad = None
    if lenient:
        bad = pd.Series(col.to_numpy(dtype=object)[lost], index=np.flatnonzero(lost), dtype=object)
    return parsed.astype("datetime64[us, UTC]"), bad


def text_column(col: pd.Series) -> pd.Series:
    """``col.astype(str)``, without building one Python str per row for dictionary-encoded text.

    Parquet exports usually hold ids as dictionaries (many activity rows, far fewer
    distinct leads); Arrow decodes them without pandas' per-row conversion.
    """
    target = pd.Series([], dtype=str).dtype
    if isinstance(col.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(col.cat.categories.dtype):
        try:
            import pyarrow as pa

            return pd.Series(pa.array(col).dictionary_decode(), dtype=target, index=col.index)
        except (ImportError, TypeError, ValueError):  # pyarrow's ArrowInvalid/ArrowTypeError are among these
            pass
    return col.astype(str)


def _all_str(values: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return True
    return bool(values.map(type).eq(str).all())


def first_rows(mask: pd.Series | np.ndarray, k: int = 3) -> list[int]:
    """The first ``k`` row numbers (0-based, as in the file) where ``mask`` holds."""
    return np.flatnonzero(np.asarray(mask, dtype=bool))[:k].tolist()


def plural(n: int, one: str, many: str) -> str:
    """``"1 activity"``, ``"2 activities"``: a count with its noun."""
    return f"{n} {one if n == 1 else many}"


def take_rows(df: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows where ``keep`` holds; a default index (0..n-1) stays one, any other keeps its labels."""
    out = df[keep]
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        out = out.reset_index(drop=True)
    return out
