"""Lenient reading for scoring (issue #5): bad rows are set aside per lead, never the whole batch.

Strict mode (the default, for training) refuses such exports with a DataError; lenient
mode removes the bad rows, says per lead what was ignored (``lead_notes``) or why the
lead cannot be scored (``rejected``), and reads everything else exactly as strict mode
reads the export without those rows: frames, and the activity arrays of every read
path (pandas, the Arrow reader, the DuckDB reader).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import propensity.data.activities as activities
from propensity.data.activities import arrays_from_frame
from propensity.data.export import CrmExport, DataError, read_export
from propensity.data.synthetic import generate_world, write_tables

NOW = pd.Timestamp.now(tz="UTC")
FUTURE_LEAD = "2999-01-01T00:00:00Z"
T = pd.Timestamp("2025-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)


# ------------------------------------------------------------------ helpers


def write(folder: Path, tables: dict[str, pd.DataFrame], fmt: str) -> Path:
    return write_tables(folder, tables, fmt)


def quiet(read, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read(*args, **kw)


def assert_same(got: CrmExport, want: CrmExport) -> None:
    """Every table and the activity arrays identical (the arrays as read, and as derived from the frame)."""
    for name in ("accounts", "leads", "activities", "opportunities"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=name)
    a, b = got.activity_arrays(), want.activity_arrays()
    c = arrays_from_frame(got.activities, got.leads["lead_id"])
    for field in ("lead", "occ", "rec", "code"):
        for x, label in ((b, "strict"), (c, "from frame")):
            np.testing.assert_array_equal(getattr(a, field), getattr(x, field), err_msg=f"{field} vs {label}")
            assert getattr(a, field).dtype == getattr(x, field).dtype, field
    assert a.types.tolist() == b.types.tolist() == c.types.tolist()
    assert got.end() == want.end()


def world(n_leads: int, seed: int):
    """A generated world with lead created_at as text (so that one can be unreadable), and its bad twin.

    Returns (bad frames, the same without the bad rows, lead ids A-D): A has one activity in the future,
    B one without occurred_at, C a created_at in the future, D an unreadable created_at; C and D have
    activities, and C an opportunity.
    """
    frames, _ = generate_world(n_leads, seed=seed)
    leads, acts, opps = frames["leads"].copy(), frames["activities"].copy(), frames["opportunities"].copy()
    leads["created_at"] = leads["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object)
    busy = acts["lead_id"].astype(str).value_counts()
    busy = [lead for lead in busy.index if busy[lead] >= 3]
    with_opp = [lead for lead in busy if lead in set(opps["lead_id"])]
    c = with_opp[0]
    a, b, d = [lead for lead in busy if lead != c][:3]
    row_a = int(np.flatnonzero(acts["lead_id"].astype(str) == a)[1])
    row_b = int(np.flatnonzero(acts["lead_id"].astype(str) == b)[0])
    acts.loc[row_a, ["occurred_at", "recorded_at"]] = NOW + 30 * DAY
    acts.loc[row_b, "occurred_at"] = pd.NaT
    leads.loc[leads["lead_id"] == c, "created_at"] = FUTURE_LEAD
    leads.loc[leads["lead_id"] == d, "created_at"] = "not a date"
    bad = {**frames, "leads": leads, "activities": acts, "opportunities": opps}

    gone = acts["lead_id"].astype(str).isin([c, d]).to_numpy().copy()
    gone[[row_a, row_b]] = True
    clean = {**frames,
             "leads": leads[~leads["lead_id"].isin([c, d])].reset_index(drop=True),
             "activities": acts[~gone].reset_index(drop=True),
             "opportunities": opps[~opps["lead_id"].isin([c, d])].reset_index(drop=True)}
    return bad, clean, (a, b, c, d)


def expected_notes(ids):
    a, b, c, d = ids
    notes = {a: ["1 activity dated in the future ignored"], b: ["1 activity without a readable occurred_at ignored"]}
    rejected = {c: f"created_at '{FUTURE_LEAD}' is in the future",
                d: "created_at 'not a date' is not a readable timestamp"}
    return notes, rejected


# ------------------------------------------------------------------ generated world, every input form


@pytest.mark.parametrize("form", ["parquet", "csv", "frames"])
def test_bad_rows_are_set_aside_per_lead_and_the_rest_reads_as_strict(tmp_path, form):
    bad, clean, ids = world(400, seed=3)
    if form == "frames":
        def read(tables, **kw):
            return CrmExport.from_frames(tables, **kw)
    else:
        def read(tables, **kw):
            return read_export(write(tmp_path / f"crm{len(list(tmp_path.iterdir()))}", tables, form), **kw)

    with pytest.raises(DataError):
        quiet(read, bad)
    with pytest.warns(UserWarning, match=r"lenient read set aside 2 leads .* and 2 activities"):
        got = read(bad, lenient=True)
    want = quiet(read, clean)
    notes, rejected = expected_notes(ids)
    assert got.lead_notes == notes
    assert got.rejected == rejected
    assert want.lead_notes == {} and want.rejected == {}
    assert_same(got, want)


@pytest.mark.parametrize("form", ["parquet", "csv", "frames"])
def test_a_clean_export_reads_identically_in_both_modes(tmp_path, form):
    frames, _ = generate_world(300, seed=5)
    if form == "frames":
        strict = quiet(CrmExport.from_frames, frames)
        lenient = quiet(CrmExport.from_frames, frames, lenient=True)
    else:
        folder = write(tmp_path / "crm", frames, form)
        strict, lenient = quiet(read_export, folder), quiet(read_export, folder, lenient=True)
    assert lenient.lead_notes == {} and lenient.rejected == {}
    assert_same(lenient, strict)
    assert lenient.activity_arrays().rec is not lenient.activity_arrays().occ  # recorded_at kept apart


# ------------------------------------------------------------------ the DuckDB reader of large files


def test_large_files_are_screened_on_the_arrays_without_building_the_frame(tmp_path, monkeypatch):
    calls = []
    duckdb_read = activities._read_duckdb

    def spy(*args, **kw):
        out = duckdb_read(*args, **kw)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 1_000)  # instead of writing 2M rows
    monkeypatch.setattr(activities, "_read_duckdb", spy)
    bad, clean, ids = world(1_500, seed=11)
    assert len(bad["activities"]) > 1_000
    with pytest.warns(UserWarning, match="lenient read set aside"):
        got = read_export(write(tmp_path / "bad", bad, "parquet"), lenient=True)
    assert calls == [True]  # read by DuckDB, nulls and all
    assert callable(got.__dict__["_activities"])  # the DataFrame was not built to screen the rows
    arrays = got.activity_arrays()
    want = quiet(read_export, write(tmp_path / "clean", clean, "parquet"))
    assert calls == [True, True]
    notes, rejected = expected_notes(ids)
    assert (got.lead_notes, got.rejected) == (notes, rejected)
    assert callable(got.__dict__["_activities"])
    for field in ("lead", "occ", "rec", "code"):
        np.testing.assert_array_equal(getattr(arrays, field), getattr(want.activity_arrays(), field), err_msg=field)
    assert_same(got, want)  # builds the frame: the dropped rows are left out of it too


def test_many_problems_in_a_large_file_are_counted_per_lead(tmp_path, monkeypatch):
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 1_000)
    frames, _ = generate_world(1_500, seed=2)
    acts = frames["activities"].copy()
    rng = np.random.default_rng(0)
    late = rng.choice(len(acts), 40, replace=False)
    acts.loc[late[:20], "recorded_at"] = NOW + 5 * DAY  # known only in the future
    acts.loc[late[20:], "occurred_at"] = pd.NaT
    frames["activities"] = acts
    with pytest.warns(UserWarning, match="0 leads and 40 activities"):
        got = read_export(write(tmp_path / "crm", frames, "parquet"), lenient=True)
    lead_ids = acts["lead_id"].astype(str).to_numpy()
    want: dict[str, list[str]] = {}
    for rows, text in ((late[20:], "without a readable occurred_at"), (late[:20], "dated in the future")):
        for lead, k in pd.Series(lead_ids[rows]).value_counts().sort_index().items():
            want.setdefault(lead, []).append(f"{k} {'activity' if k == 1 else 'activities'} {text} ignored")
    assert got.lead_notes == want
    assert len(got.activity_arrays()) == len(acts) - 40
    assert got.rejected == {}


# ------------------------------------------------------------------ small cases


def frames(**override: pd.DataFrame) -> dict[str, pd.DataFrame]:
    base = {
        "accounts": pd.DataFrame({"account_id": ["A1", "A2"], "industry": ["software", "retail"]}),
        "leads": pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "account_id": ["A1", "A2", "A2"],
                               "created_at": [T - 10 * DAY, T - 5 * DAY, T - 5 * DAY]}),
        "activities": pd.DataFrame({"lead_id": ["L1", "L2", "L1", "L3"], "activity_type": ["web_visit"] * 4,
                                    "occurred_at": [T - 9 * DAY, T - 4 * DAY, T - DAY, T - DAY]}),
        "opportunities": pd.DataFrame({"opportunity_id": ["O1"], "lead_id": ["L1"], "created_at": [T - DAY],
                                       "closed_at": [T], "stage": ["closed_won"]}),
    }
    base.update(override)
    return base


def test_unreadable_and_empty_created_at_and_unreadable_activity_times_in_csv(tmp_path):
    leads = frames()["leads"].astype({"created_at": object})
    leads["created_at"] = ["2025-02-19T00:00:00Z", "", "31/31/2025 25:00Z"]
    acts = frames()["activities"].astype({"occurred_at": object})
    acts["occurred_at"] = ["2025-02-20T00:00:00Z", "yesterday", "2025-02-28T00:00:00Z", "2025-02-28T00:00:00Z"]
    acts["recorded_at"] = ["2025-02-20T00:00:00Z", "", "soon", "2025-02-28T00:00:00Z"]
    folder = write(tmp_path / "crm", frames(leads=leads, activities=acts), "csv")
    with pytest.raises(DataError):
        quiet(read_export, folder)
    with pytest.warns(UserWarning, match="set aside 2 leads"):
        got = read_export(folder, lenient=True)
    assert got.rejected == {"L2": "created_at is empty",
                            "L3": "created_at '31/31/2025 25:00Z' is not a readable timestamp"}
    assert got.lead_notes == {"L1": ["1 activity without a readable recorded_at ignored"]}
    assert got.leads["lead_id"].tolist() == ["L1"]
    assert got.activities["occurred_at"].tolist() == [pd.Timestamp("2025-02-20T00:00:00Z")]
    assert got.activity_arrays().lead.tolist() == [0]


def test_whole_table_problems_stay_errors_in_lenient_mode():
    naive = frames()["leads"].assign(created_at=["2025-02-01 09:00:00", "2025-02-01T09:00:00Z",
                                                 "2025-02-01T09:00:00Z"])
    with pytest.raises(DataError, match="without a time zone"):
        CrmExport.from_frames(frames(leads=naive), lenient=True)
    dupes = frames()["leads"].assign(lead_id=["L1", "L1", "L3"])
    with pytest.raises(DataError, match="duplicate id"):
        CrmExport.from_frames(frames(leads=dupes), lenient=True)
    with pytest.raises(DataError, match="missing required column"):
        CrmExport.from_frames(frames(activities=frames()["activities"].drop(columns="occurred_at")), lenient=True)
    with pytest.raises(DataError, match="table 'activities' is missing"):
        CrmExport.from_frames({k: v for k, v in frames().items() if k != "activities"}, lenient=True)


def test_future_opportunities_are_dropped_or_their_close_date_emptied():
    # O3's created_at is unreadable: whether L3 had converted is unknown, so L3 is rejected.
    opps = pd.DataFrame({"opportunity_id": ["O1", "O2", "O3"], "lead_id": ["L1", "L2", "L3"],
                         "created_at": [T - DAY, NOW + 10 * DAY, "garbage"],
                         "closed_at": [NOW + 10 * DAY, pd.NaT, pd.NaT], "stage": ["closed_won", "open", "open"]})
    with pytest.raises(DataError):
        CrmExport.from_frames(frames(opportunities=opps))
    with pytest.raises(DataError, match="in the future"):
        CrmExport.from_frames(frames(opportunities=opps.iloc[:2]))
    got = quiet(CrmExport.from_frames, frames(opportunities=opps), lenient=True)
    assert got.rejected == {"L3": "opportunity O3: created_at 'garbage' is not a readable timestamp"}
    assert got.leads["lead_id"].tolist() == ["L1", "L2"]
    assert got.lead_notes == {"L1": ["1 opportunity closed_at unreadable or in the future, ignored"],
                              "L2": ["1 opportunity dated in the future ignored"]}
    assert got.opportunities["opportunity_id"].tolist() == ["O1"]
    assert pd.isna(got.opportunities["closed_at"].iloc[0])
    assert got.end() < NOW


def test_warnings_keep_naming_file_rows_after_rows_are_dropped():
    acts = pd.concat([frames()["activities"],
                      pd.DataFrame({"lead_id": ["ghost"], "activity_type": ["chat"], "occurred_at": [T - DAY]})],
                     ignore_index=True)
    acts.loc[0, "occurred_at"] = pd.NaT
    with pytest.warns(UserWarning) as caught:
        got = CrmExport.from_frames(frames(activities=acts), lenient=True)
    messages = [str(w.message) for w in caught]
    assert any("1 activity name a lead_id not in leads, e.g. ['ghost'] (rows [4])" in m for m in messages), messages
    assert any(m.startswith("<memory>: lenient read set aside 0 leads and 1 activity") for m in messages), messages
    assert got.activity_arrays().lead.tolist() == [1, 0, 2, -1]
    assert got.activity_arrays().types.tolist() == ["web_visit", "chat"]


def test_constructor_and_replace_still_work_and_default_to_no_notes():
    export = CrmExport.from_frames(frames())
    assert (export.lead_notes, export.rejected) == ({}, {})
    built = CrmExport(export.accounts, export.leads, export.activities, export.opportunities)
    assert (built.lead_notes, built.rejected) == ({}, {})
    lenient = quiet(CrmExport.from_frames, frames(leads=frames()["leads"].assign(
        created_at=[T - 10 * DAY, T - 5 * DAY, NOW + 10 * DAY])), lenient=True)
    copy = dataclasses.replace(lenient, leads=lenient.leads.iloc[::-1].reset_index(drop=True))
    assert copy.rejected == lenient.rejected and "L3" in copy.rejected
    assert copy.activity_arrays().lead.tolist() == [1, 0, 1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        lenient.rejected = {}  # type: ignore[misc]


@pytest.mark.parametrize("problem", ["future event", "empty occurred_at", "future created_at",
                                     "unreadable created_at"])
def test_each_problem_alone_is_an_error_in_strict_mode_and_one_note_in_lenient_mode(problem):
    leads = frames()["leads"].astype({"created_at": object})
    acts = frames()["activities"]
    if problem == "future event":
        acts.loc[2, "occurred_at"] = NOW + 3 * DAY
        want = ({"L1": ["1 activity dated in the future ignored"]}, {})
    elif problem == "empty occurred_at":
        acts.loc[2, "occurred_at"] = pd.NaT
        want = ({"L1": ["1 activity without a readable occurred_at ignored"]}, {})
    elif problem == "future created_at":
        leads.loc[1, "created_at"] = FUTURE_LEAD
        want = ({}, {"L2": f"created_at '{FUTURE_LEAD}' is in the future"})
    else:
        leads.loc[1, "created_at"] = "2025-02-30T00:00:00Z"
        want = ({}, {"L2": "created_at '2025-02-30T00:00:00Z' is not a readable timestamp"})
    tables = frames(leads=leads, activities=acts)
    with pytest.raises(DataError):
        CrmExport.from_frames(tables)
    with pytest.warns(UserWarning, match="lenient read set aside"):
        got = CrmExport.from_frames(tables, lenient=True)
    assert (got.lead_notes, got.rejected) == want
    assert len(got.leads) == 3 - len(want[1])
    assert len(got.activity_arrays()) == len(got.activities) == 4 - len(want[0]) - len(want[1])
