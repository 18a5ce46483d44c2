"""The bundle and the scorer: exact SHAP, reasons that add up, clear failures."""

import json
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from propensity import LeadScorer
from propensity.data.export import read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.matrix import to_matrix
from propensity.features.pipeline import build_features
from propensity.scoring.bundle import BundleError, load_bundle, save_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scorer(bundle_dir):
    return LeadScorer.load(bundle_dir)


@pytest.fixture(scope="module")
def rows(scorer, world_dir):
    export = read_export(world_dir)
    cut = scoring_cutoffs(export).head(400)
    return build_features(export, cut, scorer.bundle.icp, scorer.bundle.engagement)


def test_shap_values_equal_tree_explainer(scorer, rows):
    shap = pytest.importorskip("shap")
    b = scorer.bundle
    x = to_matrix(rows, b.spec, b.categories)
    ours = b.booster.predict(x, pred_contrib=True)
    explainer = shap.TreeExplainer(b.booster)
    theirs = np.asarray(explainer.shap_values(x))
    np.testing.assert_allclose(ours[:, :-1], theirs, atol=1e-6)
    np.testing.assert_allclose(ours[:, -1], float(np.ravel(explainer.expected_value)[-1]), atol=1e-6)


def test_reason_points_add_up_to_gap_from_average_lead(scorer, rows):
    from propensity.scoring.reasons import probability_points

    b = scorer.bundle
    contrib = b.booster.predict(to_matrix(rows, b.spec, b.categories), pred_contrib=True)
    p, pts = probability_points(contrib, b.calibrator, scorer.groups)
    p0 = b.calibrator(1 / (1 + np.exp(-contrib[:, -1])))
    np.testing.assert_allclose(pts.sum(axis=1), (p - p0) * 100, atol=1e-9)
    out = scorer.score_features(rows)
    np.testing.assert_allclose(out["probability"], p)


def test_scores_are_probabilities_with_tiers(scorer, world_dir):
    out = scorer.score(world_dir)
    assert out["probability"].between(0, 1).all()
    assert out["score"].between(0, 100).all()
    assert set(out["tier"]) <= {"SQL", "MQL", "nurture"}
    t = scorer.bundle.tiers
    assert (out.loc[out["tier"] == "SQL", "probability"] >= t.sql).all()
    assert out["lead_id"].is_unique
    top = out.sort_values("probability").iloc[-1]
    assert "pts)" in top["reasons"]


def test_bundle_round_trip_gives_identical_scores(trained, rows, tmp_path):
    a = LeadScorer(trained.bundle).score_features(rows)
    b = LeadScorer.load(save_bundle(trained.bundle, tmp_path / "b")).score_features(rows)
    pd.testing.assert_frame_equal(a, b)


def test_threads_give_the_same_results_as_one(scorer, rows):
    expected = scorer.score_features(rows)
    for r in _in_threads(lambda: scorer.score_features(rows)):
        pd.testing.assert_frame_equal(r, expected)


def _in_threads(fn, n: int = 8) -> list:
    """``fn()`` run by ``n`` threads at once; their results."""
    results = [None] * n

    def work(i):
        results[i] = fn()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_one_lead_as_dict_scores_like_the_batch(scorer, world_dir):
    export = read_export(world_dir)
    batch = scorer.score(export)
    lead_id = batch.sort_values("probability").iloc[-1]["lead_id"]
    lead = export.leads[export.leads["lead_id"] == lead_id].iloc[0].to_dict()
    account = export.accounts[export.accounts["account_id"] == lead["account_id"]].iloc[0].to_dict()
    acts = export.activities[export.activities["lead_id"] == lead_id].to_dict("records")
    as_of = batch.loc[batch["lead_id"] == lead_id, "cutoff"].iloc[0]
    one = scorer.score({"lead": lead, "account": account, "activities": acts}, as_of=as_of)
    assert one.lead_id == lead_id
    assert one.probability == pytest.approx(batch.loc[batch["lead_id"] == lead_id, "probability"].iloc[0], abs=1e-12)
    assert one.positive and all(r.points > 0 for r in one.positive)


