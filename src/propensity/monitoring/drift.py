"""Drift of one scoring run against the reference profile: PSI and a distance suited to the feature's type.

Numbers: PSI over the reference's decile bins (plus a missing bin) and the Wasserstein
distance between the two quantile functions (100 mid-point quantiles each) divided by
the reference's standard deviation (at least 0.001), as Evidently's ``wasserstein``
test does. Categories (and numbers with few distinct values): PSI and the Jensen-Shannon
distance (natural logarithm, SciPy's ``jensenshannon``) over the union of values.
Shares of zero are taken as 0.0001 in PSI, as Evidently does, so a value seen on one
side only gives a large but finite PSI.

Few rows (the leads new since the last run: a few hundred) make those distances noisy:
at 300 rows and 20 categories the Jensen-Shannon distance of a sample from the
reference itself is about 0.09, at the 0.1 threshold. :func:`goodness_of_fit` tests
them instead (a chi-square test of the rows' counts against the reference's shares,
what Evidently does for small reference data), so the sample size is in the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

from propensity.config import MonitoringConfig
from propensity.monitoring.reference import MISSING, OTHER, QUANTILES, category_shares

__all__ = ["FeatureDrift", "feature_drift", "goodness_of_fit", "numeric_psi", "psi", "score_psi"]

EPS = 1e-4
MIN_EXPECTED = 5.0  # the chi-square test's rule of thumb: cells expecting fewer rows are pooled


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # "numeric" or "categorical"
    psi: float
    distance: float  # normalised Wasserstein (numeric) or Jensen-Shannon (categorical)
    method: str
    drifted: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "psi": self.psi, "distance": self.distance,
                "method": self.method, "drifted": self.drifted}


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(np.asarray(reference, dtype="float64"), EPS, None)
    c = np.clip(np.asarray(current, dtype="float64"), EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric_shares(profile: dict, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference, current) shares over the profile's bins and a missing bin."""
    present = values[~np.isnan(values)]
    n = max(len(values), 1)
    counts = np.bincount(np.searchsorted(profile["edges"], present, side="left"), minlength=len(profile["edges"]) + 1)
    cur = np.append(counts / n, 1 - len(present) / n)
    ref = np.append(np.asarray(profile["shares"]) * (1 - profile["missing"]), profile["missing"])
    return ref, cur


def numeric_psi(profile: dict, values: np.ndarray) -> float:
    """PSI of ``values`` against a numeric profile."""
    return psi(*_numeric_shares(profile, np.asarray(values, dtype="float64")))


def score_psi(profile: dict, probability: np.ndarray) -> float:
    """PSI of a run's probabilities against the reference's score profile."""
    return numeric_psi(profile, probability)


def _wasserstein(profile: dict, values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    if len(present) == 0 or not profile["quantiles"]:
        return float("nan")
    cur = np.quantile(present, (np.arange(QUANTILES) + 0.5) / QUANTILES)
    return float(np.mean(np.abs(cur - np.asarray(profile["quantiles"]))) / max(profile["std"], 0.001))


def _category_vectors(profile: dict, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ref = dict(profile["shares"])
    cur = category_shares(values)
    if OTHER in ref:  # values the reference pooled are pooled here too
        pooled = sum(v for k, v in cur.items() if k not in ref)
        cur = {k: v for k, v in cur.items() if k in ref}
        cur[OTHER] = cur.get(OTHER, 0.0) + pooled
    keys = sorted(set(ref) | set(cur), key=lambda k: (k == MISSING, k))
    return np.array([ref.get(k, 0.0) for k in keys]), np.array([cur.get(k, 0.0) for k in keys])


def feature_drift(name: str, profile: dict, values: pd.Series, cfg: MonitoringConfig) -> FeatureDrift:
    """The drift of one feature's run values against its reference profile."""
    if profile["kind"] == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        ref, cur = _numeric_shares(profile, numbers)
        distance = _wasserstein(profile, numbers)
        drifted = bool(distance >= cfg.numeric_distance) if not np.isnan(distance) else \
            bool(abs(ref[-1] - cur[-1]) >= cfg.numeric_distance)
        return FeatureDrift(name, "numeric", psi(ref, cur), distance, "wasserstein_normed", drifted)
    ref, cur = _category_vectors(profile, values)
    distance = float(jensenshannon(ref, cur)) if cur.sum() > 0 else float("nan")
    return FeatureDrift(name, "categorical", psi(ref, cur), distance, "jensen_shannon",
                        bool(distance >= cfg.categorical_distance))


def goodness_of_fit(profile: dict, values: pd.Series) -> float:
    """The chi-square p-value of ``values`` against the profile's shares (its bins and missing, or its categories).

    Cells the reference expects fewer than :data:`MIN_EXPECTED` of the rows in are
    pooled into one (joined to the smallest other cell when still too small), so a
    value the reference never saw counts only when it is common. 1.0 when fewer than
    two cells remain.
    """
    n = len(values)
    if profile["kind"] == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        ref, cur = _numeric_shares(profile, numbers)
    else:
        ref, cur = _category_vectors(profile, values)
    if n == 0 or ref.sum() <= 0:
        return 1.0
    observed, expected = cur * n, ref / ref.sum() * n
    small = expected < MIN_EXPECTED
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
        if expected[-1] < MIN_EXPECTED and len(expected) > 1:
            k = int(np.argmin(expected[:-1]))
            observed[k] += observed[-1]
            expected[k] += expected[-1]
            observed, expected = observed[:-1], expected[:-1]
    if len(expected) < 2:
        return 1.0
    return float(chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)
