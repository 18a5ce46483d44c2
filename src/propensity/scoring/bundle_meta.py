"""The layout of ``bundle.json`` as pydantic models: every key a bundle may hold, its type and its range.

:class:`BundleMeta` holds what every kind of bundle records (calibration, reason
count, metadata, digests); :class:`CrmMeta` is a model trained on a CRM export.
A flat-table bundle's layout (``kind: table``) is
:class:`propensity.tabular.bundle.TableMeta`, built on :class:`BundleMeta`.

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

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from propensity.config import EngagementConfig, IcpConfig, TierConfig

__all__ = ["BundleMeta", "CalibrationMeta", "CrmMeta", "FeatureMeta", "FileName", "Finite", "Name", "Probability",
           "Sha256", "StrictModel", "unique_values"]

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")]  # a plain name inside the bundle folder
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1)]


class StrictModel(BaseModel):
    """A part of ``bundle.json``: unknown keys are errors, and a loaded value is never changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibrationMeta(StrictModel):
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
    lo: Probability = 0.0
    hi: Probability = 1.0

    @model_validator(mode="after")
    def _fits_method(self) -> CalibrationMeta:
        if self.lo >= self.hi:
            raise ValueError(f"the clip lo ({self.lo}) must be below hi ({self.hi})")
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


class FeatureMeta(StrictModel):
    """One entry of the feature spec (:class:`~propensity.features.spec.FeatureDef`)."""

    name: Name
    family: Literal["fit", "engagement"]
    kind: Literal["numeric", "categorical"]
    display: str
    source: str
    actionable: bool = False
    monotone: Literal[-1, 0, 1] = 0


class BundleMeta(StrictModel):
    """What every kind of bundle holds; ``KIND`` is the ``kind`` value of a subclass's files."""

    KIND: ClassVar[str] = ""

    schema_version: Literal[1]
    family: Literal["lightgbm", "logistic", "points"] = "lightgbm"  # the model file: model.txt, else model.json
    calibration: CalibrationMeta
    top_k: Annotated[int, Field(ge=1, le=20)] = 3
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: dict[FileName, Sha256] | None = None
    content_sha256: Sha256 | None = None

    @model_validator(mode="after")
    def _both_digests(self) -> BundleMeta:
        if (self.files is None) != (self.content_sha256 is None):
            have, lack = ("files", "content_sha256") if self.content_sha256 is None else ("content_sha256", "files")
            raise ValueError(f"'{have}' without '{lack}': a bundle records both digests or neither")
        return self


class CrmMeta(BundleMeta):
    """``bundle.json`` of a model trained on a CRM export (``kind: crm``, the default)."""

    KIND: ClassVar[str] = "crm"

    kind: Literal["crm"] = "crm"
    features: Annotated[list[FeatureMeta], Field(min_length=1)]
    categories: dict[str, list[str]]
    icp: IcpConfig
    engagement: EngagementConfig
    tiers: TierConfig
    horizon_days: Annotated[int, Field(gt=0)] = 90

    @model_validator(mode="after")
    def _consistent(self) -> CrmMeta:
        unique_values([f.name for f in self.features], "features")
        categorical = {f.name for f in self.features if f.kind == "categorical"}
        for name, values in self.categories.items():
            if name not in categorical:
                raise ValueError(f"categories: {name!r} is not a categorical feature of the spec")
            unique_values(values, f"categories.{name}")
        return self


def unique_values(values: list[str], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` and the first duplicates when ``values`` repeat one."""
    seen: set[str] = set()
    dupes = sorted({v for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"{what}: duplicate values {dupes[:5]}")
