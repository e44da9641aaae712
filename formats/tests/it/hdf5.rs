//! HDF5 source and sink tests.
//!
//! - fixtures written by h5py (`tests/fixtures/make_hdf5.py`) read back and
//!   compared with the closed form the script used (`ramp`);
//! - the conformance suite and round trips through our sink for every dtype and codec;
//! - reverse interop: what our sink writes, read by h5py (skipped without it);
//! - bad input (unsupported dtypes, missing files/datasets, corrupt chunks,
//!   truncated files, refused specs and modes), each a typed error;
//! - concurrent `write_chunk` from 4 threads.

use std::path::{Path, PathBuf};

use ndstream_engine::{AxisSel, Block, ChunkSource, DType, Error};
use ndstream_formats::{create_sink, info, open_source, Codec, SinkSpec, StoreInfo, WriteMode};
use serde_json::json;

use crate::conformance::{
    check_interrupted_then_resume, check_sink_then_source, expected, run_suite, select, Format,
};
use crate::fixtures::fixtures_dir;

fn basic() -> PathBuf {
    fixtures_dir().join("hdf5").join("basic.h5")
}

fn loc(file: &Path, ds: &str) -> String {
    format!("{}:{ds}", file.display())
}

/// `make_hdf5.py`'s `ramp`: element i is `i * scale + offset` (integers wrap to the dtype's range).
fn ramp(dtype: DType, n: usize, scale: f64, offset: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if dtype.is_integer() {
                let bits = 8 * dtype.size() as u32;
                let (lo, span): (i128, i128) = match dtype.kind() {
                    ndstream_engine::Kind::Signed => (-(1i128 << (bits - 1)), 1i128 << bits),
                    _ => (0, 1i128 << bits),
                };
                let v = i as i128 * scale as i128 + offset as i128;
                ((v - lo).rem_euclid(span) + lo) as f64
            } else if dtype == DType::F32 {
                (i as f64 * scale + offset) as f32 as f64
            } else {
                i as f64 * scale + offset
            }
        })
        .collect()
}

/// Every element of a source, assembled chunk by chunk (C order, as f64).
fn read_all(src: &dyn ChunkSource) -> Vec<f64> {
    let shape: Vec<usize> = src.shape().iter().map(|&n| n as usize).collect();
    let n: usize = shape.iter().product();
    let mut out = vec![f64::NAN; n];
    let grid = src.grid().clone();
    for c in 0..grid.num_chunks() {
        let idx = grid.unravel(c);
        let b = src
            .read_chunk(&idx)
            .unwrap_or_else(|e| panic!("{}: {e}", src.name()));
        let region = grid.chunk_region(&idx);
        let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        assert_eq!(b.shape(), want.as_slice(), "{} chunk {idx:?}", src.name());
        assert_eq!(b.dtype(), src.dtype());
        let vals = b.to_f64_vec();
        for (k, v) in vals.into_iter().enumerate() {
            // position of element k of the chunk in the whole array
            let mut rem = k;
            let mut lin = 0usize;
            let mut pos = vec![0usize; want.len()];
            for d in (0..want.len()).rev() {
                pos[d] = rem % want[d];
                rem /= want[d];
            }
            for d in 0..want.len() {
                lin = lin * shape[d] + region[d].start as usize + pos[d];
            }
            out[lin] = v;
        }
    }
    out
}

fn open(ds: &str) -> std::sync::Arc<dyn ChunkSource> {
    open_source(&loc(&basic(), ds)).unwrap_or_else(|e| panic!("{ds}: {e}"))
}

#[test]
fn reads_every_fixture_dataset() {
    // (dataset, dtype, shape, HDF5 chunks or None, scale, offset)
    type Case<'a> = (&'a str, DType, Vec<u64>, Option<Vec<u64>>, f64, f64);
    let cases: Vec<Case> = vec![
        ("/x", DType::F32, vec![300, 37], None, 0.5, -3.0),
        (
            "/ragged",
            DType::F32,
            vec![50, 33],
            Some(vec![16, 10]),
            1.0,
            0.0,
        ),
        (
            "/gzip",
            DType::F64,
            vec![60, 45],
            Some(vec![16, 16]),
            0.125,
            1.0,
        ),
        ("/fletcher", DType::U16, vec![101], Some(vec![10]), 3.0, 0.0),
        (
            "/fletcher_gzip",
            DType::I32,
            vec![40, 30],
            Some(vec![9, 8]),
            7.0,
            -500.0,
        ),
        (
            "/i8",
            DType::I8,
            vec![70, 3],
            Some(vec![32, 2]),
            5.0,
            -100.0,
        ),
        (
            "/u16",
            DType::U16,
            vec![70, 3],
            Some(vec![32, 3]),
            1000.0,
            0.0,
        ),
        (
            "/i64",
            DType::I64,
            vec![25],
            Some(vec![8]),
            123_456_789.0,
            -1e12,
        ),
        (
            "/f64",
            DType::F64,
            vec![12, 5, 4],
            Some(vec![5, 2, 3]),
            -0.75,
            2.0,
        ),
        (
            "/be_i32",
            DType::I32,
            vec![33, 7],
            Some(vec![8, 4]),
            1001.0,
            -7000.0,
        ),
        ("/be_f64", DType::F64, vec![19, 6], None, 1.5, -4.0),
        (
            "/scaleoffset",
            DType::I32,
            vec![40, 6],
            Some(vec![16, 4]),
            3.0,
            -50.0,
        ),
        ("/grp/a", DType::I32, vec![10], Some(vec![4]), 2.0, 0.0),
        ("/grp/b", DType::F64, vec![3, 4], None, 0.5, 0.0),
    ];
    for (ds, dtype, shape, chunks, scale, offset) in cases {
        let src = open(ds);
        assert_eq!(src.dtype(), dtype, "{ds}");
        assert_eq!(src.shape(), shape.as_slice(), "{ds}");
        if let Some(c) = &chunks {
            assert_eq!(
                &src.grid().max_chunk_shape(),
                c,
                "{ds}: grid = the HDF5 chunks"
            );
        }
        let n = shape.iter().product::<u64>() as usize;
        assert_eq!(
            read_all(src.as_ref()),
            ramp(dtype, n, scale, offset),
            "{ds}"
        );
    }
}

