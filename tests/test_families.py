"""The simple families as additive models: exact contributions, grouped rare levels, the points of the YAML."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from propensity.config import default_project_dir, load_project
from propensity.features.spec import FeatureDef, build_feature_spec
from propensity.modeling.baseline import baseline_points
from propensity.modeling.families import fit_logistic, fit_points
from propensity.scoring.additive import AdditiveModel, Term

SPEC = [FeatureDef("n", "engagement", "numeric", "N", "n"), FeatureDef("c", "fit", "categorical", "C", "c"),
        FeatureDef("k", "engagement", "numeric", "K", "k")]


def _table(rows: int = 4000, levels: int = 500, seed: int = 0):
    """A number that matters, a 500-level category of which two levels matter, a skewed count."""
    rng = np.random.default_rng(seed)
    n = rng.normal(size=rows)
    c = rng.integers(0, levels, size=rows).astype(float)
    c[rng.random(rows) < 0.1] = np.nan
    k = rng.poisson(rng.gamma(0.5, 4.0, size=rows)).astype(float)
    logit = -2.5 + 0.8 * n + 1.5 * np.isin(c, [0, 1]) + 0.4 * np.log1p(k)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    x = np.column_stack([n, c, k])
    categories = {"c": [f"L{i:03d}" for i in range(levels)]}
    return x, y, categories


def test_contributions_are_exact_and_centred_on_the_training_rows():
    x, y, cats = _table()
    train = np.arange(len(y)) < 3000
    model = fit_logistic(x, y, SPEC, cats, train, [~train])
    contrib = model.contrib(x, cats)
    np.testing.assert_allclose(contrib.sum(axis=1), model.log_odds(x, cats), atol=1e-10)
    np.testing.assert_allclose(contrib[train, :-1].mean(axis=0), 0.0, atol=1e-10)
    assert np.ptp(contrib[:, -1]) == 0


def test_rare_levels_share_one_weight_and_the_model_still_ranks():
    x, y, cats = _table()
    train = np.arange(len(y)) < 3000
    model = fit_logistic(x, y, SPEC, cats, train, [~train], min_level_rows=30)
    term = model.terms[1]
    assert len(term.levels) < 10  # 500 levels on 3,000 rows: none of them is seen 30 times
    assert roc_auc_score(y[~train], model.predict(x[~train], cats)) > 0.7
    grouped = fit_logistic(x, y, SPEC, cats, train, [~train], min_level_rows=1)
    assert len(grouped.terms[1].levels) > 400  # with no minimum every level gets its own weight


def test_a_skewed_count_enters_as_log1p_and_stays_flat_beyond_the_training_range():
    x, y, cats = _table()
    train = np.arange(len(y)) < 3000
    term = fit_logistic(x, y, SPEC, cats, train, [~train]).terms[2]
    assert term.kind == "numeric" and len(term.x) > 2  # log1p: knots along the curve
    far = term.values(np.array([1e9, term.x[-1]]))
    assert far[0] == far[1]


def test_a_round_trip_through_json_gives_the_same_numbers():
    x, y, cats = _table()
    train = np.arange(len(y)) < 3000
    model = fit_logistic(x, y, SPEC, cats, train, [~train])
    back = AdditiveModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(back.contrib(x, cats), model.contrib(x, cats))


def test_unknown_and_missing_categories_get_their_own_values():
    term = Term("categorical", levels={"a": 1.0, "b": 2.0}, other=-1.0, missing=5.0)
    values = term.values(np.array([0, 1, 2, np.nan, 99]), ["a", "b", "c"])
    assert values.tolist() == [1.0, 2.0, -1.0, 5.0, -1.0]


@pytest.fixture(scope="module")
def project():
    return load_project(default_project_dir() / "training" / "default.yaml")


def test_points_family_ranks_exactly_as_the_points_of_the_yaml(project):
    spec = build_feature_spec(project.icp, project.engagement)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({f.name: (rng.integers(0, 2, 2000).astype(float) if f.name.startswith("fit_")
                                   and not f.name.endswith("_value") else rng.poisson(1.5, 2000).astype(float))
                          for f in spec if f.kind == "numeric"})
    for f in spec:
        if f.kind == "categorical":
            frame[f.name] = np.nan
    frame = frame[[f.name for f in spec]]
    points = baseline_points(frame, project.icp, project.engagement)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(-2 + 0.05 * points)))).astype(int)
    x = frame.to_numpy(dtype=float)
    model = fit_points(x, y, spec, project.icp, project.engagement, np.ones(2000, dtype=bool))
    assert model.meta["a"] > 0
    # the same ranking: equal points give equal log-odds (up to the float rounding of a sum in another order)
    assert roc_auc_score(y, np.round(model.log_odds(x, {}), 9)) == pytest.approx(roc_auc_score(y, points), abs=1e-12)
