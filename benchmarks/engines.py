"""Each engagement engine on each shape of cutoff table: the figures behind ``engines.choose_engine``.

The rule the engines keep to: an engine stays only where it is the fastest for its
case by a 1.5x margin. This measures every engine that can take a table on the
cutoff tables that ``choose_engine`` tells apart, from one CRM export folder:

- ``few@1``: a few leads (1, 100, ``MIN_LEADS - 1``) at one cutoff (the as-of time;
  a small batch scored on demand);
- ``few@snap``: the training rows of ``MIN_LEADS - 1`` leads (a few snapshot dates);
- ``asof``: every open lead at one cutoff (``scoring_cutoffs``);
- ``training``: every lead at the snapshot dates (``training_cutoffs``);
- ``spread``: the training rows with each cutoff moved to a random second of its
  day, so that there are more than ``MAX_SNAPSHOTS`` distinct cutoffs;
- ``dense``: ``MIN_LEADS`` leads (those with the most activities) at 400 random
  times each over the export's span (many rows per lead, all cutoffs distinct);
- ``per-event``: 20,000 leads, each at the time of every one of its activities
  (a cutoff per event, as an event-level training table would have);
- ``skewed`` (``--skew EVENTS,ROWS``; no ``--data`` needed): a small export of
  3,000 ordinary leads (40 activities each, 3 snapshots) plus one lead with
  ``EVENTS`` activities within 90 days (a bot) seen at ``ROWS`` random times in
  them. The snapshot engine's work grows with each lead's rows times its events in
  the longest window; the running engine's does not.

Only the engine is timed (``engines.engagement_features``: the engagement features
into a preallocated block, as ``build_features`` runs it); reading the export,
matching ids, the fit features and the frame are the same for every engine. The
engines run in turn (A B C A B C ...) ``--repeat`` times; the best wall and CPU
seconds of each are printed, and for each table the ratio of the runner-up to the
fastest. The snapshot engine's compiled kernels are loaded before any timing. The
pairwise engine holds every (row, event) pair of a lead at once: tables with more
than ``--max-pairs`` pairs are not run with it (the count is printed).

    python benchmarks/engines.py --data DIR [--repeat 3] [--only asof,training] [--skew 300000,10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path


def tables(export, project) -> dict:
    """The cutoff tables by name (see the module docstring)."""
    import numpy as np
    import pandas as pd

    from propensity.core.times import from_us
    from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
    from propensity.features.engines import MIN_LEADS

    cfg = project.training
    train = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
    as_of = scoring_cutoffs(export)
    rng = np.random.default_rng(0)
    out = {}
    for k in (1, 100, MIN_LEADS - 1):
        out[f"few@1 ({k} leads)"] = as_of.iloc[rng.choice(len(as_of), k, replace=False)].reset_index(drop=True)
    some = pd.unique(train["lead_id"])[:MIN_LEADS - 1]
    out[f"few@snap ({len(some)} leads)"] = train[train["lead_id"].isin(some)].reset_index(drop=True)
    out["asof"] = as_of
    out["training"] = train
    seconds = pd.to_timedelta(rng.integers(0, 86_400, len(train)), unit="s")
    out["spread"] = train.assign(cutoff=train["cutoff"] + seconds)
    arrays = export.activity_arrays()
    ids = export.leads["lead_id"].to_numpy(dtype=object)
    busiest = np.argsort(-np.bincount(arrays.lead[arrays.lead >= 0], minlength=len(ids)), kind="stable")[:MIN_LEADS]
    first, last = int(arrays.occ.min()), int(arrays.occ.max()) + 1
    t = rng.integers(first, last, (len(busiest), 400))
    out["dense"] = pd.DataFrame({"lead_id": np.repeat(ids[busiest], 400),
                                 "cutoff": pd.Series(from_us(t.ravel()))})
    some = rng.choice(len(ids), 20_000, replace=False)
    mine = np.flatnonzero(np.isin(arrays.lead, some))
    out["per-event"] = pd.DataFrame({"lead_id": ids[arrays.lead[mine]], "cutoff": pd.Series(from_us(arrays.occ[mine]))})
    return out


def skewed(project, n_events: int, n_rows: int):
    """The ``skewed`` case: (export, rows), see the module docstring."""
    import numpy as np
    import pandas as pd

    from propensity.data.export import CrmExport

    rng = np.random.default_rng(0)
    t0 = pd.Timestamp("2025-01-01T00:00:00Z")
    day = pd.Timedelta(days=1)
    n = 3_000
    ids = [f"L{i:05d}" for i in range(n)]
    occ = np.r_[(t0 + pd.to_timedelta(rng.integers(0, 365 * 86_400, 40 * n), unit="s")).to_numpy(),
                (t0 + pd.to_timedelta(rng.integers(200 * 86_400, 290 * 86_400, n_events), unit="s")).to_numpy()]
    acts = pd.DataFrame({"lead_id": np.r_[rng.choice(ids, 40 * n), ["BOT"] * n_events],
                         "activity_type": rng.choice(sorted(project.engagement.activity_types), 40 * n + n_events),
                         "occurred_at": pd.to_datetime(occ, utc=True)})
    leads = pd.DataFrame({"lead_id": [*ids, "BOT"], "account_id": "A", "created_at": t0 - 10 * day})
    export = CrmExport.from_frames({"accounts": pd.DataFrame({"account_id": ["A"]}), "leads": leads,
                                    "activities": acts}, exported_at="2026-06-01T00:00:00Z")
    bot_t = t0 + pd.to_timedelta(rng.integers(200 * 86_400, 300 * 86_400, n_rows), unit="s")
    rows = pd.DataFrame({"lead_id": np.r_[np.repeat(ids, 3), ["BOT"] * n_rows],
                         "cutoff": pd.to_datetime(np.r_[np.tile((t0 + pd.to_timedelta(np.arange(3) * 100, unit="D"))
                                                                .to_numpy(), n),
                                                        bot_t.to_numpy()], utc=True)})
    return export, rows


def inputs(export, rows, project):
    """What build_features hands the engine: lead positions, row leads, µs cutoffs, distinct cutoffs."""
    from propensity.core.times import to_us
    from propensity.features.engines import distinct_cutoffs
    from propensity.features.rows import check_cutoffs, match_row_leads
    from propensity.features.spec import build_feature_spec

    spec = build_feature_spec(project.icp, project.engagement)
    lead_ids, cutoff_col, _ = check_cutoffs(rows, {f.name for f in spec})
    row_t = to_us(cutoff_col)
    uniq, row_lead, lead_pos = match_row_leads(lead_ids, export)
    names = [f.name for f in spec if f.family == "engagement" and f.name != "lead_age_days"]
    return lead_pos, row_lead, row_t, distinct_cutoffs(row_t), names, len(uniq)


def pairs(export, lead_pos, row_lead) -> int:
    """The (row, event) pairs the pairwise engine would hold: per lead, its rows times its events."""
    import numpy as np

    arrays = export.activity_arrays()
    per_lead = np.bincount(arrays.lead[arrays.lead >= 0], minlength=len(export.leads))[lead_pos]
    return int((np.bincount(row_lead, minlength=len(lead_pos)) * per_lead).sum())


def run(engine: str, export, project, lead_pos, row_lead, row_t, cuts, names) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``engine``, into a fresh block as build_features allocates it."""
    import numpy as np

    from propensity.data import buffers
    from propensity.features.engines import engagement_features

    block = buffers.empty((len(names), len(row_t)), np.float64)
    out = {name: block[i] for i, name in enumerate(names)}
    t, c = time.perf_counter(), time.process_time()
    engagement_features(engine, export, lead_pos, row_lead, row_t, cuts, project.engagement, out)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a CRM export folder (e.g. from `propensity generate`)")
    ap.add_argument("--skew", help="EVENTS,ROWS of the skewed case (see the module docstring)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", help="comma-separated table names (prefixes) to run")
    ap.add_argument("--max-pairs", type=float, default=2e8)
    args = ap.parse_args()

    from propensity.config import default_project_dir, load_project
    from propensity.data.export import read_export
    from propensity.features.engines import ENGINES, choose_engine, snapshots

    project = load_project(default_project_dir() / "training" / "default.yaml")
    snapshots.warm_up()
    cases = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.data:
            export = read_export(Path(args.data))
            print(f"{args.data}: {len(export.leads):,} leads, {len(export.activity_arrays()):,} activities",
                  flush=True)
            cases += [(name, export, rows) for name, rows in tables(export, project).items()]
        if args.skew:
            n_events, n_rows = (int(x) for x in args.skew.split(","))
            cases.append((f"skewed ({n_events:,} events, {n_rows:,} rows of one lead)",
                          *skewed(project, n_events, n_rows)))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"{os.cpu_count()} CPU(s), load average {load}; best of {args.repeat}, wall (CPU) seconds", flush=True)
    for name, export, rows in cases:
        if args.only and not any(name.startswith(p) for p in args.only.split(",")):
            continue
        lead_pos, row_lead, row_t, cuts, names, n_leads = inputs(export, rows, project)
        n_pairs = pairs(export, lead_pos, row_lead)
        able = [e for e in ENGINES if not (e == "asof" and len(cuts) != 1 or e == "snapshots" and len(cuts) < 2
                                           or e == "pairwise" and n_pairs > args.max_pairs)]
        best = {e: (float("inf"), float("inf")) for e in able}
        for _ in range(args.repeat):
            for e in able:
                wall, cpu = run(e, export, project, lead_pos, row_lead, row_t, cuts, names)
                best[e] = (min(best[e][0], wall), min(best[e][1], cpu))
        order = sorted(able, key=lambda e: best[e][0])
        ratio = f"{best[order[1]][0] / best[order[0]][0]:.1f}x" if len(order) > 1 else "-"
        cells = "  ".join(f"{e} {best[e][0]:.3f} ({best[e][1]:.3f})" for e in ENGINES if e in best)
        skipped = "" if "pairwise" in able else f"  [pairwise not run: {n_pairs:,} pairs]"
        print(f"{name}: {len(row_t):,} rows, {n_leads:,} leads, {len(cuts):,} cutoffs; auto -> "
              f"{choose_engine(n_leads, len(cuts))}; fastest {order[0]}, runner-up {ratio} slower\n"
              f"    {cells}{skipped}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
