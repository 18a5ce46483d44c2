"""The model card: what a reviewer needs to trust (or distrust) a trained model.

Plain Markdown built from a :class:`~propensity.modeling.train.TrainResult`: the
data and its window, the label and horizon, metrics against the points baseline,
sufficiency per segment (are there enough conversions to trust the model there?),
the leakage audit when present, and known limits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.csvsafe import write_csv
from propensity.features.spec import FeatureDef

__all__ = ["MIN_CONVERSIONS", "model_card", "readiness_lines", "segment_sufficiency", "top_k_lines",
           "write_training_report"]

MIN_CONVERSIONS = 30  # below this many training conversions a segment's scores rest on thin evidence


def segment_sufficiency(frame: pd.DataFrame, train_mask: np.ndarray, test_mask: np.ndarray,
                        spec: list[FeatureDef], max_values: int = 12) -> list[dict]:
    """Training rows and conversions per value of each categorical fit field.

    ``enough`` is true when the segment has at least :data:`MIN_CONVERSIONS`
    conversions in training; unknown values form their own segment.
    """
    rows = []
    y = frame["label"].to_numpy()
    for f in spec:
        if f.family != "fit" or f.kind != "categorical":
            continue
        values = frame[f.name].astype(object).where(frame[f.name].notna(), "(unknown)").astype(str).to_numpy()
        counts = pd.Series(values[train_mask]).value_counts()
        for value in counts.index[:max_values]:
            in_seg = values == value
            tr, te = in_seg & train_mask, in_seg & test_mask
            conv = int(y[tr].sum())
            rows.append({"field": f.display, "value": value, "train_rows": int(tr.sum()), "train_conversions": conv,
                         "test_rows": int(te.sum()), "test_conversions": int(y[te].sum()),
                         "enough": conv >= MIN_CONVERSIONS})
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(str(r[c]) for c in columns) + " |\n" for r in rows)


def top_k_lines(comparison: dict, named_ks: dict[str, int], names: dict[str, str]) -> list[str]:
    """Markdown table: precision, recall and conversions captured in the top K, per model."""
    labels = {"capacity": "sales capacity", "sql_tier": "SQL tier", "top_decile": "top decile"}
    by_k: dict[int, list[str]] = {}
    for label, k in named_ks.items():
        by_k.setdefault(k, []).append(labels.get(label, f"fixed {label}"))
    lines = ["| K | what | model | precision | recall | conversions |", "|---|---|---|---|---|---|"]
    for k in sorted(by_k):
        for who, c in comparison["models"].items():
            t = c["top_k"].get(str(k))
            if t is None:
                continue
            lines.append(f"| {k:,} | {', '.join(by_k[k])} | {names.get(who, who)} | {t['precision']:.3f} | "
                         f"{t['recall']:.3f} | {int(t['conversions']):,} |")
    return lines


def readiness_lines(result) -> list[str]:
    """The card's family choice, readiness verdict and calibration checks (Markdown bullets)."""
    family = getattr(result, "family", None) or {}
    verdict = getattr(result, "verdict", None) or {}
    checks = getattr(result, "checks", None) or {}
    lines: list[str] = []
    if verdict:
        lines.append(f"- Readiness: **{verdict['verdict']}**"
                     + (": " + "; ".join(verdict["reasons"]) if verdict.get("reasons") else ""))
    if family:
        lines.append(f"- Family: **{family['chosen']}** ({family['why']}).")
        margin = family.get("test_auc_margin", {})
        if margin and not np.isnan(margin.get("margin", np.nan)):
            lo, hi = margin["margin_interval"]
            lines.append(f"- Test ROC AUC {margin['auc']:.4f} (95% interval {margin['auc_interval'][0]:.4f}-"
                         f"{margin['auc_interval'][1]:.4f}), {margin['margin']:+.4f} over the {margin['over']} "
                         f"family (interval {lo:+.4f} to {hi:+.4f}).")
        rows = family.get("validation", {})
        if rows:
            lines.append("- Validation windows, calibrated log loss / ROC AUC: " + "; ".join(
                f"{n} {j['log_loss']:.4f} / {j['auc']:.4f}" + ("" if j.get("eligible", True) else " (set aside)")
                for n, j in rows.items()) + ".")
    if checks:
        lo, hi = checks["ece_interval"]
        lines.append(f"- Calibration on the test window: ECE {checks['ece']:.4f} (95% interval {lo:.4f}-{hi:.4f}); "
                     f"predicted rate {checks['predicted_rate']:.2%} (interval {checks['predicted_interval'][0]:.2%}"
                     f"-{checks['predicted_interval'][1]:.2%}), observed {checks['observed_rate']:.2%}"
                     + (" **outside the predicted interval: the world has moved**" if checks["observed_outside"]
                        else "") + ".")
        shift = checks.get("prior_shift", {})
        if shift.get("moved"):
            lines.append(f"- Prior shift: the base rate moved from {shift['train_rate']:.2%} (training rows) to "
                         f"{shift['newest_rate']:.2%} (newest validation window); the calibrator, fitted on the "
                         "newest window, corrects the intercept.")
    return lines


