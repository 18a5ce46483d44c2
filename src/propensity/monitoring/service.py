"""A service's scores into the score history: :class:`HistoryRecorder`, batched and thread-safe.

>>> from propensity import LeadScorer                                        # doctest: +SKIP
>>> from propensity.monitoring.service import HistoryRecorder               # doctest: +SKIP
>>> recorder = HistoryRecorder(LeadScorer.load("models/latest"), "history/") # doctest: +SKIP
>>> recorder.score({"leads": ..., "accounts": ..., "activities": ...})      # doctest: +SKIP
>>> recorder.close()                                                         # doctest: +SKIP

Scoring runs outside any lock of the recorder (LightGBM takes its own, see
:mod:`propensity.core.native`); the scored rows go into a buffer under a lock, and
when it holds ``batch_size`` rows or ``interval_s`` seconds have passed since the last
write, the thread that filled it takes the buffer and writes it, under a second lock
(and the history folder's file lock, so several processes can share one history).
:meth:`~HistoryRecorder.close` (or leaving the ``with`` block) writes what is left.

A service's rows of one UTC day form one run of the history, as of that day's
midnight: each write is one file of that run (``run-<day>-<digest>-<write time>-<random>.parquet``),
and a lead scored several times that day counts once in the monitor (its last score: the
history is read in file-name order, which is the order of the writes).
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.monitoring.history import FEATURE, POINTS, HistoryRun, check_history_dir, model_identity, write_run

__all__ = ["HistoryRecorder"]


class HistoryRecorder:
    """Score with ``scorer`` (a :class:`~propensity.scoring.scorer.LeadScorer`) and keep every scored lead."""

    def __init__(self, scorer, folder: str | Path, model_uri: str | Path | None = None, batch_size: int = 1000,
                 interval_s: float = 300.0):
        self.scorer, self.folder = scorer, Path(folder)
        check_history_dir(self.folder)
        self.name, self.version, self.digest = model_identity(model_uri or "service", scorer.bundle)
        self.batch_size, self.interval_s = batch_size, interval_s
        self._buffer: list[pd.DataFrame] = []
        self._rows = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()  # the buffer
        self._write_lock = threading.Lock()  # one writer at a time; never held while scoring
        self.written: list[Path] = []

    def score(self, data: Any, as_of: pd.Timestamp | str | None = None) -> pd.DataFrame:
        """:meth:`LeadScorer.score_chunks` of ``data`` (an export folder, a CrmExport or a dict of DataFrames), kept."""
        parts = [part for _, part in self.scorer.score_chunks(data, as_of=as_of, values=True)]
        scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        self.record(scores)
        return scores[[c for c in scores.columns if not c.startswith((FEATURE, POINTS))]]

    def record(self, scores: pd.DataFrame) -> None:
        """Buffer rows scored with ``values=True``; write the buffer when it is full or old enough."""
        if scores.empty:
            return
        with self._lock:
            self._buffer.append(scores)
            self._rows += len(scores)
            due = self._rows >= self.batch_size or time.monotonic() - self._last >= self.interval_s
            batch = self._take() if due else []
        self._write(batch)

    def flush(self) -> None:
        """Write whatever is buffered now."""
        with self._lock:
            batch = self._take()
        self._write(batch)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> HistoryRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _take(self) -> list[pd.DataFrame]:
        batch, self._buffer, self._rows, self._last = self._buffer, [], 0, time.monotonic()
        return batch

    def _write(self, batch: list[pd.DataFrame]) -> None:
        if not batch:
            return
        rows = pd.concat(batch, ignore_index=True)
        day = pd.to_datetime(rows["cutoff"], utc=True).dt.floor("D") if "cutoff" in rows else \
            pd.Series(pd.Timestamp.now(tz="UTC").floor("D"), index=rows.index)
        with self._write_lock:
            for when, part in rows.groupby(day, sort=True):
                # the tag starts with the write time: file names sort as written, so "the last score" is the last
                run = HistoryRun(pd.Timestamp(when), self.name, self.version, self.digest,
                                 tag=f"{time.time_ns():020d}-{secrets.token_hex(3)}")
                self.written.append(write_run(self.folder, part, run, self.scorer.bundle.spec,
                                              self.scorer.groups.sources))
