"""The fast paths of training/scoring cutoffs and of the ICP fit features, against plain definitions.

Cutoffs work on integer lead ranks (Arrow matching of opportunity ids, one
vectorised label search); fit features hash text in Arrow, match ``in``
criteria without raw value in Arrow, and gather per row on two threads for
large tables. Each test compares with a loop over the definitions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from propensity.config import CutoffConfig, EngagementConfig, IcpConfig
from propensity.core.ids import id_positions, known_positions, remembered_count
from propensity.data.export import CrmExport
from propensity.features.cutoffs import scoring_cutoffs, snapshot_dates, training_cutoffs
from propensity.features.fit import fit_features
from propensity.features.rules import criterion_value, criterion_values
from propensity.features.spec import build_feature_spec

DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2024-01-01T00:00:00Z")


def export_of(leads: pd.DataFrame, opps: list[tuple], accounts: pd.DataFrame | None = None) -> CrmExport:
    """opps: (lead_id, created_at, closed_at, stage)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # opportunities of unknown leads are part of the cases
        return CrmExport.from_frames({
            "accounts": accounts if accounts is not None else pd.DataFrame({"account_id": ["A"]}),
            "leads": leads,
            "activities": pd.DataFrame({"lead_id": [leads["lead_id"].iloc[0]], "activity_type": ["web_visit"],
                                        "occurred_at": [START + 600 * DAY]}),
            "opportunities": pd.DataFrame([(f"O{i}", *o) for i, o in enumerate(opps)],
                                          columns=["opportunity_id", "lead_id", "created_at", "closed_at", "stage"]),
        })


def expected_rows(export: CrmExport, config: CutoffConfig, horizon_days: int) -> list[tuple]:
    """(lead_id, cutoff, label) by the definitions, sorted by cutoff then lead_id."""
    opps = export.opportunities
    out = []
    for t in snapshot_dates(export, config, horizon_days):
        for lid, created in sorted(zip(export.leads["lead_id"], export.leads["created_at"], strict=True)):
            mine = opps[opps["lead_id"] == lid]
            if not (created < t and created >= t - config.max_lead_age_days * DAY):
                continue
            if (mine["created_at"].dropna() < t).any():
                continue
            won = mine[(mine["stage"] == "closed_won") & mine["closed_at"].notna()]
            label = bool(((won["closed_at"] >= t) & (won["closed_at"] < t + horizon_days * DAY)).any())
            out.append((lid, t, int(label)))
    return out


def random_case(seed: int, n_leads: int, n_opps: int, shuffle: bool) -> CrmExport:
    rng = np.random.default_rng(seed)
    ids = [f"L{i:04d}" for i in range(n_leads)] + ["Lé", "LZ", "La"]  # non-ASCII and mixed case ids
    created = START + pd.to_timedelta(rng.integers(0, 300 * 86_400, len(ids)), unit="s")
    leads = pd.DataFrame({"lead_id": ids, "account_id": "A", "created_at": created})
    if shuffle:
        leads = leads.sample(frac=1.0, random_state=seed)  # not in lead_id order, index not 0..n-1
    opps = []
    for _ in range(n_opps):
        k = rng.integers(0, len(ids))
        lid = ids[k] if rng.random() < 0.9 else f"ghost{k % 5}"
        c = created[k] + rng.integers(0, 150) * DAY + rng.integers(0, 86_400) * pd.Timedelta(seconds=1)
        closed = None if rng.random() < 0.2 else c + rng.integers(0, 40) * DAY
        opps.append((lid, c, closed, rng.choice(["closed_won", "closed_lost", "open"], p=[0.6, 0.2, 0.2])))
    return export_of(leads, opps)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n_leads,n_opps", [(40, 25), (30, 120)])  # opportunities fewer / more than leads
def test_training_cutoffs_match_the_definition(shuffle, n_leads, n_opps):
    export = random_case(n_leads + n_opps, n_leads, n_opps, shuffle)
    config = CutoffConfig(every_days=7, max_lead_age_days=120)
    out = training_cutoffs(export, config, horizon_days=30)
    assert list(zip(out["lead_id"], out["cutoff"], out["label"], strict=True)) == expected_rows(export, config, 30)
    assert out["lead_id"].dtype == export.leads["lead_id"].dtype
    assert str(out["cutoff"].dtype) == "datetime64[us, UTC]" and out["label"].dtype == np.int8
    assert out.index.tolist() == list(range(len(out)))
    assert out["label"].sum() > 0


