"""Importing propensity and loading a bundle stays cheap: no MLflow, SHAP or matplotlib."""

import json
import subprocess
import sys

import pytest

HEAVY = ("mlflow", "shap", "matplotlib", "optuna", "duckdb", "sklearn", "numba")


def test_import_has_no_side_effects_or_heavy_modules(tmp_path):
    code = ("import sys, os, json; import propensity; "
            "print(json.dumps({'mods': sorted(m for m in sys.modules if m.split('.')[0] in %r), "
            "'files': os.listdir('.')}))".replace("%r", repr(HEAVY)))
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                    check=True).stdout)
    assert out == {"mods": [], "files": []}


@pytest.mark.slow
def test_loading_and_scoring_a_bundle_does_not_import_mlflow_shap_or_matplotlib(bundle_dir, world_dir):
    code = (f"import sys, json; from propensity import LeadScorer; s = LeadScorer.load({str(bundle_dir)!r}); "
            f"s.score({str(world_dir)!r}); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules}"
            " & {'mlflow', 'shap', 'matplotlib', 'optuna'})))")  # numba is the SHAP tables' kernel: expected
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
