//! # rlox-deep
//!
//! Neural reinforcement learning on top of [`rlox_nn`] (the crate that knows burn).
//!
//! * [`replay`]: a ring-buffer replay memory with uniform or prioritised sampling;
//! * [`dqn`]: DQN with Double-DQN, dueling and prioritised-replay options, one file readable top to
//!   bottom, defaults equal to rl-baselines3-zoo's `CartPole-v1` hyper-parameters; [`train_dqn`] is
//!   the one-call entry point;
//! * [`policies`]: categorical and diagonal-Gaussian policies and the actor-critic network of the
//!   on-policy algorithms; [`gae`]: the rollout buffer and GAE; [`rollout`]: rollout collection over a
//!   resumable env batch, evaluation; [`resume`]: exact-resume checkpoints;
//! * [`reinforce`], [`a2c`], [`ppo`]: the on-policy algorithms, each one file with its config.
//! * [`continuous`]: actors (deterministic, squashed Gaussian) and Q-critics for continuous actions;
//! * [`noise`]: Gaussian and Ornstein-Uhlenbeck exploration noise;
//! * [`offpolicy`]: the replay buffer, loop, evaluation and resumable checkpoints shared by
//!   DDPG, TD3 and SAC;
//! * [`ddpg`], [`td3`] and [`sac`], each with its config (rl-baselines3-zoo's `Pendulum-v1`
//!   defaults) and a one-call entry point ([`train_ddpg`], [`train_td3`], [`train_sac`]).
//!
//! Every trainer reports through [`rlox_core::logger::Logger`] (metric names follow
//! Stable-Baselines3: `rollout/ep_rew_mean`, `train/loss`, `eval/mean_reward`, ...), takes one seed
//! for all its randomness, and checkpoints through [`rlox_nn::checkpoint`] (safetensors, atomic).

// `!(x >= 0.0)` is deliberate: it rejects NaN together with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod a2c;
pub mod checkpoint;
pub mod continuous;
pub mod ddpg;
pub mod dqn;
pub mod gae;
pub mod noise;
pub mod offpolicy;
pub mod policies;
pub mod ppo;
pub mod reinforce;
pub mod replay;
pub mod resume;
pub mod rollout;
pub mod sac;
pub mod td3;

pub use a2c::{A2c, A2cConfig};
pub use ddpg::{train_ddpg, Ddpg, DdpgConfig};
pub use dqn::{train_dqn, Dqn, DqnConfig, DqnSummary, QNetwork, TdLoss};
pub use noise::{ActionNoise, NoiseConfig};
pub use offpolicy::{OffPolicyAgent, OffPolicySummary};
pub use policies::{ActionKind, ActorCritic, PolicyAction, PolicyConfig};
pub use ppo::{Ppo, PpoConfig};
pub use reinforce::{Reinforce, ReinforceConfig};
pub use replay::{Batch, PrioritizedConfig, ReplayBuffer};
pub use rollout::{OnPolicySummary, Resumable, ResumableVecEnv};
pub use sac::{train_sac, EntCoef, Sac, SacConfig};
pub use td3::{train_td3, Td3, Td3Config};
