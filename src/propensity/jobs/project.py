"""``propensity init`` and ``propensity generate``: a new project folder, a synthetic CRM export."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["World", "generate", "init_project"]


def init_project(folder: str | Path) -> Path:
    """Write editable copies of the packaged ``features/`` and ``training/`` into the new folder ``folder``."""
    from propensity.config import default_project_dir
    from propensity.core.output import check_folder_output, claim, staged_folder

    target = Path(folder)
    # A project folder holds the user's edited configs: init never replaces one, not even its own.
    if target.is_dir() and any(target.iterdir()):
        raise ValueError(f"{target}: folder exists and is not empty; choose a new folder")
    check_folder_output(target, hint="choose a new folder")
    src = default_project_dir()
    with claim(target), staged_folder(target) as tmp:
        for sub in ("features", "training"):
            shutil.copytree(src / sub, tmp / sub)
        (tmp / "models").mkdir()
        (tmp / "models" / "README.md").write_text("Model bundles built by `propensity train` land here.\n")
    return target


@dataclass(frozen=True)
class World:
    """A synthetic CRM export of ``leads`` leads written to ``path`` (ground truth in ``ground_truth``)."""

    path: Path
    leads: int
    seed: int
    seconds: float
    hazards: dict[str, Any] = field(default_factory=dict)  # the options that differ from the plain world

    @property
    def ground_truth(self) -> Path:
        return self.path / "ground_truth.parquet"


def generate(out: str | Path, leads: int = 20_000, seed: int = 0, fmt: str = "parquet",
             force: bool = False, hazards: Mapping[str, Any] | None = None, start: str | None = None,
             end: str | None = None) -> World:
    """Write a synthetic CRM world; ``out`` may be replaced only if empty or a world this tool wrote (or ``force``).

    ``hazards``: options of :class:`propensity.data.synthetic.Hazards` (drift, landing pages, sparse activity ...);
    ``start`` / ``end``: the world's time span (default 2024-01-01 to 2026-01-01).
    """
    from pydantic import ValidationError

    from propensity.core.output import check_folder_output, claim
    from propensity.data.synthetic import Hazards, is_world_folder, write_world
    from propensity.data.synthetic.hazards import Timeline

    try:
        chosen = Hazards.model_validate(dict(hazards or {}))
    except ValidationError as err:
        first = err.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        raise ValueError(f"generate: {flag}: {first['msg'].removeprefix('Value error, ')}") from None
    for flag, value in (("--start", start), ("--end", end)):
        if value is not None and not _is_date(value):
            raise ValueError(f"generate: {flag}: expected a date such as 2025-01-01, got {value!r}")
    span = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    Timeline.of(span.get("start", "2024-01-01"), span.get("end", "2026-01-01"), chosen)  # end after start
    t = time.perf_counter()
    check_folder_output(out, owned=is_world_folder, force=force)
    with claim(out):
        path = write_world(out, n_leads=leads, seed=seed, fmt=fmt, force=force, hazards=chosen, **span)
    return World(path, leads, seed, time.perf_counter() - t, chosen.model_dump(exclude_defaults=True))


def _is_date(text: str) -> bool:
    import pandas as pd

    try:
        return pd.Timestamp(text) is not pd.NaT
    except ValueError:
        return False
