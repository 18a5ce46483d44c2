"""Planted leaks: does the leakage audit flag the fields CRMs fill in after the outcome, and only those?

For each seed, a default synthetic world (``write_world``) gets columns planted in
``leads`` and ``accounts``, each a leak of one kind at one strength, drawn
independently (the audit checks each column on its own, so one export carries them
all), plus two honest controls:

1. **status** set at conversion: ``converted`` for every won lead, a random
   ``open``/``working``/``nurture`` otherwise; graded by a share of the other leads
   also (wrongly) marked ``converted``: 0 % and 2 %;
2. **flag** ticked during the deal: ``yes`` for a share of the won leads (90, 70,
   50, 30 %) and for 5 % of the others;
3. **amount** known only after the close: the won opportunity's amount (empty
   otherwise), and the closed opportunity's amount for won and lost leads alike;
4. **account** field copied from the won opportunity: the account's won amount
   (empty otherwise), and a ``customer``/``prospect`` tier;
5. honest **controls**: the generator's own win probability of each lead (known at
   creation, the strongest honest static signal there is) as a number and as
   quintiles ``A``..``E``.

The audit runs as ``propensity train`` runs it (point-in-time rows of the default
project, the time split, the default features). A planted column counts as flagged
when a static-column flag names it. False flags: any flag on the default world's
honest ICP and engagement features, its lead and account columns, the split check,
or the controls.

Goals (the issue): every leak of kinds 1, 3 and 4 flagged; the flag kind flagged
down to 50 % coverage; no false flag on the default world.

    python benchmarks/leakage.py [--seeds 1 2 3 4 5] [--leads 5000]

Run it with ``PYTHONPATH`` pointing at another tree's ``src`` to measure that
version's audit (it reads only ``static_columns``, ``single_feature`` and
``split_gap``, which every version returns).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.config import default_project_dir, load_project
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.features.cutoffs import training_cutoffs
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec
from propensity.modeling.audit import leakage_audit
from propensity.modeling.split import time_split

# (kind, strength, table.column); a kind's goal is met when each of its rows is flagged on every seed.
PLANTS = [
    ("1 status", "converted on won leads", "leads.leak_status"),
    ("1 status", "... and on 2% of the others", "leads.leak_status_noisy"),
    ("2 flag", "90% of won, 5% of others", "leads.leak_flag_90"),
    ("2 flag", "70% of won, 5% of others", "leads.leak_flag_70"),
    ("2 flag", "50% of won, 5% of others", "leads.leak_flag_50"),
    ("2 flag", "30% of won, 5% of others", "leads.leak_flag_30"),
    ("3 amount", "won amount, empty otherwise", "leads.leak_won_amount"),
    ("3 amount", "closed amount (won and lost)", "leads.leak_closed_amount"),
    ("4 account", "won amount on the account", "accounts.leak_contract_value"),
    ("4 account", "customer / prospect tier", "accounts.leak_customer_tier"),
]
CONTROLS = ["leads.honest_p_won", "leads.honest_tier"]


def plant(export, seed: int):
    """The export with the planted leaks and the honest controls (see the module docstring)."""
    rng = np.random.default_rng(seed + 1000)
    leads, accounts, opps = export.leads.copy(), export.accounts.copy(), export.opportunities
    won_ids = opps.loc[opps["stage"] == "closed_won", "lead_id"]
    closed_ids = opps.loc[opps["stage"].isin(["closed_won", "closed_lost"]), "lead_id"]
    won = leads["lead_id"].isin(won_ids).to_numpy()
    n = len(leads)
    other = rng.choice(["open", "working", "nurture"], n)
    leads["leak_status"] = np.where(won, "converted", other)
    leads["leak_status_noisy"] = np.where(won | (rng.random(n) < 0.02), "converted", other)
    for cover in (90, 70, 50, 30):
        leads[f"leak_flag_{cover}"] = np.where(rng.random(n) < np.where(won, cover / 100, 0.05), "yes", "no")
    won_amount = opps[opps["stage"] == "closed_won"].groupby("lead_id")["amount"].sum()
    closed = opps[opps["lead_id"].isin(closed_ids) & (opps["stage"] != "open")]
    closed_amount = closed.groupby("lead_id")["amount"].sum()
    leads["leak_won_amount"] = leads["lead_id"].map(won_amount)
    leads["leak_closed_amount"] = leads["lead_id"].map(closed_amount)
    account_won = leads.groupby("account_id")["leak_won_amount"].sum(min_count=1)
    accounts["leak_contract_value"] = accounts["account_id"].map(account_won)
    accounts["leak_customer_tier"] = np.where(accounts["leak_contract_value"].notna(), "customer", "prospect")
    truth = pd.read_parquet(Path(export.source) / "ground_truth.parquet").set_index("lead_id")
    p_won = leads["lead_id"].map(truth["p_won"]).to_numpy()
    leads["honest_p_won"] = p_won
    leads["honest_tier"] = pd.qcut(p_won, 5, labels=["E", "D", "C", "B", "A"]).astype(str)
    return dataclasses.replace(export, leads=leads, accounts=accounts)


def audit_world(seed: int, n_leads: int, root: Path) -> dict:
    """One seed: the audit's findings on the planted export, as sets of flagged names."""
    project = load_project(default_project_dir() / "training" / "default.yaml")
    cfg = project.training
    export = plant(read_export(write_world(root / f"world-{seed}", n_leads=n_leads, seed=seed)), seed)
    frame = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days),
                           project.icp, project.engagement)
    split = time_split(frame["cutoff"], cfg.split, cfg.label.horizon_days)
    spec = build_feature_spec(project.icp, project.engagement)
    t = time.perf_counter()
    findings = leakage_audit(frame, split, spec, frame["label"].to_numpy(), export=export, seed=seed)
    static = findings["static_columns"]
    return {
        "seconds": time.perf_counter() - t,
        "columns": {f"{c['table']}.{c['column']}" for c in static["flagged"]},
        "checked": set(static["checked"]),
        "features": {f["feature"] for f in findings["single_feature"]["flagged"]},
        "n_features": len(spec),
        "split_gap": bool(findings["split_gap"]["flagged"]),
        "evidence": {f"{c['table']}.{c['column']}": c["reason"] for c in static["flagged"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--leads", type=int, default=5000)
    ap.add_argument("--evidence", action="store_true", help="print each flag's evidence for the first seed")
    args = ap.parse_args()
    planted = {p[2] for p in PLANTS}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [audit_world(s, args.leads, Path(tmp)) for s in args.seeds]
    k = len(runs)
    print(f"{k} seeds ({', '.join(map(str, args.seeds))}), {args.leads:,} leads each; "
          f"audit {np.mean([r['seconds'] for r in runs]):.1f}s per world\n")
    print("| kind | strength | column | flagged |")
    print("|---|---|---|---:|")
    for kind, strength, column in PLANTS:
        hits = sum(column in r["columns"] for r in runs)
        print(f"| {kind} | {strength} | `{column}` | {hits}/{k} |")
    for column in CONTROLS:
        hits = sum(column in r["columns"] for r in runs)
        print(f"| 5 control | honest | `{column}` | {hits}/{k} |")
    honest_cols = [r["checked"] - planted - set(CONTROLS) for r in runs]
    false_cols = [r["columns"] - planted - set(CONTROLS) for r in runs]
    n_items = sum(len(c) + r["n_features"] + 1 for c, r in zip(honest_cols, runs, strict=True))
    n_false = sum(len(f) + len(r["features"]) + r["split_gap"] for f, r in zip(false_cols, runs, strict=True))
    any_false = sum(bool(f) or bool(r["features"]) or r["split_gap"] for f, r in zip(false_cols, runs, strict=True))
    print(f"\nfalse flags on the default world's honest features, columns and split check: {n_false} of {n_items} "
          f"checks ({n_false / n_items:.2%}); seeds with any: {any_false}/{k}")
    for f, r, s in zip(false_cols, runs, args.seeds, strict=True):
        if f or r["features"] or r["split_gap"]:
            print(f"  seed {s}: {sorted(f | r['features'])}{' split gap' if r['split_gap'] else ''}")
    if args.evidence:
        print()
        for column, reason in sorted(runs[0]["evidence"].items()):
            print(f"{column}: {reason}")


if __name__ == "__main__":
    main()
