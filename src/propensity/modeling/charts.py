"""Charts for the training report: calibration, lift and gains, SHAP summary.

matplotlib and shap are imported inside the functions, with the Agg backend, so
importing this module costs nothing and no window ever opens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["calibration_chart", "lift_chart", "reliability_chart", "shap_summary_chart", "tier_chart"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_chart(y: np.ndarray, predictions: dict[str, np.ndarray], path: Path, bins: int = 10,
                      title: str = "Reliability on the test rows") -> Path:
    """Predicted vs observed conversion rate over equal-count bins, one line per model."""
    plt = _plt()
    y = np.asarray(y)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for name, p in predictions.items():
        p = np.asarray(p, dtype=float)
        order = np.argsort(p, kind="stable")
        chunks = [c for c in np.array_split(order, bins) if len(c)]
        pred = [float(p[c].mean()) for c in chunks]
        obs = [float(y[c].mean()) for c in chunks]
        top = max(top, *pred, *obs)
        ax.plot(pred, obs, marker="o", label=name)
    ax.plot([0, top], [0, top], ls="--", c="grey", lw=1, label="perfect")
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed conversion rate")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration_chart(test: pd.DataFrame, path: Path, bins: int = 10) -> Path:
    """Reliability diagram of the model, the points baseline and (when present) logistic regression."""
    preds = {"model": test["probability"].to_numpy(), "points baseline": test["baseline"].to_numpy()}
    if "logistic" in test.columns:
        preds["logistic regression"] = test["logistic"].to_numpy()
    return reliability_chart(test["label"].to_numpy(), preds, path, bins, title="Calibration on the test window")


_LABELS = {"baseline": "points baseline", "logistic": "logistic regression"}  # legend names of result keys


def lift_chart(lift: dict[str, list[dict]], path: Path) -> Path:
    """Lift per decile and cumulative gains, model vs baseline."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    for key, rows in lift.items():
        name = _LABELS.get(key, key)
        d = [r["decile"] for r in rows]
        a.plot(d, [r["lift"] for r in rows], marker="o", label=name)
        b.plot([0] + [x / len(d) for x in d], [0] + [r["cumulative_gain"] for r in rows], marker="o", label=name)
    a.axhline(1.0, ls="--", c="grey", lw=1)
    a.set_xlabel("score decile (1 = best)")
    a.set_ylabel("lift")
    a.set_title("Lift by decile")
    b.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="random")
    b.set_xlabel("share of leads worked")
    b.set_ylabel("share of conversions captured")
    b.set_title("Cumulative gains")
    for ax in (a, b):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shap_summary_chart(contrib: np.ndarray, matrix: pd.DataFrame, path: Path, max_display: int = 20) -> Path:
    """SHAP beeswarm of the test sample (values from LightGBM's exact ``pred_contrib``)."""
    import shap

    plt = _plt()
    numeric = matrix.copy()
    for col in numeric.columns:
        if isinstance(numeric[col].dtype, pd.CategoricalDtype):
            numeric[col] = numeric[col].cat.codes.replace(-1, np.nan).astype(float)
    shap.summary_plot(contrib[:, :-1], numeric, max_display=max_display, show=False)
    fig = plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tier_chart(test: pd.DataFrame, mql: float, sql: float, path: Path) -> Path:
    """Score distribution of the test rows by tier, with each tier's observed conversion rate."""
    plt = _plt()
    p = test["probability"].to_numpy()
    y = test["label"].to_numpy()
    tiers = [("nurture", p < mql), ("MQL", (p >= mql) & (p < sql)), ("SQL", p >= sql)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, max(float(p.max()), sql * 1.2, 1e-3), 40)
    colors = ["#999999", "#4c72b0", "#dd8452"]
    for (name, mask), color in zip(tiers, colors, strict=True):
        a.hist(p[mask], bins=bins, alpha=0.8, color=color, label=f"{name} ({int(mask.sum()):,})")
    a.set_yscale("log")
    a.set_xlabel("calibrated probability")
    a.set_ylabel("lead snapshots (log)")
    a.set_title("Score distribution by tier (test window)")
    a.legend()
    names = [n for n, _ in tiers]
    rates = [float(y[m].mean()) if m.any() else 0.0 for _, m in tiers]
    b.bar(names, rates, color=colors)
    for i, (r, (_, m)) in enumerate(zip(rates, tiers, strict=True)):
        b.text(i, r, f"{r:.1%}\n{int(y[m].sum())} won", ha="center", va="bottom")
    b.set_ylabel("observed conversion rate")
    b.set_title("Conversion by tier")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
