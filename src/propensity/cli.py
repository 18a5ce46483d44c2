"""The ``propensity`` command line: the only place that prints, parses flags and logs.

Every command fails on bad input with one line on stderr naming the file and the
field, and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from propensity.core.errors import PropensityError
from propensity.supervisor import CRASH_LOG_ENV, run_supervised, start_crash_log, step

__all__ = ["main", "run"]

log = logging.getLogger("propensity")


def _say(msg: str) -> None:
    step(msg)
    print(f"  {msg}", file=sys.stderr, flush=True)


class _Steps:
    """A progress bar over the named steps of a long job (plain lines when not a terminal)."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, file=sys.stderr, disable=None, leave=False,
                        bar_format="  {desc:48} {bar:20} {n_fmt}/{total_fmt} [{elapsed}]")

    def __call__(self, msg: str) -> None:
        step(msg)
        if self.bar.disable:
            _say(msg)
            return
        if self.bar.n < self.bar.total:
            self.bar.update(1)
        self.bar.set_description_str(msg[:48])

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------ commands


def cmd_init(args: argparse.Namespace) -> int:
    from propensity.config import default_project_dir
    from propensity.core.output import check_folder_output, claim, staged_folder

    target = Path(args.dir)
    # A project folder holds the user's edited configs: init never replaces one, not even its own.
    if target.is_dir() and any(target.iterdir()):
        raise ValueError(f"{target}: folder exists and is not empty; choose a new folder")
    check_folder_output(target, hint="choose a new folder")
    src = default_project_dir()
    with claim(target), staged_folder(target) as tmp:
        for sub in ("features", "training"):
            shutil.copytree(src / sub, tmp / sub)
        (tmp / "models").mkdir()
        (tmp / "models" / "README.md").write_text("Model bundles built by `propensity train` land here.\n")
    print(f"project created in {target}: edit features/icp.yaml, features/engagement.yaml, training/default.yaml")
    print(f"then: cd {target} && propensity train --data CRM_EXPORT_DIR")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from propensity.core.output import check_folder_output, claim
    from propensity.data.synthetic import is_world_folder, write_world

    t = time.perf_counter()
    check_folder_output(args.out, owned=is_world_folder, force=args.force)
    with claim(args.out):
        out = write_world(args.out, n_leads=args.leads, seed=args.seed, fmt=args.format, force=args.force)
    print(f"synthetic CRM world with {args.leads:,} leads (seed {args.seed}) written to {out} "
          f"in {time.perf_counter() - t:.1f}s; ground truth in {out / 'ground_truth.parquet'}")
    return 0


def _train_and_log(data: Path, config: str | None, out: Path, tracking_uri: str | None, track: bool,
                   force: bool = False):
    from propensity.config import load_project
    from propensity.core.output import check_folder_output, claim, staged_folder
    from propensity.data.export import read_export
    from propensity.modeling.report import write_training_report
    from propensity.modeling.train import train
    from propensity.scoring.bundle import is_bundle_folder, write_bundle
    from propensity.tracking import check_tracking, log_training, resolve_tracking_uri

    check_folder_output(out, owned=is_bundle_folder, inputs=(data, config), force=force)
    project = load_project(config)
    uri = resolve_tracking_uri(tracking_uri)
    if track:
        check_tracking(uri)  # before the expensive part
    with claim(out):
        steps = _Steps(total=5 + int(track))
        try:
            steps(f"reading {data}")
            export = read_export(data)
            result = train(export, project, progress=steps)
            # Bundle and report (out/report/) are written beside `out` and swapped in together:
            # a failure or kill before the swap leaves any previous model at `out` untouched.
            steps(f"saving the bundle to {out}")
            with staged_folder(out) as tmp:
                write_bundle(result.bundle, tmp)
                write_training_report(result, project, tmp / "report")
            run = None
            if track:
                steps("logging the run to MLflow")
                run = log_training(result, project, out, uri)
        finally:
            steps.close()
    return result, run


