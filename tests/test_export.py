"""Reading a CRM export: bad input fails (or warns) with the file, the column and a sample."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity.data.export import CrmExport, DataError, read_export
from propensity.data.synthetic import write_world

T = pd.Timestamp("2025-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)


def frames(**override: pd.DataFrame) -> dict[str, pd.DataFrame]:
    base = {
        "accounts": pd.DataFrame({"account_id": ["A1", "A2"], "industry": ["software", "retail"]}),
        "leads": pd.DataFrame({"lead_id": ["L1", "L2"], "account_id": ["A1", "A2"],
                               "created_at": [T - 10 * DAY, T - 5 * DAY]}),
        "activities": pd.DataFrame({"lead_id": ["L1", "L2", "L1"], "activity_type": ["web_visit"] * 3,
                                    "occurred_at": [T - 9 * DAY, T - 4 * DAY, T - DAY]}),
        "opportunities": pd.DataFrame({"opportunity_id": ["O1"], "lead_id": ["L1"], "created_at": [T - DAY],
                                       "closed_at": [T], "stage": ["closed_won"]}),
    }
    base.update(override)
    return base


def write(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_clean_frames_read_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export = CrmExport.from_frames(frames())
    assert str(export.activities["occurred_at"].dtype) == "datetime64[us, UTC]"


# ------------------------------------------------------------------ time zones


def test_timezone_naive_parquet_timestamps_are_an_error_naming_file_and_column(tmp_path):
    leads = frames()["leads"].assign(created_at=lambda d: d["created_at"].dt.tz_localize(None))
    folder = write(tmp_path / "crm", frames(leads=leads))
    with pytest.raises(DataError, match=r"leads\.parquet: column 'created_at': timezone-naive.*2025-02-19.*UTC"):
        read_export(folder)


def test_csv_timestamps_without_an_offset_are_an_error_with_sample_rows(tmp_path):
    acts = frames()["activities"].astype({"occurred_at": object})
    acts.loc[1, "occurred_at"] = "2025-02-25 00:00:00"  # no zone
    acts.loc[[0, 2], "occurred_at"] = ["2025-02-20T00:00:00Z", "2025-02-28T00:00:00+00:00"]
    folder = write(tmp_path / "crm", frames(activities=acts), fmt="csv")
    with pytest.raises(DataError, match=r"activities\.csv: column 'occurred_at': 1 timestamp\(s\) without a "
                                        r"time zone, e.g. \['2025-02-25 00:00:00'\] \(rows \[1\]\)"):
        read_export(folder)


@pytest.mark.parametrize("lenient", [False, True])
def test_a_column_of_epoch_numbers_is_an_error_not_a_guess(tmp_path, lenient):
    # Read as timestamps, 1738368000 would be 1.7 s after 1970: every event silently decades old.
    acts = frames()["activities"].assign(occurred_at=[1740009600, 1740441600, 1740700800])
    folder = write(tmp_path / "crm", frames(activities=acts), fmt="csv")
    with pytest.raises(DataError, match=r"activities\.csv: column 'occurred_at': expected timestamps, got numbers, "
                                        r"e\.g\. \[1740009600, 1740441600, 1740700800\] \(rows \[0, 1, 2\]\).*"
                                        r"none is guessed"):
        read_export(folder, lenient=lenient)


def test_text_that_is_no_timestamp_is_named_with_its_rows(tmp_path):
    acts = frames()["activities"].astype({"occurred_at": object})
    acts["occurred_at"] = ["2025-02-20T00:00:00Z", "yesterday", "2025-13-45T00:00:00Z"]
    folder = write(tmp_path / "crm", frames(activities=acts), fmt="csv")
    with pytest.raises(DataError, match=r"activities\.csv: column 'occurred_at': 2 value\(s\) that are not "
                                        r"timestamps, e\.g\. \['yesterday', '2025-13-45T00:00:00Z'\] "
                                        r"\(rows \[1, 2\]\)"):
        read_export(folder)
    mixed = frames()["activities"].astype({"occurred_at": object})
    mixed.loc[1, "occurred_at"] = 1740441600  # a bare number among timestamps
    with pytest.raises(DataError, match=r"1 value\(s\) that are not timestamps, e\.g\. \['1740441600'\] "
                                        r"\(rows \[1\]\)"):
        CrmExport.from_frames(frames(activities=mixed))
    with pytest.warns(UserWarning, match="set aside"):
        kept = CrmExport.from_frames(frames(activities=mixed), lenient=True)
    assert len(kept.activity_arrays()) == 2 and kept.lead_notes == {
        "L2": ["1 activity without a readable occurred_at ignored"]}


def test_date_only_text_is_not_taken_for_utc():
    leads = frames()["leads"].assign(created_at=["2025-02-01", "2025-02-02"])
    with pytest.raises(DataError, match="without a time zone"):
        CrmExport.from_frames(frames(leads=leads))


def test_offsets_other_than_utc_are_converted():
    leads = frames()["leads"].assign(created_at=["2025-02-01T09:00:00-05:00", "2025-02-02T09:00:00Z"])
    export = CrmExport.from_frames(frames(leads=leads))
    assert export.leads["created_at"].iloc[0] == pd.Timestamp("2025-02-01T14:00:00Z")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generated_world_reads_back_in_both_formats(tmp_path, fmt):
    folder = write_world(tmp_path / "crm", n_leads=300, seed=1, fmt=fmt)
    export = read_export(folder)
    assert len(export.leads) == 300
    assert str(export.activities["occurred_at"].dtype) == "datetime64[us, UTC]"


def test_csv_written_by_pandas_from_utc_columns_reads_back(tmp_path):
    # pandas writes tz-aware columns as "2025-02-19 00:00:00+00:00".
    folder = write(tmp_path / "crm", frames(), fmt="csv")
    assert "+00:00" in (folder / "leads.csv").read_text()
    pd.testing.assert_frame_equal(read_export(folder).leads, CrmExport.from_frames(frames()).leads)


# ------------------------------------------------------------------ future


def test_events_in_the_future_are_an_error():
    acts = frames()["activities"]
    acts.loc[2, "occurred_at"] = pd.Timestamp.now(tz="UTC") + 3 * DAY
    with pytest.raises(DataError, match=r"activities: column 'occurred_at' has 1 timestamp\(s\) in the future.*"
                                        r"rows \[2\]"):
        CrmExport.from_frames(frames(activities=acts))


def test_events_after_the_export_time_by_more_than_a_day_are_an_error():
    acts = frames()["activities"]
    with pytest.raises(DataError, match="in the future"):
        CrmExport.from_frames(frames(activities=acts), exported_at=T - 3 * DAY)
    CrmExport.from_frames(frames(activities=acts), exported_at=T - 12 * pd.Timedelta(hours=1))  # within a day


def test_an_open_opportunity_may_carry_an_expected_close_date_in_the_future():
    opps = frames()["opportunities"].assign(closed_at=[pd.Timestamp.now(tz="UTC") + 30 * DAY], stage=["open"])
    CrmExport.from_frames(frames(opportunities=opps))


# ------------------------------------------------------------------ ids


@pytest.mark.parametrize("table,key", [("leads", "lead_id"), ("accounts", "account_id"),
                                       ("opportunities", "opportunity_id")])
def test_duplicate_ids_are_an_error_with_a_sample(table, key):
    df = frames()[table]
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    first = str(df[key].iloc[0])
    with pytest.raises(DataError, match=rf"{table}: column '{key}' has 1 duplicate id\(s\), e.g. \['{first}'\]"):
        CrmExport.from_frames(frames(**{table: df}))


def test_activities_of_unknown_leads_warn_with_their_count():
    acts = pd.concat([frames()["activities"],
                      pd.DataFrame({"lead_id": ["ghost", "ghost"], "activity_type": ["web_visit"] * 2,
                                    "occurred_at": [T - DAY, T - DAY]})], ignore_index=True)
    with pytest.warns(UserWarning, match=r"activities: 2 activities name a lead_id not in leads, e.g. \['ghost'\]"):
        export = CrmExport.from_frames(frames(activities=acts))
    assert len(export.activities) == 5  # kept, never silently dropped


def test_events_before_the_lead_was_created_warn_and_are_kept():
    acts = frames()["activities"]
    acts.loc[0, "occurred_at"] = T - 30 * DAY  # L1 was created at T - 10 days
    with pytest.warns(UserWarning, match=r"1 activity occurred before their lead's created_at, e\.g\. rows \[0\]"):
        export = CrmExport.from_frames(frames(activities=acts))
    assert export.activities["occurred_at"].min() == T - 30 * DAY


@pytest.mark.parametrize("source", ["frames", "parquet", "csv", "lenient"])
def test_an_empty_recorded_at_warns_with_its_count_and_counts_from_occurred_at(tmp_path, source):
    acts = frames()["activities"].assign(recorded_at=[pd.NaT, T - 4 * DAY, pd.NaT])
    acts["recorded_at"] = acts["recorded_at"].astype("datetime64[us, UTC]")
    match = (r"activities(\.parquet|\.csv)?: column 'recorded_at' has 2 empty value\(s\), e\.g\. rows \[0, 2\]; "
             r"each is taken as recorded when it occurred")
    with pytest.warns(UserWarning, match=match):
        if source in ("frames", "lenient"):
            export = CrmExport.from_frames(frames(activities=acts), lenient=source == "lenient")
        else:
            export = read_export(write(tmp_path / "crm", frames(activities=acts), fmt=source))
    arrays = export.activity_arrays()
    assert len(arrays) == 3  # nothing dropped
    eligible = np.maximum(arrays.occ, arrays.rec)
    assert eligible.tolist() == arrays.occ.tolist()  # as if the column were absent


def test_missing_required_column_names_the_file(tmp_path):
    folder = write(tmp_path / "crm", frames(activities=frames()["activities"].drop(columns="activity_type")))
    with pytest.raises(DataError, match=r"activities\.parquet: missing required column\(s\) \['activity_type'\]"):
        read_export(folder)


def test_unknown_stage_is_an_error():
    opps = frames()["opportunities"].assign(stage=["won"])
    with pytest.raises(DataError, match=r"column 'stage' has unknown values \['won'\]"):
        CrmExport.from_frames(frames(opportunities=opps))


def test_large_file_reader_gives_the_same_arrays_as_the_frame(tmp_path, monkeypatch):
    # Big Parquet exports are read into arrays by DuckDB (ids matched by a join, rows put back in file order);
    # the arrays must equal those derived from the validated DataFrame, unknown leads and all.
    import numpy as np

    import propensity.data.activities as activities
    from propensity.data.activities import arrays_from_frame

    acts = pd.concat([frames()["activities"],
                      pd.DataFrame({"lead_id": ["ghost", "L2"], "activity_type": ["chat", "email_open"],
                                    "occurred_at": [T - DAY, T - 2 * DAY]})], ignore_index=True)
    acts["recorded_at"] = acts["occurred_at"] + pd.Timedelta(hours=1)
    folder = write(tmp_path / "crm", frames(activities=acts))
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 0)
    with pytest.warns(UserWarning, match=r"1 activity name a lead_id not in leads, e.g. \['ghost'\] \(rows \[3\]\)"):
        export = read_export(folder)
    got = export.activity_arrays()
    want = arrays_from_frame(export.activities, export.leads["lead_id"])
    for name in ("lead", "occ", "rec", "code"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.types.tolist() == want.types.tolist() == ["web_visit", "chat", "email_open"]
    assert got.lead.tolist() == [0, 1, 0, -1, 1]


def test_activities_frame_is_built_on_demand_and_arrays_follow_replaced_leads(tmp_path):
    # read_export keeps activities as arrays and builds the DataFrame on first access; an export copied
    # with other leads (dataclasses.replace) derives its arrays again instead of keeping stale positions.
    import dataclasses

    folder = write(tmp_path / "crm", frames())
    export = read_export(folder)
    assert "_activities" in export.__dict__ and callable(export.__dict__["_activities"])
    assert export.activity_arrays().lead.tolist() == [0, 1, 0]
    pd.testing.assert_frame_equal(export.activities, CrmExport.from_frames(frames()).activities)
    flipped = dataclasses.replace(export, leads=export.leads.iloc[::-1].reset_index(drop=True))
    assert flipped.activity_arrays().lead.tolist() == [1, 0, 1]


def test_blank_text_is_an_empty_value_not_an_unreadable_one():
    acts = frames()["activities"].astype({"occurred_at": object})
    acts["recorded_at"] = ["2025-02-20T00:00:00Z", "  ", ""]
    with pytest.warns(UserWarning, match=r"column 'recorded_at' has 2 empty value\(s\), e\.g\. rows \[1, 2\]"):
        export = CrmExport.from_frames(frames(activities=acts))
    assert len(export.activity_arrays()) == 3
    acts.loc[1, "occurred_at"] = ""
    with pytest.raises(DataError, match=r"column 'occurred_at' has 1 empty value\(s\)"):
        CrmExport.from_frames(frames(activities=acts))


def test_a_one_lead_export_says_so_and_no_other_does():
    f = frames()
    one = CrmExport.of_one_lead(f["accounts"], f["leads"].iloc[:1], f["activities"].iloc[:2],
                                f["opportunities"].iloc[:0])
    assert one.one_lead and one.source == "<lead>" and len(one.leads) == 1
    assert not CrmExport.from_frames(f, exported_at=T).one_lead
    assert not CrmExport(f["accounts"], f["leads"], f["activities"], f["opportunities"], source="<lead>").one_lead


@pytest.mark.parametrize("exported_at", ["not a time", 1740787200, ""])
def test_an_unreadable_exported_at_names_the_field(exported_at):
    with pytest.raises(DataError, match=r"^exported_at: expected"):
        CrmExport.from_frames(frames(), exported_at=exported_at)
