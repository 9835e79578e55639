//! TD3: Twin Delayed DDPG (Fujimoto, van Hoof & Meger 2018).
//!
//! A deterministic actor `mu(s)` and critics `Q(s, a)` learned off-policy from a replay buffer
//! (the loop is in [`crate::offpolicy`]). TD3 changes three things in DDPG:
//!
//! 1. **twin critics**: the TD target takes the smaller of two target critics;
//! 2. **target policy smoothing**: the target action is `clip(mu'(s') + clip(N(0, 0.2), -0.5, 0.5), -1, 1)`;
//! 3. **delayed policy updates**: the actor and the target networks move every `policy_delay = 2`
//!    critic updates.
//!
//! One gradient step (SB3's `TD3.train`, in this order):
//!
//! * `y = r + gamma (1 - terminated) min_i Q'_i(s', a')`, no gradient;
//! * critic loss `sum_i mean((Q_i(s, a) - y)^2)`, one Adam step on all critics;
//! * every `policy_delay`-th step: actor loss `-mean(Q_1(s, mu(s)))`, one Adam step on the actor,
//!   then `target <- tau * online + (1 - tau) * target` for the actor and the critics.
//!
//! The defaults are rl-baselines3-zoo's `Pendulum-v1` entry of `hyperparams/td3.yml` (marked *zoo*)
//! on top of Stable-Baselines3's `TD3` defaults (*SB3*). [`crate::ddpg`] is this config with one
//! critic, no smoothing and no delay, which is exactly SB3's `DDPG`.

use crate::checkpoint::{self, Blobs, CheckpointWriter, OptimizerMeta};
use crate::continuous::{matrix, standard_normal, values, Critics, DeterministicActor};
use crate::noise::{ActionNoise, NoiseConfig};
use crate::offpolicy::{self, OffPolicyAgent, ReplaySettings, Update};
use crate::replay::Batch;
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

/// TD3 hyper-parameters. Defaults: rl-baselines3-zoo's `Pendulum-v1` (*zoo*), else SB3's `TD3` (*SB3*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Td3Config {
    /// Adam learning rate of actor and critics. *zoo*: 1e-3.
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
    /// Critics (twin Q). *SB3*: 2 (DDPG: 1).
    pub n_critics: usize,
    /// Actor and target updates every this many critic updates. *SB3*: 2.
    pub policy_delay: u64,
    /// Standard deviation of the target-policy smoothing noise. *SB3*: 0.2.
    pub target_policy_noise: f64,
    /// The smoothing noise is clipped to `±target_noise_clip`. *SB3*: 0.5.
    pub target_noise_clip: f64,
    /// Exploration noise. *zoo*: normal, sigma 0.1.
    pub action_noise: NoiseConfig,
    /// Hidden widths of actor and critics. *zoo*/*SB3*: `[400, 300]`.
    pub net_arch: Vec<usize>,
    /// Hidden activation. *SB3*: ReLU.
    pub activation: Activation,
    /// The optimizer. *SB3*: Adam with PyTorch's defaults.
    pub optimizer: OptimizerConfig,
}

impl Default for Td3Config {
    fn default() -> Self {
        Td3Config {
            learning_rate: 1e-3,
            buffer_size: 200_000,
            learning_starts: 10_000,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.98,
            train_freq: 1,
            gradient_steps: 1,
            n_critics: 2,
            policy_delay: 2,
            target_policy_noise: 0.2,
            target_noise_clip: 0.5,
            action_noise: NoiseConfig::Normal { sigma: 0.1 },
            net_arch: vec![400, 300],
            activation: Activation::Relu,
            optimizer: OptimizerConfig::adam(),
        }
    }
}

/// The run settings rl-baselines3-zoo uses for TD3 and DDPG on `Pendulum-v1` (20,000 steps, an
/// evaluation every 1,000 steps over 5 episodes, as SB3's `EvalCallback` is usually set).
pub fn pendulum_run_defaults(name: &str) -> RunSettings {
    RunSettings {
        name: name.into(),
        total_steps: 20_000,
        eval_every: 1000,
        eval_episodes: 5,
        checkpoint_every: 1000,
        ..RunSettings::default()
    }
}

