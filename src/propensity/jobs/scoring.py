"""``propensity score``: the open leads of a CRM export (or the rows of a flat table) → a scores table.

The output is checked before any work (``.csv`` or ``.parquet``; an existing file is
replaced, never a folder or an input) and written under its lock through a staging
file, so a failure leaves any previous file as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from propensity.jobs.progress import Progress

__all__ = ["CHUNK_LEADS", "SCORE_COLUMNS", "CrmScoring", "TableScoring", "TierTally", "score", "score_crm",
           "score_crm_spark", "score_table"]

# Leads scored (SHAP values and reasons) and written per chunk: bounds the memory of a large export.
CHUNK_LEADS = 50_000
SCORE_COLUMNS = ["lead_id", "probability", "score", "tier", "reasons", "fit_score", "engagement_score", "grade",
                 "notes"]


@dataclass
class TierTally:
    """The scorer's tier summary (``LeadScorer.tier_summary``) added up over the chunks of one pool.

    Each chunk's summary counts its SQL and MQL leads and sums their expected
    conversions; the SQL threshold of the pool is the lowest one among the chunks
    that have SQL leads. Leads that could not be scored (tier ``error``) are counted
    apart; the rest are nurture.
    """

    policy: str
    leads_per_week: int | None
    mql: float
    sql: float
    leads: int = 0
    sql_leads: int = 0
    mql_leads: int = 0
    error_leads: int = 0
    sql_threshold: float | None = None  # None while there is no SQL lead
    expected_conversions: float = 0.0

    @classmethod
    def of(cls, tiers) -> TierTally:
        """An empty tally for a bundle's tier policy (``TierConfig``)."""
        return cls("capacity" if tiers.capacity else "thresholds",
                   tiers.capacity.leads_per_week if tiers.capacity else None, tiers.mql, tiers.sql)

    @property
    def nurture_leads(self) -> int:
        return self.leads - self.sql_leads - self.mql_leads - self.error_leads

    def add(self, summary: dict, leads: int, error_leads: int) -> None:
        """Add one chunk: its ``tier_summary``, its number of leads and of error rows."""
        self.leads += leads
        self.error_leads += error_leads
        self.sql_leads += summary["sql_leads"]
        self.mql_leads += summary["mql_leads"]
        self.expected_conversions += summary["expected_conversions"]
        if summary["sql_leads"]:
            low = summary["sql_threshold"]
            self.sql_threshold = low if self.sql_threshold is None else min(self.sql_threshold, low)


@dataclass(frozen=True)
class CrmScoring:
    """The open leads of a CRM export scored into ``out`` (as the caller gave it)."""

    out: str | Path
    seconds: float
    tiers: TierTally
    history: Path | None = None  # the run's file in the score history, when one was written

    @property
    def leads(self) -> int:
        return self.tiers.leads


@dataclass(frozen=True)
class TableScoring:
    """The rows of a flat table ``data`` scored into ``out``, in the same order."""

    data: str | Path
    out: Path
    rows: int
    seconds: float


def score(model: str | Path, data: str | Path, out: str | Path, as_of: str | None = None,
          chunk_size: int = CHUNK_LEADS, progress: Progress | None = None,
          history: str | Path | None = None) -> CrmScoring | TableScoring:
    """Score ``data`` with the bundle (or ``models:/`` URI) ``model``: a flat table (a file) or a CRM export."""
    if Path(data).is_file():
        if history is not None:
            raise ValueError(f"--history {history}: the score history is kept for CRM exports, not flat tables")
        return score_table(model, data, out)
    return score_crm(model, data, out, as_of, chunk_size, progress, history)


def score_crm(model: str | Path, data: str | Path, out: str | Path, as_of: str | None = None,
              chunk_size: int = CHUNK_LEADS, progress: Progress | None = None,
              history: str | Path | None = None) -> CrmScoring:
    """Score the open leads of the export ``data`` as of ``as_of`` (default: the end of the data).

    Chunks of ``chunk_size`` leads go straight to the output's staging file, so memory
    stays bounded by one chunk; ``progress`` counts the leads done. ``history``: a score
    history folder (:mod:`propensity.monitoring.history`) that gets this run too, and the
    output a ``trend`` column from the lead's earlier runs there.
    """
    from propensity.core.output import check_file_output, claim
    from propensity.jobs.outputs import chunk_writer
    from propensity.scoring.scorer import LeadScorer

    progress = progress or Progress()
    target = Path(out)
    check_file_output(target, inputs=(data, model))
    if history is not None:
        from propensity.monitoring.history import check_history_dir

        check_history_dir(history, inputs=(data, model, out))
    with claim(target):
        scorer = LeadScorer.load(model)
        if history is not None:
            return _score_with_history(scorer, model, data, target, out, as_of, chunk_size, progress, Path(history))
        t = time.perf_counter()
        tally = TierTally.of(scorer.bundle.tiers)
        progress.count(0, None)
        try:
            with chunk_writer(target, SCORE_COLUMNS) as writer:
                for total, part in scorer.score_chunks(data, as_of=as_of, chunk_size=chunk_size):
                    progress.count(writer.rows + len(part), total)
                    writer.write(part)
                    tally.add(scorer.tier_summary(part), len(part), int(part["tier"].eq("error").sum()))
        finally:
            progress.finish()
        seconds = time.perf_counter() - t
    return CrmScoring(out, seconds, tally)


