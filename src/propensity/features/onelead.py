"""The features of one lead at one cutoff, in plain Python and NumPy: no DataFrames.

A service scoring one lead at a time cannot afford pandas' construction costs
(a few milliseconds for the frames of a one-lead export and the feature table).
:class:`OneLead` computes the same values as
:func:`propensity.features.pipeline.build_features` (see its docstring for the
definitions and the time contract: an event counts only if it occurred **and**
was recorded strictly before the cutoff) for one lead, from its lead row, its
account row (or ``None``) and its events as arrays of µs since the epoch.

Values are identical to the ``memory`` engine's, bit for bit: the same NumPy
operations in the same order (the decay sum is a sequential sum over events in
``occurred_at`` order, as ``bincount`` does it), and equal to the ``running``
engine's up to its float rounding of decay sums (~1e-14 relative).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd  # only pd.NA / pd.NaT and, for text numbers, pd.to_numeric

from propensity.config import Criterion, EngagementConfig, IcpConfig
from propensity.features.memory import DAY_US
from propensity.features.spec import build_feature_spec

__all__ = ["NOT_A_NUMBER", "NOT_FINITE", "OneLead", "allowed_values", "clean_category", "criterion_value", "is_number",
           "number_note", "read_number", "unknown_types_note", "unknown_types_warning"]

_NO_AGE = np.iinfo(np.int64).max


def clean_category(v: object) -> str | None:
    """A category as stripped str, None when unknown (missing or blank); the batch path uses it too."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    s = str(v).strip()
    return s or None


