"""After deployment: the reference profile in the bundle, the score history, drift, matured and estimated
performance, the funnel, alerts and exit codes, report.html in a real browser, MLflow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from propensity.cli.app import main
from propensity.config import MonitoringConfig
from propensity.core.errors import BundleError
from propensity.jobs.scoring import score_crm
from propensity.jobs.training import training_reference
from propensity.monitoring.drift import feature_drift, goodness_of_fit, psi
from propensity.monitoring.history import HistoryError, read_history, run_files
from propensity.monitoring.monitor import RunFigures, run_alerts
from propensity.monitoring.performance import expected_auc
from propensity.monitoring.reference import REFERENCE_FILE, read_reference, reference_bytes, value_profile
from propensity.monitoring.trend import NOT_ENOUGH, trend_column
from propensity.scoring.bundle import load_bundle, save_bundle

RUNS = ["2025-03-01", "2025-06-01", "2025-09-01"]
SUMMARY_RUN_KEYS = {"as_of", "rows", "score_psi", "drifted_features", "matured", "auc", "ece", "estimated_auc",
                    "funnel"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def model(formula_trained, small_project, tmp_path_factory) -> Path:
    """The small world's model saved as training saves it: with its reference profile sealed in."""
    ref = reference_bytes(training_reference(formula_trained, small_project))
    return save_bundle(formula_trained.bundle, tmp_path_factory.mktemp("mon") / "model", {REFERENCE_FILE: ref})


