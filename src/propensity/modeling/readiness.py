"""Say when the model is not ready: calibration checks on the newest windows and a readiness verdict.

:func:`calibration_checks` looks at the test window (never used for a choice):

- **ECE** with a 95 % bootstrap interval (``BOOTSTRAP`` resamples of the rows);
- **calibration in the large**: the observed conversion rate against the rate the
  model predicts, with the interval the predictions themselves imply (the sum of
  independent Bernoulli(p) outcomes: mean ± 1.96 · sqrt(sum p(1-p)) / n); outside
  it, the world has moved since the newest labelled window;
- **prior shift**: the base rate of the shipped model's training rows against the
  newest validation window's, on which the calibrator was fitted (so the intercept
  is corrected there), reported from what to what when it moved by more than
  ``SHIFT`` (relative).

:func:`verdict` gives **ready**, **use with care** or **not ready**, with every
reason (``THRESHOLDS`` holds the numbers):

- not ready: fewer than ``not_ready_train`` training conversions (a model of a few
  dozen outcomes is fitted to noise), fewer than ``not_ready_test`` test conversions
  (nothing can be judged), a test AUC whose bootstrap interval reaches 0.5, or a
  predicted rate off the observed one by more than ``off_not_ready`` (relative);
- use with care: fewer than ``care_train`` training or ``care_test`` test conversions,
  a test AUC below the best simple family's by more than ``care_margin`` at the
  interval's upper end, ECE above ``care_ece``, the observed test rate outside the
  predicted interval, or a leakage flag standing;
- ready otherwise.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from propensity.modeling.metrics import expected_calibration_error

__all__ = ["BOOTSTRAP", "SHIFT", "THRESHOLDS", "auc_margin", "calibration_checks", "verdict"]

BOOTSTRAP = 200
SHIFT = 0.2
THRESHOLDS = {"not_ready_train": 30, "not_ready_test": 10, "off_not_ready": 0.5, "care_train": 200,
              "care_test": 30, "care_margin": 0.005, "care_ece": 0.05}


def _resamples(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP, n))


def calibration_checks(y_test: np.ndarray, p_test: np.ndarray, train_rate: float, newest_rate: float,
                       seed: int = 0) -> dict:
    """The test window's ECE (with interval), calibration in the large and the prior shift (module docstring)."""
    y = np.asarray(y_test, dtype=int)
    p = np.asarray(p_test, dtype=float)
    n = len(y)
    eces = [expected_calibration_error(y[i], p[i]) for i in _resamples(n, seed)] if n else [np.nan]
    predicted, observed = float(p.mean()) if n else float("nan"), float(y.mean()) if n else float("nan")
    half = 1.96 * float(np.sqrt(np.sum(p * (1 - p)))) / max(n, 1)
    moved = train_rate > 0 and abs(newest_rate / train_rate - 1) > SHIFT
    return {
        "ece": expected_calibration_error(y, p) if n else float("nan"),
        "ece_interval": [float(np.quantile(eces, 0.025)), float(np.quantile(eces, 0.975))],
        "predicted_rate": predicted, "observed_rate": observed,
        "predicted_interval": [max(predicted - half, 0.0), min(predicted + half, 1.0)],
        "observed_outside": bool(n) and not (predicted - half <= observed <= predicted + half),
        "prior_shift": {"train_rate": float(train_rate), "newest_rate": float(newest_rate), "moved": bool(moved)},
    }


def auc_margin(y: np.ndarray, p_model: np.ndarray, p_other: np.ndarray, seed: int = 0) -> dict:
    """Test AUC of the model, its margin over another model, and 95 % bootstrap intervals of both."""
    y = np.asarray(y, dtype=int)
    aucs, margins = [], []
    for i in _resamples(len(y), seed):
        if 0 < y[i].sum() < len(i):
            a = roc_auc_score(y[i], p_model[i])
            aucs.append(a)
            margins.append(a - roc_auc_score(y[i], p_other[i]))
    if not aucs:
        return {"auc": float("nan"), "auc_interval": [float("nan")] * 2, "margin": float("nan"),
                "margin_interval": [float("nan")] * 2}
    auc = float(roc_auc_score(y, p_model))
    return {"auc": auc, "auc_interval": [float(np.quantile(aucs, 0.025)), float(np.quantile(aucs, 0.975))],
            "margin": auc - float(roc_auc_score(y, p_other)),
            "margin_interval": [float(np.quantile(margins, 0.025)), float(np.quantile(margins, 0.975))]}


def verdict(train_positives: int, test_positives: int, auc: dict, checks: dict, flags: int = 0,
            other: str = "the best simple family") -> dict:
    """``{"verdict": ready | use with care | not ready, "reasons": [...]}`` (module docstring)."""
    t = THRESHOLDS
    no, care = [], []
    if train_positives < t["not_ready_train"]:
        no.append(f"only {train_positives} training conversions (fewer than {t['not_ready_train']})")
    elif train_positives < t["care_train"]:
        care.append(f"{train_positives} training conversions (fewer than {t['care_train']})")
    if test_positives < t["not_ready_test"]:
        no.append(f"only {test_positives} test conversions: the test figures cannot be judged")
    elif test_positives < t["care_test"]:
        care.append(f"{test_positives} test conversions (fewer than {t['care_test']}): wide intervals")
    lo = auc.get("auc_interval", [np.nan])[0]
    if not np.isnan(lo) and lo <= 0.5:
        no.append(f"test ROC AUC {auc['auc']:.3f} with an interval reaching 0.5 ({lo:.3f})")
    hi_margin = auc.get("margin_interval", [np.nan, np.nan])[1]
    if not np.isnan(hi_margin) and hi_margin < -t["care_margin"]:
        care.append(f"test ROC AUC below {other}'s by {-auc['margin']:.3f} (interval up to {hi_margin:+.3f})")
    observed, predicted = checks.get("observed_rate", np.nan), checks.get("predicted_rate", np.nan)
    if observed > 0 and abs(predicted / observed - 1) > t["off_not_ready"]:
        no.append(f"predicts a {predicted:.2%} conversion rate where {observed:.2%} was observed")
    elif checks.get("observed_outside"):
        lo_p, hi_p = checks["predicted_interval"]
        care.append(f"observed test rate {observed:.2%} outside the predicted {lo_p:.2%}-{hi_p:.2%}")
    if checks.get("ece", 0) > t["care_ece"]:
        care.append(f"calibration error {checks['ece']:.3f} (above {t['care_ece']})")
    if flags:
        care.append(f"{flags} leakage flag(s) standing (accept a checked column in training/*.yaml audit.accept)")
    word = "not ready" if no else "use with care" if care else "ready"
    return {"verdict": word, "reasons": no + care}
