"""Training snapshots, labels and scoring cutoffs, on hand-built exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from propensity.config import CutoffConfig
from propensity.data.export import CrmExport
from propensity.features.cutoffs import scoring_cutoffs, snapshot_dates, training_cutoffs

END = pd.Timestamp("2025-06-30T15:00:00Z")  # latest timestamp of the export
LAST = pd.Timestamp("2025-05-31T00:00:00Z")  # floor(END - 30 days)
DAY = pd.Timedelta(days=1)
WEEKLY = CutoffConfig(every_days=7, max_lead_age_days=365)


def make_export(leads: dict[str, str], opps: list[tuple] = ()) -> CrmExport:
    """leads: id -> created_at; opps: (lead_id, created_at, closed_at, stage)."""
    return CrmExport.from_frames({
        "accounts": pd.DataFrame({"account_id": ["A"]}),
        "leads": pd.DataFrame({"lead_id": list(leads), "account_id": "A", "created_at": list(leads.values())}),
        "activities": pd.DataFrame({"lead_id": [next(iter(leads))], "activity_type": ["web_visit"],
                                    "occurred_at": [END]}),
        "opportunities": pd.DataFrame(
            [(f"O{i}", *o) for i, o in enumerate(opps)],
            columns=["opportunity_id", "lead_id", "created_at", "closed_at", "stage"]),
    })


def rows_of(df: pd.DataFrame, lead: str) -> dict[str, int]:
    sub = df[df["lead_id"] == lead]
    return {t.strftime("%m-%d"): int(label) for t, label in zip(sub["cutoff"], sub["label"], strict=True)}


def test_snapshots_count_back_from_the_last_day_whose_horizon_has_elapsed():
    export = make_export({"L1": "2025-04-30T08:00:00Z"})
    dates = snapshot_dates(export, WEEKLY, horizon_days=30)
    assert dates[-1] == LAST
    assert (np.diff(dates.asi8) == 7 * 86_400_000_000).all()
    # Down to the first snapshot at or after the earliest lead.
    assert dates[0] == pd.Timestamp("2025-05-03T00:00:00Z")


def test_lead_whose_horizon_has_not_elapsed_is_not_a_negative():
    # L2 arrives after the last snapshot whose 30-day horizon is complete: no row at all,
    # even though it never converts within the data.
    export = make_export({"L1": "2025-05-20T00:00:00Z", "L2": "2025-06-10T00:00:00Z"})
    out = training_cutoffs(export, WEEKLY, horizon_days=30)
    assert out["cutoff"].max() == LAST
    assert (out["cutoff"] + pd.Timedelta(days=30) <= END).all()
    assert "L2" not in set(out["lead_id"])
    assert rows_of(out, "L1") == {"05-24": 0, "05-31": 0}


def test_rows_stop_at_the_lead_s_first_opportunity():
    export = make_export({"L1": "2025-05-01T00:00:00Z"}, [
        ("L1", "2025-05-17T10:00:00Z", None, "open"),
        ("L1", "2025-05-28T00:00:00Z", "2025-06-05T00:00:00Z", "closed_won"),
    ])
    out = training_cutoffs(export, WEEKLY, horizon_days=30)
    # The snapshot at 05-17 00:00 is before the opportunity (10:00), 05-24 is after it.
    # The later won opportunity still labels the rows whose 30-day window reaches it.
    assert rows_of(out, "L1") == {"05-03": 0, "05-10": 1, "05-17": 1}


def test_opportunity_created_exactly_at_a_snapshot_keeps_that_row():
    export = make_export({"L1": "2025-05-01T00:00:00Z"}, [("L1", "2025-05-17T00:00:00Z", None, "open")])
    assert rows_of(training_cutoffs(export, WEEKLY, 30), "L1") == {"05-03": 0, "05-10": 0, "05-17": 0}


def test_label_window_includes_its_start_and_excludes_its_end():
    export = make_export({"L1": "2025-04-01T00:00:00Z", "L2": "2025-04-01T00:00:00Z",
                          "L3": "2025-04-01T00:00:00Z"}, [
        ("L1", "2025-05-31T00:00:00Z", "2025-05-31T00:00:00Z", "closed_won"),   # closes exactly at T
        ("L2", "2025-05-31T12:00:00Z", "2025-06-02T00:00:00Z", "closed_won"),   # 05-03 + 30 days
        ("L3", "2025-05-31T12:00:00Z", "2025-06-02T00:00:00Z", "closed_lost"),
    ])
    out = training_cutoffs(export, WEEKLY, horizon_days=30)
    assert rows_of(out, "L1") == {"04-05": 0, "04-12": 0, "04-19": 0, "04-26": 0, "05-03": 1,
                                  "05-10": 1, "05-17": 1, "05-24": 1, "05-31": 1}
    l2 = rows_of(out, "L2")
    assert l2["05-03"] == 0 and l2["05-10"] == 1 and l2["05-31"] == 1
    assert set(rows_of(out, "L3").values()) == {0}


def test_leads_older_than_max_age_are_excluded():
    config = CutoffConfig(every_days=7, max_lead_age_days=14)
    export = make_export({"L1": "2025-05-03T00:00:00Z", "L2": "2025-05-02T23:59:59Z"})
    out = training_cutoffs(export, config, horizon_days=30)
    # created_at >= T - 14 days is inclusive: L1 is exactly 14 days old at 05-17.
    assert rows_of(out, "L1") == {"05-10": 0, "05-17": 0}
    assert rows_of(out, "L2") == {"05-03": 0, "05-10": 0}


def test_lead_created_exactly_at_a_snapshot_waits_for_the_next_one():
    export = make_export({"L1": "2025-05-24T00:00:00Z"})
    assert rows_of(training_cutoffs(export, WEEKLY, 30), "L1") == {"05-31": 0}


def test_training_rows_are_sorted_by_cutoff_then_lead_with_contract_dtypes():
    export = make_export({"b": "2025-05-01T00:00:00Z", "a": "2025-05-02T00:00:00Z", "c": "2025-05-20T00:00:00Z"})
    out = training_cutoffs(export, WEEKLY, horizon_days=30)
    assert list(out.columns) == ["lead_id", "cutoff", "label"]
    assert str(out["cutoff"].dtype) == "datetime64[us, UTC]" and out["label"].dtype == np.int8
    assert out.index.tolist() == list(range(len(out)))
    assert list(zip(out["cutoff"], out["lead_id"], strict=True)) == sorted(zip(out["cutoff"], out["lead_id"],
                                                                             strict=True))
    assert out["lead_id"].tolist()[:2] == ["a", "b"]


def test_no_snapshot_when_the_data_is_shorter_than_the_horizon():
    export = make_export({"L1": "2025-06-20T00:00:00Z"})
    out = training_cutoffs(export, WEEKLY, horizon_days=30)
    assert len(out) == 0 and list(out.columns) == ["lead_id", "cutoff", "label"]
    assert str(out["cutoff"].dtype) == "datetime64[us, UTC]"


def test_scoring_cutoffs_default_to_just_after_the_last_event():
    export = make_export({"b": "2025-05-01T00:00:00Z", "a": str(END), "c": "2025-05-01T00:00:00Z"},
                         [("c", "2025-06-01T00:00:00Z", None, "open")])
    out = scoring_cutoffs(export)
    assert out["lead_id"].tolist() == ["a", "b"]  # c converted; a was created at the very end
    assert (out["cutoff"] == END + pd.Timedelta(microseconds=1)).all()
    assert str(out["cutoff"].dtype) == "datetime64[us, UTC]"


def test_scoring_cutoffs_as_of_a_past_time_see_that_time_s_open_leads():
    export = make_export({"b": "2025-05-01T00:00:00Z", "a": "2025-06-15T00:00:00Z", "c": "2025-05-01T00:00:00Z"},
                         [("c", "2025-06-01T00:00:00Z", None, "open")])
    out = scoring_cutoffs(export, as_of=pd.Timestamp("2025-06-01"))  # naive = UTC
    assert out["lead_id"].tolist() == ["b", "c"]
    assert (out["cutoff"] == pd.Timestamp("2025-06-01T00:00:00Z")).all()


@pytest.mark.parametrize("every", [1, 28])
def test_every_row_satisfies_the_definition(every):
    rng = np.random.default_rng(every)
    start = pd.Timestamp("2024-01-01T00:00:00Z")
    created = start + pd.to_timedelta(rng.integers(0, 500, 40), unit="D") + pd.to_timedelta(
        rng.integers(0, 86400, 40), unit="s")
    leads = {f"L{i:02d}": str(t) for i, t in enumerate(created)}
    opps = [(f"L{i:02d}", str(created[i] + pd.Timedelta(days=int(rng.integers(1, 200)))),
             str(created[i] + pd.Timedelta(days=int(rng.integers(200, 260)))), rng.choice(["closed_won", "open"]))
            for i in range(0, 40, 2)]
    export = make_export(leads, opps)
    config = CutoffConfig(every_days=every, max_lead_age_days=120)
    out = training_cutoffs(export, config, horizon_days=60)
    dates = snapshot_dates(export, config, 60)
    expected = []
    for t in dates:
        for lid, c in sorted(leads.items()):
            c = pd.Timestamp(c)
            mine = [o for o in opps if o[0] == lid]
            if c < t and c >= t - pd.Timedelta(days=120) and not any(pd.Timestamp(o[1]) < t for o in mine):
                won = any(o[3] == "closed_won" and t <= pd.Timestamp(o[2]) < t + pd.Timedelta(days=60)
                          for o in mine)
                expected.append((lid, t, int(won)))
    assert list(zip(out["lead_id"], out["cutoff"], out["label"], strict=True)) == expected
