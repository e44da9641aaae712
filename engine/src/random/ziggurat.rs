//! 1024-layer ziggurat tables and the scalar samplers every path shares.
//!
//! Marsaglia & Tsang's ziggurat covers the density with 1024 layers of equal
//! area `V`: layer `i` is the rectangle `[0, x[i]) x [f(x[i]), f(x[i+1])]`,
//! layer 0 is the base strip plus the tail beyond `R = x[1]`. One 64-bit
//! word picks a layer (bits 0..10) and a position inside it (bits 12..64,
//! 52 bits: symmetric in [-1, 1) for the normal, [0, 1) for the exponential).
//! When the point lies under `x[i+1]` (99.57% of normal draws, 99.36% of
//! exponential ones) it is accepted at once: that fast path is a table lookup, a multiply and a compare, which
//! the batch kernels evaluate for many indices at a time.
//!
//! The rest — wedges, the tail, retries — is [`normal_slow`] /
//! [`exponential_slow`]: scalar, drawing further words of the *same index*
//! from [`Words`], so a value is still a pure function of (seed, index).
//! Every fill path ends here for rejected lanes, which is what makes the
//! batch kernels bit-identical to [`normal`] / [`exponential`].
//!
//! Why 1024 layers and not Marsaglia & Tsang's 256: the fast path costs the
//! same (two table lookups), but a rejected draw costs ten to twenty times
//! a fast one (scalar, dependent hashes, `exp`), and 1024 layers reject
//! 0.43% of normal draws instead of 1.49% (0.64% of exponential draws
//! instead of 2.22%). The tables (16 KiB per distribution) stay in L1.
//!
//! Tables are computed once (a [`OnceLock`]) from `R` and `V`, which were
//! solved for 1024 layers to 40 digits (bisection on `R` until the top
//! layer's area is `V`, with mpmath); `x[1024] = 0`, `f[i] = pdf(x[i])`.

use std::sync::OnceLock;

use super::hash::{fmix, Key, Words};

/// Number of layers; a layer index is the low 10 bits of the word.
pub(crate) const LAYERS: usize = 1024;
/// The bits of a word that pick its layer.
pub(crate) const LAYER_MASK: u64 = LAYERS as u64 - 1;

/// Normal: right edge of the base strip's rectangle (start of the tail).
pub(crate) const NORM_R: f64 = 4.038_849_846_109_504;
/// Normal: area of each layer (for the unnormalised density e^(-x^2/2)).
pub(crate) const NORM_V: f64 = 1.226_324_646_353_088e-3;
/// Exponential: start of the tail.
pub(crate) const EXP_R: f64 = 9.256_164_544_265_543;
/// Exponential: area of each layer.
pub(crate) const EXP_V: f64 = 9.796_789_906_620_208e-4;

/// The layer edges `x` (decreasing, `x[1024] = 0`) and the density at them.
#[derive(Debug)]
pub(crate) struct Tables {
    /// `x[0] = V / f(R)` (the base strip's width), `x[1] = R`, ..., `x[1024] = 0`.
    pub(crate) x: [f64; LAYERS + 1],
    /// `f[i] = pdf(x[i])`; increasing, `f[1024] = 1`.
    pub(crate) f: [f64; LAYERS + 1],
}

impl Tables {
    /// Each layer's upper edge follows from the one below it having area `v`:
    /// `x[i] = pdf^-1(v / x[i-1] + pdf(x[i-1]))`.
    fn build(r: f64, v: f64, pdf: fn(f64) -> f64, inv: fn(f64) -> f64) -> Tables {
        let mut x = [0.0; LAYERS + 1];
        x[0] = v / pdf(r);
        x[1] = r;
        for i in 2..LAYERS {
            x[i] = inv(v / x[i - 1] + pdf(x[i - 1]));
        }
        x[LAYERS] = 0.0;
        let f = x.map(pdf);
        Tables { x, f }
    }
}

fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

fn normal_inv(y: f64) -> f64 {
    (-2.0 * y.ln()).sqrt()
}

fn exp_pdf(x: f64) -> f64 {
    (-x).exp()
}

fn exp_inv(y: f64) -> f64 {
    -y.ln()
}

/// The standard normal's tables, built on first use.
pub(crate) fn normal_tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| Tables::build(NORM_R, NORM_V, normal_pdf, normal_inv))
}

/// The standard exponential's tables, built on first use.
pub(crate) fn exponential_tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| Tables::build(EXP_R, EXP_V, exp_pdf, exp_inv))
}

/// The layer a word picks.
#[inline(always)]
pub(crate) fn layer(bits: u64) -> usize {
    (bits & LAYER_MASK) as usize
}

/// Exponent bits of 2.0: `(bits >> 12) | SYM_EXP` is a double in [2, 4).
pub(crate) const SYM_EXP: u64 = 0x4000_0000_0000_0000;
/// Exponent bits of 1.0: `(bits >> 12) | HALF_EXP` is a double in [1, 2).
pub(crate) const HALF_EXP: u64 = 0x3FF0_0000_0000_0000;

/// Bits 12..64 as a uniform in [-1, 1) on a 2^-51 grid (exact: a double in
/// [2, 4) minus 3).
#[inline(always)]
pub(crate) fn sym(bits: u64) -> f64 {
    f64::from_bits((bits >> 12) | SYM_EXP) - 3.0
}

