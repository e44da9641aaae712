//! 256-layer ziggurat tables and the scalar samplers every path shares.
//!
//! Marsaglia & Tsang's ziggurat covers the density with 256 layers of equal
//! area `V`: layer `i` is the rectangle `[0, x[i]) x [f(x[i]), f(x[i+1])]`,
//! layer 0 is the base strip plus the tail beyond `R = x[1]`. One 64-bit
//! word picks a layer (bits 0..8) and a position inside it (bits 12..64,
//! 52 bits: symmetric in [-1, 1) for the normal, [0, 1) for the exponential).
//! When the point lies under `x[i+1]` (about 99% of draws) it is accepted at
//! once: that fast path is a table lookup, a multiply and a compare, which
//! the batch kernels evaluate for many indices at a time.
//!
//! The rest — wedges, the tail, retries — is [`normal_slow`] /
//! [`exponential_slow`]: scalar, drawing further words of the *same index*
//! from [`Words`], so a value is still a pure function of (seed, index).
//! Every fill path ends here for rejected lanes, which is what makes the
//! batch kernels bit-identical to [`normal`] / [`exponential`].
//!
//! Tables are computed once (a [`OnceLock`]) from Marsaglia & Tsang's
//! published `R` and `V`; `x[256] = 0`, `f[i] = pdf(x[i])`.

use std::sync::OnceLock;

use super::hash::{fmix, Key, Words};

/// Number of layers; layer indices are one byte of the word.
pub(crate) const LAYERS: usize = 256;

/// Normal: right edge of the base strip's rectangle (start of the tail).
pub(crate) const NORM_R: f64 = 3.654_152_885_361_009;
/// Normal: area of each layer (for the unnormalised density e^(-x^2/2)).
const NORM_V: f64 = 4.928_673_233_99e-3;
/// Exponential: start of the tail.
pub(crate) const EXP_R: f64 = 7.697_117_470_131_05;
/// Exponential: area of each layer.
const EXP_V: f64 = 3.949_659_822_581_572e-3;

/// The layer edges `x` (decreasing, `x[256] = 0`) and the density at them.
#[derive(Debug)]
pub(crate) struct Tables {
    /// `x[0] = V / f(R)` (the base strip's width), `x[1] = R`, ..., `x[256] = 0`.
    pub(crate) x: [f64; LAYERS + 1],
    /// `f[i] = pdf(x[i])`; increasing, `f[256] = 1`.
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
    (bits & 0xff) as usize
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

/// The full ziggurat from word 0 (`bits`) on, for a draw the fast path
/// rejected: wedge test, tail, or a fresh word from the index's own stream.
#[cold]
#[inline(never)]
pub(crate) fn normal_slow(t: &Tables, key: Key, counter: u64, mut bits: u64) -> f64 {
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
/// memorylessness, drawn by inversion.
#[cold]
#[inline(never)]
pub(crate) fn exponential_slow(t: &Tables, key: Key, counter: u64, mut bits: u64) -> f64 {
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
