//! Reduction kernels: `partial` per tile, `merge` of neighbouring partials,
//! `finalize` into the result [`Block`].
//!
//! The executor splits a reduction's input along the reduced axes into tiles
//! in a fixed order, calls [`partial`] on each, folds them with [`merge`]
//! (`next` always follows `acc` in input order; folds may be trees of a
//! fixed shape) and calls [`finalize`]. Invariants this module keeps:
//!
//! - **Shape.** A partial's kept shape is the tile shape with the reduced
//!   axes removed (no keepdims). `TopK`/`ArgTopK` reduce exactly one axis and
//!   their result keeps it, with its length replaced by `|k|`, at the same
//!   position.
//! - **Determinism.** A partial depends only on its tile; merging is a fixed
//!   sequence of floating-point operations. The same tiles folded in the
//!   same shape give the same bits, whatever the threads.
//! - **Accuracy.** Float sums run in f64 with compensation (see
//!   [`layout`]): pairwise blocks Neumaier-combined for contiguous runs,
//!   Neumaier per element for row accumulation, compensated merges. f32
//!   input is summed in f64 and cast once at the end. Integer sums and
//!   products wrap in i64/u64 as NumPy's do; integer means sum exactly in
//!   i128. Variance: each tile by the corrected two-pass formula, tiles
//!   combined with Chan et al.'s parallel formula over `(count, sum, M2)`.
//! - **NaN.** As NumPy: `Sum`/`Mean`/`Var`/`Min`/`Max` propagate NaN, the
//!   `Nan*` ops ignore it (all-NaN gives NaN, `NanSum` gives 0), `ArgMin`/
//!   `ArgMax` return the first NaN's index.
//! - **Indexes.** `ArgMin`/`ArgMax` return global indexes: along the reduced
//!   axis, or the C-order flat index over the reduced axes of the full input
//!   (all axes: NumPy's `argmax(axis=None)`). Ties go to the lower index.
//!   Under a mask the index is the position in the masked 1-D array, which
//!   needs every tile to be a contiguous C-order range of the input.

mod layout;
#[cfg(target_arch = "x86_64")]
mod simd;
mod tile;
mod topk;

#[cfg(test)]
mod tests;

use ndarray::ArrayD;

use self::layout::{neumaier, resolve, Num, Plan};
use self::tile::Moments;
use self::topk::Candidates;
use super::elementwise::Float;
use super::fused::{Prepared, Ready};
use crate::block::{Block, BlockElement};
use crate::dtype::{DType, Kind};
use crate::error::{Error, Result};

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Prod,
    Mean,
    Var {
        ddof: u32,
    },
    Std {
        ddof: u32,
    },
    Min,
    Max,
    ArgMin,
    ArgMax,
    Any,
    All,
    CountNonzero,
    NanSum,
    NanMean,
    NanVar {
        ddof: u32,
    },
    NanStd {
        ddof: u32,
    },
    NanMin,
    NanMax,
    /// Largest `k` (k > 0, descending) or smallest `-k` (k < 0, ascending) along one axis.
    TopK {
        k: i64,
    },
    /// Indices of what `TopK` returns.
    ArgTopK {
        k: i64,
    },
}

/// The running state of a reduction over part of its input.
///
/// Opaque: made by [`partial`], combined by [`merge`], consumed by
/// [`finalize`]. It holds one accumulator per kept element (for `TopK`, up
/// to `|k|` candidates per kept element).
#[derive(Clone, Debug)]
pub struct Partial {
    op: ReduceOp,
    input: DType,
    /// The kept shape (the tile shape without the reduced axes).
    kept: Vec<usize>,
    state: State,
}

/// One accumulator per kept element, C order over the kept shape.
#[derive(Clone, Debug)]
enum State {
    /// Wrapping sums/products of bool and signed ints.
    I64(Vec<i64>),
    /// Wrapping sums/products of unsigned ints; nonzero counts.
    U64(Vec<u64>),
    /// Compensated float sums.
    FSum {
        s: Vec<f64>,
        c: Vec<f64>,
    },
    /// Float products.
    FProd(Vec<f64>),
    /// Float means: count and compensated sum.
    FMean {
        n: Vec<u64>,
        s: Vec<f64>,
        c: Vec<f64>,
        /// A count every element has beyond `n`: tiles with no NaN rule
        /// add the same count to all, so [`accumulate`] adds it here once
        /// instead of to each element.
        every: u64,
    },
    /// Bool/integer means: count and exact sum.
    IMean {
        n: Vec<u64>,
        s: Vec<i128>,
    },
    /// Variance family.
    Moments(Moments),
    /// Min/max family: the NaN-ignoring extreme (1-D block of the input
    /// dtype), elements seen, any NaN seen, any non-NaN seen.
    Extreme {
        v: Block,
        n: Vec<u64>,
        nan: Vec<bool>,
        valid: Vec<bool>,
    },
    /// Arg-extremes: best value (1-D block), its global index (-1: none), whether it
    /// is a NaN, elements seen, and under a mask the flat input range covered.
    Arg {
        v: Block,
        idx: Vec<i64>,
        nan: Vec<bool>,
        n: Vec<u64>,
        span: Option<(u64, u64)>,
    },
    /// Any / All.
    Bools(Vec<bool>),
    TopK(Candidates),
}

