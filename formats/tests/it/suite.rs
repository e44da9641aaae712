//! The conformance suite (conformance.rs) run for every format this crate
//! implements besides HDF5: Zarr v2, Zarr v3, Zarr v3 sharded, `.npy`, raw.

use std::path::Path;

use ndstream_formats::{Codec, SinkSpec, ZarrVersion};

use crate::conformance::{run_suite, Format};

fn codecs() -> Vec<Codec> {
    vec![
        Codec::Zstd { level: 3 },
        Codec::Gzip { level: 5 },
        Codec::Blosc {
            cname: "lz4".into(),
            clevel: 5,
            shuffle: true,
        },
    ]
}

fn zarr_path(dir: &Path, stem: &str, _: &SinkSpec) -> String {
    dir.join(format!("{stem}.zarr")).display().to_string()
}

fn zarr_group_path(dir: &Path, stem: &str, _: &SinkSpec) -> String {
    dir.join(format!("{stem}.zarr/grp/x")).display().to_string()
}

#[test]
fn zarr_v2_conforms() {
    let f = Format {
        zarr_version: ZarrVersion::V2,
        codecs: codecs(),
        ..Format::new("zarr v2", &zarr_path)
    };
    run_suite(&f);
}

#[test]
fn zarr_v3_conforms() {
    let f = Format {
        codecs: codecs(),
        ..Format::new("zarr v3", &zarr_path)
    };
    run_suite(&f);
}

#[test]
fn zarr_v3_sharded_in_a_group_conforms() {
    let f = Format {
        codecs: vec![Codec::Zstd { level: 1 }],
        sharded: true,
        ..Format::new("zarr v3 sharded", &zarr_group_path)
    };
    run_suite(&f);
}

fn npy_path(dir: &Path, stem: &str, _: &SinkSpec) -> String {
    dir.join(format!("{stem}.npy")).display().to_string()
}

#[test]
fn npy_conforms() {
    let f = Format {
        keeps_chunks: false,
        attributes: false,
        resume_skips_done: false,
        ..Format::new("npy", &npy_path)
    };
    run_suite(&f);
}

fn raw_path(dir: &Path, stem: &str, spec: &SinkSpec) -> String {
    // Big-endian with a 16-byte offset, to exercise both.
    let order = if spec.dtype.size() == 1 { '|' } else { '>' };
    let shape: Vec<String> = spec.shape.iter().map(|n| n.to_string()).collect();
    dir.join(format!(
        "{stem}.bin?dtype={order}{}&shape={}&offset=16",
        spec.dtype.typestr(),
        shape.join(",")
    ))
    .display()
    .to_string()
}

#[test]
fn raw_conforms() {
    let f = Format {
        keeps_chunks: false,
        attributes: false,
        resume_skips_done: false,
        ..Format::new("raw", &raw_path)
    };
    run_suite(&f);
}
