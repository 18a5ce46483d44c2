"""Tabulated TreeSHAP: the same exact values as LightGBM's pred_contrib and shap.TreeExplainer, without calling them."""

import json
import warnings

import lightgbm as lgb
import numpy as np
import pytest

from propensity import LeadScorer
from propensity.data.export import read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.pipeline import build_features
from propensity.scoring import predictions
from propensity.scoring.shap_table import MAX_SPLITS, shap_table

ATOL = 1e-9


def _hard_rows(x: np.ndarray, cat_cols: list[int], seed: int = 0) -> np.ndarray:
    """``x`` and copies with missing values, unseen/odd category codes and extreme values (LightGBM's edge cases)."""
    rng = np.random.default_rng(seed)
    parts = [x]
    missing = x.copy()
    missing[rng.random(x.shape) < 0.3] = np.nan
    parts.append(missing)
    odd = x.copy()
    for j in cat_cols:  # unseen codes, negative, fractional, beyond int, missing
        odd[:, j] = rng.choice([999.0, 31.0, 32.0, 64.0, -1.0, -0.5, 0.7, 2.5, 1e12, -1e12, np.nan], len(x))
    parts.append(odd)
    extreme = x.copy()
    cells = rng.random(x.shape) < 0.3
    extreme[cells] = rng.choice([1e300, -1e300, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 1e-35], int(cells.sum()))
    parts.append(extreme)
    return np.vstack(parts)


def _assert_exact(booster, x: np.ndarray, monkeypatch, with_shap: bool = True) -> np.ndarray:
    """contributions() without LightGBM's predict, equal to pred_contrib and to shap.TreeExplainer at ATOL."""
    expected = booster.predict(x, pred_contrib=True)
    with monkeypatch.context() as m:
        m.setattr(predictions, "predict", _no_lightgbm)  # the table must serve these rows alone
        ours = predictions.contributions(booster, x, x.shape[1])
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)
    if with_shap:
        shap = pytest.importorskip("shap")
        explainer = shap.TreeExplainer(booster)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # shap's note that its LightGBM output format changed
            theirs = np.asarray(explainer.shap_values(x))
        np.testing.assert_allclose(ours[:, :-1], theirs, rtol=0, atol=ATOL)
        np.testing.assert_allclose(ours[:, -1], float(np.ravel(explainer.expected_value)[-1]), rtol=0, atol=ATOL)
    return ours


def _no_lightgbm(*args, **kwargs):
    raise AssertionError("LightGBM predict called where the SHAP table should serve")


def _splits(booster) -> dict[str, int]:
    text = json.dumps(booster.dump_model())
    return {k: text.count(f'"decision_type": "{k}"') for k in ("<=", "==")}


@pytest.fixture(scope="module")
def shipped_rows(world_dir, trained):
    b = trained.bundle
    export = read_export(world_dir)
    frame = build_features(export, scoring_cutoffs(export), b.icp, b.engagement)
    x, _ = LeadScorer(b).encoder.encode(frame)
    cat_cols = [i for i, f in enumerate(b.spec) if f.name in b.categories]
    return _hard_rows(x[:1500], cat_cols)


@pytest.mark.slow
def test_shipped_model_is_tabulated_and_exact(trained, shipped_rows, monkeypatch):
    booster = trained.bundle.booster
    assert shap_table(booster) is not None
    assert max(t["num_leaves"] for t in booster.dump_model()["tree_info"]) - 1 <= MAX_SPLITS
    _assert_exact(booster, shipped_rows, monkeypatch)


@pytest.mark.slow
def test_loaded_bundle_is_tabulated_and_exact_and_scores_the_same(bundle_dir, trained, shipped_rows, monkeypatch):
    scorer = LeadScorer.load(bundle_dir)
    ours = _assert_exact(scorer.bundle.booster, shipped_rows, monkeypatch)
    np.testing.assert_allclose(ours, trained.bundle.booster.predict(shipped_rows, pred_contrib=True), rtol=0,
                               atol=ATOL)


