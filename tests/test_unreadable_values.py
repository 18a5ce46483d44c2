"""Flat tables: a value the trained column kind cannot read is missing for the model, noted on its row and counted.

``"49 yrs"`` in a numeric column used to become missing with no word (and
changed 920 of 1,000 scores of a test table); ``inf`` reached LightGBM as a huge
number. Both are now missing, named in the row's ``notes`` and counted in one
warning per column; training names them in its notes, and evaluation says how many
unlabelled rows it left out.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _tables import lead_table

from propensity.cli import main
from propensity.scoring.bundle import save_bundle
from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import train_table


@pytest.fixture(scope="module")
def trained():
    return train_table(lead_table(), "converted", id_column="lead_id", exclude=("call_duration",), budget_s=2)


@pytest.fixture(scope="module")
def rows():
    return lead_table(1000, seed=1).drop(columns=["converted"])


def _score(scorer: TableScorer, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = scorer.score(df, source="new.csv")
    return out, [str(w.message) for w in caught]


def test_text_in_a_numeric_column_is_missing_noted_and_counted(trained, rows):
    scorer = TableScorer(trained.bundle)
    clean, said = _score(scorer, rows)
    assert not said and (clean["notes"] == "").all()
    text = rows.assign(age=rows["age"].astype(str) + " yrs")
    got, said = _score(scorer, text)
    missing, _ = _score(scorer, rows.assign(age=np.nan))
    np.testing.assert_array_equal(got["probability"], missing["probability"])  # missing: not zero, not a category
    assert (got["probability"] != clean["probability"]).any()
    assert got["notes"].iloc[0] == f"age: '{rows['age'].iloc[0]} yrs' is not a finite number, treated as missing"
    assert got["notes"].str.startswith("age: ").all()
    [w] = said
    assert w.startswith("new.csv: column 'age': 1,000 of 1,000 values are not a finite number, e.g. ")
    assert "(rows [0, 1, 2]); each is treated as missing" in w and "see the notes column" in w


def test_infinite_and_wrong_kind_values_of_every_kind_are_noted(trained, rows):
    scorer = TableScorer(trained.bundle)
    kinds = {c.name: c.kind for c in trained.bundle.schema.columns}
    assert kinds["newsletter"] == "boolean" and kinds["created"] == "date" and kinds["segment"] == "categorical"
    assert "__other__" not in next(c for c in trained.bundle.schema.columns if c.name == "segment").categories
    few = rows.head(6).copy().astype({"visits": float, "newsletter": object, "created": object, "segment": object})
    few.loc[0, "visits"] = np.inf
    few.loc[1, "newsletter"] = "maybe"
    few.loc[2, "created"] = "soon"
    few.loc[3, "segment"] = "government"
    few.loc[4, "age"] = np.nan  # missing is not unreadable
    got, said = _score(scorer, few)
    assert got["notes"].tolist() == [
        "visits: inf is not a finite number, treated as missing",
        "newsletter: 'maybe' is not yes/no, true/false or 1/0, treated as missing",
        "created: 'soon' is not a date, treated as missing",
        "segment: 'government' is not a category seen in training, treated as missing",
        "", ""]
    assert len(said) == 4 and any("column 'visits': 1 of 6 values are not a finite number" in w for w in said)
    as_missing = few.copy()
    as_missing.loc[0, "visits"], as_missing.loc[1, "newsletter"] = np.nan, None
    as_missing.loc[2, "created"], as_missing.loc[3, "segment"] = None, None
    np.testing.assert_array_equal(got["probability"], _score(scorer, as_missing)[0]["probability"])
    with pytest.warns(UserWarning, match="column 'newsletter': 1 of 6 values are not yes/no"):
        np.testing.assert_allclose(scorer.predict(few), got["probability"], rtol=1e-12)


def test_training_notes_count_the_values_it_could_not_read():
    df = lead_table(2000, seed=2)
    df["age"] = df["age"].astype(object)
    df.loc[[5, 50, 500], "age"] = "unknown"  # 3 of 2,000: the column stays numeric
    df.loc[7, "converted"] = None  # the rows named are the file's, before unlabelled rows are left out
    result = train_table(df, "converted", id_column="lead_id", exclude=("call_duration",), budget_s=0)
    [note] = [n for n in result.notes if "column 'age'" in n]
    assert note == ("the table: column 'age': 3 of 1,999 values are not a finite number, e.g. ['unknown'] "
                    "(rows [5, 50, 500]); each is treated as missing (never as a category or zero)")


def test_cli_evaluate_says_how_many_unlabelled_rows_it_left_out(trained, tmp_path, capsys):
    model = save_bundle(trained.bundle, tmp_path / "m")
    holdout = lead_table(600, seed=3)
    holdout.loc[:49, "converted"] = None
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "holdout.csv"),
                 "--out", str(tmp_path / "ev"), "--no-track"]) == 0
    out = capsys.readouterr().out
    said = "50 of 600 rows have no 'converted' value and were left out; the figures are over the other 550"
    assert f"note: {said}" in out and "550 rows" in out
    assert said in (tmp_path / "ev" / "report.md").read_text()


def test_cli_score_writes_the_notes_and_warns(trained, tmp_path, capsys):
    model = save_bundle(trained.bundle, tmp_path / "m")
    data = lead_table(20, seed=4).drop(columns=["converted"]).astype({"age": object})
    data.loc[3, "age"] = "forty"
    data.to_csv(tmp_path / "new.csv", index=False)
    with pytest.warns(UserWarning, match=r"column 'age': 1 of 20 values are not a finite number, e\.g\. \['forty'\] "
                                         r"\(rows \[3\]\)"):
        assert main(["score", "--model", str(model), "--data", str(tmp_path / "new.csv"),
                     "--out", str(tmp_path / "s.csv")]) == 0
    scores = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert list(scores.columns) == ["lead_id", "probability", "score", "reasons", "notes"]
    assert scores["notes"].iloc[3] == "age: 'forty' is not a finite number, treated as missing"
    assert (scores["notes"].drop(index=3) == "").all()
