"""The CRM export folder: four tables, read and checked before anything uses them.

Format (Parquet or CSV, timestamps in UTC):

- ``accounts``: ``account_id`` plus firmographic columns named in ``features/icp.yaml``;
- ``leads``: ``lead_id``, ``account_id``, ``created_at`` plus contact columns;
- ``activities``: ``lead_id``, ``activity_type``, ``occurred_at`` and optionally
  ``recorded_at`` (when the CRM learned of the event; defaults to ``occurred_at``,
  as does an empty value, with a warning);
- ``opportunities``: ``opportunity_id``, ``lead_id``, ``created_at``, ``closed_at``,
  ``stage`` (``open`` / ``closed_won`` / ``closed_lost``), optionally ``amount``.

Checks, each naming the file, the column and a sample of offending rows:

- errors (nothing is read): a table there twice (``leads.parquet`` and
  ``leads.csv``: which is meant is ambiguous); a missing required column; an empty or duplicate id
  (``account_id``, ``lead_id``, ``opportunity_id``); a timestamp without a time zone
  (a naive Parquet column, or CSV text such as ``2025-01-31 09:00:00`` with no ``Z``
  or ``+00:00``): no zone is assumed, the export must say UTC; a timestamp in the
  future (after now, or after ``exported_at`` when given, by more than a day; an
  open opportunity's ``closed_at`` is exempt, CRMs put the expected close date
  there); an unknown opportunity stage.
- warnings, with a count (safe to continue, nothing is dropped): activities dated
  before their lead's ``created_at`` (marketing tools attribute anonymous visits to
  a lead once it fills a form, so such events are real; they always precede every
  cutoff of the lead and count as its history); activities or opportunities whose
  ``lead_id`` is not in ``leads`` (they can never reach a feature row or label);
  leads whose ``account_id`` is not in ``accounts`` (their firmographics are
  unknown; training refuses too many, see ``propensity.modeling.train``); ids of one
  table that differ only by surrounding whitespace or case. An unmatched id that
  would match once whitespace and case are set aside is named in its warning with
  the id it resembles (:mod:`propensity.core.ids`); nothing is matched by guess.
  Activity types that no engagement signal lists are reported by the feature
  pipeline, which knows the catalogue.

Lenient mode (``lenient=True``, for scoring; issue #5: one bad row must not stop a
batch). Problems of a whole file or table stay errors (a missing file, table or
column, an unreadable file, timestamps without a time zone, empty or duplicate
ids, an unknown stage). Problems of single rows become per-lead data instead,
exposed as :attr:`CrmExport.rejected` and :attr:`CrmExport.lead_notes`:

- a lead whose ``created_at`` is empty, unreadable or in the future is removed
  (with its activities and opportunities) and recorded in ``rejected`` with a
  one-line reason naming the column and value; so is a lead with an opportunity
  whose ``created_at`` is unreadable (whether it had converted is unknown);
- an activity whose ``occurred_at`` is empty or unreadable, whose ``recorded_at``
  is unreadable, or which is dated (occurred or recorded) in the future is
  dropped, and counted in its lead's ``lead_notes``;
- an opportunity created in the future is dropped; an unreadable ``closed_at``, or
  a closed opportunity's ``closed_at`` in the future, is emptied; both noted.

The warnings above stay warnings, plus one summing up what lenient mode set
aside. An export without such problems reads exactly as in strict mode.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.ids import folded_duplicates, near_matches
from propensity.core.errors import DataError
from propensity.core.times import ZONE
from propensity.data.activities import (NAT_US, ActivityArrays, _arrow_str, arrays_from_frame,
                                         read_activity_arrays)

__all__ = ["CrmExport", "DataError", "TABLES", "read_export", "read_table"]


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
FUTURE_TOLERANCE = pd.Timedelta(days=1)  # clock skew between the CRM and this machine
SAMPLE_ROWS = 10_000  # rows of unknown ids read for a warning's sample and near matches


class _Activities:
    """The ``activities`` field of :class:`CrmExport`: a DataFrame, built on first access.

    ``read_export`` stores a loader (re-reading and normalising the file) instead of
    the frame, so that the batch feature path, which only needs
    :meth:`CrmExport.activity_arrays`, never pays for 45M pandas strings. Any
    DataFrame given to the constructor is stored as is.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: object, owner: type | None = None) -> pd.DataFrame:
        if obj is None:
            raise AttributeError(self.slot[1:])  # no class-level default: the field stays required
        value = obj.__dict__[self.slot]
        if callable(value) and not isinstance(value, pd.DataFrame):
            value = value()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: object, value: object) -> None:
        obj.__dict__[self.slot] = value  # only the dataclass __init__ gets here (the class is frozen)


