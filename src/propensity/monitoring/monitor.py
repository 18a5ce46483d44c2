"""One monitoring pass: the score history of a model and the current export → per-run figures and alerts.

For every run of the model (its bundle digest) in the history: the drift of each
feature and of the score against the bundle's reference profile (:mod:`.drift`); when
the run has matured in the export, realized ROC AUC, PR AUC, log loss, ECE, observed
against predicted per decile and the funnel per tier; always the CBPE estimate of its
AUC (:mod:`.performance`), so matured runs show how far the estimate was from what
happened. Alerts come from the ``monitoring:`` thresholds of the training YAML.

Which leads. Scoring ranks every open lead, however old; the training rows (and so the
reference profile and the model card's figures) hold only leads up to the training's
``max_lead_age_days``. Drift, the score PSI, the realized and estimated metrics and the
alerts use the run's leads within that age, so they compare like with like; the
funnel counts every lead of the run (what sales and marketing worked), and the older
leads' conversions against their probabilities are reported apart (``details.json``).

:func:`summary` is ``summary.json``: exactly ``runs`` (``as_of``, ``rows``,
``score_psi``, ``drifted_features``, ``matured``, ``auc``, ``ece``, ``estimated_auc``,
``funnel`` with ``leads`` and ``won`` per tier) and ``alerts``. Everything else (each
feature's distances, deciles, estimate errors) is in :func:`details`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from propensity.config import MonitoringConfig
from propensity.core.names import LEAD_AGE
from propensity.data.export import CrmExport
from propensity.monitoring.drift import FeatureDrift, feature_drift, goodness_of_fit, score_psi
from propensity.monitoring.history import FEATURE, HistoryError
from propensity.monitoring.performance import (
    calibration_in_the_large,
    decile_table,
    expected_auc,
    funnel,
    is_matured,
    realized,
    run_outcomes,
)

SIGNIFICANT = 3.0  # an AUC drop alerts only beyond this many standard errors (noise)

__all__ = ["Alert", "Monitoring", "RunFigures", "details", "monitor_runs", "run_alerts", "summary"]


@dataclass(frozen=True)
class Alert:
    run: str  # the run's as-of date, "" for an alert about all runs
    kind: str  # feature_drift, score_psi, auc_drop, calibration, new_lead_drift
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict:
        return {"run": self.run, "kind": self.kind, "value": self.value, "threshold": self.threshold,
                "message": self.message}


@dataclass
class RunFigures:
    as_of: pd.Timestamp
    rows: int
    leads_in_export: int
    score_psi: float
    drift: list[FeatureDrift]
    matured: bool
    estimated_auc: float
    funnel: dict[str, dict]
    metrics: dict[str, float] | None = None
    deciles: list[dict] = field(default_factory=list)
    calibration: dict[str, dict] = field(default_factory=dict)  # "in_range" / "older": calibration_in_the_large
    new_leads: int = 0  # leads created within new_lead_days before the run (within the training's age range)
    new_lead_p: dict[str, float] = field(default_factory=dict)  # fit feature -> chi-square p-value (when tested)

    @property
    def label(self) -> str:
        return f"{self.as_of:%Y-%m-%d %H:%M}" if (self.as_of.hour, self.as_of.minute) != (0, 0) else \
            f"{self.as_of:%Y-%m-%d}"

    @property
    def drifted_features(self) -> list[str]:
        return [d.name for d in self.drift if d.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.drift) if self.drift else 0.0

    @property
    def estimate_error(self) -> float | None:
        if self.metrics is None or np.isnan(self.metrics["auc"]):
            return None
        return self.estimated_auc - self.metrics["auc"]


@dataclass
class Monitoring:
    runs: list[RunFigures]
    alerts: list[Alert]
    export_end: pd.Timestamp
    horizon_days: int
    card_auc: float | None
    reference_rows: int
    notes: list[str] = field(default_factory=list)


def _num(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def monitor_runs(history: pd.DataFrame, digest: str, bundle, reference: dict, export: CrmExport,
                 cfg: MonitoringConfig, where: str = "the score history") -> Monitoring:
    """Figures and alerts for every run of model ``digest`` in ``history`` (:func:`~.history.read_history`)."""
    # a lead scored more than once in one run (a service's day) counts once: its last score
    mine = history[history["bundle_digest"] == digest].drop_duplicates(["as_of", "lead_id"], keep="last")
    if mine.empty:
        others = sorted({f"{n} ({d[:12]})" for n, d in zip(history["model_name"], history["bundle_digest"],
                                                               strict=True)})
        raise HistoryError(f"{where}: no run of this model (bundle digest {digest[:12]}) in the score history; "
                           f"its runs are by {', '.join(others[:3])}: pass that model, or the history of this one")
    end = export.end()
    first = mine["as_of"].min()
    if end < first:
        raise HistoryError(f"{export.source}: the export ends {end:%Y-%m-%d}, before the first run of the history "
                           f"({first:%Y-%m-%d}); pass the current export")
    known = set(export.leads["lead_id"].astype(str))
    horizon = bundle.horizon_days
    runs = []
    for as_of, rows in mine.groupby("as_of", sort=True):
        as_of = pd.Timestamp(as_of)
        p = rows["probability"].to_numpy(dtype="float64")
        pool = _training_population(rows, bundle)
        drift = [feature_drift(f.name, reference["features"][f.name], pool[FEATURE + f.name], cfg)
                 for f in bundle.spec if f.name in reference["features"] and FEATURE + f.name in pool]
        in_export = rows["lead_id"].astype(str).isin(known).to_numpy()
        matured = is_matured(as_of, horizon, end) and bool(in_export.any())
        fig = RunFigures(as_of=as_of, rows=len(rows), leads_in_export=int(in_export.sum()),
                         score_psi=score_psi(reference["score"], pool["probability"].to_numpy(dtype="float64")),
                         drift=drift, matured=matured,
                         estimated_auc=expected_auc(pool["probability"].to_numpy(dtype="float64")),
                         funnel=funnel(rows["tier"].to_numpy(), None, None),
                         deciles=decile_table(p))
        fig.new_leads, fig.new_lead_p = _new_lead_tests(pool, bundle, reference, cfg)
        if matured:
            seen = rows[in_export]
            opp, won = run_outcomes(export, seen["lead_id"], as_of, horizon)
            ps = seen["probability"].to_numpy(dtype="float64")
            fig.funnel = funnel(seen["tier"].to_numpy(), opp, won)
            trained = _in_training_range(seen, bundle)
            fig.metrics = realized(won[trained], ps[trained])
            fig.deciles = decile_table(ps[trained], won[trained])
            fig.calibration = {"in_range": calibration_in_the_large(won[trained], ps[trained]),
                               "older": calibration_in_the_large(won[~trained], ps[~trained])}
        runs.append(fig)
    if not any(r.leads_in_export for r in runs):
        raise HistoryError(f"{export.source}: none of the leads of the {len(runs)} runs in the score history is in "
                           "this export; pass the export the history was scored from (or its newer copy)")
    card = bundle.metadata.get("metrics", {}).get("model", {}).get("roc_auc")
    result = Monitoring(runs, [], end, horizon, _num(card), int(reference.get("rows", 0)))
    if not any(r.matured for r in runs):
        first_due = first + pd.Timedelta(days=horizon)
        result.notes.append(f"no run has matured yet: the export ends {end:%Y-%m-%d} and the first run's "
                            f"{horizon}-day horizon ends {first_due:%Y-%m-%d}; performance is estimated only")
    result.alerts = run_alerts(runs, cfg, result.card_auc, bundle.metadata.get("calibration_checks"))
    return result


def _in_training_range(rows: pd.DataFrame, bundle) -> np.ndarray:
    """Which of the run's leads the training rows would have held: none older than ``max_lead_age_days``.

    Scoring ranks every open lead, however old; training rows (and so the reference
    and the model card) stop at that age. Drift and the calibration alert compare like
    with like; the older leads' calibration is reported apart.
    """
    max_age = bundle.metadata.get("cutoffs", {}).get("max_lead_age_days")
    column = FEATURE + LEAD_AGE
    if max_age is None or column not in rows:
        return np.ones(len(rows), dtype=bool)
    return pd.to_numeric(rows[column], errors="coerce").le(max_age).to_numpy()


def _training_population(rows: pd.DataFrame, bundle) -> pd.DataFrame:
    return rows[_in_training_range(rows, bundle)]


def _new_lead_tests(pool: pd.DataFrame, bundle, reference: dict, cfg: MonitoringConfig) -> tuple[int, dict]:
    """How many of the run's leads are new (created within ``new_lead_days``) and, when enough, each fit feature's
    chi-square p-value against the reference. Fit features only: engagement depends on a lead's age, and new
    leads are young by definition, so their engagement differs from the training's without any drift."""
    column = FEATURE + LEAD_AGE
    if column not in pool:
        return 0, {}
    new = pool[pd.to_numeric(pool[column], errors="coerce").lt(cfg.new_lead_days).to_numpy()]
    if len(new) < cfg.min_new_leads:
        return len(new), {}
    return len(new), {f.name: goodness_of_fit(reference["features"][f.name], new[FEATURE + f.name])
                      for f in bundle.spec
                      if f.family == "fit" and f.name in reference["features"] and FEATURE + f.name in new}


