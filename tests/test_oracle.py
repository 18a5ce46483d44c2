"""The oracle: the true probability per (lead, cutoff) snapshot, against a Monte-Carlo posterior and the outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import log_loss, roc_auc_score

from propensity.data.synthetic import generate_world, oracle_probability, true_probability, world_hazards, write_world
from propensity.data.synthetic.hazards import Timeline
from propensity.data.synthetic.story import (
    BACKFILL_MAX_DAYS,
    BACKFILL_MIN_DAYS,
    BACKFILL_RATE,
    BACKGROUND_RATE,
    CLOSE_MAX_DAYS,
    CLOSE_MIN_DAYS,
    FIT_LOADING,
    GAMMA_SCALE,
    GAMMA_SHAPE,
    MECHANICS_BACKGROUND_FACTOR,
    RAMP_DAYS,
    RAMP_EVENTS,
    SOURCE_EVENT,
    UNSUB_A,
    UNSUB_B,
    UNSUB_MEAN_DAYS,
    Z_LOADING,
    Season,
)

DAY = pd.Timedelta(days=1)
HORIZON = 90


def _snapshots(frames, horizon=HORIZON, max_age_days=365, start="2024-03-01", end="2026-01-01"):
    """(lead_id, cutoff, y) for monthly cutoffs, leads open (no opportunity yet) at the cutoff, as training makes
    them; ``y``: a deal closed won in [cutoff, cutoff + horizon)."""
    leads, opps = frames["leads"], frames["opportunities"]
    oc = opps.set_index("lead_id").reindex(leads["lead_id"])
    cuts = pd.date_range(pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC") - horizon * DAY, freq="MS")
    rows = []
    for c in cuts:
        age = (c - leads["created_at"]) / DAY
        keep = ((age > 0) & (age <= max_age_days)).to_numpy() & ~(oc["created_at"] < c).to_numpy()
        won = ((oc["stage"] == "closed_won") & (oc["closed_at"] >= c) & (oc["closed_at"] < c + horizon * DAY))
        rows.append(pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()[keep], "cutoff": c,
                                  "y": won.to_numpy()[keep]}))
    out = pd.concat(rows, ignore_index=True)
    out["cutoff"] = out["cutoff"].astype("datetime64[us, UTC]")
    return out


# ------------------------------------------------------------- Monte Carlo


class _Posterior:
    """An independent Monte-Carlo estimate of the oracle: hidden states drawn by importance sampling (buying moments
    from the Gamma prior truncated at the cutoff; unsubscribes and their recording delays as the story draws them),
    weighted by the observed events' Poisson likelihood integrated numerically in time, then the deal simulated
    forward (close delay, win)."""

    def __init__(self, frames, truth):
        start, end, self.hz = world_hazards(truth)
        self.line = Timeline.of(start, end, self.hz)
        self.t0 = self.line.start
        self.season = Season(self.t0, self.line.span)
        self.truth = truth.set_index("lead_id")
        self.source = frames["leads"].set_index("lead_id")["lead_source"]
        acts = frames["activities"]
        self.acts = dict(list(acts.assign(lead_id=acts["lead_id"].astype(str)).groupby("lead_id")))

    def days(self, t):
        return (t - self.t0) / DAY

    def weight(self, t):
        day = np.clip(np.floor(t).astype(int), 0, len(self.season.edges) - 2)
        return (self.season.cum[day + 1] - self.season.cum[day]) / (self.season.edges[day + 1] - self.season.edges[day])

    @staticmethod
    def recorded(x):
        """P(an event x days before the cutoff is recorded by then)."""
        late = np.clip((BACKFILL_MAX_DAYS - x) / (BACKFILL_MAX_DAYS - BACKFILL_MIN_DAYS), 0, 1)
        return 1 - BACKFILL_RATE * np.where(x <= BACKFILL_MIN_DAYS, 1.0, late)

    def background(self, kind, t, z, f):
        a = Z_LOADING[kind]
        rate = BACKGROUND_RATE[kind] * self.hz.activity_scale * np.exp(a * z - a * a / 2 + FIT_LOADING * f)
        mech = "mechanics" in self.hz.drift and kind == self.hz.drift_signal
        return rate * self.weight(t) * np.where(mech & (t >= self.line.drift_day), MECHANICS_BACKGROUND_FACTOR, 1.0)

    def ramp_on(self, kind, t):
        off = "mechanics" in self.hz.drift and kind == self.hz.drift_signal
        return ~(off & (t >= self.line.drift_day))

    def estimate(self, lead_id, cutoff, horizon, rng, n=20_000):
        lt = self.truth.loc[lead_id]
        c, T = self.days(lt["created_at"]), self.days(cutoff)
        s = T - c
        z, f, p, q = (float(lt[k]) for k in ("interest", "fit", "p_in_market", "p_win_if_opportunity"))
        ev = self.acts.get(lead_id)
        occ = self.days(ev["occurred_at"]).to_numpy() if ev is not None else np.zeros(0)
        rec = self.days(ev["recorded_at"]).to_numpy() if ev is not None else np.zeros(0)
        kinds = ev["activity_type"].astype(str).to_numpy() if ev is not None else np.zeros(0, dtype=str)
        seen = (occ < T) & (rec < T)
        occ, kinds = occ[seen], kinds[seen]
        if (kinds == "unsubscribe").any():
            return 0.0, 0.0
        emails = occ[np.isin(kinds, ["email_open", "email_click"])]
        last_email = emails.max() if len(emails) else -np.inf
        src = SOURCE_EVENT.get(self.source.loc[lead_id])

        # H1: buying moment O >= T from the truncated prior; ramp likelihood ratio by numerical integration
        g_s = stats.gamma.cdf(s, GAMMA_SHAPE, scale=GAMMA_SCALE)
        u1 = rng.uniform(g_s, 1.0, n)
        o = c + stats.gamma.ppf(u1, GAMMA_SHAPE, scale=GAMMA_SCALE)
        log_lr = np.zeros(n)
        near = o < T + RAMP_DAYS
        on = o[near]
        # the ramp's expected observable events before T, by the trapezoid rule in time at 451 buying moments
        # (interpolated between them: it is smooth in O)
        nodes = T + np.linspace(0, RAMP_DAYS, 451)
        lo = np.maximum(c, nodes - RAMP_DAYS)
        grid = lo[:, None] + (T - lo)[:, None] * np.linspace(0, 1, 801)[None, :]
        tri = np.clip(2 * (grid - nodes[:, None] + RAMP_DAYS) / RAMP_DAYS ** 2, 0, None)
        dens = sum(RAMP_EVENTS[k] * self.hz.activity_scale * self.ramp_on(k, grid) for k in RAMP_EVENTS)
        comp = np.interp(on, nodes, np.trapezoid(dens * tri * self.recorded(T - grid), grid, axis=1))
        terms = -comp
        for t_i, k in zip(occ, kinds, strict=True):
            if k not in RAMP_EVENTS or not self.ramp_on(k, np.array(t_i)):
                continue
            base = self.background(k, np.array([t_i]), z, f)[0]
            if k == src and c + 1 / 1440 <= t_i <= c + 10 / 1440:
                base += 1440 / 9
            rho = RAMP_EVENTS[k] * self.hz.activity_scale * np.where(
                (t_i >= on - RAMP_DAYS) & (t_i < on), 2 * (t_i - on + RAMP_DAYS) / RAMP_DAYS ** 2, 0.0)
            terms = terms + np.log1p(rho / base)
        log_lr[near] = terms
        lr = np.exp(log_lr)
        close = o + rng.uniform(CLOSE_MIN_DAYS, CLOSE_MAX_DAYS, n)
        win = (rng.random(n) < q) & (close >= T) & (close < T + horizon) & (close >= self.line.wins_day)
        if "win-rate" in self.hz.drift:  # closes from drift_at on are won at win_factor times q
            win &= (close < self.line.drift_day) | (rng.random(n) < self.hz.win_factor)

        # H0: unsubscribe at U; an unrecorded one before T hides the emails after U
        u = 1 / (1 + np.exp(-(UNSUB_A + UNSUB_B * z)))
        unsub = rng.random(n) < u
        at = c + rng.exponential(UNSUB_MEAN_DAYS, n)
        lag = np.where(rng.random(n) < BACKFILL_RATE, rng.uniform(BACKFILL_MIN_DAYS, BACKFILL_MAX_DAYS, n), 0.0)
        l0 = np.ones(n)
        before = unsub & (at < T)
        l0[before & (at + lag < T)] = 0.0  # it would have been seen
        l0[before & (at < last_email)] = 0.0  # an email after it was seen
        hidden = before & (l0 > 0)
        if hidden.any():
            ua = at[hidden]
            g2 = ua[:, None] + (T - ua)[:, None] * np.linspace(0, 1, 401)[None, :]
            e = self.background("email_open", g2, z, f) + self.background("email_click", g2, z, f)
            l0[hidden] = np.exp(np.trapezoid(e * self.recorded(T - g2), g2, axis=1))

        # the ratio estimator and its delta-method standard error over the n paired draws
        a = p * (1 - g_s) * lr * win
        d = p * (1 - g_s) * lr + (1 - p) * l0
        est = a.mean() / d.mean()
        return est, np.std(a - est * d, ddof=1) / np.sqrt(n) / d.mean()


def _compare(frames, truth, rows, seed):
    post = _Posterior(frames, truth)
    rng = np.random.default_rng(seed)
    oracle = oracle_probability(frames, rows, HORIZON, truth=truth)
    mc = np.array([post.estimate(r.lead_id, r.cutoff, HORIZON, rng) for r in rows.itertuples()])
    return oracle, mc[:, 0], mc[:, 1]


def _pick(rows, oracle, n_top=100, n_any=150, seed=0):
    """Rows where the events matter most (the highest oracle probabilities) and a random sample."""
    top = np.argsort(-oracle)[:n_top]
    rest = np.setdiff1d(np.arange(len(rows)), top)
    some = np.random.default_rng(seed).choice(rest, n_any, replace=False)
    return rows.iloc[np.concatenate([top, some])].reset_index(drop=True)


def _check_against_monte_carlo(oracle, mc, se):
    """Every snapshot within 4.5 Monte-Carlo standard errors (+0.2% of the value for the oracle's grid), and
    no bias overall: the mean standardised difference within 4 / sqrt(n)."""
    tol = 4.5 * se + 2e-3 * oracle + 1e-6
    bad = np.flatnonzero(np.abs(oracle - mc) > tol)
    assert len(bad) == 0, list(zip(oracle[bad], mc[bad], se[bad], strict=True))[:5]
    zs = (oracle - mc)[se > 0] / se[se > 0]
    assert abs(zs.mean()) < 4 / np.sqrt(len(zs)), zs.mean()


@pytest.fixture(scope="module")
def plain():
    frames, truth = generate_world(4000, seed=21)
    return frames, truth, _snapshots(frames)


def test_oracle_matches_a_monte_carlo_posterior_on_the_plain_world(plain):
    frames, truth, rows = plain
    rows = _pick(rows, oracle_probability(frames, rows, HORIZON, truth=truth), n_top=80, n_any=120)
    oracle, mc, se = _compare(frames, truth, rows, seed=1)
    _check_against_monte_carlo(oracle, mc, se)
    assert oracle.max() > 0.3  # rows where the ramp in the events decides


@pytest.mark.slow
def test_oracle_matches_a_monte_carlo_posterior_on_a_hazard_world():
    hz = {"drift": ["mechanics", "late-wins", "win-rate"], "wins_from": "2024-09-01", "activity_scale": 0.5,
          "win_factor": 0.3}
    frames, truth = generate_world(4000, seed=22, hazards=hz)
    rows = _snapshots(frames)
    rows = _pick(rows, oracle_probability(frames, rows, HORIZON, truth=truth), n_top=80, n_any=120)
    oracle, mc, se = _compare(frames, truth, rows, seed=2)
    _check_against_monte_carlo(oracle, mc, se)
    early = (rows["cutoff"] + HORIZON * DAY <= pd.Timestamp("2024-09-01", tz="UTC")).to_numpy()
    assert early.any() and np.all(oracle[early] == 0)  # no deal can be won before wins_from


# ---------------------------------------------------------- on the outcomes


@pytest.fixture(scope="module")
def big():
    frames, truth = generate_world(20_000, seed=11)
    rows = _snapshots(frames)
    return rows, oracle_probability(frames, rows, HORIZON, truth=truth), true_probability(truth, rows, HORIZON)


def _deciles(p, y):
    by = pd.DataFrame({"p": p, "y": y, "bin": pd.qcut(p, 10, labels=False, duplicates="drop")}).groupby("bin")
    return by.agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"), var=("p", lambda v: np.sum(v * (1 - v))))


def test_oracle_is_calibrated_per_decile(big):
    rows, p, _ = big
    y = rows["y"].to_numpy()
    assert y.sum() > 1000
    d = _deciles(p, y)
    # rows of one lead at consecutive cutoffs share an outcome: allow for ~3x the binomial variance
    z = (d["y"] - d["p"]) * d["n"] / np.sqrt(3 * d["var"])
    assert (np.abs(z[d["n"] * d["p"] > 5]) < 3.5).all(), d.assign(z=z)
    assert abs(y.sum() / p.sum() - 1) < 0.1


def test_oracle_is_calibrated_per_decile_on_a_drifting_world():
    hz = {"drift": ["base-rate", "mix", "mechanics", "win-rate"], "drift_shift": 1.2, "landing_pages": 300,
          "origin": True}
    frames, truth = generate_world(20_000, seed=12, hazards=hz)
    rows = _snapshots(frames)
    p, y = oracle_probability(frames, rows, HORIZON, truth=truth), rows["y"].to_numpy()
    d = _deciles(p, y)
    z = (d["y"] - d["p"]) * d["n"] / np.sqrt(3 * d["var"])
    assert (np.abs(z[d["n"] * d["p"] > 5]) < 3.5).all(), d.assign(z=z)
    assert abs(y.sum() / p.sum() - 1) < 0.1
    # before and after the drift date alike
    for part in (rows["cutoff"] < pd.Timestamp("2024-12-31", tz="UTC")).to_numpy(), rows["cutoff"].ge(
            pd.Timestamp("2025-03-01", tz="UTC")).to_numpy():
        assert abs(y[part].sum() / p[part].sum() - 1) < 0.15


def test_oracle_beats_the_latent_prior(big):
    rows, p, prior = big
    y = rows["y"].to_numpy()
    assert roc_auc_score(y, p) > roc_auc_score(y, prior) + 0.03
    assert log_loss(y, p) < 0.85 * log_loss(y, prior)


def test_oracle_is_zero_after_an_unsubscribe_and_when_no_close_fits(plain):
    frames, truth, rows = plain
    acts = frames["activities"]
    unsub = acts[acts["activity_type"] == "unsubscribe"]
    first = unsub.groupby("lead_id", observed=True)["recorded_at"].min()
    after = rows[rows["cutoff"] > rows["lead_id"].map(first)]
    assert len(after) > 100
    assert np.all(oracle_probability(frames, after, HORIZON, truth=truth) == 0)
    assert np.all(oracle_probability(frames, rows.head(500), int(CLOSE_MIN_DAYS), truth=truth) == 0)
    p90 = oracle_probability(frames, rows.head(2000), 90, truth=truth)
    assert np.all(oracle_probability(frames, rows.head(2000), 180, truth=truth) >= p90 - 1e-9)


def test_oracle_reads_a_world_folder_and_its_hazards(tmp_path):
    hz = {"drift": ["late-wins"], "wins_from": "2025-01-01"}
    out = write_world(tmp_path / "w", 1500, seed=3, fmt="csv", hazards=hz)
    frames, truth = generate_world(1500, seed=3, hazards=hz)
    rows = _snapshots(frames).head(3000)
    from_folder = oracle_probability(out, rows, HORIZON)
    np.testing.assert_allclose(from_folder, oracle_probability(frames, rows, HORIZON, truth=truth), atol=1e-9)
    early = (rows["cutoff"] + HORIZON * DAY <= pd.Timestamp("2025-01-01", tz="UTC")).to_numpy()
    assert np.all(from_folder[early] == 0) and from_folder[~early].max() > 0


def test_oracle_rejects_unknown_leads(plain):
    frames, truth, _ = plain
    with pytest.raises(ValueError, match="L9999999"):
        oracle_probability(frames, pd.DataFrame({"lead_id": ["L9999999"], "cutoff": [pd.Timestamp(
            "2025-01-01", tz="UTC")]}), HORIZON, truth=truth)


@pytest.mark.slow
def test_demo_prints_the_oracle_as_the_best_possible_model(tmp_path, capsys):
    from propensity.cli import main

    assert main(["demo", "--dir", str(tmp_path / "d"), "--leads", "4000", "--seed", "3",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("oracle ROC AUC"))
    assert "the best possible model" in line
    ratio = float(line.split("model / oracle = ")[1].split(" AUC")[0])
    ll_ratio = float(line.split(" = ")[-1].split(" x")[0])
    assert ratio <= 1.0 and ll_ratio >= 1.0, line
