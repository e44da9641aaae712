//! Raw binary files, and the contiguous-storage source and sink that `.npy` shares.
//!
//! A contiguous store is one run of `product(shape)` elements of one dtype
//! in one byte order, C or Fortran order, starting at a byte offset (0 for
//! raw files unless the spec says otherwise, after the header for `.npy`).
//!
//! - [`ContiguousSource`] memory-maps the file and gathers any chunk or
//!   strided selection straight from the map (byte-swapping when the file's
//!   order is not the machine's); its grid is chosen with
//!   [`ChunkGrid::auto`] at [`DEFAULT_TARGET_CHUNK_BYTES`](crate::DEFAULT_TARGET_CHUNK_BYTES).
//! - [`ContiguousSink`] pre-sizes the file (C order) and writes each chunk
//!   at its offsets with positioned writes, one per contiguous run, so
//!   chunks can arrive in any order from any thread. While it writes, a
//!   sidecar `<file>.ndstream-incomplete` exists; `finish` syncs the file and
//!   removes it. A chunk's runs are not written atomically, so `Resume`
//!   rewrites every chunk (`is_done` is always false): the result is
//!   complete and correct once the resumed run finishes, however the
//!   previous run ended (an error, a full disk, `SIGKILL`).
//!
//! Lifecycle (see [`crate::lock`] and [`crate::swap`]): the sink holds an
//! exclusive `flock` on the file it writes, taken before it decides
//! anything, so a second writer is refused ("in use by another process").
//! `Overwrite` of an existing file writes a locked temporary beside it
//! (`.<name>.ndstream-new-<pid>-<n>`) and renames it over the file at
//! `finish`: until then the old file is untouched and readable, a failed
//! write removes the temporary, and a killed one leaves it for the next
//! overwrite to remove. Nothing else is written outside the named file but
//! the sidecar marker.
//!
//! Invariant of the memory map: nobody truncates a file while a source has
//! it mapped (reads past the end of a mapped file fault). ndstream never
//! does: `Overwrite` renames a new file over the old one (a new inode, old
//! maps stay valid) and `Resume` never changes a file's size.

use std::fs::{File, OpenOptions};
use std::mem::MaybeUninit;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::{Mmap, UncheckedAdvice};
use ndarray::{ArrayD, IxDyn};
use ndstream_engine::{AxisSel, Block, ChunkGrid, ChunkSink, ChunkSource, DType, Error, Result};

use crate::lock::{LockKind, OutputLock};
use crate::path::{parse_typestr, RawSpec};
use crate::spec::{ArrayInfo, SinkSpec, WriteMode};
use crate::DEFAULT_TARGET_CHUNK_BYTES;

/// Where and how the elements lie in a contiguous file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub little_endian: bool,
    /// Fortran (column-major) order instead of C order.
    pub fortran: bool,
    /// Byte offset of the first element.
    pub offset: u64,
}

impl Layout {
    /// Bytes of the elements, or `None` if that overflows.
    pub fn nbytes(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &n| acc.checked_mul(n))
    }

    /// Byte stride of each axis.
    fn strides(&self) -> Vec<i64> {
        let item = self.dtype.size() as i64;
        let nd = self.shape.len();
        (0..nd)
            .map(|d| {
                let dims = if self.fortran {
                    &self.shape[..d]
                } else {
                    &self.shape[d + 1..]
                };
                dims.iter().map(|&n| n as i64).product::<i64>() * item
            })
            .collect()
    }

    /// True if the file's byte order differs from this machine's.
    fn needs_swap(&self) -> bool {
        self.dtype.size() > 1 && self.little_endian != cfg!(target_endian = "little")
    }
}

/// The sidecar that marks a contiguous file as being written.
pub(crate) fn marker_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".ndstream-incomplete");
    PathBuf::from(s)
}

