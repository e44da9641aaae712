#!/usr/bin/env python3
"""Generate the peer-benchmark data set, deterministically (see BENCHMARKS.md).

    python gen_data.py DIR [--quick]

Writes into DIR:
  random.hdf5            /x: 1-D float32, 200e6 elements (quick: 25e6), CONTIGUOUS,
                         standard exponential values written in blocks of 1e6.
  weather-big/2014-01-DD.hdf5 x 31
                         /t2m: float32 (2880, 5760) (quick: (720, 1440)), HDF5 chunks
                         (500, 500) (quick: 250), uncompressed; a smooth temperature-like
                         field (~230-305 K) plus noise, different each day.
  weather-big.zarr       the same stack as one Zarr v3 array (31, H, W), chunks (1, C, C),
                         zstd level 3 (written with zarr-python).
  cluster.npy            float64 (N, 3) Lennard-Jones cluster, N = 7000 (quick: 2500), as the
                         tutorial makes it: make_cluster(int(7e3), radius=500), i.e.
                         np.random.seed(1981); normal(0, 500, (N, 3)) - 0.5 (energy at N = 7000:
                         -0.21282893668845...; the function's default radius 40 is not used).
  sizes.json             the sizes above; its presence (with the same sizes) marks the data
                         as complete, so an interrupted generation is redone.

h5py's default libver is used (never 'latest'), so any HDF5 reader can open the files.
"""

import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

FULL = {"n": 200_000_000, "h": 2880, "w": 5760, "chunk": 500, "days": 31, "atoms": 7000}
QUICK = {"n": 25_000_000, "h": 720, "w": 1440, "chunk": 250, "days": 31, "atoms": 2500}
BLOCK = 1_000_000


def sizes(quick):
    """The data sizes of a full or quick benchmark."""
    return dict(QUICK if quick else FULL)


def w2_size(quick):
    """The side of W2's square random array (no data file: generated in memory)."""
    return 7000 if quick else 20000


def gen_random(path, n):
    """random.hdf5:/x, contiguous float32 standard exponential values, in blocks of 1e6."""
    rng = np.random.default_rng(20141)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        d = f.create_dataset("x", shape=(n,), dtype="f4")  # no chunks: contiguous
        for start in range(0, n, BLOCK):
            m = min(BLOCK, n - start)
            d[start:start + m] = rng.standard_exponential(m, dtype=np.float32)
    os.replace(tmp, path)


def weather_day(day, h, w):
    """Day `day` (0-based) of the temperature-like field, float32 (h, w), ~230-305 K."""
    rng = np.random.default_rng(1000 + day)
    lat = np.linspace(-np.pi / 2, np.pi / 2, h)[:, None]
    lon = np.linspace(0, 2 * np.pi, w, endpoint=False)[None, :]
    phase = 2 * np.pi * day / 31
    base = 236.0 + 62.0 * np.cos(lat) ** 2  # poles ~236 K, equator ~298 K
    waves = (3.0 * np.sin(2 * lon + phase) * np.cos(lat)
             + 2.0 * np.sin(3 * lon - 1.7 * phase + 4 * lat)
             + 1.5 * np.cos(5 * lat + phase))
    field = base + waves + rng.normal(0.0, 0.5, size=(h, w))
    return field.astype(np.float32)


def gen_weather(dirpath, zarr_path, s):
    """The 31 daily HDF5 files, then the same stack as one Zarr v3 array."""
    h, w, c, days = s["h"], s["w"], s["chunk"], s["days"]
    os.makedirs(dirpath, exist_ok=True)
    for day in range(days):
        path = os.path.join(dirpath, f"2014-01-{day + 1:02d}.hdf5")
        tmp = path + ".tmp"
        with h5py.File(tmp, "w") as f:
            f.create_dataset("t2m", data=weather_day(day, h, w), chunks=(c, c))
        os.replace(tmp, path)
    if os.path.exists(zarr_path):
        shutil.rmtree(zarr_path)
    z = zarr.create_array(store=zarr_path, shape=(days, h, w), chunks=(1, c, c),
                          dtype="float32", compressors=ZstdCodec(level=3), zarr_format=3)
    for day in range(days):
        path = os.path.join(dirpath, f"2014-01-{day + 1:02d}.hdf5")
        with h5py.File(path, "r") as f:
            z[day] = f["t2m"][...]


def gen_cluster(path, atoms):
    """The Lennard-Jones cluster of the Dask tutorial: make_cluster(natoms, radius=500, seed=1981)."""
    np.random.seed(1981)
    cluster = np.random.normal(0, 500, (atoms, 3)) - 0.5
    np.save(path, cluster)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--quick", action="store_true", help="1/8 sizes")
    a = p.parse_args()
    s = sizes(a.quick)
    marker = os.path.join(a.dir, "sizes.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == s:
                print(f"data in {a.dir} already complete", file=sys.stderr)
                return
        sys.exit(f"{a.dir} holds data of other sizes ({marker}); use another --data DIR")
    os.makedirs(a.dir, exist_ok=True)
    print(f"generating {a.dir} ...", file=sys.stderr)
    gen_random(os.path.join(a.dir, "random.hdf5"), s["n"])
    gen_weather(os.path.join(a.dir, "weather-big"), os.path.join(a.dir, "weather-big.zarr"), s)
    gen_cluster(os.path.join(a.dir, "cluster.npy"), s["atoms"])
    with open(marker, "w") as f:
        json.dump(s, f)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
