"""Evaluation metrics for ranked, calibrated lead scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = ["classification_metrics", "expected_calibration_error", "lift_table"]


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, ECE, and lift / conversion rate in the top decile."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    base = float(y.mean())
    out = {"rows": float(len(y)), "positives": float(y.sum()), "base_rate": base}
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, p))
        out["pr_auc"] = float(average_precision_score(y, p))
    else:
        out["roc_auc"] = out["pr_auc"] = float("nan")
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    out["log_loss"] = float(log_loss(y, pc, labels=[0, 1]))
    out["brier"] = float(brier_score_loss(y, pc))
    out["ece"] = expected_calibration_error(y, p)
    top = _top_fraction(p, 0.1)
    out["top_decile_conversion"] = float(y[top].mean()) if top.any() else float("nan")
    out["top_decile_lift"] = out["top_decile_conversion"] / base if base > 0 else float("nan")
    return out


def _top_fraction(p: np.ndarray, frac: float) -> np.ndarray:
    k = max(1, int(round(len(p) * frac)))
    order = np.argsort(-p, kind="stable")
    mask = np.zeros(len(p), dtype=bool)
    mask[order[:k]] = True
    return mask


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate − mean predicted| over equal-count bins, weighted by bin size."""
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, bins)
    n = len(p)
    return float(sum(len(c) / n * abs(y[c].mean() - p[c].mean()) for c in chunks if len(c)))


def lift_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per score decile (best first): rows, conversions, conversion rate, lift, cumulative gain."""
    y = np.asarray(y, dtype=int)
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    total_pos = max(int(y.sum()), 1)
    base = y.mean() if len(y) else 0.0
    rows, cum = [], 0
    for i, idx in enumerate(np.array_split(order, bins), start=1):
        conv = int(y[idx].sum())
        cum += conv
        rate = conv / len(idx) if len(idx) else 0.0
        rows.append({"decile": i, "rows": len(idx), "conversions": conv, "conversion_rate": rate,
                     "lift": rate / base if base else float("nan"), "cumulative_gain": cum / total_pos})
    return rows
