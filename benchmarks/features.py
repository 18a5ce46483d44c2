"""Feature-table speed and memory at scale, as a ratio to a plain DuckDB scan in the same run.

Generates a synthetic CRM world (1,000,000 leads, ~45M activities by default) as
Parquet, then in a fresh process (so that generating the world does not count
towards the peak) measures:

- the baseline: one DuckDB query that scans ``activities.parquet`` and groups it
  by lead and activity type (count, first and last time), fetched to NumPy;
- the full feature table: ``read_export`` (read + validate the four tables),
  ``training_cutoffs`` and ``build_features`` (engine "auto", i.e. the
  running-totals engine for batches; ``--engine`` picks another), i.e. what
  ``propensity features --data DIR --out FILE`` does before writing.

It prints wall times, the ratio full / baseline, and the peak resident memory of
the measuring process (VmHWM from /proc, which counts DuckDB's native memory;
tracemalloc would not). Goal: ratio under 3, peak under 8 GB, on 2 cores.

    python benchmarks/features.py [--leads 1000000] [--data DIR] [--keep]

``--data DIR`` reuses (or creates and keeps) the world in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (VmHWM), including native allocations."""
    try:
        import psutil  # type: ignore[import-not-found]

        info = psutil.Process().memory_full_info()
        if hasattr(info, "peak_wset"):  # Windows
            return int(info.peak_wset)
    except ImportError:
        pass
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def generate(folder: Path, leads: int, seed: int) -> None:
    from propensity.data.synthetic import write_world

    t = time.perf_counter()
    write_world(folder, n_leads=leads, seed=seed)
    print(f"generated {leads:,} leads in {time.perf_counter() - t:.0f}s -> {folder}", file=sys.stderr)


def measure(folder: Path, engine: str = "auto") -> dict:
    import warnings

    import duckdb

    from propensity.config import default_project_dir, load_project
    from propensity.data.export import read_export
    from propensity.features.cutoffs import training_cutoffs
    from propensity.features.pipeline import build_features

    acts = folder / "activities.parquet"
    out: dict = {}
    scan_sql = f"""SELECT lead_id, activity_type, count(*) AS n, min(occurred_at) AS first, max(occurred_at) AS last
                   FROM read_parquet('{acts}') GROUP BY lead_id, activity_type"""
    best = float("inf")
    for _ in range(2):  # the first run also warms the file cache for both contenders
        con = duckdb.connect()
        t = time.perf_counter()
        res = con.execute(scan_sql).fetchnumpy()
        best = min(best, time.perf_counter() - t)
        con.close()
    out["scan_groups"] = len(res["n"])
    out["scan_s"] = best
    out["events"] = int(res["n"].sum())
    del res

    project = load_project(default_project_dir() / "training" / "default.yaml")
    cfg = project.training
    t0 = time.perf_counter()
    export = read_export(folder)
    out["read_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
    out["cutoffs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = build_features(export, cut, project.icp, project.engagement, engine=engine)
    out["features_s"] = time.perf_counter() - t
    out["total_s"] = time.perf_counter() - t0
    out["leads"] = len(export.leads)
    out["rows"], out["columns"] = frame.shape
    out["peak_rss_gb"] = peak_rss_bytes() / 1e9
    out["cpus"] = os.cpu_count()
    out["engine"] = engine
    out["ratio_total"] = out["total_s"] / out["scan_s"]
    out["ratio_features"] = out["features_s"] / out["scan_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="folder holding (or to hold) the world; kept afterwards")
    ap.add_argument("--engine", default="auto", choices=["auto", "running", "duckdb"])
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # internal: measure this folder, print JSON
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.engine)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.data) if args.data else Path(tmp) / "crm"
        if not (folder / "activities.parquet").exists():
            generate(folder, args.leads, args.seed)
        # A fresh process, so the generator's memory does not count towards the peak.
        proc = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--engine", args.engine],
                              check=True, capture_output=True, text=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"{r['leads']:,} leads, {r['events']:,} activities, {r['cpus']} CPU(s)")
    print(f"baseline  DuckDB scan + GROUP BY lead, type ({r['scan_groups']:,} groups): {r['scan_s']:8.1f}s")
    print(f"read_export (read + validate 4 tables):                  {r['read_s']:8.1f}s")
    print(f"training_cutoffs ({r['rows']:,} rows):                 {r['cutoffs_s']:8.1f}s")
    print(f"build_features (engine {r['engine']}, {r['columns']} columns):            {r['features_s']:8.1f}s")
    print(f"full feature table from files:                           {r['total_s']:8.1f}s")
    print(f"ratio full / scan: {r['ratio_total']:.2f}x (goal < 3x); build_features alone / scan: "
          f"{r['ratio_features']:.2f}x")
    print(f"peak resident memory of the measuring process: {r['peak_rss_gb']:.2f} GB (goal < 8 GB)")


if __name__ == "__main__":
    main()
