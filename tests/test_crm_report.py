"""Honest evaluation on the CRM path: logistic regression and top K in training, calibration chosen by
validation, the budgeted search, and `propensity evaluate` on a CRM export (real LightGBM, real MLflow store)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from propensity.cli import main
from propensity.config import default_project_dir
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.features.cutoffs import training_cutoffs
from propensity.features.pipeline import build_features
from propensity.modeling.metrics import expected_calibration_error
from propensity.modeling.train import train
from propensity.scoring.bundle import load_bundle
from propensity.scoring.scorer import LeadScorer

pytestmark = pytest.mark.slow


def _top(y, p, k):
    order = np.argsort(-np.asarray(p), kind="stable")[:k]
    return int(np.asarray(y)[order].sum())


# ------------------------------------------------------------ training report


def test_logistic_regression_is_on_the_same_test_rows_and_sane(trained):
    t = trained.test
    lr = trained.metrics["logistic"]
    assert lr["rows"] == trained.metrics["model"]["rows"] == len(t)
    assert lr["roc_auc"] == pytest.approx(roc_auc_score(t["label"], t["logistic"]))
    assert lr["brier"] == pytest.approx(brier_score_loss(t["label"], np.clip(t["logistic"], 1e-7, 1 - 1e-7)))
    assert 0.7 < lr["roc_auc"] < 1.0
    assert t["logistic"].between(0, 1).all()
    # Logistic regression beats the points baseline on this world, and the model is not far behind it or ahead.
    assert lr["roc_auc"] > trained.metrics["baseline"]["roc_auc"]
    assert trained.metrics["model"]["roc_auc"] > lr["roc_auc"] - 0.01


def test_top_k_follows_the_tier_policy_and_matches_a_direct_count(trained, project):
    t = trained.test
    ks = trained.top_k["ks"]
    sql_k = int((t["probability"] >= project.training.tiers.sql).sum())
    assert ks["sql_tier"] == sql_k > 0
    assert ks["top_decile"] == round(len(t) * 0.1)
    y = t["label"].to_numpy()
    for who, col in (("model", "probability"), ("baseline", "baseline"), ("logistic", "logistic")):
        for k in ks.values():
            got = trained.comparison["models"][who]["top_k"][str(k)]
            conv = _top(y, t[col], k)
            assert got["conversions"] == conv
            assert got["precision"] == pytest.approx(conv / k)
            assert got["recall"] == pytest.approx(conv / y.sum()) and got["recall"] <= 1.0
    # The model's SQL tier converts far above the base rate.
    assert trained.comparison["models"]["model"]["top_k"][str(sql_k)]["precision"] > 5 * y.mean()


def test_ece_and_brier_are_reported_for_the_model(trained):
    t = trained.test
    m = trained.metrics["model"]
    assert m["ece"] == pytest.approx(expected_calibration_error(t["label"].to_numpy(), t["probability"].to_numpy()))
    assert m["brier"] == pytest.approx(brier_score_loss(t["label"], np.clip(t["probability"], 1e-7, 1 - 1e-7)))


def test_model_card_and_report_hold_every_comparison(trained, project, tmp_path):
    from propensity.modeling.report import write_training_report

    path = write_training_report(trained, project, tmp_path / "report")
    card = path.read_text()
    for needle in ("| metric | model | points baseline | logistic regression |", "| brier |", "| ece |",
                   "SQL tier", "top decile", "Calibration: **", "charts/calibration.png"):
        assert needle in card, needle
    lr = trained.metrics["logistic"]["roc_auc"]
    assert f"{lr:.4f}" in card
    for chart in ("calibration.png", "lift_gains.png", "score_by_tier.png"):
        assert (tmp_path / "report" / "charts" / chart).stat().st_size > 0
    assert trained.bundle.metadata["calibration"]["method"] == trained.bundle.calibrator.method
    assert trained.params["calibration"] == trained.bundle.calibrator.method


# --------------------------------------------------- calibration auto + search


def test_auto_calibration_and_budgeted_search_on_the_validation_window(world_dir, project):
    cfg = project.training.model_copy(update={
        "calibration": "auto", "tuning": project.training.tuning.model_copy(update={"crm_budget_seconds": 4})})
    result = train(read_export(world_dir), project.model_copy(update={"training": cfg}))
    cal = result.calibration
    assert cal["config"] == "auto" and set(cal["scores"]) == {"isotonic", "sigmoid"}
    # Sigmoid unless isotonic is better (by more than a standard error).
    assert cal["method"] == "sigmoid" or cal["scores"]["isotonic"]["log_loss"] < cal["scores"]["sigmoid"]["log_loss"]
    assert result.bundle.calibrator.method == cal["method"] == result.params["calibration"]
    tuning = result.tuning
    assert tuning["budget_s"] == 4 and tuning["trials"] >= 1 and tuning["chosen"] in ("model config", "search")
    assert tuning["seconds"] < 4 + 60  # the first (config) trial always completes, then the budget applies
    assert result.metrics["model"]["roc_auc"] > 0.85
    assert result.metrics["model"]["ece"] < 0.01
    from propensity.modeling.report import model_card

    card = model_card(result, project.model_copy(update={"training": cfg}))
    assert f"Calibration: **{cal['method']}** (config `auto`" in card
    assert f"Parameter search: {tuning['trials']} parameter sets" in card


# ------------------------------------------------------ propensity evaluate


def _truncate(src: Path, dest: Path, days: int) -> pd.Timestamp:
    """A copy of the export as it was ``days`` before its end (later events and outcomes unknown)."""
    dest.mkdir(parents=True)
    t = {n: pd.read_parquet(src / f"{n}.parquet") for n in ("accounts", "leads", "activities", "opportunities")}
    end = max(t["leads"]["created_at"].max(), t["activities"]["occurred_at"].max(),
              t["opportunities"]["closed_at"].max())
    cut = end - pd.Timedelta(days=days)
    act = t["activities"][t["activities"]["occurred_at"] < cut]
    if "recorded_at" in act.columns:
        act = act[act["recorded_at"].isna() | (act["recorded_at"] < cut)]
    opp = t["opportunities"][t["opportunities"]["created_at"] < cut].copy()
    late = opp["closed_at"] >= cut
    opp.loc[late, "stage"] = "open"
    opp.loc[late, "closed_at"] = pd.NaT
    t["accounts"].to_parquet(dest / "accounts.parquet", index=False)
    t["leads"][t["leads"]["created_at"] < cut].to_parquet(dest / "leads.parquet", index=False)
    act.to_parquet(dest / "activities.parquet", index=False)
    opp.to_parquet(dest / "opportunities.parquet", index=False)
    return cut


@pytest.fixture(scope="module")
def older_model(tmp_path_factory):
    """A model trained on an export that ends 200 days before the full one."""
    root = tmp_path_factory.mktemp("crm-eval")
    crm = write_world(root / "crm", n_leads=5000, seed=5)
    _truncate(crm, root / "crm_old", 200)
    cfg = default_project_dir() / "training" / "default.yaml"
    assert main(["train", "--data", str(root / "crm_old"), "--out", str(root / "m"), "--no-track",
                 "--config", str(cfg)]) == 0
    return root, crm


def test_crm_training_writes_its_report_into_the_bundle(older_model):
    root, _crm = older_model
    card = (root / "m" / "report" / "model_card.md").read_text()
    assert "logistic regression" in card and "SQL tier" in card
    assert (root / "m" / "report" / "charts" / "calibration.png").stat().st_size > 0
    assert isinstance(LeadScorer.load(root / "m"), LeadScorer)  # the report does not disturb the bundle


def test_evaluate_new_snapshots_matches_a_direct_computation_and_logs_to_mlflow(older_model, capsys):
    root, crm = older_model
    uri = f"sqlite:///{root / 'mlflow.db'}"
    out = root / "ev"
    assert main(["evaluate", "--model", str(root / "m"), "--data", str(crm), "--out", str(out),
                 "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert "MLflow run" in printed and "after the end of the model's training data" in printed
    report = (out / "report.md").read_text()
    for needle in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top decile", "SQL tier", "points baseline",
                   "logistic regression (cross-fitted)", "window `new`"):
        assert needle in report, needle
    assert (out / "reliability.png").stat().st_size > 0 and (out / "lift_gains.png").stat().st_size > 0

    # Direct: the labelled snapshots after the training data end, scored with the bundle.
    bundle = load_bundle(root / "m")
    export = read_export(crm)
    rows = training_cutoffs(export, project_cutoffs(bundle), bundle.horizon_days)
    rows = rows[rows["cutoff"] >= pd.Timestamp(bundle.metadata["data_end"])].reset_index(drop=True)
    frame = build_features(export, rows, bundle.icp, bundle.engagement)
    p = LeadScorer(bundle).score_features(frame)["probability"].to_numpy()
    y = rows["label"].to_numpy()
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    m = metrics["model"]
    assert m["rows"] == len(rows) and m["positives"] == y.sum() > 0
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["ece"] == pytest.approx(expected_calibration_error(y, p))
    sql_k = int((p >= bundle.tiers.sql).sum())
    assert m["k_sql_tier"] == sql_k
    assert m["conversions_at_sql_tier"] == _top(y, p, sql_k)
    assert m["recall_at_top_decile"] == pytest.approx(_top(y, p, round(len(y) * 0.1)) / y.sum())
    assert 0.75 < m["roc_auc"] <= 1.0
    assert m["roc_auc"] > metrics["points baseline"]["roc_auc"]

    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["propensity"])
    assert len(runs) == 1
    assert runs["metrics.model_roc_auc"].iloc[0] == pytest.approx(m["roc_auc"])
    assert "metrics.model_precision_at_sql_tier" in runs.columns
    assert runs["params.window"].iloc[0] == "new"


def project_cutoffs(bundle):
    from propensity.config import CutoffConfig

    return CutoffConfig(**bundle.metadata["cutoffs"])


def test_evaluate_all_window_states_the_overlap(older_model, tmp_path, capsys):
    root, _crm = older_model
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(root / "m"), "--data", str(root / "crm_old"), "--out", str(out),
                 "--window", "all", "--no-track"]) == 0
    report = (out / "report.md").read_text()
    assert "overlap the model's own data" in report and "in its train window" in report


def test_evaluate_bad_input_is_one_line_and_writes_nothing(older_model, tmp_path, capsys):
    root, _crm = older_model
    (tmp_path / "empty").mkdir()
    cases = [
        (["--data", str(root / "crm_old")], "no labelled snapshots after the model's training data"),
        (["--data", str(tmp_path / "empty")], "missing table"),  # an empty folder is not an export
        (["--data", str(root / "m" / "report" / "test_predictions.csv")], "trained on a CRM export"),
    ]
    for extra, needle in cases:
        out = tmp_path / "ev"
        code = main(["evaluate", "--model", str(root / "m"), "--out", str(out), "--no-track", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and needle in err and len(err.splitlines()) == 1, (extra, err)
        assert not out.exists()
