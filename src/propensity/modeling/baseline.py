"""The points-based baseline: the simple scoring system sales and marketing would agree on.

Points come straight from ``features/*.yaml``: each ICP criterion a lead matches
earns its ``points``; each engagement signal earns ``points`` per event over the
longest window, capped at ``max_points`` in absolute value. No learning at all, so
the gain from the model is visible next to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig, IcpConfig
from propensity.core.names import events_in_window, fit_match

__all__ = ["baseline_points"]


def baseline_points(frame: pd.DataFrame, icp: IcpConfig, engagement: EngagementConfig) -> np.ndarray:
    """Points per row of a feature table built for these configs."""
    total = np.zeros(len(frame))
    for c in icp.criteria:
        if c.kind != "value" and c.points:
            total += c.points * frame[fit_match(c.name)].fillna(0.0).to_numpy()
    longest = max(engagement.windows_days)
    for s in engagement.signals:
        if not s.points:
            continue
        pts = s.points * frame[events_in_window(s.name, longest)].fillna(0.0).to_numpy()
        if s.max_points:
            pts = np.clip(pts, -s.max_points, s.max_points)
        total += pts
    return total
