"""A Spark DataFrame as a Parquet dataset: atomic on a local path, never over what propensity did not write."""

from __future__ import annotations

import json
from pathlib import Path

from propensity.core.errors import OutputError
from propensity.core.output import check_folder_output, is_remote, staged_folder

__all__ = ["MARKER", "check_spark_output", "write_spark_parquet"]

# Readers of a Parquet dataset (Spark, pyarrow, DuckDB) skip names starting with "_", so the mark that
# propensity wrote the folder lives in such a file, beside Spark's own _SUCCESS.
MARKER = "_propensity-output.json"
_MARK = {"written_by": "propensity", "kind": "spark-parquet", "marker_version": 1}


def _ours(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")) == _MARK
    except (OSError, ValueError):
        return False


def check_spark_output(out: str | Path, inputs=()) -> None:
    """Refuse (:class:`OutputError`) an ``out`` that must not be replaced, before any work.

    A local ``out`` is a folder (Spark writes a dataset of part files): replaced when it
    is empty or a dataset propensity wrote. A remote one (``s3://``, ``abfss://``,
    ``dbfs:/``...) must not exist; Spark checks that when it writes.
    """
    if is_remote(out):
        return
    if not str(out).endswith(".parquet"):
        raise OutputError(f"{out}: unsupported output type with --engine spark; use a .parquet folder name")
    check_folder_output(out, owned=_ours, inputs=inputs,
                        hint="choose a new .parquet path (Spark writes a folder of part files)")


def write_spark_parquet(sdf, out: str | Path) -> None:
    """Write ``sdf`` to ``out``: locally into a staging folder renamed onto ``out`` when done; remotely as is."""
    if is_remote(out):
        sdf.write.mode("errorifexists").parquet(str(out))
        return
    with staged_folder(out) as tmp:
        sdf.write.mode("overwrite").parquet(str(tmp))
        (tmp / MARKER).write_text(json.dumps(_MARK) + "\n", encoding="utf-8")