def _number(v: object) -> float:
    """``pd.to_numeric(errors="coerce")`` of one value of an object column, as float64."""
    if v is None or (isinstance(v, float) and v != v):
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if v is pd.NA or v is pd.NaT:
        return math.nan
    # text and anything else: pandas' own rules (rare at scoring time; costs ~0.1 ms)
    return float(pd.to_numeric(pd.Series([v], dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)[0])


NOT_A_NUMBER = "is not a number"
NOT_FINITE = "is not a finite number"


def read_number(v: object) -> tuple[float, str | None]:
    """A value where a number is expected: ``(number, None)``, or ``(NaN, why)`` when it cannot be used.

    The one rule for a ``range`` criterion, in training, features and scoring alike.
    Missing values (None, NaN, blank text) are ``(NaN, None)``: unknown, nothing
    odd. A bool is not a number (``employees=True`` is a wrong type, not 1), nor is
    text ``pd.to_numeric`` cannot read (``"lots"``, ``"1,200"``): :data:`NOT_A_NUMBER`.
    ``inf`` and ``-inf`` (numbers or text) are :data:`NOT_FINITE`. Both are unknown.
    """
    if isinstance(v, (bool, np.bool_)):
        return math.nan, NOT_A_NUMBER
    if isinstance(v, str) and not v.strip():
        return math.nan, None
    x = _number(v)
    if math.isnan(x):
        return math.nan, None if _absent(v) else NOT_A_NUMBER
    if math.isinf(x):
        return math.nan, NOT_FINITE
    return x, None


def _absent(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and math.isnan(v))


def is_number(v: object) -> bool:
    """Whether a present value reads as a finite number where a number is expected (see :func:`read_number`)."""
    return read_number(v)[1] is None and not _absent(v)


def number_note(display: str, v: object, why: str) -> str:
    """The per-lead note on a value :func:`read_number` cannot use.

    >>> number_note("Company size (employees)", "1,200", NOT_A_NUMBER)
    "Company size (employees): '1,200' is not a number, treated as unknown"
    """
    if isinstance(v, np.generic):  # np.float64(inf) is inf to the reader
        v = v.item()
    return f"{display}: {v!r} {why}, treated as unknown"


def unknown_types_note(counts: dict[str, int]) -> str:
    """The per-lead note for activities of types no engagement signal lists, by type in first-seen order.

    >>> unknown_types_note({"foo": 2})
    "2 activities of unknown type(s) ['foo'] ignored"
    """
    total = sum(counts.values())
    names = sorted(counts, key=lambda t: -counts[t])  # stable: first seen first among equal counts
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{total} activit{'y' if total == 1 else 'ies'} of unknown type(s) {names[:5]}{more} ignored"


def unknown_types_warning(counts: dict[str, int], listed: set[str] | frozenset[str]) -> str:
    """The warning about activities of types no engagement signal lists (``counts``: per type, by count).

    A type that equals a listed one once surrounding whitespace and case are set
    aside (``"Email_Open"``, ``"web_visit "``) is most likely that type misspelt by
    the CRM: the warning names it with the suggested mapping, as nothing maps it silently.
    """
    total = sum(counts.values())
    names = sorted(counts, key=lambda t: -counts[t])  # stable: first seen first among equal counts
    text = (f"{total} activit{'y' if total == 1 else 'ies'} of {len(names)} type(s) that no engagement signal "
            f"lists were ignored by the signal features, e.g. {names[:5]}; add them to features/engagement.yaml "
            "if they matter")
    folded = {t.strip().casefold(): t for t in sorted(listed)}
    near = {t: folded[t.strip().casefold()] for t in names if t.strip().casefold() in folded}
    if near:
        n = sum(counts[t] for t in near)
        shown = dict(list(near.items())[:5])
        text += (f"; {n} of them ({len(near)} type(s)) differ from a listed type only in case or surrounding "
                 f"whitespace, suggested mapping {shown}: fix the types in the export, or list these spellings "
                 "in the signal's activity_types")
    return text


def criterion_value(c: Criterion, raw: object, allowed: frozenset[str] | None = None) -> tuple[float, object]:
    """(match: 1.0 / 0.0 / NaN for unknown, raw value) of one criterion for one value.

    ``pipeline._criterion`` for one value: ``range`` reads a number (NaN when
    missing or unusable, see :func:`read_number`), ``in`` and ``value`` a stripped
    str (None when missing or blank).
    ``allowed`` is :func:`allowed_values` of ``c``, when the caller keeps it.
    """
    if c.kind == "range":
        value = read_number(raw)[0]
        if value != value:
            return math.nan, value
        lo = -math.inf if c.min is None else c.min
        hi = math.inf if c.max is None else c.max
        return float(lo <= value <= hi), value
    value = clean_category(raw)
    if c.kind == "in":
        if value is None:
            return math.nan, None
        return float(value.lower() in (allowed_values(c) if allowed is None else allowed)), value
    return math.nan, value


def allowed_values(c: Criterion) -> frozenset[str]:
    """The values an ``in`` criterion matches, stripped and lower-cased."""
    return frozenset(v.strip().lower() for v in c.values or ())


class OneLead:
    """Feature values of one lead at one cutoff, from the ICP and engagement configs.

    Built once per scorer (it only reads the configs); :meth:`features` keeps no
    state between calls, so one instance is safe across threads.
    """

    def __init__(self, icp: IcpConfig, engagement: EngagementConfig):
        self.icp = icp
        self.engagement = engagement
        self.names = [f.name for f in build_feature_spec(icp, engagement)]
        self._criteria = [(c, f"fit_{c.name}" if c.kind != "value" else None,
                           f"fit_{c.name}_value" if c.raw else None, allowed_values(c)) for c in icp.criteria]
        signals = engagement.signals
        types = sorted(engagement.activity_types)
        self._type_code = {t: i for i, t in enumerate(types)}
        # member[s, code]: type ``code`` counts for signal s; the last column is "no signal"
        self._member = np.array([[t in set(s.activity_types) for t in types] + [False] for s in signals],
                                dtype=bool).reshape(len(signals), len(types) + 1)
        self._unknown = len(types)
        self._windows = np.array(engagement.windows_days, dtype=np.int64) * DAY_US
        self._longest = max(engagement.windows_days) * DAY_US
        self._half_life = np.array([s.half_life_days for s in signals], dtype=np.float64)[:, None]
        self._count_names = [[f"eng_{s.name}_{w}d" for w in engagement.windows_days] for s in signals]
        self._since_names = [f"eng_{s.name}_days_since" for s in signals]
        self._decay_names = [f"eng_{s.name}_decay" for s in signals]
        self._active_name = f"eng_active_days_{max(engagement.windows_days)}d"

    # ------------------------------------------------------------------ fit

    def fit(self, lead: dict, account: dict | None) -> dict[str, object]:
        """``fit_<c>`` (float, NaN unknown) and ``fit_<c>_value`` (float or str/None) per criterion.

        ``account`` None means the lead's account is not known: every account
        criterion is unknown, as in a batch whose accounts table lacks the row.
        """
        out: dict[str, object] = {}
        for c, flag, value_name, allowed in self._criteria:
            row = lead if c.table == "leads" else account
            raw = None if row is None else row.get(c.column)
            match, value = criterion_value(c, raw, allowed)
            if flag is not None:
                out[flag] = match
            if value_name is not None:
                out[value_name] = value
        return out

    # ------------------------------------------------------------ engagement

    def engagement_values(self, types: Sequence[str], occ: np.ndarray, rec: np.ndarray, cutoff: int,
                          created: int) -> dict[str, float]:
        """Engagement features and ``lead_age_days`` at ``cutoff`` (µs), from events in µs.

        ``types`` are the events' activity types (str), ``occ`` and ``rec`` their
        occurred and recorded times (int64 µs since the epoch, in the same order),
        ``created`` the lead's creation time in µs.
        """
        occ = np.asarray(occ, dtype=np.int64)
        rec = np.asarray(rec, dtype=np.int64)
        ok = (occ < cutoff) & (rec < cutoff)
        idx = np.flatnonzero(ok)
        n_sig = len(self._since_names)
        out: dict[str, float] = {}
        if len(idx) == 0:
            for s in range(n_sig):
                for name in self._count_names[s]:
                    out[name] = 0.0
                out[self._since_names[s]] = math.nan
                out[self._decay_names[s]] = 0.0
            out[self._active_name] = 0.0
            out["eng_days_since_any"] = math.nan
            out["lead_age_days"] = float(np.int64(cutoff - created) / DAY_US)
            return out
        # the memory engine's order: events by occurred_at, ties in input order
        idx = idx[np.argsort(occ[idx], kind="stable")]
        e_occ = occ[idx]
        age = cutoff - e_occ  # int64 µs, > 0; descending
        age_days = age / DAY_US
        tc = self._type_code
        unknown = self._unknown
        code = np.fromiter((tc.get(types[i], unknown) for i in idx.tolist()), dtype=np.int64, count=len(idx))
        member = self._member[:, code]  # (signals, events)
        in_window = age[None, :] <= self._windows[:, None]  # (windows, events)
        counts = member.astype(np.int64) @ in_window.T.astype(np.int64)  # (signals, windows), exact
        ages = np.where(member, age[None, :], _NO_AGE)
        latest = ages.min(axis=1)
        weights = np.where(member, 0.5 ** (age_days[None, :] / self._half_life), 0.0)
        decay = np.cumsum(weights, axis=1)[:, -1]  # sequential, in event order: bincount's sum
        since = latest / DAY_US
        counts_f = counts.astype(np.float64).tolist()
        since_l = since.tolist()
        decay_l = decay.tolist()
        latest_l = latest.tolist()
        for s in range(n_sig):
            for name, v in zip(self._count_names[s], counts_f[s], strict=True):
                out[name] = v
            out[self._since_names[s]] = math.nan if latest_l[s] == _NO_AGE else since_l[s]
            out[self._decay_names[s]] = decay_l[s]
        days = e_occ[age <= self._longest] // DAY_US
        out[self._active_name] = float(len(set(days.tolist())))
        out["eng_days_since_any"] = float(age[-1] / DAY_US)
        out["lead_age_days"] = float(np.int64(cutoff - created) / DAY_US)
        return out

    def warn_unknown_types(self, types: Sequence[str], stacklevel: int = 2) -> None:
        """``build_features``' warning about activity types that no signal lists, for one lead's events."""
        tc = self._type_code
        counts: dict[str, int] = {}
        for t in types:
            if t not in tc:
                counts[t] = counts.get(t, 0) + 1
        if not counts:
            return
        warnings.warn(unknown_types_warning(counts, self.engagement.activity_types), UserWarning,
                      stacklevel=stacklevel + 1)

    def unknown_types(self, types: Sequence[str], occ: np.ndarray, rec: np.ndarray, cutoff: int) -> dict[str, int]:
        """Per type no signal lists, how many of the events (occurred and recorded before ``cutoff``) have it.

        In first-seen order; empty (the usual case) when every type is listed.
        """
        tc = self._type_code
        odd = [i for i, t in enumerate(types) if t not in tc]
        counts: dict[str, int] = {}
        if not odd:  # the usual case: no NumPy access at all
            return counts
        occ_l, rec_l = np.asarray(occ)[odd].tolist(), np.asarray(rec)[odd].tolist()
        for i, o, r in zip(odd, occ_l, rec_l, strict=True):
            if o < cutoff and r < cutoff:
                counts[types[i]] = counts.get(types[i], 0) + 1
        return counts

    def features(self, lead: dict, account: dict | None, types: Sequence[str], occ: np.ndarray,
                 rec: np.ndarray, cutoff: int, created: int) -> dict[str, object]:
        """Every feature of the spec, in spec order, for one lead at ``cutoff`` (µs)."""
        values = self.fit(lead, account)
        values.update(self.engagement_values(types, occ, rec, cutoff, created))
        return {name: values[name] for name in self.names}
