"""Jobs on a dask.distributed cluster (a LocalCluster of 2 worker processes
on loopback, started here): the tutorial's workloads in small give the
bytes of the same job run in this process; a worker killed in the middle
of a job still ends with those bytes (Dask runs its tasks again); a worker
memory limit below what its tasks may use is refused before anything is
created, naming both numbers."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ndstream_only

distributed = pytest.importorskip("distributed")

from _helpers import local_cluster  # noqa: E402

import ndstream as da  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = local_cluster()
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def tree(root: Path) -> dict:
    """Every file below root (relative path): its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def days(tmp_path_factory) -> Path:
    """Three days of "temperature" in HDF5, as the tutorial's weather data."""
    d = tmp_path_factory.mktemp("days")
    for i in range(3):
        x = da.random.RandomState(i).normal(280, 10, size=(200, 150), chunks=(50, 50))
        da.to_hdf5(d / f"day{i}.h5", "/t2m", x.astype("f4"))
    return d


def stacked(days: Path):
    return da.stack(da.open_many(str(days / "day*.h5:/t2m")), axis=0)


def test_w3a_stacked_mean_has_the_local_bits(client, days):
    m = stacked(days).mean(axis=0)
    assert same_bits(m.compute(scheduler=client), m.compute())


def test_w3c_strided_subset_to_zarr_has_the_local_bytes(client, days, tmp_path):
    sub = stacked(days)[:, ::2, ::2]
    sub.to_zarr(tmp_path / "here.zarr", codec="zstd:3")
    sub.to_zarr(tmp_path / "there.zarr", codec="zstd:3", scheduler=client)
    assert tree(tmp_path / "there.zarr") == tree(tmp_path / "here.zarr")
    # Nothing of the plan is left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.zarr", "there.zarr"]


def test_an_array_in_a_group_is_written_with_nothing_else_in_the_store(client, tmp_path):
    x = da.random.RandomState(4).normal(0, 1, size=(120, 80), chunks=(40, 40))
    y = x - x.mean()
    y.to_zarr(tmp_path / "here.zarr", component="g/y")
    y.to_zarr(tmp_path / "there.zarr", component="g/y", scheduler=client)
    assert tree(tmp_path / "there.zarr") == tree(tmp_path / "here.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.zarr", "there.zarr"]


def test_w5a_stack_to_zarr_has_the_local_bytes(client, days, tmp_path):
    x = stacked(days)
    x.to_zarr(tmp_path / "here.zarr", codec="zstd:3", chunks=(1, 100, 75))
    x.to_zarr(tmp_path / "there.zarr", codec="zstd:3", chunks=(1, 100, 75), scheduler=client)
    assert tree(tmp_path / "there.zarr") == tree(tmp_path / "here.zarr")


def test_overwrite_on_the_cluster_swaps_the_new_array_in_when_the_job_ends(client, tmp_path):
    x = da.random.RandomState(6).normal(0, 1, size=(240, 160), chunks=(60, 40))
    y = x - x.mean(axis=0)
    y.to_zarr(tmp_path / "here.zarr", codec="zstd:1")
    there = tmp_path / "there.zarr"
    da.arange(100, chunks=30).to_zarr(there)
    old = tree(there)
    # A job that fails on the workers (an input gone) leaves the old
    # array as it was, and nothing of the plan beside it.
    gone = tmp_path / "gone.zarr"
    da.ones((240, 160), chunks=(60, 40)).to_zarr(gone)
    z = da.from_zarr(gone) + y
    shutil.rmtree(gone)
    with pytest.raises(Exception, match=r"gone\.zarr"):
        z.to_zarr(there, overwrite=True, scheduler=client)
    assert tree(there) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.zarr", "there.zarr"]
    y.to_zarr(there, codec="zstd:1", overwrite=True, scheduler=client)
    assert tree(there) == tree(tmp_path / "here.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.zarr", "there.zarr"]
    # Without overwrite=True an existing array is refused, untouched.
    with pytest.raises(Exception, match="exists"):
        x.to_zarr(there, scheduler=client)
    assert tree(there) == tree(tmp_path / "here.zarr")


