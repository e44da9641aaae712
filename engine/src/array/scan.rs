//! Cumulative reductions along one axis: [`Array::cumsum`],
//! [`Array::cumprod`], [`Array::nancumsum`], [`Array::nancumprod`].
//!
//! A scan is an [`Op::Scan`] over its input cast to the result dtype, with
//! the same chunks, and (when the axis has more than one chunk) an
//! [`Op::ScanCarry`] holding each chunk's running total of the chunks
//! before it. The planner computes a small carry ahead of the main job, as
//! it does a small reduction, so every input chunk is read twice in all,
//! whatever the length of the axis; a carry too large to hold is evaluated
//! inside each task, reading the chunks before it again (bounded memory,
//! more reads). See `kernels/scan.rs` for the order of operations.

use super::build::normalize_axis;
use super::{Array, Op};
use crate::error::{Error, Result};
use crate::grid::{AxisChunks, ChunkGrid};
use crate::kernels::scan::ScanOp;

macro_rules! scans {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// An axis out of range ([`Error::AxisOutOfBounds`]), or a
                /// masked selection ([`Error::UnknownLength`]).
                pub fn $name(&self, axis: Option<isize>) -> Result<Array> {
                    self.scan($op, axis)
                }
            )*
        }
    };
}

scans! {
    /// Running sums along `axis`, or over the flattened array (`None`),
    /// like NumPy's `cumsum`: bool and signed integers give `int64`,
    /// unsigned `uint64`, floats their own dtype.
    ///
    /// ```
    /// use ndstream_engine::{arange, Chunks, DType};
    /// let x = arange(1.0, 6.0, 1.0, DType::I32, Chunks::from(&[2][..])).unwrap();
    /// let y = x.cumsum(None).unwrap();
    /// assert_eq!(y.dtype(), DType::I64);
    /// assert_eq!(y.compute().unwrap().to_f64_vec(), vec![1.0, 3.0, 6.0, 10.0, 15.0]);
    /// ```
    cumsum => ScanOp::CumSum;
    /// Running products along `axis`, or over the flattened array
    /// (`None`), like NumPy's `cumprod` (dtypes as [`cumsum`](Array::cumsum)).
    cumprod => ScanOp::CumProd;
    /// Running sums with NaN counted as 0, like NumPy's `nancumsum`.
    nancumsum => ScanOp::NanCumSum;
    /// Running products with NaN counted as 1, like NumPy's `nancumprod`.
    nancumprod => ScanOp::NanCumProd;
}

impl Array {
    /// The cumulative `op` along `axis`, or over the flattened array
    /// (`None`, through [`reshape`](Array::reshape) to one axis, with its
    /// chunks). The result has this array's chunks.
    ///
    /// # Errors
    /// As [`cumsum`](Array::cumsum).
    pub fn scan(&self, op: ScanOp, axis: Option<isize>) -> Result<Array> {
        if !self.known_len() {
            return Err(Error::UnknownLength { op: op.name() });
        }
        let (x, axis) = match axis {
            None => (self.reshape(&[-1])?, 0),
            Some(a) => (self.clone(), normalize_axis(op.name(), a, self.ndim())?),
        };
        let dtype = op.result_dtype(x.dtype());
        let x = x.astype(dtype);
        let chunks = x.grid().axes()[axis].count();
        let carry = (chunks > 1).then(|| {
            let mut shape = x.shape().to_vec();
            shape[axis] = chunks;
            let mut axes = x.grid().axes().to_vec();
            axes[axis] = AxisChunks::regular(chunks, chunks);
            Array::new(
                Op::ScanCarry {
                    op,
                    x: x.clone(),
                    axis,
                },
                shape,
                dtype,
                ChunkGrid::from_axes(axes),
            )
        });
        let (shape, grid) = (x.shape().to_vec(), x.grid().clone());
        Ok(Array::new(
            Op::Scan { op, x, axis, carry },
            shape,
            dtype,
            grid,
        ))
    }
}
