//! Sums, products, means and nonzero counts: `sum`, `prod`, `mean`,
//! `nansum`, `nanprod`, `nanmean`, `count_nonzero`.
//!
//! Bool and integer sums and products wrap in i64 (u64 for unsigned input)
//! as NumPy's do; integer means sum exactly in i128. Float sums and means
//! are compensated sums in f64 (see [`layout`](super::layout)); float
//! products are plain f64 products. The NaN-ignoring ops treat NaN as 0
//! (sums), 1 (products) or as absent (means).
//!
//! Float sums and means over some axes fold each tile straight into the
//! running sums ([`add_tile`](Reduction::add_tile)) and fold whole rows of
//! many tiles, or of fused chains, together
//! ([`add_rows`](Reduction::add_rows)). Over every axis they merge tile
//! states as the moments do, so a full sum or mean can be read off a
//! variance's moments, and a sum off a mean's sums
//! ([`derive`](Reduction::derive)).

use super::family::{Reduction, Tile};
use super::layout::{neumaier, resolve, Num};
use super::tile::{self, Rows};
use super::wire::{inconsistent, Reader, Writer};
use super::{floats, foreign, mismatch, shaped, ReduceOp, State};
use crate::block::Block;
use crate::dtype::{DType, Kind};
use crate::error::Result;

/// The family (see the module docs).
#[derive(Debug)]
pub(super) struct Sums;

/// One accumulator per kept element, C order over the kept shape.
#[derive(Clone, Debug)]
pub(super) enum Acc {
    /// Wrapping sums/products of bool and signed ints.
    I64(Vec<i64>),
    /// Wrapping sums/products of unsigned ints; nonzero counts.
    U64(Vec<u64>),
    /// Compensated float sums.
    FSum { s: Vec<f64>, c: Vec<f64> },
    /// Float products.
    FProd(Vec<f64>),
    /// Float means: count and compensated sum.
    FMean {
        n: Vec<u64>,
        s: Vec<f64>,
        c: Vec<f64>,
        /// A count every element has beyond `n`: tiles with no NaN rule
        /// add the same count to all, so [`add_tile`](Reduction::add_tile)
        /// adds it here once instead of to each element.
        every: u64,
    },
    /// Bool/integer means: count and exact sum.
    IMean { n: Vec<u64>, s: Vec<i128> },
}

impl Acc {
    /// The tag of this kind of accumulator in the byte encoding.
    fn tag(&self) -> u8 {
        match self {
            Acc::I64(_) => 0,
            Acc::U64(_) => 1,
            Acc::FSum { .. } => 2,
            Acc::FProd(_) => 3,
            Acc::FMean { .. } => 4,
            Acc::IMean { .. } => 5,
        }
    }
}

/// The tag of the accumulator `op` keeps for `input` (see [`Acc::tag`]):
/// what [`Sums::tile`] makes and [`Sums::derive`] gives.
fn tag_of(op: ReduceOp, input: DType) -> u8 {
    use ReduceOp::*;
    let float = input.is_float();
    let unsigned = input.kind() == Kind::Unsigned;
    match op {
        Sum | NanSum if float => 2,
        Prod | NanProd if float => 3,
        Mean | NanMean if float => 4,
        Mean | NanMean => 5,
        CountNonzero => 1,
        _ if unsigned => 1,
        _ => 0,
    }
}

/// NaN is skipped (counts as 0 in a sum, 1 in a product, is left out of a
/// mean's count).
fn skips_nan(op: ReduceOp) -> bool {
    matches!(op, ReduceOp::NanSum | ReduceOp::NanProd | ReduceOp::NanMean)
}

/// A product rather than a sum.
fn multiplies(op: ReduceOp) -> bool {
    matches!(op, ReduceOp::Prod | ReduceOp::NanProd)
}

impl Reduction for Sums {
    type State = Acc;

    fn result_dtype(op: ReduceOp, input: DType) -> DType {
        use ReduceOp::*;
        match op {
            Mean | NanMean => input.true_divide(),
            CountNonzero => DType::I64,
            _ => match input.kind() {
                Kind::Bool | Kind::Signed => DType::I64,
                Kind::Unsigned => DType::U64,
                Kind::Float => input,
            },
        }
    }

