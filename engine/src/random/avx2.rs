//! AVX2 kernels, four values per vector, chosen at run time when the CPU
//! has AVX2 (the build targets baseline x86-64).
//!
//! AVX2 has no 64-bit multiply, so the SplitMix64 finaliser's multiplies by
//! constants are built from three 32x32->64 `vpmuludq`; it has no 64-bit
//! int->double conversion, so doubles come from exponent-bit tricks that
//! are exact. A lane's two layer edges `x[i]` and `x[i + 1]` are adjacent,
//! so one 16-byte load per lane fetches both (cheaper than two gathers).
//! Every float operation is the one the scalar code does, in the same
//! order, with no FMA contraction, so the results are bit-identical to
//! [`super::value_at`]; lanes the fast path rejects are recomputed by the
//! shared scalar slow path.

use std::arch::x86_64::{
    __m256d, __m256i, _mm256_add_epi64, _mm256_add_pd, _mm256_and_si256, _mm256_andnot_pd,
    _mm256_castpd128_pd256, _mm256_castsi256_pd, _mm256_castsi256_si128, _mm256_cmp_pd,
    _mm256_extracti128_si256, _mm256_insertf128_pd, _mm256_movemask_pd, _mm256_mul_epu32,
    _mm256_mul_pd, _mm256_or_si256, _mm256_set1_epi64x, _mm256_set1_pd, _mm256_set_epi64x,
    _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_pd, _mm256_sub_pd, _mm256_unpackhi_pd,
    _mm256_unpacklo_pd, _mm256_xor_si256, _mm_cvtsi128_si64, _mm_extract_epi64, _mm_loadu_pd,
    _CMP_LT_OQ,
};

use std::mem::MaybeUninit;

use super::hash::{fmix, Key, M1, M2};
use super::ziggurat::{exponential_slow, normal_slow, Tables, HALF_EXP, LAYER_MASK, SYM_EXP};

/// Broadcast a `u64` (bit pattern) to four lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn splat(v: u64) -> __m256i {
    _mm256_set1_epi64x(v as i64)
}

/// Lane-wise wrapping `a * c` for a constant `c`: the low 64 bits of the
/// product from three 32-bit multiplies (the high-by-high term only
/// affects bits >= 64).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_const(a: __m256i, c: u64) -> __m256i {
    let c_lo = splat(c & 0xFFFF_FFFF);
    let c_hi = splat(c >> 32);
    let lo = _mm256_mul_epu32(a, c_lo);
    let cross = _mm256_add_epi64(
        _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), c_lo),
        _mm256_mul_epu32(a, c_hi),
    );
    _mm256_add_epi64(lo, _mm256_slli_epi64::<32>(cross))
}

/// [`fmix`] on four lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn fmix4(z: __m256i) -> __m256i {
    let z = mul_const(_mm256_xor_si256(z, _mm256_srli_epi64::<30>(z)), M1);
    let z = mul_const(_mm256_xor_si256(z, _mm256_srli_epi64::<27>(z)), M2);
    _mm256_xor_si256(z, _mm256_srli_epi64::<31>(z))
}

/// The counters `z0 + l * step` for lanes `l = 0..4`, and the per-vector
/// increment `4 * step`.
#[inline]
#[target_feature(enable = "avx2")]
fn counters(z0: u64, step: u64) -> (__m256i, __m256i) {
    let s = |l: u64| z0.wrapping_add(step.wrapping_mul(l)) as i64;
    (
        _mm256_set_epi64x(s(3), s(2), s(1), s(0)),
        splat(step.wrapping_mul(4)),
    )
}

