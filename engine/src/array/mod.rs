//! [`Array`]: a lazy, chunked n-dimensional array.
//!
//! An `Array` is a cheap handle (`Arc<Node>`) to one node of an expression
//! graph. Every node knows its shape, dtype and chunk grid when it is built,
//! so shape and dtype errors surface at once, while data is only touched
//! when the graph is run by an [`Executor`](crate::Executor).
//!
//! The node kinds are a closed set ([`Op`]); the methods that build them
//! live in `build.rs` (elementwise, reductions, combining), `index.rs`
//! (indexing, masks, transposes, rechunking), `reshape.rs` (reshape and
//! its chunks), `scan.rs` (cumulative sums and products) and
//! `create.rs` (sources, constants, random arrays). Evaluation of a node
//! over a strided selection is in [`crate::eval`].

mod build;
mod create;
mod display;
mod index;
mod reshape;
mod scan;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use build::{concatenate, map_blocks, map_blocks_to, stack, where_, Operand, Scalar};
pub use create::{arange, full, linspace, ones, zeros, Chunks};
pub use index::{IndexItem, IntoIndexItem, IntoSlice};
pub(crate) use reshape::{groups as reshape_groups, Group};

use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;
use crate::grid::{AxisSel, ChunkGrid};
use crate::kernels::elementwise::{BinaryOp, UnaryOp};
use crate::kernels::reduce::ReduceOp;
use crate::kernels::scan::ScanOp;
use crate::random::Distribution;
use crate::source::ChunkSource;

/// A user kernel for [`Array::map_blocks`]: gets one block per input (the
/// same chunk of each) and returns the output block of the same shape.
pub type BlockFn = dyn Fn(&[Block]) -> Result<Block> + Send + Sync;

/// How the blocks of a [`map_blocks_to`](crate::map_blocks_to) output
/// relate to its inputs' blocks (Dask's `map_blocks` with `drop_axis`,
/// `new_axis` and `chunks`).
///
/// Output axis `o` comes from input axis `axes[o]` (block `i` of the
/// output along it is made from block `i` of the inputs), or is a new axis
/// (`None`, one block). Input axes in `dropped` are not in the output: each
/// call gets them whole (all their blocks, concatenated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMap {
    pub axes: Vec<Option<usize>>,
    pub dropped: Vec<usize>,
}

impl BlockMap {
    /// Output axis `o` is input axis `o`: what plain `map_blocks` does.
    pub fn identity(ndim: usize) -> BlockMap {
        BlockMap {
            axes: (0..ndim).map(Some).collect(),
            dropped: Vec::new(),
        }
    }

    /// The input region an output block `idx` is made from, given the
    /// inputs' grid and shape.
    pub(crate) fn input_region(
        &self,
        grid: &crate::grid::ChunkGrid,
        idx: &[u64],
    ) -> Vec<std::ops::Range<u64>> {
        let shape = grid.shape();
        (0..shape.len())
            .map(|d| match self.axes.iter().position(|&a| a == Some(d)) {
                Some(o) => grid.axes()[d].range(idx[o]),
                None => 0..shape[d],
            })
            .collect()
    }
}

/// What one axis of a [`Op::Select`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelItem {
    /// Keep input axis `axis`, selecting a strided run of it.
    Keep { axis: usize, sel: AxisSel },
    /// Drop input axis `axis`, taking the element at `index`.
    Drop { axis: usize, index: u64 },
    /// Insert a new output axis of length 1.
    New,
}

