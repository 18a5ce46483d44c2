"""The leakage audit's value-level evidence: leaks CRMs really have are flagged with their counts, honest strong
columns are not, accepted columns are recorded; the same evidence for flat tables; the CLI prints it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _tables import lead_table

from propensity.cli import main
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.features.cutoffs import training_cutoffs
from propensity.features.pipeline import build_features
from propensity.features.spec import build_feature_spec
from propensity.modeling.audit import feature_columns, lead_outcomes, leakage_audit, to_markdown
from propensity.modeling.evidence import Outcomes, column_evidence
from propensity.modeling.split import time_split
from propensity.tabular.train import train_table


def planted(export, seed: int = 0, partner_cover: float = 0.6):
    """The export with the leaks of the issue planted in ``leads`` and ``accounts``, and two honest strong columns."""
    rng = np.random.default_rng(seed)
    leads, accounts = export.leads.copy(), export.accounts.copy()
    lo, _ = lead_outcomes(export)
    won, closed = lo.won, lo.closed
    leads["lead_status"] = np.where(won, "converted", rng.choice(["open", "working", "nurture"], len(leads)))
    leads["partner_flag"] = np.where(rng.random(len(leads)) < np.where(won, partner_cover, 0.05), "yes", "no")
    leads["sales_stage"] = np.where(closed, "closed", rng.choice(["new", "working", "nurture"], len(leads)))
    opps = export.opportunities
    amount = opps[opps["stage"] == "closed_won"].groupby("lead_id")["amount"].sum()
    leads["deal_amount"] = leads["lead_id"].map(amount)
    accounts["contract_value"] = accounts["account_id"].map(leads.groupby("account_id")["deal_amount"].sum(min_count=1))
    # Honest and as strong as a static column can be: the generator's own win probability, known at creation.
    truth = pd.read_parquet(Path(export.source) / "ground_truth.parquet").set_index("lead_id")
    p_won = leads["lead_id"].map(truth["p_won"]).to_numpy()
    leads["true_tier"] = pd.qcut(p_won, 5, labels=["E", "D", "C", "B", "A"]).astype(str)
    leads["true_p_won"] = p_won
    return dataclasses.replace(export, leads=leads, accounts=accounts)


@pytest.fixture(scope="module")
def planted_audit(world_dir, project):
    export = planted(read_export(world_dir))
    cfg = project.training
    frame = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days),
                           project.icp, project.engagement)
    split = time_split(frame["cutoff"], cfg.split, cfg.label.horizon_days)
    spec = build_feature_spec(project.icp, project.engagement)
    run = lambda accept=(): leakage_audit(frame, split, spec, frame["label"].to_numpy(), export=export,  # noqa: E731
                                          accept=accept, sources=feature_columns(spec, project.icp))
    return export, run(), run(("partner_flag", "leads.deal_amount", "no_such_column"))


def _by_column(findings: dict) -> dict[str, dict]:
    """The first (strongest) flag of each column."""
    out: dict[str, dict] = {}
    for f in findings["flags"]:
        out.setdefault(f["column"], f)
    return out


def test_a_status_set_at_conversion_is_flagged_with_its_value_and_counts(planted_audit):
    export, findings, _ = planted_audit
    flag = _by_column(findings)["leads.lead_status"]
    won = int(lead_outcomes(export)[0].won.sum())
    assert (flag["value"], flag["check"], flag["accepted"]) == ("converted", "outcome value", False)
    assert flag["evidence"].startswith(f"{won:,} of {won:,} leads closed won; other values 0 of ")
    assert "base rate" in flag["evidence"]


def test_a_partner_flag_ticked_for_most_won_leads_is_flagged(planted_audit):
    export, findings, _ = planted_audit
    flag = _by_column(findings)["leads.partner_flag"]
    assert (flag["value"], flag["check"]) == ("yes", "enriched value")
    cover = int(re.search(r"on (\d+)% of won leads", flag["evidence"]).group(1))
    assert 50 <= cover <= 70 and "of open leads" in flag["evidence"]


def test_a_value_never_seen_among_open_leads_is_flagged(planted_audit):
    _, findings, _ = planted_audit
    flag = _by_column(findings)["leads.sales_stage"]
    assert (flag["value"], flag["check"]) == ("closed", "never open")
    assert re.search(r"but 0 of [\d,]+ leads still open at the end of the data", flag["evidence"])


def test_numbers_filled_in_only_for_won_leads_and_accounts_are_flagged(planted_audit):
    _, findings, _ = planted_audit
    flags = _by_column(findings)
    for column, unit in (("leads.deal_amount", "leads"), ("accounts.contract_value", "accounts")):
        assert (flags[column]["value"], flags[column]["check"]) == (None, "filled for an outcome")
        assert re.search(rf"filled in for ([\d,]+) of \1 \(100%\) won, 0 of [\d,]+ \(0%\) lost but 0 of [\d,]+ "
                         rf"\(0%\) open {unit}", flags[column]["evidence"])


def test_honest_strong_columns_and_the_default_world_raise_no_flag(planted_audit):
    _, findings, _ = planted_audit
    columns = set(_by_column(findings))
    assert not {"leads.true_tier", "leads.true_p_won"} & columns
    assert columns == {"leads.lead_status", "leads.partner_flag", "leads.sales_stage", "leads.deal_amount",
                       "accounts.contract_value"}
    assert {"leads.true_tier", "leads.true_p_won", "accounts.industry"} <= set(findings["static_columns"]["checked"])


def test_an_accepted_column_is_recorded_not_flagged(planted_audit):
    _, plain, accepted = planted_audit
    flags = _by_column(accepted)
    assert flags["leads.partner_flag"]["accepted"] and flags["leads.deal_amount"]["accepted"]
    assert not flags["leads.lead_status"]["accepted"] and not accepted["ok"]
    assert accepted["accept_unused"] == ["no_such_column"]
    assert len(accepted["flags"]) == len(plain["flags"])
    card = to_markdown(accepted)
    assert card.count("## Leakage audit") == 1
    review, recorded = card.split("Accepted in the training config")
    assert "leads.partner_flag = yes" in recorded and "leads.partner_flag" not in review
    assert "`no_such_column`" in card


def test_accepting_every_flagged_column_leaves_the_audit_ok(planted_audit, world_dir, project):
    export, findings, _ = planted_audit
    names = [f["column"] for f in findings["flags"]]
    assert len(names) >= 5
    cfg = project.training
    frame = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days),
                           project.icp, project.engagement)
    split = time_split(frame["cutoff"], cfg.split, cfg.label.horizon_days)
    again = leakage_audit(frame, split, build_feature_spec(project.icp, project.engagement),
                          frame["label"].to_numpy(), export=export, accept=names)
    assert again["ok"] and all(f["accepted"] for f in again["flags"]) and again["accept_unused"] == []


def test_column_evidence_without_open_records_compares_with_the_other_records():
    rng = np.random.default_rng(0)
    won = rng.random(3000) < 0.05
    flag = np.where(rng.random(3000) < np.where(won, 0.5, 0.03), "y", "n")
    found = column_evidence("partner", pd.Series(flag), Outcomes(won, unit="rows"))
    assert [(f["value"], f["check"]) for f in found] == [("y", "enriched value")]
    assert "of other rows" in found[0]["evidence"]
    honest = np.where(rng.random(3000) < np.where(won, 0.4, 0.15), "y", "n")  # 2.7x: a strong honest value
    assert column_evidence("segment", pd.Series(honest), Outcomes(won, unit="rows")) == []


# ------------------------------------------------------------------ flat tables


def test_a_flat_table_gets_the_same_value_level_evidence_and_accept():
    df = lead_table(3000, seed=5).drop(columns=["call_duration"])
    df.loc[df.index[-300:], "converted"] = None  # still open: no outcome yet
    y = df["converted"].eq("yes").to_numpy()
    rng = np.random.default_rng(1)
    df["status"] = np.where(y, "won", rng.choice(["new", "working"], len(df)))
    df["partner"] = np.where(rng.random(len(df)) < np.where(y, 0.6, 0.05), "yes", "no")
    result = train_table(df, "converted", id_column="lead_id", budget_s=0, accept=("partner",))
    flags = _by_column(result.audit)
    assert (flags["status"]["value"], flags["status"]["check"], flags["status"]["accepted"]) == \
        ("won", "outcome value", False)
    assert re.match(r"[\d,]+ of [\d,]+ rows converted; other values 0 of ", flags["status"]["evidence"])
    assert (flags["partner"]["value"], flags["partner"]["accepted"]) == ("yes", True)
    assert "of open rows" in flags["partner"]["evidence"]
    assert not any("partner" in w for w in result.warnings)
    assert result.bundle.metadata["leakage_audit"]["flags"] == result.audit["flags"]
    assert {"age", "segment", "visits"}.isdisjoint(flags)


# ------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def leaky_project(tmp_path_factory):
    """A 3,000-lead world with the issue's two columns, and a project whose ICP reads them."""
    root = tmp_path_factory.mktemp("leaky")
    world = write_world(root / "crm", n_leads=3000, seed=21)
    export = read_export(world)
    won = lead_outcomes(export)[0].won
    rng = np.random.default_rng(0)
    leads = pd.read_parquet(world / "leads.parquet")
    leads["lead_status"] = np.where(won, "converted", rng.choice(["open", "working", "nurture"], len(leads)))
    leads["partner_flag"] = np.where(rng.random(len(leads)) < np.where(won, 0.6, 0.05), "yes", "no")
    leads.to_parquet(world / "leads.parquet")
    assert main(["init", str(root / "proj")]) == 0
    icp = root / "proj" / "features" / "icp.yaml"
    icp.write_text(icp.read_text() + "".join(
        f"  - name: {c}\n    table: leads\n    column: {c}\n    display: {c}\n    kind: value\n"
        for c in ("lead_status", "partner_flag")))
    return world, root / "proj"


