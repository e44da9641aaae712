//! Index of the extreme: `argmin`, `argmax`.
//!
//! Each kept element keeps its best value so far, that value's global
//! index, whether it is a NaN (the first NaN wins, as in NumPy), and how
//! many elements it saw. Indexes are global: along the reduced axis, or
//! the C-order flat index over the reduced axes of the full input; ties go
//! to the lower index. Under a mask the index is the position in the
//! masked 1-D array: each tile then records the flat input range it
//! covers, and merging shifts `next`'s positions past everything `acc`
//! counted, which needs the tiles to be contiguous C-order ranges merged
//! in order.

use super::extremes::beats;
use super::family::{Reduction, Tile};
use super::layout::Num;
use super::tile;
use super::wire::{inconsistent, Reader, Writer};
use super::{mismatch, shaped, ReduceOp};
use crate::block::{Block, BlockElement};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The family (see the module docs).
#[derive(Debug)]
pub(super) struct Arg;

/// Best value (1-D block of the input dtype), its global index (-1: none),
/// whether it is a NaN, elements seen; one of each per kept element. Under
/// a mask, the flat input range covered.
#[derive(Clone, Debug)]
pub(super) struct Best {
    v: Block,
    idx: Vec<i64>,
    nan: Vec<bool>,
    n: Vec<u64>,
    span: Option<(u64, u64)>,
}

impl Reduction for Arg {
    type State = Best;

    fn result_dtype(_op: ReduceOp, _input: DType) -> DType {
        DType::I64
    }

    fn bytes_per_elem(_op: ReduceOp, input: DType) -> usize {
        input.size() + 17
    }

    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<Best> {
        let w = t.walk();
        let span = match t.mask {
            Some(_) => Some(flat_span(t.a.shape(), t.origin, t.full_shape)?),
            None => None,
        };
        let (xs, plan) = (w.xs()?, &w.plan);
        let (v, mut idx, nan) = if op == ReduceOp::ArgMax {
            tile::arg::<T, true>(xs, plan)
        } else {
            tile::arg::<T, false>(xs, plan)
        };
        if span.is_none() {
            // Tile-local reduced index -> global index over the reduced
            // axes of the full input (monotone, so "first" is kept).
            for i in idx.iter_mut().filter(|i| **i >= 0) {
                *i = global_index(*i as u64, t.a.shape(), t.axes, t.origin, t.full_shape) as i64;
            }
        }
        Ok(Best {
            v: T::into_block(ndarray::Array1::from(v).into_dyn()),
            idx,
            nan,
            n: w.seen(),
            span,
        })
    }

    fn merge(op: ReduceOp, acc: &mut Best, next: Best) -> Result<()> {
        let Best {
            v: v2,
            idx: mut idx2,
            nan: nan2,
            n: n2,
            span: span2,
        } = next;
        match (acc.span, span2) {
            (None, None) => {}
            (Some((s0, e0)), Some((s1, e1))) if e0 == s1 => {
                // Masked: next's positions follow everything in acc
                // (wrapping: a state read from bytes must not panic).
                for (i, &c) in idx2.iter_mut().zip(acc.n.iter()) {
                    if *i >= 0 {
                        *i = i.wrapping_add(c as i64);
                    }
                }
                acc.span = Some((s0, e1));
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
        let (idx, nan) = (&mut acc.idx, &mut acc.nan);
        crate::with_block!(&mut acc.v, a, T => {
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
        acc.n
            .iter_mut()
            .zip(n2)
            .for_each(|(a, b)| *a = a.wrapping_add(b));
        Ok(())
    }

    fn finalize(op: ReduceOp, _input: DType, b: Best, kept: &[usize]) -> Result<Block> {
        if b.n.contains(&0) {
            let name = if op == ReduceOp::ArgMin {
                "argmin"
            } else {
                "argmax"
            };
            return Err(Error::invalid(
                "reduce",
                "axis",
                format!("attempt to get {name} of an empty sequence"),
            ));
        }
        shaped(Block::from(ndarray::Array1::from(b.idx).into_dyn()), kept)
    }

    /// The best values (values of the input dtype), their indexes (i64s),
    /// the NaN flags (bools), the counts (u64s), then a flag (bool) for a
    /// masked range and, if set, its start and end (u64).
    fn encode(b: &Best, w: &mut Writer) {
        w.block(&b.v);
        w.i64s(&b.idx);
        w.bools(&b.nan);
        w.u64s(&b.n);
        w.bools(&[b.span.is_some()]);
        if let Some((s, e)) = b.span {
            w.u64(s);
            w.u64(e);
        }
    }

    fn decode(_op: ReduceOp, input: DType, kept: &[usize], r: &mut Reader<'_>) -> Result<Best> {
        let n: usize = kept.iter().product();
        let b = Best {
            v: r.block(input, n)?,
            idx: r.i64s(n)?,
            nan: r.bools(n)?,
            n: r.u64s(n)?,
            span: if r.bool()? {
                Some((r.u64()?, r.u64()?))
            } else {
                None
            },
        };
        if b.idx.iter().any(|&i| i < -1) {
            return Err(inconsistent("argmin/argmax index below -1"));
        }
        if b.span.is_some_and(|(s, e)| s > e) {
            return Err(inconsistent(
                "argmin/argmax masked range ends before it starts",
            ));
        }
        Ok(b)
    }
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
