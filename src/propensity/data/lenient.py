"""The lenient read (scoring): bad rows of a CRM export set aside per lead instead of refusing the export.

One bad row must not stop a batch. Problems of a whole file or table stay errors
(see :mod:`propensity.data.export`); problems of single rows become per-lead data,
exposed as :attr:`CrmExport.rejected <propensity.data.export.CrmExport>` and
``CrmExport.lead_notes``:

- a lead whose ``created_at`` is empty, unreadable or in the future is removed
  (with its activities and opportunities) and recorded in ``rejected`` with a
  one-line reason naming the column and value; so is a lead with an opportunity
  whose ``created_at`` is unreadable (whether it had converted is unknown);
- an activity whose ``occurred_at`` is empty or unreadable, whose ``recorded_at``
  is unreadable, or which is dated (occurred or recorded) in the future is
  dropped, and counted in its lead's ``lead_notes``;
- an opportunity created in the future is dropped; an unreadable ``closed_at``, or
  a closed opportunity's ``closed_at`` in the future, is emptied; both noted.

One warning sums up what was set aside. An export without such problems reads
exactly as in strict mode.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.core.ids import key_positions
from propensity.core.times import stamp_us
from propensity.data.activities import NAT_US, ActivityArrays
from propensity.data.tables import plural, take_rows

__all__ = ["SetAside", "set_aside_bad_rows"]


@dataclass
class SetAside:
    """What a lenient read set aside: per-lead notes, rejected leads, dropped activity rows (of the file)."""

    notes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)
    dropped: np.ndarray | None = None  # sorted file rows of the activities left out

    def fields(self) -> dict[str, dict]:
        """The :class:`~propensity.data.export.CrmExport` fields that carry it."""
        return {"lead_notes": self.notes, "rejected": self.rejected}

    def file_rows(self, rows) -> list[int]:
        """File row numbers of rows of the kept activities (for the samples in warnings)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.dropped is not None and len(self.dropped):
            rows = rows + np.searchsorted(self.dropped - np.arange(len(self.dropped)), rows, side="right")
        return rows.tolist()


