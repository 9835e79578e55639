//! Explicit finite models.
//!
//! [`Mdp`] is what planning algorithms need: the number of states and actions, the distribution of
//! the next state and the expected immediate reward of every (state, action). Environments that know
//! their model (the grid world, FrozenLake, CliffWalking, Taxi) implement it; planning code compiles
//! any `Mdp` once into a [`TabularMdp`] (compressed rows) and sweeps that.

use crate::{Error, Result};

/// An explicit finite Markov decision process.
pub trait Mdp {
    /// Number of states; states are `0..n_states()`.
    fn n_states(&self) -> usize;
    /// Number of actions; actions are `0..n_actions()` in every state.
    fn n_actions(&self) -> usize;
    /// Clear `out`, then push `(next_state, probability)` for every next state reachable from
    /// `(state, action)` with positive probability. The probabilities sum to one.
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>);
    /// The expected immediate reward `E[R | S = state, A = action]`.
    fn expected_reward(&self, state: usize, action: usize) -> f64;
    /// Whether `state` ends an episode (the model makes it absorbing with reward 0). Default: never.
    fn is_terminal(&self, _state: usize) -> bool {
        false
    }
}

/// A finite MDP stored as compressed rows: for row `s * n_actions + a`, the next states and their
/// probabilities sit in `next[offsets[row]..offsets[row + 1]]` and `prob[...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularMdp {
    n_states: usize,
    n_actions: usize,
    offsets: Vec<usize>,
    next: Vec<u32>,
    prob: Vec<f64>,
    reward: Vec<f64>,
    /// `terminal[s]`: `s` ends an episode ([`Mdp::is_terminal`] of the compiled model). Undiscounted
    /// (gamma = 1) planning is defined only when such states exist.
    terminal: Vec<bool>,
}

impl TabularMdp {
    /// Build from per-row transition lists (`rows[s * n_actions + a]`) and expected rewards.
    ///
    /// Errors on a wrong number of rows, a next state out of range, a negative probability, or
    /// probabilities of a row that do not sum to one (within 1e-9).
    pub fn new(n_states: usize, n_actions: usize, rows: Vec<Vec<(usize, f64)>>, rewards: Vec<f64>) -> Result<Self> {
        let n_rows = n_states * n_actions;
        if n_states == 0 || n_actions == 0 {
            return Err(Error::invalid("mdp", "an MDP needs at least one state and one action"));
        }
        if rows.len() != n_rows || rewards.len() != n_rows {
            return Err(Error::invalid(
                "mdp",
                format!(
                    "expected {n_rows} (state, action) rows, got {} transition rows and {} rewards",
                    rows.len(),
                    rewards.len()
                ),
            ));
        }
        let mut m = TabularMdp {
            n_states,
            n_actions,
            offsets: Vec::with_capacity(n_rows + 1),
            next: Vec::new(),
            prob: Vec::new(),
            reward: rewards,
            terminal: vec![false; n_states],
        };
        m.offsets.push(0);
        for (row, list) in rows.into_iter().enumerate() {
            m.push_row(row, &list)?;
        }
        Ok(m)
    }

    fn push_row(&mut self, row: usize, list: &[(usize, f64)]) -> Result<()> {
        let (s, a) = (row / self.n_actions, row % self.n_actions);
        let mut total = 0.0;
        for &(next, p) in list {
            if next >= self.n_states {
                return Err(Error::invalid(
                    "mdp",
                    format!("(s={s}, a={a}) leads to state {next} >= {}", self.n_states),
                ));
            }
            if !(p >= 0.0) {
                return Err(Error::invalid("mdp", format!("(s={s}, a={a}) has probability {p}")));
            }
            total += p;
            self.next.push(next as u32);
            self.prob.push(p);
        }
        if (total - 1.0).abs() > 1e-9 {
            return Err(Error::invalid("mdp", format!("probabilities of (s={s}, a={a}) sum to {total}, not 1")));
        }
        self.offsets.push(self.next.len());
        Ok(())
    }

