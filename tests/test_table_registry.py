"""Flat-table models are registered in MLflow like CRM ones and load back as pyfunc."""

import numpy as np
import pandas as pd
import pytest
from _tables import lead_table

from propensity.cli import main
from propensity.tabular.scorer import TableScorer

pytestmark = pytest.mark.slow


def test_table_training_registers_a_pyfunc_that_scores_like_the_bundle(tmp_path, capsys):
    import mlflow

    data = tmp_path / "train.csv"
    lead_table(1500, seed=5).drop(columns=["call_duration"]).to_csv(data, index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", "--data", str(data), "--target", "converted", "--id", "lead_id", "--budget", "1",
                 "--out", str(tmp_path / "m"), "--tracking-uri", uri]) == 0
    assert "registered as propensity-lead-score-table v1 (alias challenger)" in capsys.readouterr().out
    client = mlflow.MlflowClient(tracking_uri=uri)
    version = client.get_model_version_by_alias("propensity-lead-score-table", "challenger")
    run = client.get_run(version.run_id)
    assert run.data.tags["kind"] == "table" and "model_roc_auc" in run.data.metrics

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/propensity-lead-score-table@challenger")
    rows = pd.read_csv(data).drop(columns=["converted"]).head(50)
    got = model.predict(rows)
    want = TableScorer.load(tmp_path / "m").score(rows)
    assert list(got["lead_id"]) == list(rows["lead_id"].astype(str)) or list(got["lead_id"]) == list(rows["lead_id"])
    np.testing.assert_allclose(got["probability"].to_numpy(), want["probability"].to_numpy())
    assert got["probability"].between(0, 1).all()
