"""Choose, don't assume: LightGBM, regularised logistic regression or the points, by the validation windows.

:func:`fit_families` fits each family on every validation window's training rows
(:mod:`.split`) and predicts the window: LightGBM early-stopped on the window
(searched on the newest one when ``tuning.crm_budget_seconds`` is set), the
logistic family and the points family of :mod:`.families`. :func:`judge` scores
each family on all its windows' predictions together, after calibration: the
lower cross-validated log loss of an isotonic and a sigmoid map fitted on those
predictions (:func:`~.calibrate.choose_calibrator`), ROC AUC as the tie-break.

LightGBM is only eligible when it is not **degenerate**: its newest booster keeps
more than ``MIN_TREES`` trees, its scores on the newest window spread over more than
``MIN_SPREAD`` of that window's base rate (between the 10th and 90th percentile),
and its validation AUC is above every simple family's. Below
``MIN_LIGHTGBM_POSITIVES`` training conversions it is not fitted at all: a model
fitted to that little noise is no better than the points sales agreed on. The
winner among the eligible families ships; ``model_family`` (or ``--model-family``)
forces one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from propensity.config import ProjectConfig
from propensity.core.native import predict
from propensity.features.spec import FeatureDef
from propensity.modeling.boosting import fit_booster, lgb_params, tuned_booster
from propensity.modeling.calibrate import choose_calibrator
from propensity.modeling.families import fit_logistic, fit_points
from propensity.modeling.split import TimeSplit
from propensity.scoring.additive import AdditiveBooster

__all__ = ["FAMILIES", "MIN_LIGHTGBM_POSITIVES", "MIN_SPREAD", "MIN_TREES", "Fitted", "choose", "degenerate",
           "fit_families", "judge", "judged"]

FAMILIES = ("lightgbm", "logistic", "points")
MIN_LIGHTGBM_POSITIVES = 50  # training conversions below which LightGBM is not fitted (see the module docstring)
MIN_TREES = 5
MIN_SPREAD = 0.1


@dataclass
class Fitted:
    """One family fitted on every validation window: its models and raw predictions, oldest window first."""

    family: str
    models: list
    valid_raw: list[np.ndarray]
    info: dict = field(default_factory=dict)

    @property
    def shipped(self):
        """The model trained before the newest window: the one that would ship."""
        return self.models[-1]


def fit_families(x: pd.DataFrame, xn: np.ndarray, y: np.ndarray, split: TimeSplit, spec: list[FeatureDef],
                 categories: dict[str, list[str]], project: ProjectConfig, families: tuple[str, ...],
                 say: Callable[[str], None]) -> dict[str, Fitted]:
    """Each family in ``families`` fitted on each window's training rows; see the module docstring."""
    cfg = project.training
    out: dict[str, Fitted] = {}
    categorical = [f.name for f in spec if f.kind == "categorical"]
    last = len(split.windows) - 1
    if "lightgbm" in families:
        say(f"training LightGBM on {len(split.windows)} validation window(s), {int(split.train.sum()):,} rows last")
        models, preds, info = [], [], {"budget_s": float(cfg.tuning.crm_budget_seconds)}
        params = lgb_params(cfg.model, spec)
        for k, (train, valid) in enumerate(zip(split.trains, split.windows, strict=True)):
            if k == last and cfg.tuning.crm_budget_seconds > 0:
                booster, params, info = tuned_booster(x, y, train, valid, cfg, spec, say)
            else:
                booster = fit_booster(x[train], y[train], x[valid], y[valid], cfg.model, spec)
            models.append(booster)
            preds.append(predict(booster, x[valid]))
        info["params"] = params
        out["lightgbm"] = Fitted("lightgbm", models, preds, info)
    if "logistic" in families:
        say("fitting regularised logistic regression on the same windows")
        models = [AdditiveBooster(fit_logistic(xn, y, spec, categories, train, [valid], seed=cfg.model.seed),
                                  categories, categorical)
                  for train, valid in zip(split.trains, split.windows, strict=True)]
        out["logistic"] = Fitted("logistic", models, [m.predict(xn[v]) for m, v in zip(models, split.windows,
                                                                                       strict=True)],
                                 {"C": models[-1].model.meta.get("C")})
    if "points" in families:
        models = [AdditiveBooster(fit_points(xn, y, spec, project.icp, project.engagement, train), categories,
                                  categorical) for train in split.trains]
        out["points"] = Fitted("points", models, [m.predict(xn[v]) for m, v in zip(models, split.windows,
                                                                                   strict=True)])
    return out


