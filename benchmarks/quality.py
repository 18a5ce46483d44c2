"""Model quality: ``propensity train`` defaults vs ``LGBMClassifier()`` vs FLAML AutoML, same budget.

Tables, each with one fixed train/test split shared by the three contenders:

- ``bank``: ``../shared/data/bank-marketing/bank-additional-full.csv``, target
  ``output``, ``duration`` dropped (it leaks), the README's split: stratified
  70/30, ``random_state=0``; categorical columns as pandas ``category`` for the
  baselines (as in the README's reference figures);
- ``synthetic``: a synthetic CRM world flattened to one row per (lead, snapshot)
  with the point-in-time features and the label; the newest 30 % of snapshot
  dates are the test rows (time split; ``cutoff`` is the time column for our
  trainer). Also prints the oracle AUC of the generator's true probabilities.

Contenders: our flat-table trainer with its defaults (``train_table``: Optuna
search within ``--budget`` seconds, calibration, refit), ``LGBMClassifier()``
with defaults, and FLAML ``AutoML`` with ``time_budget=--budget`` and metric
ROC AUC (skipped with a message when FLAML is not installed:
``pip install "flaml[automl]"``). Also times default training of a 10,000-row sample of
the bank training rows. Prints test ROC AUC side by side.

``--only goals``: the real-data goals on every table (the bank table by the
README's split and in its row order, which is time order with a rising rate; CRM
worlds: the default one and the generator's hazard worlds where it has them):
the shipped model against the simple families **on its own test rows**: test log
loss at most the best simple family's, AUC at least the best simple family's minus
0.005, scores not near-constant (10th-90th percentile spread above 0.1 x the base
rate), ECE at most 0.02 where the base rate does not move, else the predicted mean
within 20 % of the observed rate. One line per table, each goal marked.

    python benchmarks/quality.py [--budget 60] [--leads 8000] [--only bank|synthetic|goals] [--no-timing]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from propensity.tabular.scorer import TableScorer
from propensity.tabular.train import train_table

BANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "bank-marketing" / "bank-additional-full.csv"


def _as_category(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype("category")
    return df


def _ours(train: pd.DataFrame, test: pd.DataFrame, target: str, budget: float, time_column: str | None) -> tuple:
    t = time.perf_counter()
    result = train_table(train.reset_index(drop=True), target, time_column=time_column, budget_s=budget)
    seconds = time.perf_counter() - t
    p = TableScorer(result.bundle).predict(test.drop(columns=[target]).reset_index(drop=True))
    return p, seconds


def _lgbm_defaults(x_tr, y_tr, x_te) -> tuple:
    import lightgbm as lgb

    t = time.perf_counter()
    m = lgb.LGBMClassifier(verbose=-1).fit(x_tr, y_tr)
    return m.predict_proba(x_te)[:, 1], time.perf_counter() - t


def _flaml(x_tr, y_tr, x_te, budget: float) -> tuple:
    try:
        from flaml import AutoML
    except ImportError:
        return None, 0.0
    t = time.perf_counter()
    automl = AutoML()
    automl.fit(x_tr, y_tr, task="classification", metric="roc_auc", time_budget=budget, verbose=0, seed=0)
    return automl.predict_proba(x_te)[:, 1], time.perf_counter() - t


def run_table(name: str, train: pd.DataFrame, test: pd.DataFrame, target: str, budget: float,
              time_column: str | None = None, extra: str = "") -> dict:
    y_tr = train[target].astype(str).str.lower().isin(["yes", "1", "true"]).to_numpy().astype(int)
    y_te = test[target].astype(str).str.lower().isin(["yes", "1", "true"]).to_numpy().astype(int)
    feats = [c for c in train.columns if c not in (target, time_column)]
    x_tr, x_te = _as_category(train[feats]), _as_category(test[feats])
    for c in x_te.columns:  # same category codes on both sides
        if isinstance(x_tr[c].dtype, pd.CategoricalDtype):
            x_te[c] = pd.Categorical(test[c], categories=x_tr[c].cat.categories)
    print(f"\n[{name}] train {len(train):,} rows, test {len(test):,} rows, test base rate {y_te.mean():.2%}{extra}",
          flush=True)
    out = {}
    p, s = _ours(train, test, target, budget, time_column)
    out["propensity train"] = (roc_auc_score(y_te, p), s)
    p, s = _lgbm_defaults(x_tr, y_tr, x_te)
    out["LGBMClassifier()"] = (roc_auc_score(y_te, p), s)
    p, s = _flaml(x_tr, y_tr, x_te, budget)
    if p is None:
        print('  FLAML is not installed (pip install "flaml[automl]"); its column is left out')
    else:
        out[f"FLAML AutoML {budget:g}s"] = (roc_auc_score(y_te, p), s)
    for who, (auc, sec) in out.items():
        print(f"  {who:24} test ROC AUC {auc:.4f}   ({sec:.1f}s)")
    return out


def bank(budget: float) -> dict | None:
    if not BANK.exists():
        print(f"\n[bank] skipped: {BANK} not found")
        return None
    df = pd.read_csv(BANK).drop(columns=["duration"])
    train, test = train_test_split(df, test_size=0.3, stratify=df["output"], random_state=0)
    return run_table("bank", train, test, "output", budget)


def synthetic(budget: float, leads: int, seed: int = 0) -> dict:
    import tempfile

    from propensity.config import load_project
    from propensity.data.export import read_export
    from propensity.data.synthetic import oracle_probability, write_world
    from propensity.features.cutoffs import training_cutoffs
    from propensity.features.pipeline import build_features

    project = load_project()
    cfg = project.training
    with tempfile.TemporaryDirectory() as tmp:
        world = write_world(Path(tmp) / "crm", n_leads=leads, seed=seed)
        export = read_export(world)
        cut = training_cutoffs(export, cfg.cutoffs, cfg.label.horizon_days)
        frame = build_features(export, cut, project.icp, project.engagement)
        truth = pd.read_parquet(world / "ground_truth.parquet")
    dates = np.sort(frame["cutoff"].unique())
    test_start = dates[int(len(dates) * 0.7)]
    frame = frame.assign(label=np.where(frame["label"].astype(int) == 1, "yes", "no"))
    is_test = (frame["cutoff"] >= test_start).to_numpy()
    oracle_p = oracle_probability(export, frame.loc[is_test, ["lead_id", "cutoff"]], cfg.label.horizon_days,
                                  truth=truth)
    oracle = roc_auc_score(frame.loc[is_test, "label"].eq("yes"), oracle_p)
    flat = frame.drop(columns=["lead_id"])
    out = run_table(f"synthetic ({leads:,} leads, seed {seed})", flat[~is_test], flat[is_test], "label", budget,
                    time_column="cutoff", extra=f"; oracle AUC {oracle:.4f}")
    auc = out["propensity train"][0]
    print(f"  propensity train / oracle = {auc / oracle:.3f} (goal >= 0.98)")
    return out


def timing_10k(budget: float) -> None:
    if not BANK.exists():
        return
    df = pd.read_csv(BANK).drop(columns=["duration"]).sample(n=10_000, random_state=0).reset_index(drop=True)
    t = time.perf_counter()
    train_table(df, "output", budget_s=budget)
    print(f"\n[timing] default training of a 10,000-row table (budget {budget:g}s): "
          f"{time.perf_counter() - t:.1f}s wall")


LEAD_COLUMNS = ["landing_page", "origin"]  # lead columns of the hazard worlds, named in icp.yaml when present
HAZARDS = [  # (name, write_world keyword arguments, whether the base rate moves over time by construction)
    ("default", {}, False),
    ("small: 2,000 leads, ~100 won", {"n_leads": 2000, "hazards": {"in_market_shift": 0.3}}, False),
    ("the issue's funnel", {"hazards": {"landing_pages": 500, "origin": True, "activity_scale": 0.01,
                                        "drift": ["late-wins"]}}, True),
    ("500 landing pages + origin", {"hazards": {"landing_pages": 500, "origin": True}}, False),
    ("sparse activity", {"hazards": {"activity_scale": 0.01}}, False),
    ("base-rate drift", {"hazards": {"drift": ["base-rate"]}}, True),
    ("mechanics drift", {"hazards": {"drift": ["mechanics"]}}, False),
    ("mix drift", {"hazards": {"drift": ["mix"]}}, True),
]


def _goal_row(name: str, y: np.ndarray, shipped: np.ndarray, simple: dict[str, np.ndarray], family: str,
              verdict: str, moved: bool, other: dict[str, np.ndarray] | None = None) -> dict:
    from sklearn.metrics import log_loss

    from propensity.modeling.metrics import expected_calibration_error

    def figures(p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return roc_auc_score(y, p), log_loss(y, p, labels=[0, 1])

    auc, loss = figures(shipped)
    best = {n: figures(p) for n, p in simple.items()}
    best_auc = max(a for a, _ in best.values())
    best_loss = min(lo for _, lo in best.values())
    base = y.mean()
    spread = float(np.quantile(shipped, 0.9) - np.quantile(shipped, 0.1))
    ece = expected_calibration_error(y, shipped)
    ratio = shipped.mean() / base if base else float("nan")
    goals = {"loss": loss <= best_loss + 1e-12, "auc": auc >= best_auc - 0.005, "spread": spread > 0.1 * base,
             "calibration": (abs(ratio - 1) <= 0.2) if moved else ece <= 0.02}
    cells = "  ".join(f"{n} {a:.4f}/{lo:.4f}" for n, (a, lo) in {**best, **{k: figures(v) for k, v in
                                                                          (other or {}).items()}}.items())
    marks = " ".join(f"{k}:{'ok' if v else 'MISS'}" for k, v in goals.items())
    print(f"  {name:34} rows {len(y):>7,} conv {int(y.sum()):>5,}  shipped {family:9} {auc:.4f}/{loss:.4f}  "
          f"[{cells}]  ece {ece:.4f} pred/obs {ratio:.2f}{' (rate moved)' if moved else ''}  {verdict:13} {marks}",
          flush=True)
    return {"name": name, "family": family, "auc": auc, "log_loss": loss, "goals": goals}


def _project(world: Path, tmp: Path):
    """The default project, plus the hazard world's lead columns as ICP values when the world has them."""
    import shutil

    import yaml

    from propensity.config import default_project_dir, load_project

    columns = [c for c in LEAD_COLUMNS if c in pd.read_parquet(world / "leads.parquet").columns]
    if not columns:
        return load_project()
    root = tmp / "project"
    shutil.copytree(default_project_dir(), root)
    icp = yaml.safe_load((root / "features" / "icp.yaml").read_text())
    icp["criteria"] += [{"name": c, "table": "leads", "column": c, "display": c.replace("_", " ").capitalize(),
                         "kind": "value"} for c in columns]
    (root / "features" / "icp.yaml").write_text(yaml.safe_dump(icp))
    return load_project(root / "training" / "default.yaml")


