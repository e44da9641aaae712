//! Truth of any or all elements: `any`, `all`.
//!
//! An element is true when it is nonzero, as NumPy's truth value (NaN is
//! true, -0.0 false). Over nothing `any` is false and `all` true.

use super::family::{Reduction, Tile};
use super::layout::Num;
use super::tile;
use super::wire::{Reader, Writer};
use super::{shaped, ReduceOp};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;

/// The family (see the module docs); its state is one bool per kept
/// element.
#[derive(Debug)]
pub(super) struct Boolean;

impl Reduction for Boolean {
    type State = Vec<bool>;

    fn result_dtype(_op: ReduceOp, _input: DType) -> DType {
        DType::Bool
    }

    fn bytes_per_elem(_op: ReduceOp, _input: DType) -> usize {
        1
    }

    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<Vec<bool>> {
        let w = t.walk();
        let (xs, plan) = (w.xs()?, &w.plan);
        Ok(if op == ReduceOp::All {
            tile::fold(xs, plan, true, |a, x| a & tile::nonzero(x))
        } else {
            tile::fold(xs, plan, false, |a, x| a | tile::nonzero(x))
        })
    }

    fn merge(op: ReduceOp, acc: &mut Vec<bool>, next: Vec<bool>) -> Result<()> {
        if op == ReduceOp::All {
            acc.iter_mut().zip(next).for_each(|(a, b)| *a &= b);
        } else {
            acc.iter_mut().zip(next).for_each(|(a, b)| *a |= b);
        }
        Ok(())
    }

    fn finalize(_op: ReduceOp, _input: DType, v: Vec<bool>, kept: &[usize]) -> Result<Block> {
        shaped(Block::from(ndarray::Array1::from(v).into_dyn()), kept)
    }

    /// The truth values (bools).
    fn encode(v: &Vec<bool>, w: &mut Writer) {
        w.bools(v);
    }

    fn decode(
        _op: ReduceOp,
        _input: DType,
        kept: &[usize],
        r: &mut Reader<'_>,
    ) -> Result<Vec<bool>> {
        r.bools(kept.iter().product())
    }
}
