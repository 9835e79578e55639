//! Deep Q-Network (Mnih et al. 2015), with Double DQN (van Hasselt et al. 2016), dueling heads
//! (Wang et al. 2016) and prioritised replay (Schaul et al. 2016) as options.
//!
//! This file reads top to bottom like CleanRL's `dqn.py`: the config with its defaults, the
//! Q-network, and the learner ([`Dqn`]: act, one gradient step, target update). The loop around it is
//! [`crate::offpolicy`]'s, shared with DDPG, TD3 and SAC. The defaults are rl-baselines3-zoo's tuned
//! DQN hyper-parameters for `CartPole-v1` (`hyperparams/dqn.yml`) on top of Stable-Baselines3's DQN
//! defaults, and the loop follows SB3's order of events, so both should need the same number of env
//! steps:
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
//! 5. every `eval_every` env steps (a run setting): greedy episodes on the evaluation envs, logged as
//!    `eval/mean_reward` and `eval/std_reward`.
//!
//! A non-finite loss or gradient norm stops the run with an error; the last checkpoint on disk was
//! written before the failure and is never overwritten by a diverged network.
//!
//! Two implementations of the same network and step: on the CPU a plain (not dueling) Q-network runs on
//! rlox-nn's fused small-MLP path ([`rlox_nn::fused`]: flat parameters, forward, backward and the Adam
//! step in preallocated buffers, no graph and no allocation per step), since at these sizes burn's
//! autodiff bookkeeping, not arithmetic, took most of the time; dueling heads and other devices train
//! through burn. Both initialise the same weights from the seed and write the same checkpoint files
//! (`DqnConfig::fused = false` forces burn, for comparison).

use crate::checkpoint::{self, Blobs, CheckpointWriter, OptimizerMeta};
use crate::offpolicy::{self, OffPolicyAgent, ReplaySettings, Update};
use crate::onpolicy::Metrics;
use crate::policies::argmax;
use crate::replay::{Batch, PrioritizedConfig};
use rand::Rng as _;
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, Rng};
use rlox_core::{Error, Result};
use rlox_nn::burn;
use rlox_nn::burn::module::Module;
use rlox_nn::burn::nn::{Linear, LinearConfig};
use rlox_nn::fused::{FusedMlp, FusedOptimizer, Workspace};
use rlox_nn::{Activation, Device, Int, Mlp, MlpConfig, Optimizer, OptimizerConfig, Schedule, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// DQN hyper-parameters. Defaults: rl-baselines3-zoo's `CartPole-v1` entry of `hyperparams/dqn.yml`
/// (marked *zoo*), else Stable-Baselines3's `DQN` defaults (marked *SB3*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
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
    /// Fraction of the run's `total_steps` over which epsilon decays. *zoo*: 0.16.
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
    /// Train on the fused small-MLP path when the network and device allow it (see the module docs).
    pub fused: bool,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
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
            fused: true,
        }
    }
}

/// The run settings of rl-baselines3-zoo's DQN on `CartPole-v1`: 50,000 steps (an evaluation every
/// 10,000 over 5 episodes, SB3's `EvalCallback` default cadence).
pub fn cartpole_run_defaults() -> RunSettings {
    RunSettings {
        name: "dqn".into(),
        total_steps: 50_000,
        eval_every: 10_000,
        eval_episodes: 5,
        checkpoint_every: 10_000,
        ..RunSettings::default()
    }
}

