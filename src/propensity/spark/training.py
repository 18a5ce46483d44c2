"""The training table on Spark, its negatives down-sampled to a size one machine trains on, collected to pandas.

:func:`spark_training_table` builds the training cutoff rows (every lead open at
each snapshot date, with its label) by the generated SQL, places the test window on
the whole table's dates and conversions (the same
:func:`~propensity.modeling.split.time_split` the local training runs, which
depends on nothing else), then keeps:

- every positive row (conversions are what the table is short of);
- every row of the test window, so that the test metrics are those of the real
  base rate, with no weights to get wrong;
- of the other negatives, the rows whose hash of ``(lead_id, cutoff, seed)`` falls
  below the rate: deterministic, the same rows whatever the partitioning.

The features are computed on Spark for the kept rows only, and the table collected.
``weights`` give each row the number of rows it stands for (``1 / rate`` for a kept
negative before the test window, else 1): calibration and validation use them, so
the probabilities are those of the table before sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from propensity.config import ProjectConfig
from propensity.core.errors import DataError
from propensity.features.spec import build_feature_spec
from propensity.modeling.split import time_split
from propensity.spark.features import cutoff_rows, features_of_cutoffs

__all__ = ["TrainingTable", "negative_rate", "sample_negatives", "spark_training_table", "unmatched_account_share"]

_HASH_BITS = 53  # the hash's low bits as a uniform number in [0, 1): exact in a double


@dataclass(frozen=True)
class TrainingTable:
    """The collected training rows (as ``build_features`` gives them), each row's weight, and the sampling record."""

    frame: pd.DataFrame
    weights: np.ndarray
    sampling: dict
    data_end: str


def negative_rate(rows: int, test_rows: int, positives_before: int, negatives_before: int, max_rows: int,
                  configured: str | float = "auto") -> float:
    """The rate at which negatives before the test window are kept.

    ``auto``: 1.0 when the table fits in ``max_rows``; else the rate that brings the
    expected size to ``max_rows`` (the test window and the positives are all kept).
    A number is used as it is. Raises ``ValueError`` when the kept rows alone exceed
    ``max_rows``.
    """
    if configured != "auto":
        return float(configured)
    if rows <= max_rows or negatives_before == 0:
        return 1.0
    room = max_rows - test_rows - positives_before
    if room <= 0:
        raise ValueError(f"spark.max_rows ({max_rows:,}) is below the rows that are never sampled: the test window "
                         f"({test_rows:,} rows) and the conversions before it ({positives_before:,}); raise "
                         "spark.max_rows or lower split.test_fraction")
    return room / negatives_before


def unmatched_account_share(tables: dict) -> tuple[int, int]:
    """(leads whose account_id is in no account, leads): the training's refusal above 20%, counted on Spark."""
    leads, accounts = tables["leads"], tables["accounts"]
    missing = leads.join(accounts.select("account_id").distinct(), on="account_id", how="left_anti").count()
    return int(missing), int(leads.count())


def _split_of_counts(counts: pd.DataFrame, project: ProjectConfig):
    """The time split of the whole table from its rows and conversions per date (one row stands for each).

    ``time_split`` reads only the dates and the conversions per date, so a table of one
    negative row per date plus one row per conversion falls exactly as the whole table.
    """
    dates = np.repeat(counts["cutoff"].to_numpy(), 1 + counts["positives"].to_numpy())
    labels = np.concatenate([np.r_[0, np.ones(p, dtype=np.int64)] for p in counts["positives"]])
    cfg = project.training
    split = time_split(pd.Series(dates), cfg.split, cfg.label.horizon_days, labels)
    return pd.Timestamp(dates[split.test].min())


def sample_negatives(cutoffs, rate: float, test_from: pd.Timestamp, seed: int):
    """The rows of ``cutoffs`` (``lead_id, cutoff, label``) kept: positives, rows from ``test_from`` on, and the
    negatives before it whose hash of ``(lead_id, cutoff, seed)`` falls below ``rate`` (the same rows whatever the
    partitioning or the run)."""
    from pyspark.sql import functions as F

    if rate >= 1:
        return cutoffs
    h = F.xxhash64(F.col("lead_id"), F.col("cutoff"), F.lit(int(seed)))
    u = h.bitwiseAND(F.lit((1 << _HASH_BITS) - 1)).cast("double") / float(1 << _HASH_BITS)
    return cutoffs.where((F.col("label") == 1) | (F.col("cutoff") >= F.lit(test_from.to_pydatetime()))
                         | (u < F.lit(float(rate))))


