"""``propensity features``: the point-in-time feature table alone, and the feature catalogue of the configs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from propensity.jobs.progress import Progress

__all__ = ["FeatureTable", "feature_catalogue", "features"]


@dataclass(frozen=True)
class FeatureTable:
    """``rows`` rows of ``what`` with ``columns`` columns, written to ``out``."""

    out: Path
    rows: int
    columns: int
    what: str
    seconds: float


def feature_catalogue(config: str | Path | None = None) -> list:
    """The features the configs define (``features.spec.Feature``), in column order."""
    from propensity.config import load_project
    from propensity.features.spec import build_feature_spec

    project = load_project(config)
    return list(build_feature_spec(project.icp, project.engagement))


def features(data: str | Path, out: str | Path, as_of: str | None = None, config: str | Path | None = None,
             progress: Progress | None = None) -> FeatureTable:
    """Write the feature table of the export ``data`` to ``out`` (``.csv`` or ``.parquet``, atomically).

    Without ``as_of``: the labelled training rows (one per lead and snapshot date);
    with it: one row per lead open at that time. ``out`` is checked before any work.
    """
    from propensity.config import load_project
    from propensity.core.output import check_file_output, claim
    from propensity.data.export import read_export
    from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
    from propensity.features.pipeline import build_features
    from propensity.jobs.outputs import write_table

    progress = progress or Progress()
    target = Path(out)
    check_file_output(target, inputs=(data, config))  # before the expensive part
    with claim(target):
        project = load_project(config)
        t = time.perf_counter()
        progress.step(f"reading {data}")
        export = read_export(data)
        if as_of is None:
            cfg = project.training
            cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
            what = f"training rows (snapshots every {cfg.cutoffs.every_days} days, label = closed won within " \
                   f"{cfg.label.horizon_days} days)"
        else:
            cut = scoring_cutoffs(export, as_of)
            what = f"open leads as of {cut['cutoff'].iloc[0] if len(cut) else as_of}"
        progress.step(f"building features for {len(cut):,} {what}")
        frame = build_features(export, cut, project.icp, project.engagement)
        write_table(frame, target)
        seconds = time.perf_counter() - t
    return FeatureTable(target, len(frame), frame.shape[1], what, seconds)
