"""The MLflow run of ``propensity monitor``: in the model's experiment, metrics per scoring run as steps.

Each scoring run is one step (in as-of order) of ``score_psi``, ``drift_share``,
``estimated_auc`` and, once matured, ``auc``, ``pr_auc``, ``log_loss``, ``ece`` and
``estimate_error``; the step's timestamp is the run's as-of time. The report folder
(``summary.json``, ``details.json``, ``report.html``) is the run's artifacts, the
export and the history its inputs, its name ``monitor <export end>``, its description
the alerts (or that none fired) and the latest run's figures.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["log_monitoring", "model_experiment", "monitoring_description"]


def model_experiment(model: str | Path, tracking_uri: str) -> str | None:
    """The experiment of the run that logged ``model`` when it is an MLflow URI, else ``None``.

    ``models:/NAME/VERSION`` and ``models:/NAME@alias`` go through the registry to the
    version's source run, ``runs:/RUN/PATH`` names the run itself: the monitoring run
    then sits beside the training run a reviewer compares it with, whatever experiment
    the local config names. A folder carries no run, and a lookup that fails (a version
    logged elsewhere, a deleted run) leaves the choice to the config.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    text = str(model)
    client = mlflow.MlflowClient(tracking_uri)
    try:
        if text.startswith("models:/"):
            name, _, rest = text[len("models:/"):].partition("/")
            if "@" in name:
                name, alias = name.split("@", 1)
                run_id = client.get_model_version_by_alias(name, alias).run_id
            else:
                run_id = client.get_model_version(name, rest.split("/")[0]).run_id
        elif text.startswith("runs:/"):
            run_id = text[len("runs:/"):].split("/")[0]
        else:
            return None
        if not run_id:
            return None
        return client.get_experiment(client.get_run(run_id).info.experiment_id).name
    except MlflowException:
        return None


def monitoring_description(result) -> str:
    """The run's description: alerts first, then the latest run's figures."""
    lines = [f"{len(result.alerts)} alert(s)" if result.alerts else "No alert: every run within the thresholds."]
    lines += [f"- {a.message}" for a in result.alerts[:10]]
    if result.runs:
        last = result.runs[-1]
        lines.append(f"Latest run {last.label}: {last.rows:,} leads, score PSI {last.score_psi:.3f}, "
                     f"{len(last.drifted_features)} of {len(last.drift)} features drifted, estimated AUC "
                     f"{last.estimated_auc:.3f}"
                     + (f", realized AUC {last.metrics['auc']:.3f}" if last.metrics else ""))
    matured = [r for r in result.runs if r.metrics is not None]
    lines.append(f"{len(result.runs)} runs, {len(matured)} matured; export ends {result.export_end:%Y-%m-%d}.")
    return "\n".join(lines)


def log_monitoring(result, summary: dict, report_dir: Path, data: str | Path, export, history: str | Path,
                   tracking_uri: str, experiment: str) -> dict:
    """Log one monitoring pass as an MLflow run; returns run id, experiment and URI."""
    import mlflow

    from propensity.tracking.datasets import log_export_input, log_folder_input
    from propensity.tracking.runs import experiment_named

    mlflow.set_tracking_uri(tracking_uri)
    exp = experiment_named(mlflow, experiment, tracking_uri)
    name = f"monitor {result.export_end:%Y-%m-%d}"
    with mlflow.start_run(run_name=name, description=monitoring_description(result)) as run:
        mlflow.set_tags({"propensity.kind": "monitor", "alerts": str(len(result.alerts)),
                         "horizon_days": str(result.horizon_days)})
        log_export_input(mlflow, data, export, "monitoring")
        log_folder_input(mlflow, history, f"score history {Path(history).name}", "monitoring",
                         {"runs": len(result.runs), "rows": sum(r.rows for r in result.runs)})
        for step, r in enumerate(result.runs):
            values = {"score_psi": r.score_psi, "drift_share": r.drift_share, "estimated_auc": r.estimated_auc,
                      "rows": float(r.rows)}
            if r.metrics is not None:
                values.update({k: r.metrics[k] for k in ("auc", "pr_auc", "log_loss", "ece")})
                if r.estimate_error is not None:
                    values["estimate_error"] = r.estimate_error
            mlflow.log_metrics({k: float(v) for k, v in values.items() if v == v}, step=step,
                               timestamp=int(r.as_of.timestamp() * 1000))
        mlflow.log_metric("alerts", float(len(summary["alerts"])))
        mlflow.log_artifacts(str(report_dir), "monitoring")
        return {"run_id": run.info.run_id, "experiment_id": exp.experiment_id, "experiment": experiment,
                "tracking_uri": tracking_uri, "run_name": name}
