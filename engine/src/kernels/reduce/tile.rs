//! Per-tile kernels: each walks one C-contiguous tile (see
//! [`layout`](super::layout)) and returns the tile's state, one accumulator
//! per kept element, kept elements in C order.
//!
//! Every kernel handles both segment kinds: a run folds into one local
//! accumulator (so the loop keeps it in registers and vectorises), a row
//! updates a slice of accumulators elementwise. The result depends only on
//! the tile's contents, never on threads.

use super::layout::{
    block_sq, cast, neumaier, resolve, row_sum, row_sum_f32, run_sum, val, Num, Plan, Seg, BLOCK,
};
#[cfg(target_arch = "x86_64")]
use super::simd;

/// Fold `f` over every element into one accumulator per kept element.
pub(super) fn fold<T: Num, A: Copy>(
    xs: &[T],
    plan: &Plan,
    init: A,
    f: impl Fn(A, T) -> A + Copy,
) -> Vec<A> {
    let mut acc = vec![init; plan.kept_n];
    plan.walk(xs, |seg| match seg {
        Seg::Run { kept, xs, .. } => acc[kept] = xs.iter().fold(acc[kept], |a, &x| f(a, x)),
        Seg::Row { kept, xs, .. } => {
            for (a, &x) in acc[kept..kept + xs.len()].iter_mut().zip(xs) {
                *a = f(*a, x);
            }
        }
    });
    acc
}

/// Exact integer sums (bool and integer tiles) as i128.
pub(super) fn int_sum<T: Num>(xs: &[T], plan: &Plan) -> Vec<i128> {
    // Narrow types sum in i64 (vectorised) as long as no accumulator can
    // overflow: |x| < 2^32 and fewer than 2^31 elements per accumulator.
    if std::mem::size_of::<T>() <= 4 && plan.red_n < (1 << 31) {
        fold(xs, plan, 0i64, |a, x| a + x.wide() as i64)
            .into_iter()
            .map(i128::from)
            .collect()
    } else {
        fold(xs, plan, 0i128, |a, x| a + x.wide())
    }
}

/// Number of non-NaN elements per kept element.
pub(super) fn count_valid<T: Num>(xs: &[T], plan: &Plan) -> Vec<u64> {
    if T::DTYPE.is_float() {
        fold(xs, plan, 0u64, |a, x| a + u64::from(!x.is_nan()))
    } else {
        vec![plan.red_n as u64; plan.kept_n]
    }
}

/// Compensated sums `(s, c)` in f64; NaNs count as 0 when `SKIP`.
pub(super) fn fsum<T: Num, const SKIP: bool>(xs: &[T], plan: &Plan) -> (Vec<f64>, Vec<f64>) {
    let mut s = vec![0.0; plan.kept_n];
    let mut c = vec![0.0; plan.kept_n];
    fsum_into::<T, SKIP>(xs, plan, &mut s, &mut c);
    (s, c)
}

/// [`fsum`] continuing from running sums `(s, c)` (one per kept element).
///
/// With AVX2 (AVX-512) the same operations run four (eight) lanes wide: no
/// FMA and no reassociation, so the bits are those of the SSE2 build.
pub(super) fn fsum_into<T: Num, const SKIP: bool>(
    xs: &[T],
    plan: &Plan,
    s: &mut [f64],
    c: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX-512F and AVX2, checked just above.
        unsafe { fsum_into_avx512::<T, SKIP>(xs, plan, s, c) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { fsum_into_avx2::<T, SKIP>(xs, plan, s, c) };
        return;
    }
    fsum_into_any::<T, SKIP>(xs, plan, s, c);
}

/// The body of [`fsum_into`], expanded in each version so its closure is
/// compiled with that version's target features.
macro_rules! fsum_walk {
    ($T:ty, $SKIP:expr, $xs:expr, $plan:expr, $s:expr, $c:expr) => {
        $plan.walk($xs, |seg| match seg {
            Seg::Run { kept, xs, .. } => {
                run_sum(&mut $s[kept], &mut $c[kept], xs, val::<$T, $SKIP>)
            }
            Seg::Row { kept, xs, .. } => {
                let e = kept + xs.len();
                row_sum(&mut $s[kept..e], &mut $c[kept..e], xs, val::<$T, $SKIP>);
            }
        })
    };
}

