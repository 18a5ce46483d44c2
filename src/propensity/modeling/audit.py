"""Leakage audit: cheap checks, run on every training, that a model is not too good to be true.

:func:`leakage_audit` looks at the training rows three ways and returns JSON-ready
findings; :func:`to_markdown` renders them for the training report.

1. **Single features.** For each feature alone, the ROC AUC on the validation and
   test rows, as ``strength = 0.5 + |AUC - 0.5|`` (a feature that ranks backwards
   is as suspicious as one that ranks forwards). Missing values are their own group,
   put at whichever end gives the larger strength. Categorical features are
   scored by their category's positive rate in the *training* rows. A feature at or
   above ``auc_threshold`` (0.9) alone is flagged: in lead scoring, no honest
   single signal separates future buyers that well.
2. **Random split versus time split.** A small quick LightGBM is trained twice on
   equally many rows: once on the time split's training window and scored on its
   test window, once on a random split of the same rows, grouped by lead so that
   one lead's snapshots never sit on both sides. A random split that beats the
   time split by more than ``gap_threshold`` (0.05 AUC) suggests information that
   crosses time: a feature computed with future data, or the same person entered
   as several leads.
3. **Static columns.** Account and lead columns carry no time: the export holds
   their value *today*, not at each cutoff. When ``export`` is given, every such
   column (not only the ones the ICP reads) is checked, one record per lead (lead
   columns) or per account (account columns, an account won when one of its leads
   did), for the marks of a field written at or after the outcome, with value-level
   evidence (:mod:`propensity.modeling.evidence`): a value whose records nearly all
   closed won; a value common among closed records but never seen among those still
   open at the end of the data; a value held by many won records and rare among the
   others; a column filled in mostly for records with an outcome; a number that alone
   separates won records. Columns with no such finding are then checked on the
   sampled snapshot rows (dates meet these first: a timestamp later than the cutoff
   is proof, not suspicion):

   - a timestamp with values at or after the row's cutoff (the record was written
     later than the snapshot, e.g. ``converted_at`` or ``last_modified``);
   - a missing rate of won and not-won rows that differs by ``missing_gap_threshold``;
   - a frequent value (``min_support`` rows) almost only on won rows;
   - the column alone reaching the single-feature threshold.

Accepting: ``accept`` names columns a person has checked (``partner_flag``,
``leads.partner_flag`` or a feature name such as ``fit_partner_flag_value``; a
feature is also accepted through the column its ICP criterion reads). Their flags
stay in ``flags`` with ``accepted: true``, a recorded note rather than a flag to
review; ``ok`` is true when no flag is left to review. Accept entries that match no
flag are listed in ``accept_unused`` (a typo, or a leak that has gone).

What it cannot detect: without a history of the static columns, a strong honest
predictor and a post-outcome field look alike, so flags are for a person to
review, not proof. Overwrites that shift a column only a little (company size
re-enriched after the deal, a title updated by the rep) pass unnoticed, as does
leakage whose effect is smaller than the thresholds. Engagement features are
protected by construction (two clocks, strictly before the cutoff) and are only
covered by checks 1 and 2. The audit subsamples rows, so its figures move a
little from run to run of different data; with the same data and seed they are
fixed.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from propensity.config import IcpConfig
from propensity.core.native import LIGHTGBM
from propensity.data.export import CrmExport
from propensity.data.tables import ID_COLUMNS, TIMESTAMPS
from propensity.features.matrix import fit_categories, to_matrix
from propensity.features.spec import FeatureDef
from propensity.modeling.evidence import EvidenceThresholds, Outcomes, column_evidence, roc_strength
from propensity.modeling.split import TimeSplit

__all__ = ["accept_flags", "audit_summary", "feature_columns", "flag_line", "leakage_audit", "lead_outcomes",
           "static_column_reason", "to_markdown"]

_QUICK_PARAMS = {
    "objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "max_depth": 5, "min_child_samples": 50,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "seed": 0, "deterministic": True,
    "force_col_wise": True, "num_threads": 2, "max_bin": 63, "verbose": -1,
}


def leakage_audit(frame: pd.DataFrame, split: TimeSplit, spec: list[FeatureDef], y: np.ndarray, *,
                  x: pd.DataFrame | None = None, export: CrmExport | None = None,
                  accept: list[str] | tuple[str, ...] = (), sources: dict[str, str] | None = None,
                  auc_threshold: float = 0.9, gap_threshold: float = 0.05, missing_gap_threshold: float = 0.5,
                  min_support: int = 30, max_rows: int = 30_000, rounds: int = 60, seed: int = 0) -> dict:
    """Audit one training set for leakage (see the module docstring for the checks).

    Parameters
    ----------
    frame
        The training feature table (``lead_id``, ``cutoff``, features), as from
        :func:`propensity.features.pipeline.build_features`.
    split
        The time split of ``frame``'s rows.
    spec
        The features to audit (those of ``frame``'s columns the model uses).
    y
        The 0/1 labels of ``frame``'s rows.
    x
        The model matrix of ``frame`` if already built (saves rebuilding it).
    export
        The CRM export, to check every static lead and account column (check 3);
        without it check 3 is skipped.
    accept
        Columns or features a person has checked: their flags are recorded as accepted.
    sources
        ``{feature name: "table.column"}`` for features read from one column (the ICP's),
        so that accepting a column also accepts its features.
    max_rows
        Rows sampled per side of each check, which bounds the cost (a few seconds
        at 200k rows).

    Returns
    -------
    A dict of plain JSON types: ``ok`` (no flag left to review), ``flags`` (one dict
    per finding: ``column`` (a feature, ``table.column``, or None for the split
    check), ``value`` (None for a whole-column finding), ``check``, ``evidence`` and
    ``accepted``), ``accept_unused``, ``single_feature``, ``split_gap``,
    ``static_columns``, ``thresholds``, ``limits`` and ``seconds``.
    """
    t0 = time.perf_counter()
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if x is None:
        x = to_matrix(frame, spec, fit_categories(frame[split.train], spec))
    train_idx = _sample(np.flatnonzero(split.train), max_rows, rng)
    eval_idx = _sample(np.flatnonzero(split.valid | split.test), max_rows, rng)

    single = _single_features(x, spec, y, train_idx, eval_idx, auc_threshold)
    gap = _split_gap(frame, split, x, y, max_rows, rounds, gap_threshold, rng)
    static = (_static_columns(frame, export, y, np.sort(np.concatenate([train_idx, eval_idx])), auc_threshold,
                              missing_gap_threshold, min_support) if export is not None
              else {"checked": [], "flagged": [], "findings": [], "skipped": "no export given"})

    sources = sources or {}
    flags = [{"column": f["feature"], "value": None, "check": "single feature",
              "evidence": (f"read from {sources[f['feature']]}, " if f["feature"] in sources else "")
              + f"alone reaches ROC AUC strength {f['strength']:.3f} (>= {auc_threshold}) on validation+test rows"}
             for f in single["flagged"]]
    if gap["flagged"]:
        flags.append({"column": None, "value": None, "check": "random split",
                      "evidence": f"a random split (grouped by lead) scores ROC AUC {gap['random_auc']:.3f} against "
                                  f"{gap['time_auc']:.3f} for the time split (gap {gap['gap']:+.3f} > "
                                  f"{gap_threshold}): information may cross time, or the same people appear as "
                                  "several leads"})
    flags += static["findings"]
    flags, unused = accept_flags(flags, accept, sources)
    return _jsonable({
        "ok": not any(not f["accepted"] for f in flags),
        "flags": flags,
        "accept_unused": unused,
        "single_feature": single,
        "split_gap": gap,
        "static_columns": static,
        "thresholds": {"auc": auc_threshold, "gap": gap_threshold, "missing_gap": missing_gap_threshold,
                       "min_support": min_support},
        "limits": ("Static lead/account columns hold today's values; without their history an honest strong "
                   "predictor and a post-outcome field look alike, and small overwrites pass unnoticed. "
                   "Flags are for review, not proof."),
        "seconds": time.perf_counter() - t0,
    })


def flag_line(flag: dict) -> str:
    """One flag as a line: ``column = value: evidence`` (the column or value left out when there is none).

    A flag written before flags had fields (a plain string) is its own line.
    """
    if isinstance(flag, str):
        return flag
    if not flag.get("column"):
        return flag["evidence"]
    where = flag["column"] if flag.get("value") is None else f"{flag['column']} = {flag['value']}"
    return f"{where}: {flag['evidence']}"


def audit_summary(findings: dict) -> tuple[list[str], list[str]]:
    """(lines of the flags to review, lines of the accepted ones), each as :func:`flag_line`."""
    flags = findings.get("flags", [])
    accepted = [isinstance(f, dict) and bool(f.get("accepted")) for f in flags]
    return ([flag_line(f) for f, a in zip(flags, accepted, strict=True) if not a],
            [flag_line(f) for f, a in zip(flags, accepted, strict=True) if a])


def to_markdown(findings: dict) -> str:
    """The findings of :func:`leakage_audit` as a Markdown section for a report (with its heading)."""
    lines = ["## Leakage audit", ""]
    review, accepted = audit_summary(findings)
    if not review:
        lines.append("No flag raised." if not accepted else "No flag to review.")
    else:
        lines.append(f"**{len(review)} flag(s) to review:**")
        lines.append("")
        lines += [f"- {f}" for f in review]
    if accepted:
        lines += ["", f"Accepted in the training config (`audit.accept`), recorded here: {len(accepted)}", ""]
        lines += [f"- {f}" for f in accepted]
    if findings.get("accept_unused"):
        lines += ["", "`audit.accept` names with no flag: " + ", ".join(f"`{a}`" for a in findings["accept_unused"])
                  + "."]
    lines += ["", "### Strongest single features (validation + test rows)", "",
              "| feature | family | ROC AUC | strength | missing |", "|---|---|---:|---:|---:|"]
    for f in findings["single_feature"]["top"]:
        lines.append(f"| `{f['feature']}` | {f['family']} | {_fmt(f['auc'])} | {_fmt(f['strength'])} "
                     f"| {f['missing_rate']:.1%} |")
    g = findings["split_gap"]
    lines += ["", "### Random split versus time split", ""]
    if g.get("skipped"):
        lines.append(f"Skipped: {g['skipped']}.")
    else:
        lines.append(f"Quick LightGBM on {g['train_rows']:,} training rows each: time split ROC AUC "
                     f"{_fmt(g['time_auc'])}, random split grouped by lead {_fmt(g['random_auc'])}, "
                     f"gap {_fmt(g['gap'], sign=True)}.")
    s = findings["static_columns"]
    lines += ["", "### Static lead and account columns", ""]
    if s.get("skipped"):
        lines.append(f"Skipped: {s['skipped']}.")
    else:
        lines.append(f"Checked {len(s['checked'])} column(s); {len(s['flagged'])} flagged.")
        if s.get("outcomes"):
            lines.append(f"Outcomes: {s['outcomes']}.")
    lines += ["", f"_Limits: {findings['limits']}_", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ checks


def _single_features(x: pd.DataFrame, spec: list[FeatureDef], y: np.ndarray, train_idx: np.ndarray,
                     eval_idx: np.ndarray, threshold: float) -> dict:
    y_eval = y[eval_idx]
    rows = []
    for f in spec:
        col = x[f.name]
        if f.kind == "categorical":
            values = _target_encode(col.iloc[train_idx], y[train_idx], col.iloc[eval_idx])
        else:
            values = col.iloc[eval_idx].to_numpy(dtype=np.float64)
        auc, strength = roc_strength(values, y_eval)
        rows.append({"feature": f.name, "family": f.family, "auc": auc, "strength": strength,
                     "missing_rate": float(np.isnan(values).mean()) if f.kind != "categorical"
                     else float(col.iloc[eval_idx].isna().mean())})
    rows.sort(key=lambda r: -(r["strength"] if r["strength"] is not None else 0.0))
    flagged = [r for r in rows if r["strength"] is not None and r["strength"] >= threshold]
    return {"rows": len(eval_idx), "flagged": flagged, "top": rows[:10]}


def _split_gap(frame: pd.DataFrame, split: TimeSplit, x: pd.DataFrame, y: np.ndarray, max_rows: int,
               rounds: int, threshold: float, rng: np.random.Generator) -> dict:
    train_all, test_all = np.flatnonzero(split.train), np.flatnonzero(split.test)
    n_train = min(len(train_all), max_rows * 2 // 3)
    n_test = min(len(test_all), max_rows // 3)
    time_train, time_test = _sample(train_all, n_train, rng), _sample(test_all, n_test, rng)
    # The same rows, split at random by lead in the same proportion.
    pool = np.concatenate([train_all, test_all])
    leads = pd.factorize(frame["lead_id"].to_numpy()[pool])[0]
    side = rng.random(leads.max() + 1 if len(leads) else 0) < len(train_all) / max(len(pool), 1)
    rand_train = _sample(pool[side[leads]], n_train, rng)
    rand_test = _sample(pool[~side[leads]], n_test, rng)
    if min(len(time_train), len(time_test), len(rand_train), len(rand_test)) == 0:
        return {"skipped": "too few rows", "flagged": False}
    time_auc = _quick_auc(x, y, time_train, time_test, rounds)
    random_auc = _quick_auc(x, y, rand_train, rand_test, rounds)
    if time_auc is None or random_auc is None:
        return {"skipped": "a side has a single class", "flagged": False}
    gap = random_auc - time_auc
    return {"time_auc": time_auc, "random_auc": random_auc, "gap": gap, "flagged": bool(gap > threshold),
            "train_rows": int(n_train), "test_rows": int(n_test), "grouped_by": "lead_id"}


def feature_columns(spec: list[FeatureDef], icp: IcpConfig) -> dict[str, str]:
    """``{feature name: "table.column"}`` for the features an ICP criterion reads from one column."""
    by_criterion = {c.name: f"{c.table}.{c.column}" for c in icp.criteria}
    return {f.name: by_criterion[f.source] for f in spec if f.family == "fit" and f.source in by_criterion}


def lead_outcomes(export: CrmExport) -> tuple[Outcomes, Outcomes]:
    """Each lead's and each account's outcome at the end of the data (see :mod:`propensity.modeling.evidence`).

    A lead won when it has a ``closed_won`` opportunity, is closed when it has a closed
    one (won or lost), and is open otherwise; an account likewise through its leads.
    """
    opps = export.opportunities
    stage = opps["stage"].astype("string")
    lead_ids = export.leads["lead_id"].to_numpy(dtype=object)
    won = np.isin(lead_ids, opps.loc[stage.eq("closed_won").fillna(False).to_numpy(), "lead_id"].to_numpy(dtype=object))
    closed = np.isin(lead_ids, opps.loc[stage.isin(["closed_won", "closed_lost"]).fillna(False).to_numpy(),
                                        "lead_id"].to_numpy(dtype=object))
    acc = export.leads["account_id"].to_numpy(dtype=object)
    acc_ids = export.accounts["account_id"].to_numpy(dtype=object)
    return (Outcomes(won, closed, "leads"),
            Outcomes(np.isin(acc_ids, acc[won]), np.isin(acc_ids, acc[closed]), "accounts"))


def _static_columns(frame: pd.DataFrame, export: CrmExport, y: np.ndarray, idx: np.ndarray, auc_threshold: float,
                    missing_gap: float, min_support: int) -> dict:
    rows = frame.iloc[idx]
    yy = y[idx]
    lead_pos = pd.Index(export.leads["lead_id"].to_numpy(dtype=object)).get_indexer(
        rows["lead_id"].to_numpy(dtype=object))
    account_ids = export.leads["account_id"].to_numpy(dtype=object)[np.maximum(lead_pos, 0)]
    acc_pos = pd.Index(export.accounts["account_id"].to_numpy(dtype=object)).get_indexer(account_ids)
    acc_pos[lead_pos < 0] = -1
    cutoff = rows["cutoff"].reset_index(drop=True)
    checked, flagged, findings = [], [], []
    outcomes = dict(zip(("leads", "accounts"), lead_outcomes(export), strict=True))
    single_class = yy.sum() == 0 or yy.sum() == len(yy)
    for table, pos in (("leads", lead_pos), ("accounts", acc_pos)):
        df = getattr(export, table)
        skip = set(ID_COLUMNS[table]) | set(TIMESTAMPS[table])
        for name in df.columns:
            if name in skip:
                continue
            checked.append(f"{table}.{name}")
            # A timestamp later than the snapshot is proof, so dates meet the snapshot rows first; other columns
            # meet them only when the records show nothing (the records name values and counts).
            is_time = isinstance(df[name].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(df[name])
            found = [] if is_time else column_evidence(f"{table}.{name}", df[name], outcomes[table],
                                                       EvidenceThresholds(missing_gap=missing_gap))
            if not found and not single_class:
                col = df[name].iloc[np.maximum(pos, 0)].reset_index(drop=True)
                col = col.where(pd.Series(pos >= 0), None) if (pos < 0).any() else col
                reason = static_column_reason(col, yy, cutoff, auc_threshold, missing_gap, min_support)
                if reason:
                    found = [{"column": f"{table}.{name}", "value": None, "check": "snapshot rows",
                              "evidence": reason}]
            if not found and is_time:
                found = column_evidence(f"{table}.{name}", df[name], outcomes[table],
                                        EvidenceThresholds(missing_gap=missing_gap))
            if found:
                flagged.append({"table": table, "column": name, "reason": "; ".join(
                    f["evidence"] if f["value"] is None else f"value {f['value']!r}: {f['evidence']}" for f in found)})
                findings += found
    lo, ao = outcomes["leads"], outcomes["accounts"]
    return {"checked": checked, "flagged": flagged, "findings": findings, "rows": len(idx),
            "outcomes": (f"{int(lo.won.sum()):,} of {len(lo.won):,} leads closed won, {int(lo.closed.sum()):,} "
                         f"closed; {int(ao.won.sum()):,} of {len(ao.won):,} accounts with a won lead")}


def static_column_reason(col: pd.Series, y: np.ndarray, cutoff: pd.Series, auc_threshold: float,
                         missing_gap: float, min_support: int) -> str | None:
    """Why one lead or account column (its values on the sampled rows) looks written after the outcome, or None.

    ``y`` is the rows' labels and ``cutoff`` their snapshot times. A timestamp at or
    after the cutoff; an empty rate that differs by ``missing_gap`` between won and
    other rows; a value seen on ``min_support`` rows that are nearly all won; or the
    column alone ranking the label with ROC AUC strength ``auc_threshold``.
    """
    pos = y == 1
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(col):
        stamps = pd.to_datetime(col, utc=True)
        later = (stamps >= cutoff).to_numpy(dtype=bool)
        if later.any():
            return (f"timestamp at or after the row's cutoff in {later[pos].mean():.0%} of won and "
                    f"{later[~pos].mean():.0%} of other rows: the record was written after the snapshot")
        col = pd.Series((cutoff - stamps).dt.total_seconds().to_numpy(dtype=np.float64))
    missing = col.isna().to_numpy(dtype=bool)
    miss_pos, miss_neg = float(missing[pos].mean()), float(missing[~pos].mean())
    if abs(miss_pos - miss_neg) >= missing_gap:
        return (f"empty in {miss_pos:.0%} of won rows but {miss_neg:.0%} of other rows: "
                "filled in for one outcome only, typical of a field written at or after conversion")
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if numeric:
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = col.astype("string").str.strip().str.lower()
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        if not len(uniques):  # empty on every sampled row (the missing-rate check has had its say)
            return None
        known = codes >= 0
        counts = np.bincount(codes[known], minlength=len(uniques))
        wins = np.bincount(codes[known], weights=y[known], minlength=len(uniques))
        rate = np.divide(wins, counts, out=np.zeros(len(uniques)), where=counts > 0)
        frequent = counts >= min_support
        base = float(y.mean())
        pure = np.flatnonzero(frequent & (rate >= 0.9)) if base < 0.5 else np.array([], dtype=np.int64)
        if len(pure):
            return (f"value(s) {[str(uniques[i]) for i in pure[:3]]} occur on {int(counts[pure].sum())} rows, "
                    f">= 90% of them won (base rate {base:.1%}): looks like a status written after the outcome")
        values = np.full(len(codes), np.nan)
        use = known & frequent[np.maximum(codes, 0)]
        values[use] = rate[codes[use]]
    _, strength = roc_strength(values, y)
    if strength is not None and strength >= auc_threshold:
        return f"alone reaches ROC AUC strength {strength:.3f} (>= {auc_threshold})"
    return None


# ------------------------------------------------------------------ helpers


def _sample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return idx if len(idx) <= n else np.sort(rng.choice(idx, n, replace=False))


def _target_encode(train: pd.Series, y_train: np.ndarray, target: pd.Series) -> np.ndarray:
    """Each category's smoothed positive rate in the training rows (NaN for missing or unseen)."""
    key = train.astype(object).where(train.notna(), "\x00missing").to_numpy()
    stats = pd.DataFrame({"k": key, "y": y_train}).groupby("k")["y"].agg(["sum", "count"])
    prior, weight = float(y_train.mean()) if len(y_train) else 0.0, 20.0
    rate = (stats["sum"] + prior * weight) / (stats["count"] + weight)
    tkey = target.astype(object).where(target.notna(), "\x00missing")
    return tkey.map(rate).to_numpy(dtype=np.float64, na_value=np.nan)


def _quick_auc(x: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray, rounds: int) -> float | None:
    import lightgbm as lgb

    if y[train].sum() in (0, len(train)) or y[test].sum() in (0, len(test)):
        return None
    with LIGHTGBM:
        booster = lgb.train(_QUICK_PARAMS, lgb.Dataset(x.iloc[train], y[train]), num_boost_round=rounds)
        p = booster.predict(x.iloc[test], num_threads=_QUICK_PARAMS["num_threads"])
    return float(roc_auc_score(y[test], p))


def _fmt(v: float | None, sign: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.3f}" if sign else f"{v:.3f}"


def _jsonable(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(float(obj)) else float(obj)
    return obj


def accept_flags(flags: list[dict], accept, sources: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Mark each flag accepted when ``accept`` names its column (bare or ``table.column``) or its feature's column."""
    wanted = {str(a).strip() for a in accept}
    used: set[str] = set()
    out = []
    for f in flags:
        names = set()
        for col in (f["column"], sources.get(f["column"] or "")):
            if col:
                names |= {col, col.split(".", 1)[-1]}
        hit = wanted & names
        used |= hit
        out.append({**f, "accepted": bool(hit)})
    return out, sorted(wanted - used)