/// The elements `sel` picks from `src` (element 0 at byte `base`, byte
/// `strides` per axis) as a block of `dtype`, byte-swapped when `swap`.
/// The block's buffer is written once by the gather, never zeroed first.
/// `None` if a bool byte is neither 0 nor 1. Indices must be in bounds.
pub(crate) fn gather_block(
    dtype: DType,
    src: &[u8],
    base: usize,
    strides: &[i64],
    sel: &[AxisSel],
    swap: bool,
) -> Option<Block> {
    let shape: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
    let item = dtype.size();
    if dtype == DType::Bool {
        let v = gather_to_vec(src, base, strides, sel, item);
        if v.iter().any(|&b| b > 1) {
            return None;
        }
        let v: Vec<bool> = v.into_iter().map(|b| b == 1).collect();
        return ArrayD::from_shape_vec(IxDyn(&shape), v)
            .ok()
            .map(Block::from);
    }
    // SAFETY: `gather` writes every byte of the buffer, whose length is the
    // selection's element count times `item` (it checks that).
    let block = unsafe {
        Block::from_ne_fill_uninit(dtype, &shape, |dst| {
            gather(src, base, strides, sel, item, dst);
            if swap {
                // SAFETY: the gather above initialised every byte.
                swap_bytes(assume_init(dst), item);
            }
            Ok::<(), std::convert::Infallible>(())
        })
    };
    match block {
        Ok(b) => Some(b),
        Err(never) => match never {},
    }
}

/// [`gather`] into a new vector of the selection's bytes.
fn gather_to_vec(
    src: &[u8],
    base: usize,
    strides: &[i64],
    sel: &[AxisSel],
    item: usize,
) -> Vec<u8> {
    let n = sel.iter().map(|s| s.len as usize).product::<usize>() * item;
    let mut v: Vec<u8> = Vec::with_capacity(n);
    gather(
        src,
        base,
        strides,
        sel,
        item,
        &mut v.spare_capacity_mut()[..n],
    );
    // SAFETY: `gather` wrote all `n` bytes (it checks the length).
    unsafe { v.set_len(n) };
    v
}

/// View bytes known to be initialised as plain bytes.
///
/// # Safety
/// Every byte of `b` must have been written.
unsafe fn assume_init(b: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the caller
    // guarantees every byte is initialised.
    unsafe { &mut *(b as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// `copy_from_slice` into bytes that may be uninitialised.
#[inline(always)]
fn copy_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "a copy between equal lengths");
    // SAFETY: both are `src.len()` bytes long and cannot overlap (one is
    // borrowed shared, the other exclusively).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) }
}

/// Copy `dst.len() / N` elements of `N` bytes, `step` bytes apart from
/// byte `off` of `src`, to `dst`: one fixed-size move each, with the bounds
/// checked once for the whole run (a strided run such as `x[::2]` of a
/// mapped chunk is a tight loop of loads and stores).
#[inline(always)]
fn strided_run<const N: usize>(
    dst: &mut [MaybeUninit<u8>],
    src: &[u8],
    off: i64,
    step: i64,
    n: usize,
) {
    if n == 0 {
        return;
    }
    let last = off + (n as i64 - 1) * step;
    let inside = |o: i64| o >= 0 && (o as usize).checked_add(N).is_some_and(|e| e <= src.len());
    assert!(
        inside(off) && inside(last) && dst.len() >= n * N,
        "a strided run lies inside the array"
    );
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr().cast::<u8>());
    if step == 2 * N as i64 {
        // Every other element (`x[..., ::2]`): with the stride a constant,
        // the compiler turns the loop into wide loads and shuffles.
        for j in 0..n {
            // SAFETY: as below, with `step` = 2 * N.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    s.offset(off as isize).add(j * 2 * N),
                    d.add(j * N),
                    N,
                );
            }
        }
        return;
    }
    for j in 0..n {
        // SAFETY: the run's first and last elements lie inside `src`
        // (checked above) and the others lie between them; `dst` holds
        // `n` elements of `N` bytes; `src` and `dst` do not overlap (one
        // is borrowed shared, the other exclusively).
        unsafe {
            std::ptr::copy_nonoverlapping(
                s.offset((off + j as i64 * step) as isize),
                d.add(j * N),
                N,
            );
        }
    }
}