@dataclass(frozen=True)
class CrmExport:
    """The four tables of a CRM export, validated, ids as strings, timestamps UTC.

    ``activities`` may be given as a DataFrame or (by :func:`read_export`) as a
    zero-argument callable returning it, called once on first access.
    :meth:`activity_arrays` gives the activities as NumPy arrays for the batch
    feature path.

    ``lead_notes`` (lead_id -> notes, e.g. ``"1 activity dated in the future
    ignored"``) and ``rejected`` (lead_id -> reason, e.g. ``"created_at
    '2999-01-01T00:00:00Z' is in the future"``; such leads are not in ``leads``)
    are filled by a lenient read (see the module docstring), empty otherwise.
    """

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame = _Activities()  # type: ignore[assignment]  # no default: __get__ says so
    opportunities: pd.DataFrame
    source: str = "<memory>"
    lead_notes: dict[str, list[str]] = dataclasses.field(default_factory=dict, repr=False)
    rejected: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    # Set by read_export; not an init field, so dataclasses.replace (new leads) never carries stale positions.
    _arrays: ActivityArrays | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame], source: str = "<memory>",
                    exported_at: object = None, *, lenient: bool = False) -> CrmExport:
        """Validate a dict of DataFrames keyed like the export's tables.

        ``opportunities`` may be left out (scoring needs none); every other table is
        required. ``exported_at`` (default: now) is the time of the export; a
        timestamp more than a day after it is an error. ``lenient=True`` (scoring)
        sets bad rows aside per lead instead (see the module docstring).
        """
        tables = {}
        unreadable: dict[tuple[str, str], pd.Series] = {}
        for name in TABLES:
            df = frames.get(name)
            if df is None:
                if name == "opportunities":
                    df = pd.DataFrame({c: [] for c in REQUIRED[name]})
                else:
                    raise DataError(f"{source}: table '{name}' is missing")
            tables[name] = _normalise(df, name, f"{source}/{name}", lenient, unreadable)
        unknown = set(frames) - set(TABLES)
        if unknown:
            raise DataError(f"{source}: unknown table(s) {sorted(unknown)}; expected {list(TABLES)}")
        arrays, screen = _check_across(tables, {name: f"{source}/{name}" for name in TABLES}, exported_at,
                                       lenient=lenient, unreadable=unreadable)
        export = cls(**tables, source=source, **screen.fields())
        object.__setattr__(export, "_arrays", arrays)
        return export

    def activity_arrays(self) -> ActivityArrays:
        """The activities as arrays (lead = row position in ``leads``); computed once, then cached."""
        arrays = self.__dict__.get("_arrays")
        if arrays is None:
            arrays = arrays_from_frame(self.activities, self.leads["lead_id"])
            object.__setattr__(self, "_arrays", arrays)
        return arrays

    def unmatched_accounts(self) -> tuple[int, str]:
        """How many leads name an ``account_id`` that ``accounts`` lacks, and a sentence saying which.

        Such leads have no account fields: every firmographic feature is unknown for them.
        """
        return _unmatched_accounts(self.leads, self.accounts)

    def end(self) -> pd.Timestamp:
        """The end of the data: the latest timestamp in any table."""
        arrays = self.__dict__.get("_arrays")
        if arrays is not None:
            last_act = pd.Timestamp(int(arrays.occ.max()), unit="us", tz="UTC") if len(arrays) else pd.NaT
        else:
            last_act = self.activities["occurred_at"].max()
        stamps = [self.leads["created_at"].max(), last_act,
                  self.opportunities["created_at"].max(), self.opportunities["closed_at"].max()]
        stamps = [s for s in stamps if pd.notna(s)]
        if not stamps:
            raise DataError(f"{self.source}: no timestamps at all; is the export empty?")
        return max(stamps)


def _find(folder: Path, name: str) -> Path:
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


