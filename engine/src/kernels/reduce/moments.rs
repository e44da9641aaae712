//! Variance and standard deviation: `var`, `std`, `nanvar`, `nanstd`.
//!
//! Each tile by the corrected two-pass formula ([`tile::moments`]), tiles
//! combined with Chan, Golub & LeVeque's pairwise update of
//! `(count, compensated sum, M2)`; the result is `M2 / max(n - ddof, 0)`
//! as NumPy's `var` computes it (inf when `n <= ddof` and `M2 > 0`, NaN
//! when `M2` is 0), except that `nanvar`/`nanstd` of floats give NaN when
//! `n <= ddof` (NumPy's nan-ops on integers are the plain ones), and its
//! square root for the standard deviations. The
//! NaN-ignoring ops leave NaNs out of the count, the sum and `M2`. A
//! variance and a standard deviation with the same NaN rule keep the same
//! moments whatever their `ddof`, so one derives from the other.

use super::family::{Reduction, Tile};
use super::layout::{neumaier, resolve, Num};
use super::tile;
use super::wire::{Reader, Writer};
use super::{floats, foreign, ReduceOp, State};
use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;

/// The family (see the module docs); its state is [`tile::Moments`].
#[derive(Debug)]
pub(super) struct Moments;

/// NaNs are left out.
fn skips_nan(op: ReduceOp) -> bool {
    matches!(op, ReduceOp::NanVar { .. } | ReduceOp::NanStd { .. })
}

impl Reduction for Moments {
    type State = tile::Moments;

    fn result_dtype(_op: ReduceOp, input: DType) -> DType {
        input.true_divide()
    }

    fn bytes_per_elem(_op: ReduceOp, _input: DType) -> usize {
        40
    }

    fn tile<T: Num>(op: ReduceOp, t: &Tile<'_, T>) -> Result<tile::Moments> {
        let w = t.walk();
        let (xs, plan) = (w.xs()?, &w.plan);
        Ok(if skips_nan(op) {
            tile::moments::<T, true>(xs, plan, tile::count_valid(xs, plan))
        } else {
            tile::moments::<T, false>(xs, plan, w.seen())
        })
    }

    fn merge(_op: ReduceOp, acc: &mut tile::Moments, next: tile::Moments) -> Result<()> {
        merge_moments(acc, &next);
        Ok(())
    }

    fn finalize(op: ReduceOp, input: DType, m: tile::Moments, kept: &[usize]) -> Result<Block> {
        use ReduceOp::*;
        let ddof = match op {
            Var { ddof } | Std { ddof } | NanVar { ddof } | NanStd { ddof } => ddof,
            _ => return Err(foreign(op)),
        };
        let sqrt = matches!(op, Std { .. } | NanStd { .. });
        let nan_rule = matches!(op, NanVar { .. } | NanStd { .. }) && input.is_float();
        floats(
            (0..m.n.len())
                .map(|j| {
                    let dof = m.n[j] as f64 - f64::from(ddof);
                    let var = if dof <= 0.0 && nan_rule {
                        f64::NAN
                    } else {
                        // Rounding can leave a tiny negative M2; NaN stays NaN.
                        let m2 = resolve(m.m2[j], m.m2c[j]);
                        (if m2 < 0.0 { 0.0 } else { m2 }) / dof.max(0.0)
                    };
                    if sqrt {
                        var.sqrt()
                    } else {
                        var
                    }
                })
                .collect(),
            Self::result_dtype(op, input),
            kept,
        )
    }

    fn derives_from(op: ReduceOp, leader: ReduceOp, input: DType, _full: bool) -> bool {
        use ReduceOp::*;
        input.is_float()
            && match leader {
                Var { .. } | Std { .. } => matches!(op, Var { .. } | Std { .. }),
                NanVar { .. } | NanStd { .. } => matches!(op, NanVar { .. } | NanStd { .. }),
                _ => false,
            }
    }

    fn derive(_op: ReduceOp, from: &State) -> Option<tile::Moments> {
        match from {
            State::Moments(m) => Some(m.clone()),
            _ => None,
        }
    }

    fn lead_rank(_op: ReduceOp) -> u8 {
        0
    }

    /// The counts (u64s), sums, their compensations, `M2`s and their
    /// compensations (f64s).
    fn encode(m: &tile::Moments, w: &mut Writer) {
        w.u64s(&m.n);
        w.f64s(&m.s);
        w.f64s(&m.c);
        w.f64s(&m.m2);
        w.f64s(&m.m2c);
    }

    fn decode(
        _op: ReduceOp,
        _input: DType,
        kept: &[usize],
        r: &mut Reader<'_>,
    ) -> Result<tile::Moments> {
        let n: usize = kept.iter().product();
        Ok(tile::Moments {
            n: r.u64s(n)?,
            s: r.f64s(n)?,
            c: r.f64s(n)?,
            m2: r.f64s(n)?,
            m2c: r.f64s(n)?,
        })
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
fn merge_moments(a: &mut tile::Moments, b: &tile::Moments) {
    for j in 0..a.n.len().min(b.n.len()) {
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
        // Wrapping: real counts never come near the limit, and a state
        // read from bytes must not panic.
        a.n[j] = na.wrapping_add(nb);
    }
}
