//! Counter-based random numbers: every element of a random array is a pure
//! function of `(distribution, seed, flat element index)`.
//!
//! # Why counter-based
//!
//! A streaming executor computes chunks in any order, on any thread, and may
//! compute only a slice of an array (`x[::100]`). A sequential generator
//! (one state advanced element by element) would make values depend on the
//! chunking and the schedule, or force generating everything before the
//! part wanted. Here the "state" is the index itself: [`value_at`] hashes
//! `(seed, index)`, so results are identical for every chunking and thread
//! count, any strided run can be generated alone ([`fill`] with a `start`
//! and `stride`), and nothing is shared between threads.
//!
//! # Design
//!
//! - **Hash** (`hash.rs`): word 0 of index `i` is SplitMix64's output
//!   `fmix(k0 + i * GAMMA)` with `k0` a full mix of the seed. Consecutive
//!   requested indices are an arithmetic progression of counters, so a
//!   value costs one add and one 2-multiply finaliser.
//! - **Normal / exponential** (`ziggurat.rs`): a 1024-layer ziggurat whose
//!   fast path (99.4-99.6% of draws) uses only word 0. Rejections, wedges and the
//!   tail draw further words of the same index from a per-index stream
//!   (`hash(seed, index, attempt)`), so every index stays independent.
//! - **Uniform**: `low + (high - low) * u`, `u` the top 53 bits of word 0
//!   times 2^-53, in [0, 1). (Rounding can make the result equal `high`
//!   when the interval is tiny next to `|low|`, as in NumPy.)
//! - **Speed**: [`fill`] runs batch kernels — AVX-512 (`avx512.rs`) or
//!   AVX2 (`avx2.rs`), picked at run time, or portable (`portable.rs`) —
//!   that hash a whole run, evaluate the fast path without branches and
//!   patch the rare rejected lanes with the scalar slow path. All perform
//!   the same IEEE operations as
//!   [`value_at`], with no fused multiply-add, so all paths agree bit for
//!   bit.
//!
//! # Invariants
//!
//! - `fill(d, s, start, stride, out)[k] == value_at(d, s, start + k * stride)`
//!   bit for bit (index arithmetic wraps modulo 2^64), on every CPU path.
//! - [`fill_f32`] writes exactly `fill`'s values cast to `f32`.
//! - Values are reproducible across runs and threads of the same build;
//!   they use `ln`/`exp` only on rare slow paths and in the one-time tables.

mod hash;
mod portable;
mod ziggurat;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests;

use std::mem::MaybeUninit;

use hash::{fmix, unit53, Key, GAMMA};

/// A distribution of random values (all generated as `f64`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Distribution {
    /// Gaussian with mean `loc` and standard deviation `scale`.
    Normal { loc: f64, scale: f64 },
    /// Uniform on `[low, high)`.
    Uniform { low: f64, high: f64 },
    /// Exponential with mean `scale` (rate `1 / scale`).
    Exponential { scale: f64 },
}

impl Distribution {
    /// Check the parameters: finite, and scales not negative.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error) naming them.
    ///
    /// ```
    /// use ndstream_engine::Distribution;
    /// assert!(Distribution::Normal { loc: 0.0, scale: 1.0 }.check().is_ok());
    /// assert!(Distribution::Exponential { scale: -1.0 }.check().is_err());
    /// assert!(Distribution::Uniform { low: 0.0, high: f64::NAN }.check().is_err());
    /// ```
    pub fn check(&self) -> crate::Result<()> {
        let ok = match *self {
            Distribution::Normal { loc, scale } => {
                loc.is_finite() && scale.is_finite() && scale >= 0.0
            }
            Distribution::Uniform { low, high } => low.is_finite() && high.is_finite(),
            Distribution::Exponential { scale } => scale.is_finite() && scale >= 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(crate::Error::invalid(
                "random",
                "scale",
                format!("invalid parameters {self:?}"),
            ))
        }
    }
}

/// The value at flat element index `index` of the random array `(dist, seed)`.
///
/// This is the scalar reference; [`fill`] returns the same bits.
///
/// ```
/// use ndstream_engine::random::{value_at, Distribution};
/// let d = Distribution::Normal { loc: 10.0, scale: 0.1 };
/// assert_eq!(value_at(d, 42, 7).to_bits(), value_at(d, 42, 7).to_bits());
/// assert_ne!(value_at(d, 42, 7), value_at(d, 43, 7));
/// ```
pub fn value_at(dist: Distribution, seed: u64, index: u64) -> f64 {
    let key = Key::new(seed);
    let counter = key.counter(index);
    match dist {
        Distribution::Normal { loc, scale } => {
            loc + scale * ziggurat::normal(ziggurat::normal_tables(), key, counter)
        }
        Distribution::Uniform { low, high } => low + (high - low) * unit53(fmix(counter)),
        Distribution::Exponential { scale } => {
            scale * ziggurat::exponential(ziggurat::exponential_tables(), key, counter)
        }
    }
}

