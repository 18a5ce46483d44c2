"""LightGBM with early stopping on validation folds, and a time-budgeted Optuna search.

:func:`tune_lightgbm` cross-validates parameter sets on the training rows only:
each fold early-stops on its own validation rows (log loss), a parameter set is
judged by its mean validation ROC AUC, and the search stops when the budget (in
seconds) is spent. The first two trials are fixed, sensible settings, so the
search can only improve on them; a budget of 0 runs the first one alone.

The search space is regularised for rare positives and small data: leaves and
minimum leaf sizes on a log scale, L1/L2 penalties, feature and row subsampling,
categorical smoothing. The learning rate is fixed (0.05) and the number of trees
is found by early stopping, so the budget is spent on shape and regularisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score

from propensity.core.native import LIGHTGBM, cores
from propensity.modeling.folds import EARLY_STOP, MAX_ROUNDS, FoldRunner, OutOfTime, dataset

__all__ = ["EARLY_STOP", "MAX_ROUNDS", "TuneResult", "base_params", "cv_lightgbm", "fit_final", "tune_lightgbm"]

LEARNING_RATE = 0.05

# Two fixed starting points: a conservative one for rare positives, and LightGBM's defaults.
STARTS = (
    {"num_leaves": 15, "min_child_samples": 40, "lambda_l1": 1e-3, "lambda_l2": 1.0, "feature_fraction": 0.8,
     "bagging_fraction": 0.8, "cat_smooth": 10.0, "min_data_per_group": 50, "max_cat_to_onehot": 4,
     "extra_trees": False, "path_smooth": 1e-3},
    {"num_leaves": 31, "min_child_samples": 20, "lambda_l1": 1e-3, "lambda_l2": 1e-3, "feature_fraction": 1.0,
     "bagging_fraction": 1.0, "cat_smooth": 10.0, "min_data_per_group": 100, "max_cat_to_onehot": 4,
     "extra_trees": False, "path_smooth": 1e-3},
)


@dataclass
class TuneResult:
    params: dict  # full LightGBM parameters of the chosen set
    n_rounds: int  # trees for the final model on all training rows
    oof: np.ndarray  # out-of-fold raw probabilities (NaN on rows never in a validation fold)
    cv_auc: float
    trials: int
    seconds: float


def base_params(monotone: list[int] | None = None, seed: int = 0, threads: int = 0) -> dict:
    """LightGBM parameters shared by every trial; ``threads`` 0 means every core (:func:`cores`)."""
    p = {"objective": "binary", "metric": "auc", "learning_rate": LEARNING_RATE, "bagging_freq": 1, "seed": seed,
         "deterministic": True, "force_col_wise": True, "num_threads": threads or cores(), "verbose": -1,
         "max_cat_to_onehot": 4, "feature_pre_filter": False}
    if monotone and any(monotone):
        p.update(monotone_constraints=list(monotone), monotone_constraints_method="advanced")
    return p


def cv_lightgbm(runner: FoldRunner, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], params: dict,
                report=None, deadline: float | None = None) -> tuple[np.ndarray, list[int], float]:
    """Fit one booster per fold with early stopping; returns out-of-fold probabilities, best rounds, mean AUC.

    ``runner`` fits the folds (in worker processes, or here one after another; see
    :mod:`.folds`). ``report(fold, mean_auc_so_far)`` is called after each fold; past
    ``deadline`` (a ``time.time()`` value) :class:`~.folds.OutOfTime` is raised.
    """
    oof = np.full(len(y), np.nan)
    rounds, aucs = [], []
    for i, ((_, va), (pred, best)) in enumerate(zip(folds, runner.run(params, deadline), strict=True)):
        oof[va] = pred
        rounds.append(best)
        aucs.append(roc_auc_score(y[va], pred) if 0 < y[va].sum() < len(va) else 0.5)
        if report is not None:
            report(i, float(np.mean(aucs)))
    return oof, rounds, float(np.mean(aucs))


def _suggest(trial) -> dict:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 300, log=True),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-3, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 50.0, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 100.0, log=True),
        "min_data_per_group": trial.suggest_int("min_data_per_group", 5, 200, log=True),
        # One-vs-rest splits on categories (a high max_cat_to_onehot) overfit less on small data.
        "max_cat_to_onehot": trial.suggest_categorical("max_cat_to_onehot", [4, 64]),
        "extra_trees": trial.suggest_categorical("extra_trees", [False, True]),
        "path_smooth": trial.suggest_float("path_smooth", 1e-3, 50.0, log=True),
    }


def tune_lightgbm(x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], cat_idx: list[int],
                  budget_s: float = 60.0, monotone: list[int] | None = None, seed: int = 0,
                  max_trials: int = 500, progress=None, first: dict | None = None,
                  threads: int = 0) -> TuneResult:
    """Search LightGBM parameters by cross-validated AUC within ``budget_s`` seconds (0: no search).

    ``first`` (extra LightGBM parameters) is run before the fixed starting points,
    e.g. a project's hand-set model, and always completes; the search can then only
    improve on it (by validation AUC). ``threads``: LightGBM's threads per booster when the
    folds run in this process (0: every core); several folds on several cores run in
    worker processes, single-threaded (:mod:`.folds`). Trials run one after another.
    """
    with FoldRunner(x, y, cat_idx, folds) as runner:
        return _search(runner, y, folds, budget_s, base_params(monotone, seed, threads), seed, max_trials,
                       progress, first)


def _search(runner: FoldRunner, y: np.ndarray, folds: list, budget_s: float, base: dict, seed: int,
            max_trials: int, progress, first: dict | None) -> TuneResult:
    t0 = time.perf_counter()
    best: dict = {}
    deadline = time.time() + budget_s

    def run(extra: dict, report=None) -> float:
        params = {**base, **extra}
        # The first parameter set always completes: there must be a model.
        oof, rounds, auc = cv_lightgbm(runner, y, folds, params, report, deadline if best else None)
        if not best or auc > best["auc"]:
            best.update(auc=auc, params=params, oof=oof, rounds=rounds)
        return auc

    trials = 1
    if first is not None:
        run(first)
    if budget_s <= 0:
        if first is None:
            run(STARTS[0])
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # a Ctrl-C is not a failed trial to report
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=6, n_warmup_steps=1))
        for start in STARTS:
            study.enqueue_trial(start)

        def objective(trial) -> float:
            def report(step: int, value: float) -> None:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            try:
                return run(_suggest(trial), report)
            except OutOfTime:
                study.stop()
                raise optuna.TrialPruned() from None

        remaining = max(budget_s - (time.perf_counter() - t0), 1.0)
        study.optimize(objective, timeout=remaining, n_trials=max_trials)
        trials = len(study.trials) + int(first is not None)
        if progress:
            progress(f"searched {trials} parameter sets in {time.perf_counter() - t0:.0f}s, "
                     f"best CV AUC {best['auc']:.4f}")
    n_rounds = max(1, int(round(np.mean(best["rounds"]) * 1.1)))
    return TuneResult(params=best["params"], n_rounds=n_rounds, oof=best["oof"], cv_auc=best["auc"],
                      trials=trials, seconds=time.perf_counter() - t0)


def fit_final(x: np.ndarray, y: np.ndarray, cat_idx: list[int], tuned: TuneResult, scale: float = 1.0) -> lgb.Booster:
    """Refit the chosen parameters on all given rows for the early-stopped number of trees (+10 %).

    ``scale`` > 1 (more rows than the search saw) grows the trees count gently (square root).
    """
    rounds = max(1, int(round(tuned.n_rounds * max(scale, 1.0) ** 0.5)))
    with LIGHTGBM:
        return lgb.train(tuned.params, dataset(x, y, cat_idx), num_boost_round=rounds)
