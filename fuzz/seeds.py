#!/usr/bin/env python3
"""Write the seed inputs of every fuzz target into fuzz/corpus/<target>/.

Seeds come from the test fixtures (real files written by NumPy, h5py,
netCDF4-python and zarr-python) and from a few hand-written programs and
paths. scripts/fuzz.sh runs this when a target's corpus is missing; the
committed corpora are these seeds plus what fuzzing found, minimised.
"""
import bz2
import hashlib
import json
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def files(top, pred, limit=64 << 10):
    for dirpath, _, names in sorted(os.walk(top)):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            if pred(p) and os.path.getsize(p) <= limit:
                yield p


def read(p):
    with open(p, "rb") as f:
        return f.read()


def npy():
    for p in files(FIX, lambda p: p.endswith(".npy")):
        put("npy_header", read(p))


def zarr():
    # layout byte, metadata, 0xFF, attributes, 0xFF, chunk bytes (see
    # ndstream_formats::fuzz::zarr_store); layouts 0/2 are v3, 1/3 are v2.
    for p in files(FIX, lambda p: os.path.basename(p) in (".zarray", "zarr.json")):
        d = os.path.dirname(p)
        meta = read(p)
        try:
            m = json.loads(meta)
        except ValueError:
            continue
        if m.get("node_type", "array") != "array" or "shape" not in m:
            continue
        attrs = read(os.path.join(d, ".zattrs")) if os.path.exists(os.path.join(d, ".zattrs")) else b"{}"
        chunk = b""
        for c in files(d, lambda c: os.path.basename(c) not in (".zarray", ".zattrs", "zarr.json", ".zgroup")):
            chunk = read(c)
            break
        v2 = p.endswith(".zarray")
        for layout in ((1, 3) if v2 else (0, 2)):
            put("zarr_meta", bytes([layout]) + meta + b"\xff" + (attrs if v2 else b"") + b"\xff" + chunk)


def hdf5():
    for p in files(FIX, lambda p: p.endswith((".h5", ".nc", ".hdf5")), limit=32 << 10):
        if read(p)[:8] == b"\x89HDF\r\n\x1a\n":
            put("hdf5_open", read(p))


def netcdf3():
    for p in files(FIX, lambda p: p.endswith(".nc"), limit=32 << 10):
        if read(p)[:3] == b"CDF":
            put("netcdf3", read(p))


def codec():
    # pipeline byte (1 shuffle, 2 deflate, 4 fletcher32, 8 expect the stored
    # length, 16 zstd, 32 lz4, 64 blosc, 128 bzip2), element size, filter
    # mask, expected length (LE u16), stored bytes.
    raw = struct.pack("<16d", *[i * 0.5 for i in range(16)])
    put("hdf5_codec", bytes([8, 8, 0, 0, 0]) + raw)
    put("hdf5_codec", bytes([2, 8, 0]) + struct.pack("<H", len(raw)) + zlib.compress(raw))
    shuffled = bytes(raw[i * 8 + b] for b in range(8) for i in range(16))
    put("hdf5_codec", bytes([3, 8, 0]) + struct.pack("<H", len(raw)) + zlib.compress(shuffled))
    put("hdf5_codec", bytes([1, 8, 0]) + struct.pack("<H", len(raw)) + shuffled)
    # zstd (16), lz4 (32), blosc (64), bzip2 (128): raw bytes to round-trip,
    # and a real bzip2 stream (the standard library has no other encoder).
    for bit in (16, 32, 64, 128, 16 | 1 | 4, 64 | 1):
        put("hdf5_codec", bytes([bit | 8, 8, 0, 0, 0]) + raw)
    put("hdf5_codec", bytes([128, 8, 0]) + struct.pack("<H", len(raw)) + bz2.compress(raw))
    # Bitshuffle (bit 7 of the size byte): 8-byte elements, blocks of 128,
    # with LZ4, with nothing, and with zstd after shuffle.
    for size in (0x80 | 3 | 2 << 2 | 1 << 4, 0x80 | 2, 0x80 | 3 | 2 << 4):
        put("hdf5_codec", bytes([8, size, 0, 0, 0]) + raw)


