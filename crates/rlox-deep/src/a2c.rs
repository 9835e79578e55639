//! Advantage Actor-Critic (A2C, the synchronous variant of Mnih et al. 2016's A3C).
//!
//! Defaults: rl-baselines3-zoo's `CartPole-v1` entry of `hyperparams/a2c.yml` (*zoo*: 8 envs,
//! `ent_coef` 0, 5e5 steps) on top of Stable-Baselines3's A2C defaults (*SB3*). One iteration:
//!
//! 1. collect `n_steps` calls of `n_envs` envs (autoreset calls skipped, see [`crate::gae`]);
//! 2. advantages by GAE with `gae_lambda = 1` (*SB3*), which is the n-step return bootstrapped
//!    from `V` after the last step (and from the final observation on a truncation) minus `V(s)`;
//! 3. one gradient step on the whole rollout:
//!    `-mean(A log pi(a|s)) + ent_coef * (-mean H) + vf_coef * mean((R - V)^2)`, gradients
//!    clipped to a global norm of `max_grad_norm`, then **RMSprop** (alpha 0.99, eps 1e-5, PyTorch's
//!    form: eps outside the square root, no momentum), SB3's default, through burn's `RmsProp`;
//!    `use_rms_prop = false` switches to Adam (eps 1e-5) as SB3 does.
//!
//! Checkpoints and exact resume work as in [`crate::ppo`] (between rollouts, see [`crate::resume`]).

use crate::gae::{explained_variance, RolloutBuffer};
use crate::policies::{ActionKind, ActorCritic, PolicyAction, PolicyConfig};
use crate::ppo::{adam, eval_seed};
use crate::resume::{self, SeededRng, TrainerState};
use crate::rollout::{collect_rollout, evaluate, log_rollout, EpisodeStats, OnPolicySummary, Resumable};
use rlox_core::logger::Logger;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};
use rlox_nn::burn::module::Module;
use rlox_nn::burn::optim::{ModuleOptimizer, RmsPropConfig};
use rlox_nn::{Device, DeviceKind, Schedule, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A2C hyper-parameters (see the module docs for the sources of the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2cConfig {
    /// Transitions to train for. *zoo*: 5e5.
    pub total_timesteps: u64,
    /// Parallel envs. *zoo*: 8.
    pub n_envs: usize,
    /// Steps per env per rollout. *SB3*: 5.
    pub n_steps: usize,
    /// Discount. *SB3*: 0.99.
    pub gamma: f64,
    /// GAE lambda. *SB3*: 1 (n-step returns).
    pub gae_lambda: f64,
    /// Learning rate. *SB3*: 7e-4.
    pub learning_rate: f64,
    /// Final learning rate of a linear schedule; `None`: constant. *SB3*: constant.
    pub learning_rate_end: Option<f64>,
    /// Entropy bonus coefficient. *zoo*: 0.
    pub ent_coef: f64,
    /// Value loss coefficient. *SB3*: 0.5.
    pub vf_coef: f64,
    /// Global gradient-norm clip. *SB3*: 0.5.
    pub max_grad_norm: f64,
    /// Normalise the advantages of each rollout. *SB3*: false.
    pub normalize_advantage: bool,
    /// RMSprop (alpha 0.99, eps `rms_prop_eps`) instead of Adam. *SB3*: true.
    pub use_rms_prop: bool,
    /// RMSprop's (and the Adam fallback's) epsilon. *SB3*: 1e-5.
    pub rms_prop_eps: f64,
    /// The actor-critic. *SB3*: separate 64x64 tanh networks, orthogonal initialisation.
    pub policy: PolicyConfig,
    /// Seed of everything.
    pub seed: u64,
    /// Evaluate every this many updates (0: only at the end).
    pub eval_every_updates: u64,
    /// Deterministic episodes per evaluation, periodic and final (one per env of the evaluation batch).
    pub eval_episodes: usize,
    /// Checkpoint every this many updates (0: only at the end), into `checkpoint_dir`.
    pub checkpoint_every_updates: u64,
    /// Where checkpoints go (None: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Test hook: return after this many updates.
    pub stop_after_updates: Option<u64>,
    /// Compute device.
    pub device: DeviceKind,
}

impl Default for A2cConfig {
    fn default() -> Self {
        A2cConfig {
            total_timesteps: 500_000,
            n_envs: 8,
            n_steps: 5,
            gamma: 0.99,
            gae_lambda: 1.0,
            learning_rate: 7e-4,
            learning_rate_end: None,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            normalize_advantage: false,
            use_rms_prop: true,
            rms_prop_eps: 1e-5,
            policy: PolicyConfig::default(),
            seed: 0,
            eval_every_updates: 0,
            eval_episodes: 10,
            checkpoint_every_updates: 0,
            checkpoint_dir: None,
            stop_after_updates: None,
            device: DeviceKind::Cpu,
        }
    }
}

impl A2cConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("a2c.{what}"), why)) };
        check(self.total_timesteps > 0, "total_timesteps", "must be > 0")?;
        check(self.n_envs > 0, "n_envs", "must be > 0")?;
        check(self.n_steps > 0, "n_steps", "must be > 0")?;
        check((0.0..=1.0).contains(&self.gamma), "gamma", "must be in [0, 1]")?;
        check((0.0..=1.0).contains(&self.gae_lambda), "gae_lambda", "must be in [0, 1]")?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            "must be a positive number",
        )?;
        check(self.max_grad_norm > 0.0, "max_grad_norm", "must be > 0")?;
        check(self.rms_prop_eps > 0.0, "rms_prop_eps", "must be > 0")?;
        check(self.eval_episodes > 0, "eval_episodes", "must be > 0")?;
        self.policy.validate("a2c.policy")
    }

    fn build_optimizer(&self) -> ModuleOptimizer {
        if self.use_rms_prop {
            RmsPropConfig::new().with_alpha(0.99).with_epsilon(self.rms_prop_eps as f32).with_momentum(0.0).init()
        } else {
            adam(self.rms_prop_eps)
        }
    }
}

