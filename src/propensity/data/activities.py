"""Activities as NumPy arrays: the batch feature path reads them without pandas strings.

:class:`ActivityArrays` holds, per activity row (file order): the row position of
its lead in the export's ``leads`` table (-1 when the lead is unknown), the
activity type as a code into ``types`` (distinct str, first-seen order), and
``occurred_at`` / ``recorded_at`` as int64 µs since the epoch (UTC).

:func:`read_activity_arrays` reads a clean Parquet ``activities`` file straight
into these arrays (Arrow dictionary codes, no per-row Python str); it returns
``None`` whenever the file needs the full pandas checks (missing columns, nulls,
naive or non-timestamp columns, non-text ids), so that every error message comes
from one place (:mod:`propensity.data.export`). :func:`arrays_from_frame` derives
the same arrays from a validated activities DataFrame.

With ``allow_null_times`` (the lenient scoring read, see
:func:`propensity.data.export.read_export`), empty ``occurred_at`` /
``recorded_at`` values do not send the file to the pandas path: they become
:data:`NAT_US` (pandas' NaT as µs), exactly as :func:`arrays_from_frame` gives
them, and the caller drops or keeps those rows.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["NAT_US", "ActivityArrays", "arrays_from_frame", "read_activity_arrays"]

# From this many activities DuckDB matches the lead ids (see _read_duckdb). A module global, read at each
# call, so that tests can lower it (monkeypatch) instead of writing millions of rows.
DUCKDB_MIN_ROWS = 2_000_000
NAT_US = int(np.iinfo(np.int64).min)  # an empty timestamp in the µs arrays (what NaT.asi8 gives)


@dataclass(frozen=True)
class ActivityArrays:
    """Activities as arrays aligned on the file's rows (see the module docstring)."""

    lead: np.ndarray  # int32 row position in leads, -1 = unknown lead
    occ: np.ndarray  # int64 µs
    rec: np.ndarray  # int64 µs (may be the same array as occ)
    code: np.ndarray  # int16 (int32 beyond 32767 types) index into types
    types: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.lead)


def arrays_from_frame(acts: pd.DataFrame, lead_ids: pd.Series) -> ActivityArrays:
    """The arrays of a validated activities frame (``lead_id`` str, times datetime64[us, UTC])."""
    from propensity.data.export import _lead_positions  # one implementation of id matching

    lead = _lead_positions(acts["lead_id"], lead_ids).astype(np.int32)
    code, types = pd.factorize(acts["activity_type"])
    code = code.astype(np.int16 if len(types) < 2 ** 15 else np.int32)
    return ActivityArrays(lead=lead, occ=_col_us(acts["occurred_at"]), rec=_col_us(acts["recorded_at"]),
                          code=code, types=np.asarray(types, dtype=object))


def _col_us(col: pd.Series) -> np.ndarray:
    if isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.unit) == "us":
        return np.asarray(col.array.asi8, dtype=np.int64)
    from propensity.features.cutoffs import _us

    return _us(col)


