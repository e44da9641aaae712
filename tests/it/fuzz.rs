//! The fuzz targets' corpora and crashers, replayed (see `fuzz/` and
//! `scripts/fuzz.sh`): every input in `fuzz/corpus/TARGET` and
//! `fuzz/regressions/TARGET` runs through the same entry point the fuzzer
//! calls, which asserts what the reader promises (chunk shapes, codec
//! round trips). A panic names the input file. The `expr` target is
//! replayed by the CLI's tests (`tools/tests/safety.rs`).

use std::path::{Path, PathBuf};

/// Every input of `target`: the corpus and the kept crashers.
pub fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, f: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no corpus for the fuzz target {target}");
    for p in inputs {
        let data = std::fs::read(&p).unwrap();
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!("the fuzz input {} of {target} panics", p.display());
        }
    }
}

#[test]
fn npy_header_corpus() {
    replay("npy_header", ndstream_formats::fuzz::npy_file);
}

#[test]
fn netcdf3_corpus() {
    replay("netcdf3", ndstream_formats::fuzz::netcdf3_file);
}

#[test]
fn zarr_meta_corpus() {
    replay("zarr_meta", ndstream_formats::fuzz::zarr_store);
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_open_corpus() {
    replay("hdf5_open", ndstream_formats::fuzz::hdf5_file);
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_codec_corpus() {
    replay("hdf5_codec", ndstream_formats::fuzz::hdf5_codec);
}

#[test]
fn path_syntax_corpus() {
    replay("path_syntax", ndstream_formats::fuzz::path_string);
}
