//! Portable batch kernels (baseline x86-64 / any target).
//!
//! A run is processed in batches of [`BATCH`] values, in three passes that
//! each have no data-dependent control flow: (1) hash every counter of the
//! batch into a stack buffer, (2) evaluate the ziggurat's fast path for all
//! of them and write outputs plus a "rejected" flag, (3) only if any lane
//! was rejected, recompute those lanes with the scalar slow path. Keeping
//! the rare branch out of the first two passes lets the compiler pipeline
//! (and where profitable vectorise) them; pass 3 is the same code as
//! [`super::value_at`], so results are bit-identical to it.

use std::mem::MaybeUninit;

use super::hash::{fmix, unit53, Key};
use super::ziggurat::{exponential_slow, half, layer, normal_slow, sym, Tables};

/// Values per batch: the hash buffer is 1 KiB of stack.
pub(crate) const BATCH: usize = 128;

/// Shared driver: `fast(bits) -> (value, accepted)`; rejected lanes become
/// `slow(counter, bits)`. Counters run `z0, z0 + step, ...` (wrapping).
#[inline(always)]
fn run(
    z0: u64,
    step: u64,
    out: &mut [MaybeUninit<f64>],
    fast: impl Fn(u64) -> (f64, bool),
    slow: impl Fn(u64, u64) -> f64,
) {
    let mut bits = [0u64; BATCH];
    let mut rejected = [false; BATCH];
    let mut z = z0;
    for chunk in out.chunks_mut(BATCH) {
        let n = chunk.len();
        for (k, b) in bits[..n].iter_mut().enumerate() {
            *b = fmix(z.wrapping_add((k as u64).wrapping_mul(step)));
        }
        let mut any = false;
        for ((o, &b), r) in chunk.iter_mut().zip(&bits[..n]).zip(&mut rejected[..n]) {
            let (v, ok) = fast(b);
            o.write(v);
            *r = !ok;
            any |= !ok;
        }
        if any {
            for (k, o) in chunk.iter_mut().enumerate() {
                if rejected[k] {
                    o.write(slow(z.wrapping_add((k as u64).wrapping_mul(step)), bits[k]));
                }
            }
        }
        z = z.wrapping_add((n as u64).wrapping_mul(step));
    }
}

/// `out[k] = loc + scale * N(0,1)` at counters `z0 + k * step`.
pub(crate) fn normal(
    t: &Tables,
    key: Key,
    z0: u64,
    step: u64,
    loc: f64,
    scale: f64,
    out: &mut [MaybeUninit<f64>],
) {
    run(
        z0,
        step,
        out,
        |b| {
            let i = layer(b);
            let x = sym(b) * t.x[i];
            (loc + scale * x, x.abs() < t.x[i + 1])
        },
        |z, b| loc + scale * normal_slow(t, key, z, b),
    );
}

/// `out[k] = scale * Exp(1)` at counters `z0 + k * step`.
pub(crate) fn exponential(
    t: &Tables,
    key: Key,
    z0: u64,
    step: u64,
    scale: f64,
    out: &mut [MaybeUninit<f64>],
) {
    run(
        z0,
        step,
        out,
        |b| {
            let i = layer(b);
            let x = half(b) * t.x[i];
            (scale * x, x < t.x[i + 1])
        },
        |z, b| scale * exponential_slow(t, key, z, b),
    );
}

/// `out[k] = low + width * U[0,1)` at counters `z0 + k * step`.
pub(crate) fn uniform(z0: u64, step: u64, low: f64, width: f64, out: &mut [MaybeUninit<f64>]) {
    let mut z = z0;
    for o in out.iter_mut() {
        o.write(low + width * unit53(fmix(z)));
        z = z.wrapping_add(step);
    }
}
