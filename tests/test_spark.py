"""Batch scoring on a local Spark (local[2]) gives the in-process scorer's results."""

import shutil
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on this machine (.ci/run installs one)")
    from pyspark.sql import SparkSession

    # Spark's Python workers must run this interpreter (the one with propensity installed).
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("propensity-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    yield session
    session.stop()
    monkeypatch.undo()


def test_spark_udf_scores_equal_in_process_scorer(spark, tmp_path):
    import mlflow

    from propensity import LeadScorer
    from propensity.cli import main
    from propensity.data.export import read_export
    from propensity.features.cutoffs import scoring_cutoffs
    from propensity.features.pipeline import build_features
    from propensity.spark import score_spark

    crm = tmp_path / "crm"
    assert main(["generate", "--out", str(crm), "--leads", "6000", "--seed", "5"]) == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", "--data", str(crm), "--out", str(tmp_path / "m"), "--tracking-uri", uri]) == 0
    mlflow.set_tracking_uri(uri)
    scorer = LeadScorer.load(tmp_path / "m")
    export = read_export(crm)
    frame = build_features(export, scoring_cutoffs(export).head(3000), scorer.bundle.icp, scorer.bundle.engagement)
    features = frame.drop(columns=["cutoff"])
    expected = scorer.score_features(features)

    sdf = spark.createDataFrame(features.astype(object).where(features.notna(), None))
    got = score_spark(sdf.repartition(2), "models:/propensity-lead-score@challenger").toPandas()
    got = got.set_index("lead_id").loc[expected["lead_id"]].reset_index()
    assert len(got) == len(expected)
    pd.testing.assert_series_equal(got["probability"], expected["probability"], check_exact=False, rtol=1e-12,
                                   check_names=False)
    assert (got["tier"] == expected["tier"]).all()
    assert (got["reasons"] == expected["reasons"]).all()
