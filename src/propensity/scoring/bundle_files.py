"""The files of a bundle of any kind: where they live, how they are sealed, and how they are read back.

A bundle is a folder of two files, ``model.txt`` (LightGBM's own text model) and
``bundle.json`` (a JSON object whose ``kind`` says which product wrote it:
``"crm"``, the default when absent, or ``"table"``). What each kind holds is its
meta model (:class:`~propensity.scoring.bundle_meta.BundleMeta` and its
subclasses); this module is what the kinds share, so the format is defined once:

- :func:`write_bundle_files`: the model text, then ``bundle.json`` with the
  SHA-256 of every other file written (``files``) and of its own canonical JSON
  (``content_sha256``), validated against the kind's meta model before it is written;
- :func:`read_bundle_files`: ``bundle.json`` parsed and validated, every digest
  checked, the model text's layout checked (:mod:`.model_text`), and only then the
  very bytes that were checked handed to LightGBM, under :data:`~propensity.core.native.LIGHTGBM`;
- :func:`bundle_kind` and :func:`is_bundle_folder`, to tell a folder's kind and
  whether this tool wrote it; :func:`resolve_bundle_uri` for ``models:/`` and ``runs:/`` URIs.

See :mod:`propensity.scoring.bundle` for the guarantees these give (integrity,
validation, trust boundary).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import TypeVar

import lightgbm as lgb
from pydantic import ConfigDict, ValidationError

from propensity.core.digests import json_sha256, sha256_hex
from propensity.core.errors import BundleError
from propensity.core.native import LIGHTGBM
from propensity.core.validation import validation_message
from propensity.scoring.additive import AdditiveBooster, AdditiveModel
from propensity.scoring.bundle_meta import BundleMeta
from propensity.scoring.model_text import layout_problem

__all__ = ["ADDITIVE_FILE", "KINDS", "META_FILE", "MODEL_FILE", "SCHEMA_VERSION", "BundleKindError",
           "UnverifiedBundleWarning", "bundle_kind", "current_umask", "is_bundle_folder", "read_bundle_files",
           "read_sealed_file",
           "resolve_bundle_uri", "write_bundle_files"]

SCHEMA_VERSION = 1
MODEL_FILE = "model.txt"
ADDITIVE_FILE = AdditiveBooster.FILE  # the model of the logistic and points families
META_FILE = "bundle.json"
KINDS = ("crm", "table")

Meta = TypeVar("Meta", bound=BundleMeta)


class UnverifiedBundleWarning(UserWarning):
    """A bundle without digests (saved by an older propensity) was loaded: damage to it cannot be detected.

    A service that must not run an unverified model can turn it into an error:
    ``warnings.simplefilter("error", UnverifiedBundleWarning)``.
    """


class BundleKindError(BundleError):
    """A sound bundle of another kind than the one asked for; ``kind`` is the one it holds."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class _AnyKind(BundleMeta):
    """What every kind shares, the rest of the file let through: enough to check a bundle's digests."""

    model_config = ConfigDict(extra="allow", frozen=True)


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


def _meta_object(path: str | Path) -> dict | None:
    """``bundle.json`` of the folder ``path`` when it is a readable JSON object, else None."""
    try:
        meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_bundle_folder(path: str | Path) -> bool:
    """Whether ``path`` is a bundle this tool wrote: its ``bundle.json`` is a JSON object with a ``schema_version``."""
    meta = _meta_object(path)
    return meta is not None and "schema_version" in meta


def bundle_kind(path: str | Path) -> str:
    """The ``kind`` the bundle folder ``path`` declares: ``"table"`` or ``"crm"``.

    Nothing is checked here: a folder whose ``bundle.json`` is missing, unreadable or
    of an unknown kind is ``"crm"``, and the CRM loader then names what is wrong.
    """
    meta = _meta_object(path)
    return "table" if meta is not None and meta.get("kind") == "table" else "crm"