#[test]
fn bool_fill_values_and_unallocated_storage() {
    let src = open("/bool");
    assert_eq!(src.dtype(), DType::Bool);
    let want: Vec<f64> = (0..45).map(|i| f64::from(i % 3 == 0)).collect();
    assert_eq!(read_all(src.as_ref()), want);

    // Only chunk (0, 0) of /fill was written; the rest is the fill value -7.5.
    let src = open("/fill");
    let got = read_all(src.as_ref());
    for r in 0..30 {
        for c in 0..25 {
            let want = if r < 10 && c < 10 {
                (r * 10 + c) as f64
            } else {
                -7.5
            };
            assert_eq!(got[r * 25 + c], want, "({r}, {c})");
        }
    }
    // Contiguous and never written: all fill.
    let src = open("/empty");
    assert_eq!(src.dtype(), DType::I16);
    assert_eq!(read_all(src.as_ref()), vec![3.0; 24]);
    assert!(src.supports_selection());
    let b = src
        .read_selection(&[
            AxisSel {
                start: 5,
                step: -2,
                len: 3,
            },
            AxisSel::range(1..3),
        ])
        .unwrap();
    assert_eq!(b.to_f64_vec(), vec![3.0; 6]);
}

#[test]
fn contiguous_grid_and_strided_selections() {
    let src = open("/x");
    assert!(src.supports_selection());
    // The whole array is 44 KB: one auto chunk.
    assert_eq!(src.grid().num_chunks(), 1);
    let all = Block::from(
        ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[300, 37]),
            ramp(DType::F32, 300 * 37, 0.5, -3.0),
        )
        .unwrap()
        .mapv(|v| v as f32),
    );
    let sels: Vec<Vec<AxisSel>> = vec![
        vec![AxisSel::range(0..300), AxisSel::range(0..37)],
        vec![AxisSel::range(10..20), AxisSel::range(5..6)],
        vec![
            AxisSel {
                start: 299,
                step: -7,
                len: 40,
            },
            AxisSel {
                start: 1,
                step: 3,
                len: 12,
            },
        ],
        vec![
            AxisSel {
                start: 3,
                step: 50,
                len: 6,
            },
            AxisSel {
                start: 36,
                step: -1,
                len: 37,
            },
        ],
        vec![AxisSel::range(7..7), AxisSel::range(0..37)],
        // One contiguous byte range each (read in one call).
        vec![AxisSel::range(10..20), AxisSel::range(0..37)],
        vec![AxisSel::range(42..43), AxisSel::range(5..30)],
        vec![
            AxisSel {
                start: 100,
                step: -3,
                len: 1,
            },
            AxisSel::range(3..33),
        ],
        vec![
            AxisSel {
                start: 0,
                step: 1,
                len: 300,
            },
            AxisSel {
                start: 0,
                step: 36,
                len: 2,
            },
        ],
    ];
    for sel in sels {
        let got = src.read_selection(&sel).unwrap();
        assert_eq!(got, select(&all, &sel), "{sel:?}");
    }
    // Big-endian contiguous data is swapped on strided reads too.
    let src = open("/be_f64");
    let all = ramp(DType::F64, 19 * 6, 1.5, -4.0);
    let got = src
        .read_selection(&[
            AxisSel {
                start: 18,
                step: -9,
                len: 3,
            },
            AxisSel::range(2..4),
        ])
        .unwrap();
    let want: Vec<f64> = [18, 9, 0]
        .iter()
        .flat_map(|&r| [all[r * 6 + 2], all[r * 6 + 3]])
        .collect();
    assert_eq!(got.to_f64_vec(), want);
    // Out-of-bounds selections are an error, not a panic.
    assert!(matches!(
        src.read_selection(&[AxisSel::range(0..20), AxisSel::range(0..6)]),
        Err(Error::Source { .. })
    ));
}

/// Strided parts of a chunk of `shape`: per axis every other element, the
/// axis reversed, one middle element, or nothing (never the whole chunk).
fn chunk_parts(shape: &[u64]) -> Vec<Vec<AxisSel>> {
    let per_axis = |n: u64| {
        vec![
            AxisSel {
                start: 0,
                step: 2,
                len: n.div_ceil(2),
            },
            AxisSel {
                start: n - 1,
                step: -1,
                len: n,
            },
            AxisSel {
                start: n / 2,
                step: 1,
                len: 1,
            },
            AxisSel {
                start: 0,
                step: 1,
                len: 0,
            },
        ]
    };
    let mut parts: Vec<Vec<AxisSel>> = vec![Vec::new()];
    for &n in shape {
        parts = parts
            .into_iter()
            .flat_map(|p| {
                per_axis(n).into_iter().map(move |s| {
                    let mut q = p.clone();
                    q.push(s);
                    q
                })
            })
            .collect();
    }
    parts
}

