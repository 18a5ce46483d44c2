"""Flat lead tables: type inference, target rules, bad input, train → score round trip."""

import numpy as np
import pandas as pd
import pytest
from _tables import BANK, lead_table

from propensity.cli import main
from propensity.scoring.bundle import save_bundle
from propensity.tabular.bundle import TableBundle, load_table_bundle
from propensity.tabular.inference import infer_schema, leakage_warnings, normalise_target
from propensity.tabular.matrix import table_matrix
from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import split_table, train_table


@pytest.fixture(scope="module")
def table():
    return lead_table()


@pytest.fixture(scope="module")
def trained(table):
    return train_table(table, "converted", id_column="lead_id", exclude=("call_duration",), budget_s=2)


def _kinds(schema):
    return {c.name: c.kind for c in schema.columns}


def test_column_kinds_are_inferred(table):
    schema = infer_schema(table, "converted", id_column="lead_id")
    kinds = _kinds(schema)
    assert kinds["age"] == "numeric" and kinds["visits"] == "numeric"
    assert kinds["segment"] == "categorical"
    assert kinds["newsletter"] == "boolean"
    assert kinds["created"] == "date"
    assert "created__month" in schema.features


def test_constant_and_id_like_columns_are_dropped_with_a_reason():
    df = lead_table(300).drop(columns=["lead_id"]).assign(row_no=np.arange(300), code=[f"x{i}" for i in range(300)])
    schema = infer_schema(df, "converted")
    assert "constant" in schema.dropped["country"]
    assert "id-like" in schema.dropped["row_no"]
    assert "id-like" in schema.dropped["code"]


def test_dominant_999_is_a_sentinel_not_a_number(table):
    schema = infer_schema(table, "converted")
    pdays = next(c for c in schema.columns if c.name == "pdays")
    assert pdays.sentinels == [999.0]
    x = table_matrix(table.head(50), schema)
    j = schema.features.index("pdays")
    is999 = table["pdays"].head(50).to_numpy() == 999
    assert np.isnan(x[is999, j]).all() and (x[is999, j + 1] == 1).all()


def test_ordinary_small_negative_values_are_not_sentinels():
    df = pd.DataFrame({"delta": np.tile([-3, -2, -1, 0, 1, 2], 20), "y": np.tile([0, 1], 60)})
    col = infer_schema(df, "y").columns[0]
    assert col.sentinels == []


def test_leaky_column_is_warned_by_name_and_by_auc(table):
    schema = infer_schema(table, "converted", id_column="lead_id")
    y, _, _ = normalise_target(table["converted"], "converted", "t")
    warns = leakage_warnings(table_matrix(table, schema), y, schema)
    assert any(w.startswith("call_duration") and "AUC" in w for w in warns)
    assert any(w.startswith("call_duration") and "name" in w for w in warns)


@pytest.mark.parametrize("values", [["yes", "no"], ["True", "False"], [1, 0], [True, False], ["Y", "n"]])
def test_binary_targets_are_normalised(values):
    y, _, kept = normalise_target(pd.Series(values * 3), "t", "f.csv")
    assert list(y) == [1, 0] * 3 and kept.all()


@pytest.mark.parametrize(("values", "message"), [
    (["yes"] * 4, "one class"),
    (["a", "b", "c"], "not binary"),
    (["red", "blue"], "cannot tell which"),
])
def test_bad_targets_fail_with_one_line(values, message):
    with pytest.raises(ValueError, match=message):
        normalise_target(pd.Series(values), "t", "f.csv")


def test_stratified_split_keeps_the_base_rate_and_folds_cover_training_rows():
    y = np.r_[np.ones(100, int), np.zeros(900, int)]
    train, test, folds = split_table(y, None)
    assert len(test) == 200 and y[test].sum() == 20
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(len(train)))


def test_time_split_tests_on_the_newest_rows():
    t = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D")).sample(frac=1, random_state=0)
    y = np.tile([0, 1], 50)
    train, test, folds = split_table(y, t.reset_index(drop=True))
    tt = t.reset_index(drop=True)
    assert tt.iloc[train].max() < tt.iloc[test].min()
    for tr, va in folds:
        assert tt.iloc[train[tr]].max() < tt.iloc[train[va]].min()


def test_bundle_round_trip_scores_identically(trained, table, tmp_path):
    path = save_bundle(trained.bundle, tmp_path / "m")
    loaded = load_table_bundle(path)
    assert isinstance(loaded, TableBundle)
    rows = table.drop(columns=["converted"]).head(200)
    a = TableScorer(trained.bundle).score(rows)
    b = TableScorer(loaded).score(rows)
    pd.testing.assert_frame_equal(a, b)
    assert list(b["lead_id"]) == list(rows["lead_id"])


def test_scoring_is_row_order_independent(trained, table):
    rows = table.drop(columns=["converted"]).head(300)
    shuffled = rows.sample(frac=1, random_state=1)
    s = TableScorer(trained.bundle)
    a = s.score(rows).set_index("lead_id")["probability"]
    b = s.score(shuffled).set_index("lead_id")["probability"]
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())


