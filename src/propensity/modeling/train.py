"""Training: point-in-time rows → time split → LightGBM → calibration → evaluation.

:func:`train` is the whole job behind ``propensity train``, without any printing
or MLflow: it returns a :class:`TrainResult` holding the bundle, the metrics of
the model, of the points baseline and of logistic regression on the same test
rows, top-K figures at the tier policy's capacity, and what the charts need.
Tracking and the CLI are layered on top.

The validation window serves three purposes: early stopping, the optional
parameter search (``tuning.crm_budget_seconds``; trials judged by validation ROC
AUC) and calibration. With ``calibration: auto`` isotonic and sigmoid are
compared by 5-fold cross-validated log loss over the validation predictions
(:func:`~propensity.modeling.calibrate.choose_calibrator`), so the choice is made
on rows each map was not fitted on; the booster's stopping point was still picked
on those rows, a small optimistic bias that the test window (never used for any
choice) would expose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from propensity.config import ModelConfig, ProjectConfig
from propensity.core.native import LIGHTGBM, cores, predict
from propensity.core.version import VERSION
from propensity.data.export import CrmExport, DataError
from propensity.features.cutoffs import training_cutoffs
from propensity.features.matrix import fit_categories, to_matrix
from propensity.features.pipeline import build_features
from propensity.features.spec import FeatureDef, build_feature_spec
from propensity.modeling.audit import leakage_audit
from propensity.modeling.baseline import baseline_points
from propensity.modeling.calibrate import choose_calibrator, fit_calibration
from propensity.modeling.evaluate import compare, logistic_baseline
from propensity.modeling.report import segment_sufficiency
from propensity.modeling.split import time_split
from propensity.scoring.bundle import Bundle

__all__ = ["MAX_UNMATCHED_ACCOUNTS", "TrainResult", "fit_booster", "numeric_matrix", "policy_ks", "top_k_flat", "train"]

Progress = Callable[[str], None]
MAX_UNMATCHED_ACCOUNTS = 0.20  # share of leads whose account_id matches no account above which training refuses


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, dict[str, float]]  # {"model": {...}, "baseline": {...}, "logistic": {...}}
    split: dict
    test: pd.DataFrame  # lead_id, cutoff, label, probability, baseline, logistic (test rows)
    lift: dict[str, list[dict]]
    sample_matrix: pd.DataFrame  # test rows used for the SHAP summary
    timings: dict[str, float] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    segments: list[dict] = field(default_factory=list)  # sufficiency per segment (model card)
    audit: dict = field(default_factory=dict)  # leakage findings (propensity.modeling.audit)
    comparison: dict = field(default_factory=dict)  # evaluate.compare output over the three on the test rows
    top_k: dict = field(default_factory=dict)  # {"ks": {label: K}, "policy": str}
    calibration: dict = field(default_factory=dict)  # {"config", "method", "scores"}
    tuning: dict = field(default_factory=dict)  # {"budget_s", "trials", "seconds", "valid_auc", "chosen"}
    test_features: pd.DataFrame | None = None  # the test rows' features, as build_features made them (monitoring)


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
        "num_threads": cores(),
        "verbose": -1,
    }


def fit_booster(x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray,
                cfg: ModelConfig, spec: list[FeatureDef]) -> lgb.Booster:
    """LightGBM with early stopping on the validation window's log loss."""
    params = _lgb_params(cfg, spec)
    with LIGHTGBM:
        dtrain = lgb.Dataset(x_train, y_train, categorical_feature="auto", free_raw_data=False)
        dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
        return lgb.train(
            params, dtrain, num_boost_round=cfg.n_estimators, valid_sets=[dvalid],
            callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
        )


def _require_both_classes(y: np.ndarray, window: str) -> None:
    if y.sum() == 0:
        raise ValueError(f"the {window} window has no closed-won outcome; need more history or a longer horizon")


def _check_accounts(export: CrmExport) -> None:
    """Refuse an export where more than :data:`MAX_UNMATCHED_ACCOUNTS` of the leads name no known account.

    Their firmographics would all be unknown: the model would learn the broken join
    (or that "unknown" means something) instead of the accounts. A few such leads are
    normal (an account deleted or not yet synced) and only warned about by the read.
    """
    n, text = export.unmatched_accounts()
    if n > MAX_UNMATCHED_ACCOUNTS * len(export.leads):
        raise DataError(f"{export.source}: {text}; training refuses an export where more than "
                        f"{MAX_UNMATCHED_ACCOUNTS:.0%} of the leads match no account: fix the ids or export the "
                        "missing accounts")