def test_several_opportunities_unknown_leads_and_label_window_edges():
    leads = pd.DataFrame({"lead_id": ["c", "a", "b", "d"], "account_id": "A",
                          "created_at": [START] * 4})
    config = CutoffConfig(every_days=7, max_lead_age_days=1000)
    probe = export_of(leads, [("a", START + 500 * DAY, START + 500 * DAY, "open")])
    dates = snapshot_dates(probe, config, 30)
    t = dates[-5]
    opps = [
        ("a", t - 3 * DAY, None, "open"),               # a's first opportunity: rows stop after t - 3 days
        ("a", t + 2 * DAY, t + 5 * DAY, "closed_won"),  # a later one still labels a's earlier rows
        ("b", t, t, "closed_won"),                      # created and closed exactly at t: row, label 1
        ("c", t + 10 * DAY, t + 30 * DAY, "closed_won"),  # exactly at t + horizon: not in t's window
        ("nobody", t - 100 * DAY, t, "closed_won"),     # not a lead: labels nothing, stops nothing
        ("d", None, t + DAY, "closed_won"),             # no created_at: does not stop d's rows
    ]
    export = export_of(leads, opps)
    out = training_cutoffs(export, config, horizon_days=30)
    assert list(zip(out["lead_id"], out["cutoff"], out["label"], strict=True)) == expected_rows(export, config, 30)
    rows = {(lid, ts): lab for lid, ts, lab in zip(out["lead_id"], out["cutoff"], out["label"], strict=True)}
    assert rows[("b", t)] == 1 and rows[("c", t)] == 0 and rows[("c", t + 7 * DAY)] == 1
    assert ("a", t) not in rows and rows[("a", t - 7 * DAY)] == 1
    assert rows[("d", t)] == 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_scoring_cutoffs_match_the_definition(shuffle):
    export = random_case(5, 40, 30, shuffle)
    as_of = START + 200 * DAY
    out = scoring_cutoffs(export, as_of=as_of)
    opps = export.opportunities
    stopped = set(opps.loc[opps["created_at"] < as_of, "lead_id"])
    want = sorted(lid for lid, c in zip(export.leads["lead_id"], export.leads["created_at"], strict=True)
                  if c < as_of and lid not in stopped)
    assert out["lead_id"].tolist() == want and out["lead_id"].dtype == export.leads["lead_id"].dtype
    assert (out["cutoff"] == as_of).all() and out.index.tolist() == list(range(len(out)))


@pytest.mark.parametrize("dtype", ["str", object])
def test_id_positions_either_side_smaller(dtype):
    ids = pd.Series(["b", "a", "é", "c", "d"], dtype=dtype)
    few = pd.Series(["é", "x", None, "a", "a"], dtype=dtype)
    np.testing.assert_array_equal(id_positions(few, ids), [2, -1, -1, 1, 1])
    many = pd.Series(["d", "zz", "b", None, "c", "c", "a", "q"], dtype=dtype)
    np.testing.assert_array_equal(id_positions(many, ids), [4, -1, 0, -1, 3, 3, 1, -1])
    np.testing.assert_array_equal(id_positions(pd.Series([1, 2], dtype=object), ids), [-1, -1])  # not text
    assert len(id_positions(few.iloc[:0], ids)) == 0


# ------------------------------------------------------------------ fit features