/// `(x[i], x[i + 1])` for each lane's layer `i` (the low 10 bits of its
/// bits). The two edges are adjacent, so one 16-byte load per lane fetches
/// both; two unpacks transpose the pairs into the two vectors.
#[inline]
#[target_feature(enable = "avx2")]
fn edges4(edges: *const f64, bits: __m256i) -> (__m256d, __m256d) {
    let lo = _mm256_castsi256_si128(bits);
    let hi = _mm256_extracti128_si256::<1>(bits);
    let i0 = (_mm_cvtsi128_si64(lo) as u64 & LAYER_MASK) as usize;
    let i1 = (_mm_extract_epi64::<1>(lo) as u64 & LAYER_MASK) as usize;
    let i2 = (_mm_cvtsi128_si64(hi) as u64 & LAYER_MASK) as usize;
    let i3 = (_mm_extract_epi64::<1>(hi) as u64 & LAYER_MASK) as usize;
    // SAFETY: each index is at most `LAYER_MASK` and the table has
    // `LAYERS + 1` entries, so every 16-byte load `x[i..i + 2]` is in bounds.
    let (p02, p13) = unsafe {
        (
            _mm256_insertf128_pd::<1>(
                _mm256_castpd128_pd256(_mm_loadu_pd(edges.add(i0))),
                _mm_loadu_pd(edges.add(i2)),
            ),
            _mm256_insertf128_pd::<1>(
                _mm256_castpd128_pd256(_mm_loadu_pd(edges.add(i1))),
                _mm_loadu_pd(edges.add(i3)),
            ),
        )
    };
    // p02 = [x0, n0 | x2, n2], p13 = [x1, n1 | x3, n3].
    (_mm256_unpacklo_pd(p02, p13), _mm256_unpackhi_pd(p02, p13))
}

/// Quads (groups of four values) per batch of the ziggurat driver.
const BATCH_QUADS: usize = 64;

/// The ziggurat driver: `fast(bits, x, x_next) -> (value, accepted)` per
/// vector given the layer edges of each lane; rejected lanes are then
/// overwritten with `slow(counter, bits)`.
///
/// Rejections (0.43% of normal draws, 0.64% of exponential ones) are not
/// branched on in the vector loop: each batch appends the quads with a
/// rejected lane to a list without a branch, and a second loop patches
/// them, so the hot loop has no mispredicted branches. The last `len % 4`
/// values use the same vector code on a padded copy.
#[inline]
#[target_feature(enable = "avx2")]
fn run_ziggurat(
    t: &Tables,
    z0: u64,
    step: u64,
    out: &mut [MaybeUninit<f64>],
    fast: impl Fn(__m256i, __m256d, __m256d) -> (__m256d, __m256d),
    slow: impl Fn(u64, u64) -> f64,
) {
    let (mut z, inc) = counters(z0, step);
    let edges = t.x.as_ptr();
    // Values of one quad, and its rejected lanes as a 4-bit mask.
    let quad = |z: __m256i, dst: &mut [MaybeUninit<f64>]| -> u32 {
        let bits = fmix4(z);
        let (xi, xn) = edges4(edges, bits);
        let (v, ok) = fast(bits, xi, xn);
        let dst: &mut [MaybeUninit<f64>; 4] = dst
            .try_into()
            .unwrap_or_else(|_| unreachable!("quads are 4 long"));
        // SAFETY: `dst` is four f64.
        unsafe { _mm256_storeu_pd(dst.as_mut_ptr().cast(), v) };
        !(_mm256_movemask_pd(ok) as u32) & 0b1111
    };
    // Recompute the lanes of `rejected` in `dst`, whose first counter is `base`.
    let patch = |dst: &mut [MaybeUninit<f64>], base: u64, mut rejected: u32| {
        while rejected != 0 {
            let l = rejected.trailing_zeros() as usize;
            rejected &= rejected - 1;
            let counter = base.wrapping_add(step.wrapping_mul(l as u64));
            dst[l].write(slow(counter, fmix(counter)));
        }
    };
    let mut base = z0;
    let mut flagged = [0u32; BATCH_QUADS];
    for batch in out.chunks_mut(4 * BATCH_QUADS) {
        let mut n = 0;
        let full = batch.len() / 4 * 4;
        let mut quads = batch.chunks_exact_mut(4);
        for (q, dst) in (&mut quads).enumerate() {
            let rejected = quad(z, dst);
            z = _mm256_add_epi64(z, inc);
            flagged[n] = (q as u32) << 4 | rejected;
            n += usize::from(rejected != 0);
        }
        let rest = quads.into_remainder();
        if !rest.is_empty() {
            let mut pad = [MaybeUninit::new(0.0); 4];
            let rejected = quad(z, &mut pad);
            let first = base.wrapping_add(step.wrapping_mul(full as u64));
            patch(&mut pad, first, rejected);
            rest.copy_from_slice(&pad[..rest.len()]);
        }
        for &f in &flagged[..n] {
            let q = (f >> 4) as usize;
            let first = base.wrapping_add(step.wrapping_mul(4 * q as u64));
            patch(&mut batch[4 * q..4 * q + 4], first, f & 0b1111);
        }
        base = base.wrapping_add(step.wrapping_mul((4 * BATCH_QUADS) as u64));
    }
}