def read_activity_arrays(path: Path, lead_ids: pd.Series, allow_null_times: bool = False) -> ActivityArrays | None:
    """Read a Parquet activities file into arrays, or ``None`` if it needs the pandas path.

    The fast path takes files whose ``lead_id`` and ``activity_type`` are text (plain
    or dictionary-encoded) without nulls, and whose ``occurred_at`` (and
    ``recorded_at``, if present) are zone-aware timestamps without nulls. Row
    groups are decoded one at a time into preallocated arrays, so the peak is the
    arrays plus one row group. ``allow_null_times``: empty times are read as
    :data:`NAT_US` instead of falling back to the pandas path.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        pf = pq.ParquetFile(path)
    except Exception:  # noqa: BLE001 - let the pandas path produce the message
        return None
    schema = pf.schema_arrow
    names = set(schema.names)
    if not {"lead_id", "activity_type", "occurred_at"} <= names:
        return None
    has_rec = "recorded_at" in names
    for col in ("lead_id", "activity_type"):
        t = schema.field(col).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            return None
    for col in ("occurred_at", "recorded_at") if has_rec else ("occurred_at",):
        t = schema.field(col).type
        if not pa.types.is_timestamp(t) or t.tz is None:
            return None

    n = pf.metadata.num_rows
    if n >= DUCKDB_MIN_ROWS:
        arrays = _read_duckdb(path, pf, lead_ids, has_rec, allow_null_times)
        if arrays is not None:
            return arrays
    lead = np.empty(n, dtype=np.int32)
    occ = np.empty(n, dtype=np.int64)
    rec = np.empty(n, dtype=np.int64) if has_rec else occ
    local = np.empty(n, dtype=np.int32)  # activity type codes into each chunk's own dictionary
    value_set = pa.array(lead_ids.to_numpy(dtype=object), type=pa.string())
    columns = ["lead_id", "activity_type", "occurred_at"] + (["recorded_at"] if has_rec else [])
    no_nulls = columns[:2] if allow_null_times else columns
    starts = np.zeros(pf.metadata.num_row_groups + 1, dtype=np.int64)
    np.cumsum([pf.metadata.row_group(rg).num_rows for rg in range(pf.metadata.num_row_groups)], out=starts[1:])
    if starts[-1] != n:
        return None
    cache: dict[int, tuple[object, np.ndarray]] = {}  # the last lead dictionary per thread, and its positions

    def one(rg: int) -> list[tuple[slice, list]] | None:
        """Decode row group ``rg`` into the arrays; its type dictionaries, or None if the pandas path must."""
        table = pq.ParquetFile(path).read_row_group(rg, columns=columns)  # own handle: thread-safe
        if table.num_rows != starts[rg + 1] - starts[rg] or any(table.column(c).null_count for c in no_nulls):
            return None
        at = int(starts[rg])
        for chunk, out in _chunks(table.column("lead_id"), at):
            if pa.types.is_dictionary(chunk.type):
                key = threading.get_ident()
                hit = cache.get(key)
                if hit is None or not hit[0].equals(chunk.dictionary):  # row groups often share one dictionary
                    pos = pc.index_in(chunk.dictionary.cast(pa.string()), value_set=value_set).fill_null(-1)
                    hit = (chunk.dictionary, np.asarray(pos, dtype=np.int32))
                    cache[key] = hit
                np.take(hit[1], np.asarray(chunk.indices), out=lead[out])
            else:
                lead[out] = np.asarray(pc.index_in(chunk.cast(pa.string()), value_set=value_set).fill_null(-1))
        words = []
        for chunk, out in _chunks(table.column("activity_type"), at):
            enc = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
            local[out] = np.asarray(enc.indices)
            words.append((out, [str(w) for w in enc.dictionary.to_pylist()]))
        if not _times(table.column("occurred_at"), occ, at):
            return None
        if has_rec and not _times(table.column("recorded_at"), rec, at):
            return None
        return words

    groups = range(pf.metadata.num_row_groups)
    if len(groups) > 1:
        with ThreadPoolExecutor(2) as pool:  # Arrow decodes and NumPy copies without the GIL
            parts = list(pool.map(one, groups))
    else:
        parts = [one(rg) for rg in groups]
    if any(p is None for p in parts):
        return None
    # Activity types: one code space in first-seen order (as pd.factorize), chunk by chunk in file order.
    type_index: dict[str, int] = {}
    code = np.empty(n, dtype=np.int32)
    for words in parts:
        for out, names in words:
            loc = local[out]
            seen = np.bincount(loc, minlength=len(names)) > 0 if len(loc) else np.zeros(len(names), dtype=bool)
            new = [i for i in np.flatnonzero(seen) if names[i] not in type_index]
            new.sort(key=lambda i: int(np.argmax(loc == i)))
            for i in new:
                type_index[names[i]] = len(type_index)
            remap = np.array([type_index.get(w, -1) for w in names] or [-1], dtype=np.int32)
            code[out] = remap[loc]
    code = code.astype(np.int16) if len(type_index) < 2 ** 15 else code
    types = np.array(list(type_index), dtype=object)
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def _read_duckdb(path: Path, pf, lead_ids: pd.Series, has_rec: bool,
                 allow_null_times: bool = False) -> ActivityArrays | None:
    """The same arrays, with DuckDB matching lead ids (a hash join, on all cores).

    Pandas-written Parquet repeats the whole categorical dictionary (every lead id)
    in each row group; Arrow decodes it per row group, DuckDB does not. Rows come
    back in any order with their ``file_row_number`` and are put in place. Needs
    null counts in the file's statistics (else ``None``: the other paths check).
    """
    import duckdb
    import pyarrow as pa

    cols = ["lead_id", "activity_type", "occurred_at"] + (["recorded_at"] if has_rec else [])
    schema = pf.schema_arrow
    if any(schema.field(c).type.unit == "ns" for c in cols[2:]):
        return None  # ns -> µs would truncate; the pandas path does what it always did
    meta = pf.metadata
    index = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    for rg in range(meta.num_row_groups):
        for c in cols:
            if c not in index:
                return None
            stats = meta.row_group(rg).column(index[c]).statistics
            if stats is None or not stats.has_null_count:
                return None
            if stats.null_count and not (allow_null_times and c in ("occurred_at", "recorded_at")):
                return None
    n = meta.num_rows
    ids = pa.table({"lead_id": pa.array(lead_ids.to_numpy(dtype=object), type=pa.string()),
                    "pos": pa.array(np.arange(len(lead_ids), dtype=np.int32))})
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("ids", ids)
        src = f"read_parquet({_sql_str(str(path))}, file_row_number = true)"
        # Types in first-seen order (as pd.factorize would give them).
        first = con.execute(f"SELECT activity_type::VARCHAR, min(file_row_number) AS r FROM {src} "
                            "GROUP BY 1 ORDER BY r").fetchall()
        types = np.array([t for t, _ in first], dtype=object)
        if len(types) >= 2 ** 15:  # codes are int16 here
            return None
        con.register("types", pa.table({"name": pa.array(types.tolist(), type=pa.string()),
                                        "code": pa.array(np.arange(len(types), dtype=np.int16))}))
        rec_sql = "epoch_us(a.recorded_at)" if has_rec else "NULL::BIGINT"
        reader = con.sql(f"""
            SELECT a.file_row_number AS r, coalesce(i.pos, -1)::INTEGER AS pos, t.code,
                   epoch_us(a.occurred_at) AS occ, {rec_sql} AS rec
            FROM {src} a JOIN types t ON a.activity_type::VARCHAR = t.name
            LEFT JOIN ids i ON a.lead_id::VARCHAR = i.lead_id""").to_arrow_reader(1 << 20)
        lead = np.empty(n, dtype=np.int32)
        occ = np.empty(n, dtype=np.int64)
        rec = np.empty(n, dtype=np.int64) if has_rec else occ
        code = np.empty(n, dtype=np.int16)
        seen = 0
        for batch in reader:
            r = batch.column(0).to_numpy()
            lead[r] = batch.column(1).to_numpy()
            code[r] = batch.column(2).to_numpy()
            occ[r] = _filled(batch.column(3))
            if has_rec:
                rec[r] = _filled(batch.column(4))
            seen += len(r)
    finally:
        con.close()
    if seen != n:
        return None
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def _filled(col) -> np.ndarray:
    """An int64 Arrow array as NumPy, nulls (empty times, lenient read only) as NAT_US."""
    if col.null_count:
        col = col.fill_null(NAT_US)
    return col.to_numpy()


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _chunks(column, at: int):
    """(chunk, slice of the output) for each chunk of a ChunkedArray starting at row ``at``."""
    for chunk in column.chunks:
        yield chunk, slice(at, at + len(chunk))
        at += len(chunk)


def _times(column, out: np.ndarray, at: int) -> bool:
    """Copy a timestamp column into ``out`` as µs; False if a unit is not exactly µs-representable."""
    import pyarrow as pa

    for chunk, sl in _chunks(column, at):
        if chunk.type.unit != "us":
            try:
                chunk = chunk.cast(pa.timestamp("us", tz=chunk.type.tz))  # safe cast: raises on lost precision
            except (pa.ArrowInvalid, ValueError):
                return False
        out[sl] = np.asarray(chunk.view(pa.int64()).fill_null(NAT_US) if chunk.null_count
                             else chunk.view(pa.int64()))
    return True
