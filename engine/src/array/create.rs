//! Building arrays from nothing: in-memory data, storage sources,
//! constants, ranges and counter-based random values.

use std::sync::Arc;

use ndarray::ArrayD;

use super::{Array, Op};
use crate::block::{Block, BlockElement};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::ChunkGrid;
use crate::random::Distribution;
use crate::source::ChunkSource;

/// Chunk size used by [`Chunks::Auto`].
pub const AUTO_CHUNK_BYTES: u64 = 8 << 20;

/// How to chunk a new array.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Chunks {
    /// About [`AUTO_CHUNK_BYTES`] per chunk, as square as possible.
    #[default]
    Auto,
    /// This chunk shape (edge chunks ragged); `0` or more than the axis means the whole axis.
    Shape(Vec<u64>),
    /// Dask-style explicit sizes per axis (each must sum to the axis length).
    Sizes(Vec<Vec<u64>>),
    /// About this many bytes per chunk.
    TargetBytes(u64),
}

impl From<&[u64]> for Chunks {
    fn from(s: &[u64]) -> Chunks {
        Chunks::Shape(s.to_vec())
    }
}

impl From<Vec<u64>> for Chunks {
    fn from(s: Vec<u64>) -> Chunks {
        Chunks::Shape(s)
    }
}

impl<const N: usize> From<[u64; N]> for Chunks {
    fn from(s: [u64; N]) -> Chunks {
        Chunks::Shape(s.to_vec())
    }
}

impl Chunks {
    /// The grid these chunks give an array of `shape` and `dtype`.
    ///
    /// # Errors
    /// A rank mismatch, explicit sizes that do not add up to the shape, or a
    /// shape too large for any array ([`Error::ArrayTooLarge`]).
    pub fn resolve(&self, shape: &[u64], dtype: DType) -> Result<ChunkGrid> {
        dtype.nbytes_of(shape)?;
        match self {
            Chunks::Auto => Ok(ChunkGrid::auto(shape, dtype.size(), AUTO_CHUNK_BYTES)),
            Chunks::TargetBytes(b) => Ok(ChunkGrid::auto(shape, dtype.size(), (*b).max(1))),
            Chunks::Shape(c) => {
                if c.len() != shape.len() {
                    return Err(Error::invalid(
                        "chunks",
                        "chunks",
                        format!(
                            "{} chunk lengths given for an array of {} dimensions",
                            c.len(),
                            shape.len()
                        ),
                    ));
                }
                let c: Vec<u64> = c
                    .iter()
                    .zip(shape)
                    .map(|(&c, &n)| if c == 0 || c > n { n.max(1) } else { c })
                    .collect();
                Ok(ChunkGrid::regular(shape, &c))
            }
            Chunks::Sizes(s) => {
                if s.len() != shape.len() {
                    return Err(Error::invalid(
                        "chunks",
                        "chunks",
                        format!(
                            "{} axes of chunk sizes given for an array of {} dimensions",
                            s.len(),
                            shape.len()
                        ),
                    ));
                }
                for (d, (sizes, &n)) in s.iter().zip(shape).enumerate() {
                    let total: u64 = sizes.iter().sum();
                    if total != n {
                        return Err(Error::invalid(
                            "chunks",
                            "chunks",
                            format!("chunk sizes on axis {d} add up to {total}, but the axis has length {n}"),
                        ));
                    }
                }
                Ok(ChunkGrid::from_sizes(s))
            }
        }
    }
}

