"""Reasons a salesperson can read, from exact SHAP values.

LightGBM's ``pred_contrib`` gives exact TreeSHAP values (the same numbers as
``shap.TreeExplainer``) in log-odds of the raw model. A person knows fields, not
model columns, so the contributions of all features of one source (an ICP
criterion or an engagement signal: counts per window, recency, decay) are summed
into one reason. They are then expressed in probability points: the gap between
the lead's calibrated probability and the calibrated probability of the average
lead is shared out in proportion to each source's log-odds contribution, so the
points of all reasons add up exactly to that gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from propensity.features.spec import FeatureDef
from propensity.scoring.calibration import Calibrator

__all__ = ["Reason", "ReasonGroups", "describe", "probability_points"]


@dataclass(frozen=True)
class Reason:
    source: str
    display: str
    value: str
    points: float  # probability points (percentage points), signed
    family: str
    actionable: bool

    @property
    def text(self) -> str:
        return f"{self.display}: {self.value} ({self.points:+.1f} pts)"


@dataclass(frozen=True)
class ReasonGroups:
    """Which model columns belong to which source a person knows."""

    sources: list[str]
    matrix: np.ndarray  # (n_features, n_sources) of 0/1
    heads: dict[str, FeatureDef]  # the feature whose display names the source
    members: dict[str, list[FeatureDef]]

    @classmethod
    def from_spec(cls, spec: list[FeatureDef]) -> ReasonGroups:
        sources = list(dict.fromkeys(f.source for f in spec))
        index = {s: i for i, s in enumerate(sources)}
        m = np.zeros((len(spec), len(sources)))
        members: dict[str, list[FeatureDef]] = {s: [] for s in sources}
        for i, f in enumerate(spec):
            m[i, index[f.source]] = 1.0
            members[f.source].append(f)
        heads = {s: fs[0] for s, fs in members.items()}
        return cls(sources, m, heads, members)


def probability_points(contrib: np.ndarray, calibrator: Calibrator, groups: ReasonGroups
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and per-source probability points (×100).

    ``contrib`` is LightGBM's ``pred_contrib`` output: one column per feature, then
    the expected value (bias) column.
    """
    phi = contrib[:, :-1]
    bias = contrib[:, -1]
    raw = phi.sum(axis=1) + bias
    p = calibrator(_sigmoid(raw))
    p0 = calibrator(_sigmoid(bias))
    by_source = phi @ groups.matrix
    total = by_source.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.abs(total) > 1e-12, (p - p0) / total, 0.0)
    return p, by_source * scale[:, None] * 100.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _num(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f


def _days(v: float) -> str:
    d = int(round(v))
    return "today" if d == 0 else ("1 day ago" if d == 1 else f"{d} days ago")


def describe(source: str, groups: ReasonGroups, row: dict) -> tuple[str, str]:
    """(display name, observed value) of one source for one feature row."""
    members = groups.members[source]
    head = groups.heads[source]
    by_name = {f.name: f for f in members}
    if head.family == "fit":
        match = next((f for f in members if not f.name.endswith("_value")), None)
        raw = next((f for f in members if f.name.endswith("_value")), None)
        flag = _num(row[match.name]) if match is not None else math.nan
        display = raw.display if raw is not None else head.display.removesuffix(" matches ICP")
        if raw is not None:
            v = row[raw.name]
            known = v is not None and not (isinstance(v, float) and math.isnan(v))
            value = (f"{_num(v):,.0f}" if raw.kind == "numeric" else str(v)) if known else "unknown"
        else:
            value = "unknown" if math.isnan(flag) else ("yes" if flag == 1 else "no")
        if match is not None and not math.isnan(flag) and raw is not None:
            value += " (matches ICP)" if flag == 1 else " (outside ICP)"
        return display, value
    if source == "lead_age":
        return "Lead age", f"created {_days(_num(row['lead_age_days']))}"
    if source == "activity":
        active = next(f for f in members if f.name.startswith("eng_active_days_"))
        days = _num(row[active.name])
        since = _num(row["eng_days_since_any"])
        window = active.name.removeprefix("eng_active_days_").removesuffix("d")
        last = "never active" if math.isnan(since) else f"last activity {_days(since)}"
        return "Activity", f"active on {int(days)} of the last {window} days, {last}"
    counts = [f for f in members if f.name.endswith("d") and f.name.rsplit("_", 1)[-1][:-1].isdigit()]
    longest = max(counts, key=lambda f: int(f.name.rsplit("_", 1)[-1][:-1]))
    window = longest.name.rsplit("_", 1)[-1][:-1]
    n = int(_num(row[longest.name]) or 0)
    since = _num(row.get(f"eng_{source}_days_since", math.nan)) if f"eng_{source}_days_since" in by_name else math.nan
    display = longest.display.split(",")[0]
    if n == 0:
        value = f"none in the last {window} days" + ("" if math.isnan(since) else f" (latest {_days(since)})")
    else:
        value = f"{n} in the last {window} days, latest {_days(since)}"
    return display, value
