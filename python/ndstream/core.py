"""The lazy array and the functions that make and combine arrays.

Everything here builds an expression in the Rust engine (``_ndstream``);
nothing is read or computed until ``compute()``, ``np.asarray(x)``,
``store``/``to_zarr``/``to_hdf5``. Names, signatures and semantics are
Dask Array's.
"""

from __future__ import annotations

import builtins
import math
import numbers
import operator
import os
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np

from . import _ndstream, config, diagnostics

try:  # NumPy >= 1.25
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover - older NumPy
    AxisError = np.AxisError  # type: ignore[attr-defined,misc]

MemoryBudgetError = _ndstream.MemoryBudgetError

# The engine's element types (NumPy names).
_SUPPORTED = frozenset(
    [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
    ]
)
_AUTO_CHUNK_BYTES = 8 << 20

_UNARY = {name: name for name, _ in _ndstream.unary_ops()}
for _name, _aliases in _ndstream.unary_ops():
    for _alias in _aliases:
        _UNARY.setdefault(_alias, _name)
_BINARY = {name: name for name, _ in _ndstream.binary_ops()}
for _name, _aliases in _ndstream.binary_ops():
    for _alias in _aliases:
        _BINARY.setdefault(_alias, _name)
# NumPy's other names for the same functions.
for _np_name, _ours in {
    "divide": "true_divide",
    "mod": "remainder",
    "abs": "absolute",
    "bitwise_not": "invert",
    "bitwise_invert": "invert",
    "pow": "power",
}.items():
    if _ours in _UNARY:
        _UNARY.setdefault(_np_name, _ours)
    if _ours in _BINARY:
        _BINARY.setdefault(_np_name, _ours)
_REDUCE = {name: param for name, _, param in _ndstream.reduce_ops()}


