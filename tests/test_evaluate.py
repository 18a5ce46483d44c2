"""Honest evaluation: top-K figures, the report, and `propensity evaluate`."""

import numpy as np
import pytest
from _tables import lead_table

from propensity.cli import main
from propensity.modeling.evaluate import compare, top_k_metrics


def test_top_k_counts_conversions_among_the_k_best_scored():
    y = np.array([1, 0, 1, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.05])
    t = top_k_metrics(y, p, 3)
    assert t == {"k": 3.0, "conversions": 2.0, "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3)}


def test_compare_puts_every_model_on_the_same_rows_with_top_decile():
    r = np.random.default_rng(0)
    y = (r.random(1000) < 0.1).astype(int)
    out = compare(y, {"a": r.random(1000), "b": y + r.random(1000)}, ks=(50,))
    assert out["ks"] == [50, 100] and out["decile_k"] == 100
    assert out["models"]["b"]["metrics"]["roc_auc"] == 1.0
    assert out["models"]["b"]["top_k"]["100"]["conversions"] == min(100, y.sum())
    assert len(out["models"]["a"]["lift"]) == 10


def test_cli_evaluate_writes_report_and_logs_a_run(tmp_path, capsys):
    train, holdout = tmp_path / "train.csv", tmp_path / "holdout.csv"
    lead_table(1500, seed=5).drop(columns=["call_duration"]).to_csv(train, index=False)
    lead_table(600, seed=6).drop(columns=["call_duration"]).to_csv(holdout, index=False)
    assert main(["train", "--data", str(train), "--target", "converted", "--id", "lead_id", "--budget", "1",
                 "--out", str(tmp_path / "m"), "--no-track"]) == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(holdout), "--out", str(tmp_path / "ev"),
                 "--tracking-uri", uri]) == 0
    report = (tmp_path / "ev" / "report.md").read_text()
    for needle in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top decile", "logistic regression"):
        assert needle in report
    assert (tmp_path / "ev" / "reliability.png").stat().st_size > 0
    assert (tmp_path / "ev" / "lift_gains.png").stat().st_size > 0
    assert "MLflow run" in capsys.readouterr().out
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["propensity"])
    assert len(runs) == 1 and "metrics.model_roc_auc" in runs.columns


def test_cli_evaluate_needs_the_target_column(tmp_path, capsys):
    train, holdout = tmp_path / "train.csv", tmp_path / "holdout.csv"
    lead_table(800, seed=5).to_csv(train, index=False)
    lead_table(100, seed=6).drop(columns=["converted"]).to_csv(holdout, index=False)
    assert main(["train", "--data", str(train), "--target", "converted", "--budget", "0",
                 "--out", str(tmp_path / "m"), "--no-track"]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(holdout), "--no-track",
                 "--out", str(tmp_path / "ev")]) == 2
    assert "target column 'converted' not found" in capsys.readouterr().err
