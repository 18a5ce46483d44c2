"""The layout of ``bundle.json`` as pydantic models: every key a bundle may hold, its type and its range.

:func:`~propensity.scoring.bundle.load_bundle` validates the whole file against
these before anything is used, and :func:`~propensity.scoring.bundle.save_bundle`
validates what it is about to write, so a bundle that cannot be scored is never
written and never loaded. Unknown keys are errors (a misspelled key would
otherwise be ignored, and its setting silently replaced by a default).

``metadata`` (the training report's figures) stays free-form: any JSON object.
The ICP, engagement and tier definitions are the configuration models of
:mod:`propensity.config`, checked exactly as in the YAML files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from propensity.config import EngagementConfig, IcpConfig, TierConfig

__all__ = ["CalibrationMeta", "CrmMeta", "FeatureMeta", "TableColumn", "TableMeta", "TableSchema"]

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")]  # a plain name inside the bundle folder
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibrationMeta(_Strict):
    """The map from raw model probability to calibrated probability (see :class:`~.calibration.Calibrator`).

    ``isotonic``: knots ``x`` (raw probabilities) → ``y`` (probabilities), both
    non-decreasing, one length, at least one knot. ``sigmoid``: finite ``a``,
    ``b``. The keys of the other methods keep their neutral values (no table,
    ``a`` 1, ``b`` 0): a table next to ``method: none`` is not silently ignored.
    """

    method: Literal["isotonic", "sigmoid", "none"]
    x: list[Probability] = Field(default_factory=list)
    y: list[Probability] = Field(default_factory=list)
    a: Finite = 1.0
    b: Finite = 0.0

    @model_validator(mode="after")
    def _fits_method(self) -> CalibrationMeta:
        if self.method == "isotonic":
            if not self.x or len(self.x) != len(self.y):
                raise ValueError(f"isotonic calibration needs x and y of one length, at least 1 "
                                 f"(x has {len(self.x)} values, y {len(self.y)})")
            for key, values in (("x", self.x), ("y", self.y)):
                drop = next((i for i in range(1, len(values)) if values[i] < values[i - 1]), None)
                if drop is not None:
                    raise ValueError(f"isotonic {key} must not decrease, but {key}[{drop}] = {values[drop]!r} "
                                     f"follows {values[drop - 1]!r}")
        elif self.x or self.y:
            raise ValueError(f"method {self.method!r} takes no x / y table (only isotonic does)")
        if self.method != "sigmoid" and (self.a, self.b) != (1.0, 0.0):
            raise ValueError(f"method {self.method!r} takes no a / b (only sigmoid does; expected a 1, b 0)")
        return self


class FeatureMeta(_Strict):
    """One entry of the feature spec (:class:`~propensity.features.spec.FeatureDef`)."""

    name: Name
    family: Literal["fit", "engagement"]
    kind: Literal["numeric", "categorical"]
    display: str
    source: str
    actionable: bool = False
    monotone: Literal[-1, 0, 1] = 0


class _BundleMeta(_Strict):
    """What both kinds of bundle hold."""

    schema_version: Literal[1]
    calibration: CalibrationMeta
    top_k: Annotated[int, Field(ge=1, le=20)] = 3
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: dict[FileName, Sha256] | None = None
    content_sha256: Sha256 | None = None

    @model_validator(mode="after")
    def _both_digests(self) -> _BundleMeta:
        if (self.files is None) != (self.content_sha256 is None):
            have, lack = ("files", "content_sha256") if self.content_sha256 is None else ("content_sha256", "files")
            raise ValueError(f"'{have}' without '{lack}': a bundle records both digests or neither")
        return self


class CrmMeta(_BundleMeta):
    """``bundle.json`` of a model trained on a CRM export (``kind: crm``, the default)."""

    kind: Literal["crm"] = "crm"
    features: Annotated[list[FeatureMeta], Field(min_length=1)]
    categories: dict[str, list[str]]
    icp: IcpConfig
    engagement: EngagementConfig
    tiers: TierConfig
    horizon_days: Annotated[int, Field(gt=0)] = 90

    @model_validator(mode="after")
    def _consistent(self) -> CrmMeta:
        _unique([f.name for f in self.features], "features")
        categorical = {f.name for f in self.features if f.kind == "categorical"}
        for name, values in self.categories.items():
            if name not in categorical:
                raise ValueError(f"categories: {name!r} is not a categorical feature of the spec")
            _unique(values, f"categories.{name}")
        return self


class TableColumn(_Strict):
    """One input column of a flat table as the model reads it (see :func:`~.scorer.table_matrix`)."""

    name: Name
    kind: Literal["numeric", "boolean", "categorical", "date", "text"]
    sentinels: list[Finite] | None = None
    categories: list[str] | None = None
    tokens: list[str] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> TableColumn:
        own = {"numeric": "sentinels", "categorical": "categories", "text": "tokens"}.get(self.kind)
        for key in ("sentinels", "categories", "tokens"):
            value = getattr(self, key)
            if key != own and value is not None:
                raise ValueError(f"column {self.name!r} of kind {self.kind!r} takes no '{key}'")
        if own in ("categories", "tokens"):
            values = getattr(self, own)
            if not values:
                raise ValueError(f"column {self.name!r} of kind {self.kind!r} needs a non-empty '{own}' list")
            _unique(values, f"column {self.name!r}: {own}")
        return self


class TableSchema(_Strict):
    """The table schema of a flat-table bundle (see :func:`propensity.modeling.tabular.infer_schema`)."""

    target: Name
    id_column: str | None = None
    time_column: str | None = None
    input_columns: list[str]
    columns: Annotated[list[TableColumn], Field(min_length=1)]
    dropped: dict[str, str] = Field(default_factory=dict)
    features: Annotated[list[Name], Field(min_length=1)]
    positive_value: str | bool | int | float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TableSchema:
        names = [c.name for c in self.columns]
        _unique(names, "columns")
        _unique(self.features, "features")
        missing = [n for n in names if n not in self.input_columns]
        if missing:
            raise ValueError(f"columns {missing[:5]} are not among input_columns")
        if self.target in self.input_columns:
            raise ValueError(f"the target {self.target!r} is among input_columns")
        return self


class TableMeta(_BundleMeta):
    """``bundle.json`` of a model trained on a flat table (``kind: table``)."""

    kind: Literal["table"]
    table: TableSchema


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    dupes = sorted({v for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"{what}: duplicate values {dupes[:5]}")