def _dtype(dtype: Any) -> np.dtype:
    """A NumPy dtype the engine holds, or TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"data type {dtype!r} not understood") from e
    if dt.name not in _SUPPORTED:
        raise TypeError(
            f"ndstream has no dtype {dt} (supported: bool, int8..int64, uint8..uint64, "
            "float32, float64)"
        )
    return dt


def _shape_arg(shape: Any) -> tuple[int, ...]:
    """A shape from an int or a sequence of ints."""
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise TypeError(f"shape must be an int or a sequence of ints, not {shape!r}")
    out = []
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)):
            raise TypeError(f"shape must hold ints, not {n!r}")
        if n < 0:
            raise ValueError(f"negative dimensions are not allowed: {tuple(shape)}")
        out.append(int(n))
    return tuple(out)


def _auto_lengths(
    shape: Sequence[int], fixed: dict[int, int], itemsize: int, target: int
) -> list[int]:
    """Chunk lengths for the axes not in ``fixed``: about ``target`` bytes
    per chunk, as square as possible (the engine's ``Chunks::Auto`` rule)."""
    out = [0] * len(shape)
    free = [d for d in range(len(shape)) if d not in fixed]
    budget = builtins.max(target // builtins.max(itemsize, 1), 1)
    for d, c in fixed.items():
        out[d] = c
        budget = builtins.max(budget // builtins.max(c, 1), 1)
    remaining = list(free)
    while remaining:
        side = builtins.max(int(budget ** (1.0 / len(remaining))), 1)
        small = [d for d in remaining if shape[d] <= side]
        if not small:
            for d in remaining:
                out[d] = builtins.min(side, builtins.max(shape[d], 1))
            break
        for d in small:
            out[d] = builtins.max(shape[d], 1)
            budget = builtins.max(budget // builtins.max(shape[d], 1), 1)
            remaining.remove(d)
    return out


def _chunks_arg(
    chunks: Any,
    shape: Sequence[int],
    dtype: np.dtype,
) -> Any:
    """Dask's ``chunks=`` argument as the engine takes it: ``None`` (auto),
    a chunk shape (0 = whole axis) or per-axis sizes."""
    shape = tuple(shape)
    nd = len(shape)
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        return None
    if isinstance(chunks, str):
        return int(_ndstream.parse_bytes(chunks))
    if isinstance(chunks, dict):
        per_axis: list[Any] = ["auto"] * nd
        for k, v in chunks.items():
            d = _axis(k, nd)
            per_axis[d] = v
        chunks = tuple(per_axis)
    if isinstance(chunks, (numbers.Integral, np.integer)) and not isinstance(chunks, bool):
        c = int(chunks)
        if c == -1:
            return [0] * nd
        if c <= 0:
            raise ValueError(f"chunks must be positive, not {c}")
        return [c] * nd
    if not isinstance(chunks, (tuple, list)):
        raise ValueError(f"chunks must be 'auto', an int, a tuple or a dict, not {chunks!r}")
    if len(chunks) != nd:
        raise ValueError(
            f"chunks {chunks!r} have {len(chunks)} dimensions, the array has {nd} (shape {shape})"
        )
    lengths: list[Any] = []
    auto: list[int] = []
    for d, c in enumerate(chunks):
        if c is None or (isinstance(c, (numbers.Integral, np.integer)) and int(c) == -1):
            lengths.append(builtins.max(shape[d], 1))
        elif isinstance(c, str):
            if c != "auto":
                raise ValueError(f"chunks on axis {d}: {c!r} (expected an int, -1, None or 'auto')")
            auto.append(d)
            lengths.append(None)
        elif isinstance(c, (numbers.Integral, np.integer)) and not isinstance(c, bool):
            if c <= 0:
                raise ValueError(f"chunks on axis {d} must be positive, not {c}")
            lengths.append(int(c))
        elif isinstance(c, (tuple, list)):
            sizes = [int(s) for s in c]
            if builtins.any(s < 0 for s in sizes) or builtins.sum(sizes) != shape[d]:
                raise ValueError(
                    f"chunks on axis {d} are {tuple(sizes)}, which do not add up to the axis "
                    f"length {shape[d]}"
                )
            lengths.append(tuple(s for s in sizes if s > 0) or (0,))
        else:
            raise ValueError(f"chunks on axis {d}: {c!r} (expected an int or a tuple)")
    if auto:
        fixed = {
            d: (builtins.max(lengths[d]) if isinstance(lengths[d], tuple) else lengths[d])
            for d in range(nd)
            if d not in auto
        }
        filled = _auto_lengths(shape, fixed, dtype.itemsize, _AUTO_CHUNK_BYTES)
        for d in auto:
            lengths[d] = filled[d]
    if builtins.any(isinstance(c, tuple) for c in lengths):
        out = []
        for d, c in enumerate(lengths):
            if isinstance(c, tuple):
                out.append([s for s in c if s > 0])
            else:
                n = shape[d]
                out.append([builtins.min(c, n - i) for i in range(0, n, c)] if n else [])
        return out
    return [builtins.min(c, s) if s else c for c, s in zip(lengths, shape)]


def _axis(a: Any, ndim: int) -> int:
    if isinstance(a, bool) or not isinstance(a, (numbers.Integral, np.integer)):
        raise TypeError(f"axis must be an int, not {type(a).__name__}")
    a = int(a)
    if not -ndim <= a < ndim:
        raise AxisError(a, ndim)
    return a % ndim if ndim else a


def _axes(axis: Any, ndim: int) -> list[int] | None:
    """``None`` (all axes) or a sorted list of distinct axes."""
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        out = [_axis(a, ndim) for a in axis]
        if len(set(out)) != len(out):
            raise ValueError(f"duplicate value in 'axis': {axis!r}")
        return sorted(out)
    return [_axis(axis, ndim)]


def _progress() -> Any:
    return diagnostics.callback()


def _scalar(x: Any) -> Any:
    """A Python scalar for the engine, or None if ``x`` is not one."""
    if isinstance(x, bool):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, np.generic):
        return x
    return None


def _as_array(x: Any) -> Array:
    """``x`` as an ndstream array (NumPy arrays and scalars are wrapped)."""
    if isinstance(x, Array):
        return x
    return asarray(x)


def _operand(x: Any) -> Any:
    """The engine operand for ``x``: an engine array or a Python scalar;
    NotImplemented for what ndstream cannot combine with."""
    if isinstance(x, Array):
        return x._a
    s = _scalar(x)
    if s is not None:
        if isinstance(s, int) and not isinstance(s, bool) and not -(2**63) <= s < 2**63:
            return asarray(np.asarray(s))._a
        return s
    if isinstance(x, (np.ndarray, np.generic)):
        return asarray(x)._a
    if isinstance(x, (list, tuple)):
        return asarray(np.asarray(x))._a
    return NotImplemented


def _is_bool(x: Any) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return True
    dt = getattr(x, "dtype", None)
    return dt is not None and np.dtype(dt) == np.bool_


def _bool_op(name: str, a: Any, b: Any) -> str:
    """NumPy's arithmetic on two bools: ``+`` is or, ``*`` is and, ``-`` an error."""
    if name in ("add", "multiply", "subtract") and _is_bool(a) and _is_bool(b):
        if name == "subtract":
            raise TypeError(
                "numpy boolean subtract, the `-` operator, is not supported, use the "
                "bitwise_xor, the `^` operator, or the logical_xor function instead."
            )
        return "bitwise_or" if name == "add" else "bitwise_and"
    return name


def _binary(name: str, a: Any, b: Any) -> Array:
    """``name(a, b)`` for arrays and scalars, NumPy's broadcasting and promotion."""
    name = _bool_op(name, a, b)
    if isinstance(a, Array):
        ob = _operand(b)
        if ob is NotImplemented:
            raise TypeError(f"{name}: unsupported operand type {type(b).__name__}")
        return Array(a._a.binary(name, ob, False))
    if isinstance(b, Array):
        oa = _operand(a)
        if oa is NotImplemented:
            raise TypeError(f"{name}: unsupported operand type {type(a).__name__}")
        return Array(b._a.binary(name, oa, True))
    return _binary(name, _as_array(a), b)


def _array_op(name: str, reflected: bool = False) -> Callable[[Array, Any], Any]:
    def op(self: Array, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        return Array(self._a.binary(_bool_op(name, self, other), o, reflected))

    op.__name__ = f"__{'r' if reflected else ''}{name}__"
    return op


class Array:
    """A lazy, chunked n-dimensional array (Dask's ``dask.array.Array``).

    Made by :func:`from_array`, :func:`open`, :func:`zeros`,
    :func:`random.normal`, ..., and by every operation on arrays. Nothing
    is computed until :meth:`compute`, ``np.asarray(x)`` or a store.

    >>> import numpy as np, ndstream as da
    >>> x = da.from_array(np.arange(12.0).reshape(3, 4), chunks=(2, 2))
    >>> x.chunks
    ((2, 1), (2, 2))
    >>> (x + 1).sum(axis=0).compute()
    array([15., 18., 21., 24.])
    """

    __slots__ = ("__weakref__", "_lazy", "_node")
    __array_priority__ = 11  # NumPy defers its operators to ours

    def __init__(self, engine_array: Any) -> None:
        if not isinstance(engine_array, _ndstream.Array):
            raise TypeError(
                "ndstream.Array is not made directly: use ndstream.from_array, "
                "ndstream.asarray or ndstream.open"
            )
        self._node: Any = engine_array
        self._lazy: _AxisMask | None = None

    @property
    def _a(self) -> Any:
        """The engine array. For ``x[..., mask, ...]`` with a lazy boolean
        ``mask`` along one axis, the mask is computed here, the first time
        the array is used (computed, stored, or combined into another
        array), never when it is indexed."""
        node = self._node
        if node is None:
            node = self._node = self._lazy.resolve()  # type: ignore[union-attr]
        return node

    @_a.setter
    def _a(self, node: Any) -> None:
        self._node = node
        self._lazy = None

    # ---- metadata --------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The shape (``nan`` for a length known only after computing)."""
        if self._lazy is not None:
            return self._lazy.shape()
        s = tuple(self._a.shape)
        if not self._a.known_len:
            return (math.nan, *s[1:])
        return s

    @property
    def dtype(self) -> np.dtype:
        if self._lazy is not None:
            return self._lazy.base.dtype
        return np.dtype(self._a.dtype)

    @property
    def ndim(self) -> int:
        if self._lazy is not None:
            return self._lazy.base.ndim
        return len(self._a.shape)

    @property
    def size(self) -> int | float:
        s = self.shape
        return math.nan if builtins.any(isinstance(n, float) for n in s) else math.prod(s)

    @property
    def nbytes(self) -> int | float:
        n = self.size
        return n * self.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def chunks(self) -> tuple:
        """Chunk lengths per axis, Dask's tuple of tuples."""
        if self._lazy is not None:
            return self._lazy.chunks()
        out = []
        for d, (sizes, n) in enumerate(zip(self._a.chunks, self._a.shape)):
            sizes = tuple(int(c) for c in sizes) or ((0,) if n == 0 else ())
            if d == 0 and not self._a.known_len:
                sizes = tuple(math.nan for _ in sizes)
            out.append(sizes)
        return tuple(out)

    @property
    def chunksize(self) -> tuple:
        return tuple(builtins.max(c) if c else 0 for c in self.chunks)

    @property
    def numblocks(self) -> tuple:
        return tuple(len(c) for c in self.chunks)

    @property
    def npartitions(self) -> int:
        return math.prod(self.numblocks)

    @property
    def name(self) -> str:
        """A name for the expression: its top operation and a unique id."""
        if self._lazy is not None:
            return f"getitem-{id(self._lazy):x}"
        lines = self._a.describe().splitlines()
        expr = lines[1].strip() if len(lines) > 1 else "array"
        op = ""
        for ch in expr:
            if ch.isalnum() or ch in "_.":
                op += ch
            else:
                break
        return f"{op or 'array'}-{self._a.id:x}"

    @property
    def T(self) -> Array:
        return self.transpose()

    @property
    def mT(self) -> Array:
        if self.ndim < 2:
            raise ValueError("matrix transpose needs at least 2 dimensions")
        return self.swapaxes(-1, -2)

    def __len__(self) -> int:
        if not self.ndim:
            raise TypeError("len() of unsized object")
        n = self.shape[0]
        if isinstance(n, float):
            raise ValueError(
                "Cannot call len() on object with unknown chunk size (the result of a "
                "boolean mask); compute it first"
            )
        return n

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        from ._repr import text_repr

        return text_repr(self.name.rsplit("-", 1)[0], self.shape, self.dtype, self.chunksize)

    def _repr_html_(self) -> str:
        from ._repr import html_repr

        nbytes = self.nbytes
        return html_repr(
            self.name.rsplit("-", 1)[0],
            self.shape,
            self.dtype,
            self.chunks,
            None if isinstance(nbytes, float) else nbytes,
        )

    def __bool__(self) -> bool:
        return bool(self._scalar_value("bool"))

    def __int__(self) -> int:
        return int(self._scalar_value("int"))

    def __float__(self) -> float:
        return float(self._scalar_value("float"))

    def __complex__(self) -> complex:
        return complex(self._scalar_value("complex"))

    def __index__(self) -> int:
        if self.dtype.kind not in "iub":
            raise TypeError("only integer arrays can be used as an index")
        return operator.index(self._scalar_value("index").item())

    def _scalar_value(self, what: str) -> Any:
        if self.size != 1:
            raise TypeError(f"only arrays of size 1 can be converted to a Python {what}")
        return self.compute()

    __hash__ = object.__hash__

    # ---- computing -------------------------------------------------------
    def compute(self, **kwargs: Any) -> Any:
        """The values, as a NumPy array (a NumPy scalar for a 0-d array).

        ``memory=`` and ``threads=`` override :mod:`ndstream.config` for
        this call.
        """
        (r,) = compute(self, **kwargs)
        return r

    def compute_chunk_sizes(self) -> Array:
        """Make the chunk lengths known (Dask's ``compute_chunk_sizes``),
        in place, and return the array.

        After ``y = x[:, mask]`` with a lazy boolean ``mask``, the mask is
        computed (one pass over it) and ``y`` becomes a lazy selection of
        known shape. After ``y = x[m]`` with a mask of ``x``'s shape, the
        selection itself is computed into memory under the memory budget
        (as :meth:`persist`; :class:`MemoryBudgetError` if it does not
        fit). Arrays of known shape are returned as they are.

        >>> import numpy as np, ndstream as da
        >>> x = da.from_array(np.arange(12).reshape(3, 4), chunks=2)
        >>> y = x[:, x[0] % 2 == 0]
        >>> y.shape
        (3, nan)
        >>> y.compute_chunk_sizes().shape
        (3, 2)
        """
        if self._lazy is not None:
            self._a = self._a
        elif not self._a.known_len:
            self._a = self.persist()._a
        return self

    def persist(self, **kwargs: Any) -> Array:
        """The values computed into memory, as an array with the same chunks."""
        value = np.asarray(self.compute(**kwargs))
        if not self._a.known_len:
            return from_array(value)
        return from_array(value, chunks=self.chunks)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self.compute())
        if dtype is not None and a.dtype != np.dtype(dtype):
            a = a.astype(dtype)
        return a

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _array_function(func, types, args, kwargs)

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        import ndstream

        return ndstream

    def __dask_tokenize__(self) -> str:
        return self.name

    # ---- operators -------------------------------------------------------
    __add__ = _array_op("add")
    __radd__ = _array_op("add", True)
    __sub__ = _array_op("subtract")
    __rsub__ = _array_op("subtract", True)
    __mul__ = _array_op("multiply")
    __rmul__ = _array_op("multiply", True)
    __truediv__ = _array_op("true_divide")
    __rtruediv__ = _array_op("true_divide", True)
    __floordiv__ = _array_op("floor_divide")
    __rfloordiv__ = _array_op("floor_divide", True)
    __mod__ = _array_op("remainder")
    __rmod__ = _array_op("remainder", True)
    __pow__ = _array_op("power")
    __rpow__ = _array_op("power", True)
    __and__ = _array_op("bitwise_and")
    __rand__ = _array_op("bitwise_and", True)
    __or__ = _array_op("bitwise_or")
    __ror__ = _array_op("bitwise_or", True)
    __xor__ = _array_op("bitwise_xor")
    __rxor__ = _array_op("bitwise_xor", True)
    __lt__ = _array_op("less")
    __le__ = _array_op("less_equal")
    __gt__ = _array_op("greater")
    __ge__ = _array_op("greater_equal")
    __eq__ = _array_op("equal")  # type: ignore[assignment]
    __ne__ = _array_op("not_equal")  # type: ignore[assignment]

    def __divmod__(self, other: Any) -> tuple:
        return self // other, self % other

    def __rdivmod__(self, other: Any) -> tuple:
        return other // self, other % self

    def __neg__(self) -> Array:
        return Array(self._a.unary("negative"))

    def __pos__(self) -> Array:
        return self

    def __abs__(self) -> Array:
        return Array(self._a.unary("absolute"))

    def __invert__(self) -> Array:
        return Array(self._a.unary("invert"))

    def __matmul__(self, other: Any) -> Any:
        if _operand(other) is NotImplemented:
            return NotImplemented
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        if _operand(other) is NotImplemented:
            return NotImplemented
        return matmul(other, self)

    def dot(self, b: Any) -> Array:
        """The dot product with ``b`` (see :func:`dot`)."""
        return dot(self, b)

    # ---- indexing --------------------------------------------------------
    def __getitem__(self, key: Any) -> Array:
        return _getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        """``x[mask] = v`` with a boolean array of the same shape, as Dask
        (the array becomes ``where(mask, v, x)``)."""
        if isinstance(key, (Array, np.ndarray)) and np.dtype(key.dtype) == np.bool_:
            mask = _as_array(key)
            if mask.shape != self.shape:
                raise ValueError("x[mask] = v needs a mask of the array's shape")
            self._a = where(mask, value, self).astype(self.dtype)._a
            return
        raise NotImplementedError(
            "ndstream arrays support item assignment only with a boolean mask of the "
            "array's shape (x[mask] = value)"
        )

    # ---- reductions --------------------------------------------------------
    def _reduce(
        self,
        name: str,
        axis: Any = None,
        keepdims: bool = False,
        param: int | None = None,
        dtype: Any = None,
        out: Any = None,
    ) -> Array:
        if out is not None:
            raise NotImplementedError("out= is not supported: ndstream arrays are immutable")
        x = self
        if dtype is not None:
            dtype = _dtype(dtype)
            if (
                name in ("sum", "prod", "nansum", "nanprod", "cumsum", "cumprod")
                and x.dtype != dtype
            ):
                x = x.astype(dtype)
        axes = _axes(axis, x.ndim)
        r = Array(x._a.reduce(name, axes, bool(keepdims), param))
        if dtype is not None and r.dtype != dtype:
            r = r.astype(dtype)
        return r

    def sum(
        self,
        axis: Any = None,
        dtype: Any = None,
        keepdims: bool = False,
        split_every: Any = None,
        out: Any = None,
    ) -> Array:
        """Sum of elements over the given axes (NumPy's dtype rules)."""
        return self._reduce("sum", axis, keepdims, dtype=dtype, out=out)

    def prod(
        self,
        axis: Any = None,
        dtype: Any = None,
        keepdims: bool = False,
        split_every: Any = None,
        out: Any = None,
    ) -> Array:
        """Product of elements over the given axes."""
        return self._reduce("prod", axis, keepdims, dtype=dtype, out=out)

    def mean(
        self,
        axis: Any = None,
        dtype: Any = None,
        keepdims: bool = False,
        split_every: Any = None,
        out: Any = None,
    ) -> Array:
        """Arithmetic mean over the given axes."""
        return self._reduce("mean", axis, keepdims, dtype=dtype, out=out)

    def std(
        self,
        axis: Any = None,
        dtype: Any = None,
        keepdims: bool = False,
        ddof: int = 0,
        split_every: Any = None,
        out: Any = None,
    ) -> Array:
        """Standard deviation over the given axes, ``ddof`` delta degrees of freedom."""
        return self._reduce("std", axis, keepdims, _ddof(ddof), dtype=dtype, out=out)

    def var(
        self,
        axis: Any = None,
        dtype: Any = None,
        keepdims: bool = False,
        ddof: int = 0,
        split_every: Any = None,
        out: Any = None,
    ) -> Array:
        """Variance over the given axes, ``ddof`` delta degrees of freedom."""
        return self._reduce("var", axis, keepdims, _ddof(ddof), dtype=dtype, out=out)

    def min(
        self, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        """Minimum over the given axes (NaN propagates)."""
        return self._reduce("min", axis, keepdims, out=out)

    def max(
        self, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        """Maximum over the given axes (NaN propagates)."""
        return self._reduce("max", axis, keepdims, out=out)

    def any(
        self, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        """Whether any element is true over the given axes."""
        return self._reduce("any", axis, keepdims, out=out)

    def all(
        self, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        """Whether all elements are true over the given axes."""
        return self._reduce("all", axis, keepdims, out=out)

    def argmin(
        self, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        """Index of the minimum (of the flattened array if ``axis`` is None)."""
        return _arg("argmin", self, axis, keepdims, out)

    def argmax(
        self, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        """Index of the maximum (of the flattened array if ``axis`` is None)."""
        return _arg("argmax", self, axis, keepdims, out)

    def cumsum(
        self, axis: Any = None, dtype: Any = None, out: Any = None, method: str = "sequential"
    ) -> Array:
        """Cumulative sum along ``axis`` (of the flattened array if None)."""
        return _scan("cumsum", self, axis, dtype, out)

    def cumprod(
        self, axis: Any = None, dtype: Any = None, out: Any = None, method: str = "sequential"
    ) -> Array:
        """Cumulative product along ``axis`` (of the flattened array if None)."""
        return _scan("cumprod", self, axis, dtype, out)

    def topk(self, k: int, axis: int = -1, split_every: Any = None) -> Array:
        """The ``k`` largest elements along ``axis``, sorted (smallest if ``k < 0``)."""
        return topk(self, k, axis)

    def argtopk(self, k: int, axis: int = -1, split_every: Any = None) -> Array:
        """Indices of the ``k`` largest elements along ``axis``."""
        return argtopk(self, k, axis)

    # ---- shape and type ----------------------------------------------------
    def astype(
        self, dtype: Any, casting: str = "unsafe", copy: bool = True, **kwargs: Any
    ) -> Array:
        """The array converted to ``dtype`` (C casts, as NumPy's ``astype``)."""
        dt = _dtype(dtype)
        if dt == self.dtype:
            return self
        if casting != "unsafe" and not np.can_cast(self.dtype, dt, casting=casting):
            raise TypeError(
                f"Cannot cast array data from {self.dtype!r} to {dt!r} according to the "
                f"rule {casting!r}"
            )
        return Array(self._a.astype(dt.name))

    def transpose(self, *axes: Any) -> Array:
        """Axes permuted (reversed if none given)."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        if not axes:
            return Array(self._a.transpose(None))
        perm = [_axis(a, self.ndim) for a in axes]
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"axes {tuple(axes)} don't match the array's {self.ndim} dimensions")
        return Array(self._a.transpose(perm))

    def swapaxes(self, axis1: int, axis2: int) -> Array:
        """Two axes interchanged."""
        return swapaxes(self, axis1, axis2)

    def squeeze(self, axis: Any = None) -> Array:
        """Length-1 axes removed (all, or those in ``axis``)."""
        return squeeze(self, axis)

    def reshape(self, *shape: Any, merge_chunks: bool = True, limit: Any = None) -> Array:
        """The same elements in a new shape (C order; one length may be -1).
        Rechunks where needed, as Dask does."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def ravel(self) -> Array:
        """The elements as a 1-d array (C order)."""
        return reshape(self, (-1,))

    flatten = ravel

    def rechunk(
        self,
        chunks: Any = "auto",
        threshold: Any = None,
        block_size_limit: Any = None,
        balance: bool = False,
        method: Any = None,
    ) -> Array:
        """The same array with a new chunking (Dask's ``chunks`` forms)."""
        return rechunk(self, chunks)

    def clip(self, min: Any = None, max: Any = None) -> Array:
        """Values limited to ``[min, max]``."""
        return clip(self, min, max)

    def round(self, decimals: int = 0) -> Array:
        """Rounded to ``decimals`` decimals (half to even, as NumPy)."""
        return round(self, decimals)

    def copy(self) -> Array:
        """Arrays are immutable expressions: the same array."""
        return self

    def map_blocks(self, func: Callable, *args: Any, **kwargs: Any) -> Array:
        """``func`` applied to each block (see :func:`map_blocks`)."""
        return map_blocks(func, self, *args, **kwargs)

    def store(self, target: Any, **kwargs: Any) -> Any:
        """Write into ``target`` (see :func:`store`)."""
        return store([self], [target], **kwargs)

    def to_zarr(
        self, url: Any, component: str | None = None, overwrite: bool = False, **kwargs: Any
    ) -> Any:
        """Write to a Zarr store (see :func:`to_zarr`)."""
        return to_zarr(self, url, component=component, overwrite=overwrite, **kwargs)

    def to_hdf5(self, filename: str, datapath: str, **kwargs: Any) -> None:
        """Write to an HDF5 dataset (see :func:`to_hdf5`)."""
        return to_hdf5(filename, datapath, self, **kwargs)

    def __reduce__(self) -> Any:
        """Pickled as a program: the expression, with stored inputs by path
        (the unpickling process must see the same files) and in-memory
        data embedded; a ``map_blocks`` function or an object read through
        ``from_array`` by slicing cannot be pickled (``TypeError``)."""
        try:
            text = _ndstream.to_program([self._a])
        except ValueError as e:
            raise TypeError(f"cannot pickle this ndstream array: {e}") from None
        return (_from_program, (text,))


def _from_program(text: str) -> Array:
    """The array a pickled program describes (see ``Array.__reduce__``)."""
    (a,) = _ndstream.from_program(text)
    return Array(a)


def _ddof(ddof: Any) -> int:
    if isinstance(ddof, bool) or not isinstance(ddof, (numbers.Integral, np.integer)):
        raise TypeError(f"ddof must be an int, not {ddof!r}")
    if ddof < 0:
        raise ValueError(f"ddof must be non-negative, not {ddof}")
    return int(ddof)


def _arg(name: str, x: Array, axis: Any, keepdims: bool, out: Any) -> Array:
    if out is not None:
        raise NotImplementedError("out= is not supported: ndstream arrays are immutable")
    if axis is None:
        flat = x if x.ndim == 1 else reshape(x, (-1,))
        r = Array(flat._a.reduce(name, [0], False, None))
        if keepdims:
            r = r[(None,) * x.ndim]
        return r
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"{name} takes a single axis, not {axis!r}")
    return Array(x._a.reduce(name, [_axis(axis, x.ndim)], bool(keepdims), None))


def _scan(name: str, x: Array, axis: Any, dtype: Any, out: Any) -> Array:
    if out is not None:
        raise NotImplementedError("out= is not supported: ndstream arrays are immutable")
    if dtype is not None:
        x = x.astype(dtype)
    r = Array(x._a.scan(name, None if axis is None else _axis(axis, x.ndim)))
    if dtype is not None:
        r = r.astype(dtype)
    return r


# ---- indexing ------------------------------------------------------------
def _int_index(v: Any) -> int | None:
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return None
    if isinstance(v, (numbers.Integral, np.integer)):
        return int(v)
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu":
        return int(v)
    return None


def _slice_item(s: slice) -> tuple:
    def part(v: Any) -> int | None:
        return None if v is None else operator.index(v)

    step = part(s.step)
    if step == 0:
        raise ValueError("slice step cannot be zero")
    return ("s", part(s.start), part(s.stop), 1 if step is None else step)


class _AxisMask:
    """``base[..., mask, ...]`` for a lazy 1-d boolean ``mask`` along
    ``axis``: Dask's unknown (``nan``) length there until the mask is
    computed, which happens when the array is first used."""

    __slots__ = ("axis", "base", "mask")

    def __init__(self, base: Array, axis: int, mask: Array) -> None:
        self.base = base
        self.axis = axis
        self.mask = mask

    def shape(self) -> tuple:
        s = list(self.base.shape)
        s[self.axis] = math.nan
        return tuple(s)

    def chunks(self) -> tuple:
        c = list(self.base.chunks)
        c[self.axis] = tuple(math.nan for _ in c[self.axis])
        return tuple(c)

    def resolve(self) -> Any:
        idx = np.flatnonzero(np.asarray(self.mask.compute()))
        return _take(self.base, self.axis, idx)._a


def _getitem(x: Array, key: Any) -> Array:
    if not isinstance(key, tuple):
        key = (key,)
    # A boolean array of the array's shape: the elements where it is true.
    if len(key) == 1:
        k = key[0]
        if (
            isinstance(k, (Array, np.ndarray))
            and np.dtype(k.dtype) == np.bool_
            and k.ndim == x.ndim
            and k.ndim > 0
        ):
            mask = _as_array(k)
            if mask.shape != x.shape:
                raise IndexError(
                    f"boolean index of shape {mask.shape} does not match the array's "
                    f"shape {x.shape}"
                )
            return Array(x._a.mask(mask._a))
    items: list = []
    fancy: list = []
    for k in key:
        i = _int_index(k)
        if i is not None:
            items.append(("i", i))
        elif isinstance(k, slice):
            items.append(_slice_item(k))
        elif k is None:
            items.append(("n",))
        elif k is Ellipsis:
            items.append(("e",))
        elif isinstance(k, Array) and k.dtype == np.bool_ and k.ndim == 1:
            # a lazy mask along one axis: selected when the result is used
            fancy.append(len(items))
            items.append(("f", k))
            continue
        elif isinstance(k, (list, np.ndarray, Array)):
            idx = np.asarray(k.compute()) if isinstance(k, Array) else np.asarray(k)
            if idx.dtype == np.bool_:
                if idx.ndim != 1:
                    raise IndexError("a boolean index must be 1-d or of the array's shape")
                fancy.append(len(items))
                items.append(("f", idx))
                continue
            if idx.dtype.kind not in "iu" or idx.ndim != 1:
                raise IndexError(
                    "only integers, slices, None, ..., 1-d integer arrays and boolean arrays "
                    "are valid indices"
                )
            fancy.append(len(items))
            items.append(("f", idx.astype(np.int64)))
        else:
            raise IndexError(
                f"only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                f"integer or boolean arrays are valid indices, not {type(k).__name__}"
            )
    indexed = builtins.sum(1 for t in items if t[0] in ("i", "s", "f"))
    if indexed > x.ndim:
        raise IndexError(
            f"too many indices for array: array is {x.ndim}-dimensional, but {indexed} were indexed"
        )
    if builtins.sum(1 for t in items if t[0] == "e") > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if len(fancy) > 1:
        raise NotImplementedError(
            "ndstream supports one integer-array index per selection (index one axis at a "
            "time: x[[1, 2]][:, [3, 4]])"
        )
    if not fancy:
        return Array(x._a.index(items))
    # One integer array: the basic part first, then the listed positions of
    # that axis, concatenated from runs of consecutive positions.
    pos = fancy[0]
    idx = items[pos][1]
    basic = list(items)
    basic[pos] = ("s", None, None, 1)
    y = Array(x._a.index(basic))
    # the axis of y that the integer array indexes: one output axis per
    # slice or new axis before it, the axes an ellipsis stands for
    producing = builtins.sum(1 for t in basic if t[0] in ("s", "n"))
    axis = 0
    for it in basic[:pos]:
        if it[0] in ("s", "n"):
            axis += 1
        elif it[0] == "e":
            axis += y.ndim - producing
    n = y.shape[axis]
    if isinstance(idx, Array) or idx.dtype == np.bool_:
        if isinstance(n, float) or len(idx) != n:
            raise IndexError(
                f"boolean index did not match indexed array along axis {axis}; size of axis "
                f"is {n} but size of corresponding boolean axis is {len(idx)}"
            )
    if isinstance(idx, Array):
        out = Array.__new__(Array)
        out._node = None
        out._lazy = _AxisMask(y, axis, idx)
        return out
    if idx.dtype == np.bool_:
        idx = np.flatnonzero(idx)
    return _take(y, axis, idx)


def _take(y: Array, axis: int, idx: np.ndarray) -> Array:
    """``y``'s positions ``idx`` (1-d integers) along ``axis``, as slices of
    runs of consecutive positions, concatenated."""
    n = y.shape[axis]
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        bad = int(idx[(idx < -n) | (idx >= n)][0])
        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {n}")
    idx = np.where(idx < 0, idx + n, idx)
    if len(idx) == 0:
        sl = [slice(None)] * y.ndim
        sl[axis] = slice(0, 0)
        return y[tuple(sl)]
    parts = []
    start = 0
    for i in range(1, len(idx) + 1):
        if i == len(idx) or idx[i] != idx[i - 1] + 1:
            sl = [slice(None)] * y.ndim
            sl[axis] = slice(int(idx[start]), int(idx[i - 1]) + 1)
            parts.append(y[tuple(sl)])
            start = i
    return parts[0] if len(parts) == 1 else concatenate(parts, axis=axis)


# ---- making arrays -------------------------------------------------------
def _is_h5py_dataset(x: Any) -> bool:
    return type(x).__module__.startswith("h5py") and hasattr(x, "file") and hasattr(x, "name")


def _zarr_location(x: Any) -> str | None:
    """The local path of a zarr-python array, or None if it is not one on disk."""
    if not type(x).__module__.startswith("zarr"):
        return None
    store = getattr(x, "store", None)
    root = getattr(store, "root", None)  # zarr-python 3 LocalStore
    if root is None:
        root = getattr(store, "path", None)  # zarr-python 2 DirectoryStore
    if root is None or not os.path.isdir(str(root)):
        return None
    inner = (getattr(x, "path", "") or "").strip("/")
    return os.path.join(str(root), inner) if inner else str(root)


def _open_store(path: str, chunks: Any) -> Array:
    x = Array(_ndstream.open(path))
    if chunks is not None and not (isinstance(chunks, str) and chunks == "auto"):
        x = x.rechunk(chunks)
    return x


def from_array(
    x: Any,
    chunks: Any = "auto",
    name: Any = None,
    lock: bool = False,
    asarray: Any = None,
    fancy: bool = True,
    getitem: Any = None,
    meta: Any = None,
    inline_array: bool = False,
) -> Array:
    """A lazy array over ``x``, in chunks.

    ``x`` may be a NumPy array (copied once, into memory), an h5py
    ``Dataset`` or a zarr ``Array`` on disk (read by ndstream's own
    parallel readers, from the file and dataset path), an ndstream array,
    or any object with ``shape``, ``dtype`` and NumPy slicing (read through
    it, one chunk at a time).

    >>> import numpy as np, ndstream as da
    >>> x = da.from_array(np.arange(10), chunks=4)
    >>> x.chunks
    ((4, 4, 2),)
    """
    if isinstance(x, Array):
        return x if chunks == "auto" else x.rechunk(chunks)
    if _is_h5py_dataset(x):
        filename = os.path.abspath(x.file.filename)
        return _open_store(f"{filename}:{x.name}", chunks)
    loc = _zarr_location(x)
    if loc is not None:
        return _open_store(loc, chunks)
    if isinstance(x, (np.ndarray, np.generic, list, tuple, numbers.Number)):
        a = np.asarray(x)
        dt = _dtype(a.dtype)
        if not a.dtype.isnative or not a.flags.c_contiguous:
            a = np.ascontiguousarray(a, dtype=dt.newbyteorder("="))
        spec = _chunks_arg(chunks, a.shape, dt)
        return Array(_ndstream.from_numpy(a, spec))
    if hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__"):
        shape = _shape_arg(tuple(x.shape))
        dt = _dtype(x.dtype)
        storage = getattr(x, "chunks", None)
        if (
            (isinstance(chunks, str) and chunks == "auto")
            and isinstance(storage, tuple)
            and len(storage) == len(shape)
            and builtins.all(isinstance(c, int) for c in storage)
        ):
            chunks = storage
        spec = _chunks_arg(chunks, shape, dt)
        label = name if isinstance(name, str) else type(x).__name__
        return Array(_ndstream.from_object(x, list(shape), dt.name, spec, label))
    a = np.asarray(x)
    return from_array(a, chunks=chunks)


def asarray(
    a: Any,
    dtype: Any = None,
    order: Any = None,
    *,
    like: Any = None,
    chunks: Any = "auto",
    **kwargs: Any,
) -> Array:
    """``a`` as an ndstream array (unchanged if it is one)."""
    x = a if isinstance(a, Array) else from_array(a, chunks=chunks)
    if dtype is not None:
        x = x.astype(dtype)
    return x


asanyarray = asarray
array = asarray


def from_zarr(url: Any, component: str | None = None, chunks: Any = "auto", **kwargs: Any) -> Array:
    """A Zarr array on disk (a path, or a zarr ``Array``)."""
    if not isinstance(url, (str, os.PathLike)):
        return from_array(url, chunks=chunks)
    path = os.fspath(url)
    if component:
        path = f"{path.rstrip('/')}/{component.strip('/')}"
    return _open_store(path, chunks)


def open(path: str | os.PathLike, chunks: Any = "auto") -> Array:
    """A stored array, by ndstream's path syntax: ``x.npy``,
    ``store.zarr`` (``store.zarr/group/array``), ``file.h5:/dataset``,
    ``file.bin?dtype=<f4&shape=100,200``, and by URL a Zarr store
    (``s3://bucket/x.zarr/array``) or an HDF5/netCDF-4 file, read by byte
    ranges (``s3://bucket/era5.nc:/t2m``)."""
    return _open_store(os.fspath(path), chunks)


def open_many(pattern: str, chunks: Any = "auto") -> list:
    """Every array a glob pattern names, sorted by path
    (``open_many("data/*.h5:/t2m")``, ``open_many("s3://bucket/era5/*.nc:/t2m")``)."""
    out = [Array(a) for a in _ndstream.open_many(pattern)]
    if chunks is not None and not (isinstance(chunks, str) and chunks == "auto"):
        out = [x.rechunk(chunks) for x in out]
    return out


def _default_float(dtype: Any) -> np.dtype:
    return np.dtype("float64") if dtype is None else _dtype(dtype)


def full(
    shape: Any, fill_value: Any, dtype: Any = None, chunks: Any = "auto", **kwargs: Any
) -> Array:
    """An array of ``fill_value`` (dtype from the value if not given, as NumPy)."""
    shape = _shape_arg(shape)
    if dtype is None:
        dtype = np.array(fill_value).dtype
    dt = _dtype(dtype)
    if np.ndim(fill_value) != 0:
        raise ValueError("fill_value must be a scalar")
    spec = _chunks_arg(chunks, shape, dt)
    return Array(_ndstream.full(list(shape), float(fill_value), dt.name, spec))


def zeros(shape: Any, dtype: Any = float, chunks: Any = "auto", **kwargs: Any) -> Array:
    """An array of zeros."""
    return full(shape, 0, _default_float(dtype), chunks)


def ones(shape: Any, dtype: Any = float, chunks: Any = "auto", **kwargs: Any) -> Array:
    """An array of ones."""
    return full(shape, 1, _default_float(dtype), chunks)


def empty(shape: Any, dtype: Any = float, chunks: Any = "auto", **kwargs: Any) -> Array:
    """An array whose values are not to be relied on (zeros here)."""
    return zeros(shape, dtype, chunks)


def _like(a: Any, dtype: Any, chunks: Any, shape: Any) -> tuple:
    a = _as_array(a)
    return (
        a.shape if shape is None else shape,
        a.dtype if dtype is None else dtype,
        a.chunks if (chunks is None and shape is None) else (chunks or "auto"),
    )


def zeros_like(
    a: Any, dtype: Any = None, chunks: Any = None, shape: Any = None, **kwargs: Any
) -> Array:
    """Zeros of ``a``'s shape, dtype and chunks."""
    s, d, c = _like(a, dtype, chunks, shape)
    return full(s, 0, d, c)


def ones_like(
    a: Any, dtype: Any = None, chunks: Any = None, shape: Any = None, **kwargs: Any
) -> Array:
    """Ones of ``a``'s shape, dtype and chunks."""
    s, d, c = _like(a, dtype, chunks, shape)
    return full(s, 1, d, c)


def empty_like(
    a: Any, dtype: Any = None, chunks: Any = None, shape: Any = None, **kwargs: Any
) -> Array:
    """An array of ``a``'s shape, dtype and chunks (zeros here)."""
    return zeros_like(a, dtype, chunks, shape)


def full_like(
    a: Any, fill_value: Any, dtype: Any = None, chunks: Any = None, shape: Any = None, **kwargs: Any
) -> Array:
    """``fill_value`` in ``a``'s shape, dtype and chunks."""
    s, d, c = _like(a, dtype, chunks, shape)
    return full(s, fill_value, d, c)


def arange(*args: Any, chunks: Any = "auto", dtype: Any = None, **kwargs: Any) -> Array:
    """``arange([start,] stop[, step])`` as NumPy (integers unless a float is given)."""
    if kwargs:
        if "stop" in kwargs or "start" in kwargs or "step" in kwargs:
            start = kwargs.pop("start", 0)
            stop = kwargs.pop("stop")
            step = kwargs.pop("step", 1)
            args = (start, stop, step)
        if kwargs:
            raise TypeError(f"arange: unexpected keyword arguments {sorted(kwargs)}")
    if len(args) == 1:
        start, stop, step = 0, args[0], 1
    elif len(args) == 2:
        start, stop, step = args[0], args[1], 1
    elif len(args) == 3:
        start, stop, step = args
    else:
        raise TypeError(f"arange takes 1 to 3 positional arguments, {len(args)} given")
    if step == 0:
        raise ValueError("arange: step must not be zero")
    dt = np.arange(start, start + step, step).dtype if dtype is None else _dtype(dtype)
    if dt == np.dtype("int64") or dt.kind in "iu":
        n = (
            builtins.max(0, -((start - stop) // step))
            if builtins.all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
            else None
        )
    else:
        n = None
    if n is None:
        n = builtins.max(0, math.ceil((stop - start) / step))
    spec = _chunks_arg(chunks, (n,), _dtype(dt))
    return Array(_ndstream.arange(float(start), float(stop), float(step), _dtype(dt).name, spec))


def linspace(
    start: float,
    stop: float,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    chunks: Any = "auto",
    dtype: Any = None,
) -> Any:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    num = int(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    if not endpoint:
        step = (stop - start) / num if num else math.nan
        stop_incl = start + step * (num - 1) if num else start
    else:
        step = (stop - start) / (num - 1) if num > 1 else math.nan
        stop_incl = stop
    spec = _chunks_arg(chunks, (num,), np.dtype("float64"))
    x = Array(_ndstream.linspace(float(start), float(stop_incl), num, spec))
    if dtype is not None:
        x = x.astype(dtype)
    return (x, step) if retstep else x


# ---- combining -----------------------------------------------------------
def stack(seq: Sequence[Any], axis: int = 0, allow_unknown_chunksizes: bool = False) -> Array:
    """Arrays of one shape joined along a new axis."""
    seq = [_as_array(a) for a in seq]
    if not seq:
        raise ValueError("Need array(s) to stack")
    seq = _common_dtype(seq)
    return Array(_ndstream.stack([a._a for a in seq], int(axis)))


def concatenate(seq: Sequence[Any], axis: int = 0, allow_unknown_chunksizes: bool = False) -> Array:
    """Arrays joined along an existing axis."""
    seq = [_as_array(a) for a in seq]
    if not seq:
        raise ValueError("Need array(s) to concatenate")
    seq = _common_dtype(seq)
    if axis is None:
        seq = [reshape(a, (-1,)) for a in seq]
        axis = 0
    return Array(_ndstream.concatenate([a._a for a in seq], int(axis)))


def vstack(tup: Sequence[Any]) -> Array:
    """Arrays stacked as rows (NumPy's ``vstack``)."""
    arrs = [atleast_2d(a) for a in tup]
    return concatenate(arrs, axis=0)


def hstack(tup: Sequence[Any]) -> Array:
    """Arrays joined along their second axis (the first for 1-d)."""
    arrs = [_as_array(a) for a in tup]
    return concatenate(arrs, axis=0 if arrs and arrs[0].ndim == 1 else 1)


def dstack(tup: Sequence[Any]) -> Array:
    """Arrays joined along a third axis."""
    return concatenate([atleast_3d(a) for a in tup], axis=2)


def _common_dtype(seq: list) -> list:
    dt = np.result_type(*[a.dtype for a in seq])
    return [a.astype(dt) for a in seq]


def where(condition: Any, x: Any = None, y: Any = None) -> Array:
    """Elements of ``x`` where ``condition`` holds, else of ``y`` (broadcast,
    promoted to a common dtype). With only ``condition``: its nonzero indices."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("either both or neither of x and y should be given")
    cond = _as_array(condition)
    if cond.dtype != np.bool_:
        cond = cond.astype(bool)
    xa = _operand(x)
    ya = _operand(y)
    if xa is NotImplemented or ya is NotImplemented:
        raise TypeError("where: x and y must be arrays or numbers")
    return Array(_ndstream.where_(cond._a, xa, ya))


def nonzero(a: Any) -> tuple:
    """Indices of the nonzero elements (computed: their number is not known before)."""
    v = np.asarray(_as_array(a).compute())
    return tuple(from_array(i) for i in np.nonzero(v))


def clip(a: Any, min: Any = None, max: Any = None, **kwargs: Any) -> Array:
    """Values limited to ``[min, max]``."""
    a = _as_array(a)
    if min is None and max is None:
        raise ValueError("One of max or min must be given")
    if isinstance(min, Array) or isinstance(max, Array) or np.ndim(min) or np.ndim(max):
        r = a
        if min is not None:
            r = _ELEMENTWISE["maximum"](r, min)
        if max is not None:
            r = _ELEMENTWISE["minimum"](r, max)
        return r
    r = Array(a._a.clip(None if min is None else float(min), None if max is None else float(max)))
    want = (
        np.result_type(a.dtype, *[np.asarray(v) for v in (min, max) if v is not None])
        if a.dtype.kind == "b"
        else a.dtype
    )
    return r if r.dtype == want else r.astype(want)


def triu(m: Any, k: int = 0) -> Array:
    """The upper triangle (zeros below the ``k``-th diagonal)."""
    return Array(_as_array(m)._a.triu(int(k)))


def tril(m: Any, k: int = 0) -> Array:
    """The lower triangle (zeros above the ``k``-th diagonal)."""
    return Array(_as_array(m)._a.tril(int(k)))


def topk(a: Any, k: int, axis: int = -1, split_every: Any = None) -> Array:
    """The ``k`` largest elements along ``axis``, largest first (the ``-k``
    smallest, smallest first, for negative ``k``), as Dask's ``topk``."""
    a = _as_array(a)
    return Array(a._a.reduce("topk", [_axis(axis, a.ndim)], False, int(k)))


def argtopk(a: Any, k: int, axis: int = -1, split_every: Any = None) -> Array:
    """Indices of :func:`topk`'s elements along ``axis``."""
    a = _as_array(a)
    return Array(a._a.reduce("argtopk", [_axis(axis, a.ndim)], False, int(k)))


def round(a: Any, decimals: int = 0) -> Array:
    """Rounded to ``decimals`` decimals, half to even (NumPy's ``round``)."""
    a = _as_array(a)
    if a.dtype.kind in "biu":
        if decimals >= 0:
            return a
        scale = 10 ** (-decimals)
        return (_binary("true_divide", a, scale).round(0) * scale).astype(a.dtype)
    if "rint" not in _UNARY:
        raise NotImplementedError("ndstream has no rounding op (round/around/rint) yet")
    if decimals == 0:
        return Array(a._a.unary("rint"))
    scale = 10.0**decimals
    return Array((a * scale)._a.unary("rint")) / scale


around = round


def reshape(x: Any, shape: Any, merge_chunks: bool = True, limit: Any = None) -> Array:
    """``x``'s elements in a new shape (C order; one length may be -1)."""
    x = _as_array(x)
    if isinstance(shape, (numbers.Integral, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if shape == x.shape:
        return x
    if not x._a.known_len:
        raise ValueError("reshape needs a known length: compute the masked array first")
    return Array(x._a.reshape(list(shape)))


def rechunk(
    x: Any,
    chunks: Any = "auto",
    threshold: Any = None,
    block_size_limit: Any = None,
    balance: bool = False,
    method: Any = None,
) -> Array:
    """``x`` with a new chunking: ``"auto"``, an int, a tuple (``-1`` for a
    whole axis, ``None`` to keep an axis's chunks), per-axis sizes, or a
    dict ``{axis: chunks}`` (other axes keep theirs), as Dask's ``rechunk``."""
    x = _as_array(x)
    if isinstance(chunks, dict):
        chunks = {_axis(k, x.ndim): v for k, v in chunks.items()}
        chunks = tuple(chunks.get(d, x.chunks[d]) for d in range(x.ndim))
    elif isinstance(chunks, (tuple, list)) and len(chunks) == x.ndim:
        chunks = tuple(x.chunks[d] if c is None else c for d, c in enumerate(chunks))
    spec = _chunks_arg(chunks, x.shape, x.dtype)
    return Array(x._a.rechunk(spec))


def ravel(x: Any) -> Array:
    """The elements as a 1-d array (C order)."""
    return reshape(x, (-1,))


def transpose(a: Any, axes: Any = None) -> Array:
    """Axes permuted (reversed if ``axes`` is None)."""
    return _as_array(a).transpose(axes)


def swapaxes(a: Any, axis1: int, axis2: int) -> Array:
    """Two axes interchanged."""
    a = _as_array(a)
    i, j = _axis(axis1, a.ndim), _axis(axis2, a.ndim)
    perm = list(range(a.ndim))
    perm[i], perm[j] = perm[j], perm[i]
    return a.transpose(perm)


def moveaxis(a: Any, source: Any, destination: Any) -> Array:
    """Axes moved to new positions (the others keep their order)."""
    a = _as_array(a)
    src = [_axis(s, a.ndim) for s in np.atleast_1d(source)]
    dst = [_axis(d, a.ndim) for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError("source and destination must have the same number of elements")
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return a.transpose(order)


def squeeze(a: Any, axis: Any = None) -> Array:
    """Length-1 axes removed (all of them, or those in ``axis``)."""
    a = _as_array(a)
    if axis is None:
        axes = [d for d, n in enumerate(a.shape) if n == 1]
    else:
        axes = _axes(axis, a.ndim) or []
        for d in axes:
            if a.shape[d] != 1:
                raise ValueError(
                    "cannot select an axis to squeeze out which has size not equal to one"
                )
    if not axes:
        return a
    return Array(
        a._a.index([("i", 0) if d in axes else ("s", None, None, 1) for d in range(a.ndim)])
    )


def expand_dims(a: Any, axis: Any) -> Array:
    """New length-1 axes at the positions ``axis`` has in the result."""
    a = _as_array(a)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out_ndim = a.ndim + len(axes)
    new = {_axis(d, out_ndim) for d in axes}
    if len(new) != len(axes):
        raise ValueError("repeated axis")
    items = []
    for d in range(out_ndim):
        items.append(("n",) if d in new else ("s", None, None, 1))
    return Array(a._a.index(items))


def atleast_1d(*arys: Any) -> Any:
    """Arrays with at least one dimension."""
    out = [_as_array(a) if _as_array(a).ndim >= 1 else _as_array(a)[None] for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys: Any) -> Any:
    """Arrays with at least two dimensions."""
    out = []
    for a in arys:
        a = _as_array(a)
        while a.ndim < 2:
            a = a[None]
        out.append(a)
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys: Any) -> Any:
    """Arrays with at least three dimensions (NumPy's placement)."""
    out = []
    for a in arys:
        a = _as_array(a)
        if a.ndim == 0:
            a = a[None, None, None]
        elif a.ndim == 1:
            a = a[None, :, None]
        elif a.ndim == 2:
            a = a[:, :, None]
        out.append(a)
    return out[0] if len(out) == 1 else out


def broadcast_to(x: Any, shape: Any, chunks: Any = None) -> Array:
    """``x`` broadcast to ``shape`` (lazily)."""
    x = _as_array(x)
    shape = _shape_arg(shape)
    target = full(shape, 0, x.dtype, chunks if chunks is not None else "auto")
    return _binary("add", x, target).astype(x.dtype)


def matmul(x1: Any, x2: Any, /, **kwargs: Any) -> Array:
    """The matrix product, with NumPy's ``matmul`` rules (1-d operands are
    promoted to a row or column, leading axes broadcast).

    Computed as a fused broadcast product and a sum over the shared axis,
    streamed in tiles within the memory budget (no BLAS: for large dense
    products a BLAS library is faster)."""
    _ufunc_kwargs(kwargs)
    a, b = _as_array(x1), _as_array(x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
            f"(size {b2.shape[-2]} is different from {a2.shape[-1]})"
        )
    dt = np.result_type(a.dtype, b.dtype)
    prod = _binary("multiply", a2[..., :, :, None], b2[..., None, :, :])
    r = prod.sum(axis=-2)
    if dt == np.bool_:
        r = r != 0
    elif r.dtype != dt:
        r = r.astype(dt)
    if a.ndim == 1:
        r = r[..., 0, :]
    if b.ndim == 1:
        r = r[..., 0]
    return r


def dot(a: Any, b: Any) -> Array:
    """NumPy's ``dot`` for 1-d and 2-d operands (and scalars)."""
    a, b = _as_array(a), _as_array(b)
    if a.ndim == 0 or b.ndim == 0:
        return _binary("multiply", a, b)
    if a.ndim <= 2 and b.ndim <= 2:
        return matmul(a, b)
    raise NotImplementedError("ndstream's dot takes 1-d and 2-d arrays (use matmul)")


def outer(a: Any, b: Any) -> Array:
    """The outer product of two arrays, flattened first."""
    a, b = ravel(_as_array(a)), ravel(_as_array(b))
    return _binary("multiply", a[:, None], b[None, :])


# ---- elementwise functions from the engine's op table ---------------------
def _ufunc1(name: str) -> Callable[..., Array]:
    op = _UNARY[name]

    def f(x: Any, /, **kwargs: Any) -> Array:
        _ufunc_kwargs(kwargs)
        r = Array(_as_array(x)._a.unary(op))
        return _ufunc_dtype(r, kwargs)

    f.__name__ = name
    f.__doc__ = f"NumPy's ``{name}`` elementwise, lazily."
    return f


def _ufunc2(name: str) -> Callable[..., Array]:
    op = _BINARY[name]

    def f(x1: Any, x2: Any, /, **kwargs: Any) -> Array:
        _ufunc_kwargs(kwargs)
        return _ufunc_dtype(_binary(op, x1, x2), kwargs)

    f.__name__ = name
    f.__doc__ = f"NumPy's ``{name}`` elementwise with broadcasting, lazily."
    return f


def _ufunc_kwargs(kwargs: dict) -> None:
    out = kwargs.pop("out", None)
    if out is not None and out != (None,):
        raise NotImplementedError("out= is not supported: ndstream arrays are immutable")
    where_ = kwargs.pop("where", True)
    if where_ is not True:
        raise NotImplementedError("where= is not supported by ndstream's ufuncs")
    for k in ("casting", "order", "subok"):
        kwargs.pop(k, None)
    unknown = set(kwargs) - {"dtype"}
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")


def _ufunc_dtype(r: Array, kwargs: dict) -> Array:
    dtype = kwargs.get("dtype")
    return r if dtype is None else r.astype(dtype)


_ELEMENTWISE: dict[str, Callable[..., Array]] = {}
for _n in list(_UNARY):
    _ELEMENTWISE[_n] = _ufunc1(_n)
for _n in list(_BINARY):
    _ELEMENTWISE[_n] = _ufunc2(_n)
_ELEMENTWISE.setdefault("logical_not", _ufunc1("invert"))
_ELEMENTWISE["conjugate"] = lambda x, /, **kw: _as_array(x)  # real dtypes only
_ELEMENTWISE["conj"] = _ELEMENTWISE["conjugate"]
_ELEMENTWISE["positive"] = lambda x, /, **kw: _as_array(x)


def _logical(name: str) -> Callable[..., Array]:
    op = {"logical_and": "bitwise_and", "logical_or": "bitwise_or", "logical_xor": "bitwise_xor"}[
        name
    ]

    def f(x1: Any, x2: Any, /, **kwargs: Any) -> Array:
        _ufunc_kwargs(kwargs)
        a = _as_array(x1)
        b = _as_array(x2) if not isinstance(x2, (bool, int, float)) else x2
        a = a if a.dtype == np.bool_ else a != 0
        if isinstance(b, Array):
            b = b if b.dtype == np.bool_ else b != 0
        else:
            b = bool(b)
        return _binary(op, a, b)

    f.__name__ = name
    return f


for _n in ("logical_and", "logical_or", "logical_xor"):
    _ELEMENTWISE[_n] = _logical(_n)


def _logical_not(x: Any, /, **kwargs: Any) -> Array:
    _ufunc_kwargs(kwargs)
    a = _as_array(x)
    return a == 0 if a.dtype != np.bool_ else Array(a._a.unary("invert"))


_ELEMENTWISE["logical_not"] = _logical_not


def _isinf(x: Any, /, **kwargs: Any) -> Array:
    _ufunc_kwargs(kwargs)
    a = _as_array(x)
    return _ELEMENTWISE["logical_not"](_ELEMENTWISE["isfinite"](a) | _ELEMENTWISE["isnan"](a))


_ELEMENTWISE["isinf"] = _isinf


def _array_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    name = ufunc.__name__
    if method == "__call__" and name == "matmul":
        return matmul(*inputs, **kwargs)
    if method == "__call__":
        f = _ELEMENTWISE.get(name)
        if f is None:
            raise NotImplementedError(
                f"ndstream has no elementwise op for numpy.{name} (it has: "
                f"{', '.join(sorted(_ELEMENTWISE))})"
            )
        return f(*inputs, **kwargs)
    if method == "reduce":
        red = {
            "add": "sum",
            "multiply": "prod",
            "maximum": "max",
            "minimum": "min",
            "logical_and": "all",
            "logical_or": "any",
        }.get(name)
        if red is None:
            raise NotImplementedError(f"numpy.{name}.reduce is not supported by ndstream")
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        dtype = kwargs.pop("dtype", None)
        _ufunc_kwargs(kwargs)
        x = _as_array(inputs[0])
        if red in ("sum", "prod"):
            return x._reduce(red, axis, keepdims, dtype=dtype)
        return x._reduce(red, axis, keepdims)
    if method == "accumulate" and name in ("add", "multiply"):
        axis = kwargs.pop("axis", 0)
        dtype = kwargs.pop("dtype", None)
        _ufunc_kwargs(kwargs)
        return _scan(
            "cumsum" if name == "add" else "cumprod", _as_array(inputs[0]), axis, dtype, None
        )
    raise NotImplementedError(f"numpy.{name}.{method} is not supported by ndstream")


# ---- reductions as functions --------------------------------------------
def _reduction(name: str, has_dtype: bool, has_ddof: bool) -> Callable[..., Array]:
    def f(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        keepdims: bool = False,
        ddof: int = 0,
        split_every: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Array:
        if kwargs:
            raise TypeError(f"{name}: unexpected keyword arguments {sorted(kwargs)}")
        if dtype is not None and not has_dtype:
            raise TypeError(f"{name} takes no dtype")
        x = _as_array(a)
        return x._reduce(
            name, axis, keepdims, _ddof(ddof) if has_ddof else None, dtype=dtype, out=out
        )

    f.__name__ = name
    f.__doc__ = f"NumPy's ``{name}`` over the given axes, lazily."
    return f


def _reduction_noparam(name: str) -> Callable[..., Array]:
    def f(
        a: Any, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
    ) -> Array:
        return _as_array(a)._reduce(name, axis, keepdims, out=out)

    f.__name__ = name
    f.__doc__ = f"NumPy's ``{name}`` over the given axes, lazily."
    return f


sum = _reduction("sum", True, False)
prod = _reduction("prod", True, False)
mean = _reduction("mean", True, False)
nansum = _reduction("nansum", True, False)
nanprod = _reduction("nanprod", True, False)
nanmean = _reduction("nanmean", True, False)
std = _reduction("std", True, True)
var = _reduction("var", True, True)
nanstd = _reduction("nanstd", True, True)
nanvar = _reduction("nanvar", True, True)
min = _reduction_noparam("min")
max = _reduction_noparam("max")
amin = min
amax = max
nanmin = _reduction_noparam("nanmin")
nanmax = _reduction_noparam("nanmax")
any = _reduction_noparam("any")
all = _reduction_noparam("all")


def count_nonzero(a: Any, axis: Any = None, keepdims: bool = False) -> Array:
    """Number of nonzero elements over the given axes."""
    return _as_array(a)._reduce("count_nonzero", axis, keepdims)


def argmin(
    a: Any, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
) -> Array:
    """Index of the minimum along ``axis`` (flattened if None)."""
    return _arg("argmin", _as_array(a), axis, keepdims, out)


def argmax(
    a: Any, axis: Any = None, keepdims: bool = False, split_every: Any = None, out: Any = None
) -> Array:
    """Index of the maximum along ``axis`` (flattened if None)."""
    return _arg("argmax", _as_array(a), axis, keepdims, out)


def nanargmin(a: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Array:
    """Index of the minimum ignoring NaNs."""
    x = _as_array(a)
    if x.dtype.kind != "f":
        return argmin(x, axis, keepdims)
    return argmin(where(isnan(x), math.inf, x), axis, keepdims)


def nanargmax(a: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Array:
    """Index of the maximum ignoring NaNs."""
    x = _as_array(a)
    if x.dtype.kind != "f":
        return argmax(x, axis, keepdims)
    return argmax(where(isnan(x), -math.inf, x), axis, keepdims)


def cumsum(
    x: Any, axis: Any = None, dtype: Any = None, out: Any = None, method: str = "sequential"
) -> Array:
    """Cumulative sum along ``axis`` (flattened if None)."""
    return _scan("cumsum", _as_array(x), axis, dtype, out)


def cumprod(
    x: Any, axis: Any = None, dtype: Any = None, out: Any = None, method: str = "sequential"
) -> Array:
    """Cumulative product along ``axis`` (flattened if None)."""
    return _scan("cumprod", _as_array(x), axis, dtype, out)


def nancumsum(
    x: Any, axis: Any = None, dtype: Any = None, out: Any = None, method: str = "sequential"
) -> Array:
    """Cumulative sum along ``axis``, NaN counted as zero."""
    return _scan("nancumsum", _as_array(x), axis, dtype, out)


def nancumprod(
    x: Any, axis: Any = None, dtype: Any = None, out: Any = None, method: str = "sequential"
) -> Array:
    """Cumulative product along ``axis``, NaN counted as one."""
    return _scan("nancumprod", _as_array(x), axis, dtype, out)


def average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, keepdims: bool = False
) -> Any:
    """Weighted average (NumPy's ``average``)."""
    a = _as_array(a)
    if weights is None:
        avg = a.mean(axis=axis, keepdims=keepdims)
        n = a.size / avg.size if avg.size else 0
        return (avg, full(avg.shape, n, avg.dtype)) if returned else avg
    w = _as_array(weights)
    if w.shape != a.shape:
        if axis is None or w.ndim != 1:
            raise ValueError("weights must have the array's shape, or be 1-d along axis")
        d = _axis(axis, a.ndim)
        idx = [None] * a.ndim
        idx[d] = slice(None)
        w = w[tuple(idx)]
    scl = (w * ones_like(a)).sum(axis=axis, keepdims=keepdims)
    avg = (a * w).sum(axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


# ---- NumPy's __array_function__ ------------------------------------------
def _array_function(func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    import ndstream

    name = func.__name__
    mod = getattr(func, "__module__", "") or ""
    ours = None
    if (
        mod.startswith("numpy.random")
        or mod.startswith("numpy.linalg")
        or mod.startswith("numpy.fft")
    ):
        ours = None
    else:
        ours = getattr(ndstream, name, None) if name in _ARRAY_FUNCTIONS else None
    if ours is None:
        raise NotImplementedError(
            f"ndstream has no lazy version of numpy.{name}: compute the array first "
            f"(np.{name}(np.asarray(x), ...)) or use ndstream.map_blocks"
        )
    return ours(*args, **kwargs)


_ARRAY_FUNCTIONS = frozenset(
    """sum prod mean std var min max amin amax any all argmin argmax nansum nanprod nanmean
    nanstd nanvar nanmin nanmax nanargmin nanargmax cumsum cumprod nancumsum nancumprod
    count_nonzero average stack concatenate vstack hstack dstack where clip triu tril round
    around reshape ravel transpose swapaxes moveaxis squeeze expand_dims atleast_1d
    atleast_2d atleast_3d broadcast_to nonzero isclose allclose zeros_like ones_like
    full_like empty_like shape ndim size result_type isin dot outer matmul""".split()
)


def shape(a: Any) -> tuple:
    """The shape of ``a``."""
    return _as_array(a).shape


def ndim(a: Any) -> int:
    """The number of dimensions of ``a``."""
    return _as_array(a).ndim


def size(a: Any, axis: int | None = None) -> Any:
    """The number of elements of ``a`` (along ``axis``)."""
    a = _as_array(a)
    return a.size if axis is None else a.shape[_axis(axis, a.ndim)]


def result_type(*arrays_and_dtypes: Any) -> np.dtype:
    """NumPy's ``result_type`` over ndstream arrays and dtypes."""
    return np.result_type(*[a.dtype if isinstance(a, Array) else a for a in arrays_and_dtypes])


def isclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Array:
    """Elementwise ``|a - b| <= atol + rtol * |b|`` (NumPy's ``isclose``)."""
    a, b = _as_array(a), _as_array(b)
    af = a.astype("float64") if a.dtype.kind != "f" else a
    bf = b.astype("float64") if b.dtype.kind != "f" else b
    close = abs(af - bf) <= atol + rtol * abs(bf)
    close = close | (af == bf)
    if equal_nan:
        close = close | (isnan(af) & isnan(bf))
    return close


def allclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Array:
    """Whether all elements are close (a 0-d lazy bool, as Dask)."""
    return isclose(a, b, rtol, atol, equal_nan).all()


def isin(
    element: Any, test_elements: Any, assume_unique: bool = False, invert: bool = False
) -> Array:
    """Elementwise membership in ``test_elements`` (a small, in-memory set)."""
    x = _as_array(element)
    values = np.unique(np.asarray(test_elements))
    r = zeros(x.shape, bool, x.chunks)
    for v in values:
        r = r | (x == v.item())
    return ~r if invert else r


# ---- computing -----------------------------------------------------------
def _collect(obj: Any, found: list) -> Any:
    """Replace arrays in (nested lists/tuples/dicts of) ``obj`` by placeholders."""
    if isinstance(obj, Array):
        found.append(obj)
        return _Slot(len(found) - 1)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_collect(o, found) for o in obj)
    if isinstance(obj, dict):
        return {k: _collect(v, found) for k, v in obj.items()}
    return obj


class _Slot:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


def _fill(obj: Any, values: list) -> Any:
    if isinstance(obj, _Slot):
        return values[obj.i]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill(o, values) for o in obj)
    if isinstance(obj, dict):
        return {k: _fill(v, values) for k, v in obj.items()}
    return obj


def _result(a: np.ndarray) -> Any:
    return a[()] if a.ndim == 0 else a


def compute(
    *args: Any,
    traverse: bool = True,
    optimize_graph: bool = True,
    scheduler: Any = None,
    memory: Any = None,
    threads: Any = None,
    **kwargs: Any,
) -> tuple:
    """Compute several arrays in one pass over their shared inputs.

    Returns a tuple of NumPy arrays (NumPy scalars for 0-d arrays), with
    anything that is not an array passed through, as ``dask.compute``.
    ``scheduler`` (or ``ndstream.config``'s): ``None``, ``"threads"`` or
    ``"sync"`` compute in this process; a ``dask.distributed`` ``Client``,
    or ``"distributed"`` for the active one, on its workers (see
    :mod:`ndstream.distributed`), with the same bits.

    >>> import ndstream as da
    >>> x = da.arange(10, chunks=3)
    >>> da.compute(x.sum(), x.max())
    (np.int64(45), np.int64(9))
    """
    if kwargs:
        raise TypeError(f"compute: unexpected keyword arguments {sorted(kwargs)}")
    found: list = []
    shells = [(_collect(a, found) if traverse else a) for a in args]
    if not traverse:
        found = [a for a in args if isinstance(a, Array)]
        shells = [(_Slot(found.index(a)) if isinstance(a, Array) else a) for a in args]
    m, t = config.resolve(memory, threads)
    # The same array object given twice is computed once.
    unique: list = []
    where_: list = []
    ids: dict = {}
    for a in found:
        k = id(a._a)
        if k not in ids:
            ids[k] = len(unique)
            unique.append(a._a)
        where_.append(ids[k])
    from . import distributed

    client = distributed.get_client(scheduler)
    if client is not None and unique:
        values = distributed.compute(client, unique, memory=m)
    else:
        values = _ndstream.compute(unique, m, t, _progress()) if unique else []
    results = [_result(values[i]) for i in where_]
    return tuple(_fill(s, results) for s in shells)


def persist(*args: Any, **kwargs: Any) -> tuple:
    """Each array computed into memory, as arrays with the same chunks."""
    values = compute(*args, **kwargs)
    out = []
    for a, v in zip(args, values):
        if isinstance(a, Array):
            out.append(from_array(np.asarray(v), chunks=a.chunks if a._a.known_len else "auto"))
        else:
            out.append(v)
    return tuple(out)


def map_blocks(
    func: Callable,
    *args: Any,
    name: str | None = None,
    token: Any = None,
    dtype: Any = None,
    chunks: Any = None,
    drop_axis: Any = None,
    new_axis: Any = None,
    enforce_ndim: bool = False,
    meta: Any = None,
    **kwargs: Any,
) -> Array:
    """``func`` applied to each block of the array arguments (rechunked like
    the first), as Dask's ``map_blocks``; keyword arguments and non-array
    positional arguments are passed through to ``func``.

    Each call returns its output block: of its input block's shape, or as
    ``chunks``, ``drop_axis`` and ``new_axis`` declare, with Dask's rules:
    ``drop_axis`` axes are not in the output, and each call gets them whole
    (their blocks concatenated); ``new_axis`` inserts output axes of one
    block (of length 1 unless ``chunks`` says otherwise); ``chunks`` is the
    output's block sizes, a tuple of tuples or one size per axis (each block
    along the axis that size), with the input's number of blocks along every
    kept axis. ``dtype`` is the result's (inferred by calling ``func`` on a
    small block when not given).

    >>> import numpy as np, ndstream as da
    >>> x = da.arange(6, chunks=2)
    >>> x.map_blocks(lambda b: b * 10, dtype=x.dtype).compute()
    array([ 0, 10, 20, 30, 40, 50])
    """
    if not callable(func):
        raise TypeError(f"map_blocks: func {func!r} is not callable")
    arrays: list = []
    layout: list = []
    for a in args:
        if isinstance(a, Array):
            layout.append(("a", len(arrays)))
            arrays.append(a)
        elif isinstance(a, np.ndarray) and a.ndim > 0:
            layout.append(("a", len(arrays)))
            arrays.append(from_array(a))
        else:
            layout.append(("v", a))
    if not arrays:
        raise ValueError("map_blocks needs at least one array argument")
    shape0 = arrays[0].shape
    for a in arrays[1:]:
        if a.shape != shape0:
            raise ValueError(
                f"map_blocks: arrays of shapes {shape0} and {a.shape}; ndstream's map_blocks "
                "takes arrays of one shape"
            )
    out_chunks, axes, dropped = _block_map(arrays[0], chunks, drop_axis, new_axis)

    def call(*blocks: np.ndarray) -> np.ndarray:
        full_args = [blocks[v] if kind == "a" else v for kind, v in layout]
        return func(*full_args, **kwargs)

    if dtype is None:
        if meta is not None and hasattr(meta, "dtype"):
            dtype = meta.dtype
        else:
            probe = [np.ones((1,) * a.ndim, dtype=a.dtype) for a in arrays]
            try:
                dtype = np.asarray(call(*probe)).dtype
            except Exception:
                dtype = arrays[0].dtype
    dt = _dtype(dtype)
    label = name or getattr(func, "__name__", "map_blocks")
    xs = [a._a for a in arrays]
    if out_chunks is None:
        return Array(_ndstream.map_blocks(call, xs, dt.name, str(label)))
    return Array(_ndstream.map_blocks(call, xs, dt.name, str(label), out_chunks, axes, dropped))


def _axis_list(v: Any, ndim: int, what: str) -> list:
    """Axes as a sorted list of non-negative ints (Dask accepts an int or a sequence)."""
    if v is None:
        return []
    items = [v] if isinstance(v, (numbers.Integral, np.integer)) else list(v)
    out = []
    for a in items:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"map_blocks: {what} {a} is out of range for {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"map_blocks: {what} {items} repeats an axis")
    return sorted(out)


def _block_map(x: Array, chunks: Any, drop_axis: Any, new_axis: Any) -> tuple:
    """(output chunks, output axis -> input axis, dropped input axes), or
    (None, None, None) when the output keeps the input's blocks."""
    dropped = _axis_list(drop_axis, x.ndim, "drop_axis")
    kept = [d for d in range(x.ndim) if d not in dropped]
    if new_axis is None and chunks is not None and len(chunks) > len(kept):
        # Dask: extra chunk entries are new leading axes.
        new_axis = list(range(len(chunks) - len(kept)))
    n_out = len(kept) + len(
        [new_axis] if isinstance(new_axis, (numbers.Integral, np.integer)) else (new_axis or [])
    )
    new = _axis_list(new_axis, n_out, "new_axis")
    it = iter(kept)
    axes = [None if o in new else next(it) for o in range(n_out)]
    if chunks is None:
        if not dropped and not new:
            return None, None, None
        out = [(1,) if d is None else x.chunks[d] for d in axes]
    else:
        if len(chunks) != n_out:
            raise ValueError(f"Provided chunks have {len(chunks)} dims; expected {n_out} dims")
        out = []
        for c, d in zip(chunks, axes):
            nblocks = 1 if d is None else x.numblocks[d]
            if isinstance(c, (numbers.Integral, np.integer)):
                out.append((int(c),) * nblocks)
            else:
                c = tuple(int(v) for v in c)
                if len(c) != nblocks:
                    raise ValueError(
                        f"Dimension {len(out)} has {nblocks} blocks, chunks specified with "
                        f"{len(c)} blocks"
                    )
                out.append(c)
        if not dropped and not new and tuple(out) == tuple(x.chunks):
            return None, None, None
    return [list(c) for c in out], axes, dropped


def blockwise(func: Callable, out_ind: Any, *args: Any, dtype: Any = None, **kwargs: Any) -> Array:
    """Dask's ``blockwise`` for the elementwise case (every array indexed like the output)."""
    arrays = args[0::2]
    inds = args[1::2]
    for a, ind in zip(arrays, inds):
        if isinstance(a, Array) and tuple(ind) != tuple(out_ind):
            raise NotImplementedError(
                "ndstream's blockwise needs every array indexed like the output"
            )
    return map_blocks(func, *arrays, dtype=dtype, **kwargs)


# ---- storing -------------------------------------------------------------
def _write_mode(overwrite: bool, resume: bool) -> str:
    if overwrite and resume:
        raise ValueError("overwrite and resume are exclusive")
    return "overwrite" if overwrite else ("resume" if resume else "create")


def _store_path(
    x: Array,
    path: str,
    mode: str,
    chunks: Any = None,
    codec: Any = None,
    zarr_format: Any = None,
    memory: Any = None,
    threads: Any = None,
    attributes: Any = None,
) -> dict:
    m, t = config.resolve(memory, threads)
    if chunks is not None:
        chunks = [int(c) for c in chunks]
    import json

    attrs = json.dumps(attributes) if attributes else None
    return _ndstream.store(
        x._a, path, chunks, codec, mode, int(zarr_format or 3), m, t, _progress(), attrs
    )


def to_zarr(
    arr: Any,
    url: Any,
    component: str | None = None,
    storage_options: Any = None,
    overwrite: bool = False,
    region: Any = None,
    compute: bool = True,
    return_stored: bool = False,
    *,
    resume: bool = False,
    codec: str | None = None,
    zarr_format: int = 3,
    memory: Any = None,
    threads: Any = None,
    chunks: Any = None,
    attributes: Any = None,
    scheduler: Any = None,
    **kwargs: Any,
) -> Any:
    """Write ``arr`` to a Zarr store, streaming chunk by chunk.

    ``url`` is a directory path or a store URL (``s3://``, ``gs://``,
    ``az://``; ``component`` an array path inside it), or a zarr ``Array``
    to write into. ``overwrite=True`` replaces an existing Zarr array or
    group (on disk swapped in only when the new one is complete; in object
    storage, which has no rename, removed first and marked incomplete until
    the new one is); ``resume=True``
    (ndstream) keeps the chunks an interrupted write already stored.
    ``codec`` is ndstream's (``"zstd:3"``, ``"gzip:6"``, ``"none"``);
    ``zarr_format`` 2 or 3. With a ``dask.distributed`` ``Client`` as
    ``scheduler`` (or ``"distributed"``, or set in ``ndstream.config``) the
    chunks are written by the cluster's workers (see
    :mod:`ndstream.distributed`; ``overwrite=True`` there swaps the new
    array in on disk only once the job has finished); an interrupted
    write of a new array, here or on the cluster, leaves it marked
    incomplete, and ``resume=True`` finishes it, here or on the cluster
    (whose workers write the chunks it lacks).
    """
    arr = _as_array(arr)
    if kwargs:
        raise TypeError(f"to_zarr: unexpected keyword arguments {sorted(kwargs)}")
    if storage_options:
        raise NotImplementedError(
            "storage_options: ndstream takes credentials and endpoints from the environment "
            "(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), not from arguments"
        )
    if region is not None:
        raise NotImplementedError("region= is not supported: write a whole array")
    if not compute:
        raise NotImplementedError("compute=False is not supported: to_zarr writes at once")
    if not isinstance(url, (str, os.PathLike)):
        store([arr], [url])
        return arr if return_stored else None
    path = os.fspath(url)
    if component:
        path = f"{path.rstrip('/')}/{component.strip('/')}"
    from . import distributed

    client = distributed.get_client(scheduler)
    if client is not None:
        m, _ = config.resolve(memory, threads)
        distributed.store(
            client,
            arr._a,
            path,
            chunks=chunks,
            codec=codec,
            zarr_format=zarr_format,
            attributes=attributes,
            memory=m,
            store_root=os.fspath(url),
            mode=_write_mode(overwrite, resume),
        )
        return from_zarr(path) if return_stored else None
    _store_path(
        arr,
        path,
        _write_mode(overwrite, resume),
        chunks=chunks,
        codec=codec,
        zarr_format=zarr_format,
        memory=memory,
        threads=threads,
        attributes=attributes,
    )
    if return_stored:
        return from_zarr(path)
    return None


def to_hdf5(
    filename: Any,
    *args: Any,
    chunks: Any = True,
    overwrite: bool = False,
    resume: bool = False,
    codec: str | None = None,
    memory: Any = None,
    threads: Any = None,
    scheduler: Any = None,
    **kwargs: Any,
) -> None:
    """Write arrays to HDF5 datasets: ``to_hdf5('out.h5', '/x', x)`` or
    ``to_hdf5('out.h5', {'/x': x, '/y': y})``.

    Other datasets in an existing file are kept; an existing dataset is
    refused unless ``overwrite=True`` (which touches only that dataset).
    ``compression='gzip'`` as in h5py, or ndstream's ``codec``. With a
    ``dask.distributed`` ``Client`` as ``scheduler`` (or set in
    ``ndstream.config``) the cluster's workers compute the chunks into a
    Zarr array beside the file, and the last task writes the dataset from
    it (one process writes an HDF5 file); the file must be on a file
    system the workers share.
    """
    if len(args) == 1 and isinstance(args[0], dict):
        data = args[0]
    elif len(args) == 2 and isinstance(args[0], str):
        data = {args[0]: args[1]}
    else:
        raise ValueError("Please provide {'/data/path': array} dictionary")
    comp = kwargs.pop("compression", None)
    level = kwargs.pop("compression_opts", None)
    kwargs.pop("shuffle", None)
    if kwargs:
        raise TypeError(f"to_hdf5: unexpected keyword arguments {sorted(kwargs)}")
    if comp is not None:
        if comp != "gzip":
            raise NotImplementedError(f"compression {comp!r}: ndstream writes gzip only")
        codec = f"gzip:{level if level is not None else 4}"
    filename = os.fspath(filename)
    from . import distributed

    client = distributed.get_client(scheduler)
    for datapath, x in data.items():
        x = _as_array(x)
        dp = datapath if datapath.startswith("/") else "/" + datapath
        out_chunks = None
        if isinstance(chunks, tuple):
            out_chunks = chunks
        elif chunks is True:
            out_chunks = x.chunksize
        if client is not None:
            m, _ = config.resolve(memory, threads)
            distributed.store(
                client,
                x._a,
                f"{filename}:{dp}",
                chunks=out_chunks,
                codec=codec,
                memory=m,
                store_root=filename,
                mode=_write_mode(overwrite, resume),
            )
            continue
        _store_path(
            x,
            f"{filename}:{dp}",
            _write_mode(overwrite, resume),
            chunks=out_chunks,
            codec=codec,
            memory=memory,
            threads=threads,
        )


def to_npy(
    x: Any,
    filename: Any,
    overwrite: bool = False,
    resume: bool = False,
    memory: Any = None,
    threads: Any = None,
) -> None:
    """Write ``x`` to a ``.npy`` file (ndstream), streaming."""
    _store_path(
        _as_array(x),
        os.fspath(filename),
        _write_mode(overwrite, resume),
        memory=memory,
        threads=threads,
    )


def _regions(x: Array, target_bytes: int) -> list:
    """Regions of ``x`` that cover it, each whole chunks, about
    ``target_bytes`` each, in C order."""
    bounds = []
    for sizes in x.chunks:
        b = [0]
        for s in sizes:
            b.append(b[-1] + s)
        bounds.append(b)
    if not x.ndim:
        return [()]
    # group whole chunks along the first axis
    row_bytes = x.itemsize * math.prod(x.shape[1:]) if x.ndim > 1 else x.itemsize
    out = []
    b0 = bounds[0]
    start = 0
    while start < len(b0) - 1:
        stop = start + 1
        while stop < len(b0) - 1 and (b0[stop + 1] - b0[start]) * row_bytes <= target_bytes:
            stop += 1
        if (b0[stop] - b0[start]) * row_bytes > target_bytes and x.ndim > 1:
            # one slab of chunk rows is too large: split it along the other axes by chunk
            import itertools

            rest = [range(len(b) - 1) for b in bounds[1:]]
            for idx in itertools.product(*rest):
                region = (
                    slice(b0[start], b0[stop]),
                    *tuple(
                        slice(bounds[d + 1][i], bounds[d + 1][i + 1]) for d, i in enumerate(idx)
                    ),
                )
                out.append(region)
        else:
            out.append((slice(b0[start], b0[stop]),) + (slice(None),) * (x.ndim - 1))
        start = stop
    return out


def store(
    sources: Any,
    targets: Any,
    lock: Any = True,
    regions: Any = None,
    compute: bool = True,
    return_stored: bool = False,
    memory: Any = None,
    threads: Any = None,
    scheduler: Any = None,
    **kwargs: Any,
) -> Any:
    """Write arrays into targets, as Dask's ``store``.

    A zarr-python array on local disk (whole, no ``regions``) is written by
    ndstream's own Zarr writer: every chunk, in parallel, through the
    array's own codecs, keeping its metadata and attributes; the source is
    cast to the target's dtype first, as assignment would. Any other target
    with NumPy ``__setitem__`` (a NumPy array, an h5py dataset, which h5py
    holds open, a zarr array elsewhere, a memory map) gets slabs of whole
    chunks, computed within the memory budget and assigned region by
    region. Every pair is checked (count, shapes, known lengths) before
    anything is computed or written.

    ``scheduler`` (or ``ndstream.config``'s): with a ``dask.distributed``
    ``Client``, or ``"distributed"`` for the active one, each source is
    computed on the cluster's workers into a temporary Zarr array (in
    ``ndstream.config`` ``temporary_directory``, which the workers must
    see), then written into its target from there by this process, which
    holds the targets. To have the workers write the output themselves,
    use :func:`to_zarr` or :func:`to_hdf5` with ``scheduler=``.
    """
    if isinstance(sources, Array):
        sources = [sources]
        targets = [targets]
    sources = [_as_array(s) for s in sources]
    targets = list(targets)
    if len(sources) != len(targets):
        raise ValueError(
            f"Different number of sources [{len(sources)}] and targets [{len(targets)}]"
        )
    if regions is not None:
        regions = list(regions) if isinstance(regions, (list,)) else [regions] * len(sources)
    if not compute:
        raise NotImplementedError("compute=False is not supported: store writes at once")
    m, t = config.resolve(memory, threads)
    budget = m if m is not None else _ndstream.default_memory()
    for n, (src, tgt) in enumerate(zip(sources, targets)):
        if not src._a.known_len:
            raise ValueError("store needs arrays of known length: compute the masked array")
        tshape = tuple(getattr(tgt, "shape", src.shape))
        region = regions[n] if regions is not None else None
        if region is None and tshape != src.shape:
            raise ValueError(f"store: source shape {src.shape} and target shape {tshape} differ")
        if region is not None and hasattr(tgt, "shape"):
            rshape = _region_shape(region, tshape)
            if rshape != src.shape:
                raise ValueError(
                    f"store: source shape {src.shape} and the target's region {region!r} "
                    f"(shape {rshape}) differ"
                )
    from . import distributed

    client = distributed.get_client(scheduler)
    for n, (src, tgt) in enumerate(zip(sources, targets)):
        region = regions[n] if regions is not None else None
        if client is None:
            _store_one(src, tgt, region, m, t, budget)
            continue
        with distributed.computed(client, src._a, m) as path:
            there = Array(_ndstream.open(path))
            _store_one(there, tgt, region, m, t, budget)
    if return_stored:
        return tuple(sources)
    return None


def _store_one(src: Array, tgt: Any, region: Any, m: Any, t: Any, budget: int) -> None:
    """Write ``src`` into ``tgt`` (at ``region``, if given) in this process
    (see :func:`store`)."""
    path = _native_zarr_target(src, tgt) if region is None else None
    if path is not None:
        dt = np.dtype(tgt.dtype)
        _ndstream.store(
            (src if dt == src.dtype else src.astype(dt))._a,
            path,
            None,
            None,
            "into",
            3,
            m,
            t,
            _progress(),
            None,
        )
        return
    for r in _regions(src, builtins.max(budget // 4, 1 << 20)):
        # Here, whatever the configured scheduler: the cluster's part is done.
        block = np.asarray(src[r].compute(memory=m, threads=t, scheduler="threads"))
        if region is not None:
            r = _offset(region, r, src.shape, tuple(tgt.shape) if hasattr(tgt, "shape") else None)
        tgt[r] = block


def _native_zarr_target(src: Array, tgt: Any) -> str | None:
    """The path of a zarr-python array ndstream can write itself, else None.

    It must be on local disk, of the source's shape, of a dtype ndstream
    has, and readable by ndstream (so its codecs are ones ndstream's Zarr
    library encodes too)."""
    path = _zarr_location(tgt)
    if path is None or tuple(tgt.shape) != src.shape:
        return None
    try:
        if np.dtype(tgt.dtype).name not in _SUPPORTED:
            return None
        _ndstream.open(path)
    except (TypeError, ValueError, OSError):
        return None
    return path


def _region_axes(region: Any, tshape: tuple | None) -> list:
    """``region`` (Dask's: a slice, an integer, or a tuple of them) per
    target axis, as ``(start, step, length)`` for a slice and the index
    (``int``) for an integer, which drops its axis; ``tshape`` (the
    target's shape, if it has one) resolves open and negative bounds."""
    if not isinstance(region, tuple):
        region = (region,)
    if tshape is not None and len(region) > len(tshape):
        raise ValueError(f"store: region {region!r} has more axes than the target {tshape}")
    axes: list = []
    for d, base in enumerate(region):
        n = tshape[d] if tshape is not None else None
        if isinstance(base, slice):
            if n is not None:
                start, stop, step = base.indices(n)
                axes.append((start, step, len(range(start, stop, step))))
            else:
                if base.step is not None and base.step < 0:
                    raise ValueError("store: a negative step in a region needs a target shape")
                axes.append((base.start or 0, base.step or 1, None))
        elif isinstance(base, (numbers.Integral, np.integer)) and not isinstance(base, bool):
            i = int(base)
            if n is not None and not -n <= i < n:
                raise IndexError(f"store: region index {i} is out of bounds for size {n}")
            axes.append(i + n if (n is not None and i < 0) else i)
        else:
            raise TypeError(f"store: a region holds slices and integers, not {base!r}")
    return axes


def _region_shape(region: Any, tshape: tuple) -> tuple:
    """The shape of ``target[region]``."""
    axes = _region_axes(region, tshape)
    kept = tuple(a[2] for a in axes if isinstance(a, tuple))
    return kept + tuple(tshape[len(axes) :])


def _offset(region: Any, r: tuple, sshape: tuple, tshape: tuple | None) -> tuple:
    """The part of the target that part ``r`` (slices, step 1) of a source
    of shape ``sshape`` written into ``region`` of it lands in."""
    out: list = []
    parts = iter(slice(*p.indices(n)) for p, n in zip(r, sshape))
    for ax in _region_axes(region, tshape):
        if not isinstance(ax, tuple):
            out.append(ax)
            continue
        start, step, _ = ax
        s = next(parts)
        first = start + s.start * step
        last = start + (s.stop - 1) * step
        stop = last + (1 if step > 0 else -1)
        out.append(slice(first, stop if stop >= 0 else None, step))
    out.extend(parts)
    return tuple(out)


# elementwise functions as module attributes (sqrt, exp, maximum, add, ...)
def _export_elementwise(ns: dict) -> list:
    names = []
    for n, f in _ELEMENTWISE.items():
        if n not in ns:
            ns[n] = f
            names.append(n)
    return names


_ELEMENTWISE_NAMES = _export_elementwise(globals())
abs = _ELEMENTWISE["absolute"]
isnan = _ELEMENTWISE["isnan"]

__all__ = [
    "Array",
    "abs",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "arange",
    "argmax",
    "argmin",
    "argtopk",
    "around",
    "array",
    "asanyarray",
    "asarray",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "average",
    "blockwise",
    "broadcast_to",
    "clip",
    "compute",
    "concatenate",
    "count_nonzero",
    "cumprod",
    "cumsum",
    "dot",
    "dstack",
    "empty",
    "empty_like",
    "expand_dims",
    "from_array",
    "from_zarr",
    "full",
    "full_like",
    "hstack",
    "isclose",
    "isin",
    "isnan",
    "linspace",
    "map_blocks",
    "matmul",
    "max",
    "mean",
    "min",
    "moveaxis",
    "nanargmax",
    "nanargmin",
    "nancumprod",
    "nancumsum",
    "nanmax",
    "nanmean",
    "nanmin",
    "nanprod",
    "nanstd",
    "nansum",
    "nanvar",
    "ndim",
    "nonzero",
    "ones",
    "ones_like",
    "open",
    "open_many",
    "outer",
    "persist",
    "prod",
    "ravel",
    "rechunk",
    "reshape",
    "result_type",
    "round",
    "shape",
    "size",
    "squeeze",
    "stack",
    "std",
    "store",
    "sum",
    "swapaxes",
    "to_hdf5",
    "to_npy",
    "to_zarr",
    "topk",
    "transpose",
    "tril",
    "triu",
    "var",
    "vstack",
    "where",
    "zeros",
    "zeros_like",
]
__all__ += _ELEMENTWISE_NAMES