/// Copy the elements `sel` picks from `src` (element 0 at byte `base`,
/// byte `strides` per axis) into `dst` in C order, writing every byte of
/// `dst`, which must hold exactly the selection's elements. Indices must be
/// in bounds.
pub(crate) fn gather(
    src: &[u8],
    base: usize,
    strides: &[i64],
    sel: &[AxisSel],
    item: usize,
    dst: &mut [MaybeUninit<u8>],
) {
    let count: u64 = sel.iter().map(|s| s.len).product();
    assert_eq!(
        dst.len() as u64,
        count * item as u64,
        "the gather's output holds exactly the selection"
    );
    // Trailing length-1 axes only move the start: a column `x[:, k]` is
    // then one strided run, not a run of one element per row.
    let mut base = base;
    let mut keep = sel.len();
    while keep > 1 && sel[keep - 1].len == 1 {
        base = (base as i64 + sel[keep - 1].start as i64 * strides[keep - 1]) as usize;
        keep -= 1;
    }
    let (sel, strides) = (&sel[..keep], &strides[..keep]);
    let Some((inner, outer)) = sel.split_last() else {
        copy_bytes(&mut dst[..item], &src[base..base + item]);
        return;
    };
    let d = outer.len();
    let inner_step = inner.step * strides[d];
    let run = inner.len as usize * item;
    let contiguous = inner.len <= 1 || inner_step == item as i64;
    let n_outer: u64 = outer.iter().map(|s| s.len).product();
    if run == 0 || n_outer == 0 {
        return;
    }
    let mut idx = vec![0u64; d];
    let mut pos = 0usize;
    for _ in 0..n_outer {
        let mut off = base as i64
            + inner.start as i64 * strides[d]
            + (0..d)
                .map(|k| outer[k].index(idx[k]) as i64 * strides[k])
                .sum::<i64>();
        if contiguous && run != item {
            let o = off as usize;
            copy_bytes(&mut dst[pos..pos + run], &src[o..o + run]);
        } else {
            let n = inner.len as usize;
            let d = &mut dst[pos..pos + run];
            match item {
                8 => strided_run::<8>(d, src, off, inner_step, n),
                4 => strided_run::<4>(d, src, off, inner_step, n),
                2 => strided_run::<2>(d, src, off, inner_step, n),
                1 => strided_run::<1>(d, src, off, inner_step, n),
                // (every dtype is 1, 2, 4 or 8 bytes; any other size copies a slice)
                _ => {
                    for e in d.chunks_exact_mut(item) {
                        let o = off as usize;
                        copy_bytes(e, &src[o..o + item]);
                        off += inner_step;
                    }
                }
            }
        }
        pos += run;
        for k in (0..d).rev() {
            idx[k] += 1;
            if idx[k] < outer[k].len {
                break;
            }
            idx[k] = 0;
        }
    }
}

fn swap_bytes(bytes: &mut [u8], item: usize) {
    if item > 1 {
        for c in bytes.chunks_exact_mut(item) {
            c.reverse();
        }
    }
}

/// A memory-mapped contiguous file as a chunk source.
pub(crate) struct ContiguousSource {
    name: String,
    layout: Layout,
    grid: ChunkGrid,
    /// `None` for an array with no elements (an empty map is not allowed).
    map: Option<Mmap>,
}

impl std::fmt::Debug for ContiguousSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContiguousSource")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .field("grid", &self.grid)
            .finish()
    }
}

impl ContiguousSource {
    /// Map `file`, checking it is large enough for `layout`.
    pub fn open(name: &str, file: &Path, layout: Layout) -> Result<ContiguousSource> {
        let f = File::open(file).map_err(|e| open_err(name, "cannot open the file", e))?;
        let len = f
            .metadata()
            .map_err(|e| open_err(name, "cannot stat the file", e))?
            .len();
        let nbytes = layout
            .nbytes()
            .ok_or_else(|| Error::open(name, format!("shape {:?} is too large", layout.shape)))?;
        let need = layout.offset.saturating_add(nbytes);
        if len < need {
            return Err(Error::open(
                name,
                format!(
                    "the file is {len} bytes but {} {:?} from byte {} needs {need}: truncated or wrong shape",
                    layout.dtype, layout.shape, layout.offset
                ),
            ));
        }
        let map = if nbytes == 0 {
            None
        } else {
            // SAFETY: read-only private map; the module invariant (nobody
            // truncates a mapped file) keeps every access inside the file,
            // whose length was checked above to cover the whole array.
            Some(
                unsafe { memmap2::MmapOptions::new().map(&f) }
                    .map_err(|e| open_err(name, "cannot map the file", e))?,
            )
        };
        let grid = ChunkGrid::auto(
            &layout.shape,
            layout.dtype.size(),
            DEFAULT_TARGET_CHUNK_BYTES,
        );
        Ok(ContiguousSource {
            name: name.to_string(),
            layout,
            grid,
            map,
        })
    }
}

