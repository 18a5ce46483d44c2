"""Worlds with known drift for the monitor, drawn by the generator's drift options.

The model is trained on the plain world as exported at a date ``D`` (:func:`cut_world`),
then each world below is scored from ``D`` on; the drifted ones are the same story
(same seed) with one drift from ``D`` (:class:`~propensity.data.synthetic.Hazards`,
docs/synthetic.md):

- ``mix``: leads created from ``D`` on come from other sources and from accounts
  tilted away from the ICP industries (fit and the base rate fall);
- ``mechanics``: from ``D`` on the pricing-page visit stops meaning intent (no
  buying ramp, twice the background visits);
- ``base-rate``: leads created from ``D`` on are less often in market (in-market
  log-odds -1): the conversion rate of the new leads falls (the stock of open leads
  keeps its rate, so matured runs show it only slowly);
- ``win-rate``: from ``D`` on deals are won at 0.4 times their probability, old leads
  and new alike: the conversion rate falls at a date.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from propensity.data.synthetic import Hazards, write_world

DRIFT_KINDS = ("mix", "mechanics", "base-rate", "win-rate")
BASE_RATE_SHIFT = -1.0


def drift_world(dst: Path, kind: str, date: str, n_leads: int, seed: int = 0) -> Path:
    """The world of ``n_leads`` and ``seed`` with drift ``kind`` (one of :data:`DRIFT_KINDS`) from ``date`` on."""
    if kind not in DRIFT_KINDS:
        raise ValueError(f"unknown drift kind {kind!r}; expected one of {DRIFT_KINDS}")
    shift = BASE_RATE_SHIFT if kind == "base-rate" else 1.0
    return write_world(dst, n_leads=n_leads, seed=seed, force=True,
                       hazards=Hazards(drift=(kind,), drift_at=date, drift_shift=shift))


def cut_world(src: Path, dst: Path, date: str) -> Path:
    """The world ``src`` as it was exported at ``date``: nothing created, occurred or closed from then on."""
    dst.mkdir(parents=True, exist_ok=True)
    d = pd.Timestamp(date, tz="UTC")
    shutil.copy(src / "accounts.parquet", dst / "accounts.parquet")
    leads = pd.read_parquet(src / "leads.parquet")
    leads[leads["created_at"] < d].to_parquet(dst / "leads.parquet", index=False)
    acts = pd.read_parquet(src / "activities.parquet")
    acts[(acts["occurred_at"] < d) & (acts["recorded_at"] < d)].to_parquet(dst / "activities.parquet", index=False)
    opps = pd.read_parquet(src / "opportunities.parquet")
    opps = opps[opps["created_at"] < d].copy()
    late = opps["closed_at"] >= d
    opps.loc[late, "stage"] = "open"
    opps.loc[late, "closed_at"] = pd.NaT
    opps.to_parquet(dst / "opportunities.parquet", index=False)
    return dst
