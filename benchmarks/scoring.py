"""Scoring speed as ratios to baselines measured in the same run.

Trains the default model on a synthetic world, then times on the same open leads:
raw LightGBM ``predict``, ``shap.TreeExplainer`` on the same model, the scorer on
prebuilt features (probability + exact SHAP via ``pred_contrib`` + reasons), and
the scorer end to end (features included). Absolute seconds vary on shared
machines; the ratios are the figures to read.

    python benchmarks/scoring.py [--leads 40000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import shap

from propensity import LeadScorer
from propensity.config import default_project_dir, load_project
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.matrix import to_matrix
from propensity.features.pipeline import build_features
from propensity.modeling.train import train


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=40_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        crm = write_world(Path(tmp) / "crm", n_leads=args.leads, seed=0)
        export = read_export(crm)
        result = train(export, load_project(default_project_dir() / "training" / "default.yaml"))
        scorer = LeadScorer(result.bundle)
        b = scorer.bundle
        frame = build_features(export, scoring_cutoffs(export), b.icp, b.engagement)
        x = to_matrix(frame, b.spec, b.categories)
        n = len(x)
        explainer = shap.TreeExplainer(b.booster)
        t_predict = timed(lambda: b.booster.predict(x))
        t_shap = timed(lambda: explainer.shap_values(x), repeat=1)
        t_scorer = timed(lambda: scorer.score_features(frame), repeat=1)
        t_e2e = timed(lambda: scorer.score(export), repeat=1)
    trees = b.booster.num_trees()
    print(f"{n:,} open leads, {len(b.spec)} features, model of {trees} trees "
          f"(num_leaves {result.params['num_leaves']}, max_depth {result.params['max_depth']})")
    print(f"{'path':48}{'rows/s':>12}{'vs predict':>12}{'vs TreeExplainer':>18}")
    for name, t in (("LightGBM predict (baseline)", t_predict), ("shap.TreeExplainer (baseline)", t_shap),
                    ("scorer on features: p + SHAP + reasons", t_scorer),
                    ("scorer end to end: features + p + SHAP + reasons", t_e2e)):
        print(f"{name:48}{n / t:>12,.0f}{t_predict / t:>12.3f}{t_shap / t:>18.2f}")


if __name__ == "__main__":
    main()
