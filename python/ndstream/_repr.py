"""Text and HTML summaries of an array, in the style of Dask Array.

Everything here works from plain values (a name, a shape, a dtype, the
chunks), so it can be tested without building the extension module:

>>> text_repr("ones", (10, 7), "float64", (3, 4))
'ndstream.Array<ones, shape=(10, 7), dtype=float64, chunksize=(3, 4), chunktype=numpy.ndarray>'
>>> format_bytes(560), format_bytes(8_000_000)
('560 B', '7.63 MiB')

:func:`html_repr` gives the notebook view: a table (bytes, shape, number of
chunks, data type; for the whole array and for its largest chunk) next to an
SVG drawing of the chunk grid. The drawing follows Dask's geometry, so the
same chunks give the same picture; it is left out for 0-d arrays, zero-length
axes and unknown (NaN) lengths. Neither function raises for any shape.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["format_bytes", "html_repr", "svg_diagram", "text_repr"]

#: Rough size, in pixels, of the chunk diagram in :func:`html_repr`
#: (Dask's ``array.svg.size`` default).
DEFAULT_SVG_SIZE = 120

_TEXT_STYLE = 'font-size="1.0rem" font-weight="100" text-anchor="middle"'
_SVG_HEADER = '<svg width="{}" height="{}" style="stroke:rgb(0,0,0);stroke-width:1" >\n'
_SVG_FOOTER = "\n</svg>"
_LIGHT = "ECB172"  # few chunks: the grid lines are all drawn
_DARK = "8B4903"  # too many chunks to draw every line: a darker, solid block

# Size argument used for the 2-d/3-d pieces of a >3-d drawing. Dask passes
# no size down to them, so their line limit comes from its default of 200.
_ND_PIECE_SIZE = 200

Bounds = tuple[float, float, float, float]  # min_x, max_x, min_y, max_y


# --------------------------------------------------------------------------
# Scalars, tuples, dtypes and byte counts
# --------------------------------------------------------------------------


def _is_unknown(value: Any) -> bool:
    """Whether ``value`` is a NaN (an unknown length), without raising."""
    try:
        return bool(math.isnan(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _plain_number(value: Any) -> Any:
    """``value`` as a Python int (integral) or float, else unchanged."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    return value


