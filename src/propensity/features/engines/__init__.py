"""The engagement engines: the same features, each engine fastest for one shape of cutoff table.

Every engine computes the engagement features of
:func:`propensity.features.pipeline.build_features` (see it for the definitions
and the time contract) and gives the same values: counts, days and active days
exactly, decay sums up to float rounding (~1e-14 relative). They differ in how
the work grows with the table:

============  ======================================================  ==========================================
engine        how                                                     its case ("auto" chooses it)
============  ======================================================  ==========================================
``pairwise``  every (row, event) pair of a lead, in NumPy              fewer than :data:`MIN_LEADS` leads
``asof``      per-lead aggregates, no sort                             one cutoff for every row (as-of scoring)
``snapshots`` compiled (Numba), lead by lead, events grouped by day    2 to :data:`MAX_SNAPSHOTS` distinct cutoffs
                                                                       (the training table)
``running``   events sorted by (lead, time), binary search, prefix    more distinct cutoffs (a cutoff per lead)
              sums
============  ======================================================  ==========================================

:func:`choose_engine` is the one place that decides; ``build_features(engine=...)``
runs any engine by name. The figures behind the thresholds (each engine against the
others on its case) are in ``docs/scaling.md``, section "The engines".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from propensity.config import EngagementConfig
from propensity.data.export import CrmExport
from propensity.features.engines import asof, pairwise, running, snapshots
from propensity.features.engines.events import requested_events

__all__ = ["ENGINES", "MAX_SNAPSHOTS", "MIN_LEADS", "choose_engine", "distinct_cutoffs", "engagement_features"]

ENGINES = ("pairwise", "asof", "snapshots", "running")
MIN_LEADS = 2_000  # fewer distinct leads: the pairwise engine (the others pay for a pass over every activity)
MAX_SNAPSHOTS = 4_096  # more distinct cutoffs: the running engine (the snapshot engine's work grows with rows per lead)


def choose_engine(n_leads: int, n_cutoffs: int) -> str:
    """The engine for rows of ``n_leads`` distinct leads at ``n_cutoffs`` distinct cutoffs.

    - fewer than :data:`MIN_LEADS` leads: ``"pairwise"``;
    - one cutoff for every row: ``"asof"``;
    - 2 to :data:`MAX_SNAPSHOTS` distinct cutoffs: ``"snapshots"``;
    - more: ``"running"``.
    """
    if n_leads < MIN_LEADS:
        return "pairwise"
    if n_cutoffs == 1:
        return "asof"
    if n_cutoffs <= MAX_SNAPSHOTS:
        return "snapshots"
    return "running"


def distinct_cutoffs(row_t: np.ndarray) -> np.ndarray:
    """The rows' distinct cutoffs (int64 µs), ascending."""
    return np.sort(pd.unique(np.asarray(row_t, dtype=np.int64)))


def engagement_features(engine: str, export: CrmExport, lead_pos: np.ndarray, row_lead: np.ndarray,
                        row_t: np.ndarray, cuts: np.ndarray, engagement: EngagementConfig,
                        out: dict[str, np.ndarray]) -> None:
    """Write every engagement feature (spec order, without ``lead_age_days``) into ``out``, by ``engine``.

    ``lead_pos``: the distinct leads' positions in ``export.leads``; ``row_lead``: each
    row's distinct lead; ``row_t``: each row's cutoff (µs); ``cuts``: the distinct
    cutoffs (:func:`distinct_cutoffs`); ``out``: a writable float64 array per
    feature, one value per row. Raises ``ValueError`` for an unknown engine, and for
    ``"asof"`` unless every row has the same cutoff or ``"snapshots"`` unless there
    are 2 or more.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {['auto', *ENGINES]}; got {engine!r}")
    if not len(row_t):
        return
    if engine == "asof":
        if len(cuts) != 1:
            raise ValueError(f"engine 'asof': expected one cutoff for every row; got {len(cuts)} distinct cutoffs")
        asof.engagement_asof(export.activity_arrays(), lead_pos[row_lead], int(cuts[0]), len(export.leads),
                             engagement, out=out)
    elif engine == "snapshots":
        snapshots.engagement_snapshots(export.activity_arrays(), lead_pos[row_lead], row_t, len(export.leads),
                                       engagement, out=out, cuts=cuts)
    else:
        events = requested_events(export.activity_arrays(), lead_pos, len(export.leads), engagement,
                                  compact=engine == "pairwise")
        if engine == "running":
            running.engagement_running(row_lead, row_t, events, engagement, out=out)
        else:
            for name, values in pairwise.engagement_pairwise(row_lead, row_t, events, engagement).items():
                out[name][:] = values
