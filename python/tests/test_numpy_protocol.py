"""NumPy interoperability: ufuncs (__array_ufunc__) and NumPy functions
(__array_function__) stay lazy; np.asarray/np.array compute; scalar conversion."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_eq, is_lazy

A = np.linspace(0.1, 7.0, 70).reshape(10, 7)


@pytest.fixture
def x(da):
    return da.from_array(A, chunks=(3, 4))


@pytest.mark.parametrize(
    "ufunc",
    [
        np.sin,
        np.cos,
        np.sqrt,
        np.exp,
        np.log,
        np.abs,
        np.absolute,
        np.negative,
        np.floor,
        np.isnan,
        np.isfinite,
        np.square,
        np.log1p,
        np.sign,
    ],
    ids=lambda f: f.__name__,
)
def test_unary_ufunc_is_lazy(da, x, ufunc):
    r = ufunc(x)
    assert is_lazy(r)
    assert type(r) is type(x)
    assert r.chunks == x.chunks
    assert_eq(r, ufunc(A), rtol=1e-12)


@pytest.mark.parametrize(
    "ufunc",
    [
        np.add,
        np.subtract,
        np.multiply,
        np.true_divide,
        np.maximum,
        np.minimum,
        np.power,
        np.greater,
        np.equal,
        np.arctan2,
        np.logical_and,
    ],
    ids=lambda f: f.__name__,
)
def test_binary_ufunc_is_lazy(da, x, ufunc):
    y = da.from_array(A[::-1].copy(), chunks=(5, 2))
    for args, nargs in [
        ((x, y), (A, A[::-1])),
        ((x, 1), (A, 1)),
        ((2.5, x), (2.5, A)),
        ((x, A[::-1]), (A, A[::-1])),
        ((A[::-1], x), (A[::-1], A)),
    ]:
        r = ufunc(*args)
        assert is_lazy(r), (ufunc, args)
        assert_eq(r, ufunc(*nargs), rtol=1e-12)


def test_ufunc_dtype_preserved(da, x):
    x32 = x.astype("float32")
    assert np.sin(x32).dtype == np.float32
    assert np.sqrt(x32).dtype == np.float32
    assert_eq(np.sqrt(x32), np.sqrt(A.astype("float32")), rtol=1e-6)
    i = da.from_array(np.arange(10, dtype="int32"), chunks=3)
    assert np.sqrt(i).dtype == np.float64
    assert np.abs(i).dtype == np.int32


def test_numpy_scalar_operands_stay_lazy(da, x):
    for r in [
        x + np.float64(1),
        np.float64(1) + x,
        np.int64(2) * x,
        x * np.float32(2),
        np.float32(3) - x,
        A + x,
        A[0] * x,
    ]:
        assert is_lazy(r)
    assert_eq(np.float64(1) + x, 1 + A)
    assert_eq(A + x, 2 * A)


def test_asarray_and_array_compute(da, x):
    a = np.asarray(x)
    assert type(a) is np.ndarray
    np.testing.assert_array_equal(a, A)
    b = np.array(x)
    assert type(b) is np.ndarray
    np.testing.assert_array_equal(b, A)
    c = np.asarray(x, dtype="float32")
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, A.astype("float32"))
    np.testing.assert_array_equal(np.asarray(x[::2] * 2), A[::2] * 2)
    assert np.asarray(x[1, 1]).shape == ()


@pytest.mark.parametrize(
    "call",
    [
        lambda m, v: m.sum(v),
        lambda m, v: m.sum(v, axis=0),
        lambda m, v: m.mean(v, axis=1, keepdims=True),
        lambda m, v: m.std(v),
        lambda m, v: m.max(v, axis=-1),
        lambda m, v: m.nansum(v),
        lambda m, v: m.cumsum(v, axis=0),
        lambda m, v: m.transpose(v),
        lambda m, v: m.concatenate([v, v], axis=1),
        lambda m, v: m.stack([v, v]),
        lambda m, v: m.where(v > 3, v, 0.0),
        lambda m, v: m.clip(v, 1, 2),
        lambda m, v: m.round(v, 1),
        lambda m, v: m.triu(v),
        lambda m, v: m.expand_dims(v, 0),
        lambda m, v: m.reshape(v, (70,)),
        lambda m, v: m.argmax(v, axis=0),
    ],
    ids=[
        "sum",
        "sum-axis",
        "mean-keepdims",
        "std",
        "max",
        "nansum",
        "cumsum",
        "transpose",
        "concatenate",
        "stack",
        "where",
        "clip",
        "round",
        "triu",
        "expand_dims",
        "reshape",
        "argmax",
    ],
)
def test_array_function_dispatch(da, x, call):
    r = call(np, x)
    assert not isinstance(r, np.ndarray)
    assert is_lazy(r)
    assert_eq(r, call(np, A), rtol=1e-12)


def test_scalar_conversion(da, x):
    s = x.sum()
    assert float(s) == pytest.approx(A.sum())
    assert int(x[1, 1] * 10) == int(A[1, 1] * 10)
    assert bool(x[1, 1] > 0) is True
    assert bool(x[0, 0] > 100) is False


def test_matmul(da):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((10, 7))
    b = rng.standard_normal((7, 5))
    x = da.from_array(a, chunks=(3, 4))
    y = da.from_array(b, chunks=(4, 2))
    assert_eq(x @ y, a @ b, rtol=1e-12)
    assert_eq(da.matmul(x, y), a @ b, rtol=1e-12)
    assert_eq(x.dot(y), a.dot(b), rtol=1e-12)
    assert_eq(np.matmul(x, y), a @ b, rtol=1e-12)
