//! The draws of `numpy.random.Generator` that Gymnasium's environments make, on [`Pcg64`].
//!
//! Each method reproduces NumPy 2's C code for the draw, so a [`Generator`] built from the same
//! seed returns the same values, bit for bit, in the same order, as `np.random.default_rng(seed)`
//! (or Gymnasium's `np_random(seed)`):
//!
//! * [`Generator::random`]: `random()`, 53 random bits scaled into `[0, 1)`;
//! * [`Generator::uniform`]: `uniform(low, high)`, computed as `low + (high - low) * random()`
//!   (NumPy subtracts first, then multiplies and adds, with no fused multiply-add);
//! * [`Generator::integers`]: `integers(low, high)` with NumPy's bounded-integer algorithm
//!   (Lemire's multiply-and-reject on 32-bit draws when the range fits in 32 bits, which uses the
//!   bit generator's 32-bit buffer, and on 64-bit draws otherwise);
//! * [`Generator::choice_index`]: the index drawn by `choice(a)` for a sequence of `n` items
//!   without probabilities (`integers(0, n)`).

use super::{Pcg64, Pcg64State, SeedSequence};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// `numpy.random.Generator(PCG64(seed_seq))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    bits: Pcg64,
}

impl Generator {
    /// `np.random.default_rng(seed)` for a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        Self::from_seed_sequence(&SeedSequence::new(seed))
    }

    /// `Generator(PCG64(seq))`.
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        Generator { bits: Pcg64::from_seed_sequence(seq) }
    }

    /// A generator over the given bit generator.
    pub fn from_bits(bits: Pcg64) -> Self {
        Generator { bits }
    }

    /// The bit generator.
    pub fn bits(&self) -> &Pcg64 {
        &self.bits
    }

    /// The bit generator, mutably (raw 32/64-bit draws).
    pub fn bits_mut(&mut self) -> &mut Pcg64 {
        &mut self.bits
    }

    /// The state in NumPy's layout (`rng.bit_generator.state`).
    pub fn state(&self) -> Pcg64State {
        self.bits.state()
    }

    /// A generator in the given NumPy state.
    pub fn from_state(state: Pcg64State) -> Self {
        Generator { bits: Pcg64::from_state(state) }
    }

    /// `random()`: a double uniform in `[0, 1)`.
    #[inline]
    pub fn random(&mut self) -> f64 {
        self.bits.next_f64()
    }

    /// `uniform(low, high)` for scalar bounds: `low + (high - low) * random()`.
    ///
    /// NumPy raises `OverflowError` when `high - low` is not finite; Gymnasium's bounds never are,
    /// and here the result is then simply not finite.
    #[inline]
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let range = high - low;
        low + range * self.random()
    }

    /// `uniform(low, high, size=out.len())` for scalar bounds, in order.
    pub fn uniform_fill(&mut self, low: f64, high: f64, out: &mut [f64]) {
        let range = high - low;
        for x in out {
            *x = low + range * self.random();
        }
    }

    /// `integers(low, high)`: an `int64` uniform in `[low, high)`; an error when `low >= high`
    /// (NumPy's `ValueError: low >= high`).
    pub fn integers(&mut self, low: i64, high: i64) -> Result<i64> {
        if low >= high {
            return Err(Error::invalid("integers bounds", format!("low >= high ({low} >= {high})")));
        }
        // NumPy works on the closed interval [low, high - 1] as offset + unsigned range.
        let range = (high as i128 - 1 - low as i128) as u64;
        Ok(self.bounded_u64(low as u64, range) as i64)
    }

    /// The index `choice(a)` draws for a sequence of `n > 0` items without probabilities.
    ///
    /// # Panics
    /// If `n` is 0 (NumPy raises `ValueError` for an empty sequence).
    pub fn choice_index(&mut self, n: usize) -> usize {
        assert!(n > 0, "choice from an empty sequence");
        self.bounded_u64(0, n as u64 - 1) as usize
    }

    /// NumPy's `random_bounded_uint64(off, rng, use_masked=False)`: `off` plus a uniform value in
    /// the closed interval `[0, rng]`, wrapping as NumPy's unsigned arithmetic does.
    pub fn bounded_u64(&mut self, off: u64, rng: u64) -> u64 {
        if rng == 0 {
            off
        } else if rng < u32::MAX as u64 {
            off.wrapping_add(self.lemire_u32(rng as u32) as u64)
        } else if rng == u32::MAX as u64 {
            // The whole 32-bit range: one buffered 32-bit draw, as NumPy's fill does.
            off.wrapping_add(self.bits.next_u32() as u64)
        } else if rng == u64::MAX {
            off.wrapping_add(self.bits.next_u64())
        } else {
            off.wrapping_add(self.lemire_u64(rng))
        }
    }

    /// Lemire's nearly divisionless method on 32-bit draws: a value in `[0, rng]`, `rng < 2^32 - 1`.
    #[inline]
    fn lemire_u32(&mut self, rng: u32) -> u32 {
        let rng_excl = rng + 1;
        let mut m = self.bits.next_u32() as u64 * rng_excl as u64;
        let mut leftover = m as u32;
        if leftover < rng_excl {
            let threshold = (u32::MAX - rng) % rng_excl;
            while leftover < threshold {
                m = self.bits.next_u32() as u64 * rng_excl as u64;
                leftover = m as u32;
            }
        }
        (m >> 32) as u32
    }

    /// Lemire's method on 64-bit draws: a value in `[0, rng]`, `rng < 2^64 - 1`.
    #[inline]
    fn lemire_u64(&mut self, rng: u64) -> u64 {
        let rng_excl = rng + 1;
        let mut m = self.bits.next_u64() as u128 * rng_excl as u128;
        let mut leftover = m as u64;
        if leftover < rng_excl {
            let threshold = (u64::MAX - rng) % rng_excl;
            while leftover < threshold {
                m = self.bits.next_u64() as u128 * rng_excl as u128;
                leftover = m as u64;
            }
        }
        (m >> 64) as u64
    }
}
