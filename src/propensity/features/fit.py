"""The ICP fit features of a batch: each criterion matched once per distinct value, then gathered per row.

``fit_<c>`` is 1.0 when the lead's (or its account's) value matches criterion ``c``,
0.0 when not and NaN when unknown; ``fit_<c>_value`` is the value itself. The rules
are :mod:`propensity.features.rules`' (one lead is matched by the same ones). A
``range`` value that is no finite number is unknown, with one warning counting
the leads that have one, and a note per lead for the scorer
(:func:`unusable_value_notes`).
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd

from propensity.config import Criterion, IcpConfig
from propensity.core import names
from propensity.core.errors import DataError
from propensity.core.ids import FEW_IDS, arrow_text, few_positions, id_positions
from propensity.data.export import CrmExport
from propensity.features.rules import criterion_values, number_note, range_values, read_numbers

__all__ = ["check_icp_columns", "distinct_values", "fit_features", "unusable_value_notes"]

PARALLEL_ROWS = 100_000  # from this many rows the fit features use a second thread (smaller tables: none at all)


def check_icp_columns(export: CrmExport, icp: IcpConfig) -> None:
    """Raise :class:`DataError` naming the table, column and criterion when the export lacks a column the ICP reads."""
    for c in icp.criteria:
        table = getattr(export, c.table)
        if c.column not in table.columns:
            raise DataError(f"{export.source}: table '{c.table}' has no column '{c.column}', which the ICP "
                            f"criterion '{c.name}' reads (features/icp.yaml); found {list(table.columns)}")


def fit_features(export: CrmExport, icp: IcpConfig, lead_pos: np.ndarray, row_lead: np.ndarray,
                 cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fit features per row: numeric ones written into ``cols``, categorical ones returned.

    ``lead_pos`` are the distinct leads' positions in ``export.leads`` and
    ``row_lead`` each row's distinct lead. Each criterion is matched
    (:func:`~propensity.features.rules.criterion_values`) once per distinct value of
    its column (plus one unknown); the results are spread to the distinct leads,
    then gathered per row in one pass per feature (no per-row code array). A column
    read by several criteria is factorized once.

    Large tables use a second thread for the work that releases the GIL (Arrow's
    hashing of ids and text, NumPy's gathers of float64) while this one gathers the
    object (str) columns; every task writes its own output, so the values do not
    depend on the scheduling.
    """
    leads = export.leads

    def account_positions(lead_acc: pd.Series, acc_ids: pd.Series) -> np.ndarray:
        if not any(c.table == "accounts" for c in icp.criteria):
            return np.full(len(lead_pos), -1, dtype=np.int64)
        if len(lead_pos) <= FEW_IDS:
            return few_positions(acc_ids, lead_acc.to_numpy(dtype=object)[lead_pos])
        if 4 * len(lead_pos) >= len(lead_acc):  # most leads: match them all, then pick (no string take)
            return id_positions(lead_acc, acc_ids)[lead_pos]
        return id_positions(lead_acc.take(lead_pos), acc_ids)

    def prepare(c: Criterion, column: pd.Series, pos: Future) -> tuple[object, np.ndarray]:
        """(raw: the distinct values and one unknown, each distinct lead's entry in raw)."""
        codes, distinct = distinct_values(column, numeric_ok=c.kind == "range", rows_ok=c.kind == "in" and not c.raw)
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
        run = pool.submit if len(row_lead) >= PARALLEL_ROWS else now
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
        results = [run(lambda c=c: range_values(c, prepared[key(c)].result()[0]) if c.kind == "range"
                       else (*criterion_values(c, prepared[key(c)].result()[0]), None)) for c in criteria]
        gathers = []
        unusable = []
        for c, result in zip(criteria, results, strict=True):
            raw, code = prepared[key(c)].result()
            match, value, why = result.result()
            if why is not None and (bad := np.flatnonzero(pd.notna(why))).size:
                unusable.append(_unusable_warning(c, raw, why, bad, code))
            for name, values in ((names.fit_match(c.name), match if c.kind != "value" else None),
                                 (names.fit_value(c.name), value if c.raw else None)):
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
    (:func:`~propensity.features.rules.read_number`). Empty, after one cheap look
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
        codes, raw = distinct_values(col, numeric_ok=True)
        _, why = read_numbers(np.asarray(raw, dtype=object))
        bad = pd.notna(why)
        if not bad.any():
            continue
        if lead_pos is None:
            lead_pos = id_positions(lead_ids.astype(str).reset_index(drop=True), export.leads["lead_id"])
        pos = lead_pos
        if c.table == "accounts":
            if acc_pos is None:
                acc_ids = export.leads["account_id"].to_numpy(dtype=object)[np.maximum(lead_pos, 0)]
                acc_pos = np.where(lead_pos >= 0, id_positions(pd.Series(acc_ids, dtype=object),
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


def distinct_values(column: pd.Series, numeric_ok: bool, rows_ok: bool = False) -> tuple[np.ndarray, object]:
    """(code per row, distinct values as objects); code -1 = missing.

    Values are merged only where equal values give equal criterion results
    (:func:`~propensity.features.rules.criterion_values`): text columns, and
    int/float columns when ``numeric_ok`` (a range compares numbers; ``str`` would
    tell 0.0 from -0.0). Other columns keep one entry per row.

    ``rows_ok``: the caller wants no value back, only a match (an ``in`` criterion
    without its raw value). A text column then comes back unhashed, one entry per
    row (code = row) as a pyarrow string array, which ``criterion_values`` matches in
    Arrow: cheaper than factorizing a column of many distinct values (e-mail
    domains: a third of the leads).
    """
    dtype = column.dtype
    is_object = pd.api.types.is_object_dtype(dtype)
    text = (pd.api.types.is_string_dtype(dtype) and not is_object) or \
        (is_object and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"))
    if text and rows_ok and len(column) > FEW_IDS:
        arr = arrow_text(column)
        if arr is not None:
            arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
            return np.arange(len(arr), dtype=np.int64), arr
    if text or (numeric_ok and getattr(dtype, "kind", "O") in "iuf"):
        codes, uniq = pd.factorize(column, use_na_sentinel=True)
        return codes.astype(np.int64, copy=False), np.asarray(uniq, dtype=object)
    values = column.to_numpy(dtype=object)
    return np.arange(len(values), dtype=np.int64), values
