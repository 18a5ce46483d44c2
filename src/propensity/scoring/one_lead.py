"""One lead scored without a DataFrame: a service's usual call, in a fraction of a millisecond.

:class:`OneLeadScorer` takes one lead's checked rows
(:func:`~propensity.scoring.leadinput.lead_rows`) and follows the batch path
step by step on plain values: the features of ``build_features``
(:class:`~propensity.features.onelead.OneLead`), the model matrix row and notes
(:meth:`~propensity.scoring.encoding.ModelEncoder.encode_values`), exact SHAP from
``pred_contrib``, and the reasons of :func:`~propensity.scoring.reasons.assemble`
(:func:`~propensity.scoring.reasons.reasons_one`). Its numbers equal the batch
path's (tests compare them lead by lead). Alone, a lead has no pool to rank
against: it gets the ``tiers.sql`` threshold even under a capacity policy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.features.onelead import OneLead
from propensity.features.rules import unknown_types_note
from propensity.scoring.bundle import Bundle
from propensity.scoring.encoding import ModelEncoder
from propensity.scoring.lead_notes import merge_notes
from propensity.scoring.leadinput import LeadRows
from propensity.scoring.predictions import contributions
from propensity.scoring.reasons import Reason, ReasonGroups, family_scores, grades, probability_points, reasons_one
from propensity.scoring.schemas import LeadScore, reason_out

__all__ = ["LeadResult", "OneLeadScorer"]


class LeadResult:
    """One lead's score on the one-lead path, before it becomes a :class:`LeadScore` or a one-row table."""

    __slots__ = ("contrib", "cutoff", "eng", "fit", "grade", "joined", "lead_id", "negative", "notes", "positive",
                 "probability", "tier")

    def __init__(self, lead_id: str, cutoff: int, probability: float, tier: str, positive: list[Reason],
                 negative: list[Reason], joined: str, fit: int, eng: int, grade: str, notes: list[str],
                 contrib: np.ndarray):
        self.lead_id, self.cutoff, self.probability, self.tier = lead_id, cutoff, probability, tier
        self.positive, self.negative, self.joined = positive, negative, joined
        self.fit, self.eng, self.grade, self.notes = fit, eng, grade, notes
        self.contrib = contrib  # the row's pred_contrib (SHAP values, then the expected value)

    @property
    def score(self) -> int:
        return int(np.rint(self.probability * 100))

    def lead_score(self) -> LeadScore:
        return LeadScore(lead_id=self.lead_id, probability=self.probability, score=self.score, tier=self.tier,
                         positive=[reason_out(r) for r in self.positive],
                         negative=[reason_out(r) for r in self.negative], fit_score=self.fit,
                         engagement_score=self.eng, grade=self.grade, notes=self.notes)

    def frame(self) -> pd.DataFrame:
        """The one-row table the batch path gives (same columns and dtypes)."""
        return pd.DataFrame({
            "lead_id": np.array([self.lead_id], dtype=object),
            "cutoff": pd.DatetimeIndex(np.array([self.cutoff], dtype="datetime64[us]")).tz_localize("UTC"),
            "probability": np.array([self.probability]),
            "score": np.array([self.score], dtype=int),
            "tier": np.array([self.tier]),
            "reasons": np.array([self.joined], dtype=object),
            "fit_score": np.array([self.fit], dtype=np.int64),
            "engagement_score": np.array([self.eng], dtype=np.int64),
            "grade": np.array([self.grade], dtype=object),
            "notes": np.array(["; ".join(self.notes)], dtype=object),
        }, copy=False)  # the arrays are new: no copy needed


class OneLeadScorer:
    """The one-lead path of a bundle (see the module docstring). Stateless after building: safe across threads."""

    def __init__(self, bundle: Bundle, encoder: ModelEncoder, groups: ReasonGroups, features: OneLead):
        self.bundle = bundle
        self.encoder = encoder
        self.groups = groups
        self.features = features

    @classmethod
    def for_bundle(cls, bundle: Bundle, encoder: ModelEncoder, groups: ReasonGroups) -> OneLeadScorer | None:
        """The one-lead path, or None when the bundle has features the configs alone do not compute."""
        features = OneLead(bundle.icp, bundle.engagement)
        if not set(bundle.feature_names) <= set(features.names):
            return None
        return cls(bundle, encoder, groups, features)

    def score(self, rows: LeadRows, stacklevel: int = 2) -> LeadResult | None:
        """The lead's score at its cutoff; None when it was created at or after it (no cutoff).

        ``stacklevel``: where the warning about unlisted activity types points, as for ``warnings.warn``.
        """
        if not rows.scorable:
            return None
        b = self.bundle
        t = rows.cutoff
        self.features.warn_unknown_types(rows.types, stacklevel=stacklevel)  # as build_features does
        values = self.features.features(rows.lead, rows.account, rows.types, rows.occ, rows.rec, t, rows.created)
        x, own = self.encoder.encode_values(values)
        notes = merge_notes(rows.notes, own)
        unknown = self.features.unknown_types(rows.types, rows.occ, rows.rec, t)
        if unknown:
            notes.append(unknown_types_note(unknown))
        contrib = contributions(b.booster, x, len(b.spec))
        p, pts, lo = probability_points(contrib, b.calibrator, self.groups, with_log_odds=True)
        fit, eng = family_scores(contrib, self.groups)
        pos, neg, joined = reasons_one(self.groups, values, pts[0], b.top_k, log_odds=lo[0])
        prob = float(p[0])
        return LeadResult(rows.lead_id, t, prob, b.tiers.tier(prob), pos, neg, joined, int(fit[0]), int(eng[0]),
                          str(grades(fit, eng)[0]), notes, contrib[0])
