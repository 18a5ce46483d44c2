"""The CRM export folder: four tables, read and checked before anything uses them.

Format (Parquet or CSV, timestamps in UTC):

- ``accounts``: ``account_id`` plus firmographic columns named in ``features/icp.yaml``;
- ``leads``: ``lead_id``, ``account_id``, ``created_at`` plus contact columns;
- ``activities``: ``lead_id``, ``activity_type``, ``occurred_at`` and optionally
  ``recorded_at`` (when the CRM learned of the event; defaults to ``occurred_at``);
- ``opportunities``: ``opportunity_id``, ``lead_id``, ``created_at``, ``closed_at``,
  ``stage`` (``open`` / ``closed_won`` / ``closed_lost``), optionally ``amount``.

Checks, each naming the file, the column and a sample of offending rows:

- errors (nothing is read): a missing required column; an empty or duplicate id
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
  ``lead_id`` is not in ``leads`` (they can never reach a feature row or label).
  Activity types that no engagement signal lists are reported by the feature
  pipeline, which knows the catalogue.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.data.activities import ActivityArrays, arrays_from_frame, read_activity_arrays

__all__ = ["CrmExport", "DataError", "TABLES", "read_export", "read_table"]


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file and column."""


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
# A time of day followed by a zone: "...09:00:00Z", "...09:00:00.5+00:00", "... 09:00 UTC".
_ZONE = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d*)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


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
    """

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame = _Activities()  # type: ignore[assignment]  # no default: __get__ says so
    opportunities: pd.DataFrame
    source: str = "<memory>"
    # Set by read_export; not an init field, so dataclasses.replace (new leads) never carries stale positions.
    _arrays: ActivityArrays | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame], source: str = "<memory>",
                    exported_at: object = None) -> CrmExport:
        """Validate a dict of DataFrames keyed like the export's tables.

        ``opportunities`` may be left out (scoring needs none); every other table is
        required. ``exported_at`` (default: now) is the time of the export; a
        timestamp more than a day after it is an error.
        """
        tables = {}
        for name in TABLES:
            df = frames.get(name)
            if df is None:
                if name == "opportunities":
                    df = pd.DataFrame({c: [] for c in REQUIRED[name]})
                else:
                    raise DataError(f"{source}: table '{name}' is missing")
            tables[name] = _normalise(df, name, f"{source}/{name}")
        unknown = set(frames) - set(TABLES)
        if unknown:
            raise DataError(f"{source}: unknown table(s) {sorted(unknown)}; expected {list(TABLES)}")
        arrays = _check_across(tables, {name: f"{source}/{name}" for name in TABLES}, exported_at)
        export = cls(**tables, source=source)
        object.__setattr__(export, "_arrays", arrays)
        return export

    def activity_arrays(self) -> ActivityArrays:
        """The activities as arrays (lead = row position in ``leads``); computed once, then cached."""
        arrays = self.__dict__.get("_arrays")
        if arrays is None:
            arrays = arrays_from_frame(self.activities, self.leads["lead_id"])
            object.__setattr__(self, "_arrays", arrays)
        return arrays

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
    for ext in (".parquet", ".csv"):
        p = folder / f"{name}{ext}"
        if p.exists():
            return p
    raise DataError(f"{folder}: missing table '{name}' (expected {name}.parquet or {name}.csv)")


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


def read_export(folder: str | Path, exported_at: object = None) -> CrmExport:
    """Read and validate a CRM export folder (see the module docstring for the format and checks).

    ``exported_at`` (default: now) is when the export was taken; any timestamp more
    than a day after it is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected a CRM export with {', '.join(TABLES)}")
    paths = {name: _find(folder, name) for name in TABLES}
    tables: dict[str, pd.DataFrame | None] = {}
    arrays = ids = None
    for name, path in paths.items():
        if name == "activities" and path.suffix == ".parquet":
            arrays = read_activity_arrays(path, tables["leads"]["lead_id"])
            if arrays is not None:  # clean file: arrays now, the DataFrame only if someone asks for it
                tables[name] = None
                ids = functools.partial(_column_rows, path, "lead_id")
                continue
        tables[name] = _normalise(read_table(path), name, str(path))
    arrays = _check_across(tables, {name: str(p) for name, p in paths.items()}, exported_at, arrays, ids)
    if tables["activities"] is None:
        tables["activities"] = functools.partial(_load_activities, paths["activities"])
    export = CrmExport(**tables, source=str(folder))
    object.__setattr__(export, "_arrays", arrays)
    return export


