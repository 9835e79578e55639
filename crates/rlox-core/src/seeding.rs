//! Seeding: one seed per run drives every random choice.
//!
//! rlox uses ChaCha8 streams (`rand_chacha`): portable, fast, and identical on every platform, so the
//! same seed gives the same numbers on the same build. Components that need their own stream
//! (each env of a batch, the replay buffer, the exploration noise, ...) derive it with
//! [`derive_seed`], never by sharing one RNG across threads.

use rand::SeedableRng;

/// The RNG used throughout rlox.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A fresh RNG from a 64-bit seed.
pub fn rng_from_seed(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// A seed for sub-stream `stream` of a run seeded with `seed` (SplitMix64 finaliser over both).
///
/// Distinct streams give statistically independent seeds; the mapping is fixed forever so that
/// recorded runs stay reproducible.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A ChaCha stream's position, for checkpoints: re-seed with `seed`, then jump to `word_pos`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    /// The seed the stream was created from.
    pub seed: u64,
    /// `get_word_pos()` as a decimal string (a u128 does not fit JSON numbers).
    pub word_pos: String,
}

/// A seeded stream that remembers its seed, so that its position can be saved and restored exactly.
#[derive(Debug, Clone)]
pub struct SeededRng {
    seed: u64,
    /// The stream.
    pub rng: Rng,
}

impl SeededRng {
    /// A fresh stream.
    pub fn new(seed: u64) -> Self {
        SeededRng { seed, rng: rng_from_seed(seed) }
    }

    /// Its position.
    pub fn state(&self) -> RngState {
        RngState { seed: self.seed, word_pos: self.rng.get_word_pos().to_string() }
    }

    /// Back at a saved position; a malformed position is an error naming it.
    pub fn from_state(s: &RngState) -> crate::Result<Self> {
        let pos: u128 = s
            .word_pos
            .parse()
            .map_err(|_| crate::Error::invalid("rng word_pos", format!("'{}' is not a number", s.word_pos)))?;
        let mut rng = rng_from_seed(s.seed);
        rng.set_word_pos(pos);
        Ok(SeededRng { seed: s.seed, rng })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u32> = (0..8)
            .map({
                let mut r = rng_from_seed(42);
                move |_| r.random()
            })
            .collect();
        let b: Vec<u32> = (0..8)
            .map({
                let mut r = rng_from_seed(42);
                move |_| r.random()
            })
            .collect();
        let c: Vec<u32> = (0..8)
            .map({
                let mut r = rng_from_seed(43);
                move |_| r.random()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn saved_positions_resume_the_stream() {
        let mut a = SeededRng::new(7);
        let _: u64 = a.rng.random();
        let mut b = SeededRng::from_state(&a.state()).unwrap();
        assert_eq!(a.rng.random::<u64>(), b.rng.random::<u64>());
        let bad = RngState { seed: 1, word_pos: "x".into() };
        assert!(SeededRng::from_state(&bad).unwrap_err().to_string().contains("'x'"));
    }

    #[test]
    fn derived_seeds_differ() {
        let s: std::collections::HashSet<u64> = (0..1000).map(|i| derive_seed(5, i)).collect();
        assert_eq!(s.len(), 1000);
        assert_ne!(derive_seed(5, 0), derive_seed(6, 0));
    }
}
