"""The feature spec: every feature's stable name, family, display name and kind.

Built from the ICP and engagement configs alone, so training, scoring, reasons and
reports all agree on the same list without looking at data.

Names
-----
fit family (from ``features/icp.yaml``, one criterion ``c``):
    ``fit_<c>``            1.0 match, 0.0 no match, NaN unknown   (kinds ``in``/``range``)
    ``fit_<c>_value``      the raw value: float for ``range``, category otherwise
engagement family (from ``features/engagement.yaml``, one signal ``s``):
    ``eng_<s>_<W>d``       events in the ``W`` days before the cutoff
    ``eng_<s>_days_since`` days from the latest event to the cutoff (NaN if none)
    ``eng_<s>_decay``      sum of ``0.5 ** (age_days / half_life_days)``
    ``eng_active_days_<W>d`` distinct UTC days with any activity, longest window
    ``eng_days_since_any`` days since the latest activity of any type (NaN if none)
    ``lead_age_days``      days from the lead's creation to the cutoff
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names

__all__ = ["FeatureDef", "build_feature_spec"]


@dataclass(frozen=True)
class FeatureDef:
    name: str
    family: Literal["fit", "engagement"]
    kind: Literal["numeric", "categorical"]
    display: str
    source: str  # the criterion or signal a person knows; reasons are summed per source
    actionable: bool = False
    monotone: int = 0  # +1 increasing, -1 decreasing, 0 free

    def to_dict(self) -> dict:
        return asdict(self)


_MONOTONE = {"increasing": 1, "decreasing": -1, "none": 0}


def build_feature_spec(icp: IcpConfig, engagement: EngagementConfig) -> list[FeatureDef]:
    """The ordered list of features the pipeline produces for these configs."""
    spec: list[FeatureDef] = []
    for c in icp.criteria:
        if c.kind != "value":
            spec.append(FeatureDef(names.fit_match(c.name), "fit", "numeric", f"{c.display} matches ICP", c.name))
        if c.raw:
            spec.append(FeatureDef(names.fit_value(c.name), "fit", "numeric" if c.numeric else "categorical",
                                   c.display, c.name))
    longest = max(engagement.windows_days)
    for s in engagement.signals:
        mono = _MONOTONE[s.monotone]
        for w in engagement.windows_days:
            spec.append(FeatureDef(names.events_in_window(s.name, w), "engagement", "numeric",
                                   f"{s.display}, last {w} days", s.name, s.actionable, mono))
        spec.append(FeatureDef(names.days_since(s.name), "engagement", "numeric",
                               f"{s.display}: days since last", s.name, s.actionable))
        spec.append(FeatureDef(names.decay(s.name), "engagement", "numeric",
                               f"{s.display}, recency-weighted", s.name, s.actionable, mono))
    spec.append(FeatureDef(names.active_days(longest), "engagement", "numeric",
                           f"Active days, last {longest} days", "activity", True))
    spec.append(FeatureDef(names.DAYS_SINCE_ANY, "engagement", "numeric",
                           "Days since last activity", "activity", True))
    spec.append(FeatureDef(names.LEAD_AGE, "engagement", "numeric", "Days since lead was created", "lead_age"))
    return spec
