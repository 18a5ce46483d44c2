"""Model quality on a synthetic world, against the generator's true probabilities (the oracle)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from propensity.data.synthetic import oracle_probability

pytestmark = pytest.mark.slow


def test_model_auc_reaches_95_percent_of_the_oracle_and_not_beyond(trained, world_dir):
    # The oracle is the best possible prediction of each test snapshot: no model ranks better (the margin
    # allows for the test window's noise), and the shipped one comes close.
    test = trained.test
    best = oracle_probability(world_dir, test[["lead_id", "cutoff"]], trained.bundle.horizon_days)
    oracle = roc_auc_score(test["label"], best)
    model = roc_auc_score(test["label"], test["probability"])
    assert 0.95 * oracle <= model <= oracle + 0.002, (model, oracle)
    assert log_loss(test["label"], np.clip(best, 1e-7, 1 - 1e-7)) < log_loss(test["label"], test["probability"])


def test_model_beats_points_baseline(trained):
    m, b = trained.metrics["model"], trained.metrics["baseline"]
    assert m["roc_auc"] > b["roc_auc"]
    assert m["pr_auc"] > b["pr_auc"]
    assert m["log_loss"] < b["log_loss"]


def test_the_shipped_model_is_not_beaten_by_a_simple_family(trained_auto):
    # The goal of the family choice: the shipped model's test log loss at most the best simple family's
    # (a small tolerance: the choice is made on validation windows, not on these rows), AUC within 0.005.
    m = trained_auto.metrics
    simple = [m["logistic"], m["baseline"]]
    assert m["model"]["roc_auc"] >= max(s["roc_auc"] for s in simple) - 0.005
    assert m["model"]["log_loss"] <= min(s["log_loss"] for s in simple) * 1.01


def test_calibrated_probabilities_match_observed_rate(trained):
    test = trained.test
    assert test["probability"].mean() == pytest.approx(test["label"].mean(), rel=0.35)
    assert trained.metrics["model"]["ece"] < 0.01


def test_training_rows_end_before_their_labels_reach_validation(trained):
    split = trained.split
    horizon = pd.Timedelta(days=trained.bundle.horizon_days)
    for window in split["windows"]:  # each validation window's own training rows are purged before it
        assert pd.Timestamp(window["train"]["last_cutoff"]) + horizon <= pd.Timestamp(window["valid"]["first_cutoff"])
    assert split["valid"]["last_cutoff"] < split["test"]["first_cutoff"]
