//! Deep Q-Network (Mnih et al. 2015), with Double DQN (van Hasselt et al. 2016), dueling heads
//! (Wang et al. 2016) and prioritised replay (Schaul et al. 2016) as options.
//!
//! This file reads top to bottom like CleanRL's `dqn.py`: the config with its defaults, the
//! Q-network, the learner ([`Dqn`]: act, one gradient step, target update, evaluation) and the
//! training loop ([`Dqn::learn`]). The defaults are rl-baselines3-zoo's tuned DQN hyper-parameters
//! for `CartPole-v1` (`hyperparams/dqn.yml`) on top of Stable-Baselines3's DQN defaults, and the
//! loop follows SB3's order of events, so both should need the same number of env steps:
//!
//! 1. the first `learning_starts` steps act uniformly at random; afterwards epsilon-greedy, with
//!    epsilon decaying linearly from `exploration_initial_eps` to `exploration_final_eps` over the
//!    first `exploration_fraction` of `total_timesteps`;
//! 2. every transition goes to the replay buffer, `done = terminated` (a time-limit truncation
//!    bootstraps; its true final observation is stored);
//! 3. every `target_update_interval` env steps: `target <- tau * online + (1 - tau) * target`
//!    (`tau = 1`: a hard copy);
//! 4. every `train_freq` env steps once past `learning_starts`: `gradient_steps` updates, each on a
//!    batch of `batch_size`: Huber (smooth L1) loss between `Q(s, a)` and
//!    `r + gamma * (1 - done) * max_a' Q_target(s', a')`, gradients clipped to a global norm of
//!    `max_grad_norm`, one Adam step;
//! 5. every `eval_freq` env steps: `eval_episodes` greedy episodes on a copy of the env, logged as
//!    `eval/mean_reward` and `eval/std_reward`, and a checkpoint if `checkpoint_dir` is set.
//!
//! A non-finite loss or gradient norm stops the run with an error; the last checkpoint on disk was
//! written before the failure and is never overwritten by a diverged network.

