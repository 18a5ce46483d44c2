"""The budgeted search and calibration chosen by validation."""

import time

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from propensity.config import TrainingConfig
from propensity.modeling.calibrate import choose_calibrator
from propensity.modeling.tune import STARTS, tune_lightgbm


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    x = r.normal(size=(1500, 5))
    y = (r.random(1500) < 1 / (1 + np.exp(-(-2 + 1.5 * x[:, 0] - x[:, 1])))).astype(int)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(x, y))
    return x, y, folds


def test_budget_zero_runs_the_first_fixed_setting_only(data):
    x, y, folds = data
    r = tune_lightgbm(x, y, folds, [], budget_s=0)
    assert r.trials == 1
    assert r.params["num_leaves"] == STARTS[0]["num_leaves"]
    assert not np.isnan(r.oof).any() and r.cv_auc > 0.75


def test_search_stops_near_its_budget_and_never_loses_to_the_fixed_start(data):
    x, y, folds = data
    fixed = tune_lightgbm(x, y, folds, [], budget_s=0)
    t = time.perf_counter()
    searched = tune_lightgbm(x, y, folds, [], budget_s=2)
    assert time.perf_counter() - t < 2 + 3
    assert searched.trials >= 2
    assert searched.cv_auc >= fixed.cv_auc


def test_monotone_constraints_reach_lightgbm(data):
    x, y, folds = data
    r = tune_lightgbm(x, y, folds, [], budget_s=0, monotone=[1, -1, 0, 0, 0])
    assert r.params["monotone_constraints"] == [1, -1, 0, 0, 0]


def test_calibration_picks_the_method_with_lower_held_out_log_loss():
    r = np.random.default_rng(1)
    p_true = r.uniform(0.01, 0.6, 5000)
    y = (r.random(5000) < p_true).astype(int)
    raw = 1 / (1 + np.exp(-(2.0 * np.log(p_true / (1 - p_true)) + 1.0)))  # a sigmoid distortion
    cal, scores = choose_calibrator(raw, y)
    assert cal.method == min(scores, key=lambda m: scores[m]["log_loss"])
    assert cal.method == "sigmoid"
    assert abs(cal(raw).mean() - y.mean()) < 0.01


def test_tuning_budget_is_a_training_yaml_setting():
    assert TrainingConfig().tuning.budget_seconds == 60
    assert TrainingConfig.model_validate({"tuning": {"budget_seconds": 0}}).tuning.budget_seconds == 0
    with pytest.raises(ValueError):
        TrainingConfig.model_validate({"tuning": {"budget": 5}})


def test_a_given_first_trial_always_runs_and_the_search_never_loses_to_it(data):
    x, y, folds = data
    first = {"num_leaves": 5, "max_depth": 2, "min_child_samples": 30, "metric": "binary_logloss"}
    only = tune_lightgbm(x, y, folds, [], budget_s=0, first=first)
    assert only.trials == 1
    assert only.params["num_leaves"] == 5 and only.params["max_depth"] == 2
    searched = tune_lightgbm(x, y, folds, [], budget_s=2, first=first, threads=0)
    assert searched.trials >= 2 and searched.cv_auc >= only.cv_auc


def test_crm_search_budget_and_auto_calibration_are_training_yaml_settings():
    cfg = TrainingConfig()
    assert cfg.tuning.crm_budget_seconds == 0 and cfg.calibration == "auto"
    cfg = TrainingConfig.model_validate({"calibration": "isotonic", "tuning": {"crm_budget_seconds": 15}})
    assert cfg.calibration == "isotonic" and cfg.tuning.crm_budget_seconds == 15
    with pytest.raises(ValueError):
        TrainingConfig.model_validate({"tuning": {"crm_budget_seconds": -1}})