    fn bytes_per_elem(op: ReduceOp, input: DType) -> usize {
        use ReduceOp::*;
        match op {
            Sum | NanSum if input.is_float() => 16,
            Mean | NanMean => 24,
            _ => 8,
        }
    }

    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<Acc> {
        use ReduceOp::*;
        let w = t.walk();
        let (xs, plan) = (w.xs()?, &w.plan);
        let float = T::DTYPE.is_float();
        let unsigned = T::DTYPE.kind() == Kind::Unsigned;
        Ok(match op {
            Sum | NanSum if float => {
                let (s, c) = if op == Sum {
                    tile::fsum::<T, false>(xs, plan)
                } else {
                    tile::fsum::<T, true>(xs, plan)
                };
                Acc::FSum { s, c }
            }
            Sum | NanSum if unsigned => Acc::U64(tile::fold(xs, plan, 0u64, |a, x| {
                a.wrapping_add(x.to_u64())
            })),
            Sum | NanSum => Acc::I64(tile::fold(xs, plan, 0i64, |a, x| {
                a.wrapping_add(x.to_i64())
            })),
            Prod if float => Acc::FProd(tile::fold(xs, plan, 1.0f64, |a, x| a * x.to_f64())),
            // NumPy's nanprod multiplies by 1 where it finds NaN: `a * 1.0`
            // is `a`, bit for bit.
            NanProd if float => Acc::FProd(tile::fold(xs, plan, 1.0f64, |a, x| {
                let v = x.to_f64();
                if v.is_nan() {
                    a
                } else {
                    a * v
                }
            })),
            Prod | NanProd if unsigned => Acc::U64(tile::fold(xs, plan, 1u64, |a, x| {
                a.wrapping_mul(x.to_u64())
            })),
            Prod | NanProd => Acc::I64(tile::fold(xs, plan, 1i64, |a, x| {
                a.wrapping_mul(x.to_i64())
            })),
            Mean if float => {
                let (s, c) = tile::fsum::<T, false>(xs, plan);
                Acc::FMean {
                    n: w.seen(),
                    s,
                    c,
                    every: 0,
                }
            }
            NanMean if float => {
                let (s, c) = tile::fsum::<T, true>(xs, plan);
                Acc::FMean {
                    n: tile::count_valid(xs, plan),
                    s,
                    c,
                    every: 0,
                }
            }
            Mean | NanMean => Acc::IMean {
                n: w.seen(),
                s: tile::int_sum(xs, plan),
            },
            CountNonzero => Acc::U64(tile::fold(xs, plan, 0u64, |a, x| {
                a + u64::from(tile::nonzero(x))
            })),
            _ => return Err(foreign(op)),
        })
    }

    /// Float sums and means over some (not all) axes: a full reduction
    /// merges tile states, as the moments do, so that its sums can be read
    /// off a variance's (see [`derive`](Reduction::derive)).
    fn add_tile<T: Num>(op: ReduceOp, acc: &mut Acc, t: &Tile<'_, T>) -> Result<bool> {
        use ReduceOp::*;
        if !T::DTYPE.is_float()
            || !matches!(op, Sum | NanSum | Mean | NanMean)
            || t.axes.len() >= t.a.ndim()
        {
            return Ok(false);
        }
        let w = t.walk();
        let (xs, plan) = (w.xs()?, &w.plan);
        let skip = skips_nan(op);
        let (s, c) = match acc {
            Acc::FSum { s, c } => (s, c),
            Acc::FMean { n, s, c, every } => {
                if skip {
                    let valid = tile::count_valid(xs, plan);
                    // Wrapping, as `merge`: a state read from bytes must not panic.
                    n.iter_mut()
                        .zip(valid)
                        .for_each(|(n, v)| *n = n.wrapping_add(v));
                } else {
                    *every = every.wrapping_add(plan.red_n as u64);
                }
                (s, c)
            }
            _ => return Err(mismatch()),
        };
        if skip {
            tile::fsum_into::<T, true>(xs, plan, s, c);
        } else {
            tile::fsum_into::<T, false>(xs, plan, s, c);
        }
        Ok(true)
    }

