"""Point-in-time feature rows: one function for training and for scoring.

:func:`build_features` takes an explicit cutoff table (lead_id, cutoff) and returns
one row of features per cutoff row, named and ordered as in
:func:`propensity.features.spec.build_feature_spec`. Training and scoring call it
the same way; only the cutoffs differ. It reads top to bottom: the rows are checked
and matched to their leads (:mod:`~propensity.features.rows`), an engine computes
the engagement features (:mod:`~propensity.features.engines`), then the lead's age
and the ICP fit features (:mod:`~propensity.features.fit`) are added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig, IcpConfig
from propensity.core import names
from propensity.core.times import DAY_US, to_us
from propensity.data import buffers
from propensity.data.export import CrmExport
from propensity.features import engines
from propensity.features.fit import check_icp_columns, fit_features
from propensity.features.rows import check_cutoffs, match_row_leads
from propensity.features.rules import warn_unknown_activity_types
from propensity.features.spec import FeatureDef, build_feature_spec

__all__ = ["build_features"]


def build_features(export: CrmExport, cutoffs: pd.DataFrame, icp: IcpConfig, engagement: EngagementConfig,
                   engine: str = "auto") -> pd.DataFrame:
    """Feature rows for (lead, cutoff) pairs, for training and scoring alike.

    Time contract: a row with cutoff ``T`` sees an activity only if it occurred
    **and** was recorded strictly before ``T`` (``occurred_at < T`` and
    ``recorded_at < T``); an event at ``T`` itself, or backfilled into the CRM at or
    after ``T``, does not count. Firmographic and contact columns (the ICP fit) are
    read as they are in the export; they carry no time.

    Parameters
    ----------
    export
        The validated CRM export.
    cutoffs
        Columns ``lead_id`` and ``cutoff`` (timestamps; naive ones are taken as
        UTC). Any other column (e.g. ``label``) is carried through unchanged.
        Every lead_id must be in ``export.leads``.
    icp, engagement
        The configs the feature spec is built from.
    engine
        The engine of the engagement features: ``"auto"`` (the one
        :func:`~propensity.features.engines.choose_engine` picks for the rows) or
        one of :data:`~propensity.features.engines.ENGINES` by name
        (``"pairwise"``, ``"asof"``, ``"snapshots"``, ``"running"``; see
        :mod:`propensity.features.engines`). Every engine gives the same values.

    Returns
    -------
    DataFrame with the rows of ``cutoffs`` in the same order (index 0..n-1) and
    columns ``lead_id``, ``cutoff``, the extra input columns, then every feature of
    the spec in spec order. Numeric features are float64 (NaN = unknown), held in
    one consolidated block (built in place, not copied); categorical features are
    object columns of str (None = unknown).

    Activities come from :meth:`CrmExport.activity_arrays` (integer lead
    positions, µs times), so the export's activities DataFrame is never needed.

    Definitions, per row with cutoff ``T`` and eligible events as above:

    - ``fit_<c>``: 1.0 if the lead's (or its account's) value matches criterion
      ``c`` (``in``: stripped, case-insensitive membership; ``range``:
      ``min <= value <= max``), 0.0 if not, NaN if the value is unknown or the
      account is not in the export. A ``range`` value that is no finite number
      (text such as ``"1,200"``, a bool, ``±inf``) is unknown, with one warning
      counting the leads that have one (``rules.read_number``: the one rule).
      ``fit_<c>_value``: the raw value (float for ``range``, stripped str otherwise).
    - ``eng_<s>_<W>d``: events of signal ``s`` with ``T - W days <= occurred_at``;
      ``eng_<s>_days_since``: days from the latest one to ``T`` (NaN if none);
      ``eng_<s>_decay``: sum of ``0.5 ** (age_days / half_life_days)``.
    - ``eng_active_days_<Wmax>d``: distinct UTC dates with any activity (of any
      type) in the longest window; ``eng_days_since_any``; ``lead_age_days``.

    Activity types that no signal lists are ignored by the signal features, with
    one warning giving their count.

    Raises
    ------
    DataError
        If a criterion's column is missing from its table, or the cutoffs are
        malformed or name unknown leads.
    ValueError
        For an unknown engine, or an engine that cannot take these rows
        (``"asof"``: one cutoff for every row; ``"snapshots"``: 2 or more).
    """
    if engine != "auto" and engine not in engines.ENGINES:
        raise ValueError(f"engine: expected one of {['auto', *engines.ENGINES]}; got {engine!r}")
    spec = build_feature_spec(icp, engagement)
    lead_ids, cutoff_col, extras = check_cutoffs(cutoffs, {f.name for f in spec})
    check_icp_columns(export, icp)

    row_t = to_us(cutoff_col)
    cuts = engines.distinct_cutoffs(row_t)
    # The snapshot kernels load in the call that needs them, not on a thread beside it: Numba compiles
    # inside warnings.catch_warnings(record=True), which swaps the process's warning handler, and a
    # warning the caller's thread raised meanwhile (an unknown activity type) would be lost.
    uniq, row_lead, lead_pos = match_row_leads(lead_ids, export)
    if engine == "auto":
        engine = engines.choose_engine(len(uniq), len(cuts))

    # Every numeric feature is one row of a (features x rows) float64 block, written in place by
    # the engines and handed to pandas without a copy (each feature contiguous, as pandas stores it).
    numeric = [f.name for f in spec if f.kind != "categorical"]
    block = buffers.empty((len(numeric), len(row_lead)), np.float64)
    cols = {name: block[i] for i, name in enumerate(numeric)}

    warn_unknown_activity_types(export.activity_arrays(), lead_pos, len(export.leads), engagement, stacklevel=2)
    eng_names = [f.name for f in spec if f.family == "engagement" and f.name != names.LEAD_AGE]
    engines.engagement_features(engine, export, lead_pos, row_lead, row_t, cuts, engagement,
                                out={k: cols[k] for k in eng_names})
    created = np.asarray(export.leads["created_at"].array.asi8, dtype=np.int64)[lead_pos]
    np.subtract(row_t, created[row_lead], out=cols[names.LEAD_AGE], casting="unsafe")
    cols[names.LEAD_AGE] /= DAY_US

    categorical = fit_features(export, icp, lead_pos, row_lead, cols)
    return _frame(spec, block, numeric, categorical, uniq, row_lead, cutoff_col, extras)


def _frame(spec: list[FeatureDef], block: np.ndarray, numeric: list[str], categorical: dict[str, np.ndarray],
           uniq: np.ndarray, row_lead: np.ndarray, cutoff_col: pd.Series, extras: dict[str, pd.Series]) -> pd.DataFrame:
    """The feature table: lead_id, cutoff, the extra columns, then the features in spec order (no copy of ``block``)."""
    frame = pd.DataFrame(block.T, columns=numeric, copy=False)
    first = {"lead_id": pd.Series(np.take(uniq, row_lead), dtype=object, copy=False), "cutoff": cutoff_col, **extras}
    for loc, (name, values) in enumerate(first.items()):
        frame.insert(loc, name, values)
    offset = len(first)
    for loc, f in enumerate(spec):
        if f.kind == "categorical":
            frame.insert(offset + loc, f.name, pd.Series(categorical[f.name], dtype=object, copy=False))
    return frame
