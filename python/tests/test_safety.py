"""Data safety through the Python API: an output that is the input is refused,
a second writer is refused, a refused plan and a failed write change nothing
that existed, and an interrupted write is marked incomplete and resumes to
the exact result. Each case compares every file's bytes before and after.

(The engine's and the CLI's fault suites cover full disks and SIGKILL; these
check that the Python layer keeps those promises and raises what a Python
user expects.)"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ndstream_only

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

A = np.arange(240.0).reshape(12, 20) * 0.5 - 3


def snapshot(root: Path) -> dict:
    """Every file below root: its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_to_zarr_onto_its_own_input_is_refused(da, tmp_path):
    path = str(tmp_path / "a.zarr")
    da.to_zarr(da.from_array(A, chunks=(5, 7)), path)
    before = snapshot(tmp_path)
    x = da.from_zarr(path)
    for mode in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match="would overwrite the input"):
            da.to_zarr(x * 2, path, **mode)
        assert snapshot(tmp_path) == before, mode
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A)


def test_store_into_the_zarr_array_it_reads_is_refused(da, tmp_path):
    """store(x, z) where x reads z itself: refused before any chunk is written,
    also on the native path that writes into z with ndstream's sink."""
    path = str(tmp_path / "z.zarr")
    z = zarr.create_array(store=path, shape=A.shape, chunks=(4, 4), dtype="f8")
    z[:] = A
    before = snapshot(tmp_path)
    x = da.from_array(z, chunks=(4, 4))
    with pytest.raises(ValueError, match="would overwrite the input"):
        da.store(x[::-1] + 1, z)
    assert snapshot(tmp_path) == before


def test_to_hdf5_into_the_file_it_reads_is_refused(da, tmp_path):
    fn = str(tmp_path / "f.h5")
    with h5py.File(fn, "w") as f:
        f.create_dataset("x", data=A, chunks=(6, 10))
        f.create_dataset("other", data=np.ones(5))
    before = snapshot(tmp_path)
    x = da.from_array(h5py.File(fn, "r")["x"], chunks=(6, 10))
    with pytest.raises(ValueError, match="would overwrite the input"):
        da.to_hdf5(fn, "/x", x * 2, overwrite=True)
    assert snapshot(tmp_path) == before


def test_a_second_writer_is_refused_and_changes_nothing(da, tmp_path):
    """While one to_zarr writes a store, another one into it fails at once
    with an OSError naming the lock; the first finishes with its own data."""
    path = str(tmp_path / "busy.zarr")
    started = threading.Event()

    def slow(b):
        started.set()
        time.sleep(0.05)
        return b * 2

    x = da.from_array(A, chunks=(3, 5))
    slow_x = x.map_blocks(slow, dtype=x.dtype)
    errors: list = []

    def first():
        try:
            da.to_zarr(slow_x, path, memory="64MiB", threads=1)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    assert started.wait(10)
    with pytest.raises(OSError, match="in use by another process"):
        da.to_zarr(x + 100, path, overwrite=True)
    t.join(60)
    assert not errors, errors
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A * 2)
    assert not (tmp_path / "busy.zarr" / ".ndstream-incomplete").exists()


def test_a_plan_the_budget_refuses_creates_nothing(da, tmp_path):
    (tmp_path / "keep.txt").write_text("untouched")
    before = snapshot(tmp_path)
    x = da.ones((4000, 4000), chunks=(4000, 4000))
    with pytest.raises(da.MemoryBudgetError):
        da.to_zarr(x, str(tmp_path / "out.zarr"), memory="8MiB")
    with pytest.raises(da.MemoryBudgetError):
        da.to_hdf5(str(tmp_path / "out.h5"), "/x", x, memory="8MiB")
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_failed_write_is_marked_incomplete_and_resumes_exactly(da, tmp_path):
    """A block function that fails part way: the exception is the function's
    own, the store is marked incomplete (ndstream's info says so), and a
    resumed write gives exactly what a clean write gives."""
    path = str(tmp_path / "half.zarr")
    calls = {"n": 0}

    def flaky(b):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk on fire")
        return b + 1

    x = da.from_array(A, chunks=(3, 5))
    with pytest.raises(RuntimeError, match="disk on fire"):
        da.to_zarr(x.map_blocks(flaky, dtype=x.dtype), path, threads=1)
    assert (tmp_path / "half.zarr" / ".ndstream-incomplete").exists()
    da.to_zarr(x + 1, path, resume=True)
    assert not (tmp_path / "half.zarr" / ".ndstream-incomplete").exists()
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], A + 1)


