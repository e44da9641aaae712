//! The conformance suite every format's sink and source pass.
//!
//! Signature (call it from any format's test module as `crate::conformance::...`):
//!
//! ```ignore
//! pub struct Format<'a> {
//!     pub name: &'a str,
//!     /// The path string for a store named `stem` inside `dir` holding `spec`
//!     /// (e.g. `dir/stem.h5:/g/x`, `dir/stem.zarr`, `dir/stem.bin?dtype=<f4&shape=3,4`).
//!     pub path_for: &'a dyn Fn(&Path, &str, &SinkSpec) -> String,
//!     pub zarr_version: ZarrVersion,   // put into every spec
//!     pub codecs: Vec<Codec>,          // tried besides Codec::None
//!     pub sharded: bool,               // also try v3 sharded specs
//!     pub keeps_chunks: bool,          // the reopened source's grid is spec.chunks
//!     pub attributes: bool,            // attributes round-trip
//!     pub resume_skips_done: bool,     // is_done() is true for chunks written before
//! }
//! impl Format { pub fn new(name, path_for) -> Format }  // defaults: no codecs, not sharded,
//!                                                       // keeps_chunks, attributes, resume_skips_done
//! pub fn run_suite(f: &Format);                          // every dtype, edge chunks, codecs, modes
//! // one spec, stored at path_for(dir, stem, spec):
//! pub fn check_sink_then_source(dir: &Path, stem: &str, spec: &SinkSpec, f: &Format);
//! pub fn check_interrupted_then_resume(dir: &Path, stem: &str, spec: &SinkSpec, f: &Format);
//! pub fn specs(f: &Format) -> Vec<SinkSpec>;            // the specs run_suite uses
//! pub fn expected(dtype: DType, shape: &[u64]) -> Block;  // the values the suite writes
//! ```
//!
//! `check_sink_then_source` writes `expected(spec.dtype, spec.shape)` through
//! `create_sink` chunk by chunk (from two threads, edge chunks ragged),
//! finishes, then reopens with `open_source` and checks shape, dtype, grid,
//! every chunk's values, strided selections where supported, attributes,
//! `info`, that `WriteMode::Create` on the existing store is refused with
//! `Error::Open` and leaves it untouched, that `Resume` on a finished store
//! sees every chunk done, and that `Overwrite` replaces it.
//! `check_interrupted_then_resume` writes half the chunks without `finish`,
//! checks that `info` says incomplete, that the written chunks read back and
//! the missing ones read as the fill value 0, then resumes and completes.

use std::path::Path;
use std::sync::Mutex;

use ndarray::{ArrayD, Dimension, IxDyn, SliceInfoElem};
use ndstream_engine::{with_dtype, AxisSel, Block, ChunkGrid, DType, Element, Error};
use ndstream_formats::{
    create_sink, info, open_source, Codec, SinkSpec, StoreInfo, WriteMode, ZarrVersion,
};

/// A format under test and what it can do.
pub struct Format<'a> {
    pub name: &'a str,
    /// The path for a store named `stem` inside `dir` that will hold `spec`.
    pub path_for: &'a dyn Fn(&Path, &str, &SinkSpec) -> String,
    /// Zarr version put into every spec (ignored by other formats).
    pub zarr_version: ZarrVersion,
    /// Codecs tried besides `Codec::None`.
    pub codecs: Vec<Codec>,
    /// Also try Zarr v3 sharded specs.
    pub sharded: bool,
    /// The reopened source's chunking is `spec.chunks`.
    pub keeps_chunks: bool,
    /// User attributes round-trip.
    pub attributes: bool,
    /// A resumed sink's `is_done` is true for the chunks written before.
    pub resume_skips_done: bool,
}

impl std::fmt::Debug for Format<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Format")
            .field("name", &self.name)
            .field("zarr_version", &self.zarr_version)
            .finish()
    }
}

impl<'a> Format<'a> {
    /// Defaults: no codecs, unsharded, chunks kept, attributes kept, resume skips done chunks.
    pub fn new(
        name: &'a str,
        path_for: &'a dyn Fn(&Path, &str, &SinkSpec) -> String,
    ) -> Format<'a> {
        Format {
            name,
            path_for,
            zarr_version: ZarrVersion::V3,
            codecs: Vec::new(),
            sharded: false,
            keeps_chunks: true,
            attributes: true,
            resume_skips_done: true,
        }
    }
}

