"""The as-of engagement engine: every row has the same cutoff ``T``; no sort at all.

Fastest for: many leads at one cutoff (the as-of scoring table): 5.7-7.0x faster
than the runner-up (the running engine) on the 200k-lead world's as-of table
(``benchmarks/engines.py``, 2026-12-05; ``docs/scaling.md``, "The engines").

The as-of scoring table (:func:`propensity.features.cutoffs.scoring_cutoffs`, what
``propensity features --as-of DATE`` builds) has one row per open lead, all at one
cutoff ``T``. Then every engagement feature is a plain aggregate per lead over the
eligible events (``occurred_at < T`` and ``recorded_at < T``; see
:func:`propensity.features.pipeline.build_features` for the definitions), and the
running engine's sort of every event by (lead, time) is not needed:

- events are grouped by ``type class * (n_leads + 1) + lead position + 1``, a
  small integer (lead -1, an unknown lead, falls in slot 0 of a class, never
  read), straight from :meth:`CrmExport.activity_arrays` (no copy, no sort, no
  per-request lead mapping); types that belong to the same signals share a class
  (every type no signal lists is one class), so the accumulators grow with the
  catalogue, not with the export's types;
- per group, ``ufunc.at`` (NumPy >= 2 has a fast path for it) accumulates the
  latest ``occurred_at`` (``np.maximum.at``), the decay terms
  ``0.5 ** (age_days / half_life_days)`` (written as the pairwise engine writes them,
  so each term is bit-identical; only the summation order differs; a type in
  several signals with different half-lives gets one term per half-life) and the
  count per smallest window holding the event (``T - W days <= occurred_at``);
- distinct active days: a bitmap of (day, lead) over the at most ``W + 1`` UTC days
  the longest window touches, set by fancy assignment and summed per lead;
- a signal's features are then sums (counts, decay) or maxima (latest time) over
  its types' rows, each gathered once into the caller's rows.

Events are processed in chunks of ``CHUNK_EVENTS`` (bounded temporaries), up to
``MAX_THREADS`` threads at once, each with its own accumulators, merged at the end.
Work is O(E + L x types) for E events and L leads in the export, whatever the
number of rows; memory is a few arrays of L x types per thread.

Values equal the pairwise engine's: counts, days and active days exactly, decay sums
up to float rounding (~1e-15 relative: the same terms summed in another order).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from propensity.config import EngagementConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.data.activities import ActivityArrays
from propensity.features.rules import signal_membership

__all__ = ["engagement_asof"]

CHUNK_EVENTS = 1 << 19  # events per chunk: bounds the temporaries (a few MB each, cache-friendly)
MAX_THREADS = 2  # chunks computed at once, each thread with its own accumulators
_NONE = np.iinfo(np.int64).min  # "no eligible event" in the latest-time accumulator


def engagement_asof(arrays: ActivityArrays, row_pos: np.ndarray, t: int, n_leads: int,
                    engagement: EngagementConfig, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Engagement features (spec order, without ``lead_age_days``) for rows that all have cutoff ``t``.

    ``arrays``: the export's activities (``lead`` = row position in its ``leads``,
    -1 = unknown lead); ``row_pos``: each row's lead position in the same table;
    ``n_leads``: that table's length; ``t``: the cutoff in µs. ``out`` maps every
    feature name to a writable float64 array of ``len(row_pos)``; filled and returned.
    """
    signals = engagement.signals
    windows = sorted(set(engagement.windows_days))
    n_windows = len(windows)
    longest = windows[-1]
    types = arrays.types
    member = signal_membership(types, engagement)

    # Types that belong to the same signals are one class (all unlisted types one class, say): the
    # accumulators grow with the classes (at most the listed types + 1), not with every type of the export.
    type_class = None
    if len(types):
        classes, inverse = np.unique(member.T, axis=0, return_inverse=True)
        if len(classes) < len(types):
            member, type_class = classes.T, np.asarray(inverse, dtype=np.intp).ravel()
    n_classes = max(member.shape[1], 1)

    # Decay "layers": a class in several signals with different half-lives needs one term per half-life.
    halves: list[list[float]] = [sorted({float(s.half_life_days) for s_idx, s in enumerate(signals)
                                         if member[s_idx, c]}) for c in range(member.shape[1])]
    n_layers = max([len(h) for h in halves] + [1])
    layer_h = np.full((n_layers, n_classes), np.nan)
    for c, hs in enumerate(halves):
        layer_h[:len(hs), c] = hs

    first_day = (t - longest * DAY_US) // DAY_US  # first UTC day that the longest window touches
    n_days = (t - 1) // DAY_US - first_day + 1  # days from first_day to the day before t (<= longest + 1)
    w_us = np.array([w * DAY_US for w in windows], dtype=np.int64)
    plan = _Plan(arrays, t, n_classes, n_windows, n_days, first_day, w_us, layer_h, n_leads, type_class)

    n_ev = len(arrays.lead)
    bounds = list(range(0, n_ev, CHUNK_EVENTS)) + [n_ev]
    chunks = list(zip(bounds[:-1], bounds[1:], strict=True))
    workers = max(1, min(MAX_THREADS, os.cpu_count() or 1, len(chunks)))
    accs = [_Accumulators(n_leads, plan, n_ev) for _ in range(workers)]
    if workers == 1:
        for lo, hi in chunks:
            plan.add_chunk(accs[0], lo, hi)
    else:  # NumPy releases the GIL in most of the steps: on an idle machine the threads' chunks run side by side
        per = -(-len(chunks) // workers)

        def add_chunks(k: int) -> None:
            for lo, hi in chunks[k * per:(k + 1) * per]:
                plan.add_chunk(accs[k], lo, hi)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(add_chunks, range(workers)))
    acc = accs[0]
    for other in accs[1:]:
        acc.merge(other)
    accs.clear()  # the other threads' accumulators go now

    # Per signal, in lead space (each type's accumulators are contiguous rows of length n_leads + 1),
    # then one gather per feature into the caller's rows.
    p = np.asarray(row_pos, dtype=np.int64) + 1
    n_slots = n_leads + 1
    tmp = np.empty(n_slots)
    latest = np.empty(n_slots, dtype=np.int64)
    for s_idx, s in enumerate(signals):
        mine = np.flatnonzero(member[s_idx]).tolist()
        tmp.fill(0.0)
        for j, w in enumerate(windows):  # windows ascending: add the next bucket to the running count
            for c in mine:
                np.add(tmp, acc.cnt[j, c], out=tmp)
            np.take(tmp, p, out=out[names.events_in_window(s.name, w)], mode="clip")
        latest.fill(_NONE)
        for c in mine:
            np.maximum(latest, acc.last[c], out=latest)
        _days(t, latest, p, out[names.days_since(s.name)])
        tmp.fill(0.0)
        h = float(s.half_life_days)
        for c in mine:
            np.add(tmp, acc.decay[halves[c].index(h), c], out=tmp)
        np.take(tmp, p, out=out[names.decay(s.name)], mode="clip")
    del acc.cnt, acc.decay
    np.maximum.reduce(acc.last, axis=0, out=latest)
    _days(t, latest, p, out[names.DAYS_SINCE_ANY])
    del acc.last, latest
    # Active days: the day rows of the bitmap summed per lead (a small integer type holds up to n_days).
    active = np.add.reduce(acc.flags.view(np.uint8), axis=0, dtype=np.uint8 if n_days < 256 else np.int32)
    np.copyto(out[names.active_days(longest)], active[p], casting="unsafe")
    return out