/// The result dtype of `op` on `input`, by NumPy's rules.
///
/// ```
/// use ndstream_engine::{kernels::reduce::result_dtype, DType, ReduceOp};
/// assert_eq!(result_dtype(ReduceOp::Sum, DType::U8).unwrap(), DType::U64);
/// assert_eq!(result_dtype(ReduceOp::Mean, DType::I32).unwrap(), DType::F64);
/// assert_eq!(result_dtype(ReduceOp::Var { ddof: 1 }, DType::F32).unwrap(), DType::F32);
/// ```
///
/// # Errors
/// None today: every reduction is defined for every dtype.
pub fn result_dtype(op: ReduceOp, input: DType) -> Result<DType> {
    use ReduceOp::*;
    Ok(match op {
        Sum | Prod | NanSum => match input.kind() {
            Kind::Bool | Kind::Signed => DType::I64,
            Kind::Unsigned => DType::U64,
            Kind::Float => input,
        },
        Mean | Var { .. } | Std { .. } | NanMean | NanVar { .. } | NanStd { .. } => {
            input.true_divide()
        }
        Min | Max | NanMin | NanMax | TopK { .. } => input,
        ArgMin | ArgMax | ArgTopK { .. } | CountNonzero => DType::I64,
        Any | All => DType::Bool,
    })
}

/// Bytes of partial state per output element (for `TopK`/`ArgTopK`: per
/// candidate kept).
pub fn partial_bytes_per_elem(op: ReduceOp, input: DType) -> usize {
    use ReduceOp::*;
    let float = input.is_float();
    match op {
        Sum | NanSum if float => 16,
        Sum | NanSum | Prod | CountNonzero => 8,
        Mean | NanMean => 24,
        Var { .. } | Std { .. } | NanVar { .. } | NanStd { .. } => 40,
        Min | Max | NanMin | NanMax => input.size() + 10,
        ArgMin | ArgMax => input.size() + 17,
        Any | All => 1,
        TopK { .. } | ArgTopK { .. } => Candidates::bytes_per_candidate(input.size()),
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid("reduce", "partial", reason)
}

/// The partial of one tile.
///
/// `block` is the tile (any dtype, any layout); `axes` the reduced axes,
/// sorted and distinct (empty: an identity reduction); `mask`, if given, has
/// the tile's shape and selects the elements that take part (only with all
/// axes reduced); `origin` is the tile's first element in the full input of
/// shape `full_shape` (used by the index-returning ops).
///
/// ```
/// use ndstream_engine::{kernels::reduce, Block, ReduceOp};
/// let a = Block::from(ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_dyn());
/// let b = Block::from(ndarray::arr2(&[[5.0f32, 6.0]]).into_dyn());
/// let op = ReduceOp::Mean;
/// let mut acc = reduce::partial(op, &a, &[0], None, &[0, 0], &[3, 2]).unwrap();
/// let next = reduce::partial(op, &b, &[0], None, &[2, 0], &[3, 2]).unwrap();
/// reduce::merge(op, &mut acc, next).unwrap();
/// assert_eq!(reduce::finalize(op, acc).unwrap().to_f64_vec(), vec![3.0, 4.0]);
/// ```
///
/// # Errors
/// Malformed arguments (axes unsorted or out of range, a mask of another
/// shape or with kept axes, `origin`/`full_shape` of another rank, `TopK`
/// with `k == 0` or not exactly one axis), or an arg-reduction under a mask
/// whose tile is not a contiguous C-order range of the input.
pub fn partial(
    op: ReduceOp,
    block: &Block,
    axes: &[usize],
    mask: Option<&ArrayD<bool>>,
    origin: &[u64],
    full_shape: &[u64],
) -> Result<Partial> {
    let shape = block.shape();
    let nd = shape.len();
    if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&d| d >= nd) {
        return Err(bad(format!(
            "axes {axes:?} must be sorted, distinct and below {nd}"
        )));
    }
    if origin.len() != nd || full_shape.len() != nd {
        return Err(bad(format!(
            "origin {origin:?} and full shape {full_shape:?} must have the tile's {nd} dimensions"
        )));
    }
    if let Some(m) = mask {
        if m.shape() != shape {
            return Err(bad(format!(
                "mask shape {:?} differs from tile shape {shape:?}",
                m.shape()
            )));
        }
        if axes.len() != nd {
            return Err(bad("a masked reduction must reduce every axis"));
        }
    }
    if let ReduceOp::TopK { k } | ReduceOp::ArgTopK { k } = op {
        if axes.len() != 1 || k == 0 {
            return Err(Error::invalid(
                "topk",
                "k",
                format!("topk needs exactly one axis and k != 0 (got axes {axes:?}, k={k})"),
            ));
        }
        if mask.is_some() {
            return Err(Error::UnknownLength { op: "topk" });
        }
        let state = crate::with_block!(block, a, T => Candidates::tile::<T>(a, axes[0], k, origin[axes[0]]));
        let kept = (0..nd)
            .filter(|d| !axes.contains(d))
            .map(|d| shape[d])
            .collect();
        return Ok(Partial {
            op,
            input: block.dtype(),
            kept,
            state: State::TopK(state),
        });
    }
    crate::with_block!(block, a, T => tile_partial::<T>(op, a, axes, mask, origin, full_shape))
}

