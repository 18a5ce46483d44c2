"""The synthetic CRM world: a documented generative story, its hazards, the files, and the oracle.

- :mod:`.story`: what the data means (the reference), its vocabularies and constants;
- :mod:`.hazards`: the options that make a world look like real data (drift, a
  high-cardinality column, sparse activity);
- :mod:`.world`: the generator, :func:`generate_world`;
- :mod:`.oracle`: :func:`oracle_probability`, the best possible prediction per
  (lead, cutoff) snapshot, and :func:`true_probability`, the latents' prior;
- here: writing a world folder (:func:`write_world`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from propensity.core.output import check_folder_output, staged_folder
from propensity.data.synthetic.hazards import DRIFT_KINDS, Hazards
from propensity.data.synthetic.oracle import oracle_probability, true_probability, world_hazards
from propensity.data.synthetic.story import (
    ACTIVITY_TYPES,
    CLOSE_MAX_DAYS,
    CLOSE_MIN_DAYS,
    GAMMA_SCALE,
    GAMMA_SHAPE,
    RAMP_DAYS,
)
from propensity.data.synthetic.world import generate_world

__all__ = ["ACTIVITY_TYPES", "CLOSE_MAX_DAYS", "CLOSE_MIN_DAYS", "DRIFT_KINDS", "GAMMA_SCALE", "GAMMA_SHAPE",
           "RAMP_DAYS", "Hazards", "generate_world", "is_world_folder", "oracle_probability", "true_probability",
           "world_hazards", "write_tables", "write_world"]

TABLE_NAMES = ("accounts", "leads", "activities", "opportunities")
WORLD_FILES = {f"{t}.{ext}" for t in TABLE_NAMES for ext in ("parquet", "csv")} | {"ground_truth.parquet"}


def is_world_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a world :func:`write_world` wrote (its tables and ground truth, nothing else)."""
    try:
        entries = {p.name for p in Path(path).iterdir()}
    except OSError:
        return False
    return "ground_truth.parquet" in entries and entries <= WORLD_FILES


def write_world(out: str | Path, n_leads: int, seed: int = 0, fmt: str = "parquet", force: bool = False,
                **kw) -> Path:
    """Generate a world and write it as ``OUT/<table>.<fmt>`` plus ``OUT/ground_truth.parquet``.

    ``fmt`` is ``parquet`` or ``csv``; ``kw`` goes to :func:`generate_world`
    (``start``, ``end``, ``hazards``); the ground truth's Parquet metadata keeps them.
    A folder holding a previous world is replaced, atomically; any other non-empty
    folder or a file is refused with a ``ValueError`` unless ``force``.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"write_world: fmt must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(out)
    check_folder_output(out, owned=is_world_folder, force=force,
                        hint="choose an empty or new folder (or force=True / --force to replace it)")
    frames, truth = generate_world(n_leads, seed=seed, **kw)
    with staged_folder(out) as tmp:  # a previous world, possibly in the other format, is replaced whole
        write_tables(tmp, frames, fmt)
        truth.to_parquet(tmp / "ground_truth.parquet", index=False)
    return out


def write_tables(folder: str | Path, tables: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    """Write export tables as ``NAME.parquet`` or ``NAME.csv`` (UTC ISO-8601 times) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return folder
