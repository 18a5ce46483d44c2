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

Large files (:data:`DUCKDB_MIN_ROWS`) whose text columns are dictionary-encoded
(pandas writes its categoricals so, one dictionary repeated in every row group)
have their dictionary indices decoded straight from the Parquet pages
(:mod:`propensity.data.parquet_pages`, which says why no library does it), so that
each distinct dictionary is matched against the leads once, while DuckDB decodes
the times.

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

from propensity.core.ids import arrow_text, key_positions
from propensity.core.times import to_us
from propensity.data import buffers
from propensity.data.parquet_pages import DictionaryIndices

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
    lead = key_positions(acts["lead_id"], lead_ids).astype(np.int32)
    code, types = pd.factorize(acts["activity_type"])
    code = code.astype(np.int16 if len(types) < 2 ** 15 else np.int32)
    return ActivityArrays(lead=lead, occ=_col_us(acts["occurred_at"]), rec=_col_us(acts["recorded_at"]),
                          code=code, types=np.asarray(types, dtype=object))


def _col_us(col: pd.Series) -> np.ndarray:
    if isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.unit) == "us":
        return np.asarray(col.array.asi8, dtype=np.int64)
    return to_us(col)


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
    lead = buffers.empty(n, np.int32)
    occ = buffers.empty(n, np.int64)
    rec = buffers.empty(n, np.int64) if has_rec else occ
    local = buffers.empty(n, np.int32)  # activity type codes into each chunk's own dictionary
    value_set = _id_set(lead_ids)
    columns = ["lead_id", "activity_type", "occurred_at"] + (["recorded_at"] if has_rec else [])
    no_nulls = columns[:2] if allow_null_times else columns
    starts = np.zeros(pf.metadata.num_row_groups + 1, dtype=np.int64)
    np.cumsum([pf.metadata.row_group(rg).num_rows for rg in range(pf.metadata.num_row_groups)], out=starts[1:])
    if starts[-1] != n:
        return None
    cache: dict[int, tuple[object, np.ndarray]] = {}  # the last lead dictionary per thread, and its positions

    def read_row_group(rg: int) -> list[tuple[slice, list]] | None:
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
                np.take(hit[1], np.asarray(chunk.indices), out=lead[out], mode="clip")
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
            parts = list(pool.map(read_row_group, groups))
    else:
        parts = [read_row_group(rg) for rg in groups]
    if any(p is None for p in parts):
        return None
    code, types = _merge_types(local, [w for words in parts for w in words])
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def _merge_types(local: np.ndarray, words: list[tuple[slice, list[str]]],
                 present: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One code space for the activity types, in first-seen order (as ``pd.factorize`` gives it).

    ``local`` holds, for each slice of rows in ``words`` (in file order), codes into
    that slice's own names (each Parquet chunk has its own dictionary; pandas-written
    files repeat one). Passes over the rows are skipped where they cannot change
    anything: no search for new types once all of a chunk's names are known, no
    copy when the codes already are the final ones. ``present[k]``: which names of
    chunk k occur in it (computed here if not given).
    """
    type_index: dict[str, int] = {}
    remaps: list[np.ndarray | None] = []
    for k, (out, names) in enumerate(words):
        if not all(w in type_index for w in names):
            loc = local[out]
            if present is not None:
                seen = present[k]
            else:
                seen = np.bincount(loc, minlength=len(names)) > 0 if len(loc) else np.zeros(len(names), dtype=bool)
            new = [i for i in np.flatnonzero(seen) if names[i] not in type_index]
            new.sort(key=lambda i: int(np.argmax(loc == i)))
            for i in new:
                type_index[names[i]] = len(type_index)
        remap = np.array([type_index.get(w, -1) for w in names] or [-1], dtype=np.int32)
        remaps.append(None if np.array_equal(remap, np.arange(len(remap))) else remap)
    dtype = np.int16 if len(type_index) < 2 ** 15 else np.int32
    if local.dtype == dtype and all(r is None for r in remaps):
        code = local
    else:
        code = buffers.empty(len(local), dtype)
        for (out, _), remap in zip(words, remaps, strict=True):
            if remap is None:
                code[out] = local[out]
            else:
                np.take(remap.astype(dtype), local[out], out=code[out], mode="clip")
    return code, np.array(list(type_index), dtype=object)


def _read_duckdb(path: Path, pf, lead_ids: pd.Series, has_rec: bool,
                 allow_null_times: bool = False) -> ActivityArrays | None:
    """The same arrays for large files: DuckDB reads the times, the text columns are read through their dictionaries.

    Pandas-written Parquet repeats the whole categorical dictionary (every lead id)
    in each row group: Arrow hashes it again per row group, and a DuckDB join hashes
    every row. :func:`_dictionary_codes` decodes the pages' dictionary
    indices itself and matches each distinct dictionary once, in a thread, while
    DuckDB decodes the times in file order (a plain projection keeps it: no row
    numbers, no scatter). Files whose text columns are not dictionary-encoded
    throughout go to :func:`_read_duckdb_join`. Needs null counts in the file's
    statistics (else ``None``: the other paths check).
    """
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
    if not all(meta.row_group(rg).column(index[c]).has_dictionary_page
               for rg in range(meta.num_row_groups) for c in cols[:2]):
        return _read_duckdb_join(path, n, lead_ids, has_rec)
    with ThreadPoolExecutor(1) as pool:  # Python decodes the ids while DuckDB's threads decode the times
        text = pool.submit(_dictionary_codes, path, meta, lead_ids)
        times = _duckdb_times(path, n, has_rec)
        text = text.result()
    if times is None:
        return None
    if text is None:
        del times
        return _read_duckdb_join(path, n, lead_ids, has_rec)
    (lead, code, types), (occ, rec) = text, times
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def _duckdb_times(path: Path, n: int, has_rec: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``occurred_at`` and ``recorded_at`` (or ``occ`` twice) as µs, in file order; None if the row count differs.

    A projection of one file keeps the file's row order (``preserve_insertion_order``),
    so batches are copied in sequence.
    """
    import duckdb

    occ = buffers.empty(n, np.int64)
    rec = buffers.empty(n, np.int64) if has_rec else occ
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")
        sql = "epoch_us(occurred_at)" + (", epoch_us(recorded_at)" if has_rec else "")
        reader = con.sql(f"SELECT {sql} FROM read_parquet({_sql_str(str(path))})").to_arrow_reader(1 << 20)
        at = 0
        for batch in reader:
            k = batch.num_rows
            if at + k > n:
                return None
            occ[at:at + k] = _filled(batch.column(0))
            if has_rec:
                rec[at:at + k] = _filled(batch.column(1))
            at += k
    finally:
        con.close()
    return (occ, rec) if at == n else None


