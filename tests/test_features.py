"""Point-in-time features: hand-computed cases, a slow reference, both engines."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propensity.config import EngagementConfig, IcpConfig, default_project_dir, load_project
from propensity.data.export import CrmExport, DataError
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec

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


@pytest.fixture(params=["memory", "duckdb", "running"])
def engine(request):
    return request.param


# ------------------------------------------------------------------ hand-computed


def test_counts_days_since_and_decay_by_hand(engine):
    export = make_export([
        ("L1", "web_visit", T0 - 1 * DAY),
        ("L1", "pricing_page_visit", T0 - 10 * DAY),
        ("L1", "web_visit", T0 - 40 * DAY),
        ("L1", "demo_request", T0 - pd.Timedelta(hours=12)),
    ])
    f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_web_7d"] == 1.0 and f["eng_web_30d"] == 2.0
    assert f["eng_web_days_since"] == 1.0
    assert f["eng_web_decay"] == pytest.approx(0.5 ** 0.1 + 0.5 ** 1.0 + 0.5 ** 4.0, rel=1e-12)
    assert f["eng_pricing_7d"] == 0.0 and f["eng_pricing_30d"] == 1.0
    assert f["eng_pricing_decay"] == pytest.approx(0.25, rel=1e-12)
    assert f["eng_demo_days_since"] == 0.5
    assert f["eng_active_days_30d"] == 2.0  # T0-1d and T0-12h fall on the same UTC date
    assert f["eng_days_since_any"] == 0.5
    assert f["lead_age_days"] == 100.0


def test_feature_columns_follow_the_spec(engine):
    export = make_export([("L1", "web_visit", T0 - DAY)])
    out = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine)
    spec = build_feature_spec(ICP, ENGAGEMENT)
    assert list(out.columns) == ["lead_id", "cutoff", *[f.name for f in spec]]
    assert {f.name for f in spec if out[f.name].dtype == object} == {"fit_industry_value", "fit_source_value"}
    assert all(out[f.name].dtype == np.float64 for f in spec if f.kind == "numeric")


def test_no_events_gives_zero_counts_and_unknown_recency(engine):
    export = make_export([("L1", "web_visit", T0 + DAY)])
    f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_web_30d"] == 0.0 and f["eng_web_decay"] == 0.0 and f["eng_active_days_30d"] == 0.0
    assert math.isnan(f["eng_web_days_since"]) and math.isnan(f["eng_days_since_any"])


def test_event_one_second_after_cutoff_is_ignored(engine):
    export = make_export([("L1", "web_visit", T0 + pd.Timedelta(seconds=1))])
    f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_web_30d"] == 0.0 and math.isnan(f["eng_days_since_any"])


def test_event_exactly_at_cutoff_is_ignored(engine):
    export = make_export([("L1", "web_visit", T0), ("L1", "web_visit", T0 - pd.Timedelta(microseconds=1))])
    f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_web_7d"] == 1.0


def test_event_recorded_after_cutoff_is_ignored(engine):
    # Occurred before the cutoff but backfilled into the CRM after it: unknown at T0.
    export = make_export([("L1", "web_visit", T0 - 3 * DAY, T0 + DAY),
                          ("L1", "web_visit", T0 - 5 * DAY, T0 - 4 * DAY)])
    f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_web_7d"] == 1.0 and f["eng_web_days_since"] == 5.0


def test_window_start_is_inclusive(engine):
    export = make_export([("L1", "web_visit", T0 - 7 * DAY),
                          ("L1", "web_visit", T0 - 7 * DAY - pd.Timedelta(microseconds=1))])
    f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_web_7d"] == 1.0 and f["eng_web_30d"] == 2.0


def test_active_days_count_utc_dates_in_the_longest_window_of_any_type(engine):
    export = make_export([
        ("L1", "web_visit", "2025-02-27T23:59:59Z"),
        ("L1", "chat", "2025-02-28T00:00:00Z"),  # not in the catalogue, still activity
        ("L1", "web_visit", "2025-02-28T10:00:00Z"),
        ("L1", "web_visit", T0 - 31 * DAY),  # outside 30 days
    ])
    with pytest.warns(UserWarning):
        f = build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine).iloc[0]
    assert f["eng_active_days_30d"] == 2.0
    assert f["eng_days_since_any"] == pytest.approx(14 / 24, rel=1e-12)


def test_fit_features_match_case_insensitively_and_keep_raw_values(engine):
    leads = [("L1", "A1", T0 - DAY, " vp ", " web "), ("L2", "A2", T0 - DAY, None, None),
             ("L3", "A_missing", T0 - DAY, "intern", "event")]
    accounts = [("A1", " software ", 1000), ("A2", "retail", 100.0)]
    export = make_export([("L1", "web_visit", T0 - DAY)], leads, accounts)
    out = build_features(export, cut(("L1", T0), ("L2", T0), ("L3", T0)), ICP, ENGAGEMENT, engine=engine)
    np.testing.assert_array_equal(out["fit_industry"], [1.0, 0.0, np.nan])
    assert out["fit_industry_value"].tolist() == ["software", "retail", None]
    np.testing.assert_array_equal(out["fit_employees"], [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(out["fit_employees_value"], [1000.0, 100.0, np.nan])
    np.testing.assert_array_equal(out["fit_seniority"], [1.0, np.nan, 0.0])
    assert out["fit_source_value"].tolist() == ["web", None, "event"]


def test_missing_icp_column_names_table_column_and_criterion(engine):
    export = make_export([("L1", "web_visit", T0 - DAY)])
    icp = IcpConfig.model_validate({"criteria": [
        {"name": "region", "table": "accounts", "column": "country", "display": "Country",
         "kind": "in", "values": ["US"]}]})
    with pytest.raises(DataError, match=r"'accounts'.*'country'.*'region'"):
        build_features(export, cut(("L1", T0)), icp, ENGAGEMENT, engine=engine)


def test_unknown_activity_type_warns_with_its_count(engine):
    export = make_export([("L1", "chat", T0 - DAY), ("L1", "chat", T0 - 2 * DAY), ("L1", "web_visit", T0 - DAY)])
    with pytest.warns(UserWarning, match=r"^2 activities .*'chat'"):
        build_features(export, cut(("L1", T0)), ICP, ENGAGEMENT, engine=engine)


def test_unknown_lead_in_cutoffs_is_an_error(engine):
    export = make_export([("L1", "web_visit", T0 - DAY)])
    with pytest.raises(DataError, match="not in the export"):
        build_features(export, cut(("nobody", T0)), ICP, ENGAGEMENT, engine=engine)


def test_extra_columns_are_carried_and_order_follows_cutoffs(engine):
    leads = [("L1", "A1", T0 - 50 * DAY, "vp", "web"), ("L2", "A1", T0 - 50 * DAY, "vp", "web")]
    export = make_export([("L1", "web_visit", T0 - 2 * DAY), ("L2", "web_visit", T0 - 3 * DAY)], leads)
    cutoffs = cut(("L2", T0), ("L1", T0), ("L2", T0 - 10 * DAY)).assign(label=np.array([1, 0, 0], dtype=np.int8))
    cutoffs.index = [7, 3, 5]
    out = build_features(export, cutoffs, ICP, ENGAGEMENT, engine=engine)
    assert list(out.columns[:3]) == ["lead_id", "cutoff", "label"]
    assert out.index.tolist() == [0, 1, 2] and out["label"].tolist() == [1, 0, 0]
    assert out["lead_id"].tolist() == ["L2", "L1", "L2"]
    np.testing.assert_array_equal(out["eng_web_days_since"], [3.0, 2.0, np.nan])


def test_empty_cutoffs_give_an_empty_frame_with_all_columns(engine):
    export = make_export([("L1", "web_visit", T0 - DAY)])
    out = build_features(export, cut(), ICP, ENGAGEMENT, engine=engine)
    assert len(out) == 0 and len(out.columns) == 2 + len(build_feature_spec(ICP, ENGAGEMENT))


# ------------------------------------------------------------------ reference implementation


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


@pytest.fixture(scope="module")
def world():
    export, cutoffs = random_world()
    project = load_project(default_project_dir() / "training" / "default.yaml")
    expected = reference_features(export, cutoffs, project.icp, project.engagement)
    return export, cutoffs, project.icp, project.engagement, expected


def test_engines_match_the_reference_on_a_random_world(world, engine):
    export, cutoffs, icp, engagement, expected = world
    with pytest.warns(UserWarning, match="chat_message"):
        got = build_features(export, cutoffs, icp, engagement, engine=engine)
    pd.testing.assert_series_equal(got["lead_id"], cutoffs["lead_id"].astype(object), check_names=False)
    pd.testing.assert_series_equal(got["cutoff"], cutoffs["cutoff"], check_names=False)
    pd.testing.assert_series_equal(got["label"], cutoffs["label"])
    assert_features_equal(got, expected, build_feature_spec(icp, engagement))


def test_engines_give_the_same_rows_for_shuffled_inputs(world, engine):
    export, cutoffs, icp, engagement, expected = world
    rng = np.random.default_rng(1)
    shuffled = CrmExport(**{name: getattr(export, name).sample(frac=1.0, random_state=rng)
                            for name in ("accounts", "leads", "activities", "opportunities")})
    order = rng.permutation(len(cutoffs))
    with pytest.warns(UserWarning):
        got = build_features(shuffled, cutoffs.iloc[order], icp, engagement, engine=engine)
    assert got["lead_id"].tolist() == cutoffs["lead_id"].iloc[order].tolist()
    assert_features_equal(got, expected.iloc[order].reset_index(drop=True), build_feature_spec(icp, engagement))


@pytest.mark.parametrize("unit_us", [1_000, 7_777_777, 86_400_000_000])
def test_running_engine_with_coarse_key_buckets_matches_the_reference(world, unit_us, monkeypatch):
    # Large worlds key events by (lead, bucket of µs); cutoffs inside an event's bucket are resolved exactly.
    from functools import partial

    import propensity.features.pipeline as pipeline
    from propensity.features.running import engagement_running

    monkeypatch.setattr(pipeline, "engagement_running", partial(engagement_running, unit_us=unit_us))
    export, cutoffs, icp, engagement, expected = world
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = build_features(export, cutoffs, icp, engagement, engine="running")
    assert_features_equal(got, expected, build_feature_spec(icp, engagement))


@pytest.mark.parametrize("chunk_events,threads,some_leads", [(50, 1, False), (300, 2, False), (70, 2, True)])
def test_running_engine_in_lead_batches_matches_the_reference(world, chunk_events, threads, some_leads,
                                                              monkeypatch):
    # Large inputs run in batches of leads (bounded temporaries), two at a time; results must not change,
    # also when the cutoffs name only some leads (the others' activities are skipped, not copied).
    import propensity.features.running as running

    monkeypatch.setattr(running, "CHUNK_EVENTS", chunk_events)
    monkeypatch.setattr(running, "MAX_THREADS", threads)
    export, cutoffs, icp, engagement, expected = world
    assert len(export.activities) > 4 * chunk_events
    if some_leads:
        sel = cutoffs["lead_id"].isin(export.leads["lead_id"].iloc[::3]).to_numpy()
        assert 0 < sel.sum() < len(sel)
        cutoffs, expected = cutoffs[sel].reset_index(drop=True), expected[sel].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = build_features(export, cutoffs, icp, engagement, engine="running")
    assert_features_equal(got, expected, build_feature_spec(icp, engagement))


def test_running_engine_handles_lead_spans_too_long_for_anchored_decay():
    # 5000 days at a 5-day half-life would overflow 2 ** (age / half-life): such leads take the exact path.
    leads = [("L1", "A1", T0 - 6000 * DAY, "vp", "web"), ("L2", "A1", T0 - 100 * DAY, "vp", "web")]
    export = make_export([("L1", "pricing_page_visit", T0 - 5000 * DAY), ("L1", "pricing_page_visit", T0 - DAY),
                          ("L1", "web_visit", T0 - 2 * DAY, T0 - DAY), ("L2", "web_visit", T0 - 3 * DAY),
                          ("L2", "web_visit", T0 - 3 * DAY, T0 - 2 * DAY)], leads)
    cutoffs = cut(("L1", T0), ("L2", T0), ("L1", T0 - 4000 * DAY), ("L2", T0 - 2 * DAY))
    got = build_features(export, cutoffs, ICP, ENGAGEMENT, engine="running")
    want = reference_features(export, cutoffs, ICP, ENGAGEMENT)
    assert_features_equal(got, want, build_feature_spec(ICP, ENGAGEMENT))
    assert got["eng_active_days_30d"].tolist() == [2.0, 1.0, 0.0, 1.0]


def test_auto_engine_gives_the_same_values_as_both(world):
    export, cutoffs, icp, engagement, _ = world
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = build_features(export, cutoffs, icp, engagement)
        duck = build_features(export, cutoffs, icp, engagement, engine="duckdb")
    assert_features_equal(auto, duck, build_feature_spec(icp, engagement))


# ------------------------------------------------------------------ property


TYPES = ["web_visit", "pricing_page_visit", "demo_request", "chat"]
BASE = make_export([("L1", t, T0 - k * pd.Timedelta(hours=13), T0 - k * pd.Timedelta(hours=11))
                    for k, t in enumerate(TYPES * 5, start=1)])


@pytest.mark.parametrize("prop_engine", ["memory", "running"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["after", "at", "backfilled"]),
    activity_type=st.sampled_from(TYPES),
    seconds=st.integers(min_value=0, max_value=400 * 86400),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_adding_an_event_unknown_at_the_cutoff_never_changes_its_features(prop_engine, kind, activity_type, seconds,
                                                                         micros):
    offset = pd.Timedelta(seconds=seconds, microseconds=micros)
    if kind == "after":
        occurred, recorded = T0 + offset, T0 + offset
    elif kind == "at":
        occurred, recorded = T0, T0 + offset
    else:  # happened before the cutoff, but the CRM learned of it at or after the cutoff
        occurred, recorded = T0 - offset - pd.Timedelta(microseconds=1), T0 + offset
    extra = pd.DataFrame({"lead_id": ["L1"], "activity_type": [activity_type],
                          "occurred_at": [occurred], "recorded_at": [recorded]}).astype(
        {"occurred_at": "datetime64[us, UTC]", "recorded_at": "datetime64[us, UTC]"})
    grown = CrmExport(BASE.accounts, BASE.leads, pd.concat([BASE.activities, extra], ignore_index=True),
                      BASE.opportunities)
    cutoffs = cut(("L1", T0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = build_features(BASE, cutoffs, ICP, ENGAGEMENT, engine=prop_engine)
        after = build_features(grown, cutoffs, ICP, ENGAGEMENT, engine=prop_engine)
    pd.testing.assert_frame_equal(before, after)


def test_reference_world_has_the_edge_cases_it_claims():
    export, cutoffs = random_world()
    assert (export.activities["recorded_at"] > export.activities["occurred_at"]).any()
    assert not export.leads["account_id"].isin(export.accounts["account_id"]).all()
    assert cutoffs["cutoff"].isin(export.activities["occurred_at"]).any()