def set_aside_bad_rows(tables: dict[str, pd.DataFrame | None], where: dict[str, str], limit: pd.Timestamp,
                       arrays: ActivityArrays,
                       unreadable: dict[tuple[str, str], pd.Series]) -> tuple[ActivityArrays, SetAside]:
    """The lenient read: set bad rows aside per lead (see the module docstring); ``tables`` updated in place.

    ``arrays`` hold lead positions into the full ``leads``; the returned ones into
    the kept leads, without the dropped rows. Nothing is copied when nothing is
    wrong, so a clean export reads exactly as in strict mode. Costs a few passes
    over the time arrays, and row masks only when some row is dropped.
    """
    leads, opps, acts = tables["leads"], tables["opportunities"], tables["activities"]
    limit_us = stamp_us(limit)
    ids = leads["lead_id"].to_numpy(dtype=object)
    n_leads = len(ids)
    reject: dict[int, str] = {}  # lead position -> reason
    notes: dict[int, list[str]] = {}

    # -- leads: created_at empty, unreadable or in the future
    created = leads["created_at"]
    raw = unreadable.get(("leads", "created_at"), pd.Series([], dtype=object))
    late = (created > limit).to_numpy(dtype=bool)
    empty = created.isna().to_numpy(dtype=bool)
    for i in np.flatnonzero(late | empty):
        if late[i]:
            reject[int(i)] = f"created_at '{_iso(created.iloc[i])}' is in the future"
        elif i in raw.index:
            reject[int(i)] = f"created_at {str(raw[i])!r} is not a readable timestamp"
        else:
            reject[int(i)] = "created_at is empty"

    # -- opportunities: created in the future (dropped), closed_at unreadable or future (emptied),
    #    created_at unreadable (the lead is rejected: whether it had converted is unknown)
    if len(opps):
        opp_pos = key_positions(opps["lead_id"], leads["lead_id"])
        raw_created = unreadable.get(("opportunities", "created_at"), pd.Series([], dtype=object))
        raw_closed = unreadable.get(("opportunities", "closed_at"), pd.Series([], dtype=object))
        for i in raw_created.index:
            if opp_pos[i] >= 0 and opp_pos[i] not in reject:
                reject[int(opp_pos[i])] = (f"opportunity {opps['opportunity_id'].iloc[i]}: created_at "
                                      f"{str(raw_created[i])!r} is not a readable timestamp")
        opp_late = (opps["created_at"] > limit).to_numpy(dtype=bool)
        closed_late = ((opps["closed_at"] > limit) & (opps["stage"] != "open")).to_numpy(dtype=bool) & ~opp_late
        closed_bad = np.zeros(len(opps), dtype=bool)
        closed_bad[raw_closed.index.to_numpy(dtype=np.int64)] = True
        blank = (closed_late | closed_bad) & ~opp_late
        for mask, one, many in ((opp_late, "opportunity dated in the future ignored",
                                 "opportunities dated in the future ignored"),
                                (blank, "opportunity closed_at unreadable or in the future, ignored",
                                 "opportunity closed_at values unreadable or in the future, ignored")):
            hit = mask & (opp_pos >= 0)
            if not hit.any():
                continue
            counts = np.bincount(opp_pos[hit], minlength=n_leads)
            for i in np.flatnonzero(counts):
                notes.setdefault(int(i), []).append(f"{counts[i]} {one if counts[i] == 1 else many}")
        bad_created = np.zeros(len(opps), dtype=bool)
        bad_created[raw_created.index.to_numpy(dtype=np.int64)] = True
    keep_lead = np.ones(n_leads, dtype=bool)
    keep_lead[list(reject)] = False
    any_rejected = not keep_lead.all()

    # -- activities
    lead, occ, rec = arrays.lead, arrays.occ, arrays.rec
    raw_rec = unreadable.get(("activities", "recorded_at"), pd.Series([], dtype=object))
    n = len(lead)
    dirty = n and (int(occ.min()) == NAT_US or int(occ.max()) > limit_us
                   or (rec is not occ and int(rec.max()) > limit_us) or len(raw_rec))
    of_rejected = None
    if any_rejected and n:
        of_rejected = (lead >= 0) & ~keep_lead[np.maximum(lead, 0)]
        if not of_rejected.any():
            of_rejected = None
    n_dropped_unknown = n_dropped = 0
    drop = None
    if dirty or of_rejected is not None:
        no_occ = occ == NAT_US
        no_rec = np.zeros(n, dtype=bool)
        no_rec[raw_rec.index.to_numpy(dtype=np.int64)] = True
        no_rec &= ~no_occ
        future = (occ > limit_us) & ~no_rec
        if rec is not occ:
            future |= (rec > limit_us) & ~no_occ & ~no_rec
        drop = no_occ | no_rec | future
        counted = lead >= 0 if of_rejected is None else (lead >= 0) & ~of_rejected
        n_dropped_unknown = int(np.count_nonzero(drop & (lead < 0)))
        for mask, text in ((no_occ, "without a readable occurred_at ignored"),
                           (no_rec, "without a readable recorded_at ignored"),
                           (future, "dated in the future ignored")):
            hit = mask & counted
            if hit.any():
                counts = np.bincount(lead[hit], minlength=n_leads)
                for i in np.flatnonzero(counts):
                    notes.setdefault(int(i), []).append(f"{plural(int(counts[i]), 'activity', 'activities')} {text}")
        n_dropped = int(np.count_nonzero(drop))
        if of_rejected is not None:
            drop |= of_rejected
        if not drop.any():
            drop = None

    # -- apply
    remap = None
    if any_rejected:
        remap = np.where(keep_lead, np.cumsum(keep_lead) - 1, -1).astype(np.int32)
        tables["leads"] = take_rows(leads, keep_lead)
    dropped = None
    if drop is not None:
        keep = ~drop
        dropped = np.flatnonzero(drop)
        new_occ = occ[keep]
        code, types = _first_seen(arrays.code[keep], arrays.types)
        arrays = ActivityArrays(lead=lead[keep], occ=new_occ, rec=new_occ if rec is occ else rec[keep],
                                code=code, types=types)
        if acts is not None:
            tables["activities"] = take_rows(acts, keep)
        del keep, drop
    if remap is not None:
        arrays = dataclasses.replace(arrays, lead=np.where(arrays.lead >= 0, remap[np.maximum(arrays.lead, 0)],
                                                           -1).astype(np.int32))
    if len(opps):
        opp_keep = ~opp_late & ~bad_created
        if any_rejected:
            opp_keep &= ~((opp_pos >= 0) & ~keep_lead[np.maximum(opp_pos, 0)])
        if blank.any():
            opps = opps.copy()
            opps.loc[opps.index[blank], "closed_at"] = pd.NaT
        if not opp_keep.all():
            opps = take_rows(opps, opp_keep)
        tables["opportunities"] = opps

    aside = SetAside(notes={str(ids[i]): v for i, v in sorted(notes.items()) if keep_lead[i]},
                     rejected={str(ids[i]): reject[i] for i in sorted(reject)}, dropped=dropped)
    if reject or n_dropped:
        sample = [f"{k}: {v}" for k, v in list(aside.rejected.items())[:3]]
        warnings.warn(f"{Path(where['leads']).parent}: lenient read set aside {plural(len(reject), 'lead', 'leads')}"
                      + (f" (e.g. {sample})" if sample else "")
                      + f" and {plural(n_dropped, 'activity', 'activities')} (empty, unreadable or future times"
                      + (f"; {n_dropped_unknown} of unknown leads" if n_dropped_unknown else "")
                      + "); see CrmExport.rejected and CrmExport.lead_notes", UserWarning, stacklevel=4)
    return arrays, aside


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S" + (".%f" if ts.microsecond else "") + "Z")


def _first_seen(code: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activity type codes renumbered in first-seen order (as ``pd.factorize`` gives them), unused types gone.

    Dropping rows may remove a type's first (or every) occurrence; the arrays must
    then equal those derived from the kept rows. Usually the first block holds every type.
    """
    if not len(code):
        return code.astype(np.int16), types[:0]
    present = np.bincount(code, minlength=len(types)) > 0
    need = int(present.sum())
    order: list[int] = []
    seen: set[int] = set()
    for at in range(0, len(code), 1 << 20):
        block = code[at:at + (1 << 20)]
        u, first = np.unique(block, return_index=True)
        for c in u[np.argsort(first, kind="stable")].tolist():
            if c not in seen:
                seen.add(c)
                order.append(c)
        if len(order) == need:
            break
    dtype = np.int16 if len(order) < 2 ** 15 else np.int32
    if order == list(range(len(types))):
        return code.astype(dtype, copy=False), types
    remap = np.full(len(types), -1, dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return remap[code].astype(dtype), types[order]
