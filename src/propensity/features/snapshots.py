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
  events, swept day by day in blocks of ``BLOCK_DAYS`` with a running count per lead
  that is kept at the days the windows start and end; days that only delayed events
  cover (deduplicated, with their earliest snapshot) go through a difference array.

Work is O(E + (boundaries + snapshots) x L) for E events and L leads in the export;
memory is a few arrays of (boundaries + 1) x (L + 1) cells per task, two tasks at a
time (about 0.4 GB each at 1M leads, 23 snapshots and three windows). Features are
gathered into the caller's rows at the end, each into its own output column.
Values equal the memory engine's: counts, days and active days exactly, decay up to
float rounding. :func:`propensity.features.pipeline.build_features` takes this path
(engine ``"auto"`` or ``"running"``) when every cutoff is at UTC midnight, there are
several of them and at least ``MIN_LEADS`` distinct leads, and the cells fit
``MAX_CELLS``.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from propensity.config import EngagementConfig
from propensity.data.activities import ActivityArrays
from propensity.features.asof import _warn_unknown
from propensity.features.memory import DAY_US

__all__ = ["MAX_CELLS", "MIN_LEADS", "engagement_snapshots", "snapshot_days"]

MIN_LEADS = 2_000  # build_features takes this path for day-aligned cutoffs and at least this many distinct leads
MAX_CELLS = 1 << 28  # largest accumulator, (boundaries + 1) x (leads + 1) cells (int32: 1 GB); beyond: running engine
CHUNK_EVENTS = 1 << 20  # events per step of a task: bounds its temporaries (8 MB arrays, reused)
ROW_BLOCK = 1 << 18  # rows per step of the final gathers, likewise
BLOCK_DAYS = 128  # days per block of the active-days bitmap (BLOCK_DAYS x (leads + 1) bytes)
MAX_THREADS = 2  # tasks run at once, each with its own accumulators
_NONE = np.iinfo(np.int64).min  # "no eligible event" in the latest-time accumulators


def snapshot_days(row_t: np.ndarray, n_leads: int, n_windows: int) -> np.ndarray | None:
    """The distinct cutoffs as UTC day numbers (ascending) if this engine can take the rows, else None.

    It can when every cutoff is at UTC midnight, there are at least two of them (one
    cutoff is the as-of engine's) and the count histogram, one cell per (day
    boundary + 1, lead + 1), has at most ``MAX_CELLS`` cells.
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
    if len(days) < 2 or (len(days) * (n_windows + 1) + 1) * (n_leads + 1) > MAX_CELLS:
        return None
    return days.astype(np.int64)


def engagement_snapshots(arrays: ActivityArrays, row_pos: np.ndarray, row_t: np.ndarray, n_leads: int,
                         engagement: EngagementConfig, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Engagement features (spec order, without ``lead_age_days``) for rows with day-aligned cutoffs.

    ``arrays``: the export's activities (``lead`` = row position in its ``leads``,
    -1 = unknown lead); ``row_pos``: each row's lead position in the same table;
    ``row_t``: each row's cutoff in µs, a multiple of a day (see :func:`snapshot_days`);
    ``n_leads``: that table's length. ``out`` maps every feature name to a writable
    float64 array of ``len(row_pos)``; filled and returned.
    """
    days = snapshot_days(row_t, n_leads, len(engagement.windows_days))
    if days is None:
        raise ValueError("engagement_snapshots: cutoffs must be at UTC midnight, at least two distinct ones")
    g = _Grid(arrays, days, row_pos, row_t, n_leads, engagement)
    _warn_unknown(arrays, g.member, row_pos, n_leads)  # the pipeline's one warning, as the as-of path gives it
    lock = threading.Lock()
    latest_any = np.full((g.K + 1, g.NL), _NONE, dtype=np.int64)

    def merge_latest(m: np.ndarray) -> None:
        with lock:
            np.maximum(latest_any, m, out=latest_any)

    n_sig = len(engagement.signals)
    # Two lists of about equal work; each worker owns one workspace for all its tasks. Fresh memory is costly
    # (page faults, zeroing), reused memory is not, so a worker's accumulators are allocated once, not per task.
    counting = [functools.partial(_active_days, g, out=out)]
    counting += [functools.partial(_counts, g, s, out=out) for s in range(n_sig)]
    timing = [functools.partial(_recency_decay, g, s, out=out, merge_latest=merge_latest) for s in range(n_sig)]
    timing += [functools.partial(_unlisted_latest, g, merge_latest=merge_latest)]

    def run(tasks) -> None:
        ws = _Workspace(g)
        for task in tasks:
            task(ws)

    if min(MAX_THREADS, os.cpu_count() or 1) < 2:
        run(counting + timing)
    else:  # NumPy releases the GIL in its ufunc.at loops, gathers and ufuncs: the two lists run side by side
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(run, counting), pool.submit(run, timing)]:
                future.result()
    _accumulate(np.maximum, latest_any)
    g.days_since(latest_any, out["eng_days_since_any"])
    return out


