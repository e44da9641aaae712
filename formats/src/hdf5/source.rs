//! [`Hdf5Source`]: one HDF5 dataset as a [`ChunkSource`].
//!
//! Three ways to read, chosen at open:
//! - `Chunked`: the chunk index (file address, stored size, filter mask of
//!   every allocated chunk) is read once under the HDF5 lock; `read_chunk`
//!   is then a positioned read plus a decode on the calling thread (in a
//!   dataset of more than [`MAX_LOCATED_CHUNKS`] chunks, each chunk is
//!   located under the lock when it is read instead, and its dataset is
//!   kept open for that). The grid
//!   is the dataset's chunk shape; edge chunks are stored full size and
//!   trimmed here; unallocated chunks are the fill value. When no chunk is
//!   filtered (and the data is in native byte order), the file is also
//!   mapped, and a strided part of a chunk (`read_chunk_part`) is gathered
//!   straight from the mapping instead of reading the whole chunk first.
//! - `Contiguous`: the data's file offset is known; the grid is
//!   [`ChunkGrid::auto`] at [`DEFAULT_TARGET_CHUNK_BYTES`](crate::DEFAULT_TARGET_CHUNK_BYTES);
//!   chunks and strided selections are gathered from positioned reads.
//!   Storage never allocated reads as the fill value.
//! - `Library`: filters ndstream does not decode (lzf, other plugins;
//!   szip, n-bit or scale-offset where libhdf5's own are not found), types
//!   whose stored bits need libhdf5's conversion ([`Meta::plain`]), or
//!   compact/external/virtual storage: each chunk is read through
//!   hdf5-metno, under its global lock.
//!
//! Only `Library` and `Chunked` datasets whose chunks are located when
//! read keep HDF5 handles open; the others close them after open and touch
//! the file through `std::fs` only.

use std::fs::File;
use std::mem::MaybeUninit;
use std::os::unix::fs::FileExt;
use std::path::Path;

use hdf5::{Dataset, Hyperslab, Selection, SliceOrIndex};
use memmap2::Mmap;
use ndarray::IxDyn;
use ndstream_engine::{
    with_block, with_dtype, Attributes, AxisSel, Block, ChunkGrid, ChunkSource, DType, Error,
    Result,
};
#[cfg(feature = "object-store")]
use ndstream_engine::{FetchDone, Fetched};

use super::codec::{self, Step};
use super::{attrs, filter_word, normalize, open_dataset, open_file, Meta};
use crate::DEFAULT_TARGET_CHUNK_BYTES;

/// The file's bytes, as chunks and contiguous data are read from them: a
/// local file (positioned reads), or an object reached by URL (ranged GETs).
#[derive(Debug)]
pub(crate) enum RawFile {
    Local(File),
    #[cfg(feature = "object-store")]
    Url(std::sync::Arc<crate::remote::RangeFile>),
}

impl RawFile {
    fn len(&self) -> std::io::Result<u64> {
        match self {
            RawFile::Local(f) => Ok(f.metadata()?.len()),
            #[cfg(feature = "object-store")]
            RawFile::Url(f) => Ok(f.len()),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        match self {
            RawFile::Local(f) => f.read_exact_at(buf, at),
            #[cfg(feature = "object-store")]
            RawFile::Url(f) => f.read_exact_at(buf, at),
        }
    }

    fn read_exact_at_uninit(&self, buf: &mut [MaybeUninit<u8>], at: u64) -> std::io::Result<()> {
        match self {
            RawFile::Local(f) => read_exact_at_uninit(f, buf, at),
            #[cfg(feature = "object-store")]
            RawFile::Url(f) => f.read_exact_at_uninit(buf, at),
        }
    }

    /// The local file, which can be mapped.
    fn local(&self) -> Option<&File> {
        match self {
            RawFile::Local(f) => Some(f),
            #[cfg(feature = "object-store")]
            RawFile::Url(_) => None,
        }
    }
}

/// Where one allocated chunk lives in the file.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkLoc {
    pub(super) addr: u64,
    pub(super) size: u64,
    /// The filters skipped for this chunk (bit `i`: the `i`th filter).
    pub(super) mask: u32,
}

/// Where the stored chunks lie.
#[derive(Debug)]
enum Locs {
    /// Every chunk of the grid, located at open (C order; `None`: never
    /// written).
    All(Vec<Option<ChunkLoc>>),
    /// Each chunk located when it is read (datasets of more than
    /// [`MAX_LOCATED_CHUNKS`] chunks), by libhdf5 from its chunk index;
    /// the dataset is kept open for it.
    Lookup(Dataset),
}

