"""``propensity monitor``: a model's score history and the current export → summary.json, report.html, MLflow.

Checks first, before any work: ``out`` may be replaced (absent, empty, or a monitoring
report this tool wrote; never an input), the config loads, a remote tracking server
answers. The history and the export are only read. The report folder is written beside
``out`` and swapped in when complete, under ``out``'s lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EXIT_ALERT", "MONITOR_KIND", "Monitored", "monitor"]

MONITOR_KIND = "monitor-report"
EXIT_ALERT = 3  # the exit code of `propensity monitor` when an alert fires (a scheduler can retrain on it)


@dataclass(frozen=True)
class Monitored:
    """A monitoring pass: ``result`` is :class:`propensity.monitoring.monitor.Monitoring`."""

    result: Any
    out: Path
    summary: dict
    run: dict | None

    @property
    def alerts(self) -> list[dict]:
        return self.summary["alerts"]

    @property
    def exit_code(self) -> int:
        return EXIT_ALERT if self.alerts else 0


def monitor(model: str | Path, data: str | Path, history: str | Path, out: str | Path, config: str | Path | None = None,
            tracking_uri: str | None = None, track: bool = True, force: bool = False) -> Monitored:
    """Monitor the runs of ``model`` in the score history ``history`` against the export ``data``."""
    from propensity.config import load_project
    from propensity.core.output import check_folder_output, claim, has_marker, staged_folder, write_marker
    from propensity.data.export import read_export
    from propensity.monitoring.history import bundle_digest, read_history
    from propensity.monitoring.html import report_html
    from propensity.monitoring.monitor import details, monitor_runs, summary
    from propensity.monitoring.reference import read_reference
    from propensity.scoring.bundle import load_bundle
    from propensity.scoring.bundle_files import resolve_bundle_uri
    from propensity.tracking import check_tracking, resolve_tracking_uri

    target = Path(out)
    check_folder_output(target, owned=lambda p: has_marker(p, MONITOR_KIND), inputs=(data, model, history, config),
                        force=force)
    project = load_project(config)
    uri = resolve_tracking_uri(tracking_uri)
    if track:
        check_tracking(uri)
    folder = resolve_bundle_uri(model)
    bundle = load_bundle(folder)
    reference = read_reference(folder)
    runs = read_history(history)
    export = read_export(data, lenient=True)
    result = monitor_runs(runs, bundle_digest(bundle), bundle, reference, export, project.training.monitoring,
                          where=str(history))
    facts = summary(result)
    title = f"Monitoring {Path(str(model)).name}: {len(result.runs)} runs, export to {result.export_end:%Y-%m-%d}"
    with claim(target), staged_folder(target) as tmp:
        (tmp / "summary.json").write_text(json.dumps(facts, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        (tmp / "details.json").write_text(json.dumps(details(result), indent=2, allow_nan=False) + "\n",
                                          encoding="utf-8")
        (tmp / "report.html").write_text(report_html(result, title, project.training.monitoring.new_leads_p_value),
                                         encoding="utf-8")
        write_marker(tmp, MONITOR_KIND)
    run = None
    if track:
        from propensity.tracking import log_monitoring, model_experiment

        experiment = model_experiment(model, uri) or project.training.tracking.experiment
        run = log_monitoring(result, facts, target, data, export, history, uri, experiment)
    return Monitored(result, target, facts, run)
