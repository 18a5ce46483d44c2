"""The fast Parquet readers of activities give the arrays (and the messages) of the pandas path.

Large files (``DUCKDB_MIN_ROWS`` lowered here) are read by ``_read_duckdb``: lead ids
and activity types through the Parquet dictionary pages (decoded by
``parquet_pages.chunk_indices``), times by DuckDB in file order; other text encodings by DuckDB
joins. Each is checked against the Arrow row-group reader and against
``arrays_from_frame`` on files with many row groups, pages, codecs and encodings.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from propensity.data import activities, parquet_pages
from propensity.data.activities import arrays_from_frame, read_activity_arrays
from propensity.data.export import DataError, read_export

T = pd.Timestamp("2025-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)
TYPES = ["web_visit", "email_open", "chat", "demo_request", "webinar"]  # first seen in this order, not sorted


def make_activities(n_leads: int, n_rows: int, seed: int = 0, sort_by_lead: bool = False,
                    ghosts: int = 5) -> tuple[pd.DataFrame, pd.Series]:
    """Activities (a few of unknown leads) and the lead ids of the leads table (in another order)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"L{i:06d}" for i in range(n_leads)], dtype=object)
    lead = ids[rng.integers(0, n_leads, n_rows)]
    lead[rng.choice(n_rows, ghosts, replace=False)] = [f"ghost{i}" for i in range(ghosts)]
    if sort_by_lead:  # long runs of one id: RLE runs in the pages, some longer than 63 (multi-byte headers)
        lead = np.sort(lead)
    kind = np.array(TYPES, dtype=object)[np.minimum(rng.geometric(0.5, n_rows) - 1, len(TYPES) - 1)]
    kind[:len(TYPES)] = TYPES
    occ = T - pd.to_timedelta(rng.integers(1, 300 * 86_400_000_000, n_rows), unit="us")
    acts = pd.DataFrame({"lead_id": lead, "activity_type": kind, "occurred_at": occ,
                         "recorded_at": occ + pd.to_timedelta(rng.integers(0, 3_600_000_000, n_rows), unit="us")})
    lead_ids = pd.Series(ids[rng.permutation(n_leads)], dtype=str)
    return acts, lead_ids


def write_parquet(path: Path, acts: pd.DataFrame, categorical: bool = True, **options) -> Path:
    """``acts`` as Parquet: ``categorical`` text as pandas writes it (one dictionary, repeated per row group)."""
    columns = {}
    for col in ("lead_id", "activity_type"):
        values = acts[col].to_numpy(dtype=object)
        if categorical:
            cat = pd.Categorical(values)
            columns[col] = pa.DictionaryArray.from_arrays(pa.array(cat.codes, type=pa.int32(), mask=cat.codes < 0),
                                                          pa.array(cat.categories.to_numpy(dtype=object)))
        else:
            columns[col] = pa.array(values, type=pa.string())
    for col in ("occurred_at", "recorded_at"):
        columns[col] = pa.array(acts[col].astype("datetime64[us, UTC]").array.asi8, type=pa.timestamp("us", "UTC"))
    pq.write_table(pa.table(columns), path, **options)
    return path


def expected(acts: pd.DataFrame, lead_ids: pd.Series):
    frame = acts.astype({"lead_id": str, "activity_type": str})
    for col in ("occurred_at", "recorded_at"):
        frame[col] = frame[col].astype("datetime64[us, UTC]")
    return arrays_from_frame(frame, lead_ids)


def assert_same_arrays(got, want) -> None:
    assert got is not None
    for name in ("lead", "occ", "rec", "code"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == getattr(want, name).dtype, name
    assert got.types.tolist() == want.types.tolist()


@pytest.fixture
def routes(monkeypatch):
    """Which large-file route read each file: 'dictionary' or 'join'."""
    used: list[str] = []
    dictionary, join = activities._dictionary_codes, activities._read_duckdb_join

    def spy_dictionary(*args, **kw):
        out = dictionary(*args, **kw)
        if out is not None:
            used.append("dictionary")
        return out

    def spy_join(*args, **kw):
        used.append("join")
        return join(*args, **kw)

    monkeypatch.setattr(activities, "_dictionary_codes", spy_dictionary)
    monkeypatch.setattr(activities, "_read_duckdb_join", spy_join)
    return used


def read_both(path: Path, lead_ids: pd.Series, monkeypatch):
    """(large-file reader, Arrow row-group reader) arrays of one file."""
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 0)
    large = read_activity_arrays(path, lead_ids)
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 10 ** 12)
    small = read_activity_arrays(path, lead_ids)
    return large, small


