//! HDF5 datasets compressed with the plugin filters h5py users get from
//! `hdf5plugin` (zstd, lz4, blosc with each of its compressors and
//! shuffles, bzip2, bitshuffle with LZ4, zstd or nothing, ragged chunks
//! included), alone and with HDF5's shuffle and fletcher32, written
//! by h5py and read by ndstream with no plugin installed (its own decoders
//! on the workers), compared bit for bit with what h5py reads back.
//! Corrupting a stored chunk gives an error naming the chunk.
//!
//! Python is found as in `interop` and must import numpy, h5py and
//! hdf5plugin; without one the test prints why and passes. The README's
//! test command installs hdf5plugin into the test venv.

use ndstream_engine::{AxisSel, DType, Error};
use ndstream_formats::{info, open_source, StoreInfo};

use crate::conformance::select;
use crate::corpus::{le_bytes, read_all};
use crate::interop::{child, python_with, python_writes};

const WRITER: &str = r#"
import json, sys
import numpy as np
import h5py, hdf5plugin

out = sys.argv[1]
rng = np.random.default_rng(11)
path = f"{out}/plugins.h5"
manifest = {}
filters = {
    "zstd": dict(hdf5plugin.Zstd(clevel=5)),
    "lz4": dict(hdf5plugin.LZ4()),
    "lz4_small_blocks": dict(hdf5plugin.LZ4(nbytes=1000)),
    "blosc_lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc_zstd_bitshuffle": dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.BITSHUFFLE)),
    "blosc_zlib_noshuffle": dict(hdf5plugin.Blosc(cname="zlib", clevel=4, shuffle=hdf5plugin.Blosc.NOSHUFFLE)),
    "blosc_blosclz": dict(hdf5plugin.Blosc(cname="blosclz", clevel=9)),
    "blosc_lz4hc": dict(hdf5plugin.Blosc(cname="lz4hc", clevel=6)),
    "bzip2": dict(hdf5plugin.BZip2(blocksize=5)),
    "bitshuffle_lz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
    "bitshuffle_zstd": dict(hdf5plugin.Bitshuffle(cname="zstd")),
    "bitshuffle_none": dict(hdf5plugin.Bitshuffle(cname="none")),
    "bitshuffle_small_blocks": dict(hdf5plugin.Bitshuffle(nelems=16, cname="lz4")),
}
with h5py.File(path, "w") as f:
    for name, kw in filters.items():
        for dt in ["f8", "i2", "u1", ">f4"]:
            # 37 x 53 in 16 x 20 chunks: full and edge chunks; smooth data
            # that compresses, with noise.
            a = (np.add.outer(np.arange(37), np.arange(53) * 0.5) + rng.normal(0, 2, (37, 53)))
            a = (a * 3).astype(dt)
            ds = f"{name}_{dt.replace('>', 'be')}"
            f.create_dataset(ds, data=a, chunks=(16, 20), **kw)
            manifest[ds] = a.dtype.newbyteorder("=").name
    # HDF5's own shuffle and fletcher32 around a plugin filter.
    a = rng.normal(size=(40, 30)).astype("f4")
    f.create_dataset("zstd_shuffle_fletcher", data=a, chunks=(16, 16), shuffle=True,
                     fletcher32=True, **dict(hdf5plugin.Zstd()))
    manifest["zstd_shuffle_fletcher"] = "float32"
    f.create_dataset("lz4_shuffle", data=a, chunks=(7, 30), shuffle=True, **dict(hdf5plugin.LZ4()))
    manifest["lz4_shuffle"] = "float32"
    # Chunks of 91 elements: bitshuffle's last 3 elements are stored raw.
    for cname in ["lz4", "none"]:
        f.create_dataset(f"bitshuffle_{cname}_ragged", data=a, chunks=(7, 13),
                         **dict(hdf5plugin.Bitshuffle(cname=cname)))
        manifest[f"bitshuffle_{cname}_ragged"] = "float32"
