//! CliffWalking-v1 (Gymnasium 1.4): Sutton and Barto's Example 6.6. Walk along a 4x12 grid from
//! the start (3, 0) to the goal (3, 11); the cells (3, 1..=10) between them are a cliff.
//!
//! * States: `row * 12 + col` (48 states; the start is 36, the goal 47). Actions follow Gymnasium's
//!   numbering, which differs from FrozenLake's: 0 up, 1 right, 2 down, 3 left. Moves into the
//!   border leave the agent in place.
//! * Every step pays -1, except stepping onto the cliff, which pays -100 and sends the agent back
//!   to the start *without* ending the episode. Entering the goal terminates.
//! * `is_slippery` (v1's addition, off by default; registered as `CliffWalkingSlippery-v1`): the
//!   intended direction and both perpendicular ones each happen with probability `1 / 3`,
//!   listed in the order (action - 1) mod 4, action, (action + 1) mod 4.
//! * Gymnasium registers no time limit for either id, so there is none here.
//! * Gymnasium's table gives the goal (and the unreachable cliff cells) ordinary movement rows. The
//!   [`Mdp`] view makes the goal absorbing with reward 0 (see the [parent module](super)); the cliff
//!   cells are never entered, so their rows are kept.

use super::{invalid_action, state_from_slice, GymP, Outcome, Phase, TransitionTable};
use rlox_core::env::SetState;
use rlox_core::seeding::{np_random, Generator};
use rlox_core::{Discrete, Env, Info, InfoValue, Mdp, Result, Space, Step};

/// Action 0: move up.
pub const UP: usize = 0;
/// Action 1: move right.
pub const RIGHT: usize = 1;
/// Action 2: move down.
pub const DOWN: usize = 2;
/// Action 3: move left.
pub const LEFT: usize = 3;

/// Rows of the grid.
pub const NROW: usize = 4;
/// Columns of the grid.
pub const NCOL: usize = 12;
/// The start state, (3, 0).
pub const START: usize = 3 * NCOL;
/// The goal state, (3, 11).
pub const GOAL: usize = NROW * NCOL - 1;

/// Whether (row, col) is a cliff cell.
fn is_cliff(row: usize, col: usize) -> bool {
    row == NROW - 1 && (1..NCOL - 1).contains(&col)
}

/// The CliffWalking environment; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct CliffWalking {
    id: &'static str,
    is_slippery: bool,
    table: TransitionTable,
    state: usize,
    rng: Generator,
    phase: Phase,
}

impl CliffWalking {
    /// `CliffWalking-v1` (`is_slippery = false`) or `CliffWalkingSlippery-v1` (`true`).
    pub fn new(is_slippery: bool) -> Self {
        CliffWalking {
            id: if is_slippery { "CliffWalkingSlippery-v1" } else { "CliffWalking-v1" },
            is_slippery,
            table: build_table(is_slippery),
            state: START,
            rng: np_random(None).0,
            phase: Phase::NotStarted,
        }
    }

    /// Whether moves can slip sideways.
    pub fn is_slippery(&self) -> bool {
        self.is_slippery
    }

    /// Gymnasium's transition table.
    pub fn table(&self) -> &TransitionTable {
        &self.table
    }

    /// Gymnasium's `env.unwrapped.P` as plain data.
    pub fn gym_p(&self) -> GymP {
        self.table.to_gym_p()
    }
}

/// Gymnasium's table: one outcome per direction taken, each with probability `1 / directions`.
fn build_table(is_slippery: bool) -> TransitionTable {
    // Gymnasium computes the probability as `1 / len(deltas)`.
    let prob = if is_slippery { 1.0 / 3.0 } else { 1.0 };
    let moved = |s: usize, direction: usize| {
        let (row, col) = (s / NCOL, s % NCOL);
        let (r, c) = match direction {
            UP => (row.saturating_sub(1), col),
            RIGHT => (row, (col + 1).min(NCOL - 1)),
            DOWN => ((row + 1).min(NROW - 1), col),
            _ => (row, col.saturating_sub(1)),
        };
        if is_cliff(r, c) {
            Outcome { prob, next: START, reward: -100.0, terminated: false }
        } else {
            let next = r * NCOL + c;
            Outcome { prob, next, reward: -1.0, terminated: next == GOAL }
        }
    };
    TransitionTable::build(
        NROW * NCOL,
        4,
        |s, a, out| {
            if is_slippery {
                out.extend([(a + 3) % 4, a, (a + 1) % 4].map(|b| moved(s, b)));
            } else {
                out.push(moved(s, a));
            }
        },
        |s| s == GOAL,
    )
}

impl Env for CliffWalking {
    type Obs = usize;
    type Action = usize;

    fn id(&self) -> &str {
        self.id
    }

    fn observation_space(&self) -> Space {
        Space::Discrete(Discrete::new(NROW * NCOL))
    }

    fn action_space(&self) -> Space {
        Space::Discrete(Discrete::new(4))
    }

    /// Start at (3, 0); the info holds `prob = 1` as in Gymnasium.
    fn reset(&mut self, seed: Option<u64>) -> Result<(usize, Info)> {
        if let Some(seed) = seed {
            self.rng = np_random(Some(seed)).0;
        }
        // Gymnasium draws the start with `categorical_sample` from a one-hot distribution: always
        // START, but one `random()` of the stream is used.
        let _ = self.rng.random();
        self.state = START;
        self.phase = Phase::Running;
        let mut info = Info::new();
        info.insert("prob", InfoValue::Int(1));
        Ok((self.state, info))
    }

    /// Sample one entry of `P[state][action]`; the info holds its probability as `prob`.
    fn step(&mut self, action: &usize) -> Result<Step<usize>> {
        if *action >= 4 {
            return Err(invalid_action(self.id, *action, 4));
        }
        self.phase.ensure_running(self.id)?;
        let o = self.table.sample(self.state, *action, &mut self.rng);
        self.state = o.next;
        if o.terminated {
            self.phase = Phase::Ended;
        }
        let mut info = Info::new();
        info.insert("prob", InfoValue::Float(o.prob));
        Ok(Step { obs: o.next, reward: o.reward, terminated: o.terminated, truncated: false, info })
    }
}

impl rlox_core::env::NpRandom for CliffWalking {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// The state layout is `[s]`. Setting the goal counts as an ended episode.
impl SetState for CliffWalking {
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        let s = state_from_slice(self.id, state, NROW * NCOL)?;
        self.state = s;
        self.phase = if self.table.is_terminal(s) { Phase::Ended } else { Phase::Running };
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.state as f64]
    }
}

/// Gymnasium's table as an MDP, with the goal made absorbing.
impl Mdp for CliffWalking {
    fn n_states(&self) -> usize {
        NROW * NCOL
    }
    fn n_actions(&self) -> usize {
        4
    }
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        self.table.transitions(state, action, out)
    }
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        self.table.expected_reward(state, action)
    }
    fn is_terminal(&self, state: usize) -> bool {
        self.table.is_terminal(state)
    }
}

/// `gymnasium.make("CliffWalking-v1")`. Gymnasium registers no time limit, so the env is not wrapped.
pub fn cliff_walking_v1() -> CliffWalking {
    CliffWalking::new(false)
}

/// `gymnasium.make("CliffWalkingSlippery-v1")`, also without a time limit.
pub fn cliff_walking_slippery_v1() -> CliffWalking {
    CliffWalking::new(true)
}
