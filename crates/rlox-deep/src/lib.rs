//! # rlox-deep
//!
//! Neural reinforcement learning on top of [`rlox_nn`] (the crate that knows burn). Two skeletons
//! hold everything the algorithms share, each written once:
//!
//! * [`onpolicy`]: collection (rollouts with GAE, or complete episodes), logging, evaluation,
//!   checkpoints and exact resume for [`reinforce`], [`a2c`] and [`ppo`], which keep only their config,
//!   loss and update ([`onpolicy::OnPolicyMethod`]);
//! * [`offpolicy`]: the replay loop, logging, evaluation, checkpoints and exact resume for [`dqn`],
//!   [`ddpg`], [`td3`] and [`sac`], which keep their config, networks and gradient step
//!   ([`offpolicy::OffPolicyAgent`]).
//!
//! Beside them: [`replay`] (one replay buffer for discrete and continuous actions, uniform or
//! prioritised), [`policies`] (categorical and diagonal-Gaussian actor-critics), [`gae`] (the rollout
//! buffer and GAE), [`rollout`] (the resumable env batch, collection, evaluation), [`continuous`]
//! (actors and Q-critics for continuous actions), [`noise`] (Gaussian and Ornstein-Uhlenbeck
//! exploration), [`checkpoint`] (the one checkpoint format) and [`summary`] (the one run summary).
//!
//! Every trainer reports through [`rlox_core::logger::Logger`] (metric names follow
//! Stable-Baselines3: `rollout/ep_rew_mean`, `train/loss`, `eval/mean_reward`, ...), takes its seed,
//! length, cadences and device from [`rlox_core::run::RunSettings`], and its hyper-parameters from its
//! own config (defaults from rl-baselines3-zoo and SB3, each documented with its source).

// `!(x >= 0.0)` is deliberate: it rejects NaN together with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod a2c;
pub mod checkpoint;
pub mod continuous;
pub mod ddpg;
pub mod dqn;
pub mod fused_policy;
pub mod gae;
pub mod noise;
pub mod offpolicy;
pub mod onpolicy;
pub mod policies;
pub mod ppo;
pub mod reinforce;
pub mod replay;
pub mod rollout;
pub mod sac;
pub mod summary;
pub mod td3;

pub use a2c::A2cConfig;
pub use ddpg::{ddpg, ddpg_config, DdpgConfig};
pub use dqn::{Dqn, DqnConfig, QNetwork, TdLoss};
pub use noise::{ActionNoise, NoiseConfig};
pub use offpolicy::{OffPolicy, OffPolicyAgent};
pub use onpolicy::{OnPolicy, OnPolicyMethod};
pub use policies::{ActionKind, ActorCritic, PolicyAction, PolicyConfig};
pub use ppo::PpoConfig;
pub use reinforce::ReinforceConfig;
pub use replay::{Batch, PrioritizedConfig, ReplayBuffer};
pub use rollout::{Resumable, ResumableVecEnv};
pub use sac::{EntCoef, Sac, SacConfig};
pub use summary::TrainSummary;
pub use td3::{Td3, Td3Config};
