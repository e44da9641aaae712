"""Settings for computations, like ``dask.config.set``.

>>> import ndstream
>>> with ndstream.config.set(memory="256MiB", threads=2):
...     ndstream.config.get("memory")
268435456
>>> ndstream.config.get("threads") is None or ndstream.config.get("threads") >= 1
True

``memory`` is the hard memory budget of a computation (bytes, or a string
such as ``"256MiB"`` or ``"1.5GB"``); a plan that cannot fit is refused
with :class:`ndstream.MemoryBudgetError` before anything is read.
``threads`` is the number of worker threads (default: all cores). Set
globally with ``ndstream.config.set(...)``, for a block with ``with
ndstream.config.set(...):``, or per call with ``x.compute(memory=...,
threads=...)``.

``scheduler`` picks where jobs run, as in Dask: ``None``, ``"threads"``
or ``"sync"`` run them in this process; ``"distributed"`` runs them on
the active ``dask.distributed`` ``Client`` (see
:mod:`ndstream.distributed`), as does a ``Client`` given directly.
``temporary_directory`` is where a distributed ``compute`` keeps its
plan and result while the job runs (default: the system's temporary
directory); on a cluster of several machines it must be a file system
they all see, or a bucket prefix (``"s3://bucket/scratch"``).
"""

from __future__ import annotations

import threading
from typing import Any

from . import _ndstream

__all__ = ["get", "refresh", "set"]

_KEYS = ("memory", "threads", "scheduler", "temporary_directory")
_global: dict[str, Any] = {k: None for k in _KEYS}

#: Scheduler names that mean "in this process".
LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded")
_lock = threading.Lock()


def _memory(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("memory must be a byte count or a size string such as '256MiB'")
    if isinstance(value, str):
        return _ndstream.parse_bytes(value)
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    raise ValueError(f"memory must be a positive byte count or a size string, not {value!r}")


def _threads(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"threads must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"threads must be at least 1, not {value}")
    return value


def _scheduler(value: Any) -> Any:
    if value is None or value == "distributed" or value in LOCAL_SCHEDULERS:
        return value
    if isinstance(value, str):
        raise ValueError(
            f"scheduler must be 'threads', 'sync', 'distributed' or a dask.distributed "
            f"Client, not {value!r}"
        )
    if not all(hasattr(value, m) for m in ("map", "gather", "scheduler_info")):
        raise TypeError(
            f"scheduler must be a name or a dask.distributed Client, not {type(value).__name__}"
        )
    return value


def _normalise(key: str, value: Any) -> Any:
    if key == "memory":
        return _memory(value)
    if key == "threads":
        return _threads(value)
    if key == "scheduler":
        return _scheduler(value)
    if key == "temporary_directory":
        return None if value is None else str(value)
    raise KeyError(f"ndstream has no setting {key!r} (settings: {', '.join(_KEYS)})")


class set:
    """Change settings globally, or for a ``with`` block.

    ``ndstream.config.set(memory="1GiB")`` changes them from now on;
    ``with ndstream.config.set(memory="1GiB"): ...`` only inside the block
    (restored on exit, even on an error).
    """

    def __init__(self, **settings: Any) -> None:
        new = {k: _normalise(k, v) for k, v in settings.items()}
        with _lock:
            self._old = {k: _global[k] for k in new}
            _global.update(new)

    def __enter__(self) -> set:
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _global.update(self._old)


def get(key: str, default: Any = None) -> Any:
    """The current value of a setting (``None``: the engine's default)."""
    if key not in _KEYS:
        raise KeyError(f"ndstream has no setting {key!r} (settings: {', '.join(_KEYS)})")
    value = _global[key]
    return default if value is None else value


def refresh() -> None:
    """Back to the defaults (all cores; a quarter of the machine's memory;
    jobs in this process)."""
    with _lock:
        _global.update({k: None for k in _KEYS})


def resolve(memory: Any = None, threads: Any = None) -> tuple[int | None, int | None]:
    """Per-call values over the current settings."""
    m = _memory(memory) if memory is not None else _global["memory"]
    t = _threads(threads) if threads is not None else _global["threads"]
    return m, t
