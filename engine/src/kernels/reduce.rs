//! Reduction kernels (CONTRACT — being implemented).

use ndarray::ArrayD;

use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Prod,
    Mean,
    Var { ddof: u32 },
    Std { ddof: u32 },
    Min,
    Max,
    ArgMin,
    ArgMax,
    Any,
    All,
    CountNonzero,
    NanSum,
    NanMean,
    NanVar { ddof: u32 },
    NanStd { ddof: u32 },
    NanMin,
    NanMax,
    /// Largest `k` (k > 0, descending) or smallest `-k` (k < 0, ascending) along one axis.
    TopK { k: i64 },
    /// Indices of what `TopK` returns.
    ArgTopK { k: i64 },
}

/// The running state of a reduction over part of its input.
#[derive(Clone, Debug)]
pub struct Partial {
    _private: (),
}

/// The result dtype of `op` on `input`.
pub fn result_dtype(op: ReduceOp, input: DType) -> Result<DType> {
    let _ = (op, input);
    unimplemented!()
}

/// Bytes of partial state per output element.
pub fn partial_bytes_per_elem(op: ReduceOp, input: DType) -> usize {
    let _ = (op, input);
    unimplemented!()
}

/// The partial of one tile.
pub fn partial(
    op: ReduceOp,
    block: &Block,
    axes: &[usize],
    mask: Option<&ArrayD<bool>>,
    origin: &[u64],
    full_shape: &[u64],
) -> Result<Partial> {
    let _ = (op, block, axes, mask, origin, full_shape);
    unimplemented!()
}

/// Fold `next` (which follows `acc` in input order) into `acc`.
pub fn merge(op: ReduceOp, acc: &mut Partial, next: Partial) -> Result<()> {
    let _ = (op, acc, next);
    unimplemented!()
}

/// The final result.
pub fn finalize(op: ReduceOp, p: Partial) -> Result<Block> {
    let _ = (op, p);
    unimplemented!()
}
