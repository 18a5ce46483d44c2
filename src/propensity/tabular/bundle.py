"""The flat-table bundle: a booster trained on a flat table, its table schema and its calibration.

Saved by :func:`propensity.scoring.bundle.save_bundle` like any bundle (the same
files, digests, validation and atomic swap: :mod:`propensity.scoring.bundle_files`),
with ``kind: table`` and the schema under ``table`` in ``bundle.json``.
:func:`load_table_bundle` reads one; :func:`load_any_bundle` reads a bundle of
either kind, for callers that take both (the MLflow model, the commands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import lightgbm as lgb

from propensity.core.errors import BundleError
from propensity.core.native import LIGHTGBM
from propensity.scoring.additive import AdditiveBooster, AdditiveModel
from propensity.scoring.bundle import Bundle, load_bundle
from propensity.scoring.bundle_files import META_FILE, MODEL_FILE, SCHEMA_VERSION, bundle_kind, read_bundle_files
from propensity.scoring.bundle_meta import BundleMeta
from propensity.scoring.calibration import Calibrator
from propensity.tabular.schema import TableSchema

__all__ = ["TableBundle", "TableMeta", "load_any_bundle", "load_table_bundle"]


class TableMeta(BundleMeta):
    """``bundle.json`` of a model trained on a flat table (``kind: table``)."""

    KIND: ClassVar[str] = "table"

    kind: Literal["table"]
    table: TableSchema


@dataclass
class TableBundle:
    """A model trained on a flat table: the booster, the table schema and the calibration.

    ``schema`` (:class:`~propensity.tabular.schema.TableSchema`): target, id and time
    columns, the input columns with their inferred kind, categories and sentinels,
    the dropped columns with the reason, and the model matrix's feature names.
    """

    META: ClassVar[type[BundleMeta]] = TableMeta

    booster: lgb.Booster
    schema: TableSchema
    calibrator: Calibrator
    top_k: int = 3
    metadata: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.schema.features)

    def meta(self) -> dict:
        """``bundle.json`` without the digests."""
        family = getattr(self.booster, "family", "lightgbm")
        return {"schema_version": SCHEMA_VERSION, "kind": "table", "table": self.schema.to_json(),
                "calibration": self.calibrator.to_dict(), "top_k": self.top_k, "metadata": self.metadata,
                **({"family": family} if family != "lightgbm" else {})}


def table_additive_booster(model: AdditiveModel, schema: TableSchema) -> AdditiveBooster:
    """An additive model over a flat table's matrix: categorical columns are codes into their categories."""
    cats = {c.name: list(c.categories or []) for c in schema.columns if c.kind == "categorical"}
    return AdditiveBooster(model, cats, list(cats))


def load_table_bundle(path: str | Path) -> TableBundle:
    """Read a flat-table bundle folder, checked as :func:`propensity.scoring.bundle.load_bundle` checks one.

    Raises :class:`~propensity.core.errors.BundleError` for a missing, damaged, edited,
    invalid or incompatible bundle, and its subclass
    :class:`~propensity.scoring.bundle_files.BundleKindError` for a CRM bundle.
    """
    path = Path(path)
    checked, booster = read_bundle_files(path, TableMeta)
    if isinstance(booster, AdditiveModel):
        booster = table_additive_booster(booster, checked.table)
    table = TableBundle(booster=booster, schema=checked.table,
                        calibrator=Calibrator.from_dict(checked.calibration.model_dump()),
                        top_k=checked.top_k, metadata=checked.metadata)
    names = table.feature_names
    with LIGHTGBM:
        n_model = booster.num_feature()
    if n_model != len(names):  # a table model's columns are unnamed
        raise BundleError(f"{path}: {MODEL_FILE} does not match {META_FILE} (the model has "
                          f"{n_model} features, the table schema {len(names)})")
    return table


def load_any_bundle(path: str | Path) -> Bundle | TableBundle:
    """A bundle folder of either kind, by the ``kind`` its ``bundle.json`` declares (CRM when in doubt)."""
    return load_table_bundle(path) if bundle_kind(path) == "table" else load_bundle(path)