/// Fold one more tile into `acc` (which the first tile starts): the same
/// as `merge(op, acc, partial(...))` up to rounding, but compensated sums
/// and means add the tile's elements straight into the running sums, with
/// no tile partial to fill and merge. Every other reduction merges a tile
/// partial.
///
/// # Errors
/// As [`partial`] and [`merge`].
pub fn accumulate(
    op: ReduceOp,
    acc: &mut Option<Partial>,
    block: &Block,
    axes: &[usize],
    mask: Option<&ArrayD<bool>>,
    origin: &[u64],
    full_shape: &[u64],
) -> Result<()> {
    use ReduceOp::*;
    let Some(acc) = acc.as_mut() else {
        *acc = Some(partial(op, block, axes, mask, origin, full_shape)?);
        return Ok(());
    };
    let shape = block.shape();
    let sorted = axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&d| d < shape.len());
    // A full reduction (nothing kept) merges tile partials, as the
    // moments do, so its sums can be read off a variance's (see
    // [`derives_from`]); the kept elements of an axis reduction take the
    // tile's elements straight into their running sums.
    let direct = mask.is_none()
        && axes.len() < shape.len()
        && sorted
        && acc.op == op
        && acc.input == block.dtype()
        && block.dtype().is_float()
        && matches!(op, Sum | NanSum | Mean | NanMean)
        && acc.kept.iter().copied().eq((0..shape.len())
            .filter(|d| !axes.contains(d))
            .map(|d| shape[d]));
    if !direct {
        return merge(op, acc, partial(op, block, axes, mask, origin, full_shape)?);
    }
    fn add<T: Num>(op: ReduceOp, state: &mut State, a: &ArrayD<T>, axes: &[usize]) -> Result<()> {
        let standard = a.as_standard_layout();
        let xs = standard
            .as_slice()
            .ok_or_else(|| bad("tile is not contiguous"))?;
        let plan = Plan::new(a.shape(), axes);
        let skip = matches!(op, ReduceOp::NanSum | ReduceOp::NanMean);
        let (s, c) = match state {
            State::FSum { s, c } => (s, c),
            State::FMean { n, s, c, every } => {
                if skip {
                    let valid = tile::count_valid(xs, &plan);
                    n.iter_mut().zip(valid).for_each(|(n, v)| *n += v);
                } else {
                    *every += plan.red_n as u64;
                }
                (s, c)
            }
            _ => return Err(mismatch()),
        };
        if skip {
            tile::fsum_into::<T, true>(xs, &plan, s, c);
        } else {
            tile::fsum_into::<T, false>(xs, &plan, s, c);
        }
        Ok(())
    }
    match block {
        Block::F32(a) => add(op, &mut acc.state, a, axes),
        Block::F64(a) => add(op, &mut acc.state, a, axes),
        _ => merge(op, acc, partial(op, block, axes, mask, origin, full_shape)?),
    }
}

/// [`accumulate`] of several tiles in turn, `blocks[0]` first (`origins[i]`
/// is where `blocks[i]` starts in the input). The result has the same bits.
///
/// Compensated sums and means of float tiles whose reduced axes all lie
/// outside their kept ones (the `(1, 500, 500)` days of a stack reduced
/// over axis 0: each tile is rows of all the kept elements) go through the
/// tiles' rows together, strip by strip of kept elements, so running sums
/// larger than the cache are read and written once for all the tiles
/// instead of once per tile. Each element still adds its values in the
/// same order. Everything else is [`accumulate`] per tile.
///
/// # Errors
/// As [`accumulate`].
pub fn accumulate_many(
    op: ReduceOp,
    acc: &mut Option<Partial>,
    blocks: &[&Block],
    axes: &[usize],
    origins: &[Vec<u64>],
    full_shape: &[u64],
) -> Result<()> {
    use ReduceOp::*;
    let rows_of = |b: &Block| -> Option<Plan> {
        let shape = b.shape();
        let sorted = axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&d| d < shape.len());
        let contiguous = match b {
            Block::F32(a) => a.is_standard_layout(),
            Block::F64(a) => a.is_standard_layout(),
            _ => false,
        };
        if !sorted || !contiguous || axes.len() >= shape.len() {
            return None;
        }
        let plan = Plan::new(shape, axes);
        plan.whole_rows().then_some(plan)
    };
    let first = blocks
        .first()
        .map(|b| (b.dtype(), kept_shape(b.shape(), axes)));
    let together = blocks.len() > 1
        && matches!(op, Sum | NanSum | Mean | NanMean)
        && matches!(first, Some((DType::F32 | DType::F64, _)))
        && blocks.iter().all(|b| {
            Some((b.dtype(), kept_shape(b.shape(), axes))) == first && rows_of(b).is_some()
        })
        && acc
            .as_ref()
            .is_none_or(|a| a.op == op && Some((a.input, a.kept.clone())) == first);
    if !together {
        for (b, o) in blocks.iter().zip(origins) {
            accumulate(op, acc, b, axes, None, o, full_shape)?;
        }
        return Ok(());
    }
    let (dtype, kept) = first.unwrap_or((DType::F64, vec![]));
    let kept_n: usize = kept.iter().product::<usize>().max(1);
    let rows: u64 = blocks.iter().map(|b| (b.len() / kept_n) as u64).sum();
    let (s, c, n) = together_sums(op, acc, dtype, kept, rows)?;
    let skip = matches!(op, NanSum | NanMean);
    fn go<T: Num>(
        blocks: &[&Block],
        kept_n: usize,
        skip: bool,
        s: &mut [f64],
        c: &mut [f64],
        n: Option<&mut [u64]>,
        view: impl Fn(&Block) -> Option<&[T]>,
    ) -> Result<()> {
        let mut rows: Vec<&[T]> = Vec::new();
        for b in blocks {
            let xs = view(b).ok_or_else(|| bad("tile is not contiguous"))?;
            rows.extend(xs.chunks_exact(kept_n));
        }
        if skip {
            tile::fsum_rows_into::<T, true, _>(rows.as_slice(), s, c, n);
        } else {
            tile::fsum_rows_into::<T, false, _>(rows.as_slice(), s, c, n);
        }
        Ok(())
    }
    match dtype {
        DType::F32 => go::<f32>(blocks, kept_n, skip, s, c, n, |b| match b {
            Block::F32(a) => a.as_slice(),
            _ => None,
        }),
        _ => go::<f64>(blocks, kept_n, skip, s, c, n, |b| match b {
            Block::F64(a) => a.as_slice(),
            _ => None,
        }),
    }
}