@pytest.fixture(scope="module")
def history(model, formula_crm, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hist")
    for as_of in RUNS:
        score_crm(model, formula_crm, root / "scores.parquet", as_of=as_of, history=root / "history")
    return root / "history"


def _copy(history: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "history"
    shutil.copytree(history, dst)
    return dst


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ reference profile


def test_reference_profile_is_sealed_into_the_bundle_and_checked(model, formula_trained, tmp_path):
    ref = read_reference(model)
    assert ref["rows"] == len(formula_trained.test)
    assert set(ref["features"]) == {f.name for f in formula_trained.bundle.spec}
    assert abs(sum(t["share"] for t in ref["tiers"].values()) - 1) < 1e-9
    assert (model / REFERENCE_FILE).stat().st_size < 100_000  # kilobytes, not the data
    meta = json.loads((model / "bundle.json").read_text())
    assert REFERENCE_FILE in meta["files"]  # covered by the bundle's digests

    edited = tmp_path / "edited"
    shutil.copytree(model, edited)
    data = json.loads((edited / REFERENCE_FILE).read_text())
    data["rows"] += 1
    (edited / REFERENCE_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="reference.json: its SHA-256 does not match"):
        read_reference(edited)
    with pytest.raises(BundleError, match="reference.json"):
        load_bundle(edited)


def test_a_bundle_without_reference_is_refused_by_monitor_in_one_line(formula_trained, formula_crm, history,
                                                                       tmp_path, capsys):
    bare = save_bundle(formula_trained.bundle, tmp_path / "bare")
    with pytest.raises(BundleError, match="no reference profile"):
        read_reference(bare)
    code = main(["monitor", "--model", str(bare), "--data", str(formula_crm), "--history", str(history),
                 "--out", str(tmp_path / "rep"), "--no-track"])
    err = capsys.readouterr().err
    assert code == 2 and "no reference profile" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()


# ------------------------------------------------------------------ drift and estimates (no model)


def test_drift_distances_follow_evidently_definitions():
    rng = np.random.default_rng(0)
    ref = value_profile(pd.Series(rng.normal(0, 1, 20_000)), "numeric")
    same = feature_drift("x", ref, pd.Series(rng.normal(0, 1, 5_000)), MonitoringConfig())
    moved = feature_drift("x", ref, pd.Series(rng.normal(0.5, 1, 5_000)), MonitoringConfig())
    assert not same.drifted and same.distance < 0.05 and same.psi < 0.02
    assert moved.drifted and abs(moved.distance - 0.5) < 0.05  # W1 of a 0.5 shift over sd 1
    cats = value_profile(pd.Series(rng.choice(["a", "b", "c"], 20_000, p=[0.5, 0.3, 0.2])), "categorical")
    stable = feature_drift("c", cats, pd.Series(rng.choice(["a", "b", "c"], 5_000, p=[0.5, 0.3, 0.2])),
                           MonitoringConfig())
    shifted = feature_drift("c", cats, pd.Series(rng.choice(["a", "b", "c"], 5_000, p=[0.2, 0.3, 0.5])),
                            MonitoringConfig())
    assert not stable.drifted and shifted.drifted and shifted.method == "jensen_shannon"
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_goodness_of_fit_counts_the_sample_size_and_pools_rare_cells():
    rng = np.random.default_rng(1)
    levels = [f"c{i}" for i in range(20)]
    cats = value_profile(pd.Series(rng.choice(levels, 20_000)), "categorical")
    # 300 rows drawn from the reference itself: the distance sits near its 0.1 threshold, the test stays calm
    p_same = [goodness_of_fit(cats, pd.Series(rng.choice(levels, 300))) for _ in range(200)]
    noisy = [feature_drift("c", cats, pd.Series(rng.choice(levels, 300)), MonitoringConfig()).distance
             for _ in range(50)]
    assert np.mean(noisy) > 0.07 and np.mean(np.array(p_same) < 0.001) < 0.02
    tilted = rng.choice(levels, 300, p=np.r_[np.full(5, 0.1), np.full(15, 0.5 / 15)])
    assert goodness_of_fit(cats, pd.Series(tilted)) < 1e-6
    # a value the reference never saw, twice among 300: pooled with the rare cells, not a drift by itself
    assert goodness_of_fit(cats, pd.Series(np.r_[rng.choice(levels, 298), ["new", "new"]])) > 0.001
    numbers = value_profile(pd.Series(rng.normal(0, 1, 20_000)), "numeric")
    assert goodness_of_fit(numbers, pd.Series(rng.normal(0, 1, 300))) > 0.001
    assert goodness_of_fit(numbers, pd.Series(rng.normal(0.5, 1, 300))) < 1e-6
    assert goodness_of_fit(numbers, pd.Series([], dtype="float64")) == 1.0


def test_the_trend_column_reads_each_leads_own_last_runs():
    t = [pd.Timestamp(f"2025-0{m}-01", tz="UTC") for m in (1, 2, 3)]
    earlier = pd.DataFrame({"lead_id": ["a", "b", "b", "c", "d", "d", "d"],
                            "as_of": [t[0], t[1], t[2], t[2], t[0], t[1], t[2]],
                            "score": [10, 50, 52, 30, 90, 20, 21]})
    now = pd.DataFrame({"lead_id": ["a", "b", "c", "d", "e"], "score": [40, 51, 29, 30, 5], "tier": "MQL"})
    # a: scored in January only, absent since: still its history (was "not enough history" when only the two
    # newest runs of the whole history were read); d: two runs back is 20, not its older 90
    assert list(trend_column(now, earlier)) == ["improving", "steady", "steady", "improving", NOT_ENOUGH]


def _run(day: int, z: float = 0.0, off: float = 0.0, p: float = 0.5) -> RunFigures:
    cal = {"in_range": {"leads": 3000, "observed": 20, "expected": 20.0, "off": off, "z": z}}
    return RunFigures(as_of=pd.Timestamp(f"2025-{day:02d}-01", tz="UTC"), rows=3000, leads_in_export=3000,
                      score_psi=0.0, drift=[], matured=True, estimated_auc=0.9, funnel={},
                      metrics={"auc": 0.9, "auc_se": 0.03}, calibration=cal, new_leads=300,
                      new_lead_p={"fit_industry": p, "fit_region": 0.5})


def test_calibration_and_new_lead_alerts_need_two_runs_in_a_row():
    cfg = MonitoringConfig()

    def kinds(runs):
        return [(a.kind, a.run) for a in run_alerts(runs, cfg, 0.9)]

    # one month far off (a seasonal peak) alone: no alert; two in a row the same way: an alert on the second
    assert kinds([_run(6), _run(7), _run(8, z=3.7, off=0.73), _run(9, z=-1.6, off=-0.29)]) == []
    assert kinds([_run(6, z=-2.8, off=-0.54), _run(7, z=-3.7, off=-0.66), _run(8)]) == [("calibration", "2025-07-01")]
    assert kinds([_run(6, z=3.0, off=0.5), _run(7, z=-3.0, off=-0.5)]) == []  # opposite ways: noise
    assert kinds([_run(6, z=-2.0, off=-0.5), _run(7, z=-3.0, off=-0.5)]) == []  # one of them within 2.5 sd
    assert kinds([_run(6, p=1e-5), _run(7), _run(8, p=1e-5)]) == []
    assert kinds([_run(6), _run(7, p=1e-5), _run(8, p=1e-9)]) == [("new_lead_drift", "2025-08-01")]
    card = {"observed_outside": True, "observed_rate": 0.0062, "predicted_rate": 0.0046}
    (told,) = run_alerts([_run(6, z=2.9, off=0.69), _run(7, z=3.8, off=0.96)], cfg, 0.9, card)
    assert "already off the same way (observed 0.62%, predicted 0.46%)" in told.message
    (other,) = run_alerts([_run(6, z=-2.9, off=-0.69), _run(7, z=-3.8, off=-0.96)], cfg, 0.9, card)
    assert "already" not in other.message
    single = MonitoringConfig(consecutive_runs=1)
    assert [a.kind for a in run_alerts([_run(6), _run(7, p=1e-5, z=3.0, off=0.5)], single, 0.9)] == [
        "new_lead_drift", "calibration"]


def test_cbpe_expected_auc_matches_the_auc_of_labels_drawn_from_the_probabilities():
    rng = np.random.default_rng(1)
    p = np.round(rng.beta(0.5, 8, 4_000), 3)  # ties, as an isotonic calibration makes them
    draws = [roc_auc_score(rng.random(len(p)) < p, p) for _ in range(300)]
    assert abs(expected_auc(p) - np.mean(draws)) < 0.005
    assert expected_auc(np.array([0.0, 0.0, 1.0, 1.0])) == 1.0


# ------------------------------------------------------------------ score history


def test_history_is_a_partitioned_parquet_dataset_duckdb_reads(history, formula_trained):
    files = run_files(history)
    assert [f.parent.name for f in files] == [f"scored_on={d}" for d in RUNS]
    con = duckdb.connect()
    counts = con.execute(f"SELECT scored_on, count(*) FROM read_parquet('{history}/**/*.parquet', "
                         "hive_partitioning = 1) GROUP BY 1 ORDER BY 1").fetchall()
    assert [str(c[0]) for c in counts] == RUNS
    frame = read_history(history)
    for col in ("lead_id", "as_of", "model_name", "model_version", "bundle_digest", "probability", "score", "tier",
                "grade", "fit_score", "engagement_score", "reasons"):
        assert col in frame.columns
    assert {f"feature:{f.name}" for f in formula_trained.bundle.spec} <= set(frame.columns)
    assert any(c.startswith("points:") for c in frame.columns)
    assert not frame.duplicated(["as_of", "lead_id"]).any()


def test_rescoring_the_same_as_of_replaces_its_run_and_never_duplicates(history, model, formula_crm, tmp_path):
    hist = _copy(history, tmp_path)
    before = read_history(hist)
    done = score_crm(model, formula_crm, tmp_path / "s.csv", as_of=RUNS[1], history=hist)
    after = read_history(hist)
    assert len(run_files(hist)) == len(RUNS) and len(after) == len(before)
    assert done.history in run_files(hist)
    assert not [p for p in hist.rglob(".*") if p.name != "propensity-output.json"]  # no staging left behind
    trends = pd.read_csv(tmp_path / "s.csv")["trend"]
    assert set(trends) <= {"improving", "steady", "declining", "not enough history"}
    assert (trends != "not enough history").any()  # the leads of the first run have an earlier score


def test_history_refuses_a_folder_it_did_not_write_before_any_work(model, formula_crm, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    code = main(["score", "--model", str(model), "--data", str(formula_crm), "--out", str(tmp_path / "s.csv"),
                 "--history", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and "holds files propensity did not write" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"] and not (tmp_path / "s.csv").exists()


def test_a_corrupt_partition_is_named_in_one_line_and_nothing_is_rewritten(history, model, formula_crm, tmp_path,
                                                                            capsys):
    hist = _copy(history, tmp_path)
    bad = run_files(hist)[1]
    bad.write_bytes(bad.read_bytes()[:200])
    before = _snapshot(hist)
    with pytest.raises(HistoryError, match=bad.name):
        read_history(hist)
    code = main(["monitor", "--model", str(model), "--data", str(formula_crm), "--history", str(hist), "--out",
                 str(tmp_path / "rep"), "--no-track"])
    err = capsys.readouterr().err
    assert code == 2 and bad.name in err and len(err.strip().splitlines()) == 1
    assert _snapshot(hist) == before and not (tmp_path / "rep").exists()


def test_a_history_of_another_model_is_refused(history, formula_trained, small_project, formula_crm, tmp_path,
                                               capsys):
    other = formula_trained.bundle
    other = type(other)(**{**other.__dict__, "top_k": other.top_k + 1})  # another bundle: another digest
    ref = reference_bytes(training_reference(formula_trained, small_project))
    path = save_bundle(other, tmp_path / "other", {REFERENCE_FILE: ref})
    before = _snapshot(history)
    code = main(["monitor", "--model", str(path), "--data", str(formula_crm), "--history", str(history), "--out",
                 str(tmp_path / "rep"), "--no-track"])
    err = capsys.readouterr().err
    assert code == 2 and "no run of this model" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(history) == before


def test_an_export_older_than_the_history_or_without_its_leads_is_refused(history, model, formula_crm, tmp_path,
                                                                          capsys):
    from _drift_worlds import cut_world

    old = cut_world(formula_crm, tmp_path / "old", "2025-01-01")
    code = main(["monitor", "--model", str(model), "--data", str(old), "--history", str(history), "--out",
                 str(tmp_path / "rep"), "--no-track"])
    err = capsys.readouterr().err
    assert code == 2 and "before the first run" in err
    stranger = tmp_path / "stranger"
    shutil.copytree(formula_crm, stranger)
    for table in ("leads", "opportunities"):
        frame = pd.read_parquet(stranger / f"{table}.parquet")
        frame["lead_id"] = "other-" + frame["lead_id"].astype(str)
        frame.to_parquet(stranger / f"{table}.parquet", index=False)
    acts = pd.read_parquet(stranger / "activities.parquet")
    acts["lead_id"] = acts["lead_id"].cat.rename_categories(lambda c: "other-" + c)
    acts.to_parquet(stranger / "activities.parquet", index=False)
    code = main(["monitor", "--model", str(model), "--data", str(stranger), "--history", str(history), "--out",
                 str(tmp_path / "rep2"), "--no-track"])
    err = capsys.readouterr().err
    assert code == 2 and "none of the leads" in err


# ------------------------------------------------------------------ monitor


def _direct_outcome(export_dir: Path, lead_ids: pd.Series, as_of: pd.Timestamp, horizon: int) -> np.ndarray:
    """Won within the horizon, computed lead by lead from the export's opportunities table."""
    opps = pd.read_parquet(export_dir / "opportunities.parquet")
    end = as_of + pd.Timedelta(days=horizon)
    won = set()
    for row in opps.itertuples():
        if row.stage == "closed_won" and pd.notna(row.closed_at) and as_of <= row.closed_at < end:
            won.add(str(row.lead_id))
    return np.array([str(i) in won for i in lead_ids], dtype=int)


def test_monitor_writes_exactly_the_summary_the_issue_lists(history, model, formula_crm, tmp_path):
    code = main(["monitor", "--model", str(model), "--data", str(formula_crm), "--history", str(history),
                 "--out", str(tmp_path / "rep"), "--no-track"])
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert set(summary) == {"runs", "alerts"}
    assert code == (3 if summary["alerts"] else 0)
    assert [r["as_of"][:10] for r in summary["runs"]] == RUNS
    for run in summary["runs"]:
        assert set(run) == SUMMARY_RUN_KEYS
        assert set(run["funnel"]) == {"SQL", "MQL", "nurture"}
        assert all(set(v) == {"leads", "won"} for v in run["funnel"].values())
        assert sum(v["leads"] for v in run["funnel"].values()) == run["rows"]
        assert run["auc"] is not None and run["ece"] is not None  # matured runs carry their realized figures
        assert all(v["won"] is not None for v in run["funnel"].values())
    assert [r["matured"] for r in summary["runs"]] == [True, True, True]


def test_realized_auc_and_funnel_equal_those_computed_directly_from_the_export(history, model, formula_crm,
                                                                              tmp_path):
    main(["monitor", "--model", str(model), "--data", str(formula_crm), "--history", str(history),
          "--out", str(tmp_path / "rep"), "--no-track"])
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    frame = read_history(history)
    bundle = load_bundle(model)
    max_age = bundle.metadata["cutoffs"]["max_lead_age_days"]
    checked = 0
    for run in summary["runs"]:
        rows = frame[frame["as_of"] == pd.Timestamp(run["as_of"])]
        won = _direct_outcome(formula_crm, rows["lead_id"], pd.Timestamp(run["as_of"]), bundle.horizon_days)
        for tier, cell in run["funnel"].items():
            assert cell["won"] == int(won[(rows["tier"] == tier).to_numpy()].sum())
        young = (rows["feature:lead_age_days"] <= max_age).to_numpy()
        if 0 < won[young].sum() < young.sum():
            assert run["auc"] == pytest.approx(roc_auc_score(won[young], rows["probability"][young]), abs=1e-12)
            checked += 1
    assert checked >= 2


def test_alert_thresholds_come_from_the_training_yaml_and_exit_3(history, model, formula_crm, tmp_path, capsys):
    from propensity.config import default_project_dir

    cfg_dir = tmp_path / "project"
    shutil.copytree(default_project_dir(), cfg_dir)
    yaml_path = cfg_dir / "training" / "default.yaml"
    text = yaml_path.read_text().replace("score_psi: 0.25", "score_psi: 0.000001")
    yaml_path.write_text(text)
    code = main(["monitor", "--model", str(model), "--data", str(formula_crm), "--history", str(history),
                 "--out", str(tmp_path / "rep"), "--config", str(yaml_path), "--no-track"])
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    psi_alerts = [a for a in summary["alerts"] if a["kind"] == "score_psi"]
    assert code == 3 and [a["run"] for a in psi_alerts] == RUNS  # every run's PSI is above that threshold
    assert "ALERT score_psi" in out
    yaml_path.write_text(text.replace("score_psi: 0.000001", "scor_psi: 0.1"))
    code = main(["monitor", "--model", str(model), "--data", str(formula_crm), "--history", str(history),
                 "--out", str(tmp_path / "rep"), "--config", str(yaml_path), "--no-track"])
    assert code == 2 and "scor_psi" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs it)")
def test_report_html_opens_in_headless_chromium_with_the_alert_and_the_funnel(history, model, formula_crm,
                                                                              tmp_path):
    from propensity.config import default_project_dir

    cfg_dir = tmp_path / "project"
    shutil.copytree(default_project_dir(), cfg_dir)
    yaml_path = cfg_dir / "training" / "default.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("score_psi: 0.25", "score_psi: 0.000001"))
    assert main(["monitor", "--model", str(model), "--data", str(formula_crm), "--history", str(history),
                 "--out", str(tmp_path / "rep"), "--config", str(yaml_path), "--no-track"]) == 3
    page = (tmp_path / "rep" / "report.html").resolve()
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text) and "<script" not in text  # no network
    assert "url(" not in text and "@import" not in text
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3].mean(axis=2)
    assert pixels.shape[0] > 500 and pixels.std() > 0.04  # not a blank page
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    assert "ALERT (score_psi)" in dom
    assert 'class="funnel"' in dom and "conversion rate" in dom and "nurture" in dom


# ------------------------------------------------------------------ trend, service, MLflow


def test_explain_with_history_shows_the_trend_and_what_moved(history, model, formula_crm, capsys):
    frame = read_history(history)
    scores = frame.pivot_table(index="lead_id", columns="as_of", values="score").dropna()
    lead = scores.index[(scores.iloc[:, -1] - scores.iloc[:, -2]).abs().to_numpy() >= 3][0]
    code = main(["explain", "--model", str(model), "--data", str(formula_crm), "--lead", lead, "--as-of", RUNS[-1],
                 "--history", str(history)])
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("history: "))
    assert line.split(" (")[0].removeprefix("history: ") in {"improving", "steady", "declining"}
    assert all(d in line for d in RUNS)
    moved = [x for x in out.splitlines() if x.strip().startswith("changed: ")]
    assert 1 <= len(moved) <= 3 and all("pts →" in x and "(now " in x for x in moved)


def test_a_service_records_its_scores_from_many_threads_in_batches(model, formula_crm, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from propensity.monitoring.service import HistoryRecorder
    from propensity.scoring.scorer import LeadScorer

    scorer = LeadScorer.load(model)
    days = ["2025-05-01T09:00", "2025-05-01T15:00", "2025-05-02T10:00", "2025-05-02T11:00"]
    with HistoryRecorder(scorer, tmp_path / "history", model_uri=model, batch_size=300) as recorder, \
            ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda day: recorder.score(formula_crm, as_of=day), days))
    assert not any(c.startswith(("feature:", "points:")) for c in outs[0].columns)
    frame = read_history(tmp_path / "history")
    assert len(frame) == sum(int(o["tier"].ne("error").sum()) for o in outs)
    assert sorted({f"{t:%Y-%m-%d}" for t in frame["as_of"]}) == ["2025-05-01", "2025-05-02"]
    assert len(recorder.written) >= len(days)  # written in batches, not once at the end
    expected = pd.concat(outs)
    mine = frame.set_index(["lead_id", frame["as_of"].dt.strftime("%Y-%m-%d")])
    assert mine["probability"].between(0, 1).all() and set(mine.index.get_level_values(0)) == set(expected["lead_id"])


