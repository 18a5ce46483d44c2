"""Tiers: which leads are SQL, MQL or nurture, and what the SQL leads add up to.

Thresholds (``tiers.sql`` / ``tiers.mql``): a lead at or above ``sql`` is SQL, at
or above ``mql`` MQL, else nurture. Under a capacity policy
(``tiers.capacity.leads_per_week`` = N) exactly ``min(N, n)`` of the ``n`` open
leads scored together are SQL (:func:`capacity_sql`); the scorer ranks an
export's open leads as one pool, whatever the chunking. The ranking: calibrated
probability, highest first; ties (isotonic calibration puts many leads on one
step) broken by the raw model score (log-odds, before calibration), highest
first; then by input order (the order of the output rows). Both keys come from
LightGBM's ``predict`` (``raw_score``) and the calibrator
(:func:`~propensity.scoring.predictions.rank_keys`), the same numbers whatever the
chunking. ``mql`` stays a floor: a lead below it is never SQL, so fewer than
``min(N, n)`` are SQL only when fewer reach ``mql``. One lead scored on its own has
no pool to rank against and gets the ``tiers.sql`` threshold.

:class:`TierTally` sums the tiers of scored rows, chunk by chunk, into the summary
a report prints (:meth:`TierTally.summary`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from propensity.config import TierConfig

__all__ = ["TIERS", "TierTally", "capacity_sql", "pool_sql", "tier_names"]

TIERS = ("SQL", "MQL", "nurture")
ERROR_TIER = "error"  # a lead a lenient read could not score


def tier_names(p: np.ndarray, sql: np.ndarray, tiers: TierConfig) -> np.ndarray:
    """The tier of each probability in ``p``: SQL where ``sql``, else MQL at or above ``tiers.mql``, else nurture."""
    return np.where(sql, "SQL", np.where(p >= tiers.mql, "MQL", "nurture"))


def capacity_sql(p: np.ndarray, raw: np.ndarray, tiers: TierConfig) -> np.ndarray:
    """Which leads of one pool are SQL under the capacity policy (the module docstring's rule)."""
    n = len(p)
    k = min(tiers.capacity.leads_per_week, n)
    # np.lexsort: the last key is the primary one; the row number makes the order total
    order = np.lexsort((np.arange(n), -raw, -p))
    sql = np.zeros(n, dtype=bool)
    sql[order[:k]] = True
    return sql & (p >= tiers.mql)


def pool_sql(keys: Iterable[tuple[np.ndarray, np.ndarray]], tiers: TierConfig) -> np.ndarray:
    """The SQL leads of parts scored in order, ranked as one pool; ``keys``: each part's (probability, raw score)."""
    keys = list(keys)
    if not keys:
        return np.zeros(0, dtype=bool)
    return capacity_sql(np.concatenate([p for p, _ in keys]), np.concatenate([r for _, r in keys]), tiers)


class TierTally:
    """The tiers of scored rows, added chunk by chunk (:meth:`add`), and their :meth:`summary`."""

    def __init__(self, tiers: TierConfig):
        self.tiers = tiers
        self.counts = dict.fromkeys((*TIERS, ERROR_TIER), 0)
        self.rows = 0
        self.expected = 0.0  # the sum of the SQL leads' probabilities
        self.sql_min = math.inf
        # the largest probabilities (NaN counted largest, as np.partition does), where the capacity cut lies
        self._top = np.empty(0)

    def add(self, scores: pd.DataFrame) -> None:
        """Count the rows of a scores table (its ``tier`` and ``probability`` columns)."""
        tier = scores["tier"]
        p = scores["probability"].to_numpy(dtype=np.float64)
        for name in self.counts:
            self.counts[name] += int(tier.eq(name).sum())
        self.rows += len(scores)
        sql = tier.eq("SQL").to_numpy()
        if sql.any():
            self.expected += float(p[sql].sum())
            self.sql_min = min(self.sql_min, float(p[sql].min()))
        if self.tiers.capacity is not None and len(p):
            pool = np.concatenate([self._top, p])
            k = min(self.tiers.capacity.leads_per_week, len(pool))
            self._top = np.partition(pool, len(pool) - k)[len(pool) - k:]

    def summary(self) -> dict:
        """The tier policy applied to the rows added: SQL count, threshold, expected conversions.

        ``sql_threshold`` is the lowest probability among the SQL leads (under a
        capacity policy leads at that probability may be left out by the tie-break,
        see the module docstring), or the policy's cut when none is SQL;
        ``expected_conversions`` is the sum of the SQL leads' probabilities.
        """
        t = self.tiers
        return {"policy": "capacity" if t.capacity else "thresholds",
                "leads_per_week": t.capacity.leads_per_week if t.capacity else None,
                "sql_threshold": self.sql_min if self.counts["SQL"] else t.sql_threshold(self._top),
                "sql_leads": self.counts["SQL"], "mql_leads": self.counts["MQL"],
                "expected_conversions": self.expected,
                "nurture_leads": self.counts["nurture"], "error_leads": self.counts[ERROR_TIER], "rows": self.rows}
