"""Point-in-time feature rows: one function for training and for scoring.

:func:`build_features` takes an explicit cutoff table (lead_id, cutoff) and returns
one row of features per cutoff row, named and ordered as in
:func:`propensity.features.spec.build_feature_spec`. Training and scoring call it
the same way; only the cutoffs differ.

Three engines compute the engagement features and give the same values (counts,
days and active days exactly; decay sums up to float rounding, ~1e-14 relative):

- ``running`` (``running.py``, the batch default: training sets, scoring every
  lead): events sorted by (lead, time); each cutoff row finds its eligible
  prefix and window ranges by binary search and reads running totals, so the
  work is O((E + R) log E) instead of rows x events per lead. Large inputs run in
  batches of leads (bounded temporaries, two batches at a time on two threads).
  Why NumPy and not DuckDB here: the step is "search R sorted keys in E sorted
  keys and difference prefix sums", which SQL can only say as an ASOF join per
  threshold plus window functions per signal (several sorts and hash joins of E
  rows); in NumPy it is a sort per batch and a few vectorised searches over int64
  arrays already in memory. The trade-off: it is in-memory, not out of core;
  peak grows ~linearly with events and rows (see ``docs/scaling.md``). DuckDB
  still reads the Parquet export and matches its lead ids
  (``propensity.data.activities``).
  When every row has the same cutoff (the as-of scoring table) and there are at
  least ``asof.MIN_LEADS`` distinct leads, ``"running"`` (and so ``"auto"``) takes
  the sort-free path of ``asof.py`` instead: per-lead aggregates over the export's
  activity arrays (``ufunc.at`` and a day bitmap), same values. When the rows have
  2 to ``snapshots.MAX_SNAPSHOTS`` distinct cutoffs (the training table's
  snapshots) and at least ``snapshots.MIN_LEADS`` distinct leads, it takes
  ``snapshots.py``: compiled (Numba) code that groups the events by lead with two
  counting passes and computes each lead's rows from its own events; same values.
- ``duckdb``: the direct join of rows to events in SQL (streams and spills, but
  does rows x events work); kept as a second independent implementation.
- ``memory`` (``memory.py``): pairwise in NumPy, for one lead or a few, no
  database.
"""

from __future__ import annotations

import threading
import warnings
from typing import Literal

import numpy as np
import pandas as pd

from propensity.config import Criterion, EngagementConfig, IcpConfig
from propensity.data import buffers
from propensity.data.export import CrmExport, DataError, _id_positions
from propensity.features import asof, snapshots
from propensity.features.cutoffs import _us
from propensity.features.memory import DAY_US, Events, engagement_memory
from propensity.features.onelead import (NOT_FINITE, allowed_values, clean_category, number_note, read_number,
                                         unknown_types_warning)
from propensity.features.running import engagement_running
from propensity.features.spec import build_feature_spec

__all__ = ["MEMORY_ENGINE_MAX_LEADS", "build_features", "unusable_value_notes"]

MEMORY_ENGINE_MAX_LEADS = 2_000  # "auto": the pairwise NumPy engine below this many leads, "running" from it


