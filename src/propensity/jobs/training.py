"""``propensity train``: a CRM export folder or a flat table → a bundle with its report, logged to MLflow.

Both kinds check first, before any work, that ``out`` may be replaced (absent,
empty, or a bundle this tool wrote; any folder with ``force``; never the working
directory, home, their parents or an input: :mod:`propensity.core.output`) and that
a remote tracking server answers; then they hold ``out``'s lock, write the bundle and
its report beside ``out`` and swap them in together, so a failure or a kill before
the swap leaves any previous model at ``out`` untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from propensity.jobs.progress import Progress

__all__ = ["CrmTraining", "TableTraining", "train", "train_crm", "train_crm_spark", "train_table"]

# The length of a CRM training's progress bar, besides logging to MLflow. modeling's train reports four steps
# (five with a parameter search) between reading and saving, so the bar is full before the last steps: a
# progress bar that stops at its length shows the later steps by name only.
CRM_STEPS = 5


@dataclass(frozen=True)
class CrmTraining:
    """A model trained on a CRM export: ``result`` is modeling's ``TrainResult``, ``run`` the MLflow run or None."""

    result: Any
    out: str | Path  # as the caller gave it
    run: dict | None

    @property
    def model_card(self) -> Path:
        return Path(self.out) / "report" / "model_card.md"


@dataclass(frozen=True)
class TableTraining:
    """A model trained on a flat table: ``result`` is the table training's result, ``run`` the MLflow run or None."""

    result: Any
    out: Path
    report: Path
    run: dict | None = None
    registered_model: str | None = None


def train(data: str | Path, out: str | Path = "models/latest", config: str | Path | None = None,
          tracking_uri: str | None = None, track: bool = True, force: bool = False, *, target: str | None = None,
          id_column: str | None = None, time_column: str | None = None, exclude: tuple[str, ...] = (),
          budget: float | None = None, model_family: str | None = None, progress: Progress | None = None,
          on_written: Callable[[TableTraining], None] | None = None) -> CrmTraining | TableTraining:
    """Train on ``data``: a flat table (a file) with :func:`train_table`, else a CRM export with :func:`train_crm`."""
    if Path(data).is_file():
        return train_table(data, out, target, config, tracking_uri, track, force, id_column=id_column,
                           time_column=time_column, exclude=exclude, budget=budget, model_family=model_family,
                           progress=progress, on_written=on_written)
    return train_crm(data, out, config, tracking_uri, track, force, progress=progress, model_family=model_family)


def train_crm(data: str | Path, out: str | Path, config: str | Path | None = None, tracking_uri: str | None = None,
              track: bool = True, force: bool = False, progress: Progress | None = None,
              model_family: str | None = None) -> CrmTraining:
    """Read the export, train, write the bundle with ``report/`` inside, log the run (when ``track``)."""
    from propensity.config import load_project
    from propensity.core.output import check_folder_output, claim
    from propensity.data.export import read_export
    from propensity.jobs.feature_table import say_heaviest
    from propensity.modeling.train import train as train_model
    from propensity.scoring.bundle import is_bundle_folder
    from propensity.tracking import check_tracking, resolve_tracking_uri

    progress = progress or Progress()
    data, target = Path(data), Path(out)
    check_folder_output(target, owned=is_bundle_folder, inputs=(data, config), force=force)
    project = load_project(config)
    uri = resolve_tracking_uri(tracking_uri)
    if track:
        check_tracking(uri)  # before the expensive part
    with claim(target):
        progress.plan(CRM_STEPS + int(track))
        try:
            progress.step(f"reading {data}")
            export = read_export(data)
            say_heaviest(export, progress)
            result = train_model(export, project, progress=progress.step, model_family=model_family)
            run = _save_and_log(result, project, target, uri, track, progress)
        finally:
            progress.finish()
    return CrmTraining(result, out, run)