def _days(t: int, latest: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
    """Days from ``latest[p]`` (µs) to ``t`` in ``out``; NaN where there was no event."""
    np.take(latest, p, out=out.view(np.int64), mode="clip")  # int64 times in place, then converted
    ts = out.view(np.int64)
    none = ts == _NONE
    np.subtract(t, ts, out=ts)
    np.divide(ts, DAY_US, out=out)  # elementwise in place: each int is read before its slot is written
    out[none] = np.nan


class _Plan:
    """The constants of one call and the per-chunk step.

    ``n_classes`` type classes, ``n_windows`` windows (``w_us``: their lengths in µs,
    ascending), ``n_days`` days of the bitmap from UTC day number ``first_day``,
    ``layer_h[k, class]``: the half-life of decay layer ``k`` (NaN: none),
    ``type_class``: each type's class (None: each type is its own). Accumulators
    have ``n_slots = n_leads + 1`` columns: slot 0 for unknown leads, then one per lead.
    """

    def __init__(self, arrays: ActivityArrays, t: int, n_classes: int, n_windows: int, n_days: int, first_day: int,
                 w_us: np.ndarray, layer_h: np.ndarray, n_leads: int, type_class: np.ndarray | None) -> None:
        self.arrays, self.t = arrays, t
        self.n_classes, self.n_windows, self.n_days, self.first_day = n_classes, n_windows, n_days, first_day
        self.w_us, self.layer_h, self.type_class = w_us, layer_h, type_class
        self.n_slots = n_leads + 1
        self.longest_us = int(w_us[-1])
        self.single_layer = layer_h.shape[0] == 1

    def add_chunk(self, acc: _Accumulators, lo: int, hi: int) -> None:
        """Add the events ``lo:hi`` of the export to ``acc``."""
        a, t, n_slots = self.arrays, self.t, self.n_slots
        lead, occ, code = a.lead[lo:hi], a.occ[lo:hi], a.code[lo:hi]
        if not len(lead):
            return
        rec = None if a.rec is a.occ else a.rec[lo:hi]
        if occ.max() >= t or (rec is not None and rec.max() >= t):  # else (as of now) every event is eligible
            ok = occ < t
            if rec is not None:
                ok &= rec < t
            idx = np.flatnonzero(ok)
            lead, occ, code = lead[idx], occ[idx], code[idx]
            del idx, ok
            if not len(lead):
                return
        if self.type_class is not None:
            code = self.type_class[code]
        # Group (type, lead): code * (n_leads + 1) + lead + 1; an unknown lead (-1) lands in slot 0, never read.
        g = np.multiply(code, n_slots, dtype=np.int64)
        g += lead
        g += 1
        age = np.subtract(t, occ)
        np.maximum.at(acc.last.reshape(-1), g, occ)
        # Decay terms exactly as the pairwise engine writes them: 0.5 ** ((age / DAY_US) / half_life).
        age_days = age / DAY_US
        for k in range(self.layer_h.shape[0]):
            h = self.layer_h[k][code]
            flat = acc.decay[k].reshape(-1)
            if self.single_layer:  # types in no signal get NaN terms, in groups no signal reads
                x = np.divide(age_days, h, out=h)
                np.add.at(flat, g, np.power(0.5, x, out=x))
            else:
                sel = np.flatnonzero(~np.isnan(h))
                x = age_days[sel] / h[sel]
                np.add.at(flat, g[sel], np.power(0.5, x, out=x))
            del h, x
        del age_days
        # Windows: events with T - longest <= occurred_at, counted in the smallest window that holds them.
        iw = np.flatnonzero(age <= self.longest_us)
        if len(iw):
            age_w = age[iw]
            cell = g[iw]
            step = self.n_classes * n_slots
            for w in self.w_us[:-1]:
                cell += (age_w > w) * step
            flat = acc.cnt.reshape(-1)
            np.add.at(flat, cell, flat.dtype.type(1))  # a Python int takes NumPy's slow path (a cast per element)
            del cell, age_w
            day = occ[iw] // DAY_US
            day -= self.first_day
            day *= n_slots
            day += lead[iw]
            day += 1
            acc.flags.reshape(-1)[day] = True


class _Accumulators:
    """One thread's accumulators: per (class, lead + 1), counts also per window; the bitmap per (day, lead + 1)."""

    def __init__(self, n_leads: int, plan: _Plan, n_events: int) -> None:
        n_slots = n_leads + 1
        self.last = np.full((plan.n_classes, n_slots), _NONE, dtype=np.int64)
        self.cnt = np.zeros((plan.n_windows, plan.n_classes, n_slots),
                            dtype=np.int32 if n_events < 2 ** 31 else np.int64)
        self.decay = np.zeros((plan.layer_h.shape[0], plan.n_classes, n_slots))
        self.flags = np.zeros((plan.n_days, n_slots), dtype=bool)

    def merge(self, other: _Accumulators) -> None:
        np.maximum(self.last, other.last, out=self.last)
        self.cnt += other.cnt
        self.decay += other.decay
        self.flags |= other.flags