/// The deterministic values the suite writes: element `i` (C order) of an
/// array of `shape`, spread over the dtype's whole range (64-bit values
/// beyond 2^53, negative values, floats exact in f32).
pub fn expected(dtype: DType, shape: &[u64]) -> Block {
    let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
    let strides: Vec<usize> = (0..dims.len())
        .map(|d| dims[d + 1..].iter().product())
        .collect();
    with_dtype!(dtype, T => {
        let a = ArrayD::<T>::from_shape_fn(IxDyn(&dims), |ix| {
            let i: usize = (0..ix.ndim()).map(|d| ix[d] * strides[d]).sum();
            element::<T>(dtype, i as u64)
        });
        Block::from(a)
    })
}

fn element<T: Element>(dtype: DType, i: u64) -> T {
    let h = i.wrapping_mul(2_654_435_761) % 1_000_003;
    let bits = 8 * dtype.size() as u32;
    match dtype {
        DType::Bool => T::from_u64(h % 2),
        DType::U64 => T::from_u64(h * 17_000_000_000_000),
        DType::I64 => T::from_i64(h as i64 * 9_000_000_000_000 - 4_500_000_000_000_000_000),
        DType::U8 | DType::U16 | DType::U32 => T::from_u64(h % (1u64 << bits.min(20))),
        DType::I8 | DType::I16 | DType::I32 => {
            let span = 1i64 << bits.min(20);
            T::from_i64((h as i64) % span - span / 2)
        }
        DType::F32 | DType::F64 => T::from_f64((h % 100_000) as f64 / 8.0 - 1000.0),
    }
}

/// The part of `b` inside `sel` (strided, either step sign).
pub fn select(b: &Block, sel: &[AxisSel]) -> Block {
    let info: Vec<SliceInfoElem> = sel
        .iter()
        .map(|s| {
            if s.len == 0 {
                SliceInfoElem::Slice {
                    start: 0,
                    end: Some(0),
                    step: 1,
                }
            } else if s.step > 0 {
                SliceInfoElem::Slice {
                    start: s.start as isize,
                    end: Some(s.index(s.len - 1) as isize + 1),
                    step: s.step as isize,
                }
            } else {
                // ndarray applies a negative step from the end of the range.
                let last = s.index(s.len - 1);
                SliceInfoElem::Slice {
                    start: last as isize,
                    end: Some(s.start as isize + 1),
                    step: s.step as isize,
                }
            }
        })
        .collect();
    with_dtype!(b.dtype(), T => {
        let a = b.view::<T>().unwrap_or_else(|| panic!("dtype"));
        Block::from(a.slice(info.as_slice()).to_owned())
    })
}

fn region_block(b: &Block, region: &[std::ops::Range<u64>]) -> Block {
    let sel: Vec<AxisSel> = region.iter().cloned().map(AxisSel::range).collect();
    select(b, &sel)
}

fn all_chunks(g: &ChunkGrid) -> Vec<Vec<u64>> {
    (0..g.num_chunks()).map(|n| g.unravel(n)).collect()
}

fn test_attributes() -> ndstream_engine::Attributes {
    let mut a = ndstream_engine::Attributes::new();
    a.insert("units".into(), serde_json::json!("K"));
    a.insert("scale".into(), serde_json::json!(0.5));
    a.insert("tags".into(), serde_json::json!(["a", "b"]));
    a
}

/// Write every chunk of `sink.grid()` (skipping those `is_done` reports) from two threads.
fn write_chunks(
    sink: &dyn ndstream_engine::ChunkSink,
    data: &Block,
    only: Option<&dyn Fn(u64) -> bool>,
) -> usize {
    let grid = sink.grid().clone();
    let todo: Vec<Vec<u64>> = all_chunks(&grid)
        .into_iter()
        .enumerate()
        .filter(|(n, _)| only.is_none_or(|f| f(*n as u64)))
        .map(|(_, c)| c)
        .filter(|c| !sink.is_done(c))
        .rev()
        .collect();
    let queue = Mutex::new(todo.clone());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(idx) = next else { break };
                let block = region_block(data, &grid.chunk_region(&idx));
                sink.write_chunk(&idx, &block)
                    .unwrap_or_else(|e| panic!("{}: write_chunk {idx:?}: {e}", sink.name()));
            });
        }
    });
    todo.len()
}

