"""The feature table on Spark (local[2]) against in process, on growing worlds: the ratio, and whether work is linear.

For each world size (``--leads 50000,100000,...``; a world is generated once per
size into ``--data DIR/<size>`` and kept) it times, in this order:

- ``propensity features --data W --out F.parquet`` in its own process (the in-process
  engines, end to end: start-up, reading, features, writing);
- the same table built by ``propensity.jobs.features_spark`` on one SparkSession
  (``--master``, default ``local[2]``) started before the first size and reused,
  written as a Parquet dataset: the generated Spark SQL, reading to writing.

Both write the labelled training table (``--as-of DATE`` for the scoring table).
It prints one line per size with the rows, both wall times, the ratio Spark / in
process, and Spark seconds per million rows (constant when the work is linear),
plus the load average (the machine's other jobs inflate wall times) and the
session's start-up time, which is not in the figures.

    python benchmarks/spark.py [--leads 50000,100000,200000] [--data DIR] [--master local[2]] [--as-of DATE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", default="50000,100000,200000", help="comma-separated world sizes")
    ap.add_argument("--data", help="folder for the worlds (kept); default: a temporary folder")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--as-of", help="the scoring table as of this time instead of the training table")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from propensity.data.synthetic import write_world
    from propensity.jobs import features_spark
    from propensity.spark import spark_session

    sizes = [int(x) for x in args.leads.split(",")]
    tmp = tempfile.mkdtemp(prefix="bench-spark-")
    root = Path(args.data) if args.data else Path(tmp)
    t = time.perf_counter()
    spark_session(args.master).range(1).count()
    startup = time.perf_counter() - t
    extra = [] if args.as_of is None else ["--as-of", args.as_of]
    print(f"Spark {args.master}: session started in {startup:.1f}s (not counted below); "
          f"{'as-of ' + args.as_of if args.as_of else 'training'} table")
    print(f"{'leads':>9} {'rows':>10} {'in-process s':>13} {'spark s':>8} {'ratio':>6} {'spark s / 1M rows':>18} load")
    try:
        for n in sizes:
            world = root / f"w{n}"
            if not (world / "activities.parquet").exists():
                write_world(world, n_leads=n, seed=args.seed)
            local_out, spark_out = Path(tmp) / f"local{n}.parquet", Path(tmp) / f"spark{n}.parquet"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "propensity.cli", "features", "--data", str(world), "--out",
                            str(local_out), *extra], check=True, capture_output=True, text=True)
            local_s = time.perf_counter() - t
            t = time.perf_counter()
            done = features_spark(world, spark_out, as_of=args.as_of, master=args.master)
            spark_s = time.perf_counter() - t
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"{n:>9,} {done.rows:>10,} {local_s:>13.1f} {spark_s:>8.1f} {spark_s / local_s:>6.1f} "
                  f"{spark_s / done.rows * 1e6:>18.1f} {load}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