def train(export: CrmExport, project: ProjectConfig, progress: Progress | None = None) -> TrainResult:
    """Build point-in-time rows, train, calibrate and evaluate on the newest window.

    Raises ``ValueError`` with a readable message when the data cannot support a
    time-ordered split (too little history, no positive outcomes), or when more than
    :data:`MAX_UNMATCHED_ACCOUNTS` (20%) of the leads have an ``account_id`` that
    matches no account (a :class:`~propensity.data.export.DataError`).
    """
    say = progress or (lambda _msg: None)
    cfg = project.training
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    _check_accounts(export)

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
    tuning = {"budget_s": float(cfg.tuning.crm_budget_seconds)}
    lgb_params = _lgb_params(cfg.model, spec)
    if cfg.tuning.crm_budget_seconds > 0:
        booster, lgb_params, tuning = _tuned_booster(x, y, split, cfg, spec, say)
    else:
        booster = fit_booster(x[split.train], y[split.train], x[split.valid], y[split.valid], cfg.model, spec)
    timings["tune_train_s"] = time.perf_counter() - t1
    p_valid_raw = predict(booster, x[split.valid])
    if cfg.calibration == "auto":
        calibrator, cal_scores = choose_calibrator(p_valid_raw, y[split.valid], cfg.model.seed)
    else:
        calibrator, cal_scores = fit_calibration(cfg.calibration, p_valid_raw, y[split.valid]), {}
    calibration = {"config": cfg.calibration, "method": calibrator.method, "scores": cal_scores}
    timings["train_s"] = time.perf_counter() - t1

    say("evaluating on the test window against the points baseline and logistic regression")
    p_test = calibrator(predict(booster, x[split.test]))
    points = baseline_points(frame, project.icp, project.engagement)
    # The baseline's points become a probability the same way the model's do: a
    # monotone map fitted on validation, so log loss and Brier compare fairly.
    base_cal = fit_calibration("isotonic", _minmax(points[split.valid], points[split.valid]), y[split.valid])
    p_base = base_cal(_minmax(points[split.test], points[split.valid]))
    t3 = time.perf_counter()
    xn, cat_idx = numeric_matrix(x)
    p_lr = logistic_baseline(xn[split.train], y[split.train], xn[split.test], cat_idx, cfg.model.seed)
    timings["logistic_s"] = time.perf_counter() - t3
    y_test = y[split.test]
    named_ks, policy = policy_ks(cfg.tiers, p_test)
    comparison = compare(y_test, {"model": p_test, "baseline": p_base, "logistic": p_lr},
                         ks=tuple(named_ks.values()))
    named_ks["top_decile"] = comparison["decile_k"]
    metrics = {n: c["metrics"] for n, c in comparison["models"].items()}
    lift = {n: c["lift"] for n, c in comparison["models"].items()}  # keyed like metrics
    test = frame.loc[split.test, ["lead_id", "cutoff", "label"]].reset_index(drop=True)
    test["probability"] = p_test
    test["baseline"] = p_base
    test["logistic"] = p_lr
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
            "propensity_version": VERSION,
            "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "data": export.source,
            "data_end": str(export.end()),
            "label": f"closed_won within {cfg.label.horizon_days} days after the cutoff",
            "best_iteration": int(booster.best_iteration or booster.num_trees()),
            "split": split.describe(frame["cutoff"]),
            "cutoffs": cfg.cutoffs.model_dump(),
            "metrics": metrics,
            "top_k": {"ks": named_ks, "policy": policy},
            "calibration": calibration,
            "tuning": tuning,
            # How points became a probability at training, so `propensity evaluate`
            # can put the baseline on new rows without refitting it on their labels.
            "baseline_calibration": {"lo": float(np.min(points[split.valid])), "hi": float(np.max(points[split.valid])),
                                     "calibrator": base_cal.to_dict()},
        },
    )
    timings["total_s"] = time.perf_counter() - t0
    return TrainResult(bundle=bundle, metrics=metrics, split=split.describe(frame["cutoff"]), test=test,
                       lift=lift, sample_matrix=sample, timings=timings, segments=segments, audit=audit,
                       comparison=comparison, top_k={"ks": named_ks, "policy": policy}, calibration=calibration,
                       tuning=tuning,
                       test_features=frame.loc[split.test, [f.name for f in spec]].reset_index(drop=True),
                       params={**lgb_params, "calibration": calibrator.method, "calibration_config": cfg.calibration,
                               "tuning_budget_s": tuning["budget_s"], "tuning_trials": tuning.get("trials", 0),
                               "horizon_days": cfg.label.horizon_days, "cutoff_every_days": cfg.cutoffs.every_days,
                               "n_features": len(spec)})


def _minmax(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(reference)), float(np.max(reference))
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values, dtype=float)


