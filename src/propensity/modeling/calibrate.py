"""Calibration chosen by validation: isotonic or sigmoid, whichever predicts held-out rows better.

Both maps are fitted on out-of-fold (or validation-window) predictions. Judging
them on the rows they were fitted on would always favour isotonic, so each is
scored by cross-validation over those predictions (log loss, Brier as the
tie-breaker), and the winner is refitted on all of them.

Isotonic here is *centred* isotonic regression (Oron & Flournoy, 2017): the
pool-adjacent-violators fit, then one knot per pooled block at the block's mean
raw probability, joined by straight lines. Plain isotonic regression is a step
function: whole ranges of raw scores land on one probability, which ties leads
the model ranks apart (a capacity tier cannot pick N of them, and a lead on the
average lead's step gets no reasons at all). The centred version keeps the same
block levels, is strictly increasing between the outer knots, so the model's
ranking survives calibration, and is typically as well calibrated or better.

The choice prefers the simpler map: isotonic ships only when its cross-validated
log loss beats sigmoid's by more than one standard error of the per-row difference
(the "one-standard-error rule" of model selection). Isotonic's outer blocks can sit
at 0 or 1 on a few hundred rows; when the next window's conversion rate moves, such
a plateau costs far more log loss than the small edge it won in-window. On the bank
table in time order (train rows at 6-11 % conversion, test rows at 31 %), isotonic
won in-window cross-validation by 0.0005 and lost on the test rows by 0.41
(1.034 against 0.627); the rule picks sigmoid there.

What scikit-learn does and what is done here: the PAV fit is scikit-learn's
``IsotonicRegression``. Its own map (``predict``) interpolates through both ends of
every block, so it is flat across a block; centred isotonic regression is not in
scikit-learn, and deriving its knots from the fitted levels is one ``np.unique``
and one ``np.bincount``. ``python benchmarks/calibration.py`` (2026-12-05; 200,000
rows, 3.2% positive, fitted on one sample and judged on another): scikit-learn's
map gave the 200,000 distinct held-out scores 122 distinct probabilities, the
centred map 197,765 (the rest lie beyond its outer knots), at log loss 0.12884
against 0.12881 and calibration error 0.00106 against 0.00104.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from propensity.scoring.calibration import Calibrator

__all__ = ["centred_isotonic", "choose_calibrator", "fit_calibration"]


def fit_calibration(method: str, p_raw: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> Calibrator:
    """Fit ``isotonic``, ``sigmoid`` or ``none`` on raw probabilities and outcomes.

    ``weights``: rows per row (a negative kept from a sample at rate ``r`` stands for
    ``1 / r`` rows), so the map gives the rate of the table before sampling.
    """
    if method == "none" or y.sum() == 0 or y.sum() == len(y):
        return Calibrator("none")
    if method == "isotonic":
        x, level = centred_isotonic(p_raw, y, weights)
        return Calibrator("isotonic", x=x.tolist(), y=level.tolist())
    z = _logit(p_raw)
    lr = LogisticRegression(C=1e6).fit(z.reshape(-1, 1), y, sample_weight=weights)
    return Calibrator("sigmoid", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def centred_isotonic(p_raw: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Knots of centred isotonic regression: each PAV block's mean raw probability and its level.

    The levels are strictly increasing (PAV pools equal neighbours), and so are the
    knots' x, so ``np.interp`` through them is strictly increasing between the first
    and last knot and flat beyond them.
    """
    p_raw = np.asarray(p_raw, dtype=float)
    w = np.ones(len(p_raw)) if weights is None else np.asarray(weights, dtype=float)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p_raw, y, sample_weight=w
                                                                               ).predict(p_raw)
    level, block = np.unique(fitted, return_inverse=True)
    x = np.bincount(block, weights=p_raw * w, minlength=len(level)) / np.bincount(block, weights=w,
                                                                                 minlength=len(level))
    return x, level


def choose_calibrator(p_raw: np.ndarray, y: np.ndarray, seed: int = 0, weights: np.ndarray | None = None
                      ) -> tuple[Calibrator, dict]:
    """The better of isotonic and sigmoid by 5-fold log loss; returns it and the scores of each.

    ``weights`` (rows per row, see :func:`fit_calibration`) weigh both the fits and the losses.
    """
    keep = ~np.isnan(p_raw)
    p_raw, y = p_raw[keep], np.asarray(y)[keep].astype(int)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)[keep]
    n_splits = int(min(5, y.sum(), len(y) - y.sum()))
    if n_splits < 2:
        return Calibrator("none"), {}
    scores: dict[str, dict[str, float]] = {}
    row_loss = {}
    for method in ("isotonic", "sigmoid"):
        pred = np.empty(len(y))
        for tr, va in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(p_raw, y):
            pred[va] = fit_calibration(method, p_raw[tr], y[tr], w[tr])(p_raw[va])
        pc = np.clip(pred, 1e-6, 1 - 1e-6)
        row_loss[method] = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
        scores[method] = {"log_loss": float(np.average(row_loss[method], weights=w)),
                          "brier": float(brier_score_loss(y, pc, sample_weight=w))}
    # Sigmoid unless isotonic is better by more than one standard error of the difference: the two-parameter
    # map is the one that holds up when the next window's rate or mix moves (see the module docstring).
    diff = row_loss["isotonic"] - row_loss["sigmoid"]
    mean = float(np.average(diff, weights=w))
    if weights is None:
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    else:  # the standard error of a weighted mean
        se = float(np.sqrt(np.sum((w * (diff - mean)) ** 2)) / w.sum())
    method = "isotonic" if mean < -se else "sigmoid"
    scores[method]["chosen_by"] = "one-standard-error rule"
    return fit_calibration(method, p_raw, y, w if weights is not None else None), scores


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))
