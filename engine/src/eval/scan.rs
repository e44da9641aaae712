//! Evaluating cumulative reductions ([`Op::Scan`](crate::array::Op) and
//! its carry) over any strided selection, one input chunk along the axis
//! at a time.
//!
//! A scan's selection is cut at the input's chunks along the axis. For
//! each chunk it touches, the input is read from the chunk's start to the
//! last index wanted there, cumulated in place, combined with the
//! chunk's running total (the carry at that chunk, `x`'s other axes as
//! selected) and cut to the wanted indices. The carry's evaluation folds
//! chunks `0..c` along the axis, one at a time, into running totals that
//! start at the identity. Both are Dask's `cumreduction` in the same order
//! of operations, so the bits depend only on the chunking along the axis.

use crate::array::Array;
use crate::block::Block;
use crate::error::Result;
use crate::grid::{sel_shape, AxisSel, Selection};
use crate::kernels::scan::{self, ScanOp};

use super::gather::{concat_blocks, extract};
use super::{eval, EvalCtx};

/// The input selection a scan of `x` along `axis` holds at once for the
/// output selection `sel`: the largest chunk along the axis, wherever
/// `sel` lies (a bound that does not depend on the position, so a task's
/// reservation is never more than the plan's).
pub(crate) fn slab(x: &Array, axis: usize, sel: &[AxisSel]) -> Selection {
    let mut out = sel.to_vec();
    out[axis] = AxisSel::full(x.grid().axes()[axis].max_size());
    out
}

/// The scan of `x` (in the result dtype) along `axis` at `sel`.
pub(crate) fn eval_scan(
    op: ScanOp,
    x: &Array,
    axis: usize,
    carry: Option<&Array>,
    sel: &[AxisSel],
    ctx: &EvalCtx<'_>,
) -> Result<Block> {
    let shape = sel_shape(sel);
    let s = sel[axis];
    let ax = &x.grid().axes()[axis];
    if shape.contains(&0) {
        return Ok(Block::zeros(x.dtype(), &shape));
    }
    // Pieces in output order (positions ascending).
    let mut pieces: Vec<(u64, Block)> = Vec::new();
    for c in ax.chunks_overlapping(&s.bounds()) {
        let r = ax.range(c);
        let pos = s.intersect(&r);
        if pos.end <= pos.start {
            continue;
        }
        let want = s.sub(pos.clone());
        let hi = want.bounds().end;
        let mut part: Selection = sel.to_vec();
        part[axis] = AxisSel::range(r.start..hi);
        let mut b = eval(x, &part, ctx)?.into_standard_layout();
        scan::cumulate(op, &mut b, axis);
        if let (Some(carry), true) = (carry, c > 0) {
            let mut at: Selection = sel.to_vec();
            at[axis] = AxisSel::range(c..c + 1);
            let k = eval(carry, &at, ctx)?;
            scan::combine(op, &mut b, &k, axis);
        }
        // The wanted indices, relative to the chunk's start.
        let local = AxisSel {
            start: want.start - r.start,
            ..want
        };
        let whole = local.step == 1 && local.start == 0 && local.len == hi - r.start;
        let piece = if whole {
            b
        } else {
            let mut cut: Selection = b.shape().iter().map(|&n| AxisSel::full(n as u64)).collect();
            cut[axis] = local;
            extract(&b, &cut)
        };
        pieces.push((pos.start, piece));
    }
    pieces.sort_by_key(|p| p.0);
    concat_blocks(
        pieces.into_iter().map(|p| p.1).collect(),
        axis,
        x.dtype(),
        &shape,
    )
}

/// The carry node `a` of a scan of `x` along `axis` at `sel`: for each
/// selected chunk `c`, the identity folded with the totals of chunks
/// `0..c`, reading those chunks one at a time.
pub(crate) fn eval_carry(
    op: ScanOp,
    a: &Array,
    x: &Array,
    axis: usize,
    sel: &[AxisSel],
    ctx: &EvalCtx<'_>,
) -> Result<Block> {
    let shape = sel_shape(sel);
    let mut out = Block::zeros(a.dtype(), &shape);
    if shape.contains(&0) {
        return Ok(out);
    }
    let s = sel[axis];
    let ax = &x.grid().axes()[axis];
    let mut one = shape.clone();
    one[axis] = 1;
    let mut acc = Block::full(a.dtype(), &one, op.identity());
    let last = s.bounds().end - 1;
    for c in 0..=last {
        let pos = s.intersect(&(c..c + 1));
        for p in pos {
            let at: Vec<std::ops::Range<usize>> = shape
                .iter()
                .enumerate()
                .map(|(d, &n)| {
                    if d == axis {
                        p as usize..p as usize + 1
                    } else {
                        0..n
                    }
                })
                .collect();
            super::place(&mut out, &at, &acc);
        }
        if c < last {
            let mut part: Selection = sel.to_vec();
            part[axis] = AxisSel::range(ax.range(c));
            let b = eval(x, &part, ctx)?;
            scan::fold_total(op, &mut acc, b, axis);
        }
    }
    Ok(out)
}
