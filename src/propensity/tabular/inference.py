"""Type inference for a flat lead table: what each column is and how the model sees it.

:func:`infer_schema` looks at the training rows only and returns the table schema
(:class:`~propensity.tabular.schema.TableSchema`) that
:func:`propensity.tabular.matrix.table_matrix` turns into the model matrix, at
training and at scoring time alike. Rules, in order, per column:

- fewer than two distinct values: dropped (constant);
- datetime dtype, or text that parses as dates: ``date`` (days, month, day of week);
- at most two distinct values that read as yes/no, true/false, 1/0: ``boolean``;
- numbers (or text that is ≥ 95 % numbers): ``numeric``; an integer column with a
  distinct value on every row, or named like an id, is dropped (id-like); a
  sentinel (999, -1, 9999, ...) that sits at the extreme of the range, far from
  the other values, on ≥ 2 % of rows is flagged: it becomes missing plus a flag;
- other text: ``categorical`` with values seen at least ``min_count`` times
  (rarer ones pooled into ``__other__``);
- text with a distinct value on ≥ 90 % of rows, with no value seen ``min_count``
  times, or with most rows in rare values, is either free text or id-like:

  - ``text`` (free text: job titles, company descriptions, campaign names) when
    values hold several words (≥ 2 whitespace-separated words on average, at most
    half of the values a single word), and words repeat across rows (≥ half of
    the values hold a token seen in ``min_count`` rows), and the column is not
    named like personal data (``full_name``, ``email``, ``phone``, ``address``...).
    Tokens are lower-cased runs of letters/digits of length ≥ 2, minus a few
    English stop words ("of", "and", "the"...). The schema keeps ``tokens``: up
    to ``MAX_TEXT_TOKENS`` (30) tokens by document frequency among those in at
    least ``min_count`` training rows (and not in every row). Features: one 0/1
    ``{col}__has_{token}`` per token, plus ``{col}__tokens`` (the value's token
    count); all NaN when the value is missing. Tokens unseen in training are
    ignored at scoring time. Reasons add a text column's pieces back into one
    reason named by the column;
  - otherwise (one-word values such as codes like ``A12-9F3``, UUIDs, emails; or
    words that do not repeat) as other text is: dropped as "id-like or free text (a
    distinct value on nearly every row)" when nearly every value is distinct,
    dropped as "high-cardinality text" when no value is seen ``min_count`` times,
    else ``categorical`` with the rare values pooled.

:func:`leakage_flags` names columns that look known only after the outcome (by name, or a feature alone
ranking the target); :func:`value_flags` adds the value-level evidence the CRM audit gives.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from propensity.modeling.evidence import Outcomes, column_evidence
from propensity.tabular.schema import TableColumn, TableSchema, feature_names
from propensity.tabular.values import BOOL_FALSE, BOOL_TRUE, text_tokens

__all__ = ["MAX_TEXT_TOKENS", "infer_schema", "leakage_flags", "leakage_warnings", "normalise_target", "value_flags"]

MAX_TEXT_TOKENS = 30  # token features per free-text column
STOP_WORDS = frozenset({"an", "and", "the", "of", "for", "to", "in", "on", "at", "by", "with", "or", "from", "as",
                        "is", "be", "are", "was", "it", "its", "this", "that", "our", "we", "your", "you"})
_PERSONAL_NAME = re.compile(r"((^|_)(first|last|full|contact|person|customer|user|lead|given|family|sur)_?name"
                            r"|^name$|^names?_|e_?mail|phone|mobile|address|street|postcode|zip)", re.IGNORECASE)

SENTINELS = (999.0, 9999.0, 99999.0, 999999.0, -1.0, -99.0, -999.0, -9999.0)
POSITIVE = frozenset({"1", "1.0", "yes", "y", "true", "t", "won", "converted", "positive", "pos"})
NEGATIVE = frozenset({"0", "0.0", "no", "n", "false", "f", "lost", "negative", "neg"})
_ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|guid|^key$|_key$|^index$|^unnamed)", re.IGNORECASE)
_LEAKY_NAME = re.compile(r"(duration|outcome|result|status|closed|close_date|won|lost|converted|conversion|"
                         r"churn|stage|response|responded|purchased|signed|paid|refund)", re.IGNORECASE)


def normalise_target(s: pd.Series, column: str, source: str) -> tuple[np.ndarray, str, np.ndarray]:
    """Map a binary target to 1/0.

    Returns ``(y, positive_value, kept)``: ``kept`` masks out rows whose target is
    missing. Raises a one-line ``ValueError`` for one class or more than two values.
    """
    kept = s.notna().to_numpy()
    text = s[kept].astype("string").str.strip().str.lower()
    values = sorted(set(text.unique()))
    if len(values) == 0:
        raise ValueError(f"{source}: target column {column!r} has no values")
    if len(values) == 1:
        raise ValueError(f"{source}: target column {column!r} has one class only ({values[0]!r}); "
                         "need both converted and not converted rows")
    if len(values) > 2:
        shown = ", ".join(map(repr, values[:6])) + (", ..." if len(values) > 6 else "")
        raise ValueError(f"{source}: target column {column!r} is not binary: {len(values)} distinct values "
                         f"({shown}); expected two, e.g. yes/no, true/false or 1/0")
    pos = [v for v in values if v in POSITIVE]
    neg = [v for v in values if v in NEGATIVE]
    if len(pos) != 1 or (neg and neg[0] == pos[0]):
        raise ValueError(f"{source}: target column {column!r} has values {values[0]!r} and {values[1]!r}; "
                         "cannot tell which is the conversion: use yes/no, true/false or 1/0")
    y = np.zeros(len(s), dtype=int)
    y[np.flatnonzero(kept)] = (text.to_numpy() == pos[0]).astype(int)
    return y, pos[0], kept


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.dropna().head(500)
    if sample.empty or sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").mean() > 0.5:
        return False
    if sample.str.contains(r"\d", regex=True).mean() < 0.9:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def _sentinels(v: np.ndarray) -> list[float]:
    v = v[~np.isnan(v)]
    if len(v) < 20:
        return []
    found = []
    lo, hi = float(v.min()), float(v.max())
    for s in SENTINELS:
        share = float(np.mean(v == s))
        if share < 0.02 or s not in (lo, hi):
            continue
        rest = v[v != s]
        if len(rest) == 0:
            continue
        # A sentinel stands apart: 999 days when real values stop near 30, -1 when real ones are ≥ 0.
        if (s > 0 and rest.max() < 0.5 * s) or (s < 0 and rest.min() >= 0):
            found.append(s)
    return found


def _column(s: pd.Series, name: str, min_count: int) -> tuple[TableColumn | None, str]:
    """The schema entry for one column, or ``(None, reason)`` when it is dropped."""
    nonnull = s.dropna()
    n_unique = int(nonnull.nunique())
    if n_unique <= 1:
        return None, "constant (fewer than two distinct values)"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return TableColumn(name=name, kind="date"), ""
    if pd.api.types.is_bool_dtype(s.dtype):
        return TableColumn(name=name, kind="boolean"), ""
    numeric = pd.api.types.is_numeric_dtype(s.dtype)
    text = None if numeric else nonnull.astype("string").str.strip()
    if not numeric:
        lowered = set(text.str.lower().unique())
        if n_unique <= 2 and lowered <= (BOOL_TRUE | BOOL_FALSE) and lowered & BOOL_TRUE and lowered & BOOL_FALSE:
            return TableColumn(name=name, kind="boolean"), ""
        coerced = pd.to_numeric(text, errors="coerce")
        if coerced.notna().mean() >= 0.95:
            numeric = True
        elif _looks_like_dates(text):
            return TableColumn(name=name, kind="date"), ""
    if numeric:
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        known = v[~np.isnan(v)]
        integral = bool(np.all(np.mod(known, 1) == 0))
        if integral and len(known) >= 50 and (n_unique == len(known) or (_ID_NAME.search(name)
                                                                        and n_unique > 0.5 * len(known))):
            return None, "id-like (a distinct integer on every row)"
        return TableColumn(name=name, kind="numeric", sentinels=_sentinels(v)), ""
    if _ID_NAME.search(name) and n_unique > 0.5 * len(nonnull):
        return None, "id-like (named like an id, mostly distinct values)"
    counts = text.value_counts()
    distinct = n_unique >= 0.9 * len(nonnull) and n_unique > 20
    rare_rows = int(counts[counts < min_count].sum())
    if distinct or rare_rows >= 0.5 * len(nonnull):
        entry = _free_text(text, name, min_count)
        if entry is not None:
            return entry, ""
    if distinct:
        return None, "id-like or free text (a distinct value on nearly every row)"
    keep = counts[counts >= min_count].index[:200].tolist()
    cats = sorted(map(str, keep))
    if len(keep) < len(counts):
        cats.append("__other__")
    if len(keep) == 0:
        return None, f"high-cardinality text (no value seen {min_count} times)"
    return TableColumn(name=name, kind="categorical", categories=cats), ""


def _free_text(text: pd.Series, name: str, min_count: int) -> TableColumn | None:
    """The ``text`` schema entry when ``text`` (non-missing, stripped) reads as free text, else ``None``.

    Free text: several words per value that repeat across rows. One-word values
    (codes, UUIDs, emails, URLs), words that do not repeat, and columns named like
    personal data (names, emails, phones, addresses) are not free text.
    """
    if _PERSONAL_NAME.search(name) or len(text) == 0:
        return None
    words = text.str.split().str.len().fillna(0).to_numpy()
    if words.mean() < 2.0 or np.mean(words <= 1) > 0.5:
        return None
    docs = [set(t) - STOP_WORDS for t in text_tokens(text)]
    df_counts: dict[str, int] = {}
    for d in docs:
        for t in d:
            df_counts[t] = df_counts.get(t, 0) + 1
    # Tokens that vary: seen in min_count rows, but not in every row.
    frequent = {t for t, k in df_counts.items() if min_count <= k < len(docs)}
    if not frequent or np.mean([bool(d & frequent) for d in docs]) < 0.5:
        return None
    tokens = sorted(frequent, key=lambda t: (-df_counts[t], t))[:MAX_TEXT_TOKENS]
    return TableColumn(name=name, kind="text", tokens=tokens)


def infer_schema(df: pd.DataFrame, target: str, id_column: str | None = None, time_column: str | None = None,
                 exclude: tuple[str, ...] = (), min_count: int = 10) -> TableSchema:
    """Infer column kinds from ``df`` (the training rows only).

    Returns the schema stored in the bundle: ``target``, ``id_column``,
    ``time_column``, ``input_columns`` (the table's columns minus the target: what
    scoring must receive), ``columns`` (kept, with kind and details), ``dropped``
    (``{column: reason}``) and ``features`` (the model matrix's column names).
    ``positive_value`` is left for the caller, who read the target.
    """
    columns, dropped = [], {}
    for name in df.columns:
        if name in (target, id_column, time_column):
            continue
        if name in exclude:
            dropped[name] = "excluded by --exclude"
            continue
        entry, why = _column(df[name], name, min_count)
        if entry is None:
            dropped[name] = why
        else:
            columns.append(entry)
    if not columns:
        raise ValueError("no usable feature columns: every column was dropped ("
                         + "; ".join(f"{k}: {v}" for k, v in list(dropped.items())[:5]) + ")")
    return TableSchema(target=target, id_column=id_column, time_column=time_column,
                       input_columns=[str(c) for c in df.columns if c != target],
                       columns=columns, dropped=dropped, features=feature_names(columns))


def leakage_flags(x: np.ndarray, y: np.ndarray, schema: TableSchema, threshold: float = 0.95) -> list[dict]:
    """Columns that look known only after the outcome: by name, or one feature alone ranking with AUC > threshold.

    Each flag is a dict as the leakage audit's (:mod:`propensity.modeling.evidence`): ``column``, ``value``
    (None), ``check`` and ``evidence``.
    """
    out = []
    for c in schema.columns:
        if _LEAKY_NAME.search(c.name):
            out.append({"column": c.name, "value": None, "check": "name",
                        "evidence": "the name suggests a value known only after the outcome; "
                                    "if so, leave it out (--exclude)"})
    for j, name in enumerate(schema.features):
        v = x[:, j]
        known = ~np.isnan(v)
        if known.sum() < 20 or len(set(y[known])) < 2:
            continue
        score = v[known]
        if len(np.unique(score)) <= 50:  # categorical-like: rank by each value's own conversion rate
            rates = pd.Series(y[known]).groupby(score).mean()
            score = rates.reindex(score).to_numpy()
        auc = roc_auc_score(y[known], score)
        auc = max(auc, 1 - auc)
        if auc > threshold:
            out.append({"column": name, "value": None, "check": "single feature",
                        "evidence": f"alone ranks the target with AUC {auc:.3f}; a value this telling is usually "
                                    "recorded after the outcome"})
    return out


def leakage_warnings(x: np.ndarray, y: np.ndarray, schema: TableSchema, threshold: float = 0.95) -> list[str]:
    """:func:`leakage_flags` as ``name: evidence`` lines."""
    return [f"{f['column']}: {f['evidence']}" for f in leakage_flags(x, y, schema, threshold)]


def value_flags(df: pd.DataFrame, y: np.ndarray, labelled: np.ndarray, schema: TableSchema) -> list[dict]:
    """Value-level evidence (:func:`propensity.modeling.evidence.column_evidence`) for each column the model reads.

    ``df`` is the whole table, rows without a target value included (``labelled`` false): they are the
    leads still open, so a value never seen among them while common among labelled rows is named.
    """
    outcomes = Outcomes(won=(np.asarray(y) == 1) & labelled, closed=None if labelled.all() else labelled,
                        unit="rows", won_word="converted")
    out = []
    for c in schema.columns:
        out += column_evidence(c.name, df[c.name], outcomes)
    return out
