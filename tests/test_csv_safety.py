"""CSV outputs are safe to open in a spreadsheet: text cells that start like a formula are quoted, numbers and
Parquet are left exactly as they were."""

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _small import EVIL_INDUSTRY, FORMULAS
from _tables import lead_table

from propensity.cli import main
from propensity.core.csvsafe import escape_cell, spreadsheet_safe
from propensity.data.export import read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.pipeline import build_features


def _cells(path: Path) -> list[dict[str, str]]:
    """The CSV's rows as the raw text a spreadsheet receives."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _is_formula(text: str) -> bool:
    return text.startswith(("=", "+", "-", "@", "\t", "\r"))


def _assert_escaped(raw: list[str], originals: list[str]) -> None:
    """Each raw cell is its original value, with a leading quote exactly when the original starts like a formula."""
    assert len(raw) == len(originals)
    for cell, value in zip(raw, originals, strict=True):
        assert cell == ("'" + value if _is_formula(value) else value)
    assert any(_is_formula(v) for v in originals)  # the data did carry formulas


# ------------------------------------------------------------------ the rule


def test_text_cells_that_start_like_a_formula_get_a_quote_and_numbers_do_not():
    assert [escape_cell(v) for v in FORMULAS] == ["'" + v for v in FORMULAS]
    assert escape_cell("plain") == "plain"
    assert escape_cell("a=b") == "a=b"  # only the first character matters
    for number in ("-5", "+3.5", "-1e-3", "-.5"):  # a plain number cannot be a formula
        assert escape_cell(number) == number
    assert escape_cell(-5) == -5 and escape_cell(None) is None
    frame = pd.DataFrame({
        "id": ["=1+1", "ok", None],
        "delta": [-1.5, 2.0, -3.0],  # negative numbers in a numeric column are numbers
        "count": pd.array([-1, 0, 1], dtype="Int64"),
        "segment": pd.Categorical(["@SUM(1)", "smb", "smb"]),
        "=header": ["a", "b", "c"],
    })
    safe = spreadsheet_safe(frame)
    text = safe.to_csv(index=False).splitlines()
    assert text == ["id,delta,count,segment,'=header", "'=1+1,-1.5,-1,'@SUM(1),a", "ok,2.0,0,smb,b", ",-3.0,1,smb,c"]
    assert frame["id"].tolist()[0] == "=1+1"  # the caller's frame is not changed
    clean = pd.DataFrame({"id": ["a", "b"], "x": [-1, 2]})
    assert spreadsheet_safe(clean) is clean


# ------------------------------------------------------------------ score: CRM export


def test_crm_scores_csv_quotes_formula_ids_and_parquet_keeps_them(formula_crm, formula_model, tmp_path):
    out = tmp_path / "scores.csv"
    assert main(["score", "--model", str(formula_model), "--data", str(formula_crm), "--out", str(out)]) == 0
    pq_out = tmp_path / "scores.parquet"
    assert main(["score", "--model", str(formula_model), "--data", str(formula_crm), "--out", str(pq_out)]) == 0
    exact = pd.read_parquet(pq_out)
    rows = _cells(out)
    _assert_escaped([r["lead_id"] for r in rows], exact["lead_id"].tolist())
    assert [float(r["probability"]) for r in rows] == pytest.approx(exact["probability"].tolist(), rel=1e-12)
    assert all(not r["reasons"].startswith("'") for r in rows)  # reasons start with a display name


# ------------------------------------------------------------------ score: flat table


@pytest.fixture(scope="module")
def formula_table(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("formula-table")
    table = lead_table(600, seed=2)
    table["lead_id"] = [f"{FORMULAS[i % len(FORMULAS)]} {v}" if i % 2 == 0 else v
                        for i, v in enumerate(table["lead_id"])]
    table.loc[table.index[::5], "segment"] = "=evil()"
    data = root / "leads.csv"
    table.to_csv(data, index=False)
    assert main(["train", "--data", str(data), "--target", "converted", "--id", "lead_id", "--budget", "0",
                 "--out", str(root / "m"), "--no-track"]) == 0
    return root / "m", table


def test_table_scores_csv_quotes_formula_ids_and_parquet_keeps_them(formula_table, tmp_path):
    model, table = formula_table
    data = tmp_path / "new.parquet"
    table.drop(columns=["converted"]).to_parquet(data)
    out, pq_out = tmp_path / "s.csv", tmp_path / "s.parquet"
    assert main(["score", "--model", str(model), "--data", str(data), "--out", str(out)]) == 0
    assert main(["score", "--model", str(model), "--data", str(data), "--out", str(pq_out)]) == 0
    assert pd.read_parquet(pq_out)["lead_id"].tolist() == table["lead_id"].tolist()
    rows = _cells(out)
    _assert_escaped([r["lead_id"] for r in rows], table["lead_id"].tolist())
    assert np.allclose([float(r["probability"]) for r in rows], pd.read_parquet(pq_out)["probability"])


# ------------------------------------------------------------------ features


def test_features_csv_quotes_raw_crm_values_and_parquet_is_byte_exact(formula_crm, small_project,
                                                                      tmp_path):
    out = tmp_path / "f.csv"
    assert main(["features", "--data", str(formula_crm), "--out", str(out), "--as-of", "2025-06-01"]) == 0
    export = read_export(formula_crm)
    want = build_features(export, scoring_cutoffs(export, pd.Timestamp("2025-06-01T00:00:00Z")),
                          small_project.icp, small_project.engagement)
    rows = _cells(out)
    _assert_escaped([r["lead_id"] for r in rows], want["lead_id"].tolist())
    industry = [r["fit_industry_value"] for r in rows]
    assert "'" + EVIL_INDUSTRY in industry and EVIL_INDUSTRY not in industry
    # Parquet is not escaped: the CLI's file is byte for byte what pandas writes for the same frame.
    pq_out = tmp_path / "f.parquet"
    assert main(["features", "--data", str(formula_crm), "--out", str(pq_out), "--as-of", "2025-06-01"]) == 0
    buf = io.BytesIO()
    want.to_parquet(buf, index=False)
    assert pq_out.read_bytes() == buf.getvalue()
    assert EVIL_INDUSTRY in set(pd.read_parquet(pq_out)["fit_industry_value"].dropna())


# ------------------------------------------------------------------ reports


def test_training_report_test_predictions_quote_formula_ids(formula_trained, small_project, tmp_path):
    from propensity.modeling.report import write_training_report

    write_training_report(formula_trained, small_project, tmp_path / "report")
    rows = _cells(tmp_path / "report" / "test_predictions.csv")
    _assert_escaped([r["lead_id"] for r in rows], formula_trained.test["lead_id"].tolist())


@pytest.mark.slow
def test_crm_evaluation_predictions_quote_formula_ids(formula_crm, formula_model, tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(formula_model), "--data", str(formula_crm), "--window", "all",
                 "--out", str(out), "--no-track"]) == 0
    rows = _cells(out / "predictions.csv")
    ids = [r["lead_id"] for r in rows]
    assert any(c.startswith("'") for c in ids)
    assert not any(_is_formula(c) for c in ids)
