//! Tabular policies: a distribution over actions for every state.

use crate::{Error, Result};
use rand::Rng;

/// Tolerance under which two action values count as tied when acting greedily.
///
/// Ties go to the lowest action index; this is what reproduces the book's printed optimal policies.
pub const GREEDY_TIE_TOLERANCE: f64 = 1e-9;

/// `pi(a | s)` for a finite MDP, stored row-major `[s * n_actions + a]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularPolicy {
    n_states: usize,
    n_actions: usize,
    probs: Vec<f64>,
}

impl TabularPolicy {
    /// A policy from a row-major probability table; each row must be a distribution.
    pub fn from_probs(n_states: usize, n_actions: usize, probs: Vec<f64>) -> Result<Self> {
        if probs.len() != n_states * n_actions {
            return Err(Error::invalid(
                "policy",
                format!("{} probabilities for {n_states} x {n_actions}", probs.len()),
            ));
        }
        for s in 0..n_states {
            let row = &probs[s * n_actions..(s + 1) * n_actions];
            let total: f64 = row.iter().sum();
            if row.iter().any(|p| !(*p >= 0.0)) || (total - 1.0).abs() > 1e-9 {
                return Err(Error::invalid("policy", format!("state {s}: {row:?} is not a distribution")));
            }
        }
        Ok(TabularPolicy { n_states, n_actions, probs })
    }

    /// The deterministic policy taking `actions[s]` in state `s`.
    pub fn deterministic(actions: &[usize], n_actions: usize) -> Result<Self> {
        let mut probs = vec![0.0; actions.len() * n_actions];
        for (s, &a) in actions.iter().enumerate() {
            if a >= n_actions {
                return Err(Error::invalid("policy", format!("state {s}: action {a} >= {n_actions}")));
            }
            probs[s * n_actions + a] = 1.0;
        }
        Ok(TabularPolicy { n_states: actions.len(), n_actions, probs })
    }

    /// The uniform random policy.
    pub fn uniform(n_states: usize, n_actions: usize) -> Self {
        TabularPolicy { n_states, n_actions, probs: vec![1.0 / n_actions as f64; n_states * n_actions] }
    }

    /// The book's epsilon-greedy policy around `greedy[s]`: the greedy action gets
    /// `1 - eps (|A| - 1) / |A|`, every other action `eps / |A|`.
    pub fn epsilon_greedy(greedy: &[usize], n_actions: usize, epsilon: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(Error::invalid("epsilon", format!("{epsilon} is outside [0, 1]")));
        }
        let mut p = Self::deterministic(greedy, n_actions)?;
        let other = epsilon / n_actions as f64;
        let best = 1.0 - epsilon * (n_actions as f64 - 1.0) / n_actions as f64;
        for (s, &g) in greedy.iter().enumerate() {
            for a in 0..n_actions {
                p.probs[s * n_actions + a] = if a == g { best } else { other };
            }
        }
        Ok(p)
    }

    /// Number of states.
    pub fn n_states(&self) -> usize {
        self.n_states
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// `pi(. | s)`.
    #[inline]
    pub fn probs(&self, s: usize) -> &[f64] {
        &self.probs[s * self.n_actions..(s + 1) * self.n_actions]
    }

    /// The whole table, row-major.
    pub fn table(&self) -> &[f64] {
        &self.probs
    }

    /// Draw an action in state `s`.
    pub fn sample<R: Rng + ?Sized>(&self, s: usize, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let row = self.probs(s);
        for (a, p) in row.iter().enumerate() {
            acc += p;
            if u < acc {
                return a;
            }
        }
        // Rounding left u above the running sum: take the last action with positive probability.
        row.iter().rposition(|p| *p > 0.0).unwrap_or(0)
    }

    /// The most probable action in `s` (lowest index among ties).
    pub fn mode(&self, s: usize) -> usize {
        argmax_lowest(self.probs(s))
    }

    /// The most probable action of every state.
    pub fn modes(&self) -> Vec<usize> {
        (0..self.n_states).map(|s| self.mode(s)).collect()
    }

    /// Whether every state puts all mass on one action.
    pub fn is_deterministic(&self) -> bool {
        (0..self.n_states).all(|s| self.probs(s).iter().any(|p| (*p - 1.0).abs() < 1e-12))
    }
}

/// Index of the largest value, the lowest index winning ties within [`GREEDY_TIE_TOLERANCE`].
pub fn argmax_lowest(values: &[f64]) -> usize {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    values.iter().position(|v| *v >= max - GREEDY_TIE_TOLERANCE).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::rng_from_seed;

    #[test]
    fn epsilon_greedy_matches_book_definition() {
        let p = TabularPolicy::epsilon_greedy(&[2], 5, 0.5).unwrap();
        assert!((p.probs(0)[2] - 0.6).abs() < 1e-12);
        assert!((p.probs(0)[0] - 0.1).abs() < 1e-12);
        assert!(TabularPolicy::epsilon_greedy(&[0], 5, 1.5).is_err());
    }

    #[test]
    fn ties_go_to_lowest_index() {
        assert_eq!(argmax_lowest(&[1.0, 2.0, 2.0 + 1e-12, 0.0]), 1);
        assert_eq!(argmax_lowest(&[1.0, 2.0, 2.0 + 1e-6]), 2);
    }

    #[test]
    fn sampling_follows_probabilities() {
        let p = TabularPolicy::from_probs(1, 2, vec![0.25, 0.75]).unwrap();
        let mut rng = rng_from_seed(0);
        let n = 40_000;
        let ones = (0..n).filter(|_| p.sample(0, &mut rng) == 1).count();
        // Binomial std at n = 40k is about 0.0022; allow 5 sigma.
        assert!(((ones as f64 / n as f64) - 0.75).abs() < 0.011);
    }
}
