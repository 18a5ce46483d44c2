"""Ids that almost match: equal once surrounding whitespace and case are set aside.

CRM exports join tables on text ids. ``"A000945 "`` or ``"a000945"`` never equals
``"A000945"``, so a row silently loses what the join would give it. Nothing here
matches such ids for the caller (a guess could join the wrong rows); it finds them,
so that a warning can name them. Arrow does the work on the distinct values only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["folded_duplicates", "near_matches"]


def _text(values: object):
    """``values`` as one Arrow string array (nulls for missing), or None when they are not all text."""
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
        return None
    return arr


def near_matches(unmatched: object, ids: object) -> np.ndarray:
    """Per value of ``unmatched`` (ids that match none of ``ids``): the position in ``ids`` of one equal to it
    once both are folded (surrounding whitespace trimmed, lower case), or -1. All -1 when either is not text.
    """
    import pyarrow.compute as pc

    needles, hay = _text(unmatched), _text(ids)
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

    arr = _text(ids)
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
