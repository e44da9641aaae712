//! Reductions inside a task: how a reduction node splits its input into
//! chunk tiles and sub-tiles ([`ReduceSetup`], a fact of the node), and the
//! left-to-right fold of those tiles into partials.

use std::ops::Range;

use ndarray::ArrayD;

use crate::array::{Array, Op};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{sel_shape, AxisSel, ChunkGrid, Selection};
use crate::kernels::{fused, reduce};

use super::{estimate, eval, extract, has_io, scope, EvalCtx, COMPUTE_TILE_ELEMS, IO_TILE_BYTES};

/// Sub-tile bytes a float sum or mean folds together (see
/// [`ReduceSetup::fold_group`]), at most [`MAX_GROUP`] sub-tiles.
const GROUP_BYTES: u64 = 4 << 20;
const MAX_GROUP: u64 = 16;
/// Running-sum bytes from which folding sub-tiles together pays: about
/// half a core's L2.
const GROUP_MIN_SUMS_BYTES: u64 = 256 << 10;

/// The input selection of a reduction for an output selection: kept axes
/// from the output, reduced axes whole. Also returns the output selection
/// that the full-`k` result must be cut to (TopK with a partial axis).
fn reduce_input_sel(
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
            // (A 0-d input has no last axis and nothing to balance.)
            let lane = maxc.get(last).map_or(1, |&m| MIN_LANE.min(m));
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
            if self.counts[k] == 0 {
                // An empty axis has no chunks: its (only) tile is empty.
                t[self.axes[k]] = AxisSel::range(0..0);
                continue;
            }
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

pub(super) fn eval_reduce(node: &Array, out_sel: &[AxisSel], ctx: &EvalCtx<'_>) -> Result<Block> {
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
