"""Leakage audit: planted leaks are flagged, a clean world raises no single-feature flag."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from propensity.config import SplitConfig
from propensity.data.export import read_export
from propensity.features.cutoffs import training_cutoffs
from propensity.features.pipeline import build_features
from propensity.features.spec import FeatureDef, build_feature_spec
from propensity.modeling.audit import leakage_audit, to_markdown
from propensity.modeling.split import time_split


def toy_rows(seed: int = 0, n_leads: int = 1500, n_dates: int = 12) -> tuple[pd.DataFrame, np.ndarray]:
    """Snapshots of leads every 28 days; one honest weak signal, one noise column."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_dates, freq="28D", tz="UTC")
    lead = np.repeat([f"L{i}" for i in range(n_leads)], n_dates)
    cutoff = np.tile(dates, n_leads)
    interest = np.repeat(rng.normal(size=n_leads), n_dates)
    y = (rng.random(len(lead)) < 1 / (1 + np.exp(-(interest - 2.5)))).astype(int)
    frame = pd.DataFrame({"lead_id": lead, "cutoff": cutoff, "label": y,
                          "eng_signal": interest + rng.normal(scale=1.0, size=len(lead)),
                          "fit_noise": rng.normal(size=len(lead)),
                          "fit_category_value": rng.choice(np.array(["a", "b", None], dtype=object), len(lead))})
    return frame, y


TOY_SPEC = [FeatureDef("eng_signal", "engagement", "numeric", "Signal", "signal"),
            FeatureDef("fit_noise", "fit", "numeric", "Noise", "noise"),
            FeatureDef("fit_category_value", "fit", "categorical", "Category", "category")]


def audit_toy(frame: pd.DataFrame, y: np.ndarray, spec: list[FeatureDef]) -> dict:
    split = time_split(frame["cutoff"], SplitConfig(), horizon_days=28)
    return leakage_audit(frame, split, spec, y)


def test_a_feature_that_is_the_label_plus_noise_is_flagged():
    frame, y = toy_rows()
    frame["eng_leak"] = y + np.random.default_rng(1).normal(scale=0.2, size=len(y))
    spec = [*TOY_SPEC, FeatureDef("eng_leak", "engagement", "numeric", "Leak", "leak")]
    findings = audit_toy(frame, y, spec)
    assert [f["feature"] for f in findings["single_feature"]["flagged"]] == ["eng_leak"]
    assert not findings["ok"]
    assert [(f["column"], f["check"], f["accepted"]) for f in findings["flags"]] == [("eng_leak", "single feature",
                                                                                      False)]


def test_a_feature_known_only_for_won_rows_is_flagged_through_its_missing_values():
    # Empty for every negative, a constant for positives: only the missingness leaks.
    frame, y = toy_rows()
    frame["fit_filled_on_win"] = np.where(y == 1, 1.0, np.nan)
    spec = [*TOY_SPEC, FeatureDef("fit_filled_on_win", "fit", "numeric", "Filled", "filled")]
    flagged = [f["feature"] for f in audit_toy(frame, y, spec)["single_feature"]["flagged"]]
    assert flagged == ["fit_filled_on_win"]


def test_honest_features_raise_no_flag_and_findings_are_plain_json():
    frame, y = toy_rows()
    findings = audit_toy(frame, y, TOY_SPEC)
    assert findings["single_feature"]["flagged"] == []
    assert findings["split_gap"]["flagged"] is False
    assert findings["static_columns"]["skipped"]  # no export given
    json.dumps(findings, allow_nan=False)
    assert "No flag raised" in to_markdown(findings)


def test_a_post_outcome_status_column_in_the_leads_table_is_flagged(world_dir, project):
    export = read_export(world_dir)
    won = set(export.opportunities.loc[export.opportunities["stage"] == "closed_won", "lead_id"])
    leads = export.leads.copy()
    is_won = leads["lead_id"].isin(won).to_numpy()
    rng = np.random.default_rng(0)
    leads["lifecycle_stage"] = np.where(is_won, "customer", rng.choice(["lead", "mql", "sql"], len(leads)))
    leads["customer_since"] = leads["created_at"].where(~is_won, pd.Timestamp("2030-01-01T00:00:00Z"))
    leads["customer_since"] = leads["customer_since"].where(is_won, pd.NaT)
    export = dataclasses.replace(export, leads=leads)
    cfg = project.training
    frame = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days),
                           project.icp, project.engagement)
    split = time_split(frame["cutoff"], cfg.split, cfg.label.horizon_days)
    findings = leakage_audit(frame, split, build_feature_spec(project.icp, project.engagement),
                             frame["label"].to_numpy(), export=export)
    flagged = {c["column"]: c["reason"] for c in findings["static_columns"]["flagged"]}
    assert set(flagged) == {"lifecycle_stage", "customer_since"}
    assert "after the row's cutoff" in flagged["customer_since"]
    assert "leads.lifecycle_stage" in to_markdown(findings)


@pytest.mark.slow
def test_training_on_a_clean_world_audits_without_single_feature_flags(trained):
    audit = trained.audit
    assert audit["single_feature"]["flagged"] == []
    assert audit["static_columns"]["flagged"] == []
    assert audit["split_gap"]["flagged"] is False
    assert audit["ok"] is True
    assert trained.timings["audit_s"] < 30
    json.dumps(audit, allow_nan=False)
    assert to_markdown(audit).startswith("## Leakage audit")