/// Losses of one update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct A2cStats {
    /// `-mean(A log pi)` (`train/policy_loss`).
    pub policy_loss: f64,
    /// `mean((R - V)^2)` (`train/value_loss`).
    pub value_loss: f64,
    /// `-mean(H)` (`train/entropy_loss`).
    pub entropy_loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// An A2C agent.
pub struct A2c {
    config: A2cConfig,
    obs_dim: usize,
    kind: ActionKind,
    device: Device,
    plain: Device,
    model: ActorCritic,
    optimizer: ModuleOptimizer,
    n_updates: u64,
}

impl A2c {
    /// A fresh agent.
    pub fn new(obs_dim: usize, kind: ActionKind, config: &A2cConfig) -> Result<Self> {
        config.validate()?;
        if obs_dim == 0 {
            return Err(Error::invalid("a2c", "obs_dim must be > 0"));
        }
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 3))?;
        let plain = device.clone().inner();
        let model =
            ActorCritic::new(obs_dim, &kind, &config.policy, &device, &mut rng_from_seed(derive_seed(config.seed, 3)));
        Ok(A2c {
            config: config.clone(),
            obs_dim,
            kind,
            device,
            plain,
            model,
            optimizer: config.build_optimizer(),
            n_updates: 0,
        })
    }

    /// The actor-critic.
    pub fn model(&self) -> &ActorCritic {
        &self.model
    }

    /// The A2C loss over the valid slots of `buf` (total and its three terms).
    pub fn loss(&self, buf: &RolloutBuffer) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
        let idx = buf.valid_indices();
        let b = idx.len();
        let d = &self.device;
        let pick = |src: &[f32], w: usize| -> Vec<f32> {
            idx.iter().flat_map(|&k| src[k * w..(k + 1) * w].to_vec()).collect()
        };
        let obs = Tensor::<2>::from_data(TensorData::new(pick(&buf.obs, buf.obs_dim), [b, buf.obs_dim]), d);
        let (dist, values) = self.model.forward(obs);
        let log_prob = dist.log_prob(&pick(&buf.actions, buf.action_dim));
        let mut adv = pick(&buf.advantages, 1);
        if self.config.normalize_advantage && b > 1 {
            let n = b as f32;
            let mean = adv.iter().sum::<f32>() / n;
            let std = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (n - 1.0)).sqrt();
            adv.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        let adv = Tensor::<1>::from_data(TensorData::new(adv, [b]), d);
        let ret = Tensor::<1>::from_data(TensorData::new(pick(&buf.returns, 1), [b]), d);
        let policy_loss = (adv * log_prob).mean().neg();
        let value_loss = (ret - values).square().mean();
        let entropy_loss = dist.entropy().mean().neg();
        let total = policy_loss.clone()
            + entropy_loss.clone().mul_scalar(self.config.ent_coef as f32)
            + value_loss.clone().mul_scalar(self.config.vf_coef as f32);
        (total, policy_loss, value_loss, entropy_loss)
    }

    /// One gradient step on a rollout whose advantages are computed.
    pub fn update(&mut self, buf: &RolloutBuffer, lr: f64) -> Result<A2cStats> {
        let (total, pl, vl, el) = self.loss(buf);
        let update = self.n_updates + 1;
        let total_v = total.clone().into_scalar::<f32>() as f64;
        if !total_v.is_finite() {
            return Err(Error::invalid(
                "a2c",
                format!("the loss became {total_v} at update {update}; lower learning_rate"),
            ));
        }
        let mut grads = rlox_nn::backward(&total, &self.model);
        let norm = rlox_nn::clip_grad_norm(&self.model, &mut grads, self.config.max_grad_norm);
        if !norm.is_finite() {
            return Err(Error::invalid("a2c", format!("the gradient norm became {norm} at update {update}")));
        }
        self.model = self.optimizer.step(lr, self.model.clone(), grads);
        self.n_updates += 1;
        Ok(A2cStats {
            policy_loss: pl.into_scalar::<f32>() as f64,
            value_loss: vl.into_scalar::<f32>() as f64,
            entropy_loss: el.into_scalar::<f32>() as f64,
            grad_norm: norm,
        })
    }

    /// Deterministic evaluation (one episode per env of `envs`).
    pub fn evaluate<W>(&self, envs: &mut W, seed: u64) -> Result<(f64, f64)>
    where
        W: VecEnv,
        W::Action: PolicyAction,
    {
        evaluate(&self.model.valid(), &self.plain, &self.kind, envs, seed, 1_000_000)
    }

    /// Train until `config.total_timesteps` transitions (see [`crate::ppo::Ppo::learn`] for the arguments).
    pub fn learn<V, W>(
        &mut self,
        envs: &mut V,
        eval_envs: &mut W,
        logger: &mut dyn Logger,
        resume_from: Option<&Path>,
    ) -> Result<OnPolicySummary>
    where
        V: VecEnv + Resumable,
        V::Action: PolicyAction,
        W: VecEnv<Action = V::Action>,
    {
        let c = self.config.clone();
        if envs.num_envs() != c.n_envs {
            return Err(Error::invalid(
                "a2c.n_envs",
                format!("{} but the env batch has {}", c.n_envs, envs.num_envs()),
            ));
        }
        let start = Instant::now();
        let mut buf = RolloutBuffer::new(c.n_envs, c.n_steps, self.obs_dim, self.kind.action_dim());
        let (mut stats, mut rng_act) = match resume_from {
            Some(dir) => {
                let fresh = ActorCritic::new(self.obs_dim, &self.kind, &c.policy, &self.device, &mut rng_from_seed(0));
                let (model, optimizer, st) = resume::load(dir, fresh, c.build_optimizer())?;
                if st.algorithm != "a2c" || st.rngs.len() != 1 {
                    return Err(Error::invalid(
                        "resume",
                        format!("{} holds a {} checkpoint, not a2c", dir.display(), st.algorithm),
                    ));
                }
                self.model = model;
                self.optimizer = optimizer;
                self.n_updates = st.n_updates;
                let env_state =
                    st.env_state.as_ref().ok_or_else(|| Error::invalid("resume", "the checkpoint has no env state"))?;
                envs.load_state(env_state)?;
                (st.stats.clone(), SeededRng::from_state(&st.rngs[0])?)
            }
            None => {
                envs.reset(Some(c.seed))?;
                (EpisodeStats::new(c.n_envs), SeededRng::new(derive_seed(c.seed, 1)))
            }
        };
        let steps_at_start = stats.env_steps;
        let lr_schedule = match c.learning_rate_end {
            Some(end) => Schedule::linear(c.learning_rate, end),
            None => Schedule::constant(c.learning_rate),
        };
        while stats.env_steps < c.total_timesteps {
            let policy = self.model.valid();
            let last_values =
                collect_rollout(&policy, &self.plain, &self.kind, envs, &mut buf, &mut stats, &mut rng_act.rng)?;
            buf.compute_gae(&last_values, c.gamma as f32, c.gae_lambda as f32);
            if buf.valid.iter().all(|&v| !v) {
                continue;
            }
            let lr = lr_schedule.value(stats.env_steps as f64 / c.total_timesteps as f64);
            let u = self.update(&buf, lr).map_err(|e| match &c.checkpoint_dir {
                Some(dir) => {
                    Error::invalid("a2c", format!("{e}; the last good checkpoint is kept in {}", dir.display()))
                }
                None => e,
            })?;
            // Logging every update would dominate a 5-step rollout: every 100 updates, as SB3's log_interval.
            if self.n_updates.is_multiple_of(100) {
                let valid = buf.valid_indices();
                let (v, r): (Vec<f32>, Vec<f32>) = valid.iter().map(|&k| (buf.values[k], buf.returns[k])).unzip();
                let secs = start.elapsed().as_secs_f64();
                log_rollout(logger, &stats)?;
                logger.log(
                    stats.env_steps,
                    &[
                        ("train/policy_loss", u.policy_loss),
                        ("train/value_loss", u.value_loss),
                        ("train/entropy_loss", u.entropy_loss),
                        ("train/explained_variance", explained_variance(&v, &r)),
                        ("train/learning_rate", lr),
                        ("train/grad_norm", u.grad_norm),
                        ("train/n_updates", self.n_updates as f64),
                        ("time/fps", (stats.env_steps - steps_at_start) as f64 / secs.max(1e-9)),
                    ],
                )?;
            }
            if c.eval_every_updates > 0 && self.n_updates.is_multiple_of(c.eval_every_updates) {
                let (mean, std) = self.evaluate(eval_envs, eval_seed(c.seed, self.n_updates))?;
                logger.log(stats.env_steps, &[("eval/mean_reward", mean), ("eval/std_reward", std)])?;
            }
            if let Some(dir) = &c.checkpoint_dir {
                let due = c.checkpoint_every_updates > 0 && self.n_updates.is_multiple_of(c.checkpoint_every_updates);
                if due || stats.env_steps >= c.total_timesteps {
                    let state = TrainerState {
                        algorithm: "a2c".into(),
                        n_updates: self.n_updates,
                        gradient_steps: self.n_updates,
                        stats: stats.clone(),
                        env_state: Some(envs.save_state()),
                        rngs: vec![rng_act.state()],
                        param_ids: BTreeMap::new(),
                        policy_file: String::new(),
                        optimizer_file: String::new(),
                        config: serde_json::to_value(&c).unwrap_or_default(),
                    };
                    let meta = BTreeMap::from([
                        ("algorithm".to_string(), "a2c".to_string()),
                        ("n_updates".to_string(), self.n_updates.to_string()),
                    ]);
                    resume::save(dir, &self.model, &self.optimizer, state, meta)?;
                }
            }
            if c.stop_after_updates == Some(self.n_updates) {
                break;
            }
        }
        let wall_seconds = start.elapsed().as_secs_f64();
        let (mean, std) = self.evaluate(eval_envs, eval_seed(c.seed, u64::MAX))?;
        logger.log(stats.env_steps, &[("eval/final_mean_reward", mean), ("eval/final_std_reward", std)])?;
        logger.flush()?;
        Ok(OnPolicySummary {
            eval_return_mean: mean,
            eval_return_std: std,
            env_steps: stats.env_steps,
            steps_per_second: (stats.env_steps - steps_at_start) as f64 / wall_seconds.max(1e-9),
            wall_seconds,
            episodes: stats.episodes,
            n_updates: self.n_updates,
            gradient_steps: self.n_updates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sb3_and_zoo() {
        let c = A2cConfig::default();
        assert_eq!((c.n_envs, c.n_steps, c.gamma, c.gae_lambda, c.learning_rate), (8, 5, 0.99, 1.0, 7e-4));
        assert_eq!(
            (c.ent_coef, c.vf_coef, c.max_grad_norm, c.use_rms_prop, c.rms_prop_eps),
            (0.0, 0.5, 0.5, true, 1e-5)
        );
        c.validate().unwrap();
    }

    #[test]
    fn every_parameter_gets_a_gradient_from_the_a2c_loss() {
        let config = A2cConfig { ent_coef: 0.01, ..Default::default() };
        let a2c = A2c::new(3, ActionKind::Discrete(2), &config).unwrap();
        let mut buf = RolloutBuffer::new(2, 3, 3, 1);
        for k in 0..6 {
            buf.valid[k] = true;
            buf.obs[k * 3] = k as f32 * 0.3 - 0.8;
            buf.obs[k * 3 + 1] = (k as f32).sin();
            buf.actions[k] = (k % 2) as f32;
            buf.advantages[k] = k as f32 - 2.5;
            buf.returns[k] = 1.0;
        }
        let (loss, ..) = a2c.loss(&buf);
        rlox_nn::testing::assert_all_params_get_grad(a2c.model(), &loss);
    }
}