def _format_number(value: Any) -> str:
    """One length as Dask prints it: ``7``, ``nan`` (never ``np.int64(7)``)."""
    value = _plain_number(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return str(value)


def _format_tuple(values: Any) -> str:
    """A shape-like tuple as Python prints it: ``()``, ``(5,)``, ``(10, 7)``."""
    try:
        items = [_format_number(v) for v in values]
    except TypeError:  # a bare scalar rather than a tuple
        items = [_format_number(values)]
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


def _as_dtype(dtype: Any) -> np.dtype | None:
    """``np.dtype(dtype)``, or ``None`` where numpy does not understand it."""
    try:
        return np.dtype(dtype)
    except Exception:
        return None


def _dtype_name(dtype: Any) -> str:
    """The dtype as Dask shows it (``float64``, ``int32``, ``<U5``)."""
    parsed = _as_dtype(dtype)
    return str(parsed) if parsed is not None else str(dtype)


def format_bytes(n: Any) -> str:
    """A byte count in binary units, as ``dask.utils.format_bytes`` does.

    Counts of at least 90% of a unit are shown in that unit with two
    decimals; smaller ones as whole bytes. ``None``, NaN or any other
    non-number gives ``unknown``.

    >>> [format_bytes(n) for n in (96, 1234, 12345678, 1234567890)]
    ['96 B', '1.21 kiB', '11.77 MiB', '1.15 GiB']
    """
    n = _plain_number(n)
    if not isinstance(n, int) and not (isinstance(n, float) and math.isfinite(n)):
        return "unknown"
    for prefix, k in (("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("ki", 2**10)):
        if n >= k * 0.9:
            try:
                return f"{n / k:.2f} {prefix}B"
            except OverflowError:  # an int beyond float range
                return "unknown"
    return f"{n} B"


# --------------------------------------------------------------------------
# Text repr
# --------------------------------------------------------------------------


def text_repr(
    name: str,
    shape: tuple,
    dtype: Any,
    chunksize: tuple,
    *,
    chunktype: str = "numpy.ndarray",
) -> str:
    """The one-line summary, Dask's ``repr`` with ``ndstream.Array`` in front.

    >>> text_repr("x", (float("nan"), 3), "int32", (float("nan"), 3))
    'ndstream.Array<x, shape=(nan, 3), dtype=int32, chunksize=(nan, 3), chunktype=numpy.ndarray>'
    """
    return (
        f"ndstream.Array<{name}, shape={_format_tuple(shape)}, dtype={_dtype_name(dtype)}, "
        f"chunksize={_format_tuple(chunksize)}, chunktype={chunktype}>"
    )


# --------------------------------------------------------------------------
# Chunk geometry
# --------------------------------------------------------------------------


def _normalize_chunks(chunks: Any) -> tuple[tuple[Any, ...], ...]:
    """``chunks`` as a tuple of tuples of plain numbers."""
    return tuple(tuple(_plain_number(c) for c in axis) for axis in chunks)


def _axis_max(axis: Sequence[Any]) -> Any:
    """The largest chunk along one axis: NaN if any is unknown, 0 if none."""
    if any(_is_unknown(c) for c in axis):
        return math.nan
    return max(axis, default=0)


def _chunksize(chunks: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """Shape of the largest chunk (per-axis maximum), like Dask's ``chunksize``."""
    return tuple(_axis_max(axis) for axis in chunks)


def _count_chunks(chunks: tuple[tuple[Any, ...], ...]) -> int:
    """Number of chunks: the product of the chunk counts per axis."""
    return math.prod(len(axis) for axis in chunks)


def _known_product(values: Iterable[Any]) -> int | None:
    """Product of lengths, or ``None`` if one is unknown or not a number."""
    total = 1
    for v in values:
        v = _plain_number(v)
        if not isinstance(v, int):
            return None
        total *= v
    return total


def _pluralize(count: int, noun: str) -> str:
    """``1 chunk``, ``8 chunks``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --------------------------------------------------------------------------
# SVG drawing (same geometry as dask.array.svg)
# --------------------------------------------------------------------------


def _ratio_response(ratio: float) -> float:
    """Compress a size ratio for display: exact up to e, then logarithmic, capped at 100."""
    if ratio < math.e:
        return ratio
    if ratio <= 100:
        return math.log(ratio + 12.4)  # continuous at e
    return math.log(100 + 12.4)


def _draw_sizes(shape: Sequence[int], size: float) -> tuple[float, ...]:
    """Length in pixels of each axis; the longest axis gets ``size``."""
    longest = max(shape)
    ratios = [_ratio_response(longest / max(0.1, d)) for d in shape]
    return tuple(size / r for r in ratios)


def _grid_points(chunks: Sequence[Sequence[int]], sizes: Sequence[float]) -> list[list[float]]:
    """Pixel position of every chunk boundary (including both ends) per axis."""
    points = []
    for axis, pixels in zip(chunks, sizes):
        bounds = [0]
        for c in axis:
            bounds.append(bounds[-1] + c)
        total = bounds[-1]
        points.append([b * pixels / total for b in bounds])
    return points


def _line_indices(n: int, max_n: int) -> Sequence[int]:
    """Which of ``n`` lines to draw: all, or ``max_n`` evenly spread ones."""
    if n > max_n:
        return [int(i) for i in np.linspace(0, n - 1, max_n, dtype="int")]
    return range(n)


def _svg_lines(
    x1: Sequence[float],
    y1: Sequence[float],
    x2: Sequence[float],
    y2: Sequence[float],
    max_n: int,
) -> list[str]:
    """``<line>`` elements for the segments; the first and last are drawn thicker."""
    lines = [
        f'  <line x1="{int(x1[i])}" y1="{int(y1[i])}" x2="{int(x2[i])}" y2="{int(y2[i])}" />'
        for i in _line_indices(len(x1), max_n)
    ]
    if lines:
        lines[0] = lines[0].replace(" /", ' style="stroke-width:2" /')
        lines[-1] = lines[-1].replace(" /", ' style="stroke-width:2" /')
    return lines


def _svg_grid(
    x: Sequence[float],
    y: Sequence[float],
    offset: tuple[float, float] = (0, 0),
    skew: tuple[int, int] = (0, 0),
    size: int = 200,
) -> tuple[list[str], Bounds]:
    """One face of the drawing: grid lines at chunk boundaries and a filled polygon.

    ``skew`` shears the face (``(1, 0)``: rows slope down along x; ``(0, 1)``:
    columns slope right along y), which is how the 3-d box gets its depth.
    At most ``size // 6`` lines are drawn per direction; past that the face
    is filled with a darker colour instead.
    """
    ox, oy = offset
    max_n = size // 6
    x_last, x_max, y_last, y_max = x[-1], max(x), y[-1], max(y)

    # Horizontal lines, one per y boundary.
    hx1 = [0.0 + ox + skew[1] * v if skew[1] else 0.0 + ox for v in y]
    hx2 = [x_last + ox + skew[1] * v if skew[1] else x_last + ox for v in y]
    hy1 = [v + oy for v in y]
    hy2 = [v + oy + x_max * skew[0] if skew[0] else v + oy for v in y]
    bounds = (
        min(*hx1, *hx2),
        max(*hx1, *hx2),
        min(*hy1, *hy2),
        max(*hy1, *hy2),
    )

    # Vertical lines, one per x boundary.
    vx1 = [v + ox for v in x]
    vx2 = [v + ox + skew[1] * y_max if skew[1] else v + ox for v in x]
    vy1 = [0.0 + oy + skew[0] * v if skew[0] else 0.0 + oy for v in x]
    vy2 = [y_last + oy + skew[0] * v if skew[0] else y_last + oy for v in x]

    color = _LIGHT if len(x) < max_n and len(y) < max_n else _DARK
    corners = f"{vx1[0]},{vy1[0]} {vx1[-1]},{vy1[-1]} {vx2[-1]},{vy2[-1]} {vx2[0]},{vy2[0]}"
    lines = [
        "",
        "  <!-- Horizontal lines -->",
        *_svg_lines(hx1, hy1, hx2, hy2, max_n),
        "",
        "  <!-- Vertical lines -->",
        *_svg_lines(vx1, vy1, vx2, vy2, max_n),
        "",
        "  <!-- Colored Rectangle -->",
        f'  <polygon points="{corners}" style="fill:#{color}A0;stroke-width:0"/>',
    ]
    return lines, bounds


def _text(x: float, y: float, label: Any, rotate: float | None = None) -> str:
    """A size label centred at (x, y), optionally rotated about that point."""
    start = f'  <text x="{x}" y="{y}" {_TEXT_STYLE}'
    if rotate is None:
        return f"{start} >{_format_number(label)}</text>"
    return f'{start} transform="rotate({rotate},{x},{y})">{_format_number(label)}</text>'


# A drawn piece: the SVG body (no <svg> header/footer), its width and height.
_Piece = tuple[str, int, int]


def _piece_2d(
    chunks: Sequence[Sequence[int]],
    size: int,
    sizes: Sequence[float] | None = None,
    offset: tuple[float, float] = (0, 0),
) -> _Piece:
    """A flat grid: rows are axis 0, columns axis 1, with both lengths labelled."""
    shape = tuple(sum(axis) for axis in chunks)
    sizes = sizes or _draw_sizes(shape, size)
    y, x = _grid_points(chunks, sizes)
    lines, (_, max_x, _, max_y) = _svg_grid(x, y, offset=offset, size=size)
    text = [
        "",
        "  <!-- Text -->",
        _text(max_x / 2, max_y + 20, shape[1]),
        _text(max_x + 20, max_y / 2, shape[0], rotate=-90 if shape[0] >= 100 else 0),
    ]
    body = "\n".join(lines + text)
    return body, int(max_x + 50), int(max_y + 50)


def _piece_3d(
    chunks: Sequence[Sequence[int]],
    size: int,
    sizes: Sequence[float] | None = None,
    offset: tuple[float, float] = (0, 0),
) -> _Piece:
    """The skewed box: axis 0 is depth, axis 1 height, axis 2 width."""
    shape = tuple(sum(axis) for axis in chunks)
    sizes = sizes or _draw_sizes(shape, size)
    x, y, z = _grid_points(chunks, sizes)
    x_depth = [v / 1.7 for v in x]
    ox, oy = offset

    top_side, (mnx, mxx, _, mxy) = _svg_grid(
        x_depth, y, offset=(ox + 10, oy + 0), skew=(1, 0), size=size
    )
    top, (_, _, _, depth) = _svg_grid(z, x_depth, offset=(ox + 10, oy + 0), skew=(0, 1), size=size)
    front, (min_z, max_z, min_y, max_y) = _svg_grid(
        z, y, offset=(ox + depth + 10, oy + depth), size=size
    )

    mid_y = (min_y + max_y) / 2
    diag_x = (mnx + mxx) / 2 - 10
    diag_y = mxy - (mxx - mnx) / 2 + 20
    text = [
        "",
        "  <!-- Text -->",
        _text((min_z + max_z) / 2, max_y + 20, shape[2]),
        _text(max_z + 20, mid_y, shape[1], rotate=-90 if shape[1] >= 100 else 0),
        _text(diag_x, diag_y, shape[0], rotate=45),
    ]
    body = "\n".join(top_side + top + front + text)
    return body, int(max_z + 50), int(max_y + 50)


def _piece(
    chunks: Sequence[Sequence[int]],
    size: int,
    sizes: Sequence[float] | None = None,
    offset: tuple[float, float] = (0, 0),
) -> _Piece:
    """Draw 1-d (as a single-row grid), 2-d or 3-d chunks."""
    if len(chunks) == 1:
        return _piece_2d(((1,), *chunks), size)  # Dask drops sizes/offset here
    if len(chunks) == 2:
        return _piece_2d(chunks, size, sizes, offset)
    return _piece_3d(chunks, size, sizes, offset)


def _svg_nd(chunks: Sequence[Sequence[int]], size: int) -> str:
    """More than 3 axes: a row of 3-d boxes (and one 2-d grid first if needed).

    The axes are split, from the left, into groups of 3 (the first group
    taking 2 axes when the count is not a multiple of 3; a leading length-1
    axis is added when that would leave a lone axis).
    """
    if len(chunks) % 3 == 1:
        chunks = ((1,), *chunks)
    shape = tuple(sum(axis) for axis in chunks)
    sizes = _draw_sizes(shape, size)
    bodies = []
    left = 0.0
    height = 0
    start = 0
    while start < len(chunks):
        n = (len(chunks) - start) % 3 or 3
        group = chunks[start : start + n]
        body, w, h = _piece(group, _ND_PIECE_SIZE, sizes[start : start + n], (left, 0))
        bodies.append(body)
        height = max(height, h)
        left += w + 10  # w already includes ``left`` (as in Dask), so gaps widen
        start += n
    return _SVG_HEADER.format(int(left), int(height)) + "\n\n".join(bodies) + _SVG_FOOTER


def _drawable(chunks: tuple[tuple[Any, ...], ...]) -> bool:
    """Whether a diagram can be drawn: ≥1 axis, all lengths known, positive integers."""
    if not chunks:
        return False
    for axis in chunks:
        if not axis or not all(isinstance(c, int) and c >= 0 for c in axis):
            return False
        if sum(axis) <= 0:
            return False
    return True


def svg_diagram(chunks: Any, size: int = DEFAULT_SVG_SIZE) -> str:
    """SVG picture of the chunk grid, or ``""`` where none can be drawn.

    Matches ``dask.array.svg.svg(chunks, size)``; the cases where Dask raises
    ``NotImplementedError`` (0-d, a zero-length axis, unknown lengths) give
    ``""``, and so does anything else that cannot be drawn.
    """
    try:
        chunks = _normalize_chunks(chunks)
        if not _drawable(chunks):
            return ""
        if len(chunks) > 3:
            return _svg_nd(chunks, size)
        body, width, height = _piece(chunks, size)
        return _SVG_HEADER.format(width, height) + body + _SVG_FOOTER
    except Exception:
        return ""


# --------------------------------------------------------------------------
# HTML repr
# --------------------------------------------------------------------------


def _byte_cells(
    shape: tuple, dtype: Any, chunksize: tuple[Any, ...], nbytes: int | None
) -> tuple[str, str]:
    """Formatted byte counts of the whole array and of its largest chunk."""
    parsed = _as_dtype(dtype)
    itemsize = parsed.itemsize if parsed is not None else None
    if nbytes is None or _is_unknown(nbytes):
        count = _known_product(shape)
        nbytes = count * itemsize if count is not None and itemsize is not None else None
    chunk_count = _known_product(chunksize)
    if nbytes is None or chunk_count is None or itemsize is None:
        return format_bytes(nbytes), "unknown"
    return format_bytes(nbytes), format_bytes(chunk_count * itemsize)


def _row(header: str, *cells: str) -> str:
    """One ``<tr>`` of the table: a header cell and one or two data cells."""
    if len(cells) == 1:
        tds = f'                        <td colspan="2"> {cells[0]} </td>\n'
    else:
        tds = "".join(f"                        <td> {c} </td>\n" for c in cells)
    row = " " * 20
    return f"{row}<tr>\n{row}    <th> {header} </th>\n{tds}{row}</tr>\n"


def _table(
    shape: tuple,
    dtype: Any,
    chunks: tuple[tuple[Any, ...], ...],
    nbytes: int | None,
    chunktype: str,
    tasks: int | None,
) -> str:
    """The left-hand ``<table>``: Bytes, Shape, Chunks and Data type rows."""
    chunksize = _chunksize(chunks)
    array_bytes, chunk_bytes = _byte_cells(shape, dtype, chunksize, nbytes)
    count = _pluralize(_count_chunks(chunks), "chunk")
    if tasks is not None:
        count += f" in {_pluralize(int(tasks), 'task')}"
    esc = html.escape
    rows = (
        _row("Bytes", array_bytes, chunk_bytes)
        + _row("Shape", esc(_format_tuple(shape)), esc(_format_tuple(chunksize)))
        + _row("Chunks", count)
        + _row("Data type", f"{esc(_dtype_name(dtype))} {esc(chunktype)}")
    )
    return (
        '            <table style="border-collapse: collapse;">\n'
        "                <thead>\n"
        "                    <tr>\n"
        "                        <td> </td>\n"
        "                        <th> Array </th>\n"
        "                        <th> Chunk </th>\n"
        "                    </tr>\n"
        "                </thead>\n"
        "                <tbody>\n"
        f"{rows}"
        "                </tbody>\n"
        "            </table>\n"
    )


def html_repr(
    name: str,
    shape: tuple,
    dtype: Any,
    chunks: tuple,
    nbytes: int | None,
    *,
    chunktype: str = "numpy.ndarray",
    tasks: int | None = None,
    size: int = DEFAULT_SVG_SIZE,
) -> str:
    """The notebook view (``_repr_html_``), laid out like Dask's.

    A two-column ``<table>``: on the left a table with the rows Bytes, Shape,
    Chunks and Data type for the whole array and for its largest chunk; on
    the right the chunk diagram from :func:`svg_diagram` (empty where none
    can be drawn). ``nbytes=None`` means "work it out from shape and dtype",
    and shows ``unknown`` when a length is unknown. ``tasks``, if given, is
    added to the Chunks row (``8 chunks in 9 tasks``). ``name`` goes in the
    outer table's ``title`` (a tooltip). Never raises.
    """
    try:
        norm = _normalize_chunks(chunks)
        table = _table(shape, dtype, norm, nbytes, chunktype, tasks)
        grid = svg_diagram(norm, size)
    except Exception:
        return f"<pre>{html.escape(_safe_text_repr(name, shape, dtype, chunks, chunktype))}</pre>"
    return (
        f'<table title="{html.escape(str(name), quote=True)}">\n'
        "    <tr>\n"
        "        <td>\n"
        f"{table}"
        "        </td>\n"
        "        <td>\n"
        f"        {grid}\n"
        "        </td>\n"
        "    </tr>\n"
        "</table>"
    )


def _safe_text_repr(name: str, shape: tuple, dtype: Any, chunks: Any, chunktype: str) -> str:
    """:func:`text_repr` for the HTML fallback, with chunk sizes where available."""
    try:
        chunksize: tuple = _chunksize(_normalize_chunks(chunks))
    except Exception:
        chunksize = ()
    try:
        return text_repr(name, shape, dtype, chunksize, chunktype=chunktype)
    except Exception:
        return f"ndstream.Array<{name}>"
