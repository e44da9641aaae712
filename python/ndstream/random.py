"""Random arrays, like ``dask.array.random``.

Values are counter-based: each element depends only on the seed and its
index, so results do not change with the chunking, the thread count or the
part of the array computed, and a slice of a random array generates only
what it needs.

>>> import ndstream as da
>>> x = da.random.normal(10, 0.1, size=(2000, 2000), chunks=(500, 500))
>>> x.shape, x.dtype.name, x.chunksize
((2000, 2000), 'float64', (500, 500))
>>> rng = da.random.default_rng(42)
>>> a = rng.uniform(0, 1, size=1000, chunks=100)
>>> bool((a.compute() == a.compute()).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _ndstream
from .core import Array, _chunks_arg, _shape_arg

__all__ = [
    "Generator",
    "RandomState",
    "default_rng",
    "exponential",
    "normal",
    "random",
    "random_sample",
    "seed",
    "standard_normal",
    "uniform",
]


def _seed64(seed: Any) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (np.random.Generator, np.random.RandomState)):
        raise TypeError("pass an int seed, not a NumPy generator")
    return np.random.SeedSequence(seed)


class Generator:
    """A source of random arrays (``da.random.default_rng(seed)``).

    Each array it makes gets a seed of its own drawn from ``seed``: two
    generators with the same seed make the same sequence of arrays.
    """

    def __init__(self, seed: Any = None) -> None:
        self._seq = _seed64(seed)

    def _next_seed(self) -> int:
        (child,) = self._seq.spawn(1)
        return int(child.generate_state(1, np.uint64)[0])

    def _make(self, dist: str, a: float, b: float, size: Any, chunks: Any, dtype: Any) -> Array:
        shape = _shape_arg(() if size is None else size)
        arr = _ndstream.random(
            dist,
            float(a),
            float(b),
            list(shape),
            self._next_seed(),
            _chunks_arg(chunks, shape, np.dtype("float64")),
        )
        out = Array(arr)
        if dtype is not None and np.dtype(dtype) != np.float64:
            out = out.astype(dtype)
        return out

    def normal(
        self,
        loc: float = 0.0,
        scale: float = 1.0,
        size: Any = None,
        chunks: Any = "auto",
        dtype: Any = None,
        **kwargs: Any,
    ) -> Array:
        """Normal (Gaussian) values with mean ``loc`` and standard deviation ``scale``."""
        _no_extra(kwargs)
        if scale < 0:
            raise ValueError("scale < 0")
        return self._make("normal", loc, scale, size, chunks, dtype)

    def standard_normal(
        self, size: Any = None, chunks: Any = "auto", dtype: Any = None, **kwargs: Any
    ) -> Array:
        """Normal values with mean 0 and standard deviation 1."""
        return self.normal(0.0, 1.0, size, chunks, dtype, **kwargs)

    def uniform(
        self,
        low: float = 0.0,
        high: float = 1.0,
        size: Any = None,
        chunks: Any = "auto",
        dtype: Any = None,
        **kwargs: Any,
    ) -> Array:
        """Uniform values in ``[low, high)``."""
        _no_extra(kwargs)
        return self._make("uniform", low, high, size, chunks, dtype)

    def random(
        self, size: Any = None, chunks: Any = "auto", dtype: Any = None, **kwargs: Any
    ) -> Array:
        """Uniform values in ``[0, 1)``."""
        return self.uniform(0.0, 1.0, size, chunks, dtype, **kwargs)

    random_sample = random

    def exponential(
        self,
        scale: float = 1.0,
        size: Any = None,
        chunks: Any = "auto",
        dtype: Any = None,
        **kwargs: Any,
    ) -> Array:
        """Exponential values with mean ``scale``."""
        _no_extra(kwargs)
        if scale < 0:
            raise ValueError("scale < 0")
        return self._make("exponential", scale, 0.0, size, chunks, dtype)

    def standard_exponential(
        self, size: Any = None, chunks: Any = "auto", dtype: Any = None
    ) -> Array:
        """Exponential values with mean 1."""
        return self.exponential(1.0, size, chunks, dtype)


class RandomState(Generator):
    """Dask's legacy ``da.random.RandomState(seed)``: the same methods."""

    def seed(self, seed: Any = None) -> None:
        """Start again from ``seed``."""
        self._seq = _seed64(seed)


def _no_extra(kwargs: dict) -> None:
    if kwargs:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(kwargs))}")


def default_rng(seed: Any = None) -> Generator:
    """A :class:`Generator` seeded with ``seed`` (fresh entropy if ``None``)."""
    return Generator(seed)


_state = RandomState()


def seed(s: int | None = None) -> None:
    """Seed the module's functions (``da.random.normal`` etc.)."""
    _state.seed(s)


def normal(
    loc: float = 0.0, scale: float = 1.0, size: Any = None, chunks: Any = "auto", **kwargs: Any
) -> Array:
    """Normal values: ``da.random.normal(10, 0.1, size=(20000, 20000), chunks=(1000, 1000))``."""
    return _state.normal(loc, scale, size, chunks, **kwargs)


def standard_normal(size: Any = None, chunks: Any = "auto", **kwargs: Any) -> Array:
    """Normal values with mean 0 and standard deviation 1."""
    return _state.standard_normal(size, chunks, **kwargs)


def uniform(
    low: float = 0.0, high: float = 1.0, size: Any = None, chunks: Any = "auto", **kwargs: Any
) -> Array:
    """Uniform values in ``[low, high)``."""
    return _state.uniform(low, high, size, chunks, **kwargs)


def random(size: Any = None, chunks: Any = "auto", **kwargs: Any) -> Array:
    """Uniform values in ``[0, 1)``."""
    return _state.random(size, chunks, **kwargs)


random_sample = random


def exponential(scale: float = 1.0, size: Any = None, chunks: Any = "auto", **kwargs: Any) -> Array:
    """Exponential values with mean ``scale``."""
    return _state.exponential(scale, size, chunks, **kwargs)