def train_crm_spark(data: str | Path, out: str | Path, config: str | Path | None = None,
                    tracking_uri: str | None = None, track: bool = True, force: bool = False,
                    master: str | None = None, progress: Progress | None = None,
                    model_family: str | None = None) -> CrmTraining:
    """:func:`train_crm` with the training table built on Spark and its negatives down-sampled to fit one machine.

    ``data``: an export folder (local or a URI) or ``table:SCHEMA``; ``master``: as
    ``features --engine spark``. The training rows are built on Spark, the negatives
    before the test window sampled to ``spark.max_rows`` of the training YAML
    (:mod:`propensity.spark.training`), the rows collected, and the model trained and
    calibrated here as :func:`train_crm` does, with the kept negatives weighted by
    ``1 / rate``. The leakage audit's check of static columns, which reads the whole
    export, is left out. The bundle and the report go to ``out`` as with ``train_crm``.
    """
    from propensity.config import load_project
    from propensity.core.output import check_folder_output, claim, is_remote
    from propensity.modeling.train import MAX_UNMATCHED_ACCOUNTS, train_rows
    from propensity.scoring.bundle import is_bundle_folder
    from propensity.tracking import check_tracking, resolve_tracking_uri

    progress = progress or Progress()
    target = Path(out)
    local_data = not is_remote(data) and not str(data).startswith("table:")
    check_folder_output(target, owned=is_bundle_folder, inputs=(data, config) if local_data else (config,),
                        force=force)
    project = load_project(config)
    from propensity.spark.session import require_spark, spark_session

    require_spark(master)
    uri = resolve_tracking_uri(tracking_uri)
    if track:
        check_tracking(uri)  # before the expensive part
    from propensity.jobs.feature_table import say_heaviest_spark
    from propensity.spark.tables import read_spark_export
    from propensity.spark.training import spark_training_table, unmatched_account_share

    with claim(target):
        progress.plan(CRM_STEPS + 1 + int(track))
        try:
            progress.step(f"starting Spark ({master or 'SPARK_REMOTE / active session / local[*]'})")
            spark = spark_session(master)
            progress.step(f"reading {data} on Spark")
            tables = read_spark_export(spark, data)
            missing, leads = unmatched_account_share(tables)
            if missing > MAX_UNMATCHED_ACCOUNTS * leads:
                raise ValueError(f"{data}: {missing:,} of {leads:,} leads have an account_id that is not in accounts; "
                                 f"training refuses an export where more than {MAX_UNMATCHED_ACCOUNTS:.0%} of the "
                                 "leads match no account: fix the ids or export the missing accounts")
            say_heaviest_spark(tables, project, progress)
            table = spark_training_table(spark, tables, project, say=progress.step)
            result = train_rows(table.frame, project, str(data), table.data_end, progress.step, model_family,
                                weights=table.weights, sampling=table.sampling)
            run = _save_and_log(result, project, target, uri, track, progress)
        finally:
            progress.finish()
    return CrmTraining(result, out, run)


def _save_and_log(result: Any, project: Any, target: Path, uri: str, track: bool, progress: Progress) -> dict | None:
    """Write the bundle with its report to ``target`` (staged, swapped in whole) and log the run when ``track``."""
    from propensity.core.output import staged_folder
    from propensity.modeling.report import write_training_report
    from propensity.monitoring.reference import REFERENCE_FILE, reference_bytes
    from propensity.scoring.bundle import write_bundle
    from propensity.tracking import log_training

    progress.step(f"saving the bundle to {target}")
    with staged_folder(target) as tmp:
        write_bundle(result.bundle, tmp, extra_files={REFERENCE_FILE: reference_bytes(training_reference(
            result, project))})
        write_training_report(result, project, tmp / "report")
    if not track:
        return None
    progress.step("logging the run to MLflow")
    return log_training(result, project, target, uri)


def training_reference(result: Any, project: Any) -> dict:
    """The monitoring reference profile of a CRM training (its test window), sealed into the bundle."""
    from propensity.monitoring.reference import build_reference

    test = result.split.get("test", {})
    return build_reference(result.test_features, result.bundle.spec, result.test["probability"].to_numpy(),
                           result.test["label"].to_numpy(), project.training.tiers,
                           window={"part": "test", **{k: str(v) for k, v in test.items()}})


