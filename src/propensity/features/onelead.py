"""The features of one lead at one cutoff, in plain Python and NumPy: no DataFrames.

A service scoring one lead at a time cannot afford pandas' construction costs
(a few milliseconds for the frames of a one-lead export and the feature table).
:class:`OneLead` computes the same values as
:func:`propensity.features.pipeline.build_features` (see its docstring for the
definitions and the time contract: an event counts only if it occurred **and**
was recorded strictly before the cutoff) for one lead, from its lead row, its
account row (or ``None``) and its events as arrays of µs since the epoch.

Values are identical to the ``pairwise`` engine's, bit for bit: the same NumPy
operations in the same order (the decay sum is a sequential sum over events in
``occurred_at`` order, as ``bincount`` does it), and equal to the other engines'
up to their float rounding of decay sums (~1e-14 relative). Criterion matching,
value reading and the unknown-type words are the batch's own
(:mod:`propensity.features.rules`).
"""


from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.features.rules import allowed_values, criterion_value, unknown_types_warning
from propensity.features.spec import build_feature_spec

__all__ = ["OneLead"]


_NO_AGE = np.iinfo(np.int64).max


class OneLead:
    """Feature values of one lead at one cutoff, from the ICP and engagement configs.

    Built once per scorer (it only reads the configs); :meth:`features` keeps no
    state between calls, so one instance is safe across threads.
    """

    def __init__(self, icp: IcpConfig, engagement: EngagementConfig):
        self.icp = icp
        self.engagement = engagement
        self.names = [f.name for f in build_feature_spec(icp, engagement)]
        self._criteria = [(c, names.fit_match(c.name) if c.kind != "value" else None,
                           names.fit_value(c.name) if c.raw else None, allowed_values(c)) for c in icp.criteria]
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
        self._count_names = [[names.events_in_window(s.name, w) for w in engagement.windows_days] for s in signals]
        self._since_names = [names.days_since(s.name) for s in signals]
        self._decay_names = [names.decay(s.name) for s in signals]
        self._active_name = names.active_days(max(engagement.windows_days))

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
            out[names.DAYS_SINCE_ANY] = math.nan
            out[names.LEAD_AGE] = float(np.int64(cutoff - created) / DAY_US)
            return out
        # the pairwise engine's order: events by occurred_at, ties in input order
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
        out[names.DAYS_SINCE_ANY] = float(age[-1] / DAY_US)
        out[names.LEAD_AGE] = float(np.int64(cutoff - created) / DAY_US)
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
