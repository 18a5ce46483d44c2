"""One lead's features without DataFrames equal build_features', value for value."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from propensity.config import default_project_dir, load_project
from propensity.core.times import to_us
from propensity.data.export import CrmExport
from propensity.data.synthetic import generate_world
from propensity.features.onelead import OneLead
from propensity.features.pipeline import build_features

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def project():
    return load_project(default_project_dir() / "training" / "default.yaml")


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if isinstance(a, str) or isinstance(b, str) else float(a) == float(b)


def _one_lead_values(ol: OneLead, export: CrmExport, lead_id: str, cutoff: pd.Timestamp) -> dict:
    lead = export.leads[export.leads["lead_id"] == lead_id].iloc[0].to_dict()
    hit = export.accounts[export.accounts["account_id"] == lead["account_id"]]
    account = hit.iloc[0].to_dict() if len(hit) else None
    acts = export.activities[export.activities["lead_id"] == lead_id]
    return ol.features(lead, account, acts["activity_type"].tolist(), to_us(acts["occurred_at"]),
                       to_us(acts["recorded_at"]), int(to_us(pd.Series([cutoff]))[0]),
                       int(to_us(pd.Series([lead["created_at"]]))[0]))


def _check(ol: OneLead, export: CrmExport, cut: pd.DataFrame, icp, engagement) -> int:
    """Compare every feature of every cutoff row; exact against the pairwise engine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unknown activity type's warning
        pairwise = build_features(export, cut, icp, engagement, engine="pairwise")
        running = build_features(export, cut, icp, engagement, engine="running")
    checked = 0
    for i, (lead_id, cutoff) in enumerate(zip(cut["lead_id"], cut["cutoff"], strict=True)):
        values = _one_lead_values(ol, export, lead_id, cutoff)
        assert list(values) == ol.names
        for name, v in values.items():
            ref = pairwise[name].iloc[i]
            assert _same(v, ref), (lead_id, cutoff, name, v, ref)
            r = running[name].iloc[i]
            if isinstance(v, float) and not math.isnan(v):
                assert v == pytest.approx(float(r), rel=1e-12, abs=1e-12), (lead_id, name, v, r)
            checked += 1
    return checked


def test_features_equal_build_features_on_a_generated_world(project):
    frames, _truth = generate_world(400, seed=11)
    export = CrmExport.from_frames(dict(frames))
    ol = OneLead(project.icp, project.engagement)
    leads = export.leads["lead_id"].to_numpy()
    created = export.leads["created_at"]
    rows = []
    for k, t in enumerate(pd.date_range("2024-06-01", "2026-01-01", freq="97D", tz="UTC")):
        open_ = leads[(created < t).to_numpy()]
        rows += [(lid, t) for lid in open_[k % 3::3][:60]]
    # cutoffs exactly at an event's occurred time (the event must not count) and 1 µs after it
    ev = export.activities.sample(40, random_state=0)
    rows += [(lid, t) for lid, t in zip(ev["lead_id"], ev["occurred_at"], strict=True)]
    rows += [(lid, t + pd.Timedelta(microseconds=1)) for lid, t in zip(ev["lead_id"], ev["occurred_at"], strict=True)]
    cut = pd.DataFrame({"lead_id": [r[0] for r in rows], "cutoff": pd.Series([r[1] for r in rows]).astype(
        "datetime64[us, UTC]")})
    assert _check(ol, export, cut, project.icp, project.engagement) > 10_000


