"""The synthetic CRM world: shape, validity, realism and the oracle probability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from propensity.config import default_project_dir
from propensity.data.export import CrmExport, read_export
from propensity.data.synthetic import (
    ACTIVITY_TYPES,
    CLOSE_MAX_DAYS,
    CLOSE_MIN_DAYS,
    GAMMA_SCALE,
    GAMMA_SHAPE,
    RAMP_DAYS,
    generate_world,
    true_probability,
    write_world,
)

START, END = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2026-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def world():
    return generate_world(5000, seed=7)


@pytest.fixture(scope="module")
def big_world():
    """Large enough for a calibration check with a tight tolerance (well under a second)."""
    return generate_world(20000, seed=11)


def _icp():
    return yaml.safe_load((default_project_dir() / "features" / "icp.yaml").read_text())


def _criterion(name):
    return next(c for c in _icp()["criteria"] if c["name"] == name)


def _monthly_rows(frames, horizon, max_age_days=365):
    """(lead_id, cutoff, y) for monthly cutoffs whose horizon ends before END; leads open at the cutoff."""
    leads, opps = frames["leads"], frames["opportunities"]
    oc = opps.set_index("lead_id").reindex(leads["lead_id"])
    cuts = pd.date_range(START + 60 * DAY, END - horizon * DAY, freq="MS")
    rows = []
    for c in cuts:
        age = (c - leads["created_at"]) / DAY
        keep = ((age > 0) & (age <= max_age_days)).to_numpy() & ~(oc["created_at"] < c).to_numpy()
        won = ((oc["stage"] == "closed_won") & (oc["closed_at"] >= c)
               & (oc["closed_at"] < c + horizon * DAY)).to_numpy()
        rows.append(pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()[keep], "cutoff": c,
                                  "y": won[keep]}))
    out = pd.concat(rows, ignore_index=True)
    out["cutoff"] = out["cutoff"].astype("datetime64[us, UTC]")
    return out


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames_and_other_seed_differs():
    a, ta = generate_world(2000, seed=3)
    b, tb = generate_world(2000, seed=3)
    c, _ = generate_world(2000, seed=4)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    pd.testing.assert_frame_equal(ta, tb)
    assert not a["leads"]["created_at"].equals(c["leads"]["created_at"])
    assert len(a["activities"]) != len(c["activities"])


# ------------------------------------------------------------------- validity


def test_frames_validate_as_a_crm_export(world):
    frames, _ = world
    export = CrmExport.from_frames(frames)
    assert len(export.leads) == 5000
    assert export.end() < END


def test_tables_have_the_documented_columns_ids_and_utc_timestamps(world):
    frames, truth = world
    assert list(frames["accounts"].columns) == [
        "account_id", "company_name", "domain", "industry", "employees", "annual_revenue", "country"]
    assert list(frames["leads"].columns) == [
        "lead_id", "account_id", "created_at", "title", "seniority", "department", "lead_source",
        "email_domain"]
    assert list(frames["activities"].columns) == ["lead_id", "activity_type", "occurred_at", "recorded_at"]
    assert list(frames["opportunities"].columns) == [
        "opportunity_id", "lead_id", "created_at", "closed_at", "stage", "amount"]
    for name, cols in {"leads": ["created_at"], "activities": ["occurred_at", "recorded_at"],
                       "opportunities": ["created_at", "closed_at"]}.items():
        for col in cols:
            assert str(frames[name][col].dtype) == "datetime64[us, UTC]", (name, col)
    assert str(frames["accounts"]["employees"].dtype) == "Int64"
    assert frames["accounts"]["account_id"].str.fullmatch(r"A\d{6}").all()
    assert frames["leads"]["lead_id"].str.fullmatch(r"L\d{7}").all()
    assert frames["opportunities"]["opportunity_id"].str.fullmatch(r"O\d{7}").all()
    assert frames["leads"]["account_id"].isin(frames["accounts"]["account_id"]).all()
    assert set(frames["activities"]["activity_type"].astype(str)) == set(ACTIVITY_TYPES)
    assert len(truth) == 5000 and truth["lead_id"].equals(frames["leads"]["lead_id"])


def test_vocabularies_cover_the_icp_values(world):
    frames, _ = world
    industries = set(frames["accounts"]["industry"].dropna())
    assert set(_criterion("industry")["values"]) <= industries
    assert {"retail", "education", "government", "media", "logistics", "construction"} <= industries
    seniorities = set(frames["leads"]["seniority"].dropna())
    assert seniorities == {"c_level", "vp", "director", "manager", "individual_contributor"}
    assert set(_criterion("department")["values"]) <= set(frames["leads"]["department"].dropna())
    assert set(frames["leads"]["lead_source"]) == {
        "web_form", "paid_search", "organic", "tradeshow", "referral", "list_purchase", "webinar"}
    countries = set(frames["accounts"]["country"].dropna())
    assert set(_criterion("region")["values"]) <= countries and {"IN", "BR"} <= countries


def test_several_leads_per_account(world):
    frames, _ = world
    per_account = frames["leads"].groupby("account_id").size()
    assert len(frames["accounts"]) == pytest.approx(5000 / 3, abs=2)
    assert per_account.min() >= 1 and per_account.max() >= 5


# -------------------------------------------------------------------- realism


def test_activities_fall_between_lead_creation_and_end(world):
    frames, _ = world
    act, leads = frames["activities"], frames["leads"]
    created = act["lead_id"].astype(str).map(leads.set_index("lead_id")["created_at"])
    assert (act["occurred_at"] >= created).all()
    assert (act["occurred_at"] < END).all()


def test_recorded_at_is_never_before_occurred_at_and_some_are_backfilled(world):
    act = world[0]["activities"]
    lag = (act["recorded_at"] - act["occurred_at"]) / DAY
    assert (lag >= 0).all()
    late = lag > 0
    assert 0.03 < late.mean() < 0.07
    assert lag[late].between(1, 30).all()
    assert (act["recorded_at"] < END).all()


def test_about_fifty_events_per_lead_with_email_opens_most_common(world):
    act = world[0]["activities"]
    assert 35 < len(act) / 5000 < 65
    counts = act["activity_type"].value_counts()
    assert counts.idxmax() == "email_open"
    assert counts["demo_request"] < counts["pricing_page_visit"] < counts["web_visit"]


def test_closed_won_rate_is_a_few_percent(world):
    opps = world[0]["opportunities"]
    won = (opps["stage"] == "closed_won").sum() / 5000
    assert 0.01 <= won <= 0.08
    assert 0.05 <= len(opps) / 5000 <= 0.25


def test_opportunities_are_one_per_lead_and_open_ones_have_no_close(world):
    opps = world[0]["opportunities"]
    assert opps["lead_id"].is_unique
    assert set(opps["stage"]) <= {"open", "closed_won", "closed_lost"}
    is_open = opps["stage"] == "open"
    assert opps.loc[is_open, "closed_at"].isna().all()
    closed = opps[~is_open]
    delay = (closed["closed_at"] - closed["created_at"]) / DAY
    assert delay.between(CLOSE_MIN_DAYS, CLOSE_MAX_DAYS).all()
    assert (closed["closed_at"] < END).all() and (opps["amount"] > 0).all()


def test_opportunities_are_created_at_the_buying_moment(world):
    frames, truth = world
    opps = frames["opportunities"].merge(truth, on="lead_id", suffixes=("", "_gt"))
    assert opps["in_market"].all()
    assert (opps["created_at"] == opps["buy_at"]).all()
    seen = truth["in_market"] & (truth["buy_at"] < END)
    assert seen.sum() == len(opps)


def test_about_15_percent_of_each_firmographic_is_missing_independently(world):
    accounts = world[0]["accounts"]
    cols = ["industry", "employees", "annual_revenue", "country"]
    rates = accounts[cols].isna().mean()
    assert rates.between(0.10, 0.20).all(), rates
    all_missing = accounts[cols].isna().all(axis=1).mean()
    assert all_missing < 0.01  # independent gaps: ~0.15**4
    assert accounts[["account_id", "company_name", "domain"]].notna().all().all()


def test_employees_and_revenue_are_wide_and_correlated(world):
    acc = world[0]["accounts"].dropna(subset=["employees", "annual_revenue"])
    emp = acc["employees"].astype(float)
    assert emp.min() >= 1 and emp.max() <= 100_000 and emp.max() > 5000
    assert 0.25 < emp.between(200, 5000).mean() < 0.6
    assert np.corrcoef(np.log(emp), np.log(acc["annual_revenue"]))[0, 1] > 0.7


def test_about_a_fifth_of_leads_use_free_mail(world):
    leads = world[0]["leads"]
    free = leads["email_domain"].isin(_criterion("free_email")["values"])
    assert 0.16 < free.mean() < 0.24
    domains = leads.merge(world[0]["accounts"], on="account_id")
    business = ~domains["email_domain"].isin(_criterion("free_email")["values"])
    assert (domains.loc[business, "email_domain"] == domains.loc[business, "domain"]).all()


def test_lead_creation_is_seasonal(world):
    leads = world[0]["leads"]
    by_month = leads["created_at"].dt.month.value_counts()
    assert by_month[8] < 0.75 * by_month[10]
    assert by_month[8] < 0.75 * by_month[3]
    late_dec = leads["created_at"].dt.month.eq(12) & leads["created_at"].dt.day.ge(20)
    early_dec = leads["created_at"].dt.month.eq(12) & leads["created_at"].dt.day.between(1, 12)
    assert late_dec.sum() < 0.7 * early_dec.sum()
    assert leads["created_at"].min() >= START and leads["created_at"].max() < END


def test_in_market_leads_show_more_pricing_and_survey_events_before_buying(world):
    frames, truth = world
    act = frames["activities"]
    act = act[act["activity_type"].isin(["pricing_page_visit", "survey_completed"])]
    t = truth.set_index("lead_id")
    full_ramp = t["in_market"] & (t["buy_at"] - RAMP_DAYS * DAY >= t["created_at"]) & (t["buy_at"] < END)
    ramp_ids = t.index[full_ramp]
    a = act[act["lead_id"].astype(str).isin(ramp_ids)]
    buy = a["lead_id"].astype(str).map(t["buy_at"])
    in_ramp = (a["occurred_at"] < buy) & (a["occurred_at"] >= buy - RAMP_DAYS * DAY)
    ramp_rate = in_ramp.sum() / (len(ramp_ids) * RAMP_DAYS)  # events per lead-day in the ramp
    others = t.index[~t["in_market"]]
    life_days = ((END - t.loc[others, "created_at"]) / DAY).sum()
    other_rate = act["lead_id"].astype(str).isin(others).sum() / life_days
    assert ramp_rate > 10 * other_rate
    for kind in ["pricing_page_visit", "survey_completed"]:
        k = a["activity_type"] == kind
        assert (in_ramp & k).sum() / len(ramp_ids) > 0.4, kind


def test_surveys_are_a_stronger_ramp_signal_than_whitepapers(world):
    frames, truth = world
    act = frames["activities"]
    t = truth.set_index("lead_id")
    buy = act["lead_id"].astype(str).map(t["buy_at"])
    in_ramp = (act["occurred_at"] < buy) & (act["occurred_at"] >= buy - RAMP_DAYS * DAY)
    share = act[in_ramp]["activity_type"].value_counts() / act["activity_type"].value_counts()
    assert share["survey_completed"] > 2 * share["whitepaper_download"]


def test_no_email_events_after_unsubscribing(world):
    act = world[0]["activities"]
    unsub = act[act["activity_type"] == "unsubscribe"].set_index(act["lead_id"].astype(str)[
        act["activity_type"] == "unsubscribe"])["occurred_at"]
    assert len(unsub) > 50 and unsub.index.is_unique
    email = act[act["activity_type"].isin(["email_open", "email_click"])]
    at = email["lead_id"].astype(str).map(unsub)
    assert not (email["occurred_at"] > at).any()


# ------------------------------------------------------------------ ground truth


def test_p_won_ranks_leads_that_close_won(world):
    frames, truth = world
    won_ids = frames["opportunities"].loc[frames["opportunities"]["stage"] == "closed_won", "lead_id"]
    won = truth["lead_id"].isin(won_ids)
    assert truth.loc[won, "p_won"].mean() > 2 * truth.loc[~won, "p_won"].mean()
    assert roc_auc_score(won, truth["p_won"]) > 0.75
    assert np.allclose(truth["p_won"], truth["p_in_market"] * truth["p_win_if_opportunity"])
    assert truth.loc[~truth["in_market"], "buy_at"].isna().all()
    assert (truth.loc[truth["in_market"], "buy_at"] > truth.loc[truth["in_market"], "created_at"]).all()


def test_fit_is_centred_and_higher_for_icp_matches(world):
    frames, truth = world
    assert abs(truth["fit"].mean()) < 0.15
    leads = frames["leads"].merge(frames["accounts"], on="account_id").merge(truth, on="lead_id")
    icp = leads["industry"].isin(_criterion("industry")["values"])
    non = leads["industry"].notna() & ~icp
    assert leads.loc[icp, "fit"].mean() > leads.loc[non, "fit"].mean() + 0.5


def test_true_probability_is_a_probability_and_zero_when_no_close_fits(world):
    frames, truth = world
    rows = _monthly_rows(frames, 90)
    p = true_probability(truth, rows, 90)
    assert p.shape == (len(rows),)
    assert np.all((p >= 0) & (p <= 1))
    # a deal closes at least CLOSE_MIN_DAYS after it is created at/after the cutoff
    assert np.all(true_probability(truth, rows, int(CLOSE_MIN_DAYS)) == 0)
    # wider windows can only add wins
    assert np.all(true_probability(truth, rows, 180) >= p - 1e-12)


def test_true_probability_from_creation_over_a_long_horizon_is_p_won(world):
    _, truth = world
    rows = pd.DataFrame({"lead_id": truth["lead_id"], "cutoff": truth["created_at"]})
    p = true_probability(truth, rows, 20_000)
    np.testing.assert_allclose(p, truth["p_won"], rtol=1e-6)


def test_true_probability_matches_a_numerical_integral_over_the_close_delay(world):
    from scipy import stats

    _, truth = world
    sub = truth.sample(200, random_state=0).reset_index(drop=True)
    ages = np.random.default_rng(0).uniform(-10, 200, len(sub))
    rows = pd.DataFrame({"lead_id": sub["lead_id"],
                         "cutoff": sub["created_at"] + pd.to_timedelta(ages, unit="D")})
    for h in (30, 90):
        d = np.linspace(CLOSE_MIN_DAYS, CLOSE_MAX_DAYS, 2001)
        s = ages[:, None]
        G = lambda x: stats.gamma.cdf(np.maximum(x, 0), GAMMA_SHAPE, scale=GAMMA_SCALE)  # noqa: E731
        inside = np.clip(G(s + h - d) - G(s), 0, None)
        expected_window = np.trapezoid(inside, d, axis=1) / (CLOSE_MAX_DAYS - CLOSE_MIN_DAYS)
        p, q = sub["p_in_market"].to_numpy(), sub["p_win_if_opportunity"].to_numpy()
        expected = p * q * expected_window / (1 - p * G(ages))
        np.testing.assert_allclose(true_probability(truth, rows, h), expected, rtol=1e-4, atol=1e-9)


def test_true_probability_is_calibrated_against_observed_wins(big_world):
    frames, truth = big_world
    rows = _monthly_rows(frames, 90)
    p = true_probability(truth, rows, 90)
    observed, expected = rows["y"].sum(), p.sum()
    assert observed > 500
    # rows of one lead at consecutive cutoffs share an outcome: allow for ~3x variance
    sd = np.sqrt(3 * np.sum(p * (1 - p)))
    assert abs(observed - expected) < 3.5 * sd, (observed, expected)
    assert abs(observed / expected - 1) < 0.15
    # and per quintile of the oracle probability
    q = pd.qcut(p, 5, labels=False)
    by = pd.DataFrame({"p": p, "y": rows["y"], "q": q}).groupby("q").mean()
    assert by["y"].is_monotonic_increasing
    top = by.iloc[-1]
    assert abs(top["y"] / top["p"] - 1) < 0.2
    assert roc_auc_score(rows["y"], p) > 0.8


def test_true_probability_rejects_unknown_leads(world):
    _, truth = world
    rows = pd.DataFrame({"lead_id": ["L9999999"], "cutoff": [START]})
    with pytest.raises(ValueError, match="L9999999"):
        true_probability(truth, rows, 90)


# ------------------------------------------------------------------------ writer


def test_write_world_writes_tables_and_ground_truth_that_read_export_reads(tmp_path):
    out = write_world(tmp_path / "world", 2000, seed=5)
    names = {p.name for p in out.iterdir()}
    assert names == {"accounts.parquet", "leads.parquet", "activities.parquet",
                     "opportunities.parquet", "ground_truth.parquet"}
    export = read_export(out)
    frames, truth = generate_world(2000, seed=5)
    assert len(export.activities) == len(frames["activities"])
    assert export.leads["lead_id"].tolist() == frames["leads"]["lead_id"].tolist()
    pd.testing.assert_series_equal(export.leads["created_at"], frames["leads"]["created_at"])
    gt = pd.read_parquet(out / "ground_truth.parquet")
    pd.testing.assert_frame_equal(gt, truth)


def test_write_world_replaces_a_previous_world_also_as_csv(tmp_path):
    out = tmp_path / "world"
    write_world(out, 2000, seed=5)
    write_world(out, 1500, seed=6, fmt="csv")
    names = {p.name for p in out.iterdir()}
    assert names == {"accounts.csv", "leads.csv", "activities.csv", "opportunities.csv",
                     "ground_truth.parquet"}
    export = read_export(out)
    frames, _ = generate_world(1500, seed=6)
    assert len(export.leads) == 1500 and len(export.activities) == len(frames["activities"])
    assert (export.activities["occurred_at"] == frames["activities"]["occurred_at"]).all()


def test_write_world_refuses_a_non_empty_unrelated_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        write_world(tmp_path, 1000)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert {p.name for p in tmp_path.iterdir()} == {"notes.txt"}