#[test]
fn strided_parts_of_unfiltered_chunks_are_read_in_place() {
    // Unfiltered chunks in native order (and a never-written one in /fill):
    // a part comes straight from the mapped file and equals the part cut
    // from the whole chunk; the whole chunk itself is left to `read_chunk`.
    for ds in ["/ragged", "/f64", "/fill", "/i8", "/i64"] {
        let src = open(ds);
        let grid = src.grid().clone();
        for c in 0..grid.num_chunks() {
            let idx = grid.unravel(c);
            let whole = src.read_chunk(&idx).unwrap();
            let shape = grid.chunk_shape(&idx);
            for part in chunk_parts(&shape) {
                let all = part
                    .iter()
                    .zip(&shape)
                    .all(|(s, &n)| s.start == 0 && s.step == 1 && s.len == n);
                if all {
                    // (a one-element axis's middle element is all of it)
                    continue;
                }
                let got = src
                    .read_chunk_part(&idx, &part)
                    .unwrap_or_else(|| panic!("{ds}: chunk {idx:?} is not mapped"))
                    .unwrap();
                assert_eq!(
                    got,
                    select(&whole, &part),
                    "{ds} chunk {idx:?} part {part:?}"
                );
            }
            let all: Vec<AxisSel> = shape.iter().map(|&n| AxisSel::range(0..n)).collect();
            assert!(src.read_chunk_part(&idx, &all).is_none(), "{ds} {idx:?}");
        }
    }
    // Filtered, big-endian and bool chunks are decoded whole instead.
    for ds in ["/gzip", "/be_i32", "/bool"] {
        let src = open(ds);
        let idx = vec![0u64; src.shape().len()];
        let shape = src.grid().chunk_shape(&idx);
        let part = chunk_parts(&shape).swap_remove(0);
        assert!(src.read_chunk_part(&idx, &part).is_none(), "{ds}");
    }
}

#[test]
fn a_large_contiguous_dataset_streams_in_auto_chunks() {
    // A contiguous float32 vector of 3M elements (12 MB) splits into ~4 MiB blocks.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.h5");
    let n = 3_000_000usize;
    let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset::<f32>()
            .shape(n)
            .create("x")
            .unwrap()
            .write_raw(&data)
            .unwrap();
    }
    let src = open_source(&loc(&path, "/x")).unwrap();
    assert_eq!(src.grid().max_chunk_shape(), vec![1 << 20]);
    assert_eq!(src.grid().num_chunks(), 3);
    let last = src.read_chunk(&[2]).unwrap();
    assert_eq!(last.len(), n - 2 * (1 << 20));
    assert_eq!(last.to_f64_vec()[0], (2 << 20) as f64);
}

