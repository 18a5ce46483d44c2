"""Everything the ``propensity`` command writes to the terminal: results on stdout; progress, warnings and errors
on stderr (each progress step also goes to the crash log, :mod:`propensity.cli.crashlog`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from propensity.cli.crashlog import step
from propensity.jobs import (
    CrmEvaluation,
    CrmScoring,
    CrmTraining,
    Demo,
    FeatureTable,
    Monitored,
    Progress,
    Promotion,
    TableEvaluation,
    TableScoring,
    TableTraining,
    World,
)

__all__ = ["TerminalProgress", "crm_evaluation", "crm_scoring", "crm_training", "demo", "error", "evaluation_run",
           "explanation", "feature_catalogue", "feature_table", "format_explanation", "format_feature_list",
           "generated", "interrupted", "lead_changes", "leakage_audit", "metric_table", "mlflow_run", "monitoring",
           "one_line_warning", "project_created", "promotion", "say", "sql_query", "table_evaluation", "table_scoring",
           "table_training", "table_training_run",
           "training_metrics", "training_run"]

# The headline metrics of a training, with the names a reader knows.
TRAINING_METRICS = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("log_loss", "log loss"), ("brier", "Brier"),
                    ("ece", "calibration error"), ("top_decile_lift", "top-decile lift"))
CRM_TRAINING_METRICS = (*TRAINING_METRICS, ("top_decile_conversion", "top-decile conversion"))
EVALUATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift")
PROMOTION_METRICS = ("roc_auc", "lift_at_capacity", "conversions_at_capacity", "ece")


# ------------------------------------------------------------------ stderr


def say(msg: str) -> None:
    """One progress line on stderr (and the step in the crash log)."""
    step(msg)
    print(f"  {msg}", file=sys.stderr, flush=True)


def error(msg: str) -> None:
    """The one line a failed command ends with."""
    print(f"error: {msg}", file=sys.stderr, flush=True)


def interrupted() -> None:
    print("interrupted; nothing was overwritten", file=sys.stderr)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``warning: <message>``, without the path and source line of the call that warned."""
    return f"warning: {message}\n"