/// Bits 12..64 as a uniform in [0, 1) on a 2^-52 grid (exact).
#[inline(always)]
pub(crate) fn half(bits: u64) -> f64 {
    f64::from_bits((bits >> 12) | HALF_EXP) - 1.0
}

/// The standard normal at the index whose counter is `counter`.
#[inline]
pub(crate) fn normal(t: &Tables, key: Key, counter: u64) -> f64 {
    let bits = fmix(counter);
    let i = layer(bits);
    let x = sym(bits) * t.x[i];
    if x.abs() < t.x[i + 1] {
        x
    } else {
        normal_slow(t, key, counter, bits)
    }
}

/// Bit-select: `a` where `take_a`, else `b`, with no branch (the wedge
/// test's outcome is a coin flip that a branch would mispredict).
#[inline(always)]
fn pick(take_a: bool, a: f64, b: f64) -> f64 {
    let m = u64::from(take_a).wrapping_neg();
    f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// The full ziggurat from word 0 (`bits`) on, for a draw the fast path
/// rejected: wedge test, tail, or a fresh word from the index's own stream.
///
/// The common case (a layer above the base whose wedge test accepts, or
/// whose next word the fast path accepts: about 99% of calls) is
/// evaluated without branching on the wedge test: both outcomes are
/// computed and one is picked. The rest starts over in
/// [`normal_slow_loop`], which draws the same words in the same order, so
/// the value is the same either way.
#[cold]
#[inline(never)]
pub(crate) fn normal_slow(t: &Tables, key: Key, counter: u64, bits: u64) -> f64 {
    let i = layer(bits);
    if i != 0 {
        let mut words = Words::new(key, counter);
        let x = sym(bits) * t.x[i];
        let accept = t.f[i + 1] + (t.f[i] - t.f[i + 1]) * words.unit() < normal_pdf(x);
        let next = words.next_word();
        let j = layer(next);
        let x2 = sym(next) * t.x[j];
        let fast2 = x2.abs() < t.x[j + 1];
        if accept | fast2 {
            return pick(accept, x, x2);
        }
    }
    normal_slow_loop(t, key, counter, bits)
}

/// [`normal_slow`]'s definition: the ziggurat loop, one branch per test.
#[cold]
#[inline(never)]
pub(super) fn normal_slow_loop(t: &Tables, key: Key, counter: u64, mut bits: u64) -> f64 {
    let mut words = Words::new(key, counter);
    loop {
        let i = layer(bits);
        let u = sym(bits);
        let x = u * t.x[i];
        if x.abs() < t.x[i + 1] {
            return x;
        }
        if i == 0 {
            // Marsaglia's tail: exact sampling of |x| > R.
            loop {
                let tx = -words.open_unit().ln() / NORM_R;
                let ty = -words.open_unit().ln();
                if ty + ty >= tx * tx {
                    return if u < 0.0 { -(NORM_R + tx) } else { NORM_R + tx };
                }
            }
        }
        if t.f[i + 1] + (t.f[i] - t.f[i + 1]) * words.unit() < normal_pdf(x) {
            return x;
        }
        bits = words.next_word();
    }
}

/// The standard exponential at the index whose counter is `counter`.
#[inline]
pub(crate) fn exponential(t: &Tables, key: Key, counter: u64) -> f64 {
    let bits = fmix(counter);
    let i = layer(bits);
    let x = half(bits) * t.x[i];
    if x < t.x[i + 1] {
        x
    } else {
        exponential_slow(t, key, counter, bits)
    }
}

/// The exponential ziggurat's slow path; the tail is `R + Exp(1)` by
/// memorylessness, drawn by inversion. The common case is branch-free on
/// the wedge test, as in [`normal_slow`].
#[cold]
#[inline(never)]
pub(crate) fn exponential_slow(t: &Tables, key: Key, counter: u64, bits: u64) -> f64 {
    let i = layer(bits);
    if i != 0 {
        let mut words = Words::new(key, counter);
        let x = half(bits) * t.x[i];
        let accept = t.f[i + 1] + (t.f[i] - t.f[i + 1]) * words.unit() < exp_pdf(x);
        let next = words.next_word();
        let j = layer(next);
        let x2 = half(next) * t.x[j];
        let fast2 = x2 < t.x[j + 1];
        if accept | fast2 {
            return pick(accept, x, x2);
        }
    }
    exponential_slow_loop(t, key, counter, bits)
}

/// [`exponential_slow`]'s definition: the ziggurat loop.
#[cold]
#[inline(never)]
pub(super) fn exponential_slow_loop(t: &Tables, key: Key, counter: u64, mut bits: u64) -> f64 {
    let mut words = Words::new(key, counter);
    loop {
        let i = layer(bits);
        let x = half(bits) * t.x[i];
        if x < t.x[i + 1] {
            return x;
        }
        if i == 0 {
            return EXP_R - words.open_unit().ln();
        }
        if t.f[i + 1] + (t.f[i] - t.f[i + 1]) * words.unit() < exp_pdf(x) {
            return x;
        }
        bits = words.next_word();
    }
}