use crate::replay::{Batch, PrioritizedConfig, ReplayBuffer};
use rand::Rng as _;
use rlox_core::env::{Env, FlatObs};
use rlox_core::logger::Logger;
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::{Error, Result};
use rlox_nn::burn;
use rlox_nn::burn::module::Module;
use rlox_nn::burn::nn::{Linear, LinearConfig};
use rlox_nn::{
    Activation, Device, DeviceKind, Int, Mlp, MlpConfig, Optimizer, OptimizerConfig, Schedule, Tensor, TensorData,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// DQN hyper-parameters. Defaults: rl-baselines3-zoo's `CartPole-v1` entry of `hyperparams/dqn.yml`
/// (marked *zoo*), else Stable-Baselines3's `DQN` defaults (marked *SB3*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Environment steps to train for. *zoo*: 5e4.
    pub total_timesteps: u64,
    /// Adam learning rate. *zoo*: 2.3e-3.
    pub learning_rate: f64,
    /// If set, the learning rate decays linearly to this value over training. *SB3*: constant.
    pub learning_rate_end: Option<f64>,
    /// Replay capacity in transitions. *zoo*: 100000.
    pub buffer_size: usize,
    /// Env steps of uniformly random actions (and no training) before learning. *zoo*: 1000.
    pub learning_starts: u64,
    /// Transitions per gradient step. *zoo*: 64.
    pub batch_size: usize,
    /// Target-network update coefficient (1 = hard copy). *SB3*: 1.0.
    pub tau: f64,
    /// Discount factor. *zoo*: 0.99.
    pub gamma: f64,
    /// Train every this many env steps. *zoo*: 256.
    pub train_freq: u64,
    /// Gradient steps per training round; -1 means as many as env steps collected (`train_freq`). *zoo*: 128.
    pub gradient_steps: i64,
    /// Update the target network every this many env steps. *zoo*: 10.
    pub target_update_interval: u64,
    /// Fraction of `total_timesteps` over which epsilon decays. *zoo*: 0.16.
    pub exploration_fraction: f64,
    /// Initial epsilon. *SB3*: 1.0.
    pub exploration_initial_eps: f64,
    /// Final epsilon. *zoo*: 0.04.
    pub exploration_final_eps: f64,
    /// Global gradient-norm clip. *SB3*: 10.
    pub max_grad_norm: f64,
    /// TD loss. *SB3*: Huber (smooth L1); the book's deep Q-learning (section 8.4) uses the squared error.
    pub loss: TdLoss,
    /// Hidden layer widths. *zoo*: `net_arch=[256, 256]`.
    pub net_arch: Vec<usize>,
    /// Hidden activation. *SB3*: ReLU.
    pub activation: Activation,
    /// Double DQN: the online network picks the next action, the target network scores it. *SB3*: off.
    pub double_q: bool,
    /// Dueling heads: `Q = V + A - mean(A)` on top of the hidden layers. *SB3*: off.
    pub dueling: bool,
    /// Prioritised replay (proportional); `None` samples uniformly. *SB3*: uniform.
    pub prioritized_replay: Option<PrioritizedConfig>,
    /// The optimizer. *SB3*: Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8).
    pub optimizer: OptimizerConfig,
    /// Seed of everything: env, exploration, replay sampling, network initialisation.
    pub seed: u64,
    /// Evaluate every this many env steps (0: only at the end). *SB3 EvalCallback*: 10000.
    pub eval_freq: u64,
    /// Greedy episodes per periodic evaluation. *SB3 EvalCallback*: 5.
    pub eval_episodes: usize,
    /// Greedy episodes of the final evaluation reported in [`DqnSummary`].
    pub final_eval_episodes: usize,
    /// Where to write `q_net.safetensors` (+ `q_net.json`) at each evaluation and at the end.
    pub checkpoint_dir: Option<PathBuf>,
    /// Compute device.
    pub device: DeviceKind,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
            total_timesteps: 50_000,
            learning_rate: 2.3e-3,
            learning_rate_end: None,
            buffer_size: 100_000,
            learning_starts: 1000,
            batch_size: 64,
            tau: 1.0,
            gamma: 0.99,
            train_freq: 256,
            gradient_steps: 128,
            target_update_interval: 10,
            exploration_fraction: 0.16,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.04,
            max_grad_norm: 10.0,
            loss: TdLoss::Huber,
            net_arch: vec![256, 256],
            activation: Activation::Relu,
            double_q: false,
            dueling: false,
            prioritized_replay: None,
            optimizer: OptimizerConfig::adam(),
            seed: 0,
            eval_freq: 10_000,
            eval_episodes: 5,
            final_eval_episodes: 10,
            checkpoint_dir: None,
            device: DeviceKind::Cpu,
        }
    }
}

impl DqnConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("dqn.{what}"), why)) };
        check(self.total_timesteps > 0, "total_timesteps", "must be > 0")?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            "must be a positive number",
        )?;
        check(self.buffer_size > 0, "buffer_size", "must be > 0")?;
        check(self.batch_size > 0, "batch_size", "must be > 0")?;
        check(self.tau > 0.0 && self.tau <= 1.0, "tau", "must be in (0, 1]")?;
        check((0.0..=1.0).contains(&self.gamma), "gamma", "must be in [0, 1]")?;
        check(self.train_freq > 0, "train_freq", "must be > 0")?;
        check(self.gradient_steps > 0 || self.gradient_steps == -1, "gradient_steps", "must be > 0 or -1")?;
        check(self.target_update_interval > 0, "target_update_interval", "must be > 0")?;
        check(
            self.exploration_fraction > 0.0 && self.exploration_fraction <= 1.0,
            "exploration_fraction",
            "must be in (0, 1]",
        )?;
        check(self.max_grad_norm > 0.0, "max_grad_norm", "must be > 0")?;
        check(!(self.dueling && self.net_arch.is_empty()), "net_arch", "dueling heads need at least one hidden layer")?;
        check(self.final_eval_episodes > 0, "final_eval_episodes", "must be > 0")
    }

    fn gradient_steps_per_round(&self) -> u64 {
        if self.gradient_steps < 0 {
            self.train_freq
        } else {
            self.gradient_steps as u64
        }
    }
}

