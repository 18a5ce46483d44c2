"""Pydantic models of the YAML files people agree on and edit.

``features/icp.yaml`` (the ideal customer profile), ``features/engagement.yaml``
(the catalogue of engagement signals) and ``training/*.yaml`` (experiment
settings). Every model forbids unknown keys, so a typo fails with the file, the
key and the names that are allowed. This module imports nothing else of the
project but :mod:`propensity.core`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from propensity.core.errors import ConfigError
from propensity.core.validation import validation_message

__all__ = [
    "AuditConfig",
    "ConfigError",
    "Criterion",
    "EngagementConfig",
    "IcpConfig",
    "MonitoringConfig",
    "ProjectConfig",
    "Signal",
    "SparkConfig",
    "TrainingConfig",
    "default_project_dir",
    "load_project",
]

_NAME = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- ICP


class Criterion(_Strict):
    """One firmographic or contact criterion of the ICP."""

    name: Annotated[str, Field(pattern=_NAME)]
    table: Literal["accounts", "leads"]
    column: str
    display: str
    kind: Literal["in", "range", "value"]
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    points: float = 0.0
    raw: bool = True

    @model_validator(mode="after")
    def _check_kind(self) -> Criterion:
        if self.kind == "in" and not self.values:
            raise ValueError(f"criterion {self.name!r}: kind 'in' needs a non-empty 'values' list")
        if self.kind == "range" and self.min is None and self.max is None:
            raise ValueError(f"criterion {self.name!r}: kind 'range' needs 'min' or 'max'")
        if self.kind == "value" and not self.raw:
            raise ValueError(f"criterion {self.name!r}: kind 'value' with raw: false yields no feature")
        return self

    @property
    def numeric(self) -> bool:
        """Whether the raw value is a number (range criteria) or a category."""
        return self.kind == "range"


class IcpConfig(_Strict):
    criteria: list[Criterion]

    @field_validator("criteria")
    @classmethod
    def _unique(cls, v: list[Criterion]) -> list[Criterion]:
        _check_unique([c.name for c in v], "criteria")
        return v


# -------------------------------------------------------------------- engagement


class Signal(_Strict):
    """One engagement signal: which activity types it counts and how they decay."""

    name: Annotated[str, Field(pattern=_NAME)]
    activity_types: Annotated[list[str], Field(min_length=1)]
    display: str
    half_life_days: Annotated[float, Field(gt=0)]
    points: float = 0.0
    max_points: Annotated[float, Field(ge=0)] = 0.0
    actionable: bool = True
    monotone: Literal["increasing", "decreasing", "none"] = "none"


class EngagementConfig(_Strict):
    windows_days: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]
    signals: Annotated[list[Signal], Field(min_length=1)]

    @field_validator("windows_days")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        _check_unique([str(w) for w in v], "windows_days")
        return sorted(v)

    @field_validator("signals")
    @classmethod
    def _unique(cls, v: list[Signal]) -> list[Signal]:
        _check_unique([s.name for s in v], "signals")
        return v

    @property
    def activity_types(self) -> set[str]:
        return {t for s in self.signals for t in s.activity_types}


# ---------------------------------------------------------------------- training


class LabelConfig(_Strict):
    horizon_days: Annotated[int, Field(gt=0)] = 90


class CutoffConfig(_Strict):
    every_days: Annotated[int, Field(gt=0)] = 28
    max_lead_age_days: Annotated[int, Field(gt=0)] = 365


class SplitConfig(_Strict):
    """The time split (``propensity.modeling.split``): fractions of the snapshot dates, and outcome minimums.

    ``valid_windows`` consecutive validation windows decide early stopping, tuning,
    the model family and calibration; each window and the test window hold at least
    ``min_positives`` conversions (the boundaries move back to find them) and the
    newest window's training rows at least ``min_train_positives``.
    """

    valid_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.15
    test_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.2
    valid_windows: Annotated[int, Field(ge=1, le=12)] = 3
    min_positives: Annotated[int, Field(ge=1)] = 20
    min_train_positives: Annotated[int, Field(ge=1)] = 30


class ModelConfig(_Strict):
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    num_leaves: Annotated[int, Field(ge=2)] = 7
    max_depth: int = 3
    min_child_samples: Annotated[int, Field(ge=1)] = 50
    subsample: Annotated[float, Field(gt=0, le=1)] = 0.8
    subsample_freq: Annotated[int, Field(ge=0)] = 1
    colsample_bytree: Annotated[float, Field(gt=0, le=1)] = 0.8
    reg_lambda: Annotated[float, Field(ge=0)] = 1.0
    n_estimators: Annotated[int, Field(ge=1)] = 2000
    early_stopping_rounds: Annotated[int, Field(ge=1)] = 100
    seed: int = 0


class TierConfig(_Strict):
    """The MQL/SQL policy: probability thresholds, or the capacity of the sales team.

    Thresholds: a lead at or above ``sql`` is SQL, at or above ``mql`` MQL, else
    nurture. Capacity (``capacity: {leads_per_week: 200}``): of the open leads scored
    together, exactly the ``leads_per_week`` most probable are SQL (ties broken by
    the raw model score, then input order; see ``propensity.scoring.scorer``) and
    the conversions expected from them are the sum of their probabilities; ``mql``
    still applies below, and a lead below ``mql`` is never SQL. A lead scored on its own has no pool to rank
    against, so it gets the ``sql`` threshold.
    """

    class Capacity(_Strict):
        leads_per_week: Annotated[int, Field(gt=0)]

    mql: Annotated[float, Field(ge=0, le=1)] = 0.03
    sql: Annotated[float, Field(ge=0, le=1)] = 0.15
    capacity: Capacity | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TierConfig:
        if self.sql < self.mql:
            raise ValueError(f"tiers: sql ({self.sql}) must be at or above mql ({self.mql})")
        return self

    def tier(self, probability: float) -> str:
        if probability >= self.sql:
            return "SQL"
        if probability >= self.mql:
            return "MQL"
        return "nurture"

    def sql_threshold(self, probabilities) -> float:
        """The SQL threshold for leads scored together: ``sql``, or the capacity cut.

        Under a capacity policy this is the probability of the last SQL lead; leads
        tied at it may fall either side (the scorer breaks ties), so use it to report
        the cut, not to assign tiers.
        """
        if self.capacity is None or len(probabilities) == 0:
            return self.sql
        import numpy as np  # only the capacity policy needs it

        p = np.asarray(probabilities, dtype="float64")
        k = min(self.capacity.leads_per_week, len(p))
        return max(float(np.partition(p, len(p) - k)[len(p) - k]), self.mql)


class ReasonConfig(_Strict):
    top_k: Annotated[int, Field(ge=1, le=20)] = 3


class TuningConfig(_Strict):
    """The LightGBM parameter search, in seconds; 0 turns it off.

    ``budget_seconds`` is for flat tables (cross-validated search). ``crm_budget_seconds``
    is for CRM exports: trials early-stop on and are judged by the validation window,
    and the ``model:`` settings are always the first trial; at 0 the ``model:``
    settings are used as they are.
    """

    budget_seconds: Annotated[float, Field(ge=0)] = 60.0
    crm_budget_seconds: Annotated[float, Field(ge=0)] = 0.0


class TrackingConfig(_Strict):
    experiment: str = "propensity"
    registered_model: str = "propensity-lead-score"


class AuditConfig(_Strict):
    """The leakage audit: ``accept`` lists columns (``partner_flag``, ``leads.partner_flag``) or features a person has
    checked; their flags are recorded as accepted notes instead of flags to review."""

    accept: list[Annotated[str, Field(min_length=1)]] = []


class MonitoringConfig(_Strict):
    """Thresholds of ``propensity monitor`` (see docs/monitoring.md).

    The drift defaults are Evidently's for reference data over 1000 rows: a numeric
    feature drifts when its Wasserstein distance divided by the reference's standard
    deviation reaches 0.1, a categorical one (or a number with at most 5 distinct
    values) when its Jensen-Shannon distance reaches 0.1, and the data drifts when
    half of the features do. The score's PSI alerts at 0.25, the usual "significant
    shift" (0.1-0.25 is "moderate"). A matured run alerts when its realized ROC AUC is
    more than ``auc_drop`` below the model card's test AUC, or when the leads that
    converted differ from the number the probabilities expected by more than
    ``calibration_tolerance`` (relative); the AUC only beyond 3 standard errors, the
    calibration only when ``consecutive_runs`` matured runs in a row are off the same
    way, each beyond ``calibration_z`` standard deviations (one month off alone is
    the seasonal swing a stable world has: a peak the training window never held).
    The leads created in the ``new_lead_days`` before a run are tested on their own (a mix shift in
    the inflow is diluted in the stock of open leads): each fit feature by a
    chi-square test against the training's leads; the alert needs the same feature
    below ``new_leads_p_value`` in ``consecutive_runs`` runs in a row.
    """

    numeric_distance: Annotated[float, Field(gt=0)] = 0.1
    categorical_distance: Annotated[float, Field(gt=0, le=1)] = 0.1
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    score_psi: Annotated[float, Field(gt=0)] = 0.25
    auc_drop: Annotated[float, Field(ge=0, le=1)] = 0.05  # realized AUC below the model card's test AUC by more
    calibration_tolerance: Annotated[float, Field(gt=0)] = 0.25  # observed conversions off the expected by more
    calibration_z: Annotated[float, Field(gt=0)] = 2.5  # ... and by more standard deviations, in every run of a row
    new_leads_p_value: Annotated[float, Field(gt=0, lt=1)] = 0.001  # a fit feature of the new leads drifted
    new_lead_days: Annotated[int, Field(ge=1)] = 30  # "new": created within this many days before the run
    min_new_leads: Annotated[int, Field(ge=5)] = 50  # fewer new leads in a run: not tested
    consecutive_runs: Annotated[int, Field(ge=1)] = 2  # the calibration and new-lead alerts need this many in a row
    min_rows: Annotated[int, Field(ge=1)] = 200  # runs with fewer leads are reported, never alerted on


class SparkConfig(_Strict):
    """``--engine spark``: the size of the training table brought to one machine, and salting of heavy leads.

    ``train --engine spark`` builds every training row on Spark, then keeps all
    positives and the test window (un-sampled: honest test metrics) and a seeded
    sample of the other negatives at ``negative_rate``: ``auto`` picks the rate that
    brings the table to at most ``max_rows`` rows (1.0, no sampling, when it fits);
    a number forces that rate. Kept negatives weigh ``1 / rate`` in calibration and
    validation. A lead with more than ``heavy_lead_events`` activities (a bot) has its
    events spread over ``salts`` tasks by day; every value stays exact.
    """

    max_rows: Annotated[int, Field(gt=0)] = 5_000_000
    negative_rate: Literal["auto"] | Annotated[float, Field(gt=0, le=1)] = "auto"
    heavy_lead_events: Annotated[int, Field(gt=0)] = 100_000
    salts: Annotated[int, Field(ge=1, le=1024)] = 32


class TrainingConfig(_Strict):
    features_dir: str = "../features"
    label: LabelConfig = LabelConfig()
    cutoffs: CutoffConfig = CutoffConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    model_family: Literal["auto", "lightgbm", "logistic", "points"] = "auto"
    calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto"
    tiers: TierConfig = TierConfig()
    reasons: ReasonConfig = ReasonConfig()
    tracking: TrackingConfig = TrackingConfig()
    tuning: TuningConfig = TuningConfig()
    audit: AuditConfig = AuditConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    spark: SparkConfig = SparkConfig()


class ProjectConfig(BaseModel):
    """Everything one training run reads: the three files and where they came from."""

    model_config = ConfigDict(frozen=True)

    icp: IcpConfig
    engagement: EngagementConfig
    training: TrainingConfig
    training_path: Path
    features_dir: Path


# ----------------------------------------------------------------------- loading


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"{what}: duplicate names {dupes}")


def load_yaml_model(path: Path, model: type[BaseModel]) -> BaseModel:
    """Read ``path`` with ``yaml.safe_load`` and validate it as ``model``.

    Raises
    ------
    ConfigError
        With a one-line message naming the file, the key and what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(validation_message(path, model, err)) from None


