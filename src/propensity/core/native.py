"""Native libraries and Python threads: LightGBM is entered by one thread at a time.

LightGBM keeps its OpenMP thread count in one process-wide variable: every call
sets it from its own ``num_threads`` and later reads it again, e.g. to size the
per-thread buffers of a prediction and then to run the prediction's threads
(``src/utils/openmp_wrapper.cpp``, ``src/application/predictor.hpp``). When two
Python threads call LightGBM at once with different thread counts, one of them
can run more threads than it made buffers for: a segmentation fault. So every
LightGBM call in this package holds :data:`LIGHTGBM`, and parallelism comes from
LightGBM's own threads inside one call (``num_threads=cores()``).

The lock is re-entrant, so a function holding it may call another that takes it.
Code outside this package that calls LightGBM from other threads of the same
process can still race with it; ``docs/threads.md`` says what is safe.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

__all__ = ["LIGHTGBM", "cores", "predict"]

LIGHTGBM = threading.RLock()


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS, Windows
        return max(os.cpu_count() or 1, 1)


def predict(booster: Any, x: Any, threads: int = 0, **kwargs: Any) -> np.ndarray:
    """``booster.predict(x, **kwargs)`` (a LightGBM Booster) holding :data:`LIGHTGBM`.

    ``threads``: LightGBM's threads for this call; 0 means every core. One row is
    fastest on one thread (no OpenMP start-up), a batch on all of them.
    """
    with LIGHTGBM:
        return np.asarray(booster.predict(x, num_threads=threads or cores(), **kwargs))
