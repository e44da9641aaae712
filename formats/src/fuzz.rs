//! Entry points of the coverage-guided fuzz targets (`fuzz/`), shared with
//! the regression tests that replay their corpora (`tests/it/fuzz.rs`).
//!
//! Each function takes arbitrary bytes, turns them into the input of one
//! reader (a `.npy` file, a Zarr store's metadata and a chunk, an HDF5
//! file, a netCDF-3 file, a chunk through the HDF5 filter pipeline, a path
//! string), runs it,
//! and returns. Errors are the expected outcome for most inputs and are
//! ignored; a panic, an abort, a hang or an allocation beyond the fuzzer's
//! limit is a bug. Where a reader promises something checkable (a chunk
//! has the shape the grid says, a decoded pipeline gives back what was
//! encoded) the function asserts it, so a wrong answer is a crash too.
//!
//! Reads are bounded so that a legitimately huge array declared by a few
//! bytes of metadata costs nothing: at most [`MAX_CHUNKS`] chunks, each of
//! at most [`MAX_CHUNK_BYTES`], are read. Files go to one scratch directory
//! per process, emptied before each input. Not a stable API.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use ndstream_engine::{AxisSel, ChunkSource};

use crate::spec::StoreInfo;

/// The most chunks of one array an input reads.
pub const MAX_CHUNKS: u64 = 16;
/// The largest chunk (bytes) an input reads; larger ones are skipped.
pub const MAX_CHUNK_BYTES: u128 = 4 << 20;

/// A scratch directory for this process and call, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ndstream-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        Scratch(dir)
    }

    /// Write `bytes` to `rel` below the directory (making parents); the path as a string.
    fn write(&self, rel: &str, bytes: &[u8]) -> String {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&p, bytes);
        p.display().to_string()
    }

    #[cfg(feature = "zarr")]
    fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The product of `dims` as u128, saturating (never overflows, whatever a file declares).
fn product(dims: impl IntoIterator<Item = u64>) -> u128 {
    dims.into_iter()
        .fold(1u128, |acc, d| acc.saturating_mul(u128::from(d)))
}

/// Read up to [`MAX_CHUNKS`] chunks of `src` (the first ones and the last
/// one) when its chunks are small, checking that each has the grid's shape
/// and the source's dtype; then a strided part and a strided selection
/// where the source supports them.
pub fn read_bounded(src: &dyn ChunkSource) {
    let grid = src.grid();
    assert_eq!(
        grid.shape(),
        src.shape(),
        "{}: grid and shape disagree",
        src.name()
    );
    let itemsize = src.dtype().size() as u128;
    let max_chunk = grid.max_chunk_shape();
    if product(max_chunk.iter().copied()).saturating_mul(itemsize) > MAX_CHUNK_BYTES {
        return;
    }
    let counts: Vec<u64> = grid.axes().iter().map(|a| a.count()).collect();
    let total = product(counts.iter().copied());
    if total == 0 {
        return;
    }
    let last: Vec<u64> = counts.iter().map(|&c| c - 1).collect();
    let mut picks: Vec<Vec<u64>> = Vec::new();
    // The first chunks in C order (total is at least their count here).
    let first_n = u64::try_from(total.min(u128::from(MAX_CHUNKS - 1))).unwrap_or(0);
    for n in 0..first_n {
        let mut idx = vec![0u64; counts.len()];
        let mut rem = n;
        for d in (0..counts.len()).rev() {
            idx[d] = rem % counts[d];
            rem /= counts[d];
        }
        picks.push(idx);
    }
    if !picks.contains(&last) {
        picks.push(last);
    }
    for idx in &picks {
        if let Ok(b) = src.read_chunk(idx) {
            let want: Vec<usize> = grid.chunk_shape(idx).iter().map(|&n| n as usize).collect();
            assert_eq!(b.shape(), want.as_slice(), "{}: chunk {idx:?}", src.name());
            assert_eq!(b.dtype(), src.dtype(), "{}: chunk {idx:?}", src.name());
        }
        // Every other element of the chunk, from its end backwards on the last axis.
        let region = grid.chunk_region(idx);
        let part: Vec<AxisSel> = region
            .iter()
            .enumerate()
            .map(|(d, r)| {
                let n = r.end - r.start;
                if d + 1 == region.len() && n > 0 {
                    AxisSel {
                        start: n - 1,
                        step: -2,
                        len: n.div_ceil(2),
                    }
                } else {
                    AxisSel {
                        start: 0,
                        step: 2,
                        len: n.div_ceil(2),
                    }
                }
            })
            .collect();
        if let Some(Ok(b)) = src.read_chunk_part(idx, &part) {
            let want: Vec<usize> = part.iter().map(|s| s.len as usize).collect();
            assert_eq!(
                b.shape(),
                want.as_slice(),
                "{}: part of {idx:?}",
                src.name()
            );
        }
    }
    if src.supports_selection()
        && product(src.shape().iter().map(|&n| n.div_ceil(3))).saturating_mul(itemsize)
            <= MAX_CHUNK_BYTES
    {
        let sel: Vec<AxisSel> = src
            .shape()
            .iter()
            .map(|&n| AxisSel {
                start: 0,
                step: 3,
                len: n.div_ceil(3),
            })
            .collect();
        if let Ok(b) = src.read_selection(&sel) {
            let want: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
            assert_eq!(b.shape(), want.as_slice(), "{}: selection", src.name());
        }
    }
}

