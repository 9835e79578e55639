//! NumPy's `PCG64` bit generator (O'Neill's PCG XSL-RR 128/64), as `np.random.PCG64` runs it.
//!
//! The state is a 128-bit LCG `state' = state * MULTIPLIER + increment`; each 64-bit output is the
//! XOR of the two halves of the *new* state rotated right by its top six bits. NumPy seeds it from
//! four 64-bit words of a [`SeedSequence`]: words 0-1 (high, low) are the initial state, words
//! 2-3 the stream selector, through PCG's `srandom` (state 0, step, add the seed, step).
//!
//! NumPy also hands out 32-bit values: it draws 64 bits, returns the low half and keeps the high
//! half for the next 32-bit request (`has_uint32`/`uinteger` in `bit_generator.state`). 64-bit and
//! double draws do not touch that buffer. [`Pcg64`] keeps the same buffer, so a stream that mixes
//! `integers` (32-bit draws for small ranges) with `random` (64-bit draws) stays in step with NumPy.

use super::SeedSequence;
use serde::{Deserialize, Serialize};

/// PCG's default 128-bit multiplier.
const MULTIPLIER: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// NumPy's `PCG64` bit generator with its 32-bit buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pcg64 {
    state: u128,
    /// The increment (always odd).
    inc: u128,
    /// A 32-bit half is waiting in `uinteger`.
    has_uint32: bool,
    uinteger: u32,
}

/// The state as NumPy's `PCG64().state` reports it (`{"state": {"state", "inc"}, "has_uint32", "uinteger"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pcg64State {
    /// The 128-bit LCG state.
    pub state: u128,
    /// The 128-bit increment (odd).
    pub inc: u128,
    /// Whether a buffered 32-bit half is pending.
    pub has_uint32: bool,
    /// The buffered 32-bit half.
    pub uinteger: u32,
}

impl Pcg64 {
    /// `np.random.PCG64(seed_seq)`.
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        let w = seq.generate_state_u64(4);
        let initstate = (w[0] as u128) << 64 | w[1] as u128;
        let initseq = (w[2] as u128) << 64 | w[3] as u128;
        let mut g = Pcg64 { state: 0, inc: (initseq << 1) | 1, has_uint32: false, uinteger: 0 };
        g.step();
        g.state = g.state.wrapping_add(initstate);
        g.step();
        g
    }

    /// The state in NumPy's layout.
    pub fn state(&self) -> Pcg64State {
        Pcg64State { state: self.state, inc: self.inc, has_uint32: self.has_uint32, uinteger: self.uinteger }
    }

    /// A generator in the given NumPy state (`bit_generator.state = ...`), taken as it is.
    pub fn from_state(s: Pcg64State) -> Self {
        Pcg64 { state: s.state, inc: s.inc, has_uint32: s.has_uint32, uinteger: s.uinteger }
    }

    #[inline(always)]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(MULTIPLIER).wrapping_add(self.inc);
    }

    /// The next 64 bits (`next_uint64`): advance, then output the new state.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let rot = (s >> 122) as u32;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right(rot)
    }

    /// The next 32 bits (`next_uint32`), half of a 64-bit draw (low half first).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.has_uint32 {
            self.has_uint32 = false;
            return self.uinteger;
        }
        let x = self.next_u64();
        self.has_uint32 = true;
        self.uinteger = (x >> 32) as u32;
        x as u32
    }

    /// A double in `[0, 1)` from the top 53 bits of a 64-bit draw (`next_double`).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}