impl Locs {
    /// Chunk `idx` (of `grid`, whose chunks are `chunk`)'s location, or
    /// `None` if it was never written.
    fn get(
        &self,
        grid: &ChunkGrid,
        chunk: &[usize],
        idx: &[u64],
    ) -> std::result::Result<Option<ChunkLoc>, String> {
        match self {
            Locs::All(all) => Ok(all.get(grid.ravel(idx) as usize).copied().flatten()),
            Locs::Lookup(ds) => {
                if idx.len() != chunk.len() {
                    return Err(format!("chunk {idx:?} has the wrong number of indices"));
                }
                let offset: Vec<u64> = idx.iter().zip(chunk).map(|(&i, &c)| i * c as u64).collect();
                hdf5::sync::sync(|| locate(ds, &offset))
                    .ok_or_else(|| format!("HDF5 cannot locate chunk {idx:?} of {}", ds.name()))
            }
        }
    }
}

/// How the dataset's bytes are reached.
#[derive(Debug)]
enum Storage {
    Chunked {
        /// HDF5 chunk shape (every stored chunk is this big).
        chunk: Vec<usize>,
        locs: Locs,
        pipeline: Vec<Step>,
        file: RawFile,
        /// The file's length at open: every chunk read is checked to lie
        /// inside it before its declared size sizes a buffer.
        file_len: u64,
        /// The file mapped read-only, when every chunk can be read from it
        /// in place: no filters, native byte order, a numeric dtype, every
        /// chunk inside the file.
        map: Option<Mmap>,
    },
    Contiguous {
        /// File offset of element 0, `None` if storage was never allocated.
        offset: Option<u64>,
        file: RawFile,
    },
    Library {
        ds: Dataset,
    },
}

/// An HDF5 dataset as a chunk source.
#[derive(Debug)]
pub(crate) struct Hdf5Source {
    name: String,
    shape: Vec<u64>,
    dtype: DType,
    big_endian: bool,
    grid: ChunkGrid,
    /// One element of the fill value, native byte order.
    fill: Vec<u8>,
    attrs: Attributes,
    storage: Storage,
    /// The dataset's path in the file (the one found when none was named).
    pub(crate) path: String,
    /// Where the array can be opened again (see `ChunkSource::locator`).
    pub(crate) locator: Option<String>,
    /// Chunk reads kept in flight ahead of the workers (a file read by URL).
    pub(crate) read_ahead: usize,
}

/// Refuse a dataset whose filters libhdf5 cannot decode here (a plugin
/// filter such as lzf, blosc or zstd with no plugin installed): every chunk
/// read would fail, so say at open which filter is missing.
fn refuse_missing_filters(meta: &Meta, ds: &Dataset, name: &str) -> Result<()> {
    let missing: Vec<String> = hdf5::sync::sync(|| {
        meta.filters
            .iter()
            .filter(|f| !f.decode_enabled())
            .map(|f| format!("{} (filter id {})", filter_word(f), f.id()))
            .collect()
    });
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::open(
        name,
        format!(
            "dataset {} is compressed with {}, which this HDF5 library cannot decode; \
             make the filter's plugin available (HDF5_PLUGIN_PATH) or rewrite the data without it",
            ds.name(),
            missing.join(" and ")
        ),
    ))
}