/// Describe `path` with [`info`](crate::info), then open every array it
/// names (the array itself, or each array of a group) and read it bounded.
fn info_open_read(path: &str) {
    let arrays: Vec<String> = match crate::info(path) {
        Ok(StoreInfo::Array(a)) => vec![a.path],
        Ok(StoreInfo::Group { arrays, .. }) => arrays.into_iter().map(|a| a.path).collect(),
        Err(_) => vec![path.to_string()],
    };
    for a in arrays.iter().take(4) {
        if let Ok(src) = crate::open_source(a) {
            read_bounded(src.as_ref());
        }
    }
}

#[cfg(feature = "npy")]
/// `npy_header`: `data` as a whole `.npy` file: the header parser, then
/// `info`, `open_source` and bounded reads of the mapped data.
pub fn npy_file(data: &[u8]) {
    let dir = Scratch::new();
    let path = dir.write("x.npy", data);
    if let Ok(layout) = crate::npy::read_header(&path, std::path::Path::new(&path)) {
        // What the parser accepted must survive a write and a re-parse.
        let header = crate::npy::header_bytes(layout.dtype, &layout.shape, layout.little_endian);
        let again = dir.write("y.npy", &header);
        let back = crate::npy::read_header(&again, std::path::Path::new(&again));
        let back = back.unwrap_or_else(|e| panic!("re-parsing our own header failed: {e}"));
        assert_eq!(
            (back.dtype, &back.shape, back.little_endian),
            (layout.dtype, &layout.shape, layout.little_endian)
        );
    }
    info_open_read(&path);
}

/// `netcdf3`: `data` as a whole netCDF-3 file (`x.nc`): the header
/// parser, `info` of the file and its variables, `open_source` and bounded
/// reads of the mapped variables, records strided or packed.
pub fn netcdf3_file(data: &[u8]) {
    let dir = Scratch::new();
    let path = dir.write("x.nc", data);
    info_open_read(&path);
}

/// The store layouts [`zarr_store`] builds around the fuzzed metadata.
#[cfg(feature = "zarr")]
const ZARR_LAYOUTS: [(&str, &str, &str); 4] = [
    // (metadata file, attributes file, the array's path below the root)
    ("zarr.json", "", ""),
    (".zarray", ".zattrs", ""),
    ("a/zarr.json", "", "a"),
    ("a/.zarray", "a/.zattrs", "a"),
];

