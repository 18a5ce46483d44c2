"""The generator: draws a world's tables and ground truth as :mod:`propensity.data.synthetic.story` tells it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from propensity.core.times import stamp_us
from propensity.data.synthetic.hazards import Hazards, Timeline
from propensity.data.synthetic.story import (
    ACTIVITY_TYPES,
    BACKFILL_MAX_DAYS,
    BACKFILL_MIN_DAYS,
    BACKFILL_RATE,
    BACKGROUND_RATE,
    CLOSE_MAX_DAYS,
    CLOSE_MIN_DAYS,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DEPARTMENT_WEIGHTS,
    DEPARTMENTS,
    EMAIL_TYPES,
    FIT_CENTRE,
    FIT_LOADING,
    FIT_WEIGHTS,
    FREE_MAIL_DOMAINS,
    FREE_MAIL_RATE,
    FREE_MAIL_WEIGHTS,
    GAMMA_SCALE,
    GAMMA_SHAPE,
    GAP_RATE,
    HAZARD_STREAM,
    ICP_COUNTRIES,
    ICP_DEPARTMENTS,
    ICP_INDUSTRIES,
    ICP_SENIORITIES,
    IN_MARKET_A,
    IN_MARKET_B,
    IN_MARKET_C,
    INDUSTRIES,
    INDUSTRY_WEIGHTS,
    LANDING_HOT_RANKS,
    LANDING_HOT_SHIFT,
    LEAD_GAP_RATE,
    LEAD_SOURCE_WEIGHTS,
    LEAD_SOURCES,
    MECHANICS_BACKGROUND_FACTOR,
    MIX_NON_ICP_TILT,
    MIX_SOURCE_WEIGHTS,
    NAME_HEADS,
    NAME_SUFFIX,
    NAME_TAILS,
    ORIGIN_SHIFT,
    ORIGIN_WEIGHTS,
    ORIGINS,
    RAMP_DAYS,
    RAMP_EVENTS,
    SENIORITIES,
    SENIORITY_WEIGHTS,
    SOURCE_EVENT,
    TITLES,
    TLDS,
    TYPE_INDEX,
    UNSUB_A,
    UNSUB_B,
    UNSUB_MEAN_DAYS,
    WIN_G,
    WIN_H,
    Z_LOADING,
    Season,
    make_ids,
    sigmoid,
    to_timestamps,
)

__all__ = ["generate_world"]


def generate_world(
    n_leads: int, seed: int = 0, start: str = "2024-01-01", end: str = "2026-01-01",
    hazards: Hazards | Mapping[str, Any] | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Draw a synthetic CRM world (the story: :mod:`propensity.data.synthetic.story`).

    ``hazards`` (a :class:`Hazards` or its fields as a mapping) adds drift, a
    high-cardinality lead column, sparse activity; none: the plain world.
    Returns ``({"accounts", "leads", "activities", "opportunities"}, ground_truth)``.
    """
    if n_leads < 1:
        raise ValueError(f"n_leads must be at least 1, got {n_leads}")
    hz = hazards if isinstance(hazards, Hazards) else Hazards.model_validate(dict(hazards or {}))
    line = Timeline.of(start, end, hz)
    t_start, span = line.start, line.span
    start_us = stamp_us(t_start)
    rng = np.random.default_rng(seed)
    hrng = np.random.default_rng([seed, HAZARD_STREAM])  # the hazards' own draws: the plain world's stay as they are
    season = Season(t_start, span)
    n = int(n_leads)
    n_acc = int(np.ceil(n / 3))

    # ---- accounts (true values)
    industry = rng.choice(len(INDUSTRIES), n_acc, p=INDUSTRY_WEIGHTS / INDUSTRY_WEIGHTS.sum())
    employees = np.clip(np.rint(10 ** rng.normal(2.2, 0.85, n_acc)), 1, 100_000).astype(np.int64)
    revenue = np.round(employees * np.exp(rng.normal(np.log(180_000), 0.6, n_acc)), -3)
    country = rng.choice(len(COUNTRIES), n_acc, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
    head = rng.integers(0, len(NAME_HEADS), n_acc)
    tail = rng.integers(0, len(NAME_TAILS), n_acc)
    suffix = rng.integers(0, len(NAME_SUFFIX), n_acc)
    tld = rng.integers(0, len(TLDS), n_acc)
    gaps = rng.random((4, n_acc)) < GAP_RATE
    popularity = rng.lognormal(0.0, 0.8, n_acc)

    stem = np.char.add(NAME_HEADS[head], NAME_TAILS[tail])
    acc_num = np.arange(1, n_acc + 1).astype(str)
    domain = np.char.add(np.char.add(np.char.add(np.char.lower(stem), acc_num), "."), TLDS[tld])
    account_ids = make_ids("A", n_acc, 6)
    accounts = pd.DataFrame({
        "account_id": account_ids,
        "company_name": np.char.add(np.char.add(stem, " "), NAME_SUFFIX[suffix]).astype(object),
        "domain": domain.astype(object),
        "industry": np.where(gaps[0], None, INDUSTRIES[industry].astype(object)),
        "employees": pd.array(np.where(gaps[1], 0, employees), dtype="Int64"),
        "annual_revenue": np.where(gaps[2], np.nan, revenue),
        "country": np.where(gaps[3], None, COUNTRIES[country].astype(object)),
    })
    accounts.loc[gaps[1], "employees"] = pd.NA

    # ---- leads
    extra = rng.choice(n_acc, n - n_acc, p=popularity / popularity.sum()) if n > n_acc else []
    acc = rng.permutation(np.concatenate([np.arange(n_acc), extra]).astype(np.int32))
    created = season.inverse(rng.random(n) * season.cum[-1])
    seniority = rng.choice(len(SENIORITIES), n, p=SENIORITY_WEIGHTS / SENIORITY_WEIGHTS.sum())
    department = rng.choice(len(DEPARTMENTS), n, p=DEPARTMENT_WEIGHTS / DEPARTMENT_WEIGHTS.sum())
    source = rng.choice(len(LEAD_SOURCES), n, p=LEAD_SOURCE_WEIGHTS / LEAD_SOURCE_WEIGHTS.sum())
    free = rng.random(n) < FREE_MAIL_RATE
    free_dom = rng.choice(len(FREE_MAIL_DOMAINS), n, p=FREE_MAIL_WEIGHTS / FREE_MAIL_WEIGHTS.sum())
    sen_gap = rng.random(n) < LEAD_GAP_RATE
    dep_gap = rng.random(n) < LEAD_GAP_RATE
    logit_shift = np.full(n, hz.in_market_shift)
    if "mix" in hz.drift:
        acc, source = _mix_shift(hrng, created >= line.drift_day, acc, source, industry, popularity)
    extra_columns: dict[str, np.ndarray] = {}
    if hz.landing_pages:
        page, hot = _landing_pages(hrng, n, hz.landing_pages)
        extra_columns["landing_page"] = page
        logit_shift += np.where(hot, LANDING_HOT_SHIFT, 0.0)
    if hz.origin:
        origin = hrng.choice(len(ORIGINS), n, p=ORIGIN_WEIGHTS / ORIGIN_WEIGHTS.sum())
        extra_columns["origin"] = ORIGINS[origin].astype(object)
        logit_shift += ORIGIN_SHIFT[origin]
    if "base-rate" in hz.drift:
        logit_shift += np.where(created >= line.drift_day, hz.drift_shift, 0.0)

    # ---- latent state
    ind_l = INDUSTRIES[industry][acc]
    emp_l, rev_l = employees[acc], revenue[acc]
    matches = {
        "industry": np.isin(ind_l, list(ICP_INDUSTRIES)),
        "employees": (emp_l >= 200) & (emp_l <= 5000),
        "revenue": (rev_l >= 20e6) & (rev_l <= 1e9),
        "region": np.isin(COUNTRIES[country][acc], list(ICP_COUNTRIES)),
        "seniority": np.isin(SENIORITIES[seniority], list(ICP_SENIORITIES)),
        "department": np.isin(DEPARTMENTS[department], list(ICP_DEPARTMENTS)),
        "free_email": free,
    }
    fit = sum(FIT_WEIGHTS[k] * m for k, m in matches.items()) - FIT_CENTRE
    z = rng.standard_normal(n)
    p_in = sigmoid(IN_MARKET_A + IN_MARKET_B * fit + IN_MARKET_C * z + logit_shift)
    q = sigmoid(WIN_G + WIN_H * fit)
    in_market = rng.random(n) < p_in
    buy = np.where(in_market, created + rng.gamma(GAMMA_SHAPE, GAMMA_SCALE, n), np.nan)
    close_delay = rng.uniform(CLOSE_MIN_DAYS, CLOSE_MAX_DAYS, n)
    won = in_market & (rng.random(n) < q)
    if "late-wins" in hz.drift:
        won &= buy + close_delay >= line.wins_day
    if "win-rate" in hz.drift:
        won &= (buy + close_delay < line.drift_day) | (hrng.random(n) < hz.win_factor)
    amount = np.round(25_000 * (emp_l / 500) ** 0.3 * rng.lognormal(0, 0.5, n), 2)
    unsub_draw = ~in_market & (rng.random(n) < sigmoid(UNSUB_A + UNSUB_B * z))
    unsub_at = np.where(unsub_draw, created + rng.exponential(UNSUB_MEAN_DAYS, n), np.inf)
    unsub_at[unsub_at >= span] = np.inf

    # ---- activities
    lead_parts: list[np.ndarray] = []
    type_parts: list[np.ndarray] = []
    time_parts: list[np.ndarray] = []

    def add(idx: np.ndarray, kind: int, times: np.ndarray) -> None:
        lead_parts.append(idx.astype(np.int32))
        type_parts.append(np.full(len(idx), kind, dtype=np.int8))
        time_parts.append(times)

    # source event a few minutes after creation
    src_kind = np.full(n, -1, dtype=np.int8)
    for name, kind in SOURCE_EVENT.items():
        src_kind[LEAD_SOURCES[source] == name] = TYPE_INDEX[kind]
    src_time = created + rng.uniform(1, 10, n) / 1440.0
    keep = (src_kind >= 0) & (src_time < span)
    for kind in np.unique(src_kind[keep]):
        sel = np.flatnonzero(keep & (src_kind == kind))
        add(sel, int(kind), src_time[sel])

    # background processes over [created, end), seasonal
    c0 = season.cdf(created)
    c_len = season.cum[-1] - c0
    for name, rate in BACKGROUND_RATE.items():
        a = Z_LOADING[name]
        lam = rate * hz.activity_scale * np.exp(a * z - a * a / 2 + FIT_LOADING * fit) * c_len
        idx = np.repeat(np.arange(n, dtype=np.int32), rng.poisson(lam))
        times = season.inverse(c0[idx] + rng.random(len(idx)) * c_len[idx])
        add(idx, TYPE_INDEX[name], times)

    # intent ramp before the buying moment
    ramp_leads = np.flatnonzero(in_market & (buy - RAMP_DAYS < span))
    for name, mean in RAMP_EVENTS.items():
        counts = rng.poisson(mean * hz.activity_scale, len(ramp_leads))
        idx = np.repeat(ramp_leads, counts)
        times = buy[idx] - RAMP_DAYS * (1.0 - np.sqrt(rng.random(len(idx))))
        ok = (times > created[idx]) & (times < span)
        if "mechanics" in hz.drift and name == hz.drift_signal:
            ok &= times < line.drift_day
        add(idx[ok], TYPE_INDEX[name], times[ok])

    if "mechanics" in hz.drift:  # the signal's extra background from the drift date on
        name = hz.drift_signal
        a = Z_LOADING[name]
        c_from = season.cdf(np.maximum(created, line.drift_day))
        c_more = np.maximum(season.cum[-1] - c_from, 0.0)
        lam = ((MECHANICS_BACKGROUND_FACTOR - 1.0) * BACKGROUND_RATE[name] * hz.activity_scale
               * np.exp(a * z - a * a / 2 + FIT_LOADING * fit) * c_more)
        idx = np.repeat(np.arange(n, dtype=np.int32), hrng.poisson(lam))
        add(idx, TYPE_INDEX[name], season.inverse(c_from[idx] + hrng.random(len(idx)) * c_more[idx]))

    # unsubscribes
    sel = np.flatnonzero(np.isfinite(unsub_at))
    add(sel, TYPE_INDEX["unsubscribe"], unsub_at[sel])

    act_lead = np.concatenate(lead_parts)
    act_type = np.concatenate(type_parts)
    act_time = np.concatenate(time_parts)
    lead_parts = type_parts = time_parts = None  # the parts are concatenated: free them (closures keep the names)
    lag = np.where(rng.random(len(act_time)) < BACKFILL_RATE,
                   rng.uniform(BACKFILL_MIN_DAYS, BACKFILL_MAX_DAYS, len(act_time)), 0.0)
    rec_time = act_time + lag
    keep = rec_time < span
    is_email = (act_type == EMAIL_TYPES[0]) | (act_type == EMAIL_TYPES[1])
    keep &= ~(is_email & (act_time > unsub_at[act_lead]))
    act_lead, act_type, act_time, rec_time = (x[keep] for x in (act_lead, act_type, act_time, rec_time))
    del keep, is_email, lag

    lead_ids = make_ids("L", n, 7)
    occurred = to_timestamps(act_time, start_us)
    recorded = to_timestamps(rec_time, start_us)
    del act_time, rec_time
    activities = pd.DataFrame({
        "lead_id": pd.Categorical.from_codes(act_lead, categories=pd.Index(lead_ids, dtype=str)),
        "activity_type": pd.Categorical.from_codes(act_type, categories=pd.Index(ACTIVITY_TYPES, dtype=str)),
        "occurred_at": occurred,
        "recorded_at": recorded,
    })
    del act_lead, act_type, occurred, recorded

    # ---- leads table
    title = TITLES[seniority, department]
    leads = pd.DataFrame({
        "lead_id": lead_ids,
        "account_id": account_ids[acc],
        "created_at": to_timestamps(created, start_us),
        "title": np.where(sen_gap, None, title),
        "seniority": np.where(sen_gap, None, SENIORITIES[seniority].astype(object)),
        "department": np.where(dep_gap, None, DEPARTMENTS[department].astype(object)),
        "lead_source": LEAD_SOURCES[source].astype(object),
        "email_domain": np.where(free, FREE_MAIL_DOMAINS[free_dom].astype(object), domain[acc].astype(object)),
        **extra_columns,
    })

    # ---- opportunities
    opp = np.flatnonzero(in_market & (buy < span))
    opp = opp[np.argsort(buy[opp], kind="stable")]
    closes = buy[opp] + close_delay[opp]
    is_open = closes >= span
    stage = np.where(is_open, "open", np.where(won[opp], "closed_won", "closed_lost")).astype(object)
    opportunities = pd.DataFrame({
        "opportunity_id": make_ids("O", len(opp), 7),
        "lead_id": lead_ids[opp],
        "created_at": to_timestamps(buy[opp], start_us),
        "closed_at": to_timestamps(np.where(is_open, np.nan, closes), start_us),
        "stage": stage,
        "amount": amount[opp],
    })

    truth = pd.DataFrame({
        "lead_id": lead_ids,
        "created_at": leads["created_at"],
        "fit": fit.astype(np.float32),
        "interest": z.astype(np.float32),
        "p_in_market": p_in,
        "p_win_if_opportunity": q,
        "p_won": p_in * q,
        "in_market": in_market,
        "buy_at": to_timestamps(buy, start_us),
        "won": won,
    })
    truth.attrs["world"] = {"start": str(t_start), "end": str(line.end), **hz.model_dump()}
    frames = {"accounts": accounts, "leads": leads, "activities": activities,
              "opportunities": opportunities}
    return frames, truth




def _mix_shift(rng: np.random.Generator, post: np.ndarray, acc: np.ndarray, source: np.ndarray,
               industry: np.ndarray, popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leads created after the drift date: other sources, and accounts tilted away from the ICP industries."""
    acc, source = acc.copy(), source.copy()
    k = int(post.sum())
    source[post] = rng.choice(len(LEAD_SOURCES), k, p=MIX_SOURCE_WEIGHTS / MIX_SOURCE_WEIGHTS.sum())
    weight = popularity * np.where(np.isin(INDUSTRIES[industry], list(ICP_INDUSTRIES)), 1.0, MIX_NON_ICP_TILT)
    acc[post] = rng.choice(len(weight), k, p=weight / weight.sum())
    return acc, source


def _landing_pages(rng: np.random.Generator, n: int, pages: int) -> tuple[np.ndarray, np.ndarray]:
    """Each lead's landing page (Zipf popularity over ``pages`` names) and whether it is one that matters."""
    weight = 1.0 / np.arange(1, pages + 1)
    rank = rng.choice(pages, n, p=weight / weight.sum())
    names = np.char.add("/lp/", np.char.zfill(rng.permutation(pages).astype(str), len(str(pages - 1))))
    return names[rank].astype(object), np.isin(rank, LANDING_HOT_RANKS)
