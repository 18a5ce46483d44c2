"""The engagement engines: each one against the pairwise engine and the references, and the choice among them."""

from __future__ import annotations

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
    assert_same_as_pairwise,
    cut,
    make_export,
    unknown_event,
    world_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_engines import reference_features

from propensity.config import EngagementConfig, IcpConfig
from propensity.data.export import CrmExport
from propensity.features import engines
from propensity.features.engines import asof, pairwise, running, snapshots
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec


@pytest.fixture(scope="module")
def world():
    return world_case()


# ------------------------------------------------------------------ running engine


@pytest.mark.parametrize("unit_us", [1_000, 7_777_777, 86_400_000_000])
def test_running_engine_with_coarse_key_buckets_matches_the_reference(world, unit_us, monkeypatch):
    # Large worlds key events by (lead, bucket of µs); cutoffs inside an event's bucket are resolved exactly.
    from functools import partial

    monkeypatch.setattr(running, "engagement_running", partial(running.engagement_running, unit_us=unit_us))
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


# ------------------------------------------------------------------ as-of engine (one cutoff for every row)


@pytest.fixture
def asof_path(monkeypatch):
    """The cutoffs the as-of engine was called with (build_features(engine="asof") calls it)."""
    calls: list[int] = []
    real = asof.engagement_asof

    def spy(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(asof, "engagement_asof", spy)
    return calls


def asof_rows(export: CrmExport, t: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
    """Every lead at cutoff ``t``, shuffled, a few of them twice, with a label column carried along."""
    ids = export.leads["lead_id"].to_numpy(dtype=object)
    ids = np.r_[ids, ids[:3]][rng.permutation(len(ids) + 3)]
    return pd.DataFrame({"lead_id": ids, "cutoff": pd.Series([t] * len(ids)).astype("datetime64[us, UTC]"),
                         "label": rng.integers(0, 2, len(ids)).astype(np.int8)})


@pytest.mark.parametrize("when", ["middle", "at_an_event", "at_a_backfill", "window_after_an_event", "before_all",
                                  "after_all"])
def test_asof_path_matches_the_pairwise_engine_and_the_reference(world, asof_path, when):
    export, _, icp, engagement, _ = world
    acts = export.activities
    backfilled = acts[acts["recorded_at"] > acts["occurred_at"]]
    t = {"middle": pd.Timestamp("2024-09-14T13:00:00Z"),
         "at_an_event": acts["occurred_at"].iloc[17],
         "at_a_backfill": backfilled["recorded_at"].iloc[3],
         "window_after_an_event": acts["occurred_at"].iloc[29] + 30 * DAY,
         "before_all": acts["occurred_at"].min(),
         "after_all": acts["recorded_at"].max() + pd.Timedelta(microseconds=1)}[when]
    rows = asof_rows(export, t, np.random.default_rng(7))
    with pytest.warns(UserWarning, match="chat_message"):
        got = build_features(export, rows, icp, engagement, engine="asof")
    assert asof_path == [int(t.value // 1000)]
    assert_matches_pairwise_and_reference(got, export, rows, icp, engagement)
    if when == "before_all":
        assert got["eng_days_since_any"].isna().all()


def test_asof_path_by_hand(asof_path):
    leads = [(f"L{i}", "A1", T0 - 100 * DAY, "VP", "web") for i in range(1, 5)]
    h = pd.Timedelta(hours=1)
    export = make_export([
        ("L1", "web_visit", T0 - DAY),  # counted
        ("L1", "pricing_page_visit", T0),  # at the cutoff: not before it
        ("L1", "web_visit", T0 - 2 * DAY, T0),  # recorded at the cutoff: not known before it
        ("L1", "web_visit", T0 - 3 * DAY, T0 - h),  # backfilled, but known in time: counted
        ("L1", "pricing_page_visit", T0 - 7 * DAY),  # exactly at the start of the 7-day window: inside
        ("L1", "demo_request", T0 - 30 * DAY - pd.Timedelta(microseconds=1)),  # just outside the 30 days
        ("L1", "chat", T0 - 5 * DAY),  # a type no signal lists: only active days and days since any
        ("L1", "web_visit", T0 + DAY),  # after the cutoff
        ("L3", "chat", T0 - 40 * DAY),
        ("L4", "chat", T0 - 2 * DAY),  # L4 is not asked for: its chat is not counted in the warning
    ], leads)
    rows = cut(("L3", T0), ("L1", T0), ("L2", T0), ("L1", T0))
    with pytest.warns(UserWarning, match=r"^2 activities of 1 type\(s\)"):
        f = build_features(export, rows, ICP, ENGAGEMENT, engine="asof")
    assert asof_path == [int(T0.value // 1000)]
    l1 = f.iloc[1]
    assert (l1["eng_web_7d"], l1["eng_web_30d"], l1["eng_pricing_7d"], l1["eng_demo_30d"]) == (3, 3, 1, 0)
    assert l1["eng_web_days_since"] == 1.0 and l1["eng_pricing_days_since"] == 7.0
    assert l1["eng_demo_days_since"] == pytest.approx(30.0, abs=1e-9) and l1["eng_demo_days_since"] > 30.0
    assert l1["eng_web_decay"] == pytest.approx(0.5 ** 0.1 + 0.5 ** 0.3 + 0.5 ** 0.7, rel=1e-14)
    assert l1["eng_pricing_decay"] == pytest.approx(0.5 ** (7 / 5), rel=1e-14)
    assert l1["eng_active_days_30d"] == 4.0 and l1["eng_days_since_any"] == 1.0
    assert f.iloc[3][f.columns[2:]].equals(l1[f.columns[2:]])
    l2, l3 = f.iloc[2], f.iloc[0]
    assert l2["eng_web_30d"] == 0 and np.isnan(l2["eng_web_days_since"]) and l2["eng_web_decay"] == 0
    assert np.isnan(l2["eng_days_since_any"]) and l2["eng_active_days_30d"] == 0
    assert l3["eng_days_since_any"] == 40.0 and l3["eng_active_days_30d"] == 0 and l3["eng_web_30d"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same_as_pairwise(f, build_features(export, rows, ICP, ENGAGEMENT, engine="pairwise"),
                              build_feature_spec(ICP, ENGAGEMENT))


def assert_matches_pairwise_and_reference(got: pd.DataFrame, export: CrmExport, rows: pd.DataFrame, icp: IcpConfig,
                                        engagement: EngagementConfig) -> None:
    """``got`` (an engine on these rows) equals the pairwise engine and the row-by-row reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = build_features(export, rows, icp, engagement, engine="pairwise")
    spec = build_feature_spec(icp, engagement)
    pd.testing.assert_frame_equal(got[["lead_id", "cutoff", "label"]], mem[["lead_id", "cutoff", "label"]])
    assert_same_as_pairwise(got, mem, spec)
    assert_features_equal(got, reference_features(export, rows, icp, engagement), spec)


def assert_engine_matches_pairwise(engine: str, export: CrmExport, rows: pd.DataFrame, engagement: EngagementConfig,
                                   path_calls: list, icp: IcpConfig = ICP) -> None:
    """``engine`` (whose calls ``path_calls`` spies) ran once and equals the pairwise engine (warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = build_features(export, rows, icp, engagement, engine=engine)
        mem = build_features(export, rows, icp, engagement, engine="pairwise")
    assert len(path_calls) == 1
    assert_same_as_pairwise(got, mem, build_feature_spec(icp, engagement))


def random_engagement(rng: np.random.Generator) -> tuple[EngagementConfig, list[int], list[str]]:
    """A random engagement config (1-3 windows, 1-4 signals whose types may overlap), its windows, a type pool."""
    windows = sorted(rng.choice([1, 3, 7, 30, 90], size=rng.integers(1, 4), replace=False).tolist())
    pool = ["web_visit", "pricing_page_visit", "demo_request", "email_open", "chat", "call"]
    signals = []
    for k in range(rng.integers(1, 5)):
        kinds = rng.choice(pool[:4], size=rng.integers(1, 3), replace=False).tolist()  # types may overlap
        signals.append({"name": f"s{k}", "activity_types": kinds, "display": f"S{k}",
                        "half_life_days": float(rng.choice([0.5, 5, 10, 21, 180]))})
    return EngagementConfig.model_validate({"windows_days": windows, "signals": signals}), windows, pool


def one_account_export(lead_ids: list[str], acts: pd.DataFrame) -> CrmExport:
    """An export of these leads (one account, created long before) and activities; warnings silenced."""
    leads = pd.DataFrame({"lead_id": lead_ids, "account_id": "A1",
                          "created_at": pd.Timestamp("2024-01-01T00:00:00Z"), "seniority": "vp",
                          "lead_source": "web"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CrmExport.from_frames({"accounts": pd.DataFrame({"account_id": ["A1"], "industry": ["software"],
                                                                "employees": [10]}),
                                      "leads": leads, "activities": acts})


def random_leads_export(rng: np.random.Generator, lead_ids: list[str], pool: list[str], occ: np.ndarray,
                        rec: np.ndarray) -> CrmExport:
    """One account's export whose activities have these times (µs), each of a random lead (or an orphan) and type."""
    n_ev = len(occ)
    acts = pd.DataFrame({
        "lead_id": rng.choice(lead_ids + ["ORPHAN"], n_ev),
        "activity_type": rng.choice(pool, n_ev),
        "occurred_at": pd.to_datetime(occ, unit="us", utc=True),
        "recorded_at": pd.to_datetime(rec, unit="us", utc=True),
    })
    return one_account_export(lead_ids, acts)


def random_asof_case(rng: np.random.Generator) -> tuple[CrmExport, pd.DataFrame, EngagementConfig]:
    """A small random world, engagement config and one cutoff, with the edge cases dense."""
    t = pd.Timestamp("2025-02-10T06:00:00Z") + pd.Timedelta(microseconds=int(rng.integers(0, 86_400_000_000)))
    t_us = t.value // 1000
    engagement, windows, pool = random_engagement(rng)
    n_leads = int(rng.integers(1, 30))
    lead_ids = [f"L{i}" for i in range(n_leads)]
    n_ev = int(rng.integers(0, 600))
    day = 86_400_000_000
    # Times: random over 200 days around t, exactly at t, exactly a window before t, a µs either side.
    edges = np.array([0] + [w * day for w in windows] + [w * day + 1 for w in windows] + [w * day - 1 for w in windows])
    age = np.where(rng.random(n_ev) < 0.4, rng.choice(edges, n_ev), rng.integers(-20 * day, 180 * day, n_ev))
    occ = t_us - age
    lag = np.where(rng.random(n_ev) < 0.3, rng.integers(0, 10 * day, n_ev), 0)
    lag = np.where(rng.random(n_ev) < 0.1, t_us - occ, lag)  # recorded exactly at the cutoff
    rec = np.maximum(occ + lag, occ)
    export = random_leads_export(rng, lead_ids, pool, occ, rec)
    asked = rng.choice(lead_ids, int(rng.integers(1, 2 * n_leads + 1)))
    rows = pd.DataFrame({"lead_id": asked, "cutoff": pd.Series([t] * len(asked)).astype("datetime64[us, UTC]")})
    return export, rows, engagement


@pytest.mark.parametrize("seed", range(12))
def test_asof_path_matches_the_pairwise_engine_on_random_worlds(seed, asof_path, monkeypatch):
    # Hypothesis-free: random configs (overlapping signals with different half-lives), events at and around the
    # cutoff and the window edges, backfills recorded at the cutoff, orphans; tiny chunks on 1 or 2 threads.
    rng = np.random.default_rng(1000 + seed)
    export, rows, engagement = random_asof_case(rng)
    monkeypatch.setattr(asof, "CHUNK_EVENTS", int(rng.integers(1, 80)))
    monkeypatch.setattr(asof, "MAX_THREADS", int(rng.integers(1, 3)))
    assert_engine_matches_pairwise("asof", export, rows, engagement, asof_path)


def parquet_export_without_recorded_at(world, tmp_path):
    """The world's export written as Parquet without recorded_at and read back (the fast reader then shares one
    array for occurred_at and recorded_at), with its ICP and engagement configs."""
    from propensity.data.export import read_export

    export, _, icp, engagement, _ = world
    for name in ("accounts", "leads", "opportunities"):
        getattr(export, name).to_parquet(tmp_path / f"{name}.parquet")
    export.activities.drop(columns="recorded_at").to_parquet(tmp_path / "activities.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = read_export(tmp_path, exported_at="2026-01-01T00:00:00Z")
    assert again.activity_arrays().rec is again.activity_arrays().occ
    return again, icp, engagement


def test_asof_path_reads_a_parquet_export_without_recorded_at(world, asof_path, tmp_path):
    again, icp, engagement = parquet_export_without_recorded_at(world, tmp_path)
    rows = asof_rows(again, pd.Timestamp("2024-10-01T00:00:00Z"), np.random.default_rng(3))
    assert_engine_matches_pairwise("asof", again, rows, engagement, asof_path, icp)


def test_asof_path_accumulates_per_class_of_types_not_per_type(asof_path, monkeypatch):
    # Exports may carry many activity types no signal lists: they share one class (one accumulator row per lead).
    shapes = []
    real = asof._Accumulators.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        shapes.append(self.last.shape)

    monkeypatch.setattr(asof._Accumulators, "__init__", spy)
    rng = np.random.default_rng(5)
    kinds = ["web_visit", "pricing_page_visit", "demo_request"] + [f"other_{k}" for k in range(40)]
    leads = [(f"L{i}", "A1", T0 - 100 * DAY, "VP", "web") for i in range(20)]
    export = make_export([(f"L{rng.integers(0, 20)}", str(rng.choice(kinds)),
                           T0 - pd.Timedelta(seconds=int(rng.integers(0, 60 * 86400)))) for _ in range(400)], leads)
    rows = cut(*[(f"L{i}", T0) for i in range(20)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = build_features(export, rows, ICP, ENGAGEMENT, engine="asof")
        mem = build_features(export, rows, ICP, ENGAGEMENT, engine="pairwise")
    assert len(asof_path) == 1 and shapes and all(s[0] == 4 for s in shapes)  # web, web+pricing, demo, none
    assert_same_as_pairwise(got, mem, build_feature_spec(ICP, ENGAGEMENT))


# ------------------------------------------------------------------ snapshot engine (a few distinct cutoffs)


@pytest.fixture
def snapshot_path(monkeypatch):
    """The distinct days the snapshot engine was called with (build_features(engine="snapshots") calls it)."""
    calls: list[list[int]] = []
    real = snapshots.engagement_snapshots

    def spy(arrays, row_pos, row_t, *args, **kwargs):
        calls.append(sorted(set((np.asarray(row_t) // 86_400_000_000).tolist())))
        return real(arrays, row_pos, row_t, *args, **kwargs)

    monkeypatch.setattr(snapshots, "engagement_snapshots", spy)
    return calls


def snapshot_rows(export: CrmExport, days: list[pd.Timestamp], rng: np.random.Generator, n: int = 400) -> pd.DataFrame:
    """Random (lead, snapshot) rows, some of them twice, shuffled, with a label column carried along."""
    ids = export.leads["lead_id"].to_numpy(dtype=object)
    lead = rng.choice(ids, n)
    t = pd.Series(pd.DatetimeIndex(days).as_unit("us")[rng.integers(0, len(days), n)])
    rows = pd.DataFrame({"lead_id": lead, "cutoff": t, "label": rng.integers(0, 2, n).astype(np.int8)})
    return pd.concat([rows, rows.iloc[:5]], ignore_index=True).sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_snapshot_path_matches_the_pairwise_engine_and_the_reference(world, snapshot_path):
    export, _, icp, engagement, _ = world
    acts = export.activities
    backfilled = acts[acts["recorded_at"] > acts["occurred_at"]]
    days = [pd.Timestamp("2024-03-01T00:00:00Z"), pd.Timestamp("2024-06-04T00:00:00Z"),
            pd.Timestamp("2024-06-05T00:00:00Z"),  # one day apart: a 1-day step of every window
            acts["occurred_at"].iloc[17].floor("D"),  # the midnight of an event's day
            backfilled["recorded_at"].iloc[3].floor("D") + DAY,  # just after a backfill was recorded
            acts["occurred_at"].iloc[29].floor("D") + 30 * DAY,  # an event on the first day of a 30-day window
            acts["occurred_at"].min().floor("D"),  # before every event
            acts["recorded_at"].max().floor("D") + DAY]  # after every event
    rows = snapshot_rows(export, days, np.random.default_rng(11))
    with pytest.warns(UserWarning, match="chat_message"):
        got = build_features(export, rows, icp, engagement, engine="snapshots")
    assert len(snapshot_path) == 1 and len(snapshot_path[0]) == len(set(days))
    assert_matches_pairwise_and_reference(got, export, rows, icp, engagement)


def test_snapshot_path_by_hand(snapshot_path):
    t1, t2 = T0, T0 + 3 * DAY
    leads = [(f"L{i}", "A1", T0 - 100 * DAY, "VP", "web") for i in range(1, 4)]
    export = make_export([
        ("L1", "web_visit", T0 - DAY),  # counted at both
        ("L1", "pricing_page_visit", T0),  # at t1 itself: only at t2
        ("L1", "web_visit", T0 - 2 * DAY, T0 + DAY),  # recorded after t1: only at t2 (a backfill across t1)
        ("L1", "web_visit", T0 - 7 * DAY),  # first day of t1's 7-day window; out of t2's
        ("L1", "demo_request", T0 - 30 * DAY - pd.Timedelta(microseconds=1)),  # just outside t1's 30 days
        ("L1", "chat", T0 - 5 * DAY),  # a type no signal lists: active days and days since any
        ("L1", "chat", T0 - 5 * DAY + pd.Timedelta(hours=3)),  # the same day again: one active day
        ("L1", "web_visit", T2 := t2 + DAY),  # after both
        ("L2", "web_visit", T0 - 2 * DAY, t2 + DAY),  # L2's only event: recorded after both cutoffs
        ("L3", "chat", T0 - 40 * DAY),
    ], leads)
    del T2
    rows = cut(("L1", t1), ("L1", t2), ("L2", t1), ("L2", t2), ("L3", t2), ("L1", t1))
    with pytest.warns(UserWarning, match=r"^3 activities of 1 type\(s\)"):
        f = build_features(export, rows, ICP, ENGAGEMENT, engine="snapshots")
    assert snapshot_path == [[int(t1.value // 86_400_000_000_000), int(t2.value // 86_400_000_000_000)]]
    a, b = f.iloc[0], f.iloc[1]
    assert (a["eng_web_7d"], a["eng_web_30d"], a["eng_pricing_7d"], a["eng_demo_30d"]) == (2, 2, 0, 0)
    assert (b["eng_web_7d"], b["eng_web_30d"], b["eng_pricing_7d"], b["eng_demo_30d"]) == (3, 4, 1, 0)
    assert a["eng_web_days_since"] == 1.0 and b["eng_web_days_since"] == 3.0 and b["eng_pricing_days_since"] == 3.0
    assert a["eng_web_decay"] == pytest.approx(0.5 ** 0.1 + 0.5 ** 0.7, rel=1e-14)
    assert b["eng_web_decay"] == pytest.approx(0.5 ** 0.4 + 0.5 ** 0.3 + 0.5 ** 0.5 + 0.5 ** 1.0, rel=1e-14)
    assert a["eng_active_days_30d"] == 3.0 and b["eng_active_days_30d"] == 5.0
    assert a["eng_days_since_any"] == 1.0 and b["eng_days_since_any"] == 3.0
    assert f.iloc[5][f.columns[2:]].equals(a[f.columns[2:]])
    l2a, l2b, l3 = f.iloc[2], f.iloc[3], f.iloc[4]
    assert l2a["eng_web_30d"] == 0 and np.isnan(l2a["eng_web_days_since"]) and l2b["eng_web_30d"] == 0
    assert np.isnan(l2b["eng_days_since_any"]) and l2b["eng_active_days_30d"] == 0
    assert l3["eng_days_since_any"] == 43.0 and l3["eng_active_days_30d"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same_as_pairwise(f, build_features(export, rows, ICP, ENGAGEMENT, engine="pairwise"),
                              build_feature_spec(ICP, ENGAGEMENT))


def random_snapshot_case(rng: np.random.Generator,
                         midnight: bool = True) -> tuple[CrmExport, pd.DataFrame, EngagementConfig]:
    """A small random world, engagement config and snapshot rows, with the edge cases around cutoffs dense.

    ``midnight``: every cutoff at UTC midnight (as the training table's), else each at its own time of day.
    """
    day = 86_400_000_000
    first = pd.Timestamp("2025-01-06T00:00:00Z").value // 1000
    n_snap = int(rng.integers(2, 8))
    snaps = first + np.sort(rng.choice(120, n_snap, replace=False)) * day
    if not midnight:
        snaps = snaps + rng.integers(0, day, n_snap)
    engagement, windows, pool = random_engagement(rng)
    n_leads = int(rng.integers(1, 30))
    lead_ids = [f"L{i}" for i in range(n_leads)]
    n_ev = int(rng.integers(0, 800))
    # Times: random over the snapshots' span and 100 days before, or exactly at / a window before a snapshot's
    # midnight, or a µs either side.
    edges = np.array([0] + [w * day for w in windows] + [w * day + 1 for w in windows] + [w * day - 1 for w in windows]
                     + [-1, 1])
    at_edge = snaps[rng.integers(0, n_snap, n_ev)] - rng.choice(edges, n_ev)
    occ = np.where(rng.random(n_ev) < 0.4, at_edge, rng.integers(first - 100 * day, snaps[-1] + 10 * day, n_ev))
    lag = np.where(rng.random(n_ev) < 0.3, rng.integers(0, 40 * day, n_ev), 0)  # many backfills cross a snapshot
    rec = occ + lag
    at_snap = rng.random(n_ev) < 0.1  # recorded exactly at a snapshot's midnight (or a µs before)
    rec = np.where(at_snap, np.maximum(occ, snaps[rng.integers(0, n_snap, n_ev)] - rng.integers(0, 2, n_ev)), rec)
    export = random_leads_export(rng, lead_ids, pool, occ, rec)
    n_rows = int(rng.integers(2, 3 * n_leads * n_snap + 3))
    t = pd.to_datetime(snaps[rng.integers(0, n_snap, n_rows)], unit="us", utc=True)
    t = pd.Series(t).astype("datetime64[us, UTC]")
    t.iloc[:2] = pd.to_datetime(snaps[[0, -1]], unit="us", utc=True)  # at least two distinct snapshots
    rows = pd.DataFrame({"lead_id": rng.choice(lead_ids, n_rows), "cutoff": t})
    return export, rows, engagement


@pytest.mark.parametrize("seed", range(24))
def test_snapshot_path_matches_the_pairwise_engine_on_random_worlds(seed, snapshot_path, monkeypatch):
    # Random configs (overlapping signals with different half-lives, 1-day windows), events at and around the
    # snapshots (at midnight, or at any time of day for a third of the seeds) and window starts, backfills across
    # snapshots or recorded at one, orphans; 1 to 5 parts of the leads per thread, on 1 or 2 threads.
    rng = np.random.default_rng(2000 + seed)
    export, rows, engagement = random_snapshot_case(rng, midnight=seed % 3 != 2)
    monkeypatch.setattr(snapshots, "PARTS_PER_THREAD", int(rng.integers(1, 6)))
    monkeypatch.setattr(snapshots, "MAX_THREADS", int(rng.integers(1, 3)))
    assert_engine_matches_pairwise("snapshots", export, rows, engagement, snapshot_path)


def test_snapshot_path_with_many_type_classes_no_events_and_events_decades_apart(snapshot_path):
    # 9 signals over 300 types, type k in the signals of k's bits: more than 256 type classes (int32 classes);
    # then an export whose leads have no activity at all; then events 60 years apart (a long day axis).
    rng = np.random.default_rng(42)
    types = [f"t{k}" for k in range(300)]
    signals = [{"name": f"s{b}", "activity_types": [t for k, t in enumerate(types) if k >> b & 1] or ["none"],
                "display": f"S{b}", "half_life_days": float(b + 1)} for b in range(9)]
    engagement = EngagementConfig.model_validate({"windows_days": [3, 30], "signals": signals})
    lead_ids = [f"L{i}" for i in range(12)]
    snaps = pd.to_datetime(["2025-02-01T00:00:00Z", "2025-03-01T07:30:00Z", "2025-03-20T00:00:00Z"], utc=True)
    n = 2_000
    occ = snaps[0] - pd.to_timedelta(rng.integers(-50 * 86_400, 60 * 86_400, n), unit="s")
    acts = pd.DataFrame({"lead_id": rng.choice(lead_ids, n), "activity_type": rng.choice(types, n),
                         "occurred_at": occ, "recorded_at": occ + pd.to_timedelta(rng.integers(0, 3, n), unit="D")})
    rows = pd.DataFrame({"lead_id": np.repeat(lead_ids, 3), "cutoff": np.tile(snaps, len(lead_ids))})
    rows["cutoff"] = rows["cutoff"].astype("datetime64[us, UTC]")
    export = one_account_export(lead_ids, acts)
    assert snapshots._Classes(export.activity_arrays(), engagement).dtype == np.int32  # > 256 classes
    assert_engine_matches_pairwise("snapshots", export, rows, engagement, snapshot_path)
    snapshot_path.clear()
    empty = one_account_export(lead_ids, acts.iloc[:0])
    assert_engine_matches_pairwise("snapshots", empty, rows, engagement, snapshot_path)
    snapshot_path.clear()
    old = acts.assign(occurred_at=acts["occurred_at"] - pd.DateOffset(years=60),
                      recorded_at=acts["recorded_at"] - pd.DateOffset(years=60))
    far = one_account_export(lead_ids, pd.concat([acts.iloc[:1000], old.iloc[1000:]], ignore_index=True))
    assert_engine_matches_pairwise("snapshots", far, rows, engagement, snapshot_path)


def test_snapshot_path_reads_a_parquet_export_without_recorded_at(world, snapshot_path, tmp_path):
    again, icp, engagement = parquet_export_without_recorded_at(world, tmp_path)
    days = [pd.Timestamp("2024-06-01T00:00:00Z"), pd.Timestamp("2024-06-08T00:00:00Z"),
            pd.Timestamp("2024-10-01T00:00:00Z")]
    rows = snapshot_rows(again, days, np.random.default_rng(4))
    assert_engine_matches_pairwise("snapshots", again, rows, engagement, snapshot_path, icp)


SNAPS = [T0, T0 + 28 * DAY, T0 + 56 * DAY]
MANY = [(f"L{i}", "A1", T0 - 100 * DAY, "VP", "web") for i in range(1, 4)]
SNAP_BASE = make_export([(f"L{1 + k % 3}", t, T0 + (k * 7 - 60) * pd.Timedelta(hours=23),
                          T0 + (k * 7 - 60) * pd.Timedelta(hours=23) + (k % 4) * pd.Timedelta(days=9))
                         for k, t in enumerate(TYPES * 8)], MANY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snap=st.integers(min_value=0, max_value=2),
    kind=st.sampled_from(["after", "at", "backfilled"]),
    activity_type=st.sampled_from(TYPES),
    lead=st.sampled_from(["L1", "L2", "L3"]),
    seconds=st.integers(min_value=0, max_value=120 * 86400),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_snapshot_path_never_lets_an_event_unknown_at_a_cutoff_change_it(snap, kind, activity_type, lead, seconds,
                                                                         micros):
    t = SNAPS[snap]
    extra = unknown_event(lead, activity_type, t, kind, pd.Timedelta(seconds=seconds, microseconds=micros))
    grown = CrmExport(SNAP_BASE.accounts, SNAP_BASE.leads, pd.concat([SNAP_BASE.activities, extra], ignore_index=True),
                      SNAP_BASE.opportunities)
    rows = cut(*[(f"L{i}", s) for i in range(1, 4) for s in SNAPS])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = build_features(SNAP_BASE, rows, ICP, ENGAGEMENT, engine="snapshots")
        after = build_features(grown, rows, ICP, ENGAGEMENT, engine="snapshots")
        mem = build_features(grown, rows, ICP, ENGAGEMENT, engine="pairwise")
    mine = (rows["cutoff"] == t).to_numpy()
    pd.testing.assert_frame_equal(before[mine], after[mine])
    assert_same_as_pairwise(after, mem, build_feature_spec(ICP, ENGAGEMENT))


# ------------------------------------------------------------------ the choice of engine


@pytest.fixture
def engine_calls(monkeypatch):
    """The names of the engines build_features ran, in order."""
    calls: list[str] = []

    def spy(real, name: str):
        return lambda *a, **k: calls.append(name) or real(*a, **k)

    for mod, fn in ((pairwise, "engagement_pairwise"), (asof, "engagement_asof"),
                    (snapshots, "engagement_snapshots"), (running, "engagement_running")):
        monkeypatch.setattr(mod, fn, spy(getattr(mod, fn), mod.__name__.rsplit(".", 1)[1]))
    return calls


def test_choose_engine_by_distinct_leads_and_cutoffs():
    few, most = engines.MIN_LEADS, engines.MAX_SNAPSHOTS
    assert [engines.choose_engine(few - 1, c) for c in (0, 1, 2, most + 1)] == ["pairwise"] * 4
    assert [engines.choose_engine(few, c) for c in (1, 2, most, most + 1)] == ["asof", "snapshots", "snapshots",
                                                                                "running"]
    assert engines.distinct_cutoffs(np.array([3, 1, 3, 2], dtype=np.int64)).tolist() == [1, 2, 3]
    assert len(engines.distinct_cutoffs(np.zeros(0, dtype=np.int64))) == 0


def test_auto_runs_the_engine_choose_engine_names(world, engine_calls, monkeypatch):
    export, cutoffs, icp, engagement, expected = world
    spec = build_feature_spec(icp, engagement)
    n_cuts = cutoffs["cutoff"].nunique()
    one = cutoffs.assign(cutoff=cutoffs["cutoff"].iloc[0])
    assert 2 < n_cuts <= engines.MAX_SNAPSHOTS and cutoffs["lead_id"].nunique() < engines.MIN_LEADS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_features(export, one, icp, engagement)
        build_features(export, cutoffs, icp, engagement)
        monkeypatch.setattr(engines, "MIN_LEADS", 0)
        build_features(export, one, icp, engagement)
        by_snapshots = build_features(export, cutoffs, icp, engagement)
        monkeypatch.setattr(engines, "MAX_SNAPSHOTS", n_cuts - 1)
        by_running = build_features(export, cutoffs, icp, engagement)
    assert engine_calls == ["pairwise", "pairwise", "asof", "snapshots", "running"]
    assert_features_equal(by_snapshots, expected, spec)
    assert_features_equal(by_running, expected, spec)


def test_an_engine_named_runs_or_is_refused(world, engine_calls):
    export, cutoffs, icp, engagement, _ = world
    one = cutoffs.assign(cutoff=cutoffs["cutoff"].iloc[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rows, name in ((one, "running"), (one, "pairwise"), (cutoffs, "snapshots"), (one, "asof")):
            build_features(export, rows, icp, engagement, engine=name)
        assert engine_calls == ["running", "pairwise", "snapshots", "asof"]
        for name in engines.ENGINES:  # no rows: nothing to run, every column there
            out = build_features(export, cutoffs.iloc[:0], icp, engagement, engine=name)
            assert len(out) == 0 and len(out.columns) == 3 + len(build_feature_spec(icp, engagement))
        assert len(engine_calls) == 4
        with pytest.raises(ValueError, match=r"^engine 'asof': expected one cutoff for every row; got \d+ distinct"):
            build_features(export, cutoffs, icp, engagement, engine="asof")
        with pytest.raises(ValueError, match=r"expected 2 or more distinct cutoffs; got 1$"):
            build_features(export, one, icp, engagement, engine="snapshots")
        for name in ("duckdb", "memory", "fast"):
            with pytest.raises(ValueError, match=r"^engine: expected one of \['auto', 'pairwise', 'asof', "
                                                 r"'snapshots', 'running'\]; got '"):
                build_features(export, one, icp, engagement, engine=name)


@pytest.mark.parametrize("name", ["pairwise", "asof", "snapshots", "running"])
def test_the_unknown_type_warning_points_at_the_caller_on_every_engine(name):
    export = make_export([("L1", "chat", T0 - DAY), ("L1", "web_visit", T0 - 2 * DAY)])
    rows = cut(("L1", T0), ("L1", T0 + DAY)) if name == "snapshots" else cut(("L1", T0))
    with pytest.warns(UserWarning, match=r"^1 activity of 1 type\(s\)") as caught:
        build_features(export, rows, ICP, ENGAGEMENT, engine=name)
    assert [w.filename for w in caught] == [__file__]


def test_build_features_leaves_no_thread_behind(monkeypatch):
    # Numba compiles inside warnings.catch_warnings(record=True), which swaps the process's warning
    # handler: a kernel load on a thread beside the caller swallowed the caller's warnings (a flaky
    # test of the unknown-type warning found it). Nothing may run on after build_features returns.
    import threading

    from propensity.features import engines

    monkeypatch.setattr(engines, "MIN_LEADS", 0)
    export = make_export([("L1", "web_visit", T0 - DAY), ("L2", "chat", T0 - 2 * DAY)],
                         [("L1", "A1", T0 - 9 * DAY, "vp", "web"), ("L2", "A1", T0 - 9 * DAY, "vp", "web")],
                         [("A1", "software", 100)])
    before = set(threading.enumerate())
    with pytest.warns(UserWarning, match="chat"):
        build_features(export, cut(("L1", T0), ("L2", T0 - DAY)), ICP, ENGAGEMENT)
    assert set(threading.enumerate()) <= before
