"""Matching text ids: each id's row in a key column, and ids that almost match.

CRM exports join tables on text ids. :func:`id_positions` is the one id matcher
of the package (activities, opportunities, cutoff rows and accounts are matched
with it); :func:`key_positions` adds a shortcut for categorical ids and
:func:`few_positions` one for a handful of ids. A table that already knows the
positions of its ids (a cutoff table built from the leads) records them with
:func:`remember_positions`, so they are not hashed again.

``"A000945 "`` or ``"a000945"`` never equals ``"A000945"``, so a row silently
loses what the join would give it. Nothing here matches such ids for the caller
(a guess could join the wrong rows); :func:`near_matches` and
:func:`folded_duplicates` find them, so that a warning can name them. Arrow does
the work on the distinct values only.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

__all__ = ["FEW_IDS", "arrow_text", "few_positions", "folded_duplicates", "id_positions", "key_positions",
           "known_positions", "near_matches", "remember_positions", "remembered_count"]

FEW_IDS = 8  # up to this many ids (one lead scored on demand) a loop of comparisons costs less than hashing


def arrow_text(values: object):
    """``values`` as one Arrow string array (nulls for missing values), or None when they are not all text.

    Arrow-backed str columns (pandas 3) are taken without a per-value copy. The type
    may be string or large_string: Arrow's kernels take either, and mix them.
    """
    import pyarrow as pa

    if isinstance(values, pd.Series):
        values = values.array if isinstance(values.dtype, pd.StringDtype) else values.to_numpy(dtype=object)
    try:
        arr = pa.array(values, from_pandas=True)
    except (TypeError, ValueError):  # pyarrow's ArrowInvalid/ArrowTypeError are among these
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None  # e.g. all-missing (null type) or numbers: leave them to pandas' own equality
    return arr


def id_positions(needles: pd.Series, ids: pd.Series) -> np.ndarray:
    """Row position in ``ids`` (e.g. ``leads.lead_id``) of each needle: its first row; -1 when absent or missing.

    The result may be read-only (positions recorded by :func:`remember_positions`).

    Hashes in Arrow, and the smaller side: when the needles are fewer than the ids
    (opportunities vs. leads), their distinct values are the hash table and the ids
    are looked up in it, not the other way round (hashing is the costly step, so it
    goes to the smaller side). Columns that are not all text are matched by pandas
    (equal values, no conversion to str).
    """
    known = known_positions(needles, ids)
    if known is not None:
        return known
    out = np.full(len(needles), -1, dtype=np.int64)
    if len(needles) == 0 or len(ids) == 0:
        return out
    hay, pins = arrow_text(ids), arrow_text(needles)
    if hay is None or pins is None:
        index = pd.Index(ids.to_numpy(dtype=object))
        if not index.is_unique:  # get_indexer needs unique ids: keep each value's first row
            keep = ~index.duplicated()
            found = pd.Index(index[keep]).get_indexer(needles.to_numpy(dtype=object))
            return np.where(found >= 0, np.flatnonzero(keep)[found], -1).astype(np.int64)
        return index.get_indexer(needles.to_numpy(dtype=object)).astype(np.int64, copy=False)
    import pyarrow.compute as pc

    if len(pins) >= len(hay):
        return np.asarray(pc.index_in(pins, value_set=hay).fill_null(-1), dtype=np.int64)
    distinct = pc.unique(pins).drop_null()
    if len(distinct) == 0:
        return out
    where = np.asarray(pc.index_in(hay, value_set=distinct).fill_null(-1), dtype=np.int64)  # per id
    hit = np.flatnonzero(where >= 0)
    first, at = np.unique(where[hit], return_index=True)  # the first row of each distinct needle
    pos_of = np.full(len(distinct) + 1, -1, dtype=np.int64)  # the last slot: a needle not among them
    pos_of[first] = hit[at]
    slot = np.asarray(pc.index_in(pins, value_set=distinct).fill_null(len(distinct)), dtype=np.int64)
    return pos_of[slot]


def key_positions(ids: pd.Series, keys: pd.Series) -> np.ndarray:
    """Row position in a key column of unique ids (e.g. ``leads.lead_id``) of each id (-1 when absent).

    :func:`id_positions`, except that categorical ids are matched through their
    categories as text (one lookup per category, then integer codes).
    """
    if isinstance(ids.dtype, pd.CategoricalDtype):
        index = pd.Index(keys.to_numpy(dtype=object))
        cat_pos = index.get_indexer(ids.cat.categories.astype(str))
        codes = ids.cat.codes.to_numpy()
        return np.where(codes >= 0, cat_pos[codes], -1)
    return id_positions(ids, keys)


def few_positions(ids: pd.Series, needles: np.ndarray) -> np.ndarray:
    """Row position of each of a handful of needles in a column of unique ids (-1 when absent).

    For up to :data:`FEW_IDS` needles, where a loop of comparisons costs less than
    hashing the column; :func:`id_positions` matches many.
    """
    out = np.full(len(needles), -1, dtype=np.int64)
    for i, needle in enumerate(needles):
        hit = np.flatnonzero((ids == needle).to_numpy(dtype=bool))
        if len(hit):
            out[i] = hit[0]
    return out


# Positions recorded by remember_positions: id(the needles' Arrow array) -> (weak refs to the needles' and the
# ids' Arrow arrays, the positions, read-only).
_REMEMBERED: dict[int, tuple[weakref.ref, weakref.ref, np.ndarray]] = {}


def _arrow_of(col: pd.Series) -> object | None:
    """The immutable Arrow array behind an Arrow-backed column (pandas replaces it, never changes it), or None."""
    arr = getattr(col.array, "_pa_array", None)
    return arr if type(arr).__module__.startswith("pyarrow") else None


def remember_positions(needles: pd.Series, ids: pd.Series, pos: np.ndarray) -> None:
    """Record that ``pos`` are the positions of ``needles`` in ``ids`` (their builder knows them).

    Both must be Arrow-backed; the record holds for exactly those two Arrow arrays
    (immutable: a column that is filtered, sorted or assigned to gets a new one) and
    goes with the needles' array. :func:`id_positions` then answers from it instead
    of hashing the needles again.
    """
    a, b = _arrow_of(needles), _arrow_of(ids)
    if a is None or b is None or len(pos) != len(needles):
        return
    pos = np.asarray(pos, dtype=np.int64).view()
    pos.flags.writeable = False
    key = id(a)
    _REMEMBERED[key] = (weakref.ref(a, lambda _, key=key: _REMEMBERED.pop(key, None)), weakref.ref(b), pos)


def known_positions(needles: pd.Series, ids: pd.Series) -> np.ndarray | None:
    """The positions :func:`remember_positions` recorded for exactly these two columns (read-only), or None."""
    a, b = _arrow_of(needles), _arrow_of(ids)
    hit = _REMEMBERED.get(id(a)) if a is not None and b is not None else None
    if hit is None or hit[0]() is not a or hit[1]() is not b:
        return None
    return hit[2]


def remembered_count() -> int:
    """How many columns' positions are recorded (each goes with its column)."""
    return len(_REMEMBERED)


