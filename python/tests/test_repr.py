"""Text and HTML representations of arrays (Dask's format)."""

from __future__ import annotations

import numpy as np
import pytest


def test_repr_text(da):
    x = da.from_array(np.zeros((10, 7)), chunks=(3, 4))
    r = repr(x)
    assert "shape=(10, 7)" in r
    assert "dtype=float64" in r
    assert "chunksize=(3, 4)" in r
    assert "chunktype=numpy.ndarray" in r
    assert r.endswith(">")
    assert str(x) == r


@pytest.mark.parametrize(
    "make, shape_text, dtype_text",
    [
        (lambda da: da.ones(1000, dtype="int32", chunks=300), "shape=(1000,)", "dtype=int32"),
        (lambda da: da.zeros((4, 5, 6), dtype=bool, chunks=2), "shape=(4, 5, 6)", "dtype=bool"),
        (lambda da: da.ones((), chunks=()), "shape=()", "dtype=float64"),
        (lambda da: da.arange(10, chunks=3).astype("float32"), "shape=(10,)", "dtype=float32"),
    ],
    ids=["1d", "3d-bool", "0d", "astype"],
)
def test_repr_variants(da, make, shape_text, dtype_text):
    r = repr(make(da))
    assert shape_text in r
    assert dtype_text in r
    assert "chunksize=" in r


def test_repr_unknown_shape(da):
    x = da.from_array(np.arange(10.0), chunks=3)
    r = repr(x[x > 3])
    assert "shape=(nan,)" in r
    assert "chunksize=(nan,)" in r


def test_repr_does_not_compute(da):
    calls = []

    def f(b):
        calls.append(1)
        return b

    x = da.from_array(np.ones((6, 6)), chunks=3).map_blocks(f, dtype=float)
    n = len(calls)
    repr(x)
    x._repr_html_()
    assert len(calls) == n


def test_repr_html(da):
    x = da.from_array(np.zeros((10, 7)), chunks=(3, 4))
    h = x._repr_html_()
    assert isinstance(h, str)
    assert "<table" in h
    assert "<svg" in h
    y = da.ones((4, 5, 6), chunks=2)
    h3 = y._repr_html_()
    assert "<table" in h3 and "<svg" in h3
