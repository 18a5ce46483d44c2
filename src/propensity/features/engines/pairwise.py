"""The pairwise engagement engine: every (row, event) pair of a lead, in NumPy.

Every (row, event) pair of a lead is expanded, filtered by the time contract (an
event counts only if it occurred *and* was recorded strictly before the cutoff; see
:func:`propensity.features.pipeline.build_features` for the definitions) and
aggregated with ``bincount``. Memory grows with rows x events per lead. It is the
plainest engine: :class:`~propensity.features.onelead.OneLead` equals it bit for
bit, and the tests compare every other engine with it.

Fastest for: few leads (fewer than ``engines.MIN_LEADS``), e.g. a batch of a few
leads scored on demand: 3.1-5.7x faster than the runner-up for 1 to 1,999 leads at
one cutoff, 1.4-1.5x for 1,999 leads at 14 cutoffs (the 200k-lead world,
``benchmarks/engines.py``, 2026-12-05; ``docs/scaling.md``, "The engines").
"""

from __future__ import annotations

import numpy as np

from propensity.config import EngagementConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.features.engines.events import Events

__all__ = ["engagement_pairwise"]


def engagement_pairwise(row_lead: np.ndarray, row_t: np.ndarray, events: Events,
                        engagement: EngagementConfig) -> dict[str, np.ndarray]:
    """Engagement features per row, in spec order (without ``lead_age_days``).

    ``row_lead`` indexes the distinct leads (as ``events.lead`` does) and ``row_t``
    is each row's cutoff in µs. Returns float64 arrays keyed by feature name.
    """
    n = len(row_lead)
    order = np.lexsort((events.occ, events.lead))
    ev_lead = events.lead[order]
    occ, rec, code, day = events.occ[order], events.rec[order], events.code[order], events.day[order]

    # Expand every row to the events of its lead (a join on lead, in NumPy).
    starts = np.searchsorted(ev_lead, row_lead, side="left")
    lens = np.searchsorted(ev_lead, row_lead, side="right") - starts
    pair_row = np.repeat(np.arange(n), lens)
    offsets = np.cumsum(lens) - lens
    pair_ev = np.arange(len(pair_row)) - np.repeat(offsets - starts, lens)
    t = row_t[pair_row]
    ok = (occ[pair_ev] < t) & (rec[pair_ev] < t)
    pair_row, pair_ev = pair_row[ok], pair_ev[ok]
    age = t[ok] - occ[pair_ev]  # > 0 µs; rows ascending, age descending within a row
    age_days = age / DAY_US
    pair_code = code[pair_ev]

    windows = engagement.windows_days
    out: dict[str, np.ndarray] = {}
    for s_idx, s in enumerate(engagement.signals):
        m = events.member[s_idx][pair_code] if len(pair_code) else np.zeros(0, dtype=bool)
        rows_m, age_m = pair_row[m], age[m]
        for w in windows:
            in_window = rows_m[age_m <= w * DAY_US]
            out[names.events_in_window(s.name, w)] = np.bincount(in_window, minlength=n).astype(np.float64)
        out[names.days_since(s.name)] = _latest_days(rows_m, age_m, n)
        out[names.decay(s.name)] = np.bincount(rows_m, weights=0.5 ** (age_days[m] / s.half_life_days),
                                                 minlength=n).astype(np.float64)
    longest = max(windows)
    in_w = age <= longest * DAY_US
    rows_w, days_w = pair_row[in_w], day[pair_ev[in_w]]
    # Within a row the days are non-decreasing, so each change starts a new distinct day.
    new = np.ones(len(rows_w), dtype=bool)
    if len(rows_w) > 1:
        new[1:] = (rows_w[1:] != rows_w[:-1]) | (days_w[1:] != days_w[:-1])
    out[names.active_days(longest)] = np.bincount(rows_w[new], minlength=n).astype(np.float64)
    out[names.DAYS_SINCE_ANY] = _latest_days(pair_row, age, n)
    return out


def _latest_days(rows: np.ndarray, age: np.ndarray, n: int) -> np.ndarray:
    """Days since the latest event per row: the last pair of each row has the smallest age."""
    result = np.full(n, np.nan)
    if len(rows):
        last = np.flatnonzero(np.r_[rows[1:] != rows[:-1], True])
        result[rows[last]] = age[last] / DAY_US
    return result
