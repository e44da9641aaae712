//! Evaluating a reshape ([`Op::Reshape`](crate::array::Op)) over any
//! strided selection, reading only the input block it needs.
//!
//! The axes of both shapes fall into groups that hold the same elements
//! (`reshape::groups`: `(2, 3, 4) -> (6, 4)` has `{0, 1} -> {0}` and
//! `{2} -> {1}`). Within a group an element is its C-order position. A
//! piece of the output (the part of one output chunk a selection wants)
//! touches positions between a least and a greatest per group; the input
//! block covering them is a run of whole rows of the group's inner axes
//! (a "box"), read with one `eval` of the input. The box, seen as one
//! axis per group, is then indexed by the wanted positions; when the
//! piece is a whole output chunk of Dask's chunking the box is exactly its
//! elements, in order, and the block is only given its new shape.
//!
//! Pieces are evaluated one output chunk at a time ([`gather_chunks`]),
//! so a task holds at most one chunk's box besides its result, as
//! [`estimate_reshape`] counts it.

use crate::array::{reshape_groups, Array, Group};
use crate::block::Block;
use crate::error::Result;
use crate::grid::{sel_shape, AxisSel, Selection};
use crate::with_block;

use super::gather::{gather_chunks, Got};
use super::{eval, EvalCtx};

/// What a piece of the output reads: the input box, and per group the
/// wanted positions relative to the box's first, in the output's C order.
struct Read {
    sel: Selection,
    /// Box length per group.
    lens: Vec<usize>,
    /// Wanted positions per group.
    offsets: Vec<Vec<usize>>,
}

/// The block of the reshape node `a` (of input `x`) at `sel`.
pub(crate) fn eval_reshape(
    a: &Array,
    x: &Array,
    sel: &[AxisSel],
    ctx: &EvalCtx<'_>,
) -> Result<Block> {
    let grid = a.grid();
    gather_chunks(grid, a.dtype(), sel, |idx, part| {
        let region = grid.chunk_region(idx);
        let abs: Selection = part
            .iter()
            .zip(&region)
            .map(|(p, r)| AxisSel {
                start: p.start + r.start,
                ..*p
            })
            .collect();
        piece(a, x, &abs, ctx).map(Got::Part)
    })
}

/// One piece of the output at `sel` (absolute output coordinates).
fn piece(a: &Array, x: &Array, sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Block> {
    let shape = sel_shape(sel);
    if shape.contains(&0) {
        return Ok(Block::zeros(a.dtype(), &shape));
    }
    let groups = reshape_groups(x.shape(), a.shape());
    let read = plan_read(x.shape(), a.shape(), &groups, sel, true);
    let b = eval(x, &read.sel, ctx)?;
    // A whole box, in order: only the shape changes.
    if read
        .offsets
        .iter()
        .zip(&read.lens)
        .all(|(o, &l)| o.len() == l && o.windows(2).all(|w| w[0] < w[1]))
    {
        return Ok(b.into_shape(&shape));
    }
    Ok(take(b.into_standard_layout(), &read, &shape))
}

/// The input box for the output selection `sel`, and (with `offsets`) the
/// positions each group wants from it.
fn plan_read(
    inshape: &[u64],
    outshape: &[u64],
    groups: &[Group],
    sel: &[AxisSel],
    offsets: bool,
) -> Read {
    let mut box_sel: Selection = inshape.iter().map(|&n| AxisSel::full(n)).collect();
    let mut lens = Vec::with_capacity(groups.len());
    let mut offs = Vec::with_capacity(groups.len());
    for g in groups {
        // Least and greatest C-order position of the group the piece touches.
        let (mut lo, mut hi, mut stride) = (0u64, 0u64, 1u64);
        for &o in g.outs.iter().rev() {
            let b = sel[o].bounds();
            lo += stride * b.start;
            hi += stride * (b.end - 1);
            stride *= outshape[o];
        }
        // The box: the run of whole inner rows from `lo` to `hi`.
        let dims: Vec<u64> = g.ins.iter().map(|&d| inshape[d]).collect();
        let (a, b) = (unravel(lo, &dims), unravel(hi, &dims));
        let split = (0..dims.len())
            .find(|&k| a[k] != b[k])
            .unwrap_or(dims.len());
        let mut first = 0u64;
        let mut inner = 1u64;
        let mut len = 1u64;
        for k in (0..dims.len()).rev() {
            let s = if k < split {
                AxisSel::range(a[k]..a[k] + 1)
            } else if k == split {
                AxisSel::range(a[k]..b[k] + 1)
            } else {
                AxisSel::full(dims[k])
            };
            first += s.start * inner;
            inner *= dims[k];
            len *= s.len;
            box_sel[g.ins[k]] = s;
        }
        lens.push(len as usize);
        if offsets {
            let mut v: Vec<u64> = vec![0];
            let mut stride = 1u64;
            let mut strides = vec![0u64; g.outs.len()];
            for (k, &o) in g.outs.iter().enumerate().rev() {
                strides[k] = stride;
                stride *= outshape[o];
            }
            for (k, &o) in g.outs.iter().enumerate() {
                let (s, st) = (sel[o], strides[k]);
                v = v
                    .iter()
                    .flat_map(|&p| (0..s.len).map(move |i| p + st * s.index(i)))
                    .collect();
            }
            offs.push(v.into_iter().map(|p| (p - first) as usize).collect());
        }
    }
    Read {
        sel: box_sel,
        lens,
        offsets: offs,
    }
}

/// C-order coordinates of position `p` over `dims`.
fn unravel(mut p: u64, dims: &[u64]) -> Vec<u64> {
    let mut out = vec![0; dims.len()];
    for k in (0..dims.len()).rev() {
        out[k] = p % dims[k];
        p /= dims[k];
    }
    out
}

/// The wanted positions of a box (one axis per group), in a block of `shape`.
fn take(b: Block, read: &Read, shape: &[usize]) -> Block {
    with_block!(b, arr, T => {
        #[allow(clippy::expect_used)]
        let data = arr.as_slice().expect("standard layout");
        let k = read.lens.len();
        let mut strides = vec![1usize; k];
        for g in (0..k.saturating_sub(1)).rev() {
            strides[g] = strides[g + 1] * read.lens[g + 1];
        }
        let n: usize = read.offsets.iter().map(|o| o.len()).product();
        let mut out: Vec<T> = Vec::with_capacity(n);
        if k == 0 {
            out.extend(data.iter().take(1).copied());
        } else {
            let last = &read.offsets[k - 1];
            let mut odo = vec![0usize; k - 1];
            'rows: loop {
                let base: usize = (0..k - 1).map(|g| read.offsets[g][odo[g]] * strides[g]).sum();
                out.extend(last.iter().map(|&p| data[base + p]));
                let mut g = k - 1;
                loop {
                    if g == 0 {
                        break 'rows;
                    }
                    g -= 1;
                    odo[g] += 1;
                    if odo[g] < read.offsets[g].len() {
                        break;
                    }
                    odo[g] = 0;
                }
            }
        }
        #[allow(clippy::expect_used)]
        Block::from(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), out).expect("length matches"))
    })
}

