"""The ``notes`` of a scored lead: what was missing or could not be used, and the leads not scored at all.

A row's notes come, in this order, from what a lenient read set aside for the
lead (:func:`export_notes`), the ICP values that are no finite number
(:func:`value_notes`, as the one-lead input checks note them), the model matrix
(:mod:`propensity.scoring.encoding`: unknown and unseen values; one note per field
at most, see :func:`merge_notes`), and the lead's activities of types no
engagement signal lists (:func:`type_notes`). A lead a lenient read could not
score at all gets an error row (:func:`with_error_rows`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig, IcpConfig
from propensity.data.export import CrmExport
from propensity.features.fit import unusable_value_notes
from propensity.features.rules import unknown_types_note

__all__ = ["UnlistedEvents", "export_notes", "merge_notes", "type_notes", "unlisted_events", "value_notes",
           "with_error_rows"]


def merge_notes(first: list[str], own: list[str]) -> list[str]:
    """``first`` (the input checks' notes) then ``own`` (the matrix's), one note per field.

    A field the input checks already noted (e.g. "Company size (employees): '1,200'
    is not a number, treated as unknown") gets no second "...: unknown" note.
    """
    if not first:
        return list(own)
    noted = {n.split(": ", 1)[0] for n in first if ": " in n}
    return [*first, *(n for n in own if n.split(": ", 1)[0] not in noted)]


def export_notes(notes: list[list[str]], export: CrmExport, cut: pd.DataFrame) -> list[list[str]]:
    """``notes`` with, first on each row, what a lenient read set aside for that row's lead."""
    if not export.lead_notes or not len(cut):
        return notes
    ids = cut["lead_id"].astype(str).tolist()
    return [[*export.lead_notes.get(lead, []), *n] if lead in export.lead_notes else n
            for lead, n in zip(ids, notes, strict=True)]


def value_notes(notes: list[list[str]], export: CrmExport, icp: IcpConfig, cut: pd.DataFrame) -> list[list[str]]:
    """``notes`` with, first, the ICP values of the rows' leads that are no finite number, named.

    The one-lead path notes them as it reads the lead (``lead_rows``); the field's
    own "unknown" note is then left out, as there.
    """
    if not len(cut):
        return notes
    found = unusable_value_notes(export, icp, cut["lead_id"])
    if not found:
        return notes
    notes = list(notes)
    for i, own in found.items():
        notes[i] = merge_notes(own, notes[i])
    return notes


class UnlistedEvents(NamedTuple):
    """An export's activities of types no engagement signal lists, in table order."""

    lead_ids: np.ndarray
    occurred: np.ndarray  # µs
    recorded: np.ndarray  # µs
    types: np.ndarray
    positions: np.ndarray  # rows of the activities table


def unlisted_events(export: CrmExport, engagement: EngagementConfig) -> UnlistedEvents | None:
    """The export's activities of types no engagement signal lists; None (the usual case) with no pass at all."""
    acts = export.activity_arrays()
    known = engagement.activity_types
    unlisted = [c for c, name in enumerate(acts.types.tolist()) if name not in known]
    if not unlisted or not len(acts):
        return None
    idx = np.flatnonzero(np.isin(acts.code, unlisted) & (acts.lead >= 0))
    if not len(idx):
        return None
    ids = export.leads["lead_id"].to_numpy(dtype=object)[acts.lead[idx]]
    return UnlistedEvents(ids, acts.occ[idx], acts.rec[idx], acts.types[acts.code[idx]], idx)


def type_notes(notes: list[list[str]], unlisted: UnlistedEvents | None, cut: pd.DataFrame) -> list[list[str]]:
    """``notes`` plus, per row of ``cut``, the note on its ignored activities of unlisted types.

    Counted as the one-lead path counts them: the lead's activities of those types
    that occurred and were recorded before the row's cutoff.
    """
    if unlisted is None or not len(cut) or not cut["lead_id"].is_unique:
        return notes
    row = pd.Index(cut["lead_id"].astype(str).to_numpy(dtype=object)).get_indexer(unlisted.lead_ids.astype(str))
    hit = row >= 0
    if not hit.any():
        return notes
    cutoff = cut["cutoff"].astype("datetime64[us, UTC]").array.asi8
    hit[hit] = (unlisted.occurred[hit] < cutoff[row[hit]]) & (unlisted.recorded[hit] < cutoff[row[hit]])
    per: dict[int, dict[str, int]] = {}
    for r, name in zip(row[hit].tolist(), unlisted.types[hit].tolist(), strict=True):  # in table order
        counts = per.setdefault(r, {})
        counts[name] = counts.get(name, 0) + 1
    notes = list(notes)
    for r, counts in per.items():
        notes[r] = [*notes[r], unknown_types_note(counts)]
    return notes


def with_error_rows(out: pd.DataFrame, export: CrmExport) -> pd.DataFrame:
    """``out`` plus one error row per lead a lenient read could not score (tier ``error``, the reason in notes).

    Error rows come last, in the order the export lists them; their probability is
    NaN and their scores are missing (nullable integers), so a CSV shows them empty.
    """
    if not export.rejected:
        return out
    ids = list(export.rejected)
    err = pd.DataFrame({c: pd.Series([pd.NA] * len(ids), dtype=object) for c in out.columns})
    err["lead_id"] = pd.Series(ids, dtype=out["lead_id"].dtype if len(out) else object)
    if "cutoff" in out.columns:
        err["cutoff"] = pd.Series([pd.NaT] * len(ids), dtype=out["cutoff"].dtype)
    err["probability"] = np.nan
    ints = [c for c in ("score", "fit_score", "engagement_score") if c in out.columns]
    out = out.astype(dict.fromkeys(ints, "Int64"))
    for c in ints:
        err[c] = pd.Series([pd.NA] * len(ids), dtype="Int64")
    err["tier"] = "error"
    for c in ("reasons", "grade"):
        if c in out.columns:
            err[c] = ""
    err["notes"] = [f"not scored: {export.rejected[i]}" for i in ids]
    return pd.concat([out, err[out.columns]], ignore_index=True)
