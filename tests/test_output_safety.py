"""`--out` never deletes what propensity did not write, refuses before any work, and one run at a time writes it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tables import lead_table

import propensity.data.export
import propensity.data.synthetic
import propensity.tabular.files
import propensity.tabular.jobs
from propensity.cli import main
from propensity.core.output import OutputError, check_folder_output, lock_path, staged_folder
from propensity.modeling.evaluate import is_report_folder
from propensity.scoring.bundle import is_bundle_folder, save_bundle
from propensity.tabular.bundle import load_table_bundle


def _folder_with_files(path: Path) -> dict[str, str]:
    path.mkdir(parents=True)
    files = {"notes.txt": "keep me", "data.csv": "a,b\n1,2\n"}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


def _unchanged(path: Path, files: dict[str, str]) -> bool:
    return {p.name: p.read_text() for p in path.iterdir()} == files


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Reading any input, or generating a world, fails the test: a refusal must come before any work."""
    def boom(*_a, **_k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(propensity.data.export, "read_export", boom)
    monkeypatch.setattr(propensity.tabular.files, "read_flat_table", boom)
    monkeypatch.setattr(propensity.tabular.jobs, "read_flat_table", boom)
    monkeypatch.setattr(propensity.data.synthetic, "generate_world", boom)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("table") / "leads.csv"
    lead_table(600, seed=3).to_csv(data, index=False)
    return data


def _train_table(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--target", "converted", "--id", "lead_id", "--budget", "0",
                 "--no-track", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def table_model(table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("table-model") / "m"
    assert _train_table(table, out) == 0
    return out


# ------------------------------------------------------------------ what the issue observed


def test_evaluate_out_dot_keeps_the_working_directory(formula_crm, formula_model, tmp_path, monkeypatch,
                                                      capsys):
    files = _folder_with_files(tmp_path / "cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    code = main(["evaluate", "--model", str(formula_model), "--data", str(formula_crm), "--window", "all",
                 "--out", ".", "--no-track"])
    err = _one_line(capsys)
    assert code == 2 and err.startswith("error: .: is the working directory")
    assert _unchanged(tmp_path / "cwd", files)


def test_train_and_evaluate_refuse_a_folder_of_files_they_did_not_write(formula_crm, formula_model,
                                                                         tmp_path, capsys):
    important = tmp_path / "important"
    files = _folder_with_files(important)
    assert main(["train", "--data", str(formula_crm), "--out", str(important), "--no-track"]) == 2
    err = _one_line(capsys)
    assert str(important) in err and "did not write" in err and "--force" in err
    assert _unchanged(important, files)
    important2 = tmp_path / "important2"
    files2 = _folder_with_files(important2)
    assert main(["evaluate", "--model", str(formula_model), "--data", str(formula_crm), "--window", "all",
                 "--out", str(important2), "--no-track"]) == 2
    assert "did not write" in _one_line(capsys)
    assert _unchanged(important2, files2)


def test_train_does_not_replace_an_existing_file_with_a_bundle(table, tmp_path, capsys):
    scores = tmp_path / "some" / "scores.csv"
    scores.parent.mkdir()
    scores.write_text("lead_id,score\nL1,50\n")
    assert _train_table(table, scores) == 2
    assert "is not a folder propensity wrote" in _one_line(capsys)
    assert scores.read_text() == "lead_id,score\nL1,50\n"


def test_score_does_not_overwrite_its_input(table, table_model, formula_crm, formula_model, tmp_path,
                                            capsys):
    new = tmp_path / "new.csv"
    lead_table(50, seed=4).drop(columns=["converted"]).to_csv(new, index=False)
    before = new.read_bytes()
    assert main(["score", "--model", str(table_model), "--data", str(new), "--out", str(new)]) == 2
    assert "is the input" in _one_line(capsys)
    assert new.read_bytes() == before
    inside = formula_crm / "scores.csv"  # a CRM export folder is an input as a whole
    assert main(["score", "--model", str(formula_model), "--data", str(formula_crm), "--out", str(inside)]) == 2
    assert "inside the input folder" in _one_line(capsys)
    assert not inside.exists()


@pytest.mark.parametrize("out", [".", "..", "HOME", "HOME_PARENT", "INPUT", "INSIDE_INPUT"])
def test_train_refuses_protected_paths_before_any_work_even_with_force(formula_crm, tmp_path, monkeypatch,
                                                                       capsys, no_work, out):
    cwd, home = tmp_path / "a" / "cwd", tmp_path / "users" / "me"
    cwd.mkdir(parents=True)
    home.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    target = {"HOME": str(home), "HOME_PARENT": str(home.parent), "INPUT": str(formula_crm),
              "INSIDE_INPUT": str(formula_crm / "m")}.get(out, out)
    for force in ([], ["--force"]):
        assert main(["train", "--data", str(formula_crm), "--out", target, "--no-track", *force]) == 2
        err = _one_line(capsys)
        assert err.startswith(f"error: {target}: ") and "not even with --force" in err
    assert sorted(p.name for p in cwd.iterdir()) == []


# ------------------------------------------------------------------ the rule, command by command


def test_own_outputs_are_replaced_and_force_replaces_a_foreign_folder(table, table_model, tmp_path, capsys):
    out = tmp_path / "m"
    assert _train_table(table, out) == 0 and _train_table(table, out) == 0  # a bundle it wrote: replaced
    assert is_bundle_folder(out)
    ev = tmp_path / "ev"
    for _ in range(2):  # a report it wrote (it carries a marker): replaced
        assert main(["evaluate", "--model", str(table_model), "--data", str(table), "--out", str(ev),
                     "--no-track"]) == 0
        assert is_report_folder(ev)
    foreign = tmp_path / "foreign"
    _folder_with_files(foreign)
    assert _train_table(table, foreign) == 2
    assert _train_table(table, foreign, "--force") == 0
    names = sorted(p.name for p in foreign.iterdir())  # the model file is the shipped family's
    assert names in (["bundle.json", "model.txt", "report"], ["bundle.json", "model.json", "report"])
    load_table_bundle(foreign)
    capsys.readouterr()


def test_generate_init_and_demo_refuse_the_working_directory(tmp_path, monkeypatch, capsys, no_work):
    cwd = tmp_path / "empty-cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for argv in (["generate", "--out", ".", "--leads", "100"], ["generate", "--out", ".", "--leads", "100", "--force"],
                 ["init", "."], ["demo", "--dir", ".", "--leads", "100"]):
        assert main(argv) == 2, argv
        assert ": is the working directory" in _one_line(capsys)
    assert list(cwd.iterdir()) == []


def test_generate_and_demo_refuse_a_foreign_folder_before_any_work(tmp_path, capsys, no_work):
    foreign = tmp_path / "foreign"
    files = _folder_with_files(foreign)
    assert main(["generate", "--out", str(foreign), "--leads", "100"]) == 2
    assert "did not write" in _one_line(capsys)
    assert main(["demo", "--dir", str(foreign), "--leads", "100"]) == 2
    assert "did not write" in _one_line(capsys)
    crm = tmp_path / "demo" / "crm"  # a demo folder whose crm/ is not a world propensity wrote
    _folder_with_files(crm)
    assert main(["demo", "--dir", str(crm.parent), "--leads", "100"]) == 2
    assert f"{crm}: folder is not empty" in _one_line(capsys)
    assert _unchanged(foreign, files)


def test_generate_force_replaces_a_foreign_folder(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    _folder_with_files(foreign)
    assert main(["generate", "--out", str(foreign), "--leads", "100", "--force"]) == 0
    assert propensity.data.synthetic.is_world_folder(foreign)


def test_features_refuses_a_folder_and_the_input_folder(formula_crm, tmp_path, capsys, no_work):
    folder = tmp_path / "x.csv"
    folder.mkdir()
    assert main(["features", "--data", str(formula_crm), "--out", str(folder)]) == 2
    assert "is a folder" in _one_line(capsys)
    assert main(["features", "--data", str(formula_crm), "--out", str(formula_crm / "f.csv")]) == 2
    assert "inside the input folder" in _one_line(capsys)


def test_save_bundle_does_not_replace_a_foreign_folder(formula_trained, tmp_path):
    files = _folder_with_files(tmp_path / "m")
    with pytest.raises(OutputError, match="did not write"):
        save_bundle(formula_trained.bundle, tmp_path / "m")
    assert _unchanged(tmp_path / "m", files)


def test_a_report_folder_from_before_the_marker_is_still_recognised(tmp_path):
    old = tmp_path / "evaluation"
    old.mkdir()
    for name in ("report.md", "reliability.png", "lift_gains.png", "predictions.csv"):
        (old / name).write_text("x")
    assert is_report_folder(old)
    (old / "mine.txt").write_text("x")
    assert not is_report_folder(old)


def test_an_unwritable_output_is_refused_before_any_work(table, tmp_path, capsys, no_work):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert _train_table(table, a_file / "m") == 2
    assert f"{a_file} is not a folder" in _one_line(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_any_work(table, tmp_path, capsys, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert _train_table(table, ro / "m") == 2
        assert "no permission to write" in _one_line(capsys)
    finally:
        ro.chmod(0o755)


def test_a_failed_evaluation_leaves_the_previous_report_whole(table, table_model, tmp_path, monkeypatch, capsys):
    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", str(table_model), "--data", str(table), "--out", str(ev), "--no-track"]) == 0
    before = {p.name: p.read_bytes() for p in ev.iterdir()}
    other = tmp_path / "other.csv"
    lead_table(300, seed=9).to_csv(other, index=False)

    def boom(*_a, **_k):
        raise OSError("disk full")

    # The report of other data is written, then its predictions fail: nothing of it may reach `ev`.
    monkeypatch.setattr("pandas.DataFrame.to_csv", boom)
    assert main(["evaluate", "--model", str(table_model), "--data", str(other), "--out", str(ev), "--no-track"]) == 2
    assert "disk full" in _one_line(capsys)
    assert {p.name: p.read_bytes() for p in ev.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ev.lock", "ev", "other.csv"]


# ------------------------------------------------------------------ concurrency


def test_a_run_on_a_locked_output_says_so_in_one_line(table, table_model, tmp_path, capsys):
    from filelock import FileLock

    out, scores = tmp_path / "m", tmp_path / "s.csv"
    with FileLock(str(lock_path(out))), FileLock(str(lock_path(scores))):  # another run is writing them
        assert _train_table(table, out) == 2
        err = _one_line(capsys)
        assert f"another propensity run is writing {out} (lock {lock_path(out)} held)" in err
        assert main(["score", "--model", str(table_model), "--data", str(table), "--out", str(scores)]) == 2
        assert "another propensity run is writing" in _one_line(capsys)
    assert not out.exists() and not scores.exists()
    assert _train_table(table, out) == 0  # the lock is free again


def test_two_trainings_into_one_output_never_collide(table, tmp_path):
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "propensity.cli", "train", "--data", str(table), "--target", "converted",
           "--budget", "0", "--no-track", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    for code, err in results:
        assert code in (0, 2), err
        if code == 2:
            assert "another propensity run is writing" in err, err
        assert "No such file" not in err and "Traceback" not in err, err
    assert any(code == 0 for code, _ in results)
    load_table_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]  # no staging left behind


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_left_by_a_killed_run_is_removed_with_a_note(table, tmp_path):
    out = tmp_path / "m"
    dead = _dead_pid()
    stale = [tmp_path / f".m.staging-{dead}-0badf00d", tmp_path / f".m.old-{dead}-0badf00d",
             tmp_path / ".m.report-staging"]  # the last: the fixed name of earlier versions
    for s in stale:
        s.mkdir()
        (s / "model.txt").write_text("half-written")
    live = tmp_path / f".m.staging-{os.getppid()}-0badf00d"  # a process that is still running
    live.mkdir()
    with pytest.warns(UserWarning) as caught:  # the CLI prints each as one "warning: ..." line
        assert _train_table(table, out) == 0
    notes = [str(w.message) for w in caught]
    for s in stale:
        assert not s.exists()
        assert any(n.startswith(f"removed {s}, left behind by an interrupted propensity run") for n in notes), notes
    assert live.exists()
    load_table_bundle(out)


def test_staging_names_are_per_process_and_unique(tmp_path):
    with staged_folder(tmp_path / "m") as a, staged_folder(tmp_path / "m") as b:
        assert a != b
        assert a.name.startswith(f".m.staging-{os.getpid()}-") and b.name.startswith(f".m.staging-{os.getpid()}-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_check_folder_output_names_the_foreign_files(tmp_path):
    _folder_with_files(tmp_path / "x")
    with pytest.raises(OutputError, match=r"x: folder is not empty and holds files propensity did not write "
                                          r"\(data.csv, notes.txt\)"):
        check_folder_output(tmp_path / "x")
    assert check_folder_output(tmp_path / "x", force=True) == tmp_path / "x"


def test_remote_paths_are_told_from_local_ones():
    from propensity.core.output import is_remote

    assert all(is_remote(p) for p in ("dbfs:/mnt/leads", "s3://bucket/leads", "abfss://c@a.dfs.core.windows.net/x",
                                      "hdfs://nn/x", "file:///tmp/x"))
    assert not any(is_remote(p) for p in ("/tmp/x", "scores.parquet", "C:/data/x", "table:crm", "./a:b/c"))


@pytest.mark.parametrize("late_text", [True, False])
def test_a_large_parquet_output_is_written_a_row_group_at_a_time_with_the_same_values(tmp_path, monkeypatch,
                                                                                     late_text):
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from propensity.jobs import outputs

    n = 2500
    df = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(n)],
        "cutoff": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
        "x": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n) / 3),
        "flag": (np.arange(n) % 2).astype("int8"),
        "text": ["web", None, "event"] * 833 + ["web"],
        "late_text": [None] * 2000 + ["web"] * 500,  # no value in the first group: the type comes from the frame
    })
    if not late_text:  # the types come from the first group
        df = df.drop(columns="late_text")
    monkeypatch.setattr(outputs, "ROW_GROUP", 1000)
    outputs.write_table(df, tmp_path / "grouped.parquet")
    df.to_parquet(tmp_path / "whole.parquet", index=False)
    assert pq.ParquetFile(tmp_path / "grouped.parquet").metadata.num_row_groups == 3
    got, want = pd.read_parquet(tmp_path / "grouped.parquet"), pd.read_parquet(tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(got, want)
    assert pq.read_schema(tmp_path / "grouped.parquet").equals(pq.read_schema(tmp_path / "whole.parquet"),
                                                                check_metadata=True)


def test_a_large_parquet_output_keeps_a_dictionary_only_for_columns_whose_values_repeat(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from propensity.jobs import outputs

    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"count": rng.poisson(2, n).astype(float), "decay": rng.random(n),
                       "source": np.array(["web", "event", None], dtype=object)[rng.integers(0, 3, n)]})
    monkeypatch.setattr(outputs, "ROW_GROUP", 1000)
    outputs.write_table(df, tmp_path / "out.parquet")
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    encodings = {meta.schema.column(i).name: meta.row_group(2).column(i).encodings for i in range(3)}
    assert "RLE_DICTIONARY" in encodings["count"] and "RLE_DICTIONARY" in encodings["source"]
    assert "RLE_DICTIONARY" not in encodings["decay"]  # distinct values: written plain, never hashed
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), df, check_dtype=False)