/// The loss between `Q(s, a)` and the TD target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TdLoss {
    /// Huber with delta 1 (PyTorch's `smooth_l1_loss`, SB3's DQN): quadratic below 1, linear above.
    #[default]
    Huber,
    /// Mean squared error (times 1/2 is not applied: `mean((Q - y)^2)`).
    Mse,
}

// ---------------------------------------------------------------------------------------------
// The Q-network
// ---------------------------------------------------------------------------------------------

/// `Q(s, .)`: an MLP from observations to one value per action, or, with dueling heads, an MLP body
/// followed by a value head `V(s)` and an advantage head `A(s, .)` combined as `V + A - mean(A)`.
#[derive(Module, Debug)]
pub struct QNetwork {
    /// The MLP (whole network, or the body when dueling).
    pub body: Mlp,
    /// Dueling value head.
    pub value: Option<Linear>,
    /// Dueling advantage head.
    pub advantage: Option<Linear>,
    #[module(skip)]
    activation: Activation,
}

impl QNetwork {
    /// A Q-network for `obs_dim` inputs and `n_actions` outputs with the config's architecture.
    pub fn new(obs_dim: usize, n_actions: usize, config: &DqnConfig, device: &Device) -> Self {
        let arch = &config.net_arch;
        if config.dueling {
            let (last, hidden) = arch.split_last().expect("validated: net_arch is not empty");
            let body = MlpConfig::new(obs_dim, hidden, *last).with_activation(config.activation).init(device);
            QNetwork {
                body,
                value: Some(LinearConfig::new(*last, 1).init(device)),
                advantage: Some(LinearConfig::new(*last, n_actions).init(device)),
                activation: config.activation,
            }
        } else {
            let body = MlpConfig::new(obs_dim, arch, n_actions).with_activation(config.activation).init(device);
            QNetwork { body, value: None, advantage: None, activation: config.activation }
        }
    }

