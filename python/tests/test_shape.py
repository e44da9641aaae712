"""Shape and layout: astype, transpose, reshape, squeeze, expand_dims, swapaxes,
rechunk, stack, concatenate, triu/tril, map_blocks, compute/persist."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import CHUNKS_2D, CHUNKS_2D_IDS, assert_eq, chunks_match_shape, is_lazy

A = np.arange(70.0).reshape(10, 7) * 0.5 - 3


@pytest.fixture(params=list(zip(CHUNKS_2D, CHUNKS_2D_IDS)), ids=lambda p: p[1])
def x(request, da):
    return da.from_array(A, chunks=request.param[0])


@pytest.mark.parametrize("dtype", ["float32", "int32", "int8", "uint16", "bool", "uint64", "int64"])
def test_astype(da, x, dtype):
    with np.errstate(invalid="ignore"):
        expected = A.astype(dtype)
    r = x.astype(dtype)
    assert r.dtype == np.dtype(dtype)
    assert r.chunks == x.chunks
    assert_eq(r, expected)


def test_astype_same_dtype_and_roundtrip(da):
    x = da.from_array(A, chunks=(3, 4))
    assert_eq(x.astype("float64"), A)
    assert_eq(x.astype("float32").astype("float64"), A.astype("float32").astype("float64"))
    assert_eq(x.astype(np.int64), A.astype(np.int64))  # truncation toward zero


def test_transpose(da, x):
    assert_eq(x.transpose(), A.T)
    assert_eq(x.transpose((1, 0)), A.transpose((1, 0)))
    assert_eq(x.transpose(1, 0), A.transpose(1, 0))
    assert_eq(da.transpose(x), np.transpose(A))
    assert x.transpose().chunks == x.chunks[::-1]


def test_transpose_3d_axes(da):
    b = np.arange(60).reshape(3, 4, 5)
    y = da.from_array(b, chunks=(2, 3, 2))
    for axes in [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0), (0, 2, 1)]:
        r = y.transpose(axes)
        assert r.chunks == tuple(y.chunks[i] for i in axes)
        assert_eq(r, b.transpose(axes))
        assert_eq(da.transpose(y, axes=axes), np.transpose(b, axes=axes))
    assert_eq(y.transpose(-1, 0, 1), b.transpose(-1, 0, 1))


@pytest.mark.parametrize(
    "shape",
    [(70,), (-1,), (5, 2, 7), (2, 5, 7), (10, 7, 1), (1, 10, 7), (-1, 7), (10, -1), (5, -1, 7), 70],
    ids=str,
)
def test_reshape(da, x, shape):
    r = x.reshape(shape)
    expected = A.reshape(shape)
    assert r.shape == expected.shape
    assert chunks_match_shape(r.chunks, expected.shape)
    assert_eq(r, expected)


def test_reshape_forms(da):
    x = da.from_array(A, chunks=(5, 7))
    assert_eq(x.reshape(5, 2, 7), A.reshape(5, 2, 7))
    assert_eq(da.reshape(x, (70,)), A.reshape(70))
    b = np.arange(120.0).reshape(6, 5, 4)
    y = da.from_array(b, chunks=(3, 2, 2))
    assert_eq(y.reshape(30, 4), b.reshape(30, 4))
    assert_eq(y.reshape(3, 2, 5, 4), b.reshape(3, 2, 5, 4))
    assert_eq(y.reshape(-1), b.reshape(-1))
    assert_eq(y.reshape(6, 20), b.reshape(6, 20))
    # 1-d to n-d
    v = da.arange(24, chunks=5)
    assert_eq(v.reshape(4, 6), np.arange(24).reshape(4, 6))
    assert_eq(v.reshape(2, 3, 4), np.arange(24).reshape(2, 3, 4))


def test_reshape_bad_size(da, x):
    with pytest.raises(ValueError):
        x.reshape(3, 3)
    with pytest.raises(ValueError):
        x.reshape(-1, -1)


def test_squeeze(da):
    b = np.arange(5.0).reshape(1, 5, 1)
    y = da.from_array(b, chunks=(1, 2, 1))
    assert_eq(y.squeeze(), b.squeeze())
    assert_eq(y.squeeze(axis=0), b.squeeze(axis=0))
    assert_eq(y.squeeze(axis=-1), b.squeeze(axis=-1))
    assert_eq(da.squeeze(y, axis=(0, 2)), np.squeeze(b, axis=(0, 2)))
    assert_eq(da.squeeze(y), np.squeeze(b))
    with pytest.raises(ValueError):
        y.squeeze(axis=1)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3, (0, 1), (0, -1)], ids=str)
def test_expand_dims(da, x, axis):
    r = da.expand_dims(x, axis)
    expected = np.expand_dims(A, axis)
    assert r.shape == expected.shape
    assert_eq(r, expected)


@pytest.mark.parametrize("a1, a2", [(0, 1), (1, 0), (0, -1), (1, 1)])
def test_swapaxes(da, x, a1, a2):
    assert_eq(x.swapaxes(a1, a2), A.swapaxes(a1, a2))
    assert_eq(da.swapaxes(x, a1, a2), np.swapaxes(A, a1, a2))


def test_swapaxes_3d(da):
    b = np.arange(60).reshape(3, 4, 5)
    y = da.from_array(b, chunks=(2, 3, 2))
    assert_eq(y.swapaxes(0, 2), b.swapaxes(0, 2))
    assert y.swapaxes(0, 2).chunks == (y.chunks[2], y.chunks[1], y.chunks[0])


@pytest.mark.parametrize(
    "new, expected",
    [
        ((5, 5), ((5, 5), (5, 2))),
        (2, ((2, 2, 2, 2, 2), (2, 2, 2, 1))),
        ({0: -1}, None),  # axis 0 whole, axis 1 unchanged
        (((4, 6), (7,)), ((4, 6), (7,))),
        ((10, 7), ((10,), (7,))),
        ((-1, 3), ((10,), (3, 3, 1))),
        ((1, 1), ((1,) * 10, (1,) * 7)),
    ],
    ids=["tuple", "int", "dict", "explicit", "whole", "minus-one", "tiny"],
)
def test_rechunk(da, x, new, expected):
    r = x.rechunk(new)
    if expected is None:
        expected = ((10,), x.chunks[1])
    assert r.chunks == expected
    assert_eq(r, A)
    assert_eq(r.sum(axis=0), A.sum(axis=0), rtol=1e-12)
    assert_eq(da.rechunk(x, new), A)


def test_rechunk_auto(da, x):
    r = x.rechunk("auto")
    assert chunks_match_shape(r.chunks, A.shape)
    assert_eq(r, A)


# --------------------------------------------------------------------------- joining


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(da, axis):
    arrays = [A + i for i in range(3)]
    xs = [da.from_array(a, chunks=c) for a, c in zip(arrays, [(3, 4), (10, 7), (2, 2)])]
    r = da.stack(xs, axis=axis)
    expected = np.stack(arrays, axis=axis)
    assert r.shape == expected.shape
    assert chunks_match_shape(r.chunks, expected.shape)
    assert r.chunks[axis] == (1, 1, 1)
    assert_eq(r, expected)


def test_stack_default_axis_and_single(da):
    arrays = [A * (i + 1) for i in range(4)]
    xs = [da.from_array(a, chunks=(3, 4)) for a in arrays]
    assert_eq(da.stack(xs), np.stack(arrays))
    assert_eq(da.stack(xs[:1]), A[None])
    assert_eq(da.stack(xs).mean(axis=0), np.stack(arrays).mean(axis=0), rtol=1e-12)


def test_stack_dtype_promotion(da):
    a = np.arange(6, dtype="int32")
    b = np.arange(6, dtype="float32") / 2
    r = da.stack([da.from_array(a, chunks=4), da.from_array(b, chunks=3)])
    assert_eq(r, np.stack([a, b]))


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_concatenate(da, axis):
    b = np.arange(21.0).reshape(3, 7) if axis in (0, -2) else np.arange(20.0).reshape(10, 2)
    x1 = da.from_array(A, chunks=(3, 4))
    x2 = da.from_array(b, chunks=2)
    r = da.concatenate([x1, x2, x1], axis=axis)
    expected = np.concatenate([A, b, A], axis=axis)
    assert r.shape == expected.shape
    assert chunks_match_shape(r.chunks, expected.shape)
    assert_eq(r, expected)


def test_concatenate_default_axis_and_dtype(da):
    a = np.arange(5, dtype="int8")
    b = np.arange(3, dtype="int64")
    r = da.concatenate([da.from_array(a, chunks=2), da.from_array(b, chunks=2)])
    assert r.chunks == ((2, 2, 1, 2, 1),)
    assert_eq(r, np.concatenate([a, b]))


def test_concatenate_axis_none(da):
    xs = [da.from_array(A, chunks=(3, 4)), da.from_array(A[:2], chunks=1)]
    assert_eq(da.concatenate(xs, axis=None), np.concatenate([A, A[:2]], axis=None))


# --------------------------------------------------------------------------- triangles


@pytest.mark.parametrize("k", [0, 1, -1, 3, -4, 10, -10])
@pytest.mark.parametrize(
    "shape, chunks", [((10, 7), (3, 4)), ((6, 6), (2, 2)), ((5, 8), 5), ((7, 7), 7)]
)
def test_triu_tril(da, k, shape, chunks):
    a = np.arange(np.prod(shape), dtype=float).reshape(shape) + 1
    x = da.from_array(a, chunks=chunks)
    assert_eq(da.triu(x, k), np.triu(a, k))
    assert_eq(da.tril(x, k), np.tril(a, k))
    assert_eq(da.triu(x), np.triu(a))
    assert_eq(da.tril(x), np.tril(a))


def test_triu_int_keeps_dtype(da):
    a = np.arange(16, dtype="int16").reshape(4, 4)
    x = da.from_array(a, chunks=3)
    assert_eq(da.triu(x), np.triu(a))
    assert_eq(da.tril(x, -1), np.tril(a, -1))


# --------------------------------------------------------------------------- map_blocks


def test_map_blocks_function(da, x):
    r = da.map_blocks(lambda b: b * 2 + 1, x, dtype=x.dtype)
    assert r.chunks == x.chunks
    assert r.dtype == np.float64
    assert_eq(r, A * 2 + 1)
    r = da.map_blocks(np.sin, x, dtype="float64")
    assert_eq(r, np.sin(A))


def test_map_blocks_method(da, x):
    r = x.map_blocks(lambda b: b - b.min())
    assert r.chunks == x.chunks
    # each block minus its own minimum: build the expected result block by block
    expected = np.empty_like(A)
    r0 = 0
    for rs in x.chunks[0]:
        c0 = 0
        for cs in x.chunks[1]:
            blk = A[r0 : r0 + rs, c0 : c0 + cs]
            expected[r0 : r0 + rs, c0 : c0 + cs] = blk - blk.min()
            c0 += cs
        r0 += rs
    assert_eq(r, expected)


def test_map_blocks_dtype_change(da):
    a = np.arange(20, dtype="int64").reshape(4, 5)
    x = da.from_array(a, chunks=(3, 2))
    r = x.map_blocks(lambda b: b % 2 == 0, dtype=bool)
    assert r.dtype == np.bool_
    assert_eq(r, a % 2 == 0)
    r = da.map_blocks(lambda b: b.astype("float32") / 2, x, dtype="float32")
    assert r.dtype == np.float32
    assert_eq(r, a.astype("float32") / 2)


def test_map_blocks_multiple_arrays(da):
    a = np.arange(20.0).reshape(4, 5)
    b = np.ones((4, 5)) * 3
    x = da.from_array(a, chunks=(3, 2))
    y = da.from_array(b, chunks=(3, 2))
    assert_eq(da.map_blocks(np.add, x, y, dtype=float), a + b)


def test_map_blocks_drop_axis(da):
    """Dask concatenates the blocks along a dropped axis: each call sees whole rows."""
    a = np.arange(30.0).reshape(5, 6)
    x = da.from_array(a, chunks=(2, 2))
    r = x.map_blocks(lambda b: b.sum(axis=1), drop_axis=1, dtype=float)
    assert r.shape == (5,)
    assert r.chunks == ((2, 2, 1),)
    assert_eq(r, a.sum(axis=1))
    r = x.map_blocks(lambda b: b.max(axis=0), drop_axis=[0], dtype=float)
    assert r.chunks == ((2, 2, 2),)
    assert_eq(r, a.max(axis=0))


def test_map_blocks_new_axis(da):
    a = np.arange(7.0)
    x = da.from_array(a, chunks=3)
    r = x.map_blocks(lambda b: np.stack([b, b * b]), new_axis=0, chunks=(2, 3), dtype=float)
    assert r.shape == (2, 9)
    assert r.chunks == ((2,), (3, 3, 3))
    # the declared chunks are Dask's metadata; the last block really holds 1 column
    r = x.map_blocks(
        lambda b: np.stack([b, b * b]), new_axis=[0], chunks=((2,), (3, 3, 1)), dtype=float
    )
    assert r.chunks == ((2,), (3, 3, 1))
    assert_eq(r, np.stack([a, a * a]))
    r = x.map_blocks(lambda b: b[:, None], new_axis=1, dtype=float)
    assert r.chunks == ((3, 3, 1), (1,))
    assert_eq(r, a[:, None])


def test_map_blocks_chunks(da):
    """Each block of 4 becomes its first two elements (chunks as one size per block)."""
    a = np.arange(12.0)
    x = da.from_array(a, chunks=4)
    r = x.map_blocks(lambda b: b[:2], chunks=(2,), dtype=float)
    assert r.chunks == ((2, 2, 2),)
    assert_eq(r, a.reshape(3, 4)[:, :2].ravel())
    r2 = x.map_blocks(lambda b: b[:2], chunks=((2, 2, 2),), dtype=float)
    assert_eq(r2, a.reshape(3, 4)[:, :2].ravel())


def test_map_blocks_drop_and_new_axis(da):
    """A (rows, 3) array of points to one distance column per block of rows."""
    a = np.arange(24.0).reshape(8, 3)
    x = da.from_array(a, chunks=(3, 3))
    r = x.map_blocks(
        lambda b: np.sqrt((b * b).sum(axis=1))[:, None],
        drop_axis=1,
        new_axis=1,
        chunks=((3, 3, 2), (1,)),
        dtype=float,
    )
    assert r.chunks == ((3, 3, 2), (1,))
    assert_eq(r, np.sqrt((a * a).sum(axis=1))[:, None])


def test_map_blocks_bad_chunks_raise(da):
    x = da.from_array(np.arange(12.0), chunks=4)
    with pytest.raises(ValueError):
        x.map_blocks(lambda b: b[:2], chunks=((2, 2),), dtype=float)
    with pytest.raises(ValueError):
        x.map_blocks(lambda b: b, chunks=(2, 2), new_axis=[], dtype=float)


# --------------------------------------------------------------------------- compute / persist


def test_compute_returns_numpy(da, x):
    v = x.compute()
    assert isinstance(v, np.ndarray)
    np.testing.assert_array_equal(v, A)
    s = x.sum().compute()
    assert np.ndim(s) == 0
    assert isinstance(s, (np.generic, np.ndarray))
    np.testing.assert_allclose(s, A.sum())


def test_compute_is_repeatable_and_lazy(da):
    calls = []

    def f(b):
        calls.append(1)
        return b + 1

    x = da.from_array(A, chunks=(5, 7))
    y = x.map_blocks(f, dtype=x.dtype)
    n_before = len(calls)
    z = (y * 2).sum()  # building the expression computes nothing
    assert len(calls) == n_before
    np.testing.assert_allclose(z.compute(), ((A + 1) * 2).sum())
    np.testing.assert_allclose(z.compute(), ((A + 1) * 2).sum())


def test_module_compute(da, x):
    s, m, arr = da.compute(x.sum(), x.mean(axis=0), x[:2])
    np.testing.assert_allclose(s, A.sum())
    np.testing.assert_allclose(m, A.mean(axis=0))
    np.testing.assert_array_equal(arr, A[:2])
    out = da.compute(x)
    assert isinstance(out, tuple) and len(out) == 1
    np.testing.assert_array_equal(out[0], A)


def test_persist(da, x):
    y = (x * 3).persist()
    assert is_lazy(y)
    assert type(y) is type(x)
    assert y.shape == x.shape
    assert y.chunks == x.chunks
    assert_eq(y, A * 3)
    assert_eq(y.sum(axis=1), (A * 3).sum(axis=1), rtol=1e-12)