/// Fill `out[k]` with the value at flat index `start + k * stride`
/// (wrapping modulo 2^64), i.e. `value_at(dist, seed, start + k * stride)`.
///
/// Any chunking of a run gives the same values: `fill(d, s, 10, 3, out)`
/// equals `[value_at(d, s, 10), value_at(d, s, 13), ...]`.
///
/// ```
/// use ndstream_engine::random::{fill, value_at, Distribution};
/// let d = Distribution::Uniform { low: -1.0, high: 1.0 };
/// let mut out = [0.0; 5];
/// fill(d, 7, 10, 3, &mut out);
/// for (k, v) in out.iter().enumerate() {
///     assert_eq!(v.to_bits(), value_at(d, 7, 10 + 3 * k as u64).to_bits());
/// }
/// ```
pub fn fill(dist: Distribution, seed: u64, start: u64, stride: u64, out: &mut [f64]) {
    fill_uninit(dist, seed, start, stride, as_uninit(out));
}

/// `out` viewed as possibly uninitialised memory, for the kernels, which
/// only ever write initialised values into it.
fn as_uninit(out: &mut [f64]) -> &mut [MaybeUninit<f64>] {
    // SAFETY: `MaybeUninit<f64>` has the layout of `f64`, and every write
    // through the returned slice stores an initialised `f64`, so `out`
    // stays initialised.
    unsafe { &mut *(out as *mut [f64] as *mut [MaybeUninit<f64>]) }
}

/// [`fill`] into memory that need not be initialised: every element of
/// `out` is written, so a caller can allocate without zeroing first.
pub(crate) fn fill_uninit(
    dist: Distribution,
    seed: u64,
    start: u64,
    stride: u64,
    out: &mut [MaybeUninit<f64>],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU supports AVX-512F and AVX-512DQ, checked just above.
            unsafe { fill_avx512(dist, seed, start, stride, out) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { fill_avx2(dist, seed, start, stride, out) };
            return;
        }
    }
    fill_portable(dist, seed, start, stride, out);
}

/// [`fill`] into `f32`: exactly `fill`'s `f64` values cast to `f32`.
///
/// ```
/// use ndstream_engine::random::{fill, fill_f32, Distribution};
/// let d = Distribution::Exponential { scale: 2.0 };
/// let (mut a, mut b) = ([0.0f64; 300], [0.0f32; 300]);
/// fill(d, 1, 0, 1, &mut a);
/// fill_f32(d, 1, 0, 1, &mut b);
/// assert!(a.iter().zip(&b).all(|(x, y)| *x as f32 == *y));
/// ```
pub fn fill_f32(dist: Distribution, seed: u64, start: u64, stride: u64, out: &mut [f32]) {
    const PIECE: usize = 256;
    let mut buf = [0.0f64; PIECE];
    let mut first = start;
    for chunk in out.chunks_mut(PIECE) {
        let tmp = &mut buf[..chunk.len()];
        fill(dist, seed, first, stride, tmp);
        for (o, v) in chunk.iter_mut().zip(tmp.iter()) {
            *o = *v as f32;
        }
        first = first.wrapping_add((chunk.len() as u64).wrapping_mul(stride));
    }
}

/// The body of a batch path: the kernels of module `$m` for `dist` over
/// the counters of `start, start + stride, ...`.
macro_rules! fill_with {
    ($m:ident, $dist:expr, $seed:expr, $start:expr, $stride:expr, $out:expr) => {{
        let key = Key::new($seed);
        let z0 = key.counter($start);
        let step = $stride.wrapping_mul(GAMMA);
        match $dist {
            Distribution::Normal { loc, scale } => {
                $m::normal(ziggurat::normal_tables(), key, z0, step, loc, scale, $out);
            }
            Distribution::Uniform { low, high } => $m::uniform(z0, step, low, high - low, $out),
            Distribution::Exponential { scale } => {
                $m::exponential(ziggurat::exponential_tables(), key, z0, step, scale, $out);
            }
        }
    }};
}

/// The portable batch path (every target; the fallback on x86-64 without AVX2).
fn fill_portable(
    dist: Distribution,
    seed: u64,
    start: u64,
    stride: u64,
    out: &mut [MaybeUninit<f64>],
) {
    fill_with!(portable, dist, seed, start, stride, out)
}

/// The AVX2 batch path.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(
    dist: Distribution,
    seed: u64,
    start: u64,
    stride: u64,
    out: &mut [MaybeUninit<f64>],
) {
    fill_with!(avx2, dist, seed, start, stride, out)
}

/// The AVX-512 batch path.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fill_avx512(
    dist: Distribution,
    seed: u64,
    start: u64,
    stride: u64,
    out: &mut [MaybeUninit<f64>],
) {
    fill_with!(avx512, dist, seed, start, stride, out)
}
