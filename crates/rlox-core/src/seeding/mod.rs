//! Seeding: one seed per run drives every random choice.
//!
//! rlox draws from two families of streams.
//!
//! * **rlox's own streams** ([`Rng`], ChaCha8 from `rand_chacha`): portable, fast, and identical on
//!   every platform, so the same seed gives the same numbers on the same build. Agents, replay
//!   buffers, exploration noise and trainers use them. Components that need their own stream derive
//!   it with [`derive_seed`], never by sharing one RNG across threads.
//! * **Gymnasium's stream** ([`Generator`]): the Gymnasium-compatible environments draw exactly what
//!   Gymnasium 1.x draws, from the generator Gymnasium builds, so that `reset(Some(s))` starts the
//!   same episode as `env.reset(seed=s)` in Python. [`np_random`] is Gymnasium's
//!   `gymnasium.utils.seeding.np_random(seed)`: NumPy's [`SeedSequence`] turns the seed into the
//!   state of NumPy's [`Pcg64`] bit generator, and [`Generator`] makes NumPy's draws from it
//!   (`random`, `uniform`, `integers`); [`categorical_sample`] is the toy-text envs' sampler
//!   (`np.argmax(np.cumsum(p) > rng.random())`). Without a seed, NumPy (and so Gymnasium) seeds
//!   from 128 bits of fresh OS entropy, and so does [`np_random`]`(None)`.
//!
//! The NumPy stream is checked against values produced by NumPy 2.4 itself
//! (`tests/fixtures/numpy_random.json`, written by `tools/numpy_random_fixture.py`).

mod generator;
mod pcg64;
mod seed_sequence;

pub use generator::Generator;
pub use pcg64::{Pcg64, Pcg64State};
pub use seed_sequence::SeedSequence;

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

/// A [`SeedSequence`] seeded from 128 bits of fresh OS entropy (NumPy's `SeedSequence(None)`,
/// which draws `secrets.randbits(128)`), through the OS-seeded thread RNG.
pub fn fresh_seed_sequence() -> SeedSequence {
    use rand::Rng as _;
    SeedSequence::from_u128(rand::rng().random::<u128>())
}

/// Gymnasium's `seeding.np_random(seed)`: the environment's generator and the seed sequence it came
/// from (whose [`SeedSequence::entropy`] is Gymnasium's returned `np_seed`).
///
/// `Some(s)` is deterministic; `None` draws fresh entropy, so two unseeded generators differ.
pub fn np_random(seed: Option<u64>) -> (Generator, SeedSequence) {
    let seq = match seed {
        Some(s) => SeedSequence::new(s),
        None => fresh_seed_sequence(),
    };
    (Generator::from_seed_sequence(&seq), seq)
}

/// [`np_random`] for any non-negative integer seed, given as 64-bit limbs lowest first (Python
/// integers are unbounded and Gymnasium accepts all of them).
pub fn np_random_from_int_limbs(limbs: &[u64]) -> (Generator, SeedSequence) {
    let seq = SeedSequence::from_int_limbs(limbs);
    (Generator::from_seed_sequence(&seq), seq)
}

/// Gymnasium's check of an integer seed: a negative seed is an error with Gymnasium's message
/// (`"Seed must be greater or equal to zero, actual value: -1"`). (Gymnasium also rejects seeds that
/// are not Python integers, which a Rust integer cannot be.)
pub fn check_seed(seed: i128) -> crate::Result<u128> {
    u128::try_from(seed).map_err(|_| {
        crate::Error::invalid("seed", format!("Seed must be greater or equal to zero, actual value: {seed}"))
    })
}

/// Gymnasium's toy-text `categorical_sample(prob_n, np_random)`:
/// `np.argmax(np.cumsum(prob_n) > np_random.random())`.
///
/// The cumulative sum is taken left to right (as `np.cumsum` does) and one double is drawn even
/// when the outcome is certain. When rounding leaves every partial sum at or below the draw, NumPy's
/// `argmax` of an all-false array is 0, and so is the result here.
pub fn categorical_sample(probs: &[f64], rng: &mut Generator) -> usize {
    let u = rng.random();
    let mut cumulative = 0.0;
    for (i, p) in probs.iter().enumerate() {
        cumulative += p;
        if cumulative > u {
            return i;
        }
    }
    0
}

/// [`categorical_sample`] over a precomputed cumulative sum (`np.cumsum(prob_n)`, non-decreasing):
/// the same index, found by bisection.
pub fn categorical_sample_cumulative(cumulative: &[f64], rng: &mut Generator) -> usize {
    let u = rng.random();
    let i = cumulative.partition_point(|&c| c <= u);
    if i < cumulative.len() {
        i
    } else {
        0
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
    fn derived_seeds_differ() {
        let s: std::collections::HashSet<u64> = (0..1000).map(|i| derive_seed(5, i)).collect();
        assert_eq!(s.len(), 1000);
        assert_ne!(derive_seed(5, 0), derive_seed(6, 0));
    }
}
