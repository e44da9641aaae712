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
//!   input is summed in f64 and cast once at the end. Float products run
//!   in f64 too. Integer sums and products wrap in i64/u64 as NumPy's do;
//!   integer means sum exactly in i128. Variance: each tile by the
//!   corrected two-pass formula, tiles combined with Chan et al.'s parallel
//!   formula over `(count, sum, M2)`.
//! - **NaN.** As NumPy: `Sum`/`Prod`/`Mean`/`Var`/`Min`/`Max` propagate
//!   NaN, the `Nan*` ops ignore it (all-NaN gives NaN, `NanSum` gives 0,
//!   `NanProd` 1), `ArgMin`/`ArgMax` return the first NaN's index.
//! - **Indexes.** `ArgMin`/`ArgMax` return global indexes: along the reduced
//!   axis, or the C-order flat index over the reduced axes of the full input
//!   (all axes: NumPy's `argmax(axis=None)`). Ties go to the lower index.
//!   Under a mask the index is the position in the masked 1-D array, which
//!   needs every tile to be a contiguous C-order range of the input.
//!
//! # One family per module
//!
//! Every reduction is one row of the reduction table in this file
//! (`reduce_ops!`): its [`ReduceOp`] variant (with its parameter, `ddof`
//! or `k`, if any), its NumPy name and aliases, and its *family*. A family
//! is the reductions that share a running state, and it is one module
//! implementing the [`Reduction`](family::Reduction) trait (`family.rs`):
//! the state type, the state of a tile, folding a tile (or whole rows of
//! many tiles, or of fused chains) straight into a running state where it
//! can, `merge`, `finalize`, the result dtype, the state's size and its
//! byte encoding.
//!
//! | module        | reductions                                                             |
//! |---------------|------------------------------------------------------------------------|
//! | `sums.rs`     | `sum`, `prod`, `mean`, `nansum`, `nanprod`, `nanmean`, `count_nonzero` |
//! | `moments.rs`  | `var`, `std`, `nanvar`, `nanstd`                                       |
//! | `extremes.rs` | `min`, `max`, `nanmin`, `nanmax`                                       |
//! | `arg.rs`      | `argmin`, `argmax`                                                     |
//! | `boolean.rs`  | `any`, `all`                                                           |
//! | `topk.rs`     | `topk`, `argtopk`                                                      |
//!
//! The public functions here ([`partial`], [`accumulate`], [`merge`],
//! [`finalize`], ...) check their arguments and dispatch once per tile to
//! the op's family (`with_family!`); the family's code is generic over the
//! element type, so every loop over elements is monomorphised. The walk of
//! a tile and the summation primitives are shared (`layout.rs`), as are
//! the per-tile kernels (`tile.rs`, `simd.rs`). A [`Partial`] can be
//! written to bytes and read back ([`Partial::to_bytes`],
//! [`Partial::from_bytes`], `wire.rs`): the header is common, the state is
//! each family's encoding.
//!
//! # Adding a reduction
//!
//! One row in `reduce_ops!` (name, aliases, family) and the op's arms in
//! its family's module (or a new family: a module implementing
//! `Reduction`, a variant in `families!` and an arm in `with_family!`).
//! The name makes it a function and a method of the CLI's expression
//! language; an `Array` method is one row of `reductions!` in
//! `array/build.rs`. Tests: closed forms and NaN cases in `tests.rs` (its
//! oracle covers every op in `ReduceOp::ALL`, and the byte round trip runs
//! every op), a row in `tests/it/oracle.rs` `reductions_over_axis_sets`,
//! and a CLI check in `tools/tests/cli.rs` against what NumPy prints.

mod arg;
mod boolean;
mod extremes;
mod family;
mod layout;
mod moments;
#[cfg(target_arch = "x86_64")]
mod simd;
mod sums;
mod tile;
mod topk;

#[cfg(test)]
mod tests;

use ndarray::ArrayD;

use self::family::{Reduction, Tile};
use self::layout::Plan;
use super::elementwise::Float;
use super::fused::{Prepared, Ready};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The default value of a reduction parameter in [`ReduceOp::ALL`] and
/// [`ReduceOp::from_name`].
macro_rules! param_default {
    (ddof) => {
        0
    };
    (k) => {
        1
    };
}

