"""The model card: what a reviewer needs to trust (or distrust) a trained model.

Plain Markdown built from a :class:`~propensity.modeling.train.TrainResult`: the
data and its window, the label and horizon, metrics against the points baseline,
sufficiency per segment (are there enough conversions to trust the model there?),
the leakage audit when present, and known limits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.features.spec import FeatureDef

__all__ = ["MIN_CONVERSIONS", "model_card", "segment_sufficiency"]

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


def model_card(result, project) -> str:
    """Markdown model card for one training run."""
    meta = result.bundle.metadata
    m, b = result.metrics["model"], result.metrics["baseline"]
    cfg = project.training
    lines = [
        "# Model card: lead propensity",
        "",
        "## Data",
        f"- Source: `{meta['data']}`, data ends {meta['data_end']}",
        f"- Snapshots every {cfg.cutoffs.every_days} days; leads older than {cfg.cutoffs.max_lead_age_days} days "
        "at a snapshot and leads that already have an opportunity are left out.",
    ]
    for part, info in result.split.items():
        lines.append(f"- {part}: {info['rows']:,} rows, cutoffs {info['first_cutoff']} .. {info['last_cutoff']}")
    lines += [
        "",
        "## Label",
        f"- 1 when the lead has an opportunity that closes won within **{cfg.label.horizon_days} days** after the "
        "cutoff; snapshots whose horizon has not elapsed by the end of the data are not used.",
        "- Features see only activities that occurred and were recorded strictly before the cutoff.",
        "",
        "## Test-window metrics (same rows for both)",
        "",
        "| metric | model | points baseline |",
        "|---|---|---|",
    ]
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift", "top_decile_conversion"):
        lines.append(f"| {key} | {m[key]:.4f} | {b[key]:.4f} |")
    lines += ["", f"Test rows: {int(m['rows']):,}, conversions: {int(m['positives']):,} "
              f"(base rate {m['base_rate']:.2%}).", ""]
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

            lines += ["## Leakage audit", to_markdown(audit), ""]
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