/// A read fault maps more than the page it touched: up to
/// `fault_around_bytes` (64 KiB) of neighbouring pages, and since Linux
/// 6.18 the whole large folio the page belongs to. The page cache's folios
/// are at most this large (PMD size on x86-64 and arm64 with 4 KiB pages)
/// and aligned to their size in the file, so a span widened to this
/// alignment covers everything a read inside it can have mapped.
const FAULT_SPAN: usize = 2 << 20;

/// A mapped file at most this large keeps the pages it has read mapped: a
/// small file read again and again (the particles of the Lennard-Jones
/// workload, read once per tile row) would otherwise fault them in on every
/// read, and holding all of it costs no more than this. Larger files (raw,
/// `.npy` and HDF5 alike) drop each read's pages (see [`release_pages`]),
/// so reading one through does not grow the resident set by its size.
const KEEP_MAPPED_MAX: usize = 8 << 20;

/// Drop the pages of `map[lo..hi]` from this process's resident set (the
/// page cache keeps them) if the map is over [`KEEP_MAPPED_MAX`]: a mapped
/// file read through must not count as resident memory, whatever the
/// budget. The span is widened to
/// [`FAULT_SPAN`] boundaries, as a fault inside it may have mapped pages up
/// to there (left mapped, a neighbour read earlier would stay resident for
/// good). Another thread reading any of these pages faults them in again.
/// (The map starts at file offset 0, so map offsets align as file offsets.)
pub(crate) fn release_pages(map: &Mmap, lo: usize, hi: usize) {
    if map.len() <= KEEP_MAPPED_MAX {
        return;
    }
    let lo = lo / FAULT_SPAN * FAULT_SPAN;
    let hi = hi
        .div_ceil(FAULT_SPAN)
        .saturating_mul(FAULT_SPAN)
        .min(map.len());
    if lo < hi {
        // SAFETY: every map of this crate is private and read-only, so
        // dropping its pages loses nothing; later reads see the file's
        // contents. (memmap2 rounds `lo` down to a page boundary.)
        let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, lo, hi - lo) };
    }
}

pub(crate) fn open_err(name: &str, what: &str, e: std::io::Error) -> Error {
    Error::Open {
        path: name.to_string(),
        message: format!("{what}: {e}"),
        cause: Some(Box::new(e)),
    }
}

impl ChunkSource for ContiguousSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn shape(&self) -> &[u64] {
        &self.layout.shape
    }
    fn dtype(&self) -> DType {
        self.layout.dtype
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn read_chunk(&self, idx: &[u64]) -> Result<Block> {
        self.grid
            .check_chunk(idx)
            .map_err(|m| Error::source(&self.name, idx, m))?;
        let sel: Vec<AxisSel> = self
            .grid
            .chunk_region(idx)
            .into_iter()
            .map(AxisSel::range)
            .collect();
        self.read_selection(&sel).map_err(|e| match e {
            Error::Source {
                source_name,
                message,
                cause,
                ..
            } => Error::Source {
                source_name,
                chunk: ndstream_engine::ChunkIndex(idx.to_vec()),
                message,
                cause,
            },
            other => other,
        })
    }
    fn supports_selection(&self) -> bool {
        true
    }
    fn read_selection(&self, sel: &[AxisSel]) -> Result<Block> {
        let shape = &self.layout.shape;
        if sel.len() != shape.len() {
            return Err(Error::source(
                &self.name,
                &[],
                format!("a {}-d selection of a {}-d array", sel.len(), shape.len()),
            ));
        }
        for (d, (s, &n)) in sel.iter().zip(shape).enumerate() {
            if s.len > 0 && s.bounds().end > n {
                return Err(Error::source(
                    &self.name,
                    &[],
                    format!("selection {s:?} leaves axis {d} of length {n}"),
                ));
            }
        }
        let item = self.layout.dtype.size();
        let strides = self.layout.strides();
        let swap = self.layout.needs_swap();
        let base = self.layout.offset as usize;
        let map: &[u8] = self.map.as_deref().unwrap_or(&[]);
        let block = gather_block(self.layout.dtype, map, base, &strides, sel, swap);
        if let Some(m) = &self.map {
            if sel.iter().all(|s| s.len > 0) {
                // The byte span the selection touched (strides are positive).
                let (mut lo, mut hi) = (base, base + item);
                for (s, &st) in sel.iter().zip(&strides) {
                    let b = s.bounds();
                    lo += b.start as usize * st as usize;
                    hi += (b.end - 1) as usize * st as usize;
                }
                release_pages(m, lo, hi);
            }
        }
        block.ok_or_else(|| {
            Error::source(
                &self.name,
                &[],
                "a bool element is neither 0 nor 1: corrupt data",
            )
        })
    }
}

