"""The rules shared by one lead and a batch: reading values, matching ICP criteria, unknown activity types.

:class:`~propensity.features.onelead.OneLead` applies them to one value at a time,
:func:`~propensity.features.pipeline.build_features` to columns; both give the
same values and the same words:

- a ``range`` criterion reads a number by :func:`read_number` (a bool, text that is
  no number and ``±inf`` are unknown, named by :func:`number_note` per lead);
- an ``in`` criterion matches a category stripped and lower-cased
  (:func:`clean_category`, :func:`allowed_values`); :func:`criterion_value` matches
  one value, :func:`criterion_values` many (in Arrow where the text is ASCII);
- activity types that no engagement signal lists are ignored by the signal features,
  with a note per lead (:func:`unknown_types_note`) or one warning per batch
  (:func:`unknown_types_warning`, :func:`warn_unknown_activity_types`), which names
  types that differ from a listed one only in case or surrounding whitespace.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from propensity.config import Criterion, EngagementConfig
from propensity.data.activities import ActivityArrays

__all__ = ["NOT_A_NUMBER", "NOT_FINITE", "allowed_values", "clean_category", "criterion_value", "criterion_values",
           "is_number", "number_note", "range_values", "read_number", "read_numbers", "signal_membership",
           "unknown_types_note", "unknown_types_warning", "warn_unknown_activity_types"]


NOT_A_NUMBER = "is not a number"
NOT_FINITE = "is not a finite number"


def clean_category(v: object) -> str | None:
    """A category as stripped str, None when unknown (missing or blank)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    s = str(v).strip()
    return s or None


def allowed_values(c: Criterion) -> frozenset[str]:
    """The values an ``in`` criterion matches, stripped and lower-cased."""
    return frozenset(v.strip().lower() for v in c.values or ())