impl Td3Config {
    /// Check the values; the error names the field (`<algo>.<field>`).
    pub fn validate_as(&self, algo: &str) -> Result<()> {
        let check = |ok: bool, what: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(format!("{algo}.{what}"), why))
            }
        };
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
        check(self.policy_delay > 0, "policy_delay", "must be > 0")?;
        check(self.n_critics > 0, "n_critics", "must be > 0")?;
        check(self.target_policy_noise >= 0.0, "target_policy_noise", "must be >= 0")?;
        check(self.target_noise_clip >= 0.0, "target_noise_clip", "must be >= 0")?;
        check(!self.net_arch.is_empty(), "net_arch", "needs at least one hidden layer")?;
        self.action_noise.validate(&format!("{algo}.action_noise"))
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
// Target policy smoothing
// ---------------------------------------------------------------------------------------------

/// TD3's target-policy smoothing noise: `n` draws of `clip(N(0, std^2), -clip, clip)`.
pub fn smoothing_noise(rng: &mut Rng, n: usize, std: f64, clip: f64) -> Vec<f32> {
    let (std, clip) = (std as f32, clip as f32);
    standard_normal(rng, n).into_iter().map(|z| (z * std).clamp(-clip, clip)).collect()
}

// ---------------------------------------------------------------------------------------------
// The learner
// ---------------------------------------------------------------------------------------------

/// A TD3 (or DDPG) learner: actor, critics, their targets and optimizers, the exploration noise.
pub struct Td3 {
    config: Td3Config,
    algo: &'static str,
    obs_dim: usize,
    act_dim: usize,
    device: Device,
    plain: Device,
    actor: DeterministicActor,
    actor_target: DeterministicActor,
    /// `actor` without autodiff, refreshed after each training round (acting).
    policy: DeterministicActor,
    critics: Critics,
    critics_target: Critics,
    actor_opt: Optimizer,
    critic_opt: Optimizer,
    noise: ActionNoise,
    n_updates: u64,
}

impl Td3 {
    /// A fresh TD3 learner (networks initialised from the run's seed, on its device).
    pub fn new(obs_dim: usize, act_dim: usize, config: &Td3Config, run: &RunSettings) -> Result<Self> {
        Self::build("td3", obs_dim, act_dim, config, run)
    }

    /// The learner reporting as `algo` (DDPG is this with [`crate::ddpg::ddpg_config`]'s settings).
    pub fn build(
        algo: &'static str,
        obs_dim: usize,
        act_dim: usize,
        config: &Td3Config,
        run: &RunSettings,
    ) -> Result<Self> {
        config.validate_as(algo)?;
        if obs_dim == 0 || act_dim == 0 {
            return Err(Error::invalid(algo, format!("obs_dim ({obs_dim}) and act_dim ({act_dim}) must be > 0")));
        }
        let n_critics = config.n_critics;
        let device = rlox_nn::train_device(run.device, derive_seed(run.seed, 3))?;
        let plain = device.clone().inner();
        let (arch, act) = (&config.net_arch, config.activation);
        let actor = DeterministicActor::new(obs_dim, act_dim, arch, act, &device);
        let critics = Critics::new(n_critics, obs_dim, act_dim, arch, act, &device);
        Ok(Td3 {
            algo,
            obs_dim,
            act_dim,
            actor_target: actor.valid(),
            policy: actor.valid(),
            critics_target: critics.valid(),
            actor,
            critics,
            actor_opt: config.optimizer.build(),
            critic_opt: config.optimizer.build(),
            noise: ActionNoise::new(config.action_noise, act_dim),
            n_updates: 0,
            device,
            plain,
            config: config.clone(),
        })
    }

    /// The deterministic action `mu(obs)` in `[-1, 1]`.
    pub fn deterministic_action(&self, obs: &[f32]) -> Vec<f32> {
        values(self.policy.forward(matrix(obs.to_vec(), 1, self.obs_dim, &self.plain)))
    }
}

/// TD3's (and DDPG's) state beside its networks: the exploration noise (OU keeps one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Td3State {
    /// Gradient steps taken.
    pub n_updates: u64,
    /// The action noise's state.
    pub noise_state: Vec<f64>,
}

impl OffPolicyAgent for Td3 {
    type State = Td3State;

