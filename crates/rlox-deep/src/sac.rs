//! SAC: Soft Actor-Critic (Haarnoja et al. 2018, with the automatic temperature of the
//! "applications" paper).
//!
//! A stochastic squashed-Gaussian actor ([`GaussianActor`]) maximising `E[min_i Q_i(s, a) - alpha
//! log pi(a|s)]`, twin critics learned on the soft TD target, and the temperature `alpha` tuned so
//! that the policy's entropy stays near `target_entropy = -dim(A)`. One gradient step (SB3's
//! `SAC.train`, in this order):
//!
//! 1. sample `a~ = tanh(mean + std * eps)` with its log-probability for the batch's states;
//! 2. temperature (`ent_coef = "auto"`): `alpha = exp(log_alpha)` is read first, then
//!    `ent_coef_loss = -log_alpha * mean(log pi(a~|s) + target_entropy)` takes one Adam step on
//!    `log_alpha` (a scalar, updated here in f64 with PyTorch's Adam);
//! 3. `y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s'))`, `a' ~ pi(.|s')`,
//!    no gradient; critic loss `0.5 sum_i mean((Q_i(s, a) - y)^2)`, one Adam step;
//! 4. actor loss `mean(alpha log pi(a~|s) - min_i Q_i(s, a~))` with the updated critics, one Adam step;
//! 5. every `target_update_interval` steps: `critic_target <- tau critic + (1 - tau) critic_target`.
//!
//! Defaults: rl-baselines3-zoo's `Pendulum-v1` entry of `hyperparams/sac.yml` (*zoo*: 20000 steps,
//! learning rate 1e-3; nothing else) over SB3's `SAC` defaults (*SB3*). The zoo's
//! `MountainCarContinuous-v0` entry uses gSDE (`use_sde = true`, `log_std_init = -3.67`; see
//! [`SdeNoise`]): the exploration matrix is drawn at the start of every `train_freq` round and anew
//! at every gradient step, the mean is clipped to `[-clip_mean, clip_mean]`, and the exploration
//! weights' log std is trained with the actor (its own Adam state, same settings).
//!
//! On the CPU (without gSDE) the networks train on rlox-nn's fused small-MLP path
//! ([`rlox_nn::fused`], [`FusedNets`]): the twin critics as one two-member network, the actor as its
//! body plus a two-member head network (mean and log-std), the squashed-Gaussian sampling, its
//! log-density and their derivatives written out on the host. Checkpoints are the same either way,
//! and `fused = false` trains through burn (a test checks that both take the same steps).

use crate::checkpoint::{self, Blobs, CheckpointWriter, OptimizerMeta};
use crate::continuous::{
    matrix, standard_normal, values, Critics, GaussianActor, QCritic, SdeNoise, LOG_STD_MAX, LOG_STD_MIN,
};
use crate::offpolicy::{self, OffPolicyAgent, ReplaySettings, Update};
use crate::policies::HALF_LN_2PI;
use crate::replay::Batch;
use crate::td3::{concat_rows, finite as check_finite};
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, Rng};
use rlox_core::{Error, Result};
use rlox_nn::fused::{self, FusedMlp, FusedOptimizer, Workspace};
use rlox_nn::{Activation, Device, Mlp, Module, Optimizer, OptimizerConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The entropy coefficient: learned (`"auto"`, or `"auto_0.1"` to start at 0.1, as in SB3) or fixed (a number).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EntCoef {
    /// Learned, starting at this value.
    Auto(f64),
    /// Fixed.
    Fixed(f64),
}

impl Serialize for EntCoef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            EntCoef::Auto(1.0) => s.serialize_str("auto"),
            EntCoef::Auto(init) => s.serialize_str(&format!("auto_{init}")),
            EntCoef::Fixed(x) => s.serialize_f64(x),
        }
    }
}

impl<'de> Deserialize<'de> for EntCoef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(x) => Ok(EntCoef::Fixed(x)),
            Raw::Text(t) if t == "auto" => Ok(EntCoef::Auto(1.0)),
            Raw::Text(t) => match t.strip_prefix("auto_").and_then(|x| x.parse::<f64>().ok()) {
                Some(init) => Ok(EntCoef::Auto(init)),
                None => Err(serde::de::Error::custom(format!(
                    "ent_coef '{t}': expected \"auto\", \"auto_<initial value>\" or a number"
                ))),
            },
        }
    }
}

/// SAC hyper-parameters. Defaults: rl-baselines3-zoo's `Pendulum-v1` (*zoo*), else SB3's `SAC` (*SB3*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacConfig {
    /// Adam learning rate of actor, critics and temperature. *zoo*: 1e-3.
    pub learning_rate: f64,
    /// Replay capacity. *SB3*: 1000000.
    pub buffer_size: usize,
    /// Uniformly random steps before learning. *SB3*: 100.
    pub learning_starts: u64,
    /// Transitions per gradient step. *SB3*: 256.
    pub batch_size: usize,
    /// Target-network coefficient. *SB3*: 0.005.
    pub tau: f64,
    /// Discount. *SB3*: 0.99.
    pub gamma: f64,
    /// Train every this many env steps. *SB3*: 1.
    pub train_freq: u64,
    /// Gradient steps per round (-1: `train_freq`). *SB3*: 1.
    pub gradient_steps: i64,
    /// Entropy coefficient. *SB3*: `"auto"` (learned, starting at 1).
    pub ent_coef: EntCoef,
    /// Target entropy of the automatic temperature; `None`: `-dim(A)` (*SB3*).
    pub target_entropy: Option<f64>,
    /// Critic-target update every this many gradient steps. *SB3*: 1.
    pub target_update_interval: u64,
    /// Hidden widths of actor and critics. *SB3*: `[256, 256]`.
    pub net_arch: Vec<usize>,
    /// Hidden activation. *SB3*: ReLU.
    pub activation: Activation,
    /// The optimizer of actor and critics (the temperature uses Adam). *SB3*: Adam with PyTorch's defaults.
    pub optimizer: OptimizerConfig,
    /// gSDE exploration instead of independent Gaussian noise. *SB3*: false.
    pub use_sde: bool,
    /// gSDE: initial log std of the exploration weights. *SB3*: -3.
    pub log_std_init: f64,
    /// gSDE: the mean is clipped to `[-clip_mean, clip_mean]` before the tanh. *SB3*: 2.
    pub clip_mean: f64,
    /// Train on rlox-nn's fused small-MLP path on the CPU (without gSDE; see the module docs);
    /// `false` forces burn's autodiff. Both take the same gradient steps.
    pub fused: bool,
}

