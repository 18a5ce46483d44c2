"""A synthetic CRM world: accounts, leads, activities and opportunities drawn from a
documented generative story, plus the ground truth the story knows.

This docstring is the reference for what the synthetic data means; every constant
it names is a module-level constant below.

Time and seasonality
--------------------
Time runs over ``[start, end)`` (default 2024-01-01 to 2026-01-01, UTC); ``end`` is
the moment the export is taken. A daily *seasonality* weight multiplies every
seasonal process (lead creation and background activity):
``MONTH_FACTOR[month] * WEEKDAY_FACTOR[weekday]`` times ``LATE_DECEMBER_FACTOR``
from 20 to 31 December, normalised to mean 1 over ``[start, end)``. Hence peaks in
Q1 and autumn (September-November), dips in August, late December and weekends.
Seasonal event times are drawn exactly by inverting the cumulative seasonal weight
(equivalent to drawing uniformly in the span and thinning by the weight).

Accounts (``n_accounts = ceil(n_leads / 3)``)
----------------------------------------------
- ``industry`` from ``INDUSTRIES`` (weights ``INDUSTRY_WEIGHTS``; about 47% are
  the ICP targets software, financial_services, healthcare, manufacturing);
- ``employees`` = round(10 ** N(2.2, 0.85)) clipped to 1..100,000 (median ~160,
  about 40% inside the ICP band 200-5000);
- ``annual_revenue`` = employees x revenue-per-employee, the latter log-normal
  around $180k (sigma 0.6), so revenue is strongly correlated with size;
- ``country`` (ISO-2) from ``COUNTRIES`` (about 60% in the ICP regions);
- ``company_name``, ``domain`` always present.
Enrichment gaps: each of industry, employees, annual_revenue, country is hidden
(missing in the export) independently with probability ``GAP_RATE`` = 15%. The
story always uses the true values.

Leads
-----
Every account gets one lead, the remaining ``n_leads - n_accounts`` are spread over
accounts with log-normal popularity (so ~3 leads per account, some with many).
``created_at`` is seasonal over ``[start, end)``. ``seniority`` (c_level, vp,
director, manager, individual_contributor) and ``department`` (sales, marketing,
revenue_operations, it, finance, hr, operations, engineering) are drawn
independently; each is missing in the export with probability ``LEAD_GAP_RATE``
(10%), and ``title`` (derived from both) is missing when seniority is.
``lead_source`` from web_form, paid_search, organic, tradeshow, referral,
list_purchase, webinar. ``email_domain`` is a free-mail domain of ``icp.yaml`` with
probability ``FREE_MAIL_RATE`` = 20%, otherwise the account's domain.

Latent state (per lead; see the ground truth)
---------------------------------------------
1. Fit ``f = sum_k FIT_WEIGHTS[k] * match_k - FIT_CENTRE`` over the ICP criteria of
   ``icp.yaml`` evaluated on the TRUE values: industry (+1.0), employees in
   200-5000 (+0.8), revenue in $20M-$1B (+0.4), region (+0.5), seniority in
   c_level/vp/director (+0.8), department in sales/marketing/revenue_operations
   (+0.7), free-mail address (-0.8). ``FIT_CENTRE`` makes the population mean ~0
   (f ranges -2.5..+2.5, sd ~1.0).
2. Interest ``z ~ N(0, 1)``. The lead is *in market* with probability
   ``p_in_market = sigmoid(IN_MARKET_A + IN_MARKET_B * f + IN_MARKET_C * z)``
   = sigmoid(-2.7 + 0.9 f + 1.0 z) (population mean ~0.11). If in market, its
   buying moment is ``O = created_at + Gamma(GAMMA_SHAPE=2, GAMMA_SCALE=45)`` days
   (mean 90 days). ``O >= end`` means no opportunity is seen in the export.
3. Activities (``activity_type``, ``occurred_at``, ``recorded_at``):
   - one *source event* a few minutes after creation depending on the lead source
     (web_form -> whitepaper_download, paid_search/organic -> web_visit,
     tradeshow -> tradeshow_visit, webinar -> webinar_attended; none for referral
     and list_purchase);
   - *background* Poisson processes per type over the lead's life
     ``[created_at, end)``, with seasonal intensity
     ``BACKGROUND_RATE[type] * exp(Z_LOADING[type] * z - Z_LOADING^2/2 + FIT_LOADING * f)``
     per day (the ``-Z_LOADING^2/2`` keeps the mean rate at ``BACKGROUND_RATE``):
     email_open is the most common (0.07/day), demo_request (0.0003/day) and
     survey_completed (0.0007/day) the rarest;
   - an *intent ramp* for in-market leads in ``[O - RAMP_DAYS, O)`` (45 days), a
     triangular density rising towards O, with ``RAMP_EVENTS[type]`` expected extra
     events: pricing_page_visit 3, web_visit 4, demo_request 0.8,
     survey_completed 0.8, webinar_attended 0.6, email_click 1.0, whitepaper 0.3.
     Relative to its background a survey is thus a far stronger signal than a
     whitepaper download. Ramp events before created_at or at/after end are dropped;
   - *unsubscribes*: a not-in-market lead unsubscribes with probability
     ``sigmoid(UNSUB_A + UNSUB_B * z)`` (~20%) at ``created_at + Exp(UNSUB_MEAN_DAYS=150)``
     (if before end); it then gets no more email_open / email_click events;
   - ``recorded_at = occurred_at`` except for ``BACKFILL_RATE`` = 5% of events,
     recorded 1-30 days later (uniform). Events not yet recorded at ``end`` are not
     in the export. On average ~45 events per lead over its life.
4. At O an opportunity is created (``opportunity_id``, ``created_at = O``). It
   closes at ``O + U(CLOSE_MIN_DAYS=7, CLOSE_MAX_DAYS=60)`` days, won with
   probability ``q = sigmoid(WIN_G + WIN_H * f)`` = sigmoid(-0.9 + 0.8 f) (~31%),
   else lost; if the close falls at/after end the stage is ``open`` and
   ``closed_at`` is NaT. ``amount`` = 25k x (employees/500)^0.3 x LogNormal(0, 0.5).
   At most one opportunity per lead.
5. Rates with the default span (measured on 100k leads, seed 0): 11.0% of leads
   are in market, 9.8% get an opportunity in the export, 3.8% of leads close won
   by ``end`` (4.6% would ever close won), 45 events per lead (4.5M events). 1M
   leads: 3.9% closed won, 45M events (time and memory to generate them:
   ``docs/scaling.md``).
   The oracle :func:`true_probability` on monthly cutoffs (90-day horizon, open
   leads up to 365 days old) has AUC ~0.90 and matches observed win rates per
   decile.

Ground truth (one row per lead; the pipeline never reads it)
------------------------------------------------------------
``lead_id, created_at, fit, interest, p_in_market, p_win_if_opportunity (q),
p_won (= p_in_market * q: the probability the lead ever closes won, ignoring the
end of the data), in_market, buy_at (O, NaT if not in market), won`` (whether the
story's opportunity closes won, observed or not). :func:`true_probability`
turns it into the oracle probability of winning within a horizon after a cutoff.

Everything is deterministic per seed (``numpy.random.default_rng(seed)``) and
vectorised (no Python loop over leads; loops only over activity types) and uses
int32/int8/float32 where possible. In ``activities``, ``lead_id`` and
``activity_type`` are pandas categoricals of strings (memory); rows are not sorted.

Why this module is long: over 500 lines, a fifth of them this description: one generative model, read top
to bottom (vocabularies, the story, the oracle, the files); split, the story would
scatter over modules that mean nothing on their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from propensity.core.output import check_folder_output, staged_folder
from propensity.core.times import DAY_US, stamp_us

__all__ = ["ACTIVITY_TYPES", "generate_world", "is_world_folder", "true_probability", "write_tables", "write_world"]

# ------------------------------------------------------------------ vocabularies

INDUSTRIES = np.array([
    "software", "financial_services", "healthcare", "manufacturing", "retail", "education",
    "government", "media", "logistics", "construction", "professional_services", "energy",
    "hospitality",
])
INDUSTRY_WEIGHTS = np.array([14, 10, 10, 13, 10, 7, 5, 6, 6, 6, 8, 3, 2], dtype=float)
ICP_INDUSTRIES = {"software", "financial_services", "healthcare", "manufacturing"}

COUNTRIES = np.array([
    "US", "CA", "GB", "DE", "FR", "NL", "SE", "AU",  # ICP regions
    "IN", "BR", "JP", "ES", "IT", "MX", "SG", "PL", "ZA", "IE", "CH", "AE",
])
COUNTRY_WEIGHTS = np.array([33, 4, 8, 6, 4, 2, 1.5, 2.5, 8, 5, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2.0])
ICP_COUNTRIES = {"US", "CA", "GB", "DE", "FR", "NL", "SE", "AU"}

SENIORITIES = np.array(["c_level", "vp", "director", "manager", "individual_contributor"])
SENIORITY_WEIGHTS = np.array([6, 10, 18, 28, 38], dtype=float)
ICP_SENIORITIES = {"c_level", "vp", "director"}

DEPARTMENTS = np.array(["sales", "marketing", "revenue_operations", "it", "finance", "hr",
                        "operations", "engineering"])
DEPARTMENT_WEIGHTS = np.array([18, 20, 6, 14, 10, 6, 12, 14], dtype=float)
ICP_DEPARTMENTS = {"sales", "marketing", "revenue_operations"}
_DEPT_NAME = ["Sales", "Marketing", "Revenue Operations", "IT", "Finance", "HR", "Operations",
              "Engineering"]
_C_TITLES = ["Chief Sales Officer", "Chief Marketing Officer", "Chief Revenue Officer",
             "Chief Information Officer", "Chief Financial Officer", "Chief People Officer",
             "Chief Operating Officer", "Chief Technology Officer"]
_IC_TITLES = ["Account Executive", "Marketing Specialist", "Revenue Operations Analyst",
              "Systems Administrator", "Financial Analyst", "HR Generalist", "Operations Analyst",
              "Software Engineer"]
TITLES = np.array([
    _C_TITLES,
    [f"VP {d}" for d in _DEPT_NAME],
    [f"Director of {d}" for d in _DEPT_NAME],
    [f"{d} Manager" for d in _DEPT_NAME],
    _IC_TITLES,
], dtype=object)

LEAD_SOURCES = np.array(["web_form", "paid_search", "organic", "tradeshow", "referral",
                         "list_purchase", "webinar"])
LEAD_SOURCE_WEIGHTS = np.array([25, 15, 15, 10, 8, 15, 12], dtype=float)

FREE_MAIL_DOMAINS = np.array(["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com",
                              "icloud.com", "gmx.de", "web.de", "mail.ru", "qq.com"])
FREE_MAIL_WEIGHTS = np.array([40, 12, 10, 14, 3, 6, 4, 4, 3, 4], dtype=float)

ACTIVITY_TYPES = np.array([
    "email_open", "email_click", "web_visit", "pricing_page_visit", "whitepaper_download",
    "webinar_attended", "tradeshow_visit", "survey_completed", "demo_request", "unsubscribe",
])
_T = {name: i for i, name in enumerate(ACTIVITY_TYPES)}
EMAIL_TYPES = (_T["email_open"], _T["email_click"])

_NAME_HEADS = np.array(["Acme", "Nova", "Blue", "Green", "North", "Silver", "Bright", "Apex",
                        "Summit", "Vertex", "Orion", "Pioneer", "Atlas", "Cobalt", "Harbor",
                        "Iron", "Lumen", "Maple", "Quantum", "River", "Stellar", "Terra",
                        "Union", "Vista"])
_NAME_TAILS = np.array(["soft", "tech", "works", "logic", "data", "line", "point", "wave",
                        "field", "stone", "bridge", "path", "core", "labs", "gate", "scale"])
_NAME_SUFFIX = np.array(["Inc", "Ltd", "GmbH", "LLC", "Group", "SA", "Corp", "Holdings"])
_TLDS = np.array(["com", "com", "com", "io", "co", "net"])

# --------------------------------------------------------------------- constants

MONTH_FACTOR = np.array([1.15, 1.15, 1.2, 1.0, 1.0, 0.95, 0.85, 0.6, 1.1, 1.2, 1.1, 0.85])
WEEKDAY_FACTOR = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.3, 0.25])  # Monday .. Sunday
LATE_DECEMBER_FACTOR = 0.4  # 20-31 December

GAP_RATE = 0.15       # firmographic enrichment gaps, per column
LEAD_GAP_RATE = 0.10  # seniority / department unknown
FREE_MAIL_RATE = 0.20

FIT_WEIGHTS = {"industry": 1.0, "employees": 0.8, "revenue": 0.4, "region": 0.5,
               "seniority": 0.8, "department": 0.7, "free_email": -0.8}
FIT_CENTRE = 1.72  # ~ population mean of the weighted matches

IN_MARKET_A, IN_MARKET_B, IN_MARKET_C = -2.7, 0.9, 1.0
GAMMA_SHAPE, GAMMA_SCALE = 2.0, 45.0  # days from creation to the buying moment
WIN_G, WIN_H = -0.9, 0.8
CLOSE_MIN_DAYS, CLOSE_MAX_DAYS = 7.0, 60.0

BACKGROUND_RATE = {  # events per day at mean seasonality, z = 0, f = 0
    "email_open": 0.07, "email_click": 0.015, "web_visit": 0.03, "pricing_page_visit": 0.003,
    "whitepaper_download": 0.004, "webinar_attended": 0.002, "tradeshow_visit": 0.001,
    "survey_completed": 0.0007, "demo_request": 0.0003,
}
Z_LOADING = {
    "email_open": 0.4, "email_click": 0.6, "web_visit": 0.6, "pricing_page_visit": 0.8,
    "whitepaper_download": 0.5, "webinar_attended": 0.6, "tradeshow_visit": 0.3,
    "survey_completed": 0.8, "demo_request": 0.8,
}
FIT_LOADING = 0.15
RAMP_DAYS = 45.0
RAMP_EVENTS = {  # expected extra events in the ramp before the buying moment
    "pricing_page_visit": 3.0, "web_visit": 4.0, "demo_request": 0.8, "survey_completed": 0.8,
    "webinar_attended": 0.6, "email_click": 1.0, "whitepaper_download": 0.3,
}
SOURCE_EVENT = {"web_form": "whitepaper_download", "paid_search": "web_visit",
                "organic": "web_visit", "tradeshow": "tradeshow_visit",
                "webinar": "webinar_attended"}
UNSUB_A, UNSUB_B, UNSUB_MEAN_DAYS = -1.3, -0.7, 150.0
BACKFILL_RATE, BACKFILL_MIN_DAYS, BACKFILL_MAX_DAYS = 0.05, 1.0, 30.0

_TABLE_NAMES = ("accounts", "leads", "activities", "opportunities")
_WORLD_FILES = {f"{t}.{ext}" for t in _TABLE_NAMES for ext in ("parquet", "csv")} | {
    "ground_truth.parquet"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)


def _to_timestamps(days: np.ndarray, start_us: int) -> pd.Series:
    """Float days since start (NaN -> NaT) as a datetime64[us, UTC] Series."""
    days = np.asarray(days, dtype=np.float64)
    nat = np.isnan(days)
    us = np.rint(np.where(nat, 0.0, days) * DAY_US).astype(np.int64) + start_us
    us[nat] = np.iinfo(np.int64).min  # NaT
    return pd.Series(us.view("M8[us]")).dt.tz_localize("UTC")


class _Season:
    """Piecewise-constant daily seasonal weight over [0, span) days, mean 1."""

    def __init__(self, start: pd.Timestamp, span_days: float):
        n_days = int(np.ceil(span_days))
        days = pd.date_range(start.normalize(), periods=n_days + 1, freq="D")[:n_days]
        w = MONTH_FACTOR[days.month - 1] * WEEKDAY_FACTOR[days.day_of_week]
        w = np.where((days.month == 12) & (days.day >= 20), w * LATE_DECEMBER_FACTOR, w)
        edges = np.minimum(np.arange(n_days + 1, dtype=np.float64), span_days)
        widths = np.diff(edges)
        w = w / (np.sum(w * widths) / span_days)
        self.edges = edges
        self.cum = np.concatenate([[0.0], np.cumsum(w * widths)])

    def cdf(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.edges, self.cum)

    def inverse(self, c: np.ndarray) -> np.ndarray:
        return np.interp(c, self.cum, self.edges)


# --------------------------------------------------------------------- generator


def generate_world(
    n_leads: int, seed: int = 0, start: str = "2024-01-01", end: str = "2026-01-01"
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Draw a synthetic CRM world (see the module docstring for the story).

    Returns ``({"accounts", "leads", "activities", "opportunities"}, ground_truth)``.
    """
    if n_leads < 1:
        raise ValueError(f"n_leads must be at least 1, got {n_leads}")
    t_start, t_end = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    if t_end <= t_start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    span = (t_end - t_start) / pd.Timedelta(days=1)
    start_us = stamp_us(t_start)
    rng = np.random.default_rng(seed)
    season = _Season(t_start, span)
    n = int(n_leads)
    n_acc = int(np.ceil(n / 3))

    # ---- accounts (true values)
    industry = rng.choice(len(INDUSTRIES), n_acc, p=INDUSTRY_WEIGHTS / INDUSTRY_WEIGHTS.sum())
    employees = np.clip(np.rint(10 ** rng.normal(2.2, 0.85, n_acc)), 1, 100_000).astype(np.int64)
    revenue = np.round(employees * np.exp(rng.normal(np.log(180_000), 0.6, n_acc)), -3)
    country = rng.choice(len(COUNTRIES), n_acc, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
    head = rng.integers(0, len(_NAME_HEADS), n_acc)
    tail = rng.integers(0, len(_NAME_TAILS), n_acc)
    suffix = rng.integers(0, len(_NAME_SUFFIX), n_acc)
    tld = rng.integers(0, len(_TLDS), n_acc)
    gaps = rng.random((4, n_acc)) < GAP_RATE
    popularity = rng.lognormal(0.0, 0.8, n_acc)

    stem = np.char.add(_NAME_HEADS[head], _NAME_TAILS[tail])
    acc_num = np.arange(1, n_acc + 1).astype(str)
    domain = np.char.add(np.char.add(np.char.add(np.char.lower(stem), acc_num), "."), _TLDS[tld])
    account_ids = _ids("A", n_acc, 6)
    accounts = pd.DataFrame({
        "account_id": account_ids,
        "company_name": np.char.add(np.char.add(stem, " "), _NAME_SUFFIX[suffix]).astype(object),
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
    p_in = _sigmoid(IN_MARKET_A + IN_MARKET_B * fit + IN_MARKET_C * z)
    q = _sigmoid(WIN_G + WIN_H * fit)
    in_market = rng.random(n) < p_in
    buy = np.where(in_market, created + rng.gamma(GAMMA_SHAPE, GAMMA_SCALE, n), np.nan)
    close_delay = rng.uniform(CLOSE_MIN_DAYS, CLOSE_MAX_DAYS, n)
    won = in_market & (rng.random(n) < q)
    amount = np.round(25_000 * (emp_l / 500) ** 0.3 * rng.lognormal(0, 0.5, n), 2)
    unsub_draw = ~in_market & (rng.random(n) < _sigmoid(UNSUB_A + UNSUB_B * z))
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
        src_kind[LEAD_SOURCES[source] == name] = _T[kind]
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
        lam = rate * np.exp(a * z - a * a / 2 + FIT_LOADING * fit) * c_len
        idx = np.repeat(np.arange(n, dtype=np.int32), rng.poisson(lam))
        times = season.inverse(c0[idx] + rng.random(len(idx)) * c_len[idx])
        add(idx, _T[name], times)

    # intent ramp before the buying moment
    ramp_leads = np.flatnonzero(in_market & (buy - RAMP_DAYS < span))
    for name, mean in RAMP_EVENTS.items():
        counts = rng.poisson(mean, len(ramp_leads))
        idx = np.repeat(ramp_leads, counts)
        times = buy[idx] - RAMP_DAYS * (1.0 - np.sqrt(rng.random(len(idx))))
        ok = (times > created[idx]) & (times < span)
        add(idx[ok], _T[name], times[ok])

    # unsubscribes
    sel = np.flatnonzero(np.isfinite(unsub_at))
    add(sel, _T["unsubscribe"], unsub_at[sel])

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

    lead_ids = _ids("L", n, 7)
    occurred = _to_timestamps(act_time, start_us)
    recorded = _to_timestamps(rec_time, start_us)
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
        "created_at": _to_timestamps(created, start_us),
        "title": np.where(sen_gap, None, title),
        "seniority": np.where(sen_gap, None, SENIORITIES[seniority].astype(object)),
        "department": np.where(dep_gap, None, DEPARTMENTS[department].astype(object)),
        "lead_source": LEAD_SOURCES[source].astype(object),
        "email_domain": np.where(free, FREE_MAIL_DOMAINS[free_dom].astype(object), domain[acc].astype(object)),
    })

    # ---- opportunities
    opp = np.flatnonzero(in_market & (buy < span))
    opp = opp[np.argsort(buy[opp], kind="stable")]
    closes = buy[opp] + close_delay[opp]
    is_open = closes >= span
    stage = np.where(is_open, "open", np.where(won[opp], "closed_won", "closed_lost")).astype(object)
    opportunities = pd.DataFrame({
        "opportunity_id": _ids("O", len(opp), 7),
        "lead_id": lead_ids[opp],
        "created_at": _to_timestamps(buy[opp], start_us),
        "closed_at": _to_timestamps(np.where(is_open, np.nan, closes), start_us),
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
        "buy_at": _to_timestamps(buy, start_us),
        "won": won,
    })
    frames = {"accounts": accounts, "leads": leads, "activities": activities,
              "opportunities": opportunities}
    return frames, truth


# ------------------------------------------------------------------------ oracle


def _gamma_cdf_integral(y: np.ndarray) -> np.ndarray:
    """Psi(y) = integral_0^y F(x) dx for the Gamma(GAMMA_SHAPE, GAMMA_SCALE) CDF F."""
    y = np.maximum(y, 0.0)
    k, th = GAMMA_SHAPE, GAMMA_SCALE
    return y * stats.gamma.cdf(y, k, scale=th) - k * th * stats.gamma.cdf(y, k + 1, scale=th)


def true_probability(ground_truth: pd.DataFrame, cutoffs: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """The oracle probability of winning within the horizon, for rows (lead_id, cutoff).

    For each row, the probability under the generative story, knowing the lead's
    latent state (``p_in_market``, ``p_win_if_opportunity``, ``created_at``), that
    the lead has an opportunity closing won in ``[cutoff, cutoff + horizon)``, given
    that it had no opportunity before the cutoff:

        p q E_D[(G(s + h - D) - G(s))^+] / (1 - p G(s)),

    with ``s`` the lead's age in days at the cutoff, ``G`` the Gamma CDF of the time
    to the buying moment and ``D ~ U(7, 60)`` the close delay. The expectation over
    ``D`` is computed exactly via the integrated Gamma CDF (no grid error).
    ``cutoffs`` needs columns ``lead_id`` and ``cutoff`` (UTC timestamps).
    """
    gt = ground_truth.reset_index(drop=True)
    pos = pd.Index(gt["lead_id"].astype(str)).get_indexer(cutoffs["lead_id"].astype(str))
    if (pos < 0).any():
        bad = cutoffs["lead_id"][pos < 0].head(3).tolist()
        raise ValueError(f"true_probability: lead_id(s) not in the ground truth, e.g. {bad}")
    created = pd.to_datetime(gt["created_at"], utc=True).to_numpy("datetime64[us]")[pos]
    cut = pd.to_datetime(cutoffs["cutoff"], utc=True).to_numpy("datetime64[us]")
    s = (cut - created).astype(np.int64) / DAY_US
    p = gt["p_in_market"].to_numpy(np.float64)[pos]
    q = gt["p_win_if_opportunity"].to_numpy(np.float64)[pos]
    h = float(horizon_days)
    m = min(CLOSE_MAX_DAYS, h)
    if m <= CLOSE_MIN_DAYS:
        return np.zeros(len(cutoffs))
    g_s = stats.gamma.cdf(np.maximum(s, 0.0), GAMMA_SHAPE, scale=GAMMA_SCALE)
    width = CLOSE_MAX_DAYS - CLOSE_MIN_DAYS
    window = (_gamma_cdf_integral(s + h - CLOSE_MIN_DAYS) - _gamma_cdf_integral(s + h - m)
              - (m - CLOSE_MIN_DAYS) * g_s) / width
    prob = p * q * np.maximum(window, 0.0) / (1.0 - p * g_s)
    return np.clip(prob, 0.0, 1.0)


# ------------------------------------------------------------------------ writer


def is_world_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a world :func:`write_world` wrote (its tables and ground truth, nothing else)."""
    try:
        entries = {p.name for p in Path(path).iterdir()}
    except OSError:
        return False
    return "ground_truth.parquet" in entries and entries <= _WORLD_FILES


def write_world(out: str | Path, n_leads: int, seed: int = 0, fmt: str = "parquet", force: bool = False,
                **kw) -> Path:
    """Generate a world and write it as ``OUT/<table>.<fmt>`` plus ``OUT/ground_truth.parquet``.

    ``fmt`` is ``parquet`` or ``csv``; ``kw`` goes to :func:`generate_world`
    (``start``, ``end``). A folder holding a previous world is replaced, atomically; any
    other non-empty folder or a file is refused with a ``ValueError`` unless ``force``.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"write_world: fmt must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(out)
    check_folder_output(out, owned=is_world_folder, force=force,
                        hint="choose an empty or new folder (or force=True / --force to replace it)")
    frames, truth = generate_world(n_leads, seed=seed, **kw)
    with staged_folder(out) as tmp:  # a previous world, possibly in the other format, is replaced whole
        write_tables(tmp, frames, fmt)
        truth.to_parquet(tmp / "ground_truth.parquet", index=False)
    return out


def write_tables(folder: str | Path, tables: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    """Write export tables as ``NAME.parquet`` or ``NAME.csv`` (UTC ISO-8601 times) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return folder