def _print_metrics(result) -> None:
    m = result.metrics["model"]
    who = [w for w in ("model", "baseline", "logistic") if w in result.metrics]
    print(f"test window: {int(m['rows']):,} lead snapshots, {int(m['positives']):,} closed won "
          f"(base rate {m['base_rate']:.2%}), cutoffs {result.split['test']['first_cutoff']} .. "
          f"{result.split['test']['last_cutoff']}")
    print(f"{'':22}" + "".join(f"{w:>10}" for w in who))
    for key, label in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("log_loss", "log loss"),
                       ("brier", "Brier"), ("ece", "calibration error"), ("top_decile_lift", "top-decile lift"),
                       ("top_decile_conversion", "top-decile conversion")):
        print(f"{label:22}" + "".join(f"{result.metrics[w][key]:>10.4f}" for w in who))
    comparison, top_k = getattr(result, "comparison", None), getattr(result, "top_k", None)
    if comparison and top_k:
        labels = {"capacity": "capacity", "sql_tier": "SQL tier", "top_decile": "top decile"}
        for label, k in top_k["ks"].items():
            if label not in labels:
                continue
            cells = []
            for w in who:
                t = comparison["models"][w]["top_k"].get(str(k))
                if t is not None:
                    cells.append(f"{w} {t['precision']:.1%} / {t['recall']:.1%} / {int(t['conversions']):,}")
            print(f"top {k:,} ({labels[label]}), precision / recall / conversions: " + "; ".join(cells))
    cal = getattr(result, "calibration", None)
    if cal:
        print(f"calibration: {cal['method']}" + (" (chosen by cross-validated log loss on the validation window)"
                                                 if cal["config"] == "auto" else ""))


def _print_run(run: dict | None) -> None:
    if run is None:
        return
    print(f"MLflow run {run['run_id']} in experiment '{run['experiment']}' ({run['tracking_uri']}); "
          f"registered as {run['registered_model']} v{run['version']} (alias challenger)")
    if run["tracking_uri"].startswith("sqlite:///"):
        print(f"look at it with: mlflow ui --backend-store-uri {run['tracking_uri']}")


def _table_budget(args: argparse.Namespace) -> float:
    if args.budget is not None:
        if args.budget < 0:
            raise ValueError(f"--budget: expected seconds >= 0, got {args.budget}")
        return float(args.budget)
    from propensity.config import load_project

    return float(load_project(args.config).training.tuning.budget_seconds)


def cmd_train_table(args: argparse.Namespace) -> int:
    from propensity.core.output import check_folder_output, claim
    from propensity.scoring.bundle import is_bundle_folder
    from propensity.tracking import resolve_tracking_uri

    if not args.target:
        raise ValueError(f"{args.data}: a flat table needs --target COLUMN (the converted yes/no column)")
    check_folder_output(args.out, owned=is_bundle_folder, inputs=(args.data, args.config), force=args.force)
    budget = _table_budget(args)
    uri = resolve_tracking_uri(args.tracking_uri)
    with claim(args.out):
        return _train_table_locked(args, budget, uri)


