//! The engine's boundary with storage: [`ChunkSource`] and [`ChunkSink`].
//!
//! The engine never names a file format. A format crate implements these
//! object-safe traits and hands them over as `Arc<dyn ...>`; the engine asks
//! a source for chunks (or strided selections, when the storage makes them
//! cheap) and gives a sink finished chunks, from many worker threads at once.
//!
//! Contract for implementors:
//! - `read_chunk(idx)` returns exactly `grid().chunk_shape(idx)` elements of
//!   `dtype()` (edge chunks trimmed to the array bounds), or an
//!   [`Error::Source`](crate::Error::Source) naming the chunk and the file.
//! - `write_chunk(idx, data)` is called once per chunk of `grid()`, from any
//!   thread, with a block of that chunk's shape and the sink's dtype. It must
//!   be atomic per chunk: after a crash a chunk is either fully there or not.
//! - `finish()` is called once after every chunk is written and marks the
//!   store complete; a store that was never finished is detectably
//!   incomplete, and `is_done` lets a resumed job skip verified chunks.

use std::fmt;

use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{AxisSel, ChunkGrid};

/// User attributes carried from a source to a sink (JSON object).
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// Somewhere chunks come from: a Zarr array, an HDF5 dataset, a `.npy` file.
pub trait ChunkSource: Send + Sync + fmt::Debug {
    /// How users name it, for errors and reprs (`data/x.h5:/x`).
    fn name(&self) -> &str;
    /// The array shape.
    fn shape(&self) -> &[u64];
    /// The element type.
    fn dtype(&self) -> DType;
    /// The storage chunking (for contiguous storage, one the format chose).
    fn grid(&self) -> &ChunkGrid;
    /// Read one chunk of [`grid`](Self::grid).
    ///
    /// # Errors
    /// [`Error::Source`] naming the chunk, for I/O failures and corrupt data.
    fn read_chunk(&self, idx: &[u64]) -> Result<Block>;
    /// Bytes reading one chunk may hold at once besides the chunk itself
    /// being decoded: by default the grid's largest chunk. A format whose
    /// stored chunks can be larger than the grid's (a Zarr or HDF5 chunk
    /// declared larger than the array, which decodes whole) reports the
    /// stored size, so that a plan pays for it in its budget, and a
    /// chunk no budget can hold is refused before it is read.
    fn chunk_read_bytes(&self) -> u64 {
        self.grid()
            .max_chunk_elems()
            .saturating_mul(self.dtype().size() as u64)
    }
    /// How many reads of this source are worth keeping in flight at once
    /// ahead of the workers: 0 (the default) for storage where a read
    /// costs its bytes (local files), more for one where each read is a
    /// request with latency (an object store, a web server). A job over
    /// such a source reads its chunks ahead of its tasks, within the room
    /// its budget leaves (see the engine's design notes, "Read-ahead").
    fn read_ahead(&self) -> usize {
        0
    }
    /// True if any strided selection can be read directly, about as cheaply
    /// as the chunks that hold it (memory-mapped or contiguous storage).
    fn supports_selection(&self) -> bool {
        false
    }
    /// Read a strided selection directly; only called when
    /// [`supports_selection`](Self::supports_selection) is true.
    ///
    /// # Errors
    /// As [`read_chunk`](Self::read_chunk).
    fn read_selection(&self, sel: &[AxisSel]) -> Result<Block> {
        let _ = sel;
        Err(Error::source(
            self.name(),
            &[],
            "this source reads whole chunks only",
        ))
    }
    /// Part of chunk `idx` of [`grid`](Self::grid): the strided selection
    /// `part`, relative to the chunk's origin. `None` (the default) when
    /// the source cannot read a part for less than the whole chunk: the
    /// caller then reads the chunk with [`read_chunk`](Self::read_chunk)
    /// and cuts the part out. A source that maps unfiltered chunks reads
    /// only the part's bytes instead (`x[:, ::2, ::2]` touches half the
    /// rows and copies a quarter of the elements).
    ///
    /// # Errors
    /// As [`read_chunk`](Self::read_chunk).
    fn read_chunk_part(&self, idx: &[u64], part: &[AxisSel]) -> Option<Result<Block>> {
        let _ = (idx, part);
        None
    }
    /// User attributes stored with the array.
    fn attributes(&self) -> Attributes {
        Attributes::new()
    }
    /// Where this source can be opened again, by another thread, process
    /// or machine that sees the same files: a location string, independent
    /// of this process's working directory, that the formats' opener
    /// (`ndstream::open`) reads as the same array. A task that reads this
    /// source can thus be described by its locator instead of this
    /// process's open handle. `None` (the default) for a source that lives
    /// only in this process.
    fn locator(&self) -> Option<String> {
        None
    }
}

/// Somewhere finished chunks go: a new Zarr array or HDF5 dataset, or a test counter.
pub trait ChunkSink: Send + Sync + fmt::Debug {
    /// How users name it, for errors.
    fn name(&self) -> &str;
    /// The array shape being written.
    fn shape(&self) -> &[u64];
    /// The element type being written.
    fn dtype(&self) -> DType;
    /// The chunks the executor must deliver (a sharded store asks for whole shards).
    fn grid(&self) -> &ChunkGrid;
    /// Store one chunk (called concurrently from worker threads).
    ///
    /// # Errors
    /// [`Error::Sink`] naming the chunk and the store.
    fn write_chunk(&self, idx: &[u64], data: &Block) -> Result<()>;
    /// True if a previous run already wrote and verified this chunk (resume).
    fn is_done(&self, idx: &[u64]) -> bool {
        let _ = idx;
        false
    }
    /// Bytes the sink itself allocates while writing one chunk (encode
    /// buffers), reserved by the executor with each task.
    fn memory_per_chunk(&self) -> u64 {
        0
    }
    /// How many chunk writes are worth having under way at once: 0 (the
    /// default) for a sink whose writes cost their bytes (local files),
    /// more for one where each write is a request with latency (an object
    /// store). The executor then hands finished chunks to that many writer
    /// threads instead of writing each on the worker that computed it;
    /// `write_chunk` is called concurrently either way.
    fn write_behind(&self) -> usize {
        0
    }
    /// Mark the store complete after every chunk is written.
    ///
    /// # Errors
    /// [`Error::Sink`] if the final metadata cannot be written.
    fn finish(&self) -> Result<()>;
}