def test_model_beats_chance_and_logistic_regression_is_reported(trained):
    models = trained.comparison["models"]
    assert models["model"]["metrics"]["roc_auc"] > 0.65
    assert "logistic regression" in models


def test_unseen_category_and_missing_values_still_score(trained, table):
    rows = table.drop(columns=["converted"]).head(3).copy()
    rows["segment"] = ["brand-new", None, "smb"]
    rows["age"] = [np.nan, 40, 50]
    out = TableScorer(trained.bundle).score(rows)
    assert out["probability"].between(0, 1).all()


# ------------------------------------------------------------------ command line


@pytest.mark.slow
def test_table_training_and_evaluation_runs_get_readable_names_descriptions_and_the_table_as_input(tmp_path):
    import mlflow

    from propensity import jobs

    data = tmp_path / "leads.csv"
    lead_table(1500, seed=3).to_csv(data, index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = jobs.train(data, tmp_path / "m", target="converted", id_column="lead_id", budget=2, tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(done.run["run_id"])
    assert run.info.run_name == "train table leads.csv"
    assert run.data.tags["mlflow.note.content"].startswith("ROC AUC ") and "test rows" in run.data.tags[
        "mlflow.note.content"]
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "leads.csv" and len(dataset.dataset.digest) == 16
    assert {t.key: t.value for t in dataset.tags}["test_rows"] == str(len(done.result.y_test))
    ev = jobs.evaluate(tmp_path / "m", data, tmp_path / "eval", tracking_uri=uri)
    erun = client.get_run(ev.run["run_id"])
    assert erun.info.run_name == "evaluate table leads.csv"
    assert erun.data.tags["mlflow.note.content"].startswith("ROC AUC ")
    (edata,) = erun.inputs.dataset_inputs
    assert edata.dataset.digest == dataset.dataset.digest  # the same table: the same digest
    assert {t.key: t.value for t in edata.tags}["rows"] == "1500"


def test_cli_train_and_score_a_csv(tmp_path, capsys):
    data = tmp_path / "leads.csv"
    lead_table(1500, seed=3).to_csv(data, index=False)
    assert main(["train", "--data", str(data), "--target", "converted", "--id", "lead_id", "--budget", "2",
                 "--out", str(tmp_path / "m"), "--no-track"]) == 0
    out = capsys.readouterr().out
    assert "flag: call_duration" in out and "dropped country" in out
    assert (tmp_path / "m" / "report" / "report.md").exists()
    scoring = tmp_path / "new.parquet"
    lead_table(50, seed=4).drop(columns=["converted"]).to_parquet(scoring)
    assert main(["score", "--model", str(tmp_path / "m"), "--data", str(scoring),
                 "--out", str(tmp_path / "s.csv")]) == 0
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns[:3]) == ["lead_id", "probability", "score"]
    assert list(scores["lead_id"]) == list(lead_table(50, seed=4)["lead_id"])


@pytest.mark.parametrize(("frame", "args", "message"), [
    (lambda: lead_table(100).drop(columns=["converted"]), [], "target column 'converted' not found"),
    (lambda: lead_table(100).assign(converted="no"), [], "one class"),
    (lambda: lead_table(100).assign(converted=np.arange(100) % 3), [], "not binary"),
    (lambda: lead_table(0), [], "no rows"),
])
def test_cli_bad_tables_fail_with_one_line_and_write_nothing(tmp_path, capsys, frame, args, message):
    data = tmp_path / "bad.csv"
    frame().to_csv(data, index=False)
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--target", "converted", "--budget", "0", "--out", str(out),
                 "--no-track", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_cli_empty_file_fails_with_one_line(tmp_path, capsys):
    data = tmp_path / "empty.csv"
    data.write_text("")
    assert main(["train", "--data", str(data), "--target", "y", "--no-track", "--out", str(tmp_path / "m")]) == 2
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_scoring_columns_must_match(trained, tmp_path, capsys):
    save_bundle(trained.bundle, tmp_path / "m")
    data = tmp_path / "x.csv"
    lead_table(20).drop(columns=["converted", "visits"]).to_csv(data, index=False)
    assert main(["score", "--model", str(tmp_path / "m"), "--data", str(data), "--out", str(tmp_path / "s.csv")]) == 2
    assert "missing 'visits'" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.slow
@pytest.mark.skipif(not BANK.exists(), reason="../shared/data/bank-marketing is not present")
def test_bank_table_flags_duration_and_pdays_sentinel():
    df = pd.read_csv(BANK)
    schema = infer_schema(df, "output")
    pdays = next(c for c in schema.columns if c.name == "pdays")
    assert pdays.sentinels == [999.0]
    y, _, _ = normalise_target(df["output"], "output", "bank")
    warns = leakage_warnings(table_matrix(df, schema), y, schema)
    assert any(w.startswith("duration") for w in warns)
