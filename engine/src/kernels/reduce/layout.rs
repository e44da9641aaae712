//! How a tile is walked, and the summation primitives every float reduction
//! shares.
//!
//! A C-contiguous tile reduced over some axes is a sequence of contiguous
//! *segments*. Size-1 axes are dropped, neighbouring axes of the same kind
//! (kept / reduced) are merged into groups, and the innermost group decides
//! the segment kind:
//!
//! - innermost group reduced: each segment is a [`Seg::Run`], a contiguous
//!   run of elements that all fold into **one** kept element;
//! - innermost group kept: each segment is a [`Seg::Row`], a contiguous row of
//!   kept elements that each receive **one** element (the row-by-row
//!   accumulation of `mean(axis=0)`).
//!
//! Segments come in memory order, so every kept element sees its elements in
//! increasing tile-local reduced index (C order over the tile's reduced axes),
//! and a run's elements have consecutive reduced indexes. Both facts let the
//! arg-reductions keep "first occurrence" without any index math per element.
//!
//! Summation: runs are summed in blocks of [`BLOCK`] elements with 16 f64
//! lanes (the innermost level of NumPy's pairwise sum), and the block sums
//! are Neumaier-added into a `(sum, compensation)` pair, so the error grows
//! with the block size only, never with the run length. Rows are
//! Neumaier-added element by element (branch-free, so it vectorises).

use crate::block::BlockElement;
use crate::dtype::Element;

/// Elements per pairwise block of a run.
pub(super) const BLOCK: usize = 128;

/// The element types the reduction kernels are instantiated for (every
/// [`DType`](crate::DType)), with the extremes used as identities.
pub(super) trait Num: Element + BlockElement {
    /// The largest value (+inf for floats): the identity of `min`.
    const TOP: Self;
    /// The smallest value (-inf for floats): the identity of `max`.
    const BOTTOM: Self;
    /// The exact value as an i128 (integers and bool; floats saturate and are
    /// never asked).
    fn wide(self) -> i128;
}

macro_rules! num_int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const TOP: Self = <$t>::MAX;
            const BOTTOM: Self = <$t>::MIN;
            #[inline]
            fn wide(self) -> i128 {
                self as i128
            }
        }
    )*};
}
num_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Num for bool {
    const TOP: Self = true;
    const BOTTOM: Self = false;
    #[inline]
    fn wide(self) -> i128 {
        self as i128
    }
}

macro_rules! num_float {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const TOP: Self = <$t>::INFINITY;
            const BOTTOM: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn wide(self) -> i128 {
                self as i128
            }
        }
    )*};
}
num_float!(f32, f64);

/// `x` as f64, or 0 when `SKIP` and `x` is NaN (the NaN-ignoring ops).
#[inline(always)]
pub(super) fn val<T: Num, const SKIP: bool>(x: T) -> f64 {
    let v = x.to_f64();
    if SKIP && v.is_nan() {
        0.0
    } else {
        v
    }
}

/// `xs` as a slice of `U` when `T` is `U` (same dtype), else `None`.
#[inline(always)]
pub(super) fn cast<T: Num, U: Num>(xs: &[T]) -> Option<&[U]> {
    (T::DTYPE == U::DTYPE).then(|| {
        // SAFETY: equal dtypes mean T and U are the same type.
        unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<U>(), xs.len()) }
    })
}

/// Neumaier's compensated addition of `x` into `(s, c)`.
#[inline(always)]
pub(super) fn neumaier(s: &mut f64, c: &mut f64, x: f64) {
    let t = *s + x;
    *c += if s.abs() >= x.abs() {
        (*s - t) + x
    } else {
        (x - t) + *s
    };
    *s = t;
}

/// Knuth's TwoSum addition of `x` into `(s, c)`. The error term it adds
/// is the exact rounding error of `s + x`, as [`neumaier`]'s is, so the
/// bits are the same, with no comparison or select (seven operations, not
/// ten). Its intermediates can overflow where Neumaier's do not, but only
/// with `|s|` or `|x|` near `f64::MAX`: it serves the sums of `f32`
/// elements, which never get there.
#[inline(always)]
pub(super) fn two_sum(s: &mut f64, c: &mut f64, x: f64) {
    let t = *s + x;
    let z = t - *s;
    *c += (*s - (t - z)) + (x - z);
    *s = t;
}

/// The value of a compensated pair. Once the sum is infinite or NaN the
/// compensation is meaningless (inf - inf) and is dropped, as NumPy's sum
/// would give the bare inf/NaN.
#[inline]
pub(super) fn resolve(s: f64, c: f64) -> f64 {
    if s.is_finite() {
        s + c
    } else {
        s
    }
}

/// Lanes of a block sum: four independent chains of four f64, enough to
/// hide the latency of an addition.
pub(super) const LANES: usize = 16;

