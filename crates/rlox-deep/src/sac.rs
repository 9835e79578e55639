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

use crate::checkpoint::{self, Blobs, CheckpointWriter, OptimizerMeta};
use crate::continuous::{matrix, standard_normal, values, Critics, GaussianActor, SdeNoise};
use crate::offpolicy::{self, OffPolicyAgent, ReplaySettings, Update};
use crate::replay::Batch;
use crate::td3::finite as check_finite;
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, Rng};
use rlox_core::{Error, Result};
use rlox_nn::{Activation, Device, Module, Optimizer, OptimizerConfig};
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
        Ok(Sac {
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
        let alpha = self.ent_coef();
        let mut stats = Vec::with_capacity(4);
        if let Some(la) = self.log_alpha.as_mut() {
            let mean_term = log_prob_values.iter().map(|&x| x as f64 + self.target_entropy).sum::<f64>() / b as f64;
            let ent_coef_loss = check_finite("sac", "entropy-coefficient loss", -la.value * mean_term, update)?;
            la.step(-mean_term, lr);
            stats.push(("train/ent_coef_loss", ent_coef_loss));
        }
        stats.push(("train/ent_coef", alpha));

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
        self.policy = self.actor.valid();
    }

    fn n_updates(&self) -> u64 {
        self.n_updates
    }

    fn all_finite(&self) -> bool {
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
        checkpoint::save_module(w, "actor", &self.actor)?;
        checkpoint::save_module(w, "critic", &self.critics)?;
        checkpoint::save_module(w, "critic_target", &self.critics_target)?;
        optimizers
            .insert("actor_opt".into(), checkpoint::save_optimizer(&self.actor_opt, &self.actor, "actor_opt", blobs)?);
        optimizers.insert(
            "critic_opt".into(),
            checkpoint::save_optimizer(&self.critic_opt, &self.critics, "critic_opt", blobs)?,
        );
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
        checkpoint::load_optimizer(&mut self.actor_opt, &self.actor, "actor_opt", blobs, meta("actor_opt")?, dir)?;
        checkpoint::load_optimizer(&mut self.critic_opt, &self.critics, "critic_opt", blobs, meta("critic_opt")?, dir)?;
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