def _train_table_locked(args: argparse.Namespace, budget: float, uri: str) -> int:
    from propensity.modeling.table_jobs import REPORT_DIR, train_table_file
    from propensity.tracking import check_tracking, log_report_run

    if not args.no_track:
        check_tracking(uri)  # before the expensive part
    out = Path(args.out)
    result = train_table_file(Path(args.data), args.target, out, id_column=args.id, time_column=args.time_column,
                              exclude=tuple(args.exclude or ()), budget_s=budget, progress=_say, force=args.force)
    for note in result.notes:
        print(f"note: {note}")
    for w in result.warnings:
        print(f"warning: possible leakage: {w}")
    comp = result.comparison
    names = list(comp["models"])
    print(f"test rows: {comp['rows']:,}, {comp['positives']:,} conversions "
          f"({result.bundle.metadata['split']['kind']} split)")
    print(f"{'':22}" + "".join(f"{n[:20]:>22}" for n in names))
    for key, label in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("log_loss", "log loss"), ("brier", "Brier"),
                       ("ece", "calibration error"), ("top_decile_lift", "top-decile lift")):
        print(f"{label:22}" + "".join(f"{comp['models'][n]['metrics'][key]:>22.4f}" for n in names))
    print(f"model bundle: {out} ({result.params['trials']} parameter sets tried, {result.params['n_rounds']} trees, "
          f"calibration {result.params['calibration']}, {result.timings['total_s']:.1f}s); "
          f"report: {out / REPORT_DIR / 'report.md'}")
    if not args.no_track:
        from propensity.config import load_project
        from propensity.scoring.scorer import read_table

        tracking = load_project(args.config).training.tracking
        name = f"{tracking.registered_model}-table"
        example = read_table(Path(args.data)).head(5).drop(columns=[args.target])
        run = log_report_run(out / REPORT_DIR, {n: m["metrics"] for n, m in comp["models"].items()},
                             result.params, {"kind": "table", "data": args.data, "target": args.target},
                             uri, experiment=tracking.experiment, run_name="train-table", bundle_path=out,
                             registered_model=name, input_example=example)
        print(f"MLflow run {run['run_id']} in experiment '{run['experiment']}' ({uri}); registered as "
              f"{name} v{run['version']} (alias challenger): load it with "
              f"mlflow.pyfunc.load_model('models:/{name}@challenger')")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if Path(args.data).is_file():
        return cmd_train_table(args)
    result, run = _train_and_log(Path(args.data), args.config, Path(args.out), args.tracking_uri,
                                 not args.no_track, force=args.force)
    _print_metrics(result)
    print(f"model bundle: {args.out} (best iteration {result.bundle.metadata['best_iteration']}, "
          f"{result.timings['total_s']:.1f}s); report: {Path(args.out) / 'report' / 'model_card.md'}")
    _print_run(run)
    return 0


def _write_table(df, out: Path) -> None:
    """Write CSV (text cells escaped for spreadsheets) or Parquet by extension, atomically."""
    from propensity.core.csvsafe import write_csv
    from propensity.core.output import staged_file

    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out}: unsupported output type; use .csv or .parquet")
    with staged_file(out) as tmp:
        if out.suffix == ".csv":
            write_csv(df, tmp)
        else:
            df.to_parquet(tmp, index=False)


def cmd_score_table(args: argparse.Namespace) -> int:
    from propensity.core.output import check_file_output, claim
    from propensity.scoring.scorer import TableScorer, read_table

    out = Path(args.out)
    check_file_output(out, inputs=(args.data, args.model))
    with claim(out):
        scorer = TableScorer.load(args.model)
        t = time.perf_counter()
        scores = scorer.score(read_table(args.data), source=args.data)
        _write_table(scores, out)
    print(f"scored {len(scores):,} rows in {time.perf_counter() - t:.1f}s -> {out} (same order as {args.data})")
    return 0


def cmd_evaluate_crm(args: argparse.Namespace, uri: str) -> int:
    from propensity.core.output import claim

    with claim(args.out):
        return _evaluate_crm_locked(args, uri)


