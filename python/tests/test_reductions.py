"""Reductions (methods and module functions), NaN-aware reductions, cumulative
reductions, axis/keepdims/ddof/dtype handling, topk/argtopk."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _helpers import CHUNKS_2D, CHUNKS_2D_IDS, assert_eq, is_lazy

# All-NaN slices and empty reductions warn in NumPy and Dask alike.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

AXES = [None, 0, -1, (0, 1)]
AXES_IDS = ["None", "0", "-1", "(0,1)"]
# further axis spellings, checked on one ragged chunking
MORE_AXES = [1, -2, (1, 0), (-1, 0), ()]
MORE_AXES_IDS = ["1", "-2", "(1,0)", "(-1,0)", "()"]


@pytest.fixture(params=list(zip(CHUNKS_2D, CHUNKS_2D_IDS)), ids=lambda p: p[1])
def chunks(request):
    return request.param[0]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.standard_normal((10, 7)) * 5 + 1


def _rtol(name):
    return 1e-10 if name in ("std", "var", "mean", "nanstd", "nanvar", "nanmean") else 1e-12


@pytest.mark.parametrize("name", ["sum", "mean", "std", "var", "min", "max", "prod", "any", "all"])
@pytest.mark.parametrize("axis", AXES, ids=AXES_IDS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_methods(da, data, chunks, name, axis, keepdims):
    a = data if name not in ("any", "all") else (data > 0)
    if name == "prod":
        a = 1 + data / 50  # keep the product well-scaled
    x = da.from_array(a, chunks=chunks)
    r = getattr(x, name)(axis=axis, keepdims=keepdims)
    assert is_lazy(r)
    expected = getattr(a, name)(axis=axis, keepdims=keepdims)
    assert r.shape == expected.shape
    assert_eq(r, expected, rtol=_rtol(name), atol=1e-12)


@pytest.mark.parametrize("name", ["sum", "mean", "std", "var", "min", "max", "prod", "any", "all"])
@pytest.mark.parametrize("axis", MORE_AXES, ids=MORE_AXES_IDS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_axis_spellings(da, data, name, axis, keepdims):
    a = data if name not in ("any", "all") else (data > 0)
    x = da.from_array(a, chunks=(3, 4))
    r = getattr(x, name)(axis=axis, keepdims=keepdims)
    expected = getattr(a, name)(axis=axis, keepdims=keepdims)
    assert r.shape == expected.shape
    assert_eq(r, expected, rtol=_rtol(name), atol=1e-12)


@pytest.mark.parametrize("name", ["sum", "mean", "std", "var", "min", "max", "prod", "any", "all"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)], ids=str)
def test_reduction_functions(da, data, name, axis):
    a = data if name not in ("any", "all") else (data > 1)
    x = da.from_array(a, chunks=(3, 4))
    r = getattr(da, name)(x, axis=axis)
    assert_eq(r, getattr(np, name)(a, axis=axis), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["argmin", "argmax"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmin_argmax(da, chunks, name, axis):
    rng = np.random.default_rng(3)
    a = rng.permutation(70).reshape(10, 7).astype(float)  # unique values: no ties
    x = da.from_array(a, chunks=chunks)
    r = getattr(x, name)(axis=axis)
    expected = getattr(a, name)(axis=axis)
    assert_eq(r, expected)
    assert_eq(getattr(da, name)(x, axis=axis), expected)


def test_argmin_ties_first_occurrence(da):
    a = np.array([[3, 1, 1, 5], [2, 2, 0, 0], [9, 9, 9, 9]])
    x = da.from_array(a, chunks=(2, 1))
    for axis in (None, 0, 1):
        assert_eq(x.argmin(axis=axis), a.argmin(axis=axis))
        assert_eq(x.argmax(axis=axis), a.argmax(axis=axis))


def test_argmin_keepdims(da, data):
    x = da.from_array(data, chunks=(3, 4))
    assert_eq(x.argmin(axis=0, keepdims=True), data.argmin(axis=0, keepdims=True))
    assert_eq(x.argmax(axis=1, keepdims=True), data.argmax(axis=1, keepdims=True))


@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_std_var_ddof(da, data, chunks, ddof, axis):
    x = da.from_array(data, chunks=chunks)
    assert_eq(x.std(axis=axis, ddof=ddof), data.std(axis=axis, ddof=ddof), rtol=1e-10)
    assert_eq(x.var(axis=axis, ddof=ddof), data.var(axis=axis, ddof=ddof), rtol=1e-10)
    assert_eq(da.std(x, axis=axis, ddof=ddof), np.std(data, axis=axis, ddof=ddof), rtol=1e-10)
    assert_eq(da.nanvar(x, axis=axis, ddof=ddof), np.nanvar(data, axis=axis, ddof=ddof), rtol=1e-10)


def test_std_large_offset_is_stable(da):
    # a naive sum-of-squares algorithm loses all precision here
    rng = np.random.default_rng(11)
    a = 1e8 + rng.standard_normal(10_000)
    x = da.from_array(a, chunks=777)
    assert_eq(x.std(), a.std(), rtol=1e-6)
    assert_eq(x.var(ddof=1), a.var(ddof=1), rtol=1e-6)


@pytest.mark.parametrize(
    "dtype", ["int8", "int32", "int64", "uint8", "uint32", "uint64", "bool", "float32", "float64"]
)
def test_reduction_result_dtypes(da, dtype):
    a = (np.arange(70).reshape(10, 7) % 7).astype(dtype)
    x = da.from_array(a, chunks=(3, 4))
    for name in ["sum", "prod", "mean", "min", "max", "any", "all"]:
        r = getattr(x, name)(axis=0)
        expected = getattr(a, name)(axis=0)
        assert r.dtype == expected.dtype, (name, r.dtype, expected.dtype)
        assert_eq(r, expected, rtol=1e-6)
    assert x.std().dtype == a.std().dtype
    assert x.var().dtype == a.var().dtype


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_sum_mean_dtype_argument(da, data, dtype):
    a = (data * 10).astype("int16")
    x = da.from_array(a, chunks=(3, 4))
    assert_eq(x.sum(dtype=dtype), a.sum(dtype=dtype))
    assert_eq(x.sum(axis=1, dtype=dtype), a.sum(axis=1, dtype=dtype))
    if dtype != "int64":
        assert_eq(x.mean(dtype=dtype), a.mean(dtype=dtype), rtol=1e-6)
        assert_eq(da.mean(x, axis=0, dtype=dtype), np.mean(a, axis=0, dtype=dtype), rtol=1e-6)


def test_sum_float32_accuracy(da):
    rng = np.random.default_rng(5)
    a = rng.random(1_000_000).astype("float32")
    x = da.from_array(a, chunks=100_000)
    r = x.sum()
    assert r.dtype == np.float32
    np.testing.assert_allclose(float(r.compute()), a.astype("f8").sum(), rtol=1e-5)


def test_integer_sum_exact(da):
    a = np.arange(1_000_000, dtype="int64") * 3
    x = da.from_array(a, chunks=65_536)
    assert_eq(x.sum(), a.sum())
    assert_eq(x.max(), a.max())


# --------------------------------------------------------------------------- NaN-aware

NAN_FUNCS = ["nansum", "nanmean", "nanstd", "nanvar", "nanmin", "nanmax", "nanprod"]


@pytest.fixture(scope="module")
def nandata():
    rng = np.random.default_rng(8)
    a = 1 + rng.standard_normal((10, 7)) / 10
    a[rng.random((10, 7)) < 0.3] = np.nan
    a[4, :] = np.nan  # an all-NaN row
    return a


@pytest.mark.parametrize("name", NAN_FUNCS)
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_nan_reductions(da, nandata, chunks, name, axis, keepdims):
    x = da.from_array(nandata, chunks=chunks)
    r = getattr(da, name)(x, axis=axis, keepdims=keepdims)
    assert is_lazy(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = getattr(np, name)(nandata, axis=axis, keepdims=keepdims)
    assert_eq(r, expected, rtol=1e-10)


@pytest.mark.parametrize("name", ["sum", "mean", "min", "max", "std"])
def test_plain_reductions_propagate_nan(da, nandata, name):
    x = da.from_array(nandata, chunks=(3, 4))
    assert np.isnan(getattr(x, name)().compute())
    assert_eq(getattr(x, name)(axis=0), getattr(nandata, name)(axis=0))


def test_nan_reductions_no_nan_match_plain(da, data):
    x = da.from_array(data, chunks=(3, 4))
    assert_eq(da.nansum(x), data.sum(), rtol=1e-12)
    assert_eq(da.nanmean(x, axis=0), data.mean(axis=0), rtol=1e-12)
    assert_eq(da.nanmax(x, axis=1), data.max(axis=1))


def test_nansum_of_integers(da):
    a = np.arange(20).reshape(4, 5)
    x = da.from_array(a, chunks=3)
    assert_eq(da.nansum(x), np.nansum(a))
    assert_eq(da.nanmax(x, axis=0), np.nanmax(a, axis=0))


def test_nansum_with_inf(da):
    a = np.array([1.0, np.inf, np.nan, 2.0, -1.0])
    x = da.from_array(a, chunks=2)
    assert_eq(da.nansum(x), np.nansum(a))
    b = np.array([np.inf, -np.inf, np.nan])
    assert_eq(da.nansum(da.from_array(b, chunks=1)), np.nansum(b))


# --------------------------------------------------------------------------- cumulative


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("axis", [0, 1, -1, None], ids=str)
def test_cumulative(da, data, chunks, name, axis):
    a = 1 + data / 20
    x = da.from_array(a, chunks=chunks)
    r = getattr(x, name)(axis=axis)
    expected = getattr(a, name)(axis=axis)
    assert r.shape == expected.shape
    assert_eq(r, expected, rtol=1e-12)
    assert_eq(getattr(da, name)(x, axis=axis), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["int16", "int64", "bool", "float32"])
def test_cumsum_dtypes(da, dtype):
    a = (np.arange(24).reshape(4, 6) % 3).astype(dtype)
    x = da.from_array(a, chunks=(3, 4))
    assert_eq(x.cumsum(axis=1), a.cumsum(axis=1), rtol=1e-6)
    assert_eq(x.cumprod(axis=0), a.cumprod(axis=0), rtol=1e-6)


def test_nancumsum(da, nandata):
    x = da.from_array(nandata, chunks=(3, 4))
    assert_eq(da.nancumsum(x, axis=0), np.nancumsum(nandata, axis=0), rtol=1e-12)
    assert_eq(da.nancumprod(x, axis=1), np.nancumprod(nandata, axis=1), rtol=1e-12)


# --------------------------------------------------------------------------- 3-d and chains


def test_3d_reductions(da):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((6, 5, 8))
    x = da.from_array(a, chunks=(4, 2, 3))
    for axis in [None, 0, 1, 2, (0, 2), (1, 2), (0, 1, 2), -1]:
        assert_eq(x.sum(axis=axis), a.sum(axis=axis), rtol=1e-12)
        assert_eq(x.mean(axis=axis, keepdims=True), a.mean(axis=axis, keepdims=True), rtol=1e-12)
        assert_eq(x.std(axis=axis), a.std(axis=axis), rtol=1e-10)
        assert_eq(x.max(axis=axis), a.max(axis=axis))


def test_reduction_of_expression(da, data):
    x = da.from_array(data, chunks=(3, 4))
    assert_eq((x * 2 + 1).sum(axis=0), (data * 2 + 1).sum(axis=0), rtol=1e-12)
    assert_eq((x - x.mean(axis=0)).std(axis=1), (data - data.mean(axis=0)).std(axis=1), rtol=1e-10)
    assert_eq(x.mean(axis=0)[::2], data.mean(axis=0)[::2], rtol=1e-12)
    assert_eq(x.sum() / x.size, data.mean(), rtol=1e-12)


def test_empty_reductions(da):
    x = da.zeros((0, 4), chunks=2)
    assert_eq(x.sum(axis=0), np.zeros(4))
    assert_eq(x.sum(), np.float64(0))
    assert_eq(x.prod(axis=0), np.ones(4))


# --------------------------------------------------------------------------- topk


@pytest.mark.parametrize("k", [1, 3, 7, -1, -4])
@pytest.mark.parametrize("chunks1d", [20, 6, 1])
def test_topk_1d(da, k, chunks1d):
    rng = np.random.default_rng(4)
    a = rng.permutation(20).astype(float) * 1.5
    x = da.from_array(a, chunks=chunks1d)
    r = da.topk(x, k)
    s = np.sort(a)
    # largest first for k > 0; smallest first for k < 0
    expected = s[::-1][:k] if k > 0 else s[:-k]
    assert r.shape == (abs(k),)
    assert_eq(r, expected)
    ar = da.argtopk(x, k)
    expected_idx = np.argsort(a)[::-1][:k] if k > 0 else np.argsort(a)[:-k]
    assert_eq(ar, expected_idx.astype(ar.dtype))
    np.testing.assert_array_equal(a[ar.compute()], expected)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_topk_axis(da, axis):
    rng = np.random.default_rng(6)
    a = rng.permutation(70).reshape(10, 7)
    x = da.from_array(a, chunks=(3, 4))
    r = da.topk(x, 2, axis=axis)
    expected = -np.sort(-a, axis=axis).take(np.arange(2), axis=axis)
    assert_eq(r, expected)
    r = da.topk(x, -3, axis=axis)
    assert_eq(r, np.sort(a, axis=axis).take(np.arange(3), axis=axis))
    idx = da.argtopk(x, 2, axis=axis)
    assert_eq(np.take_along_axis(a, idx.compute(), axis=axis), expected)
    # method form
    assert_eq(x.topk(2, axis=axis), expected)
