//! Assembling a selection from chunks and blocks: gathering the touched
//! chunks of a stored array, cutting strided selections out of blocks,
//! placing pieces and joining them along an axis.

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, Slice};

use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;
use crate::grid::{sel_shape, AxisSel, ChunkGrid, Selection};
use crate::with_block;

/// A chunk as [`gather_chunks`]'s `get` hands it over: the whole chunk
/// (possibly shared), or just the part that was asked for.
pub(super) enum Got {
    Whole(Arc<Block>),
    Part(Block),
}

/// Assemble `sel` of an array stored in chunks of `grid`, fetching each
/// touched chunk with `get(idx, part)`, where `part` is the selection
/// wanted from it, relative to the chunk's origin. A selection within one
/// chunk is returned as that chunk's piece, with no copy when `get` hands
/// over the part, or the whole chunk unshared.
pub(super) fn gather_chunks(
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
pub(super) fn concat_blocks(
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