/// A pre-sized contiguous file (C order) written chunk by chunk.
#[derive(Debug)]
pub(crate) struct ContiguousSink {
    name: String,
    layout: Layout,
    grid: ChunkGrid,
    /// The file being written, locked: the output itself, or under
    /// `Overwrite` its temporary.
    file: OutputLock,
    /// The output's lock while a temporary replaces it (`Overwrite`);
    /// released by `finish`.
    target: Mutex<Option<OutputLock>>,
    /// `Overwrite`: the temporary and the output it replaces at `finish`.
    swap: Mutex<Option<(PathBuf, PathBuf)>>,
    marker: PathBuf,
    /// fsync before the marker goes (see [`SinkSpec::sync`]).
    sync: bool,
}

/// An [`Error::Sink`] for an I/O failure of the output outside any chunk
/// (creating it, the header, the final rename): a runtime failure, not bad input.
pub(crate) fn io_err(name: &str, what: &str, e: std::io::Error) -> Error {
    Error::Sink {
        sink_name: name.to_string(),
        what: what.to_string(),
        message: e.to_string(),
        cause: Some(Box::new(e)),
    }
}

/// Check a spec's chunking against its shape and build the grid.
pub(crate) fn spec_grid(name: &str, spec: &SinkSpec) -> Result<ChunkGrid> {
    if spec.chunks.len() != spec.shape.len() {
        return Err(Error::open(
            name,
            format!(
                "chunks {:?} do not match the rank of shape {:?}",
                spec.chunks, spec.shape
            ),
        ));
    }
    if spec.chunks.contains(&0) {
        return Err(Error::open(
            name,
            format!("chunks {:?} must be at least 1 on every axis", spec.chunks),
        ));
    }
    Ok(ChunkGrid::regular(&spec.shape, &spec.chunks))
}

