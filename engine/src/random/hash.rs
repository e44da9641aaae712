//! The counter hash: a pure function from `(seed, flat index, attempt)` to
//! 64 random bits.
//!
//! Word 0 of an index (the only one the ziggurat's fast path needs) is the
//! SplitMix64 output `fmix(k0 + index * GAMMA)`, where `k0` is a full mix of
//! the seed and `fmix` is SplitMix64's finaliser (Stafford's "mix13"). A run
//! of indices `start, start + stride, ...` is therefore an arithmetic
//! progression of counters, so a batch costs one add and one finaliser per
//! value, and the value at an index never depends on which run produced it.
//!
//! Further words for the same index (rejections, the tail, the wedge test)
//! come from [`Words`]: a second, seed-keyed bijection of the counter
//! starts a private SplitMix64 stream per index, so extra words are
//! independent of every other index's words and need no shared state.

/// SplitMix64's Weyl increment: the odd integer nearest 2^64 / phi.
pub(crate) const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// First multiplier of SplitMix64's finaliser.
pub(crate) const M1: u64 = 0xBF58_476D_1CE4_E5B9;
/// Second multiplier of SplitMix64's finaliser.
pub(crate) const M2: u64 = 0x94D0_49BB_1331_11EB;

/// SplitMix64's finaliser: a bijection on `u64` with full avalanche.
#[inline(always)]
pub(crate) fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The two 64-bit keys derived from a user seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    /// Offset of the word-0 counter.
    pub(crate) k0: u64,
    /// Key of the bijection that seeds the per-index extra-word stream.
    pub(crate) k1: u64,
}

impl Key {
    /// The first two SplitMix64 outputs of `seed`: nearby seeds (0, 1, 2,
    /// ...) get unrelated keys, so their counter streams sit at unrelated
    /// offsets and do not overlap in any array smaller than ~2^60 elements.
    pub(crate) fn new(seed: u64) -> Key {
        Key {
            k0: fmix(seed.wrapping_add(GAMMA)),
            k1: fmix(seed.wrapping_add(GAMMA.wrapping_mul(2))),
        }
    }

    /// The counter of a flat index: word 0 is `fmix(counter)`.
    #[inline(always)]
    pub(crate) fn counter(self, index: u64) -> u64 {
        self.k0.wrapping_add(index.wrapping_mul(GAMMA))
    }
}

/// The extra words (attempts 1, 2, ...) of one index, in order.
///
/// Attempt `a` is `fmix(fmix(counter ^ k1) + a * GAMMA)`: a SplitMix64
/// stream whose seed is a second keyed bijection of the counter. Built only
/// on the rare slow path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Words {
    base: u64,
    attempt: u64,
}

impl Words {
    /// The extra-word stream of the index whose counter is `counter`.
    #[inline]
    pub(crate) fn new(key: Key, counter: u64) -> Words {
        Words {
            base: fmix(counter ^ key.k1),
            attempt: 0,
        }
    }

    /// The next word (attempt 1 first).
    #[inline]
    pub(crate) fn next_word(&mut self) -> u64 {
        self.attempt += 1;
        fmix(self.base.wrapping_add(self.attempt.wrapping_mul(GAMMA)))
    }

    /// The next word as a uniform in (0, 1]: never 0, so safe for `ln`.
    #[inline]
    pub(crate) fn open_unit(&mut self) -> f64 {
        ((self.next_word() >> 11) + 1) as f64 * UNIT
    }

    /// The next word as a uniform in [0, 1) with 53 bits.
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        unit53(self.next_word())
    }
}

/// 2^-53: the spacing of 53-bit uniforms.
pub(crate) const UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// The top 53 bits of `bits` as a uniform in [0, 1) (exact: every value is
/// a multiple of 2^-53).
#[inline(always)]
pub(crate) fn unit53(bits: u64) -> f64 {
    (bits >> 11) as f64 * UNIT
}
