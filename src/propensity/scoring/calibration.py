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
    """

    method: str = "none"
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    a: float = 1.0
    b: float = 0.0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype="float64")
        if self.method == "isotonic":
            return np.interp(p, self.x, self.y)
        if self.method == "sigmoid":
            z = self.a * _logit(p) + self.b
            return 1.0 / (1.0 + np.exp(-z))
        return p

    def to_dict(self) -> dict:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        return cls(method=d["method"], x=list(d.get("x", [])), y=list(d.get("y", [])),
                   a=float(d.get("a", 1.0)), b=float(d.get("b", 0.0)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))
