//! Hand-vectorised AVX2 forms of the float block sums of
//! [`layout`](super::layout), for `f32` and `f64` runs.
//!
//! The generic [`block_sum`](super::layout::block_sum) keeps sixteen f64
//! lanes; compiled for AVX2 it still loads and widens one element at a time
//! (measured: a third of the std of a contiguous f32 dataset went to the
//! deviation pass). Here the sixteen lanes are four `__m256d` (four
//! independent addition chains): lane `i` adds elements `i, i + 16, ...` in
//! order, the tail is added one by one and the lanes are combined in the
//! same tree. The squares of [`block_sq`](super::layout::block_sq) are fused
//! multiply-adds in both. So every result is bit for bit the generic one,
//! which the tests check.

use std::arch::x86_64::{
    __m256d, _mm256_add_pd, _mm256_andnot_pd, _mm256_castps256_ps128, _mm256_cmp_pd,
    _mm256_cvtps_pd, _mm256_extractf128_ps, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_loadu_ps,
    _mm256_set1_pd, _mm256_setzero_pd, _mm256_storeu_pd, _mm256_sub_pd, _CMP_UNORD_Q,
};

use super::layout::{neumaier, val, Num, BLOCK, LANES};

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

/// The lanes of four vectors (`v[j]` holds lanes `4j..4j + 4`), combined
/// as [`combine`](super::layout::combine).
#[inline]
#[target_feature(enable = "avx2")]
fn reduce4(v: [__m256d; 4]) -> f64 {
    let t = _mm256_add_pd(_mm256_add_pd(v[0], v[1]), _mm256_add_pd(v[2], v[3]));
    let mut l = [0.0f64; 4];
    // SAFETY: `l` has room for one vector of four f64.
    unsafe { _mm256_storeu_pd(l.as_mut_ptr(), t) };
    (l[0] + l[1]) + (l[2] + l[3])
}

/// Elements `p[0..16]` as f64 in four vectors, NaNs zeroed when `SKIP`.
///
/// # Safety
/// `p` must be valid for reading sixteen elements; the CPU must have AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load16<T: Lane, const SKIP: bool>(p: *const T) -> [__m256d; 4] {
    // SAFETY: the caller guarantees sixteen readable elements and AVX2.
    let ((a, b), (c, d)) = unsafe { (T::load8(p), T::load8(p.add(8))) };
    let v = [a, b, c, d];
    if SKIP {
        v.map(|x| _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_UNORD_Q>(x, x), x))
    } else {
        v
    }
}

/// One block (at most [`BLOCK`] elements) with `f(x) = x as f64`, or 0 for a
/// NaN when `SKIP`: `block_sum(xs, val::<T, SKIP>)`.
#[inline]
#[target_feature(enable = "avx2")]
fn block_sum<T: Lane, const SKIP: bool>(xs: &[T]) -> f64 {
    let n = xs.len() / LANES * LANES;
    let mut acc = [_mm256_setzero_pd(); 4];
    let mut k = 0;
    while k < n {
        // SAFETY: `k + 16 <= n <= xs.len()`.
        let v = unsafe { load16::<T, SKIP>(xs.as_ptr().add(k)) };
        for j in 0..4 {
            acc[j] = _mm256_add_pd(acc[j], v[j]);
        }
        k += LANES;
    }
    let mut tail = 0.0;
    for &x in &xs[n..] {
        tail += val::<T, SKIP>(x);
    }
    reduce4(acc) + tail
}

/// One block of squared deviations `(x - m)²` (0 for a NaN when `SKIP`):
/// `block_sq(xs, ...)`, each square fused into its lane's addition.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn block_sq<T: Lane, const SKIP: bool>(xs: &[T], m: f64) -> f64 {
    let n = xs.len() / LANES * LANES;
    let mv = _mm256_set1_pd(m);
    let mut acc = [_mm256_setzero_pd(); 4];
    let mut k = 0;
    while k < n {
        // SAFETY: `k + 16 <= n <= xs.len()`.
        let v = unsafe { load16::<T, false>(xs.as_ptr().add(k)) };
        for j in 0..4 {
            let d = _mm256_sub_pd(v[j], mv);
            let d = if SKIP {
                _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_UNORD_Q>(v[j], v[j]), d)
            } else {
                d
            };
            acc[j] = _mm256_fmadd_pd(d, d, acc[j]);
        }
        k += LANES;
    }
    let mut tail = 0.0f64;
    for &x in &xs[n..] {
        let v = x.to_f64();
        let d = if SKIP && v.is_nan() { 0.0 } else { v - m };
        tail = d.mul_add(d, tail);
    }
    reduce4(acc) + tail
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

/// The deviation pass of a run with mean `m`: the compensated sum of
/// `(x - m)²` into `(q, qc)`, block by block.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) fn run_sq<T: Lane, const SKIP: bool>(q: &mut f64, qc: &mut f64, xs: &[T], m: f64) {
    for blk in xs.chunks(BLOCK) {
        neumaier(q, qc, block_sq::<T, SKIP>(blk, m));
    }
}