@pytest.mark.parametrize("options", [
    {"row_group_size": 2_000},  # pandas-like: snappy, v1 pages, one dictionary repeated in 10 row groups
    {"row_group_size": 3_000, "data_page_size": 2_000, "compression": "zstd", "data_page_version": "2.0"},
    {"row_group_size": 7_000, "compression": "gzip", "data_page_version": "1.0", "data_page_size": 500},
    {"row_group_size": 20_000, "compression": "none"},
    {"row_group_size": 1_500, "compression": "lz4"},  # Hadoop-framed LZ4 is not decoded: DuckDB joins
], ids=["snappy-v1", "zstd-v2", "gzip-small-pages", "uncompressed-one-group", "lz4"])
def test_large_file_reader_matches_the_frame_on_categorical_text(tmp_path, monkeypatch, routes, options):
    acts, lead_ids = make_activities(3_000, 20_000, seed=1)
    path = write_parquet(tmp_path / "activities.parquet", acts, **options)
    large, small = read_both(path, lead_ids, monkeypatch)
    want = expected(acts, lead_ids)
    assert_same_arrays(large, want)
    assert_same_arrays(small, want)
    assert routes == ["join" if options.get("compression") == "lz4" else "dictionary"]
    assert (large.lead == -1).sum() == 5 and large.types.tolist() == TYPES


@pytest.mark.parametrize("sort_by_lead", [False, True], ids=["shuffled", "sorted-by-lead"])
def test_large_file_reader_matches_the_frame_with_wide_dictionaries(tmp_path, monkeypatch, routes, sort_by_lead):
    # 70,000 ids need 17-bit indices; sorted ids give long RLE runs, shuffled ones bit-packed runs.
    acts, lead_ids = make_activities(70_000, 120_000, seed=2, sort_by_lead=sort_by_lead)
    path = write_parquet(tmp_path / "activities.parquet", acts, row_group_size=25_000)
    large, small = read_both(path, lead_ids, monkeypatch)
    want = expected(acts, lead_ids)
    assert_same_arrays(large, want)
    assert_same_arrays(small, want)
    assert routes == ["dictionary"]


def test_large_file_reader_matches_the_frame_on_plain_text(tmp_path, monkeypatch, routes):
    # Plain str columns: Arrow writes one dictionary per row group (each learnt once), or none at all.
    acts, lead_ids = make_activities(2_000, 15_000, seed=3)
    path = write_parquet(tmp_path / "dict.parquet", acts, categorical=False, row_group_size=4_000)
    large, small = read_both(path, lead_ids, monkeypatch)
    assert_same_arrays(large, expected(acts, lead_ids))
    assert_same_arrays(small, expected(acts, lead_ids))
    assert routes == ["dictionary"]
    path = write_parquet(tmp_path / "plain.parquet", acts, categorical=False, row_group_size=4_000,
                         use_dictionary=["activity_type"])
    large, _ = read_both(path, lead_ids, monkeypatch)
    assert_same_arrays(large, expected(acts, lead_ids))
    assert routes == ["dictionary", "join"]


