"""Reasons a salesperson can read, from exact SHAP values; fit vs engagement; grade.

LightGBM's ``pred_contrib`` gives exact TreeSHAP values (the same numbers as
``shap.TreeExplainer``) in log-odds of the raw model. A person knows fields, not
model columns, so the contributions of all features of one source (an ICP
criterion or an engagement signal: counts per window, recency, decay) are summed
into one reason. They are then expressed in probability points: the gap between
the lead's calibrated probability and the calibrated probability of the average
lead is shared out in proportion to each source's log-odds contribution, so the
points of all reasons add up exactly to that gap.

Which reasons are shown (:func:`select`): per row, the ``k`` sources with the
largest positive log-odds and the ``k`` with the most negative, in that order
(ties go to the earlier source); within a row the points are the log-odds times
one non-negative factor, so this is also the order of the points. A slot is shown
when its points exceed ``MIN_POINTS`` (0.05) in its direction. A *quiet* row is
one where no source reaches ``MIN_POINTS``: a calibrated probability on the same
flat step of an isotonic calibration as the average lead's (p − p0 ≈ 0) shares
out next to nothing although the model's log-odds, and the fit and engagement
scores, differ from the average lead's. In a quiet row a slot is shown instead
when its source's log-odds reach ``MIN_LOG_ODDS`` (0.05, a 5% change in the odds,
about one point on the 0–100 family scales) in its direction, with its points as
they are (never of the opposite sign). Points are never inflated: they still add
up exactly to p − p0, and a shown reason whose points would print as ±0.0 says
``+<0.1 pts`` or ``-<0.1 pts`` (the sign is the slot's direction).

Reasons are assembled for a whole batch at once (:func:`assemble`): the top-k
positive and negative sources per row come from one stable NumPy sort, and each
source's observed-value text is formatted once per source for the rows that show
it, never per row and source in Python. One row (a service scoring one lead) goes
through :func:`reasons_one` instead: the same selection and text, per slot in
plain Python, with no DataFrame.

Fit and engagement scores (0–100): ``100 * sigmoid(sum of the family's SHAP
log-odds)``. 50 is the average lead (the model's expected value); a family that
triples the odds gives 75, one that divides them by three gives 25. The two
families add up to the lead's whole log-odds gap from the average lead.

Grade (A best … E worst): each family score is banded high (≥ 65), mid
(35–65) or low (< 35), worth 2, 1 and 0; the grade is ``"EDCBA"[fit + engagement]``:
A = both high; B = one high, one mid; C = both mid, or one high and one low;
D = one mid, one low; E = both low.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from propensity.core.names import DAYS_SINCE_ANY, LEAD_AGE, days_since, fit_match, fit_value, window_days
from propensity.features.spec import FeatureDef
from propensity.scoring.calibration import Calibrator

__all__ = ["GRADE_BANDS", "MIN_LOG_ODDS", "MIN_POINTS", "Reason", "ReasonGroups", "ReasonTable", "assemble",
           "describe_one", "family_scores", "grades", "probability_points", "pts_text", "reasons_one"]

MIN_POINTS = 0.05  # reasons smaller than this many probability points are not shown (but see quiet rows)
MIN_LOG_ODDS = 0.05  # in a quiet row (no source reaches MIN_POINTS), sources this big in log-odds are shown
GRADE_BANDS = (35.0, 65.0)  # family score below the first is low, at or above the second high

# What a salesperson can do about an actionable engagement signal, by the reason's sign.
ACT_UP = "sales can act: follow up while it is fresh"
ACT_DOWN = "sales can act: re-engage"


@dataclass(frozen=True)
class Reason:
    source: str
    display: str
    value: str
    points: float  # probability points (percentage points), signed
    family: str
    actionable: bool
    action: str = ""
    up: bool = True  # a reason raising the score (positive slot); False for one lowering it

    @property
    def text(self) -> str:
        return _text(self.display, self.value, self.points, self.action, self.up)


def pts_text(points: float, up: bool) -> str:
    """``"+9.0 pts"``; ``"+<0.1 pts"`` / ``"-<0.1 pts"`` when the points would print as ±0.0."""
    text = f"{points:+.1f}"
    if text in ("+0.0", "-0.0"):
        return "+<0.1 pts" if up else "-<0.1 pts"
    return text + " pts"


def _text(display: str, value: str, points: float, action: str, up: bool = True) -> str:
    return f"{display}: {value} ({pts_text(points, up)}{'; ' + action if action else ''})"


@dataclass(frozen=True)
class ReasonGroups:
    """Which model columns belong to which source a person knows."""

    sources: list[str]
    matrix: np.ndarray  # (n_features, n_sources) of 0/1
    heads: dict[str, FeatureDef]  # the feature whose display names the source
    members: dict[str, list[FeatureDef]]
    fit_features: np.ndarray  # (n_features,) bool: family == "fit"
    # per engagement source, the member counting over the longest window (events, or active days) and that window
    longest: dict[str, tuple[FeatureDef, int]] = field(default_factory=dict)
    # per fit source (an ICP criterion), its match flag and raw value features, either may be absent
    fit_parts: dict[str, tuple[FeatureDef | None, FeatureDef | None]] = field(default_factory=dict)

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
        fit = np.array([f.family == "fit" for f in spec], dtype=bool)
        longest = {}
        for s, fs in members.items():
            windowed = [(f, window_days(f.name)) for f in fs if window_days(f.name) is not None]
            if windowed:
                longest[s] = max(windowed, key=lambda fw: fw[1])
        fit_parts = {s: (next((f for f in fs if f.name == fit_match(s)), None),
                         next((f for f in fs if f.name == fit_value(s)), None))
                     for s, fs in members.items() if heads[s].family == "fit"}
        return cls(sources, m, heads, members, fit, longest, fit_parts)

    def actionable(self, source: str) -> bool:
        """Fit is who the lead is: never actionable. Engagement as the catalogue says."""
        head = self.heads[source]
        return head.family == "engagement" and any(f.actionable for f in self.members[source])


def probability_points(contrib: np.ndarray, calibrator: Calibrator, groups: ReasonGroups,
                       with_log_odds: bool = False) -> tuple[np.ndarray, ...]:
    """Calibrated probabilities and per-source probability points (×100).

    ``contrib`` is LightGBM's ``pred_contrib`` output: one column per feature, then
    the expected value (bias) column. With ``with_log_odds``, a third array: the
    per-source log-odds (SHAP values summed per source), which :func:`select` ranks.
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
    pts = by_source * scale[:, None] * 100.0
    return (p, pts, by_source) if with_log_odds else (p, pts)