/// Running sums, their compensations, and non-NaN counts (NaN-ignoring
/// means only).
type Sums<'a> = (&'a mut [f64], &'a mut [f64], Option<&'a mut [u64]>);

/// The running sums of a sum or mean folded over whole rows (see
/// [`accumulate_many`]), set up on first use; `rows` more rows are about
/// to be added.
fn together_sums(
    op: ReduceOp,
    acc: &mut Option<Partial>,
    dtype: DType,
    kept: Vec<usize>,
    rows: u64,
) -> Result<Sums<'_>> {
    use ReduceOp::*;
    let kept_n: usize = kept.iter().product();
    let acc = acc.get_or_insert_with(|| Partial {
        op,
        input: dtype,
        kept,
        state: if matches!(op, Sum | NanSum) {
            State::FSum {
                s: vec![0.0; kept_n],
                c: vec![0.0; kept_n],
            }
        } else {
            State::FMean {
                n: vec![0; kept_n],
                s: vec![0.0; kept_n],
                c: vec![0.0; kept_n],
                every: 0,
            }
        },
    });
    let skip = matches!(op, NanSum | NanMean);
    match &mut acc.state {
        State::FSum { s, c } => Ok((s, c, None)),
        State::FMean { n, s, c, every } => {
            if skip {
                Ok((s, c, Some(n.as_mut_slice())))
            } else {
                *every += rows;
                Ok((s, c, None))
            }
        }
        _ => Err(mismatch()),
    }
}

/// [`accumulate_many`] of tiles that are fused elementwise chains, never
/// stored whole: each chain computes its rows strip by strip as the sums
/// take them. Same bits as [`accumulate_many`] of the chains' outputs.
/// Returns `false` (and adds nothing) where that would not fold the tiles
/// together: the caller runs the chains and folds their blocks.
///
/// # Errors
/// As [`accumulate`].
pub(crate) fn accumulate_chains(
    op: ReduceOp,
    acc: &mut Option<Partial>,
    tiles: &[&Prepared],
    axes: &[usize],
) -> Result<bool> {
    use ReduceOp::*;
    let dtype = match tiles.first() {
        Some(Prepared::F32(_)) => DType::F32,
        Some(Prepared::F64(_)) => DType::F64,
        None => return Ok(true),
    };
    let kept = kept_shape(tiles[0].shape(), axes);
    let whole_rows = |shape: &[usize]| {
        axes.windows(2).all(|w| w[0] < w[1])
            && axes.iter().all(|&d| d < shape.len())
            && axes.len() < shape.len()
            && Plan::new(shape, axes).whole_rows()
    };
    let together = tiles.len() > 1
        && matches!(op, Sum | NanSum | Mean | NanMean)
        && tiles.iter().all(|t| {
            (if dtype == DType::F32 {
                t.as_f32().is_some()
            } else {
                t.as_f64().is_some()
            }) && kept_shape(t.shape(), axes) == kept
                && whole_rows(t.shape())
        })
        && acc
            .as_ref()
            .is_none_or(|a| a.op == op && a.input == dtype && a.kept == kept);
    if !together {
        return Ok(false);
    }
    let kept_n: usize = kept.iter().product::<usize>().max(1);
    let rows: u64 = tiles
        .iter()
        .map(|t| (t.shape().iter().product::<usize>() / kept_n) as u64)
        .sum();
    let (s, c, n) = together_sums(op, acc, dtype, kept, rows)?;
    let skip = matches!(op, NanSum | NanMean);
    fn go<T: Num + Float>(
        readies: Vec<&Ready<T>>,
        kept_n: usize,
        skip: bool,
        s: &mut [f64],
        c: &mut [f64],
        n: Option<&mut [u64]>,
    ) {
        let rows = ChainRows {
            rows: readies
                .into_iter()
                .flat_map(|r| {
                    let count = r.len() / kept_n;
                    (0..count).map(move |i| (r, i * kept_n))
                })
                .collect(),
        };
        if skip {
            tile::fsum_rows_into::<T, true, _>(&rows, s, c, n);
        } else {
            tile::fsum_rows_into::<T, false, _>(&rows, s, c, n);
        }
    }
    match dtype {
        DType::F32 => go(
            tiles.iter().filter_map(|t| t.as_f32()).collect(),
            kept_n,
            skip,
            s,
            c,
            n,
        ),
        _ => go(
            tiles.iter().filter_map(|t| t.as_f64()).collect(),
            kept_n,
            skip,
            s,
            c,
            n,
        ),
    }
    Ok(true)
}

/// Rows of fused chains: (chain, offset of the row in its output).
struct ChainRows<'a, T> {
    rows: Vec<(&'a Ready<T>, usize)>,
}

impl<T: Float> tile::Rows<T> for ChainRows<'_, T> {
    fn count(&self) -> usize {
        self.rows.len()
    }

    fn strip<'a>(&'a self, r: usize, at: usize, buf: &'a mut [T]) -> &'a [T] {
        let (chain, base) = self.rows[r];
        chain.fill(base + at, buf);
        buf
    }
}

