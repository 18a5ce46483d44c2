"""Reason assembly: vectorised top-k against a per-row reference, phrasing, grade grid."""

import numpy as np
import pandas as pd
import pytest

from propensity.config import default_project_dir, load_project
from propensity.features.spec import build_feature_spec
from propensity.scoring.reasons import ReasonGroups, assemble, family_scores, grades, select


@pytest.fixture(scope="module")
def groups():
    p = load_project(default_project_dir() / "training" / "default.yaml")
    return ReasonGroups.from_spec(build_feature_spec(p.icp, p.engagement))


def _reference_select(pts, k, min_points):
    """The slow per-row rule: stable sort, biggest first; ties go to the earlier source."""
    out = []
    for row in pts:
        order = np.argsort(-row, kind="stable")
        pos = [j for j in order[:k] if row[j] > min_points]
        neg = [j for j in np.argsort(row, kind="stable")[:k] if row[j] < -min_points]
        out.append((pos, neg))
    return out


def test_vectorised_top_k_equals_per_row_reference():
    rng = np.random.default_rng(0)
    pts = np.round(rng.normal(0, 2, size=(500, 20)), 1)  # rounding makes ties
    pts[:50] = 0.0
    index, _points, shown = select(pts, 3, 0.05)
    for i, (pos, neg) in enumerate(_reference_select(pts, 3, 0.05)):
        assert index[i, :3][shown[i, :3]].tolist() == pos
        assert index[i, 3:][shown[i, 3:]].tolist() == neg


def test_grade_grid():
    fit = np.array([80, 80, 50, 80, 50, 20, 20])
    eng = np.array([80, 50, 50, 20, 20, 50, 20])
    assert grades(fit, eng).tolist() == ["A", "B", "C", "C", "D", "D", "E"]


def test_family_scores_are_sigmoid_of_family_log_odds(groups):
    n_feat = len(groups.fit_features)
    contrib = np.zeros((2, n_feat + 1))
    contrib[0, np.flatnonzero(groups.fit_features)[0]] = np.log(3)  # fit triples the odds
    contrib[1, np.flatnonzero(~groups.fit_features)[0]] = -np.log(3)
    fit, eng = family_scores(contrib, groups)
    assert fit.tolist() == [75, 50] and eng.tolist() == [50, 25]


def _row(groups, **values):
    cols = {f.name: [np.nan] for fs in groups.members.values() for f in fs}
    for f in [f for fs in groups.members.values() for f in fs]:
        if f.name.endswith(("d", "_decay")) and f.family == "engagement":
            cols[f.name] = [0.0]
    cols.update({k: [v] for k, v in values.items()})
    cols["lead_id"] = ["L1"]
    return pd.DataFrame(cols)


def test_reasons_read_like_a_person_and_only_engagement_is_actionable(groups):
    frame = _row(groups, fit_industry=1.0, fit_industry_value="software", fit_employees=0.0,
                 fit_employees_value=12000.0, eng_pricing_page_90d=4.0, eng_pricing_page_days_since=2.0,
                 lead_age_days=10.0, eng_days_since_any=2.0, eng_active_days_90d=3.0)
    pts = np.zeros((1, len(groups.sources)))
    s = groups.sources.index
    pts[0, s("industry")], pts[0, s("pricing_page")] = 5.0, 9.0
    pts[0, s("employees")], pts[0, s("email_click")] = -2.0, -1.0
    table = assemble(groups, frame, pts, 3)
    pos, neg = table.row(0, groups)
    texts = [r.text for r in pos + neg]
    assert texts[0] == ("Pricing page visits: 4 in the last 90 days, latest 2 days ago "
                        "(+9.0 pts; sales can act: follow up while it is fresh)")
    assert texts[1] == "Industry: software (matches ICP) (+5.0 pts)"
    assert texts[2] == "Company size (employees): 12,000 (outside ICP) (-2.0 pts)"
    assert texts[3] == "Email clicks: none in the last 90 days (-1.0 pts; sales can act: re-engage)"
    assert table.joined[0] == " | ".join(texts)
    assert all(not r.actionable and not r.action for r in pos + neg if r.family == "fit")


