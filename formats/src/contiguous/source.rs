//! [`ContiguousSource`]: a memory-mapped contiguous array.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, UncheckedAdvice};
use ndstream_engine::{AxisSel, Block, ChunkGrid, ChunkSource, DType, Error, Result};

use super::{gather_block, Layout};
use crate::DEFAULT_TARGET_CHUNK_BYTES;

/// A memory-mapped contiguous file as a chunk source.
pub(crate) struct ContiguousSource {
    name: String,
    pub(crate) layout: Layout,
    grid: ChunkGrid,
    /// `None` for an array with no elements (an empty map is not allowed).
    map: Option<Mmap>,
    /// Where the array can be opened again (see `ChunkSource::locator`).
    pub(crate) locator: Option<String>,
    /// User attributes stored with the array (netCDF-3 variables have them).
    pub(crate) attributes: ndstream_engine::Attributes,
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
        let extent = layout
            .extent()
            .ok_or_else(|| Error::open(name, format!("shape {:?} is too large", layout.shape)))?;
        // An empty array reads nothing: it may begin at the end of the
        // file or past it (a netCDF-3 record variable with no records yet).
        let need = if nbytes == 0 {
            0
        } else {
            layout.offset.saturating_add(extent)
        };
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
            locator: None,
            attributes: Default::default(),
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
    fn locator(&self) -> Option<String> {
        self.locator.clone()
    }

    fn attributes(&self) -> ndstream_engine::Attributes {
        self.attributes.clone()
    }

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
