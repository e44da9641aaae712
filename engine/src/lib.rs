//! ndstream-engine: lazy chunked n-dimensional arrays and the bounded-memory
//! streaming executor that runs them.
//!
//! See `docs/DESIGN.md` at the project root for the map. In short:
//! [`Array`] is a cheap handle to an expression over chunked data;
//! nothing runs until [`Array::compute`] or [`Array::store`], which hand the
//! expression to an [`Executor`] that streams output chunks through worker
//! threads inside one memory [`Budget`].

pub mod block;
pub mod budget;
pub mod dtype;
pub mod error;
pub mod grid;
pub mod kernels;
pub mod random;
pub mod source;

pub use block::{Block, BlockElement};
pub use budget::{Budget, Reservation};
pub use dtype::{DType, Element, Kind};
pub use error::{human_bytes, parse_bytes, Error, Result};
pub use grid::{Axis, AxisChunks, AxisSel, ChunkGrid, ChunkIndex, Selection};
pub use source::{Attributes, ChunkSink, ChunkSource, FetchDone, Fetched};

pub mod array;
mod cache;
mod eval;
pub mod exec;
mod fuse;
pub mod physical;
mod plan;
pub mod program;
mod readahead;
mod runner;
mod writebehind;

pub use array::{
    arange, concatenate, full, linspace, ones, stack, where_, zeros, Array, Chunks, IndexItem, Op,
    Scalar, SelItem,
};
pub use array::{
    map_blocks, map_blocks_to, BlockMap, IntoIndexItem, IntoSlice, Operand, EVAL_STACK_BYTES,
    MAX_DEPTH,
};
pub use exec::{
    compute, default_memory, peak_rss, CancelHandle, Executor, ExecutorBuilder, Progress,
    ProgressFn, StoreReport,
};
pub use kernels::elementwise::{BinaryOp, UnaryOp};
pub use kernels::reduce::{ReduceOp, ReduceParam};
pub use kernels::scan::ScanOp;
pub use physical::{Job, PhysicalPlan, Strategy, TaskSpec};
pub use random::Distribution;
