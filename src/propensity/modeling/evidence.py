"""Value-level evidence that a column was filled in at or after the outcome, one record (lead, account, row) each.

The leakage audit of a CRM export (:mod:`propensity.modeling.audit`) and of a flat
table (:mod:`propensity.tabular.inference`) both ask these questions of every
column, so both name the same evidence the same way. Each record has an outcome:
*won* (the lead closed won; the table's target is 1), *closed* (an outcome is
known: won or lost) or *open* (still open at the end of the data: no outcome yet;
for a flat table, the rows without a target value). A field written at or after the
outcome shows it in one of these ways:

- **outcome value**: a frequent value whose records nearly all won (``won_purity``,
  0.9) while the column's other values mostly did not, e.g. ``lead_status =
  converted: 180 of 180 leads closed won``;
- **never open**: a value common among closed records (``closed_share``, 10 %, and
  ``min_support`` records) but (nearly) never seen among the open ones (at most
  ``open_share``, 0.2 %): it is written when the outcome is known, won or lost;
- **enriched value**: a value held by a large share of the won records
  (``won_cover``, 20 %, and ``min_support`` of them) and at least ``lift`` (6)
  times rarer among the others, e.g. a partner flag ticked during the deal (on half
  the won leads and 5 % of the others: about 10x). In the default generated worlds
  (5 seeds of 5,000 leads) no honest value covering 20 % of the wins passes 2.9x, and
  the top fifth of leads by the generator's own win probability, the strongest
  honest static signal there is, reaches 4.5x; an honest value past 6x in real data
  is worth a person's look anyway;
- **filled for an outcome**: the share of records with a value differs by
  ``missing_gap`` (0.5) or more between won and open, or closed and open, records
  (an amount, a close reason, a contract value);
- **alone decisive**: a numeric column that alone ranks won against other records
  with ROC AUC strength ``strength`` (0.9), empty values at whichever end is
  stronger.

Dates get the missingness check only: their order is time itself.

Categorical means text, booleans, and numbers with at most ``MAX_LEVELS`` distinct
values (a 0/1 flag). Text is compared stripped and lower-cased. Each finding is a
plain dict: ``column``, ``value`` (None for a whole-column finding), ``check`` and
``evidence`` (one readable sentence naming the counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

__all__ = ["EvidenceThresholds", "Outcomes", "column_evidence", "roc_strength"]

MAX_LEVELS = 20  # a numeric column with at most this many distinct values is read as categories


@dataclass(frozen=True)
class Outcomes:
    """Per record: ``won``; ``closed`` (won or lost; None: every record has an outcome); ``unit`` names a record,
    ``won_word`` the good outcome ("won" for CRM leads, "converted" for a flat table's target)."""

    won: np.ndarray
    closed: np.ndarray | None = None
    unit: str = "leads"
    won_word: str = "won"

    @property
    def open(self) -> np.ndarray | None:
        return None if self.closed is None else ~self.closed


@dataclass(frozen=True)
class EvidenceThresholds:
    min_support: int = 20
    won_purity: float = 0.9
    closed_share: float = 0.1
    open_share: float = 0.002
    won_cover: float = 0.2
    lift: float = 6.0
    missing_gap: float = 0.5
    strength: float = 0.9
    max_values: int = 3  # findings per column


def column_evidence(column: str, values: pd.Series, outcomes: Outcomes,
                    limits: EvidenceThresholds = EvidenceThresholds()) -> list[dict]:
    """The findings for one column (``values``, aligned with ``outcomes``), strongest first; [] when it looks honest."""
    won = np.asarray(outcomes.won, dtype=bool)
    if won.sum() == 0 or won.all():
        return []
    values = pd.Series(values).reset_index(drop=True)
    filled = values.notna().to_numpy(dtype=bool).copy()
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        filled &= values.astype("string").str.strip().fillna("").ne("").to_numpy(dtype=bool)
    found = _missing(column, filled, won, outcomes, limits)
    if found:
        return [found]
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        return []  # a date's order is time itself (older records had longer to close): the cutoff check's concern
    if _categorical(values):
        return _values(column, values.where(filled), won, outcomes, limits)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    auc, strength = roc_strength(numbers, won.astype(np.int64))
    if strength is not None and strength >= limits.strength:
        return [_finding(column, None, "alone decisive",
                         f"alone ranks {outcomes.won_word} {outcomes.unit} above the others with ROC AUC {auc:.3f} "
                         f"(strength {strength:.3f} >= {limits.strength}; {int(won.sum()):,} {outcomes.won_word} of "
                         f"{len(won):,})")]
    return []


def roc_strength(values: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """(AUC, 0.5 + |AUC - 0.5|) with missing values at the end that gives the larger strength; None for one class."""
    if y.sum() == 0 or y.sum() == len(y):
        return None, None
    nan = np.isnan(values)
    if nan.all():
        return 0.5, 0.5  # no value at all: the column ranks nobody above anybody
    if not nan.any():
        auc = _auc(y, values)
        return auc, 0.5 + abs(auc - 0.5)
    lo, hi = np.nanmin(values), np.nanmax(values)
    best = None
    for fill in (lo - 1.0, hi + 1.0):
        auc = _auc(y, np.where(nan, fill, values))
        if best is None or abs(auc - 0.5) > abs(best - 0.5):
            best = auc
    return best, 0.5 + abs(best - 0.5)


# ------------------------------------------------------------------ checks


def _missing(column: str, filled: np.ndarray, won: np.ndarray, outcomes: Outcomes,
             limits: EvidenceThresholds) -> dict | None:
    unit, open_ = outcomes.unit, outcomes.open
    use_open = open_ is not None and open_.sum() >= limits.min_support
    other, other_name = (open_, "open") if use_open else (~won, "other")
    groups = [won] if outcomes.closed is None else [won, outcomes.closed]
    rate_other = filled[other].mean()
    for mask in groups:
        if mask.sum() < limits.min_support // 2 or abs(filled[mask].mean() - rate_other) < limits.missing_gap:
            continue
        lost = ""
        if outcomes.closed is not None:
            is_lost = outcomes.closed & ~won
            lost = f", {_count(filled, is_lost)} lost"
        return _finding(column, None, "filled for an outcome",
                        f"filled in for {_count(filled, won)} {outcomes.won_word}{lost} but {_count(filled, other)} "
                        f"{other_name} {unit}: written when the outcome is known")
    return None


def _values(column: str, values: pd.Series, won: np.ndarray, outcomes: Outcomes,
            limits: EvidenceThresholds) -> list[dict]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        codes, numbers = pd.factorize(values, use_na_sentinel=True)
        uniques = [f"{v:g}" for v in numbers]
    else:
        codes, uniques = pd.factorize(values.astype("string").str.strip().str.lower(), use_na_sentinel=True)
    if len(uniques) < 2:
        return []
    known = codes >= 0
    n, k = len(won), len(uniques)
    unit, base, word = outcomes.unit, won.mean(), outcomes.won_word
    closed_won = "closed won" if word == "won" else word

    def per_value(mask: np.ndarray) -> np.ndarray:  # records with each value among those in ``mask``
        return np.bincount(codes[known & mask], minlength=k)

    count, wins = per_value(np.ones(n, dtype=bool)), per_value(won)
    use_open = outcomes.closed is not None and outcomes.open.sum() >= limits.min_support
    other, other_name = (outcomes.open, "open") if use_open else (~won, "other")
    on_other = per_value(other)
    on_closed = per_value(outcomes.closed) if use_open else None
    n_won, n_other = int(won.sum()), int(other.sum())
    n_closed = int(outcomes.closed.sum()) if use_open else 0
    found = []
    order = np.argsort(-wins, kind="stable")
    for i in order[count[order] >= limits.min_support]:
        value = str(uniques[i])
        rest_n, rest_won = n - count[i], n_won - int(wins[i])
        rest = f"other values {rest_won:,} of {rest_n:,} ({rest_won / max(rest_n, 1):.1%})"
        if wins[i] / count[i] >= limits.won_purity and rest_won / max(rest_n, 1) < 0.5:
            found.append(_finding(column, value, "outcome value",
                                  f"{wins[i]:,} of {count[i]:,} {unit} {closed_won}; {rest}; base rate {base:.1%}"))
        elif (use_open and on_closed[i] >= limits.min_support and on_closed[i] / n_closed >= limits.closed_share
                and on_other[i] / n_other <= limits.open_share):
            found.append(_finding(column, value, "never open",
                                  f"on {on_closed[i]:,} of {n_closed:,} closed {unit} "
                                  f"({on_closed[i] / n_closed:.0%}) but {on_other[i]:,} of {n_other:,} "
                                  f"{unit} still open at the end of the data: written when the outcome is known"))
        elif wins[i] >= limits.min_support and wins[i] / n_won >= limits.won_cover:
            cover, share_other = wins[i] / n_won, on_other[i] / n_other
            lift = cover / max(share_other, 1.0 / n_other)
            if lift >= limits.lift:
                found.append(_finding(column, value, "enriched value",
                                      f"{wins[i]:,} of {count[i]:,} {unit} {closed_won} ({wins[i] / count[i]:.1%}); "
                                      f"{rest}; on {cover:.0%} of {word} {unit} but {share_other:.1%} of {other_name} "
                                      f"{unit} ({lift:.1f}x, >= {limits.lift:g}x)"))
        if len(found) >= limits.max_values:
            break
    return found[:limits.max_values]


# ------------------------------------------------------------------ helpers


def _categorical(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return True
    return values.nunique(dropna=True) <= MAX_LEVELS


def _count(filled: np.ndarray, mask: np.ndarray) -> str:
    n = int(mask.sum())
    k = int(filled[mask].sum())
    return f"{k:,} of {n:,} ({k / max(n, 1):.0%})"


def _finding(column: str, value: str | None, check: str, evidence: str) -> dict:
    return {"column": column, "value": value, "check": check, "evidence": evidence}


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half; y has both classes."""
    ranks = rankdata(score)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
