//! DDPG: Deep Deterministic Policy Gradient (Lillicrap et al. 2016).
//!
//! A deterministic actor `mu(s)` trained to maximise one critic `Q(s, mu(s))`, the critic trained
//! on `y = r + gamma (1 - terminated) Q'(s', mu'(s'))` from a replay buffer, Polyak-averaged
//! targets, and exploration noise added to the actor's action (Gaussian or Ornstein-Uhlenbeck,
//! [`crate::noise`]).
//!
//! Like Stable-Baselines3 (whose `DDPG` subclasses `TD3`), this is [`crate::td3::Td3`] with one
//! critic, no target-policy smoothing and a policy delay of 1: each gradient step updates the
//! critic, then the actor, then both targets. This file holds the DDPG config with its defaults:
//! rl-baselines3-zoo's `Pendulum-v1` entry of `hyperparams/ddpg.yml` (*zoo*) over SB3's `DDPG`
//! defaults (*SB3*).

use crate::continuous::ActionScale;
use crate::noise::NoiseConfig;
use crate::offpolicy::{self, OffPolicySummary};
use crate::td3::{Td3, Td3Config};
use rlox_core::logger::Logger;
use rlox_core::Result;
use rlox_nn::{Activation, DeviceKind, OptimizerConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// DDPG hyper-parameters. Defaults: rl-baselines3-zoo's `Pendulum-v1` (*zoo*), else SB3's `DDPG` (*SB3*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdpgConfig {
    /// Environment steps to train for. *zoo*: 20000.
    pub total_timesteps: u64,
    /// Adam learning rate of actor and critic. *zoo*: 1e-3.
    pub learning_rate: f64,
    /// Replay capacity. *zoo*: 200000.
    pub buffer_size: usize,
    /// Uniformly random steps before learning. *zoo*: 10000.
    pub learning_starts: u64,
    /// Transitions per gradient step. *SB3*: 256.
    pub batch_size: usize,
    /// Target-network coefficient. *SB3*: 0.005.
    pub tau: f64,
    /// Discount. *zoo*: 0.98.
    pub gamma: f64,
    /// Train every this many env steps. *zoo*: 1.
    pub train_freq: u64,
    /// Gradient steps per round (-1: `train_freq`). *zoo*: 1.
    pub gradient_steps: i64,
    /// Exploration noise. *zoo*: normal, sigma 0.1 (the DDPG paper: Ornstein-Uhlenbeck, sigma 0.2).
    pub action_noise: NoiseConfig,
    /// Hidden widths of actor and critic. *zoo*/*SB3*: `[400, 300]`.
    pub net_arch: Vec<usize>,
    /// Hidden activation. *SB3*: ReLU.
    pub activation: Activation,
    /// The optimizer. *SB3*: Adam with PyTorch's defaults.
    pub optimizer: OptimizerConfig,
    /// Seed of everything.
    pub seed: u64,
    /// Evaluate (and checkpoint) every this many env steps; 0: only at the end.
    pub eval_freq: u64,
    /// Deterministic episodes per periodic evaluation.
    pub eval_episodes: usize,
    /// Episodes of the final evaluation.
    pub final_eval_episodes: usize,
    /// Where checkpoints go.
    pub checkpoint_dir: Option<PathBuf>,
    /// Save the replay buffer in checkpoints (needed for an exact resume).
    pub save_replay: bool,
    /// Compute device.
    pub device: DeviceKind,
}

impl Default for DdpgConfig {
    fn default() -> Self {
        let t = Td3Config::default();
        DdpgConfig {
            total_timesteps: t.total_timesteps,
            learning_rate: t.learning_rate,
            buffer_size: t.buffer_size,
            learning_starts: t.learning_starts,
            batch_size: t.batch_size,
            tau: t.tau,
            gamma: t.gamma,
            train_freq: t.train_freq,
            gradient_steps: t.gradient_steps,
            action_noise: t.action_noise,
            net_arch: t.net_arch,
            activation: t.activation,
            optimizer: t.optimizer,
            seed: t.seed,
            eval_freq: t.eval_freq,
            eval_episodes: t.eval_episodes,
            final_eval_episodes: t.final_eval_episodes,
            checkpoint_dir: None,
            save_replay: true,
            device: t.device,
        }
    }
}

impl DdpgConfig {
    /// The equivalent TD3 settings: one critic is chosen by [`Ddpg::new`]; no smoothing, no delay.
    pub fn to_td3(&self) -> Td3Config {
        Td3Config {
            total_timesteps: self.total_timesteps,
            learning_rate: self.learning_rate,
            buffer_size: self.buffer_size,
            learning_starts: self.learning_starts,
            batch_size: self.batch_size,
            tau: self.tau,
            gamma: self.gamma,
            train_freq: self.train_freq,
            gradient_steps: self.gradient_steps,
            policy_delay: 1,
            target_policy_noise: 0.0,
            target_noise_clip: 0.0,
            action_noise: self.action_noise,
            net_arch: self.net_arch.clone(),
            activation: self.activation,
            optimizer: self.optimizer,
            seed: self.seed,
            eval_freq: self.eval_freq,
            eval_episodes: self.eval_episodes,
            final_eval_episodes: self.final_eval_episodes,
            checkpoint_dir: self.checkpoint_dir.clone(),
            save_replay: self.save_replay,
            device: self.device,
        }
    }

    /// Check the values; the error names the field (`ddpg.<field>`).
    pub fn validate(&self) -> Result<()> {
        self.to_td3().validate_as("ddpg")
    }
}

/// The DDPG learner (a [`Td3`] with one critic, no smoothing, no delay).
pub struct Ddpg;

impl Ddpg {
    /// A fresh DDPG learner.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(obs_dim: usize, act_dim: usize, config: &DdpgConfig) -> Result<Td3> {
        Td3::build("ddpg", 1, obs_dim, act_dim, &config.to_td3())
    }
}

/// Train DDPG on the registered env `env_id`, resuming from a checkpoint if `resume` is given.
pub fn train_ddpg(
    env_id: &str,
    config: &DdpgConfig,
    logger: &mut dyn Logger,
    resume: Option<&Path>,
) -> Result<OffPolicySummary> {
    let (mut env, mut eval_env, scale): (_, _, ActionScale) = offpolicy::make_envs("ddpg", env_id)?;
    let obs_dim = env.observation_space().flat_dim();
    let mut ddpg = Ddpg::new(obs_dim, scale.dim(), config)?;
    ddpg.learn(env.as_mut(), eval_env.as_mut(), &scale, logger, resume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offpolicy::OffPolicyAgent;

    #[test]
    fn ddpg_is_td3_with_one_critic_no_smoothing_no_delay() {
        let c = DdpgConfig::default();
        assert_eq!((c.total_timesteps, c.buffer_size, c.learning_starts, c.gamma), (20_000, 200_000, 10_000, 0.98));
        let t = c.to_td3();
        assert_eq!((t.policy_delay, t.target_policy_noise), (1, 0.0));
        let d = Ddpg::new(3, 1, &DdpgConfig { net_arch: vec![8], ..c }).unwrap();
        assert_eq!(d.algo(), "ddpg");
        let e = DdpgConfig { tau: 2.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("ddpg.tau"), "{e}");
        let c: DdpgConfig = rlox_core::config::from_toml_str(
            "[action_noise]\nkind = \"ornstein-uhlenbeck\"\nsigma = 0.2\n",
            Path::new("ddpg.toml"),
        )
        .unwrap();
        assert_eq!(c.action_noise, NoiseConfig::OrnsteinUhlenbeck { sigma: 0.2, theta: 0.15, dt: 1e-2 });
    }
}
