"""The running-totals engagement engine: sorted arrays and binary search, NumPy only.

Computes exactly the engagement features of the pairwise engine
(:func:`propensity.features.engines.pairwise.engagement_pairwise`; see
:func:`propensity.features.pipeline.build_features` for the definitions and the time
contract) without joining every cutoff row to every event of its lead.

Its case: many distinct cutoffs (more than ``engines.MAX_SNAPSHOTS``), where rows
per lead are unbounded. Its cost does not grow with a lead's rows times its events
in the window, the snapshot engine's does: for one lead with 100k-300k events in 90
days seen at 2,000-10,000 times it is 11-42x faster than the snapshot engine. On the
generated world's tables with many distinct cutoffs (a few rows per lead) the
snapshot engine is 1.1-1.8x faster (``benchmarks/engines.py``, 2026-12-05;
``docs/scaling.md``, "The engines").

Events split in two:

- **on time** (``recorded_at <= occurred_at``, ~95% in CRM exports): eligible for a
  cutoff ``T`` iff ``occurred_at < T``. Sorted once by (lead, occurred_at), the
  eligible events of a row are a prefix of its lead's block, and the events in a
  window ``[T - W, T)`` a contiguous range, found by ``np.searchsorted``. Counts are
  differences of prefix counts, days-since reads the last event of the prefix,
  distinct active days are prefix counts of "new day" flags, and decay is a sum of
  ``2 ** ((occ - a) / h)`` over the prefix (anchor ``a`` = the lead's first event,
  so the terms are >= 1 and cannot cancel) rescaled by ``2 ** (-(T - a) / h)``.
- **backfilled** (``recorded_at > occurred_at``) and the events of leads whose span
  would overflow the anchored terms: joined to the rows of their lead and filtered
  by the full contract, as in the pairwise engine; they are few. Their distinct days
  are added only where no on-time eligible event already covers that day.

Large inputs (more than ``CHUNK_EVENTS`` events) are split into batches of
leads with similar work; each batch gets its own sort and temporaries (a few
hundred MB at most), up to ``MAX_THREADS`` batches run at once (NumPy releases
the GIL in its sorts, searches, gathers and ufuncs), and each batch's columns are
written into the caller's output arrays. Activities with ``lead = -1`` (leads not
asked for) are skipped.

Work is O((E + R) log E) for E events and R rows (plus the rows' share of their
lead's events in one ``np.add.reduceat`` for decay), with int64 keys in memory.

Keys: ``lead * S + bucket(occurred_at)`` must fit in int64; with microsecond
buckets a million leads over two years would not, so the bucket is the smallest
number of microseconds that fits (usually 1 for small batches) and events that
share a bucket with a cutoff are resolved exactly.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from propensity.config import EngagementConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.features.engines.events import Events

__all__ = ["engagement_running"]

_MAX_EXPONENT = 960.0  # anchored decay terms are 2**x, x <= this (sums stay finite); wider leads: exact path
_KEY_LIMIT = 2 ** 61
CHUNK_EVENTS = 1_000_000  # events per batch of leads: bounds the temporaries and keeps them in cache
MAX_THREADS = 2  # batches computed at once (each holds its temporaries)


def engagement_running(row_lead: np.ndarray, row_t: np.ndarray, events: Events,
                       engagement: EngagementConfig, unit_us: int | None = None,
                       out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Engagement features per row, in spec order (without ``lead_age_days``).

    Same inputs and outputs as :func:`propensity.features.engines.pairwise.engagement_pairwise`.
    ``unit_us`` forces the key bucket width (tests use it to exercise the exact
    resolution of cutoffs that fall in an event's bucket). ``out``, if given, maps
    every feature name to a writable float64 array of length ``len(row_lead)``
    (e.g. rows of one preallocated block); the features are written there and
    ``out`` is returned.
    """
    n = len(row_lead)
    windows = list(engagement.windows_days)
    signals = engagement.signals
    if out is None:
        out = {name: np.empty(n) for name in _names(signals, windows)}
    row_lead = np.asarray(row_lead, dtype=np.int64)
    row_t = np.asarray(row_t, dtype=np.int64)
    if len(events.lead) <= CHUNK_EVENTS or n == 0:
        _run_batch(row_lead, row_t, _compact(events), engagement, unit_us, out)
        return out
    chunks = _lead_chunks(row_lead, events.lead, -(-len(events.lead) // CHUNK_EVENTS))  # events of lead -1: none
    ev_order, ev_bounds = _group(events.lead, chunks)
    row_order, row_bounds = _group(row_lead, chunks)

    def compute_batch(k: int) -> None:
        lo = chunks[k]
        rows = row_order[row_bounds[k]:row_bounds[k + 1]]
        if not len(rows):
            return
        ev = ev_order[ev_bounds[k]:ev_bounds[k + 1]]
        occ = events.occ[ev]
        part = Events(lead=np.subtract(events.lead[ev], lo, dtype=np.int64), occ=occ, rec=events.rec[ev],
                      code=events.code[ev], day=occ // DAY_US, types=events.types,  # code: any int dtype
                      member=events.member)
        del ev, occ
        local = {name: np.empty(len(rows)) for name in out}
        _run_batch(row_lead[rows] - lo, row_t[rows], part, engagement, unit_us, local)
        del part
        for name, values in local.items():
            out[name][rows] = values

    workers = max(1, min(MAX_THREADS, os.cpu_count() or 1))
    if workers == 1:
        for k in range(len(chunks) - 1):
            compute_batch(k)
    else:  # NumPy releases the GIL in sorts, searches, gathers and ufuncs: chunks run side by side
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(compute_batch, range(len(chunks) - 1)))
    return out


def _compact(events: Events) -> Events:
    """Events with int64 lead and code, without ``lead = -1`` rows, with ``day``."""
    keep = events.lead >= 0
    if keep.all() and events.day is not None and events.lead.dtype == np.int64 and events.code.dtype == np.int64:
        return events
    idx = np.flatnonzero(keep)
    occ = events.occ[idx]
    return Events(lead=events.lead[idx].astype(np.int64), occ=occ, rec=events.rec[idx],
                  code=events.code[idx].astype(np.int64), day=occ // DAY_US, types=events.types,
                  member=events.member)


def _lead_chunks(row_lead: np.ndarray, ev_lead: np.ndarray, k: int) -> np.ndarray:
    """Boundaries ``b[0]=0 < ... < b[-1]=n_leads`` splitting leads into ~``k`` ranges of similar work."""
    n_leads = int(max(row_lead.max(initial=-1), ev_lead.max(initial=-1))) + 1
    step = max(1, len(ev_lead) // (8 * n_leads + 1))  # a systematic sample of events is enough to balance
    sample = ev_lead[::step]
    work = np.bincount(sample[sample >= 0], minlength=n_leads).astype(np.float64) * step
    work += np.bincount(row_lead, minlength=n_leads)
    cum = np.cumsum(work)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, k) / k)
    return np.unique(np.concatenate([[0], cuts, [n_leads]])).astype(np.int64)