#[cfg(feature = "zarr")]
/// `zarr_meta`: a Zarr store made of fuzzed metadata and a fuzzed chunk.
///
/// `data` is `layout byte, metadata, 0xFF, attributes, 0xFF, chunk bytes`
/// (0xFF never occurs in UTF-8 JSON). The layout byte picks v3 or v2, and
/// an array at the root or one inside a group (whose own metadata is
/// valid). The chunk bytes are stored as the first and the last chunk
/// (shard) of the array; then the store is described, opened and read.
pub fn zarr_store(data: &[u8]) {
    let Some((&layout, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0xff);
    let meta = parts.next().unwrap_or_default();
    let attrs = parts.next().unwrap_or_default();
    let chunk = parts.next().unwrap_or_default();
    let (meta_file, attrs_file, array) = ZARR_LAYOUTS[usize::from(layout % 4)];
    let dir = Scratch::new();
    let root = dir.path("s.zarr");
    dir.write(&format!("s.zarr/{meta_file}"), meta);
    if !attrs_file.is_empty() {
        dir.write(&format!("s.zarr/{attrs_file}"), attrs);
    }
    if !array.is_empty() {
        let (name, group) = if meta_file.ends_with("zarr.json") {
            (
                "zarr.json",
                r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#,
            )
        } else {
            (".zgroup", r#"{"zarr_format":2}"#)
        };
        dir.write(&format!("s.zarr/{name}"), group.as_bytes());
    }
    let name = if array.is_empty() {
        root.clone()
    } else {
        format!("{root}/{array}")
    };
    if let Ok(arr) = crate::zarr::open_array(&name, std::path::Path::new(&root), array) {
        let grid = arr.chunk_grid_shape().to_vec();
        if !grid.contains(&0) {
            let last: Vec<u64> = grid.iter().map(|&n| n - 1).collect();
            for idx in [vec![0; grid.len()], last] {
                let key = arr.chunk_key(&idx);
                dir.write(&format!("s.zarr/{}", key.as_str()), chunk);
            }
        }
    }
    info_open_read(&root);
    if !array.is_empty() {
        info_open_read(&name);
    }
}

/// `hdf5_open`: `data` as a whole HDF5 file: `info` on the file (every
/// dataset it lists), then open and read each (bounded).
#[cfg(feature = "hdf5")]
pub fn hdf5_file(data: &[u8]) {
    let dir = Scratch::new();
    let path = dir.write("x.h5", data);
    info_open_read(&path);
}

/// `hdf5_codec`: the chunk decode path ndstream runs itself (shuffle,
/// deflate, zstd, lz4, blosc, bzip2, fletcher32; see `hdf5::codec`).
///
/// `data` is `pipeline byte, element size byte, mask byte, 2 bytes of
/// expected length (little-endian), stored chunk bytes`. The pipeline byte
/// picks which filters run, in this order: shuffle (bit 0), deflate (1),
/// zstd (4), lz4 (5), blosc (6), bzip2 (7), fletcher32 (2); bit 3 makes
/// the expected length the stored one. Bit 7 of the element size byte
/// adds bitshuffle after shuffle (see below).
/// Decoding the stored bytes must return an error or exactly the expected
/// length; and encoding the stored bytes as raw data then decoding them
/// must give them back.
#[cfg(feature = "hdf5")]
pub fn hdf5_codec(data: &[u8]) {
    use crate::hdf5::{codec_decode, codec_encode, Packing, Step};
    let [pipe, size, mask, e0, e1, stored @ ..] = data else {
        return;
    };
    let mut pipeline = Vec::new();
    if pipe & 1 != 0 {
        pipeline.push(Step::Shuffle {
            size: usize::from(*size),
        });
    }
    // Bit 7 of the element size byte adds bitshuffle: elements of 1, 2, 4
    // or 8 bytes (bits 0-1), blocks of 8, 64, 128 or 1024 elements (bits
    // 2-3), packed with nothing, LZ4 or zstd (bits 4-5, 3 read as LZ4).
    if size & 0x80 != 0 {
        let elem = 1usize << (size & 3);
        if stored.len() % elem == 0 {
            pipeline.push(Step::Bitshuffle {
                elem,
                block: [8, 64, 128, 1024][usize::from((size >> 2) & 3)],
                packing: match (size >> 4) & 3 {
                    0 => Packing::None,
                    2 => Packing::Zstd,
                    _ => Packing::Lz4,
                },
            });
        }
    }
    if pipe & 2 != 0 {
        pipeline.push(Step::Deflate);
    }
    for (bit, step) in [
        (16, Step::Zstd),
        (32, Step::Lz4),
        (64, Step::Blosc),
        (128, Step::Bzip2),
    ] {
        if pipe & bit != 0 {
            pipeline.push(step);
        }
    }
    if pipe & 4 != 0 {
        pipeline.push(Step::Fletcher32);
    }
    // The expected length is at most 64 KiB, or the stored length when bit 3 is set.
    let expected = if pipe & 8 != 0 {
        stored.len()
    } else {
        usize::from(u16::from_le_bytes([*e0, *e1]))
    };
    let (mut cur, mut tmp) = (stored.to_vec(), Vec::new());
    if codec_decode(&mut cur, &mut tmp, &pipeline, u32::from(*mask), expected).is_ok() {
        assert_eq!(cur.len(), expected);
    }
    let level = u32::from(*mask % 10);
    let encoded = codec_encode(stored, &pipeline, level);
    let (mut cur, mut tmp) = (encoded, Vec::new());
    match codec_decode(&mut cur, &mut tmp, &pipeline, 0, stored.len()) {
        Ok(()) => assert!(
            cur == stored,
            "the pipeline {pipeline:?} did not round-trip"
        ),
        Err(e) => panic!("decoding what we encoded with {pipeline:?} failed: {e}"),
    }
}

/// `path_syntax`: `data` (lossily UTF-8) as a user path: the location
/// parser, the split of a glob pattern into its file part and the rest
/// (what `open_many` globs and what it appends to each match), and
/// compiling the file part as a glob pattern (without walking the disk).
pub fn path_string(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = crate::parse_location(&s);
    let (file, rest) = crate::open::split_pattern(&s);
    let _ = glob::Pattern::new(&file);
    let _ = crate::parse_location(&format!("{file}{rest}"));
}