/// [`fsum_into`] compiled for one x86-64 feature level: `$name` with
/// `$features` enabled (the row loop widens with the level; the operations
/// and their order do not change).
macro_rules! fsum_into_simd {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $name<T: Num, const SKIP: bool>(xs: &[T], plan: &Plan, s: &mut [f64], c: &mut [f64]) {
            /// Float runs through the hand-vectorised block sums, rows as usual.
            #[target_feature(enable = $features)]
            fn floats<F: simd::Lane, const SKIP: bool>(
                xs: &[F],
                plan: &Plan,
                s: &mut [f64],
                c: &mut [f64],
            ) {
                plan.walk(xs, |seg| match seg {
                    Seg::Run { kept, xs, .. } => {
                        simd::run_sum::<F, SKIP>(&mut s[kept], &mut c[kept], xs)
                    }
                    Seg::Row { kept, xs, .. } => {
                        let e = kept + xs.len();
                        row_sum(&mut s[kept..e], &mut c[kept..e], xs, val::<F, SKIP>);
                    }
                })
            }
            if let Some(xs) = cast::<T, f32>(xs) {
                return floats::<f32, SKIP>(xs, plan, s, c);
            }
            if let Some(xs) = cast::<T, f64>(xs) {
                return floats::<f64, SKIP>(xs, plan, s, c);
            }
            fsum_walk!(T, SKIP, xs, plan, s, c);
        }
    };
}

fsum_into_simd!(fsum_into_avx2, "avx2");
fsum_into_simd!(fsum_into_avx512, "avx2,avx512f");

fn fsum_into_any<T: Num, const SKIP: bool>(xs: &[T], plan: &Plan, s: &mut [f64], c: &mut [f64]) {
    fsum_walk!(T, SKIP, xs, plan, s, c);
}

/// Kept elements per strip of [`fsum_rows_into`]: the strip's running sums
/// (16 bytes each, 64 KiB) stay in L2 while every row adds into them.
const STRIP: usize = 4096;

/// Rows of equal length for [`fsum_rows_into`]: slices in memory, or
/// rows computed strip by strip (a fused elementwise chain's output, never
/// stored whole).
pub(crate) trait Rows<T> {
    /// Number of rows.
    fn count(&self) -> usize;
    /// Elements `at..at + buf.len()` of row `r`: a slice of the row where it
    /// is stored, or `buf` filled.
    fn strip<'a>(&'a self, r: usize, at: usize, buf: &'a mut [T]) -> &'a [T];
}

impl<T> Rows<T> for [&[T]] {
    fn count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn strip<'a>(&'a self, r: usize, at: usize, buf: &'a mut [T]) -> &'a [T] {
        &self[r][at..at + buf.len()]
    }
}

/// Compensated sums of whole rows into `(s, c)` (one per kept element),
/// rows first to last: element `k` of row `i` is the next element of kept
/// element `k`. With `n`, non-NaN elements are counted there too (the
/// NaN-ignoring mean). Each element's additions are those of [`fsum_into`]
/// on each row in turn, so the bits are the same; but the rows go through
/// in strips of kept elements, so running sums too large for the cache are
/// read and written once for all the rows, not once per row.
pub(super) fn fsum_rows_into<T: Num, const SKIP: bool, R: Rows<T> + ?Sized>(
    rows: &R,
    s: &mut [f64],
    c: &mut [f64],
    n: Option<&mut [u64]>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX-512F and AVX2, checked just above.
        unsafe { fsum_rows_avx512::<T, SKIP, R>(rows, s, c, n) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { fsum_rows_avx2::<T, SKIP, R>(rows, s, c, n) };
        return;
    }
    fsum_rows_any::<T, SKIP, R>(rows, s, c, n);
}

