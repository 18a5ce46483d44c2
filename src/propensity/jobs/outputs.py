"""Writing a table output (``.csv`` or ``.parquet``) atomically, whole or chunk by chunk.

CSV text cells are escaped for spreadsheets (:mod:`propensity.core.csvsafe`);
Parquet keeps the exact values. Both are written to a staging file beside the
target and renamed into place when complete (:mod:`propensity.core.output`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from propensity.core.csvsafe import write_csv
from propensity.core.output import staged_file

__all__ = ["ROW_GROUP", "SAMPLE_ROWS", "ChunkWriter", "chunk_writer", "dictionary_columns", "write_parquet",
           "write_table"]


def write_table(df: pd.DataFrame, out: Path) -> None:
    """Write CSV (text cells escaped for spreadsheets) or Parquet by extension, atomically."""
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out}: unsupported output type; use .csv or .parquet")
    with staged_file(out) as tmp:
        if out.suffix == ".csv":
            write_csv(df, tmp)
        else:
            write_parquet(df, tmp)


ROW_GROUP = 1 << 20  # rows: pyarrow's own default row group, so the file's layout is the one to_parquet writes


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df.to_parquet(path)``, converted to Arrow a row group at a time while the previous group is written.

    Converting a large frame whole first copies all of it (a second 4 GB for the 7.9M x 70 training table
    of a million leads); a group at a time the copies stay small and warm. The conversion (the Python
    objects of the text columns) and pyarrow's writer (encoding, without the GIL) each take seconds there,
    so group i+1 is converted while group i is written, on one writer thread: at most two groups are
    held, the groups are written in order (figures: ``docs/scaling.md``, "Measured"). pyarrow is then
    called from two threads at once, on different objects (``tests/test_threads.py`` writes many files so
    and compares them with one thread's).
    """
    if len(df) <= ROW_GROUP:
        df.to_parquet(path, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    # The first group's types are the frame's (inferring a text column's type reads every value of it),
    # unless a column has no value in that group: then the whole frame decides.
    schema = pa.Schema.from_pandas(df.iloc[:ROW_GROUP], preserve_index=False)
    if any(pa.types.is_null(field.type) for field in schema):
        schema = pa.Schema.from_pandas(df, preserve_index=False)
    groups = (pa.Table.from_pandas(df.iloc[start:start + ROW_GROUP], schema=schema, preserve_index=False)
              for start in range(0, len(df), ROW_GROUP))
    first = next(groups)
    with pq.ParquetWriter(path, schema, use_dictionary=dictionary_columns(first)) as writer, \
            ThreadPoolExecutor(1, "parquet-writer") as pool:
        written = pool.submit(writer.write_table, first)
        for group in groups:
            written.result()  # the previous group's error, if any, before the next is queued
            written = pool.submit(writer.write_table, group)
        written.result()


SAMPLE_ROWS = 1 << 16


def dictionary_columns(table) -> list[str]:
    """The columns of ``table`` (Arrow) worth a dictionary: those whose first :data:`SAMPLE_ROWS` values repeat.

    pyarrow dictionary-encodes every column unless told otherwise; a column of mostly distinct values
    (a decay, days since an event to the microsecond) fills the dictionary page within each row group,
    then falls back to plain encoding, having hashed every value for nothing: written plain, the training
    table of a million leads is written faster and is no larger (``docs/scaling.md``, "Measured"). A
    column is judged on its first rows: at most one distinct value in 8 keeps the dictionary, as does a
    type whose values Arrow cannot count.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    sample = table.slice(0, SAMPLE_ROWS)
    keep = []
    for name, column in zip(sample.column_names, sample.columns, strict=True):
        try:
            distinct = pc.count_distinct(column).as_py()
        except pa.ArrowNotImplementedError:  # lists, structs, a pandas categorical: left to pyarrow's default
            keep.append(name)
            continue
        if distinct * 8 <= max(len(column) - column.null_count, 8):
            keep.append(name)
    return keep


class ChunkWriter:
    """Appends chunks of one table to a staging file: CSV by ``out``'s extension, else Parquet."""

    def __init__(self, staging: Path, out: Path, columns: list[str]):
        self.staging, self.csv, self.columns = staging, out.suffix == ".csv", columns
        self.chunks = self.rows = 0
        self._parquet = None

    def write(self, part: pd.DataFrame) -> None:
        """Append ``part``'s :attr:`columns`, in that order."""
        part = part[self.columns]
        if self.csv:
            write_csv(part, self.staging, mode="w" if self.rows == 0 else "a", header=self.rows == 0)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(part, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.staging, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self.chunks += 1
        self.rows += len(part)

    def close(self) -> None:
        """Release the Parquet writer, if one is open (safe to call twice)."""
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


@contextmanager
def chunk_writer(out: Path, columns: list[str]) -> Iterator[ChunkWriter]:
    """A :class:`ChunkWriter` whose file replaces ``out`` when the block ends without an error.

    Memory stays bounded by one chunk, and a failure leaves no half-written output.
    """
    with staged_file(out) as tmp:
        writer = ChunkWriter(tmp, out, columns)
        try:
            yield writer
        finally:
            writer.close()
        if writer.chunks == 0 and not writer.csv:  # no chunk came: an empty table with the columns
            pd.DataFrame(columns=columns).to_parquet(tmp, index=False)