ICP = IcpConfig.model_validate({"criteria": [
    {"name": "industry", "table": "accounts", "column": "industry", "display": "Industry",
     "kind": "in", "values": ["Software", " healthcare"]},
    {"name": "employees", "table": "accounts", "column": "employees", "display": "Employees",
     "kind": "range", "min": 200, "max": 5000},
    {"name": "country", "table": "accounts", "column": "country", "display": "Country", "kind": "value"},
    {"name": "free_email", "table": "leads", "column": "email_domain", "display": "Free e-mail",
     "kind": "in", "values": ["gmail.com", "straße.de"], "raw": False},
    {"name": "domain", "table": "leads", "column": "email_domain", "display": "Domain", "kind": "value"},
    {"name": "seniority", "table": "leads", "column": "seniority", "display": "Seniority",
     "kind": "in", "values": ["vp"]},
]})
DOMAINS = ["gmail.com", " GMAIL.COM\t", "\x1cgmail.com\x1f", "\u00a0gmail.com", "Gmail.com\u3000", "STRASSE.DE",
           "Straße.de ", "acme.io", "", "  ", None, "\u00a0", "ǅ.com", "İgmail.com", "gmail.com\x00"]
_ENGAGEMENT = EngagementConfig.model_validate({"windows_days": [7], "signals": [
    {"name": "web", "activity_types": ["web_visit"], "display": "Web", "half_life_days": 7}]})
INDUSTRIES = [" Software ", "SOFTWARE", "healthcare", "retail", None, "", " ", "Soft\u00a0ware", "\u2003software"]