def run_alerts(runs: list[RunFigures], cfg: MonitoringConfig, card_auc: float | None,
               card_calibration: dict | None = None) -> list[Alert]:
    """The alerts of every run; ``card_calibration``: the model card's test-window calibration checks."""
    alerts = []
    k = cfg.consecutive_runs
    for i, r in enumerate(runs):
        if r.rows < cfg.min_rows:
            continue
        streak = runs[i - k + 1:i + 1] if i + 1 >= k else []
        if any(s.rows < cfg.min_rows for s in streak):
            streak = []
        if r.drift and r.drift_share >= cfg.drift_share:
            alerts.append(Alert(r.label, "feature_drift", r.drift_share, cfg.drift_share,
                                f"run {r.label}: {len(r.drifted_features)} of {len(r.drift)} features drifted "
                                f"({r.drift_share:.0%} >= {cfg.drift_share:.0%})"))
        if r.score_psi >= cfg.score_psi:
            alerts.append(Alert(r.label, "score_psi", r.score_psi, cfg.score_psi,
                                f"run {r.label}: the score distribution shifted (PSI {r.score_psi:.3f} >= "
                                f"{cfg.score_psi})"))
        alerts += _new_lead_alert(r, streak, cfg)
        if r.metrics is None:
            continue
        auc, se = r.metrics["auc"], r.metrics["auc_se"]
        floor = None if card_auc is None else card_auc - cfg.auc_drop
        if floor is not None and not np.isnan(auc) and auc < floor and card_auc - auc > SIGNIFICANT * se:
            alerts.append(Alert(r.label, "auc_drop", auc, floor,
                                f"run {r.label}: realized ROC AUC {auc:.3f} is more than {cfg.auc_drop} below the "
                                f"model card's test AUC {card_auc:.3f} (standard error {se:.3f})"))
        alerts += _calibration_alert(r, streak, cfg, card_calibration)
    return alerts