def read_export(folder: str | Path, exported_at: object = None, *, lenient: bool = False) -> CrmExport:
    """Read and validate a CRM export folder (see the module docstring for the format and checks).

    ``exported_at`` (default: now) is when the export was taken; any timestamp more
    than a day after it is an error. ``lenient=True`` (scoring) sets bad rows aside
    per lead instead: see :attr:`CrmExport.rejected` and :attr:`CrmExport.lead_notes`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected a CRM export with {', '.join(TABLES)}")
    paths = {name: _find(folder, name) for name in TABLES}
    tables: dict[str, pd.DataFrame | None] = {}
    unreadable: dict[tuple[str, str], pd.Series] = {}
    arrays = ids = None
    for name, path in paths.items():
        if name == "activities" and path.suffix == ".parquet":
            arrays = read_activity_arrays(path, tables["leads"]["lead_id"], allow_null_times=lenient)
            if arrays is not None:  # clean file: arrays now, the DataFrame only if someone asks for it
                tables[name] = None
                ids = functools.partial(_column_rows, path, "lead_id")
                continue
        tables[name] = _normalise(read_table(path), name, str(path), lenient, unreadable)
    arrays, screen = _check_across(tables, {name: str(p) for name, p in paths.items()}, exported_at, arrays, ids,
                                   lenient=lenient, unreadable=unreadable)
    if tables["activities"] is None:
        tables["activities"] = functools.partial(_load_activities, paths["activities"], lenient, screen.dropped)
    export = CrmExport(**tables, source=str(folder), **screen.fields())
    object.__setattr__(export, "_arrays", arrays)
    return export


def _load_activities(path: Path, lenient: bool = False, dropped: np.ndarray | None = None) -> pd.DataFrame:
    """The activities DataFrame of an already validated file (the lazy ``CrmExport.activities``).

    ``dropped``: the file rows a lenient read set aside (they are left out here too).
    """
    df = _normalise(read_table(path), "activities", str(path), lenient, {})
    if dropped is not None and len(dropped):
        keep = np.ones(len(df), dtype=bool)
        keep[dropped] = False
        df = _take(df, keep)
    return df


def _column_rows(path: Path, column: str, rows: np.ndarray) -> np.ndarray:
    """The values of one Parquet column at some rows, as an object array of str."""
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=[column]).column(column).take(np.asarray(rows, dtype=np.int64))
    return np.array([str(v) for v in col.to_pylist()], dtype=object)


def _normalise(df: pd.DataFrame, name: str, where: str, lenient: bool = False,
               unreadable: dict[tuple[str, str], pd.Series] | None = None) -> pd.DataFrame:
    """Required columns, ids as str, timestamps as UTC; the checks of one table.

    ``lenient``: empty timestamps are no error here, and unreadable ones become NaT,
    their raw values stored in ``unreadable[(name, column)]`` (indexed by row
    position), for :func:`_screen` to deal with row by row.
    """
    missing = [c for c in REQUIRED[name] if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing required column(s) {missing}; found {list(df.columns)}")
    df = df.copy()
    for col in ID_COLUMNS[name]:
        if df[col].isna().any():
            raise DataError(f"{where}: column '{col}' has {int(df[col].isna().sum())} empty id(s)")
        df[col] = _as_str(df[col])
    for col in TIMESTAMPS[name]:
        if col in df.columns:
            df[col], bad = _to_utc(df[col], f"{where}: column '{col}'", lenient)
            if bad is not None and unreadable is not None:
                unreadable[(name, col)] = bad
    if name == "activities":
        if "recorded_at" not in df.columns:
            df["recorded_at"] = df["occurred_at"]
        if not lenient and df["occurred_at"].isna().any():
            raise DataError(f"{where}: column 'occurred_at' has {int(df['occurred_at'].isna().sum())} empty value(s)")
        df["activity_type"] = _as_str(df["activity_type"])
    if name == "leads" and not lenient and df["created_at"].isna().any():
        raise DataError(f"{where}: column 'created_at' has {int(df['created_at'].isna().sum())} empty value(s), "
                        f"e.g. rows {_rows(df['created_at'].isna())}")
    key = {"leads": "lead_id", "accounts": "account_id", "opportunities": "opportunity_id"}.get(name)
    if key is not None and not df[key].is_unique:  # one hash pass (1M ids: 0.1 s); the rows only for the message
        dupes = df[key].duplicated(keep=False)
        if dupes.any():
            values = pd.unique(df[key][dupes])
            raise DataError(f"{where}: column '{key}' has {len(values)} duplicate id(s), e.g. "
                            f"{[str(v) for v in values[:3]]} (rows {_rows(dupes)}); ids must be unique")
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


def _to_utc(col: pd.Series, where: str, lenient: bool = False) -> tuple[pd.Series, pd.Series | None]:
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


def _as_str(col: pd.Series) -> pd.Series:
    """``col.astype(str)``, without building one Python str per row for dictionary-encoded text.

    Parquet exports usually hold ids as dictionaries (45M activity rows, 1M distinct
    leads); decoding in Arrow is ~20x faster than pandas' per-row conversion.
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