def _group(lead: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``lead`` grouped by range (stable) and each range's offsets into them.

    A negative lead (not requested) goes after the last range and is never used.
    """
    k = len(bounds) - 1
    lut = np.empty(int(bounds[-1]) + 1, dtype=np.uint8 if k < 255 else np.int32)  # small keys: radix sort
    lut[:-1] = np.repeat(np.arange(k), np.diff(bounds))
    lut[-1] = k  # lead -1 reads the last slot
    part = lut[lead]
    order = np.argsort(part, kind="stable")
    offsets = np.zeros(k + 2, dtype=np.int64)
    np.cumsum(np.bincount(part, minlength=k + 1), out=offsets[1:])
    return order, offsets[:k + 1]


def _run_batch(row_lead: np.ndarray, row_t: np.ndarray, events: Events, engagement: EngagementConfig,
               unit_us: int | None, out: dict[str, np.ndarray]) -> None:
    """The engine on one batch of leads (all their rows and events), writing into ``out``."""
    n = len(row_lead)
    windows = list(engagement.windows_days)
    longest = max(windows)
    signals = engagement.signals
    out_counts = {(s_idx, w): out[names.events_in_window(s.name, w)]
                  for s_idx, s in enumerate(signals) for w in windows}
    for col in out_counts.values():
        col.fill(0.0)
    since = np.full((len(signals), n), np.iinfo(np.int64).max, dtype=np.int64)  # min age, µs
    decay = [out[names.decay(s.name)] for s in signals]
    for col in decay:
        col.fill(0.0)
    active = out[names.active_days(longest)]
    active.fill(0.0)
    since_any = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)

    if n and len(events.lead):
        n_leads = int(max(row_lead.max(), events.lead.max())) + 1
        exact = events.rec > events.occ
        on = _OnTime(events, ~exact, n_leads, unit_us)
        h_min = min(s.half_life_days for s in signals) * DAY_US
        wide = on.lead_span() / h_min > _MAX_EXPONENT
        if wide.any():  # move those leads' events to the exact path
            exact |= wide[events.lead]
            on = _OnTime(events, ~exact, n_leads, unit_us)

        # Rows sorted by (lead, cutoff): searches in order, and each lead's rows contiguous.
        # Ties (same lead and bucket) may come in any order: each row is computed on its own.
        perm = np.argsort(row_lead * np.int64(on.S) + on.bucket(row_t))
        lead_r, t_r = row_lead[perm], row_t[perm]
        _on_time_part(on, row_lead, row_t, lead_r, t_r, signals, windows, longest, perm, out_counts, since, decay,
                      active, since_any)
        if exact.any():
            _exact_part(on, events, np.flatnonzero(exact), lead_r, t_r, signals, windows, longest, perm,
                        out_counts, since, decay, active, since_any)

    for s_idx, s in enumerate(signals):
        _days(since[s_idx], out[names.days_since(s.name)])
    _days(since_any, out[names.DAYS_SINCE_ANY])


def _names(signals, windows) -> list[str]:
    out = []
    for s in signals:
        out += [names.events_in_window(s.name, w) for w in windows]
        out += [names.days_since(s.name), names.decay(s.name)]
    return out + [names.active_days(max(windows)), names.DAYS_SINCE_ANY]


def _days(age: np.ndarray, out: np.ndarray) -> None:
    """Ages in µs to days in ``out``; NaN where no event (age = int64 max)."""
    np.divide(age, DAY_US, out=out)
    out[age == np.iinfo(np.int64).max] = np.nan


class _OnTime:
    """On-time events sorted by (lead, occurred_at), with exact position search."""

    def __init__(self, events: Events, keep: np.ndarray, n_leads: int, unit_us: int | None) -> None:
        sel = np.flatnonzero(keep)
        occ = events.occ[sel]
        lead = events.lead[sel].astype(np.int64)
        self.tmin = int(occ.min()) if len(occ) else 0
        span = (int(occ.max()) - self.tmin) if len(occ) else 0
        if unit_us is None:
            unit_us = max(1, -(-(n_leads * (span + 4)) // _KEY_LIMIT))
        self.unit = int(unit_us)
        self.bmax = span // self.unit + 2  # query buckets are clipped to [0, bmax]
        self.S = self.bmax + 1
        if n_leads * self.S >= 2 ** 63:
            raise OverflowError("running engine: lead x time key does not fit in int64")
        key = lead * np.int64(self.S) + ((occ - self.tmin) // self.unit + 1)
        del lead
        order = np.argsort(key)  # ties: equal keys; exact times are resolved below
        key = key[order]
        if self.unit > 1:  # order events that share a (lead, bucket) by their exact time
            tie = np.zeros(len(key), dtype=bool)
            same = key[1:] == key[:-1]
            tie[1:] |= same
            tie[:-1] |= same
            if tie.any():
                pos = np.flatnonzero(tie)
                sub = order[pos]
                order[pos] = sub[np.lexsort((occ[sub], key[pos]))]
        self.key = key
        self.occ = occ[order]
        idx = sel[order]
        del order, sel, occ
        self.member = events.member
        if len(idx) >= 2 ** 31:
            raise OverflowError("running engine: 2**31 or more events in one batch")
        self.code = events.code[idx]
        self.day = self.occ // DAY_US  # UTC day number, as events.day (cheaper than a gather)
        self.lead = self.key // np.int64(self.S)
        counts = np.bincount(self.lead, minlength=n_leads)
        self.start = np.zeros(n_leads + 1, dtype=np.int64)
        np.cumsum(counts, out=self.start[1:])

    def bucket(self, t: np.ndarray) -> np.ndarray:
        return np.clip((t - self.tmin) // self.unit + 1, 0, self.bmax)

    def lead_span(self) -> np.ndarray:
        """Per lead, last minus first on-time occurred_at (0 without events)."""
        s, e = self.start[:-1], self.start[1:]
        has = e > s
        span = np.zeros(len(s), dtype=np.int64)
        span[has] = self.occ[e[has] - 1] - self.occ[s[has]]
        return span

    def pos(self, lead: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Global position after the last event of ``lead`` with occurred_at < t."""
        q = lead * np.int64(self.S) + self.bucket(t)
        lo = np.searchsorted(self.key, q, side="left")
        if self.unit == 1:  # a shared bucket means occ == t: not before t
            return lo
        if not len(self.key):
            return lo
        hit = np.flatnonzero(self.key[np.minimum(lo, len(self.key) - 1)] == q)  # t shares a bucket with events
        if len(hit):
            kk = np.searchsorted(self.key, q[hit], side="right") - lo[hit]
            rep = np.repeat(hit, kk)
            within = np.arange(len(rep)) - np.repeat(np.cumsum(kk) - kk, kk)
            before = self.occ[lo[rep] + within] < t[rep]
            lo = lo + np.bincount(rep[before], minlength=len(lo))
        return lo


def _on_time_part(on: _OnTime, row_lead, row_t, lead_r, t_r, signals, windows, longest, perm, out_counts, since,
                  decay, active, since_any) -> None:
    """Searches run on the rows sorted by (lead, cutoff) (``lead_r``, ``t_r``, ``perm``);
    the positions found are put back in the caller's row order once, so that the
    per-feature work writes its columns in order instead of scattering each one."""
    n = len(row_lead)
    p_ts = on.pos(lead_r, t_r)
    p_t = np.empty(n, dtype=np.int64)
    p_t[perm] = p_ts
    p_w = {}
    for w in windows:
        p_w[w] = np.empty(n, dtype=np.int64)
        p_w[w][perm] = on.pos(lead_r, t_r - w * DAY_US)
    start_s = on.start[lead_r]
    start = on.start[row_lead]
    has = p_t > start
    since_any[has] = row_t[has] - on.occ[p_t[has] - 1]

    # Distinct days in [p_W, p_T): one plus the day changes after the first event.
    new = np.ones(len(on.day), dtype=bool)
    if len(new) > 1:
        new[1:] = (on.day[1:] != on.day[:-1]) | (on.lead[1:] != on.lead[:-1])
    c = np.zeros(len(new) + 1, dtype=np.int32)  # fewer than 2**31 events per batch
    np.cumsum(new, out=c[1:], dtype=np.int32)
    del new
    p_l = p_w[longest]
    some = p_t > p_l
    active[some] = 1 + c[p_t[some]] - c[p_l[some] + 1]

    first = on.occ[np.minimum(on.start[:-1], max(len(on.occ) - 1, 0))] if len(on.occ) else np.zeros(0, np.int64)
    for s_idx, s in enumerate(signals):
        m = on.member[s_idx][on.code]
        idx = np.flatnonzero(m)
        c = np.zeros(len(m) + 1, dtype=np.int32)
        np.cumsum(m, out=c[1:], dtype=np.int32)
        del m
        c_t = c[p_t]
        for w in windows:
            np.subtract(c_t, c[p_w[w]], out=out_counts[(s_idx, w)], casting="unsafe")
        got = c_t > c[start]
        since[s_idx, got] = row_t[got] - on.occ[idx[c_t[got] - 1]]
        # Decay in sorted row order: reduceat then sums each lead's prefix with little wasted work.
        h = s.half_life_days * DAY_US
        terms = np.empty(len(idx) + 1)
        terms[:-1] = np.exp2((on.occ[idx] - first[on.lead[idx]]) / h)
        terms[-1] = 0.0
        c_ts, c_ss = c[p_ts], c[start_s]
        got_s = c_ts > c_ss
        ind = np.empty(2 * n, dtype=np.int64)
        ind[0::2], ind[1::2] = c_ss, c_ts
        total = np.add.reduceat(terms, ind)[0::2][got_s] if n else np.zeros(0)
        anchor = first[lead_r[got_s]]
        decay[s_idx][perm[got_s]] = np.exp2(np.log2(total) - (t_r[got_s] - anchor) / h)
        del c, idx, terms, ind


def _exact_part(on: _OnTime, events: Events, ev: np.ndarray, lead_r, t_r, signals, windows, longest, perm,
                out_counts, since, decay, active, since_any) -> None:
    """Backfilled (and overflow-prone) events joined to their lead's rows, filtered exactly."""
    n_leads = len(on.start) - 1
    r_start = np.searchsorted(lead_r, np.arange(n_leads + 1))
    ev_lead = events.lead[ev]
    k = r_start[ev_lead + 1] - r_start[ev_lead]
    pair_ev = np.repeat(ev, k)
    pair_row = np.arange(len(pair_ev)) - np.repeat(np.cumsum(k) - k - r_start[ev_lead], k)
    t = t_r[pair_row]
    ok = (events.occ[pair_ev] < t) & (events.rec[pair_ev] < t)
    pair_ev, pair_row, t = pair_ev[ok], pair_row[ok], t[ok]
    age = t - events.occ[pair_ev]
    n = len(lead_r)
    orig = perm[pair_row]  # the caller's row order: the adds below then sweep the output columns in order
    np.minimum.at(since_any, orig, age)
    code = events.code[pair_ev]
    for s_idx, s in enumerate(signals):
        m = events.member[s_idx][code]
        rows_m, age_m = orig[m], age[m]
        for w in windows:
            out_counts[(s_idx, w)] += np.bincount(rows_m[age_m <= w * DAY_US], minlength=n)
        np.minimum.at(since[s_idx], rows_m, age_m)
        decay[s_idx] += np.bincount(rows_m, weights=0.5 ** (age_m / DAY_US / s.half_life_days), minlength=n)
    # Active days: a backfilled event's day counts unless an on-time eligible event covers it.
    in_w = age <= longest * DAY_US
    pr, day, tt = pair_row[in_w], events.day[pair_ev[in_w]], t[in_w]
    lr = lead_r[pr]
    lo = np.maximum(tt - longest * DAY_US, day * DAY_US)
    hi = np.minimum(tt, (day + 1) * DAY_US)
    covered = on.pos(lr, hi) > on.pos(lr, lo)
    pr, day = pr[~covered], day[~covered]
    if len(pr):
        pairs = np.unique(pr * np.int64(1 << 24) + (day - day.min()))
        active += np.bincount(perm[pairs >> 24], minlength=n)
