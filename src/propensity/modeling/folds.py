"""The folds of a cross-validation, each a LightGBM booster with early stopping: in process or in worker processes.

LightGBM must not be entered by two Python threads of one process at once
(:mod:`propensity.core.native`), so folds run side by side only as separate
processes: joblib's process pool (loky, the one scikit-learn uses), with
``min(folds, cores)`` workers kept for the whole search. Loky starts fresh
interpreters (forking a process whose OpenMP threads exist can hang the child)
without re-running the caller's script, and hands large arrays over as memory
maps. Every worker bins the data once per search and trains single-threaded, which
also keeps LightGBM's OpenMP threads from spinning against each other when the
machine is busy (that makes a multi-threaded booster on a small table several
times slower). With one fold or one core the folds run here, one after another,
on every core.

A worker that dies (a crash in native code) ends the search with one
:class:`RuntimeError` saying so (with the exit signal), never a silent exit.
"""

from __future__ import annotations

import re
import time
import uuid

import lightgbm as lgb
import numpy as np
from joblib import Parallel, delayed

from propensity.core.native import LIGHTGBM, cores

__all__ = ["EARLY_STOP", "MAX_ROUNDS", "FoldRunner", "OutOfTime", "dataset", "fit_fold"]

MAX_ROUNDS = 3000
EARLY_STOP = 100
_SUBSET = {"feature_pre_filter": False, "verbose": -1}


class OutOfTime(Exception):
    """The search budget ran out in the middle of a trial."""


def dataset(x: np.ndarray, y: np.ndarray, cat_idx: list[int]) -> lgb.Dataset:
    """The binned LightGBM dataset of all rows; folds are subsets of it (same bins)."""
    with LIGHTGBM:
        return lgb.Dataset(x, y, categorical_feature=cat_idx or "auto", free_raw_data=False,
                           params=dict(_SUBSET)).construct()


def _deadline(at: float | None):
    def check(env) -> None:
        if at is not None and time.time() > at:
            raise OutOfTime
    return check


def fit_fold(full: lgb.Dataset, x: np.ndarray, train: np.ndarray, valid: np.ndarray, params: dict,
             deadline: float | None = None) -> tuple[np.ndarray, int]:
    """One fold: early-stopped on ``valid``'s log loss or AUC (``params["metric"]``); its predictions and best round.

    ``deadline`` is a ``time.time()`` value; past it :class:`OutOfTime` is raised.
    """
    with LIGHTGBM:
        dtr = full.subset(train, params=dict(_SUBSET)).construct()
        dva = full.subset(valid, params=dict(_SUBSET)).construct()
        booster = lgb.train(params, dtr, num_boost_round=MAX_ROUNDS, valid_sets=[dva],
                            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False), _deadline(deadline)])
        best = booster.best_iteration or booster.num_trees()
        pred = booster.predict(x[valid], num_iteration=best, num_threads=params.get("num_threads") or cores())
    return np.asarray(pred), int(best)


class FoldRunner:
    """Fits every fold of one parameter set; a context manager owning the worker processes, if any."""

    def __init__(self, x: np.ndarray, y: np.ndarray, cat_idx: list[int],
                 folds: list[tuple[np.ndarray, np.ndarray]], workers: int | None = None):
        self.x, self.y, self.cat_idx, self.folds = x, y, cat_idx, folds
        n = min(len(folds), cores()) if workers is None else workers
        self.token = uuid.uuid4().hex  # the workers' cached dataset belongs to this search
        self.parallel: Parallel | None = Parallel(n_jobs=n, backend="loky") if n > 1 else None
        self.full = None if self.parallel is not None else dataset(x, y, cat_idx)

    def __enter__(self) -> FoldRunner:
        if self.parallel is not None:
            self.parallel.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.parallel is not None:
            self.parallel.__exit__(None, None, None)

    def run(self, params: dict, deadline: float | None = None) -> list[tuple[np.ndarray, int]]:
        """``(predictions on the fold's validation rows, best round)`` per fold, in fold order."""
        if self.parallel is None:
            assert self.full is not None
            return [fit_fold(self.full, self.x, tr, va, params, deadline) for tr, va in self.folds]
        single = {**params, "num_threads": 1}
        try:
            return self.parallel(delayed(_fit_in_worker)(self.token, self.x, self.y, self.cat_idx, tr, va, single,
                                                         deadline) for tr, va in self.folds)
        except OutOfTime:
            raise
        except Exception as exc:
            if type(exc).__name__ != "TerminatedWorkerError":  # joblib's: a worker process died
                raise
            codes = re.search(r"exit codes of the workers are \{([^}]*)\}", str(exc))
            raise RuntimeError("LightGBM crashed in a worker process while cross-validating a parameter set "
                               f"(exit: {codes.group(1) if codes else 'unknown'}); nothing was written") from None


_CACHE: dict[str, lgb.Dataset] = {}


def _fit_in_worker(token: str, x: np.ndarray, y: np.ndarray, cat_idx: list[int], train: np.ndarray,
                   valid: np.ndarray, params: dict, deadline: float | None) -> tuple[np.ndarray, int]:
    full = _CACHE.get(token)
    if full is None:  # the first fold this worker fits in this search: bin the data once
        _CACHE.clear()
        full = _CACHE[token] = dataset(np.asarray(x), np.asarray(y), cat_idx)
    return fit_fold(full, x, train, valid, params, deadline)
