"""The snapshot engagement engine: many leads, each seen at a few cutoffs; compiled, one pass per lead.

Fastest for: many leads at a few distinct cutoffs (the training table): 2.3-2.7x
faster than the runner-up (the running engine) on the 200k-lead world's training
table, 1.6M rows at 23 cutoffs (``benchmarks/engines.py``, 2026-12-05;
``docs/scaling.md``, "The engines"). Not for a lead with many events in the window
and many rows: there the running engine is 11-42x faster.

The training table (:func:`propensity.features.cutoffs.training_cutoffs`) has one
row per open lead at each of a few snapshot dates (a date every four weeks over
the export's span). This engine computes such a table's engagement features lead
by lead in compiled code (Numba; see :mod:`propensity.features.engines.snapshot_kernels`):

1. events are counted per lead and per (part, occurrence day), a "part" being a
   range of leads, in one pass over the activities on each thread;
2. they are copied, with their eligibility time ``max(occurred_at, recorded_at)``
   and their type's class (which signals count it), to their (part, day) place;
3. one part at a time per thread, its events are regrouped by lead (so each
   lead's come sorted by day, without a sort) and every row of its leads is
   written straight into the caller's columns.

No comparison sort of the events, no join of rows to events; the work is
O(E + R x (signals + events in the longest window)) for E events and R rows, and
the scratch is one copy of the activities (21 bytes each) plus one part's events
per thread. The work per lead grows with its rows times the events in the longest
window, so many distinct cutoffs per lead are the running engine's case. Values
equal the pairwise engine's: counts, days and active days exactly, decay up to
float rounding (~1e-15 relative). The rows need 2 or more distinct cutoffs (at any
time of day).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig
from propensity.core import names
from propensity.core.times import DAY_US
from propensity.data import buffers
from propensity.data.activities import ActivityArrays
from propensity.features.rules import signal_membership

__all__ = ["engagement_snapshots", "warm_up"]

MAX_THREADS = 2  # threads at once: each counts and copies a share of the activities, then computes parts
PARTS_PER_THREAD = 4  # parts of the leads per thread: a thread's scratch holds one part's events


def warm_up() -> None:
    """Load the compiled kernels (compile them, the first time after an install) on a tiny input.

    The input has the types of an export read by ``read_export`` (int16 type codes,
    fewer than 256 type classes), so the real call finds them loaded; a call with
    other types loads its own. Errors are left to the real call to raise.
    """
    try:
        code = np.zeros(1, dtype=np.int16)
        arrays = ActivityArrays(lead=np.zeros(1, dtype=np.int32), occ=np.zeros(1, dtype=np.int64),
                                rec=np.zeros(1, dtype=np.int64), code=code, types=np.array(["-"], dtype=object))
        engagement = EngagementConfig.model_validate(
            {"windows_days": [1], "signals": [{"name": "s", "activity_types": ["-"], "display": "S",
                                               "half_life_days": 1}]})
        block = np.empty((5, 2))
        columns = [names.events_in_window("s", 1), names.days_since("s"), names.decay("s"), names.active_days(1),
                   names.DAYS_SINCE_ANY]
        _compute(arrays, np.zeros(2, dtype=np.int64), np.array([1, 2], dtype=np.int64), 1, engagement,
                 out={name: block[i] for i, name in enumerate(columns)})
    except Exception:  # noqa: BLE001 - only a head start; the real call reports any problem
        pass


def engagement_snapshots(arrays: ActivityArrays, row_pos: np.ndarray, row_t: np.ndarray, n_leads: int,
                         engagement: EngagementConfig, out: dict[str, np.ndarray],
                         cuts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Engagement features (spec order, without ``lead_age_days``) for rows with a few distinct cutoffs.

    ``arrays``: the export's activities (``lead`` = row position in its ``leads``,
    -1 = unknown lead); ``row_pos``: each row's lead position in the same table;
    ``row_t``: each row's cutoff in µs; ``n_leads``: that table's length. ``out``
    maps every feature name to a writable float64 array of ``len(row_pos)``
    (fastest when they are the rows of one C-ordered block, as ``build_features``
    allocates them); filled and returned. ``cuts``: the rows' distinct cutoffs,
    ascending, if the caller has them. Raises ``ValueError`` for fewer than 2.
    """
    return _compute(arrays, row_pos, row_t, n_leads, engagement, out, cuts)


