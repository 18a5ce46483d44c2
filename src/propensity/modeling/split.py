"""The time-ordered split: train on older cutoffs, validate and test on newer ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from propensity.config import SplitConfig

__all__ = ["TimeSplit", "time_split"]


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # boolean masks over the rows
    valid: np.ndarray
    test: np.ndarray
    valid_start: pd.Timestamp
    test_start: pd.Timestamp

    def describe(self, cutoffs: pd.Series) -> dict:
        def window(mask: np.ndarray) -> dict:
            c = cutoffs[mask]
            return {"rows": int(mask.sum()), "first_cutoff": str(c.min().date()), "last_cutoff": str(c.max().date())}
        return {"train": window(self.train), "valid": window(self.valid), "test": window(self.test)}


def time_split(cutoffs: pd.Series, config: SplitConfig, horizon_days: int) -> TimeSplit:
    """Split rows by their cutoff date.

    The newest ``test_fraction`` of snapshot dates form the test window, the
    ``valid_fraction`` before them the validation window. Training keeps only rows
    whose label window ``[cutoff, cutoff + horizon)`` ends by the start of
    validation, so no outcome the model is judged on was seen in training.

    Raises ``ValueError`` when there are too few snapshot dates to split.
    """
    dates = np.sort(cutoffs.unique())
    n = len(dates)
    n_test = max(1, int(round(n * config.test_fraction)))
    n_valid = max(1, int(round(n * config.valid_fraction)))
    horizon = pd.Timedelta(days=horizon_days)
    if n < n_test + n_valid + 1:
        raise ValueError(f"only {n} snapshot date(s) in the data; need at least {n_test + n_valid + 1} "
                         "to train, validate and test in time order (more history or a smaller cutoffs.every_days)")
    test_start = pd.Timestamp(dates[n - n_test])
    valid_start = pd.Timestamp(dates[n - n_test - n_valid])
    test = (cutoffs >= test_start).to_numpy()
    valid = (cutoffs >= valid_start).to_numpy() & ~test
    train = (cutoffs + horizon <= valid_start).to_numpy()
    if not train.any():
        raise ValueError(f"no training rows: every snapshot before {valid_start.date()} has a label window "
                         f"({horizon_days} days) reaching into validation; the data needs a longer history")
    return TimeSplit(train, valid, test, valid_start, test_start)