/// The operation a node performs. A closed set: every pass matches it exhaustively.
#[derive(Clone)]
#[non_exhaustive]
pub enum Op {
    /// Chunks from storage.
    Source {
        src: Arc<dyn ChunkSource>,
    },
    /// An in-memory array.
    Memory {
        data: Arc<Block>,
    },
    /// Counter-based random values (f64, or f32 via a cast above).
    Random {
        dist: Distribution,
        seed: u64,
    },
    /// Every element `value`.
    Full {
        value: f64,
    },
    /// `start + i * step` along a 1-D array, with the last element pinned
    /// to `last` when given (linspace's endpoint).
    Arange {
        start: f64,
        step: f64,
        last: Option<f64>,
    },
    Unary {
        op: UnaryOp,
        x: Array,
    },
    /// Both operands already have the operand dtype; NumPy broadcasting.
    Binary {
        op: BinaryOp,
        a: Array,
        b: Array,
    },
    Where {
        cond: Array,
        a: Array,
        b: Array,
    },
    Clip {
        x: Array,
        lo: Option<f64>,
        hi: Option<f64>,
    },
    Cast {
        x: Array,
    },
    /// Reduce `axes` of `x` (sorted). For a masked input, `x` is the
    /// [`Op::Masked`] node and `axes` are all of its data's axes.
    Reduce {
        op: ReduceOp,
        x: Array,
        axes: Vec<usize>,
        keepdims: bool,
    },
    /// Strided slices, integer indices and new axes, in output-axis order
    /// (`Drop` items produce no output axis).
    Select {
        x: Array,
        items: Vec<SelItem>,
    },
    Stack {
        xs: Vec<Array>,
        axis: usize,
    },
    Concat {
        xs: Vec<Array>,
        axis: usize,
    },
    Transpose {
        x: Array,
        perm: Vec<usize>,
    },
    /// Upper (`triu`) or lower (`tril`) triangle of the last two axes.
    Tri {
        x: Array,
        k: i64,
        upper: bool,
    },
    /// The elements of `x` where `mask` is true, in C order: 1-D, unknown length.
    Masked {
        x: Array,
        mask: Array,
    },
    /// A user kernel applied block by block: the inputs share one grid;
    /// `map` says which input region each block of this node's grid is
    /// made from.
    MapBlocks {
        xs: Vec<Array>,
        f: Arc<BlockFn>,
        name: String,
        map: Arc<BlockMap>,
    },
    /// Same data, new chunk grid.
    Rechunk {
        x: Array,
    },
    /// The same elements in C order, in this node's shape
    /// ([`Array::reshape`]). Each output chunk is made from one
    /// rectangular block of `x`; `read` is the largest such block, per
    /// axis of `x` (what one output chunk holds of its input).
    Reshape {
        x: Array,
        read: Vec<u64>,
    },
    /// Cumulative `op` along `axis` ([`Array::cumsum`], ...); `x` is
    /// already in the result dtype. Each chunk along the axis is cumulated
    /// on its own and combined with `carry` (an [`Op::ScanCarry`] of `x`;
    /// `None` when the axis has one chunk).
    Scan {
        op: ScanOp,
        x: Array,
        axis: usize,
        carry: Option<Array>,
    },
    /// For each chunk `c` of `x` along `axis`, the running total of the
    /// chunks before it (the identity for the first): `x`'s shape with
    /// `axis` as long as its number of chunks there, in one chunk.
    ScanCarry {
        op: ScanOp,
        x: Array,
        axis: usize,
    },
}

/// One node of the expression graph.
pub struct Node {
    pub(crate) op: Op,
    pub(crate) shape: Vec<u64>,
    pub(crate) dtype: DType,
    pub(crate) grid: ChunkGrid,
    pub(crate) id: u64,
    /// Nodes on the longest path from here down to a leaf (1 for a leaf).
    pub(crate) depth: usize,
    /// Whether evaluating it reads stored data through chunk reads (a
    /// source that cannot read any selection directly, here or below;
    /// see [`has_io`](crate::eval::has_io)).
    pub(crate) io: bool,
}

/// The deepest expression [`Executor`](crate::Executor) evaluates. Passes
/// over the graph recurse once per level; worker threads get a stack sized
/// for this depth ([`EVAL_STACK_BYTES`]), and a deeper expression is refused
/// with [`Error::TooDeep`](crate::Error::TooDeep) before anything runs.
/// `x = x + 1` repeated ten thousand times is well inside it.
pub const MAX_DEPTH: usize = 20_000;

