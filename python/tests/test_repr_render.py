"""Tests for ndstream._repr: the Dask-style text and HTML summaries.

The module is loaded by path, so these run before the package is built.
Comparisons against Dask run only where ``dask`` is importable.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

NAN = float("nan")


def _load_repr_module() -> ModuleType:
    """Import ``python/ndstream/_repr.py`` from its file."""
    path = Path(__file__).resolve().parent.parent / "ndstream" / "_repr.py"
    spec = importlib.util.spec_from_file_location("ndstream_repr_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_repr_module()

try:
    import dask.array as da
    from dask.array.svg import svg as dask_svg
    from dask.utils import format_bytes as dask_format_bytes
except ImportError:  # the comparisons below are skipped
    da = None

needs_dask = pytest.mark.skipif(da is None, reason="dask is not installed")


def _dask_draws_html() -> bool:
    """Dask's ``_repr_html_`` needs jinja2; without it Dask returns its text repr."""
    return da is not None and "<table" in da.ones(3)._repr_html_()


needs_dask_html = pytest.mark.skipif(
    not _dask_draws_html(), reason="dask (with jinja2) is not installed"
)


def regular_chunks(shape: tuple[Any, ...], chunk: int) -> tuple[tuple[Any, ...], ...]:
    """Chunks of ``chunk`` along every axis (the last one smaller); NaN stays NaN."""
    out = []
    for n in shape:
        if isinstance(n, float) and math.isnan(n):
            out.append((NAN,))
            continue
        n = int(n)
        full, rest = divmod(n, chunk)
        out.append((chunk,) * full + ((rest,) if rest or n == 0 else ()))
    return tuple(out)


def count_lines(text: str) -> int:
    """Number of SVG ``<line`` elements."""
    return text.count("<line")


# -- text repr ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "chunksize", "expected"),
    [
        (
            "sum-aggregate",
            (10, 7),
            "float64",
            (3, 4),
            (
                "ndstream.Array<sum-aggregate, shape=(10, 7), dtype=float64, chunksize=(3, 4), "
                "chunktype=numpy.ndarray>"
            ),
        ),
        (
            "x",
            (),
            np.int32,
            (),
            "ndstream.Array<x, shape=(), dtype=int32, chunksize=(), chunktype=numpy.ndarray>",
        ),
        (
            "x",
            (5,),
            np.dtype("u1"),
            (2,),
            "ndstream.Array<x, shape=(5,), dtype=uint8, chunksize=(2,), chunktype=numpy.ndarray>",
        ),
        (
            "getitem",
            (NAN, 3),
            "f4",
            (NAN, 3),
            (
                "ndstream.Array<getitem, shape=(nan, 3), dtype=float32, chunksize=(nan, 3), "
                "chunktype=numpy.ndarray>"
            ),
        ),
        (
            "x",
            (np.int64(4), np.int64(0)),
            "bool",
            (np.int64(2), np.int64(0)),
            "ndstream.Array<x, shape=(4, 0), dtype=bool, chunksize=(2, 0), "
            "chunktype=numpy.ndarray>",
        ),
    ],
)
def test_text_repr(name: str, shape: tuple, dtype: Any, chunksize: tuple, expected: str) -> None:
    assert R.text_repr(name, shape, dtype, chunksize) == expected


@needs_dask
@pytest.mark.parametrize(
    ("shape", "chunks"), [((10, 7), (3, 4)), ((), ()), ((5,), (2,)), ((2, 3, 4, 5), 2)]
)
def test_text_repr_matches_dask(shape: tuple, chunks: Any) -> None:
    x = da.ones(shape, chunks=chunks)
    ours = R.text_repr(x.name.rsplit("-", 1)[0], x.shape, x.dtype, x.chunksize)
    assert ours == repr(x).replace("dask.array<", "ndstream.Array<", 1)


