"""The feature table on Spark: the generated SQL (Spark dialect) over the export's tables, same rows and values.

:func:`spark_features` builds the cutoff rows (the training snapshots with labels,
or the open leads as of one time) and the features by the queries of
:mod:`propensity.features.engines.sql`, transpiled to Spark SQL, over temporary
views of the export (:func:`~propensity.spark.tables.read_spark_export`). Spark
partitions the join of cutoff rows to events by ``lead_id``; nothing is collected
to the driver but three timestamps (the end of the data and the earliest lead,
for the snapshot dates).
"""

from __future__ import annotations

import secrets

import pandas as pd

from propensity.config import EngagementConfig, IcpConfig, ProjectConfig, SparkConfig
from propensity.core.errors import DataError
from propensity.core.times import as_of_utc
from propensity.features.cutoffs import snapshot_dates_between
from propensity.features.engines.sql import cutoffs_sql, feature_sql

__all__ = ["cutoff_rows", "export_bounds", "features_of_cutoffs", "has_heavy_lead", "spark_features"]


def export_bounds(tables: dict) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """(the end of the data: the latest timestamp of any table, the earliest lead's ``created_at``), in UTC."""
    from pyspark.sql import functions as F

    # As microseconds since the epoch: a collected timestamp comes back as a naive datetime in the driver
    # process's local time zone, whatever the session's.
    def micros(column: str, fn=F.max):
        return F.unix_micros(fn(column))

    leads = tables["leads"].agg(micros("created_at").alias("end"), micros("created_at", F.min).alias("first")).first()
    acts = tables["activities"].agg(micros("occurred_at").alias("end")).first()
    opps = tables["opportunities"].agg(micros("created_at").alias("a"), micros("closed_at").alias("b")).first()
    stamps = [_utc(v) for v in (leads["end"], acts["end"], opps["a"], opps["b"]) if v is not None]
    if not stamps:
        raise DataError("the export has no timestamps at all; is it empty?")
    return max(stamps), None if leads["first"] is None else _utc(leads["first"])


def _utc(us: int) -> pd.Timestamp:
    return pd.Timestamp(int(us), unit="us", tz="UTC")


def spark_features(spark, tables: dict, project: ProjectConfig, as_of: object = None,
                   labelled: bool | None = None):
    """The feature table as a Spark DataFrame, and a description of its rows.

    Without ``as_of`` (and ``labelled`` not False): the labelled training rows of
    :func:`~propensity.features.cutoffs.training_cutoffs`; with it: one row per lead
    open at ``as_of`` (``"end"``: one µs after the end of the data, as the scorer's
    default). Columns as ``build_features``: ``lead_id``, ``cutoff``, ``label`` for
    training rows, then the features in spec order.
    """
    labelled = as_of is None if labelled is None else labelled
    cutoffs, what, prefix, _ = cutoff_rows(spark, tables, project, as_of, labelled)
    return features_of_cutoffs(spark, tables, cutoffs, project.icp, project.engagement,
                               ["label"] if labelled else [], prefix, spark_cfg=project.training.spark), what


def cutoff_rows(spark, tables: dict, project: ProjectConfig, as_of: object = None, labelled: bool = True):
    """The rows of :func:`spark_features` (``lead_id, cutoff[, label]``), their description, the views' prefix,
    and the end of the data (:func:`export_bounds`)."""
    end, earliest = export_bounds(tables)
    if labelled:
        cfg = project.training
        if earliest is None:
            times = pd.DatetimeIndex([], dtype="datetime64[us, UTC]")
        else:
            times = snapshot_dates_between(end, earliest, cfg.cutoffs, cfg.label.horizon_days)
        what = (f"training rows (snapshots every {cfg.cutoffs.every_days} days, label = closed won within "
                f"{cfg.label.horizon_days} days)")
    else:
        t = end + pd.Timedelta(microseconds=1) if as_of in (None, "end") else as_of_utc(as_of, "--as-of")
        times = pd.DatetimeIndex([t])
        what = f"open leads as of {t}"
    prefix = f"propensity_{secrets.token_hex(4)}_"  # the caller's views are never replaced
    views = {name: prefix + name for name in (*tables, "cutoff_times", "cutoffs")}
    for name, df in tables.items():
        df.createOrReplaceTempView(views[name])
    from pyspark.sql.types import StructField, StructType, TimestampType

    schema = StructType([StructField("cutoff", TimestampType(), False)])
    spark.createDataFrame([(ts.to_pydatetime(),) for ts in times], schema).createOrReplaceTempView(
        views["cutoff_times"])
    cfg = project.training
    spark.sql(cutoffs_sql("spark", labelled, cfg.cutoffs.max_lead_age_days, cfg.label.horizon_days,
                          tables={k: views[k] for k in ("leads", "opportunities", "cutoff_times")})
              ).createOrReplaceTempView(views["cutoffs"])
    return spark.table(views["cutoffs"]), what, prefix, end


def features_of_cutoffs(spark, tables: dict, cutoffs, icp: IcpConfig, engagement: EngagementConfig,
                        extra_columns: list[str] | tuple[str, ...] = (), prefix: str | None = None,
                        spark_cfg: SparkConfig | None = None):
    """The features of the rows of ``cutoffs`` (a Spark DataFrame: ``lead_id``, ``cutoff`` and ``extra_columns``).

    The library form of ``build_features`` on Spark, for a cutoff table of the
    caller's; every ``lead_id`` must be in ``tables["leads"]`` (rows of other leads
    are dropped by the join). A lead with more than ``spark_cfg.heavy_lead_events``
    activities has its events joined and counted in ``spark_cfg.salts`` parts by day
    (see :func:`~propensity.features.engines.sql.feature_sql`); the values are the same.
    """
    spark_cfg = spark_cfg or SparkConfig()
    salts = spark_cfg.salts if spark_cfg.salts > 1 and has_heavy_lead(tables["activities"],
                                                                       spark_cfg.heavy_lead_events) else 1
    prefix = prefix or f"propensity_{secrets.token_hex(4)}_"
    views = {name: prefix + name for name in ("cutoffs", "activities", "leads", "accounts")}
    for name in ("activities", "leads", "accounts"):
        tables[name].createOrReplaceTempView(views[name])
    cutoffs.createOrReplaceTempView(views["cutoffs"])
    return spark.sql(feature_sql(icp, engagement, "spark", tables=views, extra_columns=list(extra_columns),
                                 heavy_lead_events=spark_cfg.heavy_lead_events, salts=salts))


def has_heavy_lead(activities, heavy_lead_events: int) -> bool:
    """Whether any lead has more than ``heavy_lead_events`` activities: only then is the salted plan worth its
    second aggregation step (one scan of the activities, aggregated per lead where they lie)."""
    from pyspark.sql import functions as F

    per_lead = activities.groupBy("lead_id").agg(F.count("*").alias("n"))
    return per_lead.where(F.col("n") > int(heavy_lead_events)).limit(1).count() > 0