def resolve_bundle_uri(uri: str | Path) -> Path:
    """The local bundle folder of ``uri``: a folder as it is, an MLflow URI downloaded first.

    ``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/RUN/PATH`` and
    ``mlflow-artifacts:/`` URIs are downloaded with MLflow (imported here only, so a
    service that loads from a folder never pays for it); the bundle is the folder of
    the first ``bundle.json`` inside the artifact.
    """
    text = str(uri)
    if text.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
        except MlflowException as exc:
            # e.g. no such registered model, an alias with no version, a run without that path
            first = str(exc.message if hasattr(exc, "message") else exc).splitlines()[0]
            where = mlflow.get_tracking_uri()
            raise BundleError(f"{text}: cannot be loaded from MLflow at {where} ({first})") from None
        except OSError as exc:
            raise BundleError(f"{text}: cannot be downloaded from MLflow ({exc})") from None
        found = sorted(local.rglob(META_FILE))
        if found:
            return found[0].parent
        raise BundleError(f"{text}: the MLflow artifact holds no propensity bundle")
    return Path(uri)


# ------------------------------------------------------------------ writing

def write_bundle_files(booster: lgb.Booster, meta: dict, model: type[BundleMeta], folder: Path,
                       target: Path) -> None:
    """Write ``model.txt`` and the sealed ``bundle.json`` (``meta`` plus digests) into the folder ``folder``.

    ``meta`` is validated against ``model`` first, as a reader will parse it, so a
    bundle that could not be loaded is never written; ``target`` is the bundle's
    final place, named in errors.
    """
    with LIGHTGBM:
        booster.save_model(str(folder / getattr(booster, "FILE", MODEL_FILE)))
    meta = json.loads(json.dumps(meta, default=str))  # exactly what a reader will parse
    meta["files"] = {f.name: sha256_hex(f.read_bytes()) for f in sorted(folder.iterdir())
                     if f.is_file() and f.name != META_FILE}
    meta["content_sha256"] = json_sha256(meta)
    _validated(meta, target / META_FILE, model, "; nothing was saved")
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


# ------------------------------------------------------------------ reading

def _kind(meta: dict, meta_path: Path, suffix: str = "") -> str:
    """The ``kind`` of a parsed ``bundle.json`` after its version check; one-line errors."""
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{meta_path}: schema_version {version!r} is not supported; "
                          f"this propensity reads version {SCHEMA_VERSION} (retrain or upgrade){suffix}")
    kind = meta.get("kind", "crm")
    if not isinstance(kind, str) or kind not in KINDS:
        raise BundleError(f"{meta_path}: kind: expected 'crm' or 'table', got {kind!r}{suffix}")
    return kind


def _validated(meta: dict, meta_path: Path, model: type[Meta], suffix: str = "") -> Meta:
    """``meta`` checked against ``model``; a one-line :class:`BundleError` names the first problem."""
    _kind(meta, meta_path, suffix)
    try:
        return model.model_validate(meta)
    except ValidationError as err:
        raise BundleError(validation_message(meta_path, model, err) + suffix) from None


