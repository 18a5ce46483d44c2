"""Trustworthy on real lead data: windows sized by outcomes, degenerate models caught, clipped
probabilities, the readiness verdict, and the family that ships chosen on validation (CRM and flat table)."""

import numpy as np
import pandas as pd
import pytest

from propensity.config import SplitConfig
from propensity.core.errors import DataError
from propensity.modeling.calibrate import fit_calibration
from propensity.modeling.readiness import auc_margin, calibration_checks, verdict
from propensity.modeling.selection import choose, degenerate
from propensity.modeling.split import time_split
from propensity.tabular.train import train_table

HORIZON = 90


def _snapshots(dates: int, per_date: int, positive_from: int, rate: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    cutoffs = pd.Series(np.repeat(pd.date_range("2024-01-01", periods=dates, freq="14D"), per_date))
    index = np.repeat(np.arange(dates), per_date)
    y = ((index >= positive_from) & (rng.random(len(cutoffs)) < rate)).astype(int)
    return cutoffs, y


def _check_purge(split, cutoffs):
    for train, window in zip(split.trains, split.windows, strict=True):
        assert cutoffs[train].max() + pd.Timedelta(days=HORIZON) <= cutoffs[window].min()
        assert not (train & window).any() and not (train & split.test).any()
    assert cutoffs[split.validation].max() < cutoffs[split.test].min()


def test_late_conversions_move_the_windows_and_the_purge_stays_exact():
    # Conversions only from date 24 of 40: date-sized windows would leave training without one.
    cutoffs, y = _snapshots(40, 200, positive_from=24, rate=0.05)
    dated = time_split(cutoffs, SplitConfig(), HORIZON)  # sized by dates alone
    assert y[dated.train].sum() == 0
    split = time_split(cutoffs, SplitConfig(), HORIZON, y)
    _check_purge(split, cutoffs)
    assert y[split.train].sum() >= SplitConfig().min_train_positives
    assert y[split.test].sum() >= SplitConfig().min_positives
    assert all(y[w].sum() >= SplitConfig().min_positives for w in split.windows)
    assert split.notes, "the split must say what it chose"


def test_several_validation_windows_each_with_its_own_training_rows():
    cutoffs, y = _snapshots(40, 200, positive_from=0, rate=0.15)
    split = time_split(cutoffs, SplitConfig(valid_windows=3), HORIZON, y)
    assert len(split.windows) == 3
    _check_purge(split, cutoffs)
    starts = [cutoffs[w].min() for w in split.windows]
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert split.trains[0].sum() < split.trains[-1].sum()  # each origin trains on what came before it


def test_too_few_conversions_in_the_whole_export_are_refused_with_the_counts():
    cutoffs, y = _snapshots(40, 50, positive_from=30, rate=0.02)
    with pytest.raises(DataError) as e:
        time_split(cutoffs, SplitConfig(), HORIZON, y)
    found = int(y.sum())
    assert f"hold {found:,} closed-won" in str(e.value) and "needs at least" in str(e.value)


def test_degenerate_lightgbm_is_set_aside_for_each_reason():
    rng = np.random.default_rng(0)
    good = rng.uniform(0.0, 0.3, 1000)
    assert degenerate(120, good, 0.1, 0.80, [0.75])["eligible"]
    assert "tree" in degenerate(3, good, 0.1, 0.80, [0.75])["why"]
    flat = 0.145 + rng.uniform(0, 0.002, 1000)  # all between 0.145 and 0.147
    assert "barely vary" in degenerate(120, flat, 0.1, 0.80, [0.75])["why"]
    assert "not above" in degenerate(120, good, 0.1, 0.74, [0.75])["why"]


def test_choose_falls_back_to_the_best_simple_family_and_says_why():
    judged = {"lightgbm": {"log_loss": 0.20, "auc": 0.70, "eligible": False, "why": "early stopping kept 1 tree(s)"},
              "logistic": {"log_loss": 0.25, "auc": 0.68, "eligible": True, "why": ""},
              "points": {"log_loss": 0.24, "auc": 0.66, "eligible": True, "why": ""}}
    family, why = choose(judged)
    assert family == "points" and "LightGBM set aside: early stopping kept 1 tree" in why
    assert choose(judged, "lightgbm")[0] == "lightgbm"  # forced is forced
    judged["lightgbm"]["eligible"] = True
    assert choose(judged)[0] == "lightgbm"


def test_a_clipped_calibrator_keeps_log_loss_bounded_on_an_unseen_extreme():
    raw = np.linspace(0, 1, 400)
    y = (raw > 0.5).astype(int)  # isotonic learns plateaus of exactly 0 and 1
    iso = fit_calibration("isotonic", raw, y)
    assert iso(np.array([0.0]))[0] == 0.0
    clipped = iso.clipped(0.001, 0.999)
    p = clipped(np.array([0.0, 1.0]))
    assert p[0] == pytest.approx(0.001) and p[1] == pytest.approx(0.999)
    # A conversion at a score the training window never converted at: bounded loss, not infinity.
    assert -np.log(p[0]) < 7


def test_verdict_reads_conversions_margin_and_calibration():
    rng = np.random.default_rng(1)
    y = (rng.random(4000) < 0.1).astype(int)
    strong = np.clip(0.1 + 0.5 * (y - 0.1) + rng.normal(0, 0.1, 4000), 0.01, 0.99)
    weak = np.clip(0.1 + rng.normal(0, 0.02, 4000), 0.01, 0.99)
    checks = calibration_checks(y, strong, 0.1, 0.1)
    good = verdict(500, int(y.sum()), auc_margin(y, strong, weak), checks)
    assert good["verdict"] in ("ready", "use with care")
    assert verdict(12, int(y.sum()), auc_margin(y, strong, weak), checks)["verdict"] == "not ready"
    noise = verdict(500, int(y.sum()), auc_margin(y, weak, strong), calibration_checks(y, weak, 0.1, 0.1))
    assert noise["verdict"] == "not ready" and any("reaching 0.5" in r for r in noise["reasons"])
    shifted = calibration_checks(y, strong * 2.5, 0.1, 0.25)
    assert shifted["prior_shift"]["moved"] and shifted["observed_outside"]
    assert verdict(500, int(y.sum()), auc_margin(y, strong, weak), shifted)["verdict"] == "not ready"
    flagged = verdict(500, int(y.sum()), auc_margin(y, strong, weak), checks, flags=1)
    assert flagged["verdict"] != "ready" and any("leakage flag" in r for r in flagged["reasons"])


def _noise_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "lead": [f"L{i}" for i in range(n)],
        "landing_page": [f"/page-{k}" for k in rng.integers(0, 500, n)],
        "visits": rng.poisson(2, n),
        "created": pd.date_range("2024-01-01", periods=n, freq="2h").astype(str),
        "won": rng.random(n) < 0.1,
    })