impl Array {
    /// An in-memory array, split into chunks.
    ///
    /// # Errors
    /// Chunks that do not fit the shape.
    pub fn from_block(data: Block, chunks: Chunks) -> Result<Array> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        let dtype = data.dtype();
        let grid = chunks.resolve(&shape, dtype)?;
        Ok(Array::new(
            Op::Memory {
                data: Arc::new(data.into_standard_layout()),
            },
            shape,
            dtype,
            grid,
        ))
    }

    /// An in-memory `ndarray` array, split into chunks.
    ///
    /// ```
    /// use ndstream_engine::{Array, Chunks};
    /// let a = Array::from_ndarray(ndarray::arr2(&[[1i32, 2], [3, 4]]).into_dyn(), Chunks::from(&[1, 2][..])).unwrap();
    /// assert_eq!(a.grid().num_chunks(), 2);
    /// ```
    ///
    /// # Errors
    /// Chunks that do not fit the shape.
    pub fn from_ndarray<T: BlockElement>(data: ArrayD<T>, chunks: Chunks) -> Result<Array> {
        Array::from_block(T::into_block(data), chunks)
    }

    /// An array read from storage, with the storage's chunking.
    pub fn from_source(src: Arc<dyn ChunkSource>) -> Array {
        let shape = src.shape().to_vec();
        let dtype = src.dtype();
        let grid = src.grid().clone();
        Array::new(Op::Source { src }, shape, dtype, grid)
    }

    /// A random array (f64) whose values depend only on `seed` and the
    /// element index: the same for any chunking or thread count.
    ///
    /// # Errors
    /// Chunks that do not fit the shape, or invalid distribution parameters.
    pub fn random(dist: Distribution, shape: &[u64], chunks: Chunks, seed: u64) -> Result<Array> {
        dist.check()?;
        let grid = chunks.resolve(shape, DType::F64)?;
        Ok(Array::new(
            Op::Random { dist, seed },
            shape.to_vec(),
            DType::F64,
            grid,
        ))
    }
}

/// An array of `value` (cast to `dtype`).
///
/// # Errors
/// Chunks that do not fit the shape.
pub fn full(shape: &[u64], value: f64, dtype: DType, chunks: Chunks) -> Result<Array> {
    let grid = chunks.resolve(shape, dtype)?;
    Ok(Array::new(Op::Full { value }, shape.to_vec(), dtype, grid))
}

/// An array of zeros.
///
/// ```
/// use ndstream_engine::{zeros, Chunks, DType};
/// let z = zeros(&[3, 4], DType::I32, Chunks::Auto).unwrap();
/// assert_eq!(z.sum(None).unwrap().compute().unwrap().to_f64_vec(), vec![0.0]);
/// ```
///
/// # Errors
/// Chunks that do not fit the shape.
pub fn zeros(shape: &[u64], dtype: DType, chunks: Chunks) -> Result<Array> {
    full(shape, 0.0, dtype, chunks)
}

/// An array of ones.
///
/// # Errors
/// Chunks that do not fit the shape.
pub fn ones(shape: &[u64], dtype: DType, chunks: Chunks) -> Result<Array> {
    full(shape, 1.0, dtype, chunks)
}

/// `start, start + step, ...` up to (not including) `stop`, as NumPy's `arange`.
///
/// ```
/// use ndstream_engine::{arange, Chunks, DType};
/// let a = arange(0.0, 5.0, 2.0, DType::I64, Chunks::Auto).unwrap();
/// assert_eq!(a.compute().unwrap().to_f64_vec(), vec![0.0, 2.0, 4.0]);
/// ```
///
/// # Errors
/// A zero or non-finite step.
pub fn arange(start: f64, stop: f64, step: f64, dtype: DType, chunks: Chunks) -> Result<Array> {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
        return Err(Error::invalid(
            "arange",
            "step",
            "step must be finite and non-zero",
        ));
    }
    let n = ((stop - start) / step).ceil().max(0.0) as u64;
    let grid = chunks.resolve(&[n], dtype)?;
    Ok(Array::new(
        Op::Arange {
            start,
            step,
            last: None,
        },
        vec![n],
        dtype,
        grid,
    ))
}

/// `num` evenly spaced values from `start` to `stop` inclusive (f64), as NumPy's `linspace`.
///
/// ```
/// use ndstream_engine::{linspace, Chunks};
/// let a = linspace(0.0, 1.0, 5, Chunks::Auto).unwrap();
/// assert_eq!(a.compute().unwrap().to_f64_vec(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
/// ```
///
/// # Errors
/// Non-finite bounds.
pub fn linspace(start: f64, stop: f64, num: u64, chunks: Chunks) -> Result<Array> {
    if !start.is_finite() || !stop.is_finite() {
        return Err(Error::invalid("linspace", "start", "bounds must be finite"));
    }
    let step = if num > 1 {
        (stop - start) / (num - 1) as f64
    } else {
        0.0
    };
    let grid = chunks.resolve(&[num], DType::F64)?;
    let last = if num > 1 { Some(stop) } else { None };
    Ok(Array::new(
        Op::Arange { start, step, last },
        vec![num],
        DType::F64,
        grid,
    ))
}