impl ContiguousSink {
    /// Create (or per `mode` replace or resume) `file` with `header` before the
    /// elements. `matches` checks an existing file on resume.
    ///
    /// An existing file is locked first (a writer holding it makes this an
    /// "in use" error). `Create` refuses it; `Resume` writes into it in
    /// place, behind the incomplete marker; `Overwrite` writes a locked
    /// temporary beside it and renames that over it at `finish`, so the
    /// old file stays whole and readable until then. A new file is created
    /// exclusively (`O_EXCL`) after its marker, then locked.
    pub fn create(
        name: &str,
        file: &Path,
        layout: Layout,
        header: &[u8],
        spec: &SinkSpec,
        matches: impl FnOnce(&Path) -> std::result::Result<(), String>,
    ) -> Result<ContiguousSink> {
        debug_assert!(!layout.fortran);
        let grid = spec_grid(name, spec)?;
        let total = layout
            .nbytes()
            .and_then(|n| n.checked_add(layout.offset))
            .ok_or_else(|| Error::open(name, format!("shape {:?} is too large", layout.shape)))?;
        let marker = marker_path(file);
        if file.is_dir() {
            return Err(Error::open(name, "is a directory"));
        }
        let exists = std::fs::symlink_metadata(file).is_ok();
        // Lock an existing file before deciding anything (opened for writing
        // when it is to be resumed, since that descriptor then writes).
        let target = if exists {
            let lock = if spec.mode == WriteMode::Resume {
                OutputLock::take_writable(file, LockKind::Exclusive)
            } else {
                OutputLock::take(file, LockKind::Exclusive)
            };
            Some(lock.map_err(|e| e.into_error(name))?)
        } else {
            None
        };
        if target.is_some() {
            // Under the output's lock: what a killed writer left goes.
            crate::swap::clean_stale(file);
        }
        let (f, target, swap, fresh) = match (target, spec.mode) {
            (Some(_), WriteMode::Create) => {
                return Err(Error::open(
                    name,
                    "already exists; overwrite it or resume the write explicitly",
                ))
            }
            (Some(t), WriteMode::Resume) => {
                matches(file).map_err(|m| Error::open(name, format!("cannot resume: {m}")))?;
                write_marker(name, &marker)?;
                (t, None, None, false)
            }
            (Some(t), WriteMode::Overwrite) => {
                let tmp = crate::swap::temp_sibling(file);
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(|e| io_err(name, "creating the temporary file", e))?;
                let lock = match OutputLock::on(f, &tmp, LockKind::Exclusive) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.into_error(name));
                    }
                };
                (lock, Some(t), Some((tmp, file.to_path_buf())), true)
            }
            (None, _) => {
                if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| io_err(name, "creating the directory", e))?;
                }
                write_marker(name, &marker)?;
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(file)
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            crate::lock::in_use(name, file)
                        } else {
                            io_err(name, "creating the file", e)
                        }
                    })?;
                let lock =
                    OutputLock::on(f, file, LockKind::Exclusive).map_err(|e| e.into_error(name))?;
                crate::swap::clean_stale(file);
                (lock, None, None, true)
            }
        };
        let sink = ContiguousSink {
            name: name.to_string(),
            layout,
            grid,
            file: f,
            target: Mutex::new(target),
            swap: Mutex::new(swap),
            marker,
            sync: spec.sync,
        };
        if fresh {
            // On error the sink drops, and with it any temporary.
            sink.file
                .file()
                .write_all_at(header, 0)
                .map_err(|e| io_err(name, "writing the header", e))?;
            sink.file
                .file()
                .set_len(total)
                .map_err(|e| io_err(name, "sizing the file", e))?;
        }
        Ok(sink)
    }
}

/// Write the sidecar marking `file` as being written.
fn write_marker(name: &str, marker: &Path) -> Result<()> {
    std::fs::write(
        marker,
        b"being written by ndstream; removed when the write finishes\n",
    )
    .map_err(|e| io_err(name, "writing the incomplete marker", e))
}