def _score_with_history(scorer, model: str | Path, data: str | Path, target: Path, out: str | Path,
                        as_of: str | None, chunk_size: int, progress: Progress, history: Path) -> CrmScoring:
    """:func:`score_crm` writing the run into the score history too (under its lock) and a ``trend`` column."""
    import pandas as pd

    from propensity.core.output import claim
    from propensity.core.times import as_of_utc
    from propensity.data.export import read_export
    from propensity.jobs.outputs import chunk_writer
    from propensity.monitoring.history import HistoryRun, HistoryWriter, model_identity
    from propensity.monitoring.trend import previous_scores, trend_column

    export = read_export(data, lenient=True)
    when = as_of_utc(as_of) if as_of is not None else export.end() + pd.Timedelta(microseconds=1)
    name, version, digest = model_identity(model, scorer.bundle)
    run = HistoryRun(when, name, version, digest)
    earlier = previous_scores(history, digest, when)
    t = time.perf_counter()
    tally = TierTally.of(scorer.bundle.tiers)
    progress.count(0, None)
    try:
        with claim(history), HistoryWriter(history, run, scorer.bundle.spec, scorer.groups.sources) as hist, \
                chunk_writer(target, [*SCORE_COLUMNS, "trend"]) as writer:
            for total, part in scorer.score_chunks(export, as_of=when, chunk_size=chunk_size, values=True):
                progress.count(writer.rows + len(part), total)
                hist.write(part)
                part = part.assign(trend=trend_column(part, earlier))
                writer.write(part)
                tally.add(scorer.tier_summary(part), len(part), int(part["tier"].eq("error").sum()))
    finally:
        progress.finish()
    return CrmScoring(out, time.perf_counter() - t, tally, hist.path)


def score_crm_spark(model: str | Path, data: str | Path, out: str | Path, as_of: str | None = None,
                    master: str | None = None, progress: Progress | None = None) -> CrmScoring:
    """:func:`score_crm` on Spark: features by the generated Spark SQL, then one scorer per Python worker.

    Writes a Parquet dataset (a folder) with the columns :data:`SCORE_COLUMNS`; each
    value equals the in-process scorer's (``notes`` hold what the features say:
    unknown values; the in-process notes on rows set aside by a lenient read and on
    unlisted activity types are not computed here). ``model`` is a bundle folder
    readable by every executor. Rows are in Spark's order, not sorted by lead.
    """
    from contextlib import nullcontext

    from propensity.config import load_project
    from propensity.core.output import claim, is_remote
    from propensity.jobs.feature_table import say_heaviest_spark
    from propensity.scoring.scorer import LeadScorer
    from propensity.spark.features import spark_features
    from propensity.spark.output import check_spark_output, write_spark_parquet
    from propensity.spark.scoring import score_features_spark
    from propensity.spark.session import require_spark, spark_session
    from propensity.spark.tables import read_spark_export

    progress = progress or Progress()
    if str(model).startswith("models:/"):
        raise ValueError(f"{model}: --engine spark scores with a bundle folder every executor can read; for a "
                         "registered model use propensity.spark.score_spark (the MLflow pyfunc as a Spark UDF)")
    local = not is_remote(out)
    check_spark_output(out, inputs=(data, model) if local and not is_remote(data) else ())
    require_spark(master)
    with claim(out) if local else nullcontext():
        bundle = LeadScorer.load(model).bundle
        project = load_project(None).model_copy(update={"icp": bundle.icp, "engagement": bundle.engagement})
        t = time.perf_counter()
        progress.step(f"starting Spark ({master or 'SPARK_REMOTE / active session / local[*]'})")
        spark = spark_session(master)
        tables = read_spark_export(spark, data)
        say_heaviest_spark(tables, project, progress)
        frame, _ = spark_features(spark, tables, project, as_of="end" if as_of is None else as_of, labelled=False)
        progress.step("scoring on Spark")
        write_spark_parquet(score_features_spark(frame, model), out)
        written = spark.read.parquet(str(Path(out).resolve()) if local else str(out))
        b = bundle.tiers
        tally = TierTally("thresholds", None, b.mql, b.sql)
        from pyspark.sql import functions as F

        for row in written.groupBy("tier").agg(F.count("*").alias("n"), F.min("probability").alias("low"),
                                               F.sum("probability").alias("total")).collect():
            tally.leads += row["n"]
            if row["tier"] == "SQL":
                tally.sql_leads, tally.sql_threshold, tally.expected_conversions = row["n"], row["low"], row["total"]
            elif row["tier"] == "MQL":
                tally.mql_leads = row["n"]
            elif row["tier"] == "error":
                tally.error_leads = row["n"]
        seconds = time.perf_counter() - t
    return CrmScoring(out, seconds, tally)


def score_table(model: str | Path, data: str | Path, out: str | Path) -> TableScoring:
    """Score every row of the flat table ``data`` with a model trained on such a table."""
    from propensity.core.output import check_file_output, claim
    from propensity.jobs.outputs import write_table
    from propensity.tabular.files import read_flat_table as read_table
    from propensity.tabular.scorer import TableScorer

    target = Path(out)
    check_file_output(target, inputs=(data, model))
    with claim(target):
        scorer = TableScorer.load(model)
        t = time.perf_counter()
        scores = scorer.score(read_table(data), source=data)
        write_table(scores, target)
        seconds = time.perf_counter() - t
    return TableScoring(data, target, len(scores), seconds)
