//! # ndstream
//!
//! Chunked n-dimensional arrays larger than memory: a lazy, NumPy-like
//! array API whose programs stream chunks from HDF5, Zarr, `.npy` or raw
//! files, through reductions, elementwise math, stacking and strided
//! slicing, into Zarr or HDF5 outputs — with memory that stays under a
//! budget you set. Think Dask Array, in Rust, for one machine.
//!
//! ```
//! use ndstream::{random, Executor};
//! // The Dask tutorial's second example, 20 000 × 20 000 normals (3.2 GB),
//! // here at a tenth of the size: nothing is generated until compute().
//! let x = random::normal(10.0, 0.1, &[2000, 2000], [100, 100], 0).unwrap();
//! let y = x.mean(Some(0)).unwrap().index(&[ndstream::IndexItem::slice(None, None, 100)]).unwrap();
//! let exec = Executor::builder().memory(64 << 20).threads(2).build().unwrap();
//! let v = exec.compute(&y).unwrap().to_f64_vec();
//! assert_eq!(v.len(), 20);
//! assert!(v.iter().all(|m| (m - 10.0).abs() < 0.01));
//! ```
//!
//! The engine ([`ndstream_engine`]) knows nothing of file formats; the
//! formats ([`formats`]) implement its `ChunkSource`/`ChunkSink` traits.
//! This crate joins the two: [`open`], [`open_many`], [`store`].
//!
//! ## Features
//! - `zarr` (default): Zarr v2/v3 stores on disk, through zarrs.
//! - `npy` (default): NumPy `.npy` files, memory-mapped.
//! - `hdf5`: HDF5 and netCDF-4 files; links libhdf5 (`apt install
//!   libhdf5-dev`).
//! - `object-store`: Zarr stores by `s3://`, `gs://`, `az://` and
//!   `http(s)://` URL (implies `zarr`).
//!
//! The default build needs no C library installed. Raw binary and
//! netCDF-3 files are read in every build. A path of a format the build
//! lacks is refused when opened or created, naming the feature to enable.

pub use ndstream_engine::program::Program;
pub use ndstream_engine::{
    arange, concatenate, full, linspace, map_blocks, map_blocks_to, ones, stack, where_, zeros,
    Array, BlockMap, Chunks, IndexItem, IntoIndexItem, IntoSlice, Op, Operand, Scalar, SelItem,
};
pub use ndstream_engine::{
    compute, default_memory, peak_rss, Budget, CancelHandle, Executor, ExecutorBuilder, Job,
    PhysicalPlan, Progress, ProgressFn, Reservation, StoreReport, Strategy, TaskSpec,
};
pub use ndstream_engine::{human_bytes, parse_bytes, Error, Result, EVAL_STACK_BYTES, MAX_DEPTH};
pub use ndstream_engine::{s, with_block};
pub use ndstream_engine::{
    Attributes, Axis, AxisChunks, AxisSel, ChunkGrid, ChunkIndex, ChunkSink, ChunkSource,
    FetchDone, Fetched, Selection,
};
pub use ndstream_engine::{
    BinaryOp, Block, BlockElement, DType, Distribution, Element, Kind, ReduceOp, ReduceParam,
    ScanOp, UnaryOp,
};

/// The engine itself, for what this crate does not re-export: the kernels
/// (`engine::kernels`), the counter-based generators (`engine::random`),
/// the modules behind the types above.
pub use ndstream_engine as engine;

pub mod plan;

/// Storage formats: Zarr v2/v3, HDF5, `.npy`, raw binary.
pub mod formats {
    pub use ndstream_formats::*;
}

use std::sync::Arc;

use ndstream_formats::SinkSpec;

/// Counter-based random arrays (NumPy's `random.normal`, `uniform`,
/// `exponential`): a value depends only on the seed and its index, so the
/// array is the same for any chunking or thread count, and a slice of it is
/// generated without generating the rest.
pub mod random {
    use ndstream_engine::{Array, Chunks, Distribution, Result};

    /// Normal (Gaussian) values with mean `loc` and standard deviation `scale`.
    ///
    /// # Errors
    /// Negative or non-finite `scale`; chunks that do not fit the shape.
    pub fn normal(
        loc: f64,
        scale: f64,
        shape: &[u64],
        chunks: impl Into<Chunks>,
        seed: u64,
    ) -> Result<Array> {
        Array::random(
            Distribution::Normal { loc, scale },
            shape,
            chunks.into(),
            seed,
        )
    }

    /// Uniform values in `[low, high)`.
    ///
    /// # Errors
    /// Non-finite bounds; chunks that do not fit the shape.
    pub fn uniform(
        low: f64,
        high: f64,
        shape: &[u64],
        chunks: impl Into<Chunks>,
        seed: u64,
    ) -> Result<Array> {
        Array::random(
            Distribution::Uniform { low, high },
            shape,
            chunks.into(),
            seed,
        )
    }

    /// Exponential values with mean `scale`.
    ///
    /// # Errors
    /// Negative or non-finite `scale`; chunks that do not fit the shape.
    pub fn exponential(
        scale: f64,
        shape: &[u64],
        chunks: impl Into<Chunks>,
        seed: u64,
    ) -> Result<Array> {
        Array::random(
            Distribution::Exponential { scale },
            shape,
            chunks.into(),
            seed,
        )
    }
}

