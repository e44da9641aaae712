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
//! This crate joins the two.

pub use ndstream_engine::*;

/// Storage formats: Zarr v2/v3, HDF5, `.npy`, raw binary.
pub mod formats {
    pub use ndstream_formats::*;
}


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
    pub fn normal(loc: f64, scale: f64, shape: &[u64], chunks: impl Into<Chunks>, seed: u64) -> Result<Array> {
        Array::random(Distribution::Normal { loc, scale }, shape, chunks.into(), seed)
    }

    /// Uniform values in `[low, high)`.
    ///
    /// # Errors
    /// Non-finite bounds; chunks that do not fit the shape.
    pub fn uniform(low: f64, high: f64, shape: &[u64], chunks: impl Into<Chunks>, seed: u64) -> Result<Array> {
        Array::random(Distribution::Uniform { low, high }, shape, chunks.into(), seed)
    }

    /// Exponential values with mean `scale`.
    ///
    /// # Errors
    /// Negative or non-finite `scale`; chunks that do not fit the shape.
    pub fn exponential(scale: f64, shape: &[u64], chunks: impl Into<Chunks>, seed: u64) -> Result<Array> {
        Array::random(Distribution::Exponential { scale }, shape, chunks.into(), seed)
    }
}