def _evaluate_crm_locked(args: argparse.Namespace, uri: str) -> int:
    from propensity.modeling.crm_evaluate import evaluate_crm
    from propensity.tracking import log_report_run

    out = Path(args.out)
    ev = evaluate_crm(args.model, Path(args.data), out, window=args.window, force=args.force)
    comp = ev["comparison"]
    names = list(comp["models"])
    print(f"rows: {ev['window_text']}")
    print(f"{comp['positives']:,} closed won (base rate {comp['positives'] / max(comp['rows'], 1):.2%})")
    print(f"{'':22}" + "".join(f"{n[:34]:>36}" for n in names))
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift"):
        print(f"{key:22}" + "".join(f"{comp['models'][n]['metrics'][key]:>36.4f}" for n in names))
    for label, k in ev["ks"].items():
        if label in ("capacity", "sql_tier", "top_decile"):
            t = comp["models"]["model"]["top_k"][str(k)]
            print(f"model, top {k:,} ({label.replace('_', ' ')}): precision {t['precision']:.1%}, "
                  f"recall {t['recall']:.1%}, {int(t['conversions']):,} conversions")
    print(f"report: {out / 'report.md'}")
    if not args.no_track:
        run = log_report_run(out, ev["metrics"], ev["params"], {"kind": "evaluation", "model_kind": "crm",
                                                               "window": args.window}, uri, run_name="evaluate")
        print(f"MLflow run {run['run_id']} in experiment '{run['experiment']}' ({uri})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from propensity.core.output import check_folder_output, claim
    from propensity.modeling.evaluate import is_report_folder
    from propensity.tracking import check_tracking, resolve_tracking_uri

    check_folder_output(args.out, owned=is_report_folder, inputs=(args.model, args.data), force=args.force)
    uri = resolve_tracking_uri(args.tracking_uri)
    if not args.no_track:
        check_tracking(uri)
    if Path(args.data).is_dir():
        return cmd_evaluate_crm(args, uri)
    if args.window != "new":
        raise ValueError("--window applies to CRM export folders; a flat table is evaluated on all its rows")
    with claim(args.out):
        return _evaluate_table_locked(args, uri)


def _evaluate_table_locked(args: argparse.Namespace, uri: str) -> int:
    from propensity.modeling.table_jobs import evaluate_table
    from propensity.tracking import log_report_run

    result, path = evaluate_table(args.model, Path(args.data), Path(args.out), force=args.force)
    names = list(result["models"])
    if result["left_out"]:
        print(f"note: {result['left_out_note']}")
    print(f"{result['rows']:,} rows, {result['positives']:,} conversions")
    print(f"{'':22}" + "".join(f"{n[:34]:>36}" for n in names))
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift"):
        print(f"{key:22}" + "".join(f"{result['models'][n]['metrics'][key]:>36.4f}" for n in names))
    print(f"report: {path}")
    if not args.no_track:
        run = log_report_run(path.parent, {n: m["metrics"] for n, m in result["models"].items()},
                             {"model": str(args.model), "data": str(args.data)}, {"kind": "evaluation"},
                             uri, run_name="evaluate")
        print(f"MLflow run {run['run_id']} in experiment '{run['experiment']}' ({uri})")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    if Path(args.data).is_file():
        return cmd_score_table(args)
    from propensity.core.output import check_file_output, claim

    out = Path(args.out)
    check_file_output(out, inputs=(args.data, args.model))
    with claim(out):
        return _score_crm_locked(args, out)


def _score_crm_locked(args: argparse.Namespace, out: Path) -> int:
    import pandas as pd
    from tqdm import tqdm

    from propensity.core.csvsafe import write_csv
    from propensity.core.output import staged_file
    from propensity.scoring.scorer import LeadScorer

    scorer = LeadScorer.load(args.model)
    t = time.perf_counter()
    cols = ["lead_id", "probability", "score", "tier", "reasons", "fit_score", "engagement_score", "grade", "notes"]
    counts = {"SQL": 0, "MQL": 0, "nurture": 0, "error": 0}
    n, expected, sql_min = 0, 0.0, float("inf")
    # Chunks go straight to a staging file beside the target, renamed at the end: memory
    # stays bounded by one chunk and a failure leaves no half-written output.
    writer = None
    with staged_file(out) as tmp:
        try:
            with tqdm(desc="  scoring leads", unit=" leads", file=sys.stderr, disable=None, leave=False) as bar:
                for total, part in scorer.score_chunks(args.data, as_of=args.as_of,
                                                       chunk_size=getattr(args, "chunk_size", 50_000)):
                    bar.total = total
                    bar.update(len(part))
                    if bar.disable:  # no terminal (cron, CI, a pipe): one plain line per chunk instead of a bar
                        _say(f"scored {n + len(part):,} of {total:,} leads")
                    part = part[cols]
                    if out.suffix == ".csv":
                        write_csv(part, tmp, mode="w" if n == 0 else "a", header=n == 0)
                    else:
                        import pyarrow as pa
                        import pyarrow.parquet as pq

                        table = pa.Table.from_pandas(part, preserve_index=False)
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, table.schema)
                        writer.write_table(table.cast(writer.schema))
                    n += len(part)
                    for k in counts:
                        counts[k] += int(part["tier"].eq(k).sum())
                    sql = part["probability"][part["tier"].eq("SQL")]
                    expected += float(sql.sum())
                    sql_min = min(sql_min, float(sql.min())) if len(sql) else sql_min
        finally:
            if writer is not None:
                writer.close()
        if writer is None and out.suffix == ".parquet":
            pd.DataFrame(columns=cols).to_parquet(tmp, index=False)
    dt = time.perf_counter() - t
    print(f"scored {n:,} open leads in {dt:.1f}s ({n / max(dt, 1e-9):,.0f}/s) -> {args.out}; "
          f"tiers: " + ", ".join(f"{k} {counts[k]:,}" for k in ("SQL", "MQL", "nurture")))
    if counts["error"]:
        print(f"{counts['error']:,} lead(s) could not be scored: tier 'error', the reason in their notes")
    tiers = scorer.bundle.tiers
    policy = (f"capacity {tiers.capacity.leads_per_week:,} leads/week" if tiers.capacity
              else f"thresholds MQL >= {tiers.mql:.1%}, SQL >= {tiers.sql:.1%}")
    cut = f", SQL threshold {sql_min:.1%}" if counts["SQL"] else ""
    print(f"tier policy: {policy}{cut}; conversions expected from the SQL leads: {expected:,.1f}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from propensity.config import load_project
    from propensity.core.output import check_file_output, claim

    if args.list:
        print(format_feature_list(load_project(args.config)))
        return 0
    if args.data is None or args.out is None:
        raise ValueError("features: --data and --out are required (or --list for the feature catalogue)")
    out = Path(args.out)
    check_file_output(out, inputs=(args.data, args.config))  # before the expensive part
    with claim(out):
        return _features_locked(args, out)


def _features_locked(args: argparse.Namespace, out: Path) -> int:
    from propensity.config import load_project
    from propensity.data.export import read_export
    from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
    from propensity.features.pipeline import build_features

    project = load_project(args.config)
    t = time.perf_counter()
    _say(f"reading {args.data}")
    export = read_export(args.data)
    if args.as_of is None:
        cfg = project.training
        cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
        what = f"training rows (snapshots every {cfg.cutoffs.every_days} days, label = closed won within " \
               f"{cfg.label.horizon_days} days)"
    else:
        cut = scoring_cutoffs(export, args.as_of)
        what = f"open leads as of {cut['cutoff'].iloc[0] if len(cut) else args.as_of}"
    _say(f"building features for {len(cut):,} {what}")
    frame = build_features(export, cut, project.icp, project.engagement)
    _write_table(frame, out)
    print(f"{len(frame):,} {what}, {frame.shape[1]} columns -> {out} ({time.perf_counter() - t:.1f}s)")
    return 0


def format_feature_list(project) -> str:  # noqa: ANN001 - a loaded Project
    """The feature catalogue of a project's configs: one line per feature, in column order."""
    from propensity.features.spec import build_feature_spec

    spec = build_feature_spec(project.icp, project.engagement)
    rows = [("name", "family", "kind", "display", "source", "actionable", "monotone")]
    rows += [(f.name, f.family, f.kind, f.display, f.source, "yes" if f.actionable else "no",
              {1: "increasing", -1: "decreasing"}.get(f.monotone, "-")) for f in spec]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    fit = sum(f.family == "fit" for f in spec)
    return "\n".join([*lines, f"{len(spec)} features: {fit} fit, {len(spec) - fit} engagement "
                                f"(after lead_id, cutoff and any label in a feature table)"])


def format_explanation(ls) -> str:
    """A readable table of one lead's score: headline, fit vs engagement, reasons, notes."""
    from propensity.scoring.reasons import pts_text

    lines = [f"lead {ls.lead_id}: probability {ls.probability:.1%}, score {ls.score}/100, tier {ls.tier}, "
             f"grade {getattr(ls, 'grade', '?')}"]
    fit, eng = getattr(ls, "fit_score", None), getattr(ls, "engagement_score", None)
    if fit is not None and eng is not None:
        lines.append(f"  fit (who they are) {fit:>3}/100   engagement (what they did lately) {eng:>3}/100   "
                     f"(50 = the average lead)")
    rows = [(r.points, r.display, r.value, r.family, r.action if r.actionable else "")
            for r in [*ls.positive, *ls.negative]]
    w_display = max([len(d) for _, d, _, _, _ in rows] + [len("reason")])
    w_value = max([len(v) for _, _, v, _, _ in rows] + [len("observed")])
    lines.append(f"  {'pts':>7}  {'reason':<{w_display}}  {'observed':<{w_value}}  {'family':<10}  sales action")
    for title, reasons in (("raising the score", ls.positive), ("lowering the score", ls.negative)):
        lines.append(f"  -- {title}")
        if not reasons:
            lines.append("     (nothing notable)")
        for r in reasons:
            act = r.action.removeprefix("sales can act: ") if r.actionable and r.action else ""
            pts = pts_text(r.points, up=title.startswith("raising")).removesuffix(" pts")
            lines.append(f"  {pts:>7}  {r.display:<{w_display}}  {r.value:<{w_value}}  {r.family:<10}  {act}")
    for note in getattr(ls, "notes", []) or []:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def cmd_explain(args: argparse.Namespace) -> int:
    from propensity.scoring.scorer import LeadScorer

    scorer = LeadScorer.load(args.model)
    print(format_explanation(scorer.explain(args.data, args.lead, as_of=args.as_of)))
    return 0


_DEMO_KIND = "demo"
_DEMO_ENTRIES = {"crm", "models", "scores.csv"}  # what a demo folder holds (besides its marker)


def _is_demo_folder(path: Path) -> bool:
    from propensity.core.output import MARKER, has_marker

    if has_marker(path, _DEMO_KIND):
        return True
    return {p.name for p in path.iterdir()} <= _DEMO_ENTRIES | {MARKER}


def cmd_demo(args: argparse.Namespace) -> int:
    from propensity.core.output import check_file_output, check_folder_output, claim, write_marker
    from propensity.data.synthetic import is_world_folder
    from propensity.scoring.bundle import is_bundle_folder

    root = Path(args.dir)
    # The demo folder itself is never replaced; what it writes inside is checked up front, each by its own rule.
    check_folder_output(root, owned=_is_demo_folder, force=args.force)
    check_folder_output(root / "crm", owned=is_world_folder, force=args.force)
    check_folder_output(root / "models" / "latest", owned=is_bundle_folder, force=args.force)
    check_file_output(root / "scores.csv")
    with claim(root):
        root.mkdir(parents=True, exist_ok=True)
        write_marker(root, _DEMO_KIND)
        return _demo_locked(args, root)


def _demo_locked(args: argparse.Namespace, root: Path) -> int:
    from propensity.data.synthetic import true_probability, write_world
    from propensity.modeling.metrics import classification_metrics
    from propensity.scoring.scorer import LeadScorer

    from propensity.core.output import claim

    crm = root / "crm"
    _say(f"generating a synthetic CRM with {args.leads:,} leads in {crm}")
    with claim(crm):
        write_world(crm, n_leads=args.leads, seed=args.seed, force=args.force)
    model_dir = root / "models" / "latest"
    result, run = _train_and_log(crm, None, model_dir, args.tracking_uri, True, force=args.force)

    import pandas as pd

    truth = pd.read_parquet(crm / "ground_truth.parquet")
    oracle = true_probability(truth, result.test[["lead_id", "cutoff"]], result.bundle.horizon_days)
    oracle_auc = classification_metrics(result.test["label"].to_numpy(), oracle)["roc_auc"]

    _say("scoring the open leads")
    scorer = LeadScorer.load(model_dir)
    scores = scorer.score(crm)
    out = root / "scores.csv"
    with claim(out):
        _write_table(scores[["lead_id", "probability", "score", "tier", "reasons"]], out)

    print()
    _print_metrics(result)
    m = result.metrics["model"]
    print(f"oracle ROC AUC {oracle_auc:.4f} (the generator's true probabilities from each lead's latent "
          f"fit and interest; they ignore the timing visible in recent events, so a model can beat them); "
          f"model / oracle = {m['roc_auc'] / oracle_auc:.3f}")
    print(f"scored {len(scores):,} open leads -> {out}")
    best = scores.sort_values("probability", ascending=False).iloc[0]["lead_id"]
    print(format_explanation(scorer.explain(crm, best)))
    print(f"model bundle: {model_dir}")
    _print_run(run)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from propensity.config import load_project
    from propensity.data.export import read_export
    from propensity.tracking.registry import promote
    from propensity.tracking import check_tracking, resolve_tracking_uri

    project = load_project(args.config)
    uri = resolve_tracking_uri(args.tracking_uri)
    check_tracking(uri)
    name = args.name or project.training.tracking.registered_model
    result = promote(name, read_export(args.data), uri, experiment=project.training.tracking.experiment,
                     capacity=args.capacity, tolerance=args.tolerance, force=args.force)
    print(f"{name}: challenger v{result['challenger']} vs champion "
          f"{'v' + str(result['champion']) if result['champion'] else '(none)'} on "
          f"{int(result['figures']['challenger']['rows']):,} holdout rows, capacity {result['capacity']:,}")
    print(f"{'':26}" + "".join(f"{w:>12}" for w in result["figures"]))
    for key in ("roc_auc", "lift_at_capacity", "conversions_at_capacity", "ece"):
        print(f"{key:26}" + "".join(f"{f[key]:>12.4f}" for f in result["figures"].values()))
    print(f"decision: {result['decision']}" + (" -- --force was used" if result["forced"] else "")
          + f" (logged as MLflow run {result['run_id']})")
    return 0


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from propensity import __version__

    p = argparse.ArgumentParser(prog="propensity", description="Lead propensity scoring from your CRM history.")
    p.add_argument("--version", action="version", version=f"propensity {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="write editable copies of features/ and training/ into a new project folder")
    s.add_argument("dir", help="a new or empty folder (init never replaces a project)")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("generate", help="write a synthetic CRM export folder (with ground truth)")
    s.add_argument("--out", required=True, help="folder to create; replaced only if it is empty or a synthetic "
                   "world propensity wrote")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--leads", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("train", help="train, evaluate and log a model from a CRM export folder")
    s.add_argument("--data", required=True, help="CRM export folder, or a flat table (.csv / .parquet, one row per lead)")
    s.add_argument("--config", help="training YAML (default: training/default.yaml here, else the packaged one)")
    s.add_argument("--out", default="models/latest", help="bundle folder to write (default: models/latest); "
                   "replaced only if it is empty or a bundle propensity wrote")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    s.add_argument("--target", help="flat table: the outcome column (yes/no, true/false or 1/0)")
    s.add_argument("--id", help="flat table: the id column (kept out of the model, kept in scores)")
    s.add_argument("--time-column", help="flat table: split by this time column (newest 20%% = test)")
    s.add_argument("--exclude", nargs="+", metavar="COL", help="flat table: columns to leave out (e.g. leaky ones)")
    s.add_argument("--budget", type=float, help="flat table: seconds for the parameter search "
                   "(default: tuning.budget_seconds of the training YAML; 0 = no search)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("score", help="score the open leads of a CRM export folder")
    s.add_argument("--model", required=True, help="bundle folder or MLflow models:/NAME@ALIAS URI")
    s.add_argument("--data", required=True, help="CRM export folder, or a flat table for a model trained on one")
    s.add_argument("--out", required=True, help="output file (.csv or .parquet; an existing file is replaced, "
                   "never a folder or an input); CSV text cells are escaped for spreadsheets")
    s.add_argument("--as-of", help="score as of this UTC time (default: end of the data)")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("evaluate", help="report a model against baselines on labelled rows (Markdown, charts, MLflow)")
    s.add_argument("--model", required=True, help="bundle folder (or models:/NAME@ALIAS for a CRM model)")
    s.add_argument("--data", required=True, help="CRM export folder for a CRM model, or a labelled table "
                   "(.csv / .parquet) with the columns of a flat-table model")
    s.add_argument("--window", choices=["new", "all"], default="new",
                   help="CRM export: 'new' (default) evaluates only snapshots after the model's training data "
                   "ended; 'all' every labelled snapshot, with the overlap stated in the report")
    s.add_argument("--out", default="evaluation", help="report folder (default: ./evaluation); replaced only if "
                   "it is empty or a report propensity wrote")
    s.add_argument("--force", action="store_true", help="replace --out even if it is not one propensity wrote "
                   "(never ., the working directory, its parents, home or an input)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("features", help="build the point-in-time feature table alone (training rows, or as of a date)")
    s.add_argument("--data", help="CRM export folder (required unless --list)")
    s.add_argument("--out", help="output file (.csv or .parquet), written atomically (required unless --list); "
                   "an existing file is replaced, never a folder or an input; CSV text cells are escaped for "
                   "spreadsheets")
    s.add_argument("--as-of", help="one row per open lead as of this UTC time (default: labelled training rows)")
    s.add_argument("--config", help="training YAML (default: training/default.yaml here, else the packaged one)")
    s.add_argument("--list", action="store_true",
                   help="print the feature catalogue of the configs (name, family, display, ...) and exit")
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("explain", help="print one lead's score and the reasons behind it")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--lead", required=True, help="lead_id")
    s.add_argument("--as-of")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("promote", help="move alias champion to the challenger if it wins on a recent holdout")
    s.add_argument("--data", required=True, help="CRM export folder whose newest labelled snapshots are the holdout")
    s.add_argument("--name", help="registered model name (default: tracking.registered_model of the config)")
    s.add_argument("--config", help="training YAML (default: training/default.yaml here, else the packaged one)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--capacity", type=int, help="leads sales can work (default: 10%% of the holdout rows)")
    s.add_argument("--tolerance", type=float, default=0.02, help="allowed loss in lift (relative) and ECE")
    s.add_argument("--force", action="store_true", help="promote even if the challenger does not win")
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("demo", help="generate a synthetic CRM, train, log to MLflow, score and explain")
    s.add_argument("--dir", default="propensity-demo", help="working folder (default: ./propensity-demo); "
                   "must be new, empty or a previous demo folder")
    s.add_argument("--force", action="store_true", help="write into --dir and replace its crm/, models/latest and "
                   "scores.csv even if propensity did not write them (never ., the working directory, its parents, "
                   "home or an input)")
    s.add_argument("--leads", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tracking-uri")
    s.set_defaults(func=cmd_demo)
    return p


def run() -> int:
    """The ``propensity`` console command: :func:`main` in a child process that reports a native crash.

    See :mod:`propensity.supervisor`; the child is ``python -m propensity.cli``.
    """
    if CRASH_LOG_ENV in os.environ:  # already the child (or a caller that set it): no second level
        return main()
    return run_supervised(sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    start_crash_log()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.debug:
        warnings.filterwarnings("ignore", module="mlflow")
    formatwarning = warnings.formatwarning
    if not args.debug:  # "warning: <message>", without the path and source line of the call that warned
        warnings.formatwarning = _one_line_warning
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; nothing was overwritten", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI turns every failure into one line
        if args.debug:
            raise
        if isinstance(exc, KeyError) and exc.args:
            msg = str(exc.args[0])
        elif isinstance(exc, (PropensityError, ValueError, OSError, RuntimeError)):
            msg = str(exc)
        else:
            msg = f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatwarning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
    return f"warning: {message}\n"


if __name__ == "__main__":
    sys.exit(main())
