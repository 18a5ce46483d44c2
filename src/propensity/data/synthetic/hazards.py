"""The options that make a synthetic world look like real data: drift, a high-cardinality column, sparse activity.

What each option does to the story is described in :mod:`propensity.data.synthetic.story`;
this module only checks the options and turns dates into days since the world's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from propensity.data.synthetic.story import RAMP_EVENTS

__all__ = ["DRIFT_KINDS", "Hazards", "Timeline"]

DRIFT_KINDS = ("base-rate", "mechanics", "mix", "late-wins", "win-rate")
DriftKind = Literal["base-rate", "mechanics", "mix", "late-wins", "win-rate"]
WIN_FACTOR = 0.4  # win-rate drift: deals closing from drift_at on are won at 0.4 times their probability
DATED = {"base-rate", "mechanics", "mix", "win-rate"}  # the kinds that start at drift_at


class Hazards(BaseModel):
    """A world's hazards; the defaults are the plain world of the story."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drift: tuple[DriftKind, ...] = ()
    drift_at: str | None = Field(None, description="UTC date the drift starts (default: the span's middle day)")
    drift_shift: float = Field(1.0, description="base-rate drift: in-market log-odds added from drift_at on")
    drift_signal: str = Field("pricing_page_visit", description="mechanics drift: the signal that stops meaning intent")
    win_factor: float = Field(WIN_FACTOR, ge=0, le=1,
                              description="win-rate drift: a deal closing from drift_at on is won with its probability "
                                          "times this")
    wins_from: str | None = Field(None, description="late-wins: first UTC date a deal can close won "
                                                    "(default: six months after start)")
    landing_pages: int = Field(0, description="values of the lead column landing_page (0: no such column)")
    origin: bool = Field(False, description="add the lead column origin")
    activity_scale: float = Field(1.0, gt=0, description="multiplies every background rate and ramp size")
    in_market_shift: float = Field(0.0, description="in-market log-odds added to every lead")

    @field_validator("drift")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v))

    @field_validator("drift_signal")
    @classmethod
    def _ramp_signal(cls, v: str) -> str:
        if v not in RAMP_EVENTS:
            raise ValueError(f"drift_signal must be one of the intent signals {sorted(RAMP_EVENTS)}, got {v!r}")
        return v

    @field_validator("landing_pages")
    @classmethod
    def _pages(cls, v: int) -> int:
        if v != 0 and v < 10:
            raise ValueError(f"landing_pages must be 0 (none) or at least 10, got {v}")
        return v

    @field_validator("drift_at", "wins_from")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                pd.Timestamp(v)
            except ValueError as e:
                raise ValueError(f"expected a date such as 2025-01-01, got {v!r}") from e
        return v

    @model_validator(mode="after")
    def _used(self) -> Hazards:
        if self.drift_at is not None and not DATED & set(self.drift):
            raise ValueError("drift_at (--drift-at) is set but no base-rate, mechanics, mix or win-rate drift is "
                             "chosen")
        if self.win_factor != WIN_FACTOR and "win-rate" not in self.drift:
            raise ValueError("win_factor (--win-factor) is set but the win-rate drift is not chosen")
        if self.wins_from is not None and "late-wins" not in self.drift:
            raise ValueError("wins_from (--wins-from) is set but the late-wins drift is not chosen")
        return self

    def is_plain(self) -> bool:
        """Whether these are the defaults (the world of the story, draw for draw)."""
        return self == Hazards()


@dataclass(frozen=True)
class Timeline:
    """A world's time frame and its hazards' dates, in days since ``start``: the drift starts at ``drift_day``
    (``inf``: never), deals can close won from ``wins_day`` on (``-inf``: always)."""

    start: pd.Timestamp
    end: pd.Timestamp
    span: float
    drift_day: float
    wins_day: float

    @classmethod
    def of(cls, start: str, end: str, hazards: Hazards) -> Timeline:
        t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
        if t1 <= t0:
            raise ValueError(f"end ({end}) must be after start ({start})")
        span = (t1 - t0) / pd.Timedelta(days=1)
        drift_day, wins_day = float("inf"), float("-inf")
        if DATED & set(hazards.drift):
            at = (t0 + pd.Timedelta(days=span // 2)).floor("D") if hazards.drift_at is None else _utc(hazards.drift_at)
            drift_day = (at - t0) / pd.Timedelta(days=1)
        if "late-wins" in hazards.drift:
            at = t0 + pd.DateOffset(months=6) if hazards.wins_from is None else _utc(hazards.wins_from)
            wins_day = (at - t0) / pd.Timedelta(days=1)
        return cls(t0, t1, span, drift_day, wins_day)


def _utc(text: str) -> pd.Timestamp:
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
