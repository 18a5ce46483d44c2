"""Stress run for test_threads.py: Parquet outputs converted on one thread while another thread writes.

Run as a script (``python _stress_parquet.py FOLDER [ROUNDS]``) so that a crash in
native code kills this process, not the test session. Each round writes a frame of
many small row groups with ``jobs.outputs.write_parquet`` (group i+1 converted by
pyarrow here while the writer thread encodes group i) and reads it back: every
value must equal the frame's and the file must equal one thread's (the same bytes).
Prints one line of counts and exits 0; any difference exits 1.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from propensity.jobs import outputs


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    ids = np.array([f"L{i:06d}" for i in range(n // 3 + 1)], dtype=object)
    text = np.array(["web", "event", None, "partner"], dtype=object)
    return pd.DataFrame({
        "lead_id": ids[rng.integers(0, len(ids), n)],
        "cutoff": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        "label": rng.integers(0, 2, n).astype("int8"),
        "source": text[rng.integers(0, len(text), n)],
        "count": rng.poisson(2, n).astype(float),
        "decay": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
    })


def main() -> int:
    folder, rounds = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20
    outputs.ROW_GROUP = 2_000
    rng = np.random.default_rng(0)
    groups = 0
    for r in range(rounds):
        df = _frame(rng, 40_000 + 997 * r)
        outputs.write_parquet(df, folder / "threaded.parquet")
        schema = pa.Schema.from_pandas(df, preserve_index=False)
        first = pa.Table.from_pandas(df.iloc[:outputs.ROW_GROUP], schema=schema, preserve_index=False)
        with pq.ParquetWriter(folder / "one.parquet", schema,
                              use_dictionary=outputs.dictionary_columns(first)) as writer:
            for start in range(0, len(df), outputs.ROW_GROUP):
                writer.write_table(pa.Table.from_pandas(df.iloc[start:start + outputs.ROW_GROUP], schema=schema,
                                                        preserve_index=False))
        back = pd.read_parquet(folder / "threaded.parquet")
        pd.testing.assert_frame_equal(back, df, check_dtype=False)
        if (folder / "threaded.parquet").read_bytes() != (folder / "one.parquet").read_bytes():
            print(f"round {r}: the threaded file differs from one thread's")
            return 1
        groups += pq.ParquetFile(folder / "threaded.parquet").metadata.num_row_groups
    print(f"{rounds} files, {groups} row groups written while the next was converted: all equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