def build_features(export: CrmExport, cutoffs: pd.DataFrame, icp: IcpConfig, engagement: EngagementConfig,
                   engine: Literal["auto", "duckdb", "memory", "running"] = "auto") -> pd.DataFrame:
    """Feature rows for (lead, cutoff) pairs, for training and scoring alike.

    Time contract: a row with cutoff ``T`` sees an activity only if it occurred
    **and** was recorded strictly before ``T`` (``occurred_at < T`` and
    ``recorded_at < T``); an event at ``T`` itself, or backfilled into the CRM at or
    after ``T``, does not count. Firmographic and contact columns (the ICP fit) are
    read as they are in the export; they carry no time.

    Parameters
    ----------
    export
        The validated CRM export.
    cutoffs
        Columns ``lead_id`` and ``cutoff`` (timestamps; naive ones are taken as
        UTC). Any other column (e.g. ``label``) is carried through unchanged.
        Every lead_id must be in ``export.leads``.
    icp, engagement
        The configs the feature spec is built from.
    engine
        ``"memory"`` (NumPy, every (row, event) pair of a lead; no database),
        ``"running"`` (NumPy, sorted running totals; ``running.py``), ``"duckdb"``
        (the pairwise join in SQL), or ``"auto"``: memory for fewer than
        ``MEMORY_ENGINE_MAX_LEADS`` distinct leads, running otherwise.

    Returns
    -------
    DataFrame with the rows of ``cutoffs`` in the same order (index 0..n-1) and
    columns ``lead_id``, ``cutoff``, the extra input columns, then every feature of
    the spec in spec order. Numeric features are float64 (NaN = unknown), held in
    one consolidated block (built in place, not copied); categorical features are
    object columns of str (None = unknown).

    Activities come from :meth:`CrmExport.activity_arrays` (integer lead
    positions, µs times), so the export's activities DataFrame is never needed.

    Definitions, per row with cutoff ``T`` and eligible events as above:

    - ``fit_<c>``: 1.0 if the lead's (or its account's) value matches criterion
      ``c`` (``in``: stripped, case-insensitive membership; ``range``:
      ``min <= value <= max``), 0.0 if not, NaN if the value is unknown or the
      account is not in the export. A ``range`` value that is no finite number
      (text such as ``"1,200"``, a bool, ``±inf``) is unknown, with one warning
      counting the leads that have one (``onelead.read_number``: the one rule).
      ``fit_<c>_value``: the raw value (float for ``range``, stripped str otherwise).
    - ``eng_<s>_<W>d``: events of signal ``s`` with ``T - W days <= occurred_at``;
      ``eng_<s>_days_since``: days from the latest one to ``T`` (NaN if none);
      ``eng_<s>_decay``: sum of ``0.5 ** (age_days / half_life_days)``.
    - ``eng_active_days_<Wmax>d``: distinct UTC dates with any activity (of any
      type) in the longest window; ``eng_days_since_any``; ``lead_age_days``.

    Activity types that no signal lists are ignored by the signal features, with
    one warning giving their count.

    Raises
    ------
    DataError
        If a criterion's column is missing from its table, or the cutoffs are
        malformed or name unknown leads.
    """
    if engine not in ("auto", "duckdb", "memory", "running"):
        raise ValueError(f"engine: expected 'auto', 'duckdb', 'memory' or 'running'; got {engine!r}")
    spec = build_feature_spec(icp, engagement)
    lead_ser, t_col, extras = _check_cutoffs(cutoffs, {f.name for f in spec})
    _check_icp_columns(export, icp)

    row_t = _us(t_col)
    cuts = None
    if engine in ("auto", "running") and len(row_t) >= snapshots.MIN_LEADS:
        cuts = snapshots.snapshot_times(row_t)
        if cuts is not None:  # load the compiled kernels while the rows' leads are matched (Arrow, no GIL)
            threading.Thread(target=snapshots.warm_up, name="propensity-warm-up", daemon=True).start()
    uniq, row_lead, lead_pos = _row_leads(lead_ser, export)
    if engine == "auto":
        engine = "memory" if len(uniq) < MEMORY_ENGINE_MAX_LEADS else "running"

    # Every numeric feature is one row of a (features x rows) float64 block, written in place by
    # the engines and handed to pandas without a copy (each feature contiguous, as pandas stores it).
    n = len(row_lead)
    numeric = [f.name for f in spec if f.kind != "categorical"]
    block = buffers.empty((len(numeric), n), np.float64)
    cols = {name: block[i] for i, name in enumerate(numeric)}

    eng_names = [f.name for f in spec if f.family == "engagement" and f.name != "lead_age_days"]
    t_one = asof.single_cutoff(row_t) if engine == "running" and len(uniq) >= asof.MIN_LEADS else None
    snap = None
    if t_one is None and engine == "running" and len(uniq) >= snapshots.MIN_LEADS:
        snap = cuts
    if t_one is not None:  # one cutoff for every row (the as-of scoring table): per-lead aggregates, no sort
        asof.engagement_asof(export.activity_arrays(), lead_pos[row_lead], t_one, len(export.leads), engagement,
                             out={k: cols[k] for k in eng_names})
    elif snap is not None:  # a few distinct cutoffs (the training table): compiled, lead by lead, no sort
        snapshots.engagement_snapshots(export.activity_arrays(), lead_pos[row_lead], row_t, len(export.leads),
                                       engagement, out={k: cols[k] for k in eng_names}, cuts=snap)
    else:
        events = _events(export, lead_pos, engagement, compact=engine != "running")
        if engine == "running":
            engagement_running(row_lead, row_t, events, engagement, out={k: cols[k] for k in eng_names})
        else:
            run = engagement_memory if engine == "memory" else _engagement_duckdb
            eng = run(row_lead, row_t, events, engagement)
            for k in eng_names:
                cols[k][:] = eng[k]
            del eng
        del events
    created = np.asarray(export.leads["created_at"].array.asi8, dtype=np.int64)[lead_pos]
    np.subtract(row_t, created[row_lead], out=cols["lead_age_days"], casting="unsafe")
    cols["lead_age_days"] /= DAY_US

    categorical = _fit_features(export, icp, lead_pos, row_lead, cols)
    frame = pd.DataFrame(block.T, columns=numeric, copy=False)
    first = {"lead_id": pd.Series(np.take(uniq, row_lead), dtype=object, copy=False), "cutoff": t_col, **extras}
    for loc, (name, values) in enumerate(first.items()):
        frame.insert(loc, name, values)
    offset = len(first)
    for loc, f in enumerate(spec):
        if f.kind == "categorical":
            frame.insert(offset + loc, f.name, pd.Series(categorical[f.name], dtype=object, copy=False))
    return frame


