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
   On monthly cutoffs (90-day horizon, open leads up to 365 days old; 20k leads,
   seed 11) the oracle has ROC AUC 0.956 and matches observed win rates per
   decile; the latents' prior alone (:func:`true_probability`) has 0.911.

Hazards (options; see :class:`~propensity.data.synthetic.hazards.Hazards`)
---------------------------------------------------------------------------
Without any option the world is the one above, draw for draw. Each option changes
the story as follows (its extra random draws come from a second generator seeded by
``(seed, HAZARD_STREAM)``, so the default world's draws are untouched):

- ``drift=("base-rate",)``: leads created at or after ``drift_at`` (default: the
  span's middle day) get ``drift_shift`` (default +1.0) added to the log-odds of
  being in market: the conversion base rate rises (a negative shift: falls).
- ``drift=("mechanics",)``: from ``drift_at`` on, ``drift_signal`` (default
  pricing_page_visit) stops meaning intent: its ramp events at or after the date
  are gone and its background rate is multiplied by ``MECHANICS_BACKGROUND_FACTOR``
  (x2: the page is now linked from everywhere), so its volume rises while it no
  longer predicts a buying moment.
- ``drift=("mix",)``: leads created at or after ``drift_at`` come from other
  sources (``MIX_SOURCE_WEIGHTS``: list purchases and paid search up) and other
  accounts (account popularity times ``MIX_NON_ICP_TILT`` for accounts outside the
  ICP industries), so the industry mix, hence fit and the base rate, shift too.
- ``drift=("late-wins",)``: no deal closes won before ``wins_from`` (default: six
  months after ``start``); a deal that would have been won and closes earlier is
  lost. Conversions start months into the data (the real funnel of a new CRM).
- ``drift=("win-rate",)``: from ``drift_at`` on, a deal that closes is won with
  ``win_factor`` (default 0.4) times its probability: every lead's conversion rate
  falls at a date, old leads and new alike (a market turning, a competitor's launch).
- ``landing_pages=N`` (N >= 10): a lead column ``landing_page`` with N values of
  Zipf popularity (weight 1/rank); the pages of ``LANDING_HOT_RANKS`` (the 5th,
  13th and 31st most popular) add ``LANDING_HOT_SHIFT`` (+1.5) to the in-market
  log-odds; all other pages are noise.
- ``origin=True``: a lead column ``origin`` (``ORIGINS``: inbound, outbound,
  partner, event) that shifts the in-market log-odds by ``ORIGIN_SHIFT``.
- ``activity_scale=s``: every background rate and every ramp's expected event
  count is multiplied by ``s`` (source events and unsubscribes are not): ``0.01``
  leaves ~1.4 events per lead (~0.8 of them the source event), sparse activity.
- ``in_market_shift=x``: ``x`` added to every lead's in-market log-odds. Small
  worlds: ``--leads 2000 --in-market-shift 0.3`` gives ~100 leads closed won by
  the end of the export (97 on average over seeds 0-9; docs/synthetic.md).

Ground truth (one row per lead; the pipeline never reads it)
------------------------------------------------------------
``lead_id, created_at, fit, interest, p_in_market, p_win_if_opportunity (q),
p_won (= p_in_market * q: the probability the lead ever closes won, ignoring the
end of the data and ``wins_from``), in_market, buy_at (O, NaT if not in market),
won`` (whether the story's opportunity closes won, observed or not). The world's
options (``start``, ``end`` and the hazards) are kept in the frame's ``attrs``
(``attrs["world"]``; written into ``ground_truth.parquet``'s metadata), so the
oracle reads the story the world was drawn from.

The oracle
----------
:func:`~propensity.data.synthetic.oracle.oracle_probability` gives, for every
(lead, cutoff) snapshot, the true probability of closing won within the horizon
given everything the story knows at the cutoff: the latents and the events
observable then (derivation in :mod:`propensity.data.synthetic.oracle`).
:func:`~propensity.data.synthetic.oracle.true_probability` ignores the events: the
prior from the latents alone, a weaker predictor a model can beat.

Everything is deterministic per seed (``numpy.random.default_rng(seed)``) and
vectorised (no Python loop over leads; loops only over activity types) and uses
int32/int8/float32 where possible. In ``activities``, ``lead_id`` and
``activity_type`` are pandas categoricals of strings (memory); rows are not sorted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.core.times import DAY_US

__all__ = ["ACTIVITY_TYPES", "Season", "make_ids", "sigmoid", "to_timestamps"]

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
TYPE_INDEX = {name: i for i, name in enumerate(ACTIVITY_TYPES)}
EMAIL_TYPES = (TYPE_INDEX["email_open"], TYPE_INDEX["email_click"])

NAME_HEADS = np.array(["Acme", "Nova", "Blue", "Green", "North", "Silver", "Bright", "Apex",
                        "Summit", "Vertex", "Orion", "Pioneer", "Atlas", "Cobalt", "Harbor",
                        "Iron", "Lumen", "Maple", "Quantum", "River", "Stellar", "Terra",
                        "Union", "Vista"])
NAME_TAILS = np.array(["soft", "tech", "works", "logic", "data", "line", "point", "wave",
                        "field", "stone", "bridge", "path", "core", "labs", "gate", "scale"])
NAME_SUFFIX = np.array(["Inc", "Ltd", "GmbH", "LLC", "Group", "SA", "Corp", "Holdings"])
TLDS = np.array(["com", "com", "com", "io", "co", "net"])

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


# ------------------------------------------------------------------ hazards

HAZARD_STREAM = 14  # the hazards' generator is seeded by (seed, HAZARD_STREAM)
MECHANICS_BACKGROUND_FACTOR = 2.0
MIX_SOURCE_WEIGHTS = np.array([15, 25, 8, 5, 4, 35, 8], dtype=float)  # order of LEAD_SOURCES
MIX_NON_ICP_TILT = 3.0
LANDING_HOT_RANKS = (4, 12, 30)  # 0-based popularity ranks of the pages that matter
LANDING_HOT_SHIFT = 1.5
ORIGINS = np.array(["inbound", "outbound", "partner", "event"])
ORIGIN_WEIGHTS = np.array([45, 30, 10, 15], dtype=float)
ORIGIN_SHIFT = np.array([0.3, -0.6, 0.6, 0.0])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)


def to_timestamps(days: np.ndarray, start_us: int) -> pd.Series:
    """Float days since start (NaN -> NaT) as a datetime64[us, UTC] Series."""
    days = np.asarray(days, dtype=np.float64)
    nat = np.isnan(days)
    us = np.rint(np.where(nat, 0.0, days) * DAY_US).astype(np.int64) + start_us
    us[nat] = np.iinfo(np.int64).min  # NaT
    return pd.Series(us.view("M8[us]")).dt.tz_localize("UTC")


class Season:
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