/// The [`ReduceParam`] of a parameter name (none for a row without one).
macro_rules! param_kind {
    () => {
        None
    };
    (ddof) => {
        Some(ReduceParam::Ddof)
    };
    (k) => {
        Some(ReduceParam::K)
    };
}

/// The enum and its table-driven methods, from the reduction table.
macro_rules! define_reduce_ops {
    ($(
        $(#[$doc:meta])*
        $v:ident $({ $(#[$pdoc:meta])* $p:ident: $pt:ty })? = $name:literal,
            aliases [$($alias:literal),*], family $fam:ident;
    )*) => {
        /// A reduction, one per row of the reduction table (see the
        /// [module docs](self)).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ReduceOp {
            $($(#[$doc])* $v $({ $(#[$pdoc])* $p: $pt })?,)*
        }

        impl ReduceOp {
            /// Every reduction once, a parameter at its default (`ddof` 0,
            /// `k` 1).
            pub const ALL: &'static [ReduceOp] =
                &[$(ReduceOp::$v $({ $p: param_default!($p) })?),*];

            /// The NumPy name (`sum`, `nanprod`, `count_nonzero`, ...; Dask's
            /// `topk`/`argtopk`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(ReduceOp::$v { .. } => $name,)*
                }
            }

            /// Other names NumPy also accepts for the reduction (`amin` for
            /// `min`).
            pub const fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(ReduceOp::$v { .. } => &[$($alias),*],)*
                }
            }

            /// The parameter the reduction takes besides its axes, if any.
            pub const fn param(self) -> Option<ReduceParam> {
                match self {
                    $(ReduceOp::$v { .. } => param_kind!($($p)?),)*
                }
            }

            /// The value of the parameter ([`param`](ReduceOp::param)); 0
            /// for a reduction without one.
            pub fn param_value(self) -> i64 {
                match self {
                    $(ReduceOp::$v $({ $p })? => 0 $(+ i64::from($p))?,)*
                }
            }

            /// The same reduction with its parameter set to `value`; `None`
            /// if it takes none or `value` does not fit (a negative `ddof`).
            #[allow(clippy::useless_conversion)]
            pub fn with_param(self, value: i64) -> Option<ReduceOp> {
                match self {
                    $(ReduceOp::$v { .. } => {
                        None $(.or(<$pt>::try_from(value).ok().map(|$p| ReduceOp::$v { $p })))?
                    })*
                }
            }

            /// The family whose module implements the reduction.
            pub(crate) const fn family(self) -> Family {
                match self {
                    $(ReduceOp::$v { .. } => Family::$fam,)*
                }
            }
        }
    };
}

/// The reduction table. Each row:
///
/// ```text
/// /// doc (the variant's)
/// Variant [{ /// doc
///            param: type }] = "numpy_name", aliases ["alias", ..], family Family;
/// ```
///
/// A parameter is `ddof: u32` or `k: i64` (see [`ReduceParam`]).
macro_rules! reduce_ops {
    () => {
        define_reduce_ops! {
            /// Sum (`np.sum`): bool and integers in int64/uint64, wrapping;
            /// floats in f64 with compensation, cast to the input's dtype.
            Sum = "sum", aliases [], family Sums;
            /// Product (`np.prod`): bool and integers in int64/uint64,
            /// wrapping; floats in f64.
            Prod = "prod", aliases [], family Sums;
            /// Arithmetic mean (`np.mean`), accumulated in f64 (integers
            /// exactly).
            Mean = "mean", aliases [], family Sums;
            /// Variance (`np.var`).
            Var {
                /// Delta degrees of freedom: the divisor is `n - ddof`.
                ddof: u32
            } = "var", aliases [], family Moments;
            /// Standard deviation (`np.std`).
            Std {
                /// Delta degrees of freedom: the divisor is `n - ddof`.
                ddof: u32
            } = "std", aliases [], family Moments;
            /// Minimum (`np.min`), NaN if any element is NaN.
            Min = "min", aliases ["amin"], family Extremes;
            /// Maximum (`np.max`), NaN if any element is NaN.
            Max = "max", aliases ["amax"], family Extremes;
            /// Index of the first minimum (`np.argmin`), or of the first NaN.
            ArgMin = "argmin", aliases [], family Arg;
            /// Index of the first maximum (`np.argmax`), or of the first NaN.
            ArgMax = "argmax", aliases [], family Arg;
            /// True if any element is nonzero (`np.any`).
            Any = "any", aliases [], family Boolean;
            /// True if every element is nonzero (`np.all`).
            All = "all", aliases [], family Boolean;
            /// Number of nonzero elements (`np.count_nonzero`), as int64.
            CountNonzero = "count_nonzero", aliases [], family Sums;
            /// Sum treating NaN as 0 (`np.nansum`).
            NanSum = "nansum", aliases [], family Sums;
            /// Product treating NaN as 1 (`np.nanprod`); integers as `Prod`.
            NanProd = "nanprod", aliases [], family Sums;
            /// Mean of the non-NaN elements (`np.nanmean`).
            NanMean = "nanmean", aliases [], family Sums;
            /// Variance of the non-NaN elements (`np.nanvar`).
            NanVar {
                /// Delta degrees of freedom: the divisor is `n - ddof`.
                ddof: u32
            } = "nanvar", aliases [], family Moments;
            /// Standard deviation of the non-NaN elements (`np.nanstd`).
            NanStd {
                /// Delta degrees of freedom: the divisor is `n - ddof`.
                ddof: u32
            } = "nanstd", aliases [], family Moments;
            /// Minimum ignoring NaN (`np.nanmin`; all-NaN gives NaN).
            NanMin = "nanmin", aliases [], family Extremes;
            /// Maximum ignoring NaN (`np.nanmax`; all-NaN gives NaN).
            NanMax = "nanmax", aliases [], family Extremes;
            /// Largest `k` (k > 0, descending) or smallest `-k` (k < 0,
            /// ascending) along one axis, as Dask's `topk`.
            TopK {
                /// How many values, and which end (see the variant).
                k: i64
            } = "topk", aliases [], family TopK;
            /// Indices of what `TopK` returns (Dask's `argtopk`).
            ArgTopK {
                /// As `TopK`'s.
                k: i64
            } = "argtopk", aliases [], family TopK;
        }
    };
}

reduce_ops!();

/// The parameter a reduction takes besides its axes ([`ReduceOp::param`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReduceParam {
    /// Delta degrees of freedom (`var`, `std`, `nanvar`, `nanstd`), a
    /// non-negative integer.
    Ddof,
    /// How many values to keep (`topk`, `argtopk`), nonzero; negative keeps
    /// the smallest.
    K,
}