# ------------------------------------------------------------------ inputs


def _check_cutoffs(cutoffs: pd.DataFrame, feature_names: set[str]) -> tuple[pd.Series, pd.Series, dict]:
    """lead_id as a Series of str, cutoff as datetime64[us, UTC], extra columns."""
    if not isinstance(cutoffs, pd.DataFrame):
        raise DataError(f"cutoffs: expected a DataFrame with columns lead_id, cutoff; got {type(cutoffs).__name__}")
    missing = [c for c in ("lead_id", "cutoff") if c not in cutoffs.columns]
    if missing:
        raise DataError(f"cutoffs: missing column(s) {missing}; found {list(cutoffs.columns)}")
    clash = sorted(set(cutoffs.columns) & feature_names)
    if clash:
        raise DataError(f"cutoffs: column(s) {clash} have the names of features; rename or drop them")
    if cutoffs["lead_id"].isna().any():
        raise DataError(f"cutoffs: column 'lead_id' has {int(cutoffs['lead_id'].isna().sum())} empty value(s)")
    lead_col = cutoffs["lead_id"].astype(str).reset_index(drop=True)
    t = cutoffs["cutoff"]
    if pd.api.types.is_numeric_dtype(t.dtype) or pd.api.types.is_bool_dtype(t.dtype):
        raise DataError(f"cutoffs: column 'cutoff': expected timestamps, got numbers, e.g. {t.head(3).tolist()}; "
                        "epoch seconds, milliseconds and serial days look alike, so none is guessed")
    try:
        if isinstance(t.dtype, pd.DatetimeTZDtype):
            t = t.dt.tz_convert("UTC")
        else:
            t = pd.to_datetime(t, utc=True, format="mixed") if t.dtype == object else pd.to_datetime(t, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cutoffs: column 'cutoff': expected timestamps, e.g. 2025-01-31T09:00:00Z ({exc})") from None
    if t.isna().any():
        raise DataError(f"cutoffs: column 'cutoff' has {int(t.isna().sum())} empty value(s)")
    t = t.astype("datetime64[us, UTC]").reset_index(drop=True)
    extras = {c: cutoffs[c].reset_index(drop=True) for c in cutoffs.columns if c not in ("lead_id", "cutoff")}
    return lead_col, t, extras


def _check_icp_columns(export: CrmExport, icp: IcpConfig) -> None:
    for c in icp.criteria:
        table = getattr(export, c.table)
        if c.column not in table.columns:
            raise DataError(f"{export.source}: table '{c.table}' has no column '{c.column}', which the ICP "
                            f"criterion '{c.name}' reads (features/icp.yaml); found {list(table.columns)}")


def _row_leads(lead_ser: pd.Series, export: CrmExport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct lead ids, each row's index among them, each distinct lead's position in ``export.leads``).

    Few rows: :func:`_factorize` (first-seen order) and a lookup. Many: each row's
    id is matched against the export's ids once (Arrow hashing; no sort of the
    rows' strings), and the distinct leads are those positions in export order.
    Raises :class:`DataError` naming up to 3 ids (sorted) that the export lacks.
    """
    ids = export.leads["lead_id"]
    if len(lead_ser) <= 8:
        uniq, row_lead = _factorize(lead_ser)
        lead_pos = _positions(ids, uniq)
        missing = uniq[lead_pos < 0]
    else:
        pos = _id_positions(lead_ser, ids)
        missing = np.unique(lead_ser[pos < 0].to_numpy(dtype=object)) if (pos < 0).any() else []
        if not len(missing):
            present = np.zeros(len(ids), dtype=bool)
            present[pos] = True
            lead_pos = np.flatnonzero(present)
            rank = np.cumsum(present, dtype=np.int64)
            rank -= 1
            row_lead = rank[pos]
            uniq = ids.to_numpy(dtype=object)[lead_pos] if len(lead_pos) < len(ids) else ids.to_numpy(dtype=object)
    if len(missing):
        raise DataError(f"cutoffs: {len(missing)} lead_id(s) not in the export's leads table "
                        f"({export.source}), e.g. {list(missing[:3])}")
    return uniq, row_lead, lead_pos


def _factorize(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (object array of str, first-seen order) and each value's index among them.

    For a handful of rows (one lead scored on demand), where a loop costs less than
    any vectorised call; :func:`_row_leads` handles many.
    """
    seen: dict[str, int] = {}
    codes = np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)
    return np.array(list(seen), dtype=object), codes


