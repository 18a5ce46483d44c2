"""``propensity evaluate`` for a model trained on a CRM export: the honest report on labelled snapshots.

The rows are the labelled point-in-time snapshots of the export (the same
construction as training: :func:`~propensity.features.cutoffs.training_cutoffs`
with the bundle's horizon and snapshot settings), so every label window has fully
elapsed. Which snapshots:

- ``window="new"`` (the default): only snapshots at or after the end of the data the
  model was trained on (``data_end`` in the bundle). Their outcomes all happened
  after anything the model, its calibration or its early stopping saw: a true
  out-of-time test. The export must therefore run at least one horizon past the
  training data.
- ``window="all"``: every labelled snapshot; the report says how many of them fall
  in the model's training, validation and test windows (overlap flatters the model).

The model is scored with its bundle (:class:`~propensity.scoring.scorer.LeadScorer`),
the points baseline is turned into a probability with the isotonic map fitted at
training (stored in the bundle; for older bundles it is cross-fitted here), and
logistic regression, which has no training rows of its own here, is cross-fitted
on the evaluated rows (5 folds, each row predicted by a model that did not see it):
if anything, that favours it. Nothing is written until the work has succeeded; the
report folder is then swapped in whole, and it replaces only a folder that is absent,
empty or a report this tool wrote (or any folder with ``force``; never the working
directory, home, their parents or an input: see :mod:`propensity.core.output`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.csvsafe import write_csv
from propensity.core.output import check_folder_output, staged_folder, write_marker
from propensity.modeling.evaluate import REPORT_KIND, compare, is_report_folder, logistic_baseline, write_report

__all__ = ["WINDOWS", "evaluate_crm"]

WINDOWS = ("new", "all")


def evaluate_crm(model: str | Path, data: Path, out: Path, window: str = "new", seed: int = 0,
                 progress: Callable[[str], None] | None = None, force: bool = False) -> dict:
    """Score the labelled snapshots of the CRM export ``data`` with ``model`` and write the report to ``out``.

    Returns ``{"comparison", "report", "rows", "window", "metrics", "params", "notes"}``.
    Raises ``ValueError`` (one line) when ``data`` is not an export, the model is not a
    CRM model, there are no labelled rows in the chosen window, or ``out`` must not be
    replaced (checked first).
    """
    from propensity.config import CutoffConfig
    from propensity.data.export import read_export
    from propensity.features.cutoffs import training_cutoffs
    from propensity.features.matrix import to_matrix
    from propensity.features.pipeline import build_features
    from propensity.modeling.baseline import baseline_points
    from propensity.modeling.boosting import numeric_matrix
    from propensity.modeling.train import policy_ks, top_k_flat
    from propensity.scoring.bundle_files import BundleKindError
    from propensity.scoring.calibration import Calibrator
    from propensity.scoring.scorer import LeadScorer

    say = progress or (lambda _m: None)
    if window not in WINDOWS:
        raise ValueError(f"--window: expected one of {', '.join(WINDOWS)}, got {window!r}")
    check_folder_output(out, owned=is_report_folder, inputs=(model, data), force=force)
    data = Path(data)
    if not data.is_dir():
        raise ValueError(f"{data}: not a folder; a model trained on a CRM export is evaluated on a CRM export folder "
                         "(accounts, leads, activities, opportunities)")
    try:
        scorer = LeadScorer.load(model)
    except BundleKindError:
        if not Path(str(model)).is_dir():
            raise
        raise ValueError(f"{model}: a model trained on a flat table; evaluate it on a labelled table file "
                         f"(--data FILE.csv), not on the folder {data}") from None
    bundle = scorer.bundle
    meta = bundle.metadata
    say(f"reading {data}")
    export = read_export(data)
    cut_cfg = CutoffConfig(**meta["cutoffs"]) if isinstance(meta.get("cutoffs"), dict) else CutoffConfig()
    rows = training_cutoffs(export, cut_cfg, bundle.horizon_days)
    if rows.empty:
        raise ValueError(f"{data}: no labelled snapshots; the data spans less than the model's "
                         f"{bundle.horizon_days}-day horizon")
    train_end = pd.Timestamp(meta["data_end"]) if meta.get("data_end") else None
    if train_end is not None and train_end.tzinfo is None:
        train_end = train_end.tz_localize("UTC")
    labelled = (rows["cutoff"].min().date(), rows["cutoff"].max().date(), len(rows))
    if window == "new":
        if train_end is None:
            raise ValueError(f"{model}: the bundle does not record where its training data ends; "
                             "use --window all")
        rows = rows[rows["cutoff"] >= train_end].reset_index(drop=True)
        if rows.empty:
            need = (train_end + pd.Timedelta(days=bundle.horizon_days)).date()
            raise ValueError(f"{data}: no labelled snapshots after the model's training data (which ends "
                             f"{train_end.date()}; this export's labelled snapshots run "
                             f"{labelled[0]} .. {labelled[1]}); "
                             f"outcomes need {bundle.horizon_days} days, so the export must reach past {need}; "
                             "or pass --window all to evaluate on snapshots that overlap training")
    y = rows["label"].to_numpy().astype(int)
    if y.sum() < 2 or len(y) - y.sum() < 2:
        raise ValueError(f"{data}: {len(y):,} labelled snapshots in window '{window}' with {int(y.sum())} "
                         "closed won; need at least two conversions and two non-conversions to evaluate")

    say(f"building features for {len(rows):,} labelled snapshots")
    frame = build_features(export, rows, bundle.icp, bundle.engagement)
    say("scoring them with the model")
    p_model = scorer.score_features(frame)["probability"].to_numpy(dtype=float)

    points = baseline_points(frame, bundle.icp, bundle.engagement)
    base = meta.get("baseline_calibration")
    notes: list[str] = []
    if base:
        lo, hi = float(base["lo"]), float(base["hi"])
        scaled = (points - lo) / (hi - lo) if hi > lo else np.zeros_like(points, dtype=float)
        p_base = Calibrator.from_dict(base["calibrator"])(scaled)
        notes.append("points baseline: points mapped to a probability by the isotonic map fitted on the "
                     "model's validation window at training (no label of these rows used)")
    else:
        p_base = _cross_fitted_isotonic(points, y, seed)
        notes.append("points baseline: this bundle stores no baseline calibration, so the points are mapped to a "
                     "probability by isotonic regression cross-fitted on these rows (5 folds)")

    say("cross-fitting logistic regression on the same rows")
    x = to_matrix(frame, bundle.spec, bundle.categories)
    xn, cat_idx = numeric_matrix(x)
    p_lr = np.empty(len(y))
    from sklearn.model_selection import StratifiedKFold

    n_splits = int(min(5, y.sum(), len(y) - y.sum()))
    for tr, va in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(xn, y):
        p_lr[va] = logistic_baseline(xn[tr], y[tr], xn[va], cat_idx, seed)
    notes.append(f"logistic regression is cross-fitted on these rows ({n_splits} folds): it learns from labels of "
                 "the evaluated period, which the model never saw, so the comparison favours it")

    named_ks, policy = policy_ks(bundle.tiers, p_model)
    preds = {"model": p_model, "points baseline": p_base, "logistic regression (cross-fitted)": p_lr}
    comparison = compare(y, preds, ks=tuple(named_ks.values()))
    named_ks["top_decile"] = comparison["decile_k"]

    window_text = _window_statement(rows, window, train_end, meta, labelled)
    notes.append(f"top K: tier policy {policy}; all snapshots of the window are pooled and ranked together")
    preamble = [f"**Model**: `{model}` (trained on `{meta.get('data', '?')}`, data ending "
                f"{train_end.date() if train_end is not None else 'unknown'}; label: {meta.get('label', '?')}).",
                "", f"**Rows**: {window_text}", ""]
    flat = top_k_flat(comparison, named_ks)
    metrics = {n: {**c["metrics"], **flat[n]} for n, c in comparison["models"].items()}
    pred_frame = rows[["lead_id", "cutoff", "label"]].copy()
    pred_frame["probability"] = p_model
    pred_frame["baseline"] = p_base
    pred_frame["logistic_cross_fitted"] = p_lr
    with staged_folder(out) as tmp:
        write_report(tmp, f"Evaluation: {data.name} with {Path(str(model)).name}", y, preds, comparison,
                     notes, preamble=preamble,
                     k_labels={k: {"capacity": "sales capacity", "sql_tier": "SQL tier"}[lab]
                               for lab, k in named_ks.items() if lab in ("capacity", "sql_tier")})
        write_csv(pred_frame, tmp / "predictions.csv")
        (tmp / "metrics.json").write_text(json.dumps({"window": window, "rows": window_text, "policy": policy,
                                                      "ks": named_ks, "metrics": metrics}, indent=2, default=str),
                                          encoding="utf-8")
        write_marker(tmp, REPORT_KIND)
    path = Path(out) / "report.md"
    params = {"model": str(model), "data": str(data), "window": window, "horizon_days": bundle.horizon_days,
              "first_cutoff": str(rows["cutoff"].min().date()), "last_cutoff": str(rows["cutoff"].max().date()),
              "rows": len(rows)}
    return {"comparison": comparison, "report": path, "rows": len(rows), "window": window,
            "window_text": window_text, "metrics": metrics, "params": params, "notes": notes, "ks": named_ks}


def _window_statement(rows: pd.DataFrame, window: str, train_end, meta: dict, labelled: tuple) -> str:
    first, last = rows["cutoff"].min().date(), rows["cutoff"].max().date()
    n_dates = rows["cutoff"].nunique()
    text = (f"{len(rows):,} labelled lead snapshots at {n_dates} snapshot date(s), {first} .. {last} "
            f"(window `{window}`; the export holds {labelled[2]:,} labelled snapshots, "
            f"{labelled[0]} .. {labelled[1]}).")
    if window == "new":
        return text + (f" All are at or after the end of the model's training data ({train_end.date()}): "
                       "no outcome, feature window or choice of the model overlaps them.")
    split = meta.get("split") or {}
    if train_end is None or not split:
        return text + " The model's training windows are unknown, so overlap cannot be stated."
    c = rows["cutoff"].dt.date.astype(str)
    parts = []
    for name in ("train", "valid", "test"):
        w = split.get(name)
        if w:
            n = int(((c >= w["first_cutoff"]) & (c <= w["last_cutoff"])).sum())
            parts.append(f"{n:,} in its {name} window ({w['first_cutoff']} .. {w['last_cutoff']})")
    after = int((rows["cutoff"] >= train_end).sum())
    return text + (" **These rows overlap the model's own data**: " + ", ".join(parts) +
                   f"; {after:,} are after its training data ended (the rest fall between those windows or "
                   "after the test window, inside the period it was trained on). Figures on rows the model or its "
                   "calibration learned from flatter it.")


def _cross_fitted_isotonic(points: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    from propensity.modeling.calibrate import fit_calibration

    out = np.empty(len(y))
    n_splits = int(min(5, y.sum(), len(y) - y.sum()))
    for tr, va in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(points.reshape(-1, 1), y):
        out[va] = fit_calibration("isotonic", points[tr], y[tr])(points[va])
    return out
