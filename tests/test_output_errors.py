"""A command that cannot write its output names the path the user gave, never the hidden temporary file beside it.

Outputs are written to ``.NAME.XXXX`` beside the target and renamed at the end; an
error there used to show that name (``[Errno 21] Is a directory: '/x/.scores.csv.k2j'
-> '/x/scores.csv'``).
"""

from __future__ import annotations

import re

import pytest
from _tables import lead_table

from propensity.cli import main
from propensity.scoring.bundle import save_bundle
from propensity.tabular.train import train_table


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    result = train_table(lead_table(600), "converted", id_column="lead_id", exclude=("call_duration",), budget_s=0)
    return save_bundle(result.bundle, tmp_path_factory.mktemp("table") / "m")


def test_a_table_score_into_a_folder_is_refused_naming_the_users_path(table_model, tmp_path, capsys):
    lead_table(20, seed=4).drop(columns=["converted"]).to_csv(tmp_path / "new.csv", index=False)
    for name in ("taken.csv", "taken.parquet"):
        (tmp_path / name).mkdir()
        assert main(["score", "--model", str(table_model), "--data", str(tmp_path / "new.csv"),
                     "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.strip() == f"error: {tmp_path / name}: is a folder; the output is a file (.csv or .parquet)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "taken.csv", "taken.parquet"]


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_a_failed_write_names_the_users_file_not_the_staging_file(table_model, tmp_path, capsys, monkeypatch, name):
    from propensity.core import output

    lead_table(20, seed=4).drop(columns=["converted"]).to_csv(tmp_path / "new.csv", index=False)

    def refuse(src, dst):  # what the final rename reports when the target became a folder meanwhile
        raise IsADirectoryError(21, "Is a directory", str(src), str(dst))

    monkeypatch.setattr(output.os, "replace", refuse)
    assert main(["score", "--model", str(table_model), "--data", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / name}: cannot write the output (Is a directory)"
    assert not re.search(r"/\.scores\.", err)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["new.csv"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["taken.csv", "taken.parquet"])
def test_a_crm_score_into_a_folder_is_refused_naming_the_users_path(bundle_dir, world_dir, tmp_path, capsys,
                                                                    name):
    (tmp_path / name).mkdir()
    assert main(["score", "--model", str(bundle_dir), "--data", str(world_dir), "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {tmp_path / name}: is a folder; the output is a file (.csv or .parquet)"
    assert [p.name for p in tmp_path.iterdir()] == [name]
