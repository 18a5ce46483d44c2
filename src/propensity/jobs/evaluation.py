"""``propensity evaluate``: a model against baselines on labelled rows → a report folder, logged to MLflow.

A CRM model is evaluated on the labelled snapshots of an export folder, a flat-table
model on a labelled table. ``out`` is checked before any work (absent, empty, or a
report this tool wrote; any folder with ``force``), and so is a remote tracking server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["CrmEvaluation", "TableEvaluation", "evaluate"]


@dataclass(frozen=True)
class CrmEvaluation:
    """``evaluation``: what modeling's ``evaluate_crm`` returns; ``report``: the Markdown report."""

    evaluation: dict
    report: Path
    run: dict | None = None


@dataclass(frozen=True)
class TableEvaluation:
    """``comparison``: the model and the cross-fitted logistic regression on the table's labelled rows."""

    comparison: dict
    report: Path
    run: dict | None = None


def evaluate(model: str | Path, data: str | Path, out: str | Path = "evaluation", window: str = "new",
             force: bool = False, tracking_uri: str | None = None, track: bool = True,
             on_written: Callable[[CrmEvaluation | TableEvaluation], None] | None = None,
             ) -> CrmEvaluation | TableEvaluation:
    """Evaluate ``model`` on ``data`` (a CRM export folder or a labelled table); write the report to ``out``.

    ``window`` (CRM exports only): ``new`` evaluates the snapshots after the model's
    training data ended, ``all`` every labelled snapshot. ``on_written`` is called once
    the report is in place, before the MLflow run is logged.
    """
    from propensity.core.output import check_folder_output, claim
    from propensity.modeling.evaluate import is_report_folder
    from propensity.tracking import check_tracking, resolve_tracking_uri

    check_folder_output(out, owned=is_report_folder, inputs=(model, data), force=force)
    uri = resolve_tracking_uri(tracking_uri)
    if track:
        check_tracking(uri)
    if Path(data).is_dir():
        with claim(out):
            return _evaluate_crm(model, Path(data), Path(out), window, force, uri if track else None, on_written)
    if window != "new":
        raise ValueError("--window applies to CRM export folders; a flat table is evaluated on all its rows")
    with claim(out):
        return _evaluate_table(model, Path(data), Path(out), force, uri if track else None, on_written)


def _evaluate_crm(model: str | Path, data: Path, out: Path, window: str, force: bool, uri: str | None,
                  on_written: Callable | None) -> CrmEvaluation:
    from propensity.modeling.crm_evaluate import evaluate_crm
    from propensity.tracking import log_report_run

    ev = evaluate_crm(model, data, out, window=window, force=force)
    done = CrmEvaluation(ev, out / "report.md")
    if on_written is not None:
        on_written(done)
    if uri is None:
        return done
    m = ev["metrics"]["model"]
    run = log_report_run(out, ev["metrics"], ev["params"], {"kind": "evaluation", "model_kind": "crm",
                                                           "window": window}, uri,
                         run_name=f"evaluate crm {ev['params']['last_cutoff']}",
                         description=f"ROC AUC {m['roc_auc']:.3f} (PR AUC {m['pr_auc']:.3f}, ECE {m['ece']:.4f}) "
                         f"on {ev['window_text']}", data=data, data_rows={"rows": ev["rows"]})
    return replace(done, run=run)


# The flat-table product's evaluation, in one place.

def _evaluate_table(model: str | Path, data: Path, out: Path, force: bool, uri: str | None,
                    on_written: Callable | None) -> TableEvaluation:
    from propensity.tabular.jobs import evaluate_table
    from propensity.tracking import log_report_run

    result, path = evaluate_table(model, data, out, force=force)
    done = TableEvaluation(result, path)
    if on_written is not None:
        on_written(done)
    if uri is None:
        return done
    m = result["models"]["model"]["metrics"]
    run = log_report_run(path.parent, {n: m["metrics"] for n, m in result["models"].items()},
                         {"model": str(model), "data": str(data)}, {"kind": "evaluation", "model_kind": "table"}, uri,
                         run_name=f"evaluate table {Path(data).name}",
                         description=f"ROC AUC {m['roc_auc']:.3f} (PR AUC {m['pr_auc']:.3f}, ECE {m['ece']:.4f}) "
                         f"on {result['rows']:,} rows of {Path(data).name}", data=data,
                         data_rows={"rows": result["rows"], "positives": result["positives"]})
    return replace(done, run=run)