impl ReduceOp {
    /// The reduction called `name` (a NumPy name or alias), its parameter
    /// at its default (set it with [`with_param`](ReduceOp::with_param)).
    ///
    /// ```
    /// use ndstream_engine::ReduceOp;
    /// assert_eq!(ReduceOp::from_name("nanprod"), Some(ReduceOp::NanProd));
    /// assert_eq!(ReduceOp::from_name("amax"), Some(ReduceOp::Max));
    /// let std = ReduceOp::from_name("std").and_then(|op| op.with_param(1));
    /// assert_eq!(std, Some(ReduceOp::Std { ddof: 1 }));
    /// assert_eq!(ReduceOp::from_name("median"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<ReduceOp> {
        ReduceOp::ALL
            .iter()
            .copied()
            .find(|op| op.name() == name || op.aliases().contains(&name))
    }
}

/// The running state of a reduction over part of its input.
///
/// Opaque: made by [`partial`], combined by [`merge`], consumed by
/// [`finalize`], written and read by [`to_bytes`](Partial::to_bytes) and
/// [`from_bytes`](Partial::from_bytes). It holds one accumulator per kept
/// element (for `TopK`, up to `|k|` candidates per kept element).
#[derive(Clone, Debug)]
pub struct Partial {
    op: ReduceOp,
    input: DType,
    /// The kept shape (the tile shape without the reduced axes).
    kept: Vec<usize>,
    state: State,
}

