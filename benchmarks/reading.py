"""Activities file to arrays: the package's reader against library-only ways of getting the same arrays.

``read_export`` turns ``activities.parquet`` into NumPy arrays (lead row position,
activity type code, occurred/recorded µs; see :mod:`propensity.data.activities`):
the part of reading an export that grows with events, and what ``propensity
features`` and ``propensity score`` wait for before any feature is computed. For
large files the package reads the dictionary indices of the two text columns from
the Parquet pages itself. This benchmark times that against the ways pyarrow and
DuckDB offer, each written here to give exactly the package's arrays (checked
after every run, outside the timing):

- ``package``: :func:`propensity.data.activities.read_activity_arrays`;
- ``arrow``: ``ParquetFile.read_row_group`` (text as Arrow dictionaries), row groups
  on two threads; each distinct lead-id dictionary matched once
  (``DictionaryArray.dictionary`` compared with the last one, ``pyarrow.compute.index_in``),
  the rows through ``DictionaryArray.indices``; times by Arrow;
- ``arrow-duckdb``: the same Arrow reading for the two text columns only, on two
  threads, while DuckDB decodes the times in file order (the package's structure,
  with Arrow decoding the pages);
- ``arrow-table``: one ``pq.read_table(..., read_dictionary=..., use_threads=True)``,
  then the same per-chunk matching;
- ``duckdb-join``: DuckDB matches ids and types by joins, rows put back in file
  order by ``file_row_number``.

Rounds alternate the paths (A B C ... A B C ...) in one process, so that each
path meets the same machine state; it prints every run (wall and CPU seconds, load
average) and each path's range. ``--export`` then alternates ``read_export`` of the
whole folder with the package's reader and with the fastest library path (or
``--export-path``) in its place.

    python benchmarks/reading.py --data DIR [--runs 3] [--paths package,arrow,...] [--export]

``DIR`` is a world written by ``propensity generate`` (e.g. ``--leads 1000000``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from propensity.data import buffers
from propensity.data.activities import ActivityArrays, read_activity_arrays

PATHS = ("package", "arrow", "arrow-duckdb", "arrow-table", "duckdb-join")


# ---------------------------------------------------------------------------------------- shared by the candidates


def id_set(lead_ids: pd.Series) -> pa.Array:
    return pa.array(lead_ids.to_numpy(dtype=object), type=pa.string())


class LeadMatcher:
    """Positions in leads of a lead-id dictionary; the last dictionary per thread is remembered (pandas repeats it)."""

    def __init__(self, lead_ids: pd.Series) -> None:
        self.value_set = id_set(lead_ids)
        self.last: dict[int, tuple[pa.Array, np.ndarray]] = {}

    def positions(self, dictionary: pa.Array) -> np.ndarray:
        key = threading.get_ident()
        hit = self.last.get(key)
        if hit is None or not hit[0].equals(dictionary):
            pos = pc.index_in(dictionary.cast(pa.string()), value_set=self.value_set).fill_null(-1)
            hit = (dictionary, np.asarray(pos, dtype=np.int32))
            self.last[key] = hit
        return hit[1]

    def into(self, chunk, out: np.ndarray) -> None:
        """Lead positions of an Arrow chunk (dictionary or plain text) written into ``out``."""
        if pa.types.is_dictionary(chunk.type):
            np.take(self.positions(chunk.dictionary), np.asarray(chunk.indices), out=out)
        else:
            out[:] = np.asarray(pc.index_in(chunk.cast(pa.string()), value_set=self.value_set).fill_null(-1))


def type_codes(chunk) -> tuple[np.ndarray, list[str]]:
    enc = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
    return np.asarray(enc.indices), [str(w) for w in enc.dictionary.to_pylist()]


def merge_types(local: np.ndarray, parts: list[tuple[slice, list[str]]]) -> tuple[np.ndarray, np.ndarray]:
    """One code space in first-seen order (as ``pd.factorize``) from codes into each part's own names."""
    index: dict[str, int] = {}
    remaps = []
    for out, names in parts:
        if not all(w in index for w in names):
            loc = local[out]
            seen = np.bincount(loc, minlength=len(names)) > 0
            new = sorted((i for i in np.flatnonzero(seen) if names[i] not in index),
                         key=lambda i: int(np.argmax(loc == i)))
            for i in new:
                index[names[i]] = len(index)
        remaps.append(np.array([index.get(w, -1) for w in names] or [-1], dtype=np.int16))
    code = buffers.empty(len(local), np.int16)
    for (out, _), remap in zip(parts, remaps, strict=True):
        np.take(remap, local[out], out=code[out])
    return code, np.array(list(index), dtype=object)


def row_starts(meta) -> np.ndarray:
    starts = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
    np.cumsum([meta.row_group(rg).num_rows for rg in range(meta.num_row_groups)], out=starts[1:])
    return starts