    fn algo(&self) -> &'static str {
        self.algo
    }

    fn replay_settings(&self) -> ReplaySettings {
        self.config.replay_settings()
    }

    fn learning_rate(&self, _progress: f64) -> f64 {
        self.config.learning_rate
    }

    fn act(&mut self, obs: &[f32], explore: bool, _progress: f64, rng: &mut Rng) -> Vec<f32> {
        let mut a = self.deterministic_action(obs);
        if explore {
            self.noise.perturb(&mut a, rng);
        }
        a
    }

    fn episode_end(&mut self) {
        self.noise.reset();
    }

    fn update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update> {
        let (b, od, ad) = (batch.len(), self.obs_dim, self.act_dim);
        let c = &self.config;
        let update = self.n_updates + 1;

        // TD target, no gradient: r + gamma (1 - done) min_i Q'_i(s', smoothed mu'(s')).
        let next_obs = matrix(batch.next_obs.clone(), b, od, &self.plain);
        let mut next_actions = self.actor_target.forward(next_obs.clone());
        if c.target_policy_noise > 0.0 {
            let noise = smoothing_noise(rng, b * ad, c.target_policy_noise, c.target_noise_clip);
            next_actions = (next_actions + matrix(noise, b, ad, &self.plain)).clamp(-1.0, 1.0);
        }
        let next_q = values(self.critics_target.min(next_obs, next_actions));
        let gamma = c.gamma as f32;
        let y: Vec<f32> = (0..b).map(|i| batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * next_q[i]).collect();
        let y = matrix(y, b, 1, &self.device);

        // Critics: sum of the MSEs, one Adam step.
        let obs = matrix(batch.obs.clone(), b, od, &self.device);
        let actions = matrix(batch.actions.clone(), b, ad, &self.device);
        let critic_loss = self
            .critics
            .forward(obs.clone(), actions)
            .into_iter()
            .map(|q| (q - y.clone()).square().mean())
            .reduce(|a, b| a + b)
            .expect("at least one critic");
        let critic_value = finite(self.algo, "critic loss", critic_loss.clone().into_scalar::<f32>() as f64, update)?;
        let grads = rlox_nn::backward(&critic_loss, &self.critics);
        self.critics = self.critic_opt.step(lr, self.critics.clone(), grads);
        self.n_updates = update;
        let mut stats = vec![("train/critic_loss", critic_value)];

        // Delayed actor and target updates.
        if update.is_multiple_of(c.policy_delay) {
            let actor_loss = self.critics.nets[0].forward(obs.clone(), self.actor.forward(obs)).mean().neg();
            let actor_value = finite(self.algo, "actor loss", actor_loss.clone().into_scalar::<f32>() as f64, update)?;
            let grads = rlox_nn::backward(&actor_loss, &self.actor);
            self.actor = self.actor_opt.step(lr, self.actor.clone(), grads);
            self.actor_target = rlox_nn::polyak_update(self.actor_target.clone(), &self.actor, c.tau);
            self.critics_target = rlox_nn::polyak_update(self.critics_target.clone(), &self.critics, c.tau);
            stats.push(("train/actor_loss", actor_value));
        }
        Ok(Update { metrics: stats, td_errors: None })
    }

    fn refresh_policy(&mut self) {
        self.policy = self.actor.valid();
    }

    fn n_updates(&self) -> u64 {
        self.n_updates
    }

    fn all_finite(&self) -> bool {
        rlox_nn::all_finite(&self.actor) && rlox_nn::all_finite(&self.critics)
    }

    fn save(
        &self,
        w: &CheckpointWriter,
        blobs: &mut Blobs,
        optimizers: &mut BTreeMap<String, OptimizerMeta>,
    ) -> Result<Td3State> {
        checkpoint::save_module(w, "actor", &self.actor)?;
        checkpoint::save_module(w, "actor_target", &self.actor_target)?;
        checkpoint::save_module(w, "critic", &self.critics)?;
        checkpoint::save_module(w, "critic_target", &self.critics_target)?;
        optimizers
            .insert("actor_opt".into(), checkpoint::save_optimizer(&self.actor_opt, &self.actor, "actor_opt", blobs)?);
        optimizers.insert(
            "critic_opt".into(),
            checkpoint::save_optimizer(&self.critic_opt, &self.critics, "critic_opt", blobs)?,
        );
        Ok(Td3State { n_updates: self.n_updates, noise_state: self.noise.state.clone() })
    }

    fn load(
        &mut self,
        dir: &Path,
        blobs: &Blobs,
        optimizers: &BTreeMap<String, OptimizerMeta>,
        state: Td3State,
    ) -> Result<()> {
        self.actor = checkpoint::load_module(dir, "actor", self.actor.clone())?;
        self.actor_target = checkpoint::load_module(dir, "actor_target", self.actor_target.clone())?;
        self.critics = checkpoint::load_module(dir, "critic", self.critics.clone())?;
        self.critics_target = checkpoint::load_module(dir, "critic_target", self.critics_target.clone())?;
        let meta = |name: &str| {
            optimizers.get(name).ok_or_else(|| Error::checkpoint(dir, format!("no `{name}` optimizer state")))
        };
        checkpoint::load_optimizer(&mut self.actor_opt, &self.actor, "actor_opt", blobs, meta("actor_opt")?, dir)?;
        checkpoint::load_optimizer(&mut self.critic_opt, &self.critics, "critic_opt", blobs, meta("critic_opt")?, dir)?;
        if state.noise_state.len() != self.noise.state.len() {
            return Err(Error::checkpoint(dir, "the noise state has another action dimension"));
        }
        self.n_updates = state.n_updates;
        self.noise.state = state.noise_state;
        Ok(())
    }
}

