"""Elementwise operators and functions vs NumPy: scalars on either side, broadcasting,
dtype promotion, NaN handling."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from _helpers import CHUNKS_2D, CHUNKS_2D_IDS, assert_eq, is_lazy

# NaN/inf producing cases are intended; NumPy and Dask warn about them.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(params=list(zip(CHUNKS_2D, CHUNKS_2D_IDS)), ids=lambda p: p[1])
def chunks(request):
    return request.param[0]


@pytest.fixture
def ab(rng):
    a = rng.standard_normal((10, 7))
    b = rng.standard_normal((10, 7)) + 3.0
    return a, b


ARITH = [operator.add, operator.sub, operator.mul, operator.truediv]
ARITH_IDS = ["add", "sub", "mul", "truediv"]
CMP = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]
CMP_IDS = ["lt", "le", "gt", "ge", "eq", "ne"]


@pytest.mark.parametrize("op", ARITH + CMP, ids=ARITH_IDS + CMP_IDS)
def test_binary_array_array(da, ab, chunks, op):
    a, b = ab
    x = da.from_array(a, chunks=chunks)
    y = da.from_array(b, chunks=chunks)
    r = op(x, y)
    assert is_lazy(r)
    assert_eq(r, op(a, b))


def test_binary_different_chunks(da, ab):
    a, b = ab
    x = da.from_array(a, chunks=(3, 4))
    y = da.from_array(b, chunks=(4, 2))
    assert_eq(x + y, a + b)
    assert_eq(x * y - x, a * b - a)


@pytest.mark.parametrize(
    "op",
    ARITH + CMP + [operator.floordiv, operator.mod, operator.pow],
    ids=ARITH_IDS + CMP_IDS + ["floordiv", "mod", "pow"],
)
@pytest.mark.parametrize("scalar", [2, 2.5, np.float64(1.5), np.int64(3)], ids=repr)
def test_binary_with_scalar_both_sides(da, ab, chunks, op, scalar):
    _, b = ab  # positive values so pow/floordiv are well defined
    x = da.from_array(b, chunks=chunks)
    assert_eq(op(x, scalar), op(b, scalar), rtol=1e-12)
    assert_eq(op(scalar, x), op(scalar, b), rtol=1e-12)


@pytest.mark.parametrize("op", [operator.floordiv, operator.mod], ids=["floordiv", "mod"])
def test_floordiv_mod_signs(da, op):
    a = np.array([-7, -3, -1, 0, 1, 3, 7, 8, -8, 5])
    b = np.array([2, -2, 3, -3, 5, 2, -4, 3, 3, -5])
    x = da.from_array(a, chunks=3)
    y = da.from_array(b, chunks=4)
    assert_eq(op(x, y), op(a, b))
    af = a.astype(float) + 0.5
    assert_eq(op(da.from_array(af, chunks=3), 2.0), op(af, 2.0))
    assert_eq(op(da.from_array(af, chunks=3), -2.0), op(af, -2.0))


def test_pow_integer(da):
    a = np.arange(-4, 6)
    x = da.from_array(a, chunks=3)
    assert_eq(x**2, a**2)
    assert_eq(x**3, a**3)
    assert_eq(2 ** da.from_array(np.arange(10), chunks=4), 2 ** np.arange(10))
    assert_eq(x**0.5, a**0.5)  # NaN for negative bases


@pytest.mark.parametrize(
    "op", [operator.and_, operator.or_, operator.xor], ids=["and", "or", "xor"]
)
@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool"])
def test_bitwise(da, rng, op, dtype):
    if dtype == "bool":
        a, b = rng.random((10, 7)) > 0.5, rng.random((10, 7)) > 0.5
    else:
        a = rng.integers(0, 100, (10, 7)).astype(dtype)
        b = rng.integers(0, 100, (10, 7)).astype(dtype)
    x = da.from_array(a, chunks=(3, 4))
    y = da.from_array(b, chunks=(4, 3))
    assert_eq(op(x, y), op(a, b))
    if dtype != "bool":
        assert_eq(op(x, 5), op(a, 5))
        assert_eq(op(5, x), op(5, a))
    assert_eq(~x, ~a)


def test_unary(da, rng, chunks):
    a = rng.standard_normal((10, 7))
    x = da.from_array(a, chunks=chunks)
    assert_eq(-x, -a)
    assert_eq(+x, +a)
    assert_eq(abs(x), abs(a))
    i = (a * 10).astype("int32")
    xi = da.from_array(i, chunks=chunks)
    assert_eq(-xi, -i)
    assert_eq(abs(xi), abs(i))
    assert_eq(~xi, ~i)


def test_numpy_array_operand(da, ab):
    a, b = ab
    x = da.from_array(a, chunks=(3, 4))
    r1 = x + b
    assert is_lazy(r1)
    assert_eq(r1, a + b)
    r2 = x * b[0]
    assert is_lazy(r2)
    assert_eq(r2, a * b[0])
    assert_eq(x > b, a > b)


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((10, 7), (7,)),
        ((10, 7), (10, 1)),
        ((10, 1), (1, 7)),
        ((7,), (10, 7)),
        ((10, 7), ()),
        ((3, 1, 7), (10, 1)),
        ((1,), (10, 7)),
    ],
    ids=str,
)
def test_broadcasting(da, rng, shape_a, shape_b):
    a = rng.standard_normal(shape_a)
    b = rng.standard_normal(shape_b)
    x = da.from_array(a, chunks=tuple(max(1, s // 2) for s in shape_a))
    y = da.from_array(b, chunks=tuple(max(1, s // 3) for s in shape_b))
    assert_eq(x + y, a + b)
    assert_eq(x * y, a * b)
    assert (x + y).shape == np.broadcast_shapes(shape_a, shape_b)
    assert_eq(
        da.broadcast_to(y, np.broadcast_shapes(shape_a, shape_b)),
        np.broadcast_to(b, np.broadcast_shapes(shape_a, shape_b)),
    )


@pytest.mark.parametrize(
    "dt_a, dt_b",
    [
        ("int32", "float32"),
        ("uint8", "int8"),
        ("bool", "int64"),
        ("bool", "float32"),
        ("int8", "int16"),
        ("uint32", "int32"),
        ("uint64", "int64"),
        ("int64", "float32"),
        ("float32", "float64"),
        ("int16", "float32"),
        ("int8", "uint64"),
        ("bool", "bool"),
    ],
)
@pytest.mark.parametrize(
    "op", [operator.add, operator.mul, operator.truediv], ids=["add", "mul", "truediv"]
)
def test_dtype_promotion_arrays(da, dt_a, dt_b, op):
    a = (np.arange(1, 13).reshape(3, 4) % 5 + 1).astype(dt_a)
    b = (np.arange(12).reshape(3, 4) % 3 + 1).astype(dt_b)
    x = da.from_array(a, chunks=2)
    y = da.from_array(b, chunks=(3, 1))
    expected = op(a, b)
    r = op(x, y)
    assert r.dtype == expected.dtype
    assert_eq(r, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint64", "float32", "bool"])
@pytest.mark.parametrize("scalar", [1, 2.0, True], ids=repr)
def test_dtype_python_scalar_is_weak(da, dtype, scalar):
    # NEP 50: Python scalars do not upcast arrays (except int -> float kind changes)
    a = np.arange(6).reshape(2, 3).astype(dtype)
    x = da.from_array(a, chunks=2)
    expected = a + scalar
    r = x + scalar
    assert r.dtype == expected.dtype
    assert_eq(r, expected)
    r = scalar * x
    assert r.dtype == (scalar * a).dtype


def test_int_true_division_is_float64(da):
    a = np.arange(1, 11, dtype="int32")
    b = np.arange(10, 0, -1, dtype="int32")
    x, y = da.from_array(a, chunks=3), da.from_array(b, chunks=4)
    r = x / y
    assert r.dtype == np.float64
    assert_eq(r, a / b)
    assert (x // y).dtype == np.int32
    assert_eq(x // y, a // b)
    assert_eq(x / 2, a / 2)


def test_comparison_dtype_is_bool(da, ab):
    a, _ = ab
    x = da.from_array(a, chunks=(3, 4))
    assert (x > 0).dtype == np.bool_
    assert (x == x).dtype == np.bool_
    assert_eq((x > 0) & (x < 1), (a > 0) & (a < 1))
    assert_eq((x > 0) | ~(x < 1), (a > 0) | ~(a < 1))


def test_nan_handling(da):
    a = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 0.0], [np.nan, 2.0, -1.0]])
    x = da.from_array(a, chunks=2)
    assert_eq(x + 1, a + 1)
    assert_eq(x * 0, a * 0)
    assert_eq(x == x, a == a)
    assert_eq(x != x, a != a)
    assert_eq(x > 0, a > 0)
    assert_eq(da.isnan(x), np.isnan(a))
    assert_eq(da.isfinite(x), np.isfinite(a))
    assert_eq(da.isinf(x), np.isinf(a))
    assert_eq(da.maximum(x, 0), np.maximum(a, 0))  # NaN propagates
    assert_eq(da.minimum(x, 0), np.minimum(a, 0))
    assert_eq(da.fmax(x, 0), np.fmax(a, 0))  # NaN ignored


def test_divide_by_zero(da):
    a = np.array([-1.0, 0.0, 1.0, 2.0])
    x = da.from_array(a, chunks=3)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = a / 0.0
    assert_eq(x / 0.0, expected)


# --------------------------------------------------------------------------- ufunc-like functions

UNARY_FUNCS = [
    ("sqrt", np.abs),
    ("exp", None),
    ("log", lambda a: np.abs(a) + 0.1),
    ("sin", None),
    ("cos", None),
    ("tan", None),
    ("abs", None),
    ("absolute", None),
    ("floor", None),
    ("ceil", None),
    ("round", None),
    ("isnan", None),
    ("isfinite", None),
    ("log10", lambda a: np.abs(a) + 0.1),
    ("expm1", None),
    ("log1p", np.abs),
    ("sign", None),
    ("tanh", None),
    ("arctan", None),
    ("square", None),
    ("negative", None),
    ("trunc", None),
    ("rint", None),
]


@pytest.mark.parametrize("name, prep", UNARY_FUNCS, ids=[n for n, _ in UNARY_FUNCS])
def test_unary_functions(da, rng, name, prep, chunks):
    a = rng.standard_normal((10, 7)) * 3
    if prep is not None:
        a = prep(a)
    x = da.from_array(a, chunks=chunks)
    r = getattr(da, name)(x)
    assert is_lazy(r)
    assert_eq(r, getattr(np, name)(a), rtol=1e-12)


@pytest.mark.parametrize("decimals", [0, 1, 2, -1])
def test_round_decimals(da, rng, decimals):
    a = rng.standard_normal((10, 7)) * 100
    x = da.from_array(a, chunks=(3, 4))
    assert_eq(da.round(x, decimals), np.round(a, decimals))
    assert_eq(x.round(decimals), a.round(decimals))


def test_round_half_to_even(da):
    a = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5])
    x = da.from_array(a, chunks=2)
    assert_eq(da.round(x), np.round(a))
    assert_eq(round(x[3].compute()), 0)


def test_round_integer_dtype(da):
    a = np.arange(-5, 5, dtype="int32")
    assert_eq(da.round(da.from_array(a, chunks=3)), np.round(a))


@pytest.mark.parametrize(
    "name", ["maximum", "minimum", "add", "multiply", "arctan2", "hypot", "power", "fmin", "fmax"]
)
def test_binary_functions(da, ab, name):
    a, b = ab
    x = da.from_array(a, chunks=(3, 4))
    y = da.from_array(b, chunks=(5, 2))
    f = getattr(da, name)
    assert_eq(f(x, y), getattr(np, name)(a, b))
    assert_eq(f(x, 0.5), getattr(np, name)(a, 0.5))


def test_maximum_minimum_int(da):
    a = np.arange(-5, 5)
    x = da.from_array(a, chunks=3)
    assert_eq(da.maximum(x, 0), np.maximum(a, 0))
    assert_eq(da.minimum(x, x[::-1]), np.minimum(a, a[::-1]))


@pytest.mark.parametrize("lo, hi", [(-0.5, 0.5), (0, None), (None, 0.2), (-1, 1)])
def test_clip(da, ab, lo, hi):
    a, _ = ab
    x = da.from_array(a, chunks=(3, 4))
    assert_eq(da.clip(x, lo, hi), np.clip(a, lo, hi))
    assert_eq(x.clip(lo, hi), a.clip(lo, hi))


def test_clip_int(da):
    a = np.arange(-10, 10, dtype="int16")
    x = da.from_array(a, chunks=6)
    r = da.clip(x, -3, 4)
    assert_eq(r, np.clip(a, -3, 4))


@pytest.mark.parametrize("chunks_c", [(3, 4), (10, 7)])
def test_where(da, ab, chunks_c):
    a, b = ab
    c = a > 0
    xc = da.from_array(c, chunks=chunks_c)
    x = da.from_array(a, chunks=(5, 2))
    y = da.from_array(b, chunks=(2, 5))
    assert_eq(da.where(xc, x, y), np.where(c, a, b))
    assert_eq(da.where(xc, x, 0.0), np.where(c, a, 0.0))
    assert_eq(da.where(x > 0, 1, -1), np.where(a > 0, 1, -1))
    assert_eq(da.where(xc, x, np.nan), np.where(c, a, np.nan))
    # broadcasting of the condition
    assert_eq(da.where(x[0] > 0, x, y), np.where(a[0] > 0, a, b))


def test_where_dtype_promotion(da):
    c = np.array([True, False, True, False])
    i = np.arange(4, dtype="int32")
    f = np.arange(4, dtype="float32") / 2
    r = da.where(da.from_array(c, chunks=2), da.from_array(i, chunks=2), da.from_array(f, chunks=3))
    assert_eq(r, np.where(c, i, f))


def test_astype_and_chaining(da, ab, chunks):
    a, b = ab
    x = da.from_array(a, chunks=chunks)
    y = da.from_array(b, chunks=chunks)
    expr = da.sqrt(abs(x * y) + 1) - da.exp(-x) / (1 + y**2)
    assert_eq(expr, np.sqrt(abs(a * b) + 1) - np.exp(-a) / (1 + b**2), rtol=1e-12)
