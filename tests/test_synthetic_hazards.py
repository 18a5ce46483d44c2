"""The synthetic world's hazards: drift, a high-cardinality column, sparse activity, small worlds; the plain world
unchanged draw for draw."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from propensity.cli import main
from propensity.data.export import read_export
from propensity.data.synthetic import Hazards, generate_world, write_world
from propensity.data.synthetic.story import (
    ICP_INDUSTRIES,
    LANDING_HOT_RANKS,
    MECHANICS_BACKGROUND_FACTOR,
    MIX_SOURCE_WEIGHTS,
    RAMP_DAYS,
)

START = pd.Timestamp("2024-01-01", tz="UTC")
MID = pd.Timestamp("2024-12-31", tz="UTC")  # the default drift date: the middle day of 2024-2025 (731 days)
DAY = pd.Timedelta(days=1)

# Digests of the plain world (2,000 leads, seed 3) as drawn before the hazards existed: benchmark figures and
# other tests rely on these tables staying the same.
PLAIN_DIGESTS = {"accounts": "e01fe1a532dabebb", "leads": "6107ba330b6f78e3", "activities": "e70678d31bc9f30e",
                 "opportunities": "6ab9f240d3ea6e2e", "ground_truth": "6d69878cf44bad7d"}


def _digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()[:16]


def _world(**hazards):
    return generate_world(20_000, seed=2, hazards=hazards)


@pytest.fixture(scope="module")
def plain():
    return _world()


def test_the_plain_world_is_drawn_as_before_the_hazards():
    frames, truth = generate_world(2000, seed=3)
    assert {k: _digest(v) for k, v in {**frames, "ground_truth": truth}.items()} == PLAIN_DIGESTS
    assert truth.attrs["world"] == {"start": "2024-01-01 00:00:00+00:00", "end": "2026-01-01 00:00:00+00:00",
                                    **Hazards().model_dump()}
    same, same_truth = generate_world(2000, seed=3, hazards=Hazards())
    assert {k: _digest(v) for k, v in {**same, "ground_truth": same_truth}.items()} == PLAIN_DIGESTS


def test_hazard_worlds_are_deterministic_per_seed():
    hz = {"drift": ("mix", "mechanics", "late-wins"), "landing_pages": 50, "origin": True, "activity_scale": 0.3}
    a, ta = generate_world(1500, seed=4, hazards=hz)
    b, tb = generate_world(1500, seed=4, hazards=hz)
    c, _ = generate_world(1500, seed=5, hazards=hz)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    pd.testing.assert_frame_equal(ta, tb)
    assert not a["leads"]["landing_page"].equals(c["leads"]["landing_page"])


def test_base_rate_drift_raises_the_in_market_rate_of_leads_created_after_the_date(plain):
    frames, truth = _world(drift=["base-rate"], drift_shift=1.0)
    after = truth["created_at"] >= MID
    # the same latents and draws, only the log-odds of leads created after the date move
    pd.testing.assert_frame_equal(truth.loc[~after], plain[1].loc[~after])
    logit = np.log(truth["p_in_market"] / (1 - truth["p_in_market"]))
    logit0 = np.log(plain[1]["p_in_market"] / (1 - plain[1]["p_in_market"]))
    np.testing.assert_allclose((logit - logit0)[after], 1.0, atol=1e-9)
    assert truth.loc[after, "in_market"].mean() > 1.3 * plain[1].loc[after, "in_market"].mean()


def test_mechanics_drift_turns_the_signal_into_noise_after_the_date(plain):
    frames, truth = _world(drift=["mechanics"])
    acts = frames["activities"]
    pricing = acts[acts["activity_type"] == "pricing_page_visit"]
    buy = truth.set_index("lead_id")["buy_at"]
    before_buy = (buy.reindex(pricing["lead_id"].astype(str)).to_numpy() - pricing["occurred_at"].to_numpy()) / DAY

    def ramp_share(sel):  # share of pricing visits in the 45 days before a buying moment
        d = before_buy[sel]
        return np.mean((d > 0) & (d <= RAMP_DAYS))

    late = (pricing["occurred_at"] >= MID).to_numpy()
    assert ramp_share(~late) > 0.2
    assert ramp_share(late) < 0.06
    # and its volume rose: the background doubled
    p_acts = plain[0]["activities"]
    plain_late = ((p_acts["activity_type"] == "pricing_page_visit") & (p_acts["occurred_at"] >= MID)).sum()
    assert late.sum() > 1.4 * plain_late
    assert MECHANICS_BACKGROUND_FACTOR == 2.0
    # the other signals keep their meaning: web visits in the ramp are as common as in the plain world
    def web_ramp_share(acts):
        web = acts[(acts["activity_type"] == "web_visit") & (acts["occurred_at"] >= MID)]
        d = (buy.reindex(web["lead_id"].astype(str)).to_numpy() - web["occurred_at"].to_numpy()) / DAY
        return np.mean((d > 0) & (d <= RAMP_DAYS))

    assert web_ramp_share(acts) == pytest.approx(web_ramp_share(p_acts), abs=0.003)


def test_mix_drift_shifts_sources_and_industries_of_leads_created_after_the_date(plain):
    frames, truth = _world(drift=["mix"])
    leads = frames["leads"].merge(frames["accounts"][["account_id", "industry"]], on="account_id")
    after = leads["created_at"] >= MID
    share = leads.loc[after, "lead_source"].value_counts(normalize=True)
    assert share["list_purchase"] == pytest.approx(MIX_SOURCE_WEIGHTS[5] / MIX_SOURCE_WEIGHTS.sum(), abs=0.03)
    before_share = leads.loc[~after, "lead_source"].value_counts(normalize=True)
    assert before_share["list_purchase"] < 0.2
    icp = leads["industry"].isin(ICP_INDUSTRIES)
    known = leads["industry"].notna()
    assert icp[after & known].mean() < icp[~after & known].mean() - 0.15
    assert truth.loc[after.to_numpy(), "fit"].mean() < truth.loc[~after.to_numpy(), "fit"].mean() - 0.2


def test_late_wins_has_no_won_deal_before_the_date():
    frames, truth = _world(drift=["late-wins"])
    opps = frames["opportunities"]
    won = opps[opps["stage"] == "closed_won"]
    wins_from = pd.Timestamp("2024-07-01", tz="UTC")
    assert (won["closed_at"] >= wins_from).all()
    assert len(won) > 500
    assert ((opps["stage"] == "closed_lost") & (opps["closed_at"] < wins_from)).sum() > 50
    custom, _ = _world(drift=["late-wins"], wins_from="2024-10-01")
    c_won = custom["opportunities"].query("stage == 'closed_won'")
    assert c_won["closed_at"].min() >= pd.Timestamp("2024-10-01", tz="UTC")


def test_win_rate_drift_loses_deals_closing_after_the_date_for_old_and_new_leads(plain):
    frames, truth = _world(drift=["win-rate"], win_factor=0.3)
    base = plain[0]["opportunities"]
    opps = frames["opportunities"]
    before, after = opps["closed_at"] < MID, opps["closed_at"] >= MID
    pd.testing.assert_frame_equal(opps[before].reset_index(drop=True),
                                  base[base["closed_at"] < MID].reset_index(drop=True))  # untouched before
    won = opps["stage"] == "closed_won"
    plain_after = ((base["stage"] == "closed_won") & (base["closed_at"] >= MID)).sum()
    assert plain_after > 300 and 0.2 < (won & after).sum() / plain_after < 0.4  # 0.3 of them kept
    old = frames["leads"].set_index("lead_id").loc[opps.loc[won & after, "lead_id"], "created_at"] < MID
    assert old.sum() > 20  # leads created before the date lose deals too (base-rate drift moves only new leads)
    with pytest.raises(ValueError, match="win_factor"):
        Hazards(win_factor=0.5)


def test_landing_pages_has_hundreds_of_values_of_which_a_few_matter():
    frames, truth = generate_world(8000, seed=2, hazards={"landing_pages": 500, "origin": True})
    leads = frames["leads"].merge(truth[["lead_id", "p_in_market", "in_market"]], on="lead_id")
    assert leads["landing_page"].nunique() > 300
    counts = leads["landing_page"].value_counts()
    hot = counts.index[list(LANDING_HOT_RANKS)]
    is_hot = leads["landing_page"].isin(hot)
    assert is_hot.sum() > 200
    assert leads.loc[is_hot, "in_market"].mean() > 2 * leads.loc[~is_hot, "in_market"].mean()
    assert set(leads["origin"]) == {"inbound", "outbound", "partner", "event"}
    by_origin = leads.groupby("origin")["p_in_market"].mean()
    assert by_origin["partner"] > by_origin["outbound"]


def test_sparse_activity_leaves_about_one_event_per_lead():
    frames, _ = generate_world(20_000, seed=2, hazards={"activity_scale": 0.01})
    per_lead = len(frames["activities"]) / 20_000
    assert 0.9 < per_lead < 1.6, per_lead


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_small_world_of_2000_leads_has_about_100_conversions(seed):
    frames, _ = generate_world(2000, seed=seed, hazards={"in_market_shift": 0.3})
    won = (frames["opportunities"]["stage"] == "closed_won").sum()
    assert 70 <= won <= 140, won


def test_bad_hazards_are_refused():
    with pytest.raises(ValueError, match="drift_signal"):
        Hazards(drift=["mechanics"], drift_signal="email_open")
    with pytest.raises(ValueError, match="wins_from"):
        Hazards(wins_from="2024-06-01")
    with pytest.raises(ValueError, match="landing_pages"):
        Hazards(landing_pages=3)
    with pytest.raises(ValueError, match="activity_scale"):
        Hazards(activity_scale=0)
    with pytest.raises(ValueError, match="extra"):
        Hazards(drfit=["mix"])


def test_hazard_world_folder_reads_as_an_export_and_keeps_its_options(tmp_path):
    out = write_world(tmp_path / "w", 1500, seed=1, hazards={"drift": ["late-wins"], "landing_pages": 40,
                                                                "origin": True})
    export = read_export(out)
    assert {"landing_page", "origin"} <= set(export.leads.columns)
    meta = pd.read_parquet(out / "ground_truth.parquet").attrs["world"]
    assert meta["drift"] == ["late-wins"] and meta["landing_pages"] == 40


def test_generate_cli_takes_the_hazard_options(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["generate", "--out", str(out), "--leads", "1000", "--drift", "mix", "--drift", "base-rate",
                 "--drift-at", "2024-09-01", "--landing-pages", "100", "--activity-scale", "0.5", "--drift", "win-rate",
                 "--win-factor", "0.5"]) == 0
    assert "hazards: drift=mix+base-rate+win-rate" in capsys.readouterr().out
    meta = pd.read_parquet(out / "ground_truth.parquet").attrs["world"]
    assert meta["drift"] == ["mix", "base-rate", "win-rate"] and meta["drift_at"] == "2024-09-01"
    assert meta["win_factor"] == 0.5
    bad = tmp_path / "bad"
    assert main(["generate", "--out", str(bad), "--leads", "1000", "--wins-from", "2024-06-01"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--wins-from" in err, err
    assert not bad.exists()


def test_generate_cli_takes_the_span_and_refuses_a_bad_one_before_any_work(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["generate", "--out", str(out), "--leads", "500", "--start", "2025-01-01", "--end", "2026-01-01"]) == 0
    assert pd.read_parquet(out / "leads.parquet")["created_at"].min() >= pd.Timestamp("2025-01-01", tz="UTC")
    assert pd.read_parquet(out / "ground_truth.parquet").attrs["world"]["start"].startswith("2025-01-01")
    capsys.readouterr()
    for args in (["--start", "soon"], ["--start", "2025-01-01", "--end", "2024-01-01"]):
        bad = tmp_path / "bad"
        assert main(["generate", "--out", str(bad), "--leads", "500", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("--start" in err or "must be after" in err), err
        assert not bad.exists()
