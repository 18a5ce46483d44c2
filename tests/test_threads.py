"""Native code and Python threads: LightGBM is entered by one thread at a time, results match one thread.

LightGBM keeps its thread count in one process-wide variable; two Python threads
calling it at once with different counts crash the process
(``propensity.core.native``). These tests watch every native LightGBM call of
this process (a proxy over ``lightgbm.basic._LIB``) and fail when two threads are
inside LightGBM at the same moment; the stress run does the real thing in a child
process, so that a crash fails the test instead of killing the session.
"""

import subprocess
import sys
import threading
from pathlib import Path

import lightgbm.basic
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold

from propensity import LeadScorer
from propensity.data.export import read_export
from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
from propensity.features.engines import snapshots
from propensity.features.pipeline import build_features
from propensity.modeling import folds as folds_module
from propensity.modeling.tune import tune_lightgbm
from propensity.scoring.predictions import PARALLEL_MIN_ROWS
from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import train_table

# Releasing memory: the garbage collector frees boosters and datasets from whatever thread it runs on.
_NOT_WATCHED = frozenset({"LGBM_BoosterFree", "LGBM_DatasetFree", "LGBM_GetLastError"})


class NativeWatch:
    """Stands in for LightGBM's ctypes library: counts native calls and the ones made while another
    thread was inside LightGBM."""

    def __init__(self, lib):
        self._lib = lib
        self._lock = threading.Lock()
        self._inside: dict[int, int] = {}
        self.calls = 0
        self.overlaps: list[str] = []

    def __getattr__(self, name: str):
        fn = getattr(self._lib, name)
        if not name.startswith("LGBM_") or name in _NOT_WATCHED:
            return fn

        def call(*args):
            me = threading.get_ident()
            with self._lock:
                if any(depth for t, depth in self._inside.items() if t != me):
                    self.overlaps.append(name)
                self._inside[me] = self._inside.get(me, 0) + 1
                self.calls += 1
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._inside[me] -= 1

        return call


@pytest.fixture
def watch(monkeypatch):
    w = NativeWatch(lightgbm.basic._LIB)
    monkeypatch.setattr(lightgbm.basic, "_LIB", w)
    return w


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 8))
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(size=1500) > 1.0).astype(int)
    return x, y, list(StratifiedKFold(4, shuffle=True, random_state=0).split(x, y))


def test_tuning_never_enters_lightgbm_from_two_threads(watch, table):
    x, y, folds = table
    tune_lightgbm(x, y, folds, [], budget_s=1)
    assert watch.overlaps == []


def test_tuning_in_process_runs_folds_one_after_another(watch, table, monkeypatch):
    x, y, folds = table
    monkeypatch.setattr(folds_module, "cores", lambda: 1)  # no worker processes: every fold trains here
    tune_lightgbm(x, y, folds, [], budget_s=0, threads=1)
    assert watch.calls > 100 and watch.overlaps == []


def test_folds_in_worker_processes_equal_folds_in_process(table, monkeypatch):
    x, y, folds = table
    spread = tune_lightgbm(x, y, folds, [], budget_s=0)
    monkeypatch.setattr(folds_module, "cores", lambda: 1)
    here = tune_lightgbm(x, y, folds, [], budget_s=0, threads=1)  # the workers' single thread, here
    np.testing.assert_array_equal(spread.oof, here.oof)
    assert spread.n_rounds == here.n_rounds and spread.cv_auc == here.cv_auc


def test_a_crashed_fold_worker_is_one_clear_error(table):
    x, y, folds = table
    with folds_module.FoldRunner(x, y, [], folds, workers=2) as runner, \
            pytest.raises(RuntimeError, match="LightGBM crashed in a worker process.*SIGSEGV"):
        runner.run({"objective": "binary", "verbose": -1, "crash": _SegfaultWhenUnpickled()})


class _SegfaultWhenUnpickled:
    """Read back in the worker, this reads address 0: the worker dies of SIGSEGV, as in a native crash."""

    def __reduce__(self):
        import ctypes

        return ctypes.string_at, (0,)


@pytest.mark.slow
def test_scorer_from_eight_threads_enters_lightgbm_one_at_a_time(watch, bundle_dir, world_dir):
    scorer = LeadScorer.load(bundle_dir)
    export = read_export(world_dir)
    cut = scoring_cutoffs(export)
    frame = build_features(export, cut, scorer.bundle.icp, scorer.bundle.engagement)
    big = pd.concat([frame] * (PARALLEL_MIN_ROWS // len(frame) + 1), ignore_index=True).head(PARALLEL_MIN_ROWS)
    small = frame.head(50)
    rng = np.random.default_rng(1)
    flat = pd.DataFrame(rng.normal(size=(600, 4)), columns=list("abcd"))
    flat["y"] = (flat["a"] + rng.normal(size=600) > 1).astype(int)
    # LightGBM pinned: the table model is the one whose calls enter LightGBM (the CRM scorer's SHAP comes from
    # its tables, in Numba, and must give the same frames from every thread).
    tables = TableScorer(train_table(flat, "y", budget_s=0, model_family="lightgbm").bundle)
    rows = flat.drop(columns="y")
    want = (scorer.score_features(big), scorer.score_features(small), tables.score(rows))
    got: list = []
    before = watch.calls

    def work() -> None:
        for _ in range(3):
            got.append((scorer.score_features(big), scorer.score_features(small), tables.score(rows)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 24 and watch.calls > before and watch.overlaps == []
    for result in got:
        for a, b in zip(result, want, strict=True):
            pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_scorer_stress_from_many_threads_does_not_crash(bundle_dir, world_dir):
    # Thousands of one-lead calls, batches on one and on every core, a flat-table model and a
    # training in one process: a native crash ends the child, and this test says so.
    script = Path(__file__).with_name("_stress_threads.py")
    done = subprocess.run([sys.executable, "-X", "faulthandler", str(script), str(bundle_dir), str(world_dir)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert "0 difference(s)" in done.stdout


@pytest.mark.slow
def test_snapshot_engine_from_four_threads_equals_one(world_dir, project, monkeypatch):
    # The compiled snapshot kernels run on the engine's own threads; four callers at once
    # make eight kernel threads in one process.
    export = read_export(world_dir)
    cut = training_cutoffs(export, project.training.cutoffs, project.training.label.horizon_days)
    calls = []
    real = snapshots.engagement_snapshots
    monkeypatch.setattr(snapshots, "engagement_snapshots", lambda *a, **k: calls.append(1) or real(*a, **k))
    want = build_features(export, cut, project.icp, project.engagement)
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(build_features(export, cut, project.icp,
                                                                         project.engagement)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 5 and len(got) == 4
    for g in got:
        pd.testing.assert_frame_equal(g, want)


def test_parquet_groups_converted_while_another_thread_writes_equal_one_threads_file(tmp_path):
    """pyarrow from two threads (conversion here, encoding on the writer thread): proved in a child process."""
    script = Path(__file__).with_name("_stress_parquet.py")
    run = subprocess.run([sys.executable, str(script), str(tmp_path), "20"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all equal" in run.stdout