class TerminalProgress(Progress):
    """A job's progress on stderr: a bar on a terminal, plain lines otherwise (cron, CI, a pipe)."""

    def __init__(self) -> None:
        self.bar = None

    def plan(self, steps: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=steps, file=sys.stderr, disable=None, leave=False,
                        bar_format="  {desc:48} {bar:20} {n_fmt}/{total_fmt} [{elapsed}]")

    def step(self, message: str) -> None:
        if self.bar is None or self.bar.disable:
            say(message)
            return
        step(message)
        if self.bar.n < self.bar.total:
            self.bar.update(1)
        self.bar.set_description_str(message[:48])

    def count(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(desc="  scoring leads", unit=" leads", file=sys.stderr, disable=None, leave=False)
        if total is None:
            return
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if self.bar.disable:  # no terminal: one plain line per chunk instead of a bar
            say(f"scored {done:,} of {total:,} leads")

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------ tables


def metric_table(names: list[str], metrics: Callable[[str], dict], rows: Iterable[tuple[str, str]],
                 label_width: int, cell_width: int, name_chars: int | None = None) -> None:
    """One table of metrics: a header of model names (cut to ``name_chars``), one line per (key, label), 4 decimals."""
    print(f"{'':{label_width}}" + "".join(f"{n[:name_chars]:>{cell_width}}" for n in names))
    for key, label in rows:
        print(f"{label:{label_width}}" + "".join(f"{metrics(n)[key]:>{cell_width}.4f}" for n in names))


def mlflow_run(run: dict, detail: str = "") -> None:
    """The MLflow run a command logged, and ``detail`` (what was registered)."""
    print(f"MLflow run {run['run_id']} in experiment '{run['experiment']}' ({run['tracking_uri']}){detail}")


# ------------------------------------------------------------------ commands


def project_created(target: Path) -> None:
    print(f"project created in {target}: edit features/icp.yaml, features/engagement.yaml, training/default.yaml")
    print(f"then: cd {target} && propensity train --data CRM_EXPORT_DIR")


def generated(world: World) -> None:
    print(f"synthetic CRM world with {world.leads:,} leads (seed {world.seed}) written to {world.path} "
          f"in {world.seconds:.1f}s; ground truth in {world.ground_truth}")
    if world.hazards:
        print("hazards: " + ", ".join(f"{k}={'+'.join(v) if isinstance(v, tuple) else v}"
                                      for k, v in world.hazards.items()))


def training_metrics(result) -> None:
    """A CRM training's test window, its metrics table, its top-K figures and the calibration chosen."""
    m = result.metrics["model"]
    who = [w for w in ("model", "baseline", "logistic") if w in result.metrics]
    print(f"test window: {int(m['rows']):,} lead snapshots, {int(m['positives']):,} closed won "
          f"(base rate {m['base_rate']:.2%}), cutoffs {result.split['test']['first_cutoff']} .. "
          f"{result.split['test']['last_cutoff']}")
    metric_table(who, lambda w: result.metrics[w], CRM_TRAINING_METRICS, label_width=22, cell_width=10)
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


def result_readiness(result) -> None:
    """A CRM training's family, split notes, calibration checks and verdict (after its metrics and audit)."""
    readiness(getattr(result, "family", None), getattr(result, "verdict", None), getattr(result, "checks", None),
              result.split.get("notes", []))


def readiness(family: dict | None, verdict: dict | None, checks: dict | None, notes: list[str] = ()) -> None:
    """The family that ships and why, what the split chose, the calibration checks and the readiness verdict."""
    for note in notes:
        print(f"split: {note}")
    if family:
        print(f"model family: {family['chosen']} ({family['why']})")
    shift = (checks or {}).get("prior_shift", {})
    if shift.get("moved"):
        print(f"base rate moved from {shift['train_rate']:.2%} (training rows) to {shift['newest_rate']:.2%} "
              "(newest validation window); the calibrator fitted there corrects for it")
    if checks and checks.get("observed_outside"):
        lo, hi = checks["predicted_interval"]
        print(f"warning: the test window's conversion rate {checks['observed_rate']:.2%} is outside the "
              f"{lo:.2%}-{hi:.2%} the model predicts: the world has moved since the newest labelled window")
    if verdict:
        reasons = verdict.get("reasons", [])
        print(f"readiness: {verdict['verdict'].upper()}" + (": " + "; ".join(reasons) if reasons else ""))


def leakage_audit(audit: dict | None, where: str) -> None:
    """The leakage audit under a training's metrics: the flags to review, then the accepted ones, one line each."""
    from propensity.modeling.audit import audit_summary

    if not audit:
        return
    review, accepted = audit_summary(audit)
    head = (f"leakage audit: {len(review)} flag(s) to review: these look filled in at or after the outcome; "
            f"check them (details in {where}), then leave them out or list them under audit.accept"
            if review else "leakage audit: no flag to review")
    print(head + (f"; {len(accepted)} accepted (audit.accept)" if accepted else ""))
    for line in review:
        print(f"  flag: {line}")
    for line in accepted:
        print(f"  accepted: {line}")
    for name in audit.get("accept_unused", []):
        print(f"  note: audit.accept names {name!r}, which raised no flag")


def training_run(run: dict | None) -> None:
    """The MLflow run of a CRM training and how to look at it."""
    if run is None:
        return
    mlflow_run(run, f"; registered as {run['registered_model']} v{run['version']} (alias challenger)")
    if run["tracking_uri"].startswith("sqlite:///"):
        print(f"look at it with: mlflow ui --backend-store-uri {run['tracking_uri']}")


def crm_training(t: CrmTraining) -> None:
    from propensity.modeling.report import sampling_line

    sampled = sampling_line(getattr(t.result, "sampling", None) or {})
    if sampled:
        print(sampled)
    training_metrics(t.result)
    leakage_audit(getattr(t.result, "audit", None), str(t.model_card))
    result_readiness(t.result)
    meta = t.result.bundle.metadata
    model = (f"best iteration {meta['best_iteration']}" if meta.get("family", {}).get("chosen", "lightgbm")
             == "lightgbm" else meta["family"]["chosen"])
    print(f"model bundle: {t.out} ({model}, {t.result.timings['total_s']:.1f}s); report: {t.model_card}")
    training_run(t.run)


def table_training(t: TableTraining) -> None:
    """A flat-table training once its bundle is written: notes, metrics, the leakage audit, the bundle."""
    result = t.result
    for note in result.notes:
        print(f"note: {note}")
    comp = result.comparison
    print(f"test rows: {comp['rows']:,}, {comp['positives']:,} conversions "
          f"({result.bundle.metadata['split']['kind']} split)")
    metric_table(list(comp["models"]), lambda n: comp["models"][n]["metrics"], TRAINING_METRICS,
                 label_width=22, cell_width=22, name_chars=20)
    leakage_audit(result.audit, str(t.report))
    readiness(result.family, result.verdict, result.checks)
    shipped = (f"{result.params['n_rounds']} trees" if result.params.get("model_family", "lightgbm") == "lightgbm"
               else f"{result.params['model_family']} family")
    print(f"model bundle: {t.out} ({result.params['trials']} parameter sets tried, {shipped}, "
          f"calibration {result.params['calibration']}, {result.timings['total_s']:.1f}s); report: {t.report}")


def table_training_run(t: TableTraining) -> None:
    """The MLflow run of a flat-table training and how to load the registered model."""
    if t.run is None:
        return
    name = t.registered_model
    mlflow_run(t.run, f"; registered as {name} v{t.run['version']} (alias challenger): load it with "
                      f"mlflow.pyfunc.load_model('models:/{name}@challenger')")


def crm_scoring(s: CrmScoring) -> None:
    n, dt, tiers = s.leads, s.seconds, s.tiers
    print(f"scored {n:,} open leads in {dt:.1f}s ({n / max(dt, 1e-9):,.0f}/s) -> {s.out}; tiers: "
          f"SQL {tiers.sql_leads:,}, MQL {tiers.mql_leads:,}, nurture {tiers.nurture_leads:,}")
    if tiers.error_leads:
        print(f"{tiers.error_leads:,} lead(s) could not be scored: tier 'error', the reason in their notes")
    policy = (f"capacity {tiers.leads_per_week:,} leads/week" if tiers.policy == "capacity"
              else f"thresholds MQL >= {tiers.mql:.1%}, SQL >= {tiers.sql:.1%}")
    cut = f", SQL threshold {tiers.sql_threshold:.1%}" if tiers.sql_leads else ""
    print(f"tier policy: {policy}{cut}; conversions expected from the SQL leads: {tiers.expected_conversions:,.1f}")
    if s.history is not None:
        print(f"score history: this run -> {s.history}")


def lead_changes(c) -> None:
    """A lead's trend over its runs in the score history and the reasons that moved most."""
    runs = ", ".join(f"{day} {score}" for day, score in c.runs[-5:])
    print(f"history: {c.trend} (scores {runs})")
    for text in c.moved:
        print(f"  changed: {text}")


def monitoring(m: Monitored) -> None:
    r = m.result
    matured = [x for x in r.runs if x.matured]
    print(f"monitored {len(r.runs)} run(s) ({len(matured)} matured) against the export ending "
          f"{r.export_end:%Y-%m-%d} -> {m.out / 'report.html'}")
    for x in r.runs:
        realized = f", realized AUC {x.metrics['auc']:.3f}" if x.metrics else ""
        print(f"  {x.label}: {x.rows:,} leads, score PSI {x.score_psi:.3f}, {len(x.drifted_features)} of "
              f"{len(x.drift)} features drifted, estimated AUC {x.estimated_auc:.3f}{realized}")
    for note in r.notes:
        print(f"note: {note}")
    for a in m.alerts:
        print(f"ALERT {a['kind']}: {a['message']}")
    if not m.alerts:
        print("no alert")
    if m.run:
        mlflow_run(m.run)


def table_scoring(s: TableScoring) -> None:
    print(f"scored {s.rows:,} rows in {s.seconds:.1f}s -> {s.out} (same order as {s.data})")


def crm_evaluation(e: CrmEvaluation) -> None:
    """A CRM evaluation once its report is written: the rows, the metrics table, the model's top K."""
    ev = e.evaluation
    comp = ev["comparison"]
    print(f"rows: {ev['window_text']}")
    print(f"{comp['positives']:,} closed won (base rate {comp['positives'] / max(comp['rows'], 1):.2%})")
    metric_table(list(comp["models"]), lambda n: comp["models"][n]["metrics"],
                 [(k, k) for k in EVALUATION_METRICS], label_width=22, cell_width=36, name_chars=34)
    for label, k in ev["ks"].items():
        if label in ("capacity", "sql_tier", "top_decile"):
            t = comp["models"]["model"]["top_k"][str(k)]
            print(f"model, top {k:,} ({label.replace('_', ' ')}): precision {t['precision']:.1%}, "
                  f"recall {t['recall']:.1%}, {int(t['conversions']):,} conversions")
    print(f"report: {e.report}")


def table_evaluation(e: TableEvaluation) -> None:
    """A flat-table evaluation once its report is written: rows left out, the metrics table."""
    result = e.comparison
    if result["left_out"]:
        print(f"note: {result['left_out_note']}")
    print(f"{result['rows']:,} rows, {result['positives']:,} conversions")
    metric_table(list(result["models"]), lambda n: result["models"][n]["metrics"],
                 [(k, k) for k in EVALUATION_METRICS], label_width=22, cell_width=36, name_chars=34)
    print(f"report: {e.report}")


def evaluation_run(e: CrmEvaluation | TableEvaluation) -> None:
    if e.run is not None:
        mlflow_run(e.run)


def feature_table(f: FeatureTable) -> None:
    print(f"{f.rows:,} {f.what}, {f.columns} columns -> {f.out} ({f.seconds:.1f}s)")


def format_feature_list(spec: list) -> str:
    """The feature catalogue: one line per feature (``features.spec.Feature``), in column order."""
    rows = [("name", "family", "kind", "display", "source", "actionable", "monotone")]
    rows += [(f.name, f.family, f.kind, f.display, f.source, "yes" if f.actionable else "no",
              {1: "increasing", -1: "decreasing"}.get(f.monotone, "-")) for f in spec]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    fit = sum(f.family == "fit" for f in spec)
    return "\n".join([*lines, f"{len(spec)} features: {fit} fit, {len(spec) - fit} engagement "
                                f"(after lead_id, cutoff and any label in a feature table)"])


def feature_catalogue(spec: list) -> None:
    print(format_feature_list(spec))


def sql_query(text: str) -> None:
    """The query as it is (it ends with its own newline), for a file or a warehouse console."""
    print(text, end="")


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


def explanation(ls) -> None:
    print(format_explanation(ls))


def promotion(p: Promotion) -> None:
    result = p.decision
    print(f"{p.name}: challenger v{result['challenger']} vs champion "
          f"{'v' + str(result['champion']) if result['champion'] else '(none)'} on "
          f"{int(result['figures']['challenger']['rows']):,} holdout rows, capacity {result['capacity']:,}")
    metric_table(list(result["figures"]), lambda w: result["figures"][w], [(k, k) for k in PROMOTION_METRICS],
                 label_width=26, cell_width=12)
    audit = result.get("challenger_audit")
    if audit is None:
        print("challenger's leakage audit: not recorded in its MLflow run")
    else:
        print(f"challenger's leakage audit (MLflow run {audit['run_id']}): "
              + (f"{len(audit['review'])} flag(s) to review" if audit["review"] else "no flag to review")
              + (f"; {len(audit['accepted'])} accepted (audit.accept)" if audit["accepted"] else ""))
        for line in audit["review"]:
            print(f"  flag: {line}")
        for line in audit["accepted"]:
            print(f"  accepted: {line}")
    ready = result.get("readiness") or {}
    if ready:
        print(f"challenger readiness: {ready['verdict']}" + (": " + "; ".join(ready["reasons"])
                                                              if ready.get("reasons") else ""))
    print(f"decision: {result['decision']}" + (" -- --force was used" if result["forced"] else "")
          + f" (logged as MLflow run {result['run_id']})")


def demo(d: Demo) -> None:
    print()
    training_metrics(d.training.result)
    leakage_audit(getattr(d.training.result, "audit", None), str(d.training.model_card))
    result_readiness(d.training.result)
    m = d.training.result.metrics["model"]
    print(f"oracle ROC AUC {d.oracle_auc:.4f}, log loss {d.oracle_log_loss:.4f} (the best possible model: the "
          f"generator's true probability given what it knew at each cutoff); model / oracle = "
          f"{m['roc_auc'] / d.oracle_auc:.3f} AUC, log loss {m['log_loss']:.4f} = "
          f"{m['log_loss'] / d.oracle_log_loss:.3f} x the oracle's")
    print(f"scored {d.scored:,} open leads -> {d.scores}")
    explanation(d.best)
    print(f"model bundle: {d.model_dir}")
    training_run(d.training.run)
