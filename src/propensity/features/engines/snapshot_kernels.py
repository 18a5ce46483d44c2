"""Compiled (Numba) kernels of the snapshot engine: every lead's rows from its own events, in one pass.

Imported only when the snapshot engine runs (see ``snapshots.py``): importing
Numba and loading the kernels from its on-disk cache take a moment that scoring
one lead should not pay. ``cache=True`` keeps the machine code beside this file
(or in Numba's user cache directory where that is read-only), so only the first
run after an install compiles.

The definitions and the time contract are those of
:func:`propensity.features.pipeline.build_features`. Events are grouped
into ranges of leads ("parts", one at a time per thread) and, within a part, by
lead with ascending occurrence day (a two-pass counting sort: by (part, day) over
all events, then by lead within the part; no comparison sort). Per lead, with its
rows sorted by cutoff ``t_0 <= ... <= t_{m-1}``:

- an event is eligible at row ``j`` iff ``max(occurred_at, recorded_at) < t_j``,
  so from its first eligible row ``j_e`` on;
- window counts and distinct active days: the events whose day may fall in the
  longest window (two pointers that only move forward), each checked against the
  exact window start and for eligibility: exact integers;
- days since: the latest ``occurred_at`` per first eligible row, then a running
  maximum: exact;
- decay: each event's term at its first eligible row, carried forward with
  ``D_j = D_{j-1} * 0.5 ** ((t_j - t_{j-1}) / half_life) + A_j``: the reference's
  sum up to float rounding (~1e-15 relative).
"""

from __future__ import annotations

import numpy as np

from propensity.core.jit import compiled
from propensity.core.times import DAY_US

_NONE = np.iinfo(np.int64).min
_SORT_SMALL = 32  # rows of one lead: insertion sort up to this many, merge sort beyond


@compiled
def _group_rows(lo: int, hi: int, row_lead: np.ndarray, row_t: np.ndarray, row_ptr: np.ndarray,
                row_order: np.ndarray) -> None:
    """The rows of leads ``lo <= p < hi`` into ``row_order[row_ptr[lo]:row_ptr[hi]]``, grouped by lead,
    ascending cutoff within a lead (stable)."""
    at = row_ptr[lo:hi].copy()
    for r in range(len(row_lead)):
        p = row_lead[r]
        if p >= lo and p < hi:
            row_order[at[p - lo]] = r
            at[p - lo] += 1
    for p in range(lo, hi):
        a, b = row_ptr[p], row_ptr[p + 1]
        if b - a <= _SORT_SMALL:
            for i in range(a + 1, b):
                r = row_order[i]
                t = row_t[r]
                j = i - 1
                while j >= a and row_t[row_order[j]] > t:
                    row_order[j + 1] = row_order[j]
                    j -= 1
                row_order[j + 1] = r
        else:
            seg = row_order[a:b].copy()
            idx = np.argsort(row_t[seg], kind="mergesort")
            for i in range(b - a):
                row_order[a + i] = seg[idx[i]]