def _number(v: object) -> float:
    """``pd.to_numeric(errors="coerce")`` of one value of an object column, as float64."""
    if v is None or (isinstance(v, float) and v != v):
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if v is pd.NA or v is pd.NaT:
        return math.nan
    # text and anything else: pandas' own rules (rare at scoring time, and slower than the cases above)
    return float(pd.to_numeric(pd.Series([v], dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)[0])


def read_number(v: object) -> tuple[float, str | None]:
    """A value where a number is expected: ``(number, None)``, or ``(NaN, why)`` when it cannot be used.

    The one rule for a ``range`` criterion, in training, features and scoring alike.
    Missing values (None, NaN, blank text) are ``(NaN, None)``: unknown, nothing
    odd. A bool is not a number (``employees=True`` is a wrong type, not 1), nor is
    text ``pd.to_numeric`` cannot read (``"lots"``, ``"1,200"``): :data:`NOT_A_NUMBER`.
    ``inf`` and ``-inf`` (numbers or text) are :data:`NOT_FINITE`. Both are unknown.
    """
    if isinstance(v, (bool, np.bool_)):
        return math.nan, NOT_A_NUMBER
    if isinstance(v, str) and not v.strip():
        return math.nan, None
    x = _number(v)
    if math.isnan(x):
        return math.nan, None if _absent(v) else NOT_A_NUMBER
    if math.isinf(x):
        return math.nan, NOT_FINITE
    return x, None


def _absent(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and math.isnan(v))


def is_number(v: object) -> bool:
    """Whether a present value reads as a finite number where a number is expected (see :func:`read_number`)."""
    return read_number(v)[1] is None and not _absent(v)


def number_note(display: str, v: object, why: str) -> str:
    """The per-lead note on a value :func:`read_number` cannot use.

    >>> number_note("Company size (employees)", "1,200", NOT_A_NUMBER)
    "Company size (employees): '1,200' is not a number, treated as unknown"
    """
    if isinstance(v, np.generic):  # np.float64(inf) is inf to the reader
        v = v.item()
    return f"{display}: {v!r} {why}, treated as unknown"


def criterion_value(c: Criterion, raw: object, allowed: frozenset[str] | None = None) -> tuple[float, object]:
    """(match: 1.0 / 0.0 / NaN for unknown, raw value) of one criterion for one value.

    :func:`criterion_values` for one value: ``range`` reads a number (NaN when
    missing or unusable, see :func:`read_number`), ``in`` and ``value`` a stripped
    str (None when missing or blank).
    ``allowed`` is :func:`allowed_values` of ``c``, when the caller keeps it.
    """
    if c.kind == "range":
        value = read_number(raw)[0]
        if value != value:
            return math.nan, value
        lo = -math.inf if c.min is None else c.min
        hi = math.inf if c.max is None else c.max
        return float(lo <= value <= hi), value
    value = clean_category(raw)
    if c.kind == "in":
        if value is None:
            return math.nan, None
        return float(value.lower() in (allowed_values(c) if allowed is None else allowed)), value
    return math.nan, value


def criterion_values(c: Criterion, raw: object) -> tuple[np.ndarray, np.ndarray | None]:
    """(match as float64 with NaN for unknown, raw value) for one criterion.

    ``raw`` is an object array, or (``in``/``value`` criteria; see
    :func:`~propensity.features.fit.distinct_values`)
    a pyarrow string array with nulls for unknown, matched in Arrow with Python's
    rules: ASCII text is stripped of exactly the characters ``str.strip`` removes
    from ASCII and lower-cased as ``str.lower`` does; other text goes through
    :func:`clean_category` itself. The value is then given only when ``c.raw``.
    """
    if not isinstance(raw, np.ndarray):
        import pyarrow as pa
        import pyarrow.compute as pc

        space = "".join(chr(i) for i in range(128) if chr(i).isspace())  # str.strip() on ASCII text
        stripped = pc.ascii_trim(raw, characters=space)
        unknown = pc.fill_null(pc.equal(pc.binary_length(stripped), 0), True).to_numpy(zero_copy_only=False)
        if c.kind == "in":
            allowed = pa.array(sorted(allowed_values(c)), type=pa.string())
            hit = pc.is_in(pc.ascii_lower(stripped), value_set=allowed)
            match = pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            match = np.full(len(raw), np.nan)
        match[unknown] = np.nan
        value = None
        if c.raw:
            value = stripped.to_numpy(zero_copy_only=False)
            value[unknown] = None
        other = np.flatnonzero(~pc.fill_null(pc.string_is_ascii(raw), True).to_numpy(zero_copy_only=False))
        if len(other):  # non-ASCII text: Python's own strip and lower, once per distinct value
            codes, uniq = pd.factorize(raw.take(pa.array(other)).to_numpy(zero_copy_only=False))
            m, v = criterion_values(c, np.asarray(uniq, dtype=object))
            match[other] = m[codes]
            if value is not None:
                value[other] = v[codes]
        return match, value
    if c.kind == "range":
        return range_values(c, raw)[:2]
    value = np.array([clean_category(v) for v in raw], dtype=object)
    if c.kind == "in":
        allowed = allowed_values(c)
        match = np.array([np.nan if v is None else float(v.lower() in allowed) for v in value], dtype=np.float64)
    else:
        match = np.full(len(value), np.nan)
    return match, value


def range_values(c: Criterion, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(match, value, why each value is unusable or None) of a ``range`` criterion over object values."""
    value, why = read_numbers(raw)
    lo = -np.inf if c.min is None else c.min
    hi = np.inf if c.max is None else c.max
    with np.errstate(invalid="ignore"):
        match = np.where(np.isnan(value), np.nan, ((value >= lo) & (value <= hi)).astype(np.float64))
    return match, value, why


def read_numbers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_number` of each value: (float64, why each is unusable or None).

    Columns of numbers only are read in one vectorised pass (then only ±inf is
    unusable); anything else (text, bools, a mix) value by value, by the one-value rule.
    """
    s = pd.Series(raw, dtype=object)
    if pd.api.types.infer_dtype(s, skipna=True) in ("integer", "floating", "mixed-integer-float", "empty"):
        value = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        why = np.full(len(value), None, dtype=object)
        inf = np.isinf(value)
        if inf.any():
            why[inf] = NOT_FINITE
            value = np.where(inf, np.nan, value)
        return value, why
    pairs = [read_number(v) for v in raw]
    return (np.fromiter((v for v, _ in pairs), dtype=np.float64, count=len(pairs)),
            np.array([w for _, w in pairs], dtype=object))


def unknown_types_note(counts: dict[str, int]) -> str:
    """The per-lead note for activities of types no engagement signal lists, by type in first-seen order.

    >>> unknown_types_note({"foo": 2})
    "2 activities of unknown type(s) ['foo'] ignored"
    """
    total = sum(counts.values())
    names = sorted(counts, key=lambda t: -counts[t])  # stable: first seen first among equal counts
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{total} activit{'y' if total == 1 else 'ies'} of unknown type(s) {names[:5]}{more} ignored"


def unknown_types_warning(counts: dict[str, int], listed: set[str] | frozenset[str]) -> str:
    """The warning about activities of types no engagement signal lists (``counts``: per type, by count).

    A type that equals a listed one once surrounding whitespace and case are set
    aside (``"Email_Open"``, ``"web_visit "``) is most likely that type misspelt by
    the CRM: the warning names it with the suggested mapping, as nothing maps it silently.
    """
    total = sum(counts.values())
    names = sorted(counts, key=lambda t: -counts[t])  # stable: first seen first among equal counts
    text = (f"{total} activit{'y' if total == 1 else 'ies'} of {len(names)} type(s) that no engagement signal "
            f"lists were ignored by the signal features, e.g. {names[:5]}; add them to features/engagement.yaml "
            "if they matter")
    folded = {t.strip().casefold(): t for t in sorted(listed)}
    near = {t: folded[t.strip().casefold()] for t in names if t.strip().casefold() in folded}
    if near:
        n = sum(counts[t] for t in near)
        shown = dict(list(near.items())[:5])
        text += (f"; {n} of them ({len(near)} type(s)) differ from a listed type only in case or surrounding "
                 f"whitespace, suggested mapping {shown}: fix the types in the export, or list these spellings "
                 "in the signal's activity_types")
    return text


def signal_membership(types: np.ndarray, engagement: EngagementConfig) -> np.ndarray:
    """``member[s, k]``: whether activity type ``types[k]`` counts for signal ``s`` (bool, signals x types)."""
    listed = [set(s.activity_types) for s in engagement.signals]
    return np.array([[t in kinds for t in types] for kinds in listed],
                    dtype=bool).reshape(len(engagement.signals), len(types))


def warn_unknown_activity_types(arrays: ActivityArrays, lead_pos: np.ndarray, n_leads: int,
                                engagement: EngagementConfig, stacklevel: int = 2) -> None:
    """One warning counting the activities of the requested leads whose type no signal lists.

    ``arrays``: the export's activities (``lead`` = row position in its ``leads``,
    -1 = unknown lead); ``lead_pos``: the requested leads' positions; ``n_leads``:
    the length of ``leads``. Types seen only for other leads say nothing. The
    warning points ``stacklevel`` frames up from the caller.
    """
    types, code = arrays.types, arrays.code
    unlisted = np.flatnonzero(~signal_membership(types, engagement).any(axis=0))
    if not len(unlisted):  # the usual case: no pass over the activities at all
        return
    wanted = np.zeros(n_leads + 1, dtype=bool)  # slot 0: unknown lead (-1)
    wanted[np.asarray(lead_pos, dtype=np.int64) + 1] = True
    keep = wanted[arrays.lead.astype(np.int64) + 1]
    if keep.all():
        keep = None
    if len(unlisted) > 4:
        counts = np.bincount(code if keep is None else code[keep], minlength=len(types))[unlisted]
    else:
        counts = np.array([np.count_nonzero(code == c) if keep is None else np.count_nonzero((code == c) & keep)
                           for c in unlisted], dtype=np.int64)
    unknown = counts > 0
    if not unknown.any():
        return
    counts, unlisted = counts[unknown], unlisted[unknown]
    order = np.argsort(-counts, kind="stable")
    by_type = {str(types[u]): int(k) for u, k in zip(unlisted[order].tolist(), counts[order].tolist(), strict=True)}
    warnings.warn(unknown_types_warning(by_type, engagement.activity_types), UserWarning, stacklevel=stacklevel + 1)
