#!/usr/bin/env python3
"""ndstream on a dask.distributed LocalCluster against ndstream in one process
and against the tutorial's Dask program on the same cluster; and the
scheduling cost of plans (issue "past one machine").

    python benches/cluster/run.py [--data DIR] [--full] [--runs N] [--workers 2]

Needs a Python with numpy, h5py, zarr, dask[distributed] and ndstream's
package built in release mode (``cd python && maturin develop --release``),
and the release CLI (``cargo build --release -p ndstream-cli``). The data
is the peer benchmark's (benches/peer/gen_data.py; quick sizes unless
--full), generated into DIR if missing.

Workloads (BENCHMARKS.md): W3a, the mean over the 31 daily fields of their
stack, into memory; W5a, the HDF5 stack written to Zarr v3, zstd level 3,
chunks (1, C, C). Each is run --runs times per side, the sides alternating:
ndstream in this process (threads = cores), ndstream on the cluster
(``scheduler=client``), Dask on the cluster. Prints medians and ranges; the
W5a outputs of both ndstream sides are checked to be the same bytes.

Scheduling: a plan of 100,000 tasks (``eval "zeros((100000, 64), chunks=(1, 64))"
-o out.zarr``) made with ``ndstream plan`` (the time of the command), then
run by ``ndstream run --processes 2``, against the same store written by
``eval -o`` in one process: (run - in-process) / tasks is the process
runner's overhead per task.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "benches", "peer"))


def tree(root: str) -> dict:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def med(xs: list) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--full", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-scheduling", action="store_true")
    p.add_argument("--only", choices=["W3a", "W5a"], default=None, help="run one workload")
    a = p.parse_args()
    import gen_data

    data = a.data or os.path.join(ROOT, "bench-data", "peer" if a.full else "peer-quick")
    if not os.path.exists(os.path.join(data, "sizes.json")):
        cmd = [sys.executable, os.path.join(ROOT, "benches", "peer", "gen_data.py"), data]
        subprocess.run(cmd + ([] if a.full else ["--quick"]), check=True)
    s = gen_data.sizes(not a.full)
    c = s["chunk"]
    files = sorted(glob.glob(os.path.join(data, "weather-big", "*.hdf5")))

    import dask.array as dda
    import h5py
    import zarr
    from distributed import Client, LocalCluster
    from zarr.codecs import ZstdCodec

    import ndstream as nd

    cluster = LocalCluster(
        n_workers=a.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    out = tempfile.mkdtemp(prefix="ndstream-cluster-bench-", dir=data)

    def nd_stack():
        return nd.stack(nd.open_many(os.path.join(data, "weather-big", "*.hdf5:/t2m")), axis=0)

    handles = [h5py.File(f, "r") for f in files]

    def dask_stack():
        return dda.stack([dda.from_array(h["t2m"], chunks=(c, c)) for h in handles], axis=0)

    def fresh(name: str) -> str:
        path = os.path.join(out, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def w3a_local():
        return nd_stack().mean(axis=0).compute()

    def w3a_cluster():
        return nd_stack().mean(axis=0).compute(scheduler=client)

    def w3a_dask():
        return dask_stack().mean(axis=0).compute(scheduler=client)

    def w5a_local():
        nd_stack().to_zarr(fresh("w5a-local.zarr"), codec="zstd:3", chunks=(1, c, c))

    def w5a_cluster():
        nd_stack().to_zarr(fresh("w5a-cluster.zarr"), codec="zstd:3", chunks=(1, c, c), scheduler=client)

    def w5a_dask():
        x = dask_stack()
        z = zarr.create_array(
            store=fresh("w5a-dask.zarr"),
            shape=x.shape,
            chunks=(1, c, c),
            dtype="float32",
            compressors=ZstdCodec(level=3),
            zarr_format=3,
        )
        dda.store(x, z, lock=False, scheduler=client)

    sides = {
        "W3a": [("ndstream, one process", w3a_local), ("ndstream, cluster", w3a_cluster), ("Dask, cluster", w3a_dask)],
        "W5a": [("ndstream, one process", w5a_local), ("ndstream, cluster", w5a_cluster), ("Dask, cluster", w5a_dask)],
    }
    if a.only:
        sides = {a.only: sides[a.only]}
    print(f"data {data}: {len(files)} fields {s['h']}x{s['w']} float32, chunks {c}; "
          f"LocalCluster of {a.workers} worker processes x 1 thread; {os.cpu_count()} cores; "
          f"{a.runs} runs per side, alternating")
    # One warm-up of each side (imports, worker start-up, page cache).
    for w in sides.values():
        for _, f in w:
            f()
    results = {}
    for name, w in sides.items():
        times: dict = {label: [] for label, _ in w}
        for _ in range(a.runs):
            for label, f in w:
                # Each side starts with the disk's dirty pages written and the
                # outputs of the sides before it removed, so no side pays for
                # another's writeback.
                for d in os.listdir(out):
                    shutil.rmtree(os.path.join(out, d), ignore_errors=True)
                os.sync()
                t = time.perf_counter()
                f()
                times[label].append(time.perf_counter() - t)
        results[name] = times
        local = statistics.median(times["ndstream, one process"])
        on = statistics.median(times["ndstream, cluster"])
        dask = statistics.median(times["Dask, cluster"])
        print(f"{name}: " + "; ".join(f"{k} {med(v)}" for k, v in times.items())
              + f"; cluster/one process {on / local:.2f}x; Dask/ndstream on the cluster {dask / on:.1f}x")
    if "W3a" in sides:
        assert w3a_local().tobytes() == w3a_cluster().tobytes(), "W3a: the cluster's bits differ"
        print("W3a: the cluster's result has the one-process bits")
    if "W5a" in sides:
        w5a_local()
        w5a_cluster()
        assert tree(os.path.join(out, "w5a-local.zarr")) == tree(os.path.join(out, "w5a-cluster.zarr")), \
            "W5a: the cluster's bytes differ"
        print("W5a: the cluster's store has the one-process bytes")
        # W5a is bound by zstd level 3 (BENCHMARKS.md): the floor is the
        # compression of the same chunks by zstd itself on the cluster's
        # threads, `zstd -b3` on the first field's chunks cut as the output's.
        raw = os.path.join(out, "field0.raw")
        with h5py.File(files[0], "r") as f, open(raw, "wb") as fh:
            t2m = f["t2m"]
            for i in range(0, t2m.shape[0], c):
                for j in range(0, t2m.shape[1], c):
                    # Edge chunks padded with the fill value, as Zarr stores them.
                    chunk = np.zeros((c, c), dtype="float32")
                    part = t2m[i : i + c, j : j + c]
                    chunk[: part.shape[0], : part.shape[1]] = part
                    fh.write(chunk.tobytes())
        bench = subprocess.run(["zstd", "-b3", "-i3", f"-B{c * c * 4}", raw], capture_output=True, text=True)
        # The last progress line holds the final figures: compression first.
        lines = [x for x in re.split(r"[\r\n]", bench.stdout + bench.stderr) if "MB/s" in x]
        if lines:
            mbps = float(re.findall(r"([0-9.]+) MB/s", lines[-1])[0])
            total = len(files) * s["h"] * s["w"] * 4
            floor = total / (a.workers * mbps * 1e6)
            on = statistics.median(results["W5a"]["ndstream, cluster"])
            print(f"zstd -b3 on chunks of field 0: {mbps:.0f} MB/s per thread; W5a's floor on "
                  f"{a.workers} threads {floor:.2f} s; ndstream on the cluster / floor {on / floor:.2f}x")
    client.close()
    cluster.close()

    if not a.skip_scheduling:
        cli = os.path.join(ROOT, "target", "release", "ndstream")
        expr = "zeros((100000, 64), chunks=(1, 64))"

        def timed(cmd: list) -> float:
            t = time.perf_counter()
            subprocess.run([cli, "--quiet", *cmd], check=True, cwd=out)
            return time.perf_counter() - t

        plan_t, run_t, local_t = [], [], []
        for i in range(3):
            for d in (f"p{i}.zarr", f"l{i}.zarr", f"p{i}.json", f"p{i}.json.work"):
                shutil.rmtree(os.path.join(out, d), ignore_errors=True)
                if os.path.isfile(os.path.join(out, d)):
                    os.remove(os.path.join(out, d))
            plan_t.append(timed(["plan", "-o", f"p{i}.json", "eval", expr, "-o", f"p{i}.zarr"]))
            run_t.append(timed(["run", f"p{i}.json", "--processes", "2"]))
            local_t.append(timed(["eval", expr, "-o", f"l{i}.zarr"]))
        tasks = 100_000 + 1
        print(f"plan of {tasks} tasks (ndstream plan, the whole command): {med(plan_t)}; "
              f"plan file {os.path.getsize(os.path.join(out, 'p0.json'))} bytes")
        over = [(r - l) / tasks * 1e3 for r, l in zip(run_t, local_t)]
        print(f"run --processes 2: {med(run_t)}; eval -o in one process: {med(local_t)}; "
              f"overhead per task {statistics.median(over):.3f} ms ({min(over):.3f}-{max(over):.3f})")
    shutil.rmtree(out, ignore_errors=True)
    for h in handles:
        h.close()
    _ = np


if __name__ == "__main__":
    main()