#[inline(always)]
fn fsum_rows_body<T: Num, const SKIP: bool, R: Rows<T> + ?Sized>(
    rows: &R,
    s: &mut [f64],
    c: &mut [f64],
    mut n: Option<&mut [u64]>,
) {
    let len = s.len();
    let mut buf = vec![T::default(); STRIP.min(len)];
    let mut at = 0;
    while at < len {
        let e = (at + STRIP).min(len);
        let (s, c) = (&mut s[at..e], &mut c[at..e]);
        for r in 0..rows.count() {
            let xs = rows.strip(r, at, &mut buf[..e - at]);
            match cast::<T, f32>(xs) {
                Some(xs) => row_sum_f32(s, c, xs, val::<f32, SKIP>),
                None => row_sum(s, c, xs, val::<T, SKIP>),
            }
            if let Some(n) = n.as_deref_mut() {
                for (n, &x) in n[at..e].iter_mut().zip(xs) {
                    *n = n.wrapping_add(u64::from(!x.is_nan()));
                }
            }
        }
        at = e;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fsum_rows_avx2<T: Num, const SKIP: bool, R: Rows<T> + ?Sized>(
    rows: &R,
    s: &mut [f64],
    c: &mut [f64],
    n: Option<&mut [u64]>,
) {
    fsum_rows_body::<T, SKIP, R>(rows, s, c, n);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f")]
fn fsum_rows_avx512<T: Num, const SKIP: bool, R: Rows<T> + ?Sized>(
    rows: &R,
    s: &mut [f64],
    c: &mut [f64],
    n: Option<&mut [u64]>,
) {
    fsum_rows_body::<T, SKIP, R>(rows, s, c, n);
}

fn fsum_rows_any<T: Num, const SKIP: bool, R: Rows<T> + ?Sized>(
    rows: &R,
    s: &mut [f64],
    c: &mut [f64],
    n: Option<&mut [u64]>,
) {
    fsum_rows_body::<T, SKIP, R>(rows, s, c, n);
}

/// The second pass of [`moments`]: per kept element, the compensated sum
/// of the squared deviations `(x - mean)²` into `(q, qc)`. NaNs count as
/// deviation 0 when `SKIP`.
///
/// With AVX2 and FMA the same operations run four lanes wide, so the bits
/// are those of the generic build.
fn squares_into<T: Num, const SKIP: bool>(
    xs: &[T],
    plan: &Plan,
    mean: &[f64],
    q: &mut [f64],
    qc: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { squares_avx2::<T, SKIP>(xs, plan, mean, q, qc) };
        return;
    }
    squares_any::<T, SKIP>(xs, plan, mean, q, qc);
}

/// The deviation `x - m` of one element, 0 for a NaN when `SKIP`.
#[inline(always)]
fn dev<T: Num, const SKIP: bool>(x: T, m: f64) -> f64 {
    let v = x.to_f64();
    if SKIP && v.is_nan() {
        0.0
    } else {
        v - m
    }
}

/// The squares pass of a row: kept elements `kept..kept + xs.len()` each
/// take one element.
#[inline(always)]
fn sq_row<T: Num, const SKIP: bool>(
    kept: usize,
    xs: &[T],
    mean: &[f64],
    q: &mut [f64],
    qc: &mut [f64],
) {
    let e = kept + xs.len();
    for (((q, qc), &m), &x) in q[kept..e]
        .iter_mut()
        .zip(&mut qc[kept..e])
        .zip(&mean[kept..e])
        .zip(xs)
    {
        let d = dev::<T, SKIP>(x, m);
        neumaier(q, qc, d * d);
    }
}

/// The body of [`squares_into`], expanded in each version so its closures
/// are compiled with that version's target features.
macro_rules! squares_walk {
    ($T:ty, $SKIP:expr, $xs:expr, $plan:expr, $mean:expr, $q:expr, $qc:expr) => {
        $plan.walk($xs, |seg| match seg {
            Seg::Run { kept, xs, .. } => {
                let m = $mean[kept];
                for blk in xs.chunks(BLOCK) {
                    let dd = block_sq(blk, |x: $T| dev::<$T, $SKIP>(x, m));
                    neumaier(&mut $q[kept], &mut $qc[kept], dd);
                }
            }
            Seg::Row { kept, xs, .. } => sq_row::<$T, $SKIP>(kept, xs, $mean, $q, $qc),
        })
    };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn squares_avx2<T: Num, const SKIP: bool>(
    xs: &[T],
    plan: &Plan,
    mean: &[f64],
    q: &mut [f64],
    qc: &mut [f64],
) {
    /// Float runs through the hand-vectorised squares.
    #[target_feature(enable = "avx2,fma")]
    fn floats<F: simd::Lane, const SKIP: bool>(
        xs: &[F],
        plan: &Plan,
        mean: &[f64],
        q: &mut [f64],
        qc: &mut [f64],
    ) {
        plan.walk(xs, |seg| match seg {
            Seg::Run { kept, xs, .. } => {
                simd::run_sq::<F, SKIP>(&mut q[kept], &mut qc[kept], xs, mean[kept]);
            }
            Seg::Row { kept, xs, .. } => sq_row::<F, SKIP>(kept, xs, mean, q, qc),
        })
    }
    if let Some(xs) = cast::<T, f32>(xs) {
        return floats::<f32, SKIP>(xs, plan, mean, q, qc);
    }
    if let Some(xs) = cast::<T, f64>(xs) {
        return floats::<f64, SKIP>(xs, plan, mean, q, qc);
    }
    squares_walk!(T, SKIP, xs, plan, mean, q, qc);
}

fn squares_any<T: Num, const SKIP: bool>(
    xs: &[T],
    plan: &Plan,
    mean: &[f64],
    q: &mut [f64],
    qc: &mut [f64],
) {
    squares_walk!(T, SKIP, xs, plan, mean, q, qc);
}

/// Count, compensated sum and sum of squared deviations of one tile.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Moments {
    pub n: Vec<u64>,
    pub s: Vec<f64>,
    pub c: Vec<f64>,
    pub m2: Vec<f64>,
    pub m2c: Vec<f64>,
}

/// The moments of a tile by the corrected two-pass algorithm: the tile's
/// mean `m` first, then `M2 = Σ(x - m)² - r²/n`, where `r = Σx - n·m` is the
/// mean's rounding left over (the compensated sum less `n·m`, by FMA), so
/// the second term removes it exactly. NaNs are skipped when `SKIP`.
pub(super) fn moments<T: Num, const SKIP: bool>(xs: &[T], plan: &Plan, n: Vec<u64>) -> Moments {
    let (s, c) = fsum::<T, SKIP>(xs, plan);
    let mean: Vec<f64> = s
        .iter()
        .zip(&c)
        .zip(&n)
        .map(|((&s, &c), &n)| {
            if n == 0 {
                0.0
            } else {
                resolve(s, c) / n as f64
            }
        })
        .collect();
    let mut q = vec![0.0; plan.kept_n];
    let mut qc = vec![0.0; plan.kept_n];
    squares_into::<T, SKIP>(xs, plan, &mean, &mut q, &mut qc);
    let mut m2 = vec![0.0; plan.kept_n];
    let mut m2c = vec![0.0; plan.kept_n];
    for j in 0..plan.kept_n {
        if n[j] > 0 {
            let nf = n[j] as f64;
            let r = (-mean[j]).mul_add(nf, s[j]) + c[j];
            m2[j] = q[j];
            m2c[j] = qc[j] - r * r / nf;
        }
    }
    Moments { n, s, c, m2, m2c }
}

/// Per kept element: the extreme value ignoring NaNs (`MAX`: largest), whether
/// a NaN was seen, and whether a non-NaN value was seen.
pub(super) fn extreme<T: Num, const MAX: bool>(
    xs: &[T],
    plan: &Plan,
) -> (Vec<T>, Vec<bool>, Vec<bool>) {
    let init = if MAX { T::BOTTOM } else { T::TOP };
    let better = |x: T, v: T| if MAX { x > v } else { x < v };
    let mut v = vec![init; plan.kept_n];
    let mut nan = vec![false; plan.kept_n];
    let mut valid = vec![false; plan.kept_n];
    plan.walk(xs, |seg| match seg {
        Seg::Run { kept, xs, .. } => {
            // Eight independent lanes so the compare-select loop vectorises.
            let mut lv = [init; 8];
            let mut ln = [false; 8];
            let mut lok = [false; 8];
            let mut chunks = xs.chunks_exact(8);
            for ch in &mut chunks {
                for i in 0..8 {
                    let x = ch[i];
                    lv[i] = if better(x, lv[i]) { x } else { lv[i] };
                    ln[i] |= x.is_nan();
                    lok[i] |= !x.is_nan();
                }
            }
            for &x in chunks.remainder() {
                lv[0] = if better(x, lv[0]) { x } else { lv[0] };
                ln[0] |= x.is_nan();
                lok[0] |= !x.is_nan();
            }
            for i in 0..8 {
                if better(lv[i], v[kept]) {
                    v[kept] = lv[i];
                }
                nan[kept] |= ln[i];
                valid[kept] |= lok[i];
            }
        }
        Seg::Row { kept, xs, .. } => {
            let e = kept + xs.len();
            for (((v, n), ok), &x) in v[kept..e]
                .iter_mut()
                .zip(&mut nan[kept..e])
                .zip(&mut valid[kept..e])
                .zip(xs)
            {
                *v = if better(x, *v) { x } else { *v };
                *n |= x.is_nan();
                *ok |= !x.is_nan();
            }
        }
    });
    (v, nan, valid)
}

/// Per kept element: the first extreme value's tile-local reduced index
/// (`MAX`: largest), or the first NaN's if there is one (`nan` set); `-1` for
/// a kept element that saw nothing.
pub(super) fn arg<T: Num, const MAX: bool>(xs: &[T], plan: &Plan) -> (Vec<T>, Vec<i64>, Vec<bool>) {
    let init = if MAX { T::BOTTOM } else { T::TOP };
    let better = |x: T, v: T| if MAX { x > v } else { x < v };
    let mut v = vec![init; plan.kept_n];
    let mut idx = vec![-1i64; plan.kept_n];
    let mut nan = vec![false; plan.kept_n];
    let step = |v: &mut T, idx: &mut i64, nan: &mut bool, x: T, r: usize| {
        if *nan {
            return;
        }
        if x.is_nan() {
            *nan = true;
            *v = x;
            *idx = r as i64;
        } else if *idx < 0 || better(x, *v) {
            *v = x;
            *idx = r as i64;
        }
    };
    plan.walk(xs, |seg| match seg {
        Seg::Run { kept, red, xs } => {
            let (mut bv, mut bi, mut bn) = (v[kept], idx[kept], nan[kept]);
            for (j, &x) in xs.iter().enumerate() {
                step(&mut bv, &mut bi, &mut bn, x, red + j);
                if bn {
                    break;
                }
            }
            (v[kept], idx[kept], nan[kept]) = (bv, bi, bn);
        }
        Seg::Row { kept, red, xs } => {
            let e = kept + xs.len();
            for (((v, i), n), &x) in v[kept..e]
                .iter_mut()
                .zip(&mut idx[kept..e])
                .zip(&mut nan[kept..e])
                .zip(xs)
            {
                step(v, i, n, x, red);
            }
        }
    });
    (v, idx, nan)
}

/// True when `x` is not zero (NaN is nonzero, -0.0 is zero), as NumPy's
/// truth value.
#[inline(always)]
pub(super) fn nonzero<T: Num>(x: T) -> bool {
    x != T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sums `(s, c)` of `xs` from a start of `(1.5, 1e-17)`, as bits,
    /// through the AVX2 build or the generic one.
    #[cfg(target_arch = "x86_64")]
    fn sum_bits<T: Num, const SKIP: bool>(xs: &[T], plan: &Plan, avx: bool) -> Vec<u64> {
        let mut s = vec![1.5; plan.kept_n];
        let mut c = vec![1e-17; plan.kept_n];
        if avx {
            // SAFETY: callers check that the CPU has AVX2.
            unsafe { fsum_into_avx2::<T, SKIP>(xs, plan, &mut s, &mut c) };
        } else {
            fsum_into_any::<T, SKIP>(xs, plan, &mut s, &mut c);
        }
        s.iter().chain(&c).map(|x| x.to_bits()).collect()
    }

    /// The squared-deviation sums `(q, qc)` of `xs` about per-kept means,
    /// as bits, through the AVX2 build or the generic one.
    #[cfg(target_arch = "x86_64")]
    fn dev_bits<T: Num, const SKIP: bool>(xs: &[T], plan: &Plan, avx: bool) -> Vec<u64> {
        let mean: Vec<f64> = (0..plan.kept_n).map(|j| 0.25 - j as f64 * 1e-3).collect();
        let mut q = vec![0.0; plan.kept_n];
        let mut qc = vec![0.0; plan.kept_n];
        if avx {
            // SAFETY: callers check that the CPU has AVX2 and FMA.
            unsafe { squares_avx2::<T, SKIP>(xs, plan, &mean, &mut q, &mut qc) };
        } else {
            squares_any::<T, SKIP>(xs, plan, &mean, &mut q, &mut qc);
        }
        q.iter().chain(&qc).map(|x| x.to_bits()).collect()
    }

    /// The AVX2 builds of the compensated sum and of the squares pass of
    /// the moments give the bits of the generic ones, for rows and runs
    /// (with block tails), f32 and f64, with and without NaN skipping.
    #[test]
    fn avx2_sums_have_the_generic_bits() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let mut r = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = move || {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                // Mixed magnitudes, so compensation matters.
                ((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 10f64.powi((r % 17) as i32 - 8)
            };
            let v64: Vec<f64> = (0..7 * 33 * 5)
                .map(|i| if i % 97 == 0 { f64::NAN } else { next() })
                .collect();
            let v32: Vec<f32> = v64.iter().map(|&x| x as f32).collect();
            for axes in [&[0][..], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2]] {
                let plan = Plan::new(&[7, 33, 5], axes);
                let both = |avx: bool| {
                    [
                        sum_bits::<f32, true>(&v32, &plan, avx),
                        sum_bits::<f32, false>(&v32, &plan, avx),
                        sum_bits::<f64, true>(&v64, &plan, avx),
                        sum_bits::<f64, false>(&v64, &plan, avx),
                        dev_bits::<f32, true>(&v32, &plan, avx),
                        dev_bits::<f32, false>(&v32, &plan, avx),
                        dev_bits::<f64, true>(&v64, &plan, avx),
                        dev_bits::<f64, false>(&v64, &plan, avx),
                    ]
                };
                assert_eq!(both(true), both(false), "axes {axes:?}");
            }
        }
    }
}