def chunks(column, at: int):
    for chunk in column.chunks:
        yield chunk, slice(at, at + len(chunk))
        at += len(chunk)


def duckdb_times(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``occurred_at``, ``recorded_at`` as µs in file order (a plain projection keeps it)."""
    occ, rec = buffers.empty(n, np.int64), buffers.empty(n, np.int64)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")
        reader = con.sql(f"SELECT epoch_us(occurred_at), epoch_us(recorded_at) FROM read_parquet('{path}')"
                         ).to_arrow_reader(1 << 20)
        at = 0
        for batch in reader:
            k = batch.num_rows
            occ[at:at + k] = batch.column(0).to_numpy()
            rec[at:at + k] = batch.column(1).to_numpy()
            at += k
    finally:
        con.close()
    assert at == n
    return occ, rec


# ---------------------------------------------------------------------------------------------------- candidates


def read_arrow(path: Path, lead_ids: pd.Series, with_times: bool = True):
    """Row groups on two threads, Arrow decoding every column; ``with_times=False``: the text columns only."""
    meta = pq.ParquetFile(path).metadata
    n, starts = meta.num_rows, row_starts(meta)
    columns = ["lead_id", "activity_type"] + (["occurred_at", "recorded_at"] if with_times else [])
    lead, local = buffers.empty(n, np.int32), buffers.empty(n, np.int32)
    occ = rec = None
    if with_times:
        occ, rec = buffers.empty(n, np.int64), buffers.empty(n, np.int64)
    matcher = LeadMatcher(lead_ids)

    def one(rg: int) -> list[tuple[slice, list[str]]]:
        table = pq.ParquetFile(path, read_dictionary=["lead_id", "activity_type"]).read_row_group(rg, columns=columns)
        at = int(starts[rg])
        for chunk, out in chunks(table.column("lead_id"), at):
            matcher.into(chunk, lead[out])
        words = []
        for chunk, out in chunks(table.column("activity_type"), at):
            local[out], names = type_codes(chunk)
            words.append((out, names))
        if with_times:
            for name, dest in (("occurred_at", occ), ("recorded_at", rec)):
                for chunk, out in chunks(table.column(name), at):
                    dest[out] = np.asarray(chunk.view(pa.int64()))
        return words

    with ThreadPoolExecutor(2) as pool:
        parts = [w for words in pool.map(one, range(meta.num_row_groups)) for w in words]
    code, types = merge_types(local, parts)
    return lead, code, types, occ, rec


def path_arrow(path: Path, lead_ids: pd.Series) -> ActivityArrays:
    lead, code, types, occ, rec = read_arrow(path, lead_ids)
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def path_arrow_duckdb(path: Path, lead_ids: pd.Series) -> ActivityArrays:
    n = pq.ParquetFile(path).metadata.num_rows
    with ThreadPoolExecutor(1) as pool:  # Arrow's text on its threads while DuckDB decodes the times
        text = pool.submit(read_arrow, path, lead_ids, False)
        occ, rec = duckdb_times(path, n)
        lead, code, types, _, _ = text.result()
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def path_arrow_table(path: Path, lead_ids: pd.Series) -> ActivityArrays:
    table = pq.read_table(path, columns=["lead_id", "activity_type", "occurred_at", "recorded_at"],
                          read_dictionary=["lead_id", "activity_type"], use_threads=True)
    n = table.num_rows
    lead, local = buffers.empty(n, np.int32), buffers.empty(n, np.int32)
    occ, rec = buffers.empty(n, np.int64), buffers.empty(n, np.int64)
    matcher = LeadMatcher(lead_ids)
    for chunk, out in chunks(table.column("lead_id"), 0):
        matcher.into(chunk, lead[out])
    parts = []
    for chunk, out in chunks(table.column("activity_type"), 0):
        local[out], names = type_codes(chunk)
        parts.append((out, names))
    for name, dest in (("occurred_at", occ), ("recorded_at", rec)):
        for chunk, out in chunks(table.column(name), 0):
            dest[out] = np.asarray(chunk.view(pa.int64()))
    del table
    code, types = merge_types(local, parts)
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


def path_duckdb_join(path: Path, lead_ids: pd.Series) -> ActivityArrays:
    n = pq.ParquetFile(path).metadata.num_rows
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        ids = pa.table({"lead_id": id_set(lead_ids), "pos": pa.array(np.arange(len(lead_ids), dtype=np.int32))})
        con.register("ids", ids)
        src = f"read_parquet('{path}', file_row_number = true)"
        first = con.execute(f"SELECT activity_type::VARCHAR, min(file_row_number) AS r FROM {src} "
                            "GROUP BY 1 ORDER BY r").fetchall()
        types = np.array([t for t, _ in first], dtype=object)
        con.register("types", pa.table({"name": pa.array(types.tolist(), type=pa.string()),
                                        "code": pa.array(np.arange(len(types), dtype=np.int16))}))
        reader = con.sql(f"""
            SELECT a.file_row_number AS r, coalesce(i.pos, -1)::INTEGER AS pos, t.code,
                   epoch_us(a.occurred_at) AS occ, epoch_us(a.recorded_at) AS rec
            FROM {src} a JOIN types t ON a.activity_type::VARCHAR = t.name
            LEFT JOIN ids i ON a.lead_id::VARCHAR = i.lead_id""").to_arrow_reader(1 << 20)
        lead, code = buffers.empty(n, np.int32), buffers.empty(n, np.int16)
        occ, rec = buffers.empty(n, np.int64), buffers.empty(n, np.int64)
        for batch in reader:
            r = batch.column(0).to_numpy()
            lead[r] = batch.column(1).to_numpy()
            code[r] = batch.column(2).to_numpy()
            occ[r] = batch.column(3).to_numpy()
            rec[r] = batch.column(4).to_numpy()
    finally:
        con.close()
    return ActivityArrays(lead=lead, occ=occ, rec=rec, code=code, types=types)


READERS = {"package": read_activity_arrays, "arrow": path_arrow, "arrow-duckdb": path_arrow_duckdb,
           "arrow-table": path_arrow_table, "duckdb-join": path_duckdb_join}


# ---------------------------------------------------------------------------------------------------- measuring


def same(got: ActivityArrays, want: ActivityArrays) -> bool:
    return (all(np.array_equal(getattr(got, k), getattr(want, k)) and getattr(got, k).dtype == getattr(want, k).dtype
                for k in ("lead", "occ", "rec", "code"))
            and got.types.tolist() == want.types.tolist())


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(fn) -> tuple[object, float, float]:
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def summary(label: str, walls: list[float], cpus: list[float]) -> str:
    return (f"{label:14s} wall {min(walls):6.2f}-{max(walls):6.2f}s (median {np.median(walls):.2f})   "
            f"CPU {min(cpus):6.2f}-{max(cpus):6.2f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a world folder written by `propensity generate`")
    ap.add_argument("--runs", type=int, default=3, help="rounds; each round runs every path once (default 3)")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    ap.add_argument("--export", action="store_true", help="also alternate read_export: package against --export-path")
    ap.add_argument("--export-path", default="best", choices=("best",) + PATHS[1:],
                    help="best (default): the library path with the lowest median wall time in this run's rounds")
    args = ap.parse_args()
    folder = Path(args.data)
    path = folder / "activities.parquet"
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    meta = pq.ParquetFile(path).metadata
    lead_ids = pq.read_table(folder / "leads.parquet", columns=["lead_id"]).column(0).to_pandas()
    print(f"{path}: {meta.num_rows:,} activities in {meta.num_row_groups} row groups, {len(lead_ids):,} leads; "
          f"{os.cpu_count()} CPU(s); pyarrow {pa.__version__}, duckdb {duckdb.__version__}", flush=True)
    reference = read_activity_arrays(path, lead_ids)  # also warms the file cache
    assert reference is not None, "the package's reader declined this file"
    times: dict[str, tuple[list[float], list[float]]] = {p: ([], []) for p in paths}
    for run in range(args.runs):
        for name in paths:
            before = load()
            got, wall, cpu = timed(functools.partial(READERS[name], path, lead_ids))
            ok = same(got, reference)
            del got
            times[name][0].append(wall)
            times[name][1].append(cpu)
            print(f"round {run + 1} {name:14s} {wall:6.2f}s wall  {cpu:6.2f}s CPU  load {before}"
                  f"{'' if ok else '  ARRAYS DIFFER'}", flush=True)
    print("read_activity_arrays (activities file to arrays), ranges over the rounds:")
    for name in paths:
        print("  " + summary(name, *times[name]))
    if not args.export:
        return

    import warnings

    import propensity.data.export as export_module

    del reference
    contender = args.export_path
    if contender == "best":
        measured = [p for p in paths if p != "package"] or ["duckdb-join"]
        contender = min(measured, key=lambda p: np.median(times[p][0]) if p in times else np.inf)
    package = export_module.read_activity_arrays
    library = READERS[contender]
    totals: dict[str, tuple[list[float], list[float]]] = {"package": ([], []), contender: ([], [])}
    for run in range(args.runs):
        for name in totals:
            export_module.read_activity_arrays = package if name == "package" else (
                lambda p, ids, allow_null_times=False: library(p, ids))
            before = load()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, wall, cpu = timed(lambda: export_module.read_export(folder))
            totals[name][0].append(wall)
            totals[name][1].append(cpu)
            print(f"round {run + 1} read_export with {name:14s} {wall:6.2f}s wall  {cpu:6.2f}s CPU  load {before}",
                  flush=True)
    export_module.read_activity_arrays = package
    print("read_export (the whole folder: read and check four tables), ranges over the rounds:")
    for name, (walls, cpus) in totals.items():
        print("  " + summary(name, walls, cpus))


if __name__ == "__main__":
    main()
