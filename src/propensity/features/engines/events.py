"""The activities of the requested leads as arrays: the input of the pairwise and running engines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.config import EngagementConfig
from propensity.core.times import DAY_US
from propensity.data.activities import ActivityArrays
from propensity.features.rules import signal_membership

__all__ = ["Events", "requested_events"]


@dataclass(frozen=True)
class Events:
    """The activities of the requested leads, as arrays.

    ``lead`` indexes the engine's list of distinct leads; ``code`` indexes
    ``types`` (the distinct activity types seen); ``member[s, code]`` says whether
    type ``code`` belongs to signal ``s``. Times are int64 µs since the epoch;
    ``day`` is the UTC calendar day number of ``occurred_at``.
    """

    lead: np.ndarray
    occ: np.ndarray
    rec: np.ndarray
    code: np.ndarray
    day: np.ndarray
    types: np.ndarray
    member: np.ndarray


def requested_events(arrays: ActivityArrays, lead_pos: np.ndarray, n_leads: int, engagement: EngagementConfig,
                     compact: bool) -> Events:
    """The requested leads' activities, from an export's activity arrays.

    ``lead_pos[i]`` is the row in the export's ``leads`` (of ``n_leads`` rows) of
    distinct lead ``i``; events get ``lead = i``. Works on integer positions, so no
    string id is matched here. ``compact=False`` (the running engine, which batches
    leads itself) keeps every activity, with ``lead = -1`` for the others, shares the
    time and type arrays with the export instead of copying them, and leaves
    ``day`` as None.
    """
    to_uniq = np.full(n_leads + 1, -1, dtype=np.int32)  # the last slot: unknown lead (-1)
    to_uniq[lead_pos] = np.arange(len(lead_pos), dtype=np.int32)
    lead = to_uniq[arrays.lead]
    del to_uniq
    occ, rec, code = arrays.occ, arrays.rec, arrays.code
    if compact and lead.min(initial=0) < 0:
        idx = np.flatnonzero(lead >= 0)
        lead, occ, rec, code = lead[idx], occ[idx], rec[idx], code[idx]
        del idx
    types = arrays.types
    member = signal_membership(types, engagement)
    if compact:
        return Events(lead=lead.astype(np.int64), occ=occ, rec=rec, code=code.astype(np.int64), day=occ // DAY_US,
                      types=types, member=member)
    return Events(lead=lead, occ=occ, rec=rec, code=code, day=None, types=types, member=member)