def test_a_parquet_output_whose_writer_thread_fails_leaves_the_old_file_and_no_staging(tmp_path, monkeypatch):
    import pandas as pd
    import pyarrow.parquet as pq

    from propensity.jobs import outputs

    out = tmp_path / "out.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(out)
    before = out.read_bytes()
    real, calls = pq.ParquetWriter.write_table, []

    def full_disk(self, table, *args, **kwargs):
        calls.append(len(table))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk)
    monkeypatch.setattr(outputs, "ROW_GROUP", 100)
    with pytest.raises(OSError, match="No space left"):
        outputs.write_table(pd.DataFrame({"x": range(1000)}, dtype=float), out)
    assert len(calls) == 2  # the third group was not queued after the second failed
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_a_large_parquet_output_with_columns_arrow_cannot_count_keeps_their_values(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from propensity.jobs import outputs

    n = 2500
    df = pd.DataFrame({"stage": pd.Categorical(np.array(["mql", "sql", "won"])[np.arange(n) % 3]),  # dictionary
                       "tags": [[i % 4, i % 5] for i in range(n)],  # a list per row
                       "x": np.arange(n) / 7})
    monkeypatch.setattr(outputs, "ROW_GROUP", 1000)
    outputs.write_table(df, tmp_path / "out.parquet")
    back = pd.read_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(back.drop(columns="tags"), df.drop(columns="tags"))
    assert [list(v) for v in back["tags"]] == df["tags"].tolist()
