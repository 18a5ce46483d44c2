"""Stress run for test_threads.py: LightGBM entered from 8 Python threads with different thread counts.

Run as a script (``python _stress_threads.py BUNDLE_DIR WORLD_DIR [SECONDS]``) so that a
crash in native code kills this process, not the test session. For ``SECONDS``
(default 6), two threads score one lead at a time and two score small batches
(LightGBM on one thread), three score a flat table with its own model (small
batches on LightGBM's default threads, and every core for a batch of
``PARALLEL_MIN_ROWS``), and one tunes LightGBM in process. Every result must equal
one thread's. Prints one line of counts and exits 0; any difference exits 1.
"""

import sys
import threading
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from propensity import LeadScorer
from propensity.data.export import read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.pipeline import build_features
from propensity.modeling.tune import tune_lightgbm
from propensity.scoring.predictions import PARALLEL_MIN_ROWS
from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import train_table

LEADS = 60


def _leads(export, ids: list[str]) -> list[dict]:
    """The leads ``ids`` as a service holds them: lead row, account row, events."""
    leads = export.leads.set_index("lead_id").loc[ids].reset_index()
    accounts = export.accounts.set_index("account_id")
    acts = export.activities[export.activities["lead_id"].isin(set(ids))].groupby("lead_id")
    out = []
    for lead in leads.to_dict("records"):
        events = acts.get_group(lead["lead_id"]) if lead["lead_id"] in acts.groups else export.activities.head(0)
        account = accounts.loc[lead["account_id"]].to_dict() if lead["account_id"] in accounts.index else None
        out.append({"lead": {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in lead.items()},
                    "account": None if account is None else {"account_id": lead["account_id"], **account},
                    "activities": [{"activity_type": t, "occurred_at": o.isoformat()}
                                   for t, o in zip(events["activity_type"], events["occurred_at"], strict=True)]})
    return out


def main(bundle_dir: str, world_dir: str, seconds: float = 6.0) -> int:
    scorer = LeadScorer.load(bundle_dir)
    export = read_export(world_dir)
    cut = scoring_cutoffs(export)
    frame = build_features(export, cut, scorer.bundle.icp, scorer.bundle.engagement)
    small = frame.head(50)
    leads = _leads(export, cut["lead_id"].head(LEADS).tolist())
    as_of = cut["cutoff"].iloc[0]

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(PARALLEL_MIN_ROWS, 12)), columns=[f"x{i}" for i in range(12)])
    table["y"] = (table["x0"] + rng.normal(size=len(table)) > 1.0).astype(int)
    tables = TableScorer(train_table(table.head(1500), "y", budget_s=0).bundle)
    rows, few = table.drop(columns="y"), table.drop(columns="y").head(50)
    tune_x, tune_y = table.drop(columns="y").to_numpy()[:1500], table["y"].to_numpy()[:1500]
    # one fold: trained here, on LightGBM's threads (several folds would go to worker processes)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(tune_x, tune_y))[:1]

    want_one = [scorer.score(lead, as_of=as_of).model_dump() for lead in leads]
    want_small, want_few, want_rows = scorer.score_features(small), tables.predict(few), tables.predict(rows)
    failures: list[str] = []
    counts = {"one-lead": 0, "batch": 0, "table": 0, "tuning": 0}
    counting = threading.Lock()
    stop = time.perf_counter() + seconds

    def count(what: str) -> None:
        with counting:
            counts[what] += 1

    def service(k: int) -> None:
        j = k
        while time.perf_counter() < stop:
            j = (j + 1) % len(leads)
            if scorer.score(leads[j], as_of=as_of).model_dump() != want_one[j]:
                failures.append(f"thread {k}: lead {j} differs")
            count("one-lead")

    def batch() -> None:
        while time.perf_counter() < stop:
            pd.testing.assert_frame_equal(scorer.score_features(small), want_small)
            count("batch")

    def flat(k: int) -> None:
        while time.perf_counter() < stop:
            np.testing.assert_array_equal(tables.predict(few), want_few)
            count("table")
            if k == 0:
                np.testing.assert_array_equal(tables.predict(rows), want_rows)
                count("table")

    def tune() -> None:
        while time.perf_counter() < stop:
            tune_lightgbm(tune_x, tune_y, folds, [], budget_s=0)
            count("tuning")

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported, and the run fails
            failures.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=guarded, args=(service, k)) for k in range(2)]
    threads += [threading.Thread(target=guarded, args=(batch,)) for _ in range(2)]
    threads += [threading.Thread(target=guarded, args=(flat, k)) for k in range(3)]
    threads.append(threading.Thread(target=guarded, args=(tune,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(", ".join(f"{v} {k}" for k, v in counts.items()) + f" calls from {len(threads)} threads in "
          f"{time.perf_counter() - t0:.1f}s; {len(failures)} difference(s)", flush=True)
    for f in failures[:5]:
        print(f, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], *(float(a) for a in sys.argv[3:4])))
