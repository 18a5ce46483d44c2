"""Honest evaluation: the model next to simple baselines on the same test rows.

:func:`compare` computes, for every named set of probabilities, ROC AUC, PR AUC,
log loss, Brier, expected calibration error, the lift table (lift per decile and
cumulative gains) and what a sales team working the top K leads gets (precision,
recall, conversions captured), for K = the top decile and any K asked for.
:func:`write_report` writes it as Markdown with a reliability plot and lift /
gains charts. :func:`logistic_baseline` is the comparison a data scientist
would try first: one-hot categories, imputed and scaled numbers, logistic
regression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.output import has_marker
from propensity.modeling.charts import reliability_chart
from propensity.modeling.metrics import classification_metrics, lift_table

__all__ = ["REPORT_KIND", "compare", "is_report_folder", "logistic_baseline", "top_k_metrics", "write_report"]

REPORT_KIND = "evaluation"  # the kind in the marker file of a report folder `propensity evaluate` wrote
# What a report folder held before it carried a marker: such a folder is recognised too.
_UNMARKED_REPORT = {"report.md", "reliability.png", "lift_gains.png", "predictions.csv", "metrics.json"}


def is_report_folder(path: str | Path) -> bool:
    """Whether ``path`` is an evaluation report this tool wrote (so ``evaluate --out`` may replace it)."""
    if has_marker(path, REPORT_KIND):
        return True
    try:
        entries = {p.name for p in Path(path).iterdir()}
    except OSError:
        return False
    return "report.md" in entries and entries <= _UNMARKED_REPORT


def top_k_metrics(y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall and conversions among the ``k`` highest-scored rows (ties broken by row order)."""
    y = np.asarray(y, dtype=int)
    k = int(min(max(k, 1), len(y)))
    top = np.argsort(-np.asarray(p, dtype=float), kind="stable")[:k]
    conv = int(y[top].sum())
    return {"k": float(k), "conversions": float(conv), "precision": conv / k,
            "recall": conv / y.sum() if y.sum() else float("nan")}


def compare(y: np.ndarray, predictions: dict[str, np.ndarray], ks: tuple[int, ...] = ()) -> dict:
    """Metrics, lift tables and top-K figures for each named prediction on the same rows."""
    y = np.asarray(y, dtype=int)
    decile = max(1, int(round(len(y) * 0.1)))
    ks = tuple(sorted({decile, *[k for k in ks if 0 < k <= len(y)]}))
    out = {"rows": len(y), "positives": int(y.sum()), "decile_k": decile, "ks": list(ks), "models": {}}
    for name, p in predictions.items():
        out["models"][name] = {"metrics": classification_metrics(y, p), "lift": lift_table(y, p),
                               "top_k": {str(k): top_k_metrics(y, p, k) for k in ks}}
    return out


def logistic_baseline(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, cat_idx: list[int],
                      seed: int = 0) -> np.ndarray:
    """Logistic regression (one-hot categories, median-imputed and scaled numbers) → test probabilities."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num_idx = [j for j in range(x_train.shape[1]) if j not in set(cat_idx)]
    steps = []
    if num_idx:
        steps.append(("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                                         keep_empty_features=True), StandardScaler()), num_idx))
    if cat_idx:
        steps.append(("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0),
                                           OneHotEncoder(handle_unknown="ignore", min_frequency=5)), cat_idx))
    model = make_pipeline(ColumnTransformer(steps), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(x_train, y_train)
    return model.predict_proba(x_test)[:, 1]


def write_report(out_dir: str | Path, title: str, y: np.ndarray, predictions: dict[str, np.ndarray],
                 result: dict, notes: list[str] = (), preamble: list[str] = (),
                 k_labels: dict[int, str] | None = None) -> Path:
    """Write ``report.md``, ``reliability.png`` and ``lift_gains.png`` into ``out_dir``; returns the Markdown path.

    ``preamble`` lines go right under the title (e.g. which rows were evaluated);
    ``k_labels`` names some Ks in the top-K table (e.g. ``{240: "SQL tier"}``).
    """
    from propensity.modeling.charts import lift_chart

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=int)
    reliability_chart(y, predictions, out / "reliability.png")
    lift_chart({n: m["lift"] for n, m in result["models"].items()}, out / "lift_gains.png")
    names = list(result["models"])
    lines = [f"# {title}", "", *preamble,
             f"Test rows: {result['rows']:,}, conversions: {result['positives']:,} "
             f"(base rate {result['positives'] / max(result['rows'], 1):.2%}). All models on the same rows.", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift", "top_decile_conversion"):
        lines.append(f"| {key} | " + " | ".join(f"{result['models'][n]['metrics'][key]:.4f}" for n in names) + " |")
    lines += ["", "## Top K (what a team with capacity for K leads gets)", "",
              "| K | model | precision | recall | conversions |", "|---|---|---|---|---|"]
    for k in result["ks"]:
        names_k = [*([(k_labels or {})[k]] if k in (k_labels or {}) else []),
                   *(["top decile"] if k == result["decile_k"] else [])]
        label = f"{k:,}" + (f" ({', '.join(names_k)})" if names_k else "")
        for n in names:
            t = result["models"][n]["top_k"][str(k)]
            lines.append(f"| {label} | {n} | {t['precision']:.3f} | {t['recall']:.3f} | {int(t['conversions']):,} |")
    lines += ["", "## Lift by decile and cumulative gains", "",
              "| decile | " + " | ".join(f"{n} lift | {n} gain" for n in names) + " |",
              "|---|" + "---|---|" * len(names)]
    for i in range(len(result["models"][names[0]]["lift"])):
        cells = []
        for n in names:
            r = result["models"][n]["lift"][i]
            cells += [f"{r['lift']:.2f}", f"{r['cumulative_gain']:.3f}"]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines += ["", "![reliability](reliability.png)", "", "![lift and gains](lift_gains.png)", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def predictions_frame(y: np.ndarray, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """The test rows' labels and each model's probability, for the run's artifacts."""
    return pd.DataFrame({"label": np.asarray(y, dtype=int), **{n: np.asarray(p) for n, p in predictions.items()}})