/// Moving a family's state in and out of a [`Partial`]'s [`State`].
trait Stored: Reduction {
    /// The family's state as a partial's.
    fn wrap(s: Self::State) -> State;
    /// The family's state, if `s` is one.
    fn unwrap(s: State) -> Option<Self::State>;
    /// [`unwrap`](Stored::unwrap) in place.
    fn unwrap_mut(s: &mut State) -> Option<&mut Self::State>;
}

/// The families: [`Family`], the [`State`] enum with one variant per
/// family, and the plumbing between them.
macro_rules! families {
    ($($fam:ident => $ty:ty,)*) => {
        /// The family of a reduction: which module implements it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Family {
            $($fam,)*
        }

        /// A partial's running state: its family's, one accumulator per kept
        /// element in C order over the kept shape.
        #[derive(Clone, Debug)]
        enum State {
            $($fam(<$ty as Reduction>::State),)*
        }

        $(impl Stored for $ty {
            fn wrap(s: Self::State) -> State {
                State::$fam(s)
            }

            fn unwrap(s: State) -> Option<Self::State> {
                match s {
                    State::$fam(s) => Some(s),
                    _ => None,
                }
            }

            fn unwrap_mut(s: &mut State) -> Option<&mut Self::State> {
                match s {
                    State::$fam(s) => Some(s),
                    _ => None,
                }
            }
        })*

        impl State {
            /// The state in its family's byte encoding.
            fn encode(&self, w: &mut wire::Writer) {
                match self {
                    $(State::$fam(s) => <$ty as Reduction>::encode(s, w),)*
                }
            }
        }
    };
}

families! {
    Sums => sums::Sums,
    Moments => moments::Moments,
    Extremes => extremes::Extremes,
    Arg => arg::Arg,
    Boolean => boolean::Boolean,
    TopK => topk::TopK,
}

/// `$body` with `$R` the type implementing `$op`'s family: the one
/// dispatch on the op, once per call (so once per tile).
macro_rules! with_family {
    ($op:expr, $R:ident => $body:expr) => {
        match $op.family() {
            Family::Sums => {
                type $R = sums::Sums;
                $body
            }
            Family::Moments => {
                type $R = moments::Moments;
                $body
            }
            Family::Extremes => {
                type $R = extremes::Extremes;
                $body
            }
            Family::Arg => {
                type $R = arg::Arg;
                $body
            }
            Family::Boolean => {
                type $R = boolean::Boolean;
                $body
            }
            Family::TopK => {
                type $R = topk::TopK;
                $body
            }
        }
    };
}

// After `with_family!`, which it uses.
mod wire;

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
    Ok(with_family!(op, R => R::result_dtype(op, input)))
}

/// Bytes of partial state per output element (for `TopK`/`ArgTopK`: per
/// candidate kept).
pub fn partial_bytes_per_elem(op: ReduceOp, input: DType) -> usize {
    with_family!(op, R => R::bytes_per_elem(op, input))
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid("reduce", "partial", reason)
}

/// `op` handed to a family it is not of (a dispatch bug).
fn foreign(op: ReduceOp) -> Error {
    bad(format!("{} is not a reduction of this family", op.name()))
}

fn mismatch() -> Error {
    Error::invalid(
        "reduce",
        "partial",
        "merging partials of different reductions, dtypes or shapes",
    )
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
    let state = with_family!(op, R => crate::with_block!(block, a, T => {
        let t = Tile { a, axes, mask, origin, full_shape };
        R::wrap(R::tile::<T>(op, &t)?)
    }));
    Ok(Partial {
        op,
        input: block.dtype(),
        kept: kept_shape(shape, axes),
        state,
    })
}

/// Fold one more tile into `acc` (which the first tile starts): the same
/// as `merge(op, acc, partial(...))` up to rounding, but compensated sums
/// and means add the tile's elements straight into the running sums, with
/// no tile partial to fill and merge (the family's
/// [`add_tile`](family::Reduction::add_tile)). Every other reduction merges
/// a tile partial.
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
    let Some(acc) = acc.as_mut() else {
        *acc = Some(partial(op, block, axes, mask, origin, full_shape)?);
        return Ok(());
    };
    let shape = block.shape();
    let sorted = axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&d| d < shape.len());
    let fits = mask.is_none()
        && sorted
        && acc.op == op
        && acc.input == block.dtype()
        && acc.kept == kept_shape(shape, axes);
    if fits {
        let added = with_family!(op, R => {
            let state = R::unwrap_mut(&mut acc.state).ok_or_else(mismatch)?;
            crate::with_block!(block, a, T => {
                let t = Tile { a, axes, mask, origin, full_shape };
                R::add_tile::<T>(op, state, &t)?
            })
        });
        if added {
            return Ok(());
        }
    }
    merge(op, acc, partial(op, block, axes, mask, origin, full_shape)?)
}

