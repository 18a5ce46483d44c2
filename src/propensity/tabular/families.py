"""Choose, don't assume, on a flat table: tuned LightGBM or regularised logistic regression, by the folds.

The parameter search leaves LightGBM's out-of-fold predictions on the training
rows (:mod:`propensity.modeling.tune`); :func:`logistic_folds` fits the logistic
family (:func:`propensity.modeling.families.fit_logistic`: rare levels grouped,
numbers clipped, ``log1p`` where skewed, scaled, missing flags; ``C`` chosen per
fold) on the same folds. :func:`choose_table_family` judges both on the rows both
predicted, by the calibrated log loss (tie-break AUC), with LightGBM set aside when
it is degenerate (:func:`propensity.modeling.selection.degenerate`). In time order
the newest fold is the newest labelled window: it is the one the degenerate check
and the calibrator look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.features.spec import FeatureDef
from propensity.modeling.families import fit_logistic
from propensity.modeling.selection import choose, degenerate, judged
from propensity.scoring.additive import AdditiveModel
from propensity.tabular.schema import TableSchema

__all__ = ["LogisticFolds", "choose_table_family", "fit_table_logistic", "logistic_folds", "table_categories",
           "table_spec"]


def table_spec(schema: TableSchema) -> list[FeatureDef]:
    """The table's model-matrix columns as feature definitions (what the logistic family reads of them)."""
    categorical = set(schema.categorical_positions())
    return [FeatureDef(name, "fit", "categorical" if j in categorical else "numeric", name, name)
            for j, name in enumerate(schema.features)]


def table_categories(schema: TableSchema) -> dict[str, list[str]]:
    """Each categorical column's levels, in the order of the codes in the model matrix."""
    return {c.name: list(c.categories or []) for c in schema.columns if c.kind == "categorical"}


@dataclass
class LogisticFolds:
    oof: np.ndarray  # out-of-fold probabilities over the training rows (NaN where no fold validated)
    c_value: float  # the C the shipped model is fitted with: the one chosen on the newest fold


def logistic_folds(x: np.ndarray, y: np.ndarray, folds: list, schema: TableSchema, seed: int = 0) -> LogisticFolds:
    """The logistic family fitted on each fold's training rows, predicting its validation rows."""
    spec, cats = table_spec(schema), table_categories(schema)
    oof = np.full(len(y), np.nan)
    c_value = 1.0
    for tr, va in folds:
        train, valid = np.zeros(len(y), bool), np.zeros(len(y), bool)
        train[tr], valid[va] = True, True
        model = fit_logistic(x, y, spec, cats, train, [valid], seed=seed)
        oof[va] = model.predict(x[va], cats)
        c_value = float(model.meta["C"])
    return LogisticFolds(oof, c_value)


def fit_table_logistic(x: np.ndarray, y: np.ndarray, schema: TableSchema, c_value: float,
                       seed: int = 0) -> AdditiveModel:
    """The logistic family on all of ``x`` with a fixed ``C`` (chosen on the folds)."""
    rows = np.ones(len(y), bool)
    return fit_logistic(x, y, table_spec(schema), table_categories(schema), rows, [], seed=seed, c_value=c_value)


def choose_table_family(oof: dict[str, np.ndarray], y: np.ndarray, newest: np.ndarray, trees: int,
                        forced: str = "auto", seed: int = 0) -> tuple[str, str, dict]:
    """``(family, why, judged)`` from the out-of-fold predictions of each family on the training rows.

    ``newest``: positions of the newest validation fold; ``trees``: LightGBM's rounds.
    """
    both = np.logical_and.reduce([~np.isnan(p) for p in oof.values()])
    scored = {name: judged(p[both], y[both], seed) for name, p in oof.items()}
    if "lightgbm" in scored:
        simple = [j["auc"] for n, j in scored.items() if n != "lightgbm"]
        scored["lightgbm"].update(degenerate(trees, oof["lightgbm"][newest], float(y[newest].mean()),
                                             scored["lightgbm"]["auc"], simple))
    family, why = choose(scored, forced)
    return family, why, scored