/// Refuse a dataset whose nbit or scaleoffset filter would decode less
/// than a chunk. libhdf5 1.10 copies a whole chunk out of what its filters
/// return without checking they returned that much (it reads past its
/// buffer; found by fuzzing `hdf5_open`). These two filters decode exactly
/// `cd_values[2]` elements of `cd_values[4]` bytes, parameters libhdf5
/// wrote from the chunk's shape and type, so a file whose parameters
/// disagree with its chunks is corrupt. Checked at open whether libhdf5
/// or ndstream's pipeline ([`super::builtin`]) runs them.
fn refuse_short_filters(ds: &Dataset, chunk: &[u64], itemsize: usize, name: &str) -> Result<()> {
    let chunk_bytes = chunk
        .iter()
        .try_fold(itemsize as u64, |n, &c| n.checked_mul(c));
    let bad = hdf5::sync::sync(|| {
        let dcpl = ds.dcpl().ok()?;
        // SAFETY: under the HDF5 lock; these calls only read the plist, and
        // write at most `nelmts` values and `word.len()` bytes.
        let n = unsafe { hdf5_sys::h5p::H5Pget_nfilters(dcpl.id()) };
        for i in 0..n.max(0) as u32 {
            let (mut flags, mut nelmts, mut cd) = (0u32, 8usize, [0u32; 8]);
            let mut word = [0 as std::ffi::c_char; 16];
            let id = unsafe {
                hdf5_sys::h5p::H5Pget_filter2(
                    dcpl.id(),
                    i,
                    &mut flags,
                    &mut nelmts,
                    cd.as_mut_ptr(),
                    word.len(),
                    word.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            };
            let filter = match id {
                5 => "nbit",
                6 => "scaleoffset",
                _ => continue,
            };
            let decodes = (nelmts >= 5).then(|| u64::from(cd[2]) * u64::from(cd[4]));
            if decodes != chunk_bytes {
                return Some(format!(
                    "its {filter} filter's parameters decode {} bytes a chunk, its chunks hold {}",
                    decodes.map_or_else(|| "an unknown number of".into(), |b| b.to_string()),
                    chunk_bytes.map_or_else(|| "more than 2^64".into(), |b| b.to_string()),
                ));
            }
        }
        None
    });
    match bad {
        None => Ok(()),
        Some(why) => Err(Error::open(
            name,
            format!("dataset {} is corrupt: {why}", ds.name()),
        )),
    }
}

/// `HADDR_UNDEF`: the address of storage that does not exist.
const UNDEF: u64 = u64::MAX;

/// Positioned reads gather strided runs in windows of this many bytes.
const WINDOW: usize = 1 << 20;

impl Hdf5Source {
    /// Open `dataset` in `file` (see [`super::open_source`]).
    pub(crate) fn open(file: &Path, dataset: &str, name: &str) -> Result<Hdf5Source> {
        let f = open_file(file, name)?;
        let raw = || {
            File::open(file)
                .map(RawFile::Local)
                .map_err(|e| Error::open(name, format!("cannot open {}: {e}", file.display())))
        };
        Hdf5Source::open_in(f, &raw, file, dataset, name)
    }

    /// Open `dataset` in the open file `f`, whose bytes `raw` reads; `file`
    /// names it in messages.
    pub(crate) fn open_in(
        f: hdf5::File,
        raw: &dyn Fn() -> Result<RawFile>,
        file: &Path,
        dataset: &str,
        name: &str,
    ) -> Result<Hdf5Source> {
        let ds = open_dataset(&f, &normalize(dataset), file, name)?;
        let path = ds.name();
        let meta = Meta::read(&ds, name)?;
        let attrs = hdf5::sync::sync(|| attrs::read_attrs(&ds));
        let itemsize = meta.dtype.size();
        let pipeline = meta.pipeline();
        let layout = meta.layout;
        let (grid, storage) = match (&meta.chunk, layout, pipeline) {
            (Some(chunk), hdf5::dataset::Layout::Chunked, Some(pipeline)) => {
                refuse_short_filters(&ds, chunk, itemsize, name)?;
                let grid = ChunkGrid::regular(&meta.shape, chunk);
                let locs = if grid.num_chunks() <= MAX_LOCATED_CHUNKS {
                    Locs::All(chunk_locations(&ds, &grid, chunk, name)?)
                } else {
                    Locs::Lookup(ds.clone())
                };
                let chunk: Vec<usize> = chunk.iter().map(|&c| c as usize).collect();
                let file = raw()?;
                let file_len = file
                    .len()
                    .map_err(|e| Error::open(name, format!("cannot stat the file: {e}")))?;
                let full = (chunk.iter().product::<usize>() * itemsize) as u64;
                let mappable = pipeline.is_empty()
                    && meta.dtype != DType::Bool
                    && meta.big_endian == cfg!(target_endian = "big");
                let map = match (&locs, file.local().filter(|_| mappable)) {
                    (Locs::All(all), Some(local)) => map_chunks(local, file_len, all, full),
                    _ => None,
                };
                (
                    grid,
                    Storage::Chunked {
                        chunk,
                        locs,
                        pipeline,
                        file,
                        file_len,
                        map,
                    },
                )
            }
            (Some(chunk), _, _) => {
                refuse_missing_filters(&meta, &ds, name)?;
                refuse_short_filters(&ds, chunk, itemsize, name)?;
                (
                    ChunkGrid::regular(&meta.shape, chunk),
                    Storage::Library { ds },
                )
            }
            (None, hdf5::dataset::Layout::Contiguous, _) if !has_external(&ds) && meta.plain => {
                let offset = hdf5::sync::sync(|| ds.offset());
                let grid = ChunkGrid::auto(&meta.shape, itemsize, DEFAULT_TARGET_CHUNK_BYTES);
                if offset.is_none() && hdf5::sync::sync(|| ds.storage_size()) > 0 {
                    (grid, Storage::Library { ds })
                } else {
                    (
                        grid,
                        Storage::Contiguous {
                            offset,
                            file: raw()?,
                        },
                    )
                }
            }
            (None, _, _) => (
                ChunkGrid::auto(&meta.shape, itemsize, DEFAULT_TARGET_CHUNK_BYTES),
                Storage::Library { ds },
            ),
        };
        // Close the file in HDF5 unless the Library path still reads through it.
        drop(f);
        Ok(Hdf5Source {
            name: name.to_string(),
            shape: meta.shape,
            dtype: meta.dtype,
            big_endian: meta.big_endian,
            grid,
            fill: meta.fill,
            attrs,
            storage,
            path,
            locator: None,
            read_ahead: 0,
        })
    }

    /// Chunk reads to keep in flight ahead of the workers for a file read
    /// by URL: stored chunks are fetched (one GET each, no thread), a
    /// contiguous dataset's chunks are read by I/O threads, and reads
    /// through libhdf5 (which holds its lock while it waits) are not read
    /// ahead.
    #[cfg(feature = "object-store")]
    pub(crate) fn url_read_ahead(&self) -> usize {
        match self.storage {
            Storage::Chunked { .. } => crate::remote::READ_AHEAD,
            Storage::Contiguous { .. } => crate::remote::READ_AHEAD_THREADS,
            Storage::Library { .. } => 0,
        }
    }

    fn err(&self, idx: &[u64], msg: impl Into<String>) -> Error {
        Error::source(&self.name, idx, msg)
    }

    /// A block of `shape` holding the fill value.
    fn fill_block(&self, shape: &[usize]) -> Result<Block> {
        if self.fill.iter().all(|&b| b == 0) {
            return Ok(Block::zeros(self.dtype, shape));
        }
        let n: usize = shape.iter().product();
        let bytes = self.fill.repeat(n);
        Block::from_ne_bytes(self.dtype, shape, &bytes)
            .ok_or_else(|| self.err(&[], "bad fill value"))
    }

    /// Native-endian bytes in file byte order -> Block.
    fn to_block(&self, idx: &[u64], shape: &[usize], bytes: &mut [u8]) -> Result<Block> {
        if self.big_endian != cfg!(target_endian = "big") {
            codec::swap_bytes(bytes, self.dtype.size());
        }
        Block::from_ne_bytes(self.dtype, shape, bytes).ok_or_else(|| {
            if self.dtype == DType::Bool {
                self.err(
                    idx,
                    "a bool element is neither 0 nor 1: the chunk is corrupt",
                )
            } else {
                self.err(idx, "decoded chunk has the wrong length")
            }
        })
    }

    /// Chunk `idx` of chunked storage, read from the file or decoded from
    /// the bytes a fetch got (`fetched`).
    fn read_chunked(&self, idx: &[u64], fetched: Option<&[u8]>) -> Result<Block> {
        let Storage::Chunked {
            chunk,
            locs,
            pipeline,
            file,
            file_len,
            ..
        } = &self.storage
        else {
            return Err(self.err(idx, "not chunked storage"));
        };
        let (chunk, file_len) = (chunk.as_slice(), *file_len);
        let shape: Vec<usize> = self
            .grid
            .chunk_shape(idx)
            .iter()
            .map(|&n| n as usize)
            .collect();
        let Some(loc) = locs
            .get(&self.grid, chunk, idx)
            .map_err(|m| self.err(idx, m))?
        else {
            return self.fill_block(&shape);
        };
        let size = self.dtype.size();
        let full_bytes = chunk.iter().product::<usize>() * size;
        let stored =
            usize::try_from(loc.size).map_err(|_| self.err(idx, "chunk size overflows"))?;
        // The chunk index is data of the file: a chunk must lie inside it
        // before its size decides an allocation.
        if loc
            .addr
            .checked_add(loc.size)
            .is_none_or(|end| end > file_len)
        {
            return Err(self.err(
                idx,
                format!(
                    "the chunk index puts {} bytes at file offset {}, past the end of the \
                     {file_len}-byte file (truncated or damaged file?)",
                    loc.size, loc.addr
                ),
            ));
        }
        let read_err = |e: std::io::Error| {
            self.err(
                idx,
                format!(
                    "reading {stored} bytes at file offset {}: {e}{}",
                    loc.addr,
                    damaged_hint(&e)
                ),
            )
        };
        if fetched.is_some_and(|b| b.len() != stored) {
            return Err(self.err(idx, "the fetched chunk has the wrong length"));
        }
        let plain = pipeline.is_empty()
            && shape == chunk
            && stored == full_bytes
            && self.dtype != DType::Bool
            && self.big_endian == cfg!(target_endian = "big");
        if plain {
            // Unfiltered whole chunk in native order: read straight into the block.
            // SAFETY: `read_exact_at_uninit` fills the whole buffer or fails.
            return unsafe {
                Block::from_ne_fill_uninit(self.dtype, &shape, |buf| match fetched {
                    Some(b) => {
                        for (d, s) in buf.iter_mut().zip(b) {
                            d.write(*s);
                        }
                        Ok(())
                    }
                    None => file.read_exact_at_uninit(buf, loc.addr).map_err(read_err),
                })
            };
        }
        codec::with_scratch(|cur, tmp| {
            if let Some(b) = fetched {
                cur.extend_from_slice(b);
            } else {
                // `with_scratch` hands `cur` over empty: read into its spare
                // capacity, with no zeroing pass first.
                cur.reserve(stored);
                file.read_exact_at_uninit(&mut cur.spare_capacity_mut()[..stored], loc.addr)
                    .map_err(read_err)?;
                // SAFETY: the read filled all `stored` bytes (it fails otherwise).
                unsafe { cur.set_len(stored) };
            }
            codec::decode(cur, tmp, pipeline, loc.mask, full_bytes)
                .map_err(|m| self.err(idx, m))?;
            if shape == chunk {
                // A whole chunk: build the block straight from the decode buffer.
                return self.to_block(idx, &shape, cur);
            }
            if self.dtype == DType::Bool {
                let mut out = vec![0u8; shape.iter().product::<usize>() * size];
                codec::copy_box(cur, chunk, &shape, size, &mut out, true);
                return self.to_block(idx, &shape, &mut out);
            }
            // An edge chunk: its box is trimmed straight into the block.
            if self.big_endian != cfg!(target_endian = "big") {
                codec::swap_bytes(cur, size);
            }
            // SAFETY: the trim writes every byte of the block's box.
            unsafe {
                Block::from_ne_fill_uninit(self.dtype, &shape, |buf| {
                    codec::trim_uninit(cur, chunk, &shape, size, buf);
                    Ok::<(), Error>(())
                })
            }
        })
    }

    /// A failed read of contiguous storage at byte `at`, for chunk `label`.
    fn read_err(&self, label: &[u64], at: u64, e: std::io::Error) -> Error {
        self.err(
            label,
            format!("reading at file offset {at}: {e}{}", damaged_hint(&e)),
        )
    }

    /// Where a selection of contiguous storage starts, in bytes from the
    /// data's start, when it is one contiguous byte range (every axis
    /// before the innermost partly selected one has a single index, and
    /// that one has step 1); `None` otherwise.
    fn span_start(&self, sel: &[AxisSel]) -> Option<u64> {
        let size = self.dtype.size() as u64;
        let mut k = sel.len();
        // Trailing axes selected whole.
        while k > 0
            && sel[k - 1].start == 0
            && sel[k - 1].step == 1
            && sel[k - 1].len == self.shape[k - 1]
        {
            k -= 1;
        }
        let mut stride = self.shape[k..].iter().product::<u64>() * size;
        let mut at = 0u64;
        for d in (0..k).rev() {
            let s = sel[d];
            if d + 1 == k {
                if s.len > 1 && s.step != 1 {
                    return None;
                }
            } else if s.len > 1 {
                return None;
            }
            if s.len > 0 {
                at += s.index(0) * stride;
            }
            stride *= self.shape[d];
        }
        Some(at)
    }

    /// Read a strided selection of contiguous storage at `base` into `out` (file byte
    /// order, C order; `out` holds exactly the selection).
    fn gather(
        &self,
        file: &RawFile,
        base: u64,
        sel: &[AxisSel],
        label: &[u64],
        out: &mut [u8],
    ) -> Result<()> {
        let size = self.dtype.size();
        let nd = sel.len();
        let out_shape: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
        if out.is_empty() {
            return Ok(());
        }
        if nd == 0 {
            return file
                .read_exact_at(out, base)
                .map_err(|e| self.err(label, format!("read at {base}: {e}")));
        }
        // Merge trailing axes that are selected whole into one unit.
        let mut k = nd - 1;
        while k > 0 && sel[k].start == 0 && sel[k].step == 1 && sel[k].len == self.shape[k] {
            k -= 1;
        }
        let unit: usize = self.shape[k + 1..]
            .iter()
            .map(|&n| n as usize)
            .product::<usize>()
            * size;
        let mut strides = vec![0u64; nd];
        let mut acc = size as u64;
        for d in (0..nd).rev() {
            strides[d] = acc;
            acc *= self.shape[d];
        }
        let row = sel[k];
        let row_bytes = row.len as usize * unit;
        let outer: usize = out_shape[..k].iter().product();
        let mut oidx = vec![0u64; k];
        let mut window = Vec::new();
        for r in 0..outer {
            let off = base
                + oidx
                    .iter()
                    .enumerate()
                    .map(|(d, &i)| sel[d].index(i) * strides[d])
                    .sum::<u64>();
            let dst = &mut out[r * row_bytes..(r + 1) * row_bytes];
            self.read_run(file, off, row, unit, dst, &mut window, label)?;
            for d in (0..k).rev() {
                oidx[d] += 1;
                if oidx[d] < sel[d].len {
                    break;
                }
                oidx[d] = 0;
            }
        }
        Ok(())
    }

    /// Read the units `row.index(i)` (each `unit` bytes, starting at byte `off`) into `dst`.
    #[allow(clippy::too_many_arguments)]
    fn read_run(
        &self,
        file: &RawFile,
        off: u64,
        row: AxisSel,
        unit: usize,
        dst: &mut [u8],
        window: &mut Vec<u8>,
        label: &[u64],
    ) -> Result<()> {
        let io = |e: std::io::Error, at: u64| self.read_err(label, at, e);
        if row.len == 0 {
            return Ok(());
        }
        if row.is_contiguous() {
            let at = off + row.start * unit as u64;
            return file.read_exact_at(dst, at).map_err(|e| io(e, at));
        }
        // Ascending positions lo, lo+st, ...; output reversed for a negative step.
        let st = row.step.unsigned_abs();
        let lo = row.bounds().start;
        let n = row.len;
        let stride = st as usize * unit;
        let per = if stride >= WINDOW {
            1
        } else {
            ((WINDOW - unit) / stride + 1).max(1) as u64
        };
        let mut j = 0u64;
        while j < n {
            let m = per.min(n - j);
            let span = (m as usize - 1) * stride + unit;
            window.resize(span, 0);
            let at = off + (lo + j * st) * unit as u64;
            file.read_exact_at(window, at).map_err(|e| io(e, at))?;
            for t in 0..m {
                let src = &window[t as usize * stride..t as usize * stride + unit];
                let pos = j + t;
                let o = if row.step > 0 { pos } else { n - 1 - pos } as usize * unit;
                dst[o..o + unit].copy_from_slice(src);
            }
            j += m;
        }
        Ok(())
    }

    /// Read a region through hdf5-metno (under its lock).
    fn read_library(&self, ds: &Dataset, sel: &[AxisSel], label: &[u64]) -> Result<Block> {
        let shape: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
        if shape.contains(&0) {
            return Ok(Block::zeros(self.dtype, &shape));
        }
        let dims: Vec<SliceOrIndex> = sel
            .iter()
            .map(|s| {
                let b = s.bounds();
                SliceOrIndex::SliceCount {
                    start: b.start as usize,
                    step: s.step.unsigned_abs() as usize,
                    count: s.len as usize,
                    block: 1,
                }
            })
            .collect();
        let h5err = |e: hdf5::Error| self.err(label, format!("HDF5 read failed: {e}"));
        let block = hdf5::sync::sync(|| -> Result<Block> {
            with_dtype!(self.dtype, T => {
                let a = if shape.is_empty() {
                    ds.read_dyn::<T>().map_err(h5err)?
                } else {
                    ds.read_slice::<T, _, IxDyn>(Selection::from(Hyperslab::from(dims))).map_err(h5err)?
                };
                Ok(Block::from(a))
            })
        })?;
        // Negative steps were read ascending: flip those axes.
        Ok(flip_negative(block, sel))
    }
}

/// `file` mapped read-only, if every allocated chunk (`full` bytes each,
/// unfiltered) lies inside it; `None` otherwise (the chunks are then read
/// with positioned reads, which report a truncated file as an error).
fn map_chunks(file: &File, len: u64, locs: &[Option<ChunkLoc>], full: u64) -> Option<Mmap> {
    let inside = locs
        .iter()
        .flatten()
        .all(|l| l.size == full && l.addr.checked_add(l.size).is_some_and(|end| end <= len));
    if !inside || len == 0 || usize::try_from(len).is_err() {
        return None;
    }
    // SAFETY: a read-only private map. Like the raw and .npy sources, this
    // relies on nobody truncating a file while it is being read; every
    // chunk was checked above to lie inside the file as it is now.
    unsafe { Mmap::map(file) }.ok()
}

/// Reverse the axes of `b` whose selection step is negative.
fn flip_negative(b: Block, sel: &[AxisSel]) -> Block {
    if sel.iter().all(|s| s.step > 0) {
        return b;
    }
    with_block!(b, a, T => {
        let mut a = a;
        for (d, s) in sel.iter().enumerate() {
            if s.step < 0 {
                a.invert_axis(ndarray::Axis(d));
            }
        }
        Block::from(a.as_standard_layout().into_owned())
    })
}

/// True if the dataset's data lives in external files.
fn has_external(ds: &Dataset) -> bool {
    hdf5::sync::sync(|| {
        ds.dcpl().is_ok_and(|p| {
            // SAFETY: under the HDF5 lock; H5Pget_external_count only reads the plist.
            unsafe { hdf5_sys::h5p::H5Pget_external_count(p.id()) > 0 }
        })
    })
}

/// Datasets of up to this many chunks have every chunk located at open
/// (one `H5Dget_chunk_info_by_coord` each, 24 bytes kept per chunk); in
/// larger ones each chunk is located when it is read (`Locs::Lookup`).
/// libhdf5 1.10 has no cheaper way to list only the allocated chunks, and a
/// file may declare any number (the `hdf5_open` fuzzer made one of 48
/// million 16x16 chunks, 3 KB on disk: locating them all never finished).
const MAX_LOCATED_CHUNKS: u64 = 1 << 20;

/// Every chunk's location, by coordinate, under the HDF5 lock.
fn chunk_locations(
    ds: &Dataset,
    grid: &ChunkGrid,
    chunk: &[u64],
    name: &str,
) -> Result<Vec<Option<ChunkLoc>>> {
    let n = grid.num_chunks();
    hdf5::sync::sync(|| {
        let mut locs = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for lin in 0..n {
            let idx = grid.unravel(lin);
            let offset: Vec<u64> = idx.iter().zip(chunk).map(|(i, c)| i * c).collect();
            let loc = locate(ds, &offset).ok_or_else(|| {
                Error::open(
                    name,
                    format!("HDF5 cannot locate chunk {idx:?} of {}", ds.name()),
                )
            })?;
            locs.push(loc);
        }
        Ok(locs)
    })
}

/// The chunk at element `offset` (one entry per dimension, a multiple of
/// the chunk shape): where it lies, `None` if it was never written; the
/// outer `None` if libhdf5 cannot look it up. Call under the HDF5 lock.
pub(super) fn locate(ds: &Dataset, offset: &[u64]) -> Option<Option<ChunkLoc>> {
    let (mut mask, mut addr, mut size) = (0u32, UNDEF, 0u64);
    // SAFETY: under the HDF5 lock (the caller's); `offset` has one entry
    // per dataset dimension and the out-pointers are valid locals.
    let rc = unsafe {
        hdf5_sys::h5d::H5Dget_chunk_info_by_coord(
            ds.id(),
            offset.as_ptr(),
            &mut mask,
            &mut addr,
            &mut size,
        )
    };
    (rc >= 0).then_some((addr != UNDEF && size > 0).then_some(ChunkLoc { addr, size, mask }))
}

impl ChunkSource for Hdf5Source {
    fn locator(&self) -> Option<String> {
        self.locator.clone()
    }

    fn read_ahead(&self) -> usize {
        self.read_ahead
    }

    #[cfg(feature = "object-store")]
    fn fetches(&self) -> bool {
        // A stored chunk of a file read by URL is one ranged GET.
        matches!(
            self.storage,
            Storage::Chunked {
                file: RawFile::Url(_),
                ..
            }
        )
    }

    #[cfg(feature = "object-store")]
    fn fetch(&self, idx: &[u64], done: FetchDone) {
        let whole = || done_read(self, idx);
        let Storage::Chunked {
            chunk,
            locs,
            file: RawFile::Url(file),
            file_len,
            ..
        } = &self.storage
        else {
            return done(whole());
        };
        if self.grid.check_chunk(idx).is_err() {
            return done(whole());
        }
        // A chunk never written is the fill value; one the index puts past
        // the end is `read_chunk`'s error.
        let Ok(loc) = locs.get(&self.grid, chunk, idx) else {
            return done(whole());
        };
        let Some((loc, n)) = loc
            .filter(|l| l.addr.checked_add(l.size).is_some_and(|e| e <= *file_len))
            .and_then(|l| Some((l, usize::try_from(l.size).ok()?)))
        else {
            return done(whole());
        };
        let (name, at) = (self.name.clone(), idx.to_vec());
        file.fetch(
            loc.addr,
            n,
            Box::new(move |got| {
                done(got.map(Fetched::new).map_err(|e| {
                    Error::source(
                        &name,
                        &at,
                        format!("reading {n} bytes at file offset {}: {e}", loc.addr),
                    )
                }))
            }),
        );
    }

    #[cfg(feature = "object-store")]
    fn decode_fetched(&self, idx: &[u64], fetched: Fetched) -> Result<Block> {
        let bytes = match fetched.downcast::<crate::remote::RangeBytes>() {
            Ok(b) => b,
            Err(other) => return other.downcast::<Block>().or_else(|_| self.read_chunk(idx)),
        };
        self.read_chunked(idx, Some(&bytes))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn shape(&self) -> &[u64] {
        &self.shape
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn chunk_read_bytes(&self) -> u64 {
        match &self.storage {
            // A stored chunk decodes whole, also where it is declared
            // larger than the dataset.
            Storage::Chunked { chunk, .. } => {
                chunk.iter().fold(self.dtype.size() as u64, |acc, &c| {
                    acc.saturating_mul(c as u64)
                })
            }
            _ => self
                .grid
                .max_chunk_elems()
                .saturating_mul(self.dtype.size() as u64),
        }
    }

    fn read_chunk(&self, idx: &[u64]) -> Result<Block> {
        let out_of_grid = idx
            .iter()
            .zip(self.grid.grid_shape())
            .any(|(&i, n)| i >= n.max(1));
        if idx.len() != self.grid.ndim() || out_of_grid {
            return Err(self.err(
                idx,
                format!(
                    "no such chunk: the grid is {:?} chunks",
                    self.grid.grid_shape()
                ),
            ));
        }
        match &self.storage {
            Storage::Chunked { .. } => self.read_chunked(idx, None),
            Storage::Contiguous { offset, file } => {
                let sel: Vec<AxisSel> = self
                    .grid
                    .chunk_region(idx)
                    .into_iter()
                    .map(AxisSel::range)
                    .collect();
                self.read_contiguous(offset, file, &sel, idx)
            }
            Storage::Library { ds } => {
                let sel: Vec<AxisSel> = self
                    .grid
                    .chunk_region(idx)
                    .into_iter()
                    .map(AxisSel::range)
                    .collect();
                self.read_library(ds, &sel, idx)
            }
        }
    }

    fn supports_selection(&self) -> bool {
        matches!(self.storage, Storage::Contiguous { .. })
    }

    fn read_chunk_part(&self, idx: &[u64], part: &[AxisSel]) -> Option<Result<Block>> {
        let Storage::Chunked {
            chunk,
            locs,
            map: Some(map),
            ..
        } = &self.storage
        else {
            return None;
        };
        let shape = self.grid.chunk_shape(idx);
        let inside = idx.len() == self.grid.ndim()
            && part.len() == shape.len()
            && idx.iter().zip(self.grid.grid_shape()).all(|(&i, n)| i < n)
            && part
                .iter()
                .zip(&shape)
                .all(|(s, &n)| s.len == 0 || s.bounds().end <= n);
        let whole = part
            .iter()
            .zip(&shape)
            .all(|(s, &n)| s.start == 0 && s.step == 1 && s.len == n);
        if !inside || whole {
            // A whole chunk is one positioned read; anything odd gets
            // `read_chunk`'s errors.
            return None;
        }
        let out: Vec<usize> = part.iter().map(|s| s.len as usize).collect();
        let Some(loc) = locs.get(&self.grid, chunk, idx).ok()? else {
            return Some(self.fill_block(&out));
        };
        let item = self.dtype.size();
        // Byte strides of the stored chunk (always full size, C order).
        let mut strides = vec![0i64; chunk.len()];
        let mut acc = item as i64;
        for d in (0..chunk.len()).rev() {
            strides[d] = acc;
            acc *= chunk[d] as i64;
        }
        let (base, size) = (loc.addr as usize, loc.size as usize);
        let block = crate::contiguous::gather_block(self.dtype, map, base, &strides, part, false);
        crate::contiguous::release_pages(map, base, base + size);
        Some(block.ok_or_else(|| self.err(idx, "a bool element is neither 0 nor 1: corrupt data")))
    }

    fn read_selection(&self, sel: &[AxisSel]) -> Result<Block> {
        if sel.len() != self.shape.len()
            || sel
                .iter()
                .zip(&self.shape)
                .any(|(s, &n)| s.len > 0 && s.bounds().end > n)
        {
            return Err(self.err(
                &[],
                format!(
                    "selection {sel:?} is out of bounds for shape {:?}",
                    self.shape
                ),
            ));
        }
        match &self.storage {
            Storage::Contiguous { offset, file } => self.read_contiguous(offset, file, sel, &[]),
            Storage::Library { ds } => self.read_library(ds, sel, &[]),
            Storage::Chunked { .. } => {
                Err(self.err(&[], "chunked HDF5 datasets are read whole chunks at a time"))
            }
        }
    }

    fn attributes(&self) -> Attributes {
        self.attrs.clone()
    }
}

impl Hdf5Source {
    fn read_contiguous(
        &self,
        offset: &Option<u64>,
        file: &RawFile,
        sel: &[AxisSel],
        label: &[u64],
    ) -> Result<Block> {
        let shape: Vec<usize> = sel.iter().map(|s| s.len as usize).collect();
        match offset {
            None => self.fill_block(&shape),
            Some(base) if self.dtype != DType::Bool => {
                let native = self.big_endian == cfg!(target_endian = "big");
                if let Some(at) = self.span_start(sel).filter(|_| native) {
                    // One contiguous byte range in native order: one read
                    // straight into the block's unzeroed buffer.
                    let at = base + at;
                    // SAFETY: `read_exact_at_uninit` fills the whole buffer or fails.
                    return unsafe {
                        Block::from_ne_fill_uninit(self.dtype, &shape, |bytes| {
                            file.read_exact_at_uninit(bytes, at)
                                .map_err(|e| self.read_err(label, at, e))
                        })
                    };
                }
                Block::from_ne_fill(self.dtype, &shape, |bytes| {
                    self.gather(file, *base, sel, label, bytes)?;
                    if !native {
                        codec::swap_bytes(bytes, self.dtype.size());
                    }
                    Ok(())
                })
            }
            Some(base) => {
                let total = shape.iter().product::<usize>() * self.dtype.size();
                let mut bytes = vec![0u8; total];
                self.gather(file, *base, sel, label, &mut bytes)?;
                self.to_block(label, &shape, &mut bytes)
            }
        }
    }
}

/// What a read that ended early says about the file (a request that
/// failed on the network says nothing about it).
fn damaged_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        " (truncated or damaged file?)"
    } else {
        ""
    }
}

/// A chunk read and decoded here, as a fetch's payload.
#[cfg(feature = "object-store")]
fn done_read(src: &Hdf5Source, idx: &[u64]) -> Result<Fetched> {
    src.read_chunk(idx).map(Fetched::new)
}

/// `FileExt::read_exact_at` into uninitialised memory: fills all of `buf`
/// from byte `off` of `file`, or fails (`UnexpectedEof` past the end).
fn read_exact_at_uninit(
    file: &File,
    mut buf: &mut [MaybeUninit<u8>],
    mut off: u64,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::fd::AsRawFd;
    while !buf.is_empty() {
        let at = libc::off_t::try_from(off).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("file offset {off} out of range"),
            )
        })?;
        // SAFETY: the pointer and length describe `buf`, memory we may write;
        // pread writes at most that many bytes there and reads none.
        let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), at) };
        if n < 0 {
            let e = Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "failed to fill whole buffer",
            ));
        }
        let n = n as usize;
        buf = &mut buf[n..];
        off += n as u64;
    }
    Ok(())
}
