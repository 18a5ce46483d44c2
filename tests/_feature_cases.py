"""Small CRM exports, cutoff tables and comparisons shared by the feature and engine tests."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from reference_engines import reference_features

from propensity.config import EngagementConfig, IcpConfig, default_project_dir, load_project
from propensity.data.export import CrmExport

T0 = pd.Timestamp("2025-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)

ICP = IcpConfig.model_validate({"criteria": [
    {"name": "industry", "table": "accounts", "column": "industry", "display": "Industry",
     "kind": "in", "values": ["Software", "healthcare"]},
    {"name": "employees", "table": "accounts", "column": "employees", "display": "Employees",
     "kind": "range", "min": 200, "max": 5000},
    {"name": "seniority", "table": "leads", "column": "seniority", "display": "Seniority",
     "kind": "in", "values": ["vp"], "raw": False},
    {"name": "source", "table": "leads", "column": "lead_source", "display": "Source", "kind": "value"},
]})
ENGAGEMENT = EngagementConfig.model_validate({
    "windows_days": [30, 7],
    "signals": [
        {"name": "web", "activity_types": ["web_visit", "pricing_page_visit"], "display": "Web",
         "half_life_days": 10},
        {"name": "pricing", "activity_types": ["pricing_page_visit"], "display": "Pricing",
         "half_life_days": 5},
        {"name": "demo", "activity_types": ["demo_request"], "display": "Demo", "half_life_days": 21},
    ],
})


def make_export(events: list[tuple], leads: list[tuple] | None = None,
                accounts: list[tuple] | None = None) -> CrmExport:
    """events: (lead_id, type, occurred_at[, recorded_at]); leads: (id, account, created, seniority, source)."""
    leads = leads or [("L1", "A1", T0 - 100 * DAY, "VP", "web")]
    accounts = accounts or [("A1", " software ", 1000)]
    acts = pd.DataFrame({
        "lead_id": [e[0] for e in events],
        "activity_type": [e[1] for e in events],
        "occurred_at": pd.to_datetime([e[2] for e in events], utc=True),
        "recorded_at": pd.to_datetime([e[3] if len(e) > 3 else e[2] for e in events], utc=True),
    })
    return CrmExport.from_frames({
        "accounts": pd.DataFrame(accounts, columns=["account_id", "industry", "employees"]),
        "leads": pd.DataFrame(leads, columns=["lead_id", "account_id", "created_at", "seniority", "lead_source"]),
        "activities": acts,
    })


def cut(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": [r[0] for r in rows], "cutoff": pd.to_datetime([r[1] for r in rows], utc=True)})


def random_world(seed: int = 0, n_leads: int = 50, n_events: int = 2000) -> tuple[CrmExport, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01T00:00:00Z")
    span_us = 400 * 86_400_000_000
    industries = ["software", " Healthcare ", "retail", "SOFTWARE", None, "  "]
    accounts = pd.DataFrame({
        "account_id": [f"A{i}" for i in range(12)],
        "industry": rng.choice(np.array(industries, dtype=object), 12),
        "employees": np.where(rng.random(12) < 0.2, np.nan, rng.choice([50, 200, 1000, 5000, 5001], 12)),
        "annual_revenue": rng.uniform(1e6, 2e9, 12),
        "country": rng.choice(np.array(["us", "DE ", "BR", None], dtype=object), 12),
    })
    lead_ids = [f"L{i:03d}" for i in range(n_leads)]
    account_of = [f"A{rng.integers(0, 12)}" for _ in range(n_leads)]
    account_of[3] = "A_not_in_accounts"
    leads = pd.DataFrame({
        "lead_id": lead_ids,
        "account_id": account_of,
        "created_at": start + pd.to_timedelta(rng.integers(0, span_us // 2, n_leads), unit="us"),
        "seniority": rng.choice(np.array(["VP", "director", "intern", None], dtype=object), n_leads),
        "department": rng.choice(np.array(["Sales", "it", None], dtype=object), n_leads),
        "email_domain": rng.choice(np.array(["gmail.com", "acme.com"], dtype=object), n_leads),
        "lead_source": rng.choice(np.array(["web", "event", None], dtype=object), n_leads),
    })
    types = sorted(load_project().engagement.activity_types) + ["chat_message"]
    occ = start + pd.to_timedelta(rng.integers(0, span_us, n_events), unit="us")
    lag = np.where(rng.random(n_events) < 0.2, rng.integers(0, 20 * 86_400_000_000, n_events), 0)
    activities = pd.DataFrame({
        "lead_id": rng.choice(lead_ids, n_events),
        "activity_type": rng.choice(types, n_events),
        "occurred_at": occ,
        "recorded_at": occ + pd.to_timedelta(lag, unit="us"),
    })
    with warnings.catch_warnings():  # events before their lead's creation are part of the edge cases
        warnings.filterwarnings("ignore", message=".*before their lead's created_at")
        export = CrmExport.from_frames({"accounts": accounts, "leads": leads, "activities": activities})
    # Cutoffs at random times, plus ones exactly at an event and exactly a window after one.
    n_cut = 150
    cut_lead = rng.choice(lead_ids, n_cut)
    cut_t = start + pd.to_timedelta(rng.integers(span_us // 4, span_us, n_cut), unit="us")
    pick = rng.integers(0, n_events, 40)
    edge_lead = activities["lead_id"].to_numpy()[pick]
    shift = rng.choice([0, 7, 30, 90], 40) * 86_400_000_000
    edge_t = activities["occurred_at"].iloc[pick] + pd.to_timedelta(shift, unit="us")
    cutoffs = pd.DataFrame({"lead_id": np.r_[cut_lead, edge_lead],
                            "cutoff": pd.to_datetime(np.r_[cut_t.to_numpy(), edge_t.to_numpy()], utc=True)})
    cutoffs["label"] = rng.integers(0, 2, len(cutoffs)).astype(np.int8)
    return export, cutoffs


def assert_features_equal(got: pd.DataFrame, want: pd.DataFrame, spec) -> None:
    for f in spec:
        if f.kind == "categorical":
            def norm(col):
                return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in col]
            assert norm(got[f.name]) == norm(want[f.name]), f.name
        else:
            np.testing.assert_allclose(got[f.name].to_numpy(np.float64), want[f.name].to_numpy(np.float64),
                                       rtol=1e-9, atol=0, equal_nan=True, err_msg=f.name)


def assert_same_as_pairwise(got: pd.DataFrame, want: pd.DataFrame, spec, rtol: float = 1e-13) -> None:
    """Counts, days and active days exactly equal; decay sums equal up to summation order."""
    for f in spec:
        if f.kind == "categorical":
            continue
        a, b = got[f.name].to_numpy(np.float64), want[f.name].to_numpy(np.float64)
        if f.name.endswith("_decay"):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=f.name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=f.name)


def world_case() -> tuple[CrmExport, pd.DataFrame, IcpConfig, EngagementConfig, pd.DataFrame]:
    """The random world, its cutoffs, the default configs and the reference's features of those rows."""
    export, cutoffs = random_world()
    project = load_project(default_project_dir() / "training" / "default.yaml")
    expected = reference_features(export, cutoffs, project.icp, project.engagement)
    return export, cutoffs, project.icp, project.engagement, expected


TYPES = ["web_visit", "pricing_page_visit", "demo_request", "chat"]


def unknown_event(lead: str, activity_type: str, t: pd.Timestamp, kind: str, offset: pd.Timedelta) -> pd.DataFrame:
    """One activity unknown at cutoff ``t``: after it, at it (recorded later), or before it but recorded at or after."""
    if kind == "after":
        occurred, recorded = t + offset, t + offset
    elif kind == "at":
        occurred, recorded = t, t + offset
    else:  # happened before the cutoff, but the CRM learned of it at or after the cutoff
        occurred, recorded = t - offset - pd.Timedelta(microseconds=1), t + offset
    return pd.DataFrame({"lead_id": [lead], "activity_type": [activity_type],
                         "occurred_at": [occurred], "recorded_at": [recorded]}).astype(
        {"occurred_at": "datetime64[us, UTC]", "recorded_at": "datetime64[us, UTC]"})
