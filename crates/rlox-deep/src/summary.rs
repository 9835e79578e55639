//! What every RL trainer reports at the end of a run (the same keys for DQN, REINFORCE, A2C, PPO,
//! DDPG, TD3 and SAC; `rlox train --format json` prints them with the run's algorithm, env and directory).

use serde::{Deserialize, Serialize};

/// The summary of an RL training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Mean return of the final deterministic evaluation.
    pub eval_return_mean: f64,
    /// Population standard deviation of those returns.
    pub eval_return_std: f64,
    /// Environment steps (transitions) taken in training, including those before a resume.
    pub env_steps: u64,
    /// Env steps of this session per second of `wall_seconds`.
    pub steps_per_second: f64,
    /// Wall time of this session's training loop (periodic evaluations included, the final one not).
    pub wall_seconds: f64,
    /// Training episodes completed.
    pub episodes: u64,
    /// Updates: rollouts trained on (on-policy) or training rounds (off-policy).
    pub n_updates: u64,
    /// Gradient steps taken.
    pub gradient_steps: u64,
    /// The env step of the checkpoint this session resumed from, if any.
    pub resumed_from: Option<u64>,
    /// `(env step, mean return)` of each periodic evaluation of this session.
    pub eval_history: Vec<(u64, f64)>,
}
