"""Damaged, edited and invalid bundles: digests, the bundle.json layout, the model's tree layout, the CLI."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from _tables import lead_table

from propensity.config import default_project_dir, load_project
from propensity.features.spec import build_feature_spec
from propensity.scoring.bundle import Bundle, BundleError, UnverifiedBundleWarning, save_bundle
from propensity.scoring.calibration import Calibrator
from propensity.scoring.model_text import layout_problem
from propensity.tabular.bundle import load_any_bundle
from propensity.tabular.train import train_table

ISOTONIC = Calibrator("isotonic", x=[0.1, 0.5, 0.9], y=[0.05, 0.4, 0.8])


@pytest.fixture(scope="module")
def crm_bundle() -> Bundle:
    """A small real CRM bundle: the packaged configs' feature spec, a LightGBM model on random rows."""
    project = load_project(default_project_dir() / "training" / "default.yaml")
    spec = build_feature_spec(project.icp, project.engagement)
    rng = np.random.default_rng(0)
    n = 600
    cols, categories = {}, {}
    for f in spec:
        if f.kind == "categorical":
            categories[f.name] = ["a", "b", "c"]
            cols[f.name] = pd.Categorical(rng.choice(categories[f.name], n), categories=categories[f.name])
        else:
            cols[f.name] = rng.normal(size=n)
    x = pd.DataFrame(cols)
    y = (x[spec[0].name] + x[spec[-1].name] + rng.normal(size=n) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 0}, lgb.Dataset(x, y),
                        num_boost_round=20)
    return Bundle(booster=booster, spec=spec, categories=categories, calibrator=ISOTONIC, icp=project.icp,
                  engagement=project.engagement, tiers=project.training.tiers, metadata={"note": "test"})


@pytest.fixture(scope="module")
def crm_dir(crm_bundle, tmp_path_factory) -> Path:
    return save_bundle(crm_bundle, tmp_path_factory.mktemp("crm") / "model")


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory) -> Path:
    result = train_table(lead_table(1000), "converted", id_column="lead_id", exclude=("call_duration",), budget_s=0,
                         model_family="lightgbm")  # the damage below is done to LightGBM's model.txt
    return save_bundle(result.bundle, tmp_path_factory.mktemp("table") / "model")


def test_an_edited_additive_model_is_refused(tmp_path):
    from propensity.tabular.bundle import load_table_bundle

    result = train_table(lead_table(1000), "converted", id_column="lead_id", exclude=("call_duration",), budget_s=0,
                         model_family="logistic")
    folder = save_bundle(result.bundle, tmp_path / "model")
    load_table_bundle(folder)  # as written: verified and loaded
    model = folder / "model.json"
    text = model.read_text()
    model.write_text(text.replace('"intercept": -', '"intercept": -1', 1) if '"intercept": -' in text
                     else text.replace('"intercept": ', '"intercept": 1', 1))
    with pytest.raises(BundleError, match=r"model\.json: its SHA-256 does not match"):
        load_table_bundle(folder)


@pytest.fixture(params=["crm", "table"])
def bundle(request, crm_dir, table_dir, tmp_path) -> Path:
    """A fresh copy of one saved bundle, free to damage."""
    return Path(shutil.copytree(crm_dir if request.param == "crm" else table_dir, tmp_path / request.param))


# ------------------------------------------------------------------ damage


def _meta(folder: Path) -> dict:
    return json.loads((folder / "bundle.json").read_text())


def _write_meta(folder: Path, meta) -> None:
    (folder / "bundle.json").write_text(json.dumps(meta, indent=2))


def _strip_digests(folder: Path) -> Path:
    """Make ``folder`` look like a bundle saved before digests existed."""
    meta = _meta(folder)
    del meta["files"], meta["content_sha256"]
    _write_meta(folder, meta)
    return folder


