"""The flat-table jobs behind the CLI: train → bundle + report, evaluate → report.

No printing here (the CLI prints); both functions check first that ``out`` may be
replaced (absent, empty, or a bundle / report this tool wrote; any folder with
``force``; never the working directory, home, their parents or an input: see
:mod:`propensity.core.output`) and write nothing until the work has succeeded, then
swap the finished folder in whole, so bad input leaves no file behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.csvsafe import write_csv
from propensity.core.output import check_folder_output, staged_folder, write_marker
from propensity.modeling.audit import audit_summary
from propensity.modeling.evaluate import (
    REPORT_KIND,
    compare,
    is_report_folder,
    logistic_baseline,
    predictions_frame,
    write_report,
)
from propensity.modeling.report import readiness_lines
from propensity.scoring.bundle import is_bundle_folder, write_bundle
from propensity.scoring.bundle_files import BundleKindError
from propensity.tabular.bundle import load_table_bundle
from propensity.tabular.files import read_flat_table
from propensity.tabular.inference import normalise_target
from propensity.tabular.matrix import table_matrix
from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import TableTrainResult, train_table

__all__ = ["evaluate_table", "train_table_file"]

REPORT_DIR = "report"


def train_table_file(data: Path, target: str, out: Path, id_column: str | None = None,
                     time_column: str | None = None, exclude: tuple[str, ...] = (), budget_s: float = 60.0,
                     seed: int = 0, progress: Callable[[str], None] | None = None,
                     force: bool = False, model_family: str = "auto", accept: tuple[str, ...] = ()
                     ) -> TableTrainResult:
    """Read ``data``, train, save the bundle to ``out`` (atomically) with ``out/report/`` inside."""
    check_folder_output(out, owned=is_bundle_folder, inputs=(data,), force=force)
    df = read_flat_table(data)
    result = train_table(df, target, id_column, time_column, exclude, budget_s=budget_s, seed=seed,
                         source=str(data), progress=progress, model_family=model_family, accept=accept)
    notes = [*result.notes, *[f"leakage warning: {w}" for w in result.warnings],
             *[f"leakage flag accepted (audit.accept): {w}" for w in audit_summary(result.audit)[1]],
             f"split: {json.dumps(result.bundle.metadata['split'])}",
             f"calibration: {result.params['calibration']} (chosen by cross-validated log loss on out-of-fold "
             f"predictions: {json.dumps(result.bundle.metadata['calibration_scores'])})"]
    with staged_folder(out) as tmp:
        write_bundle(result.bundle, tmp)
        write_report(tmp / REPORT_DIR, f"Test report: {Path(data).name}, target {target}", result.y_test,
                     result.predictions, result.comparison, notes, preamble=readiness_lines(result))
        write_csv(predictions_frame(result.y_test, result.predictions), tmp / REPORT_DIR / "test_predictions.csv")
    return result


def evaluate_table(model: str | Path, data: Path, out: Path, seed: int = 0, force: bool = False) -> tuple[dict, Path]:
    """Score a labelled table with a table bundle and compare with logistic regression on the same rows.

    Rows without a target value cannot be evaluated: they are left out, and
    ``result["left_out"]`` counts them (``result["left_out_note"]`` says so, as the report does).

    The logistic regression has no training rows of its own here, so it is
    cross-fitted on the evaluation table (5 stratified folds, each row predicted by
    a model that did not see it): if anything, that favours the baseline.
    """
    from sklearn.model_selection import StratifiedKFold

    check_folder_output(out, owned=is_report_folder, inputs=(model, data), force=force)
    try:
        bundle = load_table_bundle(model)
    except BundleKindError:
        raise ValueError(f"{model}: a model trained on a CRM export; evaluate it on a CRM export folder "
                         f"(--data FOLDER), not on the table {data}") from None
    schema = bundle.schema
    df = read_flat_table(data)
    target = schema.target
    if target not in df.columns:
        raise ValueError(f"{data}: target column {target!r} not found; evaluation needs labelled rows")
    y, _, kept = normalise_target(df[target], target, str(data))
    left_out = int(np.count_nonzero(~kept))
    df, y = df.loc[kept].reset_index(drop=True), y[kept]
    p_model = TableScorer(bundle).predict(df, str(data))
    x = table_matrix(df, schema)
    cat_idx = schema.categorical_positions()
    p_lr = np.empty(len(y))
    n_splits = int(min(5, y.sum(), len(y) - y.sum()))
    if n_splits < 2:
        raise ValueError(f"{data}: need at least two conversions and two non-conversions to evaluate")
    for tr, va in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(x, y):
        p_lr[va] = logistic_baseline(x[tr], y[tr], x[va], cat_idx, seed)
    preds = {"model": p_model, "logistic regression (cross-fitted)": p_lr}
    result = compare(y, preds, ks=(100, 500))
    notes = ["logistic regression is cross-fitted on this table (5 folds), so it sees labelled rows "
             "from the same period; the model saw none of them if this is new data"]
    result["left_out"] = left_out
    result["left_out_note"] = (f"{left_out:,} of {len(kept):,} rows have no {target!r} value and were left out; "
                               f"the figures are over the other {len(kept) - left_out:,}") if left_out else ""
    if left_out:
        notes.insert(0, result["left_out_note"])
    with staged_folder(out) as tmp:
        write_report(tmp, f"Evaluation: {Path(data).name} with {model}", y, preds, result, notes)
        write_csv(pd.DataFrame({"label": y, **preds}), tmp / "predictions.csv")
        write_marker(tmp, REPORT_KIND)
    return result, Path(out) / "report.md"