impl Drop for ContiguousSink {
    /// A sink dropped before `finish` removes its temporary: the output it
    /// was to replace stays as it was.
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.swap.get_mut().ok().and_then(Option::take) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl ChunkSink for ContiguousSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn shape(&self) -> &[u64] {
        &self.layout.shape
    }
    fn dtype(&self) -> DType {
        self.layout.dtype
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn write_chunk(&self, idx: &[u64], data: &Block) -> Result<()> {
        let what = format!("chunk {}", ndstream_engine::ChunkIndex(idx.to_vec()));
        if let Err(m) = self.grid.check_chunk(idx) {
            return Err(Error::sink(&self.name, what, m));
        }
        let region = self.grid.chunk_region(idx);
        let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        if data.dtype() != self.layout.dtype || data.shape() != want.as_slice() {
            return Err(Error::sink(
                &self.name,
                what,
                format!(
                    "got a {} block of shape {:?}, expected {} {:?}",
                    data.dtype(),
                    data.shape(),
                    self.layout.dtype,
                    want
                ),
            ));
        }
        let item = self.layout.dtype.size();
        let mut bytes = data.to_ne_bytes();
        if self.layout.needs_swap() {
            swap_bytes(&mut bytes, item);
        }
        let shape = &self.layout.shape;
        let nd = shape.len();
        // Axes after `k` are covered whole, so each run spans axis k and all after it.
        let k = (0..nd)
            .rev()
            .find(|&j| region[j].start != 0 || region[j].end != shape[j])
            .unwrap_or(0);
        let strides: Vec<u64> = (0..nd)
            .map(|d| shape[d + 1..].iter().product::<u64>())
            .collect();
        let run_elems: u64 = if nd == 0 {
            1
        } else {
            want[k] as u64 * strides[k]
        };
        let run = run_elems as usize * item;
        let n_runs: usize = want[..k.min(nd)].iter().product();
        let mut ix = vec![0u64; k];
        let io = |e: std::io::Error| Error::Sink {
            sink_name: self.name.clone(),
            what: format!("chunk {}", ndstream_engine::ChunkIndex(idx.to_vec())),
            message: format!("write failed: {e}"),
            cause: Some(Box::new(e)),
        };
        for r in 0..n_runs {
            let mut elem = if nd == 0 {
                0
            } else {
                region[k].start * strides[k]
            };
            for d in 0..k {
                elem += (region[d].start + ix[d]) * strides[d];
            }
            let off = self.layout.offset + elem * item as u64;
            self.file
                .file()
                .write_all_at(&bytes[r * run..(r + 1) * run], off)
                .map_err(io)?;
            for d in (0..k).rev() {
                ix[d] += 1;
                if ix[d] < want[d] as u64 {
                    break;
                }
                ix[d] = 0;
            }
        }
        Ok(())
    }
    fn memory_per_chunk(&self) -> u64 {
        self.grid.max_chunk_elems() * self.layout.dtype.size() as u64
    }
    fn finish(&self) -> Result<()> {
        let mut swap = self.swap.lock().unwrap_or_else(|p| p.into_inner());
        if self.sync {
            self.file
                .file()
                .sync_data()
                .map_err(|e| io_err(&self.name, "the final sync", e))?;
        }
        if let Some((tmp, target)) = swap.take() {
            if let Err(e) = crate::swap::replace_file(&tmp, &target) {
                let what = format!("the rename of {} over it", tmp.display());
                // Dropping the sink then removes the temporary.
                *swap = Some((tmp, target));
                return Err(io_err(&self.name, &what, e));
            }
            if self.sync {
                crate::swap::sync_parent(&target)
                    .map_err(|e| io_err(&self.name, "the final sync", e))?;
            }
        }
        // After a swap the marker is the old file's, if it was incomplete.
        match std::fs::remove_file(&self.marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io_err(
                    &self.name,
                    &format!("the incomplete marker {}", self.marker.display()),
                    e,
                ))
            }
        }
        // Complete: the next writer may have it.
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = self.file.file().unlock();
        Ok(())
    }
}

/// Open a raw binary file with an explicit layout.
pub(crate) fn open_source(name: &str, file: &Path, spec: &RawSpec) -> Result<ContiguousSource> {
    ContiguousSource::open(name, file, raw_layout(spec))
}

fn raw_layout(spec: &RawSpec) -> Layout {
    Layout {
        dtype: spec.dtype,
        shape: spec.shape.clone(),
        little_endian: spec.little_endian,
        fortran: false,
        offset: spec.offset,
    }
}

/// Create a raw binary file for `spec`. `query` is the path's `?dtype=...`
/// part, if any: its dtype and shape must agree with the spec, and it sets
/// the byte order and offset (default little-endian at offset 0).
pub(crate) fn create_sink(
    name: &str,
    file: &Path,
    query: Option<&str>,
    spec: &SinkSpec,
) -> Result<ContiguousSink> {
    let mut raw = RawSpec {
        dtype: spec.dtype,
        shape: spec.shape.clone(),
        little_endian: true,
        offset: 0,
    };
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::open(
                    name,
                    format!("malformed raw spec: `{pair}` is not key=value"),
                )
            })?;
            match k.trim() {
                "dtype" => {
                    let (dt, le) = parse_typestr(v.trim())
                        .map_err(|m| Error::open(name, format!("malformed raw spec: {m}")))?;
                    if dt != spec.dtype {
                        return Err(Error::open(
                            name,
                            format!("the path says dtype {dt} but the data is {}", spec.dtype),
                        ));
                    }
                    raw.little_endian = le;
                }
                "shape" => {
                    let dims: std::result::Result<Vec<u64>, _> = v
                        .trim()
                        .trim_matches(|c| c == '(' || c == ')' || c == '[' || c == ']')
                        .split([',', 'x'])
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| s.trim().parse::<u64>())
                        .collect();
                    let dims = dims.map_err(|_| {
                        Error::open(name, format!("malformed raw spec: shape `{v}`"))
                    })?;
                    if dims != spec.shape {
                        return Err(Error::open(
                            name,
                            format!(
                                "the path says shape {dims:?} but the data is {:?}",
                                spec.shape
                            ),
                        ));
                    }
                }
                "offset" => {
                    raw.offset = v.trim().parse().map_err(|_| {
                        Error::open(name, format!("malformed raw spec: offset `{v}`"))
                    })?
                }
                other => {
                    return Err(Error::open(
                        name,
                        format!("malformed raw spec: unknown key `{other}`"),
                    ))
                }
            }
        }
    }
    let layout = raw_layout(&raw);
    let need = layout
        .offset
        .saturating_add(layout.nbytes().unwrap_or(u64::MAX));
    // No header: the bytes before `offset` are the zeros of the sized file.
    ContiguousSink::create(name, file, layout, &[], spec, |f| {
        let len = std::fs::metadata(f).map_err(|e| e.to_string())?.len();
        if len == need {
            Ok(())
        } else {
            Err(format!(
                "the existing file is {len} bytes, this array needs {need}"
            ))
        }
    })
}

