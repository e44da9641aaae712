//! Bad input, each a typed error naming what went wrong and where, never a
//! panic: missing files and arrays, unsupported dtypes, truncated and
//! corrupt chunks, writes into existing stores, malformed raw specs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndstream_engine::{Block, DType, Error};
use ndstream_formats::{
    create_sink, info, open_many, open_source, parse_location, SinkSpec, WriteMode,
};

use crate::fixtures::fixtures_dir;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Every file below `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn fixture_copy(rel: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let name = Path::new(rel).file_name().unwrap();
    let dst = tmp.path().join(name);
    copy_dir(&fixtures_dir().join("zarr").join(rel), &dst);
    (tmp, dst.display().to_string())
}

fn expect_open_err(path: &str, needle: &str) {
    match open_source(path) {
        Err(e @ Error::Open { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(needle),
                "{path}: `{m}` should mention `{needle}`"
            );
        }
        Err(e) => panic!("{path}: wrong error kind: {e}"),
        Ok(s) => panic!("{path}: opened {s:?}"),
    }
}

#[test]
fn missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    expect_open_err(&format!("{d}/nope.npy"), "nope.npy");
    expect_open_err(&format!("{d}/nope.zarr"), "no such Zarr store");
    expect_open_err(&format!("{d}/nope.bin?dtype=<f4&shape=3"), "nope.bin");
    assert!(matches!(
        info(&format!("{d}/nope.npy")),
        Err(Error::Open { .. })
    ));
    assert!(matches!(
        info(&format!("{d}/nope.zarr/x")),
        Err(Error::Open { .. })
    ));
    // A directory named .zarr without metadata.
    std::fs::create_dir(tmp.path().join("empty.zarr")).unwrap();
    expect_open_err(&format!("{d}/empty.zarr"), "not a Zarr store");
}

#[test]
fn missing_array_paths() {
    let g = fixtures_dir()
        .join("zarr/v3/group.zarr")
        .display()
        .to_string();
    expect_open_err(&format!("{g}/zzz"), "no array or group `zzz`");
    expect_open_err(&format!("{g}/inner/zzz"), "inner/zzz");
    expect_open_err(&g, "is a Zarr group");
    let g2 = fixtures_dir()
        .join("zarr/v2/group.zarr")
        .display()
        .to_string();
    expect_open_err(&format!("{g2}/nothing"), "nothing");
}

#[test]
fn unsupported_dtypes() {
    let z = fixtures_dir().join("zarr");
    expect_open_err(
        &z.join("v3/complex.zarr").display().to_string(),
        "complex64",
    );
    expect_open_err(&z.join("v2/complex.zarr").display().to_string(), "<c8");
    let n = fixtures_dir().join("npy");
    expect_open_err(&n.join("complex.npy").display().to_string(), "<c16");
    expect_open_err(
        &n.join("structured.npy").display().to_string(),
        "structured",
    );
    expect_open_err("x.bin?dtype=<c8&shape=3", "c8");
    // Not an .npy at all.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("text.npy");
    std::fs::write(&p, "hello, world").unwrap();
    expect_open_err(&p.display().to_string(), "not a .npy file");
}

/// Reading `idx` fails with Error::Source naming the chunk and `file_part`.
fn expect_chunk_err(path: &str, idx: &[u64], file_part: &str) {
    let src = open_source(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match src.read_chunk(idx) {
        Err(e @ Error::Source { .. }) => {
            let Error::Source { ref chunk, .. } = e else {
                unreachable!()
            };
            assert_eq!(chunk.0, idx);
            let m = e.to_string();
            assert!(m.contains(file_part), "`{m}` should name {file_part}");
            assert!(m.contains(path), "`{m}` should name the store {path}");
        }
        Err(e) => panic!("{path} {idx:?}: wrong error kind: {e}"),
        Ok(b) => panic!("{path} {idx:?}: a damaged chunk decoded to {b:?}"),
    }
}

fn truncate(file: &Path, keep: usize) {
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..keep.min(bytes.len())]).unwrap();
}

#[test]
fn truncated_and_corrupt_zarr_chunks() {
    // v3 zstd: truncated chunk.
    let (_t, p) = fixture_copy("v3/f32_zstd.zarr");
    truncate(&Path::new(&p).join("c/1/1"), 10);
    expect_chunk_err(&p, &[1, 1], "c/1/1");
    // The other chunks still read.
    assert!(open_source(&p).unwrap().read_chunk(&[1, 0]).is_ok());

    // v3 zstd: garbage bytes of the right length.
    let f = Path::new(&p).join("c/0/0");
    let n = std::fs::read(&f).unwrap().len();
    std::fs::write(&f, vec![0xAB; n]).unwrap();
    expect_chunk_err(&p, &[0, 0], "c/0/0");

    // v2 uncompressed: a short chunk cannot be taken for a whole one.
    let (_t2, p2) = fixture_copy("v2/f64_none.zarr");
    truncate(&Path::new(&p2).join("1.1"), 20);
    expect_chunk_err(&p2, &[1, 1], "1.1");
    // An edge chunk too (stored padded, trimmed on read).
    truncate(&Path::new(&p2).join("2.0"), 3);
    expect_chunk_err(&p2, &[2, 0], "2.0");

    // v2 gzip and blosc: corrupt streams.
    let (_t3, p3) = fixture_copy("v2/i8_gzip.zarr");
    std::fs::write(Path::new(&p3).join("2"), b"\x1f\x8bnot really gzip").unwrap();
    expect_chunk_err(&p3, &[2], "2");
    let (_t4, p4) = fixture_copy("v2/u16_blosc.zarr");
    truncate(&Path::new(&p4).join("0.1"), 12);
    expect_chunk_err(&p4, &[0, 1], "0.1");

    // v3 sharded: a truncated shard fails its inner chunks, naming the shard file.
    let (_t5, p5) = fixture_copy("v3/sharded.zarr");
    truncate(&Path::new(&p5).join("c/0/1"), 40);
    expect_chunk_err(&p5, &[0, 2], "c/0/1");
    expect_chunk_err(&p5, &[1, 3], "c/0/1");
    assert!(open_source(&p5).unwrap().read_chunk(&[0, 0]).is_ok());
}

#[test]
fn out_of_range_chunks_are_errors() {
    let p = fixtures_dir()
        .join("zarr/v3/f32_zstd.zarr")
        .display()
        .to_string();
    let src = open_source(&p).unwrap();
    assert!(matches!(src.read_chunk(&[4, 0]), Err(Error::Source { .. })));
    assert!(matches!(src.read_chunk(&[0]), Err(Error::Source { .. })));
    let n = fixtures_dir().join("npy/c_f32.npy").display().to_string();
    let src = open_source(&n).unwrap();
    assert!(matches!(src.read_chunk(&[9, 9]), Err(Error::Source { .. })));
    let sel = [
        ndstream_engine::AxisSel::range(0..14),
        ndstream_engine::AxisSel::range(0..7),
    ];
    assert!(matches!(
        src.read_selection(&sel),
        Err(Error::Source { .. })
    ));
}

#[test]
fn truncated_npy_and_raw_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.npy");
    std::fs::copy(fixtures_dir().join("npy/c_f32.npy"), &p).unwrap();
    truncate(&p, 200);
    expect_open_err(&p.display().to_string(), "truncated");
    truncate(&p, 30);
    expect_open_err(&p.display().to_string(), "header");
    let r = tmp.path().join("r.bin");
    std::fs::write(&r, [0u8; 10]).unwrap();
    expect_open_err(&format!("{}?dtype=<f4&shape=3", r.display()), "10 bytes");
    assert!(open_source(&format!("{}?dtype=<f4&shape=2", r.display())).is_ok());
    assert!(open_source(&format!("{}?dtype=|u1&shape=2&offset=8", r.display())).is_ok());
    expect_open_err(
        &format!("{}?dtype=|u1&shape=3&offset=8", r.display()),
        "needs 11",
    );
}

#[test]
fn bool_bytes_other_than_0_1_are_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("b.raw");
    std::fs::write(&r, [0u8, 1, 7, 0]).unwrap();
    let src = open_source(&format!("{}?dtype=|b1&shape=4", r.display())).unwrap();
    assert!(matches!(src.read_chunk(&[0]), Err(Error::Source { .. })));
}

#[test]
fn writing_into_an_existing_store_is_refused_untouched() {
    // Zarr fixture copies, v2 and v3.
    for rel in ["v3/f32_zstd.zarr", "v2/f32_zstd.zarr", "v3/group.zarr"] {
        let (_t, p) = fixture_copy(rel);
        let before = snapshot(Path::new(&p));
        let spec = SinkSpec::new(vec![13, 7], DType::F32, vec![4, 3]);
        match create_sink(&p, &spec) {
            Err(Error::Open { message, .. }) => {
                assert!(message.contains("already exists"), "{message}")
            }
            Err(e) => panic!("{p}: wrong error: {e}"),
            Ok(_) => panic!("{p}: create over an existing store was allowed"),
        }
        assert_eq!(snapshot(Path::new(&p)), before, "{p} was modified");
    }
    // An array inside an existing group.
    let (_t, g) = fixture_copy("v3/group.zarr");
    let before = snapshot(Path::new(&g));
    assert!(matches!(
        create_sink(
            &format!("{g}/inner/b"),
            &SinkSpec::new(vec![3], DType::F64, vec![2])
        ),
        Err(Error::Open { .. })
    ));
    assert_eq!(snapshot(Path::new(&g)), before);
    // .npy and raw.
    let tmp = tempfile::tempdir().unwrap();
    let n = tmp.path().join("a.npy");
    std::fs::copy(fixtures_dir().join("npy/c_f32.npy"), &n).unwrap();
    let bytes = std::fs::read(&n).unwrap();
    let spec = SinkSpec::new(vec![13, 7], DType::F32, vec![4, 3]);
    assert!(matches!(
        create_sink(&n.display().to_string(), &spec),
        Err(Error::Open { .. })
    ));
    assert_eq!(std::fs::read(&n).unwrap(), bytes);
    assert!(!tmp.path().join("a.npy.ndstream-incomplete").exists());
    let r = tmp.path().join("a.bin");
    std::fs::write(&r, [1u8; 12]).unwrap();
    let spec = SinkSpec::new(vec![3], DType::F32, vec![3]);
    assert!(matches!(
        create_sink(&r.display().to_string(), &spec),
        Err(Error::Open { .. })
    ));
    assert_eq!(std::fs::read(&r).unwrap(), vec![1u8; 12]);
}

#[test]
fn overwrite_never_deletes_a_foreign_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("precious.zarr");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("notes.txt"), "keep me").unwrap();
    let mut spec = SinkSpec::new(vec![4], DType::I32, vec![2]);
    spec.mode = WriteMode::Overwrite;
    assert!(matches!(
        create_sink(&d.display().to_string(), &spec),
        Err(Error::Open { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("notes.txt")).unwrap(),
        "keep me"
    );
    // Resume of something that is not an array is refused too.
    spec.mode = WriteMode::Resume;
    assert!(matches!(
        create_sink(&d.display().to_string(), &spec),
        Err(Error::Open { .. })
    ));
}

#[test]
fn malformed_raw_specs() {
    for bad in [
        "x.bin",
        "x.bin?dtype=<f4",
        "x.bin?shape=3,4",
        "x.bin?dtype=f5&shape=3",
        "x.bin?dtype=<f4&shape=3,-4",
        "x.bin?dtype=<f4&shape=3&offset=abc",
        "x.bin?dtype=<f4&shape=3&bogus=1",
        "x.raw?dtype=|i4&shape=3",
        "x.dat?nonsense",
    ] {
        match parse_location(bad) {
            Err(Error::Open { path, .. }) => assert_eq!(path, bad),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(matches!(open_source(bad), Err(Error::Open { .. })), "{bad}");
    }
    // A sink path whose spec disagrees with the data.
    let tmp = tempfile::tempdir().unwrap();
    let spec = SinkSpec::new(vec![3], DType::F32, vec![3]);
    for q in [
        "dtype=<f8",
        "shape=4",
        "dtype=<f4&shape=3&colour=red",
        "offset=x",
    ] {
        let p = format!("{}/o.bin?{q}", tmp.path().display());
        assert!(
            matches!(create_sink(&p, &spec), Err(Error::Open { .. })),
            "{p}"
        );
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "a refused sink left files"
    );
}

#[test]
fn bad_sink_specs_and_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    // Chunk rank mismatch, zero chunks, shards that do not tile chunks, v2 shards.
    let mut spec = SinkSpec::new(vec![4, 4], DType::F32, vec![2]);
    assert!(matches!(
        create_sink(&format!("{d}/a.zarr"), &spec),
        Err(Error::Open { .. })
    ));
    spec.chunks = vec![2, 0];
    assert!(matches!(
        create_sink(&format!("{d}/a.zarr"), &spec),
        Err(Error::Open { .. })
    ));
    assert!(matches!(
        create_sink(&format!("{d}/a.npy"), &spec),
        Err(Error::Open { .. })
    ));
    spec.chunks = vec![2, 2];
    spec.shards = Some(vec![3, 2]);
    assert!(matches!(
        create_sink(&format!("{d}/a.zarr"), &spec),
        Err(Error::Open { .. })
    ));
    spec.shards = Some(vec![4, 4]);
    spec.zarr_version = ndstream_formats::ZarrVersion::V2;
    assert!(matches!(
        create_sink(&format!("{d}/a.zarr"), &spec),
        Err(Error::Open { .. })
    ));
    // Blocks of the wrong shape or dtype, chunks out of range.
    spec.shards = None;
    for p in [
        format!("{d}/b.zarr"),
        format!("{d}/b.npy"),
        format!("{d}/b.bin"),
    ] {
        let sink = create_sink(&p, &spec).unwrap();
        let wrong_shape = Block::zeros(DType::F32, &[2, 3]);
        let wrong_dtype = Block::zeros(DType::F64, &[2, 2]);
        assert!(
            matches!(
                sink.write_chunk(&[0, 0], &wrong_shape),
                Err(Error::Sink { .. })
            ),
            "{p}"
        );
        assert!(
            matches!(
                sink.write_chunk(&[0, 0], &wrong_dtype),
                Err(Error::Sink { .. })
            ),
            "{p}"
        );
        assert!(
            matches!(
                sink.write_chunk(&[2, 0], &Block::zeros(DType::F32, &[2, 2])),
                Err(Error::Sink { .. })
            ),
            "{p}"
        );
        assert!(
            matches!(
                sink.write_chunk(&[0], &Block::zeros(DType::F32, &[2])),
                Err(Error::Sink { .. })
            ),
            "{p}"
        );
    }
}

#[cfg(not(feature = "hdf5"))]
#[test]
fn hdf5_without_the_feature_says_so() {
    for p in ["x.h5:/a", "y.nc"] {
        match open_source(p) {
            Err(Error::Open { message, .. }) => {
                assert!(message.contains("`hdf5` feature"), "{message}")
            }
            other => panic!("{p}: {other:?}"),
        }
        assert!(matches!(info(p), Err(Error::Open { .. })));
        assert!(matches!(
            create_sink(p, &SinkSpec::new(vec![1], DType::U8, vec![1])),
            Err(Error::Open { .. })
        ));
    }
}

#[test]
fn open_many_globs_the_file_part() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    for (i, name) in ["p2", "p0", "p1"].iter().enumerate() {
        let p = format!("{d}/{name}.npy");
        let sink = create_sink(&p, &SinkSpec::new(vec![2], DType::I32, vec![2])).unwrap();
        sink.write_chunk(&[0], &Block::full(DType::I32, &[2], i as f64))
            .unwrap();
        sink.finish().unwrap();
        let z = format!("{d}/{name}.zarr/grp/x");
        let sink = create_sink(&z, &SinkSpec::new(vec![3], DType::U8, vec![2])).unwrap();
        sink.write_chunk(&[0], &Block::full(DType::U8, &[2], i as f64))
            .unwrap();
        sink.write_chunk(&[1], &Block::full(DType::U8, &[1], i as f64))
            .unwrap();
        sink.finish().unwrap();
        let r = format!("{d}/{name}.bin");
        let sink = create_sink(&r, &SinkSpec::new(vec![2], DType::I16, vec![2])).unwrap();
        sink.write_chunk(&[0], &Block::full(DType::I16, &[2], i as f64))
            .unwrap();
        sink.finish().unwrap();
    }
    let srcs = open_many(&format!("{d}/p*.npy")).unwrap();
    let names: Vec<String> = srcs
        .iter()
        .map(|s| s.name().rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["p0.npy", "p1.npy", "p2.npy"]);
    let firsts: Vec<f64> = srcs
        .iter()
        .map(|s| s.read_chunk(&[0]).unwrap().to_f64_vec()[0])
        .collect();
    assert_eq!(firsts, [1.0, 2.0, 0.0]);
    let z = open_many(&format!("{d}/p?.zarr/grp/x")).unwrap();
    assert_eq!(z.len(), 3);
    assert!(z[0].name().ends_with("p0.zarr/grp/x"));
    let r = open_many(&format!("{d}/p*.bin?dtype=<i2&shape=2")).unwrap();
    assert_eq!(r.len(), 3);
    assert!(matches!(
        open_many(&format!("{d}/q*.npy")),
        Err(Error::Open { .. })
    ));
    assert!(matches!(
        open_many(&format!("{d}/[.npy")),
        Err(Error::Open { .. })
    ));
    // A matching store that cannot be opened fails the whole call.
    std::fs::write(format!("{d}/p9.npy"), "junk").unwrap();
    assert!(matches!(
        open_many(&format!("{d}/p*.npy")),
        Err(Error::Open { .. })
    ));
}

#[test]
fn arrays_go_only_into_groups_of_their_version() {
    let (_t, g) = fixture_copy("v2/group.zarr");
    let before = snapshot(Path::new(&g));
    let spec = SinkSpec::new(vec![3], DType::F64, vec![2]); // Zarr v3 by default
    match create_sink(&format!("{g}/new"), &spec) {
        Err(Error::Open { message, .. }) => assert!(message.contains("V2"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Nor below an array.
    assert!(matches!(
        create_sink(&format!("{g}/a/x"), &spec),
        Err(Error::Open { .. })
    ));
    assert_eq!(snapshot(Path::new(&g)), before);
    // With the right version it works, and the group lists it.
    let mut v2 = spec.clone();
    v2.zarr_version = ndstream_formats::ZarrVersion::V2;
    let sink = create_sink(&format!("{g}/new"), &v2).unwrap();
    sink.write_chunk(&[0], &Block::full(DType::F64, &[2], 1.0))
        .unwrap();
    sink.write_chunk(&[1], &Block::full(DType::F64, &[1], 2.0))
        .unwrap();
    sink.finish().unwrap();
    let ndstream_formats::StoreInfo::Group { arrays, .. } = info(&g).unwrap() else {
        panic!()
    };
    assert_eq!(arrays.len(), 3);
}

#[test]
fn absurd_sizes_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let huge = SinkSpec::new(vec![u64::MAX / 2, 4], DType::F64, vec![1, 4]);
    assert!(matches!(
        create_sink(&format!("{d}/h.npy"), &huge),
        Err(Error::Open { .. })
    ));
    assert!(matches!(
        create_sink(&format!("{d}/h.bin"), &huge),
        Err(Error::Open { .. })
    ));
    let spec = SinkSpec::new(vec![2], DType::U8, vec![2]);
    let p = format!("{d}/o.bin?offset={}", u64::MAX - 1);
    assert!(matches!(create_sink(&p, &spec), Err(Error::Open { .. })));
    std::fs::write(tmp.path().join("s.bin"), [0u8; 8]).unwrap();
    let p = format!("{d}/s.bin?dtype=<f8&shape={},{}", u64::MAX / 4, 8);
    assert!(matches!(open_source(&p), Err(Error::Open { .. })));
    let p = format!("{d}/s.bin?dtype=|u1&shape=2&offset={}", u64::MAX);
    assert!(matches!(open_source(&p), Err(Error::Open { .. })));
}