def test_cli_train_prints_the_audit_under_the_metrics(leaky_project, tmp_path, capsys):
    world, proj = leaky_project
    assert main(["train", "--data", str(world), "--config", str(proj / "training" / "default.yaml"),
                 "--out", str(tmp_path / "m"), "--no-track"]) == 0
    out = capsys.readouterr().out
    assert out.index("top-decile lift") < out.index("leakage audit:") < out.index("model bundle:")
    assert re.search(r"leakage audit: \d+ flag\(s\) to review", out)
    assert re.search(r"  flag: leads\.lead_status = converted: (\d+) of \1 leads closed won", out)
    assert "  flag: leads.partner_flag = yes: " in out
    card = (tmp_path / "m" / "report" / "model_card.md").read_text()
    assert card.count("## Leakage audit") == 1


def test_cli_train_records_accepted_columns(leaky_project, tmp_path, capsys):
    world, proj = leaky_project
    training = proj / "training" / "default.yaml"
    accepting = proj / "training" / "accepting.yaml"
    accepting.write_text(training.read_text().replace("  accept: []", "  accept: [partner_flag]"))
    assert main(["train", "--data", str(world), "--config", str(accepting), "--out", str(tmp_path / "m"),
                 "--no-track"]) == 0
    out = capsys.readouterr().out
    assert "1 accepted (audit.accept)" in out or "accepted (audit.accept)" in out
    assert "  accepted: leads.partner_flag = yes: " in out and "  flag: leads.partner_flag" not in out
    assert "  flag: leads.lead_status = converted" in out