/// The input selection to reserve for evaluating the reshape `a` (of `x`)
/// at any selection: the largest box of any output chunk (`read`), a
/// bound that does not depend on where the selection lies, so a task's
/// reservation is never more than the plan's.
pub(crate) fn estimate_reshape(read: &[u64]) -> Selection {
    read.iter().map(|&n| AxisSel::full(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Chunks;
    use crate::grid::region_sel;
    use crate::DType;

    /// A whole output chunk reads exactly its own elements, within `read`,
    /// for Dask's chunkings and for the groups Dask refuses.
    #[test]
    fn a_whole_output_chunk_reads_exactly_its_block() {
        let cases: [(&[u64], &[u64], &[i64]); 9] = [
            (&[4, 6], &[2, 3], &[24]),
            (&[24], &[5], &[4, 6]),
            (&[2, 3, 4], &[1, 2, 2], &[6, 4]),
            (&[8, 6, 4], &[3, 2, 4], &[8, 24]),
            (&[100, 100], &[30, 40], &[10000]),
            (&[5, 7, 3], &[2, 3, 2], &[35, 3]),
            (&[6, 4], &[2, 2], &[4, 6]),
            (&[4, 6], &[2, 3], &[3, 8]),
            (&[12, 10], &[5, 10], &[10, 12]),
        ];
        for (shape, c, out) in cases {
            let x = crate::array::zeros(shape, DType::F64, Chunks::from(c)).unwrap();
            let a = x.reshape(out).unwrap();
            let crate::array::Op::Reshape { read, .. } = a.op() else {
                panic!("{out:?} is a reshape node");
            };
            let groups = reshape_groups(x.shape(), a.shape());
            for n in 0..a.grid().num_chunks() {
                let sel = region_sel(&a.grid().chunk_region(&a.grid().unravel(n)));
                let r = plan_read(x.shape(), a.shape(), &groups, &sel, false);
                let elems: u64 = r.sel.iter().map(|s| s.len).product();
                let want: u64 = sel.iter().map(|s| s.len).product();
                assert_eq!(elems, want, "{shape:?} {c:?} -> {out:?} chunk {n}");
                assert!(r.sel.iter().zip(read).all(|(s, &m)| s.len <= m));
            }
        }
    }
}
