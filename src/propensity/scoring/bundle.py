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

Integrity. ``bundle.json`` records the SHA-256 of every other file the save wrote
(``files``: ``{"model.txt": "<hex>"}``) and of its own content (``content_sha256``:
the digest of the canonical JSON, keys sorted and no spaces, of everything in it
but that key; a file cannot hold its own digest, and the canonical form lets the
digest survive re-indenting). The bundle's files are exactly those :func:`save_bundle`
writes; anything added to the folder later (the ``report/`` folder the CLI writes
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

import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
from pydantic import ValidationError

from propensity.config import EngagementConfig, IcpConfig, TierConfig
from propensity.core.digests import json_sha256, sha256_hex
from propensity.core.errors import BundleError
from propensity.core.native import LIGHTGBM
from propensity.core.output import check_folder_output, staged_folder
from propensity.core.validation import validation_message
from propensity.features.spec import FeatureDef
from propensity.scoring.bundle_meta import CrmMeta, TableMeta
from propensity.scoring.calibration import Calibrator
from propensity.scoring.model_text import layout_problem

__all__ = ["SCHEMA_VERSION", "Bundle", "BundleError", "TableBundle", "UnverifiedBundleWarning", "is_bundle_folder",
           "load_bundle", "save_bundle", "write_bundle"]

SCHEMA_VERSION = 1
MODEL_FILE = "model.txt"
META_FILE = "bundle.json"


class UnverifiedBundleWarning(UserWarning):
    """A bundle without digests (saved by an older propensity) was loaded: damage to it cannot be detected.

    A service that must not run an unverified model can turn it into an error:
    ``warnings.simplefilter("error", UnverifiedBundleWarning)``.
    """


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


def write_bundle(bundle: Bundle | TableBundle, folder: str | Path, target: str | Path | None = None) -> Path:
    """Write the bundle's files into the existing folder ``folder`` (not atomic: see :func:`save_bundle`).

    ``target`` (default ``folder``) is the path named in errors: the bundle's final place.
    """
    folder = Path(folder)
    with LIGHTGBM:
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
    (folder / META_FILE).write_text(_sealed(meta, folder, Path(target or folder)), encoding="utf-8")
    return folder


def save_bundle(bundle: Bundle | TableBundle, path: str | Path) -> Path:
    """Write ``bundle`` to the folder ``path`` atomically; returns the path.

    Raises :class:`~propensity.core.output.OutputError` (a ``ValueError``) when ``path``
    holds something other than a bundle, or is the working directory, home or a parent of them.
    """
    check_folder_output(path, owned=is_bundle_folder, hint="choose another path, or remove it first")
    with staged_folder(path) as tmp:
        write_bundle(bundle, tmp, path)
    return Path(path)


def _table_meta(bundle: TableBundle) -> dict:
    return {"schema_version": SCHEMA_VERSION, "kind": "table", "table": bundle.schema,
            "calibration": bundle.calibrator.to_dict(), "top_k": bundle.top_k, "metadata": bundle.metadata}


def _sealed(meta: dict, folder: Path, target: Path) -> str:
    """The text of ``bundle.json``: ``meta`` with the digests of the files written to ``folder``, validated."""
    meta = json.loads(json.dumps(meta, default=str))  # exactly what a reader will parse
    meta["files"] = {f.name: sha256_hex(f.read_bytes()) for f in sorted(folder.iterdir())
                     if f.is_file() and f.name != META_FILE}
    meta["content_sha256"] = json_sha256(meta)
    _validated(meta, target / META_FILE, "; nothing was saved")
    return json.dumps(meta, indent=2)


def _validated(meta: dict, meta_path: Path, suffix: str = "") -> CrmMeta | TableMeta:
    """``meta`` checked against the layout of its kind; a one-line :class:`BundleError` names the first problem."""
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{meta_path}: schema_version {version!r} is not supported; "
                          f"this propensity reads version {SCHEMA_VERSION} (retrain or upgrade){suffix}")
    kind = meta.get("kind", "crm")
    model = {"crm": CrmMeta, "table": TableMeta}.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise BundleError(f"{meta_path}: kind: expected 'crm' or 'table', got {kind!r}{suffix}")
    try:
        return model.model_validate(meta)
    except ValidationError as err:
        raise BundleError(validation_message(meta_path, model, err) + suffix) from None


