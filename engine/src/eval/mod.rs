//! Evaluating a node over a strided selection: the engine's inner loop.
//!
//! `eval(a, sel, ctx)` returns the block of `a` at `sel` (one [`AxisSel`]
//! per axis), asking its inputs for exactly the selections they must
//! provide. Selections pass *through* elementwise nodes, slices, stacks and
//! transposes unchanged in size (a reshape reads the input block behind
//! each output chunk it touches, `reshape.rs`), so a strided slice at the top reaches the
//! generator or the store at the bottom (`random(...)[:, ::100]` generates
//! one column in a hundred). Reductions consume their input tile by tile
//! (see [`reduce_tiles`]) and never hold more than one tile of it.
//!
//! Everything here runs inside one task on one worker thread; the executor
//! has already reserved the task's working set (see [`estimate`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::array::{Array, Op, SelItem};
use crate::block::Block;
use crate::cache::ChunkCache;
use crate::error::{Error, Result};
use crate::grid::{sel_shape, AxisSel, ChunkIndex, Selection};
use crate::kernels::elementwise;
use crate::plan::Reuse;
use crate::readahead::ReadAhead;
use crate::{with_block, with_dtype};

mod estimate;
mod gather;
mod reshape;
mod scan;
mod tiles;

pub(crate) use estimate::{estimate, has_io};
use gather::{concat_blocks, gather_chunks, Got};
pub(crate) use gather::{extract, place};
use tiles::eval_reduce;
pub(crate) use tiles::{fold_tiles, tiles_per_task, ReduceSetup, MIN_REDUCE_TASKS};

/// Elements per tile for reductions over generated (I/O-free) inputs: small
/// enough that a fused chain's intermediates stay in the L2 cache.
pub(crate) const COMPUTE_TILE_ELEMS: u64 = 1 << 15;
/// Working-set bytes above which a reduction over stored data is split
/// into sub-tiles (reading chunks through the cache).
pub(crate) const IO_TILE_BYTES: u64 = 32 << 20;

/// What a task needs to evaluate nodes.
pub(crate) struct EvalCtx<'a> {
    pub cache: &'a ChunkCache,
    /// Sources whose chunks go through the cache (read more than once), and
    /// nodes whose blocks are kept for their other uses in the same tile.
    pub reuse: &'a Reuse,
    pub cancel: &'a AtomicBool,
    /// The tiling of each reduction the job evaluates inside its tasks.
    pub setups: &'a Setups,
    /// Chunks read ahead of the tasks, for a job over latency-bound sources.
    pub readahead: Option<&'a ReadAhead<'a>>,
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
            let read = |idx: &[u64]| match ctx.readahead {
                Some(ra) => ra.read(id, src.as_ref(), idx),
                None => src.read_chunk(idx),
            };
            gather_chunks(src.grid(), a.dtype(), sel, |idx, part| {
                // A part the source reads in place (a mapped, unfiltered
                // chunk) costs no more than cutting it from a cached chunk.
                if let Some(p) = src.read_chunk_part(idx, part) {
                    return p.map(Got::Part);
                }
                if ctx.reuse.sources.contains(&id) {
                    // Read again by other tiles: whole chunks, through the cache.
                    ctx.cache.get_or_load(id, idx, || read(idx)).map(Got::Whole)
                } else {
                    read(idx).map(|b| Got::Whole(Arc::new(b)))
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
        Op::MapBlocks { xs, f, name, map } => {
            let grid = a.grid().clone();
            let dtype = a.dtype();
            gather_chunks(&grid, dtype, sel, |idx, _| {
                let region = crate::grid::region_sel(&map.input_region(xs[0].grid(), idx));
                let inputs = xs
                    .iter()
                    .map(|x| eval(x, &region, ctx))
                    .collect::<Result<Vec<_>>>()?;
                let out = f(&inputs).map_err(|e| Error::Kernel {
                    chunk: ChunkIndex(idx.to_vec()),
                    message: format!("{name}: {e}"),
                })?;
                let want: Vec<usize> = grid.chunk_shape(idx).iter().map(|&n| n as usize).collect();
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
        Op::Reshape { x, .. } => reshape::eval_reshape(a, x, sel, ctx),
        Op::Scan {
            op, x, axis, carry, ..
        } => scan::eval_scan(*op, x, *axis, carry.as_ref(), sel, ctx),
        Op::ScanCarry { op, x, axis } => scan::eval_carry(*op, a, x, *axis, sel, ctx),
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

/// Evaluate a masked array `x[mask]` whole: the selected elements in C
/// order, gathered band by band along the first axis.
pub(crate) fn eval_masked(x: &Array, mask: &Array, ctx: &EvalCtx<'_>) -> Result<Block> {
    let dtype = x.dtype();
    with_dtype!(dtype, T => {
        // Room for every element up front (the caller reserved
        // `x.nbytes()` for the result): growing by doubling would hold up
        // to twice that while it copies. Its unused tail goes at the end.
        let mut out: Vec<T> = Vec::with_capacity(x.size() as usize);
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
        out.shrink_to_fit();
        #[allow(clippy::expect_used)]
        Ok(Block::from(ArrayD::from_shape_vec(IxDyn(&[n]), out).expect("1-D")))
    })
}
