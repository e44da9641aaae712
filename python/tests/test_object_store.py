"""Zarr stores read by URL: an S3-compatible server (moto) on loopback, in
a child process (a server thread in this process could not answer while
ndstream holds the GIL), reached as S3 and as a plain web server.

zarr-python writes the stores through s3fs, ndstream reads them by
``s3://`` URL; the oracle is the NumPy data written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from _helpers import cli_exe as _cli
from _helpers import cli_in as _cli_in
from _helpers import local_cluster

pytestmark = pytest.mark.ndstream_only

moto = pytest.importorskip("moto", reason="moto (an S3-compatible server) is not installed")
s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")
zarr = pytest.importorskip("zarr")

BUCKET = "ndstream-test"
KEY = "testing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(args: list[str], url: str, cwd: str | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc
        except urllib.error.HTTPError:
            return proc  # answering, if only with an error
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server {args} exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server {args} did not answer at {url} in 30 s")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on loopback, the environment pointing at it, and a
    bucket with zarr-python-written stores in it."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = _serve(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], endpoint)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": KEY,
        "AWS_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        fs = s3fs.S3FileSystem(
            asynchronous=True,
            key=KEY,
            secret=KEY,
            client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        )
        yield {"endpoint": endpoint, "client": client, "fs": fs}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.kill()
        proc.wait()


def _write(s3, path: str, data: np.ndarray, **kwargs) -> None:
    """zarr-python writes ``data`` to ``s3://BUCKET/path`` through s3fs."""
    store = zarr.storage.FsspecStore(s3["fs"], path=f"{BUCKET}/{path}", read_only=False)
    z = zarr.create_array(store=store, shape=data.shape, dtype=data.dtype, overwrite=True, **kwargs)
    z[...] = data


def _keys(s3, prefix: str) -> list[str]:
    out = s3["client"].list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in out.get("Contents", []))


@pytest.mark.parametrize(
    "layout",
    [
        {"zarr_format": 3, "chunks": (7, 9)},
        {"zarr_format": 2, "chunks": (7, 9)},
        {"zarr_format": 3, "chunks": (5, 5), "shards": (10, 20)},
    ],
    ids=["v3", "v2", "sharded"],
)
def test_a_zarr_python_store_in_a_bucket_reads_as_written(da, s3, rng, layout):
    data = rng.standard_normal((23, 40))
    name = f"layout-{layout['zarr_format']}-{'shards' in layout}.zarr"
    _write(s3, name, data, **layout)
    x = da.from_zarr(f"s3://{BUCKET}/{name}")
    assert x.shape == data.shape and x.dtype == data.dtype
    np.testing.assert_array_equal(x.compute(), data)
    # A reduction and a strided slice over the remote chunks.
    np.testing.assert_allclose(x.sum(axis=0).compute(), data.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(x[3:20:4, ::-3].compute(), data[3:20:4, ::-3])


def test_an_array_in_a_group_and_the_group_listing(da, s3, rng):
    root = zarr.open_group(
        zarr.storage.FsspecStore(s3["fs"], path=f"{BUCKET}/grp.zarr", read_only=False), mode="w"
    )
    a = rng.integers(0, 1000, size=(30, 12), dtype="i4")
    b = rng.standard_normal(17).astype("f4")
    root.create_array("a", shape=a.shape, dtype=a.dtype, chunks=(8, 5))[...] = a
    root.create_group("sub").create_array("b", shape=b.shape, dtype=b.dtype, chunks=(4,))[...] = b
    root["a"].attrs["units"] = "K"
    x = da.open(f"s3://{BUCKET}/grp.zarr/a")
    np.testing.assert_array_equal(x.compute(), a)
    assert int(x.sum().compute()) == int(a.sum())
    np.testing.assert_array_equal(da.from_zarr(f"s3://{BUCKET}/grp.zarr", component="sub/b"), b)
    # Opening the group itself says to name an array in it.
    with pytest.raises(Exception, match="is a Zarr group, not an array"):
        da.open(f"s3://{BUCKET}/grp.zarr")


def test_a_glob_over_a_bucket_opens_every_match_in_order(da, s3):
    for i in (2, 0, 1):
        _write(s3, f"runs/r{i}.zarr", np.full((4, 3), i, dtype="i2"), chunks=(2, 3))
    _write(s3, "runs/other.zarr", np.zeros((4, 3), dtype="i2"), chunks=(2, 3))
    xs = da.open_many(f"s3://{BUCKET}/runs/r*.zarr")
    assert [int(x[0, 0].compute()) for x in xs] == [0, 1, 2]
    stacked = da.stack(xs).compute()
    np.testing.assert_array_equal(stacked, np.stack([np.full((4, 3), i, "i2") for i in range(3)]))
    with pytest.raises(Exception, match="no stores match"):
        da.open_many(f"s3://{BUCKET}/runs/q*.zarr")


def test_missing_stores_and_arrays_are_named(da, s3):
    with pytest.raises(Exception, match=r"no Zarr store at s3://ndstream-test/absent\.zarr"):
        da.open(f"s3://{BUCKET}/absent.zarr")
    _write(s3, "one.zarr", np.arange(6.0), chunks=(3,))
    with pytest.raises(Exception, match="no array or group `nope`"):
        da.open(f"s3://{BUCKET}/one.zarr/nope")
    with pytest.raises(Exception, match="only Zarr stores and HDF5/netCDF-4 files"):
        da.open(f"s3://{BUCKET}/x.npy")
    with pytest.raises(Exception, match=r"no such file: s3://ndstream-test/absent\.nc"):
        da.open(f"s3://{BUCKET}/absent.nc:/t2m")


def test_a_chunk_missing_from_the_bucket_reads_as_the_fill_value(da, s3):
    data = np.arange(12.0).reshape(3, 4)
    _write(s3, "holes.zarr", data, chunks=(1, 4), fill_value=-1.0)
    s3["client"].delete_object(Bucket=BUCKET, Key="holes.zarr/c/1/0")
    want = data.copy()
    want[1] = -1.0
    np.testing.assert_array_equal(da.from_zarr(f"s3://{BUCKET}/holes.zarr").compute(), want)


def test_a_corrupt_chunk_in_the_bucket_is_an_error_naming_its_url(da, s3):
    _write(s3, "bad.zarr", np.arange(12.0).reshape(3, 4), chunks=(1, 4))
    s3["client"].put_object(Bucket=BUCKET, Key="bad.zarr/c/2/0", Body=b"not zstd")
    x = da.from_zarr(f"s3://{BUCKET}/bad.zarr")
    with pytest.raises(Exception, match=r"s3://ndstream-test/bad\.zarr/c/2/0"):
        x.compute()


def _objects(s3, prefix: str) -> dict:
    """Every object under ``prefix``: key -> bytes."""
    c = s3["client"]
    return {k: c.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in _keys(s3, prefix)}


def _zarr_read(s3, path: str) -> np.ndarray:
    """zarr-python reads ``s3://BUCKET/path`` through s3fs."""
    store = zarr.storage.FsspecStore(s3["fs"], path=f"{BUCKET}/{path}", read_only=True)
    return zarr.open_array(store=store, mode="r")[...]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"zarr_format": 2, "codec": "gzip:5"},
        {"chunks": (10, 10), "codec": "zstd:3"},
    ],
    ids=["v3", "v2-gzip", "rechunked-zstd"],
)
def test_an_array_written_to_a_bucket_reads_back_in_zarr_python(da, s3, rng, kwargs):
    data = rng.standard_normal((45, 33))
    name = "w-" + "-".join(f"{k}{v}" for k, v in kwargs.items()).replace(" ", "") + ".zarr"
    x = da.from_array(data, chunks=(20, 15))
    (x * 2 - 1).to_zarr(f"s3://{BUCKET}/{name}", **kwargs)
    np.testing.assert_array_equal(_zarr_read(s3, name), data * 2 - 1)
    keys = _keys(s3, name + "/")
    assert not any(k.endswith(".ndstream-incomplete") for k in keys), keys
    # And ndstream reads it back by URL.
    np.testing.assert_array_equal(da.from_zarr(f"s3://{BUCKET}/{name}").compute(), data * 2 - 1)


