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
when complete, so an interrupted save never damages an existing model. It replaces
only a folder that is absent, empty or a bundle (its ``bundle.json`` has a
``schema_version``: :func:`is_bundle_folder`), never one holding other files. The
folder and its files get the permissions the process's umask gives any new folder
and file (``0o777 & ~umask`` and ``0o666 & ~umask``: ``drwxr-xr-x`` and ``-rw-r--r--``
under umask 022), so a service running as another user can load the bundle.

Loading checks that ``model.txt`` and ``bundle.json`` belong together: the model's
feature names (and their number) must be the spec's, else :class:`BundleError`
names the bundle folder and the first mismatch.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb

from propensity.config import EngagementConfig, IcpConfig, TierConfig
from propensity.core.output import check_folder_output, staged_folder
from propensity.features.spec import FeatureDef
from propensity.scoring.calibration import Calibrator

__all__ = ["SCHEMA_VERSION", "Bundle", "BundleError", "TableBundle", "is_bundle_folder", "load_bundle", "save_bundle",
           "write_bundle"]

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


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it for other threads.

    Linux reports it in ``/proc/self/status``; elsewhere it is read the only portable
    way (set it, then restore it) under a lock, so two savers never race.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def is_bundle_folder(path: str | Path) -> bool:
    """Whether ``path`` is a bundle this tool wrote: its ``bundle.json`` is a JSON object with a ``schema_version``."""
    try:
        meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "schema_version" in meta


def write_bundle(bundle: Bundle | TableBundle, folder: str | Path) -> Path:
    """Write the bundle's two files into the existing folder ``folder`` (not atomic: see :func:`save_bundle`)."""
    folder = Path(folder)
    bundle.booster.save_model(str(folder / MODEL_FILE))
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
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return folder


def save_bundle(bundle: Bundle | TableBundle, path: str | Path) -> Path:
    """Write ``bundle`` to the folder ``path`` atomically; returns the path.

    Raises :class:`~propensity.core.output.OutputError` (a ``ValueError``) when ``path``
    holds something other than a bundle, or is the working directory, home or a parent of them.
    """
    check_folder_output(path, owned=is_bundle_folder, hint="choose another path, or remove it first")
    with staged_folder(path) as tmp:
        write_bundle(bundle, tmp)
    return Path(path)


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
    except lgb.basic.LightGBMError as exc:
        raise BundleError(f"{model_path}: not a readable LightGBM model ({str(exc).splitlines()[0]})") from None
    try:
        if meta.get("kind", "crm") == "table":
            table = TableBundle(booster=booster, schema=dict(meta["table"]),
                                calibrator=Calibrator.from_dict(meta["calibration"]),
                                top_k=int(meta.get("top_k", 3)), metadata=meta.get("metadata", {}))
            names = list(table.schema.get("features", []))
            if names and booster.num_feature() != len(names):  # a table model's columns are unnamed
                raise BundleError(f"{path}: {MODEL_FILE} does not match {META_FILE} (the model has "
                                  f"{booster.num_feature()} features, the table schema {len(names)})")
            return table
        bundle = Bundle(
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
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{meta_path}: malformed bundle ({type(exc).__name__}: {exc})") from None
    _check_features(path, booster, bundle.feature_names)
    return bundle


def _check_features(path: Path, booster: lgb.Booster, names: list[str]) -> None:
    """Refuse a bundle whose ``model.txt`` was not trained on ``bundle.json``'s features."""
    model = list(booster.feature_name())
    if model == names:
        return
    where = (f"the model has {len(model)} features, the spec {len(names)}" if len(model) != len(names)
             else "the feature names differ")
    first = next((i for i, (a, b) in enumerate(zip(model, names)) if a != b), min(len(model), len(names)))
    got = repr(model[first]) if first < len(model) else "nothing"
    want = repr(names[first]) if first < len(names) else "nothing"
    raise BundleError(f"{path}: {MODEL_FILE} does not match {META_FILE} ({where}; first mismatch at feature "
                      f"{first}: the model has {got}, the spec {want}); the two files come from different "
                      "trainings (retrain, or restore the two files of one save)")