def test_to_hdf5_on_the_cluster_writes_the_local_dataset_and_keeps_the_rest_of_the_file(
    client, tmp_path
):
    h5py = pytest.importorskip("h5py")
    x = da.random.RandomState(7).normal(0, 1, size=(240, 160), chunks=(60, 40))
    y = x - x.mean(axis=0)
    da.to_hdf5(tmp_path / "here.h5", "/g/y", y, compression="gzip")
    there = tmp_path / "there.h5"
    with h5py.File(there, "w") as f:
        f["keep"] = np.arange(5)
        f["g/y"] = np.zeros(3)
    # An existing dataset is refused without overwrite=True, untouched.
    with pytest.raises(Exception, match="exists"):
        da.to_hdf5(there, "/g/y", y, scheduler=client)
    da.to_hdf5(there, "/g/y", y, compression="gzip", overwrite=True, scheduler=client)
    # A new file with two datasets, through ndstream.config's scheduler.
    with da.config.set(scheduler=client):
        da.to_hdf5(tmp_path / "new.h5", {"/a": y, "/b": x})
    xs = np.asarray(x)
    with (
        h5py.File(tmp_path / "here.h5", "r") as here,
        h5py.File(there, "r") as f,
        h5py.File(tmp_path / "new.h5", "r") as g,
    ):
        got = f["g/y"]
        assert same_bits(got[...], here["g/y"][...])
        assert (got.chunks, got.compression) == ((60, 40), "gzip")
        np.testing.assert_allclose(got[...], xs - xs.mean(axis=0), atol=1e-12)
        assert np.array_equal(f["keep"][...], np.arange(5))
        assert same_bits(g["a"][...], here["g/y"][...])
        assert same_bits(g["b"][...], xs)
    # Nothing of the plans is left beside the files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.h5", "new.h5", "there.h5"]


def test_store_with_a_client_computes_on_the_workers_and_fills_the_targets(client, tmp_path):
    """da.store(sources, targets, scheduler=client): each source is
    computed on the workers, then written into its target here (a NumPy
    array, a region of one, a zarr-python array, an h5py dataset), with
    the values of the same store run in this process."""
    h5py = pytest.importorskip("h5py")
    zarr = pytest.importorskip("zarr")
    x = da.random.RandomState(8).normal(0, 1, size=(120, 90), chunks=(40, 30))
    y = x - x.mean(axis=0)
    s = y.std(axis=1)

    def targets(name: str):
        z = zarr.create_array(
            store=str(tmp_path / f"{name}.zarr"), shape=y.shape, chunks=(50, 50), dtype="f8"
        )
        f = h5py.File(tmp_path / f"{name}.h5", "w")
        return z, f, f.create_dataset("d", shape=y.shape, dtype="f4")

    here = (np.zeros(y.shape), np.zeros((3, 120)), *targets("here"))
    there = (np.zeros(y.shape), np.zeros((3, 120)), *targets("there"))
    regions = [None, (1, slice(None)), None, None]
    da.store([y, s, y, y.astype("f4")], [here[0], here[1], here[2], here[4]], regions=regions)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with (
        distributed.get_task_stream(client) as ts,
        da.config.set(temporary_directory=str(scratch)),
    ):
        da.store(
            [y, s, y, y.astype("f4")],
            [there[0], there[1], there[2], there[4]],
            regions=regions,
            scheduler=client,
        )
    ran = [t["key"] for t in ts.data if "_run_task" in str(t["key"])]
    # Four sources, each planned and run on the workers.
    assert len(ran) >= 4, ran
    here[3].close()
    there[3].close()
    assert same_bits(there[0], here[0])
    assert same_bits(there[1], here[1])
    assert not there[1][[0, 2]].any()
    assert same_bits(zarr.open_array(str(tmp_path / "there.zarr"))[...], np.asarray(y))
    with h5py.File(tmp_path / "there.h5", "r") as f, h5py.File(tmp_path / "here.h5", "r") as g:
        assert same_bits(f["d"][...], g["d"][...])
    # The temporary arrays are gone.
    assert list(scratch.iterdir()) == []


def test_store_under_config_distributed_reads_the_results_back_here(client, tmp_path):
    """Under config.set(scheduler="distributed"), the slabs store writes
    into a target are read from the cluster's result here: the workers
    run the Dask tasks of one plan, as many as compute runs, not a plan
    per slab."""
    x = da.random.RandomState(9).normal(0, 1, size=(8000, 60), chunks=(100, 60))
    y = x / x.sum()
    out = np.zeros(y.shape)

    def tasks(ts) -> int:
        return len([t for t in ts.data if "_run_task" in str(t["key"])])

    with da.config.set(scheduler="distributed", memory="4MiB"):
        with distributed.get_task_stream(client) as ts:
            da.store(y, out)
        with distributed.get_task_stream(client) as one:
            want = y.compute()
    assert same_bits(out, want)
    assert same_bits(out, y.compute(scheduler="threads", memory="4MiB"))
    assert 0 < tasks(ts) == tasks(one), (tasks(ts), tasks(one))


