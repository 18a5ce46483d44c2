"""The scorer's API schemas: one lead in (:class:`LeadInput`), one lead's score out (:class:`LeadScore`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from propensity.scoring.reasons import Reason

__all__ = ["LeadInput", "LeadScore", "ReasonOut", "reason_out"]


class LeadInput(BaseModel):
    """One lead as a service holds it: the lead row, its account row and its events."""

    model_config = ConfigDict(extra="forbid")

    lead: dict[str, Any]
    account: dict[str, Any] | None = None
    activities: list[dict[str, Any]] = Field(default_factory=list)


class ReasonOut(BaseModel):
    """One reason as a service returns it (see :class:`propensity.scoring.reasons.Reason`)."""

    source: str
    display: str
    value: str
    points: float
    family: str
    actionable: bool
    action: str = ""
    text: str


class LeadScore(BaseModel):
    """One lead's score: probability, 0–100 score, tier, reasons, fit and engagement, grade, notes."""

    lead_id: str
    probability: float
    score: int
    tier: str
    positive: list[ReasonOut]
    negative: list[ReasonOut]
    fit_score: int = 50
    engagement_score: int = 50
    grade: str = "C"
    notes: list[str] = Field(default_factory=list)


def reason_out(r: Reason) -> ReasonOut:
    """A :class:`~propensity.scoring.reasons.Reason` as the API returns it."""
    return ReasonOut(source=r.source, display=r.display, value=r.value, points=r.points, family=r.family,
                     actionable=r.actionable, action=r.action, text=r.text)
