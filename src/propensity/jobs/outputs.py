"""Writing a table output (``.csv`` or ``.parquet``) atomically, whole or chunk by chunk.

CSV text cells are escaped for spreadsheets (:mod:`propensity.core.csvsafe`);
Parquet keeps the exact values. Both are written to a staging file beside the
target and renamed into place when complete (:mod:`propensity.core.output`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from propensity.core.csvsafe import write_csv
from propensity.core.output import staged_file

__all__ = ["ROW_GROUP", "ChunkWriter", "chunk_writer", "write_parquet", "write_table"]


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
    """``df.to_parquet(path)``, converted to Arrow a row group at a time.

    Converting a large frame whole first copies all of it (a second 4 GB for the 7.9M x 70 training table
    of a million leads); a group at a time the copies stay small and warm: 13.6 s instead of 16.0 s there.
    The schema is the whole frame's, so a text column empty in the first group keeps its type.
    """
    if len(df) <= ROW_GROUP:
        df.to_parquet(path, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(df), ROW_GROUP):
            writer.write_table(pa.Table.from_pandas(df.iloc[start:start + ROW_GROUP], schema=schema,
                                                    preserve_index=False))


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
