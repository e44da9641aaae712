"""Errors raised for invalid input, with the exception types Dask raises.

Axis errors: Dask raises numpy.exceptions.AxisError, a subclass of both
ValueError and IndexError; the tests assert ValueError.
"""

from __future__ import annotations

import numpy as np
import pytest

A = np.arange(70.0).reshape(10, 7)


@pytest.fixture
def x(da):
    return da.from_array(A, chunks=(3, 4))


@pytest.mark.parametrize(
    "call",
    [
        lambda da, x: x.sum(axis=2),
        lambda da, x: x.sum(axis=-3),
        lambda da, x: x.mean(axis=2),
        lambda da, x: x.std(axis=5),
        lambda da, x: x.var(axis=(0, 2)),
        lambda da, x: x.max(axis=2),
        lambda da, x: x.min(axis=-3),
        lambda da, x: x.prod(axis=2),
        lambda da, x: x.any(axis=2),
        lambda da, x: x.all(axis=2),
        lambda da, x: x.argmin(axis=2),
        lambda da, x: x.argmax(axis=-3),
        lambda da, x: x.cumsum(axis=2),
        lambda da, x: x.cumprod(axis=-3),
        lambda da, x: da.nansum(x, axis=3),
        lambda da, x: da.nanmean(x, axis=2),
        lambda da, x: da.nanstd(x, axis=2),
        lambda da, x: da.nanvar(x, axis=2),
        lambda da, x: da.nanmin(x, axis=2),
        lambda da, x: da.nanmax(x, axis=2),
        lambda da, x: da.nanprod(x, axis=2),
        lambda da, x: da.sum(x, axis=2),
        lambda da, x: da.concatenate([x, x], axis=2),
        lambda da, x: da.stack([x, x], axis=4),
        lambda da, x: da.expand_dims(x, 4),
        lambda da, x: da.topk(x, 2, axis=3),
    ],
    ids=[
        "sum",
        "sum-neg",
        "mean",
        "std",
        "var-tuple",
        "max",
        "min",
        "prod",
        "any",
        "all",
        "argmin",
        "argmax",
        "cumsum",
        "cumprod",
        "nansum",
        "nanmean",
        "nanstd",
        "nanvar",
        "nanmin",
        "nanmax",
        "nanprod",
        "da.sum",
        "concatenate",
        "stack",
        "expand_dims",
        "topk",
    ],
)
def test_axis_out_of_range(da, x, call):
    with pytest.raises(ValueError):
        call(da, x).compute()


@pytest.mark.parametrize("other_shape", [(7, 10), (3,), (10, 3), (2, 10, 3)], ids=str)
def test_incompatible_shapes(da, x, other_shape):
    y = da.ones(other_shape, chunks=2)
    with pytest.raises(ValueError):
        x + y
    with pytest.raises(ValueError):
        x * np.ones(other_shape)
    with pytest.raises(ValueError):
        da.where(x > 0, x, y)


@pytest.mark.parametrize(
    "chunks",
    [(3, 3, 3), ((5, 4), (7,)), ((5, 5),), (-2, 3), "not-a-size", ((5, 6), (3, 4))],
    ids=["too-many", "bad-sum", "too-few", "negative", "bad-string", "oversum"],
)
def test_from_array_bad_chunks(da, chunks):
    with pytest.raises(ValueError):
        da.from_array(A, chunks=chunks)


def test_rechunk_bad_chunks(da, x):
    with pytest.raises(ValueError):
        x.rechunk(((5, 4), (7,)))


def test_stack_concatenate_errors(da, x):
    with pytest.raises(ValueError):
        da.stack([])
    with pytest.raises(ValueError):
        da.concatenate([])
    with pytest.raises(ValueError):
        da.stack([x, x[:3]])
    with pytest.raises(ValueError):
        da.concatenate([x, x[:, :3]], axis=0)


def test_transpose_errors(da, x):
    with pytest.raises(ValueError):
        x.transpose((0, 0))
    with pytest.raises(ValueError):
        x.transpose((0, 1, 2))


def test_reshape_errors(da, x):
    with pytest.raises(ValueError):
        x.reshape(3, 3)
    with pytest.raises(ValueError):
        x.reshape(11, 7)


def test_squeeze_non_unit_axis(da, x):
    with pytest.raises(ValueError):
        x.squeeze(axis=0)


def test_bad_dtype(da, x):
    with pytest.raises(TypeError):
        x.astype("notadtype")
    with pytest.raises(TypeError):
        da.zeros((3, 3), dtype="notadtype", chunks=2)


def test_bad_indices(da, x):
    with pytest.raises(IndexError):
        x[1.5]
    with pytest.raises(IndexError):
        x[np.ones(3, dtype=bool)]
    with pytest.raises(IndexError):
        x[10, 0]
    with pytest.raises(IndexError):
        x[:, -8]


def test_random_bad_scale(da):
    with pytest.raises(ValueError):
        da.random.normal(0, -1, size=10, chunks=3).compute()


def test_store_length_mismatch(da, x):
    with pytest.raises(ValueError):
        da.store([x], [])


def test_errors_inside_computation_propagate(da, x):
    def boom(block):
        raise RuntimeError("boom in a block")

    y = x.map_blocks(boom, dtype=x.dtype)
    with pytest.raises(RuntimeError, match="boom in a block"):
        y.compute()
    # the array is still usable afterwards
    np.testing.assert_array_equal(x.compute(), A)