/// `info` for a raw file.
pub(crate) fn info(name: &str, file: &Path, spec: &RawSpec) -> Result<ArrayInfo> {
    let src = open_source(name, file, spec)?;
    Ok(contiguous_info(name, "raw", file, &src.layout))
}

/// `info` of a contiguous file (`raw` or `npy`).
pub(crate) fn contiguous_info(name: &str, format: &str, file: &Path, layout: &Layout) -> ArrayInfo {
    let logical = layout.nbytes().unwrap_or(u64::MAX);
    ArrayInfo {
        path: name.to_string(),
        format: format.to_string(),
        shape: layout.shape.clone(),
        dtype: layout.dtype,
        chunks: None,
        shards: None,
        codec: "none".into(),
        stored_bytes: std::fs::metadata(file).ok().map(|m| m.len()),
        logical_bytes: logical,
        fill_value: None,
        attributes: Default::default(),
        incomplete: marker_path(file).exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_matches_ndarray_slicing() {
        // A 3x4x5 C-order u16 array, values = linear index.
        let vals: Vec<u16> = (0..60).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let layout = Layout {
            dtype: DType::U16,
            shape: vec![3, 4, 5],
            little_endian: true,
            fortran: false,
            offset: 0,
        };
        let sel = [
            AxisSel {
                start: 2,
                step: -1,
                len: 2,
            },
            AxisSel {
                start: 1,
                step: 2,
                len: 2,
            },
            AxisSel {
                start: 0,
                step: 1,
                len: 5,
            },
        ];
        let out = gather_to_vec(&bytes, 0, &layout.strides(), &sel, 2);
        let got: Vec<u16> = out
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        let want: Vec<u16> = [2usize, 1]
            .iter()
            .flat_map(|&i| {
                [1usize, 3]
                    .iter()
                    .flat_map(move |&j| (0..5).map(move |k| (i * 20 + j * 5 + k) as u16))
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn strided_runs_of_every_item_size_and_step() {
        // Inner steps of 1, 2 (the constant-stride loop), 3 and -2, for
        // elements of 1, 2, 4 and 8 bytes, against an element-by-element copy.
        let src: Vec<u8> = (0..200u32).map(|v| (v * 7 + 3) as u8).collect();
        for item in [1usize, 2, 4, 8] {
            for (start, step) in [(0u64, 1i64), (1, 2), (0, 3), (20, -2)] {
                let n = 9u64;
                let sel = [AxisSel {
                    start,
                    step,
                    len: n,
                }];
                let got = gather_to_vec(&src, 0, &[item as i64], &sel, item);
                let want: Vec<u8> = (0..n)
                    .flat_map(|j| {
                        let e = sel[0].index(j) as usize * item;
                        src[e..e + item].to_vec()
                    })
                    .collect();
                assert_eq!(got, want, "item {item} start {start} step {step}");
            }
        }
    }

    #[test]
    fn bool_bytes_validated() {
        let sel = [AxisSel::full(2)];
        let ok = gather_block(DType::Bool, &[1, 0], 0, &[1], &sel, false);
        assert_eq!(
            ok,
            Some(Block::from(ndarray::arr1(&[true, false]).into_dyn()))
        );
        assert!(gather_block(DType::Bool, &[2, 0], 0, &[1], &sel, false).is_none());
    }
}
