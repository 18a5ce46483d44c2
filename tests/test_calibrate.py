"""Centred isotonic calibration: PAV levels, strictly increasing between its knots, calibrated."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from propensity.modeling.calibrate import centred_isotonic, fit_calibration


def _sample(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.0, 30.0, n)  # rare positives, as in lead scoring
    raw = 1 / (1 + np.exp(-(2.0 * np.log(truth / (1 - truth)) + 3.0)))  # miscalibrated but monotone
    y = (rng.random(n) < truth).astype(int)
    return raw, y, truth


def test_knots_are_the_pav_blocks_at_their_mean_raw_probability():
    raw, y, _ = _sample()
    x, level = centred_isotonic(raw, y)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y).predict(raw)
    np.testing.assert_array_equal(level, np.unique(fitted))
    for xi, li in zip(x, level, strict=True):
        np.testing.assert_allclose(xi, raw[fitted == li].mean(), rtol=1e-12)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(level) > 0)


def test_ranking_survives_calibration():
    raw, y, _ = _sample()
    cal = fit_calibration("isotonic", raw, y)
    inside = (raw > cal.x[0]) & (raw < cal.x[-1])
    order = np.argsort(raw[inside])
    p = cal(raw[inside])[order]
    assert np.all(np.diff(p) >= 0)
    distinct_raw = len(np.unique(raw[inside]))
    assert len(np.unique(p)) == distinct_raw  # no two raw scores between the knots share a probability


def test_calibrated_on_fresh_rows():
    raw, y, truth = _sample(seed=1)
    cal = fit_calibration("isotonic", raw, y)
    raw2, y2, truth2 = _sample(seed=2)
    p = cal(raw2)
    bins = np.quantile(p, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(bins, p, side="right") - 1, 0, 9)
    ece = sum(abs(p[idx == b].mean() - y2[idx == b].mean()) * (idx == b).mean() for b in range(10))
    assert ece < 0.005
    assert abs(p.mean() - y2.mean()) < 0.003