@compiled
def count_events(lead: np.ndarray, occ: np.ndarray, lo: int, hi: int, n_leads: int, part_of: np.ndarray,
                 n_parts: int, day0: int, n_days: int, lead_count: np.ndarray) -> np.ndarray:
    """Events ``lo <= i < hi``: add each to its lead's count; return the counts per (part, day)."""
    hist = np.zeros((n_parts, n_days), np.int64)
    for i in range(lo, hi):
        p = lead[i]
        if p >= 0:
            lead_count[p] += 1
            hist[part_of[p], occ[i] // DAY_US - day0] += 1
    return hist


@compiled
def scatter_events(lead: np.ndarray, occ: np.ndarray, rec: np.ndarray, code: np.ndarray, type_class: np.ndarray,
                   lo: int, hi: int, part_of: np.ndarray, part_first: np.ndarray, day0: int, at: np.ndarray,
                   t_occ: np.ndarray, t_elig: np.ndarray, t_cls: np.ndarray, t_lead: np.ndarray) -> None:
    """Events ``lo <= i < hi`` to their place by (part, day), in file order (``at[part, day]``: next free place).

    Stored: time, eligibility time ``max(occurred_at, recorded_at)``, type class and
    lead position relative to the part's first lead.
    """
    for i in range(lo, hi):
        p = lead[i]
        if p < 0:
            continue
        q = part_of[p]
        d = occ[i] // DAY_US - day0
        k = at[q, d]
        at[q, d] = k + 1
        o = occ[i]
        r = rec[i]
        t_occ[k] = o
        t_elig[k] = r if r > o else o
        t_cls[k] = type_class[code[i]]
        t_lead[k] = p - part_first[q]


@compiled
def part_rows(lo: int, hi: int, ev_ptr: np.ndarray, ev_base: int, t_occ: np.ndarray, t_elig: np.ndarray,
              t_cls: np.ndarray, t_lead: np.ndarray, s_occ: np.ndarray, s_elig: np.ndarray, s_cls: np.ndarray,
              cls_ptr: np.ndarray, cls_sig: np.ndarray, half_life: np.ndarray, w_us: np.ndarray,
              row_lead: np.ndarray, row_ptr: np.ndarray, row_order: np.ndarray, row_t: np.ndarray, cut_t: np.ndarray,
              carry: np.ndarray, out: np.ndarray, col_count: np.ndarray, col_since: np.ndarray,
              col_decay: np.ndarray, col_active: int, col_since_any: int) -> None:
    """Fill ``out[col, row]`` for the rows of the part's leads ``lo <= p < hi``.

    ``t_*[ev_ptr[lo] - ev_base : ev_ptr[hi] - ev_base]``: the part's events as
    :func:`scatter_events` left them (by day); they are regrouped by lead into the
    ``s_*`` scratch arrays. ``col_count[s, i]``, ``col_since[s]``,
    ``col_decay[s]``: the rows of ``out`` that take signal ``s``'s count in window
    ``w_us[i]`` (ascending), days since and decay. ``row_ptr``: where each lead's
    rows go in ``row_order`` (filled here for the part's leads). ``cut_t``: the distinct cutoffs
    (ascending) and ``carry[k, s]`` the decay factor from ``cut_t[k]`` to
    ``cut_t[k + 1]``, or both empty (then each factor is computed).
    """
    n_sig = len(half_life)
    n_win = len(w_us)
    w_max = w_us[n_win - 1]
    _group_rows(lo, hi, row_lead, row_t, row_ptr, row_order)
    first_ev = ev_ptr[lo]
    # Regroup by lead; a stable pass over day-ordered events leaves each lead's sorted by day.
    at = ev_ptr[lo:hi + 1] - first_ev
    start = first_ev - ev_base
    for k in range(start, ev_ptr[hi] - ev_base):
        q = t_lead[k]
        j = at[q]
        at[q] = j + 1
        s_occ[j] = t_occ[k]
        s_elig[j] = t_elig[k]
        s_cls[j] = t_cls[k]
    max_rows = 0
    for p in range(lo, hi):
        max_rows = max(max_rows, row_ptr[p + 1] - row_ptr[p])
    tt = np.empty(max_rows, np.int64)
    kk = np.empty(max_rows, np.int64)
    acc_decay = np.empty((max_rows, n_sig), np.float64)
    acc_latest = np.empty((max_rows, n_sig), np.int64)
    acc_any = np.empty(max_rows, np.int64)
    decay = np.empty(n_sig, np.float64)
    latest = np.empty(n_sig, np.int64)
    counts = np.empty((n_sig, n_win), np.int64)
    n_cut = len(cut_t)
    for p in range(lo, hi):
        ra, rb = row_ptr[p], row_ptr[p + 1]
        m = rb - ra
        if m == 0:
            continue
        ea, eb = ev_ptr[p] - first_ev, ev_ptr[p + 1] - first_ev
        for j in range(m):
            tt[j] = row_t[row_order[ra + j]]
            if n_cut:
                kk[j] = np.searchsorted(cut_t, tt[j])
        acc_decay[:m] = 0.0
        acc_latest[:m] = _NONE
        acc_any[:m] = _NONE
        # Days since and decay: each event at its first eligible row.
        for e in range(ea, eb):
            j = np.searchsorted(tt[:m], s_elig[e], side="right")  # first row with t_j > max(occ, rec)
            if j == m:
                continue
            o = s_occ[e]
            acc_any[j] = max(acc_any[j], o)
            c = s_cls[e]
            age_days = (tt[j] - o) / DAY_US
            for q in range(cls_ptr[c], cls_ptr[c + 1]):
                s = cls_sig[q]
                acc_decay[j, s] += 0.5 ** (age_days / half_life[s])
                acc_latest[j, s] = max(acc_latest[j, s], o)
        decay[:] = 0.0
        latest[:] = _NONE
        latest_any = _NONE
        first = ea  # first event whose day is not before the longest window's first day
        stop = ea  # first event on a day after that of t - 1 µs, the last instant before the cutoff
        for j in range(m):
            t = tt[j]
            r = row_order[ra + j]
            step = j > 0 and tt[j] != tt[j - 1]
            table = step and n_cut > 0 and kk[j] == kk[j - 1] + 1
            gap_days = (t - tt[j - 1]) / DAY_US if step else 0.0
            for s in range(n_sig):
                if table:
                    decay[s] *= carry[kk[j - 1], s]
                elif step:
                    decay[s] *= 0.5 ** (gap_days / half_life[s])
                decay[s] += acc_decay[j, s]
                out[col_decay[s], r] = decay[s]
                latest[s] = max(latest[s], acc_latest[j, s])
                out[col_since[s], r] = np.nan if latest[s] == _NONE else (t - latest[s]) / DAY_US
            latest_any = max(latest_any, acc_any[j])
            out[col_since_any, r] = np.nan if latest_any == _NONE else (t - latest_any) / DAY_US
            # Window counts and distinct active days: eligible events with t - W_max <= occurred_at.
            w_start = t - w_max
            first_day = w_start // DAY_US
            last_day = (t - 1) // DAY_US
            while first < eb and s_occ[first] // DAY_US < first_day:
                first += 1
            stop = max(stop, first)
            while stop < eb and s_occ[stop] // DAY_US <= last_day:
                stop += 1
            counts[:] = 0
            active = 0
            seen = _NONE
            for e in range(first, stop):
                o = s_occ[e]
                if s_elig[e] >= t or o < w_start:
                    continue
                age = t - o
                c = s_cls[e]
                for q in range(cls_ptr[c], cls_ptr[c + 1]):
                    s = cls_sig[q]
                    for i in range(n_win):
                        if age <= w_us[i]:
                            counts[s, i] += 1
                d = o // DAY_US
                if d != seen:
                    active += 1
                    seen = d
            for s in range(n_sig):
                for i in range(n_win):
                    out[col_count[s, i], r] = counts[s, i]
            out[col_active, r] = active
