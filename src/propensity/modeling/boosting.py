"""LightGBM for a CRM export's time split: the configured parameters with early stopping, or a budgeted search.

Every booster early-stops on a later validation window than the rows it trains on
(:mod:`.split`); the search (``tuning.crm_budget_seconds``) judges its trials on the
newest window, the one that also calibrates the shipped model.
"""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd

from propensity.config import ModelConfig, TrainingConfig
from propensity.core.native import LIGHTGBM, cores
from propensity.features.spec import FeatureDef

__all__ = ["fit_booster", "lgb_params", "numeric_matrix", "tuned_booster"]


def lgb_params(cfg: ModelConfig, spec: list[FeatureDef]) -> dict:
    """The ``model:`` settings as LightGBM parameters (monotone constraints from the spec)."""
    return {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth,
        "min_child_samples": cfg.min_child_samples,
        "subsample": cfg.subsample,
        "subsample_freq": cfg.subsample_freq,
        "colsample_bytree": cfg.colsample_bytree,
        "reg_lambda": cfg.reg_lambda,
        "monotone_constraints": [f.monotone for f in spec],
        "monotone_constraints_method": "advanced",
        "seed": cfg.seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": cores(),
        "verbose": -1,
    }


def fit_booster(x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray,
                cfg: ModelConfig, spec: list[FeatureDef], params: dict | None = None,
                rounds: int | None = None, stop: int | None = None) -> lgb.Booster:
    """LightGBM with early stopping on the validation rows' log loss (``params``: instead of ``cfg``'s)."""
    params = params or lgb_params(cfg, spec)
    with LIGHTGBM:
        dtrain = lgb.Dataset(x_train, y_train, categorical_feature="auto", free_raw_data=False)
        dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
        return lgb.train(params, dtrain, num_boost_round=rounds or cfg.n_estimators, valid_sets=[dvalid],
                         callbacks=[lgb.early_stopping(stop or cfg.early_stopping_rounds, verbose=False)])


def numeric_matrix(x: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """The model matrix as floats (category codes, NaN for unknown) and the categorical column positions."""
    cols, cat_idx = [], []
    for j, name in enumerate(x.columns):
        col = x[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            cols.append(codes)
            cat_idx.append(j)
        else:
            cols.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    return (np.column_stack(cols) if cols else np.empty((len(x), 0))), cat_idx


def tuned_booster(x: pd.DataFrame, y: np.ndarray, train: np.ndarray, valid: np.ndarray, cfg: TrainingConfig,
                  spec: list[FeatureDef], say: Callable[[str], None]) -> tuple[lgb.Booster, dict, dict]:
    """Search LightGBM parameters within ``tuning.crm_budget_seconds``, trials judged on ``valid``.

    The project's ``model:`` settings are the first trial (always run), then the
    search of :mod:`.tune`; every trial early-stops on ``valid`` and is judged by
    its ROC AUC there. The winner is refitted on ``train`` with the same early
    stopping (deterministic, so it is the trial's model). Returns the booster, its
    parameters and what the search did.
    """
    from propensity.modeling.tune import EARLY_STOP, MAX_ROUNDS, base_params, tune_lightgbm

    m = cfg.model
    idx_tr, idx_va = np.flatnonzero(train), np.flatnonzero(valid)
    rows = np.concatenate([idx_tr, idx_va])
    folds = [(np.arange(len(idx_tr)), np.arange(len(idx_tr), len(rows)))]
    xn, cat_idx = numeric_matrix(x)
    monotone = [f.monotone for f in spec]
    first = {"learning_rate": m.learning_rate, "num_leaves": m.num_leaves, "max_depth": m.max_depth,
             "min_child_samples": m.min_child_samples, "bagging_fraction": m.subsample,
             "bagging_freq": m.subsample_freq, "feature_fraction": m.colsample_bytree, "lambda_l2": m.reg_lambda,
             "metric": "binary_logloss"}
    budget = float(cfg.tuning.crm_budget_seconds)
    say(f"searching LightGBM parameters for up to {budget:g}s on the validation window")
    tuned = tune_lightgbm(xn[rows], y[rows], folds, cat_idx, budget_s=budget, monotone=monotone, seed=m.seed,
                          progress=say, first=first, threads=0)
    chose_first = tuned.params == {**base_params(monotone, m.seed, 0), **first}
    info = {"budget_s": budget, "trials": tuned.trials, "seconds": round(tuned.seconds, 1),
            "valid_auc": tuned.cv_auc, "chosen": "model config" if chose_first else "search"}
    if chose_first:
        booster = fit_booster(x[train], y[train], x[valid], y[valid], m, spec)
        return booster, lgb_params(m, spec), info
    params = dict(tuned.params)
    booster = fit_booster(x[train], y[train], x[valid], y[valid], m, spec, params=params, rounds=MAX_ROUNDS,
                          stop=EARLY_STOP)
    info["params"] = {k: v for k, v in params.items() if k != "monotone_constraints"}
    return booster, params, info
