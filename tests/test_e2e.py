"""End to end through the CLI: generate → train (MLflow) → score → explain, and bad input."""

import pandas as pd
import pytest

from propensity.cli import main
from propensity.scoring.bundle_files import current_umask

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    crm = root / "crm"
    assert main(["generate", "--out", str(crm), "--leads", "8000", "--seed", "3"]) == 0
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["train", "--data", str(crm), "--out", str(root / "models" / "latest"), "--tracking-uri", uri]) == 0
    return root, crm, uri


def test_train_logs_run_metrics_artifacts_and_registers(run):
    import mlflow

    root, _crm, uri = run
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("propensity")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    m = runs[0].data.metrics
    for key in ("model_roc_auc", "baseline_roc_auc", "model_pr_auc", "model_log_loss", "model_brier",
                "model_top_decile_lift", "model_top_decile_conversion", "test_rows"):
        assert key in m
    assert 0.5 < m["model_roc_auc"] <= 1.0
    # Logistic regression and top-K figures on the same test rows, and the calibrator actually used.
    for who in ("model", "baseline", "logistic"):
        for key in ("roc_auc", "brier", "ece", "precision_at_sql_tier", "recall_at_top_decile",
                    "conversions_at_top_decile"):
            assert f"{who}_{key}" in m, (who, key)
        assert 0 <= m[f"{who}_recall_at_top_decile"] <= 1.0
        assert m[f"{who}_conversions_at_top_decile"] <= m["model_positives"]
    assert 0.6 < m["logistic_roc_auc"] <= 1.0
    assert m["model_precision_at_sql_tier"] == pytest.approx(m["model_conversions_at_sql_tier"] / m["model_k_sql_tier"])
    assert runs[0].data.tags["calibration"] == runs[0].data.params["calibration"] in ("isotonic", "sigmoid")
    card = (root / "models" / "latest" / "report" / "model_card.md").read_text()
    assert "logistic regression" in card and "SQL tier" in card and "Calibration: **" in card
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "charts")}
    assert artifacts == {"charts/calibration.png", "charts/lift_gains.png", "charts/shap_summary.png",
                         "charts/score_by_tier.png"}
    top = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"model_card.md", "split.json", "lift.json", "segments.json", "config", "top_k.json",
            "calibration.json"} <= top
    version = client.get_model_version_by_alias("propensity-lead-score", "challenger")
    assert version.run_id == runs[0].info.run_id


def test_registry_uri_loads_the_scorer_and_pyfunc_predicts(run):
    import mlflow

    from propensity import LeadScorer

    root, crm, uri = run
    mlflow.set_tracking_uri(uri)
    scorer = LeadScorer.load("models:/propensity-lead-score@challenger")
    local = LeadScorer.load(root / "models" / "latest")
    a, b = scorer.score(crm), local.score(crm)
    pd.testing.assert_frame_equal(a, b)
    model = mlflow.pyfunc.load_model("models:/propensity-lead-score@challenger")
    example = mlflow.models.Model.load(model.metadata.get_model_info().model_uri).load_input_example(
        mlflow.artifacts.download_artifacts(model.metadata.get_model_info().model_uri))
    pred = model.predict(example)
    assert list(pred.columns) == ["lead_id", "probability", "score", "tier", "reasons"]
    assert pred["probability"].between(0, 1).all()


def test_score_and_explain_commands(run, capsys):
    root, crm, _uri = run
    out = root / "scores.parquet"
    assert main(["score", "--model", str(root / "models" / "latest"), "--data", str(crm), "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns)[:5] == ["lead_id", "probability", "score", "tier", "reasons"]
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # a plain file, not the temp file's 0o600
    lead = scores.sort_values("probability").iloc[-1]["lead_id"]
    capsys.readouterr()
    assert main(["explain", "--model", str(root / "models" / "latest"), "--data", str(crm), "--lead", lead]) == 0
    text = capsys.readouterr().out
    assert f"lead {lead}" in text and "raising the score" in text and "pts" in text


def _copy_tables(crm, dest, names):
    dest.mkdir()
    for name in names:
        (dest / f"{name}.parquet").write_bytes((crm / f"{name}.parquet").read_bytes())
    return dest


def test_missing_table_gives_one_line_error_and_writes_nothing(run, tmp_path, capsys):
    root, crm, _uri = run
    broken = _copy_tables(crm, tmp_path / "crm", ("accounts", "leads", "opportunities"))
    out = tmp_path / "scores.csv"
    code = main(["score", "--model", str(root / "models" / "latest"), "--data", str(broken), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "activities" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_missing_column_names_file_and_column(run, tmp_path, capsys):
    _root, crm, _uri = run
    broken = _copy_tables(crm, tmp_path / "crm", ("accounts", "activities", "opportunities"))
    pd.read_parquet(crm / "leads.parquet").drop(columns=["created_at"]).to_parquet(broken / "leads.parquet")
    model_out = tmp_path / "models" / "latest"
    code = main(["train", "--data", str(broken), "--out", str(model_out), "--no-track"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "leads.parquet" in err and "created_at" in err
    assert not model_out.exists()


def test_unreachable_tracking_server_fails_before_training(run, tmp_path, capsys):
    _root, crm, _uri = run
    code = main(["train", "--data", str(crm), "--out", str(tmp_path / "m"), "--tracking-uri", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be reached" in err
    assert not (tmp_path / "m").exists()


def test_init_writes_editable_project_that_trains(tmp_path, capsys):
    assert main(["init", str(tmp_path / "proj")]) == 0
    assert (tmp_path / "proj" / "features" / "icp.yaml").exists()
    assert (tmp_path / "proj" / "training" / "default.yaml").exists()
    assert main(["init", str(tmp_path / "proj")]) == 2