    fn folds_rows(op: ReduceOp, input: DType) -> bool {
        use ReduceOp::*;
        matches!(op, Sum | NanSum | Mean | NanMean) && input.is_float()
    }

    fn empty(op: ReduceOp, _input: DType, kept_n: usize) -> Result<Acc> {
        use ReduceOp::*;
        Ok(if matches!(op, Sum | NanSum) {
            Acc::FSum {
                s: vec![0.0; kept_n],
                c: vec![0.0; kept_n],
            }
        } else {
            Acc::FMean {
                n: vec![0; kept_n],
                s: vec![0.0; kept_n],
                c: vec![0.0; kept_n],
                every: 0,
            }
        })
    }

    fn add_rows<T: Num, R: Rows<T> + ?Sized>(op: ReduceOp, acc: &mut Acc, rows: &R) -> Result<()> {
        let skip = skips_nan(op);
        let (s, c, n) = match acc {
            Acc::FSum { s, c } => (s, c, None),
            Acc::FMean { n, s, c, every } => {
                if skip {
                    (s, c, Some(n.as_mut_slice()))
                } else {
                    *every = every.wrapping_add(rows.count() as u64);
                    (s, c, None)
                }
            }
            _ => return Err(mismatch()),
        };
        if skip {
            tile::fsum_rows_into::<T, true, R>(rows, s, c, n);
        } else {
            tile::fsum_rows_into::<T, false, R>(rows, s, c, n);
        }
        Ok(())
    }

