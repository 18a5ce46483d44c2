"""Helpers of the snapshot engine: write-once arrays (propensity.data.buffers), kernel loading and compiling."""

import gc
import mmap
import weakref

import numpy as np
import pandas as pd
import pytest

from propensity.data import buffers


def _owner(a: np.ndarray):
    """The object that owns an array's memory (through a memoryview, for np.frombuffer)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.base.obj if isinstance(a.base, memoryview) else a.base


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32, np.uint8])
def test_large_arrays_are_anonymous_mappings_of_the_right_shape(dtype, monkeypatch):
    monkeypatch.setattr(buffers, "MIN_BYTES", 1)
    a = buffers.empty((3, 1000), dtype)
    assert a.shape == (3, 1000) and a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable
    if hasattr(mmap, "MAP_ANONYMOUS"):
        assert isinstance(_owner(a), mmap.mmap)
    a[...] = (np.arange(3000) % 100).astype(dtype).reshape(3, 1000)
    assert int(a.sum(dtype=np.int64)) == int((np.arange(3000) % 100).sum())
    if dtype == np.float64:  # build_features hands its block to pandas without a copy
        frame = pd.DataFrame(a.T, copy=False)
        assert np.shares_memory(frame[0].to_numpy(), a)


def test_small_arrays_come_from_numpy():
    a = buffers.empty(10, np.float64)
    assert a.shape == (10,) and a.base is None and a.flags.owndata


def test_a_mapping_is_released_with_its_last_view(monkeypatch):
    monkeypatch.setattr(buffers, "MIN_BYTES", 1)
    a = buffers.empty((2, 4096))
    owner = _owner(a)
    if not isinstance(owner, mmap.mmap):
        pytest.skip("no anonymous mappings on this platform")
    ref = weakref.ref(owner)
    row = a[1]
    del a, owner
    gc.collect()
    assert ref() is not None  # a row still views it
    row[:] = 1.0
    del row
    gc.collect()
    assert ref() is None


def test_the_snapshot_kernels_warm_up_without_raising(monkeypatch):
    import propensity.features.engines.snapshots as snapshots
    from propensity.features.engines import snapshot_kernels

    snapshots.warm_up()
    assert all(len(f.signatures) >= 1 for f in (snapshot_kernels.count_events, snapshot_kernels.scatter_events,
                                                snapshot_kernels.part_rows))

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(snapshots, "_compute", broken)
    assert snapshots.warm_up() is None  # only a head start: the real call reports problems


def test_kernels_compile_without_a_place_for_numba_s_cache():
    from propensity.core.jit import compiled

    space: dict = {}
    exec("def add_one(x):\n    return x + 1\n", space)  # no source file: Numba has nowhere to cache it
    assert compiled(space["add_one"])(41) == 42
