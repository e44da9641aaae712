"""Storage: to_zarr / to_hdf5 / store, and from_array over h5py datasets and zarr
arrays, read back and compared with zarr-python and h5py."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_eq, is_lazy

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

A = np.arange(70.0).reshape(10, 7) * 1.5 - 10


@pytest.fixture(params=[(3, 4), (10, 7), (1, 2)], ids=["ragged", "one", "tiny"])
def x(request, da):
    return da.from_array(A, chunks=request.param)


# --------------------------------------------------------------------------- zarr


def test_to_zarr_roundtrip(da, x, tmp_path):
    path = str(tmp_path / "out.zarr")
    da.to_zarr(x, path)
    z = zarr.open_array(path, mode="r")
    assert z.shape == A.shape
    assert z.dtype == A.dtype
    np.testing.assert_array_equal(z[:], A)
    # the zarr chunks follow the array's (regular) chunks
    assert tuple(z.chunks) == x.chunksize


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint8", "bool", "int64"])
def test_to_zarr_dtypes(da, tmp_path, dtype):
    a = (np.arange(60).reshape(6, 10) % 7).astype(dtype)
    path = str(tmp_path / f"{dtype}.zarr")
    da.to_zarr(da.from_array(a, chunks=(4, 3)), path)
    z = zarr.open_array(path, mode="r")
    assert z.dtype == a.dtype
    np.testing.assert_array_equal(z[:], a)


@pytest.mark.filterwarnings("ignore:The array uses irregular chunk sizes")
def test_to_zarr_expression(da, tmp_path):
    # a reversed ragged axis has irregular chunks: Dask warns and rechunks before writing
    x = da.from_array(A, chunks=(3, 4))
    path = str(tmp_path / "expr.zarr")
    da.to_zarr((x * 2 + 1)[::2, ::-1], path)
    np.testing.assert_allclose(zarr.open_array(path, mode="r")[:], (A * 2 + 1)[::2, ::-1])


def test_to_zarr_method(da, x, tmp_path):
    path = str(tmp_path / "m.zarr")
    x.to_zarr(path)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A)


def test_to_zarr_overwrite(da, x, tmp_path):
    path = str(tmp_path / "o.zarr")
    da.to_zarr(x, path)
    with pytest.raises((ValueError, FileExistsError)):
        da.to_zarr(x + 1, path)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A)
    da.to_zarr(x + 1, path, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A + 1)


def test_to_zarr_overwrite_false_raises(da, x, tmp_path):
    path = str(tmp_path / "o2.zarr")
    da.to_zarr(x, path, overwrite=False)
    # Dask raises zarr.errors.ContainsArrayError, a ValueError; FileExistsError is accepted too
    with pytest.raises((ValueError, FileExistsError)):
        da.to_zarr(x, path, overwrite=False)


def test_to_zarr_component(da, x, tmp_path):
    path = str(tmp_path / "g.zarr")
    da.to_zarr(x, path, component="grp/arr")
    da.to_zarr(x * 2, path, component="other")
    root = zarr.open(path, mode="r")
    np.testing.assert_array_equal(root["grp/arr"][:], A)
    np.testing.assert_array_equal(root["other"][:], A * 2)
    np.testing.assert_array_equal(zarr.open_array(path, path="grp/arr", mode="r")[:], A)
    with pytest.raises((ValueError, FileExistsError)):
        da.to_zarr(x, path, component="grp/arr")


def test_from_zarr_array(da, tmp_path):
    path = str(tmp_path / "src.zarr")
    z = zarr.open_array(path, mode="w", shape=(10, 7), chunks=(4, 3), dtype="f8")
    z[:] = A
    x = da.from_array(z)
    assert x.shape == A.shape and x.dtype == A.dtype
    # default chunks follow the zarr chunking: every chunk boundary is a zarr chunk boundary
    for dim_chunks, zc in zip(x.chunks, z.chunks):
        assert all(c % zc == 0 for c in dim_chunks[:-1])
    assert_eq(x, A)
    y = da.from_array(z, chunks=(5, 5))
    assert y.chunks == ((5, 5), (5, 2))
    assert_eq(y.sum(axis=0), A.sum(axis=0), rtol=1e-12)
    r = da.from_zarr(path)
    assert r.chunks == ((4, 4, 2), (3, 3, 1))
    assert_eq(r, A)


# --------------------------------------------------------------------------- HDF5


def test_to_hdf5_roundtrip(da, x, tmp_path):
    fn = str(tmp_path / "out.h5")
    da.to_hdf5(fn, "/x", x)
    with h5py.File(fn, "r") as f:
        d = f["/x"]
        assert d.shape == A.shape
        assert d.dtype == A.dtype
        np.testing.assert_array_equal(d[:], A)


def test_to_hdf5_group_path_and_dict(da, tmp_path):
    x = da.from_array(A, chunks=(3, 4))
    fn = str(tmp_path / "many.h5")
    da.to_hdf5(fn, {"/a": x, "/grp/b": (x * 2).astype("float32")})
    with h5py.File(fn, "r") as f:
        np.testing.assert_array_equal(f["/a"][:], A)
        assert f["/grp/b"].dtype == np.float32
        np.testing.assert_array_equal(f["/grp/b"][:], (A * 2).astype("float32"))


def test_to_hdf5_method(da, tmp_path):
    x = da.from_array(A, chunks=(3, 4))
    fn = str(tmp_path / "m.h5")
    x.to_hdf5(fn, "/data")
    with h5py.File(fn, "r") as f:
        np.testing.assert_array_equal(f["/data"][:], A)


@pytest.mark.parametrize("chunks", [(3, 3), (10, 7), (1, 7), 4])
def test_from_hdf5_dataset(da, tmp_path, chunks):
    fn = str(tmp_path / "src.h5")
    with h5py.File(fn, "w") as f:
        f.create_dataset("/x", data=A, chunks=(5, 5))
        f.create_dataset("/i", data=np.arange(30, dtype="int32").reshape(5, 6))
    with h5py.File(fn, "r") as f:
        x = da.from_array(f["/x"], chunks=chunks)
        assert x.shape == A.shape and x.dtype == A.dtype
        assert_eq(x, A)
        assert_eq(x[::2, 1:].sum(axis=1), A[::2, 1:].sum(axis=1), rtol=1e-12)
        i = da.from_array(f["/i"], chunks=2)
        assert i.dtype == np.int32
        assert_eq(i * 2, np.arange(30, dtype="int32").reshape(5, 6) * 2)


def test_from_hdf5_default_chunks(da, tmp_path):
    fn = str(tmp_path / "d.h5")
    with h5py.File(fn, "w") as f:
        f.create_dataset("/x", data=A, chunks=(5, 5))
    with h5py.File(fn, "r") as f:
        x = da.from_array(f["/x"])
        for dim_chunks in x.chunks:
            assert all(c % 5 == 0 for c in dim_chunks[:-1])
        assert_eq(x, A)


# --------------------------------------------------------------------------- store


def test_store_numpy_target(da, x):
    out = np.zeros_like(A)
    da.store(x, out)
    np.testing.assert_array_equal(out, A)


def test_store_setitem_object(da, x):
    class Recorder:
        def __init__(self):
            self.data = np.zeros(A.shape)
            self.calls = 0

        def __setitem__(self, key, value):
            self.calls += 1
            self.data[key] = value

    r = Recorder()
    da.store(x * 3, r)
    np.testing.assert_array_equal(r.data, A * 3)
    assert r.calls >= 1


def test_store_many_targets(da, tmp_path):
    x = da.from_array(A, chunks=(3, 4))
    y = da.from_array(A.astype("float32"), chunks=(5, 5))
    fn = str(tmp_path / "t.h5")
    zpath = str(tmp_path / "t.zarr")
    out = np.zeros((10, 7))
    z = zarr.open_array(zpath, mode="w", shape=(10, 7), chunks=(4, 4), dtype="f8")
    with h5py.File(fn, "w") as f:
        d = f.create_dataset("d", shape=(10, 7), dtype="f4")
        da.store([x + 1, y, x * 2], [out, d, z])
        np.testing.assert_array_equal(d[:], A.astype("float32"))
    np.testing.assert_array_equal(out, A + 1)
    np.testing.assert_array_equal(zarr.open_array(zpath, mode="r")[:], A * 2)


ZARR_TARGETS = {
    "v3-zstd": dict(zarr_format=3, compressors=None),
    "v3-sharded": dict(zarr_format=3, shards=(8, 6)),
    "v2": dict(zarr_format=2),
    "v2-bigendian": dict(zarr_format=2, dtype=">f8"),
}


def _zarr_target(path, kind, shape=(10, 7), chunks=(4, 3), dtype="f8"):
    kw = dict(ZARR_TARGETS[kind])
    dtype = kw.pop("dtype", dtype)
    if kind == "v3-zstd":
        kw["compressors"] = zarr.codecs.ZstdCodec(level=2)
    if kind == "v3-sharded":
        chunks = (4, 3)
    z = zarr.create_array(store=path, shape=shape, chunks=chunks, dtype=dtype, fill_value=-1, **kw)
    z.attrs["units"] = "K"
    return z


@pytest.mark.parametrize("kind", sorted(ZARR_TARGETS))
def test_store_into_zarr_array(da, x, tmp_path, kind):
    """Dask's da.store(x, zarr_array): the data lands in the existing array,
    whose metadata (codecs, fill value, attributes) stays as it was."""
    path = str(tmp_path / "t.zarr")
    z = _zarr_target(path, kind)
    meta_file = "zarr.json" if z.metadata.zarr_format == 3 else ".zarray"
    meta = (tmp_path / "t.zarr" / meta_file).read_bytes()
    da.store(x * 2 + 1, z)
    back = zarr.open_array(path, mode="r")
    np.testing.assert_array_equal(back[:], A * 2 + 1)
    assert back.dtype == z.dtype
    assert dict(back.attrs) == {"units": "K"}
    assert (tmp_path / "t.zarr" / meta_file).read_bytes() == meta
    assert not (tmp_path / "t.zarr" / ".ndstream-incomplete").exists()


@pytest.mark.ndstream_only
def test_store_into_zarr_array_uses_ndstreams_writer(da, x, tmp_path, monkeypatch):
    """The chunks are written by ndstream, never through zarr-python's
    __setitem__; the source is cast to the target's dtype as assignment
    would cast it."""
    path = str(tmp_path / "t.zarr")
    z = _zarr_target(path, "v3-zstd", dtype="f4")

    def refuse(*args, **kwargs):
        raise AssertionError("written through zarr-python")

    monkeypatch.setattr(type(z), "__setitem__", refuse)
    da.store(x, z)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A.astype("f4"))


@pytest.mark.ndstream_only
def test_store_into_zarr_array_of_another_grid_raises_and_changes_nothing(da, x, tmp_path):
    """A rechunked source is written on the target's own grid; a target
    whose shape differs is refused before anything is written."""
    path = str(tmp_path / "t.zarr")
    z = _zarr_target(path, "v3-zstd", shape=(10, 8))
    before = sorted(p.name for p in (tmp_path / "t.zarr").rglob("*"))
    with pytest.raises(ValueError, match="shape"):
        da.store(x, z)
    assert sorted(p.name for p in (tmp_path / "t.zarr").rglob("*")) == before


def test_store_into_regions_with_integers_and_steps(da, x):
    """Dask's regions: an integer picks one index (its axis is dropped),
    a slice with a step spreads the source along its axis."""
    out = np.zeros((3, 10, 14))
    da.store(
        [x, x * 2],
        [out, out],
        regions=[(1, slice(None), slice(0, None, 2)), (-1, slice(None), slice(1, None, 2))],
    )
    want = np.zeros((3, 10, 14))
    want[1, :, ::2] = A
    want[2, :, 1::2] = A * 2
    np.testing.assert_array_equal(out, want)


@pytest.mark.ndstream_only
def test_store_into_a_reversed_region(da, x):
    out = np.zeros((12, 7))
    da.store(x, out, regions=(slice(9, None, -1),))
    want = np.zeros((12, 7))
    want[9::-1] = A
    np.testing.assert_array_equal(out, want)


@pytest.mark.ndstream_only
def test_store_refuses_a_region_of_another_shape_before_writing(da, x):
    first, second = np.zeros(A.shape), np.zeros((3, 10, 7))
    with pytest.raises(ValueError, match="region"):
        da.store([x, x], [first, second], regions=[None, (slice(0, 2),)])
    assert not first.any() and not second.any()


@pytest.mark.ndstream_only
def test_store_refuses_a_bad_pair_before_writing_any(da, x):
    """A target of the wrong shape anywhere in the list is refused before
    any target is written."""
    first = np.zeros(A.shape)
    with pytest.raises(ValueError, match="shape"):
        da.store([x, x], [first, np.zeros((10, 8))])
    assert not first.any()


def test_store_mismatched_lengths(da, x):
    with pytest.raises(ValueError):
        da.store([x, x], [np.zeros((10, 7))])


def test_hdf5_to_zarr_pipeline(da, tmp_path):
    fn = str(tmp_path / "in.h5")
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3, 40, 30)).astype("float32")
    with h5py.File(fn, "w") as f:
        for i in range(3):
            f.create_dataset(f"/d{i}", data=data[i], chunks=(20, 15))
    with h5py.File(fn, "r") as f:
        arrays = [da.from_array(f[f"/d{i}"], chunks=(16, 16)) for i in range(3)]
        stacked = da.stack(arrays, axis=0)
        assert is_lazy(stacked)
        zpath = str(tmp_path / "out.zarr")
        da.to_zarr(stacked[:, ::2, ::2], zpath, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(zpath, mode="r")[:], data[:, ::2, ::2])