def test_features_equal_build_features_on_edge_cases(project):
    t0 = pd.Timestamp("2025-03-01T12:00:00Z")
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"],
        "industry": [" Software ", None, "  ", "mining"],
        "employees": [200, 5000, np.inf, None],
        "annual_revenue": ["lots", "25000000", 1e9, -1.0],
        "country": ["us", np.nan, "DE ", "ZZ"],
    })
    leads = pd.DataFrame({
        "lead_id": ["L1", "L2", "L3", "L4", "L5"],
        "account_id": ["A1", "A2", "A3", "A4", "A_missing"],  # L5's account is not in the export
        "created_at": [t0 - 200 * DAY, t0 - 50 * DAY, t0 - 10 * DAY, t0 - 1 * DAY, t0 - 400 * DAY],
        "seniority": ["VP", " c_level", None, "", "intern"],
        "department": [np.nan, "Sales", "marketing ", "x", "sales"],
        "email_domain": ["gmail.com", "GMAIL.COM ", None, "acme.io", "  "],
        "lead_source": ["web", None, " event ", "", "list"],
    })
    ev = []
    for lid in leads["lead_id"]:
        for k, (typ, days) in enumerate([("email_open", 1), ("email_open", 1), ("pricing_page_visit", 0.5),
                                         ("webinar_attended", 29.9), ("web_visit", 7.0), ("web_visit", 90.0),
                                         ("carrier_pigeon", 3), ("demo_request", 120), ("unsubscribe", 2)]):
            occ = t0 - days * DAY
            rec = occ + (k % 3) * pd.Timedelta(hours=20)  # some backfilled: recorded after they occurred
            ev.append((lid, typ, occ, rec))
        ev.append((lid, "email_click", t0, t0))  # exactly at the cutoff: does not count
        ev.append((lid, "email_click", t0 - DAY, t0))  # recorded at the cutoff: does not count
        ev.append((lid, "web_visit", t0 - 7 * DAY, t0 - pd.Timedelta(microseconds=1)))  # recorded just before
    acts = pd.DataFrame(ev, columns=["lead_id", "activity_type", "occurred_at", "recorded_at"])
    opps = pd.DataFrame({"opportunity_id": pd.Series([], dtype=str), "lead_id": pd.Series([], dtype=str),
                         "created_at": pd.Series([], dtype="datetime64[us, UTC]"),
                         "closed_at": pd.Series([], dtype="datetime64[us, UTC]"), "stage": pd.Series([], dtype=str)})
    export = CrmExport.from_frames({"accounts": accounts, "leads": leads, "activities": acts, "opportunities": opps})
    cutoffs = [t0, t0 + pd.Timedelta(microseconds=1), t0 - 7 * DAY, t0 + 60 * DAY, t0 - 2 * DAY]
    cut = pd.DataFrame({"lead_id": [lid for lid in leads["lead_id"] for _ in cutoffs],
                        "cutoff": pd.Series([t for _ in leads["lead_id"] for t in cutoffs]).astype(
                            "datetime64[us, UTC]")})
    ol = OneLead(project.icp, project.engagement)
    _check(ol, export, cut, project.icp, project.engagement)
    one = _one_lead_values(ol, export, "L5", t0)
    assert math.isnan(one["fit_industry"]) and one["fit_industry_value"] is None  # no account row
    one = _one_lead_values(ol, export, "L1", t0)
    assert one["fit_industry"] == 1.0 and one["fit_industry_value"] == "Software"
    assert one["fit_employees"] == 1.0 and math.isnan(one["fit_revenue_value"])
    assert one["eng_email_click_90d"] == 0.0  # both clicks are at the cutoff (occurred or recorded)


def test_no_events_and_only_future_events(project):
    ol = OneLead(project.icp, project.engagement)
    lead = {"lead_id": "L", "seniority": "vp"}
    empty = ol.features(lead, None, [], np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                        10 * 86_400_000_000, 0)
    later = ol.features(lead, None, ["web_visit"], np.array([20 * 86_400_000_000]),
                        np.array([20 * 86_400_000_000]), 10 * 86_400_000_000, 0)
    for values in (empty, later):
        assert values["lead_age_days"] == 10.0
        assert values["eng_web_visit_90d"] == 0.0 and math.isnan(values["eng_days_since_any"])
        assert values["eng_active_days_90d"] == 0.0 and values["eng_web_visit_decay"] == 0.0


@pytest.mark.parametrize("form", ["dicts", "frame"])
def test_recorded_at_empty_is_when_it_occurred_and_unreadable_drops_the_activity_as_a_batch_does(form):
    from propensity.scoring.leadinput import lead_rows

    t = pd.Timestamp("2025-03-01T00:00:00Z")
    lead = {"lead_id": "L1", "account_id": "A1", "created_at": "2025-01-01T00:00:00Z"}
    recorded = [None, "", float("nan"), "2025-02-27T00:00:00Z", "soon", 1740700800]
    acts = [{"activity_type": "web_visit", "occurred_at": f"2025-02-{20 + k}T00:00:00Z", "recorded_at": r}
            for k, r in enumerate(recorded)]
    rows = lead_rows(lead, {"account_id": "A1"}, acts if form == "dicts" else pd.DataFrame(acts), as_of=t)
    occ = [int(pd.Timestamp(f"2025-02-{20 + k}T00:00:00Z").value // 1000) for k in range(4)]
    assert rows.occ.tolist() == occ  # the unreadable two are left out...
    assert rows.rec.tolist() == occ[:3] + [int(pd.Timestamp("2025-02-27T00:00:00Z").value // 1000)]
    assert "2 activities with no readable time ignored" in rows.notes  # ...with a note
    # A lenient batch read keeps and drops the same rows, with the same recorded times.
    with pytest.warns(UserWarning):
        batch = CrmExport.from_frames({
            "accounts": pd.DataFrame({"account_id": ["A1"]}),
            "leads": pd.DataFrame([lead]),
            "activities": pd.DataFrame([{**a, "lead_id": "L1"} for a in acts]),
            "opportunities": pd.DataFrame(columns=["opportunity_id", "lead_id", "created_at", "closed_at", "stage"]),
        }, lenient=True)
    arrays = batch.activity_arrays()
    assert arrays.occ.tolist() == rows.occ.tolist()
    assert np.maximum(arrays.rec, arrays.occ).tolist() == rows.rec.tolist()
