"""An additive model of the log-odds, stored as plain JSON: the bundle's logistic and points families.

``log-odds(x) = intercept + sum_j f_j(x_j)`` over the model matrix's columns (the
float matrix the scorer builds: numbers, category codes, NaN for missing). Each
term ``f_j`` is one of

- ``numeric``: piecewise linear through knots ``(x, y)``, flat beyond the first and
  last knot (a logistic regression's straight line between two quantiles of the
  training values, so an outlier cannot push the log-odds without bound; or the
  capped points of an engagement signal), and ``missing`` for NaN;
- ``categorical``: a value per category code (``levels``: the training category's
  name → value, matched to the bundle's categories by name), ``other`` for a code
  the table does not list (a rare category grouped at training), ``missing`` for NaN.

Contributions are exact SHAP values, as LightGBM's ``pred_contrib`` gives for
trees: for an additive model a feature's Shapley value is its term minus the
term's mean over the training rows (``mean``), and the last column, the
expected value, is ``intercept + sum_j mean_j``. So probabilities, reasons, fit and
engagement scores and grades work the same for every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["AdditiveModel", "Term"]


@dataclass(frozen=True)
class Term:
    """One feature's function of the log-odds (see the module docstring)."""

    kind: Literal["numeric", "categorical", "zero"]
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    levels: dict[str, float] = field(default_factory=dict)
    other: float = 0.0
    missing: float = 0.0
    mean: float = 0.0  # over the training rows: the term's share of the expected value

    def values(self, column: np.ndarray, categories: list[str] | None = None) -> np.ndarray:
        """``f_j`` of one model-matrix column (float: numbers, or codes into ``categories``)."""
        column = np.asarray(column, dtype=np.float64)
        out = np.full(len(column), self.missing)
        known = ~np.isnan(column)
        if self.kind == "zero" or not known.any():
            return np.where(known, 0.0, self.missing) if self.kind == "zero" else out
        if self.kind == "numeric":
            out[known] = np.interp(column[known], self.x, self.y)
            return out
        table = np.array([self.levels.get(name, self.other) for name in (categories or [])] + [self.other])
        codes = column[known].astype(np.int64)
        codes = np.where((codes >= 0) & (codes < len(table) - 1), codes, len(table) - 1)
        out[known] = table[codes]
        return out

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind, "missing": self.missing, "mean": self.mean}
        if self.kind == "numeric":
            d.update(x=list(self.x), y=list(self.y))
        elif self.kind == "categorical":
            d.update(levels=dict(self.levels), other=self.other)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Term:
        return cls(kind=d["kind"], x=[float(v) for v in d.get("x", [])], y=[float(v) for v in d.get("y", [])],
                   levels={str(k): float(v) for k, v in d.get("levels", {}).items()},
                   other=float(d.get("other", 0.0)), missing=float(d.get("missing", 0.0)),
                   mean=float(d.get("mean", 0.0)))


@dataclass(frozen=True)
class AdditiveModel:
    """``intercept + sum of terms`` in log-odds; one term per model-matrix column, in spec order."""

    family: str  # "logistic" or "points"
    intercept: float
    terms: list[Term]
    features: list[str]
    meta: dict = field(default_factory=dict)  # how it was fitted (regularisation, levels kept, ...), for the card

    def term_values(self, x: np.ndarray, categories: dict[str, list[str]]) -> np.ndarray:
        """``f_j(x_j)`` per row and feature, shape ``(rows, features)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.terms):
            raise ValueError(f"additive model: expected {len(self.terms)} feature columns, got shape {x.shape}")
        out = np.empty(x.shape)
        for j, (name, term) in enumerate(zip(self.features, self.terms, strict=True)):
            out[:, j] = term.values(x[:, j], categories.get(name))
        return out

    def contrib(self, x: np.ndarray, categories: dict[str, list[str]]) -> np.ndarray:
        """Exact SHAP values in log-odds, then the expected value: the layout of LightGBM's ``pred_contrib``."""
        values = self.term_values(x, categories)
        means = np.array([t.mean for t in self.terms])
        out = np.empty((values.shape[0], values.shape[1] + 1))
        out[:, :-1] = values - means
        out[:, -1] = self.intercept + float(means.sum())
        return out

    def log_odds(self, x: np.ndarray, categories: dict[str, list[str]]) -> np.ndarray:
        return self.intercept + self.term_values(x, categories).sum(axis=1)

    def predict(self, x: np.ndarray, categories: dict[str, list[str]]) -> np.ndarray:
        """Raw probabilities (before the bundle's calibration)."""
        return 1.0 / (1.0 + np.exp(-self.log_odds(x, categories)))

    def to_dict(self) -> dict:
        return {"family": self.family, "intercept": self.intercept, "features": list(self.features),
                "terms": [t.to_dict() for t in self.terms], "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> AdditiveModel:
        return cls(family=str(d["family"]), intercept=float(d["intercept"]), features=[str(f) for f in d["features"]],
                   terms=[Term.from_dict(t) for t in d["terms"]], meta=dict(d.get("meta", {})))


class AdditiveBooster:
    """An :class:`AdditiveModel` with the face of a LightGBM ``Booster`` that the scorer and training use.

    ``predict(x, raw_score=..., pred_contrib=..., num_threads=...)`` on a float model
    matrix (category codes) or on the pandas matrix of ``features.matrix.to_matrix``;
    ``feature_name()``, ``num_feature()``, ``pandas_categorical`` (the categories of the
    categorical features, in order: the codes the scorer's encoding writes) and
    ``save_model(path)`` (JSON). ``categories`` are the bundle's, by feature name.
    """

    FILE = "model.json"
    best_iteration = 0

    def __init__(self, model: AdditiveModel, categories: dict[str, list[str]], categorical: list[str]):
        self.model = model
        self.categories = {k: list(v) for k, v in categories.items()}
        self.categorical = list(categorical)
        self.pandas_categorical = [self.categories.get(name, []) for name in self.categorical]

    @property
    def family(self) -> str:
        return self.model.family

    def feature_name(self) -> list[str]:
        return list(self.model.features)

    def num_feature(self) -> int:
        return len(self.model.features)

    def num_trees(self) -> int:
        return 0

    def _floats(self, x) -> np.ndarray:
        if hasattr(x, "columns"):
            cols = []
            for name in x.columns:
                col = x[name]
                if hasattr(col, "cat"):
                    codes = col.cat.codes.to_numpy().astype(np.float64)
                    codes[codes < 0] = np.nan
                    cols.append(codes)
                else:
                    cols.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            return np.column_stack(cols) if cols else np.empty((len(x), 0))
        return np.asarray(x, dtype=np.float64)

    def predict(self, x, raw_score: bool = False, pred_contrib: bool = False,
                num_threads: int = 0, num_iteration: int | None = None) -> np.ndarray:
        m = self._floats(x)
        if pred_contrib:
            return self.model.contrib(m, self.categories)
        z = self.model.log_odds(m, self.categories)
        return z if raw_score else 1.0 / (1.0 + np.exp(-z))

    def save_model(self, path: str) -> None:
        import json

        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.model.to_dict(), fh, indent=1)