impl DqnConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("dqn.{what}"), why)) };
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
        check(!(self.dueling && self.net_arch.is_empty()), "net_arch", "dueling heads need at least one hidden layer")
    }

    /// The loop's replay and training cadence.
    pub fn replay_settings(&self) -> ReplaySettings {
        ReplaySettings {
            buffer_size: self.buffer_size,
            learning_starts: self.learning_starts,
            train_freq: self.train_freq,
            gradient_steps: offpolicy::gradient_steps(self.gradient_steps, self.train_freq),
            batch_size: self.batch_size,
            prioritized: self.prioritized_replay,
        }
    }

    fn epsilon(&self) -> Schedule {
        Schedule::Linear {
            start: self.exploration_initial_eps,
            end: self.exploration_final_eps,
            fraction: self.exploration_fraction,
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

/// DQN's networks and optimizer on the fused path: flat parameter buffers and a workspace per use
/// (training batch, next-state batch, acting), so a gradient step allocates nothing.
struct FusedQ {
    online: FusedMlp,
    target: FusedMlp,
    optimizer: FusedOptimizer,
    train: Workspace,
    next: Workspace,
    next_online: Workspace,
    act: Workspace,
    /// `dL/dQ(s, .)`, `[batch, n_actions]`.
    d_out: Vec<f32>,
    /// `max_a' Q_target(s', a')` (or Double DQN's choice), `[batch]`.
    next_q: Vec<f32>,
}

/// The networks and optimizer, on one of the two paths (see the module docs). One per agent, so the
/// size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Networks {
    /// burn modules and autodiff: the online network, the target, a snapshot without autodiff for
    /// acting (refreshed after each training round) and the optimizer.
    Burn { q_net: QNetwork, target: QNetwork, policy: QNetwork, optimizer: Optimizer },
    /// The fused path.
    Fused(Box<FusedQ>),
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
    nets: Networks,
    n_updates: u64,
}

/// `dL/d(td)` and the loss of one TD error.
fn td_loss(loss: TdLoss, td: f32) -> (f32, f32) {
    match loss {
        TdLoss::Huber if td.abs() <= 1.0 => (0.5 * td * td, td),
        TdLoss::Huber => (td.abs() - 0.5, td.signum()),
        TdLoss::Mse => (td * td, 2.0 * td),
    }
}

impl Dqn {
    /// A fresh agent for `obs_dim`-dimensional observations and `n_actions` discrete actions (the
    /// network initialised from the run's seed, on its device).
    pub fn new(obs_dim: usize, n_actions: usize, config: &DqnConfig, run: &RunSettings) -> Result<Self> {
        config.validate()?;
        if obs_dim == 0 || n_actions == 0 {
            return Err(Error::invalid("dqn", format!("obs_dim ({obs_dim}) and n_actions ({n_actions}) must be > 0")));
        }
        let device = rlox_nn::train_device(run.device, derive_seed(run.seed, 3))?;
        let plain = device.clone().inner();
        let q_net = QNetwork::new(obs_dim, n_actions, config, &device);
        let fused = config.fused && !config.dueling && run.device == rlox_nn::DeviceKind::Cpu;
        let nets = if fused {
            let online = FusedMlp::from_mlp(&q_net.body);
            let optimizer = FusedOptimizer::new(config.optimizer, online.num_params());
            Networks::Fused(Box::new(FusedQ {
                target: online.clone(),
                train: online.workspace(config.batch_size),
                next: online.workspace(config.batch_size),
                next_online: online.workspace(if config.double_q { config.batch_size } else { 0 }),
                act: online.workspace(1),
                d_out: vec![0.0; config.batch_size * n_actions],
                next_q: vec![0.0; config.batch_size],
                online,
                optimizer,
            }))
        } else {
            Networks::Burn { target: q_net.valid(), policy: q_net.valid(), q_net, optimizer: config.optimizer.build() }
        };
        Ok(Dqn { config: config.clone(), obs_dim, n_actions, device, plain, nets, n_updates: 0 })
    }

    /// Whether this agent trains on the fused path.
    pub fn is_fused(&self) -> bool {
        matches!(self.nets, Networks::Fused(_))
    }

    /// A burn module holding `net`'s weights (for checkpoints).
    fn module_of(&self, net: &FusedMlp) -> QNetwork {
        QNetwork { body: net.to_mlp(0, &self.device), value: None, advantage: None, activation: self.config.activation }
    }

    /// The online network (a copy as a burn module on the fused path).
    pub fn q_net(&self) -> QNetwork {
        match &self.nets {
            Networks::Burn { q_net, .. } => q_net.clone(),
            Networks::Fused(f) => self.module_of(&f.online),
        }
    }

    /// Replace the online network (e.g. loaded from a checkpoint); the target and acting copies follow.
    pub fn set_q_net(&mut self, new: QNetwork) {
        match &mut self.nets {
            Networks::Burn { q_net, target, policy, .. } => {
                *target = new.valid();
                *policy = new.valid();
                *q_net = new;
            }
            Networks::Fused(f) => {
                f.online.copy_from_mlp(0, &new.body);
                f.target.params_mut().copy_from_slice(f.online.params());
            }
        }
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
        match &self.nets {
            Networks::Burn { policy, .. } => {
                let x = Tensor::<2>::from_data(TensorData::new(obs.to_vec(), [n, self.obs_dim]), &self.plain);
                policy.forward(x).into_data().try_into_vec_as::<f32>().expect("f32 Q-values")
            }
            Networks::Fused(f) => f.online.forward(obs, n, &mut f.online.workspace(n)).to_vec(),
        }
    }

    /// The greedy action (ties to the lowest index).
    pub fn greedy_action(&mut self, obs: &[f32]) -> usize {
        match &mut self.nets {
            Networks::Fused(f) => {
                let FusedQ { online, act, .. } = &mut **f;
                argmax(online.forward(obs, 1, act))
            }
            Networks::Burn { .. } => argmax(&self.q_values(obs)),
        }
    }

    /// Copy the online network to the acting network (done after each training round; the fused path
    /// acts with the online network itself, which does not change between rounds).
    pub fn refresh_policy(&mut self) {
        if let Networks::Burn { q_net, policy, .. } = &mut self.nets {
            *policy = q_net.valid();
        }
    }

    /// `target <- tau * online + (1 - tau) * target`.
    pub fn update_target(&mut self) {
        let tau = self.config.tau;
        match &mut self.nets {
            Networks::Burn { q_net, target, .. } => *target = rlox_nn::polyak_update(target.clone(), q_net, tau),
            Networks::Fused(f) if tau == 1.0 => f.target.params_mut().copy_from_slice(f.online.params()),
            Networks::Fused(f) => rlox_nn::fused::polyak_update(f.target.params_mut(), f.online.params(), tau),
        }
    }

    /// One gradient step on `batch` with learning rate `lr`; returns the TD errors for prioritised
    /// replay. A non-finite loss or gradient norm is an error (and the network is not updated).
    pub fn gradient_step(&mut self, batch: &Batch, lr: f64) -> Result<(StepStats, Vec<f32>)> {
        match &mut self.nets {
            Networks::Fused(f) => {
                let step = self.n_updates + 1;
                let out = fused_step(f, &self.config, self.n_actions, batch, lr, step)?;
                self.n_updates += 1;
                Ok(out)
            }
            Networks::Burn { .. } => self.burn_step(batch, lr),
        }
    }

    /// [`Dqn::gradient_step`] through burn's autodiff.
    fn burn_step(&mut self, batch: &Batch, lr: f64) -> Result<(StepStats, Vec<f32>)> {
        let Networks::Burn { q_net, target, optimizer, .. } = &mut self.nets else { unreachable!("burn path") };
        let (b, d) = (batch.len(), self.obs_dim);
        // TD target, without gradient: r + gamma * (1 - done) * Q_target(s', argmax or max).
        let next_obs = Tensor::<2>::from_data(TensorData::new(batch.next_obs.clone(), [b, d]), &self.plain);
        let next_q_target = target.forward(next_obs.clone());
        let next_q = if self.config.double_q {
            let next_actions = q_net.valid().forward(next_obs).argmax(1);
            next_q_target.gather(1, next_actions)
        } else {
            next_q_target.max_dim(1)
        };
        let next_q: Vec<f32> = next_q.into_data().try_into_vec_as::<f32>().expect("f32");
        let gamma = self.config.gamma as f32;
        let targets: Vec<f32> = (0..b).map(|i| batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * next_q[i]).collect();

        // Q(s, a) of the online network, with gradient.
        let obs = Tensor::<2>::from_data(TensorData::new(batch.obs.clone(), [b, d]), &self.device);
        let indices: Vec<i64> = batch.actions.iter().map(|&a| a as i64).collect();
        let actions = Tensor::<2, Int>::from_data(TensorData::new(indices, [b, 1]), &self.device);
        let q = q_net.forward(obs).gather(1, actions);
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
        let step = self.n_updates + 1;
        let loss_value = crate::td3::finite("dqn", "loss", loss.clone().into_scalar::<f32>() as f64, step)?;
        let mut grads = rlox_nn::backward(&loss, q_net);
        let grad_norm = rlox_nn::clip_grad_norm(q_net, &mut grads, self.config.max_grad_norm);
        let grad_norm = crate::td3::finite("dqn", "gradient norm", grad_norm, step)?;
        *q_net = optimizer.step(lr, q_net.clone(), grads);
        self.n_updates += 1;

        let q_mean = q.clone().detach().mean().into_scalar::<f32>() as f64;
        let td_errors = if self.config.prioritized_replay.is_some() {
            td.detach().into_data().try_into_vec_as::<f32>().expect("f32")
        } else {
            Vec::new()
        };
        Ok((StepStats { loss: loss_value, grad_norm, q_mean }, td_errors))
    }
}

/// One gradient step on the fused path: the same loss, gradient clipping and Adam step as
/// [`Dqn::burn_step`], with `dL/dQ` written by hand (nonzero only at the taken actions).
fn fused_step(
    f: &mut FusedQ,
    config: &DqnConfig,
    n_actions: usize,
    batch: &Batch,
    lr: f64,
    step: u64,
) -> Result<(StepStats, Vec<f32>)> {
    let b = batch.len();
    let FusedQ { online, target, optimizer, train, next, next_online, d_out, next_q, .. } = f;
    // TD target: r + gamma * (1 - done) * Q_target(s', argmax or max).
    next_q.resize(b, 0.0);
    let q_next = target.forward(&batch.next_obs, b, next);
    if config.double_q {
        let q_choice = online.forward(&batch.next_obs, b, next_online);
        for i in 0..b {
            next_q[i] = q_next[i * n_actions + argmax(&q_choice[i * n_actions..(i + 1) * n_actions])];
        }
    } else {
        for i in 0..b {
            next_q[i] = q_next[i * n_actions..(i + 1) * n_actions].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        }
    }
    let gamma = config.gamma as f32;
    let q = online.forward(&batch.obs, b, train);
    d_out.clear();
    d_out.resize(b * n_actions, 0.0);
    let weighted = config.prioritized_replay.is_some();
    let mut td_errors = if weighted { Vec::with_capacity(b) } else { Vec::new() };
    let (mut loss, mut q_sum) = (0.0f64, 0.0f64);
    for i in 0..b {
        let a = batch.actions[i] as usize;
        let q_sa = q[i * n_actions + a];
        let td = q_sa - (batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * next_q[i]);
        let (l, dl) = td_loss(config.loss, td);
        let w = if weighted { batch.weights[i] } else { 1.0 };
        loss += (w * l) as f64;
        d_out[i * n_actions + a] = w * dl / b as f32;
        q_sum += q_sa as f64;
        if weighted {
            td_errors.push(td);
        }
    }
    let loss = crate::td3::finite("dqn", "loss", loss / b as f64, step)?;
    online.backward(train, d_out, true, None);
    let grads = train.grads_mut();
    let grad_norm = rlox_nn::fused::clip_grad_norm(grads, config.max_grad_norm);
    let grad_norm = crate::td3::finite("dqn", "gradient norm", grad_norm, step)?;
    optimizer.step(lr, online.params_mut(), train.grads());
    Ok((StepStats { loss, grad_norm, q_mean: q_sum / b as f64 }, td_errors))
}

/// DQN's state beside its networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DqnState {
    /// Gradient steps taken.
    pub n_updates: u64,
}