class _Grid:
    """The constants of one call: snapshot and boundary lookups, the rows' cells, the signals' types."""

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
        # Rows: snapshot index and lead slot.
        self.row_k = np.searchsorted(self.T, row_t // DAY_US).astype(np.int32)
        self.row_slot = np.asarray(row_pos, dtype=np.int64) + 1
        starts = np.arange(0, len(self.row_k), ROW_BLOCK)
        lo_k = np.minimum.reduceat(self.row_k, starts) if len(starts) else np.zeros(0, np.int32)
        hi_k = np.maximum.reduceat(self.row_k, starts) if len(starts) else np.zeros(0, np.int32)
        self.block_k = np.where(lo_k == hi_k, lo_k, -1)  # per block of rows: its one snapshot, or -1
        types = arrays.types
        self.member = np.array([[ty in set(s.activity_types) for ty in types] for s in engagement.signals],
                               dtype=bool).reshape(len(engagement.signals), len(types))
        self.n_events = len(arrays.lead)
        # Types that belong to the same signals form one class; each class's events are listed once, so that a
        # task reads its signal's events instead of scanning every activity's type again.
        if len(types):
            classes, inverse = np.unique(self.member.T, axis=0, return_inverse=True)
            self.class_member = classes.T  # (signals, classes)
            self.class_idx = _group_by_class(arrays.code, np.asarray(inverse, dtype=np.int64).ravel(),
                                             len(classes))
        else:
            self.class_member = np.zeros((len(engagement.signals), 0), dtype=bool)
            self.class_idx = []

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

    def events(self, classes: np.ndarray | None):
        """Per chunk of the activities: (slot, occ, occurrence day, eligibility snapshot or None).

        ``classes`` is a bool per type class (None: every activity, in file order).
        The fourth item is ``None`` when the export has no ``recorded_at`` (every
        event is prompt); otherwise the snapshot from which each event is eligible
        (its ``ka``).
        """
        if classes is None:
            parts = [(None, lo, min(lo + CHUNK_EVENTS, self.n_events)) for lo in range(0, self.n_events, CHUNK_EVENTS)]
        else:
            parts = [(self.class_idx[c], lo, min(lo + CHUNK_EVENTS, len(self.class_idx[c])))
                     for c in np.flatnonzero(classes) for lo in range(0, len(self.class_idx[c]), CHUNK_EVENTS)]
        a = self.arrays
        for listed, lo, hi in parts:
            idx = slice(lo, hi) if listed is None else listed[lo:hi]
            slot = a.lead[idx].astype(np.int64)
            slot += 1
            occ = a.occ[idx]
            day = occ // DAY_US
            ka = None
            if self.has_rec:
                rday = a.rec[idx] // DAY_US
                np.maximum(rday, day, out=rday)
                ka = self.snap(rday)
            yield slot, occ, day, ka

    # ---------------------------------------------------------------- per row
    def rows(self, *k_index: np.ndarray):
        """Per block of rows: (slice, flat cell index per row for each ``k_index``).

        The cell of a row for ``k_index`` is ``k_index[row's snapshot] * NL + slot``;
        blocks keep these temporaries small (reused by the allocator, no page faults).
        Blocks whose rows share one snapshot (most, when rows are ordered by cutoff, as
        training tables are) add a constant instead of looking it up per row.
        """
        for b, r0 in enumerate(range(0, len(self.row_k), ROW_BLOCK)):
            sl = slice(r0, min(r0 + ROW_BLOCK, len(self.row_k)))
            slot = self.row_slot[sl]
            k_one = self.block_k[b]
            rk = None if k_one >= 0 else self.row_k[sl]
            flats = []
            for ki in k_index:
                if rk is None:
                    flat = slot + int(ki[k_one]) * self.NL
                else:
                    flat = ki.take(rk)
                    flat *= self.NL
                    flat += slot
                flats.append(flat)
            yield sl, flats

    def gather(self, dense: np.ndarray, out: np.ndarray) -> None:
        """``out[row] = dense[row's snapshot, row's slot]`` (dense: (>= K, NL), C order)."""
        flat_dense = dense.reshape(-1)
        for sl, (flat,) in self.rows(self.all_k):
            np.copyto(out[sl], flat_dense.take(flat), casting="unsafe")

    def days_since(self, latest: np.ndarray, out: np.ndarray) -> None:
        """Days from the latest time (µs, per (snapshot, slot), running max taken) to each row's cutoff."""
        flat_latest = latest.reshape(-1)
        t_us = self.T * DAY_US
        for sl, (flat,) in self.rows(self.all_k):
            ts = flat_latest.take(flat)
            none = ts == _NONE
            np.subtract(t_us.take(self.row_k[sl]), ts, out=ts)
            o = out[sl]
            np.divide(ts, DAY_US, out=o)
            o[none] = np.nan


class _Workspace:
    """One worker's reusable accumulators: byte buffers, allocated on first use, viewed as each task needs."""

    def __init__(self, g: _Grid) -> None:
        self.g = g
        self._bufs: dict[str, np.ndarray] = {}

    def view(self, name: str, dtype, shape: tuple[int, ...], fill) -> np.ndarray:
        """Buffer ``name`` as an array of ``shape``, every element set to ``fill``."""
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        buf = self._bufs.get(name)
        if buf is None or len(buf) < n:
            buf = self._bufs[name] = np.empty(n, dtype=np.uint8)
        view = buf[:n].view(dtype).reshape(shape)
        view.fill(fill)
        return view

    def hist(self) -> np.ndarray:
        return self.view("hist", np.int32, (len(self.g.B) + 1, self.g.NL), 0)

    def latest(self) -> np.ndarray:
        return self.view("latest", np.int64, (self.g.K + 1, self.g.NL), _NONE)

    def decay(self) -> np.ndarray:
        return self.view("decay", np.float64, (self.g.K + 1, self.g.NL), 0.0)


class _Sparse:
    """Interval counts for the few leads with delayed events, added to the rows of those leads only."""

    def __init__(self, g: _Grid, slot: np.ndarray) -> None:
        self.g = g
        self.leads, self.inv = np.unique(slot, return_inverse=True)
        lut = np.full(g.NL, -1, dtype=np.int32)
        lut[self.leads] = np.arange(len(self.leads), dtype=np.int32)
        rows, at = [], []
        for r0 in range(0, len(g.row_slot), ROW_BLOCK):
            u = lut[g.row_slot[r0:r0 + ROW_BLOCK]]
            hit = np.flatnonzero(u >= 0)
            rows.append(hit + r0)
            at.append(u[hit])
        self.rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        self.cell = g.row_k[self.rows].astype(np.int64) * len(self.leads)
        self.cell += np.concatenate(at) if at else np.zeros(0, dtype=np.int32)

    def add(self, start: np.ndarray, end: np.ndarray, col: np.ndarray) -> None:
        """``col[row] +=`` how many intervals ``[start, end)`` (snapshot indices) of the row's lead hold its snapshot."""
        inv, u = self.inv, len(self.leads)
        diff = np.zeros((self.g.K + 1, u), dtype=np.int32)
        flat = diff.reshape(-1)
        np.add.at(flat, start * u + inv, np.int32(1))
        np.add.at(flat, end * u + inv, np.int32(-1))
        _accumulate(np.add, diff)
        col[self.rows] += flat.take(self.cell)


def _counts(g: _Grid, s_idx: int, ws: _Workspace, out: dict[str, np.ndarray]) -> None:
    """The window counts of one signal."""
    s = g.engagement.signals[s_idx]
    hist = ws.hist()  # prompt events per (boundary interval, slot)
    flat = hist.reshape(-1)
    delayed = []  # (slot, ka, occurrence day) of events whose backfill crosses a snapshot
    for slot, _occ, day, ka in g.events(g.class_member[s_idx]):
        cell = g.interval(day).astype(np.int64)
        if ka is not None:
            late = ka != g.snap(day)
            if late.any():
                delayed.append((slot[late], ka[late], day[late]))
                keep = np.flatnonzero(~late)
                cell, slot = cell[keep], slot[keep]
        cell *= g.NL
        cell += slot
        np.add.at(flat, cell, np.int32(1))  # np.int32: a Python int would need a cast per element
    _accumulate(np.add, hist)  # hist[m]: prompt events before boundary B_m (interval index <= m)
    cols = [out[f"eng_{s.name}_{w}d"] for w in g.windows]
    for sl, (at_t, *at_w) in g.rows(g.m_T, *(g.m_W[w] for w in g.windows)):
        now = flat.take(at_t)
        for col, at in zip(cols, at_w, strict=True):
            np.subtract(now, flat.take(at), out=col[sl], casting="unsafe")
    if delayed:
        slot = np.concatenate([d[0] for d in delayed])
        ka = np.concatenate([d[1] for d in delayed]).astype(np.int64)
        day = np.concatenate([d[2] for d in delayed])
        sparse = _Sparse(g, slot)
        for w, col in zip(g.windows, cols, strict=True):  # +1 from the first eligible snapshot, -1 from the
            sparse.add(ka, np.maximum(ka, g.snap(day + w)), col)  # first that no longer has it in the window


def _recency_decay(g: _Grid, s_idx: int, ws: _Workspace, out: dict[str, np.ndarray], merge_latest) -> None:
    """Days since the latest event, and the decay sum, of one signal."""
    s = g.engagement.signals[s_idx]
    h = float(s.half_life_days)
    latest = ws.latest()  # per (first eligible snapshot, slot); row K: never eligible
    decay = ws.decay()
    flat_latest, flat_decay = latest.reshape(-1), decay.reshape(-1)
    t_us = np.append(g.T, g.T[-1]) * DAY_US  # row K (never eligible) gets some time; its cells are never read
    for slot, occ, day, ka in g.events(g.class_member[s_idx]):
        k = (g.snap(day) if ka is None else ka).astype(np.int64)
        age = t_us[k]
        np.subtract(age, occ, out=age)
        k *= g.NL
        k += slot
        np.maximum.at(flat_latest, k, occ)
        x = np.divide(age, DAY_US)
        x /= h
        with np.errstate(over="ignore"):  # row K only: events after the last snapshot
            np.power(0.5, x, out=x)  # each term as the memory engine writes it, at the first eligible snapshot
        np.add.at(flat_decay, k, x)
    merge_latest(latest)
    _accumulate(np.maximum, latest[:g.K])
    g.days_since(latest, out[f"eng_{s.name}_days_since"])
    for k in range(1, g.K):  # carry the sum forward: every term ages by the gap between snapshots
        decay[k] += decay[k - 1] * 0.5 ** ((g.T[k] - g.T[k - 1]) / h)
    g.gather(decay, out[f"eng_{s.name}_decay"])


def _unlisted_latest(g: _Grid, ws: _Workspace, merge_latest) -> None:
    """The latest time per (snapshot, slot) of the types no signal lists (for days since any)."""
    unlisted = ~g.class_member.any(axis=0)
    if not unlisted.any():
        return
    latest = ws.latest()
    flat = latest.reshape(-1)
    for slot, occ, day, ka in g.events(unlisted):
        k = (g.snap(day) if ka is None else ka).astype(np.int64)
        k *= g.NL
        k += slot
        np.maximum.at(flat, k, occ)
    merge_latest(latest)


def _active_days(g: _Grid, ws: _Workspace, out: dict[str, np.ndarray]) -> None:
    """Distinct UTC days with any eligible activity in the longest window.

    A day ``d`` of a lead counts at snapshot ``k`` iff ``T_k - W <= d < T_k`` and one of
    its events is eligible at ``k``. Prompt events are eligible from the snapshot
    after their day on, so a day with one counts at exactly those ``k``: a bitmap of
    such (day, lead) pairs, swept in day order, gives per lead the number of such days
    before any day ``b``, kept at ``b = T_k`` and ``b = T_k - W``. A day with only
    delayed events counts from the earliest snapshot at which one of them is
    eligible until its window ends.
    """
    W = g.longest
    d0 = int(g.T[0]) - W  # the first day any window holds
    n_days = int(g.T[-1]) - d0  # up to the day before the last snapshot
    offsets = np.unique(np.concatenate([g.T, g.T - W])) - d0  # the day offsets whose counts are kept
    keep_at = {int(o): i for i, o in enumerate(offsets)}
    small = n_days < 2 ** 15
    rel_t = np.int16 if small else np.int32

    # One pass over the activities: each prompt event's day offset, -1 when outside the days; delayed ones aside.
    rel = np.empty(g.n_events, dtype=rel_t)
    late_parts = []
    lo = 0
    for slot, _occ, day, ka in g.events(None):
        hi = lo + len(slot)
        r = day - d0
        inside = (r >= 0) & (r < n_days)
        if ka is not None:
            late = inside & (ka != g.snap(day))
            if late.any():
                i = np.flatnonzero(late)
                late_parts.append((i + lo, ka[i]))
                inside &= ~late
        r[~inside] = -1
        rel[lo:hi] = r
        lo = hi
    late_idx = np.concatenate([p[0] for p in late_parts]) if late_parts else np.zeros(0, dtype=np.int64)
    late_ka = np.concatenate([p[1] for p in late_parts]) if late_parts else np.zeros(0, dtype=np.int32)
    late_rel = g.arrays.occ[late_idx] // DAY_US - d0
    late_slot = g.arrays.lead[late_idx].astype(np.int64) + 1
    late_kept = np.zeros(len(late_idx), dtype=bool)  # a prompt event covers the same (day, lead)

    kept = ws.view("kept", rel_t, (len(offsets), g.NL), 0)
    block_days = BLOCK_DAYS
    running = np.zeros(g.NL, dtype=rel_t)
    lead = g.arrays.lead
    for b0 in range(0, n_days + 1, block_days):
        b1 = min(b0 + block_days, n_days + 1)
        block = ws.view("block", bool, (b1 - b0, g.NL), False)
        for lo in range(0, g.n_events, CHUNK_EVENTS):  # small temporaries: chunks of the offsets
            r = rel[lo:lo + CHUNK_EVENTS]
            i = np.flatnonzero((r >= b0) & (r < b1))
            if len(i):
                cell = (r[i] - b0).astype(np.int64)
                cell *= g.NL
                cell += lead[i + lo]
                cell += 1
                block.reshape(-1)[cell] = True
        mine = np.flatnonzero((late_rel >= b0) & (late_rel < b1))
        if len(mine):
            late_kept[mine] = block[late_rel[mine] - b0, late_slot[mine]]
        for j in range(b0, b1):
            if j in keep_at:
                kept[keep_at[j]] = running
            if j < n_days:
                np.add(running, block[j - b0], out=running)
    del rel, running
    # kept[i]: per slot, the bitmap's days before day d0 + offsets[i].
    at_t = np.searchsorted(offsets, g.T - d0)
    at_start = np.searchsorted(offsets, g.T - W - d0)
    col = out[f"eng_active_days_{W}d"]
    flat = kept.reshape(-1)
    for sl, (a, b) in g.rows(at_t, at_start):
        np.subtract(flat.take(a), flat.take(b), out=col[sl], casting="unsafe")

    # Days that only delayed events cover: per (lead, day), the earliest snapshot at which one is eligible.
    free = np.flatnonzero(~late_kept)
    if len(free):
        key = late_slot[free] * np.int64(n_days + 1) + late_rel[free]
        ka = late_ka[free].astype(np.int64)
        order = np.lexsort((ka, key))
        key, ka = key[order], ka[order]
        first = np.r_[True, key[1:] != key[:-1]]
        key, ka = key[first], ka[first]
        slot, rel_day = key // (n_days + 1), key % (n_days + 1)
        end = g.snap(rel_day + d0 + W).astype(np.int64)
        _Sparse(g, slot).add(ka, np.maximum(ka, end), col)


def _accumulate(ufunc, a: np.ndarray) -> None:
    """``ufunc.accumulate(a, axis=0)`` in place, row by row (NumPy's axis-0 accumulate strides across rows)."""
    for k in range(1, len(a)):
        ufunc(a[k], a[k - 1], out=a[k])


def _group_by_class(code: np.ndarray, type_class: np.ndarray, n_classes: int) -> list[np.ndarray]:
    """Each class's activity positions (ascending), by a counting pass and a stable sort per chunk."""
    itype = np.int32 if len(code) < 2 ** 31 else np.int64
    counts = np.zeros(n_classes, dtype=np.int64)
    for lo in range(0, len(code), CHUNK_EVENTS):
        counts += np.bincount(type_class[code[lo:lo + CHUNK_EVENTS]], minlength=n_classes)
    out = [np.empty(int(c), dtype=itype) for c in counts]
    at = np.zeros(n_classes, dtype=np.int64)
    cls_t = np.uint8 if n_classes <= 256 else np.int32  # small keys: NumPy's stable sort is a radix sort
    lut = type_class.astype(cls_t)
    for lo in range(0, len(code), CHUNK_EVENTS):
        cls = lut[code[lo:lo + CHUNK_EVENTS]]
        order = np.argsort(cls, kind="stable")
        n = np.bincount(cls, minlength=n_classes)
        ends = np.cumsum(n)
        for c in np.flatnonzero(n):
            out[c][at[c]:at[c] + n[c]] = order[ends[c] - n[c]:ends[c]] + lo
        at += n
    return out