def family_scores(contrib: np.ndarray, groups: ReasonGroups) -> tuple[np.ndarray, np.ndarray]:
    """(fit_score, engagement_score) as int 0–100: ``100 * sigmoid(family's SHAP log-odds)``."""
    phi = contrib[:, :-1]
    fit = phi[:, groups.fit_features].sum(axis=1)
    eng = phi[:, ~groups.fit_features].sum(axis=1)
    return (np.rint(100 * _sigmoid(fit)).astype(np.int64), np.rint(100 * _sigmoid(eng)).astype(np.int64))


def grades(fit_score: np.ndarray, engagement_score: np.ndarray) -> np.ndarray:
    """Grade A–E from the two family scores (see the module docstring for the grid)."""
    lo, hi = GRADE_BANDS
    band = lambda s: (np.asarray(s) >= lo).astype(np.int64) + (np.asarray(s) >= hi)  # noqa: E731
    return np.array(list("EDCBA"), dtype=object)[band(fit_score) + band(engagement_score)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# ------------------------------------------------------------------ assembly


@dataclass(frozen=True)
class ReasonTable:
    """The shown reasons of a batch: ``k`` positive slots, then ``k`` negative slots.

    Every array is ``(n_rows, 2k)``; ``shown`` is False for empty slots (fewer than
    ``k`` reasons that big). ``joined`` is the one-line text per row.
    """

    sources: list[str]
    source: np.ndarray  # int index into ``sources``
    points: np.ndarray
    shown: np.ndarray
    display: np.ndarray  # object
    value: np.ndarray  # object
    action: np.ndarray  # object ("" when not actionable)
    joined: np.ndarray  # (n_rows,) object
    k: int

    def row(self, i: int, groups: ReasonGroups) -> tuple[list[Reason], list[Reason]]:
        """The positive and negative :class:`Reason` objects of row ``i``."""
        out: list[Reason] = []
        for j in range(2 * self.k):
            if not self.shown[i, j]:
                out.append(None)  # type: ignore[arg-type]
                continue
            s = self.sources[self.source[i, j]]
            out.append(Reason(s, str(self.display[i, j]), str(self.value[i, j]), float(self.points[i, j]),
                              groups.heads[s].family, groups.actionable(s), str(self.action[i, j]), j < self.k))
        return [r for r in out[:self.k] if r], [r for r in out[self.k:] if r]


def select(pts: np.ndarray, k: int, min_points: float = MIN_POINTS, log_odds: np.ndarray | None = None,
           min_log_odds: float = MIN_LOG_ODDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the ``k`` largest positive and ``k`` most negative sources.

    Returns ``(index, points, shown)``, each ``(n, 2k)``: positive slots biggest first,
    then negative slots most negative first; ties go to the earlier source. Sources
    are ranked by ``log_odds`` (the per-source log-odds, same shape as ``pts``) when
    given, else by ``pts``. A slot is shown when its points exceed ``min_points`` in
    the right direction; with ``log_odds``, in a quiet row (no source's points beyond
    ``min_points``) a slot is shown instead when its log-odds reach ``min_log_odds``
    in the right direction and its points are not of the opposite sign (see the
    module docstring).
    """
    n, s = pts.shape
    k = max(min(k, s), 1)
    key = pts if log_odds is None else log_odds
    # A stable sort of each row, not argpartition: with a few dozen sources it costs
    # about the same, and ties at the k-th place go to the earlier source, always.
    index = np.concatenate([np.argsort(-key, axis=1, kind="stable")[:, :k],
                            np.argsort(key, axis=1, kind="stable")[:, :k]], axis=1)
    points = np.take_along_axis(pts, index, axis=1)
    shown = np.concatenate([points[:, :k] > min_points, points[:, k:] < -min_points], axis=1)
    if log_odds is not None:
        quiet = ~(np.abs(pts) > min_points).any(axis=1)
        if quiet.any():
            lo = np.take_along_axis(log_odds, index, axis=1)
            big = np.concatenate([(lo[:, :k] >= min_log_odds) & (points[:, :k] >= 0),
                                  (lo[:, k:] <= -min_log_odds) & (points[:, k:] <= 0)], axis=1)
            shown = np.where(quiet[:, None], big, shown)
    return index, points, shown


def assemble(groups: ReasonGroups, frame: pd.DataFrame, pts: np.ndarray, k: int,
             min_points: float = MIN_POINTS, log_odds: np.ndarray | None = None) -> ReasonTable:
    """The reasons of every row of ``frame`` (a feature table) given its per-source points.

    ``log_odds`` (per-source log-odds, as :func:`probability_points` gives them) ranks
    the sources and shows the reasons of quiet rows (see :func:`select`).
    """
    index, points, shown = select(pts, k, min_points, log_odds)
    n, slots = index.shape
    k = slots // 2
    display = np.full((n, slots), "", dtype=object)
    value = np.full((n, slots), "", dtype=object)
    action = np.full((n, slots), "", dtype=object)
    for s_idx, source in enumerate(groups.sources):
        hit = (index == s_idx) & shown
        rows = np.flatnonzero(hit.any(axis=1))
        if not len(rows):
            continue
        name, values = describe_values(source, groups, frame, rows)
        full = np.empty(n, dtype=object)
        full[rows] = values
        actionable = groups.actionable(source)
        for j in range(slots):
            m = hit[:, j]
            if m.any():
                display[m, j] = name
                value[m, j] = full[m]
                if actionable:
                    action[m, j] = ACT_UP if j < k else ACT_DOWN
    texts = np.full((n, slots), "", dtype=object)
    ptext = np.char.mod("%+.1f pts", np.where(shown, points, 0.0)).astype(object)
    tiny = shown & np.isin(ptext, ["+0.0 pts", "-0.0 pts"])
    if tiny.any():  # pts_text's rule: a shown reason never prints as ±0.0
        up = np.arange(slots) < k
        ptext[tiny] = np.where(np.broadcast_to(up, tiny.shape)[tiny], "+<0.1 pts", "-<0.1 pts")
    for j in range(slots):
        m = shown[:, j]
        if m.any():
            act = action[m, j]
            tail = np.where(act != "", "; " + act, "")
            texts[m, j] = display[m, j] + ": " + value[m, j] + " (" + ptext[m, j] + tail + ")"
    joined = np.full(n, "", dtype=object)
    for j in range(slots):
        m = shown[:, j]
        if m.any():
            joined[m] = np.where(joined[m] != "", joined[m] + " | " + texts[m, j], texts[m, j])
    return ReasonTable(groups.sources, index, points, shown, display, value, action, joined, k)


# ------------------------------------------------------------------ observed values


def _days(d: np.ndarray) -> np.ndarray:
    """'today', '1 day ago', 'N days ago' for day counts (no NaN)."""
    d = np.rint(d).astype(np.int64)
    text = d.astype(str).astype(object) + " days ago"
    return np.where(d == 0, "today", np.where(d == 1, "1 day ago", text))


def _col(frame: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    return frame[name].to_numpy()[rows]


def _num(values: np.ndarray) -> np.ndarray:
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64,
                                                                                      na_value=np.nan)


def describe_values(source: str, groups: ReasonGroups, frame: pd.DataFrame, rows: np.ndarray
                    ) -> tuple[str, np.ndarray]:
    """(display name, observed value text per row) of one source for ``rows`` of ``frame``."""
    head = groups.heads[source]
    if head.family == "fit":
        return _fit_values(groups.fit_parts[source], head, frame, rows)
    if source == "lead_age":
        return "Lead age", "created " + _days(_num(_col(frame, LEAD_AGE, rows)))
    if source == "activity":
        active, window = groups.longest[source]
        days = np.nan_to_num(_num(_col(frame, active.name, rows))).astype(np.int64)
        since = _num(_col(frame, DAYS_SINCE_ANY, rows))
        never = np.isnan(since)
        last = np.where(never, "never active", "last activity " + _days(np.nan_to_num(since)))
        text = np.where(days == 0, f"no activity in the last {window} days",
                        "active on " + days.astype(str).astype(object) + f" of the last {window} days")
        return "Activity", np.where(never, "never active", text + ", " + last)
    longest, window = groups.longest[source]
    n = np.nan_to_num(_num(_col(frame, longest.name, rows))).astype(np.int64)
    since_col = days_since(source)
    since = _num(_col(frame, since_col, rows)) if since_col in frame.columns else np.full(len(rows), np.nan)
    latest = _days(np.nan_to_num(since))
    display = longest.display.split(",")[0]
    none = np.where(np.isnan(since), f"none in the last {window} days",
                    f"none in the last {window} days (latest " + latest + ")")
    some = n.astype(str).astype(object) + f" in the last {window} days, latest " + latest
    return display, np.where(n == 0, none, some)


def _fit_values(parts: tuple[FeatureDef | None, FeatureDef | None], head: FeatureDef, frame: pd.DataFrame,
                rows: np.ndarray) -> tuple[str, np.ndarray]:
    match, raw = parts
    flag = _num(_col(frame, match.name, rows)) if match is not None else np.full(len(rows), np.nan)
    display = raw.display if raw is not None else head.display.removesuffix(" matches ICP")
    if raw is None:
        return display, np.where(np.isnan(flag), "unknown", np.where(flag == 1, "yes", "no"))
    v = _col(frame, raw.name, rows)
    if raw.kind == "numeric":
        num = _num(v)
        known = np.isfinite(num)
        value = np.full(len(rows), "unknown", dtype=object)
        value[known] = [f"{x:,.0f}" for x in num[known]]
    else:
        known = pd.notna(v)
        value = np.where(known, pd.Series(v, dtype=object).astype(str).to_numpy(dtype=object), "unknown")
    if match is not None:
        suffix = np.where(np.isnan(flag), "", np.where(flag == 1, " (matches ICP)", " (outside ICP)"))
        value = np.where(known, value + suffix, value)
    return display, value


# ------------------------------------------------------------------ one row


def reasons_one(groups: ReasonGroups, values: dict[str, object], pts: np.ndarray, k: int,
                min_points: float = MIN_POINTS, log_odds: np.ndarray | None = None
                ) -> tuple[list[Reason], list[Reason], str]:
    """The positive and negative :class:`Reason` objects and the joined text of one row.

    ``values`` maps feature names to the row's values (a feature row as a dict) and
    ``pts`` is the row's per-source points. The same reasons and text as
    :func:`assemble` gives for that row, without DataFrames: a service scoring one
    lead at a time pays microseconds, not the batch machinery's fixed costs.
    """
    index, points, shown = select(pts[None, :], k, min_points, None if log_odds is None else log_odds[None, :])
    k = index.shape[1] // 2
    idx, pts_l, shown_l = index[0].tolist(), points[0].tolist(), shown[0].tolist()
    pos: list[Reason] = []
    neg: list[Reason] = []
    texts: list[str] = []
    for j in range(2 * k):
        if not shown_l[j]:
            continue
        s = groups.sources[idx[j]]
        display, value = describe_one(s, groups, values)
        actionable = groups.actionable(s)
        action = (ACT_UP if j < k else ACT_DOWN) if actionable else ""
        (pos if j < k else neg).append(Reason(s, display, value, pts_l[j], groups.heads[s].family, actionable,
                                              action, j < k))
        texts.append(_text(display, value, pts_l[j], action, j < k))
    return pos, neg, " | ".join(texts)


def _num1(v: object) -> float:
    """:func:`_num` of one value."""
    if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return float(v)
    if v is None:
        return np.nan
    return float(_num(np.array([v], dtype=object))[0])


_BIG = float(np.finfo(np.float64).max)


def _nan0(v: float) -> float:
    """``np.nan_to_num`` of one value."""
    if v != v:
        return 0.0
    if v in (np.inf, -np.inf):
        return _BIG if v > 0 else -_BIG
    return v


def _int(v: float) -> int:
    """``np.nan_to_num(v).astype(np.int64)`` of one value."""
    v = _nan0(v)
    return int(v) if abs(v) < 2.0**62 else int(np.float64(v).astype(np.int64))


def _days1(d: float) -> str:
    """:func:`_days` of one value (no NaN)."""
    n = round(d) if abs(d) < 2.0**62 else int(np.rint(np.float64(d)).astype(np.int64))  # half to even, as rint
    return "today" if n == 0 else "1 day ago" if n == 1 else f"{n} days ago"


def describe_one(source: str, groups: ReasonGroups, values: dict[str, object]) -> tuple[str, str]:
    """(display name, observed value text) of one source for one row: :func:`describe_values`'s text."""
    head = groups.heads[source]
    if head.family == "fit":
        return _fit_value_one(groups.fit_parts[source], head, values)
    if source == "lead_age":
        return "Lead age", "created " + _days1(_num1(values[LEAD_AGE]))
    if source == "activity":
        active, window = groups.longest[source]
        days = _int(_num1(values[active.name]))
        since = _num1(values[DAYS_SINCE_ANY])
        if since != since:
            return "Activity", "never active"
        text = f"no activity in the last {window} days" if days == 0 else f"active on {days} of the last {window} days"
        return "Activity", f"{text}, last activity {_days1(since)}"
    longest, window = groups.longest[source]
    n = _int(_num1(values[longest.name]))
    since_col = days_since(source)
    since = _num1(values[since_col]) if since_col in values else np.nan
    latest = _days1(_nan0(since))
    display = longest.display.split(",")[0]
    if n != 0:
        return display, f"{n} in the last {window} days, latest {latest}"
    if since != since:
        return display, f"none in the last {window} days"
    return display, f"none in the last {window} days (latest {latest})"


def _fit_value_one(parts: tuple[FeatureDef | None, FeatureDef | None], head: FeatureDef,
                   values: dict[str, object]) -> tuple[str, str]:
    match, raw = parts
    flag = _num1(values[match.name]) if match is not None else np.nan
    display = raw.display if raw is not None else head.display.removesuffix(" matches ICP")
    if raw is None:
        return display, "unknown" if flag != flag else "yes" if flag == 1 else "no"
    v = values[raw.name]
    if raw.kind == "numeric":
        num = _num1(v)
        known = bool(np.isfinite(num))
        value = f"{num:,.0f}" if known else "unknown"
    else:
        known = bool(pd.notna(v))
        value = str(v) if known else "unknown"
    if match is not None and known and flag == flag:
        value += " (matches ICP)" if flag == 1 else " (outside ICP)"
    return display, value
