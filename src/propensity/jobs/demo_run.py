"""``propensity demo``: generate a synthetic CRM, train, log to MLflow, score and explain, in one folder.

The folder holds ``crm/`` (the export), ``models/latest`` (the bundle) and
``scores.csv``. It is never replaced itself; what the demo writes inside is checked
up front, each by its own rule, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from propensity.jobs.progress import Progress
from propensity.jobs.training import CrmTraining, train_crm

__all__ = ["DEMO_KIND", "Demo", "demo", "is_demo_folder"]

DEMO_KIND = "demo"
DEMO_ENTRIES = {"crm", "models", "scores.csv"}  # what a demo folder holds (besides its marker)


@dataclass(frozen=True)
class Demo:
    """What the demo did: the training, the oracle's ROC AUC and log loss on the test window, the scores and the
    best lead explained."""

    training: CrmTraining
    oracle_auc: float
    scored: int
    scores: Path
    best: Any  # the LeadScore of the most probable open lead
    model_dir: Path
    oracle_log_loss: float = float("nan")


def is_demo_folder(path: Path) -> bool:
    """Whether ``path`` is a folder the demo wrote (its marker), or holds nothing but what a demo writes."""
    from propensity.core.output import MARKER, has_marker

    if has_marker(path, DEMO_KIND):
        return True
    return {p.name for p in path.iterdir()} <= DEMO_ENTRIES | {MARKER}


def demo(folder: str | Path = "propensity-demo", leads: int = 20_000, seed: int = 0,
         tracking_uri: str | None = None, force: bool = False, progress: Progress | None = None) -> Demo:
    """Run the whole job on a synthetic CRM of ``leads`` leads in ``folder``; the run is logged to MLflow."""
    from propensity.core.output import check_file_output, check_folder_output, claim, write_marker
    from propensity.data.synthetic import is_world_folder
    from propensity.scoring.bundle import is_bundle_folder

    progress = progress or Progress()
    root = Path(folder)
    check_folder_output(root, owned=is_demo_folder, force=force)
    check_folder_output(root / "crm", owned=is_world_folder, force=force)
    check_folder_output(root / "models" / "latest", owned=is_bundle_folder, force=force)
    check_file_output(root / "scores.csv")
    with claim(root):
        root.mkdir(parents=True, exist_ok=True)
        write_marker(root, DEMO_KIND)
        return _demo_in(root, leads, seed, tracking_uri, force, progress)


def _demo_in(root: Path, leads: int, seed: int, tracking_uri: str | None, force: bool, progress: Progress) -> Demo:
    import pandas as pd

    from propensity.core.output import claim
    from propensity.data.synthetic import oracle_probability, write_world
    from propensity.jobs.outputs import write_table
    from propensity.modeling.metrics import classification_metrics
    from propensity.scoring.scorer import LeadScorer

    crm = root / "crm"
    progress.step(f"generating a synthetic CRM with {leads:,} leads in {crm}")
    with claim(crm):
        write_world(crm, n_leads=leads, seed=seed, force=force)
    model_dir = root / "models" / "latest"
    training = train_crm(crm, model_dir, None, tracking_uri, True, force=force, progress=progress)
    result = training.result

    progress.step("computing the oracle: the true probability of every test snapshot")
    truth = pd.read_parquet(crm / "ground_truth.parquet")
    oracle = oracle_probability(crm, result.test[["lead_id", "cutoff"]], result.bundle.horizon_days, truth=truth)
    best_possible = classification_metrics(result.test["label"].to_numpy(), oracle)

    progress.step("scoring the open leads")
    scorer = LeadScorer.load(model_dir)
    scores = scorer.score(crm)
    out = root / "scores.csv"
    with claim(out):
        write_table(scores[["lead_id", "probability", "score", "tier", "reasons"]], out)
    best = scores.sort_values("probability", ascending=False).iloc[0]["lead_id"]
    return Demo(training, best_possible["roc_auc"], len(scores), out, scorer.explain(crm, best), model_dir,
                best_possible["log_loss"])