#[test]
fn attributes_and_info() {
    let src = open("/x");
    let a = src.attributes();
    assert_eq!(a.get("units"), Some(&json!("kelvin")));
    assert_eq!(a.get("scale"), Some(&json!(2.5)));
    assert_eq!(a.get("count"), Some(&json!(7)));
    assert_eq!(a.get("levels"), Some(&json!([1, 2, 3])));
    assert_eq!(a.get("weights"), Some(&json!([0.5, 0.25])));

    let StoreInfo::Array(i) = info(&loc(&basic(), "/gzip")).unwrap() else {
        panic!("not an array")
    };
    assert_eq!(i.format, "hdf5");
    assert_eq!(i.shape, vec![60, 45]);
    assert_eq!(i.dtype, DType::F64);
    assert_eq!(i.chunks, Some(vec![16, 16]));
    assert_eq!(i.codec, "shuffle+gzip(4)");
    assert_eq!(i.logical_bytes, 60 * 45 * 8);
    assert!(i.stored_bytes.unwrap() < i.logical_bytes);
    assert!(!i.incomplete);
    let StoreInfo::Array(i) = info(&loc(&basic(), "/x")).unwrap() else {
        panic!("not an array")
    };
    assert_eq!(i.chunks, None);
    assert_eq!(i.codec, "none");
    assert_eq!(i.stored_bytes, Some(300 * 37 * 4));
    assert_eq!(i.attributes.get("units"), Some(&json!("kelvin")));
    let StoreInfo::Array(i) = info(&loc(&basic(), "/fill")).unwrap() else {
        panic!("not an array")
    };
    assert_eq!(i.fill_value, Some(-7.5));
    assert_eq!(i.stored_bytes, Some(400));

    let StoreInfo::Group {
        arrays, attributes, ..
    } = info(&loc(&basic(), "/grp")).unwrap()
    else {
        panic!("not a group")
    };
    assert_eq!(attributes.get("title"), Some(&json!("two arrays")));
    let names: Vec<&str> = arrays
        .iter()
        .map(|a| a.path.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(names, vec!["/grp/a", "/grp/b"]);
    // The whole file: every readable dataset, recursively (compound and strings left out).
    let StoreInfo::Group { arrays, .. } = info(&basic().display().to_string()).unwrap() else {
        panic!("not a group")
    };
    let names: Vec<&str> = arrays
        .iter()
        .map(|a| a.path.rsplit(':').next().unwrap())
        .collect();
    assert!(
        names.contains(&"/grp/b") && names.contains(&"/x") && names.contains(&"/scaleoffset"),
        "{names:?}"
    );
    assert!(!names.contains(&"/compound"));
}

fn open_err(path: &str) -> String {
    match open_source(path) {
        Err(Error::Open { message, .. }) => message,
        Err(e) => panic!("{path}: expected Error::Open, got {e}"),
        Ok(_) => panic!("{path}: opened"),
    }
}

#[test]
fn bad_inputs_are_open_errors() {
    let m = open_err(&loc(&basic(), "/compound"));
    assert!(m.contains("compound") && m.contains("/compound"), "{m}");
    let m = open_err(&loc(&basic(), "/strings"));
    assert!(m.contains("string"), "{m}");
    let m = open_err(&loc(&basic(), "/nope"));
    assert!(m.contains("no dataset /nope") && m.contains("/gzip"), "{m}");
    let m = open_err(&loc(&basic(), "/grp"));
    assert!(m.contains("group"), "{m}");
    let m = open_err(&basic().display().to_string());
    assert!(m.contains("several datasets"), "{m}");
    let m = open_err("/no/such/dir/file.h5:/x");
    assert!(m.contains("no such file"), "{m}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, b"this is not HDF5").unwrap();
    let m = open_err(&loc(&junk, "/x"));
    assert!(m.contains("HDF5"), "{m}");
    assert!(matches!(info(&loc(&junk, "/x")), Err(Error::Open { .. })));
}

fn source_err(src: &dyn ChunkSource, idx: &[u64]) -> (Vec<u64>, String) {
    match src.read_chunk(idx) {
        Err(Error::Source {
            chunk,
            message,
            source_name,
            ..
        }) => {
            assert!(
                source_name.contains("corrupt.h5") || source_name.contains("cut.h5"),
                "{source_name}"
            );
            (chunk.0, message)
        }
        Err(e) => panic!("expected Error::Source, got {e}"),
        Ok(_) => panic!("chunk {idx:?} read"),
    }
}

#[test]
fn corrupt_chunks_are_source_errors() {
    let file = fixtures_dir().join("hdf5").join("corrupt.h5");
    let gz = open_source(&loc(&file, "/gzip")).unwrap();
    assert_eq!(
        gz.read_chunk(&[0]).unwrap().to_f64_vec(),
        ramp(DType::F32, 16, 1.0, 0.0)
    );
    let (chunk, m) = source_err(gz.as_ref(), &[1]);
    assert_eq!(chunk, vec![1]);
    assert!(m.contains("deflate") || m.contains("decoded"), "{m}");
    let fl = open_source(&loc(&file, "/fletcher")).unwrap();
    assert!(fl.read_chunk(&[1]).is_ok());
    let (chunk, m) = source_err(fl.as_ref(), &[2]);
    assert_eq!(chunk, vec![2]);
    assert!(m.contains("fletcher32"), "{m}");

    // A file cut short after opening: the read comes up short.
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.h5");
    std::fs::copy(basic(), &cut).unwrap();
    let src = open_source(&loc(&cut, "/ragged")).unwrap();
    let x = open_source(&loc(&cut, "/x")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(2048)
        .unwrap();
    let last = src.grid().unravel(src.grid().num_chunks() - 1);
    let (_, m) = source_err(src.as_ref(), &last);
    assert!(m.contains("truncated"), "{m}");
    // Whole rows (one contiguous read) and a strided selection both fail.
    for sel in [
        [AxisSel::range(200..300), AxisSel::range(0..37)],
        [AxisSel::range(200..300), AxisSel::range(0..5)],
    ] {
        let e = x.read_selection(&sel).unwrap_err();
        assert!(matches!(e, Error::Source { .. }), "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}

fn h5_path(dir: &Path, stem: &str, _: &SinkSpec) -> String {
    dir.join(format!("{stem}.h5")).display().to_string() + ":/g/x"
}

#[test]
fn hdf5_conforms() {
    let f = Format {
        codecs: vec![Codec::Gzip { level: 5 }],
        ..Format::new("hdf5", &h5_path)
    };
    run_suite(&f);
}

#[test]
fn every_dtype_round_trips_with_gzip_and_degenerate_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let f = Format {
        codecs: vec![Codec::Gzip { level: 1 }],
        ..Format::new("hdf5", &h5_path)
    };
    for (i, dt) in DType::ALL.into_iter().enumerate() {
        let mut spec = SinkSpec::new(vec![11, 6], dt, vec![4, 4]);
        spec.codec = Codec::Gzip { level: 1 };
        check_sink_then_source(dir.path(), &format!("g{i}"), &spec, &f);
    }
    let cases: [(Vec<u64>, Vec<u64>); 4] = [
        (vec![], vec![]),
        (vec![0, 4], vec![2, 2]),
        (vec![3, 0, 2], vec![1, 1, 1]),
        (vec![3], vec![10]),
    ];
    for (i, (shape, chunks)) in cases.into_iter().enumerate() {
        let spec = SinkSpec::new(shape, DType::F64, chunks);
        check_sink_then_source(dir.path(), &format!("d{i}"), &spec, &f);
    }
}

#[test]
fn contiguous_datasets_round_trip_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    // Contiguous storage cannot tell which chunks an interrupted run wrote.
    let f = Format {
        keeps_chunks: false,
        resume_skips_done: false,
        ..Format::new("hdf5 contiguous", &h5_path)
    };
    let cases: [(Vec<u64>, Vec<u64>, DType); 4] = [
        (vec![13, 7], vec![4, 3], DType::F32),
        (vec![5, 6, 7], vec![2, 6, 7], DType::I16),
        (vec![37], vec![8], DType::U64),
        (vec![4, 0], vec![2, 2], DType::F64),
    ];
    for (i, (shape, chunks, dt)) in cases.into_iter().enumerate() {
        let mut spec = SinkSpec::new(shape, dt, chunks);
        spec.contiguous = true;
        check_sink_then_source(dir.path(), &format!("c{i}"), &spec, &f);
        if i < 2 {
            check_interrupted_then_resume(dir.path(), &format!("cr{i}"), &spec, &f);
        }
        let StoreInfo::Array(a) = info(&h5_path(dir.path(), &format!("c{i}"), &spec)).unwrap()
        else {
            panic!("not an array")
        };
        if a.logical_bytes > 0 {
            // (hdf5-metno chunks empty datasets whatever we ask)
            assert_eq!(a.chunks, None, "stored contiguous");
        }
        assert_eq!(a.codec, "none");
    }
    // Resuming a finished contiguous dataset skips every chunk.
    let mut spec = SinkSpec::new(vec![13, 7], DType::F32, vec![4, 3]);
    spec.contiguous = true;
    let path = h5_path(dir.path(), "cdone", &spec);
    write_all(&path, &spec);
    spec.mode = WriteMode::Resume;
    let sink = create_sink(&path, &spec).unwrap();
    assert!((0..sink.grid().num_chunks()).all(|n| sink.is_done(&sink.grid().unravel(n))));
    let mut spec = SinkSpec::new(vec![10], DType::F32, vec![5]);
    spec.contiguous = true;
    spec.codec = Codec::Gzip { level: 1 };
    let m = sink_open_err(&h5_path(dir.path(), "cz", &spec), &spec);
    assert!(m.contains("contiguous"), "{m}");
}

/// Write `expected(spec)` through our sink, chunk by chunk.
fn write_all(path: &str, spec: &SinkSpec) {
    let data = expected(spec.dtype, &spec.shape);
    let sink = create_sink(path, spec).unwrap_or_else(|e| panic!("{path}: {e}"));
    let grid = sink.grid().clone();
    for n in 0..grid.num_chunks() {
        let idx = grid.unravel(n);
        let sel: Vec<AxisSel> = grid
            .chunk_region(&idx)
            .into_iter()
            .map(AxisSel::range)
            .collect();
        sink.write_chunk(&idx, &select(&data, &sel)).unwrap();
    }
    sink.finish().unwrap();
}

#[test]
fn concurrent_writes_from_four_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = loc(&dir.path().join("conc.h5"), "/a/b/c");
    let mut spec = SinkSpec::new(vec![97, 61], DType::F32, vec![8, 8]);
    spec.codec = Codec::Gzip { level: 3 };
    let data = expected(DType::F32, &spec.shape);
    let sink = create_sink(&path, &spec).unwrap();
    let grid = sink.grid().clone();
    let n = grid.num_chunks();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (sink, grid, data) = (&sink, &grid, &data);
            s.spawn(move || {
                for c in (t..n).step_by(4) {
                    let idx = grid.unravel(c);
                    let sel: Vec<AxisSel> = grid
                        .chunk_region(&idx)
                        .into_iter()
                        .map(AxisSel::range)
                        .collect();
                    sink.write_chunk(&idx, &select(data, &sel)).unwrap();
                }
            });
        }
    });
    assert!((0..n).all(|c| sink.is_done(&grid.unravel(c))));
    sink.finish().unwrap();
    drop(sink);
    let src = open_source(&path).unwrap();
    assert_eq!(read_all(src.as_ref()), data.to_f64_vec());
    // ... and reads back concurrently too.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (src, grid, data) = (&src, &grid, &data);
            s.spawn(move || {
                for c in (t..n).step_by(4) {
                    let idx = grid.unravel(c);
                    let sel: Vec<AxisSel> = grid
                        .chunk_region(&idx)
                        .into_iter()
                        .map(AxisSel::range)
                        .collect();
                    assert_eq!(src.read_chunk(&idx).unwrap(), select(data, &sel));
                }
            });
        }
    });
}

