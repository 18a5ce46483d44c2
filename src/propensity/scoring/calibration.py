"""Probability calibration stored as plain numbers (no pickle) in the bundle.

The isotonic map is ``np.interp`` through the stored knots. That is what
scikit-learn's ``IsotonicRegression.predict`` computes through its thresholds
(linear interpolation after clipping to the outer ones; ``benchmarks/calibration.py``
checks the two agree exactly), so applying a fitted estimator instead would add a
scikit-learn object rebuilt from its fitted attributes and nothing else; the knots
themselves are centred isotonic regression's (:mod:`propensity.modeling.calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Calibrator"]


@dataclass(frozen=True)
class Calibrator:
    """Maps raw model probabilities to calibrated ones.

    ``isotonic``: piecewise-linear interpolation through fitted thresholds ``x`` → ``y``;
    ``sigmoid``: Platt scaling ``1 / (1 + exp(-(a * logit(p) + b)))``; ``none``: identity.
    The result is clipped to ``[lo, hi]``: training keeps probabilities away from 0 and 1,
    so that one isotonic plateau at 0 cannot make the log loss of a lead that converts
    infinite (bundles saved before the clip existed keep 0 and 1).
    """

    method: str = "none"
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    a: float = 1.0
    b: float = 0.0
    lo: float = 0.0
    hi: float = 1.0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype="float64")
        if self.method == "isotonic":
            p = np.interp(p, self.x, self.y)
        elif self.method == "sigmoid":
            z = self.a * _logit(p) + self.b
            p = 1.0 / (1.0 + np.exp(-z))
        return np.clip(p, self.lo, self.hi) if (self.lo, self.hi) != (0.0, 1.0) else p

    def clipped(self, lo: float, hi: float) -> Calibrator:
        """The same map, its output kept within ``[lo, hi]``."""
        return Calibrator(self.method, list(self.x), list(self.y), self.a, self.b, float(lo), float(hi))

    def to_dict(self) -> dict:
        d = {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}
        if (self.lo, self.hi) != (0.0, 1.0):  # readers older than the clip still read unclipped bundles
            d.update(lo=self.lo, hi=self.hi)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        return cls(method=d["method"], x=list(d.get("x", [])), y=list(d.get("y", [])),
                   a=float(d.get("a", 1.0)), b=float(d.get("b", 0.0)), lo=float(d.get("lo", 0.0)),
                   hi=float(d.get("hi", 1.0)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))