@pytest.mark.slow
def test_a_flat_table_of_noise_never_ships_a_degenerate_lightgbm():
    got = train_table(_noise_table(), "won", id_column="lead", time_column="created", budget_s=3)
    family = got.bundle.metadata["family"]
    assert family["chosen"] != "lightgbm" or family["validation"]["lightgbm"]["eligible"]
    assert got.verdict["verdict"] == "not ready"
    p = got.predictions["model"]
    clip = got.params["calibration_clip"]
    assert p.min() >= clip - 1e-12 and p.max() <= 1 - clip + 1e-12


@pytest.mark.slow
def test_a_flat_table_trained_as_logistic_scores_with_exact_reasons(tmp_path):
    from propensity.scoring.bundle import save_bundle
    from propensity.tabular.bundle import load_table_bundle
    from propensity.tabular.scorer import TableScorer

    rng = np.random.default_rng(3)
    n = 3000
    visits = rng.poisson(3, n)
    segment = rng.choice(["smb", "mid", "enterprise"], n)
    z = -3 + 0.4 * visits + (segment == "enterprise") * 1.0
    df = pd.DataFrame({"lead": [f"L{i}" for i in range(n)], "visits": visits, "segment": segment,
                       "won": rng.random(n) < 1 / (1 + np.exp(-z))})
    got = train_table(df, "won", id_column="lead", budget_s=2, model_family="logistic")
    assert got.bundle.metadata["family"]["chosen"] == "logistic" and got.family["forced"]
    assert "lightgbm" in got.comparison["models"]  # the family not shipped is still shown on the same rows
    save_bundle(got.bundle, tmp_path / "b")
    scorer = TableScorer(load_table_bundle(tmp_path / "b"))
    scored = scorer.score(df.drop(columns=["won"]).head(50))
    np.testing.assert_allclose(scored["probability"], scorer.predict(df.head(50)), rtol=1e-12)
    assert scored["reasons"].str.contains("visits|segment").all()


@pytest.mark.slow
def test_a_crm_training_says_which_family_won_on_which_windows(trained_auto, project):
    from propensity.modeling.report import model_card

    trained = trained_auto

    family = trained.family
    assert family["chosen"] in {"lightgbm", "logistic", "points"}
    judged = family["validation"]
    assert {"logistic", "points"} <= set(judged)
    eligible = {n: j for n, j in judged.items() if j["eligible"]}
    assert judged[family["chosen"]]["log_loss"] == min(j["log_loss"] for j in eligible.values())
    assert len(trained.split["windows"]) >= 2
    if family["chosen"] != "lightgbm" and "lightgbm" in judged:
        assert "lightgbm" in trained.metrics  # the family set aside is still shown on the test rows
    card = model_card(trained, project)
    assert "- Readiness: **" in card and f"- Family: **{family['chosen']}**" in card
    assert trained.verdict["verdict"] in {"ready", "use with care", "not ready"}


@pytest.mark.slow
def test_a_crm_model_forced_to_logistic_scores_with_exact_reasons(world_dir, project, tmp_path):
    from propensity.core.native import predict
    from propensity.data.export import read_export
    from propensity.modeling.train import train
    from propensity.scoring.bundle import load_bundle, save_bundle
    from propensity.scoring.scorer import LeadScorer

    export = read_export(world_dir)
    result = train(export, project, model_family="logistic")
    assert result.family["chosen"] == "logistic" and result.family["forced"]
    bundle = load_bundle(save_bundle(result.bundle, tmp_path / "b"))
    assert bundle.metadata["family"]["chosen"] == "logistic"
    x = result.sample_matrix.head(200)
    contrib = predict(bundle.booster, x, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), predict(bundle.booster, x, raw_score=True), atol=1e-9)
    scores = LeadScorer(bundle).score(export)
    assert len(scores) and scores["probability"].between(0, 1).all()
    assert scores["reasons"].astype(str).str.len().gt(2).all()
