"""``report.html``: one self-contained page (charts inline as base64 PNG, no script, no network).

Alerts first, then per run the drift and performance figures, the funnel per tier of
every run (opportunities and wins once it matured: the table sales and marketing
share) and the features that drifted in the latest run.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from propensity.monitoring.monitor import Monitoring, RunFigures
from propensity.monitoring.performance import TIERS

__all__ = ["report_html"]

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#1a1a1a;background:#fff}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f2f2f2}td.l,th.l{text-align:left}
.alert{background:#fde8e8;border-left:6px solid #c62828;padding:.6em 1em;margin:.4em 0}
.ok{background:#e8f5e9;border-left:6px solid #2e7d32;padding:.6em 1em}.note{color:#555}
img{max-width:100%;height:auto}
"""


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return '<img alt="chart" src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode("ascii") + '">'


def _charts(result: Monitoring) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result.runs
    labels = [r.as_of.strftime("%Y-%m-%d") for r in runs]
    x = np.arange(len(runs))
    out = []
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(x, [r.score_psi for r in runs], marker="o", label="score PSI")
    ax.plot(x, [r.drift_share for r in runs], marker="s", label="share of features drifted")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_title("Drift against the training window")
    ax.legend()
    out.append(_png(fig))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(x, [r.estimated_auc for r in runs], marker="o", linestyle="--", label="estimated AUC (CBPE)")
    ax.plot(x, [r.metrics["auc"] if r.metrics else np.nan for r in runs], marker="s", label="realized AUC")
    if result.card_auc is not None:
        ax.axhline(result.card_auc, color="grey", linewidth=1, label="model card test AUC")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_title("ROC AUC per run")
    ax.legend()
    out.append(_png(fig))
    matured = [r for r in runs if r.metrics is not None]
    if matured:
        last = matured[-1]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        pred = [d["predicted"] for d in last.deciles]
        obs = [d["observed"] for d in last.deciles]
        top = max([*pred, *obs, 0.01]) * 1.05
        ax.plot([0, top], [0, top], color="grey", linewidth=1)
        ax.plot(pred, obs, marker="o")
        ax.set_xlabel("predicted conversion")
        ax.set_ylabel("observed conversion")
        ax.set_title(f"Calibration per decile, run {last.label}")
        out.append(_png(fig))
    return out


def _funnel_table(r: RunFigures) -> str:
    rows = "".join(
        f'<tr><td class="l">{t}</td><td>{r.funnel[t]["leads"]:,}</td><td>{_fmt(r.funnel[t]["opportunities"])}</td>'
        f'<td>{_fmt(r.funnel[t]["won"])}</td><td>{_pct(r.funnel[t]["conversion_rate"])}</td></tr>' for t in TIERS)
    return ('<table class="funnel"><tr><th class="l">tier</th><th>leads</th><th>opportunities</th><th>won</th>'
            f"<th>conversion rate</th></tr>{rows}</table>")


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1%}"


def _new_leads(r: RunFigures, alpha: float) -> str:
    if not r.new_lead_p:
        return f"{r.new_leads:,} (too few to test)" if r.new_leads else "-"
    off = [n for n, p in r.new_lead_p.items() if p < alpha]
    return f"{r.new_leads:,} ({len(off)} of {len(r.new_lead_p)}{': ' + html.escape(', '.join(off[:3])) if off else ''})"


def _won(r: RunFigures) -> str:
    c = r.calibration.get("in_range")
    return f"{c['observed']:,} / {c['expected']:,.1f}" if c else "-"


def report_html(result: Monitoring, title: str, alpha: float = 0.001) -> str:
    """The whole page for ``result``; ``alpha``: the new-lead test's p-value threshold."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='note'>Export ends {result.export_end:%Y-%m-%d %H:%M} UTC; horizon {result.horizon_days} "
             f"days; reference: {result.reference_rows:,} test-window rows; model card test AUC "
             f"{_fmt(result.card_auc)}.</p>"]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in result.notes]
    parts.append("<h2>Alerts</h2>")
    if result.alerts:
        parts += [f"<div class='alert'>ALERT ({html.escape(a.kind)}): {html.escape(a.message)}</div>"
                  for a in result.alerts]
    else:
        parts.append("<div class='ok'>No alert: every run is within the thresholds.</div>")
    parts.append("<h2>Runs</h2><table><tr><th class='l'>as of</th><th>leads</th><th>score PSI</th>"
                 "<th>features drifted</th><th>new leads (fit features off)</th><th>matured</th>"
                 "<th>won / expected</th><th>ROC AUC</th><th>PR AUC</th><th>log loss</th>"
                 "<th>ECE</th><th>estimated AUC</th><th>estimate error</th></tr>")
    for r in result.runs:
        m = r.metrics or {}
        parts.append(f"<tr><td class='l'>{r.label}</td><td>{r.rows:,}</td><td>{_fmt(r.score_psi)}</td>"
                     f"<td>{len(r.drifted_features)} of {len(r.drift)}</td><td>{_new_leads(r, alpha)}</td>"
                     f"<td>{'yes' if r.matured else 'no'}</td><td>{_won(r)}</td>"
                     f"<td>{_fmt(m.get('auc'))}</td><td>{_fmt(m.get('pr_auc'))}</td><td>{_fmt(m.get('log_loss'))}</td>"
                     f"<td>{_fmt(m.get('ece'))}</td><td>{_fmt(r.estimated_auc)} (estimate)</td>"
                     f"<td>{_fmt(r.estimate_error)}</td></tr>")
    parts.append("</table>")
    parts += [f"<div>{c}</div>" for c in _charts(result)]
    parts.append("<h2>Funnel per tier</h2><p class='note'>Leads of each run, the opportunities and wins among "
                 "them within the horizon, and the conversion rate (won / leads). Runs not yet matured show "
                 "their leads only.</p>")
    for r in reversed(result.runs):
        parts.append(f"<h3>Run {r.label}{'' if r.matured else ' (not matured)'}</h3>{_funnel_table(r)}")
    if result.runs:
        last = result.runs[-1]
        parts.append(f"<h2>Feature drift, run {last.label}</h2><table><tr><th class='l'>feature</th>"
                     "<th class='l'>method</th><th>distance</th><th>PSI</th><th class='l'>drifted</th></tr>")
        for d in sorted(last.drift, key=lambda d: -(d.distance if d.distance == d.distance else 0)):
            parts.append(f"<tr><td class='l'>{html.escape(d.name)}</td><td class='l'>{d.method}</td>"
                         f"<td>{_fmt(d.distance)}</td><td>{_fmt(d.psi)}</td>"
                         f"<td class='l'>{'yes' if d.drifted else ''}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
