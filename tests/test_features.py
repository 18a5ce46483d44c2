"""Point-in-time features: the definitions by hand, against a slow reference and a DuckDB one, on every engine."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _feature_cases import (
    DAY,
    ENGAGEMENT,
    ICP,
    T0,
    TYPES,
    assert_features_equal,
    cut,
    make_export,
    random_world,
    unknown_event,
    world_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_engines import duckdb_engine

from propensity.config import IcpConfig
from propensity.data.export import CrmExport, DataError
from propensity.features.engines import asof, snapshots
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec


@pytest.fixture(params=["pairwise", "duckdb", "running"])
def engine(request, monkeypatch):
    """An engine name for build_features; "duckdb" runs the reference SQL engine in the pairwise engine's place."""
    return duckdb_engine(monkeypatch) if request.param == "duckdb" else request.param


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


@pytest.mark.parametrize("path", ["pairwise", "duckdb", "running", "asof", "snapshots"])
def test_an_empty_recorded_at_counts_from_occurred_at_on_every_path(path, monkeypatch):
    # An empty recorded_at reads as "recorded when it occurred" (with a warning from the export), as if the
    # column were absent: before the cutoff it counts, after it it does not, on every engine alike.
    calls: list[str] = []
    for mod, name in ((asof, "engagement_asof"), (snapshots, "engagement_snapshots")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    engine = duckdb_engine(monkeypatch) if path == "duckdb" else path
    with pytest.warns(UserWarning, match=r"column 'recorded_at' has 2 empty value\(s\)"):
        export = make_export([("L1", "web_visit", T0 - 3 * DAY, None), ("L1", "web_visit", T0 + DAY, None),
                              ("L1", "web_visit", T0 - 5 * DAY, T0 - 4 * DAY)])
    rows = cut(("L1", T0), ("L1", T0 + 2 * DAY)) if path == "snapshots" else cut(("L1", T0))
    f = build_features(export, rows, ICP, ENGAGEMENT, engine=engine)
    assert calls == ({"asof": ["engagement_asof"], "snapshots": ["engagement_snapshots"]}.get(path, []))
    assert f.iloc[0]["eng_web_7d"] == 2.0 and f.iloc[0]["eng_web_days_since"] == 3.0
    if path == "snapshots":
        assert f.iloc[1]["eng_web_7d"] == 3.0 and f.iloc[1]["eng_web_days_since"] == 1.0


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


def test_cutoffs_given_as_numbers_are_an_error_not_a_guess():
    export = make_export([("L1", "web_visit", T0 - DAY)])
    rows = pd.DataFrame({"lead_id": ["L1"], "cutoff": [int(T0.timestamp())]})  # epoch seconds
    with pytest.raises(DataError, match=r"cutoffs: column 'cutoff': expected timestamps, got numbers, "
                                        r"e\.g\. \[1740787200\]"):
        build_features(export, rows, ICP, ENGAGEMENT)


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


# ------------------------------------------------------------------ against the references


@pytest.fixture(scope="module")
def world():
    return world_case()


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


def test_auto_engine_gives_the_same_values_as_the_duckdb_reference(world, monkeypatch):
    export, cutoffs, icp, engagement, _ = world
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = build_features(export, cutoffs, icp, engagement)
        duck = build_features(export, cutoffs, icp, engagement, engine=duckdb_engine(monkeypatch))
    assert_features_equal(auto, duck, build_feature_spec(icp, engagement))


def test_reference_world_has_the_edge_cases_it_claims():
    export, cutoffs = random_world()
    assert (export.activities["recorded_at"] > export.activities["occurred_at"]).any()
    assert not export.leads["account_id"].isin(export.accounts["account_id"]).all()
    assert cutoffs["cutoff"].isin(export.activities["occurred_at"]).any()


# ------------------------------------------------------------------ property


BASE = make_export([("L1", t, T0 - k * pd.Timedelta(hours=13), T0 - k * pd.Timedelta(hours=11))
                    for k, t in enumerate(TYPES * 5, start=1)])


@pytest.mark.parametrize("prop_engine", ["pairwise", "running"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["after", "at", "backfilled"]),
    activity_type=st.sampled_from(TYPES),
    seconds=st.integers(min_value=0, max_value=400 * 86400),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_adding_an_event_unknown_at_the_cutoff_never_changes_its_features(prop_engine, kind, activity_type, seconds,
                                                                         micros):
    extra = unknown_event("L1", activity_type, T0, kind, pd.Timedelta(seconds=seconds, microseconds=micros))
    grown = CrmExport(BASE.accounts, BASE.leads, pd.concat([BASE.activities, extra], ignore_index=True),
                      BASE.opportunities)
    cutoffs = cut(("L1", T0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = build_features(BASE, cutoffs, ICP, ENGAGEMENT, engine=prop_engine)
        after = build_features(grown, cutoffs, ICP, ENGAGEMENT, engine=prop_engine)
    pd.testing.assert_frame_equal(before, after)