    fn merge(op: ReduceOp, acc: &mut Acc, next: Acc) -> Result<()> {
        // Counts and exact sums add wrapping: partials of real input never
        // come near the limits, and one read from bytes must not panic.
        match (acc, next) {
            (Acc::I64(a), Acc::I64(b)) => {
                let f = if multiplies(op) {
                    i64::wrapping_mul
                } else {
                    i64::wrapping_add
                };
                a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, b));
            }
            (Acc::U64(a), Acc::U64(b)) => {
                let f = if multiplies(op) {
                    u64::wrapping_mul
                } else {
                    u64::wrapping_add
                };
                a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, b));
            }
            (Acc::FSum { s, c }, Acc::FSum { s: s2, c: c2 }) => merge_sums(s, c, &s2, &c2),
            (Acc::FProd(a), Acc::FProd(b)) => a.iter_mut().zip(b).for_each(|(a, b)| *a *= b),
            (
                Acc::FMean { n, s, c, every },
                Acc::FMean {
                    n: n2,
                    s: s2,
                    c: c2,
                    every: e2,
                },
            ) => {
                merge_sums(s, c, &s2, &c2);
                *every = every.wrapping_add(e2);
                n.iter_mut()
                    .zip(n2)
                    .for_each(|(a, b)| *a = a.wrapping_add(b));
            }
            (Acc::IMean { n, s }, Acc::IMean { n: n2, s: s2 }) => {
                s.iter_mut()
                    .zip(s2)
                    .for_each(|(a, b)| *a = a.wrapping_add(b));
                n.iter_mut()
                    .zip(n2)
                    .for_each(|(a, b)| *a = a.wrapping_add(b));
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    fn finalize(op: ReduceOp, input: DType, acc: Acc, kept: &[usize]) -> Result<Block> {
        let out = Self::result_dtype(op, input);
        let ints = |v: Vec<i64>| shaped(Block::from(ndarray::Array1::from(v).into_dyn()), kept);
        match acc {
            Acc::I64(v) => ints(v),
            Acc::U64(v) if op == ReduceOp::CountNonzero => {
                ints(v.into_iter().map(|x| x as i64).collect())
            }
            Acc::U64(v) => shaped(Block::from(ndarray::Array1::from(v).into_dyn()), kept),
            Acc::FSum { s, c } => floats(
                s.iter().zip(&c).map(|(&s, &c)| resolve(s, c)).collect(),
                out,
                kept,
            ),
            Acc::FProd(v) => floats(v, out, kept),
            Acc::FMean { n, s, c, every } => floats(
                n.iter()
                    .zip(s.iter().zip(&c))
                    .map(|(&n, (&s, &c))| resolve(s, c) / n.wrapping_add(every) as f64)
                    .collect(),
                out,
                kept,
            ),
            Acc::IMean { n, s } => floats(
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
                out,
                kept,
            ),
        }
    }

    fn derives_from(op: ReduceOp, leader: ReduceOp, input: DType, full: bool) -> bool {
        use ReduceOp::*;
        if !input.is_float() {
            return false;
        }
        match leader {
            Var { .. } | Std { .. } => full && matches!(op, Sum | Mean),
            NanVar { .. } | NanStd { .. } => full && matches!(op, NanSum | NanMean),
            Mean => op == Sum,
            NanMean => op == NanSum,
            _ => false,
        }
    }

    fn derive(op: ReduceOp, from: &State) -> Option<Acc> {
        use ReduceOp::*;
        Some(match (from, op) {
            (State::Moments(m), Sum | NanSum) => Acc::FSum {
                s: m.s.clone(),
                c: m.c.clone(),
            },
            (State::Moments(m), Mean | NanMean) => Acc::FMean {
                n: m.n.clone(),
                s: m.s.clone(),
                c: m.c.clone(),
                every: 0,
            },
            (State::Sums(Acc::FMean { s, c, .. }), Sum | NanSum) => Acc::FSum {
                s: s.clone(),
                c: c.clone(),
            },
            _ => return None,
        })
    }

    fn lead_rank(op: ReduceOp) -> u8 {
        match op {
            ReduceOp::Mean | ReduceOp::NanMean => 1,
            ReduceOp::Sum | ReduceOp::NanSum => 2,
            _ => 3,
        }
    }

    /// A tag (0 wrapping i64s, 1 wrapping u64s or counts, 2 compensated
    /// sums, 3 float products, 4 float means, 5 exact means), then per tag:
    /// the i64s; the u64s; the sums and their compensations (f64s); the
    /// products (f64s); `every` (u64), the counts (u64s), sums and
    /// compensations (f64s); the counts (u64s) and sums (i128s).
    fn encode(acc: &Acc, w: &mut Writer) {
        w.u8(acc.tag());
        match acc {
            Acc::I64(v) => w.i64s(v),
            Acc::U64(v) => w.u64s(v),
            Acc::FSum { s, c } => {
                w.f64s(s);
                w.f64s(c);
            }
            Acc::FProd(v) => w.f64s(v),
            Acc::FMean { n, s, c, every } => {
                w.u64(*every);
                w.u64s(n);
                w.f64s(s);
                w.f64s(c);
            }
            Acc::IMean { n, s } => {
                w.u64s(n);
                w.i128s(s);
            }
        }
    }

    fn decode(op: ReduceOp, input: DType, kept: &[usize], r: &mut Reader<'_>) -> Result<Acc> {
        let n: usize = kept.iter().product();
        let tag = tag_of(op, input);
        r.tag(tag, op.name())?;
        Ok(match tag {
            0 => Acc::I64(r.i64s(n)?),
            1 => Acc::U64(r.u64s(n)?),
            2 => Acc::FSum {
                s: r.f64s(n)?,
                c: r.f64s(n)?,
            },
            3 => Acc::FProd(r.f64s(n)?),
            4 => Acc::FMean {
                every: r.u64()?,
                n: r.u64s(n)?,
                s: r.f64s(n)?,
                c: r.f64s(n)?,
            },
            5 => Acc::IMean {
                n: r.u64s(n)?,
                s: r.i128s(n)?,
            },
            t => return Err(inconsistent(format!("sums state tag {t}"))),
        })
    }
}

fn merge_sums(s: &mut [f64], c: &mut [f64], s2: &[f64], c2: &[f64]) {
    for ((s, c), (&s2, &c2)) in s.iter_mut().zip(c.iter_mut()).zip(s2.iter().zip(c2)) {
        neumaier(s, c, s2);
        *c += c2;
    }
}
