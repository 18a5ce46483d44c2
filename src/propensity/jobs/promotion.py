"""``propensity promote``: move alias ``champion`` to the challenger if it wins on a recent holdout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Promotion", "promote"]


@dataclass(frozen=True)
class Promotion:
    """The registered model ``name`` and what :func:`propensity.tracking.registry.promote` decided."""

    name: str
    decision: dict


def promote(data: str | Path, config: str | Path | None = None, tracking_uri: str | None = None,
            name: str | None = None, capacity: int | None = None, tolerance: float = 0.02,
            force: bool = False) -> Promotion:
    """Compare challenger and champion of ``name`` (default: the config's registered model) on ``data``."""
    from propensity.config import load_project
    from propensity.data.export import read_export
    from propensity.tracking import check_tracking, resolve_tracking_uri
    from propensity.tracking.registry import promote as promote_challenger

    project = load_project(config)
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)
    name = name or project.training.tracking.registered_model
    decision = promote_challenger(name, read_export(data), uri, experiment=project.training.tracking.experiment,
                                  capacity=capacity, tolerance=tolerance, force=force)
    return Promotion(name, decision)