    /// `[batch, obs_dim]` to `[batch, n_actions]`.
    pub fn forward(&self, obs: Tensor<2>) -> Tensor<2> {
        match (&self.value, &self.advantage) {
            (Some(value), Some(advantage)) => {
                let h = self.activation.forward(self.body.forward(obs));
                let v = value.forward(h.clone());
                let a = advantage.forward(h);
                v + a.clone() - a.mean_dim(1)
            }
            _ => self.body.forward(obs),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The learner
// ---------------------------------------------------------------------------------------------

/// What [`Dqn::learn`] reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DqnSummary {
    /// Mean return of the final greedy evaluation.
    pub eval_return_mean: f64,
    /// Standard deviation (population) of those returns.
    pub eval_return_std: f64,
    /// Environment steps taken in training.
    pub env_steps: u64,
    /// `env_steps / wall_seconds`.
    pub steps_per_second: f64,
    /// Wall time of the training loop (periodic evaluations included, the final evaluation not).
    pub wall_seconds: f64,
    /// Training episodes completed.
    pub episodes: u64,
    /// Gradient steps taken.
    pub n_updates: u64,
}

/// Statistics of one gradient step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The (weighted) Huber loss.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Mean `Q(s, a)` of the batch.
    pub q_mean: f64,
}

/// A DQN agent: online, target and acting networks, the optimizer and the counters.
pub struct Dqn {
    config: DqnConfig,
    obs_dim: usize,
    n_actions: usize,
    /// Autodiff device (training).
    device: Device,
    /// The same device without autodiff (acting, targets).
    plain: Device,
    q_net: QNetwork,
    target: QNetwork,
    /// Snapshot of `q_net` without autodiff, refreshed after each training round.
    policy: QNetwork,
    optimizer: Optimizer,
    n_updates: u64,
}

impl Dqn {
    /// A fresh agent for `obs_dim`-dimensional observations and `n_actions` discrete actions.
    pub fn new(obs_dim: usize, n_actions: usize, config: &DqnConfig) -> Result<Self> {
        config.validate()?;
        if obs_dim == 0 || n_actions == 0 {
            return Err(Error::invalid("dqn", format!("obs_dim ({obs_dim}) and n_actions ({n_actions}) must be > 0")));
        }
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 3))?;
        let plain = device.clone().inner();
        let q_net = QNetwork::new(obs_dim, n_actions, config, &device);
        let target = q_net.valid();
        let policy = q_net.valid();
        Ok(Dqn {
            config: config.clone(),
            obs_dim,
            n_actions,
            device,
            plain,
            q_net,
            target,
            policy,
            optimizer: config.optimizer.build(),
            n_updates: 0,
        })
    }

    /// The online network.
    pub fn q_net(&self) -> &QNetwork {
        &self.q_net
    }

    /// Replace the online network (e.g. loaded from a checkpoint); the target and acting copies follow.
    pub fn set_q_net(&mut self, q_net: QNetwork) {
        self.q_net = q_net;
        self.target = self.q_net.valid();
        self.policy = self.q_net.valid();
    }

    /// The config.
    pub fn config(&self) -> &DqnConfig {
        &self.config
    }

    /// Gradient steps taken.
    pub fn n_updates(&self) -> u64 {
        self.n_updates
    }

    /// `Q(s, .)` of the acting network for a batch of observations (`[n, obs_dim]` row-major).
    pub fn q_values(&self, obs: &[f32]) -> Vec<f32> {
        let n = obs.len() / self.obs_dim;
        let x = Tensor::<2>::from_data(TensorData::new(obs.to_vec(), [n, self.obs_dim]), &self.plain);
        self.policy.forward(x).into_data().try_into_vec_as::<f32>().expect("f32 Q-values")
    }

    /// The greedy action (ties to the lowest index).
    pub fn greedy_action(&self, obs: &[f32]) -> usize {
        argmax(&self.q_values(obs))
    }

    /// Copy the online network to the acting network (done after each training round).
    pub fn refresh_policy(&mut self) {
        self.policy = self.q_net.valid();
    }

    /// `target <- tau * online + (1 - tau) * target`.
    pub fn update_target(&mut self) {
        self.target = rlox_nn::polyak_update(self.target.clone(), &self.q_net, self.config.tau);
    }

    /// One gradient step on `batch` with learning rate `lr`; returns the TD errors for prioritised
    /// replay. A non-finite loss or gradient norm is an error (and the network is not updated).
    pub fn gradient_step(&mut self, batch: &Batch, lr: f64) -> Result<(StepStats, Vec<f32>)> {
        let (b, d) = (batch.len(), self.obs_dim);
        // TD target, without gradient: r + gamma * (1 - done) * Q_target(s', argmax or max).
        let next_obs = Tensor::<2>::from_data(TensorData::new(batch.next_obs.clone(), [b, d]), &self.plain);
        let next_q_target = self.target.forward(next_obs.clone());
        let next_q = if self.config.double_q {
            let next_actions = self.q_net.valid().forward(next_obs).argmax(1);
            next_q_target.gather(1, next_actions)
        } else {
            next_q_target.max_dim(1)
        };
        let next_q: Vec<f32> = next_q.into_data().try_into_vec_as::<f32>().expect("f32");
        let gamma = self.config.gamma as f32;
        let targets: Vec<f32> = (0..b).map(|i| batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * next_q[i]).collect();

        // Q(s, a) of the online network, with gradient.
        let obs = Tensor::<2>::from_data(TensorData::new(batch.obs.clone(), [b, d]), &self.device);
        let actions = Tensor::<2, Int>::from_data(TensorData::new(batch.actions.clone(), [b, 1]), &self.device);
        let q = self.q_net.forward(obs).gather(1, actions);
        let targets = Tensor::<2>::from_data(TensorData::new(targets, [b, 1]), &self.device);

        // Huber loss (smooth L1, delta 1) or squared error, weighted by the importance weights of
        // prioritised replay.
        let td = q.clone() - targets;
        let per_sample = match self.config.loss {
            TdLoss::Huber => {
                let abs = td.clone().abs();
                let quad = abs.clone().clamp_max(1.0);
                quad.clone().square().mul_scalar(0.5) + (abs - quad)
            }
            TdLoss::Mse => td.clone().square(),
        };
        let loss = if self.config.prioritized_replay.is_some() {
            let w = Tensor::<2>::from_data(TensorData::new(batch.weights.clone(), [b, 1]), &self.device);
            (per_sample * w).mean()
        } else {
            per_sample.mean()
        };
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        if !loss_value.is_finite() {
            return Err(Error::invalid(
                "dqn",
                format!("the loss became {loss_value} at gradient step {}; check rewards and observations for NaN/inf, or lower learning_rate", self.n_updates + 1),
            ));
        }
        let mut grads = rlox_nn::backward(&loss, &self.q_net);
        let grad_norm = rlox_nn::clip_grad_norm(&self.q_net, &mut grads, self.config.max_grad_norm);
        if !grad_norm.is_finite() {
            return Err(Error::invalid(
                "dqn",
                format!("the gradient norm became {grad_norm} at gradient step {}", self.n_updates + 1),
            ));
        }
        self.q_net = self.optimizer.step(lr, self.q_net.clone(), grads);
        self.n_updates += 1;

        let q_mean = q.clone().detach().mean().into_scalar::<f32>() as f64;
        let td_errors = if self.config.prioritized_replay.is_some() {
            td.detach().into_data().try_into_vec_as::<f32>().expect("f32")
        } else {
            Vec::new()
        };
        Ok((StepStats { loss: loss_value, grad_norm, q_mean }, td_errors))
    }

    /// `episodes` greedy episodes on `env`, episode `k` reset with seed `seed + k`; returns (mean, std) of returns.
    pub fn evaluate<E>(&self, env: &mut E, episodes: usize, seed: u64) -> Result<(f64, f64)>
    where
        E: Env<Action = usize>,
        E::Obs: FlatObs,
    {
        const MAX_STEPS: u64 = 1_000_000;
        let mut returns = Vec::with_capacity(episodes);
        let mut obs = vec![0.0f32; self.obs_dim];
        for k in 0..episodes {
            let (o, _) = env.reset(Some(seed.wrapping_add(k as u64)))?;
            o.write_flat(&mut obs);
            let mut total = 0.0;
            for t in 0.. {
                if t == MAX_STEPS {
                    return Err(Error::invalid(
                        "evaluation",
                        format!(
                            "an episode of {} ran {MAX_STEPS} steps without ending; wrap the env in a TimeLimit",
                            env.id()
                        ),
                    ));
                }
                let s = env.step(&self.greedy_action(&obs))?;
                total += s.reward;
                s.obs.write_flat(&mut obs);
                if s.done() {
                    break;
                }
            }
            returns.push(total);
        }
        Ok(mean_std(&returns))
    }

    /// Write `q_net.safetensors` (metadata: env step, evaluation) and a `q_net.json` sidecar with the
    /// config into `dir`, each atomically. Refuses (error) to write a network with non-finite parameters.
    pub fn save_checkpoint(&self, dir: &std::path::Path, env_step: u64, eval_mean: f64) -> Result<PathBuf> {
        if !rlox_nn::all_finite(&self.q_net) {
            return Err(Error::invalid(
                "dqn checkpoint",
                "the network has non-finite parameters; the last good checkpoint is kept",
            ));
        }
        let path = dir.join("q_net.safetensors");
        let meta = BTreeMap::from([
            ("algorithm".to_string(), "dqn".to_string()),
            ("env_step".to_string(), env_step.to_string()),
            ("n_updates".to_string(), self.n_updates.to_string()),
            ("eval_return_mean".to_string(), eval_mean.to_string()),
            ("obs_dim".to_string(), self.obs_dim.to_string()),
            ("n_actions".to_string(), self.n_actions.to_string()),
        ]);
        rlox_nn::save_safetensors(&self.q_net, &path, &meta)?;
        let sidecar = serde_json::json!({ "algorithm": "dqn", "env_step": env_step, "n_updates": self.n_updates,
            "eval_return_mean": eval_mean, "obs_dim": self.obs_dim, "n_actions": self.n_actions, "config": self.config });
        let text =
            serde_json::to_string_pretty(&sidecar).map_err(|e| Error::invalid("checkpoint sidecar", e.to_string()))?;
        rlox_core::checkpoint::atomic_write(dir.join("q_net.json"), text.as_bytes())?;
        Ok(path)
    }

    /// Load `q_net.safetensors` from `dir` into the online (and target and acting) networks.
    pub fn load_checkpoint(&mut self, dir: &std::path::Path) -> Result<()> {
        let q_net = rlox_nn::load_safetensors(self.q_net.clone(), dir.join("q_net.safetensors"))?;
        self.set_q_net(q_net);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // The training loop
    // -----------------------------------------------------------------------------------------

    /// Train on `env` for `config.total_timesteps` steps (see the module docs for the order of events).
    /// The env is cloned for evaluation.
    pub fn learn<E>(&mut self, env: &mut E, logger: &mut dyn Logger) -> Result<DqnSummary>
    where
        E: Env<Action = usize> + Clone,
        E::Obs: FlatObs,
    {
        let c = self.config.clone();
        let start = Instant::now();
        let mut eval_env = env.clone();
        let mut rng_act: Rng = rng_from_seed(derive_seed(c.seed, 1));
        let mut rng_replay: Rng = rng_from_seed(derive_seed(c.seed, 2));
        let mut replay = match c.prioritized_replay {
            Some(p) => ReplayBuffer::prioritized(c.buffer_size, self.obs_dim, p)?,
            None => ReplayBuffer::new(c.buffer_size, self.obs_dim)?,
        };
        let epsilon = Schedule::Linear {
            start: c.exploration_initial_eps,
            end: c.exploration_final_eps,
            fraction: c.exploration_fraction,
        };
        let lr = match c.learning_rate_end {
            Some(end) => Schedule::linear(c.learning_rate, end),
            None => Schedule::constant(c.learning_rate),
        };

        let (first, _) = env.reset(Some(c.seed))?;
        let mut obs = vec![0.0f32; self.obs_dim];
        let mut next_obs = vec![0.0f32; self.obs_dim];
        first.write_flat(&mut obs);
        let (mut ep_return, mut ep_len, mut episodes) = (0.0, 0u64, 0u64);
        let mut recent: VecDeque<f64> = VecDeque::with_capacity(100);
        let mut batch = Batch::default();
        let mut n_evals = 0u64;

        for step in 1..=c.total_timesteps {
            let progress = (step - 1) as f64 / c.total_timesteps as f64;

            // 1. Act: random during warm-up, then epsilon-greedy.
            let eps = epsilon.value(progress);
            let action = if step <= c.learning_starts || rng_act.random::<f64>() < eps {
                rng_act.random_range(0..self.n_actions)
            } else {
                self.greedy_action(&obs)
            };

            // 2. Step and store; `done` is `terminated`, truncations bootstrap.
            let s = env.step(&action)?;
            s.obs.write_flat(&mut next_obs);
            replay.push(&obs, action, s.reward as f32, &next_obs, s.terminated);
            ep_return += s.reward;
            ep_len += 1;
            if s.done() {
                episodes += 1;
                if recent.len() == 100 {
                    recent.pop_front();
                }
                recent.push_back(ep_return);
                let mean100 = recent.iter().sum::<f64>() / recent.len() as f64;
                logger.log(
                    step,
                    &[
                        ("rollout/ep_return", ep_return),
                        ("rollout/ep_length", ep_len as f64),
                        ("rollout/ep_rew_mean", mean100),
                        ("rollout/exploration_rate", eps),
                    ],
                )?;
                let (o, _) = env.reset(None)?;
                o.write_flat(&mut obs);
                ep_return = 0.0;
                ep_len = 0;
            } else {
                std::mem::swap(&mut obs, &mut next_obs);
            }

            // 3. Target network.
            if step % c.target_update_interval == 0 {
                self.update_target();
            }

            // 4. Train.
            if step > c.learning_starts && step % c.train_freq == 0 {
                let lr_now = lr.value(progress);
                let (mut loss_sum, mut norm_sum, mut q_sum) = (0.0, 0.0, 0.0);
                let n = c.gradient_steps_per_round();
                for _ in 0..n {
                    replay.sample_into(c.batch_size, &mut rng_replay, progress, &mut batch);
                    let (stats, td) = self.gradient_step(&batch, lr_now).map_err(|e| {
                        Error::invalid("dqn", format!("{e} (env step {step}); the last checkpoint on disk is kept"))
                    })?;
                    replay.update_priorities(&batch.indices, &td);
                    loss_sum += stats.loss;
                    norm_sum += stats.grad_norm;
                    q_sum += stats.q_mean;
                }
                self.refresh_policy();
                let secs = start.elapsed().as_secs_f64();
                logger.log(
                    step,
                    &[
                        ("train/loss", loss_sum / n as f64),
                        ("train/grad_norm", norm_sum / n as f64),
                        ("train/q_mean", q_sum / n as f64),
                        ("train/learning_rate", lr_now),
                        ("train/n_updates", self.n_updates as f64),
                        ("time/fps", step as f64 / secs.max(1e-9)),
                    ],
                )?;
            }

            // 5. Evaluate (and checkpoint).
            if c.eval_freq > 0 && step % c.eval_freq == 0 {
                let (mean, std) = self.evaluate(&mut eval_env, c.eval_episodes, eval_seed(c.seed, n_evals))?;
                n_evals += 1;
                logger.log(step, &[("eval/mean_reward", mean), ("eval/std_reward", std)])?;
                if let Some(dir) = &c.checkpoint_dir {
                    self.save_checkpoint(dir, step, mean)?;
                }
            }
        }
        let wall_seconds = start.elapsed().as_secs_f64();

        let (mean, std) = self.evaluate(&mut eval_env, c.final_eval_episodes, eval_seed(c.seed, u64::MAX))?;
        logger.log(c.total_timesteps, &[("eval/final_mean_reward", mean), ("eval/final_std_reward", std)])?;
        if let Some(dir) = &c.checkpoint_dir {
            self.save_checkpoint(dir, c.total_timesteps, mean)?;
        }
        logger.flush()?;
        Ok(DqnSummary {
            eval_return_mean: mean,
            eval_return_std: std,
            env_steps: c.total_timesteps,
            steps_per_second: c.total_timesteps as f64 / wall_seconds.max(1e-9),
            wall_seconds,
            episodes,
            n_updates: self.n_updates,
        })
    }
}

