"""The model's numbers for a matrix: calibrated probabilities, raw log-odds and exact SHAP values.

Every call goes through :func:`propensity.core.native.predict` (LightGBM entered by
one thread at a time) with :func:`threads_for` threads: one for a few rows (a
service's lead: no OpenMP start-up), every core for a batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from propensity.core.native import predict
from propensity.scoring.calibration import Calibrator
from propensity.scoring.shap_table import shap_table

__all__ = ["PARALLEL_MIN_ROWS", "contributions", "probabilities", "rank_keys", "threads_for"]

PARALLEL_MIN_ROWS = 4_096  # below this, one LightGBM thread beats starting the others


def threads_for(rows: int) -> int:
    """LightGBM threads for a call on ``rows`` rows: one for a few (a service's lead), else every core (0)."""
    return 1 if rows < PARALLEL_MIN_ROWS else 0


def probabilities(booster: Any, calibrator: Calibrator, x: Any) -> np.ndarray:
    """Calibrated probabilities of the rows of ``x``."""
    return calibrator(predict(booster, x, threads=threads_for(len(x))))


def rank_keys(booster: Any, calibrator: Calibrator, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated probability, raw log-odds) per row, from ``predict``: the capacity ranking's keys."""
    if len(x) == 0:
        return np.empty(0), np.empty(0)
    raw = predict(booster, x, threads=threads_for(len(x)), raw_score=True).astype(np.float64)
    return calibrator(1.0 / (1.0 + np.exp(-raw))), raw


def contributions(booster: Any, x: Any, n_features: int) -> np.ndarray:
    """Exact TreeSHAP: per row, each feature's log-odds, then the expected value.

    A shallow LightGBM model's values come from its per-tree tables
    (:mod:`propensity.scoring.shap_table`: the same numbers, looked up); any other
    model's from one ``pred_contrib`` call, on every core for big batches. No rows
    give an empty ``(0, n_features + 1)`` array (``pred_contrib`` fails on no rows).
    """
    if len(x) == 0:
        return np.empty((0, n_features + 1))
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == n_features and x.dtype.kind == "f":
        table = shap_table(booster)
        if table is not None and table.n_features == n_features:
            return table.contributions(x)
    return predict(booster, x, threads=threads_for(len(x)), pred_contrib=True)