def numeric_matrix(x: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """The model matrix as floats (category codes, NaN for unknown) and the categorical column positions."""
    cols, cat_idx = [], []
    for j, name in enumerate(x.columns):
        col = x[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            cols.append(codes)
            cat_idx.append(j)
        else:
            cols.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    return (np.column_stack(cols) if cols else np.empty((len(x), 0))), cat_idx


def policy_ks(tiers, p: np.ndarray) -> tuple[dict[str, int], str]:
    """The K a sales team works under the tier policy, plus fixed Ks of 100 and 500.

    With ``capacity`` K is ``leads_per_week``; otherwise it is the number of rows at
    or above the SQL threshold (what the team would be handed). Ks larger than the
    number of rows are left out.
    """
    n = len(p)
    ks: dict[str, int] = {}
    if tiers.capacity is not None:
        ks["capacity"] = int(tiers.capacity.leads_per_week)
        policy = f"capacity {tiers.capacity.leads_per_week:,} leads (K = leads_per_week, over the rows pooled)"
    else:
        ks["sql_tier"] = int((np.asarray(p) >= tiers.sql).sum())
        policy = f"SQL threshold {tiers.sql:.1%} (K = rows the model puts at or above it)"
    ks.update({"100": 100, "500": 500})
    return {k: v for k, v in ks.items() if 0 < v <= n}, policy


def top_k_flat(comparison: dict, named_ks: dict[str, int]) -> dict[str, dict[str, float]]:
    """Top-K figures as flat metrics per model.

    ``{model: {"k_<label>": K, "precision_at_<label>": .., "recall_at_<label>": .., "conversions_at_<label>": ..}}``.
    """
    out: dict[str, dict[str, float]] = {}
    for who, c in comparison["models"].items():
        flat: dict[str, float] = {}
        for label, k in named_ks.items():
            t = c["top_k"].get(str(k))
            if t is None:
                continue
            flat[f"k_{label}"] = float(k)
            for key in ("precision", "recall", "conversions"):
                flat[f"{key}_at_{label}"] = float(t[key])
        out[who] = flat
    return out


def _tuned_booster(x: pd.DataFrame, y: np.ndarray, split, cfg, spec: list[FeatureDef],
                   say: Progress) -> tuple[lgb.Booster, dict, dict]:
    """Search LightGBM parameters within ``tuning.crm_budget_seconds`` on the time-ordered validation window.

    The project's ``model:`` settings are the first trial (always run), then the
    search of :mod:`.tune`; every trial early-stops on the validation window and is
    judged by its validation ROC AUC. The winner is refitted on the training window
    with the same early stopping (deterministic, so it is the trial's model).
    """
    from propensity.modeling.tune import EARLY_STOP, MAX_ROUNDS, base_params, tune_lightgbm

    m = cfg.model
    idx_tr, idx_va = np.flatnonzero(split.train), np.flatnonzero(split.valid)
    rows = np.concatenate([idx_tr, idx_va])
    folds = [(np.arange(len(idx_tr)), np.arange(len(idx_tr), len(rows)))]
    xn, cat_idx = numeric_matrix(x)
    monotone = [f.monotone for f in spec]
    first = {"learning_rate": m.learning_rate, "num_leaves": m.num_leaves, "max_depth": m.max_depth,
             "min_child_samples": m.min_child_samples, "bagging_fraction": m.subsample,
             "bagging_freq": m.subsample_freq, "feature_fraction": m.colsample_bytree, "lambda_l2": m.reg_lambda,
             "metric": "binary_logloss"}
    budget = float(cfg.tuning.crm_budget_seconds)
    say(f"searching LightGBM parameters for up to {budget:g}s on the validation window")
    tuned = tune_lightgbm(xn[rows], y[rows], folds, cat_idx, budget_s=budget, monotone=monotone, seed=m.seed,
                          progress=say, first=first, threads=0)
    chose_first = tuned.params == {**base_params(monotone, m.seed, 0), **first}
    info = {"budget_s": budget, "trials": tuned.trials, "seconds": round(tuned.seconds, 1),
            "valid_auc": tuned.cv_auc, "chosen": "model config" if chose_first else "search"}
    if chose_first:
        booster = fit_booster(x[split.train], y[split.train], x[split.valid], y[split.valid], m, spec)
        return booster, _lgb_params(m, spec), info
    params = dict(tuned.params)
    with LIGHTGBM:
        dtrain = lgb.Dataset(x[split.train], y[split.train], categorical_feature="auto", free_raw_data=False)
        dvalid = lgb.Dataset(x[split.valid], y[split.valid], reference=dtrain)
        booster = lgb.train(params, dtrain, num_boost_round=MAX_ROUNDS, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
    info["params"] = {k: v for k, v in params.items() if k != "monotone_constraints"}
    return booster, params, info
