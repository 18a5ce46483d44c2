"""The ``propensity`` command reports a crash below Python in one line instead of dying silently."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity.cli.app import COMMAND_ENVIRONMENT, FEATURES_ENVIRONMENT
from propensity.cli.supervisor import crash_message, run_supervised

# Loaded by the command's child process before anything else: its first lightgbm.train reads address 0,
# a real segmentation fault, as a bug in LightGBM's native code would give.
CRASHING_SITE = '''
import builtins, ctypes, os
if os.environ.get("PROPENSITY_CRASH_LOG"):
    _import = builtins.__import__
    def _hook(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        if name == "lightgbm" and not getattr(module, "_crashes", False):
            module._crashes = True
            module.train = lambda *a, **k: ctypes.string_at(0)
        return module
    builtins.__import__ = _hook
'''


def _command() -> list[str]:
    found = shutil.which("propensity", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the propensity console script is not installed beside this Python")
    return [found]


@pytest.fixture
def table(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(400, 4)), columns=list("abcd"))
    df["y"] = (df["a"] + rng.normal(size=400) > 1).astype(int)
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path


def test_a_native_crash_in_the_command_is_one_line_with_the_step_and_the_stack(table, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CRASHING_SITE)
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    done = subprocess.run([*_command(), "train", "--data", str(table), "--target", "y", "--budget", "0",
                           "--no-track", "--out", str(tmp_path / "m")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 139
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: propensity train crashed (SIGSEGV, a fault in native code) while ")
    log = Path(last.split("the Python stack is in ")[1].split(";")[0])
    assert "Fatal Python error: Segmentation fault" in log.read_text()
    assert not (tmp_path / "m").exists()
    log.unlink()


def test_the_command_passes_exit_codes_and_output_through(table, tmp_path):
    done = subprocess.run([*_command(), "train", "--data", str(table), "--target", "nope", "--no-track",
                           "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "crashed" not in done.stderr


def test_a_child_killed_by_a_signal_is_reported_with_its_name(capsys):
    code = run_supervised(["score"], child=[sys.executable, "-c", "import os, signal; os.kill(os.getpid(), "
                                                                     "signal.SIGABRT)"])
    assert code == 134
    err = capsys.readouterr().err
    assert err.startswith("error: propensity score crashed (SIGABRT, native code aborted); no stack was written")


def test_crash_message_names_the_last_step(tmp_path):
    log = tmp_path / "crash.log"
    log.write_text("step: reading crm\nstep: training LightGBM on 10 rows\nFatal Python error: Aborted\n")
    msg = crash_message("propensity train", 11, log)
    assert "while 'training LightGBM on 10 rows'" in msg and f"the Python stack is in {log}" in msg


@pytest.mark.parametrize(("command", "user_set"), [("features", False), ("features", True), ("generate", False),
                                                   ("--debug features", False)])
def test_the_command_process_sets_its_memory_settings_unless_the_user_did(command, user_set, tmp_path):
    """``python -m propensity.cli`` (the supervisor's child) sets them before NumPy and pyarrow load."""
    argv = {"features": ["features", "--sql", "duckdb"], "generate": ["generate", "--help"],
            "--debug features": ["--debug", "features", "--sql", "duckdb"]}[command]
    report = (f"import atexit, os, runpy, sys; sys.argv = ['propensity', *{argv!r}];"
              "atexit.register(lambda: print('pool', __import__('pyarrow').default_memory_pool().backend_name,"
              " 'numpy', os.environ.get('NUMPY_MADVISE_HUGEPAGE'), file=sys.stderr));"
              "runpy.run_module('propensity.cli', run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "NUMPY_MADVISE_HUGEPAGE")}
    if user_set:
        env |= {"ARROW_DEFAULT_MEMORY_POOL": "system", "NUMPY_MADVISE_HUGEPAGE": "1"}
    proc = subprocess.run([sys.executable, "-c", report], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    settings = FEATURES_ENVIRONMENT if command.endswith("features") else COMMAND_ENVIRONMENT
    want = {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc", "NUMPY_MADVISE_HUGEPAGE": None} | settings
    if user_set:
        want = {"ARROW_DEFAULT_MEMORY_POOL": "system", "NUMPY_MADVISE_HUGEPAGE": "1"}
    assert f"pool {want['ARROW_DEFAULT_MEMORY_POOL']} numpy {want['NUMPY_MADVISE_HUGEPAGE']}" in proc.stderr