def _positions(haystack: pd.Series, needles: np.ndarray) -> np.ndarray:
    """Row position of each of a handful of needles in a column of unique ids (-1 when absent).

    For up to 8 needles (one lead scored on demand), where a loop of comparisons
    costs less than hashing the column; :func:`_id_positions` matches many.
    """
    out = np.full(len(needles), -1, dtype=np.int64)
    for i, needle in enumerate(needles):
        hit = np.flatnonzero((haystack == needle).to_numpy(dtype=bool))
        if len(hit):
            out[i] = hit[0]
    return out


def _events(export: CrmExport, lead_pos: np.ndarray, engagement: EngagementConfig, compact: bool) -> Events:
    """The requested leads' activities as arrays; warns once about types no signal lists.

    ``lead_pos[i]`` is the row in ``export.leads`` of distinct lead ``i``; events get
    ``lead = i``. Works on :meth:`CrmExport.activity_arrays` (int positions), so no
    string id is matched here. ``compact=False`` (the running engine, which batches
    leads itself) keeps every activity, with ``lead = -1`` for the others, shares the
    time and type arrays with the export instead of copying them, and leaves
    ``day`` as None.
    """
    acts = export.activity_arrays()
    to_uniq = np.full(len(export.leads) + 1, -1, dtype=np.int32)  # the last slot: unknown lead (-1)
    to_uniq[lead_pos] = np.arange(len(lead_pos), dtype=np.int32)
    lead = to_uniq[acts.lead]
    del to_uniq
    occ, rec, code = acts.occ, acts.rec, acts.code
    keep = None if lead.min(initial=0) >= 0 else lead >= 0
    if keep is not None and compact:
        idx = np.flatnonzero(keep)
        lead, occ, rec, code = lead[idx], occ[idx], rec[idx], code[idx]
        keep = None
        del idx
    types = acts.types
    member = np.array([[t in set(s.activity_types) for t in types] for s in engagement.signals],
                      dtype=bool).reshape(len(engagement.signals), len(types))
    _warn_unknown_types(code, types, member, keep, engagement.activity_types)
    if compact:
        return Events(lead=lead.astype(np.int64), occ=occ, rec=rec, code=code.astype(np.int64), day=occ // DAY_US,
                      types=types, member=member)
    return Events(lead=lead, occ=occ, rec=rec, code=code, day=None, types=types, member=member)


