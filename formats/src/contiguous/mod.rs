//! Contiguous storage: the source and sink that raw files and `.npy` share.
//!
//! A contiguous store is one run of `product(shape)` elements of one dtype
//! in one byte order, C or Fortran order, starting at a byte offset (0 for
//! raw files unless the spec says otherwise, after the header for `.npy`).
//!
//! - [`ContiguousSource`] memory-maps the file and gathers any chunk or
//!   strided selection straight from the map (byte-swapping when the file's
//!   order is not the machine's); its grid is chosen with
//!   [`ChunkGrid::auto`](ndstream_engine::ChunkGrid::auto) at [`DEFAULT_TARGET_CHUNK_BYTES`](crate::DEFAULT_TARGET_CHUNK_BYTES).
//! - [`ContiguousSink`] pre-sizes the file (C order) and writes each chunk
//!   at its offsets with positioned writes, one per contiguous run, so
//!   chunks can arrive in any order from any thread. While it writes, a
//!   sidecar `<file>.ndstream-incomplete` exists; `finish` removes it (and
//!   with [`SinkSpec::sync`](crate::SinkSpec::sync) first syncs the file,
//!   and after, its directory). A chunk's runs are not written atomically, so `Resume`
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
//! overwrite to remove. A new file is prepared the same way (a locked
//! temporary beside it, given the file's name once its header and size
//! are written). Nothing else is written outside the named file but these
//! temporaries, the sidecar marker (a link at its name is replaced, never
//! written through) and the parent directories of a new file.
//!
//! Invariant of the memory map: nobody truncates a file while a source has
//! it mapped (reads past the end of a mapped file fault). ndstream never
//! does: `Overwrite` renames a new file over the old one (a new inode, old
//! maps stay valid) and `Resume` never changes a file's size.

mod gather;
mod sink;
mod source;

pub(crate) use gather::gather_block;
#[cfg_attr(not(any(feature = "hdf5", feature = "zarr")), allow(unused_imports))]
pub(crate) use sink::{io_err, spec_grid, ContiguousSink};
#[cfg_attr(not(feature = "hdf5"), allow(unused_imports))]
pub(crate) use source::{open_err, release_pages, ContiguousSource};

use std::path::{Path, PathBuf};

use ndstream_engine::{ChunkGrid, DType, Result};

use crate::spec::{ArrayInfo, SinkSpec};

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
    /// Byte stride of axis 0 where it is not the product of the others:
    /// a netCDF-3 record variable, whose records lie this far apart
    /// (C order only). `None` for a dense array.
    pub record_stride: Option<u64>,
}

impl Layout {
    /// Bytes of the elements, or `None` if that overflows.
    pub fn nbytes(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &n| acc.checked_mul(n))
    }

    /// Bytes from the first element to the end of the last one: the
    /// elements' bytes for a dense array, and for records `record_stride`
    /// apart, all records but the last at their stride. `None` if that
    /// overflows.
    pub fn extent(&self) -> Option<u64> {
        let Some(stride) = self.record_stride else {
            return self.nbytes();
        };
        let nbytes = self.nbytes()?;
        match self.shape.first() {
            Some(&records) if nbytes > 0 => {
                let record = nbytes / records;
                (records - 1).checked_mul(stride)?.checked_add(record)
            }
            _ => Some(nbytes),
        }
    }

    /// Byte stride of each axis.
    fn strides(&self) -> Vec<i64> {
        let item = self.dtype.size() as i64;
        let nd = self.shape.len();
        let mut strides: Vec<i64> = (0..nd)
            .map(|d| {
                let dims = if self.fortran {
                    &self.shape[..d]
                } else {
                    &self.shape[d + 1..]
                };
                // Wrapping: an empty array may declare axes whose product
                // overflows, and then no stride is ever used.
                dims.iter().fold(item, |acc, &n| acc.wrapping_mul(n as i64))
            })
            .collect();
        if let (Some(stride), Some(first)) = (self.record_stride, strides.first_mut()) {
            *first = stride as i64;
        }
        strides
    }

    /// True if the file's byte order differs from this machine's.
    fn needs_swap(&self) -> bool {
        self.dtype.size() > 1 && self.little_endian != cfg!(target_endian = "little")
    }
}

/// What writing `spec` to a contiguous file needs (see
/// [`crate::sink_needs`]): the spec's grid, and one chunk's bytes, which
/// the sink gathers before its positioned write.
pub(crate) fn sink_needs(name: &str, spec: &SinkSpec) -> Result<(ChunkGrid, u64)> {
    let grid = spec_grid(name, spec)?;
    let bytes = grid
        .max_chunk_elems()
        .saturating_mul(spec.dtype.size() as u64);
    Ok((grid, bytes))
}

/// The sidecar that marks a contiguous file as being written.
pub(crate) fn marker_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".ndstream-incomplete");
    PathBuf::from(s)
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