def _new_lead_alert(run: RunFigures, streak: list[RunFigures], cfg: MonitoringConfig) -> list[Alert]:
    """The fit features of the new leads that differ from the training's in every run of the streak."""
    if not streak or not run.new_lead_p:
        return []
    names = [n for n, p in run.new_lead_p.items() if all(s.new_lead_p.get(n, 1.0) < cfg.new_leads_p_value
                                                        for s in streak)]
    if not names:
        return []
    shown = ", ".join(f"{n} (p {run.new_lead_p[n]:.1g})" for n in names[:5])
    return [Alert(run.label, "new_lead_drift", min(run.new_lead_p[n] for n in names), cfg.new_leads_p_value,
                  f"run {run.label}: the {run.new_leads:,} leads created in the {cfg.new_lead_days} days before "
                  f"differ from the training's leads in {shown}, {len(streak)} runs in a row "
                  f"(chi-square p < {cfg.new_leads_p_value:g})")]


def _calibration_alert(run: RunFigures, streak: list[RunFigures], cfg: MonitoringConfig,
                       card: dict | None) -> list[Alert]:
    """Conversions off the expected beyond the tolerance and ``calibration_z``, the same way, in every run of the
    streak (all matured): one month off alone is the seasonal swing of a stable world."""
    cals = [s.calibration.get("in_range") for s in streak]
    if not cals or not all(cals):
        return []
    off = [c for c in cals if abs(c["off"]) > cfg.calibration_tolerance and abs(c["z"]) > cfg.calibration_z]
    if len(off) < len(cals) or len({c["off"] > 0 for c in off}) > 1:
        return []
    c = cals[-1]
    return [Alert(run.label, "calibration", c["off"], cfg.calibration_tolerance,
                  f"run {run.label}: calibration is off: {c['observed']:,} of the leads within the training's age "
                  f"range converted, the probabilities expected {c['expected']:,.1f} ({c['off']:+.0%}, beyond "
                  f"±{cfg.calibration_tolerance:.0%}; z = {c['z']:+.1f}), {len(cals)} matured runs in a row"
                  + _already_off(card, c["off"] > 0))]


