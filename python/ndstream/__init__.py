"""ndstream: chunked n-dimensional arrays larger than memory.

``import ndstream as da`` gives Dask Array's API on ndstream's Rust engine:
lazy arrays in chunks, computed in one streaming pass within a memory
budget you set, with no Python per chunk.

>>> import ndstream as da
>>> x = da.random.normal(10, 0.1, size=(20000, 20000), chunks=(1000, 1000))
>>> y = x.mean(axis=0)[::100]        # generates only the columns it needs
>>> y.shape
(200,)
>>> bool(abs(float(y.compute().mean()) - 10) < 0.01)
True

Settings: ``ndstream.config.set(memory="256MiB", threads=2)`` (globally or
as a context manager), or per call ``x.compute(memory=..., threads=...)``.
A computation that cannot fit its budget raises
:class:`MemoryBudgetError` before anything is read.
"""

from __future__ import annotations

from . import (
    config,
    diagnostics,
    random,
)
from ._ndstream import __version__
from .core import *  # noqa: F403
from .core import AxisError, MemoryBudgetError
from .core import __all__ as _core_all

newaxis = None

__all__ = [
    "AxisError",
    "MemoryBudgetError",
    "__version__",
    "config",
    "diagnostics",
    "newaxis",
    "random",
]
__all__ += _core_all