def train_table(data: str | Path, out: str | Path, target: str | None, config: str | Path | None = None,
                tracking_uri: str | None = None, track: bool = True, force: bool = False, *,
                id_column: str | None = None, time_column: str | None = None, exclude: tuple[str, ...] = (),
                budget: float | None = None, model_family: str | None = None, progress: Progress | None = None,
                on_written: Callable[[TableTraining], None] | None = None) -> TableTraining:
    """Train on the flat table ``data`` (one row per lead) to predict ``target``; log and register the model.

    ``budget``: seconds for the parameter search (default: ``tuning.budget_seconds`` of
    the training YAML). ``on_written`` is called once the bundle and its report are in
    place, before the MLflow run is logged (which takes a while, and may fail): a
    caller can show the figures meanwhile. The model is registered as
    ``<registered_model>-table`` with alias ``challenger``.
    """
    from propensity.config import load_project
    from propensity.core.output import check_folder_output, claim
    from propensity.scoring.bundle import is_bundle_folder
    from propensity.tracking import check_tracking, log_report_run, resolve_tracking_uri

    progress = progress or Progress()
    if not target:
        raise ValueError(f"{data}: a flat table needs --target COLUMN (the converted yes/no column)")
    check_folder_output(out, owned=is_bundle_folder, inputs=(data, config), force=force)
    budget_s = search_budget(budget, config)
    accept = tuple(load_project(config).training.audit.accept)
    uri = resolve_tracking_uri(tracking_uri)
    with claim(out):
        if track:
            check_tracking(uri)  # before the expensive part
        training = _train_table_file(Path(data), target, Path(out), id_column, time_column, exclude, budget_s,
                                     progress, force, model_family or "auto", accept)
        if on_written is not None:
            on_written(training)
        if not track:
            return training
        tracking = load_project(config).training.tracking
        name = f"{tracking.registered_model}-table"
        result, comp = training.result, training.result.comparison
        example = _read_flat_table(Path(data)).head(5).drop(columns=[target])
        m = comp["models"]["model"]["metrics"]
        headline = (f"ROC AUC {m['roc_auc']:.3f} (PR AUC {m['pr_auc']:.3f}, ECE {m['ece']:.4f}) on "
                    f"{len(result.y_test):,} test rows; {result.family.get('chosen', 'lightgbm')}; "
                    f"{result.verdict.get('verdict', '')}").rstrip("; ")
        run = log_report_run(training.report.parent, {n: m["metrics"] for n, m in comp["models"].items()},
                             result.params, {"kind": "table", "data": data, "target": target},
                             uri, experiment=tracking.experiment, run_name=f"train table {Path(data).name}",
                             bundle_path=Path(out), registered_model=name, input_example=example,
                             description=headline, data=data,
                             data_rows={"test_rows": len(result.y_test), "target": target})
    return replace(training, run=run, registered_model=name)


def search_budget(budget: float | None, config: str | Path | None) -> float:
    """Seconds for a flat table's parameter search: ``budget``, else the training YAML's ``budget_seconds``."""
    if budget is not None:
        if budget < 0:
            raise ValueError(f"--budget: expected seconds >= 0, got {budget}")
        return float(budget)
    from propensity.config import load_project

    return float(load_project(config).training.tuning.budget_seconds)


# The flat-table product's own functions, in one place.

def _train_table_file(data: Path, target: str, out: Path, id_column: str | None, time_column: str | None,
                      exclude: tuple[str, ...], budget_s: float, progress: Progress, force: bool,
                      model_family: str = "auto", accept: tuple[str, ...] = ()) -> TableTraining:
    from propensity.tabular.jobs import REPORT_DIR, train_table_file

    result = train_table_file(data, target, out, id_column=id_column, time_column=time_column,
                              exclude=tuple(exclude or ()), budget_s=budget_s, progress=progress.step, force=force,
                              model_family=model_family, accept=accept)
    return TableTraining(result, out, out / REPORT_DIR / "report.md")


def _read_flat_table(path: Path):
    from propensity.tabular.files import read_flat_table as read_table

    return read_table(path)
