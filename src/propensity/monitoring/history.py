"""The score history: every scoring run's leads, a Parquet dataset partitioned by scoring date.

Layout: ``DIR/scored_on=YYYY-MM-DD/run-<as-of>-<digest>.parquet``, one file per run,
named by its key: the as-of time (UTC, to the microsecond) and the first 16 hex digits of
the bundle's digest. Re-running the same as-of with the same model writes the same name,
so it replaces that run and never duplicates it; a run of another model at the same
as-of is a second file. Each file is written to a staging file beside it and renamed
into place when complete (:func:`propensity.core.output.staged_file`), under the
history's lock, so a reader sees a run whole or not at all. ``DIR`` holds the marker
``propensity-output.json`` (kind ``score-history``): a folder holding anything else is
refused before any work.

One row per lead and run: :data:`BASE_COLUMNS`, then ``feature:<name>`` (the feature
values, for drift) and ``points:<source>`` (each reason source's probability points, for
"why it changed"). DuckDB reads it without a server::

    SELECT as_of, count(*) FROM read_parquet('DIR/**/*.parquet', hive_partitioning = 1) GROUP BY 1

:func:`read_history` does that and names a damaged file in one line (:class:`HistoryError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from propensity.core.digests import json_sha256
from propensity.core.errors import DataError
from propensity.core.output import check_folder_output, claim, has_marker, staged_file, write_marker
from propensity.features.spec import FeatureDef

__all__ = ["BASE_COLUMNS", "FEATURE", "HISTORY_KIND", "POINTS", "HistoryError", "HistoryRun", "HistoryWriter",
           "bundle_digest", "check_history_dir", "history_frame", "history_schema", "is_history", "model_identity",
           "read_history", "run_files", "write_run"]

HISTORY_KIND = "score-history"
FEATURE = "feature:"
POINTS = "points:"
BASE_COLUMNS = ["lead_id", "as_of", "model_name", "model_version", "bundle_digest", "probability", "score", "tier",
                "grade", "fit_score", "engagement_score", "reasons"]


EPOCH = pd.Timestamp(0, tz="UTC")


class HistoryError(DataError):
    """A score history that cannot be read or used: one line naming the folder or file."""


def bundle_digest(bundle) -> str:
    """The SHA-256 of a loaded bundle's ``bundle.json`` content (without its own digests): the model's identity."""
    return json_sha256(json.loads(json.dumps(bundle.meta(), default=str)))


def model_identity(uri: str | Path, bundle) -> tuple[str, str, str]:
    """(name, version, digest) of the model loaded from ``uri``.

    ``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` give the registered name and
    the version or alias; a folder gives its name and the bundle's training time.
    """
    text = str(uri)
    if text.startswith("models:/"):
        rest = text[len("models:/"):]
        name, _, version = rest.partition("@") if "@" in rest else rest.partition("/")
        return name, version, bundle_digest(bundle)
    return Path(text).name or text, str(bundle.metadata.get("trained_at", "")), bundle_digest(bundle)


def is_history(path: str | Path) -> bool:
    return has_marker(path, HISTORY_KIND)


def check_history_dir(path: str | Path, inputs: tuple = ()) -> Path:
    """Refuse (before any work) a history folder that holds files propensity did not write there."""
    return check_folder_output(path, owned=is_history, inputs=inputs,
                               hint="choose an empty folder or an existing score history for --history")


def history_schema(spec: list[FeatureDef], sources: list[str]) -> pa.Schema:
    """The Arrow schema of a run file of a model with features ``spec`` and reason sources ``sources``."""
    fields = [pa.field("lead_id", pa.string()), pa.field("as_of", pa.timestamp("us", tz="UTC")),
              pa.field("model_name", pa.string()), pa.field("model_version", pa.string()),
              pa.field("bundle_digest", pa.string()), pa.field("probability", pa.float64()),
              pa.field("score", pa.int64()), pa.field("tier", pa.string()), pa.field("grade", pa.string()),
              pa.field("fit_score", pa.float64()), pa.field("engagement_score", pa.float64()),
              pa.field("reasons", pa.string())]
    fields += [pa.field(FEATURE + f.name, pa.float64() if f.kind == "numeric" else pa.string()) for f in spec]
    fields += [pa.field(POINTS + s, pa.float64()) for s in sources]
    return pa.schema(fields)


@dataclass(frozen=True)
class HistoryRun:
    """Where one run goes: its as-of time and model."""

    as_of: pd.Timestamp
    model_name: str
    model_version: str
    bundle_digest: str
    tag: str = ""  # distinguishes several files of one as-of (a service's batches)

    def relative_path(self) -> Path:
        t = pd.Timestamp(self.as_of).tz_convert("UTC")
        tag = f"-{self.tag}" if self.tag else ""
        return Path(f"scored_on={t:%Y-%m-%d}") / f"run-{t:%Y%m%dT%H%M%S%f}Z-{self.bundle_digest[:16]}{tag}.parquet"


def history_frame(scores: pd.DataFrame, run: HistoryRun, spec: list[FeatureDef], sources: list[str]) -> pa.Table:
    """The rows of scored leads (the scorer's output with ``feature:`` and ``points:`` columns) as a run's table.

    Rows the scorer could not score (tier ``error``) have no features and are left out.
    """
    scores = scores[scores["tier"].ne("error")]
    n = len(scores)
    cols: dict[str, object] = {
        "lead_id": scores["lead_id"].astype(str).to_numpy(),
        "as_of": np.full(n, (pd.Timestamp(run.as_of) - EPOCH) // pd.Timedelta(microseconds=1), dtype="int64"),
        "model_name": [run.model_name] * n, "model_version": [run.model_version] * n,
        "bundle_digest": [run.bundle_digest] * n,
        "probability": scores["probability"].to_numpy(dtype="float64"),
        "score": scores["score"].to_numpy(dtype="int64"), "tier": scores["tier"].astype(str).to_numpy(),
        "grade": scores["grade"].astype(str).to_numpy(),
        "fit_score": scores["fit_score"].to_numpy(dtype="float64"),
        "engagement_score": scores["engagement_score"].to_numpy(dtype="float64"),
        "reasons": scores["reasons"].astype(str).to_numpy(),
    }
    for f in spec:
        v = scores[FEATURE + f.name]
        cols[FEATURE + f.name] = (pd.to_numeric(v, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                                  if f.kind == "numeric" else v.astype(object).where(v.notna(), None).to_numpy())
    for s in sources:
        cols[POINTS + s] = scores[POINTS + s].to_numpy(dtype="float64")
    schema = history_schema(spec, sources)
    return pa.table({k: pa.array(cols[k], type=schema.field(k).type) for k in schema.names}, schema=schema)


class HistoryWriter:
    """Writes one run's file chunk by chunk into a staging file, renamed into place by :meth:`close`.

    Use as a context manager under the history's lock (:func:`propensity.core.output.claim`).
    A failure before the end removes the staging file: the history keeps the previous file of that run, if any.
    """

    def __init__(self, folder: str | Path, run: HistoryRun, spec: list[FeatureDef], sources: list[str]):
        self.folder, self.run, self.spec, self.sources = Path(folder), run, spec, sources
        self.path = self.folder / run.relative_path()
        self.rows = 0

    def __enter__(self) -> HistoryWriter:
        if not is_history(self.folder):  # checked empty or absent before any work (check_history_dir)
            self.folder.mkdir(parents=True, exist_ok=True)
            write_marker(self.folder, HISTORY_KIND)
        self._staged = staged_file(self.path)
        self._tmp = self._staged.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, history_schema(self.spec, self.sources))
        return self

    def write(self, scores: pd.DataFrame) -> None:
        table = history_frame(scores, self.run, self.spec, self.sources)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __exit__(self, *exc) -> bool:
        self._writer.close()
        return bool(self._staged.__exit__(*exc))


def write_run(folder: str | Path, scores: pd.DataFrame, run: HistoryRun, spec: list[FeatureDef],
              sources: list[str]) -> Path:
    """Write one whole run (a service's batch) under the history's lock; returns its file."""
    with claim(folder, timeout=60.0), HistoryWriter(folder, run, spec, sources) as writer:
        writer.write(scores)
    return writer.path


def run_files(folder: str | Path) -> list[Path]:
    """The run files of the history ``folder`` (staging files and locks left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HistoryError(f"{folder}: no such score history folder")
    if not is_history(folder):
        raise HistoryError(f"{folder}: not a score history (no propensity-output.json of kind {HISTORY_KIND}); "
                           "write one with propensity score --history")
    return sorted(p for p in folder.glob("scored_on=*/*.parquet") if not p.name.startswith("."))


def _first_bad_file(files: list[Path]) -> tuple[Path, str] | None:
    for f in files:
        try:
            pq.read_metadata(f)
        except (OSError, pa.ArrowException) as exc:
            return f, str(exc).splitlines()[0]
    return None


def read_history(folder: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Every run of the history ``folder`` as one DataFrame (DuckDB over the Parquet files).

    ``columns``: only these (default: all; feature and points columns of models with
    other features are NULL in the rows of the others). Raises :class:`HistoryError`
    naming the first damaged file, or the folder when it is no history or has no run.
    """
    import duckdb

    files = run_files(folder)
    if not files:
        raise HistoryError(f"{folder}: the score history has no runs yet")
    bad = _first_bad_file(files)
    if bad is not None:
        raise HistoryError(f"{bad[0]}: not a readable Parquet run file ({bad[1]}); move it out of the history "
                           "or re-run that scoring run")
    glob = str(Path(folder).resolve() / "**" / "*.parquet").replace("'", "''")
    select = "*" if columns is None else ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        # in file-name order (a service's files of one day sort as written), rows in file order within each
        frame = con.execute(f"SELECT {select} FROM read_parquet('{glob}', hive_partitioning = 1, "
                            "union_by_name = true, filename = true, file_row_number = true) "
                            "ORDER BY filename, file_row_number").df()
    except duckdb.Error as exc:
        raise HistoryError(f"{folder}: the score history cannot be read ({str(exc).splitlines()[0]})") from None
    finally:
        con.close()
    frame = frame.drop(columns=["filename", "file_row_number"], errors="ignore")
    if "as_of" in frame.columns:
        frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    return frame
