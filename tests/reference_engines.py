"""Reference engines for the tests: independent implementations the package's engines are compared with.

:func:`reference_features` is the definitions written plainly: a loop over the
rows, then over every activity. :func:`engagement_duckdb` computes the engagement
features by the direct join of cutoff rows to events in SQL (DuckDB streams and
spills, but does rows x events work). No code of the package calls it; the tests
run ``build_features`` with it in place of the pairwise engine
(:func:`duckdb_engine`), so that every definition is checked against a second
implementation written in another language.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.data.export import CrmExport
from propensity.features.engines import pairwise
from propensity.features.engines.events import Events
from propensity.features.spec import build_feature_spec


def duckdb_engine(monkeypatch) -> str:
    """Make ``build_features(engine="pairwise")`` run :func:`engagement_duckdb`; returns that engine name."""
    monkeypatch.setattr(pairwise, "engagement_pairwise", engagement_duckdb)
    return "pairwise"


def engagement_duckdb(row_lead: np.ndarray, row_t: np.ndarray, events: Events,
                      engagement: EngagementConfig) -> dict[str, np.ndarray]:
    """The engagement features of the pairwise engine, computed by DuckDB.

    Events are joined to rows on lead under the time contract and aggregated per
    (row, signal) with FILTERed counts, one pass; a second pass counts distinct
    active days per row. DuckDB streams and spills, so the (row, event) pairs are
    never held in pandas; the long result is pivoted to wide columns in NumPy.
    """
    n, n_sig = len(row_lead), len(engagement.signals)
    windows = engagement.windows_days
    longest = max(windows)
    rows = pd.DataFrame({"rid": np.arange(n, dtype=np.int64), "lead": row_lead, "t": row_t})
    # One event row per signal it belongs to (sig -1: no signal, still activity).
    sig_of_event, event_idx = [], []
    for s_idx in range(n_sig):
        idx = np.flatnonzero(events.member[s_idx][events.code])
        event_idx.append(idx)
        sig_of_event.append(np.full(len(idx), s_idx))
    none = np.flatnonzero(~events.member.any(axis=0)[events.code])
    idx = np.concatenate([*event_idx, none])
    sig = np.concatenate([*sig_of_event, np.full(len(none), -1)]).astype(np.int64)
    half_life = np.array([s.half_life_days for s in engagement.signals] + [1.0], dtype=np.float64)
    ev = pd.DataFrame({"lead": events.lead[idx], "occ": events.occ[idx], "rec": events.rec[idx],
                       "sig": sig, "hl": half_life[sig], "day": events.day[idx]})
    joined = "FROM rows r JOIN ev e ON e.lead = r.lead AND e.occ < r.t AND e.rec < r.t"
    counts = ", ".join(f"count(*) FILTER (WHERE age <= {w * DAY_US}) AS w{i}" for i, w in enumerate(windows))
    per_signal = f"""
        SELECT rid, sig, {counts}, min(age) AS min_age,
               sum(pow(0.5, (age::DOUBLE / {DAY_US}::DOUBLE) / hl)) AS decay
        FROM (SELECT r.rid, r.t - e.occ AS age, e.sig, e.hl {joined})
        GROUP BY rid, sig"""
    active = f"""
        SELECT rid, count(*) AS days
        FROM (SELECT DISTINCT r.rid, e.day {joined} AND r.t - e.occ <= {longest * DAY_US})
        GROUP BY rid"""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # the CLI owns progress output
        con.register("rows", rows)
        con.register("ev", ev)
        long = con.execute(per_signal).fetchnumpy()
        act = con.execute(active).fetchnumpy()
    finally:
        con.close()

    rid = np.asarray(long["rid"], dtype=np.int64)
    sig = np.asarray(long["sig"], dtype=np.int64)
    min_age = np.asarray(long["min_age"], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for s_idx, s in enumerate(engagement.signals):
        m = sig == s_idx
        for i, w in enumerate(windows):
            out[names.events_in_window(s.name, w)] = _scatter(n, rid[m], np.asarray(long[f"w{i}"])[m], 0.0)
        out[names.days_since(s.name)] = _scatter(n, rid[m], min_age[m] / DAY_US, np.nan)
        out[names.decay(s.name)] = _scatter(n, rid[m], np.asarray(long["decay"])[m], 0.0)
    out[names.active_days(longest)] = _scatter(n, np.asarray(act["rid"], dtype=np.int64),
                                                  np.asarray(act["days"]), 0.0)
    latest = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(latest, rid, min_age)
    out[names.DAYS_SINCE_ANY] = np.where(latest == np.iinfo(np.int64).max, np.nan, latest / DAY_US)
    return out


def _scatter(n: int, index: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
    full = np.full(n, fill, dtype=np.float64)
    full[index] = values
    return full


def reference_features(export: CrmExport, cutoffs: pd.DataFrame, icp: IcpConfig,
                       engagement: EngagementConfig) -> pd.DataFrame:
    """The definitions, written plainly: loop over rows, then over every activity."""
    leads = {r.lead_id: r for r in export.leads.itertuples(index=False)}
    accounts = {r["account_id"]: r for r in export.accounts.to_dict("records")}
    acts = list(export.activities.itertuples(index=False))
    longest = max(engagement.windows_days)
    out = []
    for row in cutoffs.itertuples(index=False):
        t = row.cutoff
        lead = leads[row.lead_id]
        feats: dict[str, object] = {}
        for c in icp.criteria:
            source = lead._asdict() if c.table == "leads" else accounts.get(lead.account_id, {})
            v = source.get(c.column)
            missing = v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""
            if c.kind == "range":
                value = math.nan if missing else float(v)
                lo = -math.inf if c.min is None else c.min
                hi = math.inf if c.max is None else c.max
                match = math.nan if math.isnan(value) else float(lo <= value <= hi)
            else:
                value = None if missing else str(v).strip()
                match = math.nan if value is None else float(value.lower() in [x.lower() for x in c.values or []])
            if c.kind != "value":
                feats[f"fit_{c.name}"] = match
            if c.raw:
                feats[f"fit_{c.name}_value"] = value
        seen = [a for a in acts if a.lead_id == row.lead_id and a.occurred_at < t and a.recorded_at < t]
        for s in engagement.signals:
            mine = [a for a in seen if a.activity_type in s.activity_types]
            for w in engagement.windows_days:
                feats[f"eng_{s.name}_{w}d"] = float(sum(t - pd.Timedelta(days=w) <= a.occurred_at for a in mine))
            feats[f"eng_{s.name}_days_since"] = (
                (t - max(a.occurred_at for a in mine)).total_seconds() / 86400 if mine else math.nan)
            feats[f"eng_{s.name}_decay"] = sum(
                0.5 ** ((t - a.occurred_at).total_seconds() / 86400 / s.half_life_days) for a in mine)
        dates = {a.occurred_at.date() for a in seen if t - pd.Timedelta(days=longest) <= a.occurred_at}
        feats[f"eng_active_days_{longest}d"] = float(len(dates))
        feats["eng_days_since_any"] = (
            (t - max(a.occurred_at for a in seen)).total_seconds() / 86400 if seen else math.nan)
        feats["lead_age_days"] = (t - lead.created_at).total_seconds() / 86400
        out.append(feats)
    names = [f.name for f in build_feature_spec(icp, engagement)]
    return pd.DataFrame(out, columns=names)