_INTO_CHILD = """
import sys, time
import numpy as np
import zarr
import ndstream as da

def slow(b):
    time.sleep(0.005)
    return b

z = zarr.open_array(sys.argv[1], mode="r+")
x = da.from_array(np.arange(200 * 160, dtype="f8").reshape(200, 160), chunks=(10, 8))
print("START", flush=True)
da.store((x * 3 + 1).map_blocks(slow, dtype=x.dtype), z, threads=1)
print("DONE", flush=True)
"""


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_store_into_a_zarr_array_killed_then_run_again(da, tmp_path, zarr_format):
    """SIGKILL while store() writes into an existing zarr array (ndstream's
    native path): the array's metadata and attributes keep every byte, the
    array is marked incomplete, and running the store again gives exactly
    the result that zarr-python reads back."""
    import os
    import signal
    import subprocess
    import sys

    path = str(tmp_path / "z.zarr")
    z = zarr.create_array(
        store=path, shape=(200, 160), chunks=(10, 8), dtype="f8", zarr_format=zarr_format
    )
    z.attrs["units"] = "K"
    meta = {
        k: v for k, v in snapshot(tmp_path / "z.zarr").items() if k.startswith((".z", "zarr.json"))
    }
    assert meta
    env = dict(os.environ)
    pkg_root = str(Path(da.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTO_CHILD, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "START", (line, proc.stderr.read() if proc.poll() else "")
        # 400 blocks of 5 ms each on one thread: still writing at 0.5 s.
        time.sleep(0.5)
        assert proc.poll() is None, "the store finished within 0.5 s"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    after = snapshot(tmp_path / "z.zarr")
    for k, v in meta.items():
        assert after[k] == v, k
    assert ".ndstream-incomplete" in after

    want = np.arange(200 * 160, dtype="f8").reshape(200, 160) * 3 + 1
    x = da.from_array(np.arange(200 * 160, dtype="f8").reshape(200, 160), chunks=(10, 8))
    da.store(x * 3 + 1, zarr.open_array(path, mode="r+"))
    after = snapshot(tmp_path / "z.zarr")
    assert ".ndstream-incomplete" not in after
    for k, v in meta.items():
        assert after[k] == v, k
    back = zarr.open_array(path, mode="r")
    np.testing.assert_array_equal(back[:], want)
    assert back.attrs["units"] == "K"


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_a_plan_whose_hdf5_output_another_process_holds_fails_then_finishes(
    da, tmp_path, overwrite
):
    """``ndstream plan`` to an HDF5 dataset: while another process (here,
    h5py in this one) holds the file open, the last stage's copy fails as
    a runtime failure (exit 1) naming the file, and no byte of it changes;
    run again once the file is closed, the plan ends with the values of
    the same job run in one process, the file's other datasets kept."""
    from _helpers import cli_in

    _, cli = cli_in(tmp_path)
    x = da.random.RandomState(2).normal(0, 1, size=(120, 90), chunks=(30, 30))
    da.to_zarr(x - x.mean(axis=0), str(tmp_path / "x.zarr"))
    out = tmp_path / "out.h5"
    if overwrite:
        with h5py.File(out, "w") as f:
            f["keep"] = np.arange(4)
            f["x"] = np.zeros(3)
    args = ["plan", "-o", "p.json", "convert", "x.zarr", "out.h5:/x", "--codec", "gzip:1"]
    made = cli(*args, *(["--overwrite"] if overwrite else []))
    assert made.returncode == 0, made.stderr
    held = h5py.File(out, "r")
    try:
        before = out.read_bytes()
        run = cli("run", "p.json", "--processes", "2")
        assert run.returncode == 1, (run.returncode, run.stderr)
        assert "out.h5" in run.stderr, run.stderr
        assert out.read_bytes() == before
    finally:
        held.close()
    again = cli("run", "p.json", "--processes", "2")
    assert again.returncode == 0, again.stderr
    want = zarr.open_array(str(tmp_path / "x.zarr"), mode="r")[:]
    with h5py.File(out, "r") as f:
        got = f["x"][...]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        if overwrite:
            np.testing.assert_array_equal(f["keep"][...], np.arange(4))
    # Nothing else is left beside the output (the work directory keeps
    # only the record that the job finished).
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.h5",
        "p.json",
        "p.json.work",
        "x.zarr",
    ]
