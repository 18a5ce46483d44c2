"""Per lead, from the score history: the trend over its last runs and the reasons that moved most.

Trend: the lead's score in the current run against its score :data:`TREND_RUNS` - 1
runs earlier (or its earliest, when it has fewer), runs of the same model only. A move
of at least :data:`TREND_POINTS` score points (on 0-100) up is ``improving``, down is
``declining``, less is ``steady``; a lead with no earlier run is ``not enough history``.

Why it changed: between the lead's two latest runs, the (up to three) reason sources
whose points moved most, by at least :data:`MIN_MOVE`, each as ``"<display>: +12.0 pts →
+2.0 pts (now <the value as the reasons describe it>)"``, e.g. ``Pricing page visits:
+12.0 pts → +2.0 pts (now none in the last 90 days (latest 41 days ago))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.monitoring.history import FEATURE, POINTS, is_history, read_history, run_files
from propensity.scoring.reasons import ReasonGroups, describe_one

__all__ = ["NOT_ENOUGH", "TREND_POINTS", "TREND_RUNS", "LeadChange", "lead_changes", "previous_scores",
           "trend_column"]

TREND_POINTS = 3
TREND_RUNS = 3
MIN_MOVE = 0.1  # probability points a reason must move to be named in "why it changed"
NOT_ENOUGH = "not enough history"


def previous_scores(folder: str | Path, digest: str, before: pd.Timestamp) -> pd.DataFrame:
    """Each lead's score in the runs of model ``digest`` before ``before`` (columns lead_id, as_of, score)."""
    if not Path(folder).is_dir() or not is_history(folder) or not run_files(folder):
        return pd.DataFrame({"lead_id": [], "as_of": [], "score": []})
    frame = read_history(folder, ["lead_id", "as_of", "score", "bundle_digest"])
    frame = frame[(frame["bundle_digest"] == digest) & (frame["as_of"] < before)]
    return frame[["lead_id", "as_of", "score"]]


def trend_column(scores: pd.DataFrame, earlier: pd.DataFrame) -> np.ndarray:
    """The ``trend`` of each row of ``scores`` (a run's output) given the leads' ``earlier`` scores."""
    out = np.full(len(scores), NOT_ENOUGH, dtype=object)
    if earlier.empty or scores.empty:
        return out
    # the lead's own last runs, as `explain` reads them: a lead missing from the latest runs keeps its history
    past = earlier.sort_values("as_of", kind="stable").groupby("lead_id", sort=False).tail(TREND_RUNS - 1)
    base = past.groupby("lead_id", sort=False)["score"].first()
    then = pd.Series(scores["lead_id"].astype(str).to_numpy()).map(base).to_numpy(dtype="float64")
    delta = scores["score"].to_numpy(dtype="float64") - then
    known = ~np.isnan(then) & scores["tier"].ne("error").to_numpy()
    out[known] = np.where(delta[known] >= TREND_POINTS, "improving",
                          np.where(delta[known] <= -TREND_POINTS, "declining", "steady"))
    return out


@dataclass(frozen=True)
class LeadChange:
    """One lead's score over its runs, its trend and the reasons that moved most between the last two."""

    lead_id: str
    runs: list[tuple[str, int]]  # (as_of, score), oldest first
    trend: str
    moved: list[str]


def lead_changes(folder: str | Path, lead_id: str, bundle, digest: str, top: int = 3) -> LeadChange:
    """The trend and "why it changed" of ``lead_id`` from the history ``folder`` (runs of model ``digest``)."""
    groups = ReasonGroups.from_spec(bundle.spec)
    frame = read_history(folder)
    rows = frame[(frame["lead_id"] == str(lead_id)) & (frame["bundle_digest"] == digest)].sort_values("as_of")
    if rows.empty:
        raise KeyError(f"{folder}: lead {lead_id!r} has no run of this model in the score history")
    runs = [(f"{t:%Y-%m-%d}", int(s)) for t, s in zip(rows["as_of"], rows["score"], strict=True)]
    if len(rows) < 2:
        return LeadChange(str(lead_id), runs, NOT_ENOUGH, [])
    recent = rows.iloc[-TREND_RUNS:]
    delta = int(recent["score"].iloc[-1]) - int(recent["score"].iloc[0])
    trend = "improving" if delta >= TREND_POINTS else "declining" if delta <= -TREND_POINTS else "steady"
    before, after = rows.iloc[-2], rows.iloc[-1]
    moves = []
    for s in groups.sources:
        a, b = before.get(POINTS + s), after.get(POINTS + s)
        if a is None or b is None or pd.isna(a) or pd.isna(b):
            continue
        moves.append((abs(b - a), s, a, b))
    values = {k[len(FEATURE):]: (None if pd.isna(v) else v) for k, v in after.items() if k.startswith(FEATURE)}
    moved = []
    for _, s, a, b in sorted(moves, key=lambda m: -m[0])[:top]:
        if abs(b - a) < MIN_MOVE:
            break
        display, now = describe_one(s, groups, values)
        moved.append(f"{display}: {a:+.1f} pts → {b:+.1f} pts (now {now})")
    return LeadChange(str(lead_id), runs, trend, moved)
