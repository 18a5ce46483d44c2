"""How well `propensity monitor` separates stable from drifted worlds, and how close CBPE estimates come.

For each seed: a synthetic world, the model trained on it as exported at D = 2025-06-01,
then the full world (stable) and four worlds of the same seed drawn with the generator's
drift options from D on (tests/_drift_worlds.py: a mix shift, an engagement signal that
stops meaning intent, a lower base rate of new leads, a lower win rate for every lead)
each scored monthly from D to 2025-12-01 into a score history and monitored against its
own full export. Prints, per world kind, the share of seeds with an alert (for the
stable world: the false-alarm rate) and which alert kinds fired, and the error of the
CBPE estimate against the realized AUC of the matured runs.

    PYTHONPATH=src python benchmarks/monitoring.py --seeds 0 1 2 3 4 --leads 8000 --out /tmp/monbench
    PYTHONPATH=src python benchmarks/monitoring.py --seeds 0 1 2 3 4 --out /tmp/monbench --summarize
"""

from __future__ import annotations

import argparse
import json
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
from propensity.scoring.bundle import load_bundle

CUT = "2025-06-01"
AS_OF = ["2025-06-01", "2025-07-01", "2025-08-01", "2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01"]


def monitored(model: Path, world: Path, root: Path, name: str):
    hist = root / f"hist-{name}"
    shutil.rmtree(hist, ignore_errors=True)
    for as_of in AS_OF:
        score_crm(model, world, root / "scores.parquet", as_of=as_of, history=hist)
    return monitor(model, world, hist, root / f"report-{name}", track=False, force=True)


def details(root: Path, name: str) -> dict:
    return json.loads((root / f"report-{name}" / "details.json").read_text())


def summarize(out: Path, seeds: list[int]) -> None:
    """The figures docs/monitoring.md quotes, read back from the reports the runs wrote under ``out``."""
    alerted, kinds = Counter(), defaultdict(Counter)
    errors, single, conversions, inflow, mech_auc, older = [], 0, [], [], [], []
    pricing = {"stable": [], "mechanics": []}
    for seed in seeds:
        root = out / f"seed{seed}"
        for name in ["stable", *DRIFT_KINDS]:
            d = details(root, name)
            fired = sorted({a["kind"] for a in d["alerts"]})
            alerted[name] += bool(fired)
            kinds[name].update(fired)
            for a in d["alerts"]:
                print(f"  seed {seed} {name}: {a['message']}")
            if name in pricing:
                pricing[name] += [sum(x["drifted"] for x in r["drift"] if "pricing_page" in x["name"])
                                  for r in d["runs"][1:]]
        stable, mech = details(root, "stable"), details(root, "mechanics")
        cal = [r["calibration"]["in_range"] for r in stable["runs"] if r["matured"]]
        zs = " ".join(f"{r['as_of'][5:7]}:{c['observed']}/{c['expected']:.0f} z{c['z']:+.1f}"
                      for r, c in zip([r for r in stable["runs"] if r["matured"]], cal, strict=True))
        card = load_bundle(root / "model").metadata.get("calibration_checks", {})
        ratio = card.get("observed_rate", float("nan")) / card.get("predicted_rate", float("nan"))
        print(f"seed {seed} stable calibration {zs}; card observed/predicted {ratio:.2f} "
              f"(outside the interval: {card.get('observed_outside')})")
        single += any(abs(c["off"]) > 0.25 and abs(c["z"]) > 3 for c in cal)
        conversions += [c["observed"] for c in cal]
        inflow += [r["new_leads"] / c["leads"] for r, c in zip([r for r in stable["runs"] if r["matured"]], cal,
                                                                strict=True)]
        errors += [r["estimate_error"] for r in stable["runs"] if r["estimate_error"] is not None]
        older += [(r["calibration"]["older"]["observed"], r["calibration"]["older"]["expected"])
                  for r in stable["runs"] if r["matured"]]
        mech_auc += [s["metrics"]["auc"] - m["metrics"]["auc"] for s, m in zip(stable["runs"], mech["runs"],
                                                                                 strict=True) if s["matured"]]
    n = len(seeds)
    print(f"\n{n} seeds (from {out}), monthly runs {AS_OF[0]}..{AS_OF[-1]}, model trained on data to {CUT}")
    for name in ["stable", *DRIFT_KINDS]:
        what = "false-alarm rate" if name == "stable" else "detected"
        print(f"{name:9s} {what}: {alerted[name]}/{n}  alert kinds: {dict(kinds[name])}")
    print(f"a single-run calibration rule (|off| > 25 %, |z| > 3) would alert on {single}/{n} stable worlds")
    e = np.abs(np.array(errors))
    print(f"CBPE estimate error on matured stable runs ({len(e)}): mean |error| {e.mean():.3f}, "
          f"median {np.median(e):.3f}, max {e.max():.3f}")
    print(f"conversions per matured stable run (in the training's age range): {min(conversions)}-{max(conversions)}")
    print(f"new leads (30 days) / leads in the training's age range: {np.mean(inflow):.2f} "
          f"({min(inflow):.2f}-{max(inflow):.2f})")
    print(f"pricing-page features drifted per run after the date: mechanics {min(pricing['mechanics'])}-"
          f"{max(pricing['mechanics'])}, stable {min(pricing['stable'])}-{max(pricing['stable'])}")
    print(f"leads older than the training's: {sum(o for o, _ in older)} conversions, "
          f"{min(e for _, e in older):.1f}-{max(e for _, e in older):.1f} expected per run")
    print(f"realized AUC, stable minus mechanics, matured runs: mean {np.mean(mech_auc):+.3f} "
          f"({min(mech_auc):+.3f} to {max(mech_auc):+.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--leads", type=int, default=6000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/monbench"))
    ap.add_argument("--summarize", action="store_true", help="only print the figures of the reports under --out")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.out, args.seeds)
        return
    for seed in args.seeds:
        root = args.out / f"seed{seed}"
        full = write_world(root / "crm", n_leads=args.leads, seed=seed, force=True)
        cut = cut_world(full, root / "crm-cut", CUT)
        train_crm(cut, root / "model", track=False, force=True)
        worlds = {"stable": full, **{k: drift_world(root / f"crm-{k}", k, CUT, args.leads, seed) for k in DRIFT_KINDS}}
        for name, world in worlds.items():
            done = monitored(root / "model", world, root, name)
            print(f"seed {seed} {name:9s} alerts: {sorted({a['kind'] for a in done.alerts}) or 'none'}", flush=True)
    summarize(args.out, args.seeds)


if __name__ == "__main__":
    main()