/// `shape` without the axes in `axes`.
fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    (0..shape.len())
        .filter(|d| !axes.contains(d))
        .map(|d| shape[d])
        .collect()
}

/// Whether the fold of `op` over some tiles can be read off the fold of
/// `leader` over the same tiles with [`derive`] (input dtype `input`;
/// `full`: every axis reduced). Float reductions with the same NaN rule
/// share their state: a variance and a standard deviation (any `ddof`)
/// keep the same moments; a sum is the compensated sum a mean keeps; and
/// in a full reduction, where sums and means merge tile partials as the
/// moments do, both are the sum and count the moments keep.
pub fn derives_from(op: ReduceOp, leader: ReduceOp, input: DType, full: bool) -> bool {
    use ReduceOp::*;
    if op == leader {
        return true;
    }
    if !input.is_float() {
        return false;
    }
    match leader {
        Var { .. } | Std { .. } => {
            matches!(op, Var { .. } | Std { .. }) || (full && matches!(op, Sum | Mean))
        }
        NanVar { .. } | NanStd { .. } => {
            matches!(op, NanVar { .. } | NanStd { .. }) || (full && matches!(op, NanSum | NanMean))
        }
        Mean => op == Sum,
        NanMean => op == NanSum,
        _ => false,
    }
}

/// The partial `op` would have folded from the tiles `leader` folded, bit
/// for bit, when [`derives_from`] says so: reductions that share an input
/// and axes fold the tiles once, so `[x.sum(), x.mean(), x.std()]` reads
/// and sums each tile once.
///
/// ```
/// use ndstream_engine::{kernels::reduce, Block, ReduceOp};
/// let a = Block::from(ndarray::arr1(&[1.0f64, 2.0, 4.0]).into_dyn());
/// let var = reduce::partial(ReduceOp::Var { ddof: 0 }, &a, &[0], None, &[0], &[3]).unwrap();
/// let sum = reduce::derive(ReduceOp::Sum, &var).unwrap();
/// assert_eq!(reduce::finalize(ReduceOp::Sum, sum).unwrap().to_f64_vec(), vec![7.0]);
/// let std = reduce::derive(ReduceOp::Std { ddof: 1 }, &var).unwrap();
/// let want = (7.0f64 / 3.0).sqrt();
/// assert!((reduce::finalize(ReduceOp::Std { ddof: 1 }, std).unwrap().to_f64_vec()[0] - want).abs() < 1e-15);
/// ```
///
/// # Errors
/// When `op` cannot be derived from `leader`'s state.
pub fn derive(op: ReduceOp, leader: &Partial) -> Result<Partial> {
    use ReduceOp::*;
    if op == leader.op {
        return Ok(leader.clone());
    }
    let full = leader.kept.is_empty();
    if !derives_from(op, leader.op, leader.input, full) {
        return Err(mismatch());
    }
    let state = match (&leader.state, op) {
        (State::Moments(m), Var { .. } | Std { .. } | NanVar { .. } | NanStd { .. }) => {
            State::Moments(m.clone())
        }
        (State::Moments(m), Sum | NanSum) => State::FSum {
            s: m.s.clone(),
            c: m.c.clone(),
        },
        (State::Moments(m), Mean | NanMean) => State::FMean {
            n: m.n.clone(),
            s: m.s.clone(),
            c: m.c.clone(),
            every: 0,
        },
        (State::FMean { s, c, .. }, Sum | NanSum) => State::FSum {
            s: s.clone(),
            c: c.clone(),
        },
        _ => return Err(mismatch()),
    };
    Ok(Partial {
        op,
        input: leader.input,
        kept: leader.kept.clone(),
        state,
    })
}

/// [`partial`] for one element type, arguments validated.
fn tile_partial<T: Num>(
    op: ReduceOp,
    a: &ArrayD<T>,
    axes: &[usize],
    mask: Option<&ArrayD<bool>>,
    origin: &[u64],
    full_shape: &[u64],
) -> Result<Partial> {
    let shape = a.shape();
    let kept: Vec<usize> = (0..shape.len())
        .filter(|d| !axes.contains(d))
        .map(|d| shape[d])
        .collect();
    let standard;
    let compact: Vec<T>;
    let (xs, plan, span): (&[T], Plan, Option<(u64, u64)>) = match mask {
        Some(m) => {
            // All axes reduced: the selected elements in C order form one run.
            compact = a
                .iter()
                .zip(m.iter())
                .filter(|(_, &m)| m)
                .map(|(&x, _)| x)
                .collect();
            let span = if matches!(op, ReduceOp::ArgMin | ReduceOp::ArgMax) {
                Some(flat_span(shape, origin, full_shape)?)
            } else {
                None
            };
            (&compact, Plan::new(&[compact.len()], &[0]), span)
        }
        None => {
            standard = a.as_standard_layout();
            let xs = standard
                .as_slice()
                .ok_or_else(|| bad("tile is not contiguous"))?;
            (xs, Plan::new(shape, axes), None)
        }
    };
    let state = tile_state(op, xs, &plan)?;
    let state = match state {
        State::Arg {
            v, mut idx, nan, n, ..
        } => {
            if span.is_none() {
                // Tile-local reduced index -> global index over the reduced
                // axes of the full input (monotone, so "first" is kept).
                for i in idx.iter_mut().filter(|i| **i >= 0) {
                    *i = global_index(*i as u64, shape, axes, origin, full_shape) as i64;
                }
            }
            State::Arg {
                v,
                idx,
                nan,
                n,
                span,
            }
        }
        s => s,
    };
    Ok(Partial {
        op,
        input: T::DTYPE,
        kept,
        state,
    })
}

