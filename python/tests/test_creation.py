"""Array creation: from_array, zeros/ones/full/empty, arange, linspace, *_like, random."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import (
    CHUNKS_1D,
    CHUNKS_2D,
    CHUNKS_2D_IDS,
    assert_eq,
    chunks_match_shape,
)

# --------------------------------------------------------------------------- from_array


@pytest.mark.parametrize("chunks", CHUNKS_2D, ids=CHUNKS_2D_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32", "uint8", "bool"])
def test_from_array_roundtrip(da, rng, chunks, dtype):
    a = (rng.standard_normal((10, 7)) * 10).astype(dtype)
    x = da.from_array(a, chunks=chunks)
    assert x.shape == a.shape
    assert x.dtype == a.dtype
    assert chunks_match_shape(x.chunks, a.shape)
    assert_eq(x, a)
    np.testing.assert_array_equal(np.asarray(x), a)


@pytest.mark.parametrize(
    "chunks, expected",
    [
        (3, ((3, 3, 3, 1), (3, 3, 1))),
        ((3, 4), ((3, 3, 3, 1), (4, 3))),
        ((10, 7), ((10,), (7,))),
        (((4, 6), (1, 3, 3)), ((4, 6), (1, 3, 3))),
        ((5, -1), ((5, 5), (7,))),
        ((-1, 2), ((10,), (2, 2, 2, 1))),
    ],
    ids=["int", "tuple", "whole", "tuple-of-tuples", "minus-one-a", "minus-one-b"],
)
def test_from_array_chunk_specs(da, chunks, expected):
    a = np.arange(70.0).reshape(10, 7)
    x = da.from_array(a, chunks=chunks)
    assert x.chunks == expected
    assert_eq(x, a)


def test_from_array_auto_chunks(da):
    a = np.arange(10_000, dtype="f8").reshape(100, 100)
    x = da.from_array(a, chunks="auto")
    assert chunks_match_shape(x.chunks, a.shape)
    # small arrays fit in a single chunk under any reasonable "auto" size
    assert x.numblocks == (1, 1)
    assert_eq(x, a)


def test_from_array_1d_and_0d(da):
    a = np.arange(10)
    for chunks in CHUNKS_1D:
        x = da.from_array(a, chunks=chunks)
        assert_eq(x, a)
    s = da.from_array(np.array(3.5), chunks=())
    assert s.shape == ()
    assert s.ndim == 0
    assert_eq(s, np.array(3.5))


def test_from_array_chunks_are_python_ints(da):
    x = da.from_array(np.zeros((10, 7)), chunks=(3, 4))
    for dim in x.chunks:
        assert isinstance(dim, tuple)
        for c in dim:
            assert isinstance(c, int)


# --------------------------------------------------------------------------- constants


@pytest.mark.parametrize("dtype", [None, "float32", "int32", "bool", "uint16"])
@pytest.mark.parametrize("chunks", [(3, 4), 5, (6, 7)])
def test_zeros_ones(da, dtype, chunks):
    shape = (6, 7)
    z = da.zeros(shape, dtype=dtype, chunks=chunks)
    o = da.ones(shape, dtype=dtype, chunks=chunks)
    assert z.shape == shape
    assert chunks_match_shape(z.chunks, shape)
    assert_eq(z, np.zeros(shape, dtype=dtype))
    assert_eq(o, np.ones(shape, dtype=dtype))


def test_zeros_int_shape_and_default_dtype(da):
    z = da.zeros(5, chunks=2)
    assert z.shape == (5,)
    assert z.dtype == np.float64
    assert z.chunks == ((2, 2, 1),)
    assert_eq(z, np.zeros(5))


@pytest.mark.parametrize(
    "fill, dtype",
    [(7, None), (7.5, None), (2, "float32"), (True, None), (-3, "int8"), (np.nan, None)],
)
def test_full(da, fill, dtype):
    x = da.full((5, 4), fill, dtype=dtype, chunks=(2, 3))
    assert_eq(x, np.full((5, 4), fill, dtype=dtype))


@pytest.mark.parametrize("dtype", ["float64", "int16", "uint32", "bool"])
def test_empty_shape_dtype_only(da, dtype):
    x = da.empty((6, 5), dtype=dtype, chunks=(4, 2))
    assert x.shape == (6, 5)
    assert x.dtype == np.dtype(dtype)
    assert x.chunks == ((4, 2), (2, 2, 1))
    got = x.compute()
    assert got.shape == (6, 5)
    assert got.dtype == np.dtype(dtype)


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "args",
    [(10,), (0, 10), (2, 17, 3), (10, 0, -1), (0.0, 1.0, 0.1), (-5, 5, 2), (0, 1)],
    ids=str,
)
@pytest.mark.parametrize("chunks", [1, 3, 100])
def test_arange(da, args, chunks):
    x = da.arange(*args, chunks=chunks)
    expected = np.arange(*args)
    assert x.shape == expected.shape
    assert_eq(x, expected)


def test_arange_dtype(da):
    assert_eq(da.arange(0, 10, 2, chunks=2, dtype="float32"), np.arange(0, 10, 2, dtype="float32"))
    assert da.arange(10, chunks=3).chunks == ((3, 3, 3, 1),)


@pytest.mark.parametrize(
    "start, stop, num", [(0, 1, 11), (-2.5, 7.0, 50), (5, 5, 3), (0, 10, 1), (10, 0, 7)]
)
@pytest.mark.parametrize("chunks", [1, 4, 100])
def test_linspace(da, start, stop, num, chunks):
    x = da.linspace(start, stop, num, chunks=chunks)
    expected = np.linspace(start, stop, num)
    assert x.shape == (num,)
    assert_eq(x, expected, rtol=1e-12, atol=1e-12)


def test_linspace_endpoint_false(da):
    assert_eq(
        da.linspace(0, 1, 10, endpoint=False, chunks=3),
        np.linspace(0, 1, 10, endpoint=False),
        rtol=1e-12,
        atol=1e-12,
    )


# --------------------------------------------------------------------------- *_like


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_like_functions(da, dtype):
    a = np.arange(35).reshape(5, 7).astype(dtype)
    x = da.from_array(a, chunks=(2, 3))
    for func, expected in [
        (da.zeros_like(x), np.zeros_like(a)),
        (da.ones_like(x), np.ones_like(a)),
        (da.full_like(x, 4), np.full_like(a, 4)),
    ]:
        assert func.chunks == x.chunks
        assert_eq(func, expected)
    assert_eq(da.ones_like(x, dtype="int8"), np.ones_like(a, dtype="int8"))
    assert_eq(da.full_like(x, 2.5, dtype="float64"), np.full_like(a, 2.5, dtype="float64"))
    e = da.empty_like(x)
    assert e.shape == a.shape and e.dtype == a.dtype


# --------------------------------------------------------------------------- random


def _check_normal(x, shape, loc, scale):
    assert x.shape == shape
    assert x.dtype == np.float64
    v = x.compute()
    assert v.shape == shape
    assert v.dtype == np.float64
    n = v.size
    # mean within ~6 standard errors, std within 5%
    assert abs(v.mean() - loc) < 6 * scale / np.sqrt(n)
    assert abs(v.std() - scale) < 0.05 * scale
    return v


def test_random_normal(da):
    x = da.random.normal(10, 2, size=(1000, 300), chunks=(300, 100))
    assert x.chunks == ((300, 300, 300, 100), (100, 100, 100))
    v = _check_normal(x, (1000, 300), 10, 2)
    # same object computed twice gives the same values
    np.testing.assert_array_equal(v, x.compute())
    # distinct chunks hold distinct values
    assert not np.array_equal(v[:300, :100], v[300:600, :100])


def test_random_standard_normal(da):
    x = da.random.standard_normal(size=(500, 200), chunks=(128, 64))
    v = _check_normal(x, (500, 200), 0.0, 1.0)
    np.testing.assert_array_equal(v, x.compute())


def test_random_uniform(da):
    x = da.random.uniform(-1, 3, size=(200_000,), chunks=30_000)
    assert x.shape == (200_000,)
    assert x.dtype == np.float64
    assert x.chunks[0][0] == 30_000 and sum(x.chunks[0]) == 200_000
    v = x.compute()
    assert v.min() >= -1 and v.max() < 3
    assert abs(v.mean() - 1.0) < 0.02
    assert abs(v.var() - 16 / 12) < 0.03
    np.testing.assert_array_equal(v, x.compute())


def test_random_default_rng(da):
    rng = da.random.default_rng(42)
    x = rng.normal(5, 0.5, size=(400, 250), chunks=(100, 100))
    v = _check_normal(x, (400, 250), 5, 0.5)
    np.testing.assert_array_equal(v, x.compute())
    # the same seed makes the same first array; a second draw differs from the first
    x2 = da.random.default_rng(42).normal(5, 0.5, size=(400, 250), chunks=(100, 100))
    np.testing.assert_array_equal(v, x2.compute())
    y = rng.normal(5, 0.5, size=(400, 250), chunks=(100, 100))
    assert not np.array_equal(v, y.compute())
    u = da.random.default_rng(1).uniform(0, 1, size=1000, chunks=100).compute()
    assert u.min() >= 0 and u.max() < 1


def test_random_derived_expressions_consistent(da):
    # a random array used twice in one expression is the same array
    x = da.random.normal(0, 1, size=(50, 40), chunks=(20, 15))
    assert_eq(x - x, np.zeros((50, 40)))
    v = x.compute()
    assert_eq(x.sum(), v.sum(), rtol=1e-10, atol=1e-12)
    assert_eq(x[::7, 3], v[::7, 3])
