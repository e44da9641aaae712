//! What evaluating a node costs before it runs: whether it reads stored
//! data ([`has_io`]) and the bytes it may hold at once ([`estimate`]).

use std::collections::HashSet;

use crate::array::{Array, Op};
use crate::grid::{AxisSel, Selection};

use super::{broadcast_sel, select_child_sel, ReduceSetup};

/// True if evaluating `a` reads stored data (a source), as opposed to
/// generating or holding it. Known at construction ([`Node::io`](crate::array::Node)),
/// so asking costs nothing however much of the graph is shared.
pub(crate) fn has_io(a: &Array) -> bool {
    a.0.io
}

/// Bytes evaluating `a` at `sel` may hold at once (an upper bound: the sum
/// of every intermediate block, plus source chunks being cut). A node
/// used several times at one selection is evaluated once per tile (the
/// tile's memo keeps its block for the other uses), so it is counted once:
/// the walk visits each (node, selection) once, whatever the sharing.
pub(crate) fn estimate(a: &Array, sel: &[AxisSel]) -> u64 {
    walk(a, sel, &mut HashSet::new())
}

fn walk(a: &Array, sel: &[AxisSel], seen: &mut HashSet<(u64, Selection)>) -> u64 {
    if !seen.insert((a.id(), sel.to_vec())) {
        return 0;
    }
    let elems = sel.iter().fold(1u64, |n, s| n.saturating_mul(s.len));
    let out = elems.saturating_mul(a.dtype().size() as u64);
    let mut est = |x: &Array, sel: &[AxisSel]| walk(x, sel, seen);
    match a.op() {
        Op::Source { src } => {
            if src.supports_selection() {
                out
            } else {
                out.saturating_mul(2).saturating_add(src.chunk_read_bytes())
            }
        }
        Op::Memory { .. } | Op::Random { .. } | Op::Full { .. } | Op::Arange { .. } => out,
        Op::Unary { x, .. } | Op::Cast { x } | Op::Clip { x, .. } => {
            est(x, sel).saturating_add(out)
        }
        Op::Binary { a: x, b: y, .. } => est(x, &broadcast_sel(sel, x.shape()))
            .saturating_add(est(y, &broadcast_sel(sel, y.shape())))
            .saturating_add(out),
        Op::Where { cond, a: x, b: y } => est(cond, &broadcast_sel(sel, cond.shape()))
            .saturating_add(est(x, &broadcast_sel(sel, x.shape())))
            .saturating_add(est(y, &broadcast_sel(sel, y.shape())))
            .saturating_add(out),
        Op::Reduce { .. } => match ReduceSetup::of(a) {
            Some(setup) => setup.tile_bytes(sel).saturating_add(out),
            None => out,
        },
        Op::Masked { x, mask } => est(x, sel).saturating_add(est(mask, sel)),
        Op::Select { x, items } => est(x, &select_child_sel(x, items, sel)).saturating_add(out),
        Op::Stack { xs, axis } => {
            let mut rest: Selection = sel.to_vec();
            rest.remove(*axis);
            // The inputs are evaluated one at a time: the costliest counts.
            let one = xs.iter().map(|x| est(x, &rest)).max().unwrap_or(0);
            one.saturating_add(out.saturating_mul(2))
        }
        Op::Concat { xs, axis } => {
            let mut rest: Selection = sel.to_vec();
            rest[*axis] = AxisSel::full(
                sel[*axis]
                    .len
                    .min(xs.iter().map(|x| x.shape()[*axis]).max().unwrap_or(0)),
            );
            let one = xs.iter().map(|x| est(x, &rest)).max().unwrap_or(0);
            one.saturating_add(out.saturating_mul(2))
        }
        Op::Transpose { x, perm } => {
            let mut child = vec![AxisSel::full(0); perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                child[p] = sel[j];
            }
            est(x, &child).saturating_add(out)
        }
        Op::Tri { x, .. } | Op::Rechunk { x } => est(x, sel).saturating_add(out),
        // One output chunk's input block at a time, its piece, and the result.
        Op::Reshape { x, read } => {
            let input = super::reshape::estimate_reshape(read);
            est(x, &input).saturating_add(out.saturating_mul(2))
        }
        Op::Scan { x, axis, carry, .. } => {
            // One chunk of `x` along the axis at a time, cumulated in
            // place, its running total, its piece, and the result.
            let slab = super::scan::slab(x, *axis, sel);
            let mut total = est(x, &slab).saturating_add(out.saturating_mul(2));
            if let Some(c) = carry {
                let mut one: Selection = sel.to_vec();
                one[*axis] = AxisSel::range(0..1);
                total = total.saturating_add(est(c, &one));
            }
            total
        }
        Op::ScanCarry { x, axis, .. } => {
            // One chunk of `x` along the axis at a time and the running
            // totals beside the result.
            let mut slab: Selection = sel.to_vec();
            slab[*axis] = AxisSel::full(x.grid().axes()[*axis].max_size());
            let totals = slab
                .iter()
                .enumerate()
                .filter(|(d, _)| d != axis)
                .fold(1u64, |n, (_, s)| n.saturating_mul(s.len))
                .saturating_mul(a.dtype().size() as u64);
            est(x, &slab)
                .saturating_add(out)
                .saturating_add(totals.saturating_mul(2))
        }
        Op::MapBlocks { xs, map, .. } => {
            // The largest input region a call gets: the inputs' largest
            // chunk, whole along dropped axes.
            let g = xs[0].grid();
            let region: Selection = g
                .max_chunk_shape()
                .iter()
                .enumerate()
                .map(|(d, &n)| {
                    AxisSel::full(if map.dropped.contains(&d) {
                        g.shape()[d]
                    } else {
                        n
                    })
                })
                .collect();
            let c = a
                .grid()
                .max_chunk_shape()
                .iter()
                .fold(1u64, |n, &s| n.saturating_mul(s))
                .saturating_mul(a.dtype().size() as u64);
            xs.iter()
                .fold(0u64, |t, x| t.saturating_add(est(x, &region)))
                .saturating_add(c.saturating_mul(2))
                .saturating_add(out)
        }
    }
}
