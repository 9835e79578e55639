//! # rlox-deep
//!
//! Neural reinforcement learning on top of [`rlox_nn`] (the crate that knows burn).
//!
//! * [`replay`]: a ring-buffer replay memory with uniform or prioritised sampling;
//! * [`dqn`]: DQN with Double-DQN, dueling and prioritised-replay options, one file readable top to
//!   bottom, defaults equal to rl-baselines3-zoo's `CartPole-v1` hyper-parameters; [`train_dqn`] is
//!   the one-call entry point.
//!
//! Every trainer reports through [`rlox_core::logger::Logger`] (metric names follow
//! Stable-Baselines3: `rollout/ep_rew_mean`, `train/loss`, `eval/mean_reward`, ...), takes one seed
//! for all its randomness, and checkpoints through [`rlox_nn::checkpoint`] (safetensors, atomic).

// `!(x >= 0.0)` is deliberate: it rejects NaN together with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod dqn;
pub mod replay;

pub use dqn::{train_dqn, Dqn, DqnConfig, DqnSummary, QNetwork, TdLoss};
pub use replay::{Batch, PrioritizedConfig, ReplayBuffer};
