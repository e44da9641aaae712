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

/// 0-d arrays and zero-length axes, in every format.
#[test]
fn degenerate_shapes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = Format {
        zarr_version: ZarrVersion::V2,
        ..Format::new("zarr v2", &zarr_path)
    };
    let v3 = Format::new("zarr v3", &zarr_path);
    let contiguous = |name, path_for| Format {
        keeps_chunks: false,
        attributes: false,
        resume_skips_done: false,
        ..Format::new(name, path_for)
    };
    let npy = contiguous("npy", &npy_path);
    let raw = contiguous("raw", &raw_path);
    let cases: [(Vec<u64>, Vec<u64>); 3] = [
        (vec![], vec![]),
        (vec![0, 4], vec![2, 2]),
        (vec![3, 0, 2], vec![1, 1, 1]),
    ];
    for (fi, f) in [&v2, &v3, &npy, &raw].into_iter().enumerate() {
        for (ci, (shape, chunks)) in cases.iter().enumerate() {
            let spec = SinkSpec::new(shape.clone(), ndstream_engine::DType::F64, chunks.clone());
            crate::conformance::check_sink_then_source(
                dir.path(),
                &format!("d{fi}_{ci}"),
                &spec,
                f,
            );
        }
    }
}

/// A resumed Zarr write trusts only chunk files that decode: a torn file
/// (as a crash or power loss could leave) and a missing one are redone.
#[test]
fn zarr_resume_redoes_torn_and_missing_chunks() {
    use ndstream_engine::{Block, DType};
    use ndstream_formats::{create_sink, info, open_source, StoreInfo, WriteMode};
    let dir = tempfile::tempdir().unwrap();
    for (v, torn, gone) in [
        (ZarrVersion::V3, "c/0/1", "c/1/1"),
        (ZarrVersion::V2, "0.1", "1.1"),
    ] {
        let path = dir.path().join(format!("t{v:?}.zarr"));
        let p = path.display().to_string();
        let mut spec = SinkSpec::new(vec![8, 8], DType::I32, vec![4, 4]);
        spec.zarr_version = v;
        spec.codec = Codec::Zstd { level: 1 };
        let sink = create_sink(&p, &spec).unwrap();
        for n in 0..4u64 {
            let idx = sink.grid().unravel(n);
            sink.write_chunk(&idx, &Block::full(DType::I32, &[4, 4], n as f64 + 1.0))
                .unwrap();
        }
        drop(sink); // crashed before finish
        let names: Vec<String> = walk(&path);
        assert!(
            names.iter().all(|n| !n.contains("ndstream-tmp")),
            "{names:?}"
        );
        let bytes = std::fs::read(path.join(torn)).unwrap();
        std::fs::write(path.join(torn), &bytes[..5]).unwrap();
        std::fs::remove_file(path.join(gone)).unwrap();
        let StoreInfo::Array(i) = info(&p).unwrap() else {
            panic!()
        };
        assert!(i.incomplete);

        spec.mode = WriteMode::Resume;
        let sink = create_sink(&p, &spec).unwrap();
        let done: Vec<bool> = (0..4)
            .map(|n| sink.is_done(&sink.grid().unravel(n)))
            .collect();
        assert_eq!(done, [true, false, true, false], "{v:?}");
        for n in [1u64, 3] {
            let idx = sink.grid().unravel(n);
            sink.write_chunk(&idx, &Block::full(DType::I32, &[4, 4], n as f64 + 1.0))
                .unwrap();
        }
        sink.finish().unwrap();
        let src = open_source(&p).unwrap();
        for n in 0..4u64 {
            let got = src.read_chunk(&src.grid().unravel(n)).unwrap();
            assert_eq!(got, Block::full(DType::I32, &[4, 4], n as f64 + 1.0));
        }
        let StoreInfo::Array(i) = info(&p).unwrap() else {
            panic!()
        };
        assert!(!i.incomplete);
        // A spec that differs in codec cannot resume this store.
        spec.codec = Codec::Gzip { level: 1 };
        assert!(matches!(
            create_sink(&p, &spec),
            Err(ndstream_engine::Error::Open { .. })
        ));
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn zarr_zstd_writes_reserve_their_compression_context() {
    use ndstream_engine::DType;
    use ndstream_formats::create_sink;
    let dir = tempfile::tempdir().unwrap();
    let chunk_bytes = 256 * 256 * 4;
    let per_chunk = |name: &str, codec: Codec| {
        let p = dir.path().join(name).display().to_string();
        let mut spec = SinkSpec::new(vec![512, 512], DType::F32, vec![256, 256]);
        spec.codec = codec;
        create_sink(&p, &spec).unwrap().memory_per_chunk()
    };
    // The padded copy and the encoded output; zstd adds its context
    // (hash and chain tables sized to the chunk: tens of KiB at level 1,
    // more at higher levels).
    assert_eq!(per_chunk("none.zarr", Codec::None), 2 * chunk_bytes);
    let z1 = per_chunk("z1.zarr", Codec::Zstd { level: 1 });
    let z19 = per_chunk("z19.zarr", Codec::Zstd { level: 19 });
    assert!(z1 > 2 * chunk_bytes + 16 * 1024, "{z1}");
    assert!(z19 > z1, "{z19} vs {z1}");
}
