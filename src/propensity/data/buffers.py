"""Large arrays that are written once: allocated with the operating system's default page policy.

NumPy asks Linux for transparent huge pages on every large array it allocates
(``madvise(MADV_HUGEPAGE)``). On the 2-core VMs this project is measured on, the
first write of such memory is slow unless another process freed huge pages a
moment before, and a pipeline allocates long after anything was freed (the
figures: ``docs/scaling.md``, "Fresh memory"). The feature table's block, the
snapshot engine's copy of the events and the activity arrays are written once, in
scattered order, and read a few times, so they gain little from huge pages. They
come from here: an anonymous private mapping that follows the system's setting
(huge pages where ``transparent_hugepage`` is ``always``), released when the last
view of it goes. Elsewhere (other platforms, small arrays) this is ``np.empty``.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

__all__ = ["empty"]

MIN_BYTES = 64 << 20  # smaller arrays come from NumPy (its allocator reuses them; no page-fault cost to save)


def empty(shape: int | tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """An uninitialised, writable, C-contiguous array of ``shape`` and ``dtype``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    flags = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if nbytes < MIN_BYTES or None in flags:
        return np.empty(shape, dtype=dtype)
    area = mmap.mmap(-1, nbytes, flags=flags[0] | flags[1])
    return np.frombuffer(area, dtype=dtype).reshape(shape)
