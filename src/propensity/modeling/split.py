"""The time-ordered split: rolling-origin validation windows and a test window, sized by outcomes.

Snapshot dates are sorted; the newest ones form the **test** window, the ones
before it ``valid_windows`` consecutive **validation** windows (oldest first), and
each validation window gets its own **training** rows: every row whose label window
``[cutoff, cutoff + horizon)`` ends by the window's first date, so no outcome a
window is judged on was seen in its training (the purge is exact). The newest
window's training rows train the shipped model; that window early-stops it,
calibrates it and, with the older windows, decides the family and the parameters,
so one odd window does not.

Windows are sized by outcomes as well as by dates. The test window takes the
newest ``test_fraction`` of the dates and, if they hold fewer than ``min_positives``
closed-won rows, older dates until it does; the validation region likewise takes
``valid_fraction`` of the dates and at least ``valid_windows * min_positives``
positives, and is cut into windows of about equal positives. When conversions
start late or are few, the boundaries move back to where the outcomes are; when they
crowd into the newest dates, the windows shrink to as few dates as hold them, so
that older conversions are left to train on; :attr:`TimeSplit.notes` says what was
chosen. A window whose training rows hold
fewer than ``min_train_positives`` is dropped (the newest is kept while it can be
trained). Only when the whole export cannot give the test window, one validation
window and its training rows their minimum (``min_positives`` halved down to
``FLOOR_POSITIVES`` first) is the split refused, with the count found and the
count needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from propensity.config import SplitConfig
from propensity.core.errors import DataError

__all__ = ["FLOOR_POSITIVES", "TimeSplit", "time_split"]

FLOOR_POSITIVES = 5  # below this many conversions a window's log loss and AUC are noise


@dataclass(frozen=True)
class TimeSplit:
    test: np.ndarray  # boolean masks over the rows
    windows: list[np.ndarray]  # validation windows, oldest first
    trains: list[np.ndarray]  # each window's training rows (purged), oldest first
    notes: list[str] = field(default_factory=list)

    @property
    def train(self) -> np.ndarray:
        """The shipped model's training rows: the newest window's."""
        return self.trains[-1]

    @property
    def valid(self) -> np.ndarray:
        """The newest validation window: early stopping and calibration of the shipped model."""
        return self.windows[-1]

    @property
    def validation(self) -> np.ndarray:
        """Every validation window's rows."""
        return np.logical_or.reduce(self.windows)

    def describe(self, cutoffs: pd.Series, y: np.ndarray | None = None) -> dict:
        def window(mask: np.ndarray) -> dict:
            c = cutoffs[mask]
            out = {"rows": int(mask.sum()), "first_cutoff": str(c.min().date()), "last_cutoff": str(c.max().date())}
            if y is not None:
                out["positives"] = int(np.asarray(y)[mask].sum())
            return out
        return {"train": window(self.train), "valid": window(self.validation), "test": window(self.test),
                "windows": [{"valid": window(v), "train": window(t)} for v, t in zip(self.windows, self.trains,
                                                                                   strict=True)],
                "notes": list(self.notes)}