def sampling_line(sampling: dict) -> str:
    """One sentence on how a training table built on Spark was down-sampled (empty for an in-process table)."""
    if not sampling:
        return ""
    head = (f"Training table built on Spark: {sampling['rows_before']:,} rows, {sampling['positives']:,} "
            "conversions")
    if sampling["negative_rate"] >= 1:
        return f"{head}; no sampling (all rows fit spark.max_rows = {sampling['max_rows']:,})."
    return (f"{head}; all conversions and the test window ({sampling['test_rows']:,} rows from "
            f"{str(sampling['test_first_cutoff'])[:10]}) kept, the negatives before it sampled at rate "
            f"{sampling['negative_rate']:.4g} ({sampling['negatives_kept']:,} of {sampling['negatives_before']:,}, "
            f"seed {sampling['seed']}), each weighing {sampling['negative_weight']:.4g} in calibration and "
            f"validation: {sampling['rows_after']:,} rows trained on.")


def model_card(result, project) -> str:
    """Markdown model card for one training run."""
    meta = result.bundle.metadata
    cfg = project.training
    names = {"model": "model", "baseline": "points baseline", "logistic": "logistic regression"}
    who = [w for w in ("model", "baseline", "logistic") if w in result.metrics]
    m = result.metrics["model"]
    lines = [
        "# Model card: lead propensity",
        "",
        "## Data",
        f"- Source: `{meta['data']}`, data ends {meta['data_end']}",
        f"- Snapshots every {cfg.cutoffs.every_days} days; leads older than {cfg.cutoffs.max_lead_age_days} days "
        "at a snapshot and leads that already have an opportunity are left out.",
    ]
    sampled = sampling_line(getattr(result, "sampling", None) or {})
    if sampled:
        lines.append(f"- {sampled} Row counts below are of the rows trained on.")
    for part in ("train", "valid", "test"):
        info = result.split.get(part)
        if info:
            got = f", {info['positives']:,} conversions" if "positives" in info else ""
            lines.append(f"- {part}: {info['rows']:,} rows{got}, cutoffs {info['first_cutoff']} .. "
                         f"{info['last_cutoff']}")
    windows = result.split.get("windows", [])
    if len(windows) > 1:
        lines.append(f"- {len(windows)} rolling-origin validation windows (each with its own purged training rows) "
                     "decided the family: " + "; ".join(
                         f"{w['valid']['first_cutoff']} .. {w['valid']['last_cutoff']} "
                         f"({w['valid'].get('positives', '?')} conversions)" for w in windows))
    for note in result.split.get("notes", []):
        lines.append(f"- Split: {note}")
    lines += [
        "",
        "## Label",
        f"- 1 when the lead has an opportunity that closes won within **{cfg.label.horizon_days} days** after the "
        "cutoff; snapshots whose horizon has not elapsed by the end of the data are not used.",
        "- Features see only activities that occurred and were recorded strictly before the cutoff.",
        "",
        "## Model",
    ]
    lines += readiness_lines(result)
    cal = getattr(result, "calibration", None) or {}
    if cal:
        how = ("5-fold cross-validated log loss over the newest validation window's predictions: "
               + ", ".join(f"{k} {v['log_loss']:.5f}" for k, v in cal.get("scores", {}).items())
               + "; sigmoid unless isotonic is better by more than one standard error"
               if cal.get("config") == "auto" else "as configured")
        clip = f", clipped to [{cal['clip']:.2g}, 1 - {cal['clip']:.2g}]" if cal.get("clip") else ""
        lines.append(f"- Calibration: **{cal.get('method')}** (config `{cal.get('config')}`; {how}), fitted on the "
                     f"newest validation window{clip}.")
    tuning = getattr(result, "tuning", None) or {}
    if tuning.get("budget_s"):
        lines.append(f"- Parameter search: {tuning.get('trials')} parameter sets in {tuning.get('seconds')}s "
                     f"(budget {tuning['budget_s']:g}s), judged by validation ROC AUC "
                     f"({tuning.get('valid_auc', float('nan')):.4f}); kept: {tuning.get('chosen')}.")
    else:
        lines.append("- Parameter search: off (`tuning.crm_budget_seconds: 0`); the `model:` settings are used.")
    if meta.get("family", {}).get("chosen", "lightgbm") == "lightgbm":
        stop = "ROC AUC" if tuning.get("chosen") == "search" else "log loss"
        lines.append(f"- Trees: {meta.get('best_iteration')} (early stopping on the validation window's {stop}).")
    lines += [
        "",
        "## Test-window metrics (same rows for all)",
        "",
        "Logistic regression (one-hot categories, imputed and scaled numbers) is fitted on the training window; "
        "the points baseline's points are mapped to a probability by isotonic regression on the validation window.",
        "",
        "| metric | " + " | ".join(names[w] for w in who) + " |",
        "|---|" + "---|" * len(who),
    ]
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift", "top_decile_conversion"):
        lines.append(f"| {key} | " + " | ".join(f"{result.metrics[w][key]:.4f}" for w in who) + " |")
    lines += ["", f"Test rows: {int(m['rows']):,}, conversions: {int(m['positives']):,} "
              f"(base rate {m['base_rate']:.2%}). ECE: mean |observed - predicted| over 10 equal-count bins.", ""]
    comparison = getattr(result, "comparison", None) or {}
    top_k = getattr(result, "top_k", None) or {}
    if comparison and top_k:
        lines += ["## Top K: what a sales team working K leads gets", "",
                  f"Tier policy: {top_k.get('policy', '')}. The test window's snapshots are pooled and ranked "
                  "together.", "", *top_k_lines(comparison, top_k["ks"], names), ""]
    lines += ["## Charts", "", "![calibration](charts/calibration.png)", "", "![lift and gains](charts/lift_gains.png)",
              "", "![score by tier](charts/score_by_tier.png)", ""]
    segments = getattr(result, "segments", [])
    if segments:
        thin = [s for s in segments if not s["enough"]]
        lines += ["## Sufficiency per segment",
                  f"A segment needs at least {MIN_CONVERSIONS} training conversions before its scores rest on its own "
                  f"evidence; {len(thin)} of {len(segments)} segments below fall short.", "",
                  _table(segments, ["field", "value", "train_rows", "train_conversions", "test_rows",
                                    "test_conversions", "enough"])]
    audit = getattr(result, "audit", None)
    if audit:
        try:
            from propensity.modeling.audit import to_markdown

            lines += [to_markdown(audit), ""]  # the section brings its own heading
        except ImportError:
            pass
    lines += [
        "## Known limits",
        "- Trained on this company's history: segments marked not enough above, new markets or new activity "
        "types are extrapolation.",
        "- Probabilities are calibrated on the validation window; re-check calibration when the conversion rate "
        "drifts.",
        "- Reasons are exact SHAP values of the raw model, shared out in probability points; they explain the "
        "model, not causes.",
        "",
    ]
    return "\n".join(lines)


def write_training_report(result, project, out_dir) -> Path:
    """Write ``model_card.md``, ``charts/`` (calibration, lift and gains, score by tier) and
    ``test_predictions.csv`` into ``out_dir``; returns the model card's path."""
    from propensity.modeling.charts import calibration_chart, lift_chart, tier_chart

    out = Path(out_dir)
    charts = out / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    cfg = project.training
    calibration_chart(result.test, charts / "calibration.png")
    lift_chart(result.lift, charts / "lift_gains.png")
    tier_chart(result.test, cfg.tiers.mql, cfg.tiers.sql, charts / "score_by_tier.png")
    write_csv(result.test, out / "test_predictions.csv")
    path = out / "model_card.md"
    path.write_text(model_card(result, project), encoding="utf-8")
    return path