def test_decoder_agrees_with_arrow_on_every_row_group(tmp_path, monkeypatch):
    # The reader checks the decoder against Arrow on the first row group of each dictionary; here all of them.
    acts, _ = make_activities(5_000, 40_000, seed=4, sort_by_lead=True)
    acts.loc[:9_999, "lead_id"] = "L000001"  # a run of 10,000: a header of two bytes
    long_headers = []
    walk = parquet_pages._walk_runs

    def spy(buf, pos, end, step, bw, heads, longs):
        ok = walk(buf, pos, end, step, bw, heads, longs)
        long_headers.extend(longs)
        return ok

    monkeypatch.setattr(parquet_pages, "_walk_runs", spy)
    path = write_parquet(tmp_path / "activities.parquet", acts, row_group_size=9_000, data_page_size=1_000)
    meta = pq.ParquetFile(path).metadata
    column = parquet_pages.flat_column(meta, "lead_id")
    pages = set()
    for rg in range(meta.num_row_groups):
        page, size, idx = parquet_pages.chunk_indices(path, meta, rg, column)
        chunk = pq.ParquetFile(path, read_dictionary=["lead_id"]).read_row_group(rg, columns=["lead_id"])
        chunk = chunk.column(0).chunk(0)
        assert size == len(chunk.dictionary)
        np.testing.assert_array_equal(idx, np.asarray(chunk.indices))
        pages.add(page)
    assert len(pages) == 1  # one dictionary, repeated byte for byte
    assert long_headers  # runs of more than 63 values were decoded too


def test_decoder_declines_what_it_does_not_know(tmp_path):
    acts, _ = make_activities(100, 1_000, seed=5)
    acts.loc[3, "lead_id"] = None
    path = write_parquet(tmp_path / "nulls.parquet", acts)
    meta = pq.ParquetFile(path).metadata
    assert parquet_pages.chunk_indices(path, meta, 0, parquet_pages.flat_column(meta, "lead_id")) is None  # a null
    assert parquet_pages.chunk_indices(path, meta, 0, parquet_pages.flat_column(meta, "activity_type")) is not None
    assert parquet_pages.flat_column(meta, "occurred_at") is None  # not text


# ------------------------------------------------------------------ messages and lenient reads name file rows


def export_folder(folder: Path, acts: pd.DataFrame, lead_ids: pd.Series, created: pd.Timestamp) -> Path:
    folder.mkdir(parents=True)
    leads = pd.DataFrame({"lead_id": lead_ids, "account_id": "A1", "created_at": created})
    pd.DataFrame({"account_id": ["A1"]}).to_parquet(folder / "accounts.parquet", index=False)
    leads.to_parquet(folder / "leads.parquet", index=False)
    pd.DataFrame({"opportunity_id": ["O1"], "lead_id": [lead_ids.iloc[0]], "created_at": [T - DAY],
                  "closed_at": [T], "stage": ["closed_won"]}).to_parquet(folder / "opportunities.parquet",
                                                                         index=False)
    write_parquet(folder / "activities.parquet", acts, row_group_size=2_500)
    return folder


def read_recording(folder: Path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export = read_export(folder, exported_at=T, **kw)
    return export, [str(w.message) for w in caught]


@pytest.mark.parametrize("lenient", [False, True])
def test_large_file_warnings_name_the_same_file_rows(tmp_path, monkeypatch, routes, lenient):
    acts, lead_ids = make_activities(1_000, 12_000, seed=6, ghosts=0)
    early = [4_000, 7_777, 11_000]  # in later row groups
    for row in early:
        acts.loc[row, "occurred_at"] = T - 400 * DAY  # before every lead's created_at
    acts.loc[[6_001, 9_500], "lead_id"] = ["ghost-a", "ghost-b"]
    if lenient:
        acts.loc[[5_000, 10_001], "occurred_at"] = T + 30 * DAY  # in the future: dropped
        acts.loc[[5_000, 10_001], "recorded_at"] = T + 30 * DAY
    folder = export_folder(tmp_path / "crm", acts, lead_ids, T - 350 * DAY)
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 0)
    large, large_msgs = read_recording(folder, lenient=lenient)
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 10 ** 12)
    small, small_msgs = read_recording(folder, lenient=lenient)
    assert routes == ["dictionary"]
    assert large_msgs == small_msgs
    assert any("occurred before their lead's created_at, e.g. rows [4000, 7777, 11000]" in m for m in large_msgs)
    assert any("['ghost-a', 'ghost-b'] (rows [6001, 9500])" in m for m in large_msgs)
    assert_same_arrays(large.activity_arrays(), small.activity_arrays())
    assert large.lead_notes == small.lead_notes
    keep = acts.drop(index=[5_000, 10_001]) if lenient else acts
    pd.testing.assert_frame_equal(large.activities, small.activities)
    assert len(large.activities) == len(keep)
    assert_same_arrays(large.activity_arrays(), arrays_from_frame(large.activities, large.leads["lead_id"]))


