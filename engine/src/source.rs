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

use std::any::Any;
use std::fmt;

use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{AxisSel, ChunkGrid};

/// User attributes carried from a source to a sink (JSON object).
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// A chunk's stored bytes read ahead by [`ChunkSource::fetch`], waiting
/// to be decoded by [`ChunkSource::decode_fetched`]: what they are is the
/// source's business (encoded bytes, or a decoded block).
pub struct Fetched(Box<dyn Any + Send>);

impl Fetched {
    /// Wrap what a source fetched.
    pub fn new<T: Any + Send>(payload: T) -> Fetched {
        Fetched(Box::new(payload))
    }

    /// What was wrapped, if it is a `T`; else `self` back.
    ///
    /// # Errors
    /// `self`, unchanged, when the payload is not a `T`.
    ///
    /// ```
    /// use ndstream_engine::Fetched;
    /// let f = Fetched::new(vec![1u8, 2, 3]);
    /// let f = f.downcast::<String>().unwrap_err();
    /// assert_eq!(f.downcast::<Vec<u8>>().ok(), Some(vec![1, 2, 3]));
    /// ```
    pub fn downcast<T: Any>(self) -> std::result::Result<T, Fetched> {
        match self.0.downcast::<T>() {
            Ok(t) => Ok(*t),
            Err(b) => Err(Fetched(b)),
        }
    }
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fetched(..)")
    }
}

/// Called once with the outcome of a [`ChunkSource::fetch`].
pub type FetchDone = Box<dyn FnOnce(Result<Fetched>) + Send>;

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
    /// True if [`fetch`](Self::fetch) starts a chunk's read without
    /// blocking the caller (an object store's request, driven by the
    /// store's own I/O runtime). A job's read-ahead then keeps its reads in
    /// flight from one thread, as many as its budget room holds, instead of
    /// one thread per read. False by default.
    fn fetches(&self) -> bool {
        false
    }
    /// Start reading chunk `idx`'s stored bytes; `done` is called once
    /// with them (or with the read's error), on whichever thread finished
    /// the read. The bytes are decoded by
    /// [`decode_fetched`](Self::decode_fetched) on the thread that needs
    /// the chunk. Only called where [`fetches`](Self::fetches) is true.
    /// The default reads and decodes the chunk here, before returning.
    fn fetch(&self, idx: &[u64], done: FetchDone) {
        done(self.read_chunk(idx).map(Fetched::new));
    }
    /// The chunk `idx` from what [`fetch`](Self::fetch) handed over: the
    /// same block [`read_chunk`](Self::read_chunk) returns, with no second
    /// request.
    ///
    /// # Errors
    /// As [`read_chunk`](Self::read_chunk) (a stored chunk that does not
    /// decode).
    fn decode_fetched(&self, idx: &[u64], fetched: Fetched) -> Result<Block> {
        match fetched.downcast::<Block>() {
            Ok(block) => Ok(block),
            Err(_) => self.read_chunk(idx),
        }
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