/// Stack for a thread that evaluates or plans expressions up to
/// [`MAX_DEPTH`] deep (reserved address space; only the pages a deep
/// expression touches become resident).
pub const EVAL_STACK_BYTES: usize = 1 << 30;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A lazy chunked n-dimensional array: a handle to an expression.
///
/// Cloning is cheap (a reference count). Nothing is read or computed until
/// [`compute`](Array::compute) or [`store`](Array::store).
///
/// ```
/// use ndstream_engine::{Array, Chunks};
/// let x = Array::from_ndarray(ndarray::Array2::<f64>::ones((4, 6)).into_dyn(), Chunks::from(&[2, 4][..])).unwrap();
/// let y = (&x * 3.0).sum(Some(0)).unwrap();
/// assert_eq!(y.shape(), &[6]);
/// let v = y.compute().unwrap().to_f64_vec();
/// assert_eq!(v, vec![12.0; 6]);
/// ```
#[derive(Clone)]
pub struct Array(pub(crate) Arc<Node>);

impl Array {
    pub(crate) fn new(op: Op, shape: Vec<u64>, dtype: DType, grid: ChunkGrid) -> Array {
        debug_assert_eq!(grid.shape(), shape, "grid and shape disagree");
        let inputs = op_inputs(&op);
        let depth = 1 + inputs.iter().map(|x| x.depth()).max().unwrap_or(0);
        // Memory-mapped and contiguous stores read any selection directly:
        // re-reading them in small pieces costs no more than memory does.
        let io = matches!(&op, Op::Source { src } if !src.supports_selection())
            || inputs.iter().any(|x| x.0.io);
        Array(Arc::new(Node {
            op,
            shape,
            dtype,
            grid,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            depth,
            io,
        }))
    }

    /// Nodes on the longest path from this one down to a leaf (a source,
    /// constant or in-memory array has depth 1).
    pub fn depth(&self) -> usize {
        self.0.depth
    }

    /// The shape. For the 1-D result of a boolean mask, the length is an
    /// upper bound (see [`known_len`](Array::known_len)).
    pub fn shape(&self) -> &[u64] {
        &self.0.shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.0.shape.len()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The chunk grid.
    pub fn grid(&self) -> &ChunkGrid {
        &self.0.grid
    }

    /// Number of elements (an upper bound for masked arrays).
    pub fn size(&self) -> u64 {
        self.0.shape.iter().product()
    }

    /// Bytes of the whole array once computed (an upper bound for masked arrays).
    pub fn nbytes(&self) -> u64 {
        self.size() * self.0.dtype.size() as u64
    }

    /// False for the result of a boolean mask, whose length is only known
    /// after it is computed.
    pub fn known_len(&self) -> bool {
        !matches!(self.0.op, Op::Masked { .. })
    }

    /// The operation at the top of this expression.
    pub fn op(&self) -> &Op {
        &self.0.op
    }

    /// A process-unique id of this node (stable while the array lives).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The direct inputs of this node.
    pub fn inputs(&self) -> Vec<&Array> {
        op_inputs(&self.0.op)
    }

    /// The storage sources this expression reads, each once, in the order
    /// a depth-first walk meets them. The walk is iterative, so any depth
    /// of expression is fine.
    ///
    /// ```
    /// use ndstream_engine::{zeros, Chunks, DType};
    /// let x = zeros(&[3], DType::F64, Chunks::Auto).unwrap();
    /// assert!((&x + 1.0).sources().is_empty()); // nothing stored
    /// ```
    pub fn sources(&self) -> Vec<Arc<dyn ChunkSource>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(a) = stack.pop() {
            if !seen.insert(a.id()) {
                continue;
            }
            if let Op::Source { src } = a.op() {
                out.push(src.clone());
            }
            stack.extend(a.inputs().into_iter().rev());
        }
        out
    }

    /// True if both handles point at the same node.
    pub fn same_node(&self, other: &Array) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Dropping a long chain (`x = x + 1` ten thousand times) would otherwise
/// recurse once per node; instead the inputs this node owns alone are
/// taken apart on a heap stack.
impl Drop for Node {
    fn drop(&mut self) {
        let mut stack = take_inputs(&mut self.op);
        while let Some(a) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(a.0) {
                stack.extend(take_inputs(&mut node.op));
            }
        }
    }
}

