"""Feature-table speed and memory at scale, as a ratio to a plain DuckDB scan in the same run.

Generates a synthetic CRM world (1,000,000 leads, ~45M activities by default) as
Parquet, then in a fresh process (so that generating the world does not count
towards the peak) measures:

- the baseline: one DuckDB query that scans ``activities.parquet`` and groups it
  by lead and activity type (count, first and last time), fetched to NumPy;
- two full feature tables from the same ``read_export`` (read + validate the
  four tables): the training table (``training_cutoffs``, one row per lead and
  snapshot; what ``propensity features --data DIR --out FILE`` builds) and the
  as-of scoring table (``scoring_cutoffs``, one row per open lead; what
  ``--as-of DATE`` builds), each with ``build_features`` (engine "auto", i.e. the
  engine ``propensity.features.engines.choose_engine`` picks; ``--engine`` names
  another).

It also times :func:`propensity.data.activities.read_activity_arrays` alone (the
activities file into lead positions, type codes and µs times: the part of
``read_export`` that grows with events), for comparison with the scan.

The as-of table has one cutoff for every row, so ``build_features`` computes its
engagement features with the sort-free per-lead aggregates of the ``asof`` engine;
``--asof-path off`` makes it use the sorted ``running`` engine instead (for
comparison). The training table's cutoffs are a few snapshot dates, so it takes the
compiled lead-by-lead ``snapshots`` engine; ``--snapshot-path off`` makes it use
the ``running`` engine instead (``benchmarks/engines.py`` compares every engine on
every shape of table). The snapshot engine's kernels are compiled by Numba on the
first run after an install and loaded from its cache afterwards: run the
benchmark twice and read the second run (the first one's training figure
includes the compilation, a few seconds).

Fresh memory is slow on some machines (a VM whose host backs a page only when it
is first written): the benchmark also times, in separate fresh processes, writing
a float64 block the size of the training table's numeric columns once, allocated
as ``build_features`` allocates it (``propensity.data.buffers``) and with
``np.empty`` (transparent huge pages), and prints both as ratios to the scan too.
No implementation that returns that table in memory can go below the first,
printed so that the training ratio can be read against it.

The output counts too: the training table is written as Parquet by the CLI's
writer, then DuckDB reads and rewrites that file (in a fresh process, once the measuring
process has freed the table, 8 GB DuckDB memory limit); the **floor with output** is the
scan plus that rewrite. ``propensity features --data DIR --out FILE`` is then run
end to end in its own process (start-up, reading, features, writing) and compared
with the floor (goal: 1.5x), and the generated DuckDB SQL
(:mod:`propensity.features.engines.sql`, the training cutoffs given) computes and
writes the same table from the files as a peer.

For each table it prints wall times, the ratio (read + cutoffs + features) /
baseline, and the peak resident memory of the measuring process (VmHWM from
/proc, which counts DuckDB's native memory; tracemalloc would not). The peak is
reset between the two tables (``/proc/self/clear_refs``), so the as-of figure is
its own, with the export already in memory. Goal: ratio under 3, peak under
8 GB, on 2 cores.

    python benchmarks/features.py [--leads 1000000] [--data DIR] [--asof-path off]

``--data DIR`` reuses (or creates and keeps) the world in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def first_touch(n_bytes: int, allocator: str) -> float:
    """Seconds to allocate and write ``n_bytes`` of float64 once (this process's first use of that memory).

    ``allocator``: ``"pipeline"`` (:func:`propensity.data.buffers.empty`, as
    ``build_features`` allocates its block) or ``"numpy"`` (``np.empty``, which asks
    for transparent huge pages).
    """
    import numpy as np

    from propensity.data import buffers

    t = time.perf_counter()
    block = buffers.empty(n_bytes // 8) if allocator == "pipeline" else np.empty(n_bytes // 8)
    block.fill(1.0)
    return time.perf_counter() - t


def measure(folder: Path, engine: str = "auto", asof_path: str = "auto", snapshot_path: str = "auto",
            output: bool = True) -> dict:
    import gc
    import warnings

    import duckdb

    from propensity.config import default_project_dir, load_project
    from propensity.data.activities import read_activity_arrays
    from propensity.data.export import read_export
    from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
    from propensity.features.pipeline import build_features

    acts = folder / "activities.parquet"
    out: dict = {"load": " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"}
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

    # "off": the table goes to the running engine instead of the engine "auto" picks for it
    engines = {"train": "running" if snapshot_path == "off" and engine == "auto" else engine,
               "asof": "running" if asof_path == "off" and engine == "auto" else engine}
    project = load_project(default_project_dir() / "training" / "default.yaml")
    cfg = project.training
    t0, c0 = time.perf_counter(), time.process_time()
    export = read_export(folder)
    out["read_s"] = time.perf_counter() - t0
    out["read_cpu_s"] = time.process_time() - c0
    out["leads"] = len(export.leads)

    def table(name: str, make_cutoffs) -> None:
        t = time.perf_counter()
        cut = make_cutoffs()
        out[f"{name}_cutoffs_s"] = time.perf_counter() - t
        t, c, sys0 = time.perf_counter(), time.process_time(), os.times().system
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = build_features(export, cut, project.icp, project.engagement, engine=engines[name])
        out[f"{name}_features_s"] = time.perf_counter() - t
        out[f"{name}_features_cpu_s"] = time.process_time() - c  # all threads; a shared machine inflates wall
        out[f"{name}_features_sys_s"] = os.times().system - sys0  # of it, in the kernel: mostly first writes
        out[f"{name}_total_s"] = out["read_s"] + out[f"{name}_cutoffs_s"] + out[f"{name}_features_s"]
        out[f"{name}_rows"], out[f"{name}_columns"] = frame.shape
        out[f"{name}_numeric_bytes"] = int(sum(frame[c].to_numpy().nbytes for c in frame.columns
                                               if frame[c].dtype == "float64"))
        out[f"{name}_ratio"] = out[f"{name}_total_s"] / out["scan_s"]
        out[f"{name}_peak_gb"] = peak_rss_bytes() / 1e9
        written = write_output(frame) if name == "train" and output else None
        del frame
        gc.collect()
        if written:
            rewrite_output(written, cut)  # with the frame freed, as in the processes of a user's run
            written.unlink()
        del cut
        gc.collect()

    def write_output(frame) -> Path:
        """The CLI's writer: the training table as Parquet in a file of :data:`scratch`."""
        from propensity.jobs.outputs import write_table

        mine = Path(scratch) / "cli.parquet"
        t = time.perf_counter()
        write_table(frame, mine)
        out["train_write_s"] = time.perf_counter() - t
        out["train_parquet_mb"] = mine.stat().st_size / 1e6
        return mine

    def rewrite_output(mine: Path, cut) -> None:
        """DuckDB rewriting the CLI's table (the floor's second term), and the generated DuckDB SQL computing and
        writing it from the files (the peer)."""
        from propensity.features.engines.sql import feature_sql

        again, peer = Path(scratch) / "rewrite.parquet", Path(scratch) / "sql.parquet"
        # in a process of its own, as the issue measured it (DuckDB's memory limit set: by default 80 % of the
        # RAM, beside this process's export)
        rewrite = f"import duckdb; c = duckdb.connect(config={{'memory_limit': '8GB'}}); c.execute(\"COPY " \
                  f"(SELECT * FROM read_parquet('{mine}')) TO '{again}' (FORMAT parquet)\")"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", rewrite], check=True)
        out["duckdb_rewrite_s"] = time.perf_counter() - t
        again.unlink()
        # a limit here too: DuckDB's default (80 % of the RAM) beside this process's tables thrashed at 1M leads
        con = duckdb.connect(config={"memory_limit": "8GB"})
        con.execute("SET TimeZone = 'UTC'")
        con.register("cutoffs", cut)
        for name in ("leads", "accounts", "activities"):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{folder / (name + '.parquet')}')")
        query = feature_sql(project.icp, project.engagement, "duckdb", extra_columns=["label"])
        t = time.perf_counter()
        con.execute(f"COPY ({query}) TO '{peer}' (FORMAT parquet)")
        out["sql_peer_s"] = time.perf_counter() - t
        con.close()
        peer.unlink()

    scratch = tempfile.mkdtemp()
    # The training table (what `propensity features --data DIR` builds), then the as-of
    # scoring table (`--as-of DATE`: one row per open lead), from the same export.
    table("train", lambda: training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days))
    out["peak_reset"] = reset_peak_rss()  # the as-of figure: its own peak, with the export already in memory
    table("asof", lambda: scoring_cutoffs(export))
    out["peak_rss_gb"] = max(out["train_peak_gb"], out["asof_peak_gb"])
    # Last (so that it warms nothing measured above): the activities file alone, as read_export reads it.
    lead_ids = export.leads["lead_id"]
    export = None
    gc.collect()
    t = time.perf_counter()
    arrays = read_activity_arrays(acts, lead_ids)
    out["arrays_s"] = time.perf_counter() - t
    out["arrays_path"] = "fast" if arrays is not None else "pandas"
    del arrays
    out["cpus"] = os.cpu_count()
    out["engine"] = engine
    out["asof_path"] = asof_path
    out["snapshot_path"] = snapshot_path
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="folder holding (or to hold) the world; kept afterwards")
    ap.add_argument("--engine", default="auto", choices=["auto", "pairwise", "asof", "snapshots", "running"])
    ap.add_argument("--asof-path", default="auto", choices=["auto", "off"],
                    help="off: the as-of table without the sort-free one-cutoff path (for comparison)")
    ap.add_argument("--snapshot-path", default="auto", choices=["auto", "off"],
                    help="off: the training table without the sort-free snapshot path (for comparison)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # internal: measure this folder, print JSON
    ap.add_argument("--touch", type=int, help=argparse.SUPPRESS)  # internal: first_touch(N, ...), print JSON
    ap.add_argument("--allocator", default="pipeline", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.engine, args.asof_path, args.snapshot_path)))
        return
    if args.touch:
        print(json.dumps({"touch_s": first_touch(args.touch, args.allocator)}))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.data) if args.data else Path(tmp) / "crm"
        if not (folder / "activities.parquet").exists():
            generate(folder, args.leads, args.seed)
        # A fresh process, so the generator's memory does not count towards the peak.
        proc = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--engine", args.engine,
                               "--asof-path", args.asof_path, "--snapshot-path", args.snapshot_path],
                              check=True, capture_output=True, text=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        # The command as a user runs it, end to end (start-up, reading, features, writing), in its own process.
        cli_out = Path(tmp) / "cli.parquet"  # outside the world: an output inside an input is refused
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "propensity.cli", "features", "--data", str(folder), "--out",
                        str(cli_out)], check=True, capture_output=True, text=True)
        r["cli_s"] = time.perf_counter() - t
        cli_out.unlink(missing_ok=True)
        touch = {}
        for allocator in ("pipeline", "numpy"):
            proc = subprocess.run([sys.executable, __file__, "--touch", str(r["train_numeric_bytes"]),
                                   "--allocator", allocator], check=True, capture_output=True, text=True)
            touch[allocator] = json.loads(proc.stdout.strip().splitlines()[-1])["touch_s"]

    print(f"{r['leads']:,} leads, {r['events']:,} activities, {r['cpus']} CPU(s), engine {r['engine']}, "
          f"as-of path {r['asof_path']}, snapshot path {r['snapshot_path']}; load average {r['load']} at the start "
          f"(other jobs inflate wall times)")
    print(f"baseline  DuckDB scan + GROUP BY lead, type ({r['scan_groups']:,} groups): {r['scan_s']:8.1f}s")
    print(f"read_export (read + validate 4 tables):                  {r['read_s']:8.1f}s "
          f"(CPU {r['read_cpu_s']:.1f}s)")
    for name, label in (("train", "training table (training_cutoffs)"), ("asof", "as-of table (scoring_cutoffs)")):
        print(f"{label}, {r[f'{name}_rows']:,} rows x {r[f'{name}_columns']} columns:")
        print(f"  cutoffs {r[f'{name}_cutoffs_s']:6.1f}s   build_features {r[f'{name}_features_s']:6.1f}s "
              f"(CPU {r[f'{name}_features_cpu_s']:.1f}s, sys {r[f'{name}_features_sys_s']:.1f}s)   "
              f"total from files {r[f'{name}_total_s']:6.1f}s   ratio / scan {r[f'{name}_ratio']:5.2f}x (goal < 3x)   "
              f"peak {r[f'{name}_peak_gb']:.2f} GB")
    print(f"of read_export: activities.parquet to arrays alone ({r['arrays_path']} reader, measured last): "
          f"{r['arrays_s']:.1f}s ({r['arrays_s'] / r['scan_s']:.2f}x scan)")
    print(f"floor: writing the training table's {r['train_numeric_bytes'] / 1e9:.1f} GB of float64 once, in a fresh "
          f"process: {touch['pipeline']:.1f}s ({touch['pipeline'] / r['scan_s']:.2f}x scan) as build_features "
          f"allocates it; {touch['numpy']:.1f}s ({touch['numpy'] / r['scan_s']:.2f}x) with np.empty (huge pages)")
    floor = r["scan_s"] + r["duckdb_rewrite_s"]
    print(f"output: the training table as Parquet ({r['train_parquet_mb']:,.0f} MB): the CLI's writer "
          f"{r['train_write_s']:.1f}s; DuckDB reading and rewriting it {r['duckdb_rewrite_s']:.1f}s")
    print(f"floor with output (scan + DuckDB rewrite): {floor:.1f}s; `propensity features --data DIR --out FILE` "
          f"end to end {r['cli_s']:.1f}s = {r['cli_s'] / floor:.2f}x the floor (goal <= 1.5x); the generated "
          f"DuckDB SQL from the files to Parquet (cutoffs given) {r['sql_peer_s']:.1f}s = "
          f"{r['sql_peer_s'] / floor:.2f}x")
    note = "" if r["peak_reset"] else " (as-of peak not reset: includes the training table)"
    print(f"peak resident memory of the measuring process: {r['peak_rss_gb']:.2f} GB (goal < 8 GB){note}")


if __name__ == "__main__":
    main()