def _truncate(folder: Path) -> Path:
    data = (folder / "model.txt").read_bytes()
    (folder / "model.txt").write_bytes(data[: len(data) // 2])
    return folder


def _wrong_tree_sizes(folder: Path) -> Path:
    text = (folder / "model.txt").read_text()
    text = re.sub(r"^tree_sizes=(\d+)", lambda m: f"tree_sizes={int(m.group(1)) + 7}", text, count=1, flags=re.M)
    (folder / "model.txt").write_text(text)
    return folder


def _no_tree_sizes_and_truncated(folder: Path) -> Path:
    text = re.sub(r"^tree_sizes=.*\n", "", (folder / "model.txt").read_text(), count=1, flags=re.M)
    (folder / "model.txt").write_text(text[: len(text) * 2 // 3])
    return folder


def _edit_a_leaf(folder: Path) -> Path:
    """Change one digit of the first leaf value: the file keeps its length, tree_sizes stays right."""
    text = (folder / "model.txt").read_text()
    line = re.search(r"^leaf_value=(\S+)", text, flags=re.M)
    value = line.group(1)
    i = value.find(".") + 1 if re.match(r"-?\d\.\d", value) else value.find(next(c for c in value if c.isdigit()))
    edited = value[:i] + str((int(value[i]) + 5) % 10) + value[i + 1:]  # the first decimal: a real change
    assert len(edited) == len(value) and float(edited) != float(value)
    (folder / "model.txt").write_text(text[: line.start(1)] + edited + text[line.end(1):])
    return folder


# ------------------------------------------------------------------ digests


def test_saved_bundle_records_the_digest_of_its_model_and_of_its_metadata(bundle):
    meta = _meta(bundle)
    assert meta["files"] == {"model.txt": hashlib.sha256((bundle / "model.txt").read_bytes()).hexdigest()}
    assert re.fullmatch(r"[0-9a-f]{64}", meta["content_sha256"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified bundle loads without a warning
        load_any_bundle(bundle)


def test_same_length_leaf_edit_is_refused(bundle):
    before = (bundle / "model.txt").stat().st_size
    _edit_a_leaf(bundle)
    assert (bundle / "model.txt").stat().st_size == before
    lgb.Booster(model_file=str(bundle / "model.txt"))  # LightGBM alone takes the edited model without a word
    with pytest.raises(BundleError) as err:
        load_any_bundle(bundle)
    msg = str(err.value)
    assert str(bundle / "model.txt") in msg and "SHA-256" in msg and "\n" not in msg


def test_model_from_another_save_is_refused(crm_bundle, tmp_path):
    first = save_bundle(crm_bundle, tmp_path / "first")
    other = Bundle(**{**crm_bundle.__dict__, "booster": lgb.Booster(model_str=crm_bundle.booster.model_to_string(
        num_iteration=10))})
    second = save_bundle(other, tmp_path / "second")
    shutil.copyfile(second / "model.txt", first / "model.txt")  # same features, different trees
    with pytest.raises(BundleError, match=r"model\.txt: its SHA-256 does not match"):
        load_any_bundle(first)


def test_edited_metadata_is_refused_but_reformatting_is_not(bundle):
    meta = _meta(bundle)
    (bundle / "bundle.json").write_text(json.dumps(dict(reversed(meta.items())), indent=4))  # same content
    load_any_bundle(bundle)
    meta["top_k"] = 5 if meta["top_k"] != 5 else 4  # valid, but not what was saved
    _write_meta(bundle, meta)
    with pytest.raises(BundleError) as err:
        load_any_bundle(bundle)
    assert str(bundle / "bundle.json") in str(err.value) and "content_sha256" in str(err.value)


def test_missing_model_file_is_named(bundle):
    (bundle / "model.txt").unlink()
    with pytest.raises(BundleError, match=r"incomplete \(no model\.txt\)"):
        load_any_bundle(bundle)


def test_bundle_saved_without_digests_loads_with_a_warning(bundle, tmp_path):
    expected = load_any_bundle(bundle).booster.model_to_string()
    _strip_digests(bundle)
    with pytest.warns(UnverifiedBundleWarning, match="no SHA-256 digests") as caught:
        old = load_any_bundle(bundle)
    assert str(bundle) in str(caught[0].message)
    assert old.booster.model_to_string() == expected
    resaved = save_bundle(old, tmp_path / "resaved")  # saving it again adds the digests
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_any_bundle(resaved)


def test_unverified_warning_can_be_made_an_error(bundle):
    _strip_digests(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedBundleWarning)
        with pytest.raises(UnverifiedBundleWarning):
            load_any_bundle(bundle)


def test_digest_for_a_file_outside_the_bundle_folder_is_refused(bundle):
    meta = _meta(bundle)
    meta["files"]["../model.txt"] = meta["files"]["model.txt"]
    _write_meta(bundle, meta)
    with pytest.raises(BundleError, match=r"files\.\.\./model\.txt"):
        load_any_bundle(bundle)


# --------------------------------------------- damage that used to crash LightGBM

CRASH_CASES = {
    "truncated": (_truncate, False, "its SHA-256 does not match"),
    "wrong tree_sizes": (_wrong_tree_sizes, False, "its SHA-256 does not match"),
    "old, truncated": (_truncate, True, "cut short"),
    "old, wrong tree_sizes": (_wrong_tree_sizes, True, "where tree_sizes puts it"),
    "old, no tree_sizes, truncated": (_no_tree_sizes_and_truncated, True, "cut short"),
}

LOAD_ALL = """
import json, sys, warnings
from propensity.scoring.bundle import BundleError
from propensity.tabular.bundle import load_any_bundle
warnings.simplefilter("ignore")
out = {}
for case, path in json.loads(sys.argv[1]).items():
    try:
        load_any_bundle(path)
        out[case] = "loaded"
    except BundleError as exc:
        out[case] = str(exc)
print(json.dumps(out))
"""


def test_truncated_or_misaligned_models_give_an_error_not_a_crash(crm_dir, table_dir, tmp_path):
    """In a child process: without the checks LightGBM aborts (SIGABRT) or segfaults the whole process."""
    paths = {}
    for kind, src in (("crm", crm_dir), ("table", table_dir)):
        for case, (damage, old, _) in CRASH_CASES.items():
            folder = Path(shutil.copytree(src, tmp_path / f"{kind}-{case}".replace(" ", "_").replace(",", "")))
            paths[f"{kind}: {case}"] = str(damage(_strip_digests(folder) if old else folder))
    run = subprocess.run([sys.executable, "-c", LOAD_ALL, json.dumps(paths)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-800:]}"
    assert "[LightGBM]" not in run.stdout + run.stderr  # LightGBM never saw the damaged text
    got = json.loads(run.stdout)
    for key, path in paths.items():
        expected = CRASH_CASES[key.split(": ", 1)[1]][2]
        assert got[key].startswith(f"{path}/model.txt: ") and expected in got[key], (key, got[key])


@pytest.mark.parametrize("damage", [_truncate, _wrong_tree_sizes, _no_tree_sizes_and_truncated])
def test_layout_check_finds_damage_and_passes_the_real_model(crm_dir, tmp_path, damage):
    data = (crm_dir / "model.txt").read_bytes()
    assert layout_problem(data) is None
    assert layout_problem(data.replace(b"\n", b"\r\n")) is not None  # line ends converted on a copy
    folder = damage(Path(shutil.copytree(crm_dir, tmp_path / "m")))
    assert layout_problem((folder / "model.txt").read_bytes()) is not None


# ------------------------------------------------------------- bundle.json validation


def _set(path: str, value):
    """An edit that sets the dotted ``path`` of bundle.json to ``value``."""
    def edit(meta: dict) -> None:
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[int(last) if isinstance(node, list) else last] = value
    return edit


def _drop(key: str):
    return lambda meta: meta.pop(key)


BOTH = [
    ("isotonic y above 1", _set("calibration", {"method": "isotonic", "x": [0.1, 0.5, 0.9],
                                                "y": [0.05, 0.4, 2.0965], "a": 1.0, "b": 0.0}),
     r"calibration\.y\.2: Input should be less than or equal to 1"),
    ("misspelled method", _set("calibration.method", "isotonc"), r"calibration\.method: Input should be 'isotonic'"),
    ("top_k -5", _set("top_k", -5), r"top_k: Input should be greater than or equal to 1"),
    ("top_k 50", _set("top_k", 50), r"top_k: Input should be less than or equal to 20"),
    ("top_k text", _set("top_k", "three"), r"top_k: Input should be a valid integer"),
    ("isotonic x decreasing", _set("calibration", {"method": "isotonic", "x": [0.5, 0.1], "y": [0.1, 0.2]}),
     r"calibration: isotonic x must not decrease, but x\[1\] = 0\.1 follows 0\.5"),
    ("isotonic y decreasing", _set("calibration", {"method": "isotonic", "x": [0.1, 0.5], "y": [0.2, 0.1]}),
     r"calibration: isotonic y must not decrease"),
    ("isotonic lengths differ", _set("calibration", {"method": "isotonic", "x": [0.1, 0.5], "y": [0.2]}),
     r"calibration: isotonic calibration needs x and y of one length"),
    ("empty isotonic table", _set("calibration", {"method": "isotonic", "x": [], "y": []}),
     r"calibration: isotonic calibration needs x and y"),
    ("sigmoid with NaN", _set("calibration", {"method": "sigmoid", "a": float("nan"), "b": 0.0}),
     r"calibration\.a: Input should be a finite number"),
    ("table beside method none", _set("calibration", {"method": "none", "x": [0.1], "y": [0.2]}),
     r"calibration: method 'none' takes no x / y table"),
    ("misspelled calibration key", _set("calibration.methd", "sigmoid"),
     r"unknown key 'calibration\.methd'; allowed keys here: a, b, hi, lo, method, x, y"),
    ("unknown top-level key", _set("top_kk", 3), r"unknown key 'top_kk'; allowed keys here: .*top_k"),
    ("metadata not an object", _set("metadata", [1, 2]), r"metadata: Input should be a valid dictionary"),
    ("unknown kind", _set("kind", "tabel"), r"kind: expected 'crm' or 'table', got 'tabel'"),
    ("digest of files only", _drop("content_sha256"), r"'files' without 'content_sha256'"),
    ("malformed digest", lambda m: m["files"].update({"model.txt": "abc"}),
     r"files\.model\.txt: String should match pattern"),
    ("no calibration", _drop("calibration"), r"calibration: Field required"),
]
CRM = [
    ("horizon_days 0", _set("horizon_days", 0), r"horizon_days: Input should be greater than 0"),
    ("feature kind", _set("features.3.kind", "cat"), r"features\.3\.kind: Input should be 'numeric' or 'categorical'"),
    ("feature monotone", _set("features.0.monotone", 2), r"features\.0\.monotone: Input should be -1, 0 or 1"),
    ("duplicate feature", lambda m: m["features"].append(m["features"][0]), r"features: duplicate values"),
    ("categories of a numeric feature", _set("categories.lead_age_days", ["x"]),
     r"categories: 'lead_age_days' is not a categorical feature"),
    ("tiers.sql above 1", _set("tiers.sql", 1.5), r"tiers\.sql: Input should be less than or equal to 1"),
    ("tiers out of order", _set("tiers.mql", 0.9), r"tiers: sql \(0\.15\) must be at or above mql \(0\.9\)"),
    ("icp typo", _set("icp.criteria.0.kidn", "in"), r"unknown key 'icp\.criteria\.0\.kidn'; allowed keys here: .*kind"),
    ("engagement window 0", _set("engagement.windows_days.0", 0), r"engagement\.windows_days\.0: Input should be"),
]
TABLE = [
    ("column kind", _set("table.columns.0.kind", "numbr"), r"table\.columns\.0\.kind: Input should be 'numeric'"),
    ("categorical without categories", lambda m: next(c for c in m["table"]["columns"]
                                                      if c["kind"] == "categorical").pop("categories"),
     r"table\.columns\.\d+: .*needs a non-empty 'categories' list"),
    ("sentinel on a boolean column", lambda m: next(c for c in m["table"]["columns"]
                                                    if c["kind"] == "boolean").update(sentinels=[999.0]),
     r"table\.columns\.\d+: column 'newsletter' of kind 'boolean' takes no 'sentinels'"),
    ("unknown table key", _set("table.colums", []), r"unknown key 'table\.colums'; allowed keys here: .*columns"),
    ("crm keys in a table bundle", _set("horizon_days", 90), r"unknown key 'horizon_days'"),
    ("target among the inputs", lambda m: m["table"]["input_columns"].append("converted"),
     r"table: the target 'converted' is among input_columns"),
]


def _cases(kind: str) -> list:
    own = CRM if kind == "crm" else TABLE
    return [pytest.param(kind, edit, expected, id=f"{kind}: {name}") for name, edit, expected in BOTH + own]


@pytest.mark.parametrize("kind, edit, expected", _cases("crm") + _cases("table"))
def test_invalid_bundle_json_names_the_field(crm_dir, table_dir, tmp_path, kind, edit, expected):
    folder = Path(shutil.copytree(crm_dir if kind == "crm" else table_dir, tmp_path / kind))
    meta = _meta(folder)
    edit(meta)
    _write_meta(folder, meta)
    with pytest.raises(BundleError) as err:
        load_any_bundle(folder)
    msg = str(err.value)
    assert msg.startswith(f"{folder / 'bundle.json'}: ") and "\n" not in msg
    assert re.search(expected, msg), msg


def test_bundle_json_that_is_no_object_is_named(bundle):
    _write_meta(bundle, [1, 2, 3])
    with pytest.raises(BundleError, match=r"bundle\.json: expected a JSON object at the top level, found list"):
        load_any_bundle(bundle)


def test_save_refuses_a_bundle_that_could_not_be_loaded(crm_bundle, crm_dir, tmp_path):
    target = Path(shutil.copytree(crm_dir, tmp_path / "latest"))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    bad = Bundle(**{**crm_bundle.__dict__, "calibrator": Calibrator("isotonic", x=[0.2, 0.1], y=[0.1, 0.2])})
    with pytest.raises(BundleError, match=r"calibration: isotonic x must not decrease.*; nothing was saved"):
        save_bundle(bad, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]
    with pytest.raises(BundleError, match=r"top_k: Input should be greater than or equal to 1"):
        save_bundle(Bundle(**{**crm_bundle.__dict__, "top_k": -5}), tmp_path / "new")
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------ CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "propensity.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("damage, expected", [
    (_truncate, r"model\.txt: its SHA-256 does not match"),
    (None, r"bundle\.json: calibration\.y\.2: Input should be less than or equal to 1"),
], ids=["truncated model", "isotonic y above 1"])
def test_cli_score_with_a_damaged_bundle_prints_one_line_and_exits_2(crm_dir, tmp_path, damage, expected):
    folder = Path(shutil.copytree(crm_dir, tmp_path / "model"))
    if damage is None:
        meta = _meta(folder)
        meta["calibration"]["y"][2] = 2.0965
        _write_meta(folder, meta)
    else:
        damage(folder)
    (tmp_path / "crm").mkdir()
    out = tmp_path / "scores.csv"
    run = _cli("score", "--model", str(folder), "--data", str(tmp_path / "crm"), "--out", str(out))
    assert run.returncode == 2, run.stderr[-800:]
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder}/") and re.search(expected, lines[0]), lines
    assert not out.exists()


def test_cli_scores_with_an_old_bundle_and_says_it_is_unverified(table_dir, tmp_path):
    folder = _strip_digests(Path(shutil.copytree(table_dir, tmp_path / "model")))
    data = tmp_path / "new.csv"
    lead_table(50, seed=3).drop(columns=["converted"]).to_csv(data, index=False)
    out = tmp_path / "scores.csv"
    run = _cli("score", "--model", str(folder), "--data", str(data), "--out", str(out))
    assert run.returncode == 0, run.stderr[-800:]
    assert run.stderr.splitlines() == [f"warning: {folder}: this bundle has no SHA-256 digests (saved by an older "
                                       "propensity), so damage to its files cannot be detected; retrain, or load "
                                       "it and save_bundle it to a new folder, to add them"]
    assert len(pd.read_csv(out)) == 50


# --------------------------------------------------------------------- MLflow


@pytest.mark.slow
def test_models_uri_is_verified_after_download(table_dir, tmp_path):
    """A damaged copy in the MLflow artifact store is refused by TableScorer.load("models:/...")."""
    import mlflow

    from propensity.tabular.scorer import TableScorer
    from propensity.tracking import log_report_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# test\n")
    previous = mlflow.get_tracking_uri()
    try:
        log_report_run(report, {}, {}, {}, uri, bundle_path=table_dir, registered_model="integrity-test")
        mlflow.set_tracking_uri(uri)
        TableScorer.load("models:/integrity-test/1")  # as logged: verified and loaded
        stored = [p for p in (tmp_path / "mlartifacts").rglob("model.txt") if p.parent.name == "bundle"]
        assert len(stored) == 1
        _edit_a_leaf(stored[0].parent)
        with pytest.raises(BundleError, match=r"model\.txt: its SHA-256 does not match"):
            TableScorer.load("models:/integrity-test/1")
    finally:
        mlflow.set_tracking_uri(previous)
