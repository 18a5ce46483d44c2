"""``propensity features``: the point-in-time feature table alone, and the feature catalogue of the configs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from propensity.jobs.progress import Progress

__all__ = ["FeatureTable", "feature_catalogue", "feature_query", "features", "features_spark", "say_heaviest",
           "say_heaviest_spark"]


@dataclass(frozen=True)
class FeatureTable:
    """``rows`` rows of ``what`` with ``columns`` columns, written to ``out``."""

    out: Path
    rows: int
    columns: int
    what: str
    seconds: float


def feature_catalogue(config: str | Path | None = None) -> list:
    """The features the configs define (``features.spec.Feature``), in column order."""
    from propensity.config import load_project
    from propensity.features.spec import build_feature_spec

    project = load_project(config)
    return list(build_feature_spec(project.icp, project.engagement))


def feature_query(dialect: str, config: str | Path | None = None, tables: dict[str, str] | None = None,
                  labelled: bool = True) -> str:
    """The feature table of the configs as SQL in ``dialect``, headed by comments naming the tables it reads.

    ``labelled``: the cutoffs table carries a ``label`` column (training rows) into the
    result; otherwise it has only ``lead_id, cutoff`` (scoring rows as of a time).
    """
    from propensity.config import load_project
    from propensity.features.engines.sql import TABLES, feature_sql

    project = load_project(config)
    rel = {t: t for t in TABLES} | (tables or {})
    sql = feature_sql(project.icp, project.engagement, dialect, tables=rel, extra_columns=["label"] if labelled else [])
    icp_cols = {t: sorted({c.column for c in project.icp.criteria if c.table == t}) for t in ("leads", "accounts")}
    rows = ("one row per lead and snapshot date, label = 1 if won within the horizon after it"
            if labelled else "one row per lead to score, all at the same as-of time")
    head = [
        f"-- propensity feature table ({dialect}), generated from the feature spec; one output row per cutoffs row.",
        "-- Tables it reads (times are timestamps; the query converts them to UTC microseconds once):",
        f"--   {rel['cutoffs']}: lead_id, cutoff{', label' if labelled else ''}  ({rows})",
        f"--   {rel['activities']}: lead_id, activity_type, occurred_at, recorded_at (null: counts from occurred_at)",
        f"--   {rel['leads']}: {', '.join(['lead_id', 'account_id', 'created_at', *icp_cols['leads']])}",
        f"--   {rel['accounts']}: {', '.join(['account_id', *icp_cols['accounts']])}",
        "-- An activity counts for a row only if it occurred and was recorded strictly before the row's cutoff.",
    ]
    return "\n".join(head) + "\n" + sql + ";\n"


def features(data: str | Path, out: str | Path, as_of: str | None = None, config: str | Path | None = None,
             progress: Progress | None = None) -> FeatureTable:
    """Write the feature table of the export ``data`` to ``out`` (``.csv`` or ``.parquet``, atomically).

    Without ``as_of``: the labelled training rows (one per lead and snapshot date);
    with it: one row per lead open at that time. ``out`` is checked before any work.
    """
    from propensity.config import load_project
    from propensity.core.output import check_file_output, claim
    from propensity.data.export import read_export
    from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
    from propensity.features.pipeline import build_features
    from propensity.jobs.outputs import write_table

    progress = progress or Progress()
    target = Path(out)
    check_file_output(target, inputs=(data, config))  # before the expensive part
    with claim(target):
        project = load_project(config)
        t = time.perf_counter()
        progress.step(f"reading {data}")
        export = read_export(data)
        say_heaviest(export, progress)
        if as_of is None:
            cfg = project.training
            cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
            what = f"training rows (snapshots every {cfg.cutoffs.every_days} days, label = closed won within " \
                   f"{cfg.label.horizon_days} days)"
        else:
            cut = scoring_cutoffs(export, as_of)
            what = f"open leads as of {cut['cutoff'].iloc[0] if len(cut) else as_of}"
        progress.step(f"building features for {len(cut):,} {what}")
        frame = build_features(export, cut, project.icp, project.engagement)
        del export, cut  # the export (1.5 GB at a million leads) is not needed to write the table: freed first
        write_table(frame, target)
        seconds = time.perf_counter() - t
    return FeatureTable(target, len(frame), frame.shape[1], what, seconds)


def say_heaviest(export, progress: Progress) -> None:
    """Name the export's heaviest leads (a bot's counts drown its features; see ``data.checks.HEAVY_SHARE``)."""
    from propensity.data.checks import heaviest_text

    heavy = export.heaviest_leads()
    if heavy:
        progress.step("heaviest leads: " + heaviest_text(heavy, len(export.activity_arrays())))


def say_heaviest_spark(tables: dict, project, progress: Progress) -> None:
    """Name the heaviest leads of a Spark export and whether they are salted (``spark.tables.heaviest_line``)."""
    from propensity.spark.tables import heaviest_line

    scfg = project.training.spark
    line = heaviest_line(tables["activities"], scfg.heavy_lead_events, scfg.salts)
    if line:
        progress.step(line)


def features_spark(data: str | Path, out: str | Path, as_of: str | None = None, config: str | Path | None = None,
                   master: str | None = None, progress: Progress | None = None) -> FeatureTable:
    """:func:`features` on Spark: the same rows and values, written as a Parquet dataset (a folder) to ``out``.

    ``data``: an export folder (local or a URI) or ``table:SCHEMA`` for catalog tables;
    ``master``: the Spark master (default: ``SPARK_REMOTE``, the active session or
    ``local[*]``, see :func:`propensity.spark.session.spark_session`). A local ``out``
    is checked before any work and replaced atomically.
    """
    from contextlib import nullcontext

    from propensity.config import load_project
    from propensity.core.output import claim, is_remote
    from propensity.spark.features import spark_features
    from propensity.spark.output import check_spark_output, write_spark_parquet
    from propensity.spark.session import require_spark, spark_session
    from propensity.spark.tables import read_spark_export

    progress = progress or Progress()
    local = not is_remote(out)
    check_spark_output(out, inputs=(data, config) if local and not is_remote(data) else ())
    project = load_project(config)
    require_spark(master)
    with claim(out) if local else nullcontext():
        t = time.perf_counter()
        progress.step(f"starting Spark ({master or 'SPARK_REMOTE / active session / local[*]'})")
        spark = spark_session(master)
        progress.step(f"reading {data} on Spark")
        tables = read_spark_export(spark, data)
        say_heaviest_spark(tables, project, progress)
        frame, what = spark_features(spark, tables, project, as_of=as_of)
        progress.step(f"building features for {what} on Spark")
        write_spark_parquet(frame, out)
        rows = spark.read.parquet(str(Path(out).resolve()) if local else str(out)).count()
        seconds = time.perf_counter() - t
    return FeatureTable(Path(out), rows, len(frame.columns), what, seconds)
