"""Helpers shared by the test modules (NumPy is the oracle)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

# The array module under test: ndstream, or dask.array to validate the tests.
MODULE_NAME = os.environ.get("NDSTREAM_TEST_MODULE", "ndstream")
IS_DASK = MODULE_NAME.split(".")[0] == "dask"

# Chunkings of a (10, 7) array: one chunk, ragged, tiny, and a mixed one.
CHUNKS_2D = [(10, 7), (3, 4), (1, 2), (2, 7), ((4, 6), (1, 3, 3))]
CHUNKS_2D_IDS = ["one-chunk", "ragged-3x4", "tiny-1x2", "rows-2", "explicit"]
# Chunkings of a length-10 vector.
CHUNKS_1D = [10, 3, 1, ((5, 2, 3),)]
CHUNKS_1D_IDS = ["one-chunk", "ragged-3", "tiny-1", "explicit"]


def compute(x):
    """Compute a lazy array (or pass a NumPy value through) as a NumPy value."""
    if hasattr(x, "compute") and not isinstance(x, np.ndarray):
        x = x.compute()
    return x


def is_lazy(x):
    """True for a lazy array of the module under test (not a NumPy array)."""
    return (
        not isinstance(x, (np.ndarray, np.generic))
        and hasattr(x, "compute")
        and hasattr(x, "chunks")
    )


def assert_eq(lazy, expected, *, check_dtype=True, check_shape=True, rtol=1e-7, atol=0.0):
    """Compute ``lazy`` and compare it with the NumPy ``expected``.

    Integers and booleans compare exactly; floats with ``rtol``/``atol``
    (NaN equal to NaN). The lazy object's ``shape``/``dtype`` metadata must
    agree with the computed result when they are known.
    """
    expected = np.asarray(expected)
    if is_lazy(lazy):
        meta_shape = tuple(lazy.shape)
        meta_dtype = lazy.dtype
        got = np.asarray(lazy.compute())
        if check_shape and not any(np.isnan(s) for s in meta_shape):
            assert meta_shape == got.shape, (meta_shape, got.shape)
        if check_dtype:
            assert np.dtype(meta_dtype) == got.dtype, (meta_dtype, got.dtype)
    else:
        got = np.asarray(lazy)
    if check_shape:
        assert got.shape == expected.shape, (got.shape, expected.shape)
    if check_dtype:
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    if got.dtype.kind in "fc" or expected.dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, expected)


def chunks_match_shape(chunks, shape):
    """True when ``chunks`` is a tuple of tuples of ints adding up to ``shape``."""
    return (
        isinstance(chunks, tuple)
        and len(chunks) == len(shape)
        and all(isinstance(c, tuple) for c in chunks)
        and all(sum(c) == s for c, s in zip(chunks, shape))
    )


def make_2d(rng, dtype="float64", shape=(10, 7)):
    """Deterministic test data of a given dtype, with negative values for signed types."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "i":
        return rng.integers(-50, 50, size=shape).astype(dtype)
    if dtype.kind == "u":
        return rng.integers(0, 100, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    raise ValueError(dtype)


def local_cluster():
    """A dask.distributed LocalCluster of 2 single-thread worker processes
    on loopback, each limited to 2 GiB (the workers inherit this process's
    environment as it is when they start)."""
    import distributed

    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit="2GiB",
    )


def cli_exe() -> Path | None:
    """The ndstream CLI built in this checkout (debug first), or None."""
    root = Path(__file__).resolve().parents[2]
    for build in ("debug", "release"):
        exe = root / "target" / build / "ndstream"
        if exe.is_file():
            return exe
    return None


def cli_in(cwd: Path):
    """The ndstream CLI built here, and a runner of it in ``cwd`` (the
    test is skipped without a build)."""
    exe = cli_exe()
    if exe is None:
        pytest.skip("no ndstream binary built (cargo build)")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], check=False, capture_output=True, text=True, cwd=cwd)

    return exe, cli
