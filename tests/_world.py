"""Shared session fixtures: one small synthetic world and one model trained on it.

Registered in conftest.py for every test module, so the
world is generated and the model trained once per test session.
"""

from pathlib import Path

import pytest

from propensity.config import default_project_dir, load_project
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.modeling.train import train
from propensity.scoring.bundle import save_bundle

WORLD_LEADS = 12_000


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    return write_world(tmp_path_factory.mktemp("world") / "crm", n_leads=WORLD_LEADS, seed=7)


@pytest.fixture(scope="session")
def project():
    return load_project(default_project_dir() / "training" / "default.yaml")


@pytest.fixture(scope="session")
def trained(world_dir, project):
    # LightGBM forced: the scoring, SHAP and thread tests below it exercise the tree model; the automatic
    # choice between families is tested on its own (tests/test_choice.py).
    return train(read_export(world_dir), project, model_family="lightgbm")


@pytest.fixture(scope="session")
def trained_auto(world_dir, project):
    """The same world trained as a user would: the family chosen on the validation windows."""
    return train(read_export(world_dir), project)


@pytest.fixture(scope="session")
def bundle_dir(trained, tmp_path_factory) -> Path:
    return save_bundle(trained.bundle, tmp_path_factory.mktemp("models") / "latest")
