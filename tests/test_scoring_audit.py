"""Issue 5 audit: capacity tiers (ties, explain), bundle checks and permissions, one-lead bad input, quiet reasons."""

import json
import os
import shutil
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from propensity import LeadScorer
from propensity.config import TierConfig
from propensity.data.export import CrmExport, DataError, read_export
from propensity.features.cutoffs import scoring_cutoffs
from propensity.features.pipeline import build_features
from propensity.scoring.bundle import BundleError, load_bundle, save_bundle
from propensity.scoring.bundle_files import current_umask
from propensity.scoring.calibration import Calibrator

pytestmark = pytest.mark.slow

# Two flat steps: most leads share one of two probabilities, as a coarse isotonic calibration gives
STEPS = Calibrator(method="isotonic", x=[0.0, 0.05, 0.0500001, 1.0], y=[0.30, 0.30, 0.60, 0.60])


@pytest.fixture(scope="module")
def export(world_dir):
    return read_export(world_dir)


@pytest.fixture(scope="module")
def scorer(bundle_dir):
    return LeadScorer.load(bundle_dir)


def _capacity_scorer(trained, n, calibrator=None, sql=0.999999):
    tiers = TierConfig(mql=0.01, sql=sql, capacity={"leads_per_week": n})
    bundle = replace(trained.bundle, tiers=tiers)
    if calibrator is not None:
        bundle = replace(bundle, calibrator=calibrator)
    return LeadScorer(bundle)


def _raw_scores(scorer, export):
    b = scorer.bundle
    frame = build_features(export, scoring_cutoffs(export), b.icp, b.engagement)
    return b.booster.predict(scorer.encoder.encode(frame)[0], raw_score=True)


# ------------------------------------------------------------------ capacity tiers