def goals(budget: float, leads: int) -> list[dict]:
    import inspect
    import tempfile

    from propensity.data.export import read_export
    from propensity.data.synthetic import oracle_probability, write_world
    from propensity.modeling.train import train

    print("\n[goals] test ROC AUC / log loss of the shipped model and the simple families on the same rows")
    rows = []
    if BANK.exists():
        df = pd.read_csv(BANK).drop(columns=["duration"])
        for name, frame, time_column in (("bank, README split", df, None),
                                         ("bank, time order", df.assign(row=np.arange(len(df))), "row")):
            r = train_table(frame, "output", time_column=time_column, budget_s=budget)
            y = r.y_test
            other = {k: v for k, v in r.predictions.items() if k == "lightgbm"}
            rows.append(_goal_row(name, y, r.predictions["model"],
                                  {"logistic": r.predictions["logistic regression"]}, r.family["chosen"],
                                  r.verdict["verdict"], time_column is not None, other))
    known = set(inspect.signature(write_world).parameters)
    for name, kwargs, moves in HAZARDS:
        if not set(kwargs) - {"n_leads"} <= known and "kw" not in known:
            print(f"  {name:34} skipped: the generator has no {sorted(set(kwargs) - known)} option")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                world = write_world(Path(tmp) / "crm", **{"n_leads": leads, "seed": 0, **kwargs})
            except (TypeError, ValueError) as e:
                print(f"  {name:34} skipped: {e}")
                continue
            result = train(read_export(world), _project(world, Path(tmp)))
            t = result.test
            oracle = oracle_probability(world, t[["lead_id", "cutoff"]], result.bundle.horizon_days)
        y = t["label"].to_numpy().astype(int)
        rows.append(_goal_row(f"CRM {name}", y, t["probability"].to_numpy(),
                              {"logistic": t["logistic"].to_numpy(), "points": t["baseline"].to_numpy()},
                              result.family["chosen"], result.verdict["verdict"],
                              moves, {"oracle": oracle}))
    missed = [r["name"] for r in rows if not all(r["goals"].values())]
    print(f"  goals met on {len(rows) - len(missed)} of {len(rows)} tables" + (f"; missed: {missed}" if missed else ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds for our search and for FLAML")
    ap.add_argument("--leads", type=int, default=8000, help="synthetic world size")
    ap.add_argument("--only", choices=["bank", "synthetic", "goals"])
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.only in (None, "bank"):
        bank(args.budget)
    if args.only in (None, "synthetic"):
        synthetic(args.budget, args.leads)
    if args.only in (None, "goals"):
        goals(args.budget, args.leads)
    if not args.no_timing and args.only is None:
        timing_10k(args.budget)


if __name__ == "__main__":
    main()