/// Train a DQN agent on `env` with `config` (see [`Dqn::learn`]); observations must flatten to a
/// fixed width and actions must be `Discrete(n)`.
pub fn train_dqn<E>(mut env: E, config: &DqnConfig, logger: &mut dyn Logger) -> Result<DqnSummary>
where
    E: Env<Action = usize> + Clone,
    E::Obs: FlatObs,
{
    let n_actions = match env.action_space().as_discrete() {
        Some(d) if d.start == 0 => d.n,
        _ => {
            return Err(Error::invalid(
                "env",
                format!("DQN needs a Discrete(n) action space starting at 0; {} has {}", env.id(), env.action_space()),
            ))
        }
    };
    let (obs, _) = env.reset(Some(config.seed))?;
    let mut dqn = Dqn::new(obs.flat_len(), n_actions, config)?;
    dqn.learn(&mut env, logger)
}

fn eval_seed(seed: u64, round: u64) -> u64 {
    derive_seed(seed, 1_000_000u64.wrapping_add(round))
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

// Make `burn` (used by the Module derive) count as used even if the derive changes.
#[allow(unused_imports)]
use burn as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_zoo_cartpole_settings() {
        let c = DqnConfig::default();
        assert_eq!(
            (c.total_timesteps, c.learning_rate, c.batch_size, c.buffer_size, c.learning_starts, c.gamma),
            (50_000, 2.3e-3, 64, 100_000, 1000, 0.99)
        );
        assert_eq!((c.target_update_interval, c.train_freq, c.gradient_steps), (10, 256, 128));
        assert_eq!((c.exploration_fraction, c.exploration_final_eps, c.net_arch.clone()), (0.16, 0.04, vec![256, 256]));
        assert_eq!((c.tau, c.max_grad_norm, c.exploration_initial_eps), (1.0, 10.0, 1.0));
        c.validate().unwrap();
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c =
            DqnConfig { double_q: true, prioritized_replay: Some(PrioritizedConfig::default()), ..Default::default() };
        let text = rlox_core::config::to_toml_string(&c).unwrap();
        let back: DqnConfig = rlox_core::config::from_toml_str(&text, std::path::Path::new("dqn.toml")).unwrap();
        assert_eq!(back, c);
        let err =
            rlox_core::config::from_toml_str::<DqnConfig>("gama = 0.9\n", std::path::Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("gama"), "{err}");
        let c: DqnConfig =
            rlox_core::config::from_toml_str("batch_size = 32\n", std::path::Path::new("x.toml")).unwrap();
        assert_eq!((c.batch_size, c.train_freq), (32, 256));
    }

    #[test]
    fn bad_values_name_the_field() {
        let c = DqnConfig { tau: 0.0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("dqn.tau"));
        let c = DqnConfig { dueling: true, net_arch: vec![], ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("net_arch"));
    }

    #[test]
    fn every_parameter_gets_a_gradient_plain_and_dueling() {
        for dueling in [false, true] {
            let config = DqnConfig { net_arch: vec![16, 16], dueling, ..Default::default() };
            let dqn = Dqn::new(3, 4, &config).unwrap();
            let x = Tensor::<2>::random([8, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dqn.device);
            let loss = dqn.q_net.forward(x).square().mean();
            rlox_nn::testing::assert_all_params_get_grad(&dqn.q_net, &loss);
        }
    }

    #[test]
    fn dueling_q_is_v_plus_centred_advantage() {
        let config = DqnConfig { net_arch: vec![8], dueling: true, ..Default::default() };
        let dqn = Dqn::new(2, 3, &config).unwrap();
        let q = dqn.q_values(&[0.3, -0.7]);
        let net = &dqn.policy;
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, -0.7], [1, 2]), &dqn.plain);
        let h = net.activation.forward(net.body.forward(x));
        let v: Vec<f32> = net.value.as_ref().unwrap().forward(h.clone()).into_data().try_into_vec_as::<f32>().unwrap();
        let a: Vec<f32> = net.advantage.as_ref().unwrap().forward(h).into_data().try_into_vec_as::<f32>().unwrap();
        let mean_a = a.iter().sum::<f32>() / 3.0;
        for k in 0..3 {
            assert!((q[k] - (v[0] + a[k] - mean_a)).abs() < 1e-5);
        }
    }
}