/// How [`block_sum`] and [`block_sq`] combine their lanes: lanes `i`,
/// `i + 4`, `i + 8`, `i + 12` first (as four-wide vectors would), then the
/// four results pairwise.
#[inline(always)]
pub(super) fn combine(l: &[f64; LANES]) -> f64 {
    let t: [f64; 4] = std::array::from_fn(|i| (l[i] + l[i + 4]) + (l[i + 8] + l[i + 12]));
    (t[0] + t[1]) + (t[2] + t[3])
}

/// Plain sum of at most [`BLOCK`] values of `f(x)`: lane `i` adds elements
/// `i, i + 16, ...` in order, the tail is added one by one, and the lanes
/// are [`combine`]d.
#[inline(always)]
pub(super) fn block_sum<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut l = [0.0f64; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for ch in &mut chunks {
        for i in 0..LANES {
            l[i] += f(ch[i]);
        }
    }
    let mut tail = 0.0;
    for &x in chunks.remainder() {
        tail += f(x);
    }
    combine(&l) + tail
}

/// Plain sum of the squares `f(x)²` of at most [`BLOCK`] values, in the
/// lanes of [`block_sum`], each square fused into its lane's addition
/// (`mul_add`, one rounding).
#[inline(always)]
pub(super) fn block_sq<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut l = [0.0f64; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for ch in &mut chunks {
        for i in 0..LANES {
            let d = f(ch[i]);
            l[i] = d.mul_add(d, l[i]);
        }
    }
    let mut tail = 0.0f64;
    for &x in chunks.remainder() {
        let d = f(x);
        tail = d.mul_add(d, tail);
    }
    combine(&l) + tail
}

/// Compensated sum of `f(x)` over a run into `(s, c)`.
#[inline(always)]
pub(super) fn run_sum<T: Copy>(s: &mut f64, c: &mut f64, xs: &[T], f: impl Fn(T) -> f64 + Copy) {
    for blk in xs.chunks(BLOCK) {
        neumaier(s, c, block_sum(blk, f));
    }
}

/// [`row_sum`] of `f32` elements, with [`two_sum`] (the same bits).
#[inline(always)]
pub(super) fn row_sum_f32(s: &mut [f64], c: &mut [f64], xs: &[f32], f: impl Fn(f32) -> f64) {
    for ((s, c), &x) in s.iter_mut().zip(c.iter_mut()).zip(xs) {
        two_sum(s, c, f(x));
    }
}

/// Compensated elementwise accumulation of `f(x)` of a row into `(s, c)`.
#[inline(always)]
pub(super) fn row_sum<T: Copy>(s: &mut [f64], c: &mut [f64], xs: &[T], f: impl Fn(T) -> f64) {
    for ((s, c), &x) in s.iter_mut().zip(c.iter_mut()).zip(xs) {
        neumaier(s, c, f(x));
    }
}

/// One contiguous piece of a tile (see the module docs).
#[derive(Debug)]
pub(super) enum Seg<'a, T> {
    /// Elements with reduced indexes `red..red + xs.len()`, all folding into
    /// kept element `kept`.
    Run {
        kept: usize,
        red: usize,
        xs: &'a [T],
    },
    /// One element (reduced index `red`) for each of the kept elements
    /// `kept..kept + xs.len()`.
    Row {
        kept: usize,
        red: usize,
        xs: &'a [T],
    },
}

#[derive(Clone, Copy, Debug)]
struct Group {
    len: usize,
    reduced: bool,
    /// Step of the kept (or reduced) flat index per step of this group.
    stride: usize,
}

/// The walk of a C-contiguous tile of `shape` reduced over `axes`.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// Outer groups, outermost first (the innermost group is separate).
    outer: Vec<Group>,
    inner_len: usize,
    inner_reduced: bool,
    total: usize,
    /// Number of kept elements (product of the kept axes).
    pub kept_n: usize,
    /// Number of elements each kept element folds (product of the reduced axes).
    pub red_n: usize,
}

impl Plan {
    /// The walk of `shape` reduced over `axes` (sorted, in range).
    pub fn new(shape: &[usize], axes: &[usize]) -> Plan {
        let total: usize = shape.iter().product();
        let kept_n: usize = (0..shape.len())
            .filter(|d| !axes.contains(d))
            .map(|d| shape[d])
            .product();
        let red_n: usize = axes.iter().map(|&d| shape[d]).product();
        let mut groups: Vec<Group> = Vec::new();
        for (d, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let reduced = axes.contains(&d);
            match groups.last_mut() {
                Some(g) if g.reduced == reduced => g.len *= n,
                _ => groups.push(Group {
                    len: n,
                    reduced,
                    stride: 0,
                }),
            }
        }
        let (mut ks, mut rs) = (1usize, 1usize);
        for g in groups.iter_mut().rev() {
            if g.reduced {
                g.stride = rs;
                rs *= g.len;
            } else {
                g.stride = ks;
                ks *= g.len;
            }
        }
        let (inner_len, inner_reduced) = match groups.pop() {
            Some(g) => (g.len, g.reduced),
            None => (1, true),
        };
        Plan {
            outer: groups,
            inner_len,
            inner_reduced,
            total,
            kept_n,
            red_n,
        }
    }