def default_project_dir() -> Path:
    """The folder holding the packaged ``features/`` and ``training/`` defaults."""
    return Path(str(resources.files("propensity") / "defaults"))


def load_project(training_path: str | Path | None = None) -> ProjectConfig:
    """Load a training config and the ICP and engagement files it points to.

    ``training_path`` defaults to ``training/default.yaml`` in the current
    directory when it exists, else to the copy packaged with ``propensity``.
    """
    if training_path is None:
        local = Path("training/default.yaml")
        training_path = local if local.exists() else default_project_dir() / "training" / "default.yaml"
    training_path = Path(training_path)
    training = load_yaml_model(training_path, TrainingConfig)
    assert isinstance(training, TrainingConfig)
    features_dir = (training_path.parent / training.features_dir).resolve()
    if not features_dir.is_dir():
        raise ConfigError(f"{training_path}: features_dir: folder {features_dir} does not exist")
    icp = load_yaml_model(features_dir / "icp.yaml", IcpConfig)
    engagement = load_yaml_model(features_dir / "engagement.yaml", EngagementConfig)
    return ProjectConfig(
        icp=icp,  # type: ignore[arg-type]
        engagement=engagement,  # type: ignore[arg-type]
        training=training,
        training_path=training_path.resolve(),
        features_dir=features_dir,
    )