def _rows(mask: pd.Series | np.ndarray, k: int = 3) -> list[int]:
    """The first ``k`` row numbers (0-based, as in the file) where ``mask`` holds."""
    return np.flatnonzero(np.asarray(mask, dtype=bool))[:k].tolist()


def _lead_positions(ids: pd.Series, lead_ids: pd.Series) -> np.ndarray:
    """Row position in ``leads`` of each id (-1 when absent); fast for categorical and Arrow ids."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        index = pd.Index(lead_ids.to_numpy(dtype=object))
        cat_pos = index.get_indexer(ids.cat.categories.astype(str))
        codes = ids.cat.codes.to_numpy()
        return np.where(codes >= 0, cat_pos[codes], -1)
    return _id_positions(ids, lead_ids)


# Positions already known for a column of ids (see remember_positions): id(Arrow array) -> (weak refs to the
# needles' and the ids' Arrow arrays, the positions, read-only).
_KNOWN: dict[int, tuple[weakref.ref, weakref.ref, np.ndarray]] = {}


def _arrow_of(col: pd.Series) -> object | None:
    """The immutable Arrow array behind an Arrow-backed column (pandas replaces it, never changes it), or None."""
    arr = getattr(col.array, "_pa_array", None)
    return arr if type(arr).__module__.startswith("pyarrow") else None


def remember_positions(needles: pd.Series, ids: pd.Series, pos: np.ndarray) -> None:
    """Record that ``pos`` are the positions of ``needles`` in ``ids`` (their builder knows them).

    Both must be Arrow-backed; the record holds for exactly those two Arrow arrays
    (immutable: a column that is filtered, sorted or assigned to gets a new one) and
    goes with the needles' array. :func:`_id_positions` then answers from it instead
    of hashing the needles again (7.9M training rows: ~0.5 s).
    """
    a, b = _arrow_of(needles), _arrow_of(ids)
    if a is None or b is None or len(pos) != len(needles):
        return
    pos = np.asarray(pos, dtype=np.int64).view()
    pos.flags.writeable = False
    key = id(a)
    _KNOWN[key] = (weakref.ref(a, lambda _, key=key: _KNOWN.pop(key, None)), weakref.ref(b), pos)


def _known_positions(needles: pd.Series, ids: pd.Series) -> np.ndarray | None:
    a, b = _arrow_of(needles), _arrow_of(ids)
    hit = _KNOWN.get(id(a)) if a is not None and b is not None else None
    if hit is None or hit[0]() is not a or hit[1]() is not b:
        return None
    return hit[2]


def _id_positions(needles: pd.Series, ids: pd.Series) -> np.ndarray:
    """Row position in ``ids`` (e.g. ``leads.lead_id``) of each needle: its first row; -1 when absent or missing.

    The result may be read-only (positions recorded by :func:`remember_positions`).

    The one id matcher of the package (activities, opportunities, cutoff rows and
    accounts are matched with it). Hashes in Arrow, and the smaller side: when the
    needles are fewer than the ids (opportunities vs. leads), their distinct values
    are the hash table and the ids are looked up in it, not the other way round (a
    million ids hashed costs ~5x more). Columns that are not all text are matched by
    pandas (equal values, no conversion to str).
    """
    known = _known_positions(needles, ids)
    if known is not None:
        return known
    out = np.full(len(needles), -1, dtype=np.int64)
    if len(needles) == 0 or len(ids) == 0:
        return out
    hay, pins = _arrow_str(ids), _arrow_str(needles)
    if hay is None or pins is None:
        index = pd.Index(ids.to_numpy(dtype=object))
        if not index.is_unique:  # get_indexer needs unique ids: keep each value's first row
            keep = ~index.duplicated()
            found = pd.Index(index[keep]).get_indexer(needles.to_numpy(dtype=object))
            return np.where(found >= 0, np.flatnonzero(keep)[found], -1).astype(np.int64)
        return index.get_indexer(needles.to_numpy(dtype=object)).astype(np.int64, copy=False)
    import pyarrow.compute as pc

    if len(pins) >= len(hay):
        return np.asarray(pc.index_in(pins, value_set=hay).fill_null(-1), dtype=np.int64)
    distinct = pc.unique(pins).drop_null()
    if len(distinct) == 0:
        return out
    where = np.asarray(pc.index_in(hay, value_set=distinct).fill_null(-1), dtype=np.int64)  # per id
    hit = np.flatnonzero(where >= 0)
    first, at = np.unique(where[hit], return_index=True)  # the first row of each distinct needle
    pos_of = np.full(len(distinct) + 1, -1, dtype=np.int64)  # the last slot: a needle not among them
    pos_of[first] = hit[at]
    slot = np.asarray(pc.index_in(pins, value_set=distinct).fill_null(len(distinct)), dtype=np.int64)
    return pos_of[slot]


def _early(pos: np.ndarray, occ: np.ndarray, created: np.ndarray, block: int = 1 << 20) -> tuple[int, list[int]]:
    """How many activities (of known leads) occurred before their lead's created_at, and the first 3 rows.

    Works in blocks, so that 45M activities need a few MB of temporaries, not GBs;
    two at a time (NumPy releases the GIL on such arrays).
    """
    if not len(created):
        return 0, []

    def one(at: int) -> tuple[int, list[int]]:
        p = pos[at:at + block]
        early = (occ[at:at + block] < np.take(created, p, mode="clip")) & (p >= 0)  # -1 (unknown) is masked
        k = int(np.count_nonzero(early))
        return k, (np.flatnonzero(early)[:3] + at).tolist() if k else []

    starts = range(0, len(pos), block)
    if len(starts) > 1:
        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(one, starts))
    else:
        parts = [one(at) for at in starts]
    return sum(k for k, _ in parts), [r for _, rows in parts for r in rows][:3]


def _check_across(tables: dict[str, pd.DataFrame | None], where: dict[str, str], exported_at: object,
                  arrays: ActivityArrays | None = None, activity_ids=None, *, lenient: bool = False,
                  unreadable: dict[tuple[str, str], pd.Series] | None = None) -> tuple[ActivityArrays, _Screen]:
    """Checks that need more than one table: orphans, events before the lead, the future.

    The activities are checked as :class:`ActivityArrays`: ``arrays`` when the
    fast reader built them (then ``tables["activities"]`` may be None and
    ``activity_ids(rows)`` returns the lead_id str of those rows, for samples),
    else derived from the activities frame. ``lenient``: bad rows are first set
    aside by :func:`_screen` (``tables`` is updated in place). Returns the arrays
    and what was set aside.
    """
    now = pd.Timestamp.now(tz="UTC") if exported_at is None else pd.Timestamp(exported_at)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    limit = now + FUTURE_TOLERANCE
    leads, acts, opps = tables["leads"], tables["activities"], tables["opportunities"]
    if arrays is None:
        arrays = arrays_from_frame(acts, leads["lead_id"])
        activity_ids = lambda rows: acts["lead_id"].to_numpy(dtype=object)[rows]  # noqa: E731
    screen = _Screen()
    if lenient:
        arrays, screen = _screen(tables, where, limit, arrays, unreadable or {})
        leads, opps = tables["leads"], tables["opportunities"]
    for name, cols in TIMESTAMPS.items():
        df = tables[name]
        for col in cols:
            if name == "activities":  # recorded_at is always there (it defaults to occurred_at)
                stamps = arrays.occ if col == "occurred_at" else arrays.rec
                limit_us = int(limit.value // 1000)
                if not len(stamps) or stamps.max() <= limit_us:  # one pass, no 45M-row mask
                    continue
                late = stamps > limit_us
                values = pd.Series(stamps[late][:3].astype("datetime64[us]")).dt.tz_localize("UTC")
            else:
                if col not in df.columns:
                    continue
                late = (df[col] > limit).to_numpy(dtype=bool)
                if name == "opportunities" and col == "closed_at":
                    late = late & (df["stage"] != "open").to_numpy(dtype=bool)
                values = df[col][late]
            if late.any():
                sample = values.head(3).astype(str).tolist()
                raise DataError(f"{where[name]}: column '{col}' has {int(late.sum())} timestamp(s) in the future "
                                f"(after {limit:%Y-%m-%d %H:%M} UTC, a day after "
                                f"{'now' if exported_at is None else 'the export'}), e.g. {sample} "
                                f"(rows {_rows(late)}); check the export's clock and time zone")
    pos = arrays.lead
    if len(pos) and pos.min() < 0:
        orphan = pos < 0
        n_orphan = int(np.count_nonzero(orphan))
        # the ids of the first rows only: reading a 45M-row id column for a sample costs more than the read
        first = np.flatnonzero(orphan)[:SAMPLE_ROWS]
        ids = pd.Series(activity_ids(screen.file_rows(first)), dtype=object)
        none = " (none of the export's activities names a lead in leads)" if n_orphan == len(pos) else ""
        warnings.warn(f"{where['activities']}: {_plural(n_orphan, 'activity', 'activities')} name a lead_id not "
                      f"in leads{none}, e.g. {[str(v) for v in pd.unique(ids)[:3]]} (rows "
                      f"{screen.file_rows(_rows(orphan))}); they are ignored"
                      + _near_hint(ids, leads["lead_id"], "a lead", None if len(first) == n_orphan else len(first)),
                      UserWarning, stacklevel=3)
        del orphan
    n_acc, text = _unmatched_accounts(leads, tables["accounts"])
    if n_acc:
        warnings.warn(f"{where['leads']}: {text}", UserWarning, stacklevel=3)
    n_early, early_rows = _early(pos, arrays.occ, leads["created_at"].array.asi8)
    early_rows = screen.file_rows(early_rows)
    if n_early:
        warnings.warn(f"{where['activities']}: {n_early} activit{'y' if n_early == 1 else 'ies'} "
                      f"occurred before their lead's created_at, e.g. rows {early_rows}; kept as the lead's "
                      "history (marketing tools attribute earlier anonymous visits to a new lead)",
                      UserWarning, stacklevel=3)
    rec = arrays.rec
    if rec is not arrays.occ and len(rec) and int(rec.min()) == NAT_US:  # one pass when nothing is empty
        blank = (rec == NAT_US) & (arrays.occ != NAT_US)
        n_blank = int(np.count_nonzero(blank))
        if n_blank:
            warnings.warn(f"{where['activities']}: column 'recorded_at' has {n_blank} empty value(s), e.g. rows "
                          f"{screen.file_rows(_rows(blank))}; each is taken as recorded when it occurred "
                          "(occurred_at), as for an export without the column: a backfilled row among them "
                          "would count before the CRM knew of it", UserWarning, stacklevel=3)
        del blank
    if len(opps):
        lost = _lead_positions(opps["lead_id"], leads["lead_id"]) < 0
        if lost.any():
            sample = [str(v) for v in pd.unique(opps["lead_id"][lost])[:3]]
            warnings.warn(f"{where['opportunities']}: {int(lost.sum())} opportunit"
                          f"{'y' if lost.sum() == 1 else 'ies'} name a lead_id not in leads, e.g. {sample} "
                          f"(rows {_rows(lost)}); they label no lead"
                          + _near_hint(opps["lead_id"][lost], leads["lead_id"], "a lead"), UserWarning, stacklevel=3)
    return arrays, screen


def _near_hint(unmatched: pd.Series, ids: pd.Series, what: str, first: int | None = None) -> str:
    """The sentence on ``unmatched`` ids (one per row) that equal one of ``ids`` once whitespace and case are set aside.

    ``first``: the rows are the first ``first`` of more (the count says so). Empty when none does.
    """
    codes, distinct = pd.factorize(unmatched.astype(object), use_na_sentinel=True)
    at = near_matches(np.asarray(distinct, dtype=object), ids)
    hit = at >= 0
    if not hit.any():
        return ""
    k = int(np.count_nonzero(hit[codes[codes >= 0]]))
    among = "of them" if first is None else f"of the first {first:,} of them"
    pairs = ", ".join(f"{distinct[i]!r} ~ {ids.iloc[int(at[i])]!r}" for i in np.flatnonzero(hit)[:3].tolist())
    return (f"; {k:,} {among} would match {what} once surrounding whitespace and case are set aside (e.g. "
            f"{pairs}): fix the ids in the export, nothing is matched by guess")


def _unmatched_accounts(leads: pd.DataFrame, accounts: pd.DataFrame) -> tuple[int, str]:
    """How many leads name an account_id that ``accounts`` lacks, and a sentence saying so (ids, rows, near matches).

    The positions are remembered for the feature pipeline, which matches the same columns.
    """
    lead_acc, acc_ids = leads["account_id"], accounts["account_id"]
    pos = _id_positions(lead_acc, acc_ids)
    remember_positions(lead_acc, acc_ids, pos)
    miss = pos < 0
    n = int(np.count_nonzero(miss))
    if not n:
        return 0, ""
    ids = lead_acc[miss]
    return n, (f"{n:,} of {len(leads):,} leads ({n / len(leads):.1%}) have an account_id that is not in accounts, "
               f"e.g. {[str(v) for v in pd.unique(ids)[:3]]} (rows {_rows(miss)}), so their account fields "
               "(firmographics) are unknown" + _near_hint(ids, acc_ids, "an account"))


@dataclass
class _Screen:
    """What a lenient read set aside: per-lead notes, rejected leads, dropped activity rows (of the file)."""

    notes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)
    dropped: np.ndarray | None = None  # sorted file rows of the activities left out

    def fields(self) -> dict[str, dict]:
        return {"lead_notes": self.notes, "rejected": self.rejected}

    def file_rows(self, rows) -> list[int]:
        """File row numbers of rows of the kept activities (for the samples in warnings)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.dropped is not None and len(self.dropped):
            rows = rows + np.searchsorted(self.dropped - np.arange(len(self.dropped)), rows, side="right")
        return rows.tolist()


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S" + (".%f" if ts.microsecond else "") + "Z")


