"""Champion and challenger in the MLflow model registry.

Every training registers a new version with alias ``challenger``. :func:`promote`
scores the challenger and the current ``champion`` on the same recent holdout
(the newest labelled snapshots of a CRM export), and moves ``champion`` to the
challenger only if it wins: ROC AUC at least the champion's, lift at sales
capacity not worse by more than ``tolerance`` (relative), calibration error not
worse by more than ``tolerance`` (absolute). The decision and the figures are
logged as an MLflow run and as tags on the model version. ``force`` promotes
regardless and says so. The challenger's leakage audit (from the MLflow run that
trained it) comes with the decision, so whoever promotes sees its flags.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.config import CutoffConfig
from propensity.core.errors import TrackingError
from propensity.data.export import CrmExport
from propensity.features.cutoffs import training_cutoffs
from propensity.features.pipeline import build_features
from propensity.modeling.metrics import expected_calibration_error

__all__ = ["challenger_audit", "holdout_metrics", "promote"]

CHAMPION, CHALLENGER = "champion", "challenger"


def _version(client, name: str, alias: str, required: bool):
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        raise TrackingError(f"registered model '{name}' does not exist in the registry; "
                            "train one first (propensity train)") from None
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        if required:
            raise TrackingError(f"registered model '{name}' has no version with alias '{alias}'") from None
        return None


def holdout_rows(export: CrmExport, horizon_days: int, newest_fraction: float = 0.2) -> pd.DataFrame:
    """Labelled rows of the newest ``newest_fraction`` of snapshot dates."""
    rows = training_cutoffs(export, CutoffConfig(), horizon_days)
    if rows.empty:
        raise ValueError(f"{export.source}: no labelled snapshots to compare models on")
    dates = np.sort(rows["cutoff"].unique())
    first = dates[max(0, len(dates) - max(1, int(round(len(dates) * newest_fraction))))]
    return rows[rows["cutoff"] >= first].reset_index(drop=True)


def holdout_metrics(scorer, export: CrmExport, rows: pd.DataFrame, capacity: int) -> dict[str, float]:
    """ROC AUC, lift and conversions in the top ``capacity`` rows, and calibration error."""
    from sklearn.metrics import roc_auc_score

    b = scorer.bundle
    frame = build_features(export, rows, b.icp, b.engagement)
    p = scorer.score_features(frame)["probability"].to_numpy()
    y = rows["label"].to_numpy().astype(int)
    top = np.argsort(-p, kind="stable")[:capacity]
    base = y.mean()
    return {"roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
            "lift_at_capacity": float(y[top].mean() / base) if base > 0 else float("nan"),
            "conversions_at_capacity": float(y[top].sum()),
            "ece": expected_calibration_error(y, p), "rows": float(len(y)), "positives": float(y.sum())}


def promote(name: str, export: CrmExport, tracking_uri: str, experiment: str = "propensity",
            capacity: int | None = None, tolerance: float = 0.02, force: bool = False) -> dict:
    """Compare challenger with champion on the same holdout; move ``champion`` if the challenger wins."""
    import mlflow

    from propensity.scoring.scorer import LeadScorer

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    challenger = _version(client, name, CHALLENGER, required=True)
    champion = _version(client, name, CHAMPION, required=False)
    ch_scorer = LeadScorer.load(f"models:/{name}/{challenger.version}")
    ready = ch_scorer.bundle.metadata.get("verdict") or {}
    if ready.get("verdict") == "not ready" and not force:
        raise ValueError(f"challenger {name} v{challenger.version} is not ready: {'; '.join(ready['reasons'])}; "
                         "promote refuses it (pass --force to promote it anyway)")
    audit = challenger_audit(challenger)
    rows = holdout_rows(export, ch_scorer.bundle.horizon_days)
    k = capacity or max(1, len(rows) // 10)
    figures = {"challenger": holdout_metrics(ch_scorer, export, rows, k)}
    if champion is not None and champion.version != challenger.version:
        figures["champion"] = holdout_metrics(LeadScorer.load(f"models:/{name}/{champion.version}"), export, rows, k)
        c, h = figures["challenger"], figures["champion"]
        checks = {
            "roc_auc": c["roc_auc"] >= h["roc_auc"],
            "lift_at_capacity": c["lift_at_capacity"] >= h["lift_at_capacity"] * (1 - tolerance),
            "calibration": c["ece"] <= h["ece"] + tolerance,
        }
        wins = all(checks.values())
    elif champion is not None:
        checks, wins = {"same_version": True}, False
    else:
        checks, wins = {"no_champion_yet": True}, True
    promoted = wins or force
    decision = ("promoted (forced)" if force and not wins else "promoted") if promoted else "kept champion"
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, str(challenger.version))
    client.set_model_version_tag(name, str(challenger.version), "promotion", decision)
    if audit is not None:
        client.set_model_version_tag(name, str(challenger.version), "leakage_flags", str(len(audit["review"])))
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"promote {name} v{challenger.version}") as run:
        mlflow.set_tags({"action": "promote", "decision": decision, "forced": str(force),
                         "challenger_version": str(challenger.version),
                         "champion_version": str(champion.version) if champion is not None else "none"})
        for who, fig in figures.items():
            mlflow.log_metrics({f"{who}_{k2}": v for k2, v in fig.items() if v == v})
        mlflow.log_dict({"checks": checks, "figures": figures, "capacity": k, "tolerance": tolerance,
                         "challenger_audit": audit}, "promotion.json")
    return {"decision": decision, "promoted": promoted, "forced": force and not wins, "checks": checks,
            "figures": figures, "capacity": k, "challenger": challenger.version,
            "champion": champion.version if champion is not None else None, "run_id": run.info.run_id,
            "readiness": ready, "challenger_audit": audit}


def challenger_audit(version) -> dict | None:
    """The leakage audit of the run that trained a model version: ``review`` and ``accepted`` flag lines, its run id.

    None when that run holds no ``leakage_audit.json`` (a model logged some other way).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from propensity.modeling.audit import audit_summary

    if not version.run_id:
        return None
    try:
        findings = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/leakage_audit.json")
    except (MlflowException, OSError, ValueError):
        return None
    review, accepted = audit_summary(findings)
    return {"run_id": version.run_id, "review": review, "accepted": accepted}