/// [`accumulate`] of several tiles in turn, `blocks[0]` first (`origins[i]`
/// is where `blocks[i]` starts in the input). The result has the same bits.
///
/// Where the family folds whole rows ([`folds_rows`]: compensated sums and
/// means of float tiles) and the tiles' reduced axes all lie outside their
/// kept ones (the `(1, 500, 500)` days of a stack reduced over axis 0: each
/// tile is rows of all the kept elements), the tiles' rows go through
/// together, strip by strip of kept elements, so running sums larger than
/// the cache are read and written once for all the tiles instead of once
/// per tile. Each element still adds its values in the same order.
/// Everything else is [`accumulate`] per tile.
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
    let rows_of = |b: &Block| -> bool {
        let shape = b.shape();
        let sorted = axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&d| d < shape.len());
        let contiguous = match b {
            Block::F32(a) => a.is_standard_layout(),
            Block::F64(a) => a.is_standard_layout(),
            _ => false,
        };
        sorted && contiguous && axes.len() < shape.len() && Plan::new(shape, axes).whole_rows()
    };
    let first = blocks
        .first()
        .map(|b| (b.dtype(), kept_shape(b.shape(), axes)));
    let together = blocks.len() > 1
        && first.as_ref().is_some_and(|(d, _)| folds_rows(op, *d))
        && blocks
            .iter()
            .all(|b| Some((b.dtype(), kept_shape(b.shape(), axes))) == first && rows_of(b))
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
    fn rows<'a, T: layout::Num>(
        blocks: &[&'a Block],
        kept_n: usize,
        view: impl Fn(&'a Block) -> Option<&'a [T]>,
    ) -> Result<Vec<&'a [T]>> {
        let mut rows: Vec<&[T]> = Vec::new();
        for b in blocks {
            let xs = view(b).ok_or_else(|| bad("tile is not contiguous"))?;
            rows.extend(xs.chunks_exact(kept_n));
        }
        Ok(rows)
    }
    with_family!(op, R => {
        let state = row_state::<R>(op, acc, dtype, kept)?;
        match dtype {
            DType::F32 => {
                let rows = rows::<f32>(blocks, kept_n, |b| match b {
                    Block::F32(a) => a.as_slice(),
                    _ => None,
                })?;
                R::add_rows::<f32, _>(op, state, rows.as_slice())
            }
            _ => {
                let rows = rows::<f64>(blocks, kept_n, |b| match b {
                    Block::F64(a) => a.as_slice(),
                    _ => None,
                })?;
                R::add_rows::<f64, _>(op, state, rows.as_slice())
            }
        }
    })
}

/// The state whole rows are folded into (see [`accumulate_many`]): `acc`'s,
/// or, for a fold that starts here, the family's empty one.
fn row_state<R: Stored>(
    op: ReduceOp,
    acc: &mut Option<Partial>,
    input: DType,
    kept: Vec<usize>,
) -> Result<&mut R::State> {
    if acc.is_none() {
        let kept_n: usize = kept.iter().product();
        *acc = Some(Partial {
            op,
            input,
            kept,
            state: R::wrap(R::empty(op, input, kept_n)?),
        });
    }
    acc.as_mut()
        .and_then(|a| R::unwrap_mut(&mut a.state))
        .ok_or_else(mismatch)
}

