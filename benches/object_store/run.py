#!/usr/bin/env python3
"""ndstream reading from and writing to an S3-compatible server on loopback
against the same jobs on local disk, and against zarr-python + Dask through
s3fs on the same server (issue "Storage and formats").

    python benches/object_store/run.py [--data DIR] [--runs N] [--delay-ms MS] [--s3s-fs BIN]

Needs a Python with numpy, h5py, zarr, dask, moto[server], boto3 and s3fs,
and the release CLI (``cargo build --release -p ndstream-cli``). The data is
the peer benchmark's quick set (benches/peer/gen_data.py --quick: 31 fields
of 720 x 1440 float32, chunks 250), generated into DIR if missing.

The server is moto (``python -m moto.server``), or with ``--s3s-fs BIN``
the s3s-fs server (Rust, over a local directory), in a child process; with
``--delay-ms`` every request reaches it through a loopback proxy in another
child process (python/tests/delay_proxy.py) that holds each request for
that long (the latency of a real object store; the issue's figure is 20 ms).

Workloads (BENCHMARKS.md): W5c, the mean over axis 0 of the Zarr stack, to
``.npy``; W5a, the HDF5 stack written to Zarr v3, zstd level 3, chunks
(1, 250, 250); W5c-h5, the mean over axis 0 of the 31 HDF5 files read in
place by URL (byte ranges; ``--workloads`` picks). Sides alternate, --runs
times each: ndstream on local disk, ndstream on the server, for W5c
zarr-python + Dask (threaded scheduler) through s3fs, and for W5c-h5 h5py
+ Dask reading the files through s3fs (what xarray's h5netcdf engine
does). The results and the W5a stores are checked to be the same bytes on
every side.
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "benches", "peer"))

BUCKET = "bench"
KEY = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def med(xs: list) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--workloads", default="W5c,W5a,W5c-h5")
    p.add_argument(
        "--s3s-fs",
        default=None,
        metavar="BIN",
        help="serve S3 with this s3s-fs binary (a Rust server over a local directory: "
        "`cargo install s3s-fs --features binary`) instead of moto, whose Python "
        "request handling (~6 ms a request) is otherwise the bottleneck",
    )
    a = p.parse_args()

    import boto3
    import dask.array as dda
    import gen_data
    import s3fs
    import zarr

    data = a.data or os.path.join(ROOT, "bench-data", "peer-quick")
    if not os.path.exists(os.path.join(data, "sizes.json")):
        cmd = [
            sys.executable,
            os.path.join(ROOT, "benches", "peer", "gen_data.py"),
            data,
            "--quick",
        ]
        subprocess.run(cmd, check=True)
    s = gen_data.sizes(True)
    c = s["chunk"]
    exe = os.path.join(ROOT, "target", "release", "ndstream")
    if not os.path.exists(exe):
        sys.exit("build the release CLI first: cargo build --release -p ndstream-cli")

    port = free_port()
    if a.s3s_fs:
        served = tempfile.mkdtemp(prefix="ndstream-s3s-", dir=data)
        cmd = [
            a.s3s_fs,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--access-key",
            KEY,
            "--secret-key",
            KEY,
            served,
        ]
    else:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    moto = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    direct = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(direct, timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    endpoint = direct
    proxy = None
    if a.delay_ms > 0:
        # In a child process: its threads must not compete for this
        # process's GIL with the Dask side.
        proxy = subprocess.Popen(
            [
                sys.executable,
                os.path.join(ROOT, "python", "tests", "delay_proxy.py"),
                str(port),
                str(a.delay_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        endpoint = f"http://127.0.0.1:{int(proxy.stdout.readline())}"
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=KEY,
        AWS_REGION="us-east-1",
    )
    try:
        client = boto3.client(
            "s3",
            endpoint_url=direct,
            aws_access_key_id=KEY,
            aws_secret_access_key=KEY,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        stack = os.path.join(data, "weather-big.zarr")
        t0 = time.perf_counter()
        for d, _, files in os.walk(stack):
            for f in files:
                path = os.path.join(d, f)
                client.upload_file(
                    path, BUCKET, "weather-big.zarr/" + os.path.relpath(path, stack)
                )
        for f in sorted(glob.glob(os.path.join(data, "weather-big", "*.hdf5"))):
            client.upload_file(f, BUCKET, "weather-big/" + os.path.basename(f))
        print(
            f"uploaded the Zarr stack and the HDF5 files in {time.perf_counter() - t0:.1f} s"
        )
        fs = s3fs.S3FileSystem(
            key=KEY,
            secret=KEY,
            asynchronous=True,
            client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        )
        out = tempfile.mkdtemp(prefix="ndstream-s3-bench-", dir=data)
        files = sorted(glob.glob(os.path.join(data, "weather-big", "*.hdf5")))
        print(
            f"data {data}: {len(files)} fields {s['h']}x{s['w']} float32, chunks {c}; "
            f"server {'s3s-fs' if a.s3s_fs else 'moto'} on loopback, {a.delay_ms:g} ms added per request"
        )
        n = [0]

        def nd(args: list) -> None:
            subprocess.run([exe, "--quiet", *args], check=True, env=env)

        def fresh() -> int:
            n[0] += 1
            return n[0]

        def w5c_local():
            nd(
                [
                    "eval",
                    f"open('{stack}').mean(axis=0)",
                    "-o",
                    os.path.join(out, f"w5c-local-{fresh()}.npy"),
                ]
            )

        def w5c_s3():
            nd(
                [
                    "eval",
                    f"open('s3://{BUCKET}/weather-big.zarr').mean(axis=0)",
                    "-o",
                    os.path.join(out, f"w5c-s3-{fresh()}.npy"),
                ]
            )

        def w5c_dask():
            store = zarr.storage.FsspecStore(
                fs, path=f"{BUCKET}/weather-big.zarr", read_only=True
            )
            z = dda.from_zarr(zarr.open_array(store=store, mode="r"))
            np.save(
                os.path.join(out, f"w5c-dask-{fresh()}.npy"), z.mean(axis=0).compute()
            )

        def w5h(where: str, name: str):
            expr = f"stack('{where}/*.hdf5:/t2m').mean(axis=0)"
            nd(["eval", expr, "-o", os.path.join(out, f"w5h-{name}-{fresh()}.npy")])

        def w5h_dask():
            import h5py

            sync_fs = s3fs.S3FileSystem(
                key=KEY,
                secret=KEY,
                client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
            )
            names = sorted(sync_fs.glob(f"{BUCKET}/weather-big/*.hdf5"))
            handles = [h5py.File(sync_fs.open(n, "rb"), "r") for n in names]
            try:
                ds = [h["t2m"] for h in handles]
                z = dda.stack([dda.from_array(d, chunks=d.chunks) for d in ds])
                np.save(
                    os.path.join(out, f"w5h-dask-{fresh()}.npy"),
                    z.mean(axis=0).compute(),
                )
            finally:
                for h in handles:
                    h.close()

        src = os.path.join(data, "weather-big", "*.hdf5:/t2m")
        conv = ["--chunks", f"1,{c},{c}", "--codec", "zstd:3"]

        def w5a_local():
            nd(["convert", src, os.path.join(out, f"w5a-local-{fresh()}.zarr"), *conv])

        last_w5a = [0]

        def w5a_s3():
            last_w5a[0] = fresh()
            nd(["convert", src, f"s3://{BUCKET}/w5a-{last_w5a[0]}.zarr", *conv])

        sides = {
            "W5c": [
                ("ndstream, local disk", w5c_local),
                ("ndstream, S3", w5c_s3),
                ("zarr-python + Dask, S3", w5c_dask),
            ],
            "W5a": [("ndstream, local disk", w5a_local), ("ndstream, S3", w5a_s3)],
            "W5c-h5": [
                (
                    "ndstream, local disk",
                    lambda: w5h(os.path.join(data, "weather-big"), "local"),
                ),
                ("ndstream, S3", lambda: w5h(f"s3://{BUCKET}/weather-big", "s3")),
                ("h5py + Dask, S3", w5h_dask),
            ],
        }
        chosen = a.workloads.split(",")
        sides = {w: ss for w, ss in sides.items() if w in chosen}
        results = {}
        for w, ss in sides.items():
            for _ in range(a.runs):
                for name, fn in ss:
                    os.sync()
                    t = time.perf_counter()
                    fn()
                    results.setdefault((w, name), []).append(time.perf_counter() - t)
        # Same bytes on every side.
        for w in ("w5c", "w5h"):
            npys = sorted(glob.glob(os.path.join(out, f"{w}-*.npy")))
            if not npys:
                continue
            ref = np.load(next(f for f in npys if "dask" not in f))
            for f in npys:
                got = np.load(f)
                if "dask" in f:
                    np.testing.assert_allclose(got, ref, rtol=1e-6)
                else:
                    assert got.tobytes() == ref.tobytes(), f"{f} differs"
        for local in glob.glob(os.path.join(out, "w5a-local-*.zarr"))[:1]:
            for d, _, fl in os.walk(local):
                for f in fl:
                    rel = os.path.relpath(os.path.join(d, f), local)
                    with open(os.path.join(d, f), "rb") as fh:
                        want = fh.read()
                    got = client.get_object(
                        Bucket=BUCKET, Key=f"w5a-{last_w5a[0]}.zarr/{rel}"
                    )["Body"].read()
                    assert got == want, f"W5a: {rel} differs between local disk and S3"
        print(
            "W5c, W5c-h5: the same result on every side; W5a: the S3 store has the local store's bytes"
        )
        for w, ss in sides.items():
            base = statistics.median(results[(w, ss[0][0])])
            s3 = statistics.median(results[(w, ss[1][0])])
            for name, _ in ss:
                print(f"{w} {name:24s} {med(results[(w, name)])}")
            print(f"{w} S3 / local {s3 / base:.2f}")
            if len(ss) > 2:
                print(
                    f"{w} Dask / ndstream on S3 {statistics.median(results[(w, ss[2][0])]) / s3:.2f}"
                )
    finally:
        for p in (moto, proxy):
            if p is not None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
