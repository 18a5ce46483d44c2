"""Issue 5: one bad row in a scoring batch costs its lead a note or an error row, never the batch."""

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from propensity import LeadScorer
from propensity.data.export import DataError, read_export

pytestmark = pytest.mark.slow

FUTURE = pd.Timestamp("2999-01-01", tz="UTC")


@pytest.fixture(scope="module")
def scorer(bundle_dir):
    return LeadScorer.load(bundle_dir)


@pytest.fixture(scope="module")
def clean(scorer, world_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scorer.score(world_dir)


@pytest.fixture(scope="module")
def broken(tmp_path_factory, world_dir, clean):
    """The world with one future activity for lead A and a future created_at for lead B (both open leads)."""
    a, b = clean["lead_id"].iloc[0], clean["lead_id"].iloc[1]
    folder = tmp_path_factory.mktemp("broken")
    for f in world_dir.iterdir():
        shutil.copy(f, folder / f.name)
    acts = pd.read_parquet(folder / "activities.parquet")
    i = acts.index[acts["lead_id"] == a][0]
    acts.loc[i, ["occurred_at", "recorded_at"]] = FUTURE
    acts.to_parquet(folder / "activities.parquet", index=False)
    leads = pd.read_parquet(folder / "leads.parquet")
    leads.loc[leads["lead_id"] == b, "created_at"] = FUTURE
    leads.to_parquet(folder / "leads.parquet", index=False)
    return folder, a, b


def test_training_still_refuses_the_bad_rows(broken):
    with pytest.raises(DataError, match="future"):
        read_export(broken[0])


def test_bad_rows_give_a_note_and_an_error_row_and_spare_the_rest(scorer, clean, broken):
    folder, a, b = broken
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = scorer.score(folder)
    assert len(out) == len(clean)  # B lost its scored row and gained an error row
    err = out[out["tier"] == "error"]
    assert err["lead_id"].tolist() == [b] and err.index[0] == len(out) - 1
    assert np.isnan(err["probability"].iloc[0]) and pd.isna(err["score"].iloc[0])
    assert "created_at" in err["notes"].iloc[0] and "future" in err["notes"].iloc[0]
    row_a = out[out["lead_id"] == a].iloc[0]
    assert row_a["notes"].startswith("1 activity dated in the future ignored")
    # the future activity never counted (it is after any cutoff), so A's score is unchanged, as are the others'
    rest = out[out["tier"] != "error"].set_index("lead_id")
    ref = clean.set_index("lead_id").drop(index=b)
    np.testing.assert_allclose(rest.loc[ref.index, "probability"], ref["probability"], rtol=0, atol=1e-12)
    assert (rest.loc[ref.index, "reasons"] == ref["reasons"]).all()
    with pytest.raises(KeyError, match="future"):
        scorer.explain(folder, b)


def test_chunks_equal_one_batch(scorer, broken):
    folder = broken[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = scorer.score(folder)
        chunks = list(scorer.score_chunks(folder, chunk_size=1_000))
    assert all(total == len(whole) for total, _ in chunks)
    pd.testing.assert_frame_equal(pd.concat([c for _, c in chunks], ignore_index=True), whole)


def test_cli_scores_the_batch_and_marks_the_error(broken, bundle_dir, tmp_path):
    folder, a, b = broken
    out = tmp_path / "scores.csv"
    proc = subprocess.run([sys.executable, "-m", "propensity.cli", "score", "--model", str(bundle_dir),
                           "--data", str(folder), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 lead(s) could not be scored" in proc.stdout
    scores_n = len(pd.read_csv(out))
    assert f"scored {scores_n:,} of {scores_n:,} leads" in proc.stderr  # progress without a terminal
    # Warnings print as one line each, without the path and source line of the code that warned.
    set_aside = [line for line in proc.stderr.splitlines() if "lenient read set aside" in line]
    assert len(set_aside) == 1 and set_aside[0].startswith("warning: "), proc.stderr
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr
    scores = pd.read_csv(out)
    assert scores.loc[scores["lead_id"] == b, "tier"].tolist() == ["error"]
    assert scores["score"].notna().sum() == len(scores) - 1


def test_chunks_over_several_feature_blocks_equal_one_batch(scorer, broken, monkeypatch):
    import propensity.scoring.scorer as scorer_module

    monkeypatch.setattr(scorer_module, "FEATURE_BLOCK", 2_500)  # blocks of 2,000 leads, chunks of 1,000 (and 700)
    folder = broken[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = scorer.score(folder)
        for size in (1_000, 700):
            chunks = [c for _, c in scorer.score_chunks(folder, chunk_size=size)]
            block = 2_500 // size * size
            n = len(whole) - 1  # scored leads; the error row rides on the last chunk
            expected = [min(size, min(block, n - b) - s) for b in range(0, n, block)
                        for s in range(0, min(block, n - b), size)]
            assert [len(c) for c in chunks] == [*expected[:-1], expected[-1] + 1] and len(chunks) > 2
            pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
