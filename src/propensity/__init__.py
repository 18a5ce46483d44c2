"""propensity: lead propensity scoring learned from your own CRM history.

The public API is small and loaded lazily, so ``import propensity`` is cheap and
never imports MLflow, SHAP or matplotlib:

- :class:`LeadScorer` — load a model bundle (or ``models:/NAME@alias``) and score leads;
- :func:`train` — point-in-time rows, LightGBM, calibration and evaluation;
- :func:`build_features` — the one feature function for training and scoring;
- :func:`load_project` / :func:`read_export` — configs and CRM export folders.
"""

from __future__ import annotations

import importlib
from typing import Any

from propensity.core.version import VERSION

__version__ = VERSION

__all__ = ["LeadInput", "LeadScore", "LeadScorer", "build_features", "load_project", "read_export", "train"]

_WHERE = {
    "LeadScorer": "propensity.scoring.scorer",
    "LeadInput": "propensity.scoring.schemas",
    "LeadScore": "propensity.scoring.schemas",
    "train": "propensity.modeling.train",
    "build_features": "propensity.features.pipeline",
    "load_project": "propensity.config",
    "read_export": "propensity.data.export",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'propensity' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
