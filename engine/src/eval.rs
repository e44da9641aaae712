//! Evaluating a node over a strided selection: the engine's inner loop.
//!
//! `eval(a, sel, ctx)` returns the block of `a` at `sel` (one [`AxisSel`]
//! per axis), asking its inputs for exactly the selections they must
//! provide. Selections pass *through* elementwise nodes, slices, stacks and
//! transposes unchanged in size, so a strided slice at the top reaches the
//! generator or the store at the bottom (`random(...)[:, ::100]` generates
//! one column in a hundred). Reductions consume their input tile by tile
//! (see [`reduce_tiles`]) and never hold more than one tile of it.
//!
//! Everything here runs inside one task on one worker thread; the executor
//! has already reserved the task's working set (see [`estimate`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, Slice};

use crate::array::{Array, Op, SelItem};
use crate::block::Block;
use crate::cache::ChunkCache;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{sel_shape, AxisSel, ChunkGrid, ChunkIndex, Selection};
use crate::kernels::{elementwise, fused, reduce};
use crate::plan::Reuse;
use crate::{with_block, with_dtype};

/// Elements per tile for reductions over generated (I/O-free) inputs: small
/// enough that a fused chain's intermediates stay in the L2 cache.
pub(crate) const COMPUTE_TILE_ELEMS: u64 = 1 << 15;
/// Working-set bytes above which a reduction over stored data is split
/// into sub-tiles (reading chunks through the cache).
pub(crate) const IO_TILE_BYTES: u64 = 32 << 20;

/// Sub-tile bytes a float sum or mean folds together (see
/// [`ReduceSetup::fold_group`]), at most [`MAX_GROUP`] sub-tiles.
const GROUP_BYTES: u64 = 4 << 20;
const MAX_GROUP: u64 = 16;
/// Running-sum bytes from which folding sub-tiles together pays: about
/// half a core's L2.
const GROUP_MIN_SUMS_BYTES: u64 = 256 << 10;

/// What a task needs to evaluate nodes.
pub(crate) struct EvalCtx<'a> {
    pub cache: &'a ChunkCache,
    /// Sources whose chunks go through the cache (read more than once), and
    /// nodes whose blocks are kept for their other uses in the same tile.
    pub reuse: &'a Reuse,
    pub cancel: &'a AtomicBool,
    /// The tiling of each reduction the job evaluates inside its tasks.
    pub setups: &'a Setups,
}

/// The [`ReduceSetup`] of each reduction node a job meets, worked out the
/// first time a task needs it and shared by every later task (a setup
/// walks the reduction's input and estimates its tiles: a fact of the
/// plan, not of the task).
#[derive(Debug, Default)]
pub(crate) struct Setups(std::sync::Mutex<HashMap<u64, Arc<ReduceSetup>>>);

impl Setups {
    /// The setup of the Reduce node `node`.
    fn of(&self, node: &Array) -> Option<Arc<ReduceSetup>> {
        let mut m = crate::budget::lock(&self.0);
        if let Some(s) = m.get(&node.id()) {
            return Some(Arc::clone(s));
        }
        let s = Arc::new(ReduceSetup::of(node)?);
        m.insert(node.id(), Arc::clone(&s));
        Some(s)
    }
}

/// Blocks of shared nodes kept for their other uses, one map per open
/// [`scope`] on this thread (a tile; nested reductions open their own).
/// They fit the task's reservation: [`estimate`] counts a node once per
/// use, and the memo never holds more than one block per shared node.
type Memo = HashMap<(u64, Selection), (Arc<Block>, u32)>;