def _warn_unknown_types(code: np.ndarray, types: np.ndarray, member: np.ndarray,
                        keep: np.ndarray | None = None, listed: set[str] | frozenset[str] = frozenset()) -> None:
    """One warning counting the activities (``keep``: of the requested leads) of types no signal lists.

    ``listed``: every type the engagement config lists, for the suggested mapping of near misses.
    """
    unlisted = np.flatnonzero(~member.any(axis=0))
    if not len(unlisted):  # the usual case: no pass over the activities at all
        return
    if len(unlisted) > 4:
        counts = np.bincount(code if keep is None else code[keep], minlength=len(types))[unlisted]
    else:
        counts = np.array([np.count_nonzero(code == c) if keep is None else np.count_nonzero((code == c) & keep)
                           for c in unlisted], dtype=np.int64)
    unknown = counts > 0  # types seen only for other leads say nothing
    if not unknown.any():
        return
    counts, unlisted = counts[unknown], unlisted[unknown]
    order = np.argsort(-counts, kind="stable")
    by_type = {str(types[u]): int(k) for u, k in zip(unlisted[order].tolist(), counts[order].tolist(), strict=True)}
    # stacklevel: points at the caller of build_features
    warnings.warn(unknown_types_warning(by_type, listed), UserWarning, stacklevel=4)


# ------------------------------------------------------------------ ICP fit