/// Read every chunk of a freshly opened source and compare with `data`;
/// also strided selections where the source supports them.
fn check_reads(path: &str, spec: &SinkSpec, data: &Block, f: &Format) {
    let src = open_source(path).unwrap_or_else(|e| panic!("{}: open {path}: {e}", f.name));
    assert_eq!(
        src.shape(),
        spec.shape.as_slice(),
        "{}: shape of {path}",
        f.name
    );
    assert_eq!(src.dtype(), spec.dtype, "{}: dtype of {path}", f.name);
    let grid = src.grid().clone();
    assert_eq!(grid.shape(), spec.shape, "{}: grid shape of {path}", f.name);
    if f.keeps_chunks {
        let want: Vec<u64> = spec
            .chunks
            .iter()
            .zip(&spec.shape)
            .map(|(&c, &n)| c.min(n))
            .collect();
        assert_eq!(grid.max_chunk_shape(), want, "{}: chunks of {path}", f.name);
    }
    for idx in all_chunks(&grid) {
        let got = src
            .read_chunk(&idx)
            .unwrap_or_else(|e| panic!("{}: read {path} {idx:?}: {e}", f.name));
        let want = region_block(data, &grid.chunk_region(&idx));
        assert_eq!(
            got.shape(),
            want.shape(),
            "{}: chunk {idx:?} shape of {path}",
            f.name
        );
        assert!(got == want, "{}: chunk {idx:?} of {path} differs", f.name);
    }
    if src.supports_selection() && spec.shape.iter().all(|&n| n > 0) {
        let sels: Vec<Vec<AxisSel>> = vec![
            spec.shape.iter().map(|&n| AxisSel::full(n)).collect(),
            spec.shape
                .iter()
                .map(|&n| AxisSel {
                    start: 0,
                    step: 2,
                    len: n.div_ceil(2),
                })
                .collect(),
            spec.shape
                .iter()
                .map(|&n| AxisSel {
                    start: n - 1,
                    step: -3,
                    len: (n - 1) / 3 + 1,
                })
                .collect(),
            spec.shape
                .iter()
                .map(|&n| AxisSel::range(n / 3..n - n / 4))
                .collect(),
        ];
        for sel in sels {
            let got = src
                .read_selection(&sel)
                .unwrap_or_else(|e| panic!("{}: select {path} {sel:?}: {e}", f.name));
            assert!(
                got == select(data, &sel),
                "{}: selection {sel:?} of {path} differs",
                f.name
            );
        }
    }
    if f.attributes && !spec.attributes.is_empty() {
        let attrs = src.attributes();
        for (k, v) in &spec.attributes {
            assert_eq!(attrs.get(k), Some(v), "{}: attribute {k} of {path}", f.name);
        }
    }
    check_locator(path, src.as_ref(), f);
}

/// The source's locator is absolute and opens the same array again.
fn check_locator(path: &str, src: &dyn ndstream_engine::ChunkSource, f: &Format) {
    let loc = src
        .locator()
        .unwrap_or_else(|| panic!("{}: {path} has no locator", f.name));
    assert!(loc.starts_with('/'), "{}: locator {loc} of {path}", f.name);
    let again = open_source(&loc).unwrap_or_else(|e| panic!("{}: open {loc}: {e}", f.name));
    assert_eq!(again.shape(), src.shape(), "{}: {loc}", f.name);
    assert_eq!(again.dtype(), src.dtype(), "{}: {loc}", f.name);
    assert_eq!(again.grid(), src.grid(), "{}: {loc}", f.name);
    assert_eq!(again.locator().as_deref(), Some(loc.as_str()), "{}", f.name);
    let chunks = all_chunks(src.grid());
    for idx in [chunks.first(), chunks.last()].into_iter().flatten() {
        assert!(
            again.read_chunk(idx).unwrap() == src.read_chunk(idx).unwrap(),
            "{}: chunk {idx:?} through {loc}",
            f.name
        );
    }
}

/// `path` (absolute) relative to the working directory.
fn relative_to_cwd(path: &str) -> String {
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd.components().count() - 1;
    format!("{}{}", "../".repeat(ups), path.trim_start_matches('/'))
}

fn info_of(path: &str, f: &Format) -> ndstream_formats::ArrayInfo {
    match info(path).unwrap_or_else(|e| panic!("{}: info {path}: {e}", f.name)) {
        StoreInfo::Array(a) => a,
        other => panic!("{}: info {path} is not an array: {other:?}", f.name),
    }
}