thread_local! {
    static MEMO: RefCell<Vec<Memo>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` (the evaluation of one tile) with its own memo of shared nodes:
/// `s` in `s * s - s` is computed once, and dropped with the scope.
pub(crate) fn scope<R>(f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            MEMO.with(|m| m.borrow_mut().pop());
        }
    }
    MEMO.with(|m| m.borrow_mut().push(Memo::new()));
    let _pop = Pop;
    f()
}

/// One use of a node's block: owned, or shared with the tile's memo (a
/// node with several uses), so kernels read it where it is instead of
/// copying it for each use.
pub(crate) enum Val {
    Owned(Block),
    Shared(Arc<Block>),
}

impl Val {
    /// The block, to read.
    pub(crate) fn get(&self) -> &Block {
        match self {
            Val::Owned(b) => b,
            Val::Shared(a) => a,
        }
    }

    /// The block, copied only if another use still holds it.
    pub(crate) fn into_block(self) -> Block {
        match self {
            Val::Owned(b) => b,
            Val::Shared(a) => Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()),
        }
    }

    /// `f` of the block: owned (a kernel may write its result there) when
    /// no other use holds it, borrowed otherwise.
    pub(crate) fn with_cow<R>(self, f: impl FnOnce(Cow<'_, Block>) -> R) -> R {
        match self {
            Val::Owned(b) => f(Cow::Owned(b)),
            Val::Shared(a) => match Arc::try_unwrap(a) {
                Ok(b) => f(Cow::Owned(b)),
                Err(a) => f(Cow::Borrowed(&a)),
            },
        }
    }
}

/// The block of `a` at `sel`.
pub(crate) fn eval(a: &Array, sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Block> {
    eval_val(a, sel, ctx).map(Val::into_block)
}

/// [`eval`] for a kernel that can read a shared block in place: a node
/// with several uses in the tile is computed once and shared by all.
pub(crate) fn eval_val(a: &Array, sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Val> {
    if ctx.cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let Some(&uses) = ctx.reuse.shared.get(&a.id()) else {
        return eval_node(a, sel, ctx).map(Val::Owned);
    };
    let key = (a.id(), sel.to_vec());
    // A kept block: shared with the memo for all but the last use, which
    // takes the memo's hold.
    let kept = MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let memo = m.last_mut()?;
        let (block, left) = memo.get_mut(&key)?;
        if *left > 1 {
            *left -= 1;
            return Some(block.clone());
        }
        memo.remove(&key).map(|(b, _)| b)
    });
    if let Some(b) = kept {
        return Ok(Val::Shared(b));
    }
    let b = Arc::new(eval_node(a, sel, ctx)?);
    MEMO.with(|m| {
        if let Some(memo) = m.borrow_mut().last_mut() {
            memo.insert(key, (b.clone(), uses - 1));
        }
    });
    Ok(Val::Shared(b))
}

fn eval_node(a: &Array, sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Block> {
    debug_assert_eq!(sel.len(), a.ndim());
    if matches!(
        a.op(),
        Op::Unary { .. } | Op::Binary { .. } | Op::Clip { .. }
    ) {
        if let Some(r) = crate::fuse::try_eval(a, sel, ctx) {
            return r;
        }
    }
    let shape = sel_shape(sel);
    match a.op() {
        Op::Source { src } => {
            if src.supports_selection() {
                return src.read_selection(sel);
            }
            let id = a.id();
            gather_chunks(src.grid(), a.dtype(), sel, |idx, part| {
                // A part the source reads in place (a mapped, unfiltered
                // chunk) costs no more than cutting it from a cached chunk.
                if let Some(p) = src.read_chunk_part(idx, part) {
                    return p.map(Got::Part);
                }
                if ctx.reuse.sources.contains(&id) {
                    // Read again by other tiles: whole chunks, through the cache.
                    ctx.cache
                        .get_or_load(id, idx, || src.read_chunk(idx))
                        .map(Got::Whole)
                } else {
                    src.read_chunk(idx).map(|b| Got::Whole(Arc::new(b)))
                }
            })
        }
        Op::Memory { data } => Ok(extract(data, sel)),
        Op::Random { dist, seed } => Ok(random_block(*dist, *seed, a.shape(), sel)),
        Op::Full { value } => Ok(Block::full(a.dtype(), &shape, *value)),
        Op::Arange { start, step, last } => {
            let n = a.shape()[0];
            let s = sel[0];
            let v: Vec<f64> = (0..s.len)
                .map(|i| {
                    let k = s.index(i);
                    match last {
                        Some(l) if k + 1 == n => *l,
                        _ => start + k as f64 * step,
                    }
                })
                .collect();
            #[allow(clippy::expect_used)]
            let b = Block::from(ArrayD::from_shape_vec(IxDyn(&shape), v).expect("length matches"));
            Ok(b.astype(a.dtype()))
        }
        Op::Unary { op, x } => eval_val(x, sel, ctx)?.with_cow(|x| elementwise::unary_cow(*op, x)),
        Op::Binary { op, a: x, b: y } => {
            if let Some(x) = self_square(a) {
                // `d * d`: one evaluation of `d`, squared in place.
                return eval_val(x, sel, ctx)?
                    .with_cow(|b| elementwise::unary_cow(elementwise::UnaryOp::Square, b));
            }
            // `x ** y` with an exponent array (not a scalar): powf on every
            // element, even in a tile where `y` has one element.
            let each_power = *op == elementwise::BinaryOp::Pow && y.size() > 1;
            let vx = eval_val(x, &broadcast_sel(sel, x.shape()), ctx)?;
            let vy = eval_val(y, &broadcast_sel(sel, y.shape()), ctx)?;
            // Length-1 output axes carry nothing: drop them so the kernel
            // sees the real broadcast (e.g. (r, 1) - (1, c), not (r, 1, 1) - (1, c, 1)).
            // Operands of one shape need no broadcast (and a shared one, as
            // in `d * d`, is then read where it is).
            let broadcast = vx.get().shape() != vy.get().shape();
            if broadcast && shape.len() > 1 && shape.contains(&1) {
                let keep: Vec<usize> = shape.iter().copied().filter(|&n| n != 1).collect();
                let squeeze = |b: Block| -> Block {
                    let off = shape.len() - b.ndim();
                    let s: Vec<usize> = b
                        .shape()
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| shape[i + off] != 1)
                        .map(|(_, &n)| n)
                        .collect();
                    b.into_shape(&s)
                };
                let (bx, by) = (squeeze(vx.into_block()), squeeze(vy.into_block()));
                let out = if each_power {
                    elementwise::power_each_cow(Cow::Owned(bx), Cow::Owned(by))?
                } else {
                    elementwise::binary_owned(*op, bx, by)?
                };
                debug_assert_eq!(out.shape(), keep.as_slice());
                return Ok(out.into_shape(&shape));
            }
            if each_power {
                return vx.with_cow(|bx| vy.with_cow(|by| elementwise::power_each_cow(bx, by)));
            }
            vx.with_cow(|bx| vy.with_cow(|by| elementwise::binary_cow(*op, bx, by)))
        }
        Op::Where { cond, a: x, b: y } => {
            let bc = eval_val(cond, &broadcast_sel(sel, cond.shape()), ctx)?;
            let bx = eval_val(x, &broadcast_sel(sel, x.shape()), ctx)?;
            let by = eval_val(y, &broadcast_sel(sel, y.shape()), ctx)?;
            elementwise::where_(bc.get(), bx.get(), by.get())
        }
        Op::Clip { x, lo, hi } => elementwise::clip_owned(eval(x, sel, ctx)?, *lo, *hi),
        Op::Cast { x } => Ok(eval(x, sel, ctx)?.astype(a.dtype())),
        Op::Reduce { .. } => eval_reduce(a, sel, ctx),
        Op::Select { x, items } => {
            let child = select_child_sel(x, items, sel);
            Ok(eval(x, &child, ctx)?.into_shape(&shape))
        }
        Op::Stack { xs, axis } => {
            let s = sel[*axis];
            let mut rest: Selection = sel.to_vec();
            rest.remove(*axis);
            let mut piece_shape = shape.clone();
            piece_shape[*axis] = 1;
            let mut pieces = Vec::with_capacity(s.len as usize);
            for i in 0..s.len {
                let b = eval(&xs[s.index(i) as usize], &rest, ctx)?;
                pieces.push(b.into_shape(&piece_shape));
            }
            concat_blocks(pieces, *axis, a.dtype(), &shape)
        }
        Op::Concat { xs, axis } => {
            let s = sel[*axis];
            let mut parts: Vec<(u64, Block)> = Vec::new();
            let mut offset = 0;
            for x in xs {
                let n = x.shape()[*axis];
                let r = s.intersect(&(offset..offset + n));
                if r.end > r.start {
                    let mut sub: Selection = sel.to_vec();
                    let mut local = s.sub(r.clone());
                    local.start -= offset;
                    sub[*axis] = local;
                    parts.push((r.start, eval(x, &sub, ctx)?));
                }
                offset += n;
            }
            parts.sort_by_key(|p| p.0);
            let blocks: Vec<Block> = parts.into_iter().map(|p| p.1).collect();
            concat_blocks(blocks, *axis, a.dtype(), &shape)
        }
        Op::Transpose { x, perm } => {
            let mut child = vec![AxisSel::full(0); perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                child[p] = sel[j];
            }
            let b = eval(x, &child, ctx)?;
            Ok(
                with_block!(b, arr, T => Block::from(arr.permuted_axes(IxDyn(perm)).as_standard_layout().into_owned())),
            )
        }
        Op::Tri { x, k, upper } => {
            let mut b = eval(x, sel, ctx)?;
            let n = sel.len();
            let (rs, cs) = (sel[n - 2], sel[n - 1]);
            let (k, upper) = (*k, *upper);
            with_block!(&mut b, arr, T => {
                for (idx, v) in arr.indexed_iter_mut() {
                    let row = rs.index(idx[n - 2] as u64) as i64;
                    let col = cs.index(idx[n - 1] as u64) as i64;
                    let keep = if upper { col - row >= k } else { col - row <= k };
                    if !keep {
                        *v = T::default();
                    }
                }
            });
            Ok(b)
        }
        Op::Masked { .. } => Err(Error::UnknownLength {
            op: "evaluating part of a masked array",
        }),
        Op::MapBlocks { xs, f, name } => {
            let grid = a.grid().clone();
            let dtype = a.dtype();
            gather_chunks(&grid, dtype, sel, |idx, _| {
                let region = crate::grid::region_sel(&grid.chunk_region(idx));
                let inputs = xs
                    .iter()
                    .map(|x| eval(x, &region, ctx))
                    .collect::<Result<Vec<_>>>()?;
                let out = f(&inputs).map_err(|e| Error::Kernel {
                    chunk: ChunkIndex(idx.to_vec()),
                    message: format!("{name}: {e}"),
                })?;
                let want: Vec<usize> = sel_shape(&region);
                if out.shape() != want.as_slice() || out.dtype() != dtype {
                    return Err(Error::Kernel {
                        chunk: ChunkIndex(idx.to_vec()),
                        message: format!(
                            "{name} returned a {} block of shape {:?}; expected {dtype} of shape {want:?}",
                            out.dtype(),
                            out.shape()
                        ),
                    });
                }
                Ok(Got::Whole(Arc::new(out)))
            })
        }
        Op::Rechunk { x } => eval(x, sel, ctx),
    }
}

/// The operand of a float product of a node with itself (`d * d`), which
/// is evaluated once and squared (`v * v`, the same bits as the product)
/// instead of being kept for a second use.
pub(crate) fn self_square(a: &Array) -> Option<&Array> {
    match a.op() {
        Op::Binary {
            op: elementwise::BinaryOp::Mul,
            a: x,
            b: y,
        } if x.same_node(y)
            && x.dtype().is_float()
            && x.dtype() == a.dtype()
            && x.shape() == a.shape() =>
        {
            Some(x)
        }
        _ => None,
    }
}

/// The selection an input of shape `in_shape` must provide for a broadcast
/// output selection `sel` (axes aligned from the right; broadcast axes take index 0).
pub(crate) fn broadcast_sel(sel: &[AxisSel], in_shape: &[u64]) -> Selection {
    let off = sel.len() - in_shape.len();
    in_shape
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let s = sel[i + off];
            if n == 1 && s.len > 0 {
                AxisSel {
                    start: 0,
                    step: 1,
                    len: 1,
                }
            } else {
                s
            }
        })
        .collect()
}

/// The selection of a Select node's input for an output selection.
pub(crate) fn select_child_sel(x: &Array, items: &[SelItem], sel: &[AxisSel]) -> Selection {
    let mut child: Selection = x.shape().iter().map(|&n| AxisSel::full(n)).collect();
    let mut j = 0;
    for it in items {
        match it {
            SelItem::Keep { axis, sel: s } => {
                child[*axis] = s.compose(&sel[j]);
                j += 1;
            }
            SelItem::Drop { axis, index } => {
                child[*axis] = AxisSel {
                    start: *index,
                    step: 1,
                    len: 1,
                };
            }
            SelItem::New => j += 1,
        }
    }
    child
}

/// A chunk as [`gather_chunks`]'s `get` hands it over: the whole chunk
/// (possibly shared), or just the part that was asked for.
enum Got {
    Whole(Arc<Block>),
    Part(Block),
}

/// Assemble `sel` of an array stored in chunks of `grid`, fetching each
/// touched chunk with `get(idx, part)`, where `part` is the selection
/// wanted from it, relative to the chunk's origin. A selection within one
/// chunk is returned as that chunk's piece, with no copy when `get` hands
/// over the part, or the whole chunk unshared.
fn gather_chunks(
    grid: &ChunkGrid,
    dtype: DType,
    sel: &[AxisSel],
    mut get: impl FnMut(&[u64], &[AxisSel]) -> Result<Got>,
) -> Result<Block> {
    let shape = sel_shape(sel);
    // Per axis: (chunk, positions in the output) for every touched chunk.
    let per_axis: Vec<Vec<(u64, Range<u64>)>> = grid
        .axes()
        .iter()
        .zip(sel)
        .map(|(ax, s)| {
            ax.chunks_overlapping(&s.bounds())
                .filter_map(|c| {
                    let r = s.intersect(&ax.range(c));
                    (r.end > r.start).then_some((c, r))
                })
                .collect()
        })
        .collect();
    if per_axis.iter().any(|v| v.is_empty()) {
        return Ok(Block::zeros(dtype, &shape));
    }
    let counts: Vec<usize> = per_axis.iter().map(|v| v.len()).collect();
    // The selection within chunk `idx` (chunk combination `odo`).
    let local = |idx: &[u64], odo: &[usize]| -> Selection {
        (0..counts.len())
            .map(|d| {
                let r = &per_axis[d][odo[d]].1;
                let s = sel[d].sub(r.clone());
                AxisSel {
                    start: s.start - grid.axes()[d].range(idx[d]).start,
                    step: s.step,
                    len: s.len,
                }
            })
            .collect()
    };
    let piece = |idx: &[u64], part: &[AxisSel], got: Got| -> Block {
        let whole = part.iter().zip(grid.axes()).zip(idx).all(|((s, ax), &c)| {
            let r = ax.range(c);
            s.step == 1 && s.start == 0 && s.len == r.end - r.start
        });
        match got {
            Got::Part(b) => b,
            Got::Whole(b) if whole => Arc::try_unwrap(b).unwrap_or_else(|shared| (*shared).clone()),
            Got::Whole(b) => extract(&b, part),
        }
    };
    let mut odo = vec![0usize; counts.len()];
    if counts.iter().all(|&c| c == 1) {
        let idx: Vec<u64> = per_axis.iter().map(|v| v[0].0).collect();
        let part = local(&idx, &odo);
        let got = get(&idx, &part)?;
        return Ok(piece(&idx, &part, got));
    }
    let mut out = Block::zeros(dtype, &shape);
    loop {
        let idx: Vec<u64> = odo
            .iter()
            .enumerate()
            .map(|(d, &i)| per_axis[d][i].0)
            .collect();
        let part = local(&idx, &odo);
        let got = get(&idx, &part)?;
        let p = piece(&idx, &part, got);
        let pos: Vec<Range<usize>> = (0..counts.len())
            .map(|d| {
                let r = &per_axis[d][odo[d]].1;
                r.start as usize..r.end as usize
            })
            .collect();
        place(&mut out, &pos, &p);
        // Next chunk combination (C order).
        let mut d = counts.len();
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            odo[d] += 1;
            if odo[d] < counts[d] {
                break;
            }
            odo[d] = 0;
        }
    }
}

fn nd_slice(s: &AxisSel) -> Slice {
    if s.len == 0 {
        return Slice::new(s.start as isize, Some(s.start as isize), 1);
    }
    let last = s.index(s.len - 1) as isize;
    if s.step > 0 {
        Slice::new(s.start as isize, Some(last + 1), s.step as isize)
    } else {
        Slice::new(last, Some(s.start as isize + 1), s.step as isize)
    }
}

/// Copy a strided selection out of a block (local coordinates).
pub(crate) fn extract(b: &Block, sel: &[AxisSel]) -> Block {
    with_block!(b, a, T => {
        match a.as_slice() {
            Some(data) if !sel.is_empty() => Block::from(gather(data, a.shape(), sel)),
            _ => {
                let v = a.slice_each_axis(|ax| nd_slice(&sel[ax.axis.index()]));
                Block::from(v.as_standard_layout().into_owned())
            }
        }
    })
}

/// Gather a strided selection from C-ordered `data` of `shape`: an
/// odometer over the outer axes and a tight loop (or a slice copy) along
/// the last one. ndarray's generic n-d iteration costs tens of ns per element.
fn gather<T: Copy>(data: &[T], shape: &[usize], sel: &[AxisSel]) -> ArrayD<T> {
    let nd = shape.len();
    let out_shape = sel_shape(sel);
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if n > 0 {
        let mut strides = vec![1isize; nd];
        for d in (0..nd - 1).rev() {
            strides[d] = strides[d + 1] * shape[d + 1] as isize;
        }
        let last = sel[nd - 1];
        let len = last.len as usize;
        let step = last.step as isize;
        let mut odo = vec![0u64; nd - 1];
        loop {
            let base: isize = (0..nd - 1)
                .map(|d| sel[d].index(odo[d]) as isize * strides[d])
                .sum::<isize>()
                + last.start as isize;
            if step == 1 && len >= 16 {
                out.extend_from_slice(&data[base as usize..base as usize + len]);
            } else {
                out.extend((0..len as isize).map(|i| data[(base + i * step) as usize]));
            }
            let mut d = nd - 1;
            loop {
                if d == 0 {
                    #[allow(clippy::expect_used)]
                    return ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("length matches");
                }
                d -= 1;
                odo[d] += 1;
                if odo[d] < sel[d].len {
                    break;
                }
                odo[d] = 0;
            }
        }
    }
    #[allow(clippy::expect_used)]
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("length matches")
}

/// Write `piece` into `out` at the ranges `pos`.
pub(crate) fn place(out: &mut Block, pos: &[Range<usize>], piece: &Block) {
    with_block!(out, o, T => {
        #[allow(clippy::expect_used)]
        let p = <T as crate::block::BlockElement>::as_array(piece).expect("piece has the output's dtype");
        o.slice_each_axis_mut(|ax| {
            let r = &pos[ax.axis.index()];
            Slice::new(r.start as isize, Some(r.end as isize), 1)
        })
        .assign(p);
    })
}

/// Join `pieces` along `axis` into a block of `shape` (a lone piece is
/// moved, not copied: a stack's tile one input deep is that input's block).
fn concat_blocks(
    mut pieces: Vec<Block>,
    axis: usize,
    dtype: DType,
    shape: &[usize],
) -> Result<Block> {
    if pieces.is_empty() {
        return Ok(Block::zeros(dtype, shape));
    }
    if pieces.len() == 1 {
        return Ok(pieces.swap_remove(0));
    }
    let mut out = Block::zeros(dtype, shape);
    let mut at = 0;
    for p in &pieces {
        let n = p.shape()[axis];
        let pos: Vec<Range<usize>> = shape
            .iter()
            .enumerate()
            .map(|(d, &len)| if d == axis { at..at + n } else { 0..len })
            .collect();
        place(&mut out, &pos, p);
        at += n;
    }
    Ok(out)
}

/// Counter-based random values at a selection: each row along the last
/// axis is one strided run of flat indices.
fn random_block(
    dist: crate::random::Distribution,
    seed: u64,
    full_shape: &[u64],
    sel: &[AxisSel],
) -> Block {
    let shape = sel_shape(sel);
    let n: usize = shape.iter().product();
    // Not zeroed first: the fills below write every element.
    let mut out: Vec<f64> = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    let nd = sel.len();
    if nd == 0 {
        crate::random::fill_uninit(dist, seed, 0, 1, spare);
    } else if n > 0 {
        let mut strides = vec![1u64; nd];
        for d in (0..nd - 1).rev() {
            strides[d] = strides[d + 1] * full_shape[d + 1];
        }
        let last = sel[nd - 1];
        let row = last.len as usize;
        let mut odo = vec![0u64; nd - 1];
        for chunk in spare.chunks_mut(row) {
            let base: u64 = (0..nd - 1).map(|d| sel[d].index(odo[d]) * strides[d]).sum();
            if last.step > 0 {
                crate::random::fill_uninit(dist, seed, base + last.start, last.step as u64, chunk);
            } else {
                let lo = last.index(last.len - 1);
                crate::random::fill_uninit(dist, seed, base + lo, (-last.step) as u64, chunk);
                chunk.reverse();
            }
            for d in (0..nd - 1).rev() {
                odo[d] += 1;
                if odo[d] < sel[d].len {
                    break;
                }
                odo[d] = 0;
            }
        }
    }
    // SAFETY: the fills above wrote all `n` elements (a 0-d selection is
    // one element, filled by the first branch; rows cover the rest).
    unsafe { out.set_len(n) };
    #[allow(clippy::expect_used)]
    Block::from(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("length matches"))
}

/// The input selection of a reduction for an output selection: kept axes
/// from the output, reduced axes whole. Also returns the output selection
/// that the full-`k` result must be cut to (TopK with a partial axis).
pub(crate) fn reduce_input_sel(
    x_shape: &[u64],
    axes: &[usize],
    keepdims: bool,
    out_sel: &[AxisSel],
) -> Selection {
    let mut j = 0;
    let mut in_sel = Vec::with_capacity(x_shape.len());
    for (d, &n) in x_shape.iter().enumerate() {
        if axes.contains(&d) {
            in_sel.push(AxisSel::full(n));
            if keepdims {
                j += 1;
            }
        } else {
            in_sel.push(out_sel[j]);
            j += 1;
        }
    }
    in_sel
}

/// True if evaluating `a` reads stored data (a source), as opposed to
/// generating or holding it.
pub(crate) fn has_io(a: &Array) -> bool {
    // Memory-mapped and contiguous stores read any selection directly:
    // re-reading them in small pieces costs no more than memory does.
    matches!(a.op(), Op::Source { src } if !src.supports_selection())
        || a.inputs().iter().any(|x| has_io(x))
}

/// The shortest sub-tile extent along a reduced last axis of a
/// compute-bound reduction (see [`ReduceSetup::of`]).
const MIN_LANE: u64 = 256;

/// Chunk tiles a compute-bound reduction is split into at least (when its
/// input is large enough): enough for every worker to have work, and a
/// constant, so the fold order never depends on the thread count.
const MIN_COMPUTE_TILES: u64 = 16;

/// Refine the reduced axes of `grid` so a compute-bound reduction has at
/// least [`MIN_COMPUTE_TILES`] chunk tiles (each still ≥ one sub-tile).
fn refine_for_parallelism(grid: &ChunkGrid, axes: &[usize]) -> ChunkGrid {
    let total: u64 = grid.shape().iter().product();
    let tiles: u64 = axes.iter().map(|&d| grid.axes()[d].count()).product();
    if tiles >= MIN_COMPUTE_TILES || total < MIN_COMPUTE_TILES * COMPUTE_TILE_ELEMS {
        return grid.clone();
    }
    let mut gaxes = grid.axes().to_vec();
    let mut have = tiles;
    for &d in axes {
        if have >= MIN_COMPUTE_TILES {
            break;
        }
        let ax = &gaxes[d];
        let want = MIN_COMPUTE_TILES.div_ceil(have / ax.count().max(1)).max(1);
        let k = want.div_ceil(ax.count().max(1));
        if k <= 1 || ax.max_size() < 2 {
            continue;
        }
        let sizes: Vec<u64> = ax
            .sizes()
            .into_iter()
            .flat_map(|n| {
                let k = k.min(n);
                (0..k).map(move |i| n / k + u64::from(i < n % k))
            })
            .collect();
        have = have / ax.count().max(1) * sizes.len() as u64;
        gaxes[d] = crate::grid::AxisChunks::from_sizes(&sizes);
    }
    ChunkGrid::from_axes(gaxes)
}

/// Shrink the sub-tile lengths `piece` (one per reduced axis, starting at
/// the chunk tile's lengths; `elems` is the whole chunk tile's element count)
/// so a sub-tile holds at most `limit` elements, keeping the lengths as
/// equal as the axes allow. When the kept axes alone reach `limit` nothing
/// is split: that would only add partials to merge.
fn balance_pieces(piece: &mut [u64], elems: u64, limit: u64) {
    let reduced: u64 = piece.iter().product::<u64>().max(1);
    let kept = (elems / reduced).max(1);
    if elems <= limit || kept >= limit {
        return;
    }
    let mut room = limit / kept;
    let mut order: Vec<usize> = (0..piece.len()).collect();
    order.sort_by_key(|&k| piece[k]);
    for (i, &k) in order.iter().enumerate() {
        let left = (order.len() - i) as f64;
        let mut target = (room as f64).powf(1.0 / left).floor().max(1.0) as u64;
        // Guard the float root against landing one short or over.
        while (target + 1)
            .checked_pow(left as u32)
            .is_some_and(|v| v <= room)
        {
            target += 1;
        }
        while target > 1 && target.checked_pow(left as u32).is_none_or(|v| v > room) {
            target -= 1;
        }
        piece[k] = piece[k].min(target).max(1);
        room = (room / piece[k]).max(1);
    }
}

/// How a reduction node splits its input: along the input's chunk grid on
/// the reduced axes ("chunk tiles"), and each chunk tile into sub-tiles of
/// `piece` elements per reduced axis. The split depends only on the node
/// (never on the task, thread count or budget), and partials are always
/// folded the same way — sub-tiles left to right into a chunk partial,
/// chunk partials left to right — so every schedule gives the same bits.
#[derive(Clone, Debug)]
pub(crate) struct ReduceSetup {
    pub op: reduce::ReduceOp,
    /// The reduction input (a Masked node for `x[m].sum()`).
    pub x: Array,
    /// The data grid (of the masked data for a masked input).
    pub grid: ChunkGrid,
    pub data_shape: Vec<u64>,
    pub axes: Vec<usize>,
    pub keepdims: bool,
    pub masked: bool,
    pub topk: bool,
    /// Sub-tile length per reduced axis.
    pub piece: Vec<u64>,
    /// Chunk-tile count per reduced axis.
    pub counts: Vec<u64>,
    /// Whether sub-tiles may be folded together (see [`Self::group`]).
    pub groupable: bool,
}

impl ReduceSetup {
    /// The setup of a Reduce node (`None` for any other node).
    pub(crate) fn of(node: &Array) -> Option<ReduceSetup> {
        let Op::Reduce {
            op,
            x,
            axes,
            keepdims,
        } = node.op()
        else {
            return None;
        };
        let (data, masked) = match x.op() {
            Op::Masked { x: d, .. } => (d, true),
            _ => (x, false),
        };
        let grid = if has_io(data)
            || matches!(
                op,
                reduce::ReduceOp::TopK { .. } | reduce::ReduceOp::ArgTopK { .. }
            ) {
            data.grid().clone()
        } else {
            refine_for_parallelism(data.grid(), axes)
        };
        let topk = matches!(
            op,
            reduce::ReduceOp::TopK { .. } | reduce::ReduceOp::ArgTopK { .. }
        );
        let counts: Vec<u64> = axes.iter().map(|&d| grid.axes()[d].count()).collect();
        let maxc = grid.max_chunk_shape();
        let mut setup = ReduceSetup {
            op: *op,
            x: x.clone(),
            grid,
            data_shape: data.shape().to_vec(),
            axes: axes.clone(),
            keepdims: *keepdims,
            masked,
            topk,
            piece: axes.iter().map(|&d| maxc[d].max(1)).collect(),
            counts,
            groupable: false,
        };
        // The largest chunk tile (kept axes: the largest output chunk).
        let big: Selection = maxc.iter().map(|&n| AxisSel::full(n)).collect();
        let elems: u64 = big.iter().map(|s| s.len.max(1)).product();
        if !has_io(data) {
            // Compute-bound: balanced sub-tiles. A broadcast input such as
            // `x[:, None] - x[None, :]` is extracted once per sub-tile along
            // each axis, so (181, 181) costs 50× less than (4, 7000).
            balance_pieces(&mut setup.piece, elems, COMPUTE_TILE_ELEMS);
            // A fused chain runs along the last axis: when that axis is
            // reduced, give it lanes of at least MIN_LANE and balance the
            // other reduced axes within the rest ((128, 256), not (181,
            // 181): a few more broadcast elements extracted, far fewer
            // lanes to dispatch).
            let last = data.ndim().saturating_sub(1);
            let k = axes.len().saturating_sub(1);
            let lane = MIN_LANE.min(maxc[last]);
            if axes.len() > 1 && axes[k] == last && setup.piece[k] < lane {
                for (p, &d) in setup.piece.iter_mut().zip(axes.iter()) {
                    *p = maxc[d].max(1);
                }
                setup.piece[k] = lane;
                balance_pieces(
                    &mut setup.piece[..k],
                    elems / maxc[last].max(1),
                    (COMPUTE_TILE_ELEMS / lane).max(1),
                );
            }
        } else {
            // Stored data: split the leading reduced axes first, so each
            // sub-tile reads long contiguous runs.
            let ws = estimate(x, &big);
            if ws > IO_TILE_BYTES && elems > 1 {
                let limit = (elems as u128 * IO_TILE_BYTES as u128 / ws as u128).max(1) as u64;
                let mut total = elems;
                for p in setup.piece.iter_mut() {
                    if total <= limit {
                        break;
                    }
                    let per_unit = total / *p;
                    if per_unit >= limit {
                        // Splitting this axis cannot reach the limit: it would
                        // only add partials to merge.
                        continue;
                    }
                    let want = (limit / per_unit.max(1)).max(1);
                    if want < *p {
                        total = per_unit * want;
                        *p = want;
                    }
                }
            }
        }
        setup.groupable = reduce::folds_rows(*op, data.dtype())
            && !setup.masked
            && !setup.topk
            && axes.len() < data.ndim();
        Some(setup)
    }

    /// How many sub-tiles of the input selection `in_sel` to fold together:
    /// a float sum or mean whose running sums (16 bytes per kept element)
    /// are too large for the cache, over thin sub-tiles (a stack's days
    /// reduced over time, or the three coordinates of `(d*d).sum(-1)` inside
    /// a Lennard-Jones tile), folds about [`GROUP_BYTES`] of them at once, so
    /// the sums go through memory once per group instead of once per
    /// sub-tile. Grouping never changes the bits, only the memory a tile
    /// holds (counted in [`Self::tile_bytes`]).
    pub(crate) fn group(&self, in_sel: &[AxisSel]) -> usize {
        if !self.groupable {
            return 1;
        }
        let kept: u64 = (0..in_sel.len())
            .filter(|d| !self.axes.contains(d))
            .map(|d| in_sel[d].len)
            .product();
        if kept * 16 < GROUP_MIN_SUMS_BYTES {
            return 1;
        }
        let sub = self.piece.iter().product::<u64>() * kept * self.input_dtype().size() as u64;
        (GROUP_BYTES / sub.max(1)).clamp(1, MAX_GROUP) as usize
    }

    /// Number of chunk tiles per output selection.
    pub(crate) fn num_chunk_tiles(&self) -> u64 {
        self.counts.iter().product()
    }

    /// The input selection for an output selection: kept axes from the
    /// output, reduced axes whole.
    pub(crate) fn in_sel(&self, out_sel: &[AxisSel]) -> Selection {
        if self.masked {
            return self.data_shape.iter().map(|&n| AxisSel::full(n)).collect();
        }
        if self.topk {
            let mut s: Selection = out_sel.to_vec();
            s[self.axes[0]] = AxisSel::full(self.data_shape[self.axes[0]]);
            return s;
        }
        reduce_input_sel(&self.data_shape, &self.axes, self.keepdims, out_sel)
    }

    /// Chunk tile number `c` (C order over the reduced axes) of `in_sel`.
    pub(crate) fn chunk_tile(&self, in_sel: &[AxisSel], mut c: u64) -> Selection {
        let mut t: Selection = in_sel.to_vec();
        for k in (0..self.axes.len()).rev() {
            let i = c % self.counts[k];
            c /= self.counts[k];
            t[self.axes[k]] = AxisSel::range(self.grid.axes()[self.axes[k]].range(i));
        }
        t
    }

    /// The sub-tiles of a chunk tile, in fold order.
    pub(crate) fn sub_tiles(&self, tile: &[AxisSel]) -> Vec<Selection> {
        let ranges: Vec<Vec<Range<u64>>> = self
            .axes
            .iter()
            .zip(&self.piece)
            .map(|(&d, &p)| {
                let r = tile[d].bounds();
                let mut v = Vec::new();
                let mut s = r.start;
                while s < r.end {
                    let e = (s + p).min(r.end);
                    v.push(s..e);
                    s = e;
                }
                v
            })
            .collect();
        if ranges.iter().any(|v| v.is_empty()) {
            return vec![];
        }
        let mut tiles = Vec::new();
        let mut odo = vec![0usize; self.axes.len()];
        loop {
            let mut t: Selection = tile.to_vec();
            for (k, &d) in self.axes.iter().enumerate() {
                t[d] = AxisSel::range(ranges[k][odo[k]].clone());
            }
            tiles.push(t);
            let mut k = self.axes.len();
            loop {
                if k == 0 {
                    return tiles;
                }
                k -= 1;
                odo[k] += 1;
                if odo[k] < ranges[k].len() {
                    break;
                }
                odo[k] = 0;
            }
        }
    }

    /// The fused chain of the reduction input at one sub-tile, with its
    /// leaves evaluated (in the tile's own memo), when the input heads one
    /// whose leaves take no more memory than its output (so holding it
    /// costs no more than holding the block); otherwise the chain's block.
    fn prepare_tile(&self, tile: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Option<Held>> {
        scope(|| {
            let Some(p) = crate::fuse::prepare(&self.x, tile, ctx) else {
                return Ok(None);
            };
            let p = p?;
            let out = p.shape().iter().product::<usize>() * self.x.dtype().size();
            Ok(Some(if p.leaf_bytes() <= out {
                Held::Chain(p)
            } else {
                Held::Block(p.run())
            }))
        })
    }

    /// The block (and mask) of the reduction input at one sub-tile, with
    /// the tile's own memo of shared nodes.
    fn eval_tile(
        &self,
        tile: &[AxisSel],
        ctx: &EvalCtx<'_>,
    ) -> Result<(Block, Option<ArrayD<bool>>)> {
        scope(|| match self.x.op() {
            Op::Masked { x: data, mask } => {
                let b = eval(data, tile, ctx)?;
                let m = eval(mask, tile, ctx)?.into_array::<bool>().map_err(|_| {
                    Error::UnsupportedDType {
                        op: "boolean mask",
                        dtype: DType::Bool,
                    }
                })?;
                Ok((b, Some(m)))
            }
            _ => Ok((eval(&self.x, tile, ctx)?, None)),
        })
    }
}

/// A sub-tile held for a group fold: its block, or its fused chain ready
/// to compute (leaves evaluated, output never stored whole).
enum Held {
    Block(Block),
    Chain(fused::Prepared),
}

/// Fold chunk tiles `tiles` of the input selection `in_sel` into `accs`,
/// one accumulator per reduction in `setups` (reductions of one input over
/// the same axes: the input is evaluated once per sub-tile for all).
/// Sub-tiles go left to right into [`reduce::accumulate`]. An accumulator
/// stays `None` for an empty input.
pub(crate) fn fold_tiles(
    setups: &[ReduceSetup],
    accs: &mut [Option<reduce::Partial>],
    in_sel: &[AxisSel],
    tiles: Range<u64>,
    ctx: &EvalCtx<'_>,
) -> Result<()> {
    let base = &setups[0];
    // A reduction whose fold can be read off another's (the same op, a
    // sum beside a mean, a mean beside a variance) does not fold itself.
    // Variances are looked at first, then means, so that each follows the
    // richest state it can.
    let dtype = base.input_dtype();
    let mut order: Vec<usize> = (0..setups.len()).collect();
    order.sort_by_key(|&j| reduce::lead_rank(setups[j].op));
    let mut leader: Vec<Option<usize>> = vec![None; setups.len()];
    let mut folders: Vec<usize> = Vec::new();
    for j in order {
        leader[j] = folders.iter().copied().find(|&i| {
            setups[i].axes == setups[j].axes
                && reduce::derives_from(
                    setups[j].op,
                    setups[i].op,
                    dtype,
                    setups[j].axes.len() == setups[j].data_shape.len(),
                )
        });
        if leader[j].is_none() {
            folders.push(j);
        }
    }
    // Sub-tiles are folded together in groups (each tile's values still
    // reach each element in the same order, so the bits do not depend on it).
    let group = setups.iter().map(|s| s.group(in_sel)).min().unwrap_or(1);
    let mut held: Vec<Held> = Vec::with_capacity(group);
    let mut origins: Vec<Vec<u64>> = Vec::with_capacity(group);
    let flush = |held: &mut Vec<Held>,
                 origins: &mut Vec<Vec<u64>>,
                 accs: &mut [Option<reduce::Partial>]|
     -> Result<()> {
        // Fused chains are folded as they compute, never stored whole;
        // where that is refused they are run into blocks.
        let chains: Option<Vec<&fused::Prepared>> = held
            .iter()
            .map(|h| match h {
                Held::Chain(p) => Some(p),
                Held::Block(_) => None,
            })
            .collect();
        let mut made: Vec<Option<Block>> = Vec::new();
        for ((s, acc), l) in setups.iter().zip(accs.iter_mut()).zip(&leader) {
            if l.is_some() {
                continue;
            }
            if let Some(ch) = &chains {
                if reduce::accumulate_chains(s.op, acc, ch, &s.axes)? {
                    continue;
                }
            }
            if made.is_empty() {
                made = held
                    .iter()
                    .map(|h| match h {
                        Held::Chain(p) => Some(p.to_block()),
                        Held::Block(_) => None,
                    })
                    .collect();
            }
            let blocks: Vec<&Block> = held
                .iter()
                .zip(&made)
                .filter_map(|(h, m)| match h {
                    Held::Block(b) => Some(b),
                    Held::Chain(_) => m.as_ref(),
                })
                .collect();
            reduce::accumulate_many(s.op, acc, &blocks, &s.axes, origins, &s.data_shape)?;
        }
        held.clear();
        origins.clear();
        Ok(())
    };
    let masked = matches!(base.x.op(), Op::Masked { .. });
    for c in tiles {
        for t in base.sub_tiles(&base.chunk_tile(in_sel, c)) {
            let origin: Vec<u64> = t.iter().map(|s| s.start).collect();
            if group > 1 && !masked {
                held.push(match base.prepare_tile(&t, ctx)? {
                    Some(h) => h,
                    None => Held::Block(base.eval_tile(&t, ctx)?.0),
                });
                origins.push(origin);
                if held.len() == group {
                    flush(&mut held, &mut origins, accs)?;
                }
                continue;
            }
            let (b, m) = base.eval_tile(&t, ctx)?;
            // Whatever is held goes first, to keep the order.
            flush(&mut held, &mut origins, accs)?;
            for ((s, acc), l) in setups.iter().zip(accs.iter_mut()).zip(&leader) {
                if l.is_none() {
                    reduce::accumulate(s.op, acc, &b, &s.axes, m.as_ref(), &origin, &s.data_shape)?;
                }
            }
        }
    }
    flush(&mut held, &mut origins, accs)?;
    for (j, l) in leader.iter().enumerate() {
        if let Some(i) = *l {
            accs[j] = match &accs[i] {
                Some(p) => Some(reduce::derive(setups[j].op, p)?),
                None => None,
            };
        }
    }
    Ok(())
}

impl ReduceSetup {
    /// The dtype the reduction folds (the masked data's for a masked input).
    pub(crate) fn input_dtype(&self) -> DType {
        match self.x.op() {
            Op::Masked { x, .. } => x.dtype(),
            _ => self.x.dtype(),
        }
    }

    /// The partial of an empty input (a reduction over a zero-length axis).
    pub(crate) fn empty_partial(&self, in_sel: &[AxisSel]) -> Result<reduce::Partial> {
        let dtype = self.input_dtype();
        let empty = Block::zeros(dtype, &sel_shape(in_sel));
        reduce::partial(
            self.op,
            &empty,
            &self.axes,
            None,
            &vec![0; in_sel.len()],
            &self.data_shape,
        )
    }

    /// Turn the folded partial into the output block for `out_sel`.
    pub(crate) fn finish(
        &self,
        node: &Array,
        acc: reduce::Partial,
        out_sel: &[AxisSel],
    ) -> Result<Block> {
        let out = reduce::finalize(self.op, acc)?;
        if !self.topk {
            return Ok(out.into_shape(&sel_shape(out_sel)));
        }
        let k_axis = self.axes[0];
        if out_sel[k_axis] != AxisSel::full(node.shape()[k_axis]) {
            let mut local: Selection = out
                .shape()
                .iter()
                .map(|&n| AxisSel::full(n as u64))
                .collect();
            local[k_axis] = out_sel[k_axis];
            return Ok(extract(&out, &local));
        }
        Ok(out)
    }

    /// Bytes of partial state for an output selection.
    pub(crate) fn partial_bytes(&self, out_sel: &[AxisSel]) -> u64 {
        let in_sel = self.in_sel(out_sel);
        let kept: u64 = in_sel
            .iter()
            .enumerate()
            .filter(|(d, _)| !self.axes.contains(d))
            .map(|(_, s)| s.len)
            .product();
        let dtype = self.input_dtype();
        let k = if self.topk {
            self.data_shape[self.axes[0]]
        } else {
            1
        };
        kept * k * reduce::partial_bytes_per_elem(self.op, dtype) as u64
    }

    /// Bytes one chunk tile's evaluation holds at once (one sub-tile's
    /// working set plus two partials).
    pub(crate) fn tile_bytes(&self, out_sel: &[AxisSel]) -> u64 {
        let in_sel = self.in_sel(out_sel);
        let tile = self.chunk_tile(&in_sel, 0);
        let sub = self.sub_tiles(&tile);
        let ws = sub.first().map(|t| estimate(&self.x, t)).unwrap_or(0);
        // The other sub-tiles of a group are held as evaluated blocks.
        let held = sub.first().map_or(0, |t| {
            t.iter().map(|s| s.len).product::<u64>() * self.input_dtype().size() as u64
        });
        ws + (self.group(&in_sel) as u64 - 1) * held + 2 * self.partial_bytes(out_sel)
    }
}

/// Reduction tasks wanted at least (when there are enough chunk tiles):
/// work for every worker, and a constant, so the fold never depends on the
/// thread count.
pub(crate) const MIN_REDUCE_TASKS: u64 = 64;

/// Chunk tiles folded into one partial: all of an output chunk's when
/// there are [`MIN_REDUCE_TASKS`] output chunks, else runs of them, cut so
/// that there are about that many runs. A function of the reduction's
/// shape and chunks alone: every strategy folds each run into a fresh
/// partial and merges the runs' partials left to right, so the bits never
/// depend on the thread count, the budget or the strategy. Folding runs on
/// the workers keeps the in-order merge on the calling thread short (W3a:
/// 72 merges, not 2232).
pub(crate) fn tiles_per_task(outs: u64, tiles: u64) -> u64 {
    let splits = MIN_REDUCE_TASKS
        .div_ceil(outs.max(1))
        .clamp(1, tiles.max(1));
    tiles.max(1).div_ceil(splits)
}

fn eval_reduce(node: &Array, out_sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Block> {
    #[allow(clippy::expect_used)]
    let setup = ctx.setups.of(node).expect("a reduce node");
    let in_sel = setup.in_sel(out_sel);
    let setups = std::slice::from_ref(setup.as_ref());
    // The runs of tiles the reduce strategy gives its tasks, each folded
    // afresh and merged in order: the same association, the same bits.
    let tiles = setup.num_chunk_tiles();
    let run = tiles_per_task(node.grid().num_chunks(), tiles);
    let mut acc: Option<reduce::Partial> = None;
    let mut start = 0;
    while start < tiles {
        let end = (start + run).min(tiles);
        let mut part = [None];
        fold_tiles(setups, &mut part, &in_sel, start..end, ctx)?;
        if let [Some(p)] = part {
            match acc.as_mut() {
                None => acc = Some(p),
                Some(a) => reduce::merge(setup.op, a, p)?,
            }
        }
        start = end;
    }
    let acc = match acc {
        Some(a) => a,
        None => setup.empty_partial(&in_sel)?,
    };
    setup.finish(node, acc, out_sel)
}

/// Bytes evaluating `a` at `sel` may hold at once (an upper bound: the sum
/// of every intermediate block, plus source chunks being cut).
pub(crate) fn estimate(a: &Array, sel: &[AxisSel]) -> u64 {
    let out = sel.iter().map(|s| s.len).product::<u64>() * a.dtype().size() as u64;
    match a.op() {
        Op::Source { src } => {
            if src.supports_selection() {
                out
            } else {
                (2 * out).saturating_add(src.chunk_read_bytes())
            }
        }
        Op::Memory { .. } | Op::Random { .. } | Op::Full { .. } | Op::Arange { .. } => out,
        Op::Unary { x, .. } | Op::Cast { x } | Op::Clip { x, .. } => estimate(x, sel) + out,
        Op::Binary { a: x, b: y, .. } => {
            estimate(x, &broadcast_sel(sel, x.shape()))
                + estimate(y, &broadcast_sel(sel, y.shape()))
                + out
        }
        Op::Where { cond, a: x, b: y } => {
            estimate(cond, &broadcast_sel(sel, cond.shape()))
                + estimate(x, &broadcast_sel(sel, x.shape()))
                + estimate(y, &broadcast_sel(sel, y.shape()))
                + out
        }
        Op::Reduce { .. } => match ReduceSetup::of(a) {
            Some(setup) => setup.tile_bytes(sel) + out,
            None => out,
        },
        Op::Masked { x, mask } => estimate(x, sel) + estimate(mask, sel),
        Op::Select { x, items } => estimate(x, &select_child_sel(x, items, sel)) + out,
        Op::Stack { xs, axis } => {
            let mut rest: Selection = sel.to_vec();
            rest.remove(*axis);
            let one = xs
                .iter()
                .take(2)
                .map(|x| estimate(x, &rest))
                .max()
                .unwrap_or(0);
            one + 2 * out
        }
        Op::Concat { xs, axis } => {
            let mut rest: Selection = sel.to_vec();
            rest[*axis] = AxisSel::full(
                sel[*axis]
                    .len
                    .min(xs.iter().map(|x| x.shape()[*axis]).max().unwrap_or(0)),
            );
            let one = xs
                .iter()
                .take(2)
                .map(|x| estimate(x, &rest))
                .max()
                .unwrap_or(0);
            one + 2 * out
        }
        Op::Transpose { x, perm } => {
            let mut child = vec![AxisSel::full(0); perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                child[p] = sel[j];
            }
            estimate(x, &child) + out
        }
        Op::Tri { x, .. } | Op::Rechunk { x } => estimate(x, sel) + out,
        Op::MapBlocks { xs, .. } => {
            let chunk: Selection = a
                .grid()
                .max_chunk_shape()
                .iter()
                .map(|&n| AxisSel::full(n))
                .collect();
            let c = chunk.iter().map(|s| s.len).product::<u64>() * a.dtype().size() as u64;
            xs.iter().map(|x| estimate(x, &chunk)).sum::<u64>() + 2 * c + out
        }
    }
}

/// Evaluate a masked array `x[mask]` whole: the selected elements in C
/// order, gathered band by band along the first axis.
pub(crate) fn eval_masked(x: &Array, mask: &Array, ctx: &EvalCtx<'_>) -> Result<Block> {
    let dtype = x.dtype();
    with_dtype!(dtype, T => {
        let mut out: Vec<T> = Vec::new();
        let nd = x.ndim();
        if nd == 0 {
            let (b, m) = scope(|| -> Result<_> { Ok((eval(x, &[], ctx)?, eval(mask, &[], ctx)?)) })?;
            if m.to_f64_vec().first().copied().unwrap_or(0.0) != 0.0 {
                #[allow(clippy::expect_used)]
                out.extend(b.view::<T>().expect("dtype").iter().copied());
            }
        } else {
            let ax0 = &x.grid().axes()[0];
            for c in 0..ax0.count() {
                let mut sel: Selection = x.shape().iter().map(|&n| AxisSel::full(n)).collect();
                sel[0] = AxisSel::range(ax0.range(c));
                let (b, m) =
                    scope(|| -> Result<_> { Ok((eval(x, &sel, ctx)?, eval(mask, &sel, ctx)?)) })?;
                #[allow(clippy::expect_used)]
                let (bv, mv) = (b.view::<T>().expect("dtype"), m.view::<bool>().expect("bool mask"));
                out.extend(bv.iter().zip(mv.iter()).filter(|(_, &k)| k).map(|(&v, _)| v));
            }
        }
        let n = out.len();
        #[allow(clippy::expect_used)]
        Ok(Block::from(ArrayD::from_shape_vec(IxDyn(&[n]), out).expect("1-D")))
    })
}

#[cfg(test)]
mod tests {
    use super::balance_pieces;

    #[test]
    fn balanced_pieces_fit_the_limit_and_stay_square() {
        // A (7000, 7000) chunk tile reduced over both axes: (181, 181), not (4, 7000).
        let mut p = vec![7000, 7000];
        balance_pieces(&mut p, 7000 * 7000, 1 << 15);
        assert_eq!(p, vec![181, 181]);
        // A short axis keeps its length and gives the room to the other.
        let mut p = vec![3, 20000];
        balance_pieces(&mut p, 3 * 20000, 1 << 15);
        assert_eq!(p, vec![3, 10922]);
        // Kept axes of 1000 elements leave 32 per sub-tile on the reduced axis.
        let mut p = vec![1000];
        balance_pieces(&mut p, 1000 * 1000, 1 << 15);
        assert_eq!(p, vec![32]);
        // Kept axes alone over the limit, or a tile under it: nothing is split.
        let mut p = vec![10];
        balance_pieces(&mut p, 10 * 100_000, 1 << 15);
        assert_eq!(p, vec![10]);
        let mut p = vec![100, 100];
        balance_pieces(&mut p, 10_000, 1 << 15);
        assert_eq!(p, vec![100, 100]);
        // Three axes: the product never exceeds the limit.
        let mut p = vec![500, 600, 700];
        balance_pieces(&mut p, 500 * 600 * 700, 1 << 15);
        assert!(p.iter().product::<u64>() <= 1 << 15, "{p:?}");
        assert!(p.iter().all(|&n| (30..=33).contains(&n)), "{p:?}");
    }
}
