"""Spark on local[2]: the same feature rows and scores as in process, and the MLflow pyfunc as a Spark UDF.

One session and one trained model for the module; the worlds are small so that the
Spark part of the suite stays within a few minutes (JVM start-up included).
"""

import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from _feature_cases import assert_same_as_pairwise, random_world

from propensity.config import default_project_dir, load_project
from propensity.features.spec import build_feature_spec

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
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    yield session
    session.stop()
    monkeypatch.undo()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A CRM world and a model trained on it by the CLI (tracked, for the pyfunc test)."""
    from propensity.cli import main

    root = tmp_path_factory.mktemp("spark")
    crm = root / "crm"
    assert main(["generate", "--out", str(crm), "--leads", "4000", "--seed", "5"]) == 0
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["train", "--data", str(crm), "--out", str(root / "m"), "--tracking-uri", uri]) == 0
    return crm, root / "m", uri


def _categorical(values) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else v for v in values]


def _assert_same_features(got: pd.DataFrame, want: pd.DataFrame, project) -> None:
    """Same columns and rows; counts, days exact, decay 1e-9 relative, categorical values equal."""
    spec = build_feature_spec(project.icp, project.engagement)
    assert list(got.columns) == list(want.columns)
    assert got["lead_id"].astype(object).tolist() == want["lead_id"].astype(object).tolist()
    assert (pd.to_datetime(got["cutoff"], utc=True).to_numpy() == pd.to_datetime(want["cutoff"], utc=True).to_numpy()
            ).all()
    assert_same_as_pairwise(got, want, spec, rtol=1e-9)
    for f in spec:
        if f.kind == "categorical":
            assert _categorical(got[f.name]) == _categorical(want[f.name]), f.name


def test_spark_features_equal_the_engines_on_a_world_with_backfills_edges_and_unknown_types(spark, tmp_path):
    from propensity.features.pipeline import build_features
    from propensity.spark import features_of_cutoffs, read_spark_export

    export, cutoffs = random_world(seed=3, n_leads=60, n_events=3000)
    project = load_project(default_project_dir() / "training" / "default.yaml")
    folder = tmp_path / "crm"
    folder.mkdir()
    for name in ("accounts", "leads", "activities", "opportunities"):
        getattr(export, name).to_parquet(folder / f"{name}.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = build_features(export, cutoffs, project.icp, project.engagement)
    rows = spark.createDataFrame(cutoffs.astype({"label": "int32"}))
    sdf = features_of_cutoffs(spark, read_spark_export(spark, folder), rows, project.icp, project.engagement,
                              ["label"])
    got = sdf.toPandas().assign(_key=lambda d: d["lead_id"].astype(str) + d["cutoff"].astype(str))
    want = want.assign(label=want["label"].astype("int32"))
    order = want.assign(_key=want["lead_id"].astype(str) + pd.to_datetime(want["cutoff"]).dt.tz_localize(None)
                        .astype(str))
    got = got.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    want = order.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    _assert_same_features(got, want, project)
    assert (got["eng_active_days_90d"] > 0).any() and got["eng_web_visit_days_since"].isna().any()


@pytest.mark.parametrize("as_of", [None, "2025-06-01"])
def test_features_engine_spark_writes_the_in_process_table(spark, model, tmp_path, as_of, capsys):
    from propensity.cli import main

    crm = model[0]
    extra = [] if as_of is None else ["--as-of", as_of]
    assert main(["features", "--data", str(crm), "--out", str(tmp_path / "local.parquet"), *extra]) == 0
    assert main(["features", "--engine", "spark", "--data", str(crm), "--out", str(tmp_path / "spark.parquet"),
                 *extra]) == 0
    printed = capsys.readouterr()
    assert "columns ->" in printed.out
    assert "heaviest leads: " in printed.out + printed.err
    want = pd.read_parquet(tmp_path / "local.parquet")
    got = pd.read_parquet(tmp_path / "spark.parquet").sort_values(["cutoff", "lead_id"] if as_of is None
                                                                    else ["lead_id"]).reset_index(drop=True)
    assert len(got) == len(want) > 1000
    if as_of is None:
        assert got["label"].tolist() == want["label"].tolist()
    _assert_same_features(got, want, load_project(default_project_dir() / "training" / "default.yaml"))


def test_spark_output_replaces_only_what_propensity_wrote(spark, model, tmp_path, capsys):
    from propensity.cli import main
    from propensity.core.errors import OutputError
    from propensity.spark.output import check_spark_output, write_spark_parquet

    foreign = tmp_path / "mine.parquet"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["features", "--engine", "spark", "--data", str(model[0]), "--out", str(foreign),
                 "--as-of", "2025-06-01"]) == 2  # refused before any work
    assert "did not write" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "f.parquet"
    for n in (3, 5):  # the second write replaces the dataset the first one wrote
        check_spark_output(out)
        write_spark_parquet(spark.range(n), out)
    assert len(pd.read_parquet(out)) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    with pytest.raises(OutputError, match="parquet"):
        check_spark_output(tmp_path / "f.csv")


def test_score_engine_spark_gives_the_in_process_scores(spark, model, tmp_path):
    from propensity.cli import main
    from propensity.jobs.scoring import SCORE_COLUMNS

    crm, bundle, _ = model
    assert main(["score", "--model", str(bundle), "--data", str(crm), "--out", str(tmp_path / "local.parquet")]) == 0
    assert main(["score", "--engine", "spark", "--model", str(bundle), "--data", str(crm),
                 "--out", str(tmp_path / "spark.parquet")]) == 0
    want = pd.read_parquet(tmp_path / "local.parquet")
    got = pd.read_parquet(tmp_path / "spark.parquet").sort_values("lead_id").reset_index(drop=True)
    assert list(got.columns) == SCORE_COLUMNS and len(got) == len(want) > 1000
    assert got["lead_id"].tolist() == want["lead_id"].tolist()
    np.testing.assert_allclose(got["probability"], want["probability"], rtol=1e-9, atol=0)
    for col in ("score", "tier", "reasons", "fit_score", "engagement_score", "grade"):
        assert got[col].tolist() == want[col].tolist(), col


def test_spark_udf_scores_equal_in_process_scorer(spark, model):
    import mlflow

    from propensity import LeadScorer
    from propensity.data.export import read_export
    from propensity.features.cutoffs import scoring_cutoffs
    from propensity.features.pipeline import build_features
    from propensity.spark import score_spark

    crm, bundle, uri = model
    mlflow.set_tracking_uri(uri)
    scorer = LeadScorer.load(bundle)
    export = read_export(crm)
    frame = build_features(export, scoring_cutoffs(export).head(1500), scorer.bundle.icp, scorer.bundle.engagement)
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


def test_spark_session_uses_the_active_session_in_utc_whatever_the_drivers_zone(spark, model, monkeypatch):
    import time

    from propensity.data.export import read_export
    from propensity.spark import spark_session
    from propensity.spark.features import export_bounds
    from propensity.spark.tables import read_spark_export

    crm, _, _ = model
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")  # a caller's session in another zone
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # and a driver process in a third
    time.tzset()
    try:
        assert spark_session() is spark
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
        end, first = export_bounds(read_spark_export(spark, crm))
        export = read_export(crm)
        assert end == export.end() and first == export.leads["created_at"].min()
    finally:
        monkeypatch.undo()
        time.tzset()
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_heaviest_leads_are_named_with_their_counts(spark):
    from propensity.spark.tables import heaviest_leads

    acts = spark.createDataFrame(pd.DataFrame({"lead_id": ["bot"] * 50 + ["a", "a", "b"]}))
    assert heaviest_leads(acts, top=2) == ([("bot", 50), ("a", 2)], 53 / 3)


def test_train_engine_spark_builds_the_in_process_training_table(spark, model):
    """Sampling off (the table fits spark.max_rows): the same rows, labels and values as the in-process training."""
    from propensity.data.export import read_export
    from propensity.features.cutoffs import training_cutoffs
    from propensity.features.pipeline import build_features
    from propensity.modeling.split import time_split
    from propensity.spark import read_spark_export
    from propensity.spark.training import spark_training_table

    crm = model[0]
    project = load_project(default_project_dir() / "training" / "default.yaml")
    cfg = project.training
    export = read_export(crm)
    want = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days), project.icp,
                          project.engagement)
    table = spark_training_table(spark, read_spark_export(spark, crm), project)
    got = table.frame
    assert table.sampling["negative_rate"] == 1.0 and (table.weights == 1).all()  # train_rows then fits unweighted
    assert table.sampling["rows_before"] == table.sampling["rows_after"] == len(got) == len(want) > 10_000
    assert [str(d) for d in got.dtypes[:3]] == [str(d) for d in want.dtypes[:3]]
    assert got["label"].tolist() == want["label"].tolist()
    _assert_same_features(got, want, project)
    split = time_split(want["cutoff"], cfg.split, cfg.label.horizon_days, want["label"].to_numpy())
    assert pd.Timestamp(table.sampling["test_first_cutoff"]) == want["cutoff"][split.test].min()
    assert table.data_end == str(export.end())


def test_train_engine_spark_down_samples_negatives_and_says_so(spark, model, tmp_path, capsys):
    """Forced rate 0.3: every positive and the test window kept, negatives before it ~ 30%, stated everywhere."""
    from propensity.cli import main
    from propensity.data.export import read_export
    from propensity.features.cutoffs import training_cutoffs
    from propensity.scoring.bundle import load_bundle

    crm = model[0]
    config = tmp_path / "train.yaml"
    config.write_text(f"features_dir: {default_project_dir() / 'features'}\nmodel:\n  n_estimators: 20\n"
                      "spark:\n  negative_rate: 0.3\n")
    assert main(["train", "--engine", "spark", "--data", str(crm), "--out", str(tmp_path / "m"),
                 "--config", str(config), "--no-track"]) == 0
    printed = capsys.readouterr().out
    sampling = load_bundle(tmp_path / "m").metadata["sampling"]
    project = load_project(config)
    cfg = project.training
    export = read_export(crm)
    rows = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
    before = (rows["cutoff"] < pd.Timestamp(sampling["test_first_cutoff"])).to_numpy()
    negatives = int(((rows["label"] == 0).to_numpy() & before).sum())
    assert sampling["rows_before"] == len(rows) and sampling["negatives_before"] == negatives
    assert sampling["positives"] == int(rows["label"].sum())  # all kept
    assert sampling["test_rows"] == int((~before).sum())
    assert abs(sampling["negatives_kept"] - 0.3 * negatives) < 4 * np.sqrt(negatives * 0.3 * 0.7)
    assert sampling["rows_after"] == sampling["positives"] + sampling["negatives_kept"] + int(
        ((rows["label"] == 0).to_numpy() & ~before).sum())
    stated = "the negatives before it sampled at rate 0.3 ("
    assert stated in printed and stated in (tmp_path / "m" / "report" / "model_card.md").read_text()


def test_spark_features_of_a_bot_with_200k_events_are_salted_and_exact(spark, tmp_path):
    """One lead with 200,000 more activities, salted over 8 parts by day: every value as in process."""
    from propensity.config import SparkConfig
    from propensity.data.export import CrmExport
    from propensity.features.pipeline import build_features
    from propensity.spark import features_of_cutoffs, read_spark_export
    from propensity.spark.tables import heaviest_line

    export, cutoffs = random_world(seed=3, n_leads=60, n_events=3000)
    rng = np.random.default_rng(1)
    n = 200_000
    occ = pd.Timestamp("2024-01-01T00:00:00Z") + pd.to_timedelta(rng.integers(0, 400 * 86_400_000_000, n), unit="us")
    bot = pd.DataFrame({"lead_id": "L005", "activity_type": rng.choice(export.activities["activity_type"].unique(), n),
                        "occurred_at": occ, "recorded_at": occ})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export = CrmExport.from_frames({"accounts": export.accounts, "leads": export.leads,
                                        "activities": pd.concat([export.activities, bot], ignore_index=True)})
        times = pd.Timestamp("2024-06-01T00:00:00Z") + pd.to_timedelta(np.arange(5) * 40, unit="D")
        cutoffs = pd.concat([cutoffs, pd.DataFrame({"lead_id": "L005", "cutoff": times, "label": 0})],
                            ignore_index=True).astype({"label": "int32"})
        project = load_project(default_project_dir() / "training" / "default.yaml")
        want = build_features(export, cutoffs, project.icp, project.engagement)
    folder = tmp_path / "crm"
    folder.mkdir()
    for name in ("accounts", "leads", "activities", "opportunities"):
        getattr(export, name).to_parquet(folder / f"{name}.parquet")
    tables = read_spark_export(spark, folder)
    total = int((export.activities["lead_id"] == "L005").sum())
    assert heaviest_line(tables["activities"], 10_000, 8).startswith(f"heaviest leads: L005 {total:,} activities")
    assert "split over 8 tasks by day" in heaviest_line(tables["activities"], 10_000, 8)
    from propensity.spark.features import has_heavy_lead

    assert has_heavy_lead(tables["activities"], 10_000) and not has_heavy_lead(tables["activities"], total)
    sdf = features_of_cutoffs(spark, tables, spark.createDataFrame(cutoffs), project.icp, project.engagement,
                              ["label"], spark_cfg=SparkConfig(heavy_lead_events=10_000, salts=8))
    got = sdf.toPandas().assign(_key=lambda d: d["lead_id"].astype(str) + d["cutoff"].astype(str))
    want = want.assign(label=want["label"].astype("int32"),
                       _key=want["lead_id"].astype(str) + pd.to_datetime(want["cutoff"]).dt.tz_localize(None)
                       .astype(str))
    got = got.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    want = want.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    _assert_same_features(got, want, project)
    assert want.loc[want["lead_id"] == "L005", "eng_active_days_90d"].max() > 80  # the bot's rows count its events


def test_negatives_are_sampled_by_a_seeded_hash_whatever_the_partitioning(spark):
    """Positives and the test window all kept; negatives before it at the rate; the same rows again, re-partitioned."""
    from propensity.spark.training import sample_negatives

    n = 20_000
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    rows = pd.DataFrame({"lead_id": [f"L{i:06d}" for i in range(n)],
                         "cutoff": start + pd.to_timedelta(rng.integers(0, 10, n) * 28, unit="D"),
                         "label": (rng.random(n) < 0.05).astype("int32")})
    test_from = start + pd.Timedelta(days=8 * 28)
    sdf = spark.createDataFrame(rows)
    kept = sample_negatives(sdf, 0.2, test_from, seed=0).toPandas()
    again = sample_negatives(sdf.repartition(7, "cutoff"), 0.2, test_from, seed=0).toPandas()
    other = sample_negatives(sdf, 0.2, test_from, seed=1).toPandas()
    assert sorted(kept["lead_id"]) == sorted(again["lead_id"]) != sorted(other["lead_id"])
    before = rows["cutoff"] < test_from
    negatives = int(((rows["label"] == 0) & before).sum())
    assert set(rows.loc[(rows["label"] == 1) | ~before, "lead_id"]) <= set(kept["lead_id"])
    got = int(((kept["label"] == 0) & (pd.to_datetime(kept["cutoff"]).dt.tz_localize("UTC") < test_from)).sum())
    assert abs(got - 0.2 * negatives) < 4 * np.sqrt(negatives * 0.2 * 0.8), (got, negatives)
    assert sample_negatives(sdf, 1.0, test_from, seed=0) is sdf