def _already_off(card: dict | None, under: bool) -> str:
    """When the model card's test window was already off the same way, the fix is the model, not the world."""
    if not card or not card.get("observed_outside"):
        return ""
    observed, predicted = card.get("observed_rate"), card.get("predicted_rate")
    if observed is None or predicted is None or (observed > predicted) != under:
        return ""
    return (f"; the model card's test window was already off the same way (observed {observed:.2%}, predicted "
            f"{predicted:.2%}): recalibrate or retrain rather than look for drift")


def summary(result: Monitoring) -> dict:
    """``summary.json``: the keys the issue lists, nothing else."""
    runs = []
    for r in result.runs:
        runs.append({
            "as_of": r.as_of.isoformat(),
            "rows": r.rows,
            "score_psi": _num(r.score_psi),
            "drifted_features": r.drifted_features,
            "matured": r.matured,
            "auc": _num(r.metrics["auc"]) if r.metrics else None,
            "ece": _num(r.metrics["ece"]) if r.metrics else None,
            "estimated_auc": _num(r.estimated_auc),
            "funnel": {t: {"leads": v["leads"], "won": v["won"]} for t, v in r.funnel.items()},
        })
    return {"runs": runs, "alerts": [a.to_dict() for a in result.alerts]}


def details(result: Monitoring) -> dict:
    """``details.json``: per run every feature's drift, the realized metrics, deciles, funnel and estimate error."""
    return {
        "export_end": result.export_end.isoformat(), "horizon_days": result.horizon_days,
        "card_auc": result.card_auc, "reference_rows": result.reference_rows, "notes": result.notes,
        "runs": [{"as_of": r.as_of.isoformat(), "rows": r.rows, "leads_in_export": r.leads_in_export,
                  "matured": r.matured, "score_psi": _num(r.score_psi), "drift_share": r.drift_share,
                  "drift": [{k: (_num(v) if isinstance(v, float) else v) for k, v in d.to_dict().items()}
                            for d in r.drift],
                  "metrics": {k: _num(v) if isinstance(v, float) else v for k, v in (r.metrics or {}).items()},
                  "estimated_auc": _num(r.estimated_auc), "estimate_error": _num(r.estimate_error),
                  "calibration": r.calibration, "new_leads": r.new_leads, "new_lead_p": r.new_lead_p,
                  "deciles": r.deciles, "funnel": r.funnel} for r in result.runs],
        "alerts": [a.to_dict() for a in result.alerts],
    }
