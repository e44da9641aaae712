//! Hand-vectorised AVX2 forms of the float block sums of
//! [`layout`](super::layout), for `f32` and `f64` runs.
//!
//! The generic [`block_sum`](super::layout::block_sum) keeps eight f64
//! lanes; compiled for AVX2 it still loads and widens one element at a time
//! (measured: a third of the std of a contiguous f32 dataset went to the
//! deviation pass). Here the eight lanes are two `__m256d`: lane `i` adds
//! elements `i, i + 8, ...` in order, the tail is added one by one and the
//! lanes are combined in the same tree, with no FMA. So every result is bit
//! for bit the generic one, which the tests check.

use std::arch::x86_64::{
    __m256d, _mm256_add_pd, _mm256_andnot_pd, _mm256_castps256_ps128, _mm256_cmp_pd,
    _mm256_cvtps_pd, _mm256_extractf128_ps, _mm256_loadu_pd, _mm256_loadu_ps, _mm256_mul_pd,
    _mm256_set1_pd, _mm256_setzero_pd, _mm256_storeu_pd, _mm256_sub_pd, _CMP_UNORD_Q,
};

use super::layout::{neumaier, Num, BLOCK};

/// An element type with an eight-wide widening load.
pub(super) trait Lane: Num {
    /// Elements `p[0..8]` as f64, lanes 0-3 and 4-7.
    ///
    /// # Safety
    /// `p` must be valid for reading eight elements; the CPU must have AVX2.
    unsafe fn load8(p: *const Self) -> (__m256d, __m256d);
}

impl Lane for f32 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(p: *const f32) -> (__m256d, __m256d) {
        // SAFETY: the caller guarantees eight readable elements and AVX2.
        unsafe {
            let v = _mm256_loadu_ps(p);
            (
                _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
            )
        }
    }
}

impl Lane for f64 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(p: *const f64) -> (__m256d, __m256d) {
        // SAFETY: the caller guarantees eight readable elements and AVX2.
        unsafe { (_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4))) }
    }
}

/// The tree [`block_sum`](super::layout::block_sum) combines its lanes with.
#[inline(always)]
fn pair(l: [f64; 8]) -> f64 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

#[inline]
#[target_feature(enable = "avx2")]
fn lanes(lo: __m256d, hi: __m256d) -> [f64; 8] {
    let mut l = [0.0f64; 8];
    // SAFETY: `l` has room for two vectors of four f64.
    unsafe {
        _mm256_storeu_pd(l.as_mut_ptr(), lo);
        _mm256_storeu_pd(l.as_mut_ptr().add(4), hi);
    }
    l
}

/// One block (at most [`BLOCK`] elements) with `f(x) = x as f64`, or 0 for a
/// NaN when `SKIP`: `block_sum(xs, val::<T, SKIP>)`.
#[inline]
#[target_feature(enable = "avx2")]
fn block_sum<T: Lane, const SKIP: bool>(xs: &[T]) -> f64 {
    let n8 = xs.len() / 8 * 8;
    // SAFETY (whole function): every load reads `xs[k..k + 8]` with `k + 8 <= n8 <= xs.len()`.
    unsafe {
        let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let mut k = 0;
        while k < n8 {
            let (a, b) = T::load8(xs.as_ptr().add(k));
            let (a, b) = if SKIP {
                (
                    _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_UNORD_Q>(a, a), a),
                    _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_UNORD_Q>(b, b), b),
                )
            } else {
                (a, b)
            };
            lo = _mm256_add_pd(lo, a);
            hi = _mm256_add_pd(hi, b);
            k += 8;
        }
        let mut tail = 0.0;
        for &x in &xs[n8..] {
            tail += super::layout::val::<T, SKIP>(x);
        }
        pair(lanes(lo, hi)) + tail
    }
}

/// One block of deviations `d = x - m` (0 for a NaN when `SKIP`): the plain
/// sums of `d` and of `d * d`, as `block_sum_sq`.
#[inline]
#[target_feature(enable = "avx2")]
fn block_dev<T: Lane, const SKIP: bool>(xs: &[T], m: f64) -> (f64, f64) {
    let n8 = xs.len() / 8 * 8;
    // SAFETY: as in `block_sum`.
    unsafe {
        let mv = _mm256_set1_pd(m);
        let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let (mut qlo, mut qhi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let mut k = 0;
        while k < n8 {
            let (a, b) = T::load8(xs.as_ptr().add(k));
            let (da, db) = (_mm256_sub_pd(a, mv), _mm256_sub_pd(b, mv));
            let (da, db) = if SKIP {
                (
                    _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_UNORD_Q>(a, a), da),
                    _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_UNORD_Q>(b, b), db),
                )
            } else {
                (da, db)
            };
            lo = _mm256_add_pd(lo, da);
            hi = _mm256_add_pd(hi, db);
            qlo = _mm256_add_pd(qlo, _mm256_mul_pd(da, da));
            qhi = _mm256_add_pd(qhi, _mm256_mul_pd(db, db));
            k += 8;
        }
        let (mut tail, mut qtail) = (0.0, 0.0);
        for &x in &xs[n8..] {
            let v = x.to_f64();
            let d = if SKIP && v.is_nan() { 0.0 } else { v - m };
            tail += d;
            qtail += d * d;
        }
        (pair(lanes(lo, hi)) + tail, pair(lanes(qlo, qhi)) + qtail)
    }
}

/// `run_sum(s, c, xs, val::<T, SKIP>)`: a run's blocks Neumaier-added into
/// `(s, c)`.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) fn run_sum<T: Lane, const SKIP: bool>(s: &mut f64, c: &mut f64, xs: &[T]) {
    for blk in xs.chunks(BLOCK) {
        neumaier(s, c, block_sum::<T, SKIP>(blk));
    }
}

/// The deviation pass of a run with mean `m`: plain sum of `d` into `d1`,
/// compensated sum of `d * d` into `(q, qc)`, block by block.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) fn run_dev<T: Lane, const SKIP: bool>(
    d1: &mut f64,
    q: &mut f64,
    qc: &mut f64,
    xs: &[T],
    m: f64,
) {
    for blk in xs.chunks(BLOCK) {
        let (d, dd) = block_dev::<T, SKIP>(blk, m);
        *d1 += d;
        neumaier(q, qc, dd);
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
