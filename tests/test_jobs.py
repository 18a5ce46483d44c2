"""The library functions behind the commands (propensity.jobs): results, not printing; and printing in one place."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity import jobs
from propensity.cli.printing import TerminalProgress
from propensity.config import TierConfig
from propensity.scoring.bundle import save_bundle
from propensity.scoring.scorer import LeadScorer

SRC = Path(__file__).resolve().parents[1] / "src" / "propensity"


@pytest.fixture(scope="module")
def crm_with_a_bad_lead(formula_crm, tmp_path_factory) -> Path:
    """The small world with one lead created in the future: scoring gives it an error row."""
    folder = tmp_path_factory.mktemp("bad-lead") / "crm"
    shutil.copytree(formula_crm, folder)
    leads = pd.read_parquet(folder / "leads.parquet")
    leads["created_at"] = leads["created_at"].astype(object)
    leads.loc[5, "created_at"] = pd.Timestamp("2199-01-01", tz="UTC")
    leads.to_parquet(folder / "leads.parquet", index=False)
    return folder


@pytest.mark.parametrize("tiers", [TierConfig(mql=0.0005, sql=0.002),
                                   TierConfig(mql=0.0002, sql=0.5, capacity={"leads_per_week": 60})],
                         ids=["thresholds", "capacity"])
def test_the_tier_tally_over_chunks_equals_the_scorers_summary_of_the_whole_pool(
        formula_trained, crm_with_a_bad_lead, tiers, tmp_path):
    model = save_bundle(dataclasses.replace(formula_trained.bundle, tiers=tiers), tmp_path / "model")
    with pytest.warns(UserWarning, match="set aside 1 lead"):
        done = jobs.score(model, crm_with_a_bad_lead, tmp_path / "scores.csv", chunk_size=97)
    scorer = LeadScorer.load(model)
    with pytest.warns(UserWarning, match="set aside 1 lead"):
        whole = scorer.score(crm_with_a_bad_lead)
    want = scorer.tier_summary(whole)
    tally = done.tiers
    assert len(whole) > 4 * 97  # several chunks, SQL leads in more than one of them
    assert whole["tier"].eq("SQL").groupby(np.arange(len(whole)) // 97).any().sum() >= 2
    assert (tally.leads, tally.error_leads) == (len(whole), 1)
    assert (tally.sql_leads, tally.mql_leads) == (want["sql_leads"], want["mql_leads"])
    assert tally.nurture_leads == int(whole["tier"].eq("nurture").sum())
    assert tally.sql_threshold == want["sql_threshold"]
    assert tally.expected_conversions == pytest.approx(want["expected_conversions"], rel=1e-12)
    assert (tally.policy, tally.leads_per_week) == (want["policy"], want["leads_per_week"])
    assert len(pd.read_csv(tmp_path / "scores.csv")) == len(whole)


def test_jobs_return_results_and_print_nothing(formula_crm, formula_model, tmp_path, capsys):
    table = jobs.features(formula_crm, tmp_path / "features.parquet", as_of="2025-06-01T00:00:00Z")
    scored = jobs.score(formula_model, formula_crm, tmp_path / "scores.parquet")
    assert capsys.readouterr() == ("", "")
    assert table.rows == len(pd.read_parquet(tmp_path / "features.parquet")) > 0
    assert isinstance(scored, jobs.CrmScoring)
    assert scored.leads == len(pd.read_parquet(tmp_path / "scores.parquet")) > 0


def test_terminal_progress_without_a_terminal_writes_plain_lines(capsys):
    progress = TerminalProgress()
    progress.plan(2)
    progress.step("reading crm")
    progress.finish()
    progress.count(0, None)
    progress.count(50, 120)
    progress.count(120, 120)
    progress.finish()
    assert capsys.readouterr().err == "  reading crm\n  scored 50 of 120 leads\n  scored 120 of 120 leads\n"


def _writes_to_the_terminal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
        return "print()"
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys" \
            and node.attr in ("stdout", "stderr"):
        return f"sys.{node.attr}"
    if isinstance(node, ast.Attribute) and node.attr == "basicConfig":
        return "logging.basicConfig"
    return None


def test_only_the_command_line_prints_or_configures_logging():
    allowed = {SRC / "cli" / "printing.py": {"print()", "sys.stdout", "sys.stderr"},
               SRC / "cli" / "app.py": {"logging.basicConfig"}}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            what = _writes_to_the_terminal(node)
            if what and what not in allowed.get(path, set()):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {what}")
    assert found == []