/// Write `spec` through the sink, read it back, and check the write modes (see the module doc).
pub fn check_sink_then_source(dir: &Path, stem: &str, spec: &SinkSpec, f: &Format) {
    let path = &(f.path_for)(dir, stem, spec);
    let data = expected(spec.dtype, &spec.shape);
    let sink = create_sink(path, spec).unwrap_or_else(|e| panic!("{}: create {path}: {e}", f.name));
    assert_eq!(sink.shape(), spec.shape.as_slice());
    assert_eq!(sink.dtype(), spec.dtype);
    assert_eq!(sink.grid().shape(), spec.shape);
    write_chunks(sink.as_ref(), &data, None);
    sink.finish()
        .unwrap_or_else(|e| panic!("{}: finish {path}: {e}", f.name));
    drop(sink);
    check_reads(path, spec, &data, f);
    // Opened through a relative path, the store's locator is absolute.
    let rel = relative_to_cwd(path);
    let src = open_source(&rel).unwrap_or_else(|e| panic!("{}: open {rel}: {e}", f.name));
    assert!(
        src.locator().is_some() && src.locator() == open_source(path).unwrap().locator(),
        "{}: {rel}",
        f.name
    );
    check_locator(&rel, src.as_ref(), f);

    let i = info_of(path, f);
    assert_eq!(i.shape, spec.shape, "{}: info shape", f.name);
    assert_eq!(i.dtype, spec.dtype, "{}: info dtype", f.name);
    assert!(
        !i.incomplete,
        "{}: finished store {path} reported incomplete",
        f.name
    );
    assert_eq!(
        i.logical_bytes,
        spec.shape.iter().product::<u64>() * spec.dtype.size() as u64
    );

    // Create on an existing store: refused, store untouched.
    let mut again = spec.clone();
    again.mode = WriteMode::Create;
    match create_sink(path, &again) {
        Err(Error::Open { .. }) => {}
        Err(e) => panic!("{}: create over {path} gave the wrong error: {e}", f.name),
        Ok(_) => panic!("{}: create over existing {path} was allowed", f.name),
    }
    check_reads(path, spec, &data, f);

    // Resume on a finished store: nothing left to do.
    if f.resume_skips_done {
        let mut resume = spec.clone();
        resume.mode = WriteMode::Resume;
        let sink =
            create_sink(path, &resume).unwrap_or_else(|e| panic!("{}: resume {path}: {e}", f.name));
        for idx in all_chunks(sink.grid()) {
            assert!(
                sink.is_done(&idx),
                "{}: resume of finished {path}: chunk {idx:?} not done",
                f.name
            );
        }
        sink.finish()
            .unwrap_or_else(|e| panic!("{}: finish resumed {path}: {e}", f.name));
    }

    // Overwrite replaces the store, here with another dtype.
    let mut over = spec.clone();
    over.mode = WriteMode::Overwrite;
    over.dtype = if spec.dtype == DType::I16 {
        DType::F64
    } else {
        DType::I16
    };
    let over_path = (f.path_for)(dir, stem, &over);
    let sink = create_sink(&over_path, &over)
        .unwrap_or_else(|e| panic!("{}: overwrite {over_path}: {e}", f.name));
    let data2 = expected(over.dtype, &over.shape);
    write_chunks(sink.as_ref(), &data2, None);
    sink.finish()
        .unwrap_or_else(|e| panic!("{}: finish overwrite {over_path}: {e}", f.name));
    drop(sink);
    check_reads(&over_path, &over, &data2, f);
}