def test_resume_on_the_cluster_finishes_an_interrupted_write(client, tmp_path):
    """A write interrupted in this process (a block function that fails
    part way), resumed with resume=True on the cluster: the Zarr array has
    the bytes of a clean write, the HDF5 dataset its values; a resume of
    another layout is refused, the array unchanged."""
    h5py = pytest.importorskip("h5py")
    x = da.random.RandomState(10).normal(0, 1, size=(240, 160), chunks=(40, 40))
    y = x - x.mean(axis=0)
    calls = {"n": 0}

    def flaky(b):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("disk on fire")
        return b

    y.to_zarr(tmp_path / "here.zarr", codec="zstd:1")
    da.to_hdf5(tmp_path / "here.h5", "/y", y)
    cut = tmp_path / "cut.zarr"
    with pytest.raises(RuntimeError, match="disk on fire"):
        y.map_blocks(flaky, dtype=y.dtype).to_zarr(cut, codec="zstd:1", threads=1)
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="disk on fire"):
        da.to_hdf5(tmp_path / "cut.h5", "/y", y.map_blocks(flaky, dtype=y.dtype), threads=1)
    assert (cut / ".ndstream-incomplete").exists()
    before = tree(cut)
    with pytest.raises(Exception, match="cannot resume"):
        y.to_zarr(cut, codec="zstd:1", chunks=(60, 40), resume=True, scheduler=client)
    assert tree(cut) == before
    y.to_zarr(cut, codec="zstd:1", resume=True, scheduler=client)
    da.to_hdf5(tmp_path / "cut.h5", "/y", y, resume=True, scheduler=client)
    assert tree(cut) == tree(tmp_path / "here.zarr")
    with h5py.File(tmp_path / "cut.h5", "r") as f, h5py.File(tmp_path / "here.h5", "r") as g:
        assert same_bits(f["y"][...], g["y"][...])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cut.h5",
        "cut.zarr",
        "here.h5",
        "here.zarr",
    ]


def lennard_jones(n: int):
    """The tutorial's Lennard-Jones energy, as its code writes it."""
    cluster = da.random.RandomState(1981).normal(0, 500, size=(n, 3), chunks=(n // 2, 3)) - 0.5

    def lj(r2):
        sr6 = (1.0 / r2) ** 3
        return 4.0 * (sr6**2 - sr6)

    d = cluster[:, None, :] - cluster[None, :, :]
    r2 = (d * d).sum(axis=2)
    return da.nansum(lj(r2)) / 2


def test_lennard_jones_energy_has_the_local_bits(client):
    e = lennard_jones(600)
    (there,) = da.compute(e, scheduler=client)
    assert same_bits(there, e.compute())


def test_config_distributed_uses_the_active_client(client):
    x = da.random.RandomState(3).normal(0, 1, size=(300, 200), chunks=(100, 50))
    y = x - x.mean(axis=0)
    with da.config.set(scheduler="distributed"):
        there = y.std(axis=1).compute()
    assert same_bits(there, y.std(axis=1).compute(scheduler="threads"))


def test_a_worker_memory_limit_below_the_task_budget_is_refused_first(client, tmp_path):
    x = da.ones((100, 100), chunks=50)
    with pytest.raises(da.MemoryBudgetError) as e:
        x.to_zarr(tmp_path / "out.zarr", scheduler=client, memory="4GiB")
    msg = str(e.value)
    assert "2.00 GiB (2147483648 bytes)" in msg and "4294967296 bytes" in msg, msg
    assert list(tmp_path.iterdir()) == []


def test_a_worker_killed_mid_job_still_gives_the_local_bytes(client, tmp_path):
    x = da.random.RandomState(5).normal(0, 1, size=(3000, 2000), chunks=(100, 100))
    y = (x - x.mean(axis=0)) / x.std()
    y.to_zarr(tmp_path / "here.zarr", codec="zstd:1", chunks=(50, 200))
    out = tmp_path / "there.zarr"
    failure: list = []

    def job():
        try:
            y.to_zarr(out, codec="zstd:1", chunks=(50, 200), scheduler=client)
        except BaseException as e:
            failure.append(e)

    t = threading.Thread(target=job)
    t.start()
    # Wait until the job is under way (some task has recorded its work),
    # then kill one worker process outright.
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and t.is_alive():
        records = list(tmp_path.glob(".ndstream-plan-*/work/stage-*/*"))
        if records:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    t.join(timeout=300)
    assert killed, "the job finished before a worker could be killed"
    assert not failure, failure
    assert tree(out) == tree(tmp_path / "here.zarr")
    # The cluster has its two workers again.
    client.wait_for_workers(2, timeout=60)