def test_a_services_repeated_scores_of_one_day_read_back_in_the_order_written(model, formula_crm, tmp_path):
    from propensity.monitoring.service import HistoryRecorder
    from propensity.scoring.scorer import LeadScorer

    times = [f"2025-05-01T{h:02d}:00" for h in (8, 10, 12, 14, 16, 18)]
    with HistoryRecorder(LeadScorer.load(model), tmp_path / "history", batch_size=1) as recorder:
        outs = [recorder.score(formula_crm, as_of=t) for t in times]
    assert len(recorder.written) == len(times) and recorder.written == sorted(recorder.written)
    frame = read_history(tmp_path / "history", ["lead_id", "probability"])
    assert len(frame) == sum(len(o) for o in outs) and "filename" not in frame.columns
    last = frame.drop_duplicates("lead_id", keep="last").set_index("lead_id")["probability"]
    final = outs[-1].set_index("lead_id")["probability"]
    assert np.allclose(last.loc[final.index], final)  # the monitor keeps a lead's last score of the day


def test_monitor_logs_an_mlflow_run_with_steps_inputs_name_and_description(history, model, formula_crm, tmp_path):
    import mlflow

    from propensity import jobs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = jobs.monitor(model, formula_crm, history, tmp_path / "rep", tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(done.run["run_id"])
    assert run.info.run_name == f"monitor {done.result.export_end:%Y-%m-%d}"
    assert run.data.tags["mlflow.note.content"].startswith(("No alert", f"{len(done.alerts)} alert"))
    steps = client.get_metric_history(run.info.run_id, "score_psi")
    assert sorted(m.step for m in steps) == list(range(len(RUNS)))
    assert [m.value for m in sorted(steps, key=lambda m: m.step)] == [r["score_psi"] for r in done.summary["runs"]]
    names = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert names == {f"crm export {formula_crm.name}", f"score history {history.name}"}
    export_input = next(d for d in run.inputs.dataset_inputs if d.dataset.name.startswith("crm export"))
    tags = {t.key: t.value for t in export_input.tags}
    assert tags["leads"] == str(len(pd.read_parquet(formula_crm / "leads.parquet")))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert {"monitoring/summary.json", "monitoring/report.html"} <= artifacts


def test_an_export_ending_before_any_run_matured_gives_estimates_only(history, model, formula_crm, tmp_path):
    from _drift_worlds import cut_world

    early = cut_world(formula_crm, tmp_path / "early", "2025-05-01")  # after the first run, before it matures
    code = main(["monitor", "--model", str(model), "--data", str(early), "--history", str(history), "--out",
                 str(tmp_path / "rep"), "--no-track"])
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    details = json.loads((tmp_path / "rep" / "details.json").read_text())
    assert code in (0, 3) and not any(r["matured"] for r in summary["runs"])
    assert all(r["auc"] is None and r["estimated_auc"] is not None for r in summary["runs"])
    assert all(cell["won"] is None for r in summary["runs"] for cell in r["funnel"].values())
    assert any("no run has matured yet" in n for n in details["notes"])
    assert "no run has matured yet" in (tmp_path / "rep" / "report.html").read_text()


@pytest.mark.slow
def test_training_runs_get_a_readable_name_a_description_and_their_export_as_input(formula_crm, tmp_path):
    import mlflow

    from propensity import jobs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = jobs.train(formula_crm, tmp_path / "model", tracking_uri=uri)
    run = mlflow.MlflowClient(uri).get_run(done.run["run_id"])
    assert run.info.run_name == f"train crm {done.result.bundle.metadata['data_end'][:10]}"
    assert run.data.tags["mlflow.note.content"].startswith(
        f"ROC AUC {done.result.metrics['model']['roc_auc']:.3f}")
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == f"crm export {formula_crm.name}" and len(dataset.dataset.digest) == 16
    tags = {t.key: t.value for t in dataset.tags}
    assert tags["test_rows"] == str(done.result.split["test"]["rows"])
    assert read_reference(tmp_path / "model")["rows"] == done.result.split["test"]["rows"]


@pytest.mark.slow
def test_monitoring_a_registered_model_logs_into_the_experiment_of_its_training_run(formula_crm, tmp_path):
    import mlflow

    from propensity import jobs
    from propensity.config import default_project_dir

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = jobs.train(formula_crm, tmp_path / "model", tracking_uri=uri)
    registered = f"models:/{done.run['registered_model']}/{done.run['version']}"
    for as_of in RUNS[:2]:
        score_crm(tmp_path / "model", formula_crm, tmp_path / "scores.parquet", as_of=as_of,
                  history=tmp_path / "history")
    default = default_project_dir() / "training" / "default.yaml"
    config = tmp_path / "other.yaml"  # a config naming another experiment: the registered version's run wins
    config.write_text(default.read_text().replace("experiment: propensity", "experiment: somewhere-else")
                      .replace("features_dir: ../features", f"features_dir: {default.parent.parent / 'features'}"))
    mlflow.set_tracking_uri(uri)
    mon = jobs.monitor(registered, formula_crm, tmp_path / "history", tmp_path / "rep", config=config,
                       tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    trained_in = client.get_run(done.run["run_id"]).info.experiment_id
    assert client.get_run(mon.run["run_id"]).info.experiment_id == trained_in
    assert mon.run["experiment"] == client.get_experiment(trained_in).name == "propensity"
    folder = jobs.monitor(tmp_path / "model", formula_crm, tmp_path / "history", tmp_path / "rep2", config=config,
                          tracking_uri=uri)  # a folder carries no run: the config's experiment
    assert folder.run["experiment"] == "somewhere-else"


def test_evaluation_runs_get_a_readable_name_a_description_and_the_export_as_input(model, formula_crm, tmp_path):
    import mlflow

    from propensity import jobs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = jobs.evaluate(model, formula_crm, tmp_path / "eval", window="all", tracking_uri=uri)
    run = mlflow.MlflowClient(uri).get_run(done.run["run_id"])
    params = done.evaluation["params"]
    assert run.info.run_name == f"evaluate crm {params['last_cutoff']}"
    m = done.evaluation["metrics"]["model"]
    assert run.data.tags["mlflow.note.content"].startswith(f"ROC AUC {m['roc_auc']:.3f} (PR AUC {m['pr_auc']:.3f}")
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == formula_crm.name and len(dataset.dataset.digest) == 16
    assert {t.key: t.value for t in dataset.tags}["rows"] == str(done.evaluation["rows"])
