"""The notebooks run: every code cell executes, in order, in a fresh folder."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_cells_execute(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code cells"
    namespace: dict = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        try:
            exec(compile(source, f"{path.name}[{i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message names the failing cell
            raise AssertionError(f"{path.name}: code cell {i} failed: {type(exc).__name__}: {exc}") from exc
    assert (tmp_path / "walkthrough" / "mlflow.db").exists()
