//! What one family of reductions provides ([`Reduction`]), and the
//! [`Tile`] it folds.

use std::fmt::Debug;

use ndarray::{ArrayD, CowArray, IxDyn};

use super::layout::{Num, Plan};
use super::tile::Rows;
use super::wire::{Reader, Writer};
use super::{bad, ReduceOp, State};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;

/// One family of reductions: the ops that share a running state (the
/// sums and means, the moments, ...), one module each (see the module
/// docs of [`reduce`](super)).
///
/// Every method takes the op, so a family covers several; the dispatchers
/// in `mod.rs` pick the family once per call and check what is common
/// (argument shapes, partials of the same op, dtype and kept shape).
/// Methods generic over the element type `T` are monomorphised per dtype:
/// a family's loops never dispatch per element.
pub(super) trait Reduction {
    /// The running state over part of the input: accumulators for every
    /// kept element, C order over the kept shape.
    type State: Clone + Debug + Send + Sync;

    /// The result dtype of `op` on `input`, by NumPy's rules.
    fn result_dtype(op: ReduceOp, input: DType) -> DType;

    /// Bytes of state per kept element (for `TopK`: per candidate).
    fn bytes_per_elem(op: ReduceOp, input: DType) -> usize;

    /// The state of one tile: the partial of a tile with nothing before it.
    ///
    /// # Errors
    /// Arguments the family does not take (a `TopK` over two axes), a
    /// masked tile an arg-reduction cannot index.
    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<Self::State>;

    /// Fold the tile `t` straight into `acc` (a state of the same op, input
    /// dtype and kept shape; no mask), with the bits of merging its
    /// [`tile`](Reduction::tile) state or not (the running sums of a sum
    /// or mean over some axes take each element as it comes). `Ok(false)`,
    /// the default, where the family does not: the caller merges the
    /// tile's state.
    ///
    /// # Errors
    /// As [`tile`](Reduction::tile).
    fn add_tile<T: Num>(_op: ReduceOp, _acc: &mut Self::State, _t: &Tile<'_, T>) -> Result<bool> {
        Ok(false)
    }

    /// Whether whole rows of `input` tiles fold together into one state
    /// ([`add_rows`](Reduction::add_rows); `false`, the default, where
    /// the family only folds tile by tile).
    fn folds_rows(_op: ReduceOp, _input: DType) -> bool {
        false
    }

    /// The state of nothing yet, for `kept_n` kept elements, where a fold
    /// of rows starts.
    ///
    /// # Errors
    /// A family that does not fold rows (never asked).
    fn empty(op: ReduceOp, _input: DType, _kept_n: usize) -> Result<Self::State> {
        Err(bad(format!("{} does not fold rows", op.name())))
    }

    /// Fold `rows` (each one element per kept element, rows in input
    /// order) into `acc`, with the bits of folding the rows' tiles one by
    /// one. Only where [`folds_rows`](Reduction::folds_rows).
    ///
    /// # Errors
    /// A family that does not fold rows (never asked).
    fn add_rows<T: Num, R: Rows<T> + ?Sized>(
        op: ReduceOp,
        _acc: &mut Self::State,
        _rows: &R,
    ) -> Result<()> {
        Err(bad(format!("{} does not fold rows", op.name())))
    }

    /// Fold `next`, the state of the input that follows `acc`'s, into
    /// `acc`: a fixed sequence of operations.
    ///
    /// # Errors
    /// States that cannot be merged (a mismatch the common checks cannot
    /// see, masked arg-reductions out of order).
    fn merge(op: ReduceOp, acc: &mut Self::State, next: Self::State) -> Result<()>;

    /// The result of `op` on `input` from `state`, shaped as `kept` (for
    /// `TopK`: with the `|k|` axis inserted).
    ///
    /// # Errors
    /// A reduction without identity over nothing; a state inconsistent
    /// with `kept`.
    fn finalize(op: ReduceOp, input: DType, state: Self::State, kept: &[usize]) -> Result<Block>;