/// Move a node's inputs out of its operation, leaving a leaf behind.
fn take_inputs(op: &mut Op) -> Vec<Array> {
    if op_inputs(op).is_empty() {
        return Vec::new();
    }
    match std::mem::replace(op, Op::Full { value: 0.0 }) {
        Op::Source { .. }
        | Op::Memory { .. }
        | Op::Random { .. }
        | Op::Full { .. }
        | Op::Arange { .. } => vec![],
        Op::Unary { x, .. }
        | Op::Clip { x, .. }
        | Op::Cast { x }
        | Op::Reduce { x, .. }
        | Op::Select { x, .. }
        | Op::Transpose { x, .. }
        | Op::Tri { x, .. }
        | Op::Rechunk { x }
        | Op::Reshape { x, .. }
        | Op::ScanCarry { x, .. } => vec![x],
        Op::Scan { x, carry, .. } => std::iter::once(x).chain(carry).collect(),
        Op::Binary { a, b, .. } => vec![a, b],
        Op::Where { cond, a, b } => vec![cond, a, b],
        Op::Masked { x, mask } => vec![x, mask],
        Op::Stack { xs, .. } | Op::Concat { xs, .. } | Op::MapBlocks { xs, .. } => xs,
    }
}

/// The direct inputs of a node's operation.
fn op_inputs(op: &Op) -> Vec<&Array> {
    match op {
        Op::Source { .. }
        | Op::Memory { .. }
        | Op::Random { .. }
        | Op::Full { .. }
        | Op::Arange { .. } => vec![],
        Op::Unary { x, .. }
        | Op::Clip { x, .. }
        | Op::Cast { x }
        | Op::Reduce { x, .. }
        | Op::Select { x, .. }
        | Op::Transpose { x, .. }
        | Op::Tri { x, .. }
        | Op::Rechunk { x }
        | Op::Reshape { x, .. }
        | Op::ScanCarry { x, .. } => vec![x],
        Op::Scan { x, carry, .. } => std::iter::once(x).chain(carry).collect(),
        Op::Binary { a, b, .. } => vec![a, b],
        Op::Where { cond, a, b } => vec![cond, a, b],
        Op::Masked { x, mask } => vec![x, mask],
        Op::Stack { xs, .. } | Op::Concat { xs, .. } | Op::MapBlocks { xs, .. } => {
            xs.iter().collect()
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Op::Source { src } => return write!(f, "Source({})", src.name()),
            Op::Memory { .. } => "Memory",
            Op::Random { .. } => "Random",
            Op::Full { .. } => "Full",
            Op::Arange { .. } => "Arange",
            Op::Unary { op, .. } => return write!(f, "Unary({op:?})"),
            Op::Binary { op, .. } => return write!(f, "Binary({op:?})"),
            Op::Where { .. } => "Where",
            Op::Clip { .. } => "Clip",
            Op::Cast { .. } => "Cast",
            Op::Reduce { op, .. } => return write!(f, "Reduce({op:?})"),
            Op::Select { .. } => "Select",
            Op::Stack { .. } => "Stack",
            Op::Concat { .. } => "Concat",
            Op::Transpose { .. } => "Transpose",
            Op::Tri { .. } => "Tri",
            Op::Masked { .. } => "Masked",
            Op::MapBlocks { name, .. } => return write!(f, "MapBlocks({name})"),
            Op::Rechunk { .. } => "Rechunk",
            Op::Reshape { .. } => "Reshape",
            Op::Scan { op, .. } => return write!(f, "Scan({op:?})"),
            Op::ScanCarry { op, .. } => return write!(f, "ScanCarry({op:?})"),
        };
        f.write_str(name)
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Node({:?}, shape={:?}, dtype={})",
            self.op, self.shape, self.dtype
        )
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Array({})", display::expr(self))
    }
}