def test_large_file_future_times_are_an_error_naming_file_rows(tmp_path, monkeypatch):
    acts, lead_ids = make_activities(500, 9_000, seed=7, ghosts=0)
    acts.loc[[6_500, 8_000], "recorded_at"] = T + 30 * DAY
    folder = export_folder(tmp_path / "crm", acts, lead_ids, T - 350 * DAY)
    monkeypatch.setattr(activities, "DUCKDB_MIN_ROWS", 0)
    message = r"column 'recorded_at' has 2 timestamp\(s\) in the future.*rows \[6500, 8000\]"
    with pytest.raises(DataError, match=message):
        read_export(folder, exported_at=T)


@pytest.mark.parametrize("dtype", [str, object])
def test_dictionary_that_is_the_leads_id_column_maps_without_hashing(tmp_path, monkeypatch, routes, dtype):
    # pandas categories are the sorted distinct ids; when leads hold exactly those, in that order, the
    # dictionary maps to positions 0..n-1 (checked by comparison, not assumed).
    acts, _ = make_activities(800, 6_000, seed=8, ghosts=0)
    lead_ids = pd.Series(np.sort(acts["lead_id"].unique()), dtype=dtype)
    path = write_parquet(tmp_path / "activities.parquet", acts, row_group_size=1_000)
    large, small = read_both(path, lead_ids, monkeypatch)
    assert_same_arrays(large, expected(acts, lead_ids))
    assert_same_arrays(small, expected(acts, lead_ids))
    shifted = pd.Series(np.r_[lead_ids.to_numpy()[1:], lead_ids.to_numpy()[:1]], dtype=dtype)  # same ids, moved
    large, _ = read_both(path, shifted, monkeypatch)
    assert_same_arrays(large, expected(acts, shifted))
    assert routes == ["dictionary", "dictionary"]


# ------------------------------------------------------------------ id matching


def reference_positions(ids, lead_ids) -> list[int]:
    first: dict[str, int] = {}
    for i, v in enumerate(lead_ids):
        first.setdefault(str(v), i)
    return [first.get(str(v), -1) for v in ids]


@pytest.mark.parametrize("dtype", [str, object, "category"])
@pytest.mark.parametrize("n_ids", [5, 3_000])  # fewer ids than leads (hashes the ids), more (hashes the leads)
def test_lead_positions_find_the_first_lead_row(dtype, n_ids):
    from propensity.core.ids import key_positions

    rng = np.random.default_rng(n_ids)
    leads = pd.Series([f"L{i}" for i in rng.permutation(1_000)], dtype=str)
    ids = pd.Series(np.r_[leads.to_numpy(dtype=object)[rng.integers(0, 1_000, n_ids - 2)], ["ghost", "L5"]],
                    dtype=object).astype(dtype)
    got = key_positions(ids, leads)
    assert got.dtype == np.int64
    assert got.tolist() == reference_positions(ids, leads)
    if dtype != "category":  # a repeated lead id (never in a validated export): its first row, as before
        repeated = pd.concat([leads, leads.iloc[:10]], ignore_index=True).iloc[::-1].reset_index(drop=True)
        assert key_positions(ids, repeated).tolist() == reference_positions(ids, repeated)


def test_early_counts_and_names_the_first_rows_across_blocks():
    from propensity.data.checks import events_before_creation

    rng = np.random.default_rng(9)
    created = rng.integers(0, 1_000, 50)
    pos = rng.integers(-1, 50, 10_000)
    occ = rng.integers(0, 1_000, 10_000)
    want = np.flatnonzero((pos >= 0) & (occ < created[np.maximum(pos, 0)]))
    for block in (7, 1_000, 1 << 20):
        assert events_before_creation(pos, occ, created, block=block) == (len(want), want[:3].tolist())
    assert events_before_creation(pos, occ, created[:0]) == (0, [])
