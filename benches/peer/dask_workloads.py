#!/usr/bin/env python3
"""The Dask side of the peer benchmark: ONE workload per process (so peak RSS is per workload).

    python dask_workloads.py WORKLOAD DATA_DIR OUT [--quick] [--distributed]
                             [--module ndstream --memory BUDGET]

With --module ndstream the same program runs with `import ndstream as da` (and
`da.compute` for `dask.compute`) under ndstream.config.set(memory=BUDGET): the
"ndstream through Python" side. Dask, distributed and zarr are then not imported
(zarr only where a workload writes into a zarr array), so the process's RSS is
the interpreter's, NumPy's, h5py's and ndstream's.

Prints one JSON line {"workload", "seconds", "result"}: "seconds" is the computation only
(imports, data-file opening and Client start-up excluded); "result" is a float or a list of
floats for reductions printed in full, or the path OUT for workloads whose result is stored.

Workloads (the Dask tutorial "Arrays"; sizes in gen_data.py):
  W1        from_array(h5py /x, chunks=1e6); dask.compute(x.sum(), x.mean(), x.std())
  W2        da.random.normal(10, 0.1, (20000, 20000), chunks=(1000, 1000)).mean(axis=0)[::100]
  W2-full   the same without the slice: all 20000 column means -> OUT (.npy)
  W3a       stack of the 31 /t2m (from_array chunks (C, C)), mean(axis=0) -> OUT (.npy)
  W3b       x[0] - x.mean(axis=0) -> OUT (.npy)
  W3c-zarr  x[:, ::2, ::2] -> OUT Zarr v3, zstd level 3, chunks (1, C/2, C/2)
  W3c-h5    x[:, ::2, ::2] -> OUT HDF5 :/x, uncompressed, chunks (1, C/2, C/2)
  W4        Lennard-Jones energy of cluster.npy, chunks=N//cores: da.nansum(lj(distances))/2
  W5a       HDF5 stack -> OUT Zarr v3, zstd level 3, chunks (1, C, C)
  W5c       mean over axis 0 of weather-big.zarr -> OUT (.npy)

Threaded scheduler by default; --distributed uses distributed.Client(processes=False) as the
tutorial does.
"""

import argparse
import glob
import json
import os
import sys
import time

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from gen_data import sizes, w2_size  # noqa: E402

# Set by main(): the array module (dask.array or ndstream) and its compute().
da = None
compute = None


def weather_stack(data):
    """The 31 daily /t2m datasets as one dask array (days, H, W), chunks (1, C, C)."""
    paths = sorted(glob.glob(os.path.join(data, "weather-big", "*.hdf5")))
    dsets = [h5py.File(p, "r")["t2m"] for p in paths]
    c = dsets[0].chunks
    return da.stack([da.from_array(d, chunks=c) for d in dsets])


def new_zarr(path, shape, chunks):
    """An empty Zarr v3 float32 array with zstd level 3."""
    import zarr
    from zarr.codecs import ZstdCodec

    return zarr.create_array(store=path, shape=shape, chunks=chunks, dtype="float32",
                             compressors=ZstdCodec(level=3), zarr_format=3, overwrite=True)


def lj(r2):
    """Lennard-Jones potential of squared distances (the tutorial's code)."""
    sr6 = (1. / r2) ** 3
    pot = 4. * (sr6 * sr6 - sr6)
    return pot


def distances(x):
    """Squared pairwise distances (the tutorial's code)."""
    diff = x[:, None, :] - x[None, :, :]
    mat = diff * diff
    return mat.sum(axis=2)


def timed(f):
    """(seconds, value) of f()."""
    t = time.perf_counter()
    v = f()
    return time.perf_counter() - t, v


def run(workload, data, out, quick):
    """Run one workload; returns (seconds, result)."""
    s = sizes(quick)
    if workload == "W1":
        f = h5py.File(os.path.join(data, "random.hdf5"), "r")
        x = da.from_array(f["x"], chunks=1_000_000)
        secs, r = timed(lambda: compute(x.sum(), x.mean(), x.std()))
        return secs, [float(v) for v in r]
    if workload == "W2":
        n = w2_size(quick)
        def w2():
            y = da.random.normal(10, 0.1, (n, n), chunks=(1000, 1000))
            return y.mean(axis=0)[::100].compute()
        secs, r = timed(w2)
        return secs, [float(v) for v in r]
    if workload == "W2-full":
        n = w2_size(quick)
        def w2_full():
            y = da.random.normal(10, 0.1, (n, n), chunks=(1000, 1000))
            np.save(out, y.mean(axis=0).compute())
        return timed(w2_full)[0], out
    if workload in ("W3a", "W3b", "W3c-zarr", "W3c-h5", "W5a"):
        x = weather_stack(data)
        c = s["chunk"]
        if workload == "W3a":
            return timed(lambda: np.save(out, x.mean(axis=0).compute()))[0], out
        if workload == "W3b":
            return timed(lambda: np.save(out, (x[0] - x.mean(axis=0)).compute()))[0], out
        if workload == "W3c-zarr":
            def w3c():
                y = x[:, ::2, ::2]
                da.store(y, new_zarr(out, y.shape, (1, c // 2, c // 2)), lock=False)
            return timed(w3c)[0], out
        if workload == "W3c-h5":
            # da.to_hdf5 makes the dataset with the dask chunks, as the tutorial does.
            return timed(lambda: da.to_hdf5(out, "/x", x[:, ::2, ::2]))[0], out
        # W5a
        return timed(lambda: da.store(x, new_zarr(out, x.shape, (1, c, c)), lock=False))[0], out
    if workload == "W4":
        cluster = np.load(os.path.join(data, "cluster.npy"))
        def w4():
            x = da.from_array(cluster, chunks=cluster.shape[0] // os.cpu_count())
            return float((da.nansum(lj(distances(x))) / 2.).compute())
        with np.errstate(divide="ignore", invalid="ignore"):
            return timed(w4)
    if workload == "W5c":
        z = da.from_zarr(os.path.join(data, "weather-big.zarr"))
        return timed(lambda: np.save(out, z.mean(axis=0).compute()))[0], out
    sys.exit(f"unknown workload {workload!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload")
    p.add_argument("data")
    p.add_argument("out", help="where a stored result goes (ignored by W1, W2, W4)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--distributed", action="store_true")
    p.add_argument("--module", choices=["dask", "ndstream"], default="dask",
                   help="the array module the program imports as da")
    p.add_argument("--memory", default=None, help="ndstream's memory budget (--module ndstream)")
    a = p.parse_args()
    global da, compute
    if a.module == "ndstream":
        import ndstream

        da, compute = ndstream, ndstream.compute
        if a.memory:
            ndstream.config.set(memory=a.memory)
    else:
        import dask
        import dask.array

        da, compute = dask.array, dask.compute
    client = None
    if a.distributed:
        from distributed import Client
        client = Client(processes=False)
    try:
        secs, result = run(a.workload, a.data, a.out, a.quick)
    finally:
        if client is not None:
            client.close()
    print(json.dumps({"workload": a.workload, "seconds": secs, "result": result}))


if __name__ == "__main__":
    main()