def _read_duckdb_join(path: Path, n: int, lead_ids: pd.Series, has_rec: bool) -> ActivityArrays | None:
    """The arrays with DuckDB matching lead ids and types by joins (any text encoding; the file is checked).

    Rows come back in any order with their ``file_row_number`` and are put in place.
    """
    import duckdb
    import pyarrow as pa

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
        lead = buffers.empty(n, np.int32)
        occ = buffers.empty(n, np.int64)
        rec = buffers.empty(n, np.int64) if has_rec else occ
        code = buffers.empty(n, np.int16)
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


def _dictionary_codes(path: Path, meta, lead_ids: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Lead positions, type codes and types of every row, from the dictionary pages; None if a chunk is not one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = _id_set(lead_ids)

    def positions(dictionary) -> np.ndarray:
        """Position in leads of each dictionary value (-1: unknown); no hashing if it is leads' id column."""
        dictionary = dictionary.cast(pa.string())
        if dictionary.equals(value_set):  # pandas categories built from the leads' ids: a comparison, no hash table
            return np.arange(len(dictionary), dtype=np.int32)
        return np.asarray(pc.index_in(dictionary, value_set=value_set).fill_null(-1), dtype=np.int32)

    leads = DictionaryIndices(path, meta, "lead_id", positions)
    kinds = DictionaryIndices(path, meta, "activity_type", lambda d: [str(w) for w in d.to_pylist()])
    if leads.column is None or kinds.column is None:
        return None
    n = meta.num_rows
    starts = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
    np.cumsum([meta.row_group(rg).num_rows for rg in range(meta.num_row_groups)], out=starts[1:])
    lead = buffers.empty(n, np.int32)
    local = buffers.empty(n, np.int16)  # type codes into each row group's own dictionary
    failed = threading.Event()

    def decode_row_group(rg: int) -> tuple[slice, list[str], np.ndarray] | None:
        """Decode row group ``rg`` into the arrays; (its rows, its type names, which of them occur)."""
        if failed.is_set():
            return None
        rows = slice(int(starts[rg]), int(starts[rg + 1]))
        ids, names = leads.indices(rg), kinds.indices(rg)
        if ids is None or names is None or len(names[0]) >= 2 ** 15:
            failed.set()
            return None
        np.take(ids[0], ids[1], out=lead[rows], mode="clip")  # indices checked: < the dictionary's size
        local[rows] = names[1]
        return rows, names[0], np.bincount(names[1], minlength=len(names[0])) > 0

    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(decode_row_group, range(meta.num_row_groups)))
    if any(p is None for p in parts):
        return None
    code, types = _merge_types(local, [p[:2] for p in parts], [p[2] for p in parts])
    return lead, code, types


def _id_set(lead_ids: pd.Series):
    """The leads' ids as an Arrow ``string`` array (the type a dictionary page is compared with)."""
    import pyarrow as pa

    arr = arrow_text(lead_ids)
    if arr is None:  # a validated export's ids are text; this keeps the function total
        arr = pa.array(lead_ids.astype(str).to_numpy(dtype=object), type=pa.string())
    return arr.cast(pa.string())


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