def near_matches(unmatched: object, ids: object) -> np.ndarray:
    """Per value of ``unmatched`` (ids that match none of ``ids``): the position in ``ids`` of one equal to it
    once both are folded (surrounding whitespace trimmed, lower case), or -1. All -1 when either is not text.
    """
    import pyarrow.compute as pc

    needles, hay = arrow_text(unmatched), arrow_text(ids)
    out = np.full(len(unmatched), -1, dtype=np.int64)  # type: ignore[arg-type]
    if needles is None or hay is None or not len(needles) or not len(hay):
        return out
    return np.asarray(pc.index_in(_fold(needles), value_set=_fold(hay)).fill_null(-1), dtype=np.int64)


def _fold(arr):
    import pyarrow.compute as pc

    return pc.utf8_lower(pc.utf8_trim_whitespace(arr))


def folded_duplicates(ids: object, limit: int = 3) -> tuple[int, list[list[str]]]:
    """Distinct ``ids`` that collide once folded: (how many ids are in such groups, up to ``limit`` groups).

    ``ids`` are expected distinct (a key column); none collide in the usual case,
    which costs one fold and one distinct count.
    """
    import pyarrow.compute as pc

    arr = arrow_text(ids)
    if arr is None or not len(arr):
        return 0, []
    folded = _fold(arr)
    if pc.count_distinct(folded).as_py() == pc.count_distinct(arr).as_py():
        return 0, []
    codes, uniq = pd.factorize(np.asarray(folded.to_numpy(zero_copy_only=False), dtype=object))
    counts = np.bincount(codes[codes >= 0], minlength=len(uniq))
    in_groups = (codes >= 0) & (counts[np.maximum(codes, 0)] > 1)
    raw = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
    first = pd.unique(codes[in_groups])[:limit]  # the groups in order of first appearance
    return int(np.count_nonzero(in_groups)), [[str(v) for v in raw[codes == g]] for g in first.tolist()]
