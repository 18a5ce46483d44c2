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

Lenient mode (``lenient=True``, for scoring: one bad row must not stop a
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

Where each part lives: one table's file and columns in :mod:`propensity.data.tables`,
the checks across tables in :mod:`propensity.data.checks`, the lenient read in
:mod:`propensity.data.lenient`, the activities as arrays in
:mod:`propensity.data.activities`; :class:`CrmExport` and :func:`read_export` here.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.errors import DataError
from propensity.data.activities import ActivityArrays, arrays_from_frame, read_activity_arrays
from propensity.data.checks import check_across_tables, heaviest_leads, unmatched_accounts
from propensity.data.tables import REQUIRED, TABLES, find_table, normalise_table, read_table, take_rows

__all__ = ["ONE_LEAD_SOURCE", "CrmExport", "DataError", "read_export"]

ONE_LEAD_SOURCE = "<lead>"  # the source of an export built for one lead (see CrmExport.of_one_lead)


class _FrameOnFirstUse:
    """The ``activities`` field of :class:`CrmExport`: a DataFrame, built on first access.

    ``read_export`` stores a loader (re-reading and normalising the file) instead of
    the frame, so that the batch feature path, which only needs
    :meth:`CrmExport.activity_arrays`, never pays for a pandas string per activity. Any
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

    ``one_lead``: the export of one lead scored on demand (:meth:`of_one_lead`).
    """

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame = _FrameOnFirstUse()  # type: ignore[assignment]  # no default: __get__ says so
    opportunities: pd.DataFrame
    source: str = "<memory>"
    lead_notes: dict[str, list[str]] = dataclasses.field(default_factory=dict, repr=False)
    rejected: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    one_lead: bool = False
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
            tables[name] = normalise_table(df, name, f"{source}/{name}", lenient, unreadable)
        unknown = set(frames) - set(TABLES)
        if unknown:
            raise DataError(f"{source}: unknown table(s) {sorted(unknown)}; expected {list(TABLES)}")
        arrays, aside = check_across_tables(tables, {name: f"{source}/{name}" for name in TABLES}, exported_at,
                                            lenient=lenient, unreadable=unreadable)
        export = cls(**tables, source=source, **aside.fields())
        object.__setattr__(export, "_arrays", arrays)
        return export

    @classmethod
    def of_one_lead(cls, accounts: pd.DataFrame, leads: pd.DataFrame, activities: pd.DataFrame,
                    opportunities: pd.DataFrame) -> CrmExport:
        """The export of one lead scored on demand, from tables a request was read into.

        Not validated again: the request's fields were checked one by one as it was
        read. ``one_lead`` is set, so that the scorer may take one-lead shortcuts (its
        cutoff without the sorting of a whole export's); ``source`` names it in messages.
        """
        return cls(accounts, leads, activities, opportunities, source=ONE_LEAD_SOURCE, one_lead=True)

    def activity_arrays(self) -> ActivityArrays:
        """The activities as arrays (lead = row position in ``leads``); computed once, then cached."""
        arrays = self.__dict__.get("_arrays")
        if arrays is None:
            arrays = arrays_from_frame(self.activities, self.leads["lead_id"])
            object.__setattr__(self, "_arrays", arrays)
        return arrays

    def heaviest_leads(self, top: int = 3) -> list[tuple[str, int]]:
        """The ``top`` leads with the most activities, (lead_id, count), most first (see ``checks.heaviest_leads``)."""
        return heaviest_leads(self.activity_arrays().lead, self.leads["lead_id"].to_numpy(dtype=object), top)

    def unmatched_accounts(self) -> tuple[int, str]:
        """How many leads name an ``account_id`` that ``accounts`` lacks, and a sentence saying which.

        Such leads have no account fields: every firmographic feature is unknown for them.
        """
        return unmatched_accounts(self.leads, self.accounts)

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


def read_export(folder: str | Path, exported_at: object = None, *, lenient: bool = False) -> CrmExport:
    """Read and validate a CRM export folder (see the module docstring for the format and checks).

    ``exported_at`` (default: now) is when the export was taken; any timestamp more
    than a day after it is an error. ``lenient=True`` (scoring) sets bad rows aside
    per lead instead: see :attr:`CrmExport.rejected` and :attr:`CrmExport.lead_notes`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected a CRM export with {', '.join(TABLES)}")
    paths = {name: find_table(folder, name) for name in TABLES}
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
        tables[name] = normalise_table(read_table(path), name, str(path), lenient, unreadable)
    arrays, aside = check_across_tables(tables, {name: str(p) for name, p in paths.items()}, exported_at, arrays, ids,
                                        lenient=lenient, unreadable=unreadable)
    if tables["activities"] is None:
        tables["activities"] = functools.partial(_load_activities, paths["activities"], lenient, aside.dropped)
    export = CrmExport(**tables, source=str(folder), **aside.fields())
    object.__setattr__(export, "_arrays", arrays)
    return export


def _load_activities(path: Path, lenient: bool = False, dropped: np.ndarray | None = None) -> pd.DataFrame:
    """The activities DataFrame of an already validated file (the lazy ``CrmExport.activities``).

    ``dropped``: the file rows a lenient read set aside (they are left out here too).
    """
    df = normalise_table(read_table(path), "activities", str(path), lenient, {})
    if dropped is not None and len(dropped):
        keep = np.ones(len(df), dtype=bool)
        keep[dropped] = False
        df = take_rows(df, keep)
    return df


def _column_rows(path: Path, column: str, rows: np.ndarray) -> np.ndarray:
    """The values of one Parquet column at some rows, as an object array of str."""
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=[column]).column(column).take(np.asarray(rows, dtype=np.int64))
    return np.array([str(v) for v in col.to_pylist()], dtype=object)