def _fit_features(export: CrmExport, icp: IcpConfig, lead_pos: np.ndarray, row_lead: np.ndarray,
                  cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fit features per row: numeric ones written into ``cols``, categorical ones returned.

    ``lead_pos`` are the distinct leads' positions in ``export.leads`` and
    ``row_lead`` each row's distinct lead. :func:`_criterion` runs once per distinct
    value of a column (plus one unknown); its results are spread to the distinct
    leads, then gathered per row in one pass per feature (no per-row code array).
    A column read by several criteria is factorized once.

    Large tables use a second thread for the work that releases the GIL (Arrow's
    hashing of ids and text, NumPy's gathers of float64) while this one gathers the
    object (str) columns; every task writes its own output, so the values do not
    depend on the scheduling.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    leads = export.leads

    def account_positions(lead_acc: pd.Series, acc_ids: pd.Series) -> np.ndarray:
        if not any(c.table == "accounts" for c in icp.criteria):
            return np.full(len(lead_pos), -1, dtype=np.int64)
        if len(lead_pos) <= 8:
            return _positions(acc_ids, lead_acc.to_numpy(dtype=object)[lead_pos])
        if 4 * len(lead_pos) >= len(lead_acc):  # most leads: match them all, then pick (no string take)
            return _id_positions(lead_acc, acc_ids)[lead_pos]
        return _id_positions(lead_acc.take(lead_pos), acc_ids)

    def prepare(c: Criterion, column: pd.Series, pos: Future) -> tuple[object, np.ndarray]:
        """(raw: the distinct values and one unknown, each distinct lead's entry in raw)."""
        codes, distinct = _distinct(column, numeric_ok=c.kind == "range", rows_ok=c.kind == "in" and not c.raw)
        if isinstance(distinct, np.ndarray):
            raw = np.append(distinct, None)  # the last entry: unknown (missing value or account)
        else:  # pyarrow strings, one per row
            import pyarrow as pa

            raw = pa.concat_arrays([distinct, pa.nulls(1, distinct.type)])
        at = pos.result()
        code = np.full(len(at), len(distinct), dtype=np.int64)
        known = np.flatnonzero(at >= 0)
        if len(known) and len(codes):
            code[known] = codes[at[known]]
            code[code < 0] = len(distinct)
        return raw, code

    def now(fn, *args, **kwargs) -> Future:  # run here, as a finished Future
        done: Future = Future()
        done.set_result(fn(*args, **kwargs))
        return done

    def key(c: Criterion) -> tuple:
        return c.table, c.column, c.kind == "range", c.kind == "in" and not c.raw

    out: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        run = pool.submit if len(row_lead) >= 100_000 else now  # small tables: no threads at all
        positions = {"leads": now(lambda: lead_pos),
                     "accounts": run(account_positions, leads["account_id"], export.accounts["account_id"])}
        prepared: dict[tuple, Future] = {}
        # leads' columns first: those of accounts wait for the account positions. Columns are read
        # here, not in the workers: pandas objects are not shared across threads. A task waits only
        # for tasks submitted before it (first in, first out), so two workers cannot deadlock.
        criteria = sorted(icp.criteria, key=lambda c: c.table != "leads")
        for c in criteria:
            if key(c) not in prepared:
                prepared[key(c)] = run(prepare, c, getattr(export, c.table)[c.column], positions[c.table])
        results = [run(lambda c=c: _range(c, prepared[key(c)].result()[0]) if c.kind == "range"
                       else (*_criterion(c, prepared[key(c)].result()[0]), None)) for c in criteria]
        gathers = []
        unusable = []
        for c, result in zip(criteria, results, strict=True):
            raw, code = prepared[key(c)].result()
            match, value, why = result.result()
            if why is not None and (bad := np.flatnonzero(pd.notna(why))).size:
                unusable.append(_unusable_warning(c, raw, why, bad, code))
            for name, values in ((f"fit_{c.name}", match if c.kind != "value" else None),
                                 (f"fit_{c.name}_value", value if c.raw else None)):
                if values is None:
                    continue
                per_lead = values[code]
                if name in cols:  # mode="clip": indices in range; "raise" would buffer the output
                    gathers.append(run(np.take, per_lead, row_lead, out=cols[name], mode="clip"))
                else:
                    out[name] = np.take(per_lead, row_lead)  # object: one pass (np.take beats fancy indexing)
        for g in gathers:
            g.result()  # re-raises a worker's error
    for text in unusable:
        if text:
            warnings.warn(text, UserWarning, stacklevel=3)  # points at the caller of build_features
    return out


def unusable_value_notes(export: CrmExport, icp: IcpConfig, lead_ids: pd.Series) -> dict[int, list[str]]:
    """Per row of ``lead_ids`` whose lead has a ``range`` value that is no finite number: the notes naming it.

    The batch counterpart of the one-lead path's notes (``"Company size (employees):
    '1,200' is not a number, treated as unknown"``), by the same rule
    (:func:`~propensity.features.onelead.read_number`). Empty, after one cheap look
    at each column, when every value is usable (the usual case).
    """
    out: dict[int, list[str]] = {}
    lead_pos = acc_pos = None
    for c in icp.criteria:
        if c.kind != "range":
            continue
        col = getattr(export, c.table)[c.column]
        if getattr(col.dtype, "kind", "O") in "iu":
            continue
        if getattr(col.dtype, "kind", "O") == "f" and not np.isinf(col.to_numpy(dtype=np.float64)).any():
            continue
        codes, raw = _distinct(col, numeric_ok=True)
        _, why = _numbers(np.asarray(raw, dtype=object))
        bad = pd.notna(why)
        if not bad.any():
            continue
        if lead_pos is None:
            lead_pos = _id_positions(lead_ids.astype(str).reset_index(drop=True), export.leads["lead_id"])
        pos = lead_pos
        if c.table == "accounts":
            if acc_pos is None:
                acc_ids = export.leads["account_id"].to_numpy(dtype=object)[np.maximum(lead_pos, 0)]
                acc_pos = np.where(lead_pos >= 0, _id_positions(pd.Series(acc_ids, dtype=object),
                                                                export.accounts["account_id"]), -1)
            pos = acc_pos
        row_code = np.where(pos >= 0, codes[np.maximum(pos, 0)], -1)
        hit = np.flatnonzero((row_code >= 0) & bad[np.maximum(row_code, 0)])
        for i in hit.tolist():
            k = int(row_code[i])
            out.setdefault(i, []).append(number_note(c.display, raw[k], why[k]))
    return out


def _unusable_warning(c: Criterion, raw: np.ndarray, why: np.ndarray, bad: np.ndarray, code: np.ndarray) -> str:
    """The warning on a range criterion's values that are no finite number, counted over the leads of the rows.

    ``raw``: the column's distinct values (then one unknown), ``why`` per value (None: usable),
    ``bad`` the unusable ones, ``code`` each distinct lead's value. Empty when no lead has one.
    """
    hit = np.zeros(len(raw), dtype=bool)
    hit[bad] = True
    n = int(np.count_nonzero(hit[code]))
    if not n:
        return ""
    used = np.unique(code[hit[code]])
    sample = [raw[i].item() if isinstance(raw[i], np.generic) else raw[i] for i in used[:3].tolist()]
    kinds = sorted({str(why[i]).removeprefix("is ") for i in used.tolist()})
    return (f"{c.table}.{c.column}: {n:,} of {len(code):,} leads have a value that is {' or '.join(kinds)}, e.g. "
            f"{sample}; their {c.display} is unknown (missing, never 0 or a category)")


def _numbers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~propensity.features.onelead.read_number` of each value: (float64, why each is unusable or None).

    Columns of numbers only are read in one vectorised pass (then only ±inf is
    unusable); anything else (text, bools, a mix) value by value, by the one-value rule.
    """
    s = pd.Series(raw, dtype=object)
    if pd.api.types.infer_dtype(s, skipna=True) in ("integer", "floating", "mixed-integer-float", "empty"):
        value = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        why = np.full(len(value), None, dtype=object)
        inf = np.isinf(value)
        if inf.any():
            why[inf] = NOT_FINITE
            value = np.where(inf, np.nan, value)
        return value, why
    pairs = [read_number(v) for v in raw]
    return (np.fromiter((v for v, _ in pairs), dtype=np.float64, count=len(pairs)),
            np.array([w for _, w in pairs], dtype=object))


def _range(c: Criterion, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(match, value, why each value is unusable or None) of a ``range`` criterion over object values."""
    value, why = _numbers(raw)
    lo = -np.inf if c.min is None else c.min
    hi = np.inf if c.max is None else c.max
    with np.errstate(invalid="ignore"):
        match = np.where(np.isnan(value), np.nan, ((value >= lo) & (value <= hi)).astype(np.float64))
    return match, value, why


def _distinct(column: pd.Series, numeric_ok: bool, rows_ok: bool = False) -> tuple[np.ndarray, object]:
    """(code per row, distinct values as objects); code -1 = missing.

    Values are merged only where equal values give equal :func:`_criterion` results:
    text columns, and int/float columns when ``numeric_ok`` (a range compares
    numbers; ``str`` would tell 0.0 from -0.0). Other columns keep one entry per row.

    ``rows_ok``: the caller wants no value back, only a match (an ``in`` criterion
    without its raw value). A text column then comes back unhashed, one entry per
    row (code = row) as a pyarrow string array, which :func:`_criterion` matches in
    Arrow: cheaper than factorizing a column of many distinct values (e-mail
    domains: ~300k per million leads).
    """
    dtype = column.dtype
    text = (pd.api.types.is_string_dtype(dtype) and dtype != object) or \
        (dtype == object and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"))
    if text and rows_ok and len(column) > 8:
        from propensity.data.activities import _arrow_str

        arr = _arrow_str(column)
        if arr is not None:
            arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
            return np.arange(len(arr), dtype=np.int64), arr
    if text or (numeric_ok and getattr(dtype, "kind", "O") in "iuf"):
        codes, uniq = pd.factorize(column, use_na_sentinel=True)
        return codes.astype(np.int64, copy=False), np.asarray(uniq, dtype=object)
    values = column.to_numpy(dtype=object)
    return np.arange(len(values), dtype=np.int64), values


def _criterion(c: Criterion, raw: object) -> tuple[np.ndarray, np.ndarray | None]:
    """(match as float64 with NaN for unknown, raw value) for one criterion.

    ``raw`` is an object array, or (``in``/``value`` criteria; see :func:`_distinct`)
    a pyarrow string array with nulls for unknown, matched in Arrow with Python's
    rules: ASCII text is stripped of exactly the characters ``str.strip`` removes
    from ASCII and lower-cased as ``str.lower`` does; other text goes through
    :func:`clean_category` itself. The value is then given only when ``c.raw``.
    """
    if not isinstance(raw, np.ndarray):
        import pyarrow as pa
        import pyarrow.compute as pc

        space = "".join(chr(i) for i in range(128) if chr(i).isspace())  # str.strip() on ASCII text
        stripped = pc.ascii_trim(raw, characters=space)
        unknown = pc.fill_null(pc.equal(pc.binary_length(stripped), 0), True).to_numpy(zero_copy_only=False)
        if c.kind == "in":
            allowed = pa.array(sorted(allowed_values(c)), type=pa.string())
            hit = pc.is_in(pc.ascii_lower(stripped), value_set=allowed)
            match = pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            match = np.full(len(raw), np.nan)
        match[unknown] = np.nan
        value = None
        if c.raw:
            value = stripped.to_numpy(zero_copy_only=False)
            value[unknown] = None
        other = np.flatnonzero(~pc.fill_null(pc.string_is_ascii(raw), True).to_numpy(zero_copy_only=False))
        if len(other):  # non-ASCII text: Python's own strip and lower, once per distinct value
            codes, uniq = pd.factorize(raw.take(pa.array(other)).to_numpy(zero_copy_only=False))
            m, v = _criterion(c, np.asarray(uniq, dtype=object))
            match[other] = m[codes]
            if value is not None:
                value[other] = v[codes]
        return match, value
    if c.kind == "range":
        return _range(c, raw)[:2]
    value = np.array([clean_category(v) for v in raw], dtype=object)
    if c.kind == "in":
        allowed = allowed_values(c)
        match = np.array([np.nan if v is None else float(v.lower() in allowed) for v in value], dtype=np.float64)
    else:
        match = np.full(len(value), np.nan)
    return match, value


# ------------------------------------------------------------------ DuckDB engine


def _engagement_duckdb(row_lead: np.ndarray, row_t: np.ndarray, events: Events,
                       engagement: EngagementConfig) -> dict[str, np.ndarray]:
    """The engagement features of :func:`engagement_memory`, computed by DuckDB.

    Events are joined to rows on lead under the time contract and aggregated per
    (row, signal) with FILTERed counts, one pass; a second pass counts distinct
    active days per row. DuckDB streams and spills, so the (row, event) pairs are
    never held in pandas; the long result is pivoted to wide columns in NumPy.
    """
    import duckdb  # only the batch path pays for it

    n, n_sig = len(row_lead), len(engagement.signals)
    windows = engagement.windows_days
    longest = max(windows)
    rows = pd.DataFrame({"rid": np.arange(n, dtype=np.int64), "lead": row_lead, "t": row_t})
    # One event row per signal it belongs to (sig -1: no signal, still activity).
    sig_of_event, event_idx = [], []
    for s_idx in range(n_sig):
        idx = np.flatnonzero(events.member[s_idx][events.code])
        event_idx.append(idx)
        sig_of_event.append(np.full(len(idx), s_idx))
    none = np.flatnonzero(~events.member.any(axis=0)[events.code])
    idx = np.concatenate([*event_idx, none])
    sig = np.concatenate([*sig_of_event, np.full(len(none), -1)]).astype(np.int64)
    half_life = np.array([s.half_life_days for s in engagement.signals] + [1.0], dtype=np.float64)
    ev = pd.DataFrame({"lead": events.lead[idx], "occ": events.occ[idx], "rec": events.rec[idx],
                       "sig": sig, "hl": half_life[sig], "day": events.day[idx]})
    joined = "FROM rows r JOIN ev e ON e.lead = r.lead AND e.occ < r.t AND e.rec < r.t"
    counts = ", ".join(f"count(*) FILTER (WHERE age <= {w * DAY_US}) AS w{i}" for i, w in enumerate(windows))
    per_signal = f"""
        SELECT rid, sig, {counts}, min(age) AS min_age,
               sum(pow(0.5, (age::DOUBLE / {DAY_US}::DOUBLE) / hl)) AS decay
        FROM (SELECT r.rid, r.t - e.occ AS age, e.sig, e.hl {joined})
        GROUP BY rid, sig"""
    active = f"""
        SELECT rid, count(*) AS days
        FROM (SELECT DISTINCT r.rid, e.day {joined} AND r.t - e.occ <= {longest * DAY_US})
        GROUP BY rid"""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # the CLI owns progress output
        con.register("rows", rows)
        con.register("ev", ev)
        long = con.execute(per_signal).fetchnumpy()
        act = con.execute(active).fetchnumpy()
    finally:
        con.close()

    rid = np.asarray(long["rid"], dtype=np.int64)
    sig = np.asarray(long["sig"], dtype=np.int64)
    min_age = np.asarray(long["min_age"], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for s_idx, s in enumerate(engagement.signals):
        m = sig == s_idx
        for i, w in enumerate(windows):
            out[f"eng_{s.name}_{w}d"] = _scatter(n, rid[m], np.asarray(long[f"w{i}"])[m], 0.0)
        out[f"eng_{s.name}_days_since"] = _scatter(n, rid[m], min_age[m] / DAY_US, np.nan)
        out[f"eng_{s.name}_decay"] = _scatter(n, rid[m], np.asarray(long["decay"])[m], 0.0)
    out[f"eng_active_days_{longest}d"] = _scatter(n, np.asarray(act["rid"], dtype=np.int64),
                                                  np.asarray(act["days"]), 0.0)
    latest = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(latest, rid, min_age)
    out["eng_days_since_any"] = np.where(latest == np.iinfo(np.int64).max, np.nan, latest / DAY_US)
    return out


def _scatter(n: int, index: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
    full = np.full(n, fill, dtype=np.float64)
    full[index] = values
    return full
