"""Centred isotonic calibration against scikit-learn's own IsotonicRegression map, on the same PAV fit.

``propensity.modeling.calibrate.centred_isotonic`` fits scikit-learn's
``IsotonicRegression`` (pool adjacent violators) and then puts one knot per pooled
block at the block's mean raw probability; the scorer applies the knots with
``np.interp`` (``propensity.scoring.calibration.Calibrator``, stored as JSON in the
bundle). scikit-learn's ``IsotonicRegression.predict`` interpolates linearly through
``X_thresholds_`` / ``y_thresholds_``, which hold both ends of each block: it is
flat across a block. This prints, on held-out rows of a lead-scoring-like sample
(rare positives, a monotone but miscalibrated model):

- that scikit-learn's ``predict`` is ``np.interp`` through its thresholds (so the
  scorer's ``np.interp`` applies what scikit-learn would, for whichever knots);
- how many distinct raw scores each map keeps apart (ties break a capacity tier's
  ranking and leave a lead on the average lead's level without reasons);
- log loss, Brier score and expected calibration error of each map;
- the time to fit each map and to apply it to ``--apply`` probabilities (the
  scorer's ``np.interp`` through the JSON knots; scikit-learn's ``predict``).

    python benchmarks/calibration.py [--rows 200000] [--apply 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, log_loss

from propensity.modeling.calibrate import centred_isotonic, fit_calibration
from propensity.modeling.metrics import expected_calibration_error


def sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.0, 30.0, n)  # about 3% positives
    raw = 1 / (1 + np.exp(-(2.0 * np.log(truth / (1 - truth)) + 3.0)))  # monotone in truth, miscalibrated
    return raw, (rng.random(n) < truth).astype(int)


def best_of(runs: int, fn) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows the maps are fitted on (and as many held out)")
    ap.add_argument("--apply", type=int, default=1_000_000, help="probabilities each map is applied to, timed")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    raw, y = sample(args.rows, args.seed)
    test_raw, test_y = sample(args.rows, args.seed + 1)
    plain = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    centred = fit_calibration("isotonic", raw, y)
    x, _ = centred_isotonic(raw, y)
    print(f"{args.rows:,} fitting rows ({y.mean():.2%} positive), {args.rows:,} held-out rows; "
          f"{len(x):,} PAV blocks; scikit-learn keeps {len(plain.X_thresholds_):,} thresholds (both ends of a block)")
    distinct = len(np.unique(test_raw))
    for label, p in (("scikit-learn predict", plain.predict(test_raw)), ("centred (np.interp)", centred(test_raw))):
        pc = np.clip(p, 1e-6, 1 - 1e-6)
        print(f"  {label:21s} distinct outputs {len(np.unique(p)):7,} of {distinct:,} distinct raw scores   "
              f"log loss {log_loss(test_y, pc, labels=[0, 1]):.5f}   Brier {brier_score_loss(test_y, pc):.5f}   "
              f"ECE {expected_calibration_error(test_y, p):.5f}")
    same = np.abs(np.interp(test_raw, plain.X_thresholds_, plain.y_thresholds_) - plain.predict(test_raw)).max()
    print(f"scikit-learn's predict is np.interp through its thresholds: largest difference {same:.1e}")
    fit_plain = best_of(args.runs, lambda: IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y))
    fit_centred = best_of(args.runs, lambda: centred_isotonic(raw, y))
    many = np.random.default_rng(args.seed + 2).random(args.apply) * raw.max()
    apply_plain = best_of(args.runs, lambda: plain.predict(many))
    apply_centred = best_of(args.runs, lambda: centred(many))
    print(f"fit ({args.runs} runs, min-max): scikit-learn {fit_plain[0]:.3f}-{fit_plain[1]:.3f}s, "
          f"centred {fit_centred[0]:.3f}-{fit_centred[1]:.3f}s (the same PAV fit, then one predict and bincount)")
    print(f"apply to {args.apply:,}: scikit-learn predict {apply_plain[0]:.4f}-{apply_plain[1]:.4f}s, "
          f"np.interp through the knots {apply_centred[0]:.4f}-{apply_centred[1]:.4f}s")


if __name__ == "__main__":
    main()
