"""A down-sampled training table (train --engine spark) keeps its probabilities on the true scale; heavy leads named.

The Spark side is in tests/test_spark.py; here the sampling is done by hand on the
in-process table (the same rule: every positive and the test window kept, other
negatives at a rate), so the calibration is checked in the fast suite.
"""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from propensity.cli import main
from propensity.data.export import read_export
from propensity.features.cutoffs import training_cutoffs
from propensity.features.pipeline import build_features
from propensity.modeling.report import model_card, sampling_line
from propensity.modeling.train import train_rows
from propensity.spark.training import negative_rate


def test_calibrated_mean_of_a_down_sampled_run_matches_the_observed_rate(world_dir, project, trained):
    """Rate 1.0 (the session's model) against negatives kept at 10%: same mean probability on the test rows."""
    export = read_export(world_dir)
    cfg = project.training
    frame = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days), project.icp,
                           project.engagement)
    test_from = pd.Timestamp(trained.split["test"]["first_cutoff"], tz="UTC")
    rate = 0.1
    sampled = (frame["label"].to_numpy() == 0) & (frame["cutoff"] < test_from).to_numpy()
    keep = ~sampled | (np.random.default_rng(0).random(len(frame)) < rate)
    rows = frame[keep].reset_index(drop=True)
    weights = np.where(sampled[keep], 1 / rate, 1.0)
    record = {"rows_before": len(frame), "rows_after": len(rows), "positives": int(frame["label"].sum()),
              "negatives_before": int(sampled.sum()), "negatives_kept": int(sampled[keep].sum()),
              "negative_rate": rate, "negative_weight": 1 / rate, "rate_config": "0.1", "max_rows": 1,
              "test_rows": int((~sampled & (frame["label"] == 0).to_numpy()).sum()
                               + frame.loc[frame["cutoff"] >= test_from, "label"].sum()),
              "test_first_cutoff": str(test_from), "seed": 0}
    got = train_rows(rows, project, "x", "y", model_family="lightgbm", weights=weights, sampling=record)

    assert len(rows) < 0.5 * len(frame)
    assert len(got.test) == len(trained.test)  # the test window is not sampled
    observed = float(got.test["label"].mean())
    se = np.sqrt(observed * (1 - observed) / len(got.test))
    full = float(trained.test["probability"].mean())
    mean = float(got.test["probability"].mean())
    assert abs(mean - observed) < 3 * se, (mean, observed, se)
    assert abs(mean - full) < 0.2 * full, (mean, full)
    assert got.bundle.metadata["sampling"]["negative_rate"] == rate and got.params["sampling_negative_rate"] == rate
    line = sampling_line(got.sampling)
    assert f"sampled at rate {rate:.4g}" in line and f"{len(rows):,} rows trained on" in line
    assert line in model_card(got, project)


def test_sampled_split_must_keep_the_test_window_it_was_placed_on(world_dir, project):
    export = read_export(world_dir)
    cfg = project.training
    frame = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days), project.icp,
                           project.engagement)
    first = frame["cutoff"].sort_values().iloc[len(frame) // 2]  # not where the split puts the test window
    with pytest.raises(ValueError, match="test window is not the un-sampled one"):
        train_rows(frame, project, "x", "y", weights=np.ones(len(frame)),
                   sampling={"test_first_cutoff": str(first), "negative_rate": 1.0})


def test_negative_rate_fits_max_rows_and_refuses_when_nothing_can_be_sampled():
    assert negative_rate(900, 100, 50, 750, max_rows=1000) == 1.0
    assert negative_rate(10_100, 100, 50, 9_950, max_rows=1000) == pytest.approx(850 / 9_950)
    assert negative_rate(10_100, 100, 50, 9_950, max_rows=1000, configured=0.5) == 0.5
    with pytest.raises(ValueError, match="spark.max_rows"):
        negative_rate(10_100, 990, 50, 9_060, max_rows=1000)


def test_train_engine_spark_bad_config_and_missing_runtime_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "crm").mkdir()
    cfg = tmp_path / "t.yaml"
    cfg.write_text("spark:\n  max_rows: 1000\n  bogus: 1\n")
    assert main(["train", "--engine", "spark", "--data", str(tmp_path / "crm"), "--out", str(tmp_path / "m"),
                 "--config", str(cfg), "--no-track"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "t.yaml" in err and "bogus" in err
    cfg.write_text("spark:\n  negative_rate: 0\n")
    assert main(["train", "--engine", "spark", "--data", str(tmp_path / "crm"), "--out", str(tmp_path / "m"),
                 "--config", str(cfg), "--no-track"]) == 2
    assert "negative_rate" in capsys.readouterr().err
    assert main(["train", "--engine", "spark", "--data", str(tmp_path / "crm"), "--out", str(tmp_path / "m"),
                 "--target", "won", "--no-track"]) == 2
    assert "--target" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # pyspark not installed
    assert main(["train", "--engine", "spark", "--data", str(tmp_path / "crm"), "--out", str(tmp_path / "m"),
                 "--no-track"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs pyspark" in err and "\n" not in err
    assert not (tmp_path / "m").exists()


def test_train_engine_spark_without_java_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    from propensity.spark import session

    monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: None))
    monkeypatch.setattr(session.shutil, "which", lambda _name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    (tmp_path / "crm").mkdir()
    assert main(["train", "--engine", "spark", "--spark-master", "local[2]", "--data", str(tmp_path / "crm"),
                 "--out", str(tmp_path / "m"), "--no-track"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a Java runtime" in err and "\n" not in err


def test_export_check_names_the_heaviest_leads_and_warns_of_a_bot(tmp_path, capsys):
    from propensity.data.synthetic import write_world

    crm = write_world(tmp_path / "crm", n_leads=300, seed=2)
    acts = pd.read_parquet(crm / "activities.parquet")
    bot = str(acts["lead_id"].iloc[0])
    n = 200_000
    start = pd.Timestamp(acts["occurred_at"].max()) - pd.Timedelta(days=90)
    extra = pd.DataFrame({"lead_id": bot, "activity_type": "web_visit",
                          "occurred_at": start + pd.to_timedelta(np.arange(n) * 37, unit="s")})
    extra["recorded_at"] = extra["occurred_at"]
    acts = pd.concat([acts.astype({"lead_id": object}), extra[acts.columns]], ignore_index=True)
    acts.to_parquet(crm / "activities.parquet", index=False)
    before = (acts["lead_id"] == bot).sum()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export = read_export(crm)
    text = " ".join(str(w.message) for w in caught)
    assert "one lead holds" in text and f"{bot} {before:,} activities" in text
    heavy = export.heaviest_leads()
    assert heavy[0] == (bot, before) and len(heavy) == 3 and heavy[1][1] < 1000
    assert main(["features", "--data", str(crm), "--out", str(tmp_path / "f.parquet"), "--as-of", "2025-06-01"]) == 0
    printed = capsys.readouterr()
    assert f"heaviest leads: {bot} {before:,} activities" in printed.out + printed.err


def test_spark_connect_without_its_client_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pyspark")
    import sys

    monkeypatch.setenv("SPARK_REMOTE", "sc://spark.example:15002")
    monkeypatch.setitem(sys.modules, "grpc", None)  # the connect extra not installed
    (tmp_path / "crm").mkdir()
    assert main(["features", "--engine", "spark", "--data", str(tmp_path / "crm"),
                 "--out", str(tmp_path / "f.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pyspark[connect]" in err and "\n" not in err and not (tmp_path / "f.parquet").exists()