/// `out[k] = loc + scale * N(0,1)` at counters `z0 + k * step`.
#[target_feature(enable = "avx2")]
pub(crate) fn normal(
    t: &Tables,
    key: Key,
    z0: u64,
    step: u64,
    loc: f64,
    scale: f64,
    out: &mut [MaybeUninit<f64>],
) {
    let sym_exp = splat(SYM_EXP);
    let three = _mm256_set1_pd(3.0);
    let sign = _mm256_set1_pd(-0.0);
    let (locv, scalev) = (_mm256_set1_pd(loc), _mm256_set1_pd(scale));
    run_ziggurat(
        t,
        z0,
        step,
        out,
        |bits, xi, xn| {
            let m = _mm256_or_si256(_mm256_srli_epi64::<12>(bits), sym_exp);
            let u = _mm256_sub_pd(_mm256_castsi256_pd(m), three);
            let x = _mm256_mul_pd(u, xi);
            let ok = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_andnot_pd(sign, x), xn);
            (_mm256_add_pd(locv, _mm256_mul_pd(scalev, x)), ok)
        },
        |z, b| loc + scale * normal_slow(t, key, z, b),
    );
}

/// `out[k] = scale * Exp(1)` at counters `z0 + k * step`.
#[target_feature(enable = "avx2")]
pub(crate) fn exponential(
    t: &Tables,
    key: Key,
    z0: u64,
    step: u64,
    scale: f64,
    out: &mut [MaybeUninit<f64>],
) {
    let half_exp = splat(HALF_EXP);
    let one = _mm256_set1_pd(1.0);
    let scalev = _mm256_set1_pd(scale);
    run_ziggurat(
        t,
        z0,
        step,
        out,
        |bits, xi, xn| {
            let m = _mm256_or_si256(_mm256_srli_epi64::<12>(bits), half_exp);
            let x = _mm256_mul_pd(_mm256_sub_pd(_mm256_castsi256_pd(m), one), xi);
            (_mm256_mul_pd(scalev, x), _mm256_cmp_pd::<_CMP_LT_OQ>(x, xn))
        },
        |z, b| scale * exponential_slow(t, key, z, b),
    );
}

/// `out[k] = low + width * U[0,1)` at counters `z0 + k * step`.
///
/// The 53-bit integer `bits >> 11` becomes a double exactly as two halves
/// (`2^52 + h` minus `2^52` is exact for `h < 2^52`), recombined exactly.
#[target_feature(enable = "avx2")]
pub(crate) fn uniform(z0: u64, step: u64, low: f64, width: f64, out: &mut [MaybeUninit<f64>]) {
    let (mut z, inc) = counters(z0, step);
    let magic_bits = splat(0x4330_0000_0000_0000);
    let magic = _mm256_set1_pd(4_503_599_627_370_496.0); // 2^52
    let two32 = _mm256_set1_pd(4_294_967_296.0);
    let unit = _mm256_set1_pd(super::hash::UNIT);
    let lo_mask = splat(0xFFFF_FFFF);
    let (lowv, widthv) = (_mm256_set1_pd(low), _mm256_set1_pd(width));
    let block = |z: __m256i, dst: &mut [MaybeUninit<f64>; 4]| {
        let v = _mm256_srli_epi64::<11>(fmix4(z));
        let as_f64 =
            |h: __m256i| _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(h, magic_bits)), magic);
        let hi = as_f64(_mm256_srli_epi64::<32>(v));
        let lo = as_f64(_mm256_and_si256(v, lo_mask));
        let u = _mm256_mul_pd(_mm256_add_pd(_mm256_mul_pd(hi, two32), lo), unit);
        let y = _mm256_add_pd(lowv, _mm256_mul_pd(widthv, u));
        // SAFETY: `dst` is four f64.
        unsafe { _mm256_storeu_pd(dst.as_mut_ptr().cast(), y) };
    };
    let mut quads = out.chunks_exact_mut(4);
    for q in &mut quads {
        let dst: &mut [MaybeUninit<f64>; 4] = q
            .try_into()
            .unwrap_or_else(|_| unreachable!("chunks_exact_mut(4)"));
        block(z, dst);
        z = _mm256_add_epi64(z, inc);
    }
    let rest = quads.into_remainder();
    if !rest.is_empty() {
        let mut pad = [MaybeUninit::new(0.0); 4];
        block(z, &mut pad);
        rest.copy_from_slice(&pad[..rest.len()]);
    }
}