def test_capacity_ties_give_exactly_n_sql_leads_ranked_by_raw_score(trained, export):
    s = _capacity_scorer(trained, 100, STEPS)
    whole = s.score(export)
    p = whole["probability"].to_numpy()
    desc = np.sort(p)[::-1]
    assert desc[99] == desc[100] and (p == desc[99]).sum() > 100  # the policy's cut falls inside a tie
    sql = whole["tier"].eq("SQL").to_numpy()
    assert sql.sum() == 100
    raw = _raw_scores(s, export)
    # the rule: probability, then raw model score, then input order
    order = np.lexsort((np.arange(len(p)), -raw, -p))
    assert set(np.flatnonzero(sql)) == set(order[:100].tolist())
    assert p[sql].min() >= p[~sql].max() and raw[sql].min() >= raw[~sql & (p == p[sql].min())].max()
    summary = s.tier_summary(whole)
    assert summary["sql_leads"] == 100
    assert summary["sql_threshold"] == pytest.approx(p[sql].min())
    assert summary["expected_conversions"] == pytest.approx(p[sql].sum())
    parts = [part for _t, part in s.score_chunks(export, chunk_size=1_500)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    # explain agrees with score on the leads either side of the cut, both at the tied probability
    first_out, last_in = whole["lead_id"].iloc[order[100]], whole["lead_id"].iloc[order[99]]
    assert p[order[100]] == p[order[99]]
    assert s.explain(export, last_in).tier == "SQL"
    assert s.explain(export, first_out).tier == "MQL"


def test_capacity_with_more_room_than_leads_makes_every_lead_above_mql_sql(trained, export):
    s = _capacity_scorer(trained, 10**9)
    out = s.score(export)
    assert out["tier"].eq("SQL").to_numpy().tolist() == (out["probability"] >= 0.01).to_numpy().tolist()


def test_explain_shows_the_capacity_tier_that_score_gives(trained, export):
    s = _capacity_scorer(trained, 100, sql=0.999999)  # the sql threshold alone would make nobody SQL
    whole = s.score(export)
    ranked = whole.sort_values("probability", ascending=False, kind="stable")
    assert ranked["tier"].iloc[:100].eq("SQL").all() and ranked["probability"].iloc[0] < 0.999999
    for lead_id in ranked["lead_id"].iloc[[0, 99, 100]]:
        expected = whole.loc[whole["lead_id"] == lead_id, "tier"].iloc[0]
        assert s.explain(export, lead_id).tier == expected
    assert s.explain(export, ranked["lead_id"].iloc[99]).tier == "SQL"


# ------------------------------------------------------------------ the bundle


def test_bundle_whose_features_do_not_match_the_model_is_refused(bundle_dir, tmp_path):
    swapped = shutil.copytree(bundle_dir, tmp_path / "swapped")
    meta = json.loads((swapped / "bundle.json").read_text())
    first, second = meta["features"][0]["name"], meta["features"][1]["name"]
    meta["features"][0], meta["features"][1] = meta["features"][1], meta["features"][0]
    (swapped / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="content_sha256"):  # the edit itself is caught first
        load_bundle(swapped)
    # A bundle saved without digests (an older propensity) still gets the feature check
    for key in ("files", "content_sha256"):
        meta.pop(key)
    (swapped / "bundle.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="no SHA-256 digests"), pytest.raises(BundleError) as err:
        load_bundle(swapped)
    msg = str(err.value)
    assert str(swapped) in msg and "first mismatch at feature 0" in msg and repr(first) in msg and repr(second) in msg

    short = shutil.copytree(bundle_dir, tmp_path / "short")
    meta = json.loads((short / "bundle.json").read_text())
    for key in ("files", "content_sha256"):
        meta.pop(key)
    n = len(meta["features"])
    last = meta["features"].pop()["name"]
    (short / "bundle.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning), pytest.raises(BundleError, match=f"the model has {n} features, the spec {n - 1}") \
            as err:
        load_bundle(short)
    assert str(short) in str(err.value) and repr(last) in str(err.value)
    load_bundle(bundle_dir)  # the untouched bundle still loads


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_saved_bundle_has_the_permissions_of_the_umask(trained, tmp_path, mask):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        path = save_bundle(trained.bundle, tmp_path / "models" / "latest")
        assert current_umask() == mask  # reading it changed nothing
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o777 & ~mask
    files = list(path.iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o666 & ~mask for f in files)
    load_bundle(path)


# ------------------------------------------------------------------ one lead: bad input


def _lead(export, k=0):
    lead_id = export.activities["lead_id"].iloc[k]
    lead = export.leads[export.leads["lead_id"] == lead_id].iloc[0].to_dict()
    acc = export.accounts[export.accounts["account_id"] == lead["account_id"]].iloc[0].to_dict()
    acts = export.activities[export.activities["lead_id"] == lead_id].to_dict("records")
    return lead, acc, acts


def test_future_or_bare_number_created_at_is_a_clear_error(scorer, export):
    lead, acc, acts = _lead(export)
    frames = {"leads": pd.DataFrame([lead]), "accounts": pd.DataFrame([acc])}
    for future in ("2999-01-01T00:00:00Z", pd.Timestamp("2999-01-01", tz="UTC")):
        with pytest.raises(ValueError, match=r"created_at 2999-01-01.* is in the future"):
            scorer.score({"lead": {**lead, "created_at": future}, "account": acc, "activities": acts})
        with pytest.raises(ValueError, match="is in the future"):
            scorer.score({**frames, "leads": frames["leads"].assign(created_at=future)})
    # with an as_of, a lead created later simply cannot be scored yet (as before)
    with pytest.raises(ValueError, match="cannot be scored as of"):
        scorer.score({"lead": {**lead, "created_at": "2999-01-01T00:00:00Z"}, "account": acc},
                     as_of="2998-01-01T00:00:00Z")
    for bare in (1735689600, np.int64(1735689600), 1735689600.0):
        with pytest.raises(ValueError, match="created_at' is a bare number.*ISO-8601.*time zone"):
            scorer.score({"lead": {**lead, "created_at": bare}, "account": acc, "activities": acts})
    with pytest.raises(ValueError, match="bare number"):
        scorer.score({**frames, "leads": frames["leads"].assign(created_at=1735689600)})
    with pytest.raises(DataError, match="bare number"):
        scorer.score({"lead": lead, "account": acc}, as_of=1735689600)
    # an activity whose time is a bare number is unreadable: ignored, with a note
    one = scorer.score({"lead": lead, "account": acc,
                        "activities": [*acts, {"activity_type": "web_visit", "occurred_at": 1735689600}]})
    assert "1 activity with no readable time ignored" in one.notes
    base = scorer.score({"lead": lead, "account": acc, "activities": acts})
    assert one.probability == base.probability


def test_wrong_types_for_a_number_get_one_note_per_field(scorer, export):
    lead, acc, acts = _lead(export)
    none = scorer.score({"lead": lead, "account": {**acc, "employees": None}, "activities": acts})
    for odd in (True, np.bool_(False), "1,200", "lots"):
        one = scorer.score({"lead": lead, "account": {**acc, "employees": odd}, "activities": acts})
        about = [n for n in one.notes if n.startswith("Company size (employees): ")]
        shown = odd.item() if isinstance(odd, np.generic) else odd  # np.False_ reads False
        assert about == [f"Company size (employees): {shown!r} is not a number, treated as unknown"], odd
        assert one.probability == none.probability  # scored as unknown, not as 1 or 0
        assert one.model_dump(exclude={"notes"}) == none.model_dump(exclude={"notes"})
    assert [n for n in none.notes if n.startswith("Company size")] == ["Company size (employees): unknown"]
    frames = {"leads": pd.DataFrame([lead]), "accounts": pd.DataFrame([{**acc, "employees": "1,200"}]),
              "activities": pd.DataFrame(acts)}
    notes = scorer.score(frames)["notes"].iloc[0].split("; ")
    assert [n for n in notes if n.startswith("Company size")] == [
        "Company size (employees): '1,200' is not a number, treated as unknown"]


def test_batch_notes_name_wrong_type_and_infinite_values_as_the_one_lead_path(scorer, export):
    ids = export.leads["lead_id"].iloc[:40].tolist()
    leads = export.leads[export.leads["lead_id"].isin(ids)].reset_index(drop=True)
    accounts = export.accounts[export.accounts["account_id"].isin(leads["account_id"])].reset_index(drop=True)
    accounts = accounts.astype({"employees": object, "annual_revenue": object})
    first, second = (accounts.index[accounts["account_id"] == leads["account_id"].iloc[k]][0] for k in (0, 1))
    accounts.loc[first, "employees"] = "1,200"
    accounts.loc[second, "annual_revenue"] = float("inf")
    acts = export.activities[export.activities["lead_id"].isin(ids)].reset_index(drop=True)
    as_of = export.end()
    with pytest.warns(UserWarning, match=r"accounts\.employees: \d+ of \d+ leads have a value that is not a number"):
        batch = scorer.score({"accounts": accounts, "leads": leads, "activities": acts}, as_of=as_of)
    for k, field in ((0, "Company size (employees): '1,200' is not a number"),
                     (1, "Annual revenue (USD): inf is not a finite number")):
        lead = leads.iloc[k].to_dict()
        row = batch[batch["lead_id"] == lead["lead_id"]].iloc[0]
        one = scorer.score({"lead": lead, "account": accounts[accounts["account_id"] == lead["account_id"]].iloc[0]
                            .to_dict(), "activities": acts[acts["lead_id"] == lead["lead_id"]].to_dict("records")},
                           as_of=as_of)
        about = field.split(": ")[0] + ": "
        assert [n for n in row["notes"].split("; ") if n.startswith(about)] == [f"{field}, treated as unknown"]
        assert [n for n in one.notes if n.startswith(about)] == [f"{field}, treated as unknown"]
        assert row["probability"] == pytest.approx(one.probability, rel=1e-12)


def test_activities_of_unknown_types_get_a_note_as_well_as_the_warning(scorer, export):
    from test_scoring import _reference

    lead, acc, acts = _lead(export)
    last = max(a["occurred_at"] for a in acts)
    odd = [{"activity_type": "foo", "occurred_at": last - pd.Timedelta(days=1)},
           {"activity_type": "foo", "occurred_at": last - pd.Timedelta(days=2)},
           {"activity_type": "bar", "occurred_at": last - pd.Timedelta(days=3)}]
    data = {"lead": lead, "account": acc, "activities": [*acts, *odd]}
    with pytest.warns(UserWarning, match="no engagement signal lists"):
        one = scorer.score(data)
    assert "3 activities of unknown type(s) ['foo', 'bar'] ignored" in one.notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert one == _reference(scorer, data)
        frames = {"leads": pd.DataFrame([lead]), "accounts": pd.DataFrame([acc]),
                  "activities": pd.DataFrame([*acts, *odd])}
        pd.testing.assert_frame_equal(scorer.score(frames), _reference(scorer, frames))
        # as of a time before the odd events: they would not count, so no note
        early = scorer.score(data, as_of=last - pd.Timedelta(days=3))
    assert not any("unknown type" in n for n in early.notes)


def test_batch_notes_count_unknown_activity_types_per_lead_as_the_one_lead_path(scorer, export):
    ids = export.leads["lead_id"].iloc[:60].tolist()
    leads = export.leads[export.leads["lead_id"].isin(ids)].reset_index(drop=True)
    accounts = export.accounts[export.accounts["account_id"].isin(leads["account_id"])].reset_index(drop=True)
    acts = export.activities[export.activities["lead_id"].isin(ids)].reset_index(drop=True)
    odd = acts.groupby("lead_id").head(2).iloc[::3].assign(activity_type="carrier_pigeon")
    acts = pd.concat([acts, odd], ignore_index=True)
    opps = export.opportunities.iloc[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = CrmExport.from_frames({"accounts": accounts, "leads": leads, "activities": acts,
                                       "opportunities": opps})
        batch = scorer.score(small)
    noted = batch["notes"].str.contains("of unknown type")
    assert noted.any() and not noted.all()
    as_of = batch["cutoff"].iloc[0]
    for lead_id, notes in zip(batch["lead_id"], batch["notes"], strict=True):
        lead = leads[leads["lead_id"] == lead_id].iloc[0].to_dict()
        acc = accounts[accounts["account_id"] == lead["account_id"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one = scorer.score({"lead": lead, "account": acc.iloc[0].to_dict() if len(acc) else None,
                                "activities": acts[acts["lead_id"] == lead_id].to_dict("records")}, as_of=as_of)
        assert "; ".join(one.notes) == notes


# ------------------------------------------------------------------ quiet reasons


def test_leads_on_the_average_leads_step_still_get_reasons(trained, export):
    from propensity.scoring.reasons import MIN_LOG_ODDS, probability_points

    b = trained.bundle
    frame = build_features(export, scoring_cutoffs(export), b.icp, b.engagement).head(2_000)
    real = LeadScorer(b)
    contrib = b.booster.predict(real.encoder.encode(frame)[0], pred_contrib=True)
    _p, _pts, lo = probability_points(contrib, b.calibrator, real.groups, with_log_odds=True)
    big = (np.abs(lo) >= MIN_LOG_ODDS).any(axis=1)
    assert big.mean() > 0.9

    flat = Calibrator(method="isotonic", x=[0.0, 1.0], y=[0.2, 0.2])  # every lead on one step: p == p0
    s = LeadScorer(replace(b, calibrator=flat))
    out = s.score_features(frame)
    assert (out["probability"] == 0.2).all()
    assert out["reasons"].ne("").to_numpy().tolist() == big.tolist()
    assert out["reasons"].str.contains(r"\(\+<0\.1 pts").any() and out["reasons"].str.contains(r"\(-<0\.1 pts").any()
    lead = s.explain(export, out["lead_id"].iloc[int(np.argmax(big))])
    assert lead.positive or lead.negative
    assert all(r.points == 0 for r in lead.positive + lead.negative)
    assert all("<0.1 pts" in r.text for r in lead.positive + lead.negative)
    assert lead.fit_score != 50 or lead.engagement_score != 50

    # the real calibration: a lead shows no reason only when no source moves its log-odds by MIN_LOG_ODDS
    empty = real.score_features(frame)["reasons"].eq("").to_numpy()
    assert not (empty & big).any()


def test_explain_table_prints_quiet_points_honestly(scorer, export):
    from propensity.cli.printing import format_explanation
    from propensity.scoring.schemas import ReasonOut

    lead = scoring_cutoffs(export)["lead_id"].iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ls = scorer.explain(export, lead)
    tiny = ReasonOut(source="x", display="Tiny", value="1", points=0.004, family="fit", actionable=False,
                     text="Tiny: 1 (+<0.1 pts)")
    table = format_explanation(ls.model_copy(update={"positive": [tiny], "negative": []}))
    line = next(row for row in table.splitlines() if "Tiny" in row)
    assert "+<0.1" in line and "+0.0" not in line
    assert f"fit (who they are) {ls.fit_score:>3}/100" in table and f"tier {ls.tier}" in table
    assert f"grade {ls.grade}" in table