/// The state of a tile `xs` walked by `plan` (not TopK).
fn tile_state<T: Num>(op: ReduceOp, xs: &[T], plan: &Plan) -> Result<State> {
    use ReduceOp::*;
    let float = T::DTYPE.is_float();
    let unsigned = T::DTYPE.kind() == Kind::Unsigned;
    let block = |v: Vec<T>| T::into_block(ndarray::Array1::from(v).into_dyn());
    let seen = || vec![plan.red_n as u64; plan.kept_n];
    Ok(match op {
        Sum | NanSum if float => {
            let (s, c) = if op == Sum {
                tile::fsum::<T, false>(xs, plan)
            } else {
                tile::fsum::<T, true>(xs, plan)
            };
            State::FSum { s, c }
        }
        Sum | NanSum if unsigned => State::U64(tile::fold(xs, plan, 0u64, |a, x| {
            a.wrapping_add(x.to_u64())
        })),
        Sum | NanSum => State::I64(tile::fold(xs, plan, 0i64, |a, x| {
            a.wrapping_add(x.to_i64())
        })),
        Prod if float => State::FProd(tile::fold(xs, plan, 1.0f64, |a, x| a * x.to_f64())),
        Prod if unsigned => State::U64(tile::fold(xs, plan, 1u64, |a, x| {
            a.wrapping_mul(x.to_u64())
        })),
        Prod => State::I64(tile::fold(xs, plan, 1i64, |a, x| {
            a.wrapping_mul(x.to_i64())
        })),
        Mean if float => {
            let (s, c) = tile::fsum::<T, false>(xs, plan);
            State::FMean {
                n: seen(),
                s,
                c,
                every: 0,
            }
        }
        NanMean if float => {
            let (s, c) = tile::fsum::<T, true>(xs, plan);
            State::FMean {
                n: tile::count_valid(xs, plan),
                s,
                c,
                every: 0,
            }
        }
        Mean | NanMean => State::IMean {
            n: seen(),
            s: tile::int_sum(xs, plan),
        },
        Var { .. } | Std { .. } => State::Moments(tile::moments::<T, false>(xs, plan, seen())),
        NanVar { .. } | NanStd { .. } => State::Moments(tile::moments::<T, true>(
            xs,
            plan,
            tile::count_valid(xs, plan),
        )),
        Min | NanMin | Max | NanMax => {
            let (v, nan, valid) = if matches!(op, Max | NanMax) {
                tile::extreme::<T, true>(xs, plan)
            } else {
                tile::extreme::<T, false>(xs, plan)
            };
            State::Extreme {
                v: block(v),
                n: seen(),
                nan,
                valid,
            }
        }
        ArgMin | ArgMax => {
            let (v, idx, nan) = if op == ArgMax {
                tile::arg::<T, true>(xs, plan)
            } else {
                tile::arg::<T, false>(xs, plan)
            };
            State::Arg {
                v: block(v),
                idx,
                nan,
                n: seen(),
                span: None,
            }
        }
        Any => State::Bools(tile::fold(xs, plan, false, |a, x| a | tile::nonzero(x))),
        All => State::Bools(tile::fold(xs, plan, true, |a, x| a & tile::nonzero(x))),
        CountNonzero => State::U64(tile::fold(xs, plan, 0u64, |a, x| {
            a + u64::from(tile::nonzero(x))
        })),
        TopK { .. } | ArgTopK { .. } => {
            return Err(bad("topk partials are made from lanes, not a tile walk"))
        }
    })
}

/// The global C-order flat index over the reduced axes of `full_shape` of
/// the tile-local reduced flat index `local`.
fn global_index(
    local: u64,
    tile_shape: &[usize],
    axes: &[usize],
    origin: &[u64],
    full_shape: &[u64],
) -> u64 {
    if let [d] = axes {
        return origin[*d] + local;
    }
    let mut coord = vec![0u64; axes.len()];
    let mut rem = local;
    for (k, &d) in axes.iter().enumerate().rev() {
        let n = tile_shape[d].max(1) as u64;
        coord[k] = rem % n;
        rem /= n;
    }
    axes.iter()
        .zip(&coord)
        .fold(0u64, |g, (&d, &c)| g * full_shape[d] + origin[d] + c)
}

/// The flat C-order range of the full input a tile covers, when it is one.
fn flat_span(shape: &[usize], origin: &[u64], full_shape: &[u64]) -> Result<(u64, u64)> {
    let start = origin
        .iter()
        .zip(full_shape)
        .fold(0u64, |f, (&o, &n)| f * n + o);
    let len: u64 = shape.iter().map(|&n| n as u64).product();
    if len > 0 {
        let first = shape.iter().position(|&n| n != 1).unwrap_or(shape.len());
        let contiguous = (first + 1..shape.len()).all(|d| shape[d] as u64 == full_shape[d]);
        if !contiguous {
            return Err(Error::invalid(
                "argmin/argmax",
                "mask",
                format!(
                    "an index into a boolean-masked array needs tiles that are contiguous in C order; \
                     tile {shape:?} at {origin:?} of {full_shape:?} is not (compute the masked array first)"
                ),
            ));
        }
    }
    Ok((start, start + len))
}

fn mismatch() -> Error {
    Error::invalid(
        "reduce",
        "partial",
        "merging partials of different reductions, dtypes or shapes",
    )
}

