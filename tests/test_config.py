"""Config validation: a typo fails with the file and the field; defaults stay in sync."""

from pathlib import Path

import pytest

from propensity.config import ConfigError, IcpConfig, default_project_dir, load_project, load_yaml_model

ROOT = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path) -> Path:
    import shutil

    for sub in ("features", "training"):
        shutil.copytree(default_project_dir() / sub, tmp_path / sub)
    return tmp_path


def test_packaged_defaults_load():
    p = load_project(default_project_dir() / "training" / "default.yaml")
    assert p.training.label.horizon_days == 90
    assert {c.name for c in p.icp.criteria} >= {"industry", "employees", "seniority"}
    assert "pricing_page_visit" in p.engagement.activity_types


@pytest.mark.parametrize("rel", ["features/icp.yaml", "features/engagement.yaml", "training/default.yaml"])
def test_repository_copies_equal_packaged_defaults(rel):
    assert (ROOT / rel).read_text() == (default_project_dir() / rel).read_text()


def test_typo_in_training_key_names_file_and_key(tmp_path):
    root = _project(tmp_path)
    cfg = root / "training" / "default.yaml"
    cfg.write_text(cfg.read_text().replace("horizon_days:", "horizon_dayz:"))
    with pytest.raises(ConfigError) as err:
        load_project(cfg)
    msg = str(err.value)
    assert str(cfg) in msg and "label.horizon_dayz" in msg and "horizon_days" in msg
    assert "\n" not in msg


def test_typo_in_icp_criterion_lists_allowed_keys(tmp_path):
    root = _project(tmp_path)
    icp = root / "features" / "icp.yaml"
    icp.write_text(icp.read_text().replace("    kind: range", "    kidn: range", 1))
    with pytest.raises(ConfigError, match=r"icp\.yaml: .*criteria\.1"):
        load_project(root / "training" / "default.yaml")


def test_wrong_value_names_field(tmp_path):
    root = _project(tmp_path)
    cfg = root / "training" / "default.yaml"
    cfg.write_text(cfg.read_text().replace("calibration: auto", "calibration: platt"))
    with pytest.raises(ConfigError, match=r"default\.yaml: calibration: .*isotonic"):
        load_project(cfg)


def test_sql_threshold_below_mql_is_rejected(tmp_path):
    root = _project(tmp_path)
    cfg = root / "training" / "default.yaml"
    cfg.write_text(cfg.read_text().replace("sql: 0.15", "sql: 0.01"))
    with pytest.raises(ConfigError, match="tiers"):
        load_project(cfg)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "icp.yaml"
    bad.write_text("criteria: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_model(bad, IcpConfig)
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml_model(tmp_path / "nope.yaml", IcpConfig)


def test_in_criterion_without_values_is_rejected(tmp_path):
    bad = tmp_path / "icp.yaml"
    bad.write_text("criteria:\n  - {name: x, table: accounts, column: c, display: X, kind: in}\n")
    with pytest.raises(ConfigError, match="values"):
        load_yaml_model(bad, IcpConfig)


def test_class_defaults_are_the_shipped_yaml():
    """A training YAML without a section, or a config built in code, gets what default.yaml ships."""
    from propensity.config import ModelConfig, TierConfig, default_project_dir, load_project

    shipped = load_project(default_project_dir() / "training" / "default.yaml").training
    assert shipped.model == ModelConfig()
    assert (shipped.tiers.mql, shipped.tiers.sql) == (TierConfig().mql, TierConfig().sql)
    assert shipped.calibration == type(shipped).model_fields["calibration"].default
