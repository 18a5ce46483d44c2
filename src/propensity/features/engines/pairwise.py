"""The in-memory engagement engine: NumPy only, for one lead or a few.

Used by :func:`propensity.features.pipeline.build_features` for small requests
(scoring a lead on demand) so that no database is started. It computes the same
engagement values as the batch engines; see ``pipeline.py`` for the definitions
and the time contract (an event counts only if it occurred *and* was recorded
strictly before the cutoff).

Every (row, event) pair of a lead is expanded in NumPy, filtered by the time
contract and aggregated with ``bincount``; memory grows with rows x events per
lead, which is why large batches go to the running-totals engine (``running.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.config import EngagementConfig

__all__ = ["DAY_US", "Events", "engagement_memory"]

DAY_US = 86_400_000_000  # microseconds in a day; every time is int64 µs since the epoch


@dataclass(frozen=True)
class Events:
    """The activities of the requested leads, as arrays.

    ``lead`` indexes the engine's list of distinct leads; ``code`` indexes
    ``types`` (the distinct activity types seen); ``member[s, code]`` says whether
    type ``code`` belongs to signal ``s``. Times are int64 µs since the epoch;
    ``day`` is the UTC calendar day number of ``occurred_at``.
    """

    lead: np.ndarray
    occ: np.ndarray
    rec: np.ndarray
    code: np.ndarray
    day: np.ndarray
    types: np.ndarray
    member: np.ndarray


def engagement_memory(row_lead: np.ndarray, row_t: np.ndarray, events: Events,
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
            out[f"eng_{s.name}_{w}d"] = np.bincount(rows_m[age_m <= w * DAY_US], minlength=n).astype(np.float64)
        out[f"eng_{s.name}_days_since"] = _latest_days(rows_m, age_m, n)
        out[f"eng_{s.name}_decay"] = np.bincount(rows_m, weights=0.5 ** (age_days[m] / s.half_life_days),
                                                 minlength=n).astype(np.float64)
    longest = max(windows)
    in_w = age <= longest * DAY_US
    rows_w, days_w = pair_row[in_w], day[pair_ev[in_w]]
    # Within a row the days are non-decreasing, so each change starts a new distinct day.
    new = np.ones(len(rows_w), dtype=bool)
    if len(rows_w) > 1:
        new[1:] = (rows_w[1:] != rows_w[:-1]) | (days_w[1:] != days_w[:-1])
    out[f"eng_active_days_{longest}d"] = np.bincount(rows_w[new], minlength=n).astype(np.float64)
    out["eng_days_since_any"] = _latest_days(pair_row, age, n)
    return out


def _latest_days(rows: np.ndarray, age: np.ndarray, n: int) -> np.ndarray:
    """Days since the latest event per row: the last pair of each row has the smallest age."""
    result = np.full(n, np.nan)
    if len(rows):
        last = np.flatnonzero(np.r_[rows[1:] != rows[:-1], True])
        result[rows[last]] = age[last] / DAY_US
    return result