def test_one_row_reasons_equal_the_batch_assembly(groups):
    from propensity.scoring.reasons import reasons_one

    rng = np.random.default_rng(3)
    n = 400
    names = [f for fs in groups.members.values() for f in fs]
    cols = {}
    for f in names:
        if f.kind == "categorical":
            cols[f.name] = rng.choice(np.array(["software", " mining", None, "x y"], dtype=object), n)
        elif f.family == "fit" and f.name.endswith("_value"):
            cols[f.name] = rng.choice([np.nan, np.inf, 0.0, 199.5, 12_000.0, 2.5e9], n)
        elif f.family == "fit":
            cols[f.name] = rng.choice([np.nan, 0.0, 1.0], n)
        elif f.name == "lead_age_days":
            cols[f.name] = rng.choice([0.2, 0.5, 1.5, 2.5, 400.0], n)
        elif "days" in f.name or f.name.endswith("_since"):
            cols[f.name] = rng.choice([np.nan, 0.0, 0.4, 0.5, 1.49, 1.5, 2.5, 37.2], n)
        else:
            cols[f.name] = rng.choice([0.0, 1.0, 3.0, 0.7], n)
    frame = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], **cols})
    pts = np.round(rng.normal(0, 3, size=(n, len(groups.sources))), 1)  # ties and near-zero points
    pts[rng.random(pts.shape) < 0.3] = 0.04
    table = assemble(groups, frame, pts, 3)
    records = frame.to_dict("records")
    for i in range(n):
        pos, neg, joined = reasons_one(groups, records[i], pts[i], 3)
        assert (pos, neg) == table.row(i, groups)
        assert joined == table.joined[i]


def test_quiet_rows_show_the_log_odds_reasons_identically_in_batch_and_one_row(groups):
    """A row whose points all fall under MIN_POINTS (p on the average lead's calibration step) still has reasons."""
    from propensity.scoring.reasons import MIN_LOG_ODDS, MIN_POINTS, reasons_one

    rng = np.random.default_rng(5)
    n, s = 300, len(groups.sources)
    names = [f for fs in groups.members.values() for f in fs]
    frame = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)],
                          **{f.name: (["software"] * n if f.kind == "categorical" else np.ones(n)) for f in names}})
    lo = np.round(rng.normal(0, 0.3, size=(n, s)), 2)  # ties and sub-threshold log-odds
    lo[rng.random(lo.shape) < 0.3] = 0.0
    scale = rng.choice([0.0, 1e-3, 0.05, 4.0], size=n)  # 0: p == p0; tiny; small; a normal row
    pts = lo * scale[:, None]
    table = assemble(groups, frame, pts, 3, log_odds=lo)
    records = frame.to_dict("records")
    quiet_rows = 0
    for i in range(n):
        pos, neg, joined = reasons_one(groups, records[i], pts[i], 3, log_odds=lo[i])
        assert (pos, neg) == table.row(i, groups)
        assert joined == table.joined[i]
        assert [r.text for r in pos + neg] == (joined.split(" | ") if joined else [])
        quiet = not (np.abs(pts[i]) > MIN_POINTS).any()
        ranked_up = [groups.sources[j] for j in np.argsort(-lo[i], kind="stable")[:3] if lo[i, j] >= MIN_LOG_ODDS]
        ranked_down = [groups.sources[j] for j in np.argsort(lo[i], kind="stable")[:3] if lo[i, j] <= -MIN_LOG_ODDS]
        if quiet:
            quiet_rows += 1
            assert [r.source for r in pos] == ranked_up and [r.source for r in neg] == ranked_down
            for r in pos + neg:
                if f"{r.points:+.1f}" in ("+0.0", "-0.0"):
                    assert ("(+<0.1 pts" if r.up else "(-<0.1 pts") in r.text
        else:  # the usual rule, unchanged: points beyond MIN_POINTS
            assert all(r.points > MIN_POINTS for r in pos) and all(r.points < -MIN_POINTS for r in neg)
    assert 50 < quiet_rows < n
    assert "<0.1 pts" in " ".join(table.joined)


def test_a_criterion_named_like_a_raw_value_column_gets_its_own_value_and_match():
    """``deal_value`` makes ``fit_deal_value`` (the match) and ``fit_deal_value_value`` (the number): not confused."""
    from propensity.scoring.reasons import reasons_one

    p = load_project(default_project_dir() / "training" / "default.yaml")
    renamed = [c.model_copy(update={"name": "deal_value"}) if c.name == "employees" else c for c in p.icp.criteria]
    groups = ReasonGroups.from_spec(build_feature_spec(p.icp.model_copy(update={"criteria": renamed}), p.engagement))
    frame = _row(groups, fit_deal_value=0.0, fit_deal_value_value=12000.0)
    pts = np.zeros((1, len(groups.sources)))
    pts[0, groups.sources.index("deal_value")] = -2.0
    expected = "Company size (employees): 12,000 (outside ICP) (-2.0 pts)"
    assert assemble(groups, frame, pts, 3).joined[0] == expected
    assert reasons_one(groups, frame.to_dict("records")[0], pts[0], 3)[2] == expected