/// A finite loss, or the divergence error naming the algorithm, the loss and the gradient step.
pub(crate) fn finite(algo: &str, what: &str, value: f64, update: u64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::diverged(algo, what, value, "gradient step", update))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;

    #[test]
    fn defaults_are_the_zoo_pendulum_settings() {
        let c = Td3Config::default();
        assert_eq!((c.buffer_size, c.learning_starts, c.gamma, c.n_critics), (200_000, 10_000, 0.98, 2));
        assert_eq!((c.learning_rate, c.train_freq, c.gradient_steps, c.net_arch.clone()), (1e-3, 1, 1, vec![400, 300]));
        assert_eq!((c.policy_delay, c.target_policy_noise, c.target_noise_clip), (2, 0.2, 0.5));
        assert_eq!(c.action_noise, NoiseConfig::Normal { sigma: 0.1 });
        c.validate_as("td3").unwrap();
        let bad = Td3Config { policy_delay: 0, ..Default::default() };
        assert!(bad.validate_as("td3").unwrap_err().to_string().contains("td3.policy_delay"));
        let text = rlox_core::config::to_toml_string(&c).unwrap();
        let back: Td3Config = rlox_core::config::from_toml_str(&text, std::path::Path::new("td3.toml")).unwrap();
        assert_eq!(back, c);
    }

    /// 100000 draws with std 0.2 and clip 0.5: none beyond 0.5, and the clip is reached
    /// (P(|N(0, 0.2^2)| > 0.5) = 1.2%, so about 1200 draws sit exactly at ±0.5).
    #[test]
    fn target_smoothing_noise_is_clipped() {
        let n = smoothing_noise(&mut rng_from_seed(3), 100_000, 0.2, 0.5);
        assert!(n.iter().all(|x| x.abs() <= 0.5));
        let at_clip = n.iter().filter(|x| x.abs() == 0.5).count();
        assert!((900..1500).contains(&at_clip), "{at_clip}");
        // Unclipped part keeps the spread: the standard deviation is a bit below 0.2.
        let sd = (n.iter().map(|x| (x * x) as f64).sum::<f64>() / n.len() as f64).sqrt();
        assert!((0.19..0.2).contains(&sd), "{sd}");
    }

    #[test]
    fn one_update_moves_critics_every_step_and_actor_every_second() {
        let config = Td3Config { net_arch: vec![16, 16], ..Default::default() };
        let mut td3 = Td3::new(3, 1, &config, &RunSettings::default()).unwrap();
        let mut replay = crate::replay::ReplayBuffer::new(64, 3, 1).unwrap();
        let mut rng = rng_from_seed(1);
        for k in 0..64 {
            let o = [k as f32 / 64.0, 0.5, -0.5];
            replay.push(&o, &[0.1], -1.0, &o, false);
        }
        let mut batch = Batch::default();
        replay.sample_into(32, &mut rng, 0.0, &mut batch);
        let before = td3.deterministic_action(&[0.1, 0.2, 0.3]);
        let s1 = td3.update(&batch, 1e-3, &mut rng).unwrap().metrics;
        td3.refresh_policy();
        assert_eq!(s1.len(), 1, "no actor update at step 1");
        assert_eq!(td3.deterministic_action(&[0.1, 0.2, 0.3]), before);
        let s2 = td3.update(&batch, 1e-3, &mut rng).unwrap().metrics;
        td3.refresh_policy();
        assert_eq!(s2.iter().map(|x| x.0).collect::<Vec<_>>(), vec!["train/critic_loss", "train/actor_loss"]);
        assert_ne!(td3.deterministic_action(&[0.1, 0.2, 0.3]), before);
    }
}
