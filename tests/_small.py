"""A small CRM world whose lead ids and raw values look like spreadsheet formulas, and a model trained on it.

Session fixtures, registered in conftest.py: small enough
for the fast suite (800 leads, a few seconds to train), real enough to train, evaluate and score.
"""

from pathlib import Path

import pandas as pd
import pytest

from propensity.config import default_project_dir, load_project
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.modeling.train import train
from propensity.scoring.bundle import save_bundle

# What an attacker (or an unlucky CRM user) can type into a lead id or a company field.
FORMULAS = ['=HYPERLINK("http://evil.example","click")', "@SUM(1)", "=cmd|' /C calc'!A0", "+1 555 0100",
            "-2+3", "\tindent", "\rreturn"]
EVIL_INDUSTRY = '=HYPERLINK("http://evil.example","software")'


def formula_id(i: int, lead_id: str) -> str:
    """Every third lead gets an id that starts like a formula (still unique: the old id follows)."""
    return f"{FORMULAS[(i // 3) % len(FORMULAS)]} {lead_id}" if i % 3 == 0 else lead_id


def _poison(folder: Path) -> None:
    leads = pd.read_parquet(folder / "leads.parquet")
    mapping = {old: formula_id(i, old) for i, old in enumerate(leads["lead_id"])}
    leads["lead_id"] = leads["lead_id"].map(mapping)
    leads.to_parquet(folder / "leads.parquet", index=False)
    acts = pd.read_parquet(folder / "activities.parquet")
    acts["lead_id"] = acts["lead_id"].cat.rename_categories(mapping)
    acts.to_parquet(folder / "activities.parquet", index=False)
    opps = pd.read_parquet(folder / "opportunities.parquet")
    opps["lead_id"] = opps["lead_id"].map(mapping)
    opps.to_parquet(folder / "opportunities.parquet", index=False)
    accounts = pd.read_parquet(folder / "accounts.parquet")
    accounts.loc[accounts.index[::4], "industry"] = EVIL_INDUSTRY
    accounts.to_parquet(folder / "accounts.parquet", index=False)


@pytest.fixture(scope="session")
def formula_crm(tmp_path_factory) -> Path:
    folder = write_world(tmp_path_factory.mktemp("formula") / "crm", n_leads=800, seed=1)
    _poison(folder)
    return folder


@pytest.fixture(scope="session")
def small_project():
    return load_project(default_project_dir() / "training" / "default.yaml")


@pytest.fixture(scope="session")
def formula_trained(formula_crm, small_project):
    return train(read_export(formula_crm), small_project)


@pytest.fixture(scope="session")
def formula_model(formula_trained, tmp_path_factory) -> Path:
    return save_bundle(formula_trained.bundle, tmp_path_factory.mktemp("formula-model") / "m")
