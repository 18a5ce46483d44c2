"""Reference engines for the tests: independent implementations the package's engines are compared with.

:func:`reference_features` is the definitions written plainly: a loop over the
rows, then over every activity. :func:`engagement_duckdb` computes the engagement
features by the SQL the package generates for warehouses
(:mod:`propensity.features.engines.sql`), run on DuckDB; the tests run
``build_features`` with it in place of the pairwise engine
(:func:`duckdb_engine`), so that every definition is checked against a second
implementation written in another language.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names
from propensity.core.times import from_us
from propensity.data.export import CrmExport
from propensity.features.engines import pairwise
from propensity.features.engines.events import Events
from propensity.features.engines.sql import features_duckdb
from propensity.features.spec import build_feature_spec


def duckdb_engine(monkeypatch) -> str:
    """Make ``build_features(engine="pairwise")`` run :func:`engagement_duckdb`; returns that engine name."""
    monkeypatch.setattr(pairwise, "engagement_pairwise", engagement_duckdb)
    return "pairwise"


def engagement_duckdb(row_lead: np.ndarray, row_t: np.ndarray, events: Events,
                      engagement: EngagementConfig) -> dict[str, np.ndarray]:
    """The engagement features of the pairwise engine, computed by the generated SQL on DuckDB.

    The rows and events become the query's relations (leads numbered, times as UTC
    timestamps) and :func:`propensity.features.engines.sql.features_duckdb` runs the
    query :func:`~propensity.features.engines.sql.feature_sql` writes for DuckDB: a
    join of cutoff rows to events under the time contract, aggregated per row with
    CASE per signal. DuckDB streams and spills, so the pairs never reach pandas.
    """
    n_leads = int(row_lead.max(initial=-1)) + 1
    tables = SimpleNamespace(
        leads=pd.DataFrame({"lead_id": np.arange(n_leads, dtype=np.int64), "account_id": [None] * n_leads,
                            "created_at": from_us(np.zeros(n_leads, dtype=np.int64))}),
        accounts=pd.DataFrame({"account_id": pd.Series(dtype=object)}),
        activities=pd.DataFrame({"lead_id": np.asarray(events.lead, dtype=np.int64),
                                 "activity_type": np.asarray(events.types, dtype=object)[events.code],
                                 "occurred_at": from_us(events.occ), "recorded_at": from_us(events.rec)}))
    cutoffs = pd.DataFrame({"lead_id": np.asarray(row_lead, dtype=np.int64), "cutoff": from_us(row_t)})
    got = features_duckdb(tables, cutoffs, None, engagement)
    eng = [f.name for f in build_feature_spec(IcpConfig.model_construct(criteria=[]), engagement)
           if f.name != names.LEAD_AGE]
    return {name: got[name].to_numpy(np.float64) for name in eng}


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
