"""Free-text columns in a flat lead table: kept as word features, id-like text still dropped."""

import json
import uuid

import numpy as np
import pandas as pd
import pytest
from _tables import BANK

from propensity.scoring.bundle import save_bundle
from propensity.tabular.bundle import load_table_bundle
from propensity.tabular.inference import MAX_TEXT_TOKENS, infer_schema
from propensity.tabular.matrix import table_matrix
from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import train_table

SENIORITY = {"intern": -2.0, "junior": -1.2, "associate": -0.6, "manager": 0.0, "senior": 0.4,
             "director": 1.0, "head": 1.4, "vp": 2.0}
DEPARTMENTS = ["marketing", "sales", "operations", "growth", "finance", "product", "engineering"]
DISTINCT_NOTE = "id-like or free text (a distinct value on nearly every row)"


def titled_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Leads whose conversion depends mostly on the seniority word in a free-text job title.

    Titles mix a seniority word, one or two department words and one or two filler
    words from a pool too large for any filler to repeat much, so nearly every
    title is distinct (the old rule dropped such a column).
    """
    r = np.random.default_rng(seed)
    filler = [f"{a}{b}" for a in ("zor", "bel", "kin", "tam", "vex", "lum", "dor", "pra", "qui", "sto")
              for b in ("ax", "ex", "ix", "ox", "ux", "an", "en", "in", "on", "un", "ar", "er", "ir", "or", "ur",
                        "al", "el", "il", "ol", "ul", "at", "et", "it", "ot", "ut", "as", "es", "is", "os", "us")]
    levels = list(SENIORITY)
    level = r.choice(levels, n)
    titles = []
    for lv in level:
        words = [lv.upper() if lv == "vp" else lv.title(), "of",
                 *[d.title() for d in r.choice(DEPARTMENTS, r.integers(1, 3), replace=False)],
                 *r.choice(filler, r.integers(1, 3), replace=False)]
        titles.append(" ".join(words))
    titles = pd.Series(titles).mask(r.random(n) < 0.04)  # a few leads without a title
    visits = r.poisson(2, n)
    z = -1.2 + np.array([SENIORITY[v] for v in level]) + 0.15 * visits
    y = r.random(n) < 1 / (1 + np.exp(-z))
    return pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)], "title": titles, "visits": visits,
        "segment": r.choice(["smb", "mid", "ent"], n), "converted": np.where(y, "yes", "no"),
    })


@pytest.fixture(scope="module")
def table():
    return titled_table()


@pytest.fixture(scope="module")
def with_text(table):
    return train_table(table, "converted", id_column="lead_id", budget_s=0, refit_all=False)


@pytest.fixture(scope="module")
def without_text(table):
    return train_table(table, "converted", id_column="lead_id", exclude=("title",), budget_s=0, refit_all=False)


def _title(schema):
    return next(c for c in schema.columns if c.name == "title")


def test_free_text_title_is_kept_as_word_features(table):
    assert table["title"].nunique() >= 0.9 * len(table)  # the old rule dropped it as id-like or free text
    schema = infer_schema(table, "converted", id_column="lead_id")
    title = _title(schema)
    assert title.kind == "text"
    assert set(SENIORITY) <= set(title.tokens) and len(title.tokens) <= MAX_TEXT_TOKENS
    assert "of" not in title.tokens  # a stop word, in every title anyway
    assert "title__has_vp" in schema.features and "title__tokens" in schema.features
    rows = table.head(200)
    x = table_matrix(rows, schema)
    assert x.shape == (200, len(schema.features))
    missing = rows["title"].isna().to_numpy()
    assert 0 < missing.sum() < 30
    has_vp = x[:, schema.features.index("title__has_vp")]
    counts = x[:, schema.features.index("title__tokens")]
    assert np.isnan(has_vp[missing]).all() and np.isnan(counts[missing]).all()
    expected = [float("vp" in t.lower().split()) for t in rows["title"][~missing]]
    assert list(has_vp[~missing]) == expected
    assert (counts[~missing] >= 3).all()


def test_text_features_beat_dropping_the_column(with_text, without_text):
    auc_text = with_text.comparison["models"]["model"]["metrics"]["roc_auc"]
    auc_none = without_text.comparison["models"]["model"]["metrics"]["roc_auc"]
    print(f"test AUC with title words {auc_text:.3f}, title dropped {auc_none:.3f}")
    assert auc_text > auc_none + 0.08
    assert any(n.startswith("title: free text") for n in with_text.notes)


def test_scoring_new_rows_with_unseen_words_and_missing_titles(with_text, tmp_path):
    path = save_bundle(with_text.bundle, tmp_path / "m")
    meta = json.loads((path / "bundle.json").read_text())
    saved = next(c for c in meta["table"]["columns"] if c["name"] == "title")
    assert saved["tokens"] == _title(with_text.bundle.schema).tokens
    rows = titled_table(40, seed=7).drop(columns=["converted"])
    rows.loc[[3, 11], "title"] = None
    rows.loc[5, "title"] = np.nan
    rows.loc[8, "title"] = ""
    rows.loc[20, "title"] = "Chief Vibes Officer of Quantum Synergy"  # no word seen in training
    rows.loc[21, "title"] = "VP"
    shuffled = rows.sample(frac=1, random_state=2).reset_index(drop=True)
    scorer = TableScorer(load_table_bundle(path))
    out = scorer.score(shuffled)
    assert list(out["lead_id"]) == list(shuffled["lead_id"])
    assert out["probability"].between(0, 1).all() and out["probability"].notna().all()
    straight = scorer.score(rows).set_index("lead_id")["probability"]
    pd.testing.assert_series_equal(out.set_index("lead_id")["probability"].loc[straight.index], straight)


def test_a_text_column_gives_one_reason_named_by_the_column(with_text, table):
    bundle = with_text.bundle
    rows = table.drop(columns=["converted"]).head(60)
    out = TableScorer(bundle).score(rows)
    reasons = out["reasons"].str.split(" | ", regex=False)
    assert all(sum(r.startswith("title=") for r in rs) <= 1 for rs in reasons)
    assert not out["reasons"].str.contains("__has_").any()
    assert reasons.map(lambda rs: rs[0].startswith("title=")).mean() > 0.5  # the title carries the signal
    # The title's reason is the sum of the SHAP values of all its word features.
    schema = bundle.schema
    contrib = bundle.booster.predict(table_matrix(rows, schema), pred_contrib=True)[:, :-1]
    cols = [j for j, n in enumerate(schema.features) if n.startswith("title__")]
    for i, rs in enumerate(reasons):
        shown = [r for r in rs if r.startswith("title=")]
        if shown:
            value = float(shown[0].rsplit("(", 1)[1].split(" ")[0])
            assert value == pytest.approx(contrib[i, cols].sum(), abs=0.006)


def test_id_like_text_is_still_dropped_with_the_same_note(table):
    r = np.random.default_rng(1)
    n = len(table)
    df = table.assign(
        external_ref=[str(uuid.UUID(int=int(r.integers(0, 2**62)) << 64 | i)) for i in range(n)],
        work_mail=[f"{f}.{i}@{d}.com" for i, (f, d) in
                       enumerate(zip(r.choice(["ann", "bob", "eve"], n), r.choice(["acme", "initech"], n),
                                     strict=True))],
        code=[f"A{r.integers(10, 99)}-{r.integers(0, 16**3):03X}{i}" for i in range(n)],
        spaced_code=[f"X{r.integers(100, 999)} {r.integers(100, 999)}Q{i}" for i in range(n)],
    )
    schema = infer_schema(df, "converted", id_column="lead_id")
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["title"] == "text"
    for col in ("external_ref", "work_mail", "code", "spaced_code"):  # UUIDs, emails, one-token and random codes
        assert schema.dropped[col] == DISTINCT_NOTE
    named = infer_schema(df.rename(columns={"external_ref": "lead_uuid"}), "converted", id_column="lead_id")
    assert "id-like" in named.dropped["lead_uuid"]


def test_people_names_are_not_read_as_free_text():
    r = np.random.default_rng(2)
    n = 600
    names = [f"{a} {b} {i}" for i, (a, b) in enumerate(zip(r.choice(["Ann", "Bob", "Eve", "Sam"], n),
                                                             r.choice(["Smith", "Jones", "Silva"], n), strict=True))]
    df = pd.DataFrame({"full_name": names, "x": r.normal(size=n), "y": r.integers(0, 2, n)})
    schema = infer_schema(df, "y")
    assert schema.dropped["full_name"] == DISTINCT_NOTE


def test_short_categorical_text_stays_categorical():
    r = np.random.default_rng(3)
    n = 600
    df = pd.DataFrame({"source": r.choice(["Paid Search", "Trade Show", "Web Form"], n), "y": r.integers(0, 2, n)})
    col = infer_schema(df, "y").columns[0]
    assert col.kind == "categorical"


@pytest.mark.slow
@pytest.mark.skipif(not BANK.exists(), reason="../shared/data/bank-marketing is not present")
def test_bank_table_has_no_free_text():
    schema = infer_schema(pd.read_csv(BANK), "output")
    assert not [c.name for c in schema.columns if c.kind == "text"]
    assert schema.dropped == {}
