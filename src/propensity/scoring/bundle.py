"""The model bundle: the contract between training and scoring.

A bundle is a folder of two files, loadable without pickle and without the
training code:

- ``model.txt``: LightGBM's own text model (raw scores, before calibration);
- ``bundle.json``: ``schema_version``, the feature spec, the categories of each
  categorical feature, the calibration, the ICP and engagement definitions (so the
  scorer computes the same features), tiers, reason settings and training metadata;

and any extra files its saver seals with them (``extra_files``: ``propensity train``
adds ``reference.json``, the monitoring reference profile of
:mod:`propensity.monitoring.reference`), digested and checked like ``model.txt``;
:func:`read_sealed_file` reads one back, checked.

``bundle.json`` has a ``kind``: ``"crm"`` (the default when absent, so older
bundles load unchanged) or ``"table"`` for a model trained on a flat table by
``propensity train --data FILE --target COL``; a table bundle holds the table
schema (column types, categories, sentinels, dropped columns) instead of the
ICP and engagement definitions. :func:`load_bundle` loads the CRM kind;
:func:`propensity.tabular.bundle.load_table_bundle` the table kind, and
:func:`propensity.tabular.bundle.load_any_bundle` either. :func:`save_bundle`
saves both: each kind of bundle says what its ``bundle.json`` holds
(:class:`SealableBundle`), and the files are written by
:mod:`propensity.scoring.bundle_files`, the one definition of the format.

Saving is atomic: the new bundle is written beside the target and swapped in only
when complete, so an interrupted save never damages an existing model. It replaces
only a folder that is absent, empty or a bundle (its ``bundle.json`` has a
``schema_version``: :func:`is_bundle_folder`), never one holding other files. The
folder and its files get the permissions the process's umask gives any new folder
and file (``0o777 & ~umask`` and ``0o666 & ~umask``: ``drwxr-xr-x`` and ``-rw-r--r--``
under umask 022), so a service running as another user can load the bundle.

Integrity. ``bundle.json`` records the SHA-256 of every other file the save wrote
(``files``: ``{"model.txt": "<hex>"}``) and of its own content (``content_sha256``:
the digest of the canonical JSON, keys sorted and no spaces, of everything in it
but that key; a file cannot hold its own digest, and the canonical form lets the
digest survive re-indenting). The bundle's files are exactly those :func:`save_bundle`
writes (with its extra files); anything added to the folder later (the ``report/`` folder the CLI writes
after training) is not part of the model, is not recorded and is not checked.
Loading checks every digest before LightGBM parses anything (LightGBM can crash
the process on a damaged model file instead of raising), and parses the very
bytes it checked; a mismatch is a :class:`BundleError` naming the file. A bundle
saved by an older propensity has no digests: it still loads, with an
:class:`UnverifiedBundleWarning` naming it. The digests detect damage and edits
(a truncated copy, a changed leaf value, a hand-edited threshold); they do not
authenticate the bundle, since whoever can rewrite its files can rewrite the
digests too. The two keys kept ``schema_version`` 1: readers older than them
ignore them.

Validation. Both the content of ``bundle.json`` (:mod:`propensity.scoring.bundle_meta`:
unknown keys, types and ranges such as calibration tables within [0, 1] and
``top_k`` in 1..20) and the model text's layout are checked at load; the first
problem is a one-line :class:`BundleError` naming the file and the field. Saving
validates too, so a bundle that could not be loaded is never written.

Loading also checks that ``model.txt`` and ``bundle.json`` belong together: the
model's feature names (and their number) must be the spec's, else
:class:`BundleError` names the bundle folder and the first mismatch.

Loading reads only JSON and LightGBM's text format: no pickle, no code from the
bundle is run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import lightgbm as lgb

from propensity.config import EngagementConfig, IcpConfig, TierConfig
from propensity.core.errors import BundleError
from propensity.core.native import LIGHTGBM
from propensity.core.output import check_folder_output, staged_folder
from propensity.features.spec import FeatureDef
from propensity.scoring.additive import AdditiveBooster, AdditiveModel
from propensity.scoring.bundle_files import (
    META_FILE,
    MODEL_FILE,
    SCHEMA_VERSION,
    UnverifiedBundleWarning,
    is_bundle_folder,
    read_bundle_files,
    read_sealed_file,
    write_bundle_files,
)
from propensity.scoring.bundle_meta import BundleMeta, CrmMeta
from propensity.scoring.calibration import Calibrator

__all__ = ["SCHEMA_VERSION", "Bundle", "BundleError", "SealableBundle", "UnverifiedBundleWarning",
           "is_bundle_folder", "load_bundle", "read_sealed_file", "save_bundle", "write_bundle"]


class SealableBundle(Protocol):
    """A bundle of some kind: its booster, what its ``bundle.json`` holds, and that layout's meta model."""

    META: ClassVar[type[BundleMeta]]
    booster: lgb.Booster

    def meta(self) -> dict:
        """``bundle.json`` without the digests (the save adds them)."""
        ...