def test_incompatible_bundle_version_is_refused(bundle_dir, tmp_path):
    copy = shutil.copytree(bundle_dir, tmp_path / "old")
    meta = json.loads((copy / "bundle.json").read_text())
    meta["schema_version"] = 0
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="schema_version 0 is not supported"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="not a propensity model bundle"):
        load_bundle(tmp_path)


def test_failed_save_leaves_previous_bundle_intact(trained, bundle_dir, tmp_path, monkeypatch):
    target = shutil.copytree(bundle_dir, tmp_path / "latest")
    before = (target / "model.txt").read_bytes()

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(type(trained.bundle.booster), "save_model", boom)
    with pytest.raises(OSError):
        save_bundle(trained.bundle, target)
    assert (target / "model.txt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_scoring_data_without_a_model_feature_fails_clearly(scorer, rows):
    with pytest.raises(KeyError, match="lacks 1 feature"):
        scorer.score_features(rows.drop(columns=["fit_industry"]))


def test_unknown_category_at_scoring_is_missing_not_an_error(scorer, rows):
    odd = rows.copy()
    odd["fit_industry_value"] = "underwater_basket_weaving"
    out = scorer.score_features(odd)
    assert out["probability"].notna().all()


def test_chunked_scoring_equals_one_batch(scorer, world_dir):
    whole = scorer.score(world_dir)
    parts = [part for _total, part in scorer.score_chunks(world_dir, chunk_size=1_500)]
    assert len(parts) > 1
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


def test_batch_output_has_fit_engagement_grade_and_notes(scorer, rows):
    out = scorer.score_features(rows)
    assert list(out.columns[:6]) == ["lead_id", "cutoff", "probability", "score", "tier", "reasons"]
    assert out["fit_score"].between(0, 100).all() and out["engagement_score"].between(0, 100).all()
    assert set(out["grade"]) <= set("ABCDE")
    missing = rows["fit_industry"].isna().to_numpy()
    assert out.loc[missing, "notes"].str.contains("Industry: unknown").all()


def test_model_matrix_is_the_same_for_a_few_rows_one_lead_and_a_batch(scorer, rows):
    from propensity.features.matrix import to_matrix

    few = rows.head(20).copy()
    few.loc[0, "fit_industry_value"] = "underwater_basket_weaving"
    few.loc[1, "fit_employees_value"] = np.inf
    small, small_notes = scorer.encoder.encode(few)  # a few rows: read in plain Python
    big, big_notes = scorer.encoder.encode(pd.concat([few] * 3, ignore_index=True))  # a batch: column by column
    np.testing.assert_array_equal(big[:20], small)
    assert big_notes[:20] == small_notes
    for i in range(len(few)):  # one lead's feature values
        one, one_notes = scorer.encoder.encode_values(few.iloc[i].to_dict())
        np.testing.assert_array_equal(one[0], small[i])
        assert one_notes == small_notes[i]
    # the values LightGBM reads from the training transform, the infinite value and its match flag unknown
    clean = few.copy()
    clean.loc[1, ["fit_employees_value", "fit_employees"]] = np.nan
    x = to_matrix(clean, scorer.bundle.spec, scorer.bundle.categories)
    ref = np.column_stack([x[c].cat.codes.replace(-1, np.nan).to_numpy(float) if str(x[c].dtype) == "category"
                           else x[c].to_numpy(float) for c in x.columns])
    np.testing.assert_array_equal(small, ref)
    assert "Industry: 'underwater_basket_weaving' not seen in training, treated as unknown" in small_notes[0]
    assert "Company size (employees): not a finite number, treated as unknown" in small_notes[1]


def _one_lead(export, lead_id):
    lead = export.leads[export.leads["lead_id"] == lead_id].reset_index(drop=True)
    acc = export.accounts[export.accounts["account_id"] == lead["account_id"].iloc[0]].reset_index(drop=True)
    acts = export.activities[export.activities["lead_id"] == lead_id].reset_index(drop=True)
    return lead, acc, acts


def test_one_lead_as_one_row_frames_scores_like_the_batch(scorer, world_dir):
    export = read_export(world_dir)
    batch = scorer.score(export)
    for lead_id in batch.sort_values("probability")["lead_id"].iloc[[-1, 0, len(batch) // 2]]:
        lead, acc, acts = _one_lead(export, lead_id)
        as_of = batch.loc[batch["lead_id"] == lead_id, "cutoff"].iloc[0]
        one = scorer.score({"leads": lead, "accounts": acc, "activities": acts}, as_of=as_of)
        expect = batch[batch["lead_id"] == lead_id].reset_index(drop=True)
        cols = ["lead_id", "probability", "score", "tier", "reasons", "fit_score", "engagement_score", "grade"]
        pd.testing.assert_frame_equal(one[cols], expect[cols], check_dtype=False)


def test_bad_input_gets_a_score_with_notes_or_a_clear_error(scorer, world_dir):
    export = read_export(world_dir)
    lead_id = export.activities["lead_id"].iloc[0]
    lead, acc, acts = _one_lead(export, lead_id)
    lead_d = lead.iloc[0].to_dict()
    lead_d.pop("seniority", None)  # missing field
    lead_d["favourite_colour"] = "teal"  # extra field
    acc_d = acc.iloc[0].to_dict()
    acc_d.update(employees="lots", annual_revenue=float("inf"), industry="underwater_basket_weaving")
    events = acts.to_dict("records")
    events += [{"activity_type": "web_visit", "occurred_at": "2999-01-01T00:00:00Z"},  # in the future
               {"activity_type": "web_visit", "occurred_at": "not a date"},
               {"activity_type": None, "occurred_at": "2025-01-01T00:00:00Z"}]
    one = scorer.score({"lead": lead_d, "account": acc_d, "activities": events})
    assert 0 <= one.probability <= 1
    notes = " | ".join(one.notes)
    for expected in ("Seniority: unknown", "'lots' is not a number", "Annual revenue (USD): inf is not a finite number",
                     "'underwater_basket_weaving' not seen in training", "1 activity dated in the future ignored",
                     "1 activity with no readable time ignored", "1 activity with no type ignored"):
        assert expected in notes
    with pytest.raises(ValueError, match="created_at"):
        scorer.score({"lead": {**lead_d, "created_at": "yesterday-ish"}, "account": acc_d, "activities": []})
    with pytest.raises(ValueError, match="lead_id"):
        scorer.score({"lead": {"created_at": "2025-01-01"}})


def test_capacity_policy_makes_the_most_probable_leads_sql(trained, world_dir):
    from dataclasses import replace

    from propensity.config import TierConfig

    tiers = TierConfig(mql=0.01, sql=0.5, capacity={"leads_per_week": 25})
    scorer = LeadScorer(replace(trained.bundle, tiers=tiers))
    whole = scorer.score(world_dir)
    sql = whole[whole["tier"] == "SQL"]
    assert len(sql) >= 25 and sql["probability"].min() >= whole.loc[whole["tier"] != "SQL", "probability"].max()
    summary = scorer.tier_summary(whole)
    assert summary["expected_conversions"] == pytest.approx(sql["probability"].sum())
    parts = [p for _t, p in scorer.score_chunks(world_dir, chunk_size=1_500)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


# ------------------------------------------------------------- the one-lead fast path


def _inputs(export, lead_id):
    """One lead as a service holds it: a dict of one-row frames and a LeadInput-style dict."""
    lead, acc, acts = _one_lead(export, lead_id)
    frames = {"leads": lead, "accounts": acc, "activities": acts}
    as_dict = {"lead": lead.iloc[0].to_dict(), "account": acc.iloc[0].to_dict() if len(acc) else None,
               "activities": acts.to_dict("records")}
    return frames, as_dict


def _reference(scorer, data, as_of=None):
    """The one-lead path without its DataFrame-free shortcut: a one-lead export through build_features."""
    return LeadScorer(scorer.bundle, one_lead_path=False).score(data, as_of=as_of)


def test_one_lead_fast_path_equals_the_batch_for_many_leads(scorer, world_dir):
    from propensity.scoring.leadinput import lead_rows

    export = read_export(world_dir)
    b = scorer.bundle
    assert scorer.one_lead is not None
    batch = scorer.score(export)
    frame = build_features(export, scoring_cutoffs(export), b.icp, b.engagement)
    assert frame["lead_id"].tolist() == batch["lead_id"].tolist()
    contrib = b.booster.predict(scorer.encoder.encode(frame)[0], pred_contrib=True)
    as_of = batch["cutoff"].iloc[0]
    picks = batch.sort_values("probability").index.to_numpy()
    picks = np.unique(np.r_[picks[:10], picks[-10:], np.random.default_rng(0).choice(len(batch), 130, replace=False)])
    for i in picks:
        lead_id = batch["lead_id"].iloc[i]
        frames, as_dict = _inputs(export, lead_id)
        expect = batch.iloc[[i]].reset_index(drop=True)
        pd.testing.assert_frame_equal(scorer.score(frames, as_of=as_of), expect, check_exact=False, rtol=0,
                                      atol=1e-12)
        one = scorer.score(as_dict, as_of=as_of)
        assert one.probability == pytest.approx(expect["probability"].iloc[0], abs=1e-12, rel=0)
        assert " | ".join(r.text for r in one.positive + one.negative) == expect["reasons"].iloc[0]
        assert (one.score, one.tier, one.fit_score, one.engagement_score, one.grade) == tuple(
            expect[["score", "tier", "fit_score", "engagement_score", "grade"]].iloc[0])
        assert "; ".join(one.notes) == expect["notes"].iloc[0]
        fast = scorer.one_lead.score(lead_rows(as_dict["lead"], as_dict["account"], as_dict["activities"], as_of,
                                               b.icp))
        np.testing.assert_allclose(fast.contrib, contrib[i], rtol=0, atol=1e-9)
    for lead_id in batch["lead_id"].iloc[picks[:15]]:  # the full explanation: ReasonOut objects and all
        _frames, as_dict = _inputs(export, lead_id)
        one, full = scorer.score(as_dict, as_of=as_of), scorer.explain(export, lead_id)
        assert one.probability == pytest.approx(full.probability, abs=1e-12, rel=0)
        assert one.model_dump(exclude={"probability"}) == full.model_dump(exclude={"probability"})


def test_one_lead_fast_path_equals_the_one_lead_export_path(scorer, world_dir):
    export = read_export(world_dir)
    ids = export.leads["lead_id"].sample(40, random_state=1)
    for k, lead_id in enumerate(ids):
        frames, as_dict = _inputs(export, lead_id)
        as_of = None if k % 2 else export.leads.loc[export.leads["lead_id"] == lead_id, "created_at"].iloc[0] + \
            pd.Timedelta(days=30, microseconds=1, nanoseconds=500)
        pd.testing.assert_frame_equal(scorer.score(frames, as_of=as_of), _reference(scorer, frames, as_of))
        assert scorer.score(as_dict, as_of=as_of) == _reference(scorer, as_dict, as_of)


def test_one_lead_fast_path_keeps_the_notes_for_bad_input(scorer, world_dir):
    export = read_export(world_dir)
    lead_id = export.activities["lead_id"].iloc[0]
    frames, as_dict = _inputs(export, lead_id)
    lead_d = {k: v for k, v in as_dict["lead"].items() if k != "seniority"}  # missing field
    lead_d.update(favourite_colour="teal", department=float("nan"), created_at=str(lead_d["created_at"]))
    acc_d = {**as_dict["account"], "employees": "lots", "annual_revenue": float("inf"),
             "industry": " underwater_basket_weaving ", "country": "  "}
    events = as_dict["activities"][:20]
    last = max(e["occurred_at"] for e in events)
    events = events + [
        {"activity_type": "web_visit", "occurred_at": "2999-01-01T00:00:00Z"},  # in the future
        {"activity_type": "web_visit", "occurred_at": "not a date"},
        {"activity_type": None, "occurred_at": "2025-01-01T00:00:00Z"},
        {"activity_type": "  ", "occurred_at": "2025-01-01T00:00:00Z"},
        {"lead_id": "someone else", "activity_type": "web_visit", "occurred_at": last},
        {"activity_type": "carrier_pigeon", "occurred_at": last - pd.Timedelta(days=1)},  # unknown type
        {"activity_type": "pricing_page_visit", "occurred_at": last - pd.Timedelta(days=2),
         "recorded_at": last + pd.Timedelta(days=5)},  # backfilled after the cutoff
        {"activity_type": "demo_request", "occurred_at": (last - pd.Timedelta(days=3)).isoformat(),
         "recorded_at": None},
    ]
    cases = [
        ({"lead": lead_d, "account": acc_d, "activities": events}, None),
        ({"lead": lead_d, "account": acc_d, "activities": events}, last),  # one event exactly at the cutoff
        ({"lead": lead_d, "account": acc_d, "activities": events}, last + pd.Timedelta(days=2)),
        ({"lead": lead_d, "account": None, "activities": events}, None),  # no account row
        ({"lead": {**lead_d, "account_id": None}, "activities": []}, "2025-06-01T00:00:00.0000005Z"),
        ({"lead": {**lead_d, "employees": 5}, "account": {}, "activities": events[:3]}, None),
    ]
    for data, as_of in cases:
        fast, ref = scorer.score(data, as_of=as_of), _reference(scorer, data, as_of)
        assert fast == ref
    notes = " | ".join(scorer.score(cases[0][0]).notes)
    for expected in ("Seniority: unknown", "'lots' is not a number", "Annual revenue (USD): inf is not a finite number",
                     "'underwater_basket_weaving' not seen in training", "Country: unknown",
                     "1 activity dated in the future ignored", "1 activity with no readable time ignored",
                     "2 activities with no type ignored", "1 activity of another lead ignored"):
        assert expected in notes
    assert "Industry: unknown" in " | ".join(scorer.score(cases[3][0]).notes)

    bad_frames = {"leads": frames["leads"].assign(seniority=None, email_domain="  "),
                  "accounts": frames["accounts"].assign(employees=np.inf, industry="underwater_basket_weaving"),
                  "activities": pd.concat([frames["activities"], frames["activities"].tail(2).assign(
                      recorded_at=pd.NaT, activity_type=["carrier_pigeon", None])], ignore_index=True)}
    for as_of in (None, frames["activities"]["occurred_at"].max()):
        pd.testing.assert_frame_equal(scorer.score(bad_frames, as_of=as_of), _reference(scorer, bad_frames, as_of))

    created = as_dict["lead"]["created_at"]
    with pytest.raises(ValueError, match="cannot be scored as of"):  # created after the as-of time
        scorer.score(as_dict, as_of=created)
    empty = scorer.score(frames, as_of=created)
    assert len(empty) == 0 and list(empty.columns) == list(scorer.score(frames).columns)


def test_one_lead_fast_path_is_thread_safe(scorer, world_dir):
    export = read_export(world_dir)
    calls = [_inputs(export, lead_id) for lead_id in export.leads["lead_id"].iloc[:40]]
    expected = [(scorer.score(f), scorer.score(d)) for f, d in calls]
    for r in _in_threads(lambda: [(scorer.score(f), scorer.score(d)) for f, d in calls]):
        for (f, d), (ef, ed) in zip(r, expected, strict=True):
            pd.testing.assert_frame_equal(f, ef)
            assert d == ed