def time_split(cutoffs: pd.Series, config: SplitConfig, horizon_days: int, y: np.ndarray | None = None) -> TimeSplit:
    """Split rows by their cutoff date (see the module docstring); ``y``: the labels (outcome sizing).

    Without ``y`` the windows are sized by dates alone. Raises
    :class:`~propensity.core.errors.DataError` when the data cannot give a test window,
    one validation window and its training rows.
    """
    c = pd.Series(cutoffs).reset_index(drop=True)
    dates = np.sort(c.unique())
    n = len(dates)
    date_index = np.searchsorted(dates, c.to_numpy())
    labels = np.zeros(len(c), dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)
    pos = np.bincount(date_index, weights=labels, minlength=n).astype(np.int64)
    total = int(pos.sum())
    k = config.valid_windows
    need_test = max(1, int(round(n * config.test_fraction)))
    need_valid = max(1, int(round(n * config.valid_fraction)))
    if n < 3:
        raise DataError(f"only {n} snapshot date(s) in the data; need at least 3 to train, validate and test in "
                        "time order (more history or a smaller cutoffs.every_days)")
    min_pos = config.min_positives if y is not None else 0
    notes: list[str] = []
    while True:
        # Date-sized windows first; when conversions crowd into the newest dates, windows sized by
        # conversions alone (as few dates as hold them), before asking fewer conversions of each window.
        for sizes in ((need_test, need_valid), (1, 1)) if y is not None else ((need_test, need_valid),):
            split = _place(c, dates, pos, date_index, horizon_days, *sizes, k, min_pos,
                           config.min_train_positives if y is not None else 0, labels)
            if split is not None:
                if sizes == (1, 1):
                    notes.append("too few conversions for windows of split.test_fraction / split.valid_fraction "
                                 "of the dates: test and validation windows sized by conversions instead")
                break
        if split is not None or min_pos <= FLOOR_POSITIVES:
            break
        min_pos = max(FLOOR_POSITIVES, min_pos // 2)
    if split is None:
        need = 2 * max(min_pos, 1) + config.min_train_positives
        raise DataError(f"the export's labelled snapshots hold {total:,} closed-won outcome(s) over {n} snapshot "
                        f"dates; a time-ordered split needs at least {need:,} (test and validation windows of "
                        f"{max(min_pos, 1)} each and {config.min_train_positives} to train on, before the first "
                        f"validation window less the {horizon_days}-day horizon): export more history, or more "
                        "conversions")
    if y is not None and min_pos < config.min_positives:
        notes.append(f"few conversions: windows sized to hold at least {min_pos} each "
                     f"(split.min_positives is {config.min_positives})")
    return TimeSplit(split[0], split[1], split[2], notes + split[3])


def _place(c: pd.Series, dates: np.ndarray, pos: np.ndarray, date_index: np.ndarray, horizon_days: int,
           need_test: int, need_valid: int, k: int, min_pos: int, min_train: int, labels: np.ndarray):
    n = len(dates)
    notes: list[str] = []
    i, got = n, 0
    while i > 2 and (n - i < need_test or got < min_pos):
        i -= 1
        got += int(pos[i])
    if got < max(min_pos, 1 if min_pos else 0):
        return None
    if n - i > need_test:
        notes.append(f"test window moved back to {pd.Timestamp(dates[i]).date()} to hold {got} conversions")
    j, got_v = i, 0
    while j > 1 and (i - j < need_valid or got_v < k * min_pos):
        j -= 1
        got_v += int(pos[j])
    if min_pos and got_v < min_pos:
        return None
    if i - j > need_valid:
        notes.append(f"validation windows start at {pd.Timestamp(dates[j]).date()} to hold {got_v} conversions")
    k = max(1, min(k, got_v // min_pos if min_pos else k, i - j))
    bounds = _cut(pos[j:i], k, min_pos) + j  # start date index of each window, then i
    horizon = pd.Timedelta(days=horizon_days)
    test = date_index >= i
    windows, trains = [], []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        start = pd.Timestamp(dates[a])
        windows.append((date_index >= a) & (date_index < b))
        trains.append((c + horizon <= start).to_numpy())
    kept = [w for w in range(len(windows)) if trains[w].any() and labels[trains[w]].sum() >= min_train
            and (not min_pos or labels[trains[w]].sum() > 0)]
    if len(windows) - 1 not in kept:
        return None
    if len(kept) < len(windows):
        notes.append(f"{len(windows) - len(kept)} older validation window(s) dropped: too few conversions "
                     f"before them to train on (fewer than {min_train})")
    return test, [windows[w] for w in kept], [trains[w] for w in kept], notes


def _cut(pos: np.ndarray, k: int, min_pos: int) -> np.ndarray:
    """Start indices of ``k`` consecutive windows over dates with ``pos`` conversions each, plus the end."""
    m = len(pos)
    if k <= 1 or m < 2:
        return np.array([0, m])
    if pos.sum() == 0 or not min_pos:
        return np.linspace(0, m, k + 1).round().astype(int)
    cum = np.cumsum(pos)
    targets = cum[-1] * np.arange(1, k) / k
    cuts = np.searchsorted(cum, targets, side="left") + 1
    cuts = np.unique(np.clip(cuts, 1, m - 1))
    bounds = list(np.concatenate([[0], cuts, [m]]))
    # Dates come whole, so a window can fall short of min_pos: merge it into its smaller neighbour.
    while len(bounds) > 2:
        got = [int(pos[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        short = int(np.argmin(got))
        if got[short] >= min_pos:
            break
        if short == 0 or (short < len(got) - 1 and got[short + 1] < got[short - 1]):
            del bounds[short + 1]
        else:
            del bounds[short]
    return np.array(bounds)