def fit_case(seed: int, n_leads: int, text_dtype) -> tuple[CrmExport, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_acc = 12
    accounts = pd.DataFrame({
        "account_id": [f"A{i}" for i in range(n_acc)],
        "industry": pd.Series(rng.choice(np.array(INDUSTRIES, dtype=object), n_acc), dtype=text_dtype),
        "employees": np.where(rng.random(n_acc) < 0.2, np.nan, rng.choice([50, 200, 1000, 5000, 5001], n_acc)),
        "country": pd.Series(rng.choice(np.array(["us", " DE", None, "Fr "], dtype=object), n_acc), dtype=text_dtype),
    })
    acc_of = rng.choice(np.array([f"A{i}" for i in range(n_acc)] + ["A_missing"], dtype=object), n_leads)
    leads = pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n_leads)],
        "account_id": acc_of,  # some accounts are not in the export
        "created_at": START,
        "email_domain": pd.Series(rng.choice(np.array(DOMAINS, dtype=object), n_leads), dtype=text_dtype),
        "seniority": pd.Series(rng.choice(np.array(["VP", " vp ", None, "intern"], dtype=object), n_leads),
                               dtype=text_dtype),
    })
    export = export_of(leads, [], accounts)
    lead_pos = np.sort(rng.choice(n_leads, max(1, n_leads * 3 // 4), replace=False))  # distinct leads in rows
    row_lead = rng.integers(0, len(lead_pos), 3 * n_leads)
    return export, lead_pos, row_lead


def expected_fit(export: CrmExport, icp: IcpConfig, lead_pos: np.ndarray, row_lead: np.ndarray) -> dict:
    """Per row, the one-value definition (``criterion_value``) of each criterion."""
    accounts = {r["account_id"]: r for r in export.accounts.to_dict("records")}
    want: dict[str, list] = {}
    for lead in export.leads.iloc[lead_pos[row_lead]].to_dict("records"):
        for c in icp.criteria:
            source = lead if c.table == "leads" else accounts.get(lead["account_id"], {})
            match, value = criterion_value(c, source.get(c.column))
            if c.kind != "value":
                want.setdefault(f"fit_{c.name}", []).append(match)
            if c.raw:
                want.setdefault(f"fit_{c.name}_value", []).append(value)
    return want


@pytest.mark.parametrize("text_dtype", ["str", object])
@pytest.mark.parametrize("n_leads", [6, 400, 40_000])  # no hashing path / Arrow paths / two threads
def test_fit_features_equal_the_one_value_definition(text_dtype, n_leads):
    export, lead_pos, row_lead = fit_case(n_leads, n_leads, text_dtype)
    spec = build_feature_spec(ICP, _ENGAGEMENT)
    numeric = [f.name for f in spec if f.family == "fit" and f.kind == "numeric"]
    cols = {name: np.full(len(row_lead), -7.0) for name in numeric}
    got = fit_features(export, ICP, lead_pos, row_lead, cols)
    want = expected_fit(export, ICP, lead_pos, row_lead)
    assert sorted(got) == sorted(f.name for f in spec if f.kind == "categorical")
    for name in numeric:
        np.testing.assert_array_equal(cols[name], np.array(want[name], dtype=np.float64), err_msg=name)
    for name, values in got.items():
        assert values.dtype == object and len(values) == len(row_lead)
        assert all(v is None or type(v) is str for v in values), name
        assert values.tolist() == want[name], name
    if n_leads >= 400:  # the cases the test claims are all there
        assert {1.0, 0.0} <= set(cols["fit_free_email"]) and np.isnan(cols["fit_free_email"]).any()
        assert None in got["fit_country_value"] and np.isnan(cols["fit_employees"]).any()


def test_fit_features_on_a_table_without_account_criteria():
    export, lead_pos, row_lead = fit_case(1, 300, "str")
    icp = IcpConfig.model_validate({"criteria": [c.model_dump() for c in ICP.criteria if c.table == "leads"]})
    cols = {"fit_free_email": np.empty(len(row_lead)), "fit_seniority": np.empty(len(row_lead))}
    got = fit_features(export, icp, lead_pos, row_lead, cols)
    want = expected_fit(export, icp, lead_pos, row_lead)
    np.testing.assert_array_equal(cols["fit_free_email"], want["fit_free_email"])
    assert got["fit_domain_value"].tolist() == want["fit_domain_value"]


@pytest.mark.parametrize("criterion", [c for c in ICP.criteria if c.kind != "range"], ids=lambda c: c.name)
def test_arrow_criterion_equals_the_python_one(criterion):
    import pyarrow as pa

    values = DOMAINS + INDUSTRIES + ["VP", " vp\x0b", "\x85vp"]
    got_match, got_value = criterion_values(criterion, pa.array(values, type=pa.string()))
    want_match, want_value = criterion_values(criterion, np.array(values, dtype=object))
    np.testing.assert_array_equal(got_match, want_match)
    if criterion.raw:
        assert got_value.tolist() == want_value.tolist()
    else:
        assert got_value is None


# ------------------------------------------------------------------ positions a cutoff table remembers


@pytest.mark.parametrize("shuffle", [False, True])
def test_cutoff_tables_remember_their_lead_positions_until_the_column_changes(shuffle):
    import gc

    export = random_case(7, 40, 25, shuffle)
    ids = export.leads["lead_id"]
    config = CutoffConfig(every_days=7, max_lead_age_days=120)
    tables = [training_cutoffs(export, config, horizon_days=30), scoring_cutoffs(export)]
    for table in tables:
        col = table["lead_id"]
        known = known_positions(col, ids)
        assert known is not None and not known.flags.writeable
        np.testing.assert_array_equal(known, id_positions(col.astype(object), ids))  # object ids: hashed
        assert id_positions(col, ids) is known
        edited = table.copy()
        edited.loc[0, "lead_id"] = ids.iloc[-1]  # a new Arrow array: not remembered
        assert known_positions(edited["lead_id"], ids) is None
        assert id_positions(edited["lead_id"], ids)[0] == len(ids) - 1
        assert known_positions(col.iloc[1:], ids) is None  # filtered: a new array
        assert known_positions(col, ids.astype(object).astype(ids.dtype)) is None  # other ids, same values
    n = remembered_count()
    del tables, table, col, edited, known
    gc.collect()
    assert remembered_count() == n - 2  # forgotten with their columns


def test_build_features_on_an_edited_cutoff_table_matches_fresh_ids():
    from propensity.features.pipeline import build_features

    export = random_case(8, 40, 25, True)
    icp = IcpConfig(criteria=[])
    engagement = EngagementConfig.model_validate({"windows_days": [30], "signals": [
        {"name": "web", "activity_types": ["web_visit"], "display": "Web", "half_life_days": 7}]})
    table = training_cutoffs(export, CutoffConfig(every_days=7, max_lead_age_days=120), horizon_days=30)
    edited = table.copy()
    edited.loc[0, "lead_id"] = table["lead_id"].iloc[-1]
    for rows in (table, edited, table.iloc[::2].reset_index(drop=True)):
        got = build_features(export, rows, icp, engagement)
        want = build_features(export, rows.assign(lead_id=rows["lead_id"].astype(object)), icp, engagement)
        assert got["lead_id"].tolist() == rows["lead_id"].tolist()
        pd.testing.assert_frame_equal(got, want)