def _compute(arrays: ActivityArrays, row_pos: np.ndarray, row_t: np.ndarray, n_leads: int,
             engagement: EngagementConfig, out: dict[str, np.ndarray], cuts: np.ndarray | None = None) -> dict:
    from propensity.features.engines import snapshot_kernels as kernels  # Numba: imported (and compiled) on first use

    if cuts is None:
        cuts = np.sort(pd.unique(np.asarray(row_t, dtype=np.int64)))
    if len(cuts) < 2:
        raise ValueError(f"engagement_snapshots: expected 2 or more distinct cutoffs; got {len(cuts)}")
    row_pos = np.asarray(row_pos, dtype=np.int64)
    row_t = np.asarray(row_t, dtype=np.int64)
    n = len(row_pos)
    windows = sorted(set(engagement.windows_days))
    signals = engagement.signals
    columns = [names.events_in_window(s.name, w) for s in signals for w in windows]
    columns += [names.days_since(s.name) for s in signals] + [names.decay(s.name) for s in signals]
    columns += [names.active_days(windows[-1]), names.DAYS_SINCE_ANY]
    block, where = _block_rows(out, columns, n)
    direct = block is not None
    if not direct:
        block, where = buffers.empty((len(columns), n)), {name: i for i, name in enumerate(columns)}
    col = np.array([where[name] for name in columns], dtype=np.int64)
    n_sig, n_win = len(signals), len(windows)
    col_count = col[:n_sig * n_win].reshape(n_sig, n_win)
    col_since, col_decay = col[n_sig * n_win:][:n_sig], col[n_sig * n_win + n_sig:][:n_sig]
    classes = _Classes(arrays, engagement)

    half_life = np.array([float(s.half_life_days) for s in signals], dtype=np.float64)
    w_us = np.asarray(windows, dtype=np.int64) * DAY_US
    with np.errstate(under="ignore"):
        carry = 0.5 ** ((np.diff(cuts) / DAY_US)[:, None] / half_life[None, :])
    row_ptr = np.zeros(n_leads + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_pos, minlength=n_leads), out=row_ptr[1:])
    row_order = np.empty(n, dtype=np.int64)  # rows grouped by lead, written part by part

    workers = max(1, min(MAX_THREADS, os.cpu_count() or 1))
    n_parts = max(1, min(workers * PARTS_PER_THREAD, n_leads))
    part_first = np.linspace(0, n_leads, n_parts + 1).astype(np.int64)
    part_of = np.repeat(np.arange(n_parts, dtype=np.int32), np.diff(part_first))
    lead, occ = arrays.lead, arrays.occ
    rec = occ if arrays.rec is occ else arrays.rec
    n_ev = len(lead)
    day0 = int(occ.min()) // DAY_US if n_ev else 0
    n_days = int(occ.max()) // DAY_US - day0 + 1 if n_ev else 1
    shares = np.linspace(0, n_ev, workers + 1).astype(np.int64)
    counts = np.zeros((workers, n_leads), dtype=np.int64)

    with ThreadPoolExecutor(workers) as pool:
        def each(fn, *items):
            return [f.result() for f in [pool.submit(fn, *item) for item in zip(*items, strict=True)]]

        hists = each(lambda w: kernels.count_events(lead, occ, shares[w], shares[w + 1], n_leads, part_of, n_parts,
                                                    day0, n_days, counts[w]), range(workers))
        ev_ptr = np.zeros(n_leads + 1, dtype=np.int64)
        np.cumsum(counts.sum(axis=0), out=ev_ptr[1:])
        counts = None  # summed into ev_ptr: free it (a closure above names it, so no del)
        total = sum(hists)
        start = np.zeros(total.size, dtype=np.int64)
        np.cumsum(total.ravel()[:-1], out=start[1:])
        at = [start.reshape(total.shape) + sum(hists[:w], np.zeros_like(total)) for w in range(workers)]
        n_known = int(ev_ptr[-1])
        t_occ, t_elig = buffers.empty(n_known, np.int64), buffers.empty(n_known, np.int64)
        t_cls, t_lead = buffers.empty(n_known, classes.dtype), buffers.empty(n_known, np.int32)
        each(lambda w: kernels.scatter_events(lead, occ, rec, arrays.code, classes.type_class, shares[w],
                                              shares[w + 1], part_of, part_first, day0, at[w], t_occ, t_elig,
                                              t_cls, t_lead), range(workers))
        at = hists = None  # used by the scatter above: free them

        size = int(np.diff(ev_ptr[part_first]).max())
        scratch: SimpleQueue = SimpleQueue()
        for _ in range(workers):
            scratch.put((np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, classes.dtype)))

        def part(q: int) -> None:
            s_occ, s_elig, s_cls = mine = scratch.get()
            try:
                kernels.part_rows(part_first[q], part_first[q + 1], ev_ptr, 0, t_occ, t_elig, t_cls, t_lead,
                                  s_occ, s_elig, s_cls, classes.ptr, classes.sig, half_life, w_us, row_pos,
                                  row_ptr, row_order, row_t, cuts, carry, block, col_count, col_since, col_decay,
                                  int(col[-2]), int(col[-1]))
            finally:
                scratch.put(mine)

        each(part, range(n_parts))
    if not direct:
        for name, i in where.items():
            if name in out:
                out[name][:] = block[i]
    return out


class _Classes:
    """Activity types that belong to the same signals form one class: per type its class, per class its signals."""

    def __init__(self, arrays: ActivityArrays, engagement: EngagementConfig) -> None:
        types, signals = arrays.types, engagement.signals
        member = signal_membership(types, engagement)
        if len(types):
            classes, inverse = np.unique(member.T, axis=0, return_inverse=True)
        else:
            classes, inverse = np.zeros((0, len(signals)), dtype=bool), np.zeros(0, dtype=np.int64)
        self.dtype = np.uint8 if len(classes) <= 256 else np.int32
        self.type_class = np.asarray(inverse, dtype=self.dtype).ravel()
        self.ptr = np.zeros(len(classes) + 1, dtype=np.int64)
        np.cumsum(classes.sum(axis=1), out=self.ptr[1:])
        self.sig = np.nonzero(classes)[1].astype(np.int64)  # row-major: each class's signals, ascending


def _block_rows(out: dict[str, np.ndarray], columns: list[str], n: int) -> tuple[np.ndarray | None, dict]:
    """The C-ordered (rows, n) float64 block whose rows ``out[name]`` are, and each name's row; else (None, {})."""
    arrs = [out.get(name) for name in columns]
    if n == 0 or any(a is None or a.dtype != np.float64 or a.shape != (n,) or not a.flags.c_contiguous
                     or not a.flags.writeable for a in arrs):
        return None, {}
    root = arrs[0]
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.dtype != np.float64 or not root.flags.c_contiguous or not root.flags.writeable or root.size % n:
        return None, {}
    block = root.reshape(-1, n)
    where = {}
    for name, a in zip(columns, arrs, strict=True):
        i, rest = divmod(a.ctypes.data - block.ctypes.data, 8 * n)
        if rest or not 0 <= i < len(block):
            return None, {}
        where[name] = i
    return block, where
