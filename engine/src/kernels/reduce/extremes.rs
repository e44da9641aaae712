//! Minimum and maximum: `min`, `max`, `nanmin`, `nanmax`.
//!
//! Each kept element keeps the extreme of its non-NaN values (in the input
//! dtype), how many elements it saw, and whether it saw a NaN and a
//! non-NaN. `min`/`max` give NaN if any element is NaN, `nanmin`/`nanmax`
//! only if all are; over nothing they are NumPy's error.

use super::family::{Reduction, Tile};
use super::layout::Num;
use super::tile;
use super::wire::{Reader, Writer};
use super::{foreign, mismatch, shaped, ReduceOp};
use crate::block::{Block, BlockElement};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The family (see the module docs).
#[derive(Debug)]
pub(super) struct Extremes;

/// The extreme ignoring NaNs (a 1-D block of the input dtype), elements
/// seen, any NaN seen, any non-NaN seen; one of each per kept element.
#[derive(Clone, Debug)]
pub(super) struct Extreme {
    v: Block,
    n: Vec<u64>,
    nan: Vec<bool>,
    valid: Vec<bool>,
}

/// The maximum rather than the minimum.
fn is_max(op: ReduceOp) -> bool {
    matches!(op, ReduceOp::Max | ReduceOp::NanMax)
}

/// `y` is strictly better than `x` (larger when `max`, else smaller).
#[inline]
pub(super) fn beats<T: PartialOrd>(max: bool, y: T, x: T) -> bool {
    if max {
        y > x
    } else {
        y < x
    }
}

impl Reduction for Extremes {
    type State = Extreme;

    fn result_dtype(_op: ReduceOp, input: DType) -> DType {
        input
    }

    fn bytes_per_elem(_op: ReduceOp, input: DType) -> usize {
        input.size() + 10
    }

    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<Extreme> {
        let w = t.walk();
        let (xs, plan) = (w.xs()?, &w.plan);
        let (v, nan, valid) = if is_max(op) {
            tile::extreme::<T, true>(xs, plan)
        } else {
            tile::extreme::<T, false>(xs, plan)
        };
        Ok(Extreme {
            v: T::into_block(ndarray::Array1::from(v).into_dyn()),
            n: w.seen(),
            nan,
            valid,
        })
    }

    fn merge(op: ReduceOp, acc: &mut Extreme, next: Extreme) -> Result<()> {
        let max = is_max(op);
        crate::with_block!(&mut acc.v, a, T => {
            let b = T::from_block(next.v).map_err(|_| mismatch())?;
            for (x, &y) in a.iter_mut().zip(b.iter()) {
                if beats(max, y, *x) {
                    *x = y;
                }
            }
        });
        // Wrapping: real counts never come near the limit, and a state read
        // from bytes must not panic.
        acc.n
            .iter_mut()
            .zip(next.n)
            .for_each(|(a, b)| *a = a.wrapping_add(b));
        acc.nan.iter_mut().zip(next.nan).for_each(|(a, b)| *a |= b);
        acc.valid
            .iter_mut()
            .zip(next.valid)
            .for_each(|(a, b)| *a |= b);
        Ok(())
    }

    fn finalize(op: ReduceOp, _input: DType, e: Extreme, kept: &[usize]) -> Result<Block> {
        use ReduceOp::*;
        let Extreme { v, n, nan, valid } = e;
        if n.contains(&0) {
            let name = match op {
                Min => "minimum",
                Max => "maximum",
                NanMin => "fmin",
                NanMax => "fmax",
                _ => return Err(foreign(op)),
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
        shaped(b, kept)
    }

    /// The extremes (values of the input dtype), the counts (u64s), the
    /// NaN flags and the non-NaN flags (bools).
    fn encode(e: &Extreme, w: &mut Writer) {
        w.block(&e.v);
        w.u64s(&e.n);
        w.bools(&e.nan);
        w.bools(&e.valid);
    }

    fn decode(_op: ReduceOp, input: DType, kept: &[usize], r: &mut Reader<'_>) -> Result<Extreme> {
        let n: usize = kept.iter().product();
        Ok(Extreme {
            v: r.block(input, n)?,
            n: r.u64s(n)?,
            nan: r.bools(n)?,
            valid: r.bools(n)?,
        })
    }
}