/// Open a stored array lazily, with its native chunking: `file.h5:/group/x`,
/// `dir.zarr` or `dir.zarr/group/array`, `file.npy`, or raw
/// `file.bin?dtype=<f4&shape=100,200`.
///
/// # Errors
/// A missing file, dataset or array; an unsupported dtype.
pub fn open(path: &str) -> Result<Array> {
    Ok(Array::from_source(ndstream_formats::open_source(path)?))
}

/// Make again the arrays a [`Program`] describes, reopening their stored
/// inputs by locator with [`open`]'s readers: how another process (a
/// worker of a cluster, a task of a job array) gets the arrays this one
/// built.
///
/// ```no_run
/// let x = ndstream::open("data.zarr")?;
/// let text = ndstream::Program::of(&[x.mean(Some(0))?])?.to_json();
/// // ... in another process, with the same file system:
/// let arrays = ndstream::from_program(&ndstream::Program::from_json(&text)?)?;
/// # Ok::<(), ndstream::Error>(())
/// ```
///
/// # Errors
/// As [`Program::build`]: an input that cannot be opened or has changed, a
/// damaged program.
pub fn from_program(program: &Program) -> Result<Vec<Array>> {
    program.build(&|locator: &str| ndstream_formats::open_source(locator))
}

/// Open a stored array with a chunking of your choice (reads go through the
/// chunk cache when it cuts across the stored chunks).
///
/// # Errors
/// As [`open`], and chunks that do not fit the shape.
pub fn open_with(path: &str, chunks: impl Into<Chunks>) -> Result<Array> {
    open(path)?.rechunk(chunks.into())
}

/// Open every array a glob matches (`data/*.hdf5:/t2m`), in sorted order,
/// ready for [`stack`].
///
/// # Errors
/// No match, or any of them fails to open.
pub fn open_many(pattern: &str) -> Result<Vec<Array>> {
    Ok(ndstream_formats::open_many(pattern)?
        .into_iter()
        .map(Array::from_source)
        .collect())
}

/// How [`store`] creates its output.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Chunk shape of the output (default: the array's chunks, largest chunk size).
    pub chunks: Option<Vec<u64>>,
    /// Zarr v3 shard shape.
    pub shards: Option<Vec<u64>>,
    /// Compression (default none).
    pub codec: Option<formats::Codec>,
    /// Create, overwrite or resume.
    pub mode: formats::WriteMode,
    /// Zarr format version for `.zarr` outputs.
    pub zarr_version: formats::ZarrVersion,
    /// User attributes to write.
    pub attributes: Attributes,
    /// Store without chunking where the format allows it (HDF5 contiguous layout).
    pub contiguous: bool,
    /// Flush the output to the disk (fsync) before it is marked complete,
    /// so it survives a power loss (see [`SinkSpec::sync`]). Off by default.
    pub sync: bool,
}

/// The sink spec [`store`] would create for `a`.
pub fn sink_spec(a: &Array, opts: &StoreOptions) -> SinkSpec {
    let chunks = opts.chunks.clone().unwrap_or_else(|| {
        a.grid()
            .max_chunk_shape()
            .iter()
            .map(|&c| c.max(1))
            .collect()
    });
    let mut spec = SinkSpec::new(a.shape().to_vec(), a.dtype(), chunks);
    spec.shards = opts.shards.clone();
    spec.codec = opts.codec.clone().unwrap_or(formats::Codec::None);
    spec.mode = opts.mode;
    spec.zarr_version = opts.zarr_version;
    spec.attributes = opts.attributes.clone();
    spec.contiguous = opts.contiguous;
    spec.sync = opts.sync;
    spec
}

/// Stream an array into a new store at `path` (Zarr, HDF5, `.npy`, raw),
/// chunk by chunk, in bounded memory.
///
/// The output is refused, before anything is opened for writing, when it
/// is, holds or lies inside a store that `a` reads
/// ([`formats::check_output`]), whatever the write mode; and a plan the
/// budget cannot hold is refused before the output is created
/// ([`Executor::plan_store`]). With [`formats::WriteMode::Into`] every
/// chunk is written into the existing Zarr array at `path` through its own
/// codecs, on its own chunk grid unless `opts.chunks` names one.
///
/// # Errors
/// [`Error::OutputIsInput`]; an existing output without overwrite/resume,
/// plan/budget errors, and any read or write failure (the output is then
/// left marked incomplete).
pub fn store(exec: &Executor, a: &Array, path: &str, opts: &StoreOptions) -> Result<StoreReport> {
    let inputs: Vec<String> = a.sources().iter().map(|s| s.name().to_string()).collect();
    ndstream_formats::check_output(path, &inputs)?;
    let mut spec = sink_spec(a, opts);
    if opts.mode == formats::WriteMode::Into && opts.chunks.is_none() {
        // The existing array's grid, unless the caller named one.
        if let Ok(formats::StoreInfo::Array(info)) = ndstream_formats::info(path) {
            if let Some(chunks) = info.chunks {
                spec.chunks = chunks;
                spec.shards = info.shards;
            }
        }
    }
    // The whole plan is checked against the budget before the sink exists:
    // a refused store creates nothing and reads nothing.
    let (grid, sink_bytes) = ndstream_formats::sink_needs(path, &spec)?;
    exec.plan_store(a, &grid, sink_bytes)?;
    let sink: Arc<dyn ChunkSink> = ndstream_formats::create_sink(path, &spec)?;
    exec.store(a, sink.as_ref())
}