fn sink_open_err(path: &str, spec: &SinkSpec) -> String {
    match create_sink(path, spec) {
        Err(Error::Open { message, .. }) => message,
        Err(e) => panic!("{path}: expected Error::Open, got {e}"),
        Ok(_) => panic!("{path}: created"),
    }
}

#[test]
fn sink_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.h5");
    let path = loc(&file, "/x");
    let mut spec = SinkSpec::new(vec![10, 10], DType::I16, vec![5, 5]);
    for codec in [
        Codec::Zstd { level: 3 },
        Codec::Blosc {
            cname: "lz4".into(),
            clevel: 5,
            shuffle: true,
        },
    ] {
        spec.codec = codec;
        let m = sink_open_err(&path, &spec);
        assert!(m.contains("none and gzip"), "{m}");
    }
    assert!(!file.exists(), "a refused spec creates nothing");
    spec.codec = Codec::None;
    spec.shards = Some(vec![10, 10]);
    assert!(sink_open_err(&path, &spec).contains("shards"));
    spec.shards = None;
    write_all(&path, &spec);

    // Create on an existing dataset: refused, file untouched.
    let before = std::fs::read(&file).unwrap();
    let m = sink_open_err(&path, &spec);
    assert!(m.contains("already exists"), "{m}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    // A second dataset in the same file is fine; the first stays.
    write_all(&loc(&file, "/grp/y"), &spec);
    let src = open_source(&path).unwrap();
    assert_eq!(
        read_all(src.as_ref()),
        expected(DType::I16, &[10, 10]).to_f64_vec()
    );
    drop(src);
    // Resume with other chunks or dtype: refused.
    let mut other = spec.clone();
    other.mode = WriteMode::Resume;
    other.chunks = vec![2, 2];
    assert!(sink_open_err(&path, &other).contains("chunks"));
    other.chunks = vec![5, 5];
    other.dtype = DType::F32;
    assert!(sink_open_err(&path, &other).contains("dtype"));
    other.dtype = DType::I16;
    other.codec = Codec::Gzip { level: 2 };
    assert!(sink_open_err(&path, &other).contains("filters"));
    // Overwrite replaces the dataset (another shape), keeps the other one.
    let mut over = SinkSpec::new(vec![4], DType::U8, vec![3]);
    over.mode = WriteMode::Overwrite;
    write_all(&path, &over);
    assert_eq!(open_source(&path).unwrap().shape(), &[4]);
    assert_eq!(
        open_source(&loc(&file, "/grp/y")).unwrap().shape(),
        &[10, 10]
    );
    // Not HDF5 (a netCDF-3 file, say): every mode refuses, and the file is
    // never truncated or replaced (it may hold data ndstream cannot see).
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, b"not hdf5").unwrap();
    let m = sink_open_err(&loc(&junk, "/x"), &spec);
    assert!(m.contains("HDF5"), "{m}");
    assert_eq!(std::fs::read(&junk).unwrap(), b"not hdf5");
    for mode in [WriteMode::Overwrite, WriteMode::Resume] {
        over.mode = mode;
        let m = sink_open_err(&loc(&junk, "/x"), &over);
        assert!(m.contains("not an HDF5 file"), "{m}");
        assert_eq!(std::fs::read(&junk).unwrap(), b"not hdf5");
    }
    over.mode = WriteMode::Overwrite;
    // A wrong block is a sink error, not a panic.
    let sink = create_sink(&loc(&file, "/z"), &spec).unwrap();
    let bad = Block::zeros(DType::I16, &[3, 3]);
    assert!(matches!(
        sink.write_chunk(&[0, 0], &bad),
        Err(Error::Sink { .. })
    ));
    assert!(matches!(
        sink.write_chunk(&[9, 0], &Block::zeros(DType::I16, &[5, 5])),
        Err(Error::Sink { .. })
    ));
    drop(sink);
    let StoreInfo::Array(i) = info(&loc(&file, "/z")).unwrap() else {
        panic!("not an array")
    };
    assert!(i.incomplete, "never finished");
}

