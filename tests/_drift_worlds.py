"""Worlds with known drift, built by editing a generated world's tables with pandas.

Until ``propensity generate`` has drift options, these edits make the three kinds of
drift the monitor must find, all after one date ``D`` (the model is trained on the
world cut at ``D``, :func:`cut_world`, so it never saw them):

- ``mix``: the mix of sources and industries shifts: the leads created from ``D`` on
  all come from the rarest lead source, and their accounts move to the lowest-converting industry;
- ``signal``: an engagement signal stops meaning intent: the pricing-page and website
  visits from ``D`` on are moved to random leads (same number of events, no link to buying);
- ``base_rate``: the base rate changes: 60% of the wins closing from ``D`` on become losses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

DRIFT_KINDS = ("mix", "signal", "base_rate")
TABLES = ("accounts", "leads", "activities", "opportunities")


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


def drift_world(src: Path, dst: Path, kind: str, date: str, seed: int = 0) -> Path:
    """A copy of the world ``src`` with drift ``kind`` (one of :data:`DRIFT_KINDS`) from ``date`` on."""
    dst.mkdir(parents=True, exist_ok=True)
    for t in TABLES:
        shutil.copy(src / f"{t}.parquet", dst / f"{t}.parquet")
    d = pd.Timestamp(date, tz="UTC")
    rng = np.random.default_rng(seed)
    if kind == "mix":
        leads = pd.read_parquet(src / "leads.parquet")
        accounts = pd.read_parquet(src / "accounts.parquet")
        opps = pd.read_parquet(src / "opportunities.parquet")
        won = leads["lead_id"].isin(opps.loc[opps["stage"] == "closed_won", "lead_id"])
        by_industry = leads.merge(accounts[["account_id", "industry"]], on="account_id").assign(won=won.to_numpy())
        worst = by_industry.groupby("industry")["won"].mean().idxmin()
        new = leads["created_at"] >= d
        leads.loc[new, "lead_source"] = leads["lead_source"].value_counts().idxmin()
        accounts.loc[accounts["account_id"].isin(leads.loc[new, "account_id"]), "industry"] = worst
        leads.to_parquet(dst / "leads.parquet", index=False)
        accounts.to_parquet(dst / "accounts.parquet", index=False)
    elif kind == "signal":
        leads = pd.read_parquet(src / "leads.parquet")
        acts = pd.read_parquet(src / "activities.parquet")
        pick = acts["activity_type"].isin(["pricing_page_visit", "web_visit"]).to_numpy() & \
            (acts["occurred_at"] >= d).to_numpy()
        ids = acts["lead_id"].astype(str).to_numpy(dtype=object)
        by_created = leads.sort_values("created_at")
        born = by_created["created_at"].to_numpy()
        existing = np.searchsorted(born, acts.loc[pick, "occurred_at"].to_numpy(), side="left")
        # a random lead that existed when the event happened
        chosen = by_created["lead_id"].to_numpy(dtype=object)[(rng.random(len(existing)) * existing).astype(int)]
        ids[pick] = chosen
        acts["lead_id"] = pd.Categorical(ids, categories=acts["lead_id"].cat.categories)
        acts.to_parquet(dst / "activities.parquet", index=False)
    elif kind == "base_rate":
        opps = pd.read_parquet(src / "opportunities.parquet")
        late_wins = np.flatnonzero(((opps["stage"] == "closed_won") & (opps["closed_at"] >= d)).to_numpy())
        lost = rng.choice(late_wins, int(round(0.6 * len(late_wins))), replace=False)
        opps.loc[opps.index[lost], "stage"] = "closed_lost"
        opps.to_parquet(dst / "opportunities.parquet", index=False)
    else:
        raise ValueError(f"unknown drift kind {kind!r}; expected one of {DRIFT_KINDS}")
    return dst