# -- byte formatting ---------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (96, "96 B"),
        (560, "560 B"),
        (922, "0.90 kiB"),
        (1234, "1.21 kiB"),
        (8_000_000, "7.63 MiB"),
        (1_600_000_000, "1.49 GiB"),
        (1234567890000, "1.12 TiB"),
        (1234567890000000, "1.10 PiB"),
        (None, "unknown"),
        (NAN, "unknown"),
        (math.inf, "unknown"),
        ("abc", "unknown"),
    ],
)
def test_format_bytes(n: Any, expected: str) -> None:
    assert R.format_bytes(n) == expected


@needs_dask
@pytest.mark.parametrize(
    "n", [0, 1, 96, 560, 921, 922, 1023, 1024, 1234, 10**6, 8_000_000, 1_600_000_000, 2**40, 2**55]
)
def test_format_bytes_matches_dask(n: int) -> None:
    assert R.format_bytes(n) == dask_format_bytes(n)


# -- HTML --------------------------------------------------------------------


def test_html_contents() -> None:
    out = R.html_repr("ones", (10, 7), "float64", ((3, 3, 3, 1), (4, 3)), 560)
    assert "<table" in out and "<svg" in out
    for piece in ("560 B", "96 B", "(10, 7)", "(3, 4)", "8 chunks", "float64 numpy.ndarray"):
        assert piece in out
    for header in ("Array", "Chunk", "Bytes", "Shape", "Chunks", "Data type"):
        assert f"<th> {header} </th>" in out


def test_html_derives_bytes_when_none() -> None:
    out = R.html_repr("x", (10, 7), "float64", ((3, 3, 3, 1), (4, 3)), None)
    assert "<td> 560 B </td>" in out and "<td> 96 B </td>" in out


def test_html_unknown_sizes() -> None:
    out = R.html_repr("x", (NAN, 3), "i8", ((NAN, NAN), (3,)), None)
    assert out.count("<td> unknown </td>") == 2
    assert "(nan, 3)" in out and "2 chunks" in out
    assert "<svg" not in out


def test_html_escapes_dtype_and_name() -> None:
    out = R.html_repr('a"<b>', (4,), "<U5", ((2, 2),), 80)
    assert "&lt;U5 numpy.ndarray" in out
    assert "<b>" not in out


def test_html_tasks() -> None:
    out = R.html_repr("x", (4,), "i1", ((2, 2),), 4, tasks=5)
    assert "2 chunks in 5 tasks" in out


@needs_dask_html
@pytest.mark.parametrize(
    ("shape", "chunks", "dtype"),
    [
        ((10, 7), (3, 4), "f8"),
        ((1000,), (100,), "i2"),
        ((1000, 1000, 100), (100, 100, 10), "u1"),
        ((4000, 4000, 12), (1000, 1000, 12), "c16"),
        ((), (), "f4"),
    ],
)
def test_html_bytes_match_dask(shape: tuple, chunks: tuple, dtype: str) -> None:
    x = da.ones(shape, chunks=chunks, dtype=dtype)
    out = R.html_repr("x", x.shape, x.dtype, x.chunks, x.nbytes)
    chunk_bytes = math.prod(x.chunksize) * x.dtype.itemsize
    expected = f"<td> {dask_format_bytes(x.nbytes)} </td>\n"
    expected += f"                        <td> {dask_format_bytes(chunk_bytes)} </td>"
    assert expected in out
    assert expected in x._repr_html_()


@needs_dask_html
def test_grid_line_count_matches_dask() -> None:
    x = da.ones((10, 7), chunks=(3, 4))
    ours = R.html_repr("x", x.shape, x.dtype, x.chunks, x.nbytes)
    assert count_lines(ours) == count_lines(x._repr_html_()) == 8


def test_grid_line_count_without_dask() -> None:
    out = R.svg_diagram(((3, 3, 3, 1), (4, 3)))
    assert count_lines(out) == 5 + 3  # 5 row boundaries, 3 column boundaries
    assert out.count('style="stroke-width:2"') == 4  # the outline is drawn thicker


def test_too_many_chunks_draws_solid_block() -> None:
    chunks = regular_chunks((10**6, 10**6), 1000)
    out = R.svg_diagram(chunks)  # 1001 boundaries per axis; at most 120 // 6 drawn
    assert count_lines(out) == 2 * 20
    assert "8B4903" in out and "ECB172" not in out
    assert "ECB172" in R.svg_diagram(((1,) * 5, (1,) * 5))


