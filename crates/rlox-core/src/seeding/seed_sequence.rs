//! NumPy's `SeedSequence`: how a seed (any non-negative integer) becomes the state of a bit
//! generator.
//!
//! NumPy turns the seed into 32-bit words (lowest bits first), hashes them into a pool of four
//! words with O'Neill's `seed_seq` construction (a multiplicative hash whose multiplier changes
//! at every call, then an all-pairs mix so that every word depends on every other), and reads
//! generator state out of the pool with a second hash. All arithmetic is on `u32` with
//! wrap-around, exactly as NumPy's `uint32` code does, so the same seed gives the same state here
//! and in NumPy (the tests compare against values produced by NumPy itself).
//!
//! Only what `np.random.SeedSequence(seed)` does without a spawn key is implemented: Gymnasium
//! never spawns.

/// Words in the entropy pool (NumPy's `DEFAULT_POOL_SIZE`).
const POOL_SIZE: usize = 4;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
/// Half the word size.
const XSHIFT: u32 = 16;

/// NumPy's `np.random.SeedSequence(entropy)` (no spawn key, pool of four words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    /// The entropy as NumPy coerces an integer: 32-bit words, lowest first, no leading zero words
    /// (the integer 0 is one zero word).
    entropy: Vec<u32>,
    pool: [u32; POOL_SIZE],
}

/// The hash that feeds a word into the pool; `hash_const` advances at every call.
#[inline]
fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut value = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    value = value.wrapping_mul(*hash_const);
    value ^ (value >> XSHIFT)
}

/// Combine two pool words.
#[inline]
fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// The 32-bit words of a non-negative integer given as little-endian `u64` limbs, lowest first,
/// without high zero words (NumPy's `_int_to_uint32_array`).
fn int_words(limbs: &[u64]) -> Vec<u32> {
    let mut words: Vec<u32> = limbs.iter().flat_map(|&l| [l as u32, (l >> 32) as u32]).collect();
    while words.len() > 1 && words.last() == Some(&0) {
        words.pop();
    }
    if words.is_empty() {
        words.push(0);
    }
    words
}

impl SeedSequence {
    /// `SeedSequence(seed)` for a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        Self::from_int_limbs(&[seed])
    }

    /// `SeedSequence(seed)` for a 128-bit seed (the size of the fresh entropy NumPy draws).
    pub fn from_u128(seed: u128) -> Self {
        Self::from_int_limbs(&[seed as u64, (seed >> 64) as u64])
    }

    /// `SeedSequence(n)` for an arbitrarily large non-negative integer `n` given as 64-bit limbs,
    /// lowest first (Python's `n.to_bytes(..., "little")` read eight bytes at a time).
    pub fn from_int_limbs(limbs: &[u64]) -> Self {
        Self::from_words(int_words(limbs))
    }

    /// A sequence from entropy words exactly as NumPy holds them (`_coerce_to_uint32_array`).
    ///
    /// An integer seed must be passed through [`SeedSequence::from_int_limbs`] (which drops high
    /// zero words and maps 0 to one zero word); an empty list of words is NumPy's `SeedSequence([])`.
    pub fn from_words(entropy: Vec<u32>) -> Self {
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        // Feed the first words (or zeros) into the pool.
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
        }
        // Every word influences every other.
        for src in 0..POOL_SIZE {
            for dst in 0..POOL_SIZE {
                if src != dst {
                    let h = hashmix(pool[src], &mut hash_const);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        // Entropy beyond the pool size is mixed into every word.
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hashmix(word, &mut hash_const);
                *slot = mix(*slot, h);
            }
        }
        SeedSequence { entropy, pool }
    }

    /// The entropy words (NumPy's `entropy` attribute, as `uint32` words lowest first).
    pub fn entropy(&self) -> &[u32] {
        &self.entropy
    }

    /// The entropy as an integer when it fits in 128 bits.
    pub fn entropy_u128(&self) -> Option<u128> {
        if self.entropy.len() > 4 {
            return None;
        }
        Some(self.entropy.iter().rev().fold(0u128, |acc, &w| (acc << 32) | w as u128))
    }

    /// `generate_state(n_words, np.uint32)`.
    pub fn generate_state_u32(&self, n_words: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n_words)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect()
    }

    /// `generate_state(n_words, np.uint64)`: twice as many 32-bit words, paired little-endian.
    pub fn generate_state_u64(&self, n_words: usize) -> Vec<u64> {
        self.generate_state_u32(2 * n_words).chunks_exact(2).map(|w| w[0] as u64 | (w[1] as u64) << 32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_become_words_as_numpy_coerces_them() {
        assert_eq!(int_words(&[0]), vec![0]);
        assert_eq!(int_words(&[12345]), vec![12345]);
        assert_eq!(int_words(&[0x10_dead_beef]), vec![0xdead_beef, 0x10]);
        assert_eq!(int_words(&[5, 0]), vec![5]);
        assert_eq!(int_words(&[0, 1]), vec![0, 0, 1]);
        assert_eq!(SeedSequence::from_u128(7).entropy(), &[7]);
        assert_eq!(SeedSequence::from_u128(u128::MAX).entropy_u128(), Some(u128::MAX));
    }
}