impl OffPolicyAgent for Dqn {
    type State = DqnState;

    fn algo(&self) -> &'static str {
        "dqn"
    }

    fn replay_settings(&self) -> ReplaySettings {
        self.config.replay_settings()
    }

    /// Epsilon-greedy (epsilon from the schedule at `progress`) when exploring, else greedy.
    fn act(&mut self, obs: &[f32], explore: bool, progress: f64, rng: &mut Rng) -> Vec<f32> {
        if explore && rng.random::<f64>() < self.config.epsilon().value(progress) {
            return vec![rng.random_range(0..self.n_actions) as f32];
        }
        vec![self.greedy_action(obs) as f32]
    }

    fn episode_metrics(&self, progress: f64) -> Metrics {
        vec![("rollout/exploration_rate", self.config.epsilon().value(progress))]
    }

    /// SB3 updates the target every `target_update_interval` env steps.
    fn after_env_step(&mut self, env_step: u64) {
        if env_step.is_multiple_of(self.config.target_update_interval) {
            self.update_target();
        }
    }

    fn learning_rate(&self, progress: f64) -> f64 {
        match self.config.learning_rate_end {
            Some(end) => Schedule::linear(self.config.learning_rate, end).value(progress),
            None => self.config.learning_rate,
        }
    }

    fn update(&mut self, batch: &Batch, lr: f64, _: &mut Rng) -> Result<Update> {
        let (stats, td) = self.gradient_step(batch, lr)?;
        Ok(Update {
            metrics: vec![
                ("train/loss", stats.loss),
                ("train/grad_norm", stats.grad_norm),
                ("train/q_mean", stats.q_mean),
            ],
            td_errors: self.config.prioritized_replay.is_some().then_some(td),
        })
    }

    fn refresh_policy(&mut self) {
        Dqn::refresh_policy(self)
    }

    fn n_updates(&self) -> u64 {
        self.n_updates
    }

    fn all_finite(&self) -> bool {
        match &self.nets {
            Networks::Burn { q_net, .. } => rlox_nn::all_finite(q_net),
            Networks::Fused(f) => f.online.params().iter().all(|x| x.is_finite()),
        }
    }

    fn save(
        &self,
        w: &CheckpointWriter,
        blobs: &mut Blobs,
        optimizers: &mut BTreeMap<String, OptimizerMeta>,
    ) -> Result<DqnState> {
        let meta = match &self.nets {
            Networks::Burn { q_net, target, optimizer, .. } => {
                checkpoint::save_module(w, "q_net", q_net)?;
                checkpoint::save_module(w, "q_net_target", target)?;
                checkpoint::save_optimizer(optimizer, q_net, "optimizer", blobs)?
            }
            Networks::Fused(f) => {
                checkpoint::save_module(w, "q_net", &self.module_of(&f.online))?;
                checkpoint::save_module(w, "q_net_target", &self.module_of(&f.target))?;
                rlox_nn::state::export_fused_optimizer(&f.optimizer, &f.online, "optimizer", blobs)
            }
        };
        optimizers.insert("optimizer".into(), meta);
        Ok(DqnState { n_updates: self.n_updates })
    }

    fn load(
        &mut self,
        dir: &Path,
        blobs: &Blobs,
        optimizers: &BTreeMap<String, OptimizerMeta>,
        state: DqnState,
    ) -> Result<()> {
        let meta = optimizers.get("optimizer").ok_or_else(|| Error::checkpoint(dir, "no optimizer state"))?;
        let template = self.q_net();
        let online = checkpoint::load_module(dir, "q_net", template.clone())?;
        let target_net = checkpoint::load_module(dir, "q_net_target", template)?;
        match &mut self.nets {
            Networks::Burn { q_net, target, policy, optimizer } => {
                *q_net = online.clone();
                *target = target_net;
                *policy = online.valid();
                checkpoint::load_optimizer(optimizer, q_net, "optimizer", blobs, meta, dir)?;
            }
            Networks::Fused(f) => {
                f.online.copy_from_mlp(0, &online.body);
                f.target.copy_from_mlp(0, &target_net.body);
                let origin = dir.join(checkpoint::STATE_FILE);
                rlox_nn::state::import_fused_optimizer(&mut f.optimizer, &f.online, "optimizer", blobs, meta, &origin)?;
            }
        }
        self.n_updates = state.n_updates;
        Ok(())
    }
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
            (c.learning_rate, c.batch_size, c.buffer_size, c.learning_starts, c.gamma),
            (2.3e-3, 64, 100_000, 1000, 0.99)
        );
        assert_eq!(cartpole_run_defaults().total_steps, 50_000);
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
            let dqn = Dqn::new(3, 4, &config, &RunSettings::default()).unwrap();
            let x = Tensor::<2>::random([8, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dqn.device);
            let q_net = QNetwork::new(3, 4, &config, &dqn.device);
            let loss = q_net.forward(x).square().mean();
            rlox_nn::testing::assert_all_params_get_grad(&q_net, &loss);
        }
    }

    #[test]
    fn dueling_q_is_v_plus_centred_advantage() {
        let config = DqnConfig { net_arch: vec![8], dueling: true, ..Default::default() };
        let dqn = Dqn::new(2, 3, &config, &RunSettings::default()).unwrap();
        let q = dqn.q_values(&[0.3, -0.7]);
        let Networks::Burn { policy: net, .. } = &dqn.nets else { panic!("dueling trains through burn") };
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