def test_an_array_in_a_new_group_of_a_bucket(da, s3):
    da.arange(24, chunks=5).reshape(4, 6).to_zarr(f"s3://{BUCKET}/newgrp.zarr/sub/x")
    g = zarr.open_group(
        zarr.storage.FsspecStore(s3["fs"], path=f"{BUCKET}/newgrp.zarr", read_only=True), mode="r"
    )
    np.testing.assert_array_equal(g["sub/x"][...], np.arange(24).reshape(4, 6))


def test_an_existing_array_in_a_bucket_is_kept_unless_overwritten(da, s3):
    _write(s3, "keep.zarr", np.arange(10.0), chunks=(4,))
    before = _objects(s3, "")
    with pytest.raises(Exception, match="already exists"):
        da.ones(10, chunks=4).to_zarr(f"s3://{BUCKET}/keep.zarr")
    # Output = input, even with the bucket named another way, refused
    # before anything is removed.
    for url in (f"s3://{BUCKET}/keep.zarr", f"s3a://{BUCKET}/keep.zarr/"):
        for mode in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(Exception, match=r"keep\.zarr"):
                (da.from_zarr(f"s3://{BUCKET}/keep.zarr") + 1).to_zarr(url, **mode)
    # An overwrite the groups above refuse (a Zarr v2 group, a v3 write)
    # is refused before the array in it is erased.
    g = zarr.open_group(
        zarr.storage.FsspecStore(s3["fs"], path=f"{BUCKET}/g2.zarr", read_only=False),
        mode="w",
        zarr_format=2,
    )
    g.create_array("a", shape=(5,), dtype="f8", chunks=(2,))[...] = 3.0
    before = _objects(s3, "")
    with pytest.raises(Exception, match="is Zarr V2 but the write asks for Zarr V3"):
        da.ones(5, chunks=2).to_zarr(f"s3://{BUCKET}/g2.zarr/a", overwrite=True)
    assert _objects(s3, "") == before
    # Objects that are not a Zarr node are never deleted.
    c = s3["client"]
    c.put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"keep me")
    before = _objects(s3, "")
    with pytest.raises(Exception, match="not a Zarr array or group; refusing to delete it"):
        da.ones(10, chunks=4).to_zarr(f"s3://{BUCKET}/notes", overwrite=True)
    assert _objects(s3, "") == before