def read_bundle_files(path: Path, model: type[Meta]) -> tuple[Meta, lgb.Booster]:
    """``bundle.json`` of the folder ``path`` validated against ``model``, and its booster; checked first.

    Raises :class:`BundleError` (one line naming the file and what is wrong) for a
    missing, damaged, edited, invalid or incompatible bundle, and
    :class:`BundleKindError` for a sound bundle of another kind (its digests and
    model layout are checked first, so damage is named before the kind); warns with
    :class:`UnverifiedBundleWarning` for a bundle saved without digests.
    """
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
    kind = _kind(meta, meta_path)
    if kind != model.KIND:
        other = _validated(meta, meta_path, _AnyKind)
        _additive_model(path, meta, other) if other.family != "lightgbm" else _model_text(path, meta, other)
        raise BundleKindError(f"{path}: a bundle of kind {kind!r}, not {model.KIND!r}", kind)
    checked = _validated(meta, meta_path, model)
    if checked.family != "lightgbm":
        return checked, _additive_model(path, meta, checked)
    model_text = _model_text(path, meta, checked)
    model_path = path / MODEL_FILE
    try:
        with LIGHTGBM:
            booster = lgb.Booster(model_str=model_text.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{model_path}: not a readable LightGBM model (not UTF-8 text)") from None
    except lgb.basic.LightGBMError as exc:
        raise BundleError(f"{model_path}: not a readable LightGBM model ({str(exc).splitlines()[0]})") from None
    return checked, booster


def _additive_model(path: Path, meta: dict, checked: BundleMeta) -> AdditiveModel:
    """The checked ``model.json`` of a logistic or points bundle (see :mod:`propensity.scoring.additive`)."""
    data = _verified_files(path, meta, checked, ADDITIVE_FILE)
    file = path / ADDITIVE_FILE
    try:
        model = AdditiveModel.from_dict(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{file}: not a readable additive model ({type(exc).__name__}: {exc})") from None
    if model.family != checked.family:
        raise BundleError(f"{file}: a {model.family!r} model, but {META_FILE} says family {checked.family!r}")
    return model


def read_sealed_file(path: str | Path, name: str) -> bytes | None:
    """The bytes of the extra file ``name`` of the bundle folder ``path``, checked against its recorded digest.

    None when the bundle records no such file (saved without it, or by an older
    propensity); :class:`BundleError` when ``bundle.json`` was edited or the file
    does not match its digest.
    """
    path = Path(path)
    meta_path = path / META_FILE
    meta = _meta_object(path)
    if meta is None:
        raise BundleError(f"{path}: not a propensity model bundle (no readable {META_FILE})")
    checked = _validated(meta, meta_path, _AnyKind)
    if checked.files is None or name not in checked.files:
        return None
    recorded = {k: v for k, v in meta.items() if k != "content_sha256"}
    if json_sha256(recorded) != checked.content_sha256:
        raise BundleError(f"{meta_path}: its content does not match the SHA-256 recorded in it (content_sha256): "
                          "edited or damaged after saving; restore the bundle from its source or retrain")
    try:
        data = (path / name).read_bytes()
    except OSError:
        raise BundleError(f"{path}: bundle is incomplete (no {name})") from None
    if sha256_hex(data) != checked.files[name]:
        raise BundleError(f"{path / name}: its SHA-256 does not match the one {META_FILE} records for it: damaged "
                          "or replaced after saving; restore the bundle from its source or retrain")
    return data


def _model_text(path: Path, meta: dict, checked: BundleMeta) -> bytes:
    """The bytes of ``model.txt``, after every digest and the model's layout are checked."""
    model_text = _verified_files(path, meta, checked)
    problem = layout_problem(model_text)
    if problem is not None:
        raise BundleError(f"{path / MODEL_FILE}: not a complete LightGBM model ({problem})")
    return model_text


def _verified_files(path: Path, meta: dict, checked: BundleMeta, model_file: str = MODEL_FILE) -> bytes:
    """Check ``bundle.json``'s own digest and every recorded file's; returns the bytes of ``model_file``.

    The model's bytes are read once, checked and handed to LightGBM as they are, so
    a file replaced between the check and the parse cannot slip through.
    """
    meta_path = path / META_FILE
    if checked.files is None:
        warnings.warn(f"{path}: this bundle has no SHA-256 digests (saved by an older propensity), so damage to "
                      "its files cannot be detected; retrain, or load it and save_bundle it to a new folder, "
                      "to add them", UnverifiedBundleWarning,
                      stacklevel=1)  # issued here: shown once per bundle, however it is loaded
    else:
        if model_file not in checked.files:
            raise BundleError(f"{meta_path}: files: no digest for {model_file}")
        recorded = {k: v for k, v in meta.items() if k != "content_sha256"}
        if json_sha256(recorded) != checked.content_sha256:
            raise BundleError(f"{meta_path}: its content does not match the SHA-256 recorded in it (content_sha256): "
                              "edited or damaged after saving; restore the bundle from its source or retrain")
    model_text = b""
    for name in sorted(checked.files or {model_file: ""}):
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
        if name == model_file:
            model_text = data
    return model_text
