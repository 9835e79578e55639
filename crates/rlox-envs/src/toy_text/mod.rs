//! Gymnasium 1.4's toy-text environments: [`FrozenLake`] (`FrozenLake-v1`), [`CliffWalking`]
//! (`CliffWalking-v1`) and [`Taxi`] (`Taxi-v4`).
//!
//! Gymnasium defines each of them by an explicit table `P[s][a]`: a list of outcomes
//! `(probability, next_state, reward, terminated)`, sampled on every `step`. rlox builds the same
//! table ([`TransitionTable`]), entry for entry and bit for bit (the tests compare it against
//! tables dumped from Gymnasium 1.4.0 by `tools/toy_text_tables.py`), and uses it twice:
//!
//! * as an [`Env`](rlox_core::Env): `step` samples one outcome of the current row, exactly as
//!   Gymnasium's `categorical_sample` does, and returns its reward and `terminated` flag;
//! * as an [`Mdp`]: the outcomes of a row are merged by next state, and the expected reward is
//!   `sum(prob * reward)` over the row in Gymnasium's order.
//!
//! ## Terminal states in the `Mdp` view
//!
//! The `Mdp` trait has no notion of termination, so planning code treats every state as
//! continuing. Gymnasium's tables do not always make terminal states absorbing: FrozenLake does
//! (holes and the goal loop on themselves with reward 0), but CliffWalking's goal and Taxi's
//! "passenger delivered" states carry ordinary movement rows, which would let value iteration
//! collect rewards after the episode has ended. The `Mdp` view therefore replaces the row of every
//! terminal state (each env documents which states those are) by a self-loop with probability 1 and
//! reward 0. The raw table ([`TransitionTable::outcomes`], [`TransitionTable::to_gym_p`]) is left
//! exactly as Gymnasium builds it.
//!
//! ## Randomness
//!
//! Every draw is Gymnasium's, from Gymnasium's generator ([`rlox_core::seeding::np_random`]: NumPy's
//! `PCG64` seeded through `SeedSequence`): `reset` draws the start state with Gymnasium's
//! `categorical_sample` over the initial-state distribution (one `random()` even when the start is
//! fixed), `step` draws the outcome of `P[s][a]` the same way, and Taxi's fickle passenger draws
//! `random()` at reset and `choice` of the other stands. So `reset(Some(s))` followed by the same
//! actions gives exactly Gymnasium's episode, and `reset(None)` continues the stream as Gymnasium
//! does. An env that was never seeded draws from fresh OS entropy, as in Gymnasium.
//!
//! ## Episode bookkeeping
//!
//! `step` before the first `reset`, or after a step that returned `terminated`, is an
//! [`Error::NeedsReset`]; Gymnasium would keep following its table, which is not meaningful after the
//! end of an episode. Time limits are applied by [`TimeLimit`](rlox_core::wrappers::TimeLimit), as
//! `gymnasium.make` does; the constructor functions of each module add Gymnasium's registered limit.

pub mod cliff_walking;
pub mod frozen_lake;
pub mod taxi;

pub use cliff_walking::{cliff_walking_slippery_v1, cliff_walking_v1, CliffWalking};
pub use frozen_lake::{
    frozen_lake_8x8_v1, frozen_lake_v1, frozen_lake_v1_with, generate_random_map, FrozenLake, FrozenLakeConfig, LakeMap,
};
pub use taxi::{taxi_v4, taxi_v4_with, Taxi, TaxiConfig};

use rlox_core::seeding::Generator;
use rlox_core::{Error, Mdp, Result};

/// One entry of Gymnasium's `P[s][a]`: with probability `prob` the env moves to `next`, pays
/// `reward` and reports `terminated`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Probability of this entry. Entries of one row may share a next state, and may have
    /// probability 0 (FrozenLake with `success_rate = 1`), exactly as in Gymnasium.
    pub prob: f64,
    /// The next state.
    pub next: usize,
    /// The reward of the transition.
    pub reward: f64,
    /// Whether the transition ends the episode.
    pub terminated: bool,
}

/// Gymnasium's `P` in plain data: `p[s][a]` lists `(prob, next_state, reward, terminated)` in
/// Gymnasium's order.
pub type GymP = Vec<Vec<Vec<(f64, usize, f64, bool)>>>;

/// Gymnasium's transition table `P` for one env, plus the set of terminal states used by the
/// [`Mdp`] view (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionTable {
    n_states: usize,
    n_actions: usize,
    /// Row `s * n_actions + a` owns `outcomes[offsets[row]..offsets[row + 1]]`.
    offsets: Vec<usize>,
    outcomes: Vec<Outcome>,
    terminal: Vec<bool>,
}

