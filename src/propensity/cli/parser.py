"""The ``propensity`` command's flags: one subcommand per job, each bound to its function in :mod:`.commands`."""

from __future__ import annotations

import argparse

from propensity.cli import commands
from propensity.core.version import VERSION

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="propensity", description="Lead propensity scoring from your CRM history.")
    p.add_argument("--version", action="version", version=f"propensity {VERSION}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="write editable copies of features/ and training/ into a new project folder")
    s.add_argument("dir", help="a new or empty folder (init never replaces a project)")
    s.set_defaults(func=commands.init)

    s = sub.add_parser("generate", help="write a synthetic CRM export folder (with ground truth)")
    s.add_argument("--out", required=True, help="folder to create; replaced only if it is empty or a synthetic "
                   "world propensity wrote")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--leads", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    s.add_argument("--start", metavar="DATE", help="first day of the world (default 2024-01-01)")
    s.add_argument("--end", metavar="DATE", help="the export's date (default 2026-01-01)")
    h = s.add_argument_group("hazards (real-data look; see docs/synthetic.md)")
    h.add_argument("--drift", action="append", choices=["base-rate", "mechanics", "mix", "late-wins", "win-rate"],
                   help="a change over time (repeat for several): in-market rate, an intent signal that stops "
                   "meaning intent, the industry/source mix, no deal won before --wins-from, or fewer deals won from "
                   "--drift-at")
    h.add_argument("--drift-at", metavar="DATE", help="when base-rate/mechanics/mix/win-rate drift starts "
                   "(default: mid-span)")
    h.add_argument("--drift-shift", type=float, help="base-rate drift: in-market log-odds added (default 1.0)")
    h.add_argument("--drift-signal", help="mechanics drift: the signal (default pricing_page_visit)")
    h.add_argument("--win-factor", type=float, help="win-rate drift: deals closing from --drift-at on are won with "
                   "this times their probability (default 0.4)")
    h.add_argument("--wins-from", metavar="DATE", help="late-wins: first day a deal can be won (default: start + 6 "
                   "months)")
    h.add_argument("--landing-pages", type=int, help="add a landing_page lead column with N values (3 matter)")
    h.add_argument("--origin", action="store_true", default=None, help="add an origin lead column (4 values)")
    h.add_argument("--activity-scale", type=float, help="multiply activity rates (0.01: ~1 event per lead)")
    h.add_argument("--in-market-shift", type=float, help="in-market log-odds added to every lead (2,000 leads with "
                   "0.3: ~100 won)")
    s.set_defaults(func=commands.generate)

    s = sub.add_parser("train", help="train, evaluate and log a model from a CRM export folder")
    s.add_argument("--data", required=True,
                   help="CRM export folder, or a flat table (.csv / .parquet, one row per lead)")
    s.add_argument("--config", help="training YAML (default: training/default.yaml here, else the packaged one)")
    s.add_argument("--out", default="models/latest", help="bundle folder to write (default: models/latest); "
                   "replaced only if it is empty or a bundle propensity wrote")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    s.add_argument("--target", help="flat table: the outcome column (yes/no, true/false or 1/0)")
    s.add_argument("--id", help="flat table: the id column (kept out of the model, kept in scores)")
    s.add_argument("--time-column", help="flat table: split by this time column (newest 20%% = test)")
    s.add_argument("--exclude", nargs="+", metavar="COL", help="flat table: columns to leave out (e.g. leaky ones)")
    s.add_argument("--budget", type=float, help="flat table: seconds for the parameter search "
                   "(default: tuning.budget_seconds of the training YAML; 0 = no search)")
    s.add_argument("--model-family", choices=["auto", "lightgbm", "logistic", "points"],
                   help="the family to ship (default: model_family of the training YAML, 'auto': the best on the "
                   "validation windows; 'points' needs a CRM export)")
    s.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local (default): in this process; spark: the training rows on a SparkSession, negatives "
                   "down-sampled to spark.max_rows of the training YAML, the model trained here (--data may also "
                   "be table:SCHEMA)")
    s.add_argument("--spark-master", help="with --engine spark: the master (local[2], spark://host:7077, yarn); "
                   "default: $SPARK_REMOTE, the active session, else local[*]")
    s.set_defaults(func=commands.train)

    s = sub.add_parser("score", help="score the open leads of a CRM export folder")
    s.add_argument("--model", required=True, help="bundle folder or MLflow models:/NAME@ALIAS URI")
    s.add_argument("--data", required=True, help="CRM export folder, or a flat table for a model trained on one")
    s.add_argument("--out", required=True, help="output file (.csv or .parquet; an existing file is replaced, "
                   "never a folder or an input); CSV text cells are escaped for spreadsheets")
    s.add_argument("--as-of", help="score as of this UTC time (default: end of the data)")
    s.add_argument("--history", metavar="DIR", help="also keep this run in the score history DIR (Parquet, one "
                   "file per as-of; the same as-of again replaces its run) and add a 'trend' column")
    s.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local (default): in this process; spark: on a SparkSession (--out is then a Parquet "
                   "dataset folder; --data may also be table:SCHEMA for catalog tables)")
    s.add_argument("--spark-master", help="with --engine spark: the master (local[2], spark://host:7077, yarn); "
                   "default: $SPARK_REMOTE, the active session, else local[*]")
    s.set_defaults(func=commands.score)

    s = sub.add_parser("evaluate", help="report a model against baselines on labelled rows (Markdown, charts, MLflow)")
    s.add_argument("--model", required=True, help="bundle folder (or models:/NAME@ALIAS for a CRM model)")
    s.add_argument("--data", required=True, help="CRM export folder for a CRM model, or a labelled table "
                   "(.csv / .parquet) with the columns of a flat-table model")
    s.add_argument("--window", choices=["new", "all"], default="new",
                   help="CRM export: 'new' (default) evaluates only snapshots after the model's training data "
                   "ended; 'all' every labelled snapshot, with the overlap stated in the report")
    s.add_argument("--out", default="evaluation", help="report folder (default: ./evaluation); replaced only if "
                   "it is empty or a report propensity wrote")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    s.set_defaults(func=commands.evaluate)

    s = sub.add_parser("features", help="build the point-in-time feature table alone (training rows, or as of a date)")
    s.add_argument("--data", help="CRM export folder (required unless --list)")
    s.add_argument("--out", help="output file (.csv or .parquet), written atomically (required unless --list); "
                   "an existing file is replaced, never a folder or an input; CSV text cells are escaped for "
                   "spreadsheets")
    s.add_argument("--as-of", help="one row per open lead as of this UTC time (default: labelled training rows)")
    s.add_argument("--config", help="training YAML (default: training/default.yaml here, else the packaged one)")
    s.add_argument("--list", action="store_true",
                   help="print the feature catalogue of the configs (name, family, display, ...) and exit")
    s.add_argument("--sql", metavar="DIALECT", choices=["duckdb", "spark", "snowflake", "bigquery", "postgres"],
                   help="print the feature table as one SQL query in DIALECT (duckdb, spark, snowflake, bigquery, "
                   "postgres) for a warehouse console, headed by the tables it reads, and exit; with --as-of the "
                   "cutoffs table has no label column")
    s.add_argument("--table", action="append", default=[], metavar="NAME=TABLE",
                   help="with --sql: read NAME (cutoffs, activities, leads, accounts) from TABLE, e.g. "
                   "activities=crm.events (repeatable)")
    s.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local (default): in this process; spark: on a SparkSession (--out is then a Parquet "
                   "dataset folder; --data may also be table:SCHEMA for catalog tables)")
    s.add_argument("--spark-master", help="with --engine spark: the master (local[2], spark://host:7077, yarn); "
                   "default: $SPARK_REMOTE, the active session, else local[*]")
    s.set_defaults(func=commands.features)

    s = sub.add_parser("explain", help="print one lead's score and the reasons behind it")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--lead", required=True, help="lead_id")
    s.add_argument("--as-of")
    s.add_argument("--history", metavar="DIR", help="score history: also show the lead's trend over its runs and "
                   "the reasons that moved most between its last two")
    s.set_defaults(func=commands.explain)

    s = sub.add_parser("monitor", help="drift, realized and estimated performance and the funnel of a score history; "
                       "exit code 3 when an alert fires")
    s.add_argument("--model", required=True, help="bundle folder or MLflow models:/NAME@ALIAS URI")
    s.add_argument("--data", required=True, help="the current CRM export folder (outcomes of matured runs)")
    s.add_argument("--history", required=True, metavar="DIR", help="score history written by score --history")
    s.add_argument("--out", default="monitoring", help="report folder (default: ./monitoring): summary.json, "
                   "details.json, report.html; replaced only if it is empty or a report propensity wrote")
    s.add_argument("--config", help="training YAML with the monitoring: thresholds (default: training/default.yaml "
                   "here, else the packaged one)")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    s.set_defaults(func=commands.monitor)

    s = sub.add_parser("promote", help="move alias champion to the challenger if it wins on a recent holdout")
    s.add_argument("--data", required=True, help="CRM export folder whose newest labelled snapshots are the holdout")
    s.add_argument("--name", help="registered model name (default: tracking.registered_model of the config)")
    s.add_argument("--config", help="training YAML (default: training/default.yaml here, else the packaged one)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--capacity", type=int, help="leads sales can work (default: 10%% of the holdout rows)")
    s.add_argument("--tolerance", type=float, default=0.02, help="allowed loss in lift (relative) and ECE")
    s.add_argument("--force", action="store_true", help="promote even if the challenger does not win")
    s.set_defaults(func=commands.promote)

    s = sub.add_parser("demo", help="generate a synthetic CRM, train, log to MLflow, score and explain")
    s.add_argument("--dir", default="propensity-demo", help="working folder (default: ./propensity-demo); "
                   "must be new, empty or a previous demo folder")
    s.add_argument("--force", action="store_true", help="write into --dir and replace its crm/, models/latest and "
                   "scores.csv even if propensity did not write them (never ., the working directory, its parents, "
                   "home or an input)")
    s.add_argument("--leads", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tracking-uri")
    s.set_defaults(func=commands.demo)
    return p