def load_bundle(path: str | Path) -> Bundle | TableBundle:
    """Read a bundle folder written by :func:`save_bundle`, checking it first (see the module docstring).

    Reads only JSON and LightGBM's text format. Raises :class:`BundleError` (one
    line naming the file and what is wrong) for a missing, damaged, edited,
    invalid or incompatible bundle; warns with :class:`UnverifiedBundleWarning`
    for a bundle saved without digests.
    """
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise BundleError(f"{path}: not a propensity model bundle (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{meta_path}: not UTF-8 text (damaged?)") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path}: expected a JSON object at the top level, found {type(meta).__name__}")
    checked = _validated(meta, meta_path)
    model_path = path / MODEL_FILE
    model_text = _verified_files(path, meta, checked)
    problem = layout_problem(model_text)
    if problem is not None:
        raise BundleError(f"{model_path}: not a complete LightGBM model ({problem})")
    try:
        with LIGHTGBM:
            booster = lgb.Booster(model_str=model_text.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{model_path}: not a readable LightGBM model (not UTF-8 text)") from None
    except lgb.basic.LightGBMError as exc:
        raise BundleError(f"{model_path}: not a readable LightGBM model ({str(exc).splitlines()[0]})") from None
    calibrator = Calibrator.from_dict(checked.calibration.model_dump())
    if isinstance(checked, TableMeta):
        table = TableBundle(booster=booster, schema=checked.table.model_dump(exclude_unset=True),
                            calibrator=calibrator, top_k=checked.top_k, metadata=checked.metadata)
        names = table.feature_names
        with LIGHTGBM:
            n_model = booster.num_feature()
        if n_model != len(names):  # a table model's columns are unnamed
            raise BundleError(f"{path}: {MODEL_FILE} does not match {META_FILE} (the model has "
                              f"{n_model} features, the table schema {len(names)})")
        return table
    bundle = Bundle(
        booster=booster,
        spec=[FeatureDef(**f.model_dump()) for f in checked.features],
        categories={k: list(v) for k, v in checked.categories.items()},
        calibrator=calibrator,
        icp=checked.icp,
        engagement=checked.engagement,
        tiers=checked.tiers,
        top_k=checked.top_k,
        horizon_days=checked.horizon_days,
        metadata=checked.metadata,
    )
    _check_features(path, booster, bundle.feature_names)
    return bundle


def _verified_files(path: Path, meta: dict, checked: CrmMeta | TableMeta) -> bytes:
    """Check ``bundle.json``'s own digest and every recorded file's; returns the bytes of ``model.txt``.

    The model's bytes are read once, checked and handed to LightGBM as they are, so
    a file replaced between the check and the parse cannot slip through.
    """
    meta_path = path / META_FILE
    if checked.files is None:
        warnings.warn(f"{path}: this bundle has no SHA-256 digests (saved by an older propensity), so damage to "
                      "its files cannot be detected; retrain, or load it and save_bundle it to a new folder, "
                      "to add them", UnverifiedBundleWarning)  # issued here: shown once per bundle, however loaded
    else:
        if MODEL_FILE not in checked.files:
            raise BundleError(f"{meta_path}: files: no digest for {MODEL_FILE}")
        recorded = {k: v for k, v in meta.items() if k != "content_sha256"}
        if json_sha256(recorded) != checked.content_sha256:
            raise BundleError(f"{meta_path}: its content does not match the SHA-256 recorded in it (content_sha256): "
                              "edited or damaged after saving; restore the bundle from its source or retrain")
    model_text = b""
    for name in sorted(checked.files or {MODEL_FILE: ""}):
        file = path / name
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{path}: bundle is incomplete (no {name})") from None
        except OSError as exc:
            raise BundleError(f"{file}: cannot be read ({exc.strerror})") from None
        if checked.files is not None and sha256_hex(data) != checked.files[name]:
            raise BundleError(f"{file}: its SHA-256 does not match the one {META_FILE} records for it: damaged, "
                              "truncated or replaced after saving; restore the bundle from its source or retrain")
        if name == MODEL_FILE:
            model_text = data
    return model_text


def _check_features(path: Path, booster: lgb.Booster, names: list[str]) -> None:
    """Refuse a bundle whose ``model.txt`` was not trained on ``bundle.json``'s features."""
    with LIGHTGBM:
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
