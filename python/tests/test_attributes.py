"""Array metadata attributes: shape, dtype, ndim, size, nbytes, chunks, numblocks, T..."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import CHUNKS_2D, CHUNKS_2D_IDS, assert_eq


@pytest.mark.parametrize("chunks", CHUNKS_2D, ids=CHUNKS_2D_IDS)
@pytest.mark.parametrize(
    "dtype", ["float64", "float32", "int16", "uint8", "bool", "int64", "uint32"]
)
def test_metadata(da, chunks, dtype):
    a = np.zeros((10, 7), dtype=dtype)
    x = da.from_array(a, chunks=chunks)
    assert x.shape == (10, 7)
    assert isinstance(x.shape, tuple)
    assert x.dtype == np.dtype(dtype)
    assert isinstance(x.dtype, np.dtype)
    assert x.ndim == 2
    assert x.size == 70
    assert x.itemsize == a.itemsize
    assert x.nbytes == a.nbytes
    assert len(x) == 10


@pytest.mark.parametrize(
    "chunks, expected_chunks, chunksize, numblocks",
    [
        ((10, 7), ((10,), (7,)), (10, 7), (1, 1)),
        ((3, 4), ((3, 3, 3, 1), (4, 3)), (3, 4), (4, 2)),
        ((1, 2), ((1,) * 10, (2, 2, 2, 1)), (1, 2), (10, 4)),
        (((4, 6), (1, 3, 3)), ((4, 6), (1, 3, 3)), (6, 3), (2, 3)),
    ],
    ids=["one", "ragged", "tiny", "explicit"],
)
def test_chunk_attributes(da, chunks, expected_chunks, chunksize, numblocks):
    x = da.from_array(np.ones((10, 7)), chunks=chunks)
    assert x.chunks == expected_chunks
    assert x.chunksize == chunksize  # largest chunk along each axis
    assert x.numblocks == numblocks
    assert x.npartitions == int(np.prod(numblocks))


def test_transpose_attribute(da):
    a = np.arange(70.0).reshape(10, 7)
    x = da.from_array(a, chunks=(3, 4))
    t = x.T
    assert t.shape == (7, 10)
    assert t.chunks == ((4, 3), (3, 3, 3, 1))
    assert_eq(t, a.T)
    b = np.arange(24).reshape(2, 3, 4)
    y = da.from_array(b, chunks=(1, 2, 3))
    assert_eq(y.T, b.T)
    assert y.T.chunks == y.chunks[::-1]


def test_zero_dim_and_empty(da):
    s = da.ones((), chunks=())
    assert s.shape == () and s.ndim == 0 and s.size == 1
    e = da.zeros((0, 5), chunks=(2, 2))
    assert e.shape == (0, 5) and e.size == 0 and e.nbytes == 0
    assert_eq(e, np.zeros((0, 5)))
    assert_eq(e.sum(), np.float64(0.0))


def test_3d_metadata(da):
    x = da.ones((4, 5, 6), dtype="int32", chunks=(2, 5, 4))
    assert x.ndim == 3
    assert x.size == 120
    assert x.nbytes == 480
    assert x.numblocks == (2, 1, 2)
    assert x.npartitions == 4
    assert x.chunksize == (2, 5, 4)
