"""The snapshot engagement engine: a few cutoffs at UTC midnight, many leads; no sort at all.

The training table (:func:`propensity.features.cutoffs.training_cutoffs`) has one
row per open lead at each of a few snapshot dates, all at UTC midnight (23 dates
for two years of a 1M-lead world, 7.9M rows). With day-aligned cutoffs
``T_0 < ... < T_{K-1}`` (as UTC day numbers) every part of the time contract (see
``pipeline.py``) is a statement about whole days, because
``x < T_k`` iff ``day(x) < T_k`` and ``T_k - W days <= occurred_at`` iff
``T_k <= day(occurred_at) + W``:

- an event is eligible from snapshot ``ka = #{k: T_k <= max(day(occ), day(rec))}``
  on, and is in window ``W`` up to (not including) snapshot ``#{k: T_k <= day(occ) + W}``;
- an event is *prompt* when its backfill (``recorded_at > occurred_at``) does not
  cross a snapshot (``ka`` equals the snapshot index of its occurrence day; every
  event of an export without ``recorded_at``): then all it contributes depends on
  its lead and occurrence day only.

So the features are sums and maxima over (snapshot or day boundary, lead) cells,
accumulated with ``ufunc.at`` in one pass over the activities (no sort, no join of
rows to events) and then accumulated along the snapshot axis:

- window counts: per lead, the number of prompt events before each day boundary
  (``T_k`` and ``T_k - W``) from a histogram over the intervals between boundaries
  and a cumulative sum; a window's count is the difference of two such prefixes;
  delayed events (a backfill that crosses a snapshot; rare) add +1 at ``ka`` and -1
  at their window's end in a difference array;
- days since: the latest ``occurred_at`` per (first eligible snapshot, lead), then a
  running maximum over snapshots;
- decay: each event's term at its first eligible snapshot,
  ``0.5 ** ((T_ka - occ) / half_life)``, summed per cell, then carried forward with
  ``D_k = D_{k-1} * 0.5 ** ((T_k - T_{k-1}) / half_life) + A_k`` (the same sum as the
  memory engine up to float rounding, ~1e-15 relative);
- distinct active days in the longest window: a (day, lead) bitmap of the prompt
  events, summed along the days, read at the days the windows start and end; days
  that only delayed events cover (deduplicated, with their earliest snapshot) go
  through a difference array.

Leads are processed in blocks of ``LEAD_BLOCK`` (16,384): events are grouped once by
(class of types, block) with a two-pass counting sort, rows by block, and every
accumulator is (cells x leads of one block): a few MB, allocated once per task and
refilled per block, so the work stays in cache and touches no fresh memory. One
task per signal (its counts, days since and decay in one pass over its events) and
one for active days and days since any activity, two at a time. Work is
O(E + (boundaries + days) x L) for E events and L leads in the export. Each row's
values are gathered into the caller's output columns.

Values equal the memory engine's: counts, days and active days exactly, decay up to
float rounding. :func:`propensity.features.pipeline.build_features` takes this path
(engine ``"auto"`` or ``"running"``) when every cutoff is at UTC midnight, there are
several of them and at least ``MIN_LEADS`` distinct leads, and a block's largest
accumulator fits ``MAX_CELLS``.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from propensity.config import EngagementConfig
from propensity.data.activities import ActivityArrays
from propensity.features.asof import _warn_unknown
from propensity.features.memory import DAY_US

__all__ = ["MAX_CELLS", "MIN_LEADS", "engagement_snapshots", "snapshot_days"]

MIN_LEADS = 2_000  # build_features takes this path for day-aligned cutoffs and at least this many distinct leads
LEAD_BLOCK = 1 << 14  # leads per block: each block's accumulators are a few MB (cache-sized, reused)
MAX_CELLS = 1 << 24  # largest accumulator of a block: (boundaries + 1) or days, x leads; beyond: running engine
CHUNK_EVENTS = 1 << 20  # events per step within a block: bounds the temporaries
MAX_THREADS = 2  # tasks run at once, each with its own accumulators
_NONE = np.iinfo(np.int64).min  # "no eligible event" in the latest-time accumulators


def _block_width(n_leads: int) -> int:
    return max(1, min(LEAD_BLOCK, n_leads + 1))


def snapshot_days(row_t: np.ndarray, n_leads: int, windows_days: list[int]) -> np.ndarray | None:
    """The distinct cutoffs as UTC day numbers (ascending) if this engine can take the rows, else None.

    It can when every cutoff is at UTC midnight, there are at least two of them (one
    cutoff is the as-of engine's) and a block's largest accumulator (one cell per
    day boundary + 1, or per day the windows span, and lead of the block) has at
    most ``MAX_CELLS`` cells.
    """
    if len(row_t) == 0:
        return None
    day = row_t // DAY_US
    if not np.array_equal(day * DAY_US, row_t):
        return None
    lo, hi = int(day.min()), int(day.max())
    if hi - lo > 1_000_000:  # cutoffs ~2,700 years apart: not snapshots
        return None
    days = np.flatnonzero(np.bincount(day - lo, minlength=hi - lo + 1)) + lo
    rows = max(len(days) * (len(set(windows_days)) + 1) + 1, hi - lo + max(windows_days) + 1)
    if len(days) < 2 or rows * _block_width(n_leads) > MAX_CELLS:
        return None
    return days.astype(np.int64)


def engagement_snapshots(arrays: ActivityArrays, row_pos: np.ndarray, row_t: np.ndarray, n_leads: int,
                         engagement: EngagementConfig, out: dict[str, np.ndarray],
                         days: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Engagement features (spec order, without ``lead_age_days``) for rows with day-aligned cutoffs.

    ``arrays``: the export's activities (``lead`` = row position in its ``leads``,
    -1 = unknown lead); ``row_pos``: each row's lead position in the same table;
    ``row_t``: each row's cutoff in µs, a multiple of a day (see :func:`snapshot_days`);
    ``n_leads``: that table's length. ``out`` maps every feature name to a writable
    float64 array of ``len(row_pos)``; filled and returned. ``days``: what
    :func:`snapshot_days` gave for these rows, if the caller already asked it.
    """
    if days is None:
        days = snapshot_days(row_t, n_leads, engagement.windows_days)
    if days is None:
        raise ValueError("engagement_snapshots: cutoffs must be at UTC midnight, at least two distinct ones, "
                         "within MAX_CELLS")
    g = _Grid(arrays, days, row_pos, row_t, n_leads, engagement)
    _warn_unknown(arrays, g.member, row_pos, n_leads)  # the pipeline's one warning, as the as-of path gives it
    tasks = [functools.partial(_activity, g, out=out)]
    tasks += [functools.partial(_signal, g, s, out=out) for s in range(len(engagement.signals))]
    workers = max(1, min(MAX_THREADS, os.cpu_count() or 1, len(tasks)))
    if workers == 1:
        for task in tasks:
            task()
    else:  # NumPy releases the GIL in its ufunc.at loops, gathers and ufuncs: tasks run side by side
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()
    return out


class _Grid:
    """The constants of one call: snapshot and boundary lookups, events and rows grouped by block of leads."""

    def __init__(self, arrays: ActivityArrays, days: np.ndarray, row_pos: np.ndarray, row_t: np.ndarray,
                 n_leads: int, engagement: EngagementConfig) -> None:
        self.arrays = arrays
        self.has_rec = arrays.rec is not arrays.occ
        self.engagement = engagement
        self.windows = sorted(set(engagement.windows_days))
        self.longest = self.windows[-1]
        self.T = days.astype(np.int64)  # snapshot days, ascending
        self.K = len(days)
        self.NL = n_leads + 1  # lead slot = position + 1; slot 0 takes unknown leads (-1), never read
        self.LB = _block_width(n_leads)  # slots per block
        self.n_blocks = -(-self.NL // self.LB)
        # Snapshot index of a day d: #{k: T_k <= d}, by lookup over [T_0 - 1, T_{K-1}] (clipped outside).
        self.k_base = int(self.T[0]) - 1
        span = int(self.T[-1]) - self.k_base
        self.k_lut = np.searchsorted(self.T, self.k_base + np.arange(span + 1), side="right").astype(np.int32)
        # Day boundaries of the count windows: every T_k and T_k - W; interval index of a day likewise.
        self.B = np.unique(np.concatenate([self.T] + [self.T - w for w in self.windows]))
        self.b_base = int(self.B[0]) - 1
        span = int(self.B[-1]) - self.b_base
        self.b_lut = np.searchsorted(self.B, self.b_base + np.arange(span + 1), side="right").astype(np.int32)
        self.m_T = np.searchsorted(self.B, self.T)  # boundary index of T_k, and of T_k - W per window
        self.m_W = {w: np.searchsorted(self.B, self.T - w) for w in self.windows}
        self.all_k = np.arange(self.K)
        # The active-days bitmap's days: from the first window's first day to the day before the last snapshot.
        self.d0 = int(self.T[0]) - self.longest
        self.n_days = int(self.T[-1]) - self.d0
        # Rows, grouped by block of leads (stable: in their order within a block).
        self.row_k = np.searchsorted(self.T, row_t // DAY_US).astype(np.int32)
        self.row_slot = np.asarray(row_pos, dtype=np.int64) + 1
        self.row_order, self.row_bounds = _counting_sort(self.row_slot // self.LB, self.n_blocks)
        # Aligned with row_order: each row's snapshot, local slot, and its cell in a block's accumulators for
        # "k" (a per-snapshot array), "T" and each window (the count histogram's boundaries), computed once.
        self.r_k = self.row_k[self.row_order]
        self.r_local = (self.row_slot[self.row_order] % self.LB).astype(np.int32)
        cell_t = np.int32 if (len(self.B) + 1) * self.LB < 2 ** 31 else np.int64
        self.cells = {"k": self.r_k.astype(cell_t) * self.LB + self.r_local,
                      "T": self.m_T.astype(cell_t)[self.r_k] * self.LB + self.r_local}
        for w in self.windows:
            self.cells[w] = self.m_W[w].astype(cell_t)[self.r_k] * self.LB + self.r_local
        # Types that belong to the same signals form one class; events are grouped by (class, block of leads),
        # so that a task reads its signal's events of one block at a time, not every activity's type again.
        types = arrays.types
        self.member = np.array([[ty in set(s.activity_types) for ty in types] for s in engagement.signals],
                               dtype=bool).reshape(len(engagement.signals), len(types))
        self.n_events = len(arrays.lead)
        if len(types):
            classes, inverse = np.unique(self.member.T, axis=0, return_inverse=True)
            self.class_member = classes.T  # (signals, classes)
            type_class = np.asarray(inverse, dtype=np.int64).ravel()
        else:
            self.class_member = np.zeros((len(engagement.signals), 0), dtype=bool)
            type_class = np.zeros(0, dtype=np.int64)
        self.n_classes = self.class_member.shape[1]
        self.ev_order, self.ev_bounds = _group_events(arrays, type_class, self.n_classes, self.n_blocks, self.LB)

    # ---------------------------------------------------------------- per event
    def snap(self, day: np.ndarray) -> np.ndarray:
        """Snapshot index #{k: T_k <= day} of each day (int32)."""
        i = day - self.k_base
        np.clip(i, 0, len(self.k_lut) - 1, out=i)
        return self.k_lut[i]

    def interval(self, day: np.ndarray) -> np.ndarray:
        """Boundary interval #{b: B_b <= day} of each day (int32)."""
        i = day - self.b_base
        np.clip(i, 0, len(self.b_lut) - 1, out=i)
        return self.b_lut[i]

    def events(self, classes: np.ndarray | None, block: int):
        """Per chunk of the block's activities: (local slot, occ, occurrence day, eligibility snapshot or None).

        ``classes``: a bool per type class (None: every class). The local slot is the
        lead slot minus the block's first. The fourth item is ``None`` when the export
        has no ``recorded_at`` (every event is prompt); otherwise the snapshot from
        which each event is eligible (its ``ka``).
        """
        a = self.arrays
        first = block * self.LB
        wanted = range(self.n_classes) if classes is None else np.flatnonzero(classes)
        for c in wanted:
            key = c * self.n_blocks + block
            lo, hi = int(self.ev_bounds[key]), int(self.ev_bounds[key + 1])
            for at in range(lo, hi, CHUNK_EVENTS):
                idx = self.ev_order[at:min(at + CHUNK_EVENTS, hi)]
                slot = a.lead[idx].astype(np.int64)
                slot += 1 - first
                occ = a.occ[idx]
                day = occ // DAY_US
                ka = None
                if self.has_rec:
                    rday = a.rec[idx] // DAY_US
                    np.maximum(rday, day, out=rday)
                    ka = self.snap(rday)
                yield slot, occ, day, ka

    # ---------------------------------------------------------------- per row
    def blocks(self):
        """Per block of leads that has rows: (block, its part of the row-aligned arrays, its rows (positions),
        their snapshots, their local slots)."""
        for b in range(self.n_blocks):
            sl = slice(int(self.row_bounds[b]), int(self.row_bounds[b + 1]))
            if sl.stop > sl.start:
                yield b, sl, self.row_order[sl], self.r_k[sl], self.r_local[sl]

    def at(self, dense: np.ndarray, name: object, sl: slice) -> np.ndarray:
        """Per row of the block ``sl``: its cell of ``dense`` (a block's accumulator) for ``cells[name]``."""
        return dense.reshape(-1).take(self.cells[name][sl])

    def take(self, dense: np.ndarray, k_index: np.ndarray, rk: np.ndarray, local: np.ndarray) -> np.ndarray:
        """``dense[k_index[rk], local]`` per row (dense: (rows, LB), C order)."""
        flat = k_index.take(rk)
        flat *= self.LB
        flat += local
        return dense.reshape(-1).take(flat)

    def days_since(self, latest: np.ndarray, sl: slice, rows: np.ndarray, rk: np.ndarray, out: np.ndarray) -> None:
        """Days from the latest time (µs, per (snapshot, slot), running max taken) to each row's cutoff."""
        ts = self.at(latest, "k", sl)
        none = ts == _NONE
        np.subtract(self.T.take(rk) * DAY_US, ts, out=ts)
        days = ts / DAY_US
        days[none] = np.nan
        out[rows] = days


class _Space:
    """One task's accumulators for one block of leads, allocated once and refilled per block."""

    def __init__(self, g: _Grid) -> None:
        self.g = g
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, dtype, rows: int, fill) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != np.dtype(dtype) or buf.shape[0] < rows:
            buf = self._bufs[name] = np.empty((rows, self.g.LB), dtype=dtype)
        view = buf[:rows]
        view.fill(fill)
        return view


def _signal(g: _Grid, s_idx: int, out: dict[str, np.ndarray]) -> None:
    """Window counts, days since the latest event and decay of one signal, block by block of leads."""
    s = g.engagement.signals[s_idx]
    h = float(s.half_life_days)
    counts = [out[f"eng_{s.name}_{w}d"] for w in g.windows]
    since, decay_out = out[f"eng_{s.name}_days_since"], out[f"eng_{s.name}_decay"]
    t_us = np.append(g.T, g.T[-1]) * DAY_US  # row K (never eligible) gets some time; its cells are never read
    factor = 0.5 ** (np.diff(g.T) / h)  # a sum carried from one snapshot to the next ages by the gap
    space = _Space(g)
    LB = g.LB
    for b, sl, rows, rk, local in g.blocks():
        hist = space.get("hist", np.int32, len(g.B) + 1, 0)  # prompt events per (boundary interval, slot)
        latest = space.get("latest", np.int64, g.K + 1, _NONE)  # per (first eligible snapshot, slot)
        decay = space.get("decay", np.float64, g.K + 1, 0.0)
        hist_f, latest_f, decay_f = hist.reshape(-1), latest.reshape(-1), decay.reshape(-1)
        delayed = []  # (slot, ka, occurrence day) of events whose backfill crosses a snapshot
        for slot, occ, day, ka in g.events(g.class_member[s_idx], b):
            ko = g.snap(day)
            k = (ko if ka is None else ka).astype(np.int64)
            # Days since and decay: at the first eligible snapshot; each term as the memory engine writes it.
            age = t_us.take(k)
            np.subtract(age, occ, out=age)
            k *= LB
            k += slot
            np.maximum.at(latest_f, k, occ)
            x = np.divide(age, DAY_US)
            x /= h
            with np.errstate(over="ignore"):  # row K only: events after the last snapshot
                np.power(0.5, x, out=x)
            np.add.at(decay_f, k, x)
            # Counts: prompt events by day boundary interval; delayed ones aside.
            cell = g.interval(day).astype(np.int64)
            if ka is not None:
                late = ka != ko
                if late.any():
                    delayed.append((slot[late], ka[late], day[late]))
                    keep = np.flatnonzero(~late)
                    cell, slot = cell[keep], slot[keep]
            cell *= LB
            cell += slot
            np.add.at(hist_f, cell, np.int32(1))  # np.int32: a Python int would need a cast per element
        _accumulate(np.add, hist)  # hist[m]: prompt events before boundary B_m (interval index <= m)
        now = g.at(hist, "T", sl)
        for w, col in zip(g.windows, counts, strict=True):
            col[rows] = now - g.at(hist, w, sl)
        if delayed:
            slot = np.concatenate([d[0] for d in delayed])
            ka = np.concatenate([d[1] for d in delayed]).astype(np.int64)
            day = np.concatenate([d[2] for d in delayed])
            mine = _rows_of(g, slot, local)  # only the rows of leads with delayed events change
            for w, col in zip(g.windows, counts, strict=True):  # +1 from the first eligible snapshot, -1 from the
                end = np.maximum(ka, g.snap(day + w))  # first that no longer has it in the window
                col[rows[mine]] += g.take(_intervals(space, slot, ka, end), g.all_k, rk[mine], local[mine])
        _accumulate(np.maximum, latest[:g.K])
        g.days_since(latest, sl, rows, rk, since)
        for k in range(1, g.K):  # carry the sum forward: every term ages by the gap between snapshots
            decay[k] += decay[k - 1] * factor[k - 1]
        decay_out[rows] = g.at(decay, "k", sl)


def _rows_of(g: _Grid, slot: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Which of a block's rows (local slots ``local``) belong to one of the local slots ``slot``."""
    has = np.zeros(g.LB, dtype=bool)
    has[slot] = True
    return np.flatnonzero(has[local])


def _intervals(space: _Space, slot: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per (snapshot, local slot): how many of the intervals ``[start, end)`` (snapshot indices) hold it."""
    g = space.g
    diff = space.get("diff", np.int32, g.K + 1, 0)
    flat = diff.reshape(-1)
    np.add.at(flat, start * g.LB + slot, np.int32(1))
    np.add.at(flat, end * g.LB + slot, np.int32(-1))
    _accumulate(np.add, diff)
    return diff


def _activity(g: _Grid, out: dict[str, np.ndarray]) -> None:
    """Distinct active days in the longest window and days since any activity, block by block of leads.

    A day ``d`` of a lead counts at snapshot ``k`` iff ``T_k - W <= d < T_k`` and one of
    its events is eligible at ``k``. Prompt events are eligible from the snapshot
    after their day on, so a day with one counts at exactly those ``k``: a (day,
    slot) bitmap of such days, summed along the days, gives per lead the number of
    them before any day. A day with only delayed events counts from the earliest
    snapshot at which one of them is eligible until its window ends.
    """
    W, d0, n_days = g.longest, g.d0, g.n_days
    col = out[f"eng_active_days_{W}d"]
    since = out["eng_days_since_any"]
    at_t, at_start = g.T - d0, g.T - W - d0  # day offsets: the bitmap's prefix sums are read there
    count_t = np.int16 if n_days < 2 ** 15 else np.int32
    space = _Space(g)
    LB = g.LB
    for b, sl, rows, rk, local in g.blocks():
        flags = space.get("flags", bool, n_days, False)
        latest = space.get("latest", np.int64, g.K + 1, _NONE)
        flags_f, latest_f = flags.reshape(-1), latest.reshape(-1)
        late_parts = []
        for slot, occ, day, ka in g.events(None, b):
            ko = g.snap(day)
            k = (ko if ka is None else ka).astype(np.int64)
            k *= LB
            k += slot
            np.maximum.at(latest_f, k, occ)
            r = day - d0
            inside = (r >= 0) & (r < n_days)
            if ka is not None:
                late = inside & (ka != ko)
                if late.any():
                    i = np.flatnonzero(late)
                    late_parts.append((slot[i], r[i], ka[i]))
                    inside &= ~late
            i = np.flatnonzero(inside)
            cell = r[i]
            cell *= LB
            cell += slot[i]
            flags_f[cell] = True
        # Prefix counts over days: prefix[j] = flagged days before day offset j.
        prefix = space.get("prefix", count_t, n_days + 1, 0)
        for j in range(n_days):
            np.add(prefix[j], flags[j], out=prefix[j + 1])
        col[rows] = g.take(prefix, at_t, rk, local) - g.take(prefix, at_start, rk, local)
        if late_parts:  # days that only delayed events cover: from the earliest snapshot one is eligible
            slot = np.concatenate([p[0] for p in late_parts])
            rel = np.concatenate([p[1] for p in late_parts])
            ka = np.concatenate([p[2] for p in late_parts]).astype(np.int64)
            free = ~flags[rel, slot]
            key = slot[free] * np.int64(n_days + 1) + rel[free]
            ka = ka[free]
            order = np.lexsort((ka, key))
            key, ka = key[order], ka[order]
            first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, dtype=bool)
            key, ka = key[first], ka[first]
            slot, rel = key // (n_days + 1), key % (n_days + 1)
            end = np.maximum(ka, g.snap(rel + d0 + W).astype(np.int64))
            mine = _rows_of(g, slot, local)
            col[rows[mine]] += g.take(_intervals(space, slot, ka, end), g.all_k, rk[mine], local[mine])
        _accumulate(np.maximum, latest[:g.K])
        g.days_since(latest, sl, rows, rk, since)


def _accumulate(ufunc, a: np.ndarray) -> None:
    """``ufunc.accumulate(a, axis=0)`` in place, row by row (NumPy's axis-0 accumulate strides across rows)."""
    for k in range(1, len(a)):
        ufunc(a[k], a[k - 1], out=a[k])


def _counting_sort(key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions grouped by ``key`` (stable) and each key's offsets into them (length ``n_keys + 1``)."""
    small = np.uint8 if n_keys <= 256 else np.uint16 if n_keys <= 65536 else np.int64
    order = np.argsort(key.astype(small), kind="stable")  # 8/16-bit keys: NumPy's stable sort is a radix sort
    bounds = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n_keys), out=bounds[1:])
    return order.astype(np.int32 if len(key) < 2 ** 31 else np.int64), bounds


def _group_events(arrays: ActivityArrays, type_class: np.ndarray, n_classes: int, n_blocks: int,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """Activity positions grouped by (type class, block of leads), ascending within a group, and the offsets.

    A counting sort in two passes over chunks (counts, then a stable sort of each
    chunk's small keys written to each group's next free place): no sort of all
    events, temporaries of one chunk.
    """
    n = len(arrays.lead)
    n_keys = max(n_classes * n_blocks, 1)
    itype = np.int32 if n < 2 ** 31 else np.int64
    small = np.uint8 if n_keys <= 256 else np.uint16 if n_keys <= 65536 else np.int64

    def keys(lo: int) -> np.ndarray:
        slot = arrays.lead[lo:lo + CHUNK_EVENTS].astype(np.int64)
        slot += 1
        slot //= width
        slot += type_class[arrays.code[lo:lo + CHUNK_EVENTS]] * n_blocks
        return slot

    counts = np.zeros(n_keys, dtype=np.int64)
    for lo in range(0, n, CHUNK_EVENTS):
        counts += np.bincount(keys(lo), minlength=n_keys)
    bounds = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    order = np.empty(n, dtype=itype)
    at = bounds[:-1].copy()
    for lo in range(0, n, CHUNK_EVENTS):
        key = keys(lo)
        sorted_pos = np.argsort(key.astype(small), kind="stable")
        m = np.bincount(key, minlength=n_keys)
        ends = np.cumsum(m)
        for c in np.flatnonzero(m):
            order[at[c]:at[c] + m[c]] = sorted_pos[ends[c] - m[c]:ends[c]] + lo
        at += m
    return order, bounds