/// Fold `next` (which follows `acc` in input order) into `acc`.
///
/// # Errors
/// The partials come from different reductions, dtypes or kept shapes, or
/// (masked arg-reductions) `next` does not start where `acc` ends.
pub fn merge(op: ReduceOp, acc: &mut Partial, next: Partial) -> Result<()> {
    if acc.op != op || next.op != op || acc.input != next.input || acc.kept != next.kept {
        return Err(mismatch());
    }
    match (&mut acc.state, next.state) {
        (State::I64(a), State::I64(b)) => {
            let f = if op == ReduceOp::Prod {
                i64::wrapping_mul
            } else {
                i64::wrapping_add
            };
            a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, b));
        }
        (State::U64(a), State::U64(b)) => {
            let f = if op == ReduceOp::Prod {
                u64::wrapping_mul
            } else {
                u64::wrapping_add
            };
            a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, b));
        }
        (State::FSum { s, c }, State::FSum { s: s2, c: c2 }) => merge_sums(s, c, &s2, &c2),
        (State::FProd(a), State::FProd(b)) => a.iter_mut().zip(b).for_each(|(a, b)| *a *= b),
        (
            State::FMean { n, s, c, every },
            State::FMean {
                n: n2,
                s: s2,
                c: c2,
                every: e2,
            },
        ) => {
            merge_sums(s, c, &s2, &c2);
            *every += e2;
            n.iter_mut().zip(n2).for_each(|(a, b)| *a += b);
        }
        (State::IMean { n, s }, State::IMean { n: n2, s: s2 }) => {
            s.iter_mut().zip(s2).for_each(|(a, b)| *a += b);
            n.iter_mut().zip(n2).for_each(|(a, b)| *a += b);
        }
        (State::Moments(a), State::Moments(b)) => merge_moments(a, &b),
        (
            State::Extreme { v, n, nan, valid },
            State::Extreme {
                v: v2,
                n: n2,
                nan: nan2,
                valid: valid2,
            },
        ) => {
            let max = matches!(op, ReduceOp::Max | ReduceOp::NanMax);
            crate::with_block!(v, a, T => {
                let b = T::from_block(v2).map_err(|_| mismatch())?;
                for (x, &y) in a.iter_mut().zip(b.iter()) {
                    if beats(max, y, *x) {
                        *x = y;
                    }
                }
            });
            n.iter_mut().zip(n2).for_each(|(a, b)| *a += b);
            nan.iter_mut().zip(nan2).for_each(|(a, b)| *a |= b);
            valid.iter_mut().zip(valid2).for_each(|(a, b)| *a |= b);
        }
        (
            State::Arg {
                v,
                idx,
                nan,
                n,
                span,
            },
            State::Arg {
                v: v2,
                idx: mut idx2,
                nan: nan2,
                n: n2,
                span: span2,
            },
        ) => {
            match (*span, span2) {
                (None, None) => {}
                (Some((s0, e0)), Some((s1, e1))) if e0 == s1 => {
                    // Masked: next's positions follow everything in acc.
                    for (i, &c) in idx2.iter_mut().zip(n.iter()) {
                        if *i >= 0 {
                            *i += c as i64;
                        }
                    }
                    *span = Some((s0, e1));
                }
                _ => {
                    return Err(Error::invalid(
                        "argmin/argmax",
                        "mask",
                        "masked partials must be merged in input order over contiguous ranges",
                    ))
                }
            }
            let max = op == ReduceOp::ArgMax;
            crate::with_block!(v, a, T => {
                let b = T::from_block(v2).map_err(|_| mismatch())?;
                for (j, (x, &y)) in a.iter_mut().zip(b.iter()).enumerate() {
                    let (i, i2) = (idx[j], idx2[j]);
                    let take = if i2 < 0 {
                        false
                    } else if i < 0 {
                        true
                    } else {
                        match (nan[j], nan2[j]) {
                            (true, true) => i2 < i,
                            (true, false) => false,
                            (false, true) => true,
                            (false, false) => {
                                let better = beats(max, y, *x);
                                better || (y == *x && i2 < i)
                            }
                        }
                    };
                    if take {
                        *x = y;
                        idx[j] = i2;
                        nan[j] = nan2[j];
                    }
                }
            });
            n.iter_mut().zip(n2).for_each(|(a, b)| *a += b);
        }
        (State::Bools(a), State::Bools(b)) => {
            if op == ReduceOp::All {
                a.iter_mut().zip(b).for_each(|(a, b)| *a &= b);
            } else {
                a.iter_mut().zip(b).for_each(|(a, b)| *a |= b);
            }
        }
        (State::TopK(a), State::TopK(b)) => a.merge(b)?,
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// `y` is strictly better than `x` (larger when `max`, else smaller).
#[inline]
fn beats<T: PartialOrd>(max: bool, y: T, x: T) -> bool {
    if max {
        y > x
    } else {
        y < x
    }
}

fn merge_sums(s: &mut [f64], c: &mut [f64], s2: &[f64], c2: &[f64]) {
    for ((s, c), (&s2, &c2)) in s.iter_mut().zip(c.iter_mut()).zip(s2.iter().zip(c2)) {
        neumaier(s, c, s2);
        *c += c2;
    }
}

/// `(s + c) / n` as a double-double `hi + lo`.
fn mean_dd(s: f64, c: f64, n: f64) -> (f64, f64) {
    let q = s / n;
    // The division's remainder, exact by FMA.
    let r = (-q).mul_add(n, s) + c;
    (q, r / n)
}