    /// Compile any [`Mdp`] (checked like [`TabularMdp::new`]).
    pub fn from_mdp<M: Mdp + ?Sized>(mdp: &M) -> Result<Self> {
        let (ns, na) = (mdp.n_states(), mdp.n_actions());
        let mut rows = Vec::with_capacity(ns * na);
        let mut rewards = Vec::with_capacity(ns * na);
        let mut buf = Vec::new();
        for s in 0..ns {
            for a in 0..na {
                mdp.transitions(s, a, &mut buf);
                rows.push(buf.clone());
                rewards.push(mdp.expected_reward(s, a));
            }
        }
        let mut m = TabularMdp::new(ns, na, rows, rewards)?;
        m.terminal = (0..ns).map(|s| mdp.is_terminal(s)).collect();
        Ok(m)
    }

    /// The same model with `terminal` marking the states that end an episode (one flag per state).
    pub fn with_terminal(mut self, terminal: Vec<bool>) -> Result<Self> {
        if terminal.len() != self.n_states {
            return Err(Error::invalid(
                "mdp",
                format!("{} terminal flags for {} states", terminal.len(), self.n_states),
            ));
        }
        self.terminal = terminal;
        Ok(self)
    }

    /// Whether the model is episodic: at least one state ends an episode.
    pub fn has_terminal_states(&self) -> bool {
        self.terminal.iter().any(|&t| t)
    }

    /// The `(next_states, probabilities)` of `(s, a)` as parallel slices (the hot path of planning).
    #[inline]
    pub fn row(&self, s: usize, a: usize) -> (&[u32], &[f64]) {
        let r = s * self.n_actions + a;
        let (lo, hi) = (self.offsets[r], self.offsets[r + 1]);
        (&self.next[lo..hi], &self.prob[lo..hi])
    }

    /// Expected rewards, row-major `[s * n_actions + a]`.
    pub fn rewards(&self) -> &[f64] {
        &self.reward
    }

    /// A copy with every expected reward mapped through `f` (used for the affine-reward check).
    pub fn map_rewards(&self, f: impl Fn(f64) -> f64) -> Self {
        let mut m = self.clone();
        m.reward.iter_mut().for_each(|r| *r = f(*r));
        m
    }
}

impl Mdp for TabularMdp {
    fn n_states(&self) -> usize {
        self.n_states
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        let (next, prob) = self.row(state, action);
        out.extend(next.iter().map(|&n| n as usize).zip(prob.iter().copied()));
    }
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        self.reward[state * self.n_actions + action]
    }
    fn is_terminal(&self, state: usize) -> bool {
        self.terminal[state]
    }
}

impl<M: Mdp + ?Sized> Mdp for Box<M> {
    fn n_states(&self) -> usize {
        (**self).n_states()
    }
    fn n_actions(&self) -> usize {
        (**self).n_actions()
    }
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        (**self).transitions(state, action, out)
    }
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        (**self).expected_reward(state, action)
    }
    fn is_terminal(&self, state: usize) -> bool {
        (**self).is_terminal(state)
    }
}

impl<M: Mdp> Mdp for crate::wrappers::TimeLimit<M> {
    fn n_states(&self) -> usize {
        self.inner().n_states()
    }
    fn n_actions(&self) -> usize {
        self.inner().n_actions()
    }
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        self.inner().transitions(state, action, out)
    }
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        self.inner().expected_reward(state, action)
    }
    fn is_terminal(&self, state: usize) -> bool {
        self.inner().is_terminal(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_rows() {
        assert!(TabularMdp::new(1, 1, vec![vec![(0, 0.5)]], vec![0.0]).is_err());
        assert!(TabularMdp::new(1, 1, vec![vec![(1, 1.0)]], vec![0.0]).is_err());
        assert!(TabularMdp::new(1, 1, vec![], vec![]).is_err());
        let m = TabularMdp::new(2, 1, vec![vec![(1, 1.0)], vec![(0, 0.3), (1, 0.7)]], vec![1.0, 2.0]).unwrap();
        let again = TabularMdp::from_mdp(&m).unwrap();
        assert_eq!(m, again);
        assert_eq!(m.row(1, 0).1, &[0.3, 0.7]);
    }
}