def test_size_labels() -> None:
    out = R.svg_diagram(regular_chunks((300, 40, 7), 10))
    labels = re.findall(r">(\d+)</text>", out)
    assert sorted(labels) == ["300", "40", "7"]
    assert "rotate(45," in out  # depth label of the 3-d box


@needs_dask
@pytest.mark.parametrize(
    ("shape", "chunks"),
    [
        ((10,), (3,)),
        ((10, 7), (3, 4)),
        ((200, 30), (1, 30)),
        ((1, 1), (1, 1)),
        ((5, 6, 7), (2, 3, 4)),
        ((3, 1000, 4), (1, 7, 2)),
        ((10000, 10000, 10), (100, 100, 1)),
        ((4, 5, 6, 7), (2, 2, 3, 3)),
        ((3, 4, 5, 6, 7), (1, 2, 3, 4, 5)),
        ((2,) * 7, (1,) * 7),
    ],
)
@pytest.mark.parametrize("size", [120, 200, 500])
def test_svg_identical_to_dask(shape: tuple, chunks: tuple, size: int) -> None:
    x = da.ones(shape, chunks=chunks)
    assert R.svg_diagram(x.chunks, size) == dask_svg(x.chunks, size=size)


@needs_dask_html
def test_html_layout_matches_dask() -> None:
    x = da.ones((10, 7), chunks=(3, 4))

    def normal(text: str) -> str:
        text = "\n".join(line for line in text.split("\n") if line.strip())
        text = re.sub(r"<table title=\"[^\"]*\">", "<table>", text)
        return re.sub(r"<th> (Dask graph|Chunks) </th>\n.*\n", "", text)

    ours = R.html_repr("x", x.shape, x.dtype, x.chunks, x.nbytes)
    assert normal(ours) == normal(x._repr_html_())


# -- no diagram / never raises -------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((), ()), ((0,), ((0,),)), ((5, 0, 3), ((5,), (0,), (3,))), ((NAN,), ((NAN,),))],
)
def test_no_diagram(shape: tuple, chunks: tuple) -> None:
    assert R.svg_diagram(chunks) == ""
    out = R.html_repr("x", shape, "f8", chunks, None)
    assert "<table" in out and "<svg" not in out


@pytest.mark.parametrize(
    "shape",
    [
        (),
        (0,),
        (5, 0, 3),
        (NAN,),
        (1e6, 1e6),
        (10**6, 10**6),
        (3, 4, 5, 6),
        (2, 3, 4, 5, 6),
        (1, 1, 1, 1, 1, 1, 1, 1),
        (NAN, 2000, 0, 7),
    ],
)
def test_never_raises(shape: tuple) -> None:
    chunks = regular_chunks(shape, 1000)
    chunksize = tuple(max(c) for c in chunks)
    text = R.text_repr("x", shape, "f8", chunksize)
    assert text.startswith("ndstream.Array<x, shape=(")
    out = R.html_repr("x", shape, "f8", chunks, None)
    assert "<table" in out
    drawable = shape and all(not math.isnan(n) and n > 0 for n in shape)
    assert ("<svg" in out) == bool(drawable)


@pytest.mark.parametrize(
    ("shape", "dtype", "chunks", "nbytes"),
    [
        ((4,), "not-a-dtype", ((2, 2),), None),
        ((4,), object, ((2, 2),), 32),
        ((4,), "f8", ((2, -2),), None),
        ((math.inf,), "f8", ((math.inf,),), None),
        ((3,), "f8", ((1.5, 1.5),), None),
        ((2, 2), "f8", ((2,),), 32),  # chunks inconsistent with shape
        ((2,), "f8", ((np.int64(1), np.int64(1)),), np.int64(16)),
    ],
)
def test_odd_inputs_do_not_raise(shape: tuple, dtype: Any, chunks: tuple, nbytes: Any) -> None:
    assert "<table" in R.html_repr("x", shape, dtype, chunks, nbytes)
    assert R.text_repr("x", shape, dtype, (2,)).startswith("ndstream.Array<x")