/// Prints, per dataset: dtype, shape, chunks, compression, sum of float64 values, first/last elements, attrs.
const CHECK: &str = r#"
import json, sys
import h5py, numpy as np
out = {}
with h5py.File(sys.argv[1], "r") as f:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            a = obj[()]
            out["/" + name] = {
                "dtype": str(a.dtype), "shape": list(a.shape), "chunks": list(obj.chunks or []),
                "compression": obj.compression, "shuffle": obj.shuffle,
                "values": np.asarray(a, dtype=np.float64).ravel().tolist(),
                "attrs": {k: (v.decode() if isinstance(v, bytes) else (v.tolist() if hasattr(v, "tolist") else v)) for k, v in obj.attrs.items()},
            }
    f.visititems(visit)
print(json.dumps(out))
"#;

#[test]
fn h5py_reads_what_we_write() {
    let Some(py) = crate::interop::python_with("numpy, h5py") else {
        println!(
            "SKIP h5py_reads_what_we_write: no python with numpy and h5py (set NDSTREAM_PYTHON)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.h5");
    let cases = [
        ("/f32", DType::F32, Codec::Gzip { level: 6 }),
        ("/grp/i64", DType::I64, Codec::None),
        ("/grp/deep/u16", DType::U16, Codec::Gzip { level: 1 }),
        ("/b", DType::Bool, Codec::None),
        ("/i8", DType::I8, Codec::Gzip { level: 9 }),
    ];
    for (ds, dt, codec) in &cases {
        let mut spec = SinkSpec::new(vec![13, 7], *dt, vec![5, 3]);
        spec.codec = codec.clone();
        spec.attributes.insert("units".into(), json!("m/s"));
        spec.attributes.insert("levels".into(), json!([1, 2, 3]));
        write_all(&loc(&file, ds), &spec);
    }
    let out = crate::interop::child(&py)
        .args(["-c", CHECK, &file.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (ds, dt, codec) in &cases {
        let d = &got[*ds];
        let np_name = if *dt == DType::Bool {
            "bool"
        } else {
            dt.name()
        };
        assert_eq!(d["dtype"], json!(np_name), "{ds}");
        assert_eq!(d["shape"], json!([13, 7]), "{ds}");
        assert_eq!(d["chunks"], json!([5, 3]), "{ds}");
        let gz = matches!(codec, Codec::Gzip { .. });
        assert_eq!(
            d["compression"],
            if gz { json!("gzip") } else { json!(null) },
            "{ds}"
        );
        assert_eq!(d["shuffle"], json!(gz), "{ds}");
        assert_eq!(
            d["values"],
            json!(expected(*dt, &[13, 7]).to_f64_vec()),
            "{ds}"
        );
        assert_eq!(
            d["attrs"],
            json!({"units": "m/s", "levels": [1, 2, 3]}),
            "{ds}"
        );
    }
}

/// A file like one the `hdf5_open` fuzzer made: dataset `/short` is
/// compact, 100 `<i4` whose layout message says it holds 40 bytes, from
/// which libhdf5 1.10 copies 400 (past its buffer). It is refused at
/// open by name; its sound sibling `/good` (compact, 0..100) reads whole,
/// and `info` lists only `/good`.
#[test]
fn a_compact_dataset_shorter_than_its_elements_is_refused() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/hdf5_open/compact-smaller-than-its-elements");
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("short.h5");
    std::fs::copy(&file, &h5).unwrap();
    let m = open_err(&loc(&h5, "/short"));
    assert!(
        m.contains("/short")
            && m.contains("compact storage holds 40 bytes")
            && m.contains("100 elements of 4 bytes need 400"),
        "{m}"
    );
    let good = open_source(&loc(&h5, "/good")).unwrap();
    let want: Vec<f64> = (0..100).map(f64::from).collect();
    assert_eq!(read_all(good.as_ref()), want);
    match info(&h5.display().to_string()) {
        Ok(StoreInfo::Group { arrays, .. }) => {
            let paths: Vec<&str> = arrays.iter().map(|a| a.path.as_str()).collect();
            assert!(
                paths.len() == 1 && paths[0].ends_with(":/good"),
                "{paths:?}"
            );
        }
        other => panic!("info: {other:?}"),
    }
}

/// A file written by libhdf5 (250 `<i4` in chunks of 100): `/nbit` and
/// `/scaleoffset` hold 0..250 through the filters libhdf5 decodes itself;
/// `/nbit_short` and `/scaleoffset_short` are the same but for a filter
/// parameter saying a chunk holds 10 elements, from which libhdf5 1.10
/// would copy 100 (past its buffer). The damaged two are refused at open
/// by name; the sound two read whole.
#[test]
fn filter_parameters_that_decode_less_than_a_chunk_are_refused() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/hdf5_open/filter-parameters-shorter-than-a-chunk");
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("filters.h5");
    std::fs::copy(&file, &h5).unwrap();
    let want: Vec<f64> = (0..250).map(f64::from).collect();
    for filter in ["nbit", "scaleoffset"] {
        let m = open_err(&loc(&h5, &format!("/{filter}_short")));
        assert!(
            m.contains(&format!("/{filter}_short"))
                && m.contains(&format!(
                    "{filter} filter's parameters decode 40 bytes a chunk, its chunks hold 400"
                )),
            "{m}"
        );
        let src = open_source(&loc(&h5, &format!("/{filter}"))).unwrap();
        assert_eq!(read_all(src.as_ref()), want, "{filter}");
    }
    // A scale-offset chunk stating 32 bits an element holds 21 + 400
    // bytes, or is an error naming it; libhdf5 copied 400 from its 25.
    let addr = {
        let f = hdf5::File::open(&h5).unwrap();
        let ds = f.dataset("scaleoffset").unwrap();
        let c = ds.chunk_info(0).unwrap();
        assert_eq!(c.offset, [0]);
        assert!(c.size < 421, "{}", c.size);
        c.addr as usize
    };
    let mut bytes = std::fs::read(&h5).unwrap();
    bytes[addr..addr + 4].copy_from_slice(&32u32.to_le_bytes());
    std::fs::write(&h5, &bytes).unwrap();
    let src = open_source(&loc(&h5, "/scaleoffset")).unwrap();
    assert_eq!(src.read_chunk(&[1]).unwrap().to_f64_vec(), want[100..200]);
    match src.read_chunk(&[0]) {
        Err(e @ Error::Source { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("chunk (0,)") && m.contains("decoding it reads 421"),
                "{m}"
            );
        }
        other => panic!("a short scale-offset chunk read as {other:?}"),
    }
}

/// A gzip dataset of 2^21 chunks (1x2 `<i4`), three written: more chunks
/// than are located at open, so each is located when it is read, and
/// still decoded by ndstream, not libhdf5 (whose deflate would hand a
/// short chunk on and read past it). Chunk (0, 1) is replaced by a
/// deflate stream of one element: reading it is an error naming the
/// chunk; its neighbours read their values, an unwritten chunk the fill.
#[test]
fn chunks_located_when_read_are_decoded_and_checked_here() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.h5");
    {
        let f = hdf5::File::create(&path).unwrap();
        let ds = f
            .new_dataset::<i32>()
            .shape((2048, 2048))
            .chunk((1, 2))
            .deflate(1)
            .fill_value(-1)
            .create("x")
            .unwrap();
        let row = ndarray::arr2(&[[10, 11, 12, 13, 14, 15]]);
        ds.write_slice(&row, ndarray::s![0..1, 0..6]).unwrap();
    }
    let (addr, size) = {
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("x").unwrap();
        let n = ds.num_chunks().unwrap();
        assert_eq!(n, 3);
        let c = (0..n)
            .map(|i| ds.chunk_info(i).unwrap())
            .find(|c| c.offset == [0, 2])
            .unwrap();
        (c.addr, c.size)
    };
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&12i32.to_le_bytes()).unwrap();
    let short = z.finish().unwrap();
    assert!(short.len() as u64 <= size, "{} > {size}", short.len());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[addr as usize..addr as usize + short.len()].copy_from_slice(&short);
    std::fs::write(&path, &bytes).unwrap();

    let src = open_source(&loc(&path, "/x")).unwrap();
    assert_eq!(src.grid().num_chunks(), 1 << 21);
    assert_eq!(src.read_chunk(&[0, 0]).unwrap().to_f64_vec(), [10.0, 11.0]);
    assert_eq!(src.read_chunk(&[0, 2]).unwrap().to_f64_vec(), [14.0, 15.0]);
    assert_eq!(src.read_chunk(&[7, 9]).unwrap().to_f64_vec(), [-1.0, -1.0]);
    match src.read_chunk(&[0, 1]) {
        Err(e @ Error::Source { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("chunk (0, 1)") && m.contains("decoded to 4 bytes"),
                "{m}"
            );
        }
        other => panic!("a short chunk read as {other:?}"),
    }
}