@pytest.mark.slow
def test_promote_shows_the_challengers_flags_and_the_run_tags_them(leaky_project, tmp_path, capsys, monkeypatch):
    import mlflow

    world, proj = leaky_project
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    training = proj / "training" / "default.yaml"
    accepting = proj / "training" / "accepting.yaml"
    accepting.write_text(training.read_text().replace("  accept: []", "  accept: [partner_flag]"))
    assert main(["train", "--data", str(world), "--config", str(accepting), "--out", str(tmp_path / "m"),
                 "--tracking-uri", uri]) == 0
    capsys.readouterr()
    assert main(["promote", "--data", str(world), "--config", str(accepting), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert re.search(r"challenger's leakage audit \(MLflow run \w+\): \d+ flag\(s\) to review; 1 accepted", out)
    assert "  flag: leads.lead_status = converted: " in out and "  accepted: leads.partner_flag = yes: " in out
    assert out.index("leakage audit") < out.index("decision:")
    client = mlflow.MlflowClient(tracking_uri=uri)
    version = client.get_model_version_by_alias("propensity-lead-score", "challenger")
    tags = client.get_run(version.run_id).data.tags
    assert int(tags["leakage_flags"]) >= 2 and tags["leakage_flags_accepted"] == "1"
    assert "leads.lead_status" in tags["leakage_flagged_columns"]
    assert "leads.partner_flag" not in tags["leakage_flagged_columns"]
    assert client.get_model_version(version.name, version.version).tags["leakage_flags"] == tags["leakage_flags"]


# ------------------------------------------------------------------ config


def test_audit_accept_is_read_from_the_training_yaml_and_a_typo_is_named(tmp_path):
    import shutil

    from propensity.config import ConfigError, default_project_dir, load_project

    for sub in ("features", "training"):
        shutil.copytree(default_project_dir() / sub, tmp_path / sub)
    cfg = tmp_path / "training" / "default.yaml"
    assert load_project(cfg).training.audit.accept == []
    text = cfg.read_text()
    cfg.write_text(text.replace("  accept: []", "  accept: [partner_flag, leads.lead_status]"))
    assert load_project(cfg).training.audit.accept == ["partner_flag", "leads.lead_status"]
    cfg.write_text(text.replace("  accept: []", "  acept: [partner_flag]"))
    with pytest.raises(ConfigError) as err:
        load_project(cfg)
    assert str(cfg) in str(err.value) and "audit.acept" in str(err.value)


def test_an_all_missing_column_has_the_auc_of_a_constant_score():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from propensity.modeling.evidence import roc_strength

    y = np.array([0, 1, 0, 0, 1, 0])
    assert roc_strength(np.full(6, np.nan), y) == (roc_auc_score(y, np.zeros(6)), 0.5) == (0.5, 0.5)
    assert roc_strength(np.full(6, np.nan), np.zeros(6)) == (None, None)  # one class: no AUC at all
    auc, strength = roc_strength(np.array([0.1, 0.9, 0.2, np.nan, 0.8, 0.3]), y)
    assert auc == 1.0 and strength == 1.0  # missing placed where it gives the larger strength
