"""Scoring a Spark feature table: one ``LeadScorer`` per Python worker, pandas batches through ``mapInPandas``."""

from __future__ import annotations

from pathlib import Path

from propensity.core.output import is_remote

__all__ = ["SCORES_SCHEMA", "score_features_spark"]

SCORES_SCHEMA = ("lead_id string, probability double, score long, tier string, reasons string, fit_score long, "
                 "engagement_score long, grade string, notes string")
_COLUMNS = [part.split()[0] for part in SCORES_SCHEMA.split(", ")]
_SCORERS: dict[str, object] = {}  # per Python worker: the bundle loaded once, reused by every batch


def _scorer(bundle: str):
    if bundle not in _SCORERS:
        from propensity.scoring.scorer import LeadScorer

        _SCORERS[bundle] = LeadScorer.load(bundle)
    return _SCORERS[bundle]


def score_features_spark(features, bundle: str | Path):
    """Score a feature table (the columns ``spark_features`` gives) with the bundle folder ``bundle``.

    Each batch is scored by ``LeadScorer.score_features`` (probabilities, tiers by the
    bundle's thresholds, SHAP reasons), so every value equals the in-process
    scorer's. ``bundle`` must be readable at the same path by every executor (a
    local master, or a shared path such as a Databricks volume). A capacity tier
    policy ranks the whole pool of leads, which this per-batch path does not do:
    refused with ``ValueError``.
    """
    bundle = str(Path(bundle).resolve()) if not is_remote(bundle) else str(bundle)
    if _scorer(bundle).bundle.tiers.capacity is not None:
        raise ValueError(f"{bundle}: the model's tiers follow a capacity policy (leads_per_week), which ranks all "
                         "leads as one pool; --engine spark scores with probability thresholds only: score in "
                         "process, or train with tiers.mql / tiers.sql")

    def score(batches):
        import pandas as pd

        scorer = _scorer(bundle)
        for frame in batches:
            if "cutoff" in frame.columns and getattr(frame["cutoff"].dtype, "tz", None) is None:
                frame["cutoff"] = pd.to_datetime(frame["cutoff"]).dt.tz_localize("UTC")
            out = scorer.score_features(frame)
            yield out[_COLUMNS].astype({"score": "int64", "fit_score": "int64", "engagement_score": "int64"})

    return features.mapInPandas(score, SCORES_SCHEMA)
