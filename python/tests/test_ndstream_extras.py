"""ndstream-only extras (skipped when the module under test is dask.array):
memory/threads configuration, deterministic results, the memory budget error,
progress bar, ndstream.open / open_many, argument errors, and Ctrl-C during a
store followed by ``to_zarr(..., resume=True)``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ndstream_only


@pytest.fixture
def ragged(da):
    rng = np.random.default_rng(99)
    a = rng.standard_normal((1003, 517)) * 1e3 + 1e4
    return a, da.from_array(a, chunks=(97, 61))


# --------------------------------------------------------------------------- configuration


def test_config_set_context_manager(da, ragged):
    a, x = ragged
    with da.config.set(memory="64MiB", threads=1):
        v = x.sum().compute()
    np.testing.assert_allclose(v, a.sum(), rtol=1e-12)
    with da.config.set(memory=64 * 2**20):
        np.testing.assert_allclose(x.mean(axis=0).compute(), a.mean(axis=0), rtol=1e-12)


def test_config_set_global(da, ragged):
    a, x = ragged
    cfg = da.config.set(memory="64MiB", threads=1)
    try:
        np.testing.assert_allclose(x.std().compute(), a.std(), rtol=1e-10)
    finally:
        cfg.__exit__(None, None, None)  # restore the previous settings, as in dask.config
    np.testing.assert_allclose(x.std().compute(), a.std(), rtol=1e-10)


def test_compute_keywords(da, ragged):
    a, x = ragged
    np.testing.assert_allclose(x.sum().compute(memory="64MiB", threads=2), a.sum(), rtol=1e-12)
    np.testing.assert_array_equal((x[:10] * 2).compute(memory="64MiB", threads=1), a[:10] * 2)


@pytest.mark.parametrize("reduction", ["sum", "mean", "std", "var"])
def test_bitwise_deterministic(da, ragged, reduction):
    _, x = ragged
    results = []
    for threads in (1, 2):
        for memory in ("8MiB", "256MiB"):
            r = getattr(x, reduction)()
            results.append(np.asarray(r.compute(memory=memory, threads=threads)))
            r0 = getattr(x, reduction)(axis=0)
            results.append(np.asarray(r0.compute(memory=memory, threads=threads)))
    scalars, rows = results[0::2], results[1::2]
    for r in scalars[1:]:
        assert np.array_equal(r, scalars[0])
    for r in rows[1:]:
        assert np.array_equal(r, rows[0])


def test_bitwise_deterministic_config(da, ragged):
    _, x = ragged
    with da.config.set(threads=1, memory="8MiB"):
        a1 = np.asarray(x.mean().compute())
    with da.config.set(threads=2, memory="256MiB"):
        a2 = np.asarray(x.mean().compute())
    assert np.array_equal(a1, a2)


def test_memory_budget_error(da):
    assert issubclass(da.MemoryBudgetError, MemoryError)
    x = da.ones((4096, 4096), chunks=(4096, 4096))  # one 128 MiB chunk
    # the 128 MiB result alone cannot fit 1 MiB
    with pytest.raises(da.MemoryBudgetError):
        x.compute(memory="1MiB")
    with pytest.raises(MemoryError):
        with da.config.set(memory="1MiB"):
            (x + 1).compute()
    # (the engine streams a sum in tiles smaller than a chunk, so a sum needs a tiny budget)
    with pytest.raises(da.MemoryBudgetError):
        x.sum().compute(memory="4KiB")
    # the same computations fit a larger budget
    assert float(x.sum().compute(memory="512MiB")) == 4096 * 4096
    assert x[:2].compute(memory="64MiB").shape == (2, 4096)


def test_bad_config_values(da):
    x = da.ones(10, chunks=3)
    for kwargs in [dict(memory="lots"), dict(memory=-5), dict(threads=0), dict(threads="two")]:
        with pytest.raises((TypeError, ValueError)):
            x.compute(**kwargs)
        with pytest.raises((TypeError, ValueError)):
            da.config.set(**kwargs)


# --------------------------------------------------------------------------- progress bar


def test_progress_bar(da, capsys):
    from ndstream.diagnostics import ProgressBar

    x = da.random.default_rng(0).normal(size=(2000, 2000), chunks=(250, 250))
    with ProgressBar():
        v = (x * 2).mean().compute()
    assert abs(float(v)) < 0.05
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "100%" in text
    assert "Completed" in text


# --------------------------------------------------------------------------- open


def test_open_npy(da, tmp_path):
    a = np.arange(60, dtype="int32").reshape(6, 10)
    fn = tmp_path / "a.npy"
    np.save(fn, a)
    x = da.open(str(fn))
    assert x.shape == a.shape and x.dtype == a.dtype
    np.testing.assert_array_equal(x.compute(), a)
    np.testing.assert_array_equal(da.open(fn).sum().compute(), a.sum())  # a Path works too


def test_open_hdf5(da, tmp_path):
    h5py = pytest.importorskip("h5py")
    a = np.random.default_rng(1).standard_normal((50, 40)).astype("float32")
    fn = tmp_path / "file.h5"
    with h5py.File(fn, "w") as f:
        f.create_dataset("/x", data=a, chunks=(16, 16))
        f.create_dataset("/grp/y", data=a * 2)
    x = da.open(f"{fn}:/x")
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.compute(), a)
    np.testing.assert_array_equal(da.open(f"{fn}:/grp/y").compute(), a * 2)


def test_open_zarr(da, tmp_path):
    zarr = pytest.importorskip("zarr")
    a = np.arange(200.0).reshape(10, 20)
    path = tmp_path / "s.zarr"
    z = zarr.open_array(str(path), mode="w", shape=a.shape, chunks=(4, 8), dtype="f8")
    z[:] = a
    x = da.open(str(path))
    np.testing.assert_array_equal(x.compute(), a)
    assert x.chunks == ((4, 4, 2), (8, 8, 4))


def test_open_many(da, tmp_path):
    arrays = {}
    for i in range(3):
        a = np.full((4, 5), float(i))
        np.save(tmp_path / f"part{i}.npy", a)
        arrays[i] = a
    out = da.open_many(str(tmp_path / "part*.npy"))
    assert isinstance(out, list)
    assert len(out) == 3
    firsts = sorted(float(x[0, 0].compute()) for x in out)
    assert firsts == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(da.stack(out).sum(axis=0).compute(), np.full((4, 5), 3.0))


def test_open_missing_file(da, tmp_path):
    missing = tmp_path / "missing.npy"
    with pytest.raises(FileNotFoundError) as info:
        da.open(str(missing))
    assert str(missing) in str(info.value)
    missing_h5 = tmp_path / "nothere.h5"
    with pytest.raises(FileNotFoundError) as info:
        da.open(f"{missing_h5}:/x")
    assert str(missing_h5) in str(info.value)


def test_bad_arguments(da):
    with pytest.raises((TypeError, ValueError)):
        da.zeros("abc")
    with pytest.raises((TypeError, ValueError)):
        da.ones((3, "x"), chunks=2)
    with pytest.raises((TypeError, ValueError)):
        da.from_array(np.zeros(4), chunks="abc")
    with pytest.raises((TypeError, ValueError)):
        da.open(12345)


# --------------------------------------------------------------------------- Ctrl-C and resume

SHAPE = (4000, 4000)
CHUNKS = (100, 100)
SEED = 20240607

_CHILD = textwrap.dedent(
    """
    import sys
    import time
    import ndstream as da

    def slow(b):
        # Every block takes a while, so the write is still running when
        # the signal comes, however fast the build and the machine.
        time.sleep(0.005)
        return b

    path = sys.argv[1]
    x = da.random.default_rng({seed}).normal(0, 1, size={shape}, chunks={chunks})
    with da.config.set(memory="64MiB", threads=1):
        print("START", flush=True)
        da.to_zarr((x * 3 + 1).map_blocks(slow, dtype=x.dtype), path)
    print("DONE", flush=True)
    """
).format(seed=SEED, shape=SHAPE, chunks=CHUNKS)


def test_ctrl_c_then_resume(da, tmp_path):
    zarr = pytest.importorskip("zarr")
    interrupted = str(tmp_path / "interrupted.zarr")
    clean = str(tmp_path / "clean.zarr")
    env = dict(os.environ)
    pkg_root = str(Path(da.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, interrupted],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "START", (
            line,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        time.sleep(0.5)
        assert proc.poll() is None, "to_zarr finished within 0.5 s; make the array larger"
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "DONE" not in out
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err, err[-2000:]
    assert elapsed < 2.0, f"took {elapsed:.2f} s to stop after SIGINT"

    x = da.random.default_rng(SEED).normal(0, 1, size=SHAPE, chunks=CHUNKS)
    y = x * 3 + 1
    with da.config.set(memory="64MiB"):
        da.to_zarr(y, interrupted, resume=True)
        da.to_zarr(y, clean)
    resumed = zarr.open_array(interrupted, mode="r")[:]
    expected = zarr.open_array(clean, mode="r")[:]
    assert resumed.shape == SHAPE
    assert np.array_equal(resumed, expected)
    # and both equal what a plain compute gives
    np.testing.assert_array_equal(expected[:100, :300], y[:100, :300].compute())