/// Whether [`accumulate_many`] and [`accumulate_chains`] fold whole rows
/// of `op` on `input` tiles together (compensated float sums and means).
pub(crate) fn folds_rows(op: ReduceOp, input: DType) -> bool {
    with_family!(op, R => R::folds_rows(op, input))
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
        && folds_rows(op, dtype)
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
    fn rows<T: Float>(readies: Vec<&Ready<T>>, kept_n: usize) -> ChainRows<'_, T> {
        ChainRows {
            rows: readies
                .into_iter()
                .flat_map(|r| {
                    let count = r.len() / kept_n;
                    (0..count).map(move |i| (r, i * kept_n))
                })
                .collect(),
        }
    }
    with_family!(op, R => {
        let state = row_state::<R>(op, acc, dtype, kept)?;
        match dtype {
            DType::F32 => {
                let rows = rows(tiles.iter().filter_map(|t| t.as_f32()).collect(), kept_n);
                R::add_rows::<f32, _>(op, state, &rows)
            }
            _ => {
                let rows = rows(tiles.iter().filter_map(|t| t.as_f64()).collect(), kept_n);
                R::add_rows::<f64, _>(op, state, &rows)
            }
        }
    })?;
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
    op == leader || with_family!(op, R => R::derives_from(op, leader, input, full))
}

/// The order in which reductions of one input over the same axes are
/// looked at as leaders for the others (lowest first): the richest state
/// first, so that each reduction follows the richest state it can derive
/// from (variances, then means, then sums, then the rest).
pub(crate) fn lead_rank(op: ReduceOp) -> u8 {
    with_family!(op, R => R::lead_rank(op))
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
    if op == leader.op {
        return Ok(leader.clone());
    }
    let full = leader.kept.is_empty();
    if !derives_from(op, leader.op, leader.input, full) {
        return Err(mismatch());
    }
    let state =
        with_family!(op, R => R::derive(op, &leader.state).map(R::wrap)).ok_or_else(mismatch)?;
    Ok(Partial {
        op,
        input: leader.input,
        kept: leader.kept.clone(),
        state,
    })
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
    with_family!(op, R => match (R::unwrap_mut(&mut acc.state), R::unwrap(next.state)) {
        (Some(a), Some(b)) => R::merge(op, a, b),
        _ => Err(mismatch()),
    })
}

/// The final result, shaped as the kept shape (for `TopK`/`ArgTopK`: the
/// tile shape with the reduced axis's length replaced by `|k|`).
///
/// # Errors
/// `Min`/`Max`/`NanMin`/`NanMax`/`ArgMin`/`ArgMax` of an empty reduction;
/// `TopK`/`ArgTopK` that saw fewer than `|k|` elements; a partial of
/// another reduction (or parameter) than `op` ([`derive`] turns one
/// into another where the state allows).
pub fn finalize(op: ReduceOp, p: Partial) -> Result<Block> {
    if p.op != op {
        return Err(mismatch());
    }
    let Partial {
        input, kept, state, ..
    } = p;
    with_family!(op, R => match R::unwrap(state) {
        Some(s) => R::finalize(op, input, s, &kept),
        None => Err(mismatch()),
    })
}

/// What `op` gives over no elements of dtype `input`, as NumPy defines it:
/// the identity (`sum` 0, `prod` and `nanprod` 1, `any` false, `all`
/// true), NaN for the means and moments. The finalized partial of an empty
/// tile, so each family's own rules decide it.
///
/// # Errors
/// The reductions without identity (`min`, `argmax`, ..., NumPy's error
/// messages).
pub(crate) fn empty_value(op: ReduceOp, input: DType) -> Result<f64> {
    let empty = Block::zeros(input, &[0]);
    let p = partial(op, &empty, &[0], None, &[0], &[0])?;
    let v = finalize(op, p)?.to_f64_vec();
    Ok(match v.first() {
        // One NaN for all (0/0 has the sign bit set).
        Some(x) if x.is_nan() => f64::NAN,
        Some(&x) => x,
        None => 0.0,
    })
}

/// The state's values (a 1-D block) shaped as `kept`.
fn shaped(b: Block, kept: &[usize]) -> Result<Block> {
    if b.len() != kept.iter().product::<usize>() {
        return Err(bad("partial state does not match its kept shape"));
    }
    Ok(b.into_shape(kept))
}

/// f64 results cast to the result dtype `out` and shaped as `kept`.
fn floats(v: Vec<f64>, out: DType, kept: &[usize]) -> Result<Block> {
    let b = Block::from(ndarray::Array1::from(v).into_dyn());
    shaped(b.astype(out), kept)
}