/// Chan, Golub & LeVeque's pairwise update of `(n, sum, M2)`.
fn merge_moments(a: &mut Moments, b: &Moments) {
    for j in 0..a.n.len() {
        let (na, nb) = (a.n[j], b.n[j]);
        if nb == 0 {
            continue;
        }
        if na == 0 {
            (a.n[j], a.s[j], a.c[j], a.m2[j], a.m2c[j]) = (nb, b.s[j], b.c[j], b.m2[j], b.m2c[j]);
            continue;
        }
        let (fa, fb) = (na as f64, nb as f64);
        let n = fa + fb;
        // The means as double-doubles: their difference is then exact to
        // ~1 ulp of the difference, even when the means are huge compared
        // to the spread (1e8 + U(0, 1)).
        let (qa, la) = mean_dd(a.s[j], a.c[j], fa);
        let (qb, lb) = mean_dd(b.s[j], b.c[j], fb);
        let delta = (qb - qa) + (lb - la);
        neumaier(&mut a.m2[j], &mut a.m2c[j], b.m2[j]);
        neumaier(&mut a.m2[j], &mut a.m2c[j], delta * delta * (fa * fb / n));
        a.m2c[j] += b.m2c[j];
        neumaier(&mut a.s[j], &mut a.c[j], b.s[j]);
        a.c[j] += b.c[j];
        a.n[j] = na + nb;
    }
}

/// The final result, shaped as the kept shape (for `TopK`/`ArgTopK`: the
/// tile shape with the reduced axis's length replaced by `|k|`).
///
/// # Errors
/// `Min`/`Max`/`NanMin`/`NanMax`/`ArgMin`/`ArgMax` of an empty reduction;
/// `TopK`/`ArgTopK` that saw fewer than `|k|` elements.
pub fn finalize(op: ReduceOp, p: Partial) -> Result<Block> {
    use ReduceOp::*;
    let out = result_dtype(op, p.input)?;
    let kept = p.kept;
    let shaped = |b: Block| -> Result<Block> {
        if b.len() != kept.iter().product::<usize>() {
            return Err(bad("partial state does not match its kept shape"));
        }
        Ok(b.into_shape(&kept))
    };
    let floats = |v: Vec<f64>| -> Result<Block> {
        let b = Block::from(ndarray::Array1::from(v).into_dyn());
        shaped(b.astype(out))
    };
    match p.state {
        State::I64(v) => shaped(Block::from(ndarray::Array1::from(v).into_dyn())),
        State::U64(v) if op == CountNonzero => shaped(Block::from(
            ndarray::Array1::from(v.into_iter().map(|x| x as i64).collect::<Vec<_>>()).into_dyn(),
        )),
        State::U64(v) => shaped(Block::from(ndarray::Array1::from(v).into_dyn())),
        State::FSum { s, c } => floats(s.iter().zip(&c).map(|(&s, &c)| resolve(s, c)).collect()),
        State::FProd(v) => floats(v),
        State::FMean { n, s, c, every } => floats(
            n.iter()
                .zip(s.iter().zip(&c))
                .map(|(&n, (&s, &c))| resolve(s, c) / (n + every) as f64)
                .collect(),
        ),
        State::IMean { n, s } => floats(
            n.iter()
                .zip(&s)
                .map(|(&n, &s)| {
                    if n == 0 {
                        f64::NAN
                    } else {
                        s as f64 / n as f64
                    }
                })
                .collect(),
        ),
        State::Moments(m) => {
            let ddof = match op {
                Var { ddof } | Std { ddof } | NanVar { ddof } | NanStd { ddof } => ddof,
                _ => 0,
            };
            let sqrt = matches!(op, Std { .. } | NanStd { .. });
            floats(
                (0..m.n.len())
                    .map(|j| {
                        let dof = m.n[j] as f64 - f64::from(ddof);
                        let var = if dof <= 0.0 {
                            f64::NAN
                        } else {
                            // Rounding can leave a tiny negative M2; NaN stays NaN.
                            let m2 = resolve(m.m2[j], m.m2c[j]);
                            (if m2 < 0.0 { 0.0 } else { m2 }) / dof
                        };
                        if sqrt {
                            var.sqrt()
                        } else {
                            var
                        }
                    })
                    .collect(),
            )
        }
        State::Extreme { v, n, nan, valid } => {
            if n.contains(&0) {
                let name = match op {
                    Min => "minimum",
                    Max => "maximum",
                    NanMin => "fmin",
                    _ => "fmax",
                };
                return Err(Error::invalid(
                    "reduce",
                    "axis",
                    format!("zero-size array to reduction operation {name} which has no identity"),
                ));
            }
            let ignore_nan = matches!(op, NanMin | NanMax);
            let b = crate::with_block!(v, a, T => {
                let mut a = a;
                for (j, x) in a.iter_mut().enumerate() {
                    if (!ignore_nan && nan[j]) || !valid[j] {
                        *x = <T as crate::dtype::Element>::from_f64(f64::NAN);
                    }
                }
                T::into_block(a)
            });
            shaped(b)
        }
        State::Arg { idx, n, .. } => {
            if n.contains(&0) {
                let name = if op == ArgMin { "argmin" } else { "argmax" };
                return Err(Error::invalid(
                    "reduce",
                    "axis",
                    format!("attempt to get {name} of an empty sequence"),
                ));
            }
            shaped(Block::from(ndarray::Array1::from(idx).into_dyn()))
        }
        State::Bools(v) => shaped(Block::from(ndarray::Array1::from(v).into_dyn())),
        State::TopK(t) => t.finish(&kept, matches!(op, ArgTopK { .. })),
    }
}
