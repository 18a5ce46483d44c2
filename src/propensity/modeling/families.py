"""The simple model families, fitted as additive models: regularised logistic regression and mapped points.

Both return a :class:`~propensity.scoring.additive.AdditiveModel` over the same
model matrix LightGBM sees (floats: numbers, category codes, NaN for missing), so
the family that wins on validation ships in the same bundle and gets the same
reasons, fit and engagement scores and grades.

Logistic regression (:func:`fit_logistic`), built for small, messy lead data:

- numbers: clipped to their 0.5 % and 99.5 % training quantiles (an outlier cannot
  dominate), ``log1p`` for skewed non-negative ones (counts, days: at least 10 at
  the top quantile), standardised, median for missing plus a missing flag; the
  fitted line becomes a numeric term through ``KNOTS`` quantile knots of the
  transformed range (flat outside the training range);
- categories: levels seen in at least ``min_level_rows`` training rows get their
  own weight; rarer ones share one ``other`` weight (a level with 500 values on a
  few thousand rows is never split raw); missing is a level of its own;
- L2 penalty, its strength ``C`` chosen on the validation rows by log loss;
- on more than ``MAX_FIT_ROWS`` training rows, every conversion and a seeded sample
  of the other rows, weighted back to their share (snapshots of one lead repeat
  each other, and Newton steps cost rows x columns squared).

Points (:func:`fit_points`): the points of ``features/*.yaml`` that the baseline
gives (:func:`~propensity.modeling.baseline.baseline_points`), mapped to log-odds by
one logistic regression ``a * points + b`` on the training rows; every criterion's
and signal's points become its term, so the reasons are the points sales agreed on.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names
from propensity.features.spec import FeatureDef
from propensity.scoring.additive import AdditiveModel, Term

__all__ = ["C_GRID", "KNOTS", "fit_logistic", "fit_points"]

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
KNOTS = 24  # knots of a transformed number's term: the log1p curve is exact at each, linear between
MIN_LEVEL_ROWS = 30
MAX_FIT_ROWS = 60_000


def _numeric_design(v: np.ndarray, train: np.ndarray) -> dict | None:
    """How one numeric column enters the regression: clip range, transform, centre and scale; None if constant."""
    known = v[train & ~np.isnan(v)]
    if len(known) < 2:
        return None
    lo, hi = (float(q) for q in np.quantile(known, [0.005, 0.995]))
    if hi <= lo:
        lo, hi = float(known.min()), float(known.max())
        if hi <= lo:
            return None
    log = lo >= 0 and hi >= 10
    t = np.log1p(np.clip(known, lo, hi)) if log else np.clip(known, lo, hi)
    sd = float(t.std())
    if sd == 0:
        return None
    return {"lo": lo, "hi": hi, "log": log, "mu": float(t.mean()), "sd": sd, "median": float(np.median(known)),
            "has_missing": bool(np.isnan(v[train]).any())}


def _transform(v: np.ndarray, d: dict) -> np.ndarray:
    c = np.clip(v, d["lo"], d["hi"])
    t = np.log1p(c) if d["log"] else c
    return (t - d["mu"]) / d["sd"]


def _design(x: np.ndarray, spec: list[FeatureDef], train: np.ndarray, min_level_rows: int):
    """The columns of the regression and, per model-matrix column, how to turn its weights into a term."""
    cols: list[np.ndarray] = []
    plan: list[dict] = []
    for j, f in enumerate(spec):
        v = x[:, j]
        if f.kind == "categorical":
            codes = v[train]
            known = codes[~np.isnan(codes)].astype(np.int64)
            counts = np.bincount(known) if len(known) else np.zeros(0, dtype=np.int64)
            kept = [int(c) for c in np.flatnonzero(counts >= min_level_rows)]
            rare = len(known) > int(counts[kept].sum())
            entry = {"kind": "categorical", "levels": {}, "other": None, "missing": None}
            for c in kept:
                entry["levels"][c] = len(cols)
                cols.append((v == c).astype(np.float64))
            if rare:
                entry["other"] = len(cols)
                cols.append((~np.isnan(v) & ~np.isin(v, kept)).astype(np.float64))
            if np.isnan(codes).any():
                entry["missing"] = len(cols)
                cols.append(np.isnan(v).astype(np.float64))
            plan.append(entry)
            continue
        d = _numeric_design(v, train)
        if d is None:
            entry = {"kind": "missing_only", "missing": None}
            if np.isnan(v[train]).any() and not np.isnan(v[train]).all():
                entry["missing"] = len(cols)
                cols.append(np.isnan(v).astype(np.float64))
            plan.append(entry)
            continue
        entry = {"kind": "numeric", "design": d, "value": len(cols), "missing": None}
        cols.append(np.where(np.isnan(v), _transform(np.array([d["median"]]), d)[0], _transform(v, d)))
        if d["has_missing"]:
            entry["missing"] = len(cols)
            cols.append(np.isnan(v).astype(np.float64))
        plan.append(entry)
    design = np.column_stack(cols) if cols else np.zeros((len(x), 0))
    return design, plan


def _terms(plan: list[dict], coef: np.ndarray, spec: list[FeatureDef], categories: dict[str, list[str]]) -> list[Term]:
    terms = []
    for f, entry in zip(spec, plan, strict=True):
        miss = float(coef[entry["missing"]]) if entry.get("missing") is not None else 0.0
        if entry["kind"] == "categorical":
            names_ = categories.get(f.name, [])
            other = float(coef[entry["other"]]) if entry["other"] is not None else 0.0
            levels = {names_[c]: float(coef[k]) for c, k in entry["levels"].items() if c < len(names_)}
            terms.append(Term("categorical", levels=levels, other=other, missing=miss))
        elif entry["kind"] == "numeric":
            d, w = entry["design"], float(coef[entry["value"]])
            if d["log"]:
                knots = np.unique(np.expm1(np.linspace(np.log1p(d["lo"]), np.log1p(d["hi"]), KNOTS)))
            else:
                knots = np.array([d["lo"], d["hi"]])
            y = w * _transform(knots, d)
            at_median = w * float(_transform(np.array([d["median"]]), d)[0])
            terms.append(Term("numeric", x=knots.tolist(), y=y.tolist(), missing=at_median + miss))
        else:
            terms.append(Term("zero", missing=miss))
    return terms


def _with_means(model: AdditiveModel, x: np.ndarray, categories: dict[str, list[str]], rows: np.ndarray
                ) -> AdditiveModel:
    """``model`` with each term's mean over ``rows`` (the expected value's share; see scoring.additive)."""
    values = model.term_values(x[rows], categories)
    terms = [Term(**{**t.__dict__, "mean": float(values[:, j].mean())}) for j, t in enumerate(model.terms)]
    return AdditiveModel(model.family, model.intercept, terms, model.features, model.meta)


def fit_logistic(x: np.ndarray, y: np.ndarray, spec: list[FeatureDef], categories: dict[str, list[str]],
                 train: np.ndarray, valid: list[np.ndarray], min_level_rows: int = MIN_LEVEL_ROWS,
                 seed: int = 0, c_value: float | None = None) -> AdditiveModel:
    """Regularised logistic regression on the ``train`` rows, ``C`` chosen by mean log loss over ``valid`` windows.

    ``x``: the model matrix as floats (category codes, NaN for missing), ``train`` and
    each of ``valid``: boolean row masks (``c_value``: this ``C``, no choice).
    Returns the model as an additive model.
    """
    design, plan = _design(x, spec, train, min_level_rows)
    rows, weight = _fit_rows(y, train, seed)
    scores = {}
    fits = {}
    for c in C_GRID if c_value is None else (c_value,):
        lr = _logistic(design[rows], y[rows], c, seed, weight)
        fits[c] = lr
        losses = [log_loss(y[v], np.clip(lr.predict_proba(design[v])[:, 1], 1e-7, 1 - 1e-7), labels=[0, 1])
                  for v in valid if v.any()]
        scores[c] = float(np.mean(losses)) if losses else 0.0
    best = min(fits, key=lambda c: (round(scores[c], 6), -c))
    lr = fits[best]
    terms = _terms(plan, lr.coef_[0], spec, categories)
    kept = {f.name: len(e["levels"]) for f, e in zip(spec, plan, strict=True) if e["kind"] == "categorical"}
    model = AdditiveModel("logistic", float(lr.intercept_[0]), terms, [f.name for f in spec],
                          {"C": best, "valid_log_loss_by_C": scores, "levels_kept": kept,
                           "min_level_rows": min_level_rows})
    return _with_means(model, x, categories, train)


def _fit_rows(y: np.ndarray, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The training rows a regression fits on, and their weights (None: all rows, unweighted)."""
    idx = np.flatnonzero(train)
    if len(idx) <= MAX_FIT_ROWS:
        return idx, None
    pos, neg = idx[y[idx] == 1], idx[y[idx] == 0]
    take = max(MAX_FIT_ROWS - len(pos), min(len(neg), MAX_FIT_ROWS // 2))
    if take >= len(neg):
        return idx, None
    sample = np.sort(np.random.default_rng(seed).choice(neg, size=take, replace=False))
    rows = np.sort(np.concatenate([pos, sample]))
    weight = np.where(y[rows] == 1, 1.0, len(neg) / take)
    return rows, weight


def _logistic(x: np.ndarray, y: np.ndarray, c: float, seed: int, weight: np.ndarray | None = None
              ) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a convergence warning at the loosest C changes nothing we report
        return LogisticRegression(C=c, solver="newton-cholesky", max_iter=200, random_state=seed).fit(
            x, y, sample_weight=weight)


def fit_points(x: np.ndarray, y: np.ndarray, spec: list[FeatureDef], icp: IcpConfig, engagement: EngagementConfig,
               train: np.ndarray) -> AdditiveModel:
    """The baseline's points as an additive model: each criterion's and signal's points, mapped to log-odds.

    The map ``a * points + b`` is fitted on the ``train`` rows (nearly unpenalised
    logistic regression on the total). Engagement points are capped at ``max_points``
    as the baseline caps them; beyond the largest training count a signal's term is flat.
    """
    pos = {f.name: j for j, f in enumerate(spec)}
    unit: dict[str, tuple[float, float]] = {}  # feature -> (points per unit, cap in points; inf: none)
    for c in icp.criteria:
        if c.kind != "value" and c.points:
            unit[names.fit_match(c.name)] = (float(c.points), float("inf"))
    longest = max(engagement.windows_days)
    for s in engagement.signals:
        if s.points:
            unit[names.events_in_window(s.name, longest)] = (float(s.points), float(s.max_points or np.inf))
    total = np.zeros(len(x))
    for name, (per, cap) in unit.items():
        total += np.clip(per * np.nan_to_num(x[:, pos[name]], nan=0.0), -cap, cap)
    if np.ptp(total[train]) > 0:
        lr = _logistic(total[train].reshape(-1, 1), y[train], 1e6, 0)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    else:
        rate = float(np.clip(y[train].mean(), 1e-6, 1 - 1e-6))
        a, b = 0.0, float(np.log(rate / (1 - rate)))
    terms = []
    for j, f in enumerate(spec):
        if f.name not in unit:
            terms.append(Term("zero"))
            continue
        per, cap = unit[f.name]
        top = float(np.nanmax(x[train, j])) if np.isfinite(x[train, j]).any() else 1.0
        end = min(top, cap / abs(per)) if np.isfinite(cap) else top
        end = max(end, 1.0)
        terms.append(Term("numeric", x=[0.0, end], y=[0.0, a * float(np.clip(per * end, -cap, cap))], missing=0.0))
    model = AdditiveModel("points", b, terms, [f.name for f in spec], {"a": a, "b": b})
    return _with_means(model, x, {}, train)
