"""Training: point-in-time rows → rolling-origin windows → three model families → the winner, calibrated → test.

:func:`train` is the whole job behind ``propensity train``, without any printing
or MLflow: it returns a :class:`TrainResult` holding the bundle, the test metrics
of the shipped model and of the simple families on the same rows, top-K figures at
the tier policy's capacity, the family choice, the calibration checks, the
readiness verdict and what the charts need. Tracking and the CLI are layered on top.

The steps, each in its module:

1. the time split (:mod:`.split`): a test window and consecutive validation
   windows, each with its own purged training rows, sized by outcomes;
2. the families (:mod:`.selection`): LightGBM, regularised logistic regression and
   the points, each fitted for every window and judged on all of them by calibrated
   log loss; LightGBM only when it is not degenerate and beats the simple families'
   AUC; the winner is the model trained before the newest window;
3. calibration on the newest validation window (``calibration: auto`` picks isotonic
   or sigmoid by cross-validated log loss there), clipped away from 0 and 1 by
   ``1 / (2 (n + 1))`` for an ``n``-row window (no rate below that can be told
   apart on it), at most ``MAX_CLIP``;
4. the test window, touched once: every family's metrics, the calibration checks and
   the verdict (:mod:`.readiness`), the leakage audit (:mod:`.audit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from propensity.config import ProjectConfig
from propensity.core.native import predict
from propensity.core.version import VERSION
from propensity.data.export import CrmExport, DataError
from propensity.features.cutoffs import training_cutoffs
from propensity.features.matrix import fit_categories, to_matrix
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec
from propensity.modeling.audit import feature_columns, leakage_audit
from propensity.modeling.baseline import baseline_points
from propensity.modeling.boosting import numeric_matrix
from propensity.modeling.calibrate import choose_calibrator, fit_calibration
from propensity.modeling.evaluate import compare
from propensity.modeling.readiness import auc_margin, calibration_checks, verdict
from propensity.modeling.report import segment_sufficiency
from propensity.modeling.selection import FAMILIES, MIN_LIGHTGBM_POSITIVES, choose, fit_families, judge
from propensity.modeling.split import time_split
from propensity.scoring.bundle import Bundle
from propensity.scoring.calibration import Calibrator

__all__ = ["MAX_CLIP", "MAX_UNMATCHED_ACCOUNTS", "TrainResult", "policy_ks", "top_k_flat", "train", "train_rows"]

Progress = Callable[[str], None]
MAX_UNMATCHED_ACCOUNTS = 0.20  # share of leads whose account_id matches no account above which training refuses
MAX_CLIP = 0.01  # calibrated probabilities stay within [clip, 1 - clip]; see the module docstring


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, dict[str, float]]  # {"model", "baseline" (points), "logistic"[, "lightgbm"]}: {metric: value}
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
    family: dict = field(default_factory=dict)  # {"chosen", "why", "forced", "validation", "test_auc_margin"}
    verdict: dict = field(default_factory=dict)  # {"verdict": ready | use with care | not ready, "reasons"}
    checks: dict = field(default_factory=dict)  # readiness.calibration_checks on the test window
    test_features: pd.DataFrame | None = None  # the test rows' features, as build_features made them (monitoring)
    sampling: dict = field(default_factory=dict)  # negatives down-sampled (train --engine spark): rows, rate


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


def train(export: CrmExport, project: ProjectConfig, progress: Progress | None = None,
          model_family: str | None = None) -> TrainResult:
    """Build point-in-time rows, choose and fit the model family, calibrate and evaluate (module docstring).

    ``model_family`` (``auto``, ``lightgbm``, ``logistic``, ``points``) overrides the
    config's. Raises ``ValueError`` with a readable message when the data cannot
    support a time-ordered split (too little history, too few outcomes: the count found
    and the count needed), or when more than :data:`MAX_UNMATCHED_ACCOUNTS` (20%) of
    the leads have an ``account_id`` that matches no account (a
    :class:`~propensity.data.export.DataError`).
    """
    say = progress or (lambda _msg: None)
    cfg = project.training
    t0 = time.perf_counter()
    _check_accounts(export)

    say("building point-in-time training rows")
    cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
    if cut.empty:
        raise ValueError(f"{export.source}: no training rows; the data spans less than the "
                         f"{cfg.label.horizon_days}-day horizon")
    frame = build_features(export, cut, project.icp, project.engagement)
    return train_rows(frame, project, export.source, str(export.end()), say, model_family, export=export,
                      features_s=time.perf_counter() - t0, started=t0)


def train_rows(frame: pd.DataFrame, project: ProjectConfig, source: str, data_end: str,
               progress: Progress | None = None, model_family: str | None = None, *, export: CrmExport | None = None,
               weights: np.ndarray | None = None, sampling: dict | None = None, features_s: float = 0.0,
               started: float | None = None) -> TrainResult:
    """:func:`train` from its training table: ``frame`` as ``build_features`` makes it for the training cutoffs.

    ``export`` (optional) lets the leakage audit check the static columns. A table whose
    negatives were down-sampled (``train --engine spark``) comes with ``weights``: rows
    per row, ``1 / rate`` for a kept negative, 1 for positives and the test window
    (never sampled); and ``sampling``, the record of it (the model card states it).
    """
    say = progress or (lambda _msg: None)
    cfg = project.training
    forced = model_family or cfg.model_family
    t0 = time.perf_counter() if started is None else started
    timings: dict[str, float] = {"features_s": features_s}
    spec = build_feature_spec(project.icp, project.engagement)
    y = frame["label"].to_numpy().astype(int)
    if weights is not None and np.all(np.asarray(weights) == 1):
        weights = None  # nothing was sampled: the unweighted fits, as in process
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    split = time_split(frame["cutoff"], cfg.split, cfg.label.horizon_days, y)
    if sampling:
        _check_sampled_split(frame["cutoff"], split, w, sampling)
    for mask, name in ((split.train, "training"), (split.valid, "validation"), (split.test, "test")):
        _require_both_classes(y[mask], name)

    categories = fit_categories(frame[split.train], spec)
    x = to_matrix(frame, spec, categories)
    xn, _ = numeric_matrix(x)

    t1 = time.perf_counter()
    train_pos = int(y[split.train].sum())
    families = tuple(f for f in FAMILIES if f != "lightgbm" or train_pos >= MIN_LIGHTGBM_POSITIVES
                     or forced == "lightgbm")
    if forced not in ("auto", *families):
        families = (*families, forced)
    fitted = fit_families(x, xn, y, split, spec, categories, project, families, say)
    judged = judge(fitted, y, split, cfg.model.seed, weights)
    chosen, why = choose(judged, forced)
    if "lightgbm" not in families:
        why += (f"; LightGBM not fitted: {train_pos} training conversions, fewer than {MIN_LIGHTGBM_POSITIVES} "
                "(a tree model of so few outcomes fits noise)")
    timings["families_s"] = time.perf_counter() - t1

    # A down-sampled table is calibrated with weights (a kept negative stands for 1 / rate rows) rather than
    # by the prior correction logit(p) + log(rate): weights keep both maps exact (isotonic's knots have no
    # logit form), leave the bundle's calibrator as it is, and the rate drops out of everything downstream.
    newest = split.valid
    w_newest = None if weights is None else w[newest]
    clip = min(1.0 / (2 * (int(round(w[newest].sum())) + 1)), MAX_CLIP)
    calibrators: dict[str, Calibrator] = {}
    cal_scores: dict = {}
    for name, f in fitted.items():
        raw = f.valid_raw[-1]
        if cfg.calibration == "auto":
            cal, scores = choose_calibrator(raw, y[newest], cfg.model.seed, w_newest)
        else:
            cal, scores = fit_calibration(cfg.calibration, raw, y[newest], w_newest), {}
        calibrators[name] = cal.clipped(clip, 1 - clip)
        if name == chosen:
            cal_scores = scores
    calibrator = calibrators[chosen]
    model = fitted[chosen].shipped
    calibration = {"config": cfg.calibration, "method": calibrator.method, "scores": cal_scores, "clip": clip}
    timings["train_s"] = time.perf_counter() - t1

    say("evaluating on the test window against the simple families")
    p_family = {name: calibrators[name](predict(f.shipped, x[split.test] if name == "lightgbm"
                                                else xn[split.test]))
                for name, f in fitted.items()}
    p_test = p_family[chosen]
    points = baseline_points(frame, project.icp, project.engagement)
    # The points as a probability for `propensity evaluate` on new rows (the newest window's isotonic map).
    base_cal = fit_calibration("isotonic", _minmax(points[newest], points[newest]), y[newest], w_newest)
    y_test = y[split.test]
    named_ks, policy = policy_ks(cfg.tiers, p_test)
    shown = {"model": p_test, "baseline": p_family["points"], "logistic": p_family["logistic"]}
    if "lightgbm" in p_family and chosen != "lightgbm":
        shown["lightgbm"] = p_family["lightgbm"]
    comparison = compare(y_test, shown, ks=tuple(named_ks.values()))
    named_ks["top_decile"] = comparison["decile_k"]
    metrics = {n: c["metrics"] for n, c in comparison["models"].items()}
    lift = {n: c["lift"] for n, c in comparison["models"].items()}  # keyed like metrics
    test = frame.loc[split.test, ["lead_id", "cutoff", "label"]].reset_index(drop=True)
    test["probability"] = p_test
    test["baseline"] = p_family["points"]
    test["logistic"] = p_family["logistic"]
    sample = x[split.test].sample(n=min(2000, int(split.test.sum())), random_state=0)
    segments = segment_sufficiency(frame, split.train, split.test, spec)

    say("auditing for leakage")
    t2 = time.perf_counter()
    audit = leakage_audit(frame, split, spec, y, x=x, export=export, seed=cfg.model.seed, accept=cfg.audit.accept,
                          sources=feature_columns(spec, project.icp))
    timings["audit_s"] = time.perf_counter() - t2

    simple = [n for n in ("logistic", "points") if n != chosen]
    other = max(simple, key=lambda n: metrics["logistic" if n == "logistic" else "baseline"]["roc_auc"])
    margin = auc_margin(y_test, p_test, p_family[other], cfg.model.seed)
    checks = calibration_checks(y_test, p_test, float(np.average(y[split.train], weights=w[split.train])),
                                float(np.average(y[newest], weights=w[newest])), cfg.model.seed)
    flags = sum(not f.get("accepted", False) for f in audit.get("flags", []) if isinstance(f, dict))
    ready = verdict(train_pos, int(y_test.sum()), margin, checks, flags, other=f"the {other} family")
    family = {"chosen": chosen, "why": why, "forced": forced != "auto", "validation": judged,
              "test_auc_margin": {"over": other, **margin}}

    described = split.describe(frame["cutoff"], y)
    bundle = Bundle(
        booster=model, spec=spec, categories=categories, calibrator=calibrator,
        icp=project.icp, engagement=project.engagement, tiers=cfg.tiers, top_k=cfg.reasons.top_k,
        horizon_days=cfg.label.horizon_days,
        metadata={
            "propensity_version": VERSION,
            "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "data": source,
            "data_end": data_end,
            "label": f"closed_won within {cfg.label.horizon_days} days after the cutoff",
            "best_iteration": int(model.best_iteration or model.num_trees()),
            "split": described,
            "cutoffs": cfg.cutoffs.model_dump(),
            "metrics": metrics,
            "top_k": {"ks": named_ks, "policy": policy},
            "calibration": calibration,
            "calibration_checks": checks,
            "family": family,
            "verdict": ready,
            "tuning": fitted["lightgbm"].info if "lightgbm" in fitted else {"budget_s": 0.0},
            # How points became a probability at training, so `propensity evaluate`
            # can put the baseline on new rows without refitting it on their labels.
            "baseline_calibration": {"lo": float(np.min(points[newest])), "hi": float(np.max(points[newest])),
                                     "calibrator": base_cal.to_dict()},
            **({"sampling": sampling} if sampling else {}),
        },
    )
    tuning = bundle.metadata["tuning"]
    params = dict(fitted["lightgbm"].info.get("params", {})) if chosen == "lightgbm" else {}
    params = {k: v for k, v in params.items() if k != "monotone_constraints"}
    timings["total_s"] = time.perf_counter() - t0
    return TrainResult(bundle=bundle, metrics=metrics, split=described, test=test,
                       lift=lift, sample_matrix=sample, timings=timings, segments=segments, audit=audit,
                       comparison=comparison, top_k={"ks": named_ks, "policy": policy}, calibration=calibration,
                       tuning=tuning, family=family, verdict=ready, checks=checks,
                       test_features=frame.loc[split.test, [f.name for f in spec]].reset_index(drop=True),
                       params={**params, "model_family": chosen, "calibration": calibrator.method,
                               "calibration_config": cfg.calibration, "calibration_clip": clip,
                               "tuning_budget_s": tuning.get("budget_s", 0.0),
                               "tuning_trials": tuning.get("trials", 0),
                               "horizon_days": cfg.label.horizon_days, "cutoff_every_days": cfg.cutoffs.every_days,
                               "n_features": len(spec), "valid_windows": len(split.windows),
                               **{f"sampling_{k}": v for k, v in (sampling or {}).items()}},
                       sampling=dict(sampling or {}))


def _check_sampled_split(cutoffs: pd.Series, split, w: np.ndarray, sampling: dict) -> None:
    """Refuse a down-sampled table whose test window is not the one left un-sampled before sampling.

    The window was placed on the whole table's dates and conversions; sampling keeps every
    conversion, so the split falls the same unless a date lost all its rows.
    """
    first = sampling.get("test_first_cutoff")
    if first is None:
        return
    c = pd.to_datetime(cutoffs, utc=True)
    expected = (c >= pd.Timestamp(first)).to_numpy()
    if not np.array_equal(expected, split.test) or (w[split.test] != 1).any():
        raise ValueError(f"the down-sampled training table's test window is not the un-sampled one from {first}; "
                         "a snapshot date lost all its rows: raise spark.negative_rate or spark.max_rows")


def _minmax(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(reference)), float(np.max(reference))
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values, dtype=float)


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
