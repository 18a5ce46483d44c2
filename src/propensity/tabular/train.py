"""Training on a flat lead table (one row per lead): ``propensity train --data FILE --target COL``.

The split:

- with a time column, rows are ordered by it; the newest 20 % are the test rows,
  and the older 80 % are cross-validated in time order (3 expanding windows, each
  validating on rows newer than the ones it trains on);
- without one, a stratified 20 % of rows is held out as the test set (seeded), and
  the other 80 % are split into 5 stratified folds.

The folds serve early stopping, the parameter search (:mod:`propensity.modeling.tune`)
and the choice of calibration (:mod:`propensity.modeling.calibrate`, on out-of-fold
predictions); the final booster is refitted on all training rows. Column types are
inferred on the training rows only (:mod:`.inference`). The test rows are touched
once, to compare the model with logistic regression (:mod:`propensity.modeling.evaluate`). Then, with ``refit_all``
(the default), the shipped booster is refitted with the same parameters on all
labelled rows (trees scaled with the row count), as AutoML tools do; the
reported test figures are those of the recipe fitted without the test rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit, train_test_split

from propensity.core.native import predict
from propensity.core.version import VERSION
from propensity.modeling.audit import accept_flags, audit_summary
from propensity.modeling.calibrate import choose_calibrator
from propensity.modeling.evaluate import compare, logistic_baseline
from propensity.modeling.readiness import auc_margin, calibration_checks, verdict
from propensity.modeling.tune import fit_final, tune_lightgbm
from propensity.tabular.bundle import TableBundle, table_additive_booster
from propensity.tabular.families import choose_table_family, fit_table_logistic, logistic_folds
from propensity.tabular.inference import infer_schema, leakage_flags, normalise_target, value_flags
from propensity.tabular.matrix import checked_table_matrix
from propensity.tabular.values import warning_text

__all__ = ["TableTrainResult", "split_table", "train_table"]

TEST_FRACTION = 0.2
MIN_POSITIVES = 10
MAX_CLIP = 0.01  # calibrated probabilities stay within [clip, 1 - clip] (as in propensity.modeling.train)


@dataclass
class TableTrainResult:
    bundle: TableBundle
    comparison: dict  # evaluate.compare output: model vs logistic regression on the test rows
    y_test: np.ndarray
    predictions: dict[str, np.ndarray]  # test probabilities per model
    notes: list[str] = field(default_factory=list)  # dropped columns, sentinels, leakage warnings
    warnings: list[str] = field(default_factory=list)  # the audit's flags to review, one line each
    audit: dict = field(default_factory=dict)  # ok, flags (as the CRM leakage audit's), accept_unused
    timings: dict[str, float] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    family: dict = field(default_factory=dict)  # {"chosen", "why", "forced", "validation", "test_auc_margin"}
    verdict: dict = field(default_factory=dict)  # {"verdict": ready | use with care | not ready, "reasons"}
    checks: dict = field(default_factory=dict)  # readiness.calibration_checks on the test rows


def split_table(y: np.ndarray, time_values: pd.Series | None, seed: int = 0,
                test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray, list]:
    """``(train_idx, test_idx, folds)``; fold indices are positions within ``train_idx``."""
    n = len(y)
    if time_values is not None:
        order = np.argsort(time_values.to_numpy(), kind="stable")
        n_test = max(1, int(round(n * test_fraction)))
        train_idx, test_idx = np.sort(order[: n - n_test]), np.sort(order[n - n_test:])
        # Folds in time order over the training rows.
        by_time = np.argsort(time_values.to_numpy()[train_idx], kind="stable")
        folds = [(by_time[tr], by_time[va]) for tr, va in TimeSeriesSplit(n_splits=3).split(by_time)]
    else:
        train_idx, test_idx = train_test_split(np.arange(n), test_size=test_fraction, stratify=y, random_state=seed)
        train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
        n_splits = int(min(5, y[train_idx].sum()))
        folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(train_idx, y[train_idx]))
    return train_idx, test_idx, folds


def _check_columns(df: pd.DataFrame, source: str, **named: str | None) -> None:
    for what, col in named.items():
        if col is not None and col not in df.columns:
            cols = ", ".join(map(str, list(df.columns)[:12])) + (", ..." if df.shape[1] > 12 else "")
            raise ValueError(f"{source}: {what} column {col!r} not found; the columns are: {cols}")


def train_table(df: pd.DataFrame, target: str, id_column: str | None = None, time_column: str | None = None,
                exclude: tuple[str, ...] = (), budget_s: float = 60.0, seed: int = 0, top_k: int = 3,
                refit_all: bool = True, model_family: str = "auto", accept: tuple[str, ...] = (),
                source: str = "the table", progress: Callable[[str], None] | None = None) -> TableTrainResult:
    """Infer types, split, tune LightGBM, calibrate and evaluate; see the module docstring for the split.

    Raises ``ValueError`` (one line, naming the file and column) for a missing
    target / id / time column, an empty table, a target with one class or more
    than two values, or too few conversions to train and test. ``accept``: columns a person has
    checked; their leakage flags are recorded as accepted.
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    if len(df) == 0:
        raise ValueError(f"{source}: the table has no rows")
    _check_columns(df, source, target=target, id=id_column, time=time_column)
    y_all, positive, kept = normalise_target(df[target], target, source)
    notes = [] if kept.all() else [f"{int((~kept).sum()):,} rows without a target value left out"]
    whole = df
    df = df.loc[kept].reset_index(drop=True)
    y = y_all[kept]
    if y.sum() < MIN_POSITIVES or len(y) - y.sum() < MIN_POSITIVES:
        raise ValueError(f"{source}: target column {target!r} has {int(y.sum())} conversions and "
                         f"{int(len(y) - y.sum())} non-conversions; need at least {MIN_POSITIVES} of each")
    times = None
    if time_column is not None:
        times = pd.to_datetime(df[time_column].astype("string"), errors="coerce", utc=True, format="mixed") \
            if not pd.api.types.is_numeric_dtype(df[time_column]) else df[time_column]
        if times.isna().mean() > 0.05:
            raise ValueError(f"{source}: time column {time_column!r}: {int(times.isna().sum()):,} values are not "
                             "dates or times")
    train_idx, test_idx, folds = split_table(y, times, seed)
    if y[test_idx].sum() == 0 or y[train_idx].sum() < 5:
        raise ValueError(f"{source}: too few conversions to both train and test (test rows hold "
                         f"{int(y[test_idx].sum())}); need more rows or more conversions")

    say(f"inferring column types on {len(train_idx):,} training rows")
    schema = infer_schema(df.iloc[train_idx], target, id_column, time_column, tuple(exclude))
    schema = schema.model_copy(update={"positive_value": positive})
    for name, why in schema.dropped.items():
        notes.append(f"dropped {name}: {why}")
    for c in schema.columns:
        if c.sentinels:
            notes.append(f"{c.name}: {', '.join(f'{s:g}' for s in c.sentinels)} read as a sentinel "
                         "(missing, plus a flag), not a number")
        if c.kind == "text":
            tokens = c.tokens or []
            shown = ", ".join(tokens[:8]) + (", ..." if len(tokens) > 8 else "")
            notes.append(f"{c.name}: free text, read as {len(tokens)} word features ({shown}) and a word count")
    x, unreadable = checked_table_matrix(df, schema)
    for u in unreadable:  # counted and named; the rows are the file's (before unlabelled rows were left out)
        notes.append(warning_text(u, len(df), source, rows=np.flatnonzero(kept)))
    cat_idx = schema.categorical_positions()
    x_tr, y_tr = x[train_idx], y[train_idx]
    found = value_flags(whole, y_all, kept, schema)
    named = {f["column"] for f in found}  # a column with value-level evidence needs no second AUC line
    found += [f for f in leakage_flags(x_tr, y_tr, schema) if f["check"] == "name" or f["column"] not in named]
    flags, unused = accept_flags(found, accept, {})
    audit = {"ok": all(f["accepted"] for f in flags), "flags": flags, "accept_unused": unused}
    warns = audit_summary(audit)[0]
    timings = {"prepare_s": time.perf_counter() - t0}

    if model_family not in ("auto", "lightgbm", "logistic"):
        raise ValueError(f"{source}: model family {model_family!r} is not available for a flat table "
                         "(auto, lightgbm or logistic; the points family needs a CRM export's features/*.yaml)")
    say(f"tuning LightGBM for up to {budget_s:g}s on {len(train_idx):,} rows, {len(folds)} folds")
    tuned = tune_lightgbm(x_tr, y_tr, folds, cat_idx, budget_s=budget_s, seed=seed, progress=say)
    say("fitting regularised logistic regression on the same folds")
    logistic = logistic_folds(x_tr, y_tr, folds, schema, seed)
    newest = folds[-1][1] if time_column else np.concatenate([va for _, va in folds])
    oof = {"lightgbm": tuned.oof, "logistic": logistic.oof}
    chosen, why, judged = choose_table_family(oof, y_tr, newest, tuned.n_rounds, model_family, seed)
    # In time order the calibrator is fitted on the newest fold alone (the world may have moved since the
    # older ones), clipped away from 0 and 1 as the CRM path clips it.
    calibrator, cal_scores = choose_calibrator(oof[chosen][newest], y_tr[newest], seed)
    clip = min(1.0 / (2 * (len(newest) + 1)), MAX_CLIP)
    calibrator = calibrator.clipped(clip, 1 - clip)

    def fit(x_fit: np.ndarray, y_fit: np.ndarray, scale: float = 1.0):
        if chosen == "logistic":
            return table_additive_booster(fit_table_logistic(x_fit, y_fit, schema, logistic.c_value, seed), schema)
        return fit_final(x_fit, y_fit, cat_idx, tuned, scale=scale)

    booster = fit(x_tr, y_tr)
    timings["train_s"] = time.perf_counter() - t0 - timings["prepare_s"]

    say("evaluating on the held-out test rows against logistic regression")
    y_te = y[test_idx]
    preds = {"model": calibrator(predict(booster, x[test_idx])),
             "logistic regression": logistic_baseline(x_tr, y_tr, x[test_idx], cat_idx, seed)}
    if chosen != "lightgbm":
        lgbm = fit_final(x_tr, y_tr, cat_idx, tuned)
        cal_lgbm, _ = choose_calibrator(tuned.oof[newest], y_tr[newest], seed)
        preds["lightgbm"] = cal_lgbm.clipped(clip, 1 - clip)(predict(lgbm, x[test_idx]))
    comparison = compare(y_te, preds, ks=(100, 500))
    margin = auc_margin(y_te, preds["model"], preds["logistic regression"], seed)
    checks = calibration_checks(y_te, preds["model"], float(y_tr.mean()), float(y_tr[newest].mean()), seed)
    ready = verdict(int(y_tr.sum()), int(y_te.sum()), margin, checks, len(warns),
                    other="one-hot logistic regression")
    family = {"chosen": chosen, "why": why, "forced": model_family != "auto", "validation": judged,
              "test_auc_margin": {"over": "one-hot logistic regression", **margin}}
    split = {"kind": "time" if time_column else "stratified", "train_rows": int(len(train_idx)),
             "test_rows": int(len(test_idx)), "folds": len(folds), "test_fraction": TEST_FRACTION, "seed": seed}
    if refit_all:
        # The shipped model learns from every labelled row; the test figures above are
        # those of the same recipe fitted without the test rows.
        booster = fit(x, y, scale=len(y) / len(y_tr))
    params = {**({k: v for k, v in tuned.params.items() if k != "monotone_constraints"}
                 if chosen == "lightgbm" else {"C": logistic.c_value}),
              "model_family": chosen, "n_rounds": tuned.n_rounds if chosen == "lightgbm" else 0,
              "refit_all": refit_all, "trials": tuned.trials, "budget_s": budget_s,
              "calibration": calibrator.method, "calibration_clip": clip}
    bundle = TableBundle(booster=booster, schema=schema, calibrator=calibrator, top_k=top_k, metadata={
        "propensity_version": VERSION, "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "data": source, "label": f"{target} == {positive!r}", "split": split, "params": params,
        "cv_auc": tuned.cv_auc, "calibration_scores": cal_scores,
        "metrics": {n: m["metrics"] for n, m in comparison["models"].items()},
        "leakage_warnings": warns, "leakage_audit": audit, "notes": notes, "family": family, "verdict": ready,
        "calibration_checks": checks,
    })
    timings["total_s"] = time.perf_counter() - t0
    return TableTrainResult(bundle=bundle, comparison=comparison, y_test=y_te, predictions=preds, notes=notes,
                            warnings=warns, audit=audit, timings=timings, params=params, family=family,
                            verdict=ready, checks=checks)
