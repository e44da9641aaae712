//! Compute kernels over [`Block`](crate::Block)s: elementwise math,
//! reductions and cumulative reductions (scans). Kernels know nothing of
//! chunks, plans or budgets; the executor calls them on one tile at a time.

pub mod elementwise;
pub(crate) mod fused;
pub mod reduce;
pub mod scan;