    /// When every segment is a whole [`Seg::Row`] (no kept axis outside a
    /// reduced one, and some kept axis longer than 1): the tile is
    /// `red_n` rows of `kept_n` elements, walked first to last.
    pub fn whole_rows(&self) -> bool {
        self.total > 0 && !self.inner_reduced && self.outer.iter().all(|g| g.reduced)
    }

    /// Call `f` on every segment of `data` (the tile in C order), in memory
    /// order.
    #[inline(always)]
    pub fn walk<'a, T>(&self, data: &'a [T], mut f: impl FnMut(Seg<'a, T>)) {
        if self.total == 0 || data.len() != self.total {
            return;
        }
        let mut idx = vec![0usize; self.outer.len()];
        let (mut kept, mut red) = (0usize, 0usize);
        for xs in data.chunks_exact(self.inner_len) {
            f(if self.inner_reduced {
                Seg::Run { kept, red, xs }
            } else {
                Seg::Row { kept, red, xs }
            });
            for (g, i) in self.outer.iter().zip(idx.iter_mut()).rev() {
                let off = if g.reduced { &mut red } else { &mut kept };
                *i += 1;
                *off += g.stride;
                if *i < g.len {
                    break;
                }
                *i = 0;
                *off -= g.len * g.stride;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is visited once, at the kept/reduced flat indexes a
    /// direct unravel gives.
    #[test]
    fn walk_visits_every_element_at_its_indexes() {
        let shape = [2usize, 3, 1, 4, 2];
        for axes in [
            vec![],
            vec![0],
            vec![1],
            vec![4],
            vec![1, 3],
            vec![0, 2, 4],
            vec![0, 1, 2, 3, 4],
        ] {
            let plan = Plan::new(&shape, &axes);
            let data: Vec<usize> = (0..plan.kept_n * plan.red_n).collect();
            let mut seen = vec![None; data.len()];
            plan.walk(&data, |seg| match seg {
                Seg::Run { kept, red, xs } => {
                    for (j, &e) in xs.iter().enumerate() {
                        seen[e] = Some((kept, red + j));
                    }
                }
                Seg::Row { kept, red, xs } => {
                    for (j, &e) in xs.iter().enumerate() {
                        seen[e] = Some((kept + j, red));
                    }
                }
            });
            for (e, s) in seen.iter().enumerate() {
                // Unravel e and ravel over kept / reduced axes.
                let mut rem = e;
                let mut coord = [0usize; 5];
                for d in (0..5).rev() {
                    coord[d] = rem % shape[d];
                    rem /= shape[d];
                }
                let (mut k, mut r) = (0, 0);
                for d in 0..5 {
                    if axes.contains(&d) {
                        r = r * shape[d] + coord[d];
                    } else {
                        k = k * shape[d] + coord[d];
                    }
                }
                assert_eq!(*s, Some((k, r)), "axes {axes:?} element {e}");
            }
        }
    }

    #[test]
    fn neumaier_recovers_lost_bits() {
        let (mut s, mut c) = (0.0, 0.0);
        for x in [1.0, 1e100, 1.0, -1e100] {
            neumaier(&mut s, &mut c, x);
        }
        assert_eq!(resolve(s, c), 2.0);
        let (mut s, mut c) = (0.0, 0.0);
        neumaier(&mut s, &mut c, f64::INFINITY);
        neumaier(&mut s, &mut c, 1.0);
        assert_eq!(resolve(s, c), f64::INFINITY);
    }

    #[test]
    fn two_sum_has_neumaiers_bits_on_f32_elements() {
        // Mixed magnitudes and signs, cancellations, zeros, subnormals,
        // infinities and NaN: every (s, c) pair must match bit for bit.
        let mut xs: Vec<f32> = vec![0.0, -0.0, 1e-45, -1e-45, f32::MAX, -f32::MAX, 3.0e38, 1.0];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let m = ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            let e = ((state >> 3) % 76) as i32 - 40;
            xs.push((m * 10f64.powi(e)) as f32);
        }
        for tail in [vec![], vec![f32::INFINITY, 1.0], vec![f32::NAN, 2.0]] {
            let (mut s1, mut c1, mut s2, mut c2) = (0.0, 0.0, 0.0, 0.0);
            for &x in xs.iter().chain(&tail) {
                neumaier(&mut s1, &mut c1, f64::from(x));
                two_sum(&mut s2, &mut c2, f64::from(x));
                assert_eq!(s1.to_bits(), s2.to_bits());
                if s1.is_finite() {
                    assert_eq!(c1.to_bits(), c2.to_bits(), "after {x}");
                }
            }
            assert_eq!(resolve(s1, c1).to_bits(), resolve(s2, c2).to_bits());
        }
    }
}
