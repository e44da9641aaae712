//! What evaluating a node costs before it runs: whether it reads stored
//! data ([`has_io`]) and the bytes it may hold at once ([`estimate`]).

use crate::array::{Array, Op};
use crate::grid::{AxisSel, Selection};

use super::{broadcast_sel, select_child_sel, ReduceSetup};

/// True if evaluating `a` reads stored data (a source), as opposed to
/// generating or holding it.
pub(crate) fn has_io(a: &Array) -> bool {
    // Memory-mapped and contiguous stores read any selection directly:
    // re-reading them in small pieces costs no more than memory does.
    matches!(a.op(), Op::Source { src } if !src.supports_selection())
        || a.inputs().iter().any(|x| has_io(x))
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
