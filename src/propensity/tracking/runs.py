"""MLflow tracking: one run per training, with config, metrics, charts and the model.

The default store is MLflow's embedded SQLite store ``mlflow.db`` in the working
directory (it also holds the model registry); ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` points elsewhere. MLflow is imported lazily.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from propensity.core.errors import TrackingError

__all__ = ["TrackingError", "check_tracking", "experiment_named", "log_report_run", "log_training",
           "resolve_tracking_uri", "training_description"]


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any expensive work, when a remote tracking server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            if resp.status != 200:
                raise TrackingError(f"MLflow tracking server {uri} answered HTTP {resp.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow tracking server {uri} cannot be reached ({reason}); "
                            "start it or pass --tracking-uri") from None


def log_training(result, project, bundle_path: Path, tracking_uri: str) -> dict:
    """Log a :class:`~propensity.modeling.train.TrainResult` as one MLflow run.

    Logs parameters, the model's and the baseline's test metrics, the config files,
    the split, calibration / lift / SHAP charts, the bundle, and registers the model
    (models-from-code pyfunc around the bundle). Returns run id, experiment id,
    registered model name and version.
    """
    import mlflow

    from propensity.core.native import predict
    from propensity.modeling.audit import audit_summary
    from propensity.modeling.charts import calibration_chart, lift_chart, shap_summary_chart, tier_chart
    from propensity.modeling.report import model_card, sampling_line
    from propensity.scoring.scorer import LeadScorer
    from propensity.tracking.datasets import log_folder_input
    from propensity.tracking.pyfunc import CRM_OUTPUT, log_bundle_model

    cfg = project.training
    mlflow.set_tracking_uri(tracking_uri)
    experiment = experiment_named(mlflow, cfg.tracking.experiment, tracking_uri)
    meta = result.bundle.metadata
    with mlflow.start_run(run_name=f"train crm {str(meta['data_end'])[:10]}",
                          description=training_description(result)) as run, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if Path(meta["data"]).exists():
            log_folder_input(mlflow, meta["data"], f"crm export {Path(meta['data']).name}", "training",
                             {f"{part}_rows": result.split[part]["rows"] for part in ("train", "valid", "test")})
        params = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in result.params.items()
                  if k != "monotone_constraints"}
        mlflow.log_params(params)
        test = result.split["test"]
        mlflow.set_tags({"label": meta["label"], "data": meta["data"], "data_end": meta["data_end"],
                         "horizon_days": str(cfg.label.horizon_days),
                         "test_window": f"{test['first_cutoff']}..{test['last_cutoff']}",
                         **({"sampling": sampling_line(result.sampling)} if getattr(result, "sampling", None)
                            else {})})
        for who, metrics in result.metrics.items():
            mlflow.log_metrics({f"{who}_{k}": v for k, v in metrics.items() if v == v})
        top_k = getattr(result, "top_k", None)
        if top_k and getattr(result, "comparison", None):
            from propensity.modeling.train import top_k_flat

            for who, values in top_k_flat(result.comparison, top_k["ks"]).items():
                mlflow.log_metrics({f"{who}_{k}": v for k, v in values.items() if v == v})
            mlflow.log_dict({"policy": top_k["policy"], "ks": top_k["ks"],
                             "top_k": {w: c["top_k"] for w, c in result.comparison["models"].items()}}, "top_k.json")
        calibration = getattr(result, "calibration", None)
        if calibration:
            mlflow.set_tag("calibration", calibration["method"])
            mlflow.log_dict(calibration, "calibration.json")
        for part in ("train", "valid", "test"):
            if part in result.split:
                mlflow.log_metric(f"{part}_rows", result.split[part]["rows"])
        family, ready = getattr(result, "family", None) or {}, getattr(result, "verdict", None) or {}
        if family:
            mlflow.set_tag("model_family", family["chosen"])
            mlflow.log_dict(family, "family.json")
        if ready:
            mlflow.set_tag("readiness", ready["verdict"])
            mlflow.set_tag("readiness_reasons", "; ".join(ready["reasons"])[:4000] or "none")
            mlflow.log_dict({"verdict": ready, "calibration_checks": getattr(result, "checks", {})},
                            "readiness.json")
        mlflow.log_dict(result.split, "split.json")
        mlflow.log_dict(result.lift, "lift.json")
        mlflow.log_text(model_card(result, project), "model_card.md")
        if result.segments:
            mlflow.log_dict({"min_conversions": 30, "segments": result.segments}, "segments.json")
        audit = getattr(result, "audit", None)
        if audit:
            mlflow.log_dict(audit, "leakage_audit.json")
            review, accepted = audit_summary(audit)
            columns = sorted({f["column"] for f in audit["flags"] if f["column"] and not f["accepted"]})
            mlflow.set_tags({"leakage_flags": str(len(review)), "leakage_flags_accepted": str(len(accepted)),
                             "leakage_flagged_columns": ", ".join(columns)[:4000]})
        mlflow.log_artifact(str(project.training_path), "config/training")
        for name in ("icp.yaml", "engagement.yaml"):
            mlflow.log_artifact(str(project.features_dir / name), "config/features")
        scorer_contrib = predict(result.bundle.booster, result.sample_matrix, pred_contrib=True)
        written = Path(bundle_path) / "report" / "charts"  # the CLI writes the report into the bundle
        charts = [written / name if (written / name).exists() else make(tmpd / name) for name, make in (
            ("calibration.png", lambda path: calibration_chart(result.test, path)),
            ("lift_gains.png", lambda path: lift_chart(result.lift, path)),
            ("score_by_tier.png", lambda path: tier_chart(result.test, cfg.tiers.mql, cfg.tiers.sql, path)),
        )]
        charts.append(shap_summary_chart(scorer_contrib, result.sample_matrix, tmpd / "shap_summary.png"))
        for c in charts:
            mlflow.log_artifact(str(c), "charts")
        example = _input_example(result)
        output = LeadScorer(result.bundle).score_features(example)[list(CRM_OUTPUT)]
        model = log_bundle_model(mlflow, Path(bundle_path), cfg.tracking.registered_model, example, output=output,
                                 with_report=True)
        return {"run_id": run.info.run_id, "experiment_id": experiment.experiment_id,
                "experiment": cfg.tracking.experiment, "model_uri": model["model_uri"],
                "registered_model": cfg.tracking.registered_model, "version": model["version"],
                "tracking_uri": tracking_uri}


def training_description(result) -> str:
    """A CRM training run's description in MLflow: the model card's headline figures."""
    m, test = result.metrics["model"], result.split["test"]
    others = ", ".join(f"{who} {v['roc_auc']:.3f}" for who, v in result.metrics.items() if who != "model")
    return (f"ROC AUC {m['roc_auc']:.3f} (PR AUC {m['pr_auc']:.3f}, ECE {m['ece']:.4f}) on {test['rows']:,} test "
            f"rows, cutoffs {test['first_cutoff']}..{test['last_cutoff']}; baselines: {others}. Label: "
            f"{result.bundle.metadata['label']}; calibration {result.bundle.calibrator.method}.")


def log_report_run(report_dir: Path, metrics: dict[str, dict[str, float]], params: dict, tags: dict,
                   tracking_uri: str, experiment: str = "propensity", run_name: str | None = None,
                   bundle_path: Path | None = None, registered_model: str | None = None,
                   input_example=None, description: str | None = None, data: str | Path | None = None,
                   data_rows: dict[str, int] | None = None) -> dict:
    """Log a report folder (Markdown, charts, JSON) as one new MLflow run.

    ``metrics`` is ``{model_name: {metric: value}}``, logged as ``<model>_<metric>``.
    Used by table training and by ``propensity evaluate``; returns the run id and experiment.
    With ``bundle_path`` the bundle is logged as a pyfunc model (models-from-code) and,
    with ``registered_model``, registered as a new version with alias ``challenger``
    (table training: ``models:/NAME@challenger`` then loads with ``mlflow.pyfunc``).
    ``description`` is the run's description; ``data`` (a folder or table) is logged as
    its input dataset with ``data_rows`` as input tags.
    """
    import mlflow

    from propensity.tracking.datasets import log_folder_input
    from propensity.tracking.pyfunc import log_bundle_model

    mlflow.set_tracking_uri(tracking_uri)
    exp = experiment_named(mlflow, experiment, tracking_uri)
    with mlflow.start_run(run_name=run_name, description=description) as run:
        if data is not None and Path(data).exists():
            log_folder_input(mlflow, data, Path(data).name, "evaluation" if tags.get("kind") == "evaluation"
                             else "training", data_rows or {})
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in params.items()})
        mlflow.set_tags({k: str(v) for k, v in tags.items()})
        for who, values in metrics.items():
            key = "".join(ch if ch.isalnum() else "_" for ch in who)
            mlflow.log_metrics({f"{key}_{k}": float(v) for k, v in values.items() if v == v})
        mlflow.log_artifacts(str(report_dir), "report")
        out = {"run_id": run.info.run_id, "experiment_id": exp.experiment_id, "experiment": experiment,
               "tracking_uri": tracking_uri, "registered_model": registered_model, "version": None}
        if bundle_path is not None:
            out.update(log_bundle_model(mlflow, Path(bundle_path), registered_model, input_example))
        return out


def experiment_named(mlflow, name: str, tracking_uri: str):
    """Get or create the experiment; with a SQLite store, artifacts live beside the database
    (``mlartifacts/``) instead of wherever the process happens to run."""
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            location = (db.parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    return mlflow.set_experiment(name)


def _input_example(result):
    """A few real feature rows of the test window, as the pyfunc expects them."""
    sample = result.sample_matrix.head(5).copy()
    for col in sample.columns:
        if hasattr(sample[col], "cat"):
            sample[col] = sample[col].astype(object)
    sample.insert(0, "lead_id", [f"example-{i}" for i in range(len(sample))])
    return sample.reset_index(drop=True)
