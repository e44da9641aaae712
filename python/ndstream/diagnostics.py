"""Progress reporting, like ``dask.diagnostics``.

>>> import ndstream as da
>>> from ndstream.diagnostics import ProgressBar
>>> with ProgressBar(out=None):
...     float(da.ones(1000, chunks=100).sum().compute())
1000.0
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, TextIO

__all__ = ["ProgressBar"]

_active: list[ProgressBar] = []
_lock = threading.Lock()


def callback() -> Callable[[int, int], None] | None:
    """The progress callable of the innermost active bar, if any."""
    with _lock:
        return _active[-1]._update if _active else None


class ProgressBar:
    """Show a text progress bar for every computation inside a ``with`` block.

    Parameters
    ----------
    minimum : float
        Seconds a computation must run before the bar is shown.
    width : int
        Width of the bar in characters.
    dt : float
        Seconds between updates (the engine reports at most every 50 ms).
    out : file object or None
        Where to draw (default: ``sys.stdout`` when the bar is made, as
        Dask); ``None`` draws nothing.

    Like Dask's, the bar reads ``[####      ] | 40% Completed | 1.2s`` and
    ends with a newline when the computation finishes.
    """

    def __init__(
        self,
        minimum: float = 0,
        width: int = 40,
        dt: float = 0.1,
        out: Any = "stdout",
    ) -> None:
        self.minimum = minimum
        self.width = width
        self.dt = dt
        self._out: TextIO | None = sys.stdout if out == "stdout" else out
        self._start: float | None = None
        self._last_draw = 0.0
        self._frac = 0.0
        self.last_duration = 0.0

    def __enter__(self) -> ProgressBar:
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            if self in _active:
                _active.remove(self)

    def register(self) -> None:
        """Show the bar for every computation from now on (Dask's ``register``)."""
        self.__enter__()

    def unregister(self) -> None:
        """Stop showing the bar."""
        self.__exit__()

    # called by ndstream with (chunks done, chunks total), at most every 50 ms
    def _update(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._start is None or (done == 0 and self._frac >= 1):
            self._start = now
            self._frac = 0.0
        frac = 1.0 if total == 0 else min(done / total, 1.0)
        elapsed = now - self._start
        self._frac = frac
        if elapsed < self.minimum and frac < 1:
            return
        if frac < 1 and now - self._last_draw < self.dt:
            return
        self._last_draw = now
        self._draw(frac, elapsed)
        if frac >= 1:
            self.last_duration = elapsed
            if self._out is not None:
                self._out.write("\n")
                self._out.flush()
            self._start = None

    def _draw(self, frac: float, elapsed: float) -> None:
        if self._out is None:
            return
        bar = "#" * int(self.width * frac)
        percent = int(100 * frac)
        msg = f"\r[{bar:<{self.width}}] | {percent:3d}% Completed | {_format_time(elapsed)}"
        self._out.write(msg)
        self._out.flush()


def _format_time(t: float) -> str:
    m, s = divmod(t, 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h:2.0f}hr {m:2.0f}min {s:4.1f}s"
    if m:
        return f"{m:2.0f}min {s:4.1f}s"
    return f"{s:4.1f}s"
