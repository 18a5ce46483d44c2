"""The model bundle: the contract between training and scoring.

A bundle is a folder of two files, loadable without pickle and without the
training code:

- ``model.txt``: LightGBM's own text model (raw scores, before calibration);
- ``bundle.json``: ``schema_version``, the feature spec, the categories of each
  categorical feature, the calibration, the ICP and engagement definitions (so the
  scorer computes the same features), tiers, reason settings and training metadata.

``bundle.json`` has a ``kind``: ``"crm"`` (the default when absent, so older
bundles load unchanged) or ``"table"`` for a model trained on a flat table by
``propensity train --data FILE --target COL``; a table bundle holds the table
schema (column types, categories, sentinels, dropped columns) instead of the
ICP and engagement definitions.

Saving is atomic: the new bundle is written beside the target and swapped in only
when complete, so an interrupted save never damages an existing model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb

from propensity.config import EngagementConfig, IcpConfig, TierConfig
from propensity.features.spec import FeatureDef
from propensity.scoring.calibration import Calibrator

__all__ = ["SCHEMA_VERSION", "Bundle", "BundleError", "TableBundle", "load_bundle", "save_bundle"]

SCHEMA_VERSION = 1
MODEL_FILE = "model.txt"
META_FILE = "bundle.json"


class BundleError(ValueError):
    """A bundle is missing, incomplete or from an incompatible version."""


@dataclass
class Bundle:
    booster: lgb.Booster
    spec: list[FeatureDef]
    categories: dict[str, list[str]]
    calibrator: Calibrator
    icp: IcpConfig
    engagement: EngagementConfig
    tiers: TierConfig
    top_k: int = 3
    horizon_days: int = 90
    metadata: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.spec]


@dataclass
class TableBundle:
    """A model trained on a flat table: the booster, the table schema and the calibration.

    ``schema`` is plain JSON (see :func:`propensity.scoring.scorer.table_matrix`):
    target, id and time columns, the input columns with their inferred kind,
    categories and sentinels, the dropped columns with the reason, and the model
    matrix's feature names.
    """

    booster: lgb.Booster
    schema: dict
    calibrator: Calibrator
    top_k: int = 3
    metadata: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.schema["features"])


def save_bundle(bundle: Bundle | TableBundle, path: str | Path) -> Path:
    """Write ``bundle`` to the folder ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        bundle.booster.save_model(str(tmp / MODEL_FILE))
        meta = _table_meta(bundle) if isinstance(bundle, TableBundle) else {
            "schema_version": SCHEMA_VERSION,
            "kind": "crm",
            "features": [f.to_dict() for f in bundle.spec],
            "categories": bundle.categories,
            "calibration": bundle.calibrator.to_dict(),
            "icp": bundle.icp.model_dump(),
            "engagement": bundle.engagement.model_dump(),
            "tiers": bundle.tiers.model_dump(),
            "top_k": bundle.top_k,
            "horizon_days": bundle.horizon_days,
            "metadata": bundle.metadata,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _table_meta(bundle: TableBundle) -> dict:
    return {"schema_version": SCHEMA_VERSION, "kind": "table", "table": bundle.schema,
            "calibration": bundle.calibrator.to_dict(), "top_k": bundle.top_k, "metadata": bundle.metadata}


def load_bundle(path: str | Path) -> Bundle | TableBundle:
    """Read a bundle folder written by :func:`save_bundle`."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise BundleError(f"{path}: not a propensity model bundle (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{meta_path}: schema_version {version!r} is not supported; "
                          f"this propensity reads version {SCHEMA_VERSION} (retrain or upgrade)")
    model_path = path / MODEL_FILE
    if not model_path.exists():
        raise BundleError(f"{path}: bundle is incomplete (no {MODEL_FILE})")
    try:
        booster = lgb.Booster(model_file=str(model_path))
        if meta.get("kind", "crm") == "table":
            return TableBundle(booster=booster, schema=dict(meta["table"]),
                               calibrator=Calibrator.from_dict(meta["calibration"]),
                               top_k=int(meta.get("top_k", 3)), metadata=meta.get("metadata", {}))
        return Bundle(
            booster=booster,
            spec=[FeatureDef(**f) for f in meta["features"]],
            categories={k: list(v) for k, v in meta["categories"].items()},
            calibrator=Calibrator.from_dict(meta["calibration"]),
            icp=IcpConfig.model_validate(meta["icp"]),
            engagement=EngagementConfig.model_validate(meta["engagement"]),
            tiers=TierConfig.model_validate(meta["tiers"]),
            top_k=int(meta.get("top_k", 3)),
            horizon_days=int(meta.get("horizon_days", 90)),
            metadata=meta.get("metadata", {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{meta_path}: malformed bundle ({type(exc).__name__}: {exc})") from None
