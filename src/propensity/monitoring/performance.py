"""How a scoring run did: outcomes once its horizon has elapsed, and an estimate before that.

Outcomes (:func:`run_outcomes`) follow the training label exactly: a lead scored as of
``T`` converted when it has a ``closed_won`` opportunity with ``T <= closed_at < T +
horizon``; it reached an opportunity when one was created in ``[T, T + horizon)``. A run
has *matured* when ``T + horizon <= export.end()``: before that, a lead without a win
may still win, so its outcome is unknown and the run gets only an estimate.

Realized metrics of a matured run: ROC AUC, PR AUC, log loss and ECE
(:func:`propensity.modeling.metrics.classification_metrics`, the numbers of the model
card), observed against predicted conversion per probability decile, and the funnel per
tier (leads, opportunities, won, conversion rate).

Estimate (:func:`expected_auc`): confidence-based performance estimation, as NannyML's
CBPE does for ROC AUC: if the calibrated probabilities are right, a lead with
probability ``p`` is a positive with probability ``p``, so at each threshold the
expected true positives are the sum of ``p`` above it and the expected false positives
the sum of ``1 - p``; the expected ROC curve gives the expected AUC. It is only as good
as the calibration (and says nothing when the link between features and outcome
changed, which is why matured runs show how close past estimates came).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.data.export import CrmExport
from propensity.modeling.metrics import classification_metrics

__all__ = ["TIERS", "auc_standard_error", "decile_table", "expected_auc", "funnel", "is_matured", "realized",
           "run_outcomes"]

TIERS = ("SQL", "MQL", "nurture")


def is_matured(as_of: pd.Timestamp, horizon_days: int, end: pd.Timestamp) -> bool:
    return bool(as_of + pd.Timedelta(days=horizon_days) <= end)


def run_outcomes(export: CrmExport, lead_ids: pd.Series, as_of: pd.Timestamp, horizon_days: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(opportunity, won) per lead of a run as of ``as_of``: 0/1 arrays in the order of ``lead_ids``."""
    opps = export.opportunities
    end = as_of + pd.Timedelta(days=horizon_days)
    created = opps["created_at"]
    closed = opps["closed_at"]
    made = opps.loc[(created >= as_of) & (created < end), "lead_id"].astype(str)
    won = opps.loc[(opps["stage"] == "closed_won") & closed.notna() & (closed >= as_of) & (closed < end),
                   "lead_id"].astype(str)
    ids = lead_ids.astype(str)
    return ids.isin(set(made)).to_numpy(dtype=int), ids.isin(set(won)).to_numpy(dtype=int)


def realized(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC (with its Hanley-McNeil standard error), PR AUC, log loss, ECE, conversions observed and expected."""
    m = classification_metrics(y, p)
    return {"auc": m["roc_auc"], "auc_se": auc_standard_error(m["roc_auc"], int(m["positives"]),
                                                            len(y) - int(m["positives"])),
            "pr_auc": m["pr_auc"], "log_loss": m["log_loss"], "ece": m["ece"],
            "base_rate": m["base_rate"], "predicted_rate": float(np.mean(p)) if len(p) else float("nan"),
            "positives": int(m["positives"]), "expected_positives": float(np.sum(p))}


def calibration_in_the_large(y: np.ndarray, p: np.ndarray) -> dict:
    """Leads, conversions observed and expected (the sum of ``p``), the relative gap and its z-score.

    ``z`` counts the standard deviations (``sqrt(sum p (1 - p))``, the spread of the
    conversions if the probabilities are right) between observed and expected.
    """
    expected = float(np.sum(p))
    sd = float(np.sqrt(np.sum(p * (1 - p))))
    observed = int(np.sum(y))
    return {"leads": len(y), "observed": observed, "expected": expected,
            "off": observed / expected - 1 if expected > 0 else 0.0,
            "z": (observed - expected) / sd if sd > 0 else 0.0}


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of a ROC AUC from its positives and negatives."""
    if np.isnan(auc) or positives == 0 or negatives == 0:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    return float(np.sqrt(max(var, 0.0)))


def decile_table(p: np.ndarray, y: np.ndarray | None = None, bins: int = 10) -> list[dict]:
    """Per probability decile (lowest first): rows, mean predicted, and observed conversion when ``y`` is known."""
    order = np.argsort(np.asarray(p, dtype="float64"), kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, bins), start=1):
        if not len(idx):
            continue
        row = {"decile": i, "rows": len(idx), "predicted": float(np.mean(p[idx]))}
        if y is not None:
            row["observed"] = float(np.mean(y[idx]))
        rows.append(row)
    return rows


def funnel(tiers: np.ndarray, opportunity: np.ndarray | None, won: np.ndarray | None) -> dict[str, dict]:
    """Per tier: leads, opportunities, won and conversion rate (won / leads); outcomes None before maturity."""
    out = {}
    for t in TIERS:
        pick = np.asarray(tiers) == t
        n = int(pick.sum())
        row: dict = {"leads": n}
        if won is not None and opportunity is not None:
            row["opportunities"] = int(opportunity[pick].sum())
            row["won"] = int(won[pick].sum())
            row["conversion_rate"] = row["won"] / n if n else None
        else:
            row["opportunities"] = row["won"] = row["conversion_rate"] = None
        out[t] = row
    return out


def expected_auc(p: np.ndarray) -> float:
    """The ROC AUC expected if the calibrated probabilities ``p`` are right (CBPE); ties share a threshold."""
    p = np.clip(np.asarray(p, dtype="float64"), 0.0, 1.0)
    pos, neg = p.sum(), (1 - p).sum()
    if len(p) < 2 or pos <= 0 or neg <= 0:
        return float("nan")
    values, inverse = np.unique(-p, return_inverse=True)  # highest probability first
    tp = np.bincount(inverse, weights=p, minlength=len(values))
    fp = np.bincount(inverse, weights=1 - p, minlength=len(values))
    tpr = np.concatenate([[0.0], np.cumsum(tp) / pos])
    fpr = np.concatenate([[0.0], np.cumsum(fp) / neg])
    return float(np.trapezoid(tpr, fpr))