@dataclass
class Bundle:
    """A model trained on a CRM export, with everything the scorer needs to compute its features."""

    META: ClassVar[type[BundleMeta]] = CrmMeta

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

    @property
    def family(self) -> str:
        """``lightgbm``, or the simple family that won (``logistic``, ``points``: an additive model)."""
        return getattr(self.booster, "family", "lightgbm")

    def meta(self) -> dict:
        """``bundle.json`` without the digests."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "crm",
            "features": [f.to_dict() for f in self.spec],
            "categories": self.categories,
            "calibration": self.calibrator.to_dict(),
            "icp": self.icp.model_dump(),
            "engagement": self.engagement.model_dump(),
            "tiers": self.tiers.model_dump(),
            "top_k": self.top_k,
            "horizon_days": self.horizon_days,
            "metadata": self.metadata,
            **({"family": self.family} if self.family != "lightgbm" else {}),  # older readers read LightGBM ones
        }


def write_bundle(bundle: SealableBundle, folder: str | Path, target: str | Path | None = None,
                 extra_files: dict[str, bytes] | None = None) -> Path:
    """Write the bundle's files into the existing folder ``folder`` (not atomic: see :func:`save_bundle`).

    ``target`` (default ``folder``) is the path named in errors: the bundle's final place.
    ``extra_files`` (name -> bytes, e.g. the monitoring reference profile) are written
    first, so ``bundle.json`` records their digests and loading checks them like ``model.txt``.
    """
    folder = Path(folder)
    for name, data in (extra_files or {}).items():
        if name in (MODEL_FILE, META_FILE) or Path(name).name != name:
            raise BundleError(f"{name!r}: not a name an extra bundle file may have")
        (folder / name).write_bytes(data)
    write_bundle_files(bundle.booster, bundle.meta(), bundle.META, folder, Path(target or folder))
    return folder


def save_bundle(bundle: SealableBundle, path: str | Path, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write ``bundle`` (of any kind) to the folder ``path`` atomically; returns the path.

    ``extra_files``: further files sealed with the bundle (see :func:`write_bundle`).

    Raises :class:`~propensity.core.output.OutputError` (a ``ValueError``) when ``path``
    holds something other than a bundle, or is the working directory, home or a parent of them.
    """
    check_folder_output(path, owned=is_bundle_folder, hint="choose another path, or remove it first")
    with staged_folder(path) as tmp:
        write_bundle(bundle, tmp, path, extra_files)
    return Path(path)


def load_bundle(path: str | Path) -> Bundle:
    """Read a CRM bundle folder written by :func:`save_bundle`, checking it first (see the module docstring).

    Reads only JSON and LightGBM's text format. Raises :class:`BundleError` (one
    line naming the file and what is wrong) for a missing, damaged, edited,
    invalid or incompatible bundle, and its subclass
    :class:`~propensity.scoring.bundle_files.BundleKindError` for a flat-table
    bundle; warns with :class:`UnverifiedBundleWarning` for a bundle saved without digests.
    """
    path = Path(path)
    checked, booster = read_bundle_files(path, CrmMeta)
    if isinstance(booster, AdditiveModel):
        booster = AdditiveBooster(booster, {k: list(v) for k, v in checked.categories.items()},
                                  [f.name for f in checked.features if f.kind == "categorical"])
    bundle = Bundle(
        booster=booster,
        spec=[FeatureDef(**f.model_dump()) for f in checked.features],
        categories={k: list(v) for k, v in checked.categories.items()},
        calibrator=Calibrator.from_dict(checked.calibration.model_dump()),
        icp=checked.icp,
        engagement=checked.engagement,
        tiers=checked.tiers,
        top_k=checked.top_k,
        horizon_days=checked.horizon_days,
        metadata=checked.metadata,
    )
    _check_features(path, booster, bundle.feature_names)
    return bundle


def _check_features(path: Path, booster: lgb.Booster, names: list[str]) -> None:
    """Refuse a bundle whose ``model.txt`` was not trained on ``bundle.json``'s features."""
    with LIGHTGBM:
        model = list(booster.feature_name())
    if model == names:
        return
    where = (f"the model has {len(model)} features, the spec {len(names)}" if len(model) != len(names)
             else "the feature names differ")
    first = next((i for i, (a, b) in enumerate(zip(model, names, strict=False)) if a != b), min(len(model), len(names)))
    got = repr(model[first]) if first < len(model) else "nothing"
    want = repr(names[first]) if first < len(names) else "nothing"
    raise BundleError(f"{path}: {MODEL_FILE} does not match {META_FILE} ({where}; first mismatch at feature "
                      f"{first}: the model has {got}, the spec {want}); the two files come from different "
                      "trainings (retrain, or restore the two files of one save)")