with h5py.File(path, "r") as f:
    for ds in manifest:
        a = f[ds][...]
        with open(f"{out}/{ds}.bin", "wb") as g:
            g.write(np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"))).tobytes())
with open(f"{out}/manifest.json", "w") as g:
    json.dump(manifest, g)
"#;

#[test]
fn plugin_filtered_datasets_read_without_plugins() {
    let Some(py) = python_with("numpy, h5py, hdf5plugin") else {
        eprintln!("skipped: no Python with numpy, h5py and hdf5plugin (set NDSTREAM_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = python_writes(&py, WRITER, dir.path());
    let file = dir.path().join("plugins.h5");
    let datasets = manifest.as_object().unwrap();
    assert_eq!(datasets.len(), 13 * 4 + 4);
    for (ds, dtype) in datasets {
        let path = format!("{}:/{ds}", file.display());
        let src = open_source(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want_dtype: DType = dtype.as_str().unwrap().parse().unwrap();
        assert_eq!(src.dtype(), want_dtype, "{path}");
        let all = read_all(src.as_ref()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want = std::fs::read(dir.path().join(format!("{ds}.bin"))).unwrap();
        assert!(le_bytes(&all) == want, "{path}: values differ from h5py's");
        // Parts of chunks (decoded whole, then cut) agree too.
        if let Some(part) =
            src.read_chunk_part(&[0, 0], &[AxisSel::range(1..9), AxisSel::range(2..5)])
        {
            let part = part.unwrap();
            let whole = select(&all, &[AxisSel::range(1..9), AxisSel::range(2..5)]);
            assert!(le_bytes(&part) == le_bytes(&whole), "{path}: part");
        }
        let StoreInfo::Array(ai) = info(&path).unwrap() else {
            panic!("{path}")
        };
        let word = ds.split('_').next().unwrap();
        assert!(ai.codec.contains(word), "{path}: codec {}", ai.codec);
    }
}

/// A damaged chunk of a plugin-filtered dataset is an error naming the
/// dataset and the chunk, never a panic or wrong values.
#[test]
fn a_corrupt_plugin_filtered_chunk_names_the_chunk() {
    let Some(py) = python_with("numpy, h5py, hdf5plugin") else {
        eprintln!("skipped: no Python with numpy, h5py and hdf5plugin (set NDSTREAM_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.h5");
    // One dataset per filter, one chunk each; the byte offset of every
    // chunk printed so the test can damage it.
    let code = r#"
import sys, numpy as np, h5py, hdf5plugin
kw = {"zstd": hdf5plugin.Zstd(), "lz4": hdf5plugin.LZ4(), "blosc": hdf5plugin.Blosc(), "bzip2": hdf5plugin.BZip2(),
      "bitshuffle": hdf5plugin.Bitshuffle(cname="lz4")}
with h5py.File(sys.argv[1], "w") as f:
    for name, k in kw.items():
        f.create_dataset(name, data=np.arange(4000.0).reshape(40, 100) % 17, chunks=(40, 100), **dict(k))
with h5py.File(sys.argv[1], "r") as f:
    for name in kw:
        info = f[name].id.get_chunk_info(0)
        print(name, info.byte_offset, info.size)
"#;
    let out = child(&py)
        .args(["-c", code, &file.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = std::fs::read(&file).unwrap();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (name, at, size): (&str, usize, usize) = (
            parts[0],
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
        );
        // Damage the middle of the stored chunk (the headers of lz4 and
        // blosc are checked separately by the codec's unit tests).
        for (lo, hi) in [(at + size / 2, at + size / 2 + 8), (at, at + size)] {
            let mut bad = clean.clone();
            for b in &mut bad[lo..hi] {
                *b ^= 0xa5;
            }
            std::fs::write(&file, &bad).unwrap();
            let path = format!("{}:/{name}", file.display());
            let src = open_source(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            match src.read_chunk(&[0, 0]) {
                Err(Error::Source {
                    source_name, chunk, ..
                }) => {
                    assert!(source_name.ends_with(name), "{path}: {source_name}");
                    assert_eq!(chunk.0, [0, 0], "{path}");
                }
                Err(e) => panic!("{path}: not a source error: {e}"),
                // Damage a format cannot detect (lz4, blosc and bzip2
                // carry no checksum of their data) may decode: to the
                // chunk's length, as checked by the decoder.
                Ok(b) => assert_eq!(b.shape(), &[40, 100], "{path}"),
            }
        }
    }
}

/// Chunks that the reference filters read but a strict reading of their
/// headers would refuse (a bitshuffle block size of 0, or of less than one
/// element, meaning the default), compared with what h5py + hdf5plugin
/// read; and a chunk index that puts a chunk past the end of the file is
/// an error naming the chunk (its declared ~4 GiB is never allocated).
#[test]
fn patched_chunks_read_as_the_reference_reads_them() {
    let Some(py) = python_with("numpy, h5py, hdf5plugin") else {
        eprintln!("skipped: no Python with numpy, h5py and hdf5plugin (set NDSTREAM_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let code = r#"
import json, re, struct, sys
import numpy as np, h5py, hdf5plugin
out = sys.argv[1]
data = (np.arange(5000) % 300).astype("<u2")
with h5py.File(f"{out}/b.h5", "w") as f:
    for name, block in [("b0", 0), ("b1", 1)]:
        ds = f.create_dataset(name, data=data, chunks=(5000,), **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        mask, raw = ds.id.read_direct_chunk((0,))
        ds.id.write_direct_chunk((0,), raw[:8] + struct.pack(">I", block) + raw[12:], mask)
with h5py.File(f"{out}/b.h5", "r") as f:
    for name in ["b0", "b1"]:
        a = f[name][...]
        assert (a == data).all()
        open(f"{out}/{name}.bin", "wb").write(a.tobytes())
with h5py.File(f"{out}/big.h5", "w", libver="earliest") as f:
    f.create_dataset("a", data=np.arange(64, dtype="<i4"), chunks=(64,), compression="gzip")
    size = f["a"].id.get_chunk_info(0).size
b = bytearray(open(f"{out}/big.h5", "rb").read())
t = [m.start() for m in re.finditer(b"TREE", b) if b[m.start() + 4] == 1][0]
k = t + 4 + 1 + 1 + 2 + 8 + 8
assert struct.unpack_from("<I", b, k)[0] == size
struct.pack_into("<I", b, k, 0xFFFF0000)
open(f"{out}/big.h5", "wb").write(b)
json.dump({}, open(f"{out}/manifest.json", "w"))
"#;
    python_writes(&py, code, dir.path());
    for name in ["b0", "b1"] {
        let path = format!("{}:/{name}", dir.path().join("b.h5").display());
        let src = open_source(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let all = read_all(src.as_ref()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want = std::fs::read(dir.path().join(format!("{name}.bin"))).unwrap();
        assert!(
            le_bytes(&all) == want,
            "{path}: values differ from hdf5plugin's"
        );
    }
    let path = format!("{}:/a", dir.path().join("big.h5").display());
    let src = open_source(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match src.read_chunk(&[0]) {
        Err(Error::Source { chunk, message, .. }) => {
            assert_eq!(chunk.0, [0]);
            assert!(message.contains("past the end"), "{message}");
        }
        other => panic!("{path}: {other:?}"),
    }
}