def paths():
    for s in [
        "a.zarr", "a.zarr/x", "grp.zarr/g/x", "f.h5:/g/d", "f.nc:temperature",
        "raw.bin?dtype=<f8&shape=2,3", "raw.bin?dtype=u1&shape=10&offset=4&order=F",
        "data/*.npy", "data/2024-*.h5:/t", "a/[ab]?.zarr/x", "datetime64[10ms].zarr",
        "../up.zarr", "s.zarr/../../x", "/abs/path.npy", "file.npy", "",
    ]:
        put("path_syntax", s.encode())


def expr():
    for s in [
        "ones((4, 6), chunks=(2, 3)).sum(axis=0)",
        "x = random.normal(10, 0.1, size=(200, 300), chunks=(50, 60), seed=1)\nx[::2, ::-3].mean(axis=1)",
        "a = arange(24).reshape((4, 6)).rechunk((3, 4)); (a * 2 - 1)[1:, None, ...].max()",
        "stack([zeros((3,)), ones((3,))], axis=1).T.std(ddof=1)",
        "x = linspace(0, 1, 11, chunks=4); where(x > 0.5, x, -x).cumsum()",
        "concatenate([full((2, 2), 7, dtype='int16'), eye(2)], axis=0).astype('float32')",
        "x = random.uniform(0.5, 1.5, size=(30, 20), chunks=(7, 5), seed=7); (x.var(axis=0), x.argmax(axis=1), x.topk(3))",
        "7.0 // 0.1 + 2 ** 10 % 7 - (1 < 2) * True",
        "triu(ones((5, 5)), 1).any(axis=(0, 1), keepdims=True)",
        "clip(arange(-5, 5), -2, 2).prod()",
        "nansum(zeros((0, 5)), axis=0)",
    ]:
        put("expr", s.encode())


def program():
    """Programs as JSON, written by the ndstream Python package (pip install ./python)."""
    try:
        import numpy as np

        import ndstream as da
        from ndstream import _ndstream
    except ImportError as e:
        sys.exit(f"the program seeds need numpy and the ndstream Python package: {e}")
    x = da.random.normal(10, 0.1, size=(20, 30), chunks=(5, 6))
    a = da.arange(24, chunks=5).reshape((4, 6)).rechunk((3, 4))
    m = da.from_array(np.array([[1.5, np.nan], [-0.0, np.inf]]), chunks=1)
    for y in [
        da.ones((4, 6), chunks=(2, 3)).sum(axis=0),
        x[::2, ::-3].mean(axis=1),
        (a * 2 - 1)[1:, None, ...].max(),
        da.stack([da.zeros((3,)), da.ones((3,))], axis=1).T.std(ddof=1),
        da.where(x > 10, x, -x).cumsum(axis=1),
        da.concatenate([da.full((2, 2), 7, dtype="int16"), da.ones((2, 2), chunks=1)], axis=0).astype("float32"),
        x.var(axis=0),
        x.argmax(axis=1),
        da.topk(x[0], 3),
        da.triu(da.ones((5, 5)), 1).any(axis=(0, 1), keepdims=True),
        da.nansum(m, axis=0) + m.T,
        x[x[:, 0] > 10],
    ]:
        put("program", _ndstream.to_program([y._a]).encode())


if __name__ == "__main__":
    which = sys.argv[1:] or ["npy_header", "zarr_meta", "hdf5_open", "hdf5_codec", "path_syntax", "expr",
                             "netcdf3", "program"]
    fns = {"npy_header": npy, "zarr_meta": zarr, "hdf5_open": hdf5, "hdf5_codec": codec,
           "path_syntax": paths, "expr": expr, "netcdf3": netcdf3, "program": program}
    for w in which:
        fns[w]()