impl TransitionTable {
    /// Build the table row by row: `row(s, a, out)` pushes the outcomes of `(s, a)` onto an empty
    /// `out`; `is_terminal(s)` says which states the `Mdp` view makes absorbing.
    pub(crate) fn build(
        n_states: usize,
        n_actions: usize,
        mut row: impl FnMut(usize, usize, &mut Vec<Outcome>),
        is_terminal: impl Fn(usize) -> bool,
    ) -> Self {
        let mut offsets = Vec::with_capacity(n_states * n_actions + 1);
        let mut outcomes = Vec::new();
        let mut buf = Vec::new();
        offsets.push(0);
        for s in 0..n_states {
            for a in 0..n_actions {
                buf.clear();
                row(s, a, &mut buf);
                debug_assert!(!buf.is_empty(), "row ({s}, {a}) has no outcome");
                outcomes.extend_from_slice(&buf);
                offsets.push(outcomes.len());
            }
        }
        let terminal = (0..n_states).map(is_terminal).collect();
        TransitionTable { n_states, n_actions, offsets, outcomes, terminal }
    }

    /// Gymnasium's `P[s][a]`, in Gymnasium's order.
    ///
    /// # Panics
    /// If `s` or `a` is out of range.
    pub fn outcomes(&self, s: usize, a: usize) -> &[Outcome] {
        assert!(s < self.n_states && a < self.n_actions, "({s}, {a}) is outside the table");
        let r = s * self.n_actions + a;
        &self.outcomes[self.offsets[r]..self.offsets[r + 1]]
    }

    /// The whole table in Gymnasium's nested form `P[s][a] = [(prob, next, reward, terminated)]`.
    pub fn to_gym_p(&self) -> GymP {
        (0..self.n_states)
            .map(|s| {
                (0..self.n_actions)
                    .map(|a| self.outcomes(s, a).iter().map(|o| (o.prob, o.next, o.reward, o.terminated)).collect())
                    .collect()
            })
            .collect()
    }

    /// Whether the `Mdp` view treats `s` as terminal (absorbing, reward 0).
    pub fn is_terminal(&self, s: usize) -> bool {
        self.terminal[s]
    }

    /// Draw one outcome of `(s, a)` exactly as Gymnasium's `categorical_sample` does
    /// (`np.argmax(np.cumsum(probs) > rng.random())`): the first entry whose running sum, taken left
    /// to right, exceeds one `random()` draw; entry 0 when rounding leaves every sum at or below the
    /// draw (NumPy's `argmax` of an all-false array).
    pub(crate) fn sample(&self, s: usize, a: usize, rng: &mut Generator) -> Outcome {
        let row = self.outcomes(s, a);
        let u = rng.random();
        let mut cumulative = 0.0;
        for o in row {
            cumulative += o.prob;
            if cumulative > u {
                return *o;
            }
        }
        row[0]
    }
}

impl Mdp for TransitionTable {
    fn n_states(&self) -> usize {
        self.n_states
    }

    fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// Gymnasium's row merged by next state (first-appearance order, zero-probability entries
    /// dropped); a terminal state loops on itself.
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        if self.terminal[state] {
            out.push((state, 1.0));
            return;
        }
        for o in self.outcomes(state, action) {
            if o.prob <= 0.0 {
                continue;
            }
            match out.iter_mut().find(|(next, _)| *next == o.next) {
                Some(slot) => slot.1 += o.prob,
                None => out.push((o.next, o.prob)),
            }
        }
    }

    /// `sum(prob * reward)` over Gymnasium's row, in its order; 0 in a terminal state.
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        if self.terminal[state] {
            return 0.0;
        }
        self.outcomes(state, action).iter().map(|o| o.prob * o.reward).sum()
    }

    fn is_terminal(&self, state: usize) -> bool {
        self.terminal[state]
    }
}

/// The error for an action outside `Discrete(n_actions)`.
pub(crate) fn invalid_action(env: &str, action: usize, n_actions: usize) -> Error {
    Error::InvalidAction { env: env.to_string(), action: action.to_string(), space: format!("Discrete({n_actions})") }
}

/// Read the `[state]` layout of `SetState::set_state`, checking length, integrality and range.
pub(crate) fn state_from_slice(env: &str, state: &[f64], n_states: usize) -> Result<usize> {
    match state {
        [x] if x.fract() == 0.0 && *x >= 0.0 && *x < n_states as f64 => Ok(*x as usize),
        _ => Err(Error::invalid(
            format!("{env} state"),
            format!("expected [s] with s an integer in 0..{n_states}, got {state:?}"),
        )),
    }
}

/// Where an env is in its episode, for the [`Error::NeedsReset`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Never reset.
    NotStarted,
    /// Between a reset and the terminating step.
    Running,
    /// The last step terminated the episode.
    Ended,
}

impl Phase {
    /// `Ok` while running, else the matching [`Error::NeedsReset`].
    pub(crate) fn ensure_running(self, env: &str) -> Result<()> {
        let when = match self {
            Phase::Running => return Ok(()),
            Phase::NotStarted => "before reset()",
            Phase::Ended => "after the episode ended",
        };
        Err(Error::NeedsReset { env: env.to_string(), when })
    }
}