def _load_activities(path: Path) -> pd.DataFrame:
    """The activities DataFrame of an already validated file (the lazy ``CrmExport.activities``)."""
    return _normalise(read_table(path), "activities", str(path))


def _column_rows(path: Path, column: str, rows: np.ndarray) -> np.ndarray:
    """The values of one Parquet column at some rows, as an object array of str."""
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=[column]).column(column).take(np.asarray(rows, dtype=np.int64))
    return np.array([str(v) for v in col.to_pylist()], dtype=object)


def _normalise(df: pd.DataFrame, name: str, where: str) -> pd.DataFrame:
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
            df[col] = _to_utc(df[col], f"{where}: column '{col}'")
    if name == "activities":
        if "recorded_at" not in df.columns:
            df["recorded_at"] = df["occurred_at"]
        if df["occurred_at"].isna().any():
            raise DataError(f"{where}: column 'occurred_at' has {int(df['occurred_at'].isna().sum())} empty value(s)")
        df["activity_type"] = _as_str(df["activity_type"])
    if name == "leads" and df["created_at"].isna().any():
        raise DataError(f"{where}: column 'created_at' has {int(df['created_at'].isna().sum())} empty value(s), "
                        f"e.g. rows {_rows(df['created_at'].isna())}")
    key = {"leads": "lead_id", "accounts": "account_id", "opportunities": "opportunity_id"}.get(name)
    if key is not None:
        dupes = df[key].duplicated(keep=False)
        if dupes.any():
            values = pd.unique(df[key][dupes])
            raise DataError(f"{where}: column '{key}' has {len(values)} duplicate id(s), e.g. "
                            f"{[str(v) for v in values[:3]]} (rows {_rows(dupes)}); ids must be unique")
    if name == "opportunities":
        df["stage"] = df["stage"].astype(str)
        bad = sorted(set(df["stage"]) - set(STAGES))
        if bad:
            raise DataError(f"{where}: column 'stage' has unknown values {bad[:5]}; expected one of {list(STAGES)}")
    return df