    /// Whether `op` (of this family) can read its state off `leader`'s
    /// (another op, any family) over the same tiles; see
    /// [`derives_from`](super::derives_from). `false` by default.
    fn derives_from(_op: ReduceOp, _leader: ReduceOp, _input: DType, _full: bool) -> bool {
        false
    }

    /// The state `op` would have folded, read off `from` (a leader's state
    /// for which [`derives_from`](Reduction::derives_from) holds).
    fn derive(_op: ReduceOp, _from: &State) -> Option<Self::State> {
        None
    }

    /// Where `op` comes as a leader of others (lowest first; see
    /// [`lead_rank`](super::lead_rank)). 3, after every state others
    /// derive from, by default.
    fn lead_rank(_op: ReduceOp) -> u8 {
        3
    }

    /// Append the state's encoding (see `wire.rs`).
    fn encode(state: &Self::State, w: &mut Writer);

    /// Read a state of `op` on `input` with the kept shape `kept`, as
    /// [`encode`](Reduction::encode) wrote it; never panics, and checks
    /// everything [`merge`](Reduction::merge) and
    /// [`finalize`](Reduction::finalize) rely on.
    ///
    /// # Errors
    /// Bytes that are not such a state.
    fn decode(
        op: ReduceOp,
        input: DType,
        kept: &[usize],
        r: &mut Reader<'_>,
    ) -> Result<Self::State>;
}

/// One tile of a reduction's input, arguments checked: `axes` sorted,
/// distinct and in range; `mask`, if any, of the tile's shape and with
/// every axis reduced; `origin` (the tile's first element in the input)
/// and `full_shape` (the input's shape) of the tile's rank.
#[derive(Debug)]
pub(super) struct Tile<'a, T> {
    /// The tile, any layout.
    pub a: &'a ArrayD<T>,
    /// The reduced axes.
    pub axes: &'a [usize],
    /// The elements that take part, if not all.
    pub mask: Option<&'a ArrayD<bool>>,
    /// Where the tile starts in the input.
    pub origin: &'a [u64],
    /// The input's shape.
    pub full_shape: &'a [u64],
}

/// The elements of a tile that take part, C-contiguous, and their walk.
#[derive(Debug)]
pub(super) struct Walk<'a, T> {
    elems: Elems<'a, T>,
    /// How the kernels walk [`xs`](Walk::xs).
    pub plan: Plan,
}

#[derive(Debug)]
enum Elems<'a, T> {
    /// The tile in C order (borrowed when it is laid out so).
    Tile(CowArray<'a, T, IxDyn>),
    /// The elements a mask selects, in C order.
    Selected(Vec<T>),
}

impl<'a, T: Num> Tile<'a, T> {
    /// The elements to fold and their walk: the tile in C order reduced
    /// over `axes`, or under a mask the selected elements as one run (every
    /// axis is reduced, so they all fold into the one kept element).
    pub fn walk(&self) -> Walk<'a, T> {
        let a: &'a ArrayD<T> = self.a;
        match self.mask {
            Some(m) => {
                let selected: Vec<T> = a
                    .iter()
                    .zip(m.iter())
                    .filter(|(_, &m)| m)
                    .map(|(&x, _)| x)
                    .collect();
                let plan = Plan::new(&[selected.len()], &[0]);
                Walk {
                    elems: Elems::Selected(selected),
                    plan,
                }
            }
            None => Walk {
                elems: Elems::Tile(a.as_standard_layout()),
                plan: Plan::new(a.shape(), self.axes),
            },
        }
    }
}

impl<T> Walk<'_, T> {
    /// The elements, in the order [`plan`](Walk::plan) walks them.
    ///
    /// # Errors
    /// Never in practice (a standard-layout array is contiguous).
    pub fn xs(&self) -> Result<&[T]> {
        match &self.elems {
            Elems::Selected(v) => Ok(v),
            Elems::Tile(a) => a.as_slice().ok_or_else(|| bad("tile is not contiguous")),
        }
    }

    /// One accumulator per kept element: the number of elements each folds.
    pub fn seen(&self) -> Vec<u64> {
        vec![self.plan.red_n as u64; self.plan.kept_n]
    }
}