/// szip chunks are decoded by ndstream (through the szip library libhdf5
/// links), not by libhdf5, which trusts a chunk's stored length: given a
/// chunk whose length says 8 bytes it copied a whole chunk (400) out of
/// an 8-byte buffer. Here that chunk, and one whose length is larger than
/// a chunk, are errors naming the chunk; the others read their values.
#[test]
fn szip_chunks_are_decoded_here_and_their_lengths_checked() {
    if !hdf5::filters::szip_available() {
        eprintln!("this libhdf5 has no szip; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("szip.h5");
    let want: Vec<i32> = (0..1000).map(|i| i * 7 % 13 - 900).collect();
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset::<i32>()
            .shape(1000)
            .chunk(100)
            .shuffle()
            .szip(hdf5::filters::SZip::NearestNeighbor, 8)
            .create("x")
            .unwrap()
            .write(&want)
            .unwrap();
    }
    let src = open_source(&loc(&path, "/x")).unwrap();
    let all: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(read_all(src.as_ref()), all);
    drop(src);

    let addr = {
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("x").unwrap();
        (0..ds.num_chunks().unwrap())
            .map(|i| ds.chunk_info(i).unwrap())
            .find(|c| c.offset == [300])
            .unwrap()
            .addr as usize
    };
    let pristine = std::fs::read(&path).unwrap();
    for (len, says) in [
        (8u32, "the chunk decoded to 8 bytes, expected 400"),
        (
            0x7fff_ffff,
            "says it decodes to 2147483647 bytes, more than the 400",
        ),
    ] {
        let mut bytes = pristine.clone();
        bytes[addr..addr + 4].copy_from_slice(&len.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let src = open_source(&loc(&path, "/x")).unwrap();
        assert_eq!(src.read_chunk(&[2]).unwrap().to_f64_vec(), all[200..300]);
        match src.read_chunk(&[3]) {
            Err(e @ Error::Source { .. }) => {
                let m = e.to_string();
                assert!(m.contains("chunk (3,)") && m.contains(says), "{m}");
            }
            other => panic!("a chunk of length {len} read as {other:?}"),
        }
    }
}

/// Integer types whose stored bits are not the whole value (made with
/// `H5Tset_precision` / `H5Tset_offset`, as n-bit compression uses) are
/// read through libhdf5's conversion, which sign-extends and shifts them:
/// contiguous, gzip'd and n-bit datasets of 20-bit and of offset 16-bit
/// `<i4` read the values h5py writes and reads. Read as raw bytes, -5
/// came back as 1048571.
#[test]
fn integers_of_reduced_precision_read_their_values() {
    use hdf5_sys::{h5d, h5p, h5s, h5t};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precision.h5");
    let want: Vec<i32> = vec![-5, -1, 0, 1, 2, -30_000, 30_000, 7];
    {
        let f = hdf5::File::create(&path).unwrap();
        hdf5::sync::sync(|| unsafe {
            let space = h5s::H5Screate_simple(1, [8u64].as_ptr(), std::ptr::null());
            for (name, offset, filter) in [
                (c"contiguous", 0, ""),
                (c"gzip", 0, "gzip"),
                (c"nbit", 0, "nbit"),
                (c"offset", 8, ""),
            ] {
                let t = h5t::H5Tcopy(*h5t::H5T_STD_I32LE);
                assert!(h5t::H5Tset_precision(t, if offset == 0 { 20 } else { 16 }) >= 0);
                assert!(h5t::H5Tset_offset(t, offset) >= 0);
                let dcpl = h5p::H5Pcreate(*h5p::H5P_CLS_DATASET_CREATE);
                if !filter.is_empty() {
                    assert!(h5p::H5Pset_chunk(dcpl, 1, [4u64].as_ptr()) >= 0);
                    assert!(
                        if filter == "gzip" {
                            h5p::H5Pset_deflate(dcpl, 1)
                        } else {
                            h5p::H5Pset_nbit(dcpl)
                        } >= 0
                    );
                }
                let ds = h5d::H5Dcreate2(f.id(), name.as_ptr(), t, space, 0, dcpl, 0);
                assert!(ds >= 0);
                let rc = h5d::H5Dwrite(
                    ds,
                    *h5t::H5T_NATIVE_INT,
                    h5s::H5S_ALL,
                    h5s::H5S_ALL,
                    0,
                    want.as_ptr().cast(),
                );
                assert!(rc >= 0);
                h5d::H5Dclose(ds);
                h5p::H5Pclose(dcpl);
                h5t::H5Tclose(t);
            }
            h5s::H5Sclose(space);
        });
    }
    let all: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    for name in ["contiguous", "gzip", "nbit", "offset"] {
        let src = open_source(&loc(&path, &format!("/{name}"))).unwrap();
        assert_eq!(read_all(src.as_ref()), all, "{name}");
    }
}

/// A file the `hdf5_open` fuzzer made: dataset `/enum`'s datatype is an
/// enumeration of 3 bytes over a 1-byte integer, on which libhdf5 1.10's
/// `H5T_copy` reads past its buffer. ndstream checks the header first:
/// the dataset is refused by name, its siblings still open, and `info`
/// lists the siblings.
#[test]
fn a_corrupt_datatype_message_is_refused_before_libhdf5_reads_it() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/hdf5_open/enum-wider-than-its-base");
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("crash.h5");
    std::fs::copy(&file, &h5).unwrap();
    let m = open_err(&loc(&h5, "/enum"));
    assert!(
        m.contains("/enum") && m.contains("header is corrupt") && m.contains("enumeration of"),
        "{m}"
    );
    // The sibling written with a sound header still opens.
    let src = open_source(&loc(&h5, "/compound"));
    assert!(
        matches!(&src, Err(Error::Open { message, .. }) if message.contains("compound")),
        "the sibling /compound should be refused for its dtype only"
    );
    match info(&h5.display().to_string()) {
        Ok(StoreInfo::Group { arrays, .. }) => {
            assert!(arrays.iter().all(|a| !a.path.ends_with("/enum")));
        }
        other => panic!("info: {other:?}"),
    }
}
