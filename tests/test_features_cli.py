"""`propensity features`: the feature table alone, for training or as of a date, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from propensity.cli import main
from propensity.config import default_project_dir, load_project
from propensity.data.export import read_export
from propensity.data.synthetic import write_world
from propensity.features.cutoffs import scoring_cutoffs, training_cutoffs
from propensity.features.pipeline import build_features


@pytest.fixture(scope="module")
def crm(tmp_path_factory) -> Path:
    return write_world(tmp_path_factory.mktemp("fcli") / "crm", n_leads=600, seed=5)


@pytest.fixture(scope="module")
def project():
    return load_project(default_project_dir() / "training" / "default.yaml")


def test_without_as_of_it_writes_the_labelled_training_rows(crm, project, tmp_path, capsys):
    out = tmp_path / "train.parquet"
    assert main(["features", "--data", str(crm), "--out", str(out)]) == 0
    got = pd.read_parquet(out)
    export = read_export(crm)
    cfg = project.training
    want = build_features(export, training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days),
                          project.icp, project.engagement)
    assert list(got.columns) == list(want.columns)
    assert got.drop(columns="cutoff").astype(object).fillna(-1).equals(  # same values; None and NaN alike
        want.drop(columns="cutoff").astype(object).fillna(-1))
    assert got["cutoff"].equals(want["cutoff"])
    assert list(got.columns[:3]) == ["lead_id", "cutoff", "label"]
    assert f"{len(want):,} training rows" in capsys.readouterr().out


def test_with_as_of_it_writes_one_row_per_open_lead_at_that_time(crm, project, tmp_path):
    out = tmp_path / "score.csv"
    assert main(["features", "--data", str(crm), "--out", str(out), "--as-of", "2025-06-01"]) == 0
    got = pd.read_csv(out)
    export = read_export(crm)
    want = build_features(export, scoring_cutoffs(export, pd.Timestamp("2025-06-01T00:00:00Z")),
                          project.icp, project.engagement)
    assert "label" not in got.columns
    assert got["lead_id"].tolist() == want["lead_id"].tolist()
    assert (pd.to_datetime(got["cutoff"], utc=True) == pd.Timestamp("2025-06-01T00:00:00Z")).all()
    pd.testing.assert_series_equal(got["eng_web_visit_30d"], want["eng_web_visit_30d"], check_dtype=False)


def test_the_table_gets_the_mode_a_plain_file_would(crm, tmp_path):
    # Written to a temporary file (0o600) and renamed: the result must still be readable as the umask allows.
    from propensity.scoring.bundle_files import current_umask

    old = os.umask(0o027)
    try:
        out = tmp_path / "train.csv"
        assert main(["features", "--data", str(crm), "--out", str(out), "--as-of", "2025-06-01"]) == 0
        assert out.stat().st_mode & 0o777 == 0o640 == 0o666 & ~current_umask()
    finally:
        os.umask(old)


def test_bad_extension_fails_in_one_line_before_reading(tmp_path, capsys):
    code = main(["features", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f.xlsx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "f.xlsx: unsupported output type" in err


def test_a_failure_leaves_the_previous_file_untouched(crm, tmp_path, monkeypatch, capsys):
    out = tmp_path / "f.csv"
    out.write_text("previous\n")

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    assert main(["features", "--data", str(crm), "--out", str(out), "--as-of", "2025-06-01"]) == 2
    assert "disk full" in capsys.readouterr().err
    assert out.read_text() == "previous\n"
    # no temporary file left behind; the (empty) lock file of the output stays, as a lock file does
    assert sorted(p.name for p in tmp_path.iterdir()) == [".f.csv.lock", "f.csv"]


def test_list_prints_the_catalogue_in_column_order_without_data(project, capsys, tmp_path):
    from propensity.features.spec import build_feature_spec

    assert main(["features", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    spec = build_feature_spec(project.icp, project.engagement)
    assert [line.split()[0] for line in lines[1:-1]] == [f.name for f in spec]
    demo = next(line for line in lines if line.startswith("eng_demo_request_30d "))
    assert "engagement" in demo and "Demo requests, last 30 days" in demo and "increasing" in demo
    fit = sum(f.family == "fit" for f in spec)
    assert lines[-1].startswith(f"{len(spec)} features: {fit} fit, {len(spec) - fit} engagement")
    assert main(["features", "--data", str(tmp_path)]) == 2  # without --list, --out is needed
    assert "--data and --out are required" in capsys.readouterr().err
