"""The one way the package compiles a Numba kernel (imported only by the kernel modules, so importing ``core``
does not import Numba)."""

from __future__ import annotations

import numba as nb

__all__ = ["compiled"]


def compiled(fn):
    """``njit(nogil=True)`` with Numba's on-disk cache where it can keep one, else compiled in each process.

    Numba refuses ``cache=True`` at decoration when it finds no writable place (a
    read-only install and no user cache directory); the kernels must still run.
    """
    try:
        return nb.njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return nb.njit(nogil=True)(fn)