def judge(fitted: dict[str, Fitted], y: np.ndarray, split: TimeSplit, seed: int = 0,
          weights: np.ndarray | None = None) -> dict[str, dict]:
    """Per family: calibrated validation log loss and AUC over all windows, and whether LightGBM is degenerate.

    ``weights``: rows per row of a down-sampled table (see ``calibrate.fit_calibration``); None: one each.
    """
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    y_valid = np.concatenate([y[v] for v in split.windows])
    w_valid = None if weights is None else np.concatenate([w[v] for v in split.windows])
    out = {name: judged(np.concatenate(f.valid_raw), y_valid, seed, w_valid) for name, f in fitted.items()}
    if "lightgbm" in out:
        lgbm = fitted["lightgbm"]
        trees = int(lgbm.shipped.best_iteration or lgbm.shipped.num_trees())
        simple = [out[n]["auc"] for n in out if n != "lightgbm"]
        newest = split.windows[-1]
        out["lightgbm"].update(degenerate(trees, lgbm.valid_raw[-1], float(np.average(y[newest], weights=w[newest])),
                                          out["lightgbm"]["auc"], simple))
    return out


def judged(raw: np.ndarray, y: np.ndarray, seed: int = 0, weights: np.ndarray | None = None) -> dict:
    """One family's validation predictions judged: calibrated (cross-validated) log loss and ROC AUC."""
    _, scores = choose_calibrator(raw, y, seed, weights)
    loss = min((s["log_loss"] for s in scores.values()), default=float("nan"))
    auc = float(roc_auc_score(y, raw, sample_weight=weights)) if 0 < y.sum() < len(y) else float("nan")
    return {"log_loss": float(loss), "auc": auc, "eligible": True, "why": ""}


def degenerate(trees: int, newest_raw: np.ndarray, base_rate: float, auc: float, simple_aucs: list[float]) -> dict:
    """Whether a LightGBM model is degenerate (module docstring): ``{"eligible", "why", "trees", "spread"}``.

    ``newest_raw``: its raw predictions on the newest validation rows, whose base rate
    is ``base_rate``; ``auc``: its validation AUC; ``simple_aucs``: the simple families'.
    """
    newest = np.asarray(newest_raw, dtype=float)
    newest = newest[~np.isnan(newest)]
    why = []
    spread = float(np.quantile(newest, 0.9) - np.quantile(newest, 0.1)) if len(newest) else 0.0
    if trees <= MIN_TREES:
        why.append(f"early stopping kept {trees} tree(s)")
    if base_rate > 0 and spread < MIN_SPREAD * base_rate:
        why.append(f"its scores barely vary (10th-90th percentile {spread:.4f} against a base rate of "
                   f"{base_rate:.4f})")
    simple = [a for a in simple_aucs if not np.isnan(a)]
    if simple and not auc > max(simple):
        why.append(f"validation AUC {auc:.3f} not above the best simple family's {max(simple):.3f}")
    return {"eligible": not why, "why": "; ".join(why), "trees": trees, "spread": spread}


def choose(judged: dict[str, dict], forced: str = "auto") -> tuple[str, str]:
    """The family that ships and one sentence saying why (with the margin over the runner-up)."""
    if forced != "auto":
        if forced not in judged:
            raise ValueError(f"model family {forced!r} was not fitted (available: {sorted(judged)})")
        return forced, f"{forced} forced by model_family"
    eligible = {n: j for n, j in judged.items() if j["eligible"] and not np.isnan(j["log_loss"])}
    if not eligible:
        eligible = {n: j for n, j in judged.items() if n != "lightgbm"}
    order = sorted(eligible, key=lambda n: (round(eligible[n]["log_loss"], 6), -np.nan_to_num(eligible[n]["auc"])))
    best = order[0]
    text = f"{best} has the lowest calibrated validation log loss ({eligible[best]['log_loss']:.4f}"
    if len(order) > 1:
        second = order[1]
        text += f"; {second} {eligible[second]['log_loss']:.4f}"
    text += ")"
    if "lightgbm" in judged and not judged["lightgbm"]["eligible"]:
        text += f"; LightGBM set aside: {judged['lightgbm']['why']}"
    return best, text
