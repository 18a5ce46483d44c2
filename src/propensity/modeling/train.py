"""Training: point-in-time rows → time split → LightGBM → calibration → evaluation.

:func:`train` is the whole job behind ``propensity train``, without any printing
or MLflow: it returns a :class:`TrainResult` holding the bundle, the metrics of
the model and of the points baseline on the same test rows, and what the charts
need. Tracking and the CLI are layered on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from propensity import __version__
from propensity.config import ModelConfig, ProjectConfig
from propensity.data.export import CrmExport
from propensity.features.cutoffs import training_cutoffs
from propensity.features.matrix import fit_categories, to_matrix
from propensity.features.pipeline import build_features
from propensity.features.spec import FeatureDef, build_feature_spec
from propensity.modeling.audit import leakage_audit
from propensity.modeling.baseline import baseline_points
from propensity.modeling.calibrate import fit_calibration
from propensity.modeling.metrics import classification_metrics, lift_table
from propensity.modeling.report import segment_sufficiency
from propensity.modeling.split import time_split
from propensity.scoring.bundle import Bundle

__all__ = ["TrainResult", "fit_booster", "train"]

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, dict[str, float]]  # {"model": {...}, "baseline": {...}}
    split: dict
    test: pd.DataFrame  # lead_id, cutoff, label, probability, baseline (test rows)
    lift: dict[str, list[dict]]
    sample_matrix: pd.DataFrame  # test rows used for the SHAP summary
    timings: dict[str, float] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    segments: list[dict] = field(default_factory=list)  # sufficiency per segment (model card)
    audit: dict = field(default_factory=dict)  # leakage findings (propensity.modeling.audit)


def _lgb_params(cfg: ModelConfig, spec: list[FeatureDef]) -> dict:
    return {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth,
        "min_child_samples": cfg.min_child_samples,
        "subsample": cfg.subsample,
        "subsample_freq": cfg.subsample_freq,
        "colsample_bytree": cfg.colsample_bytree,
        "reg_lambda": cfg.reg_lambda,
        "monotone_constraints": [f.monotone for f in spec],
        "monotone_constraints_method": "advanced",
        "seed": cfg.seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 0,
        "verbose": -1,
    }


def fit_booster(x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray,
                cfg: ModelConfig, spec: list[FeatureDef]) -> lgb.Booster:
    """LightGBM with early stopping on the validation window's log loss."""
    params = _lgb_params(cfg, spec)
    dtrain = lgb.Dataset(x_train, y_train, categorical_feature="auto", free_raw_data=False)
    dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
    return lgb.train(
        params, dtrain, num_boost_round=cfg.n_estimators, valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )


def _require_both_classes(y: np.ndarray, window: str) -> None:
    if y.sum() == 0:
        raise ValueError(f"the {window} window has no closed-won outcome; need more history or a longer horizon")


def train(export: CrmExport, project: ProjectConfig, progress: Progress | None = None) -> TrainResult:
    """Build point-in-time rows, train, calibrate and evaluate on the newest window.

    Raises ``ValueError`` with a readable message when the data cannot support a
    time-ordered split (too little history, no positive outcomes).
    """
    say = progress or (lambda _msg: None)
    cfg = project.training
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    say("building point-in-time training rows")
    cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
    if cut.empty:
        raise ValueError(f"{export.source}: no training rows; the data spans less than the "
                         f"{cfg.label.horizon_days}-day horizon")
    spec = build_feature_spec(project.icp, project.engagement)
    frame = build_features(export, cut, project.icp, project.engagement)
    timings["features_s"] = time.perf_counter() - t0

    split = time_split(frame["cutoff"], cfg.split, cfg.label.horizon_days)
    y = frame["label"].to_numpy().astype(int)
    for mask, name in ((split.train, "training"), (split.valid, "validation"), (split.test, "test")):
        _require_both_classes(y[mask], name)

    categories = fit_categories(frame[split.train], spec)
    x = to_matrix(frame, spec, categories)

    say(f"training LightGBM on {int(split.train.sum()):,} rows")
    t1 = time.perf_counter()
    booster = fit_booster(x[split.train], y[split.train], x[split.valid], y[split.valid], cfg.model, spec)
    calibrator = fit_calibration(cfg.calibration, booster.predict(x[split.valid]), y[split.valid])
    timings["train_s"] = time.perf_counter() - t1

    say("evaluating on the test window")
    p_test = calibrator(booster.predict(x[split.test]))
    points = baseline_points(frame, project.icp, project.engagement)
    # The baseline's points become a probability the same way the model's do: a
    # monotone map fitted on validation, so log loss and Brier compare fairly.
    base_cal = fit_calibration("isotonic", _minmax(points[split.valid], points[split.valid]), y[split.valid])
    p_base = base_cal(_minmax(points[split.test], points[split.valid]))
    y_test = y[split.test]
    metrics = {"model": classification_metrics(y_test, p_test),
               "baseline": classification_metrics(y_test, p_base)}
    lift = {"model": lift_table(y_test, p_test), "baseline": lift_table(y_test, p_base)}
    test = frame.loc[split.test, ["lead_id", "cutoff", "label"]].reset_index(drop=True)
    test["probability"] = p_test
    test["baseline"] = p_base
    sample = x[split.test].sample(n=min(2000, int(split.test.sum())), random_state=0)
    segments = segment_sufficiency(frame, split.train, split.test, spec)

    say("auditing for leakage")
    t2 = time.perf_counter()
    audit = leakage_audit(frame, split, spec, y, x=x, export=export, seed=cfg.model.seed)
    timings["audit_s"] = time.perf_counter() - t2

    bundle = Bundle(
        booster=booster, spec=spec, categories=categories, calibrator=calibrator,
        icp=project.icp, engagement=project.engagement, tiers=cfg.tiers, top_k=cfg.reasons.top_k,
        horizon_days=cfg.label.horizon_days,
        metadata={
            "propensity_version": __version__,
            "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "data": export.source,
            "data_end": str(export.end()),
            "label": f"closed_won within {cfg.label.horizon_days} days after the cutoff",
            "best_iteration": int(booster.best_iteration or booster.num_trees()),
            "split": split.describe(frame["cutoff"]),
            "metrics": metrics,
        },
    )
    timings["total_s"] = time.perf_counter() - t0
    return TrainResult(bundle=bundle, metrics=metrics, split=split.describe(frame["cutoff"]), test=test,
                       lift=lift, sample_matrix=sample, timings=timings, segments=segments, audit=audit,
                       params={**_lgb_params(cfg.model, spec), "calibration": cfg.calibration,
                               "horizon_days": cfg.label.horizon_days, "cutoff_every_days": cfg.cutoffs.every_days,
                               "n_features": len(spec)})


def _minmax(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(reference)), float(np.max(reference))
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values, dtype=float)

