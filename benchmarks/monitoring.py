"""How well `propensity monitor` separates stable from drifted worlds, and how close CBPE estimates come.

For each seed: a synthetic world, the model trained on it as exported at D = 2025-06-01,
then the full world (stable) and four worlds of the same seed drawn with the generator's
drift options from D on (tests/_drift_worlds.py: a mix shift, an engagement signal that
stops meaning intent, a lower base rate of new leads, a lower win rate for every lead)
each scored monthly from D to 2025-12-01 into a score history and monitored against its
own full export. Prints, per world kind, the share of seeds with an alert (for the
stable world: the false-alarm rate) and which alert kinds fired, and the error of the
CBPE estimate against the realized AUC of the matured runs.

    PYTHONPATH=src python benchmarks/monitoring.py --seeds 0 1 2 3 4 --leads 6000 --out /tmp/monbench
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _drift_worlds import DRIFT_KINDS, cut_world, drift_world

from propensity.data.synthetic import write_world
from propensity.jobs.monitoring import monitor
from propensity.jobs.scoring import score_crm
from propensity.jobs.training import train_crm

CUT = "2025-06-01"
AS_OF = ["2025-06-01", "2025-07-01", "2025-08-01", "2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01"]


def monitored(model: Path, world: Path, root: Path, name: str):
    hist = root / f"hist-{name}"
    shutil.rmtree(hist, ignore_errors=True)
    for as_of in AS_OF:
        score_crm(model, world, root / "scores.parquet", as_of=as_of, history=hist)
    return monitor(model, world, hist, root / f"report-{name}", track=False, force=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--leads", type=int, default=6000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/monbench"))
    args = ap.parse_args()
    alerted, kinds, errors = Counter(), defaultdict(Counter), []
    for seed in args.seeds:
        root = args.out / f"seed{seed}"
        full = write_world(root / "crm", n_leads=args.leads, seed=seed, force=True)
        cut = cut_world(full, root / "crm-cut", CUT)
        train_crm(cut, root / "model", track=False, force=True)
        worlds = {"stable": full, **{k: drift_world(root / f"crm-{k}", k, CUT, args.leads, seed) for k in DRIFT_KINDS}}
        for name, world in worlds.items():
            done = monitored(root / "model", world, root, name)
            fired = sorted({a["kind"] for a in done.alerts})
            alerted[name] += bool(fired)
            kinds[name].update(fired)
            if name == "stable":
                errors += [r.estimate_error for r in done.result.runs if r.estimate_error is not None]
            print(f"seed {seed} {name:9s} alerts: {fired or 'none'}", flush=True)
    n = len(args.seeds)
    print(f"\n{n} seeds, {args.leads} leads, monthly runs {AS_OF[0]}..{AS_OF[-1]}, model trained on data to {CUT}")
    for name in ["stable", *DRIFT_KINDS]:
        what = "false-alarm rate" if name == "stable" else "detected"
        print(f"{name:9s} {what}: {alerted[name]}/{n}  alert kinds: {dict(kinds[name])}")
    e = np.abs(np.array(errors))
    print(f"CBPE estimate error on matured stable runs ({len(e)}): mean |error| {e.mean():.3f}, "
          f"median {np.median(e):.3f}, max {e.max():.3f}")


if __name__ == "__main__":
    main()