impl Default for SacConfig {
    fn default() -> Self {
        SacConfig {
            learning_rate: 1e-3,
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.99,
            train_freq: 1,
            gradient_steps: 1,
            ent_coef: EntCoef::Auto(1.0),
            target_entropy: None,
            target_update_interval: 1,
            net_arch: vec![256, 256],
            activation: Activation::Relu,
            optimizer: OptimizerConfig::adam(),
            use_sde: false,
            log_std_init: -3.0,
            clip_mean: 2.0,
            fused: true,
        }
    }
}

impl SacConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("sac.{what}"), why)) };
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
        let coef = match self.ent_coef {
            EntCoef::Auto(x) | EntCoef::Fixed(x) => x,
        };
        check(coef > 0.0 && coef.is_finite(), "ent_coef", "must be \"auto\", \"auto_<x>\" or a number, with x > 0")?;
        check(self.target_entropy.is_none_or(|x| x.is_finite()), "target_entropy", "must be finite")?;
        check(!self.net_arch.is_empty(), "net_arch", "needs at least one hidden layer")?;
        check(self.log_std_init.is_finite(), "log_std_init", "must be finite")?;
        check(self.clip_mean > 0.0 && self.clip_mean.is_finite(), "clip_mean", "must be a positive number")
    }

    /// The loop's replay and training cadence.
    pub fn replay_settings(&self) -> ReplaySettings {
        ReplaySettings {
            buffer_size: self.buffer_size,
            learning_starts: self.learning_starts,
            train_freq: self.train_freq,
            gradient_steps: offpolicy::gradient_steps(self.gradient_steps, self.train_freq),
            batch_size: self.batch_size,
            prioritized: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The temperature
// ---------------------------------------------------------------------------------------------

/// `log_alpha` with PyTorch's Adam (betas 0.9/0.999, eps 1e-8) as a scalar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogAlpha {
    /// The parameter.
    pub value: f64,
    m: f64,
    v: f64,
    t: i32,
}

impl LogAlpha {
    fn new(init: f64) -> Self {
        LogAlpha { value: init.ln(), m: 0.0, v: 0.0, t: 0 }
    }

    /// One Adam step with gradient `g`.
    fn step(&mut self, g: f64, lr: f64) {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        self.t += 1;
        self.m = b1 * self.m + (1.0 - b1) * g;
        self.v = b2 * self.v + (1.0 - b2) * g * g;
        let m_hat = self.m / (1.0 - b1.powi(self.t));
        let v_hat = self.v / (1.0 - b2.powi(self.t));
        self.value -= lr * m_hat / (v_hat.sqrt() + eps);
    }
}

// ---------------------------------------------------------------------------------------------
// The learner
// ---------------------------------------------------------------------------------------------

/// A SAC learner.
pub struct Sac {
    config: SacConfig,
    obs_dim: usize,
    act_dim: usize,
    device: Device,
    plain: Device,
    actor: GaussianActor,
    /// `actor` without autodiff, refreshed after each training round (acting).
    policy: GaussianActor,
    critics: Critics,
    critics_target: Critics,
    actor_opt: Optimizer,
    critic_opt: Optimizer,
    /// `Some` when the temperature is learned.
    log_alpha: Option<LogAlpha>,
    target_entropy: f64,
    n_updates: u64,
    /// gSDE's exploration weights (`None` without gSDE), their optimizer, and the rollout's current
    /// exploration matrix `[hidden, act_dim]` on the host.
    sde: Option<SdeNoise>,
    sde_opt: Optimizer,
    sde_theta: Vec<f32>,
    /// The fused path's networks; when present they are the learner's, and the burn modules above
    /// only give the architecture (for checkpoints).
    fused: Option<Box<FusedNets>>,
}

impl Sac {
    /// A fresh SAC learner (networks initialised from the run's seed, on its device).
    pub fn new(obs_dim: usize, act_dim: usize, config: &SacConfig, run: &RunSettings) -> Result<Self> {
        config.validate()?;
        if obs_dim == 0 || act_dim == 0 {
            return Err(Error::invalid("sac", format!("obs_dim ({obs_dim}) and act_dim ({act_dim}) must be > 0")));
        }
        let device = rlox_nn::train_device(run.device, derive_seed(run.seed, 3))?;
        let plain = device.clone().inner();
        let (arch, act) = (&config.net_arch, config.activation);
        let actor = GaussianActor::new(obs_dim, act_dim, arch, act, &device);
        let critics = Critics::new(2, obs_dim, act_dim, arch, act, &device);
        let hidden = *arch.last().expect("validated: at least one hidden layer");
        let sde = config.use_sde.then(|| SdeNoise::new(hidden, act_dim, config.log_std_init, &device));
        let fused = (config.fused && !config.use_sde && run.device == rlox_nn::DeviceKind::Cpu)
            .then(|| Box::new(FusedNets::new(&actor, &critics, config)));
        Ok(Sac {
            fused,
            sde,
            sde_opt: config.optimizer.build(),
            sde_theta: Vec::new(),
            obs_dim,
            act_dim,
            policy: actor.valid(),
            critics_target: critics.valid(),
            actor,
            critics,
            actor_opt: config.optimizer.build(),
            critic_opt: config.optimizer.build(),
            log_alpha: match config.ent_coef {
                EntCoef::Auto(init) => Some(LogAlpha::new(init)),
                EntCoef::Fixed(_) => None,
            },
            target_entropy: config.target_entropy.unwrap_or(-(act_dim as f64)),
            n_updates: 0,
            device,
            plain,
            config: config.clone(),
        })
    }

    /// The current entropy coefficient `alpha`.
    pub fn ent_coef(&self) -> f64 {
        match (self.log_alpha, self.config.ent_coef) {
            (Some(la), _) => la.value.exp(),
            (None, EntCoef::Fixed(x) | EntCoef::Auto(x)) => x,
        }
    }

    /// Whether this learner trains on the fused path.
    pub fn is_fused(&self) -> bool {
        self.fused.is_some()
    }

    /// The actor and the critics (and their targets) as burn modules: copies on the fused path.
    pub fn modules(&self) -> (GaussianActor, Critics, Critics) {
        match &self.fused {
            None => (self.actor.clone(), self.critics.clone(), self.critics_target.clone()),
            Some(f) => (f.actor_module(&self.device), f.critics_module(&f.critics, &self.device), {
                f.critics_module(&f.critics_target, &self.device)
            }),
        }
    }

    /// Step 2 of the module docs: read alpha, then (when learned) one Adam step on `log_alpha` from
    /// the batch's log-probabilities; the metrics go into `stats`. Returns alpha.
    fn temperature_step(
        &mut self,
        log_prob: &[f32],
        lr: f64,
        update: u64,
        stats: &mut Vec<(&'static str, f64)>,
    ) -> Result<f64> {
        let alpha = self.ent_coef();
        if let Some(la) = self.log_alpha.as_mut() {
            let b = log_prob.len() as f64;
            let mean_term = log_prob.iter().map(|&x| x as f64 + self.target_entropy).sum::<f64>() / b;
            let ent_coef_loss = check_finite("sac", "entropy-coefficient loss", -la.value * mean_term, update)?;
            la.step(-mean_term, lr);
            stats.push(("train/ent_coef_loss", ent_coef_loss));
        }
        stats.push(("train/ent_coef", alpha));
        Ok(alpha)
    }

    /// [`OffPolicyAgent::update`] on the fused path: the same five steps, gradients by hand at the
    /// networks' outputs (see [`FusedNets`]).
    fn fused_update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update> {
        let (b, od, ad) = (batch.len(), self.obs_dim, self.act_dim);
        let update = self.n_updates + 1;
        let mut f = self.fused.take().expect("the fused path");
        let result = (|| {
            // 1. A reparameterised sample for the batch's states.
            f.eps = standard_normal(rng, b * ad);
            f.sample_batch(&batch.obs, b);
            // 2. The temperature.
            let mut stats = Vec::with_capacity(4);
            let alpha = self.temperature_step(&f.log_prob, lr, update, &mut stats)?;
            // 3. Critics on the soft TD target.
            let next_eps = standard_normal(rng, b * ad);
            let critic_loss = f.critic_step(batch, &next_eps, alpha, self.config.gamma, lr, od, ad);
            let critic_value = check_finite("sac", "critic loss", critic_loss, update)?;
            // 4. Actor, through the updated critics.
            let actor_value = check_finite("sac", "actor loss", f.actor_loss(&batch.obs, alpha, od, ad), update)?;
            f.actor_step(alpha, lr, od, ad);
            // 5. Critic targets.
            if update.is_multiple_of(self.config.target_update_interval) {
                fused::polyak_update(f.critics_target.params_mut(), f.critics.params(), self.config.tau);
            }
            stats.push(("train/critic_loss", critic_value));
            stats.push(("train/actor_loss", actor_value));
            Ok(Update { metrics: stats, td_errors: None })
        })();
        self.fused = Some(f);
        if result.is_ok() {
            self.n_updates = update;
        }
        result
    }
}

// ---------------------------------------------------------------------------------------------
// The fused path
// ---------------------------------------------------------------------------------------------

/// SAC's networks on the fused path, with their optimizers and every buffer a gradient step writes.
///
/// The actor is its body `obs -> hidden` ([`GaussianActor::latent`], the activation applied after
/// its last layer here) and a head network of two one-layer members on the body's output: member 0
/// the mean, member 1 the log-std (clamped to `[LOG_STD_MIN, LOG_STD_MAX]`). In that order the flat
/// parameters are the module's own (body layers, `mu`, `log_std`), so the optimizer state keeps the
/// burn path's layout.
///
/// The sample is `a = tanh(u)`, `u = mean + exp(log_std) eps`, with log-density
/// `sum_j -eps^2/2 - log_std - ln(2 pi)/2 - 2 (ln 2 - u - softplus(-2u))`. Its derivatives, with `eps`
/// fixed: `d log pi / d u = 2 tanh(u)`, `d log pi / d log_std = -1 + 2 tanh(u) exp(log_std) eps`. The
/// actor loss `mean(alpha log pi - min_k Q_k(s, a))` reaches `a` through the smaller critic's input
/// gradient and `u` through `1 - a^2`.
#[derive(Debug, Clone)]
struct FusedNets {
    latent: FusedMlp,
    heads: FusedMlp,
    critics: FusedMlp,
    critics_target: FusedMlp,
    actor_opt: FusedOptimizer,
    critic_opt: FusedOptimizer,
    activation: Activation,
    act_dim: usize,
    // Workspaces: the actor on the batch's states (kept for its backward), on the next states, and
    // acting; the critics on (s, a), the target critics on (s', a'), the critics on (s, a~).
    latent_ws: Workspace,
    heads_ws: Workspace,
    next_latent_ws: Workspace,
    next_heads_ws: Workspace,
    act_latent_ws: Workspace,
    act_heads_ws: Workspace,
    critic_ws: Workspace,
    target_critic_ws: Workspace,
    actor_critic_ws: Workspace,
    /// The body's activated output for the batch's states `[b, hidden]`, and its gradient.
    hidden: Vec<f32>,
    d_hidden: Vec<f32>,
    /// The noise, the clamped log-std, the squashed actions `[b, act]` and the log-densities `[b]`
    /// of the batch's sample.
    eps: Vec<f32>,
    log_std: Vec<f32>,
    actions: Vec<f32>,
    log_prob: Vec<f32>,
    /// The same for the next states (the target's sample).
    next_hidden: Vec<f32>,
    next_log_std: Vec<f32>,
    next_actions: Vec<f32>,
    next_log_prob: Vec<f32>,
    /// `[b, obs + act]` critic inputs, `dL/dQ` `[2, b]`, `dL/d(input)`, the TD targets, `dL/d(heads)`.
    input: Vec<f32>,
    d_q: Vec<f32>,
    d_input: Vec<f32>,
    targets: Vec<f32>,
    d_heads: Vec<f32>,
}

/// The body's output activated into `hidden`, then the heads on it: `[2, n, act]` (means, raw log-stds).
fn actor_forward<'w>(
    latent: &FusedMlp,
    heads: &FusedMlp,
    activation: Activation,
    obs: &[f32],
    n: usize,
    ws: (&mut Workspace, &'w mut Workspace),
    hidden: &mut Vec<f32>,
) -> &'w [f32] {
    hidden.clear();
    hidden.extend_from_slice(latent.forward(obs, n, ws.0));
    fused::vector::activate(fused::isa(), activation, hidden);
    heads.forward(hidden, n, ws.1)
}

/// The squashed sample from the heads' output `out` (`[2, n, act]`: means, raw log-stds) and the noise
/// `eps` (`[n, act]`): the clamped log-stds, the actions `tanh(u)` and the log-densities (`[n]`).
fn squash(
    out: &[f32],
    eps: &[f32],
    ad: usize,
    log_std: &mut Vec<f32>,
    actions: &mut Vec<f32>,
    log_prob: &mut Vec<f32>,
) {
    let (mean, raw) = out.split_at(eps.len());
    log_std.clear();
    log_std.extend(raw.iter().map(|&x| x.clamp(LOG_STD_MIN as f32, LOG_STD_MAX as f32)));
    actions.clear();
    log_prob.clear();
    let ln2 = std::f32::consts::LN_2;
    for ((mu, ls), e) in mean.chunks_exact(ad).zip(log_std.chunks_exact(ad)).zip(eps.chunks_exact(ad)) {
        let mut lp = 0.0f32;
        for j in 0..ad {
            let u = mu[j] + ls[j].exp() * e[j];
            actions.push(u.tanh());
            // softplus(-2u) = ln(1 + exp(-2u)), stable for either sign.
            let x = -2.0 * u;
            let softplus = x.max(0.0) + (-x.abs()).exp().ln_1p();
            lp += -0.5 * e[j] * e[j] - ls[j] - HALF_LN_2PI - 2.0 * (ln2 - u - softplus);
        }
        log_prob.push(lp);
    }
}

impl FusedNets {
    /// The fused copies of `actor` and `critics` (and the critics' target), with fresh optimizers.
    fn new(actor: &GaussianActor, critics: &Critics, config: &SacConfig) -> Self {
        let activation = actor.activation();
        let latent = FusedMlp::from_mlp(&actor.latent);
        let hidden = *latent.widths().last().expect("widths");
        let act_dim = actor.mu.weight.lazy_shape().dims::<2>()[1];
        let mut heads = FusedMlp::zeros(&[hidden, act_dim], activation, 2);
        for (k, head) in [&actor.mu, &actor.log_std].into_iter().enumerate() {
            heads.copy_from_mlp(k, &Mlp { layers: vec![head.clone()], activation });
        }
        let mut widths = vec![critics.nets[0].net.input_dim()];
        widths.extend(critics.nets[0].net.layers.iter().map(|l| l.weight.lazy_shape().dims::<2>()[1]));
        let mut fused_critics = FusedMlp::zeros(&widths, activation, critics.nets.len());
        for (k, q) in critics.nets.iter().enumerate() {
            fused_critics.copy_from_mlp(k, &q.net);
        }
        let b = config.batch_size;
        FusedNets {
            actor_opt: FusedOptimizer::new(config.optimizer, latent.num_params() + heads.num_params()),
            critic_opt: FusedOptimizer::new(config.optimizer, fused_critics.num_params()),
            latent_ws: latent.workspace(b),
            heads_ws: heads.workspace(b),
            next_latent_ws: latent.workspace(b),
            next_heads_ws: heads.workspace(b),
            act_latent_ws: latent.workspace(1),
            act_heads_ws: heads.workspace(1),
            critic_ws: fused_critics.workspace(b),
            target_critic_ws: fused_critics.workspace(b),
            actor_critic_ws: fused_critics.workspace(b),
            critics_target: fused_critics.clone(),
            critics: fused_critics,
            latent,
            heads,
            activation,
            act_dim,
            hidden: Vec::new(),
            d_hidden: Vec::new(),
            eps: Vec::new(),
            log_std: Vec::new(),
            actions: Vec::new(),
            log_prob: Vec::new(),
            next_hidden: Vec::new(),
            next_log_std: Vec::new(),
            next_actions: Vec::new(),
            next_log_prob: Vec::new(),
            input: Vec::new(),
            d_q: Vec::new(),
            d_input: Vec::new(),
            targets: Vec::new(),
            d_heads: Vec::new(),
        }
    }

    /// The actor as a [`GaussianActor`] on `device`.
    fn actor_module(&self, device: &Device) -> GaussianActor {
        let head = |k: usize| self.heads.to_mlp(k, device).layers.remove(0);
        GaussianActor::from_parts(self.latent.to_mlp(0, device), head(0), head(1), self.activation)
    }

    /// `net` (the critics or their target) as [`Critics`] on `device`.
    fn critics_module(&self, net: &FusedMlp, device: &Device) -> Critics {
        Critics { nets: (0..net.members()).map(|k| QCritic { net: net.to_mlp(k, device) }).collect() }
    }

    /// Overwrite the networks with the modules' values.
    fn copy_from(&mut self, actor: &GaussianActor, critics: &Critics, critics_target: &Critics) {
        self.latent.copy_from_mlp(0, &actor.latent);
        for (k, head) in [&actor.mu, &actor.log_std].into_iter().enumerate() {
            self.heads.copy_from_mlp(k, &Mlp { layers: vec![head.clone()], activation: self.activation });
        }
        for (k, (q, qt)) in critics.nets.iter().zip(&critics_target.nets).enumerate() {
            self.critics.copy_from_mlp(k, &q.net);
            self.critics_target.copy_from_mlp(k, &qt.net);
        }
    }

    /// The actor's parameter sizes in the module's visiting order (the optimizer state's layout).
    fn actor_param_sizes(&self) -> Vec<usize> {
        let mut sizes = rlox_nn::state::fused_param_sizes(&self.latent);
        sizes.extend(rlox_nn::state::fused_param_sizes(&self.heads));
        sizes
    }

    fn all_finite(&self) -> bool {
        [&self.latent, &self.heads, &self.critics].iter().all(|n| n.params().iter().all(|x| x.is_finite()))
    }

    /// Act on one observation: `tanh(mean)`, or a sample with noise drawn from `rng` (as the burn
    /// path draws it).
    fn act(&mut self, obs: &[f32], explore: bool, rng: &mut Rng) -> Vec<f32> {
        let ad = self.act_dim;
        let ws = (&mut self.act_latent_ws, &mut self.act_heads_ws);
        let out = actor_forward(&self.latent, &self.heads, self.activation, obs, 1, ws, &mut self.next_hidden);
        if !explore {
            return out[..ad].iter().map(|m| m.tanh()).collect();
        }
        let eps = standard_normal(rng, ad);
        (0..ad)
            .map(|j| (out[j] + out[ad + j].clamp(LOG_STD_MIN as f32, LOG_STD_MAX as f32).exp() * eps[j]).tanh())
            .collect()
    }

    /// Step 1: the sample for the batch's states with the noise in `self.eps`.
    fn sample_batch(&mut self, obs: &[f32], b: usize) {
        let ws = (&mut self.latent_ws, &mut self.heads_ws);
        let out = actor_forward(&self.latent, &self.heads, self.activation, obs, b, ws, &mut self.hidden);
        squash(out, &self.eps, self.act_dim, &mut self.log_std, &mut self.actions, &mut self.log_prob);
    }

    /// Step 3: the soft TD target from the next states (noise `next_eps`), the critic loss
    /// `0.5 sum_k mean((Q_k - y)^2)` and one optimizer step. Returns the loss.
    #[allow(clippy::too_many_arguments)]
    fn critic_step(
        &mut self,
        batch: &Batch,
        next_eps: &[f32],
        alpha: f64,
        gamma: f64,
        lr: f64,
        od: usize,
        ad: usize,
    ) -> f64 {
        let b = batch.len();
        let ws = (&mut self.next_latent_ws, &mut self.next_heads_ws);
        let out =
            actor_forward(&self.latent, &self.heads, self.activation, &batch.next_obs, b, ws, &mut self.next_hidden);
        squash(out, next_eps, ad, &mut self.next_log_std, &mut self.next_actions, &mut self.next_log_prob);
        concat_rows(&batch.next_obs, &self.next_actions, od, ad, &mut self.input);
        let next_q = self.critics_target.forward(&self.input, b, &mut self.target_critic_ws);
        let m = self.critics.members();
        let (gamma, alpha) = (gamma as f32, alpha as f32);
        self.targets.clear();
        self.targets.extend((0..b).map(|i| {
            let q_min = (0..m).map(|k| next_q[k * b + i]).fold(f32::INFINITY, f32::min);
            batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * (q_min - alpha * self.next_log_prob[i])
        }));
        concat_rows(&batch.obs, &batch.actions, od, ad, &mut self.input);
        let q = self.critics.forward(&self.input, b, &mut self.critic_ws);
        self.d_q.clear();
        let mut loss = 0.0f64;
        for k in 0..m {
            let mut sq = 0.0f64;
            for i in 0..b {
                let e = q[k * b + i] - self.targets[i];
                sq += (e * e) as f64;
                self.d_q.push(e / b as f32);
            }
            loss += 0.5 * sq / b as f64;
        }
        if loss.is_finite() {
            self.critics.backward(&mut self.critic_ws, &self.d_q, true, None);
            self.critic_opt.step(lr, self.critics.params_mut(), self.critic_ws.grads());
        }
        loss
    }

    /// Step 4, forward: `mean(alpha log pi - min_k Q_k(s, a~))` with the (updated) critics; records
    /// `dL/dQ` (the smaller critic of each row) for [`FusedNets::actor_step`].
    fn actor_loss(&mut self, obs: &[f32], alpha: f64, od: usize, ad: usize) -> f64 {
        let b = self.log_prob.len();
        concat_rows(obs, &self.actions, od, ad, &mut self.input);
        let q = self.critics.forward(&self.input, b, &mut self.actor_critic_ws);
        let m = self.critics.members();
        self.d_q.clear();
        self.d_q.resize(m * b, 0.0);
        let mut loss = 0.0f64;
        for i in 0..b {
            let k_min = (1..m).fold(0, |best, k| if q[k * b + i] < q[best * b + i] { k } else { best });
            loss += alpha * self.log_prob[i] as f64 - q[k_min * b + i] as f64;
            self.d_q[k_min * b + i] = -1.0 / b as f32;
        }
        loss / b as f64
    }

    /// Step 4, backward and optimizer step (after [`FusedNets::actor_loss`]).
    fn actor_step(&mut self, alpha: f64, lr: f64, od: usize, ad: usize) {
        let b = self.log_prob.len();
        self.d_input.resize(b * (od + ad), 0.0);
        self.critics.backward(&mut self.actor_critic_ws, &self.d_q, false, Some(&mut self.d_input));
        let w = (alpha / b as f64) as f32; // dL / d log pi_i
        let raw = &self.heads_ws.output()[b * ad..];
        self.d_heads.clear();
        self.d_heads.resize(2 * b * ad, 0.0);
        let (d_mean, d_log_std) = self.d_heads.split_at_mut(b * ad);
        for i in 0..b {
            for j in 0..ad {
                let k = i * ad + j;
                let a = self.actions[k];
                let d_a = self.d_input[i * (od + ad) + od + j];
                let d_u = d_a * (1.0 - a * a) + w * 2.0 * a;
                d_mean[k] = d_u;
                let inside = (LOG_STD_MIN as f32..=LOG_STD_MAX as f32).contains(&raw[k]);
                d_log_std[k] = if inside { d_u * self.log_std[k].exp() * self.eps[k] - w } else { 0.0 };
            }
        }
        self.d_hidden.resize(b * self.heads.input_dim(), 0.0);
        self.heads.backward(&mut self.heads_ws, &self.d_heads, true, Some(&mut self.d_hidden));
        fused::vector::activation_backward(fused::isa(), self.activation, &self.hidden, &mut self.d_hidden);
        self.latent.backward(&mut self.latent_ws, &self.d_hidden, true, None);
        self.actor_opt.step_parts(
            lr,
            &mut [(self.latent.params_mut(), self.latent_ws.grads()), (self.heads.params_mut(), self.heads_ws.grads())],
        );
    }
}

/// SAC's state beside its networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SacState {
    /// Gradient steps taken.
    pub n_updates: u64,
    /// The learned temperature with its Adam moments (`None` when fixed).
    pub log_alpha: Option<LogAlpha>,
    /// gSDE's current exploration matrix (empty without gSDE).
    pub sde_theta: Vec<f32>,
}