def _to_utc(col: pd.Series, where: str) -> pd.Series:
    """Timestamps as datetime64[us, UTC]; naive ones are an error (no zone is assumed)."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(col.dtype):
        sample = col.dropna().head(3).astype(str).tolist()
        raise DataError(f"{where}: timezone-naive timestamps, e.g. {sample}; the export must be in UTC with the "
                        "zone recorded (a Parquet timestamp with tz 'UTC', or text like 2025-01-31T09:00:00Z); "
                        "no zone is assumed")
    present = col.notna().to_numpy(dtype=bool)
    if present.any():
        values = col[present]
        if _all_str(values):
            text = values.astype(str).str.strip()
            naive = ~text.str.contains(_ZONE, regex=True)
        else:  # datetime objects or a mix: each one's tzinfo says
            naive = values.map(lambda v: getattr(v, "tzinfo", 0) is None)
        if naive.any():
            rows = np.flatnonzero(present)[naive.to_numpy(dtype=bool)]
            raise DataError(f"{where}: {int(naive.sum())} timestamp(s) without a time zone, e.g. "
                            f"{values[naive].head(3).astype(str).tolist()} (rows {rows[:3].tolist()}); the export "
                            "must be in UTC with the zone written out (2025-01-31T09:00:00Z or +00:00); no zone "
                            "is assumed")
    try:
        parsed = pd.to_datetime(col, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        sample = col.dropna().astype(str).head(3).tolist()
        raise DataError(f"{where}: expected UTC timestamps, e.g. 2025-01-31T09:00:00Z; got {sample} ({exc})") from None
    return parsed.astype("datetime64[us, UTC]")


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
    index = pd.Index(lead_ids.to_numpy(dtype=object))
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cat_pos = index.get_indexer(ids.cat.categories.astype(str))
        codes = ids.cat.codes.to_numpy()
        return np.where(codes >= 0, cat_pos[codes], -1)
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        found = pc.index_in(pa.array(ids.astype(str)), value_set=pa.array(index.to_numpy(), type=pa.string()))
        return np.asarray(found.fill_null(-1), dtype=np.int64)
    except (ImportError, TypeError, ValueError):
        return index.get_indexer(ids.to_numpy(dtype=object)).astype(np.int64)


def _early(pos: np.ndarray, occ: np.ndarray, created: np.ndarray, block: int = 1 << 20) -> tuple[int, list[int]]:
    """How many activities (of known leads) occurred before their lead's created_at, and the first 3 rows.

    Works in blocks, so that 45M activities need a few MB of temporaries, not GBs.
    """
    count, rows = 0, []
    if not len(created):
        return 0, []
    for at in range(0, len(pos), block):
        p = pos[at:at + block]
        early = (occ[at:at + block] < created[np.maximum(p, 0)]) & (p >= 0)
        k = int(np.count_nonzero(early))
        if k:
            count += k
            if len(rows) < 3:
                rows += (np.flatnonzero(early)[:3 - len(rows)] + at).tolist()
    return count, rows


def _check_across(tables: dict[str, pd.DataFrame | None], where: dict[str, str], exported_at: object,
                  arrays: ActivityArrays | None = None, activity_ids=None) -> ActivityArrays:
    """Checks that need more than one table: orphans, events before the lead, the future.

    The activities are checked as :class:`ActivityArrays`: ``arrays`` when the
    fast reader built them (then ``tables["activities"]`` may be None and
    ``activity_ids(rows)`` returns the lead_id str of those rows, for samples),
    else derived from the activities frame. Returns the arrays.
    """
    now = pd.Timestamp.now(tz="UTC") if exported_at is None else pd.Timestamp(exported_at)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    limit = now + FUTURE_TOLERANCE
    leads, acts, opps = tables["leads"], tables["activities"], tables["opportunities"]
    if arrays is None:
        arrays = arrays_from_frame(acts, leads["lead_id"])
        activity_ids = lambda rows: acts["lead_id"].to_numpy(dtype=object)[rows]  # noqa: E731
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
        sample = [str(v) for v in pd.unique(activity_ids(np.flatnonzero(orphan)))[:3]]
        warnings.warn(f"{where['activities']}: {int(orphan.sum())} activit{'y' if orphan.sum() == 1 else 'ies'} "
                      f"name a lead_id not in leads, e.g. {sample} (rows {_rows(orphan)}); they are ignored",
                      UserWarning, stacklevel=3)
        del orphan
    n_early, early_rows = _early(pos, arrays.occ, leads["created_at"].array.asi8)
    if n_early:
        warnings.warn(f"{where['activities']}: {n_early} activit{'y' if n_early == 1 else 'ies'} "
                      f"occurred before their lead's created_at, e.g. rows {early_rows}; kept as the lead's "
                      "history (marketing tools attribute earlier anonymous visits to a new lead)",
                      UserWarning, stacklevel=3)
    if len(opps):
        lost = _lead_positions(opps["lead_id"], leads["lead_id"]) < 0
        if lost.any():
            sample = [str(v) for v in pd.unique(opps["lead_id"][lost])[:3]]
            warnings.warn(f"{where['opportunities']}: {int(lost.sum())} opportunit"
                          f"{'y' if lost.sum() == 1 else 'ies'} name a lead_id not in leads, e.g. {sample} "
                          f"(rows {_rows(lost)}); they label no lead", UserWarning, stacklevel=3)
    return arrays