def test_a_new_array_in_a_bucket_is_claimed_by_one_writer(da, s3, rng):
    """A new array claims its prefix with a conditional PUT of its
    incomplete marker, after every check and before anything else: a
    writer that finds another's marker there (put after it looked, or left
    by a write interrupted as it began) is refused and changes nothing;
    ``--resume`` and ``--overwrite`` take the prefix over. Two writers
    started together end with one array whole: the winner's."""
    c = s3["client"]
    c.put_object(Bucket=BUCKET, Key="claimed.zarr/.ndstream-incomplete", Body=b"another writer\n")
    before = _objects(s3, "")
    with pytest.raises(Exception, match=r"claimed\.zarr is being created by another writer"):
        da.ones((6, 4), chunks=(3, 2)).to_zarr(f"s3://{BUCKET}/claimed.zarr")
    assert _objects(s3, "") == before
    data = rng.standard_normal((6, 4))
    da.from_array(data, chunks=(3, 2)).to_zarr(f"s3://{BUCKET}/claimed.zarr", overwrite=True)
    np.testing.assert_array_equal(_zarr_read(s3, "claimed.zarr"), data)
    # Two CLI writers racing for one new array: one wins whole, the other
    # is refused (by the claim, or by the array it then finds).
    cli = _cli()
    if cli is None:
        return
    procs = [
        subprocess.Popen(
            [str(cli), "convert", "-q", "--chunks", "5,5", src, f"s3://{BUCKET}/race.zarr"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in (f"s3://{BUCKET}/claimed.zarr", f"s3://{BUCKET}/claimed.zarr")
    ]
    outs = [(p.wait(), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in outs].count(0) == 1, outs
    np.testing.assert_array_equal(_zarr_read(s3, "race.zarr"), data)
    assert not any(k.endswith(".ndstream-incomplete") for k in _keys(s3, "race.zarr/"))


def test_an_overwrite_in_a_bucket_replaces_the_array_and_nothing_else(da, s3, rng):
    # The old array: Zarr v2, another shape and chunking, with attributes;
    # a sibling whose name starts like it.
    _write(s3, "old.zarr", rng.standard_normal((30, 8)), chunks=(7, 3), zarr_format=2)
    _write(s3, "old.zarr-sib", np.arange(5.0), chunks=(2,))
    sibling = _objects(s3, "old.zarr-sib/")
    new = rng.integers(0, 100, size=(6, 9), dtype="i4")
    x = da.from_array(new, chunks=(4, 4))
    x.to_zarr(f"s3://{BUCKET}/old.zarr", overwrite=True)
    np.testing.assert_array_equal(_zarr_read(s3, "old.zarr"), new)
    # The same objects as the array written afresh: nothing of the old one
    # is left (no `.zarray`, no chunk of the old grid), and no marker.
    x.to_zarr(f"s3://{BUCKET}/fresh.zarr")
    got = {k[len("old.zarr/") :]: v for k, v in _objects(s3, "old.zarr/").items()}
    want = {k[len("fresh.zarr/") :]: v for k, v in _objects(s3, "fresh.zarr/").items()}
    assert got == want
    assert _objects(s3, "old.zarr-sib/") == sibling
    # A group with arrays in it is replaced whole, as zarr-python does.
    g = zarr.open_group(
        zarr.storage.FsspecStore(s3["fs"], path=f"{BUCKET}/g.zarr", read_only=False), mode="w"
    )
    g.create_array("a", shape=(5,), dtype="f8", chunks=(2,))[...] = 1.0
    x.to_zarr(f"s3://{BUCKET}/g.zarr", overwrite=True)
    np.testing.assert_array_equal(_zarr_read(s3, "g.zarr"), new)
    assert not [k for k in _keys(s3, "g.zarr/") if k.startswith("g.zarr/a/")]


def test_an_interrupted_overwrite_in_a_bucket_is_marked_and_finished_by_the_next(da, s3, rng):
    # What an overwrite killed while removing the old array leaves: the
    # marker, some old chunks, no metadata. It reads as no array at all,
    # a resume refuses it, and the next overwrite clears it.
    c = s3["client"]
    c.put_object(Bucket=BUCKET, Key="cut-ow.zarr/.ndstream-incomplete", Body=b"")
    c.put_object(Bucket=BUCKET, Key="cut-ow.zarr/c/0/0", Body=b"old")
    c.put_object(Bucket=BUCKET, Key="cut-ow.zarr/c/9/9", Body=b"old")
    data = rng.standard_normal((12, 5))
    x = da.from_array(data, chunks=(5, 5))
    with pytest.raises(Exception, match="already exists"):
        x.to_zarr(f"s3://{BUCKET}/cut-ow.zarr")
    with pytest.raises(Exception, match="cannot resume"):
        x.to_zarr(f"s3://{BUCKET}/cut-ow.zarr", resume=True)
    x.to_zarr(f"s3://{BUCKET}/cut-ow.zarr", overwrite=True)
    np.testing.assert_array_equal(_zarr_read(s3, "cut-ow.zarr"), data)
    keys = _keys(s3, "cut-ow.zarr/")
    assert "cut-ow.zarr/c/9/9" not in keys and "cut-ow.zarr/.ndstream-incomplete" not in keys


def test_an_interrupted_write_to_a_bucket_resumes_to_the_same_bytes(da, s3, rng):
    data = rng.standard_normal((40, 30))
    x = da.from_array(data, chunks=(10, 10))
    x.to_zarr(f"s3://{BUCKET}/ref.zarr", codec="zstd:1")
    x.to_zarr(f"s3://{BUCKET}/cut.zarr", codec="zstd:1")
    # What a killed write leaves: the marker back, chunks missing or torn.
    c = s3["client"]
    c.put_object(Bucket=BUCKET, Key="cut.zarr/.ndstream-incomplete", Body=b"")
    c.delete_object(Bucket=BUCKET, Key="cut.zarr/c/1/2")
    c.delete_object(Bucket=BUCKET, Key="cut.zarr/c/3/0")
    c.put_object(Bucket=BUCKET, Key="cut.zarr/c/0/0", Body=b"\x28\xb5\x2f")
    with pytest.raises(Exception, match="already exists"):
        x.to_zarr(f"s3://{BUCKET}/cut.zarr", codec="zstd:1")
    x.to_zarr(f"s3://{BUCKET}/cut.zarr", codec="zstd:1", resume=True)
    ref = {k[len("ref.zarr/") :]: v for k, v in _objects(s3, "ref.zarr/").items()}
    cut = {k[len("cut.zarr/") :]: v for k, v in _objects(s3, "cut.zarr/").items()}
    assert cut == ref
    # A resume with another layout is refused, naming both.
    with pytest.raises(Exception, match="cannot resume"):
        x.to_zarr(f"s3://{BUCKET}/cut.zarr", codec="zstd:1", chunks=(20, 20), resume=True)


def test_the_endpoint_and_keys_come_from_an_aws_profile(da, s3, rng, tmp_path, monkeypatch):
    """With nothing in the environment but ``AWS_PROFILE``, the shared
    credentials and config files give the keys, the region and the
    endpoint, as they do to boto3."""
    data = rng.standard_normal((8, 6))
    _write(s3, "profile.zarr", data, chunks=(3, 3))
    (tmp_path / "credentials").write_text(
        f"[default]\naws_access_key_id = wrong\n\n[moto]\n"
        f"aws_access_key_id = {KEY}\naws_secret_access_key = {KEY}\n"
    )
    (tmp_path / "config").write_text(
        f"[profile moto]\nregion = us-east-1\nendpoint_url = {s3['endpoint']}\n"
    )
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "moto")
    x = da.from_zarr(f"s3://{BUCKET}/profile.zarr")
    np.testing.assert_array_equal(x.compute(), data)
    (x + 1).to_zarr(f"s3://{BUCKET}/profile-out.zarr")
    monkeypatch.setenv("AWS_PROFILE", "missing")
    with pytest.raises(Exception, match="the AWS profile `missing`"):
        da.from_zarr(f"s3://{BUCKET}/profile.zarr")
    monkeypatch.undo()
    np.testing.assert_array_equal(_zarr_read(s3, "profile-out.zarr"), data + 1)


def test_the_cli_reads_and_writes_a_bucket(s3, rng, tmp_path):
    exe = _cli()
    if exe is None:
        pytest.skip("no ndstream binary built (cargo build)")
    data = rng.standard_normal((20, 6))
    _write(s3, "cli.zarr", data, chunks=(6, 6))
    url = f"s3://{BUCKET}/cli.zarr"
    info = subprocess.run(
        [exe, "info", url], check=False, capture_output=True, text=True, env=os.environ
    )
    assert info.returncode == 0, info.stderr
    lines = dict(line.split(None, 1) for line in info.stdout.splitlines() if line.strip())
    assert lines["format"] == "zarr v3" and lines["shape"] == "(20, 6)", info.stdout
    assert lines["chunks"] == "(6, 6)" and lines["dtype"] == "float64", info.stdout
    # The stored size is the objects' total, listed from the bucket.
    stored = sum(
        o["Size"]
        for o in s3["client"].list_objects_v2(Bucket=BUCKET, Prefix="cli.zarr/")["Contents"]
    )
    assert f"({stored} bytes)" in lines["stored"], (stored, info.stdout)
    out = tmp_path / "local.zarr"
    conv = subprocess.run(
        [exe, "convert", url, str(out)], check=False, capture_output=True, text=True
    )
    assert conv.returncode == 0, conv.stderr
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], data)
    # A server that cannot be reached is a runtime failure (exit 1), named.
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}")
    down = subprocess.run([exe, "info", url], check=False, capture_output=True, text=True, env=env)
    assert down.returncode == 1, (down.returncode, down.stderr)
    assert "cannot read s3://ndstream-test/cli.zarr/zarr.json" in down.stderr, down.stderr
    # Local -> bucket, and the bucket's copy reads as the original.
    back = subprocess.run(
        [exe, "convert", str(out), f"s3://{BUCKET}/back.zarr", "--codec", "zstd:3"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert back.returncode == 0, back.stderr
    np.testing.assert_array_equal(_zarr_read(s3, "back.zarr"), data)
    # Again: the array exists (exit 2), and the bucket stays as it was.
    before = _objects(s3, "")
    again = subprocess.run(
        [exe, "convert", str(out), f"s3://{BUCKET}/back.zarr"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2, again.stderr
    assert "already exists" in again.stderr
    assert _objects(s3, "") == before


def _relative(objects: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in objects.items()}


def test_a_plan_writes_a_bucket_and_keeps_its_records_there(s3, rng, tmp_path):
    """``ndstream plan`` with its output and its work directory in the
    bucket: the tasks, run in parts and then by the process pool, write
    the bytes of the same job run in one process, and leave only the
    finish record and the plan's id under the work prefix."""
    _, cli = _cli_in(tmp_path)
    data = rng.standard_normal((60, 45))
    _write(s3, "plan-in.zarr", data, chunks=(8, 9))
    expr = f"x = open('s3://{BUCKET}/plan-in.zarr'); (x - x.mean(axis=0)) / x.std()"
    opts = ["--codec", "zstd:3", "--chunks", "16,20"]

    ref = cli("eval", expr, "-o", f"s3://{BUCKET}/plan-ref.zarr", *opts)
    assert ref.returncode == 0, ref.stderr
    work = f"s3://{BUCKET}/jobs/plan.work"
    made = cli(
        "plan", "-o", "job.json", "--work-dir", work,
        "eval", expr, "-o", f"s3://{BUCKET}/plan-out.zarr", *opts,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "job.json.work").exists()
    assert "plan-out.zarr/.ndstream-incomplete" in _keys(s3, "plan-out.zarr/")
    assert _keys(s3, "jobs/plan.work/") == ["jobs/plan.work/plan-id"]
    stages = json.loads((tmp_path / "job.json").read_text())["stages"]
    assert len(stages) >= 3, stages  # partials, merges, writes, finish
    # One task of the first stage, recorded in the bucket; then the pool
    # runs the rest (that task skipped).
    part = cli("run-task", "job.json", "--stage", "0", "--tasks", "0..1")
    assert part.returncode == 0, part.stderr
    assert "jobs/plan.work/stage-0/0" in _keys(s3, "jobs/plan.work/")
    status = cli("status", "job.json", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stages"][0]["done"] == 1, status.stdout
    run = cli("run", "job.json", "--processes", "2")
    assert run.returncode == 0, run.stderr
    out = _relative(_objects(s3, "plan-out.zarr/"), "plan-out.zarr/")
    assert out == _relative(_objects(s3, "plan-ref.zarr/"), "plan-ref.zarr/")
    assert ".ndstream-incomplete" not in out
    np.testing.assert_allclose(
        _zarr_read(s3, "plan-out.zarr"), (data - data.mean(axis=0)) / data.std(), rtol=1e-12
    )
    assert _keys(s3, "jobs/plan.work/") == sorted(
        ["jobs/plan.work/plan-id", f"jobs/plan.work/stage-{len(stages) - 1}/0"]
    )
    # A work directory inside the output, or inside an input, is refused
    # before anything is made.
    before = _objects(s3, "")
    for bad in (f"s3://{BUCKET}/plan-new.zarr/work", f"s3://{BUCKET}/plan-in.zarr/work"):
        r = cli(
            "plan", "-o", "again.json", "--work-dir", bad,
            "eval", expr, "-o", f"s3://{BUCKET}/plan-new.zarr", *opts,
        )  # fmt: skip
        assert r.returncode == 2, (bad, r.stderr)
        assert f"{bad}: the output would overwrite the input" in r.stderr, r.stderr
    # So is a work prefix that holds records already (this plan's).
    r = cli(
        "plan", "-o", "again.json", "--work-dir", work,
        "eval", expr, "-o", f"s3://{BUCKET}/plan-new.zarr", *opts,
    )  # fmt: skip
    assert r.returncode == 2 and "exists" in r.stderr, r.stderr
    assert _objects(s3, "") == before
    assert not (tmp_path / "again.json").exists()
    # A plan that overwrites an array in a bucket replaces it in place (no
    # rename there), marked incomplete until its last stage, and ends with
    # the bytes of the same overwrite run in one process.
    expr2 = f"open('s3://{BUCKET}/plan-in.zarr')[::2] * 2"
    ref2 = cli("eval", expr2, "-o", f"s3://{BUCKET}/plan-ref.zarr", "--overwrite", *opts)
    assert ref2.returncode == 0, ref2.stderr
    r = cli(
        "plan", "-o", "over.json", "--work-dir", f"s3://{BUCKET}/jobs/over.work",
        "eval", expr2, "-o", f"s3://{BUCKET}/plan-out.zarr", "--overwrite", *opts,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not json.loads((tmp_path / "over.json").read_text())["output"]["replace"]
    assert "plan-out.zarr/.ndstream-incomplete" in _keys(s3, "plan-out.zarr/")
    run = cli("run", "over.json", "--processes", "2")
    assert run.returncode == 0, run.stderr
    out = _relative(_objects(s3, "plan-out.zarr/"), "plan-out.zarr/")
    assert out == _relative(_objects(s3, "plan-ref.zarr/"), "plan-ref.zarr/")
    np.testing.assert_array_equal(_zarr_read(s3, "plan-out.zarr"), data[::2] * 2)
    # An HDF5 file on disk with the work prefix in the bucket: the tasks
    # write their Zarr array under the prefix, the last stage copies it
    # into the file and removes it; the dataset is the one-process run's.
    h5py = pytest.importorskip("h5py")
    h5_opts = ["--codec", "gzip:2", "--chunks", "16,20"]
    ref3 = cli("eval", expr, "-o", "ref.h5:/y", *h5_opts)
    assert ref3.returncode == 0, ref3.stderr
    r = cli(
        "plan", "-o", "h5.json", "--work-dir", f"s3://{BUCKET}/jobs/h5.work",
        "eval", expr, "-o", "out.h5:/y", *h5_opts,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "jobs/h5.work/output.zarr/.ndstream-incomplete" in _keys(s3, "jobs/h5.work/")
    run = cli("run", "h5.json", "--processes", "2")
    assert run.returncode == 0, run.stderr
    with h5py.File(tmp_path / "ref.h5", "r") as a, h5py.File(tmp_path / "out.h5", "r") as b:
        assert b["y"][...].tobytes() == a["y"][...].tobytes()
        assert (b["y"].chunks, b["y"].compression) == ((16, 20), "gzip")
        np.testing.assert_allclose(b["y"][...], (data - data.mean(axis=0)) / data.std(), rtol=1e-12)
    n = len(json.loads((tmp_path / "h5.json").read_text())["stages"])
    assert _keys(s3, "jobs/h5.work/") == sorted(
        ["jobs/h5.work/plan-id", f"jobs/h5.work/stage-{n - 1}/0"]
    )


def test_a_plan_in_a_bucket_killed_midway_then_run_again_has_the_same_bytes(s3, rng, tmp_path):
    """``kill -9`` of ``ndstream run`` (the pool and its task processes)
    at several moments of a plan whose output and records are in the
    bucket, then ``run`` again: the array is the one-process run's, byte
    for byte, and only the finish record and the id stay under the work
    prefix."""
    import signal

    exe, cli = _cli_in(tmp_path)
    data = rng.standard_normal((240, 180))
    _write(s3, "kill-in.zarr", data, chunks=(20, 30))
    expr = f"x = open('s3://{BUCKET}/kill-in.zarr'); (x - x.mean(axis=0)) / x.std()"
    opts = ["--codec", "zstd:1", "--chunks", "20,30"]

    ref = cli("eval", expr, "-o", f"s3://{BUCKET}/kill-ref.zarr", *opts)
    assert ref.returncode == 0, ref.stderr
    want = _relative(_objects(s3, "kill-ref.zarr/"), "kill-ref.zarr/")
    kills, moments = 0, [0.15, 0.4, 0.8, 1.5, 0.25, 0.6, 1.1, 2.0]
    for n in range(4):
        plan, work = f"kill{n}.json", f"jobs/kill{n}.work"
        made = cli(
            "plan", "-o", plan, "--work-dir", f"s3://{BUCKET}/{work}",
            "eval", expr, "-o", f"s3://{BUCKET}/kill-out{n}.zarr", *opts,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        for delay in moments[2 * n : 2 * n + 2]:
            p = subprocess.Popen(
                [exe, "--quiet", "run", plan, "--processes", "2", "--threads", "1"],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(delay)
            if p.poll() is not None:
                break
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            kills += 1
        again = cli("run", plan)
        assert again.returncode == 0, again.stderr
        out = _relative(_objects(s3, f"kill-out{n}.zarr/"), f"kill-out{n}.zarr/")
        assert out == want, n
        stages = json.loads((tmp_path / plan).read_text())["stages"]
        assert _keys(s3, f"{work}/") == sorted(
            [f"{work}/plan-id", f"{work}/stage-{len(stages) - 1}/0"]
        )
    assert kills >= 2, kills


def test_a_dask_cluster_writes_a_bucket_with_no_shared_files(da, s3, rng, tmp_path):
    """``to_zarr("s3://…", scheduler=client)``: the workers get the plan as
    text and keep their records in the bucket; the bytes are those of the
    same write run in this process, and nothing of the job is left. With
    ``temporary_directory`` in the bucket, ``compute`` works the same way."""
    distributed = pytest.importorskip("distributed")
    data = rng.standard_normal((50, 36))
    _write(s3, "dask-in.zarr", data, chunks=(10, 12))
    x = da.from_zarr(f"s3://{BUCKET}/dask-in.zarr")
    y = x - x.mean(axis=0)
    y.to_zarr(f"s3://{BUCKET}/dask-ref.zarr", codec="zstd:3")
    # The workers start after the fixture set the endpoint and keys in
    # this process's environment, and inherit them.
    with (
        local_cluster() as cluster,
        distributed.Client(cluster) as client,
    ):
        y.to_zarr(f"s3://{BUCKET}/dask-out.zarr", codec="zstd:3", scheduler=client)
        # A compute's result goes through a bucket prefix, removed after.
        m = x.mean(axis=0)
        with da.config.set(temporary_directory=f"s3://{BUCKET}/scratch"):
            there = m.compute(scheduler=client)
        assert not _keys(s3, "scratch/")
    here = m.compute()
    assert there.dtype == here.dtype and there.tobytes() == here.tobytes()
    out = _relative(_objects(s3, "dask-out.zarr/"), "dask-out.zarr/")
    assert out == _relative(_objects(s3, "dask-ref.zarr/"), "dask-ref.zarr/")
    assert not [k for k in _keys(s3, "") if ".ndstream-plan-" in k]
    np.testing.assert_allclose(
        _zarr_read(s3, "dask-out.zarr"), data - data.mean(axis=0), rtol=1e-12
    )
    # The clean-up removes only what carries its temporary names.
    from ndstream import _ndstream

    before = _objects(s3, "")
    with pytest.raises(ValueError, match="not a temporary directory"):
        _ndstream.remove_temporary(f"s3://{BUCKET}/dask-out.zarr")
    assert _objects(s3, "") == before


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_store_on_a_web_server_reads_as_written(da, s3, rng, zarr_format):
    """The S3 server answers plain unsigned GETs of ``/bucket/key`` (with
    byte ranges, as web servers do): read the store as a web site."""
    data = rng.integers(-50, 50, size=(9, 11), dtype="i8")
    _write(s3, f"w{zarr_format}.zarr", data, chunks=(4, 4), zarr_format=zarr_format)
    s3["client"].put_bucket_acl(Bucket=BUCKET, ACL="public-read")
    for key in _keys(s3, f"w{zarr_format}.zarr/"):
        s3["client"].put_object_acl(Bucket=BUCKET, Key=key, ACL="public-read")
    x = da.from_zarr(f"{s3['endpoint']}/{BUCKET}/w{zarr_format}.zarr")
    np.testing.assert_array_equal(x.compute(), data)
    assert int(x.sum().compute()) == int(data.sum())
    # A web server is read-only: a write is refused, naming why.
    with pytest.raises(Exception, match="read-only"):
        x.to_zarr(f"{s3['endpoint']}/{BUCKET}/www-out.zarr")


def test_a_store_behind_20_ms_per_request_is_read_with_requests_in_flight(da, s3, rng, tmp_path):
    """The latency of a real object store, added by a loopback proxy: each
    request is held 20 ms. The reads agree with NumPy, and more requests
    were under way at once than there were workers (the read-ahead, by
    fetches: more than its I/O threads could hold, one request each)."""
    data = rng.standard_normal((48, 30, 40))
    _write(s3, "latency.zarr", data, zarr_format=3, chunks=(1, 15, 20))  # 192 chunks
    status = tmp_path / "most-at-once"
    port = s3["endpoint"].rsplit(":", 1)[1]
    proxy = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("delay_proxy.py")), port, "20", str(status)],
        stdout=subprocess.PIPE,
        text=True,
    )
    saved = os.environ["AWS_ENDPOINT_URL"]
    try:
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{int(proxy.stdout.readline())}"
        x = da.from_zarr(f"s3://{BUCKET}/latency.zarr")
        mean, total = da.compute(x.mean(axis=0), x[::-3, 1::2].sum(), threads=2)
        np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(total, data[::-3, 1::2].sum(), rtol=1e-12)
        store = str(tmp_path / "local.zarr")
        x.to_zarr(store)
        np.testing.assert_array_equal(zarr.open_array(store, mode="r")[...], data)
        # Fetched chunks decode as read ones do: a missing chunk is the
        # fill value (v2 and v3), a corrupt one an error naming its object.
        for fmt, sep in ((3, "/c/"), (2, "/")):
            name = f"holes-v{fmt}.zarr"
            _write(s3, name, data, zarr_format=fmt, chunks=(1, 15, 20), fill_value=-1.0)
            for k in ("17/0/1", "40/1/0"):
                s3["client"].delete_object(
                    Bucket=BUCKET, Key=name + sep + k.replace("/", "." if fmt == 2 else "/")
                )
            want = data.copy()
            want[17, :15, 20:] = -1.0
            want[40, 15:, :20] = -1.0
            np.testing.assert_array_equal(
                da.from_zarr(f"s3://{BUCKET}/{name}").compute(threads=2), want
            )
        s3["client"].put_object(Bucket=BUCKET, Key="latency.zarr/c/33/1/1", Body=b"not zstd")
        with pytest.raises(Exception, match=r"s3://ndstream-test/latency\.zarr/c/33/1/1"):
            da.from_zarr(f"s3://{BUCKET}/latency.zarr").sum().compute(threads=2)
    finally:
        os.environ["AWS_ENDPOINT_URL"] = saved
        proxy.kill()
        proxy.wait()
    most = int(status.read_text())
    assert most > 2, f"at most {most} requests at once with 2 workers: nothing was read ahead"
    # Fetched from one thread, not a thread per request: more requests at
    # once than the 32 I/O threads (and 2 workers) the read-ahead had.
    assert most > 40, f"at most {most} requests at once"


def _proxy(s3, tmp_path, delay_ms: int):
    """The delay proxy in front of the server: (process, its endpoint, the
    file it writes the bytes the server sent to)."""
    sent = tmp_path / f"sent-{delay_ms}"
    port = s3["endpoint"].rsplit(":", 1)[1]
    proxy = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("delay_proxy.py")),
            port,
            str(delay_ms),
            str(tmp_path / f"most-{delay_ms}"),
            str(sent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proxy, f"http://127.0.0.1:{int(proxy.stdout.readline())}", sent


def _hdf5_file(path: Path, rng) -> dict:
    """An HDF5 file as h5py writes netCDF-4-like data: a filtered chunked
    dataset in a group, a contiguous big-endian one, a sparse one with a
    fill value, and a large one no test reads."""
    h5py = pytest.importorskip("h5py")
    arrays = {
        "g/x": rng.standard_normal((50, 41)),
        "c": np.arange(3000, dtype=">i4").reshape(30, 100),
        "big": rng.standard_normal(2_000_000),
    }
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "g/x",
            data=arrays["g/x"],
            chunks=(7, 9),
            compression="gzip",
            shuffle=True,
            fletcher32=True,
        )
        f.create_dataset("c", data=arrays["c"])
        f.create_dataset("big", data=arrays["big"], chunks=(5_000,))
        f.create_dataset("sparse", shape=(20, 20), chunks=(5, 5), dtype="f8", fillvalue=-7.0)
        f["sparse"][5:10, 0:5] = 1.5
        f["g/x"].attrs["scale"] = 2.5
    sparse = np.full((20, 20), -7.0)
    sparse[5:10, 0:5] = 1.5
    arrays["sparse"] = sparse
    return arrays


def test_an_hdf5_file_in_a_bucket_is_read_by_byte_ranges(da, s3, rng, tmp_path):
    """An HDF5/netCDF-4 file in a bucket is read where its chunk index puts
    each chunk, never downloaded: the bytes the server sends while one small
    dataset is read are a small part of the file. The values (and the bits
    of a reduction) are the local file's; chunked, contiguous and sparse
    datasets, filters, groups and attributes read as h5py wrote them."""
    path = tmp_path / "f.h5"
    arrays = _hdf5_file(path, rng)
    s3["client"].upload_file(str(path), BUCKET, "nc/f.h5")
    size = path.stat().st_size
    proxy, endpoint, sent = _proxy(s3, tmp_path, 20)
    saved = os.environ["AWS_ENDPOINT_URL"]
    try:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        x = da.open(f"s3://{BUCKET}/nc/f.h5:/g/x")
        assert x.shape == (50, 41) and x.chunksize == (7, 9) and x.dtype == np.float64
        np.testing.assert_array_equal(x.compute(), arrays["g/x"])
        local = da.open(f"{path}:/g/x")
        for threads in (1, 2):
            assert x.mean(axis=0).compute(threads=threads).tobytes() == (
                local.mean(axis=0).compute(threads=threads).tobytes()
            )
        np.testing.assert_array_equal(da.open(f"s3://{BUCKET}/nc/f.h5:c").compute(), arrays["c"])
        np.testing.assert_array_equal(
            da.open(f"s3://{BUCKET}/nc/f.h5:/sparse").compute(), arrays["sparse"]
        )
        read = int(sent.read_text())
        # Behind 20 ms per request, the 400 chunks of the large dataset are
        # fetched ahead of the 2 workers.
        big = da.open(f"s3://{BUCKET}/nc/f.h5:/big")
        assert big.sum().compute(threads=2) == da.open(f"{path}:/big").sum().compute(threads=2)
    finally:
        os.environ["AWS_ENDPOINT_URL"] = saved
        proxy.kill()
        proxy.wait()
    assert size > 16_000_000
    # The datasets read, and the few 512 KiB blocks their metadata lies in.
    assert read < size // 4, f"{read} bytes sent of a {size}-byte file"
    # Fetched ahead from one thread: more requests at once than the 2
    # workers and the 32 I/O threads a thread per request would have had.
    most = int((tmp_path / "most-20").read_text())
    assert most > 40, f"at most {most} requests at once"
    # The whole dataset through the bucket, and a write to the file refused.
    big = da.open(f"s3://{BUCKET}/nc/f.h5:/big")
    np.testing.assert_array_equal(big.compute(), arrays["big"])
    with pytest.raises(Exception, match="reached by URL is read-only"):
        da.to_hdf5(f"s3://{BUCKET}/nc/f.h5", "/y", x)
    # A file replaced after it was opened is not read as a mixture of the two.
    with open(path, "ab") as f:
        f.write(b"a new version")
    s3["client"].upload_file(str(path), BUCKET, "nc/f.h5")
    with pytest.raises(Exception, match=r"s3://ndstream-test/nc/f\.h5 changed since it was opened"):
        big.sum().compute()


def test_hdf5_files_by_url_glob_web_server_and_errors(da, s3, rng, tmp_path):
    """A glob over a bucket's HDF5 files opens each in order (reached
    together); a web server serves one to the anonymous reader; a netCDF-3
    file and a missing dataset are refused by name; libhdf5's own S3
    driver reads what ndstream's does."""
    parts = []
    for i in range(3):
        path = tmp_path / f"p{i}.nc"
        parts.append(_hdf5_file(path, rng)["g/x"])
        s3["client"].upload_file(str(path), BUCKET, f"parts/p{i}.nc")
    s3["client"].put_object(Bucket=BUCKET, Key="parts/notes.txt", Body=b"not a match")
    xs = da.open_many(f"s3://{BUCKET}/parts/p*.nc:/g/x")
    assert len(xs) == 3
    np.testing.assert_array_equal(da.stack(xs).compute(), np.stack(parts))
    # Over plain HTTP (no signing) from the same server.
    s3["client"].put_object_acl(Bucket=BUCKET, Key="parts/p1.nc", ACL="public-read")
    web = da.open(f"{s3['endpoint']}/{BUCKET}/parts/p1.nc:/g/x")
    np.testing.assert_array_equal(web.compute(), parts[1])
    with pytest.raises(Exception, match="no dataset /nope"):
        da.open(f"s3://{BUCKET}/parts/p0.nc:/nope")
    s3["client"].put_object(Bucket=BUCKET, Key="classic.nc", Body=b"CDF\x01" + bytes(28))
    with pytest.raises(Exception, match="netCDF-3 file, which is read from a local path only"):
        da.open(f"s3://{BUCKET}/classic.nc:/t")
    # libhdf5's own S3 driver, where ndstream's is not used, reads the same.
    cli = _cli()
    if cli is not None:
        env = dict(os.environ, NDSTREAM_HDF5_URL_DRIVER="ros3")
        got = subprocess.run(
            [str(cli), "eval", "-q", "--json", f"open('s3://{BUCKET}/parts/p2.nc:/g/x')"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        np.testing.assert_array_equal(np.array(json.loads(got.stdout)["data"]), parts[2])
