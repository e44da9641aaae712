//! Counter-based random numbers (CONTRACT — being implemented).

/// A distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Normal { loc: f64, scale: f64 },
    Uniform { low: f64, high: f64 },
    Exponential { scale: f64 },
}

/// Fill `out[i]` with the value at flat index `start + i * stride`.
pub fn fill(dist: Distribution, seed: u64, start: u64, stride: u64, out: &mut [f64]) {
    let _ = (dist, seed, start, stride, out);
    unimplemented!()
}