def _categorical_data(n: int = 6000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 2] = rng.integers(0, 40, n)  # categorical, codes beyond one 32-bit word of the bitset
    x[rng.random(n) < 0.2, 1] = np.nan
    x[rng.random(n) < 0.3, 3] = 0.0
    x[rng.random(n) < 0.1, 2] = np.nan
    y = (x[:, 0] + np.nan_to_num(x[:, 1]) + np.isin(x[:, 2], [3, 7, 33, 35]) - (x[:, 3] == 0)
         + rng.normal(size=n) > 0.5).astype(int)
    return x, y


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_model_with_categorical_splits_is_exact(zero_as_missing, monkeypatch):
    x, y = _categorical_data()
    params = {"objective": "binary", "num_leaves": 7, "max_depth": 3, "verbose": -1, "min_data_per_group": 5,
              "cat_smooth": 1, "zero_as_missing": zero_as_missing, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[2]), 120)
    assert _splits(booster)["=="] > 0, "the model must have categorical splits for this test to mean anything"
    kinds = json.dumps(booster.dump_model())
    assert ('"missing_type": "Zero"' if zero_as_missing else '"missing_type": "NaN"') in kinds
    assert shap_table(booster) is not None
    _assert_exact(booster, _hard_rows(x[:1500], [2]), monkeypatch)


def test_trees_with_features_on_several_splits_are_exact(monkeypatch):
    # two features only: each tree splits on the same feature at several nodes, on and off a row's path
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 2))
    y = (np.sin(3 * x[:, 0]) + x[:, 1] ** 2 + rng.normal(size=4000) * 0.3 > 0.8).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "max_depth": 3, "verbose": -1, "seed": 0},
                        lgb.Dataset(x, y), 80)
    _assert_exact(booster, _hard_rows(x[:1000], []), monkeypatch)


def test_deep_model_falls_back_to_pred_contrib(monkeypatch):
    x, y = _categorical_data()
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 0},
                        lgb.Dataset(x, y, categorical_feature=[2]), 30)
    assert shap_table(booster) is None
    calls = []
    real = predictions.predict
    monkeypatch.setattr(predictions, "predict", lambda *a, **k: calls.append(k) or real(*a, **k))
    out = predictions.contributions(booster, x[:500], x.shape[1])
    assert calls and calls[0].get("pred_contrib") is True
    np.testing.assert_allclose(out, booster.predict(x[:500], pred_contrib=True), rtol=0, atol=0)


def test_no_rows_and_one_row():
    x, y = _categorical_data()
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "max_depth": 3, "verbose": -1, "seed": 0},
                        lgb.Dataset(x, y, categorical_feature=[2]), 20)
    assert predictions.contributions(booster, x[:0], 6).shape == (0, 7)
    np.testing.assert_allclose(predictions.contributions(booster, x[:1], 6), booster.predict(x[:1], pred_contrib=True),
                               rtol=0, atol=ATOL)


def test_early_stopped_model_uses_the_iterations_predict_uses(monkeypatch):
    x, y = _categorical_data(seed=3)
    params = {"objective": "binary", "num_leaves": 7, "max_depth": 3, "verbose": -1, "seed": 0, "learning_rate": 0.3}
    booster = lgb.train(params, lgb.Dataset(x[:3000], y[:3000], categorical_feature=[2]), 400,
                        valid_sets=[lgb.Dataset(x[3000:], y[3000:], categorical_feature=[2])],
                        callbacks=[lgb.early_stopping(5, verbose=False)], keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.current_iteration()
    # shap.TreeExplainer reads such a booster's best_iteration as one tree more than LightGBM does (its
    # tree_limit is best_iteration + 1), so here only LightGBM's own pred_contrib is the reference
    _assert_exact(booster, _hard_rows(x[:800], [2]), monkeypatch, with_shap=False)


def test_split_of_missing_against_the_rest_keeps_its_infinite_threshold(monkeypatch):
    # a feature that only tells missing from present: LightGBM splits it at +inf (the dump writes 1e300)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4000, 3))
    x[:, 1] = np.where(rng.random(4000) < 0.4, np.nan, 1.0)
    y = (np.isnan(x[:, 1]) + 0.5 * x[:, 0] + rng.normal(size=4000) * 0.5 > 0.7).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "max_depth": 3, "verbose": -1, "seed": 0},
                        lgb.Dataset(x, y), 40)
    assert "threshold=" in booster.model_to_string() and " inf" in booster.model_to_string()
    rows = x[:1000].copy()
    rows[::3, 1] = np.inf  # inf <= inf: left, with the present values; inf <= 1e300 would send it right
    rows[1::3, 1] = 1e300
    _assert_exact(booster, rows, monkeypatch)
