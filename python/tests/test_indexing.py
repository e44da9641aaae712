"""Indexing: integers, slices with any step, None/newaxis, Ellipsis, integer lists,
boolean masks (lazy, unknown length), and IndexError for out-of-range indices."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import CHUNKS_2D, CHUNKS_2D_IDS, IS_DASK, assert_eq, chunks_match_shape, is_lazy

A = np.arange(70.0).reshape(10, 7) - 20.0

BASIC_INDICES = [
    0,
    -1,
    9,
    (3, 4),
    (-10, -7),
    slice(None),
    slice(2, 8),
    slice(None, None, 2),
    slice(1, None, 3),
    slice(None, None, -1),
    slice(8, 1, -3),
    slice(-3, None),
    slice(-100, 100),
    slice(20, 30),
    slice(3, 3),
    (slice(None), 2),
    (slice(None, None, -2), slice(None, None, -1)),
    (slice(1, 9, 4), slice(6, 0, -2)),
    (None,),
    (np.newaxis, slice(None), None),
    (slice(None), None, 3),
    (Ellipsis,),
    (Ellipsis, 1),
    (2, Ellipsis),
    (Ellipsis, None),
    (None, Ellipsis, slice(None, None, -1)),
    (-1, slice(None, None, -3)),
]


@pytest.mark.parametrize("chunks", CHUNKS_2D, ids=CHUNKS_2D_IDS)
@pytest.mark.parametrize("index", BASIC_INDICES, ids=repr)
def test_basic_indexing(da, chunks, index):
    x = da.from_array(A, chunks=chunks)
    r = x[index]
    expected = A[index]
    assert r.shape == expected.shape
    assert chunks_match_shape(r.chunks, expected.shape)
    assert_eq(r, expected)


def test_scalar_index_gives_zero_dim_lazy_array(da):
    x = da.from_array(A, chunks=(3, 4))
    r = x[1, 2]
    assert is_lazy(r)
    assert r.shape == ()
    assert r.compute() == A[1, 2]
    assert float(r) == A[1, 2]


@pytest.mark.parametrize("chunks", CHUNKS_2D, ids=CHUNKS_2D_IDS)
@pytest.mark.parametrize(
    "index",
    [
        [1, 3, 3],
        [-1, 0],
        (slice(None), [0, 6, 2]),
        np.array([9, 0, 4]),
        ([2, 5], slice(None, None, -1)),
    ],
    ids=repr,
)
def test_integer_array_indexing(da, chunks, index):
    x = da.from_array(A, chunks=chunks)
    assert_eq(x[index], A[index])


def test_chained_indexing(da):
    x = da.from_array(A, chunks=(3, 4))
    assert_eq(x[1:][::2][:, ::-1][1], A[1:][::2][:, ::-1][1])
    assert_eq(x.T[2:5, ::3], A.T[2:5, ::3])


def test_3d_indexing(da):
    b = np.arange(120).reshape(4, 5, 6)
    x = da.from_array(b, chunks=(3, 2, 4))
    for idx in [
        (1,),
        (Ellipsis, 2),
        (slice(None), 1, slice(None, None, -1)),
        (None, 1, Ellipsis, None),
        (-1, -1, -1),
        (slice(None, None, 3), Ellipsis),
    ]:
        assert_eq(x[idx], b[idx])


@pytest.mark.parametrize("chunks", CHUNKS_2D, ids=CHUNKS_2D_IDS)
def test_boolean_mask_lazy(da, chunks):
    x = da.from_array(A, chunks=chunks)
    r = x[x > 0]
    assert is_lazy(r)
    assert r.ndim == 1
    # the length is not known before computing: Dask reports it as NaN
    assert np.isnan(r.shape[0])
    assert np.isnan(r.chunks[0][0])
    got = r.compute()
    np.testing.assert_array_equal(got, A[A > 0])
    assert got.dtype == A.dtype


def test_boolean_mask_combined_and_reduced(da):
    x = da.from_array(A, chunks=(3, 4))
    r = x[(x > -5) & (x < 10)]
    np.testing.assert_array_equal(r.compute(), A[(A > -5) & (A < 10)])
    # reductions of a masked array work although the length was unknown
    assert_eq(r.sum(), A[(A > -5) & (A < 10)].sum())
    assert_eq((r * 2).max(), (A[(A > -5) & (A < 10)] * 2).max())
    # an all-False mask gives an empty result
    assert x[x > 1000].compute().shape == (0,)


def test_boolean_mask_numpy(da):
    x = da.from_array(A, chunks=(3, 4))
    m = A > 3
    np.testing.assert_array_equal(x[m].compute(), A[m])
    rows = A[:, 0] > 0
    r = x[rows]
    # a NumPy mask on one axis has a known length
    assert r.shape == A[rows].shape
    assert_eq(r, A[rows])


class _Calls:
    """A mask kernel that counts the blocks it was called on."""

    def __init__(self):
        self.blocks = 0

    def __call__(self, b):
        if b.size:
            self.blocks += 1
        return b > -3


@pytest.mark.parametrize("chunks", CHUNKS_2D, ids=CHUNKS_2D_IDS)
@pytest.mark.parametrize("axis", [0, 1])
def test_boolean_mask_on_axis_lazy(da, chunks, axis):
    x = da.from_array(A, chunks=chunks)
    calls = _Calls()
    line = x[:, 1] if axis == 0 else x[2]
    m = line.map_blocks(calls, dtype=bool)
    want_m = A[:, 1] > -3 if axis == 0 else A[2] > -3
    r = x[m] if axis == 0 else x[:, m]
    want = A[want_m] if axis == 0 else A[:, want_m]
    # nothing computed yet; the length along the axis is unknown (nan),
    # one nan per block of the input along it, as Dask
    assert calls.blocks == 0
    assert is_lazy(r)
    assert r.ndim == 2 and r.dtype == A.dtype
    assert np.isnan(r.shape[axis]) and r.shape[1 - axis] == A.shape[1 - axis]
    assert np.isnan(r.size)
    assert len(r.chunks[axis]) == len(x.chunks[axis])
    assert all(np.isnan(c) for c in r.chunks[axis])
    assert r.chunks[1 - axis] == x.chunks[1 - axis]
    assert "nan" in repr(r)
    assert calls.blocks == 0
    np.testing.assert_array_equal(r.compute(), want)
    assert calls.blocks > 0
    # combined and reduced, as NumPy (Dask fails reductions along an axis
    # here when a block selects nothing)
    if not IS_DASK:
        assert_eq((r * 2 - 1).sum(axis=0), (want * 2 - 1).sum(axis=0), check_shape=False)
        assert_eq(r.max(axis=1), want.max(axis=1), check_shape=False)
    assert_eq(r.mean(), want.mean())
    np.testing.assert_array_equal(np.asarray(r), want)
    # compute_chunk_sizes: known lengths, in place
    assert r.compute_chunk_sizes() is r
    assert r.shape == want.shape
    assert sum(r.chunks[axis]) == want.shape[axis]
    assert_eq(r, want)


def test_boolean_mask_on_axis_after_slicing(da):
    x = da.from_array(A, chunks=(3, 4))
    b = A[1:, ::2]
    m = x[0, ::2] < -16
    r = x[1:, ::2][:, m]
    assert np.isnan(r.shape[1]) and r.shape[0] == 9
    np.testing.assert_array_equal(r.compute(), b[:, A[0, ::2] < -16])
    # an all-False mask: an empty axis
    assert x[1:, ::2][:, x[0, ::2] > 1000].compute().shape == (9, 0)


def test_boolean_mask_of_the_wrong_length_is_refused(da):
    x = da.from_array(A, chunks=(3, 4))
    # NumPy's IndexError (Dask raises ValueError)
    error = ValueError if IS_DASK else IndexError
    with pytest.raises(error):
        x[:, x[:, 0] > 0]
    with pytest.raises(error):
        x[x[0] > 0]


def test_compute_chunk_sizes_of_a_full_mask(da):
    x = da.from_array(A, chunks=(3, 4))
    r = x[x > 3]
    assert np.isnan(r.shape[0])
    assert r.compute_chunk_sizes() is r
    assert r.shape == A[A > 3].shape
    assert sum(r.chunks[0]) == A[A > 3].size
    assert_eq(r * 2, A[A > 3] * 2)
    # an array of known shape is returned as it is
    assert x.compute_chunk_sizes().shape == A.shape


@pytest.mark.parametrize("index", [10, -11, (0, 7), (0, -8), (5, 100), [0, 12]], ids=repr)
def test_index_out_of_range(da, index):
    x = da.from_array(A, chunks=(3, 4))
    with pytest.raises(IndexError):
        x[index]


def test_too_many_indices(da):
    x = da.from_array(A, chunks=(3, 4))
    with pytest.raises(IndexError):
        x[0, 0, 0]