/// Write half the chunks without finishing, check the store reads as
/// incomplete with fill-valued holes, then resume and complete it.
pub fn check_interrupted_then_resume(dir: &Path, stem: &str, spec: &SinkSpec, f: &Format) {
    let path = &(f.path_for)(dir, stem, spec);
    let data = expected(spec.dtype, &spec.shape);
    let sink = create_sink(path, spec).unwrap_or_else(|e| panic!("{}: create {path}: {e}", f.name));
    let first_half = |n: u64| n.is_multiple_of(2);
    write_chunks(sink.as_ref(), &data, Some(&first_half));
    let sink_grid = sink.grid().clone();
    drop(sink); // interrupted: never finished

    assert!(
        info_of(path, f).incomplete,
        "{}: unfinished {path} not reported incomplete",
        f.name
    );
    // What was written reads back; what was not reads as zeros (the fill value).
    let src =
        open_source(path).unwrap_or_else(|e| panic!("{}: open unfinished {path}: {e}", f.name));
    let partial = with_dtype!(spec.dtype, T => {
        let full = data.view::<T>().unwrap_or_else(|| panic!("dtype"));
        let mut dst = ArrayD::<T>::default(full.raw_dim());
        for (n, idx) in all_chunks(&sink_grid).into_iter().enumerate() {
            if first_half(n as u64) {
                let info: Vec<SliceInfoElem> = sink_grid
                    .chunk_region(&idx)
                    .iter()
                    .map(|r| SliceInfoElem::Slice { start: r.start as isize, end: Some(r.end as isize), step: 1 })
                    .collect();
                dst.slice_mut(info.as_slice()).assign(&full.slice(info.as_slice()));
            }
        }
        Block::from(dst)
    });
    let grid = src.grid().clone();
    for idx in all_chunks(&grid) {
        let got = src
            .read_chunk(&idx)
            .unwrap_or_else(|e| panic!("{}: read unfinished {path} {idx:?}: {e}", f.name));
        assert!(
            got == region_block(&partial, &grid.chunk_region(&idx)),
            "{}: unfinished {path} chunk {idx:?}",
            f.name
        );
    }
    drop(src);

    let mut resume = spec.clone();
    resume.mode = WriteMode::Resume;
    let sink =
        create_sink(path, &resume).unwrap_or_else(|e| panic!("{}: resume {path}: {e}", f.name));
    if f.resume_skips_done {
        for (n, idx) in all_chunks(sink.grid()).into_iter().enumerate() {
            assert_eq!(
                sink.is_done(&idx),
                first_half(n as u64),
                "{}: resume {path}: is_done({idx:?})",
                f.name
            );
        }
    }
    let written = write_chunks(sink.as_ref(), &data, None);
    if f.resume_skips_done {
        assert_eq!(
            written as u64,
            sink_grid.num_chunks() / 2,
            "{}: resume of {path} rewrote done chunks",
            f.name
        );
    }
    sink.finish()
        .unwrap_or_else(|e| panic!("{}: finish resumed {path}: {e}", f.name));
    drop(sink);
    assert!(
        !info_of(path, f).incomplete,
        "{}: resumed {path} still incomplete",
        f.name
    );
    check_reads(path, spec, &data, f);

    // Resume with a different shape is refused.
    let mut wrong = resume.clone();
    wrong.shape[0] += 1;
    let wrong_path = (f.path_for)(dir, stem, &wrong);
    match create_sink(&wrong_path, &wrong) {
        Err(Error::Open { .. }) => {}
        Err(e) => panic!(
            "{}: resume with another shape gave the wrong error: {e}",
            f.name
        ),
        Ok(_) => panic!(
            "{}: resume of {path} with another shape was allowed",
            f.name
        ),
    }
}

/// The specs the suite runs: every dtype on a ragged 2-d grid, then shapes
/// of rank 1 to 3 (ragged and exact) with each codec, then sharded ones.
pub fn specs(f: &Format) -> Vec<SinkSpec> {
    let mut out = Vec::new();
    let mut push = |shape: Vec<u64>,
                    chunks: Vec<u64>,
                    shards: Option<Vec<u64>>,
                    dtype: DType,
                    codec: Codec| {
        let mut s = SinkSpec::new(shape, dtype, chunks);
        s.shards = shards;
        s.codec = codec;
        s.zarr_version = f.zarr_version;
        s.attributes = test_attributes();
        out.push(s);
    };
    for dt in DType::ALL {
        push(vec![13, 7], vec![4, 3], None, dt, Codec::None);
    }
    let shapes: [(Vec<u64>, Vec<u64>); 3] = [
        (vec![37], vec![8]),
        (vec![5, 6, 7], vec![2, 4, 7]),
        (vec![16, 16], vec![8, 8]),
    ];
    let mut codecs = vec![Codec::None];
    codecs.extend(f.codecs.iter().cloned());
    for (i, codec) in codecs.iter().enumerate() {
        for (j, (shape, chunks)) in shapes.iter().enumerate() {
            let dt = [DType::F32, DType::I64, DType::U16, DType::F64][(i + j) % 4];
            push(shape.clone(), chunks.clone(), None, dt, codec.clone());
        }
    }
    if f.sharded {
        for codec in &codecs {
            push(
                vec![13, 7],
                vec![2, 3],
                Some(vec![4, 6]),
                DType::F32,
                codec.clone(),
            );
            push(vec![20], vec![3], Some(vec![9]), DType::I8, codec.clone());
        }
    }
    // Every third store finishes durably (fsync first): the same checks hold.
    for s in out.iter_mut().skip(1).step_by(3) {
        s.sync = true;
    }
    out
}

/// Run the whole suite for a format in a fresh temporary directory.
pub fn run_suite(f: &Format) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let specs = specs(f);
    for (i, spec) in specs.iter().enumerate() {
        check_sink_then_source(dir.path(), &format!("s{i}"), spec, f);
    }
    // Interrupted writes and resume: one plain and (if any) one sharded spec.
    let mut picks = vec![specs[1].clone(), specs[DType::ALL.len() + 1].clone()];
    if let Some(s) = specs.iter().find(|s| s.shards.is_some()) {
        picks.push(s.clone());
    }
    for (i, spec) in picks.iter().enumerate() {
        check_interrupted_then_resume(dir.path(), &format!("r{i}"), spec, f);
    }
}
