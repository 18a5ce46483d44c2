"""The generated SQL: golden files per dialect, and DuckDB's answers equal to the in-process engines'."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlglot
from _feature_cases import ENGAGEMENT, ICP, T0, assert_same_as_pairwise, make_export, random_world

from propensity.config import default_project_dir, load_project
from propensity.features.engines.sql import DIALECTS, feature_sql, features_duckdb
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec

GOLDEN = Path(__file__).parent / "golden" / "sql"
UPDATE = os.environ.get("PROPENSITY_UPDATE_GOLDEN") == "1"  # rewrite the golden files after a deliberate change
DAY = pd.Timedelta(days=1)


def default_configs():
    project = load_project(default_project_dir() / "training" / "default.yaml")
    return project.icp, project.engagement


@pytest.mark.parametrize("dialect", DIALECTS)
def test_generated_sql_equals_its_golden_file(dialect):
    icp, engagement = default_configs()
    sql = feature_sql(icp, engagement, dialect) + "\n"
    path = GOLDEN / f"features.{dialect}.sql"
    if UPDATE:
        path.write_text(sql)
    assert sql == path.read_text(), f"{path.name} differs (a meant change: PROPENSITY_UPDATE_GOLDEN=1)"
    sqlglot.parse_one(sql, read=dialect)  # the dialect's own parser reads it back


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_converts_times_with_its_own_function(dialect):
    sql = feature_sql(ICP, ENGAGEMENT, dialect)
    expected = {"duckdb": "EPOCH_US(", "spark": "UNIX_MICROS(", "bigquery": "UNIX_MICROS(",
                "snowflake": "DATE_PART(EPOCH_MICROSECOND,", "postgres": "EXTRACT(EPOCH FROM"}[dialect]
    assert expected in sql
    assert dialect == "duckdb" or "EPOCH_US" not in sql


def test_table_names_are_substituted_and_checked():
    sql = feature_sql(ICP, ENGAGEMENT, "spark", tables={"activities": "crm.events", "cutoffs": "crm.scoring_rows"})
    assert "FROM crm.events" in sql and "FROM crm.scoring_rows AS c" in sql
    with pytest.raises(ValueError, match="tables\\['leads'\\]"):
        feature_sql(ICP, ENGAGEMENT, tables={"leads": "leads; DROP TABLE x"})
    with pytest.raises(ValueError, match="dialect: expected one of"):
        feature_sql(ICP, ENGAGEMENT, "oracle")


def _assert_parity(got: pd.DataFrame, want: pd.DataFrame, icp, engagement) -> None:
    """Same columns and rows; counts, days and active days exact, decay 1e-9 relative, fit values equal."""
    assert list(got.columns) == list(want.columns)
    assert (got["lead_id"].to_numpy() == want["lead_id"].to_numpy()).all()
    spec = build_feature_spec(icp, engagement)
    assert_same_as_pairwise(got, want, spec, rtol=1e-9)
    for f in spec:
        if f.kind == "categorical":
            assert got[f.name].tolist() == want[f.name].tolist(), f.name


@pytest.mark.parametrize("engine", ["auto", "pairwise", "running", "snapshots"])
def test_duckdb_sql_equals_the_engines_on_a_world_with_backfills_edges_and_unknown_types(engine):
    export, cutoffs = random_world(seed=3, n_leads=60, n_events=3000)
    icp, engagement = default_configs()
    with pytest.warns(UserWarning, match="no engagement signal lists"):
        want = build_features(export, cutoffs, icp, engagement, engine=engine)
    got = features_duckdb(export, cutoffs, icp, engagement)
    _assert_parity(got, want, icp, engagement)
    assert got["label"].tolist() == cutoffs["label"].tolist()
    assert (got["eng_active_days_90d"] > 0).any() and got["eng_web_visit_days_since"].isna().any()


def test_salted_sql_gives_the_same_values_for_heavy_leads():
    """Leads above heavy_lead_events are joined in parts by day and added up: every value as unsalted."""
    export, cutoffs = random_world(seed=3, n_leads=60, n_events=3000)
    icp, engagement = default_configs()
    with pytest.warns(UserWarning, match="no engagement signal lists"):
        want = build_features(export, cutoffs, icp, engagement, engine="pairwise")
    per_lead = export.activities["lead_id"].value_counts()
    heavy = int(per_lead.quantile(0.5))
    assert (per_lead > heavy).sum() >= 10  # half of the leads are salted
    sql = feature_sql(icp, engagement, "duckdb", heavy_lead_events=heavy, salts=7)
    assert "HAVING" in sql and f"> {heavy}" in sql and "salt" in sql
    got = features_duckdb(export, cutoffs, icp, engagement, heavy_lead_events=heavy, salts=7)
    _assert_parity(got, want, icp, engagement)
    assert (got["eng_active_days_90d"] > 0).any()
    assert "salt" not in feature_sql(icp, engagement, "spark", heavy_lead_events=heavy, salts=1)


def test_duckdb_sql_equals_the_asof_engine_on_one_cutoff_for_many_leads():
    export, _ = random_world(seed=4, n_leads=2500, n_events=40_000)
    cutoffs = pd.DataFrame({"lead_id": export.leads["lead_id"].astype(object),
                            "cutoff": pd.Timestamp("2024-11-01T00:00:00Z")})
    icp, engagement = default_configs()
    with pytest.warns(UserWarning):
        want = build_features(export, cutoffs, icp, engagement, engine="asof")
    _assert_parity(features_duckdb(export, cutoffs, icp, engagement), want, icp, engagement)


def test_duckdb_sql_applies_the_time_contract_at_the_edges():
    us = pd.Timedelta(microseconds=1)
    export = make_export([
        ("L1", "web_visit", T0),  # at the cutoff: unseen
        ("L1", "web_visit", T0 - us),  # a µs before: seen, on the day before T0
        ("L1", "pricing_page_visit", T0 - 2 * DAY, T0),  # recorded at the cutoff: unseen
        ("L1", "pricing_page_visit", T0 - 7 * DAY, T0 - us),  # recorded a µs before: seen, exactly 7 days old
        ("L1", "chat", T0 - 3 * DAY),  # unknown type: an active day and days since any, no signal
        ("L1", "demo_request", T0, T0 - DAY),  # occurs at the cutoff, recorded before it: unseen
    ])
    rows = pd.DataFrame({"lead_id": ["L1", "L1"], "cutoff": [T0, T0 + us]})
    with pytest.warns(UserWarning, match="chat"):
        want = build_features(export, rows, ICP, ENGAGEMENT, engine="pairwise")
    got = features_duckdb(export, rows, ICP, ENGAGEMENT)
    _assert_parity(got, want, ICP, ENGAGEMENT)
    first = got.iloc[0]
    assert first["eng_web_7d"] == 2.0 and first["eng_pricing_7d"] == 1.0 and first["eng_active_days_30d"] == 3.0
    assert got.iloc[1]["eng_web_7d"] == 3.0  # the event at T0 is seen a µs later
    assert first["eng_demo_7d"] == 0.0 and got.iloc[1]["eng_demo_7d"] == 1.0
    assert np.isclose(first["eng_days_since_any"], 1 / 86_400_000_000)


@pytest.fixture(scope="module")
def crm(tmp_path_factory) -> Path:
    from propensity.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("sqlcli") / "crm", n_leads=800, seed=11)


def test_features_sql_prints_a_query_that_gives_the_cli_table_on_the_export_files(crm, tmp_path, capsys):
    import duckdb

    from propensity.cli import main
    from propensity.data.export import read_export
    from propensity.features.cutoffs import training_cutoffs

    out = tmp_path / "train.parquet"
    assert main(["features", "--data", str(crm), "--out", str(out)]) == 0
    want = pd.read_parquet(out)
    capsys.readouterr()
    assert main(["features", "--sql", "duckdb", "--table", "activities=crm_events"]) == 0
    sql = capsys.readouterr().out
    assert "--   crm_events: lead_id, activity_type, occurred_at, recorded_at" in sql
    assert "--   cutoffs: lead_id, cutoff, label" in sql

    export = read_export(crm)
    icp, engagement = default_configs()
    cfg = load_project(default_project_dir() / "training" / "default.yaml").training
    cutoffs = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("cutoffs", cutoffs)
    for table, name in (("leads", "leads"), ("accounts", "accounts"), ("activities", "crm_events")):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{crm / (table + '.parquet')}')")
    got = con.execute(f"SELECT * FROM ({sql.rstrip().rstrip(';')}) ORDER BY lead_id, cutoff").df()
    want = want.sort_values(["lead_id", "cutoff"], kind="stable").reset_index(drop=True)
    assert len(got) == len(want) == len(cutoffs) > 1000
    assert got["label"].tolist() == want["label"].tolist()
    _assert_parity(got, want, icp, engagement)


def test_features_sql_without_label_as_of_and_refuses_data(capsys):
    from propensity.cli import main

    assert main(["features", "--sql", "bigquery", "--as-of", "2025-01-01"]) == 0
    sql = capsys.readouterr().out
    assert "UNIX_MICROS(" in sql and "label" not in sql
    assert main(["features", "--sql", "spark", "--out", "x.parquet"]) == 2
    assert "reads no data" in capsys.readouterr().err
    assert main(["features", "--sql", "spark", "--table", "events"]) == 2
    assert "NAME=TABLE" in capsys.readouterr().err
