"""A CRM export as Spark DataFrames: Parquet or CSV files in a folder, or tables of a catalog schema."""

from __future__ import annotations

from pathlib import Path

from propensity.core.errors import DataError
from propensity.core.output import is_remote
from propensity.data.tables import REQUIRED, TABLES, TIMESTAMPS, find_table

__all__ = ["CATALOG_PREFIX", "heaviest_leads", "heaviest_line", "read_spark_export"]

CATALOG_PREFIX = "table:"  # --data table:SCHEMA reads SCHEMA.leads, SCHEMA.accounts, ...


def read_spark_export(spark, data: str | Path) -> dict:
    """The export's four tables (``accounts``, ``leads``, ``activities``, ``opportunities``) as Spark DataFrames.

    ``data`` is a folder (local or a URI such as ``s3://bucket/crm``) holding
    ``<table>.parquet`` or ``<table>.csv`` (a file or a Spark dataset folder), or
    ``table:SCHEMA`` for catalog tables ``SCHEMA.<table>``. CSV columns are read as
    text and the timestamp columns cast to timestamps (they must carry their zone).
    A missing ``recorded_at`` is a column of nulls (the events count from
    ``occurred_at``). Raises :class:`DataError` naming the table and the missing
    columns; the rows themselves are checked where they are read, by the engine.
    """
    from pyspark.sql import functions as F

    text = str(data)
    out = {}
    for name in TABLES:
        if text.startswith(CATALOG_PREFIX):
            where = f"{text.removeprefix(CATALOG_PREFIX)}.{name}"
            df = spark.table(where)
        else:
            path = _table_path(text, name)
            where = path
            if path.endswith(".csv"):
                df = spark.read.option("header", True).option("inferSchema", False).csv(path)
                for col in TIMESTAMPS.get(name, []):
                    if col in df.columns:
                        df = df.withColumn(col, F.col(col).cast("timestamp"))
            else:
                df = spark.read.parquet(path)
        missing = [c for c in REQUIRED[name] if c not in df.columns]
        if missing:
            raise DataError(f"{where}: table '{name}' lacks the column(s) {missing}; found {df.columns}")
        if name == "activities" and "recorded_at" not in df.columns:
            df = df.withColumn("recorded_at", F.lit(None).cast("timestamp"))
        out[name] = df
    return out


def _table_path(folder: str, name: str) -> str:
    if is_remote(folder):  # a remote folder: Spark knows whether it exists; Parquet is the format there
        return f"{folder.rstrip('/')}/{name}.parquet"
    return str(find_table(Path(folder), name))


def heaviest_leads(activities, top: int = 3) -> tuple[list[tuple[str, int]], float]:
    """The ``top`` leads with the most activities (lead_id, count), and the mean count per lead with any.

    The join of cutoff rows to events runs a lead's events in one task unless the lead
    is salted (more than ``spark.heavy_lead_events``), so the Spark commands name the
    heaviest leads.
    """
    from pyspark.sql import functions as F

    per_lead = activities.groupBy("lead_id").agg(F.count("*").alias("n"))
    rows = per_lead.orderBy(F.col("n").desc(), F.col("lead_id")).limit(top).collect()
    mean = per_lead.agg(F.avg("n").alias("m")).first()["m"]
    return [(str(r["lead_id"]), int(r["n"])) for r in rows], float(mean or 0.0)


def heaviest_line(activities, heavy_lead_events: int, salts: int) -> str:
    """One line naming the heaviest leads, the mean per lead, and whether they are salted; empty without activities."""
    heavy, mean = heaviest_leads(activities)
    if not heavy:
        return ""
    salted = sum(n > heavy_lead_events for _, n in heavy)
    note = (f"; {salted} of them above spark.heavy_lead_events ({heavy_lead_events:,}): their events are split "
            f"over {salts} tasks by day" if salted and salts > 1 else "")
    return ("heaviest leads: " + ", ".join(f"{lead} {n:,} activities" for lead, n in heavy)
            + f" (mean per lead with any: {mean:,.1f}){note}")