def _take(df: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows where ``keep`` holds; a default index (0..n-1) stays one, any other keeps its labels."""
    out = df[keep]
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        out = out.reset_index(drop=True)
    return out


def _screen(tables: dict[str, pd.DataFrame | None], where: dict[str, str], limit: pd.Timestamp,
            arrays: ActivityArrays, unreadable: dict[tuple[str, str], pd.Series]) -> tuple[ActivityArrays, _Screen]:
    """The lenient read: set bad rows aside per lead (see the module docstring); ``tables`` updated in place.

    ``arrays`` hold lead positions into the full ``leads``; the returned ones into
    the kept leads, without the dropped rows. Nothing is copied when nothing is
    wrong, so a clean export reads exactly as in strict mode. Costs a few passes
    over the time arrays, and row masks only when some row is dropped.
    """
    leads, opps, acts = tables["leads"], tables["opportunities"], tables["activities"]
    limit_us = int(limit.value // 1000)
    ids = leads["lead_id"].to_numpy(dtype=object)
    n_leads = len(ids)
    reject: dict[int, str] = {}  # lead position -> reason
    notes: dict[int, list[str]] = {}

    # -- leads: created_at empty, unreadable or in the future
    created = leads["created_at"]
    raw = unreadable.get(("leads", "created_at"), pd.Series([], dtype=object))
    late = (created > limit).to_numpy(dtype=bool)
    empty = created.isna().to_numpy(dtype=bool)
    for i in np.flatnonzero(late | empty):
        if late[i]:
            reject[int(i)] = f"created_at '{_iso(created.iloc[i])}' is in the future"
        elif i in raw.index:
            reject[int(i)] = f"created_at {str(raw[i])!r} is not a readable timestamp"
        else:
            reject[int(i)] = "created_at is empty"

    # -- opportunities: created in the future (dropped), closed_at unreadable or future (emptied),
    #    created_at unreadable (the lead is rejected: whether it had converted is unknown)
    if len(opps):
        opp_pos = _lead_positions(opps["lead_id"], leads["lead_id"])
        raw_created = unreadable.get(("opportunities", "created_at"), pd.Series([], dtype=object))
        raw_closed = unreadable.get(("opportunities", "closed_at"), pd.Series([], dtype=object))
        for i in raw_created.index:
            if opp_pos[i] >= 0 and opp_pos[i] not in reject:
                reject[int(opp_pos[i])] = (f"opportunity {opps['opportunity_id'].iloc[i]}: created_at "
                                      f"{str(raw_created[i])!r} is not a readable timestamp")
        opp_late = (opps["created_at"] > limit).to_numpy(dtype=bool)
        closed_late = ((opps["closed_at"] > limit) & (opps["stage"] != "open")).to_numpy(dtype=bool) & ~opp_late
        closed_bad = np.zeros(len(opps), dtype=bool)
        closed_bad[raw_closed.index.to_numpy(dtype=np.int64)] = True
        blank = (closed_late | closed_bad) & ~opp_late
        for mask, one, many in ((opp_late, "opportunity dated in the future ignored",
                                 "opportunities dated in the future ignored"),
                                (blank, "opportunity closed_at unreadable or in the future, ignored",
                                 "opportunity closed_at values unreadable or in the future, ignored")):
            hit = mask & (opp_pos >= 0)
            if not hit.any():
                continue
            counts = np.bincount(opp_pos[hit], minlength=n_leads)
            for i in np.flatnonzero(counts):
                notes.setdefault(int(i), []).append(f"{counts[i]} {one if counts[i] == 1 else many}")
        bad_created = np.zeros(len(opps), dtype=bool)
        bad_created[raw_created.index.to_numpy(dtype=np.int64)] = True
    keep_lead = np.ones(n_leads, dtype=bool)
    keep_lead[list(reject)] = False
    any_rejected = not keep_lead.all()

    # -- activities
    lead, occ, rec = arrays.lead, arrays.occ, arrays.rec
    raw_rec = unreadable.get(("activities", "recorded_at"), pd.Series([], dtype=object))
    n = len(lead)
    dirty = n and (int(occ.min()) == NAT_US or int(occ.max()) > limit_us
                   or (rec is not occ and int(rec.max()) > limit_us) or len(raw_rec))
    of_rejected = None
    if any_rejected and n:
        of_rejected = (lead >= 0) & ~keep_lead[np.maximum(lead, 0)]
        if not of_rejected.any():
            of_rejected = None
    n_dropped_unknown = n_dropped = 0
    drop = None
    if dirty or of_rejected is not None:
        no_occ = occ == NAT_US
        no_rec = np.zeros(n, dtype=bool)
        no_rec[raw_rec.index.to_numpy(dtype=np.int64)] = True
        no_rec &= ~no_occ
        future = (occ > limit_us) & ~no_rec
        if rec is not occ:
            future |= (rec > limit_us) & ~no_occ & ~no_rec
        drop = no_occ | no_rec | future
        counted = lead >= 0 if of_rejected is None else (lead >= 0) & ~of_rejected
        n_dropped_unknown = int(np.count_nonzero(drop & (lead < 0)))
        for mask, text in ((no_occ, "without a readable occurred_at ignored"),
                           (no_rec, "without a readable recorded_at ignored"),
                           (future, "dated in the future ignored")):
            hit = mask & counted
            if hit.any():
                counts = np.bincount(lead[hit], minlength=n_leads)
                for i in np.flatnonzero(counts):
                    notes.setdefault(int(i), []).append(f"{_plural(int(counts[i]), 'activity', 'activities')} {text}")
        n_dropped = int(np.count_nonzero(drop))
        if of_rejected is not None:
            drop |= of_rejected
        if not drop.any():
            drop = None

    # -- apply
    remap = None
    if any_rejected:
        remap = np.where(keep_lead, np.cumsum(keep_lead) - 1, -1).astype(np.int32)
        tables["leads"] = _take(leads, keep_lead)
    dropped = None
    if drop is not None:
        keep = ~drop
        dropped = np.flatnonzero(drop)
        new_occ = occ[keep]
        code, types = _first_seen(arrays.code[keep], arrays.types)
        arrays = ActivityArrays(lead=lead[keep], occ=new_occ, rec=new_occ if rec is occ else rec[keep],
                                code=code, types=types)
        if acts is not None:
            tables["activities"] = _take(acts, keep)
        del keep, drop
    if remap is not None:
        arrays = dataclasses.replace(arrays, lead=np.where(arrays.lead >= 0, remap[np.maximum(arrays.lead, 0)],
                                                           -1).astype(np.int32))
    if len(opps):
        opp_keep = ~opp_late & ~bad_created
        if any_rejected:
            opp_keep &= ~((opp_pos >= 0) & ~keep_lead[np.maximum(opp_pos, 0)])
        if blank.any():
            opps = opps.copy()
            opps.loc[opps.index[blank], "closed_at"] = pd.NaT
        if not opp_keep.all():
            opps = _take(opps, opp_keep)
        tables["opportunities"] = opps

    screen = _Screen(notes={str(ids[i]): v for i, v in sorted(notes.items()) if keep_lead[i]},
                     rejected={str(ids[i]): reject[i] for i in sorted(reject)}, dropped=dropped)
    if reject or n_dropped:
        sample = [f"{k}: {v}" for k, v in list(screen.rejected.items())[:3]]
        warnings.warn(f"{Path(where['leads']).parent}: lenient read set aside {_plural(len(reject), 'lead', 'leads')}"
                      + (f" (e.g. {sample})" if sample else "")
                      + f" and {_plural(n_dropped, 'activity', 'activities')} (empty, unreadable or future times"
                      + (f"; {n_dropped_unknown} of unknown leads" if n_dropped_unknown else "")
                      + "); see CrmExport.rejected and CrmExport.lead_notes", UserWarning, stacklevel=4)
    return arrays, screen


def _first_seen(code: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activity type codes renumbered in first-seen order (as ``pd.factorize`` gives them), unused types gone.

    Dropping rows may remove a type's first (or every) occurrence; the arrays must
    then equal those derived from the kept rows. Usually the first block holds every type.
    """
    if not len(code):
        return code.astype(np.int16), types[:0]
    present = np.bincount(code, minlength=len(types)) > 0
    need = int(present.sum())
    order: list[int] = []
    seen: set[int] = set()
    for at in range(0, len(code), 1 << 20):
        block = code[at:at + (1 << 20)]
        u, first = np.unique(block, return_index=True)
        for c in u[np.argsort(first, kind="stable")].tolist():
            if c not in seen:
                seen.add(c)
                order.append(c)
        if len(order) == need:
            break
    dtype = np.int16 if len(order) < 2 ** 15 else np.int32
    if order == list(range(len(types))):
        return code.astype(dtype, copy=False), types
    remap = np.full(len(types), -1, dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return remap[code].astype(dtype), types[order]
