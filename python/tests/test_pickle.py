"""Pickling: an array pickled and loaded (here, and in another process)
computes the same bits; stored inputs travel by path, in-memory data
embedded; what cannot travel is a TypeError naming why."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from _helpers import IS_DASK, MODULE_NAME

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

A = np.arange(70.0).reshape(10, 7) * 1.5 - 10


def _arrays(da, tmp_path):
    """Name -> (lazy array, NumPy oracle)."""
    zpath = str(tmp_path / "a.zarr")
    z = zarr.open_array(zpath, mode="w", shape=A.shape, chunks=(4, 3), dtype="f8")
    z[...] = A
    hpath = str(tmp_path / "a.h5")
    with h5py.File(hpath, "w") as f:
        f.create_dataset("g/x", data=A.astype("f4"), chunks=(5, 7))
    h5 = h5py.File(hpath, "r")
    x = da.from_array(A, chunks=(3, 4))
    zx = da.from_array(zarr.open_array(zpath, mode="r"))
    hx = da.from_array(h5["g/x"], chunks=(5, 7))
    rng = da.random.default_rng(3).standard_normal((20, 30), chunks=(7, 30))
    b = A.astype("f4")
    cases = {
        "in memory": (x, A),
        "arithmetic": ((x * 2 - 1).sum(axis=0), (A * 2 - 1).sum(axis=0)),
        "zarr on disk": (zx[::2] + 1, A[::2] + 1),
        "hdf5 on disk": (hx.mean(axis=1), b.mean(axis=1, dtype="f4")),
        "mixed": (da.stack([zx, x.T.T]).max(axis=0), np.maximum(A, A)),
        "random": (rng, None),
        "masked": (x[x > 3], A[A > 3]),
        "ints": (
            da.arange(24, chunks=5).reshape(4, 6).cumsum(axis=1),
            np.arange(24).reshape(4, 6).cumsum(axis=1),
        ),
    }
    if IS_DASK:
        # Dask holds the h5py dataset, which cannot be pickled; ndstream
        # reads it by file name.
        del cases["hdf5 on disk"]
    return h5, cases


def test_pickled_arrays_compute_the_same_bits(da, tmp_path):
    h5, cases = _arrays(da, tmp_path)
    try:
        for name, (a, want) in cases.items():
            got = np.asarray(pickle.loads(pickle.dumps(a)).compute())
            here = np.asarray(a.compute())
            np.testing.assert_array_equal(got, here, err_msg=name)
            assert got.dtype == here.dtype, name
            if want is not None:
                np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    finally:
        h5.close()


def test_an_array_pickled_here_computes_in_another_process(da, tmp_path):
    h5, cases = _arrays(da, tmp_path)
    try:
        for name, (a, _) in cases.items():
            blob = tmp_path / f"{abs(hash(name))}.pickle"
            blob.write_bytes(pickle.dumps(a))
            out = tmp_path / f"{abs(hash(name))}.npy"
            code = (
                f"import pickle, numpy as np, {MODULE_NAME}\n"
                f"a = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
                f"np.save({str(out)!r}, np.asarray(a.compute()))\n"
            )
            env = dict(os.environ)
            r = subprocess.run(
                [sys.executable, "-c", code],
                check=False,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 0, f"{name}: {r.stderr}"
            got = np.load(out)
            here = np.asarray(a.compute())
            np.testing.assert_array_equal(got, here, err_msg=name)
            assert got.dtype == here.dtype, name
    finally:
        h5.close()


@pytest.mark.ndstream_only
def test_what_cannot_travel_is_a_type_error(da):
    x = da.from_array(A, chunks=(3, 4))
    y = x.map_blocks(lambda b: b + 1, dtype=A.dtype)
    with pytest.raises(TypeError, match="map_blocks"):
        pickle.dumps(y)

    class Sliceable:
        shape = A.shape
        dtype = A.dtype
        ndim = 2

        def __getitem__(self, key):
            return A[key]

    z = da.from_array(Sliceable(), chunks=(5, 7))
    with pytest.raises(TypeError, match="only in this process"):
        pickle.dumps(z + 1)


@pytest.mark.ndstream_only
def test_a_changed_input_is_refused_when_loaded(da, tmp_path):
    path = str(tmp_path / "a.zarr")
    zarr.open_array(path, mode="w", shape=A.shape, chunks=(4, 3), dtype="f8")[...] = A
    blob = pickle.dumps(da.from_array(zarr.open_array(path, mode="r")).sum())
    zarr.open_array(path, mode="w", shape=(3, 3), chunks=(3, 3), dtype="f8")[...] = 1.0
    with pytest.raises(ValueError, match="input changed"):
        pickle.loads(blob)


def test_nan_infinities_and_negative_zero_survive(da):
    v = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-310, 5.0])
    x = da.from_array(v, chunks=2)
    got = pickle.loads(pickle.dumps(da.where(x > 4, np.nan, x) * 1.0)).compute()
    want = np.where(v > 4, np.nan, v) * 1.0
    assert got.tobytes() == want.tobytes()
    if not IS_DASK:
        full = pickle.loads(pickle.dumps(da.full((3,), -0.0))).compute()
        assert np.signbit(full).all()