def spark_training_table(spark, tables: dict, project: ProjectConfig, say=None) -> TrainingTable:
    """The training rows of ``tables`` (from :func:`~propensity.spark.tables.read_spark_export`), sampled, collected.

    See the module docstring. Raises ``ValueError`` when there are no training rows,
    and :class:`~propensity.core.errors.DataError` (before the features are built) when
    the export cannot give a time-ordered split.
    """
    from pyspark.sql import functions as F

    say = say or (lambda _msg: None)
    cfg, scfg = project.training, project.training.spark
    cutoffs, what, prefix, end = cutoff_rows(spark, tables, project, labelled=True)
    cutoffs = cutoffs.persist()
    try:
        per_date = cutoffs.groupBy("cutoff").agg(F.count("*").alias("rows"), F.sum("label").alias("positives")
                                                 ).orderBy("cutoff").toPandas()
        if per_date.empty:
            raise ValueError(f"no training rows; the data spans less than the {cfg.label.horizon_days}-day horizon")
        per_date["cutoff"] = _utc(per_date["cutoff"])
        per_date["positives"] = per_date["positives"].astype(np.int64)
        test_from = _split_of_counts(per_date, project)
        before = per_date["cutoff"] < test_from
        rows = int(per_date["rows"].sum())
        test_rows = int(per_date.loc[~before, "rows"].sum())
        pos_before = int(per_date.loc[before, "positives"].sum())
        neg_before = int(per_date.loc[before, "rows"].sum()) - pos_before
        rate = negative_rate(rows, test_rows, pos_before, neg_before, scfg.max_rows, scfg.negative_rate)
        say(f"{rows:,} {what} on Spark; test window from {test_from.date()} ({test_rows:,} rows, kept whole)"
            + (f"; negatives before it kept at rate {rate:.4g}" if rate < 1 else "; no sampling (fits max_rows)"))
        kept = sample_negatives(cutoffs, rate, test_from, int(cfg.model.seed))
        sdf = features_of_cutoffs(spark, tables, kept, project.icp, project.engagement, ["label"], prefix,
                                  spark_cfg=scfg)
        expected = rate * neg_before + test_rows + pos_before
        say(f"building the features of the kept rows on Spark and collecting them ({expected:,.0f} rows expected)")
        frame = _as_built(_collect(spark, sdf), build_feature_spec(project.icp, project.engagement))
    finally:
        cutoffs.unpersist()
    negative = frame["label"].to_numpy() == 0
    sampled = negative & (frame["cutoff"] < test_from).to_numpy()
    weights = np.where(sampled, 1.0 / rate, 1.0)
    sampling = {"rows_before": rows, "rows_after": len(frame), "positives": int((~negative).sum()),
                "negatives_before": neg_before, "negatives_kept": int(sampled.sum()),
                "negative_rate": rate, "negative_weight": 1.0 / rate, "rate_config": str(scfg.negative_rate),
                "max_rows": scfg.max_rows, "test_rows": test_rows, "test_first_cutoff": str(test_from),
                "seed": int(cfg.model.seed)}
    return TrainingTable(frame, weights, sampling, str(end))


def _collect(spark, sdf) -> pd.DataFrame:
    """``sdf.toPandas()`` through Arrow (column batches, not a Python object per value); the session's setting is
    put back afterwards, since the session may be the caller's."""
    key = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(key, "false")
    spark.conf.set(key, "true")
    try:
        return sdf.toPandas()
    finally:
        spark.conf.set(key, before)


def _utc(values: pd.Series) -> pd.Series:
    # Spark hands naive datetimes in the session's time zone, which spark_session sets to UTC.
    t = pd.to_datetime(values)
    return t.dt.tz_localize("UTC") if t.dt.tz is None else t.dt.tz_convert("UTC")


def _as_built(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """A collected feature table in the order and dtypes of ``build_features``' training rows."""
    if frame.empty:
        raise DataError("no training rows were kept; check spark.negative_rate")
    frame["cutoff"] = _utc(frame["cutoff"]).astype("datetime64[us, UTC]")
    frame["label"] = frame["label"].astype(np.int8)
    frame["lead_id"] = frame["lead_id"].astype(object)
    frame = frame.sort_values(["cutoff", "lead_id"], kind="stable").reset_index(drop=True)
    for f in spec:
        if f.kind == "categorical":
            frame[f.name] = pd.Series([v if isinstance(v, str) else None for v in frame[f.name]], dtype=object)
        else:
            frame[f.name] = frame[f.name].astype(np.float64)
    return frame