impl OffPolicyAgent for Sac {
    type State = SacState;

    fn algo(&self) -> &'static str {
        "sac"
    }

    fn replay_settings(&self) -> ReplaySettings {
        self.config.replay_settings()
    }

    fn learning_rate(&self, _progress: f64) -> f64 {
        self.config.learning_rate
    }

    fn begin_rollout(&mut self, rng: &mut Rng) {
        if let Some(sde) = &self.sde {
            let std: Vec<f32> = values(sde.log_std.val().exp());
            let eps = standard_normal(rng, std.len());
            self.sde_theta = std.iter().zip(eps).map(|(s, e)| s * e).collect();
        }
    }

    fn act(&mut self, obs: &[f32], explore: bool, _progress: f64, rng: &mut Rng) -> Vec<f32> {
        if let Some(f) = self.fused.as_deref_mut() {
            return f.act(obs, explore, rng);
        }
        let x = matrix(obs.to_vec(), 1, self.obs_dim, &self.plain);
        if self.sde.is_some() {
            if self.sde_theta.is_empty() {
                self.begin_rollout(rng);
            }
            let h = self.policy.features(x);
            let mean = self.policy.sde_mean(h.clone(), self.config.clip_mean);
            if !explore {
                return values(rlox_nn::burn::tensor::activation::tanh(mean));
            }
            let hidden = self.sde_theta.len() / self.act_dim;
            let theta = matrix(self.sde_theta.clone(), hidden, self.act_dim, &self.plain);
            return values(rlox_nn::burn::tensor::activation::tanh(mean + h.matmul(theta)));
        }
        if explore {
            let eps = matrix(standard_normal(rng, self.act_dim), 1, self.act_dim, &self.plain);
            values(self.policy.sample(x, eps).0)
        } else {
            values(self.policy.mode(x))
        }
    }

    fn update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update> {
        if self.fused.is_some() {
            return self.fused_update(batch, lr, rng);
        }
        let (b, od, ad) = (batch.len(), self.obs_dim, self.act_dim);
        let update = self.n_updates + 1;
        let obs = matrix(batch.obs.clone(), b, od, &self.device);

        // 1. A reparameterised sample for the batch's states (gSDE: with a fresh exploration matrix,
        //    shared by the batch and by the next states below, as SB3's `reset_noise` per step).
        let sde_eps = self.sde.as_ref().map(|s| standard_normal(rng, s.log_std.val().dims().iter().product()));
        let (actions_pi, log_prob) = match (&self.sde, &sde_eps) {
            (Some(sde), Some(e)) => {
                let hidden = e.len() / ad;
                let theta = sde.theta(matrix(e.clone(), hidden, ad, &self.device));
                let h = self.actor.features(obs.clone());
                sde.sample(h.clone(), self.actor.sde_mean(h, self.config.clip_mean), theta)
            }
            _ => {
                let eps = matrix(standard_normal(rng, b * ad), b, ad, &self.device);
                self.actor.sample(obs.clone(), eps)
            }
        };
        let log_prob_values = values(log_prob.clone().detach());

        // 2. The temperature: read alpha, then one Adam step on log_alpha.
        let mut stats = Vec::with_capacity(4);
        let alpha = self.temperature_step(&log_prob_values, lr, update, &mut stats)?;

        // 3. Critics on the soft TD target.
        let next_obs = matrix(batch.next_obs.clone(), b, od, &self.plain);
        let (next_actions, next_log_prob) = match (&self.sde, &sde_eps) {
            (Some(sde), Some(e)) => {
                let (actor, sde) = (self.actor.valid(), sde.valid());
                let theta = sde.theta(matrix(e.clone(), e.len() / ad, ad, &self.plain));
                let h = actor.features(next_obs.clone());
                sde.sample(h.clone(), actor.sde_mean(h, self.config.clip_mean), theta)
            }
            _ => {
                let next_eps = matrix(standard_normal(rng, b * ad), b, ad, &self.plain);
                self.actor.valid().sample(next_obs.clone(), next_eps)
            }
        };
        let next_q = values(self.critics_target.min(next_obs, next_actions));
        let next_lp = values(next_log_prob);
        let gamma = self.config.gamma as f32;
        let alpha32 = alpha as f32;
        let y: Vec<f32> = (0..b)
            .map(|i| batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * (next_q[i] - alpha32 * next_lp[i]))
            .collect();
        let y = matrix(y, b, 1, &self.device);
        let actions = matrix(batch.actions.clone(), b, ad, &self.device);
        let critic_loss = self
            .critics
            .forward(obs.clone(), actions)
            .into_iter()
            .map(|q| (q - y.clone()).square().mean())
            .reduce(|a, b| a + b)
            .expect("two critics")
            .mul_scalar(0.5);
        let critic_value = check_finite("sac", "critic loss", critic_loss.clone().into_scalar::<f32>() as f64, update)?;
        let grads = rlox_nn::backward(&critic_loss, &self.critics);
        self.critics = self.critic_opt.step(lr, self.critics.clone(), grads);

        // 4. Actor, through the updated critics.
        let actor_loss = (log_prob.mul_scalar(alpha) - self.critics.min(obs, actions_pi)).mean();
        let actor_value = check_finite("sac", "actor loss", actor_loss.clone().into_scalar::<f32>() as f64, update)?;
        let mut grads = actor_loss.backward();
        let actor_grads = rlox_nn::Grads::from_module(&mut grads, &self.actor);
        self.actor = self.actor_opt.step(lr, self.actor.clone(), actor_grads);
        if let Some(sde) = self.sde.take() {
            let sde_grads = rlox_nn::Grads::from_module(&mut grads, &sde);
            self.sde = Some(self.sde_opt.step(lr, sde, sde_grads));
        }
        self.n_updates = update;

        // 5. Critic targets.
        if update.is_multiple_of(self.config.target_update_interval) {
            self.critics_target = rlox_nn::polyak_update(self.critics_target.clone(), &self.critics, self.config.tau);
        }
        stats.push(("train/critic_loss", critic_value));
        stats.push(("train/actor_loss", actor_value));
        Ok(Update { metrics: stats, td_errors: None })
    }

    fn refresh_policy(&mut self) {
        if self.fused.is_none() {
            self.policy = self.actor.valid();
        }
    }

    fn n_updates(&self) -> u64 {
        self.n_updates
    }

    fn all_finite(&self) -> bool {
        if let Some(f) = &self.fused {
            return f.all_finite() && self.log_alpha.is_none_or(|la| la.value.is_finite());
        }
        rlox_nn::all_finite(&self.actor)
            && rlox_nn::all_finite(&self.critics)
            && self.sde.as_ref().is_none_or(rlox_nn::all_finite)
            && self.log_alpha.is_none_or(|la| la.value.is_finite())
    }

    fn save(
        &self,
        w: &CheckpointWriter,
        blobs: &mut Blobs,
        optimizers: &mut BTreeMap<String, OptimizerMeta>,
    ) -> Result<SacState> {
        let (actor, critics, critics_target) = self.modules();
        checkpoint::save_module(w, "actor", &actor)?;
        checkpoint::save_module(w, "critic", &critics)?;
        checkpoint::save_module(w, "critic_target", &critics_target)?;
        let (actor_meta, critic_meta) = match &self.fused {
            None => (
                checkpoint::save_optimizer(&self.actor_opt, &self.actor, "actor_opt", blobs)?,
                checkpoint::save_optimizer(&self.critic_opt, &self.critics, "critic_opt", blobs)?,
            ),
            Some(f) => (
                rlox_nn::state::export_flat_optimizer(&f.actor_opt, &f.actor_param_sizes(), "actor_opt", blobs),
                rlox_nn::state::export_fused_optimizer(&f.critic_opt, &f.critics, "critic_opt", blobs),
            ),
        };
        optimizers.insert("actor_opt".into(), actor_meta);
        optimizers.insert("critic_opt".into(), critic_meta);
        if let Some(sde) = &self.sde {
            checkpoint::save_module(w, "sde", sde)?;
            optimizers.insert("sde_opt".into(), checkpoint::save_optimizer(&self.sde_opt, sde, "sde_opt", blobs)?);
        }
        Ok(SacState { n_updates: self.n_updates, log_alpha: self.log_alpha, sde_theta: self.sde_theta.clone() })
    }

    fn load(
        &mut self,
        dir: &Path,
        blobs: &Blobs,
        optimizers: &BTreeMap<String, OptimizerMeta>,
        state: SacState,
    ) -> Result<()> {
        let meta = |name: &str| {
            optimizers.get(name).ok_or_else(|| Error::checkpoint(dir, format!("no `{name}` optimizer state")))
        };
        self.actor = checkpoint::load_module(dir, "actor", self.actor.clone())?;
        self.critics = checkpoint::load_module(dir, "critic", self.critics.clone())?;
        self.critics_target = checkpoint::load_module(dir, "critic_target", self.critics_target.clone())?;
        match self.fused.as_deref_mut() {
            None => {
                checkpoint::load_optimizer(
                    &mut self.actor_opt,
                    &self.actor,
                    "actor_opt",
                    blobs,
                    meta("actor_opt")?,
                    dir,
                )?;
                checkpoint::load_optimizer(
                    &mut self.critic_opt,
                    &self.critics,
                    "critic_opt",
                    blobs,
                    meta("critic_opt")?,
                    dir,
                )?;
                self.policy = self.actor.valid();
            }
            Some(f) => {
                f.copy_from(&self.actor, &self.critics, &self.critics_target);
                let origin = dir.join(checkpoint::STATE_FILE);
                let sizes = f.actor_param_sizes();
                let import = rlox_nn::state::import_flat_optimizer;
                import(&mut f.actor_opt, &sizes, "actor_opt", blobs, meta("actor_opt")?, &origin)?;
                let sizes = rlox_nn::state::fused_param_sizes(&f.critics);
                import(&mut f.critic_opt, &sizes, "critic_opt", blobs, meta("critic_opt")?, &origin)?;
            }
        }
        if let Some(sde) = self.sde.take() {
            let sde = checkpoint::load_module(dir, "sde", sde)?;
            checkpoint::load_optimizer(&mut self.sde_opt, &sde, "sde_opt", blobs, meta("sde_opt")?, dir)?;
            self.sde = Some(sde);
        }
        if self.log_alpha.is_some() != state.log_alpha.is_some() {
            return Err(Error::checkpoint(dir, "its ent_coef (learned or fixed) differs from this run's"));
        }
        self.n_updates = state.n_updates;
        self.log_alpha = state.log_alpha;
        self.sde_theta = state.sde_theta;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;

    #[test]
    fn defaults_and_ent_coef_parsing() {
        let c = SacConfig::default();
        assert_eq!((c.learning_rate, c.buffer_size, c.learning_starts), (1e-3, 1_000_000, 100));
        assert_eq!((c.batch_size, c.tau, c.gamma, c.net_arch.clone()), (256, 0.005, 0.99, vec![256, 256]));
        assert_eq!(c.ent_coef, EntCoef::Auto(1.0));
        let p = Path::new("sac.toml");
        let c: SacConfig = rlox_core::config::from_toml_str("ent_coef = \"auto_0.1\"\n", p).unwrap();
        assert_eq!(c.ent_coef, EntCoef::Auto(0.1));
        let c: SacConfig = rlox_core::config::from_toml_str("ent_coef = 0.2\n", p).unwrap();
        assert_eq!(c.ent_coef, EntCoef::Fixed(0.2));
        let back: SacConfig =
            rlox_core::config::from_toml_str(&rlox_core::config::to_toml_string(&c).unwrap(), p).unwrap();
        assert_eq!(back, c);
        assert!(rlox_core::config::from_toml_str::<SacConfig>("ent_coef = \"often\"\n", p).is_err());
        let e = SacConfig { ent_coef: EntCoef::Fixed(-1.0), ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("sac.ent_coef"));
    }

    /// The temperature moves the right way: with a policy far less random than the target entropy
    /// (log-probabilities high), alpha must grow; the scalar Adam takes steps of about `lr`.
    #[test]
    fn temperature_follows_the_entropy_target() {
        let mut la = LogAlpha::new(1.0);
        // Mean log pi = 3 > -target = 1: entropy too low, gradient -(3 - 1) < 0, log_alpha rises.
        for _ in 0..10 {
            la.step(-(3.0 - 1.0), 0.01);
        }
        assert!((la.value - 0.1).abs() < 1e-6, "{}", la.value);
        let config = SacConfig { net_arch: vec![16], ..Default::default() };
        let mut sac = Sac::new(3, 1, &config, &RunSettings::default()).unwrap();
        let mut replay = crate::replay::ReplayBuffer::new(64, 3, 1).unwrap();
        for k in 0..64 {
            let o = [k as f32 / 64.0, 0.5, -0.5];
            replay.push(&o, &[0.1], -1.0, &o, false);
        }
        let mut batch = Batch::default();
        let mut rng = rng_from_seed(2);
        replay.sample_into(32, &mut rng, 0.0, &mut batch);
        let stats = sac.update(&batch, 1e-3, &mut rng).unwrap().metrics;
        let names: Vec<&str> = stats.iter().map(|s| s.0).collect();
        assert_eq!(names, ["train/ent_coef_loss", "train/ent_coef", "train/critic_loss", "train/actor_loss"]);
        assert_eq!(stats[1].1, 1.0, "alpha is read before its first step");
        assert!(sac.ent_coef() != 1.0);
    }
}
