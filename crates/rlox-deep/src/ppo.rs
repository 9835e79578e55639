//! Proximal Policy Optimization (Schulman et al. 2017), clipped objective.
//!
//! The file reads top to bottom: the config (defaults: rl-baselines3-zoo's `CartPole-v1` entry of
//! `hyperparams/ppo.yml`, marked *zoo*, on top of Stable-Baselines3's PPO defaults, marked *SB3*),
//! the learner ([`Ppo`]: one update from a rollout, checkpoints), and the training loop
//! ([`Ppo::learn`]). One iteration, as in SB3:
//!
//! 1. collect `n_steps` calls of `n_envs` envs with the current stochastic policy into a
//!    [`RolloutBuffer`] (autoreset calls are marked and skipped, see [`crate::gae`]);
//! 2. GAE(`gamma`, `gae_lambda`) advantages and returns, truncations bootstrapped from the final observation;
//! 3. `n_epochs` passes over the rollout in shuffled minibatches of `batch_size`; per minibatch:
//!    advantages normalised (if `normalize_advantage`), loss
//!    `-min(A r, A clip(r, 1 - eps, 1 + eps)) + ent_coef * (-H) + vf_coef * (R - V)^2`
//!    with `r = exp(log pi - log pi_old)` and `V` optionally clipped around the old value
//!    (`clip_range_vf`); gradients clipped to a global norm of `max_grad_norm`; one Adam step.
//!    With `target_kl`, the epochs stop once a minibatch's approximate KL exceeds `1.5 * target_kl`;
//! 4. learning rate and clip range follow linear schedules to `*_end` over training (*zoo*: `lin_`).
//!
//! Metrics use SB3's names (`rollout/ep_rew_mean`, `train/policy_gradient_loss`, `train/value_loss`,
//! `train/entropy_loss`, `train/approx_kl`, `train/clip_fraction`, `train/explained_variance`,
//! `train/learning_rate`, `time/fps`, ...). A non-finite loss or gradient norm stops the run with an
//! error naming the update; the last checkpoint on disk is the last good one.

use crate::gae::{explained_variance, RolloutBuffer};
use crate::policies::{ActionKind, ActorCritic, PolicyAction, PolicyConfig};
use crate::resume::{self, SeededRng, TrainerState};
use crate::rollout::{collect_rollout, evaluate, log_rollout, EpisodeStats, OnPolicySummary, Resumable};
use rand::seq::SliceRandom;
use rlox_core::logger::Logger;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};
use rlox_nn::burn::module::Module;
use rlox_nn::burn::optim::{AdamConfig, ModuleOptimizer};
use rlox_nn::{Device, DeviceKind, Schedule, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// PPO hyper-parameters (see the module docs for the sources of the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Transitions to train for. *zoo*: 1e5.
    pub total_timesteps: u64,
    /// Parallel envs. *zoo*: 8.
    pub n_envs: usize,
    /// Steps per env per rollout. *zoo*: 32.
    pub n_steps: usize,
    /// Minibatch size. *zoo*: 256.
    pub batch_size: usize,
    /// Passes over each rollout. *zoo*: 20.
    pub n_epochs: usize,
    /// Discount. *zoo*: 0.98.
    pub gamma: f64,
    /// GAE lambda. *zoo*: 0.8.
    pub gae_lambda: f64,
    /// Initial learning rate. *zoo*: `lin_0.001`.
    pub learning_rate: f64,
    /// Final learning rate of a linear schedule; `None`: constant. *zoo*: 0 (linear).
    pub learning_rate_end: Option<f64>,
    /// Initial clip range. *zoo*: `lin_0.2`.
    pub clip_range: f64,
    /// Final clip range of a linear schedule; `None`: constant. *zoo*: 0 (linear).
    pub clip_range_end: Option<f64>,
    /// Clip the value prediction to `old_value +- clip_range_vf`; `None`: no clipping. *SB3*: None.
    pub clip_range_vf: Option<f64>,
    /// Normalise advantages per minibatch. *SB3*: true.
    pub normalize_advantage: bool,
    /// Entropy bonus coefficient. *zoo*: 0.
    pub ent_coef: f64,
    /// Value loss coefficient. *SB3*: 0.5.
    pub vf_coef: f64,
    /// Global gradient-norm clip. *SB3*: 0.5.
    pub max_grad_norm: f64,
    /// Stop an update's epochs once the approximate KL exceeds `1.5 * target_kl`. *SB3*: None.
    pub target_kl: Option<f64>,
    /// The actor-critic. *SB3*: separate 64x64 tanh networks, orthogonal initialisation.
    pub policy: PolicyConfig,
    /// Adam's epsilon. *SB3*: 1e-5 for PPO/A2C policies (PyTorch's default is 1e-8).
    pub adam_eps: f64,
    /// Seed of everything: envs, action sampling, minibatch order, initialisation.
    pub seed: u64,
    /// Evaluate every this many updates (0: only at the end).
    pub eval_every_updates: u64,
    /// Deterministic episodes per evaluation, periodic and final (run in parallel, one per env of
    /// the evaluation batch).
    pub eval_episodes: usize,
    /// Checkpoint every this many updates (0: only at the end), into `checkpoint_dir`.
    pub checkpoint_every_updates: u64,
    /// Where checkpoints go (None: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Test hook: return after this many updates, as if killed right after that update's checkpoint.
    pub stop_after_updates: Option<u64>,
    /// Compute device.
    pub device: DeviceKind,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            total_timesteps: 100_000,
            n_envs: 8,
            n_steps: 32,
            batch_size: 256,
            n_epochs: 20,
            gamma: 0.98,
            gae_lambda: 0.8,
            learning_rate: 1e-3,
            learning_rate_end: Some(0.0),
            clip_range: 0.2,
            clip_range_end: Some(0.0),
            clip_range_vf: None,
            normalize_advantage: true,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: None,
            policy: PolicyConfig::default(),
            adam_eps: 1e-5,
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

impl PpoConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("ppo.{what}"), why)) };
        check(self.total_timesteps > 0, "total_timesteps", "must be > 0")?;
        check(self.n_envs > 0, "n_envs", "must be > 0")?;
        check(self.n_steps > 0, "n_steps", "must be > 0")?;
        check(self.batch_size > 1, "batch_size", "must be > 1")?;
        check(self.n_epochs > 0, "n_epochs", "must be > 0")?;
        check((0.0..=1.0).contains(&self.gamma), "gamma", "must be in [0, 1]")?;
        check((0.0..=1.0).contains(&self.gae_lambda), "gae_lambda", "must be in [0, 1]")?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            "must be a positive number",
        )?;
        check(self.clip_range > 0.0, "clip_range", "must be > 0")?;
        check(self.clip_range_vf.is_none_or(|c| c > 0.0), "clip_range_vf", "must be > 0")?;
        check(self.max_grad_norm > 0.0, "max_grad_norm", "must be > 0")?;
        check(self.target_kl.is_none_or(|k| k > 0.0), "target_kl", "must be > 0")?;
        check(self.adam_eps > 0.0, "adam_eps", "must be > 0")?;
        check(self.eval_episodes > 0, "eval_episodes", "must be > 0")?;
        self.policy.validate("ppo.policy")
    }

    fn lr_schedule(&self) -> Schedule {
        match self.learning_rate_end {
            Some(end) => Schedule::linear(self.learning_rate, end),
            None => Schedule::constant(self.learning_rate),
        }
    }

    fn clip_schedule(&self) -> Schedule {
        match self.clip_range_end {
            Some(end) => Schedule::linear(self.clip_range, end),
            None => Schedule::constant(self.clip_range),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The learner
// ---------------------------------------------------------------------------------------------

/// Averages over one update's minibatches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    /// Clipped surrogate loss (`train/policy_gradient_loss`).
    pub policy_gradient_loss: f64,
    /// Value loss (`train/value_loss`).
    pub value_loss: f64,
    /// Minus the mean entropy (`train/entropy_loss`).
    pub entropy_loss: f64,
    /// `mean((r - 1) - log r)` (`train/approx_kl`).
    pub approx_kl: f64,
    /// Fraction of ratios outside the clip range (`train/clip_fraction`).
    pub clip_fraction: f64,
    /// Total loss of the last minibatch (`train/loss`).
    pub loss: f64,
    /// Mean global gradient norm before clipping.
    pub grad_norm: f64,
    /// Gradient steps taken.
    pub gradient_steps: u64,
}

/// A PPO agent: the actor-critic, its optimizer and the counters.
pub struct Ppo {
    config: PpoConfig,
    obs_dim: usize,
    kind: ActionKind,
    device: Device,
    plain: Device,
    model: ActorCritic,
    optimizer: ModuleOptimizer,
    n_updates: u64,
    gradient_steps: u64,
}

/// Adam with PyTorch's betas and the given epsilon (burn's implementation: its state can be checkpointed).
pub(crate) fn adam(eps: f64) -> ModuleOptimizer {
    AdamConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(eps as f32).init()
}

/// Minibatch tensors gathered from the rollout on the host.
fn gather(src: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * width);
    for &k in idx {
        out.extend_from_slice(&src[k * width..(k + 1) * width]);
    }
    out
}

impl Ppo {
    /// A fresh agent for `obs_dim`-dimensional observations and actions of `kind`.
    pub fn new(obs_dim: usize, kind: ActionKind, config: &PpoConfig) -> Result<Self> {
        config.validate()?;
        if obs_dim == 0 {
            return Err(Error::invalid("ppo", "obs_dim must be > 0"));
        }
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 3))?;
        let plain = device.clone().inner();
        let model =
            ActorCritic::new(obs_dim, &kind, &config.policy, &device, &mut rng_from_seed(derive_seed(config.seed, 3)));
        Ok(Ppo {
            config: config.clone(),
            obs_dim,
            kind,
            device,
            plain,
            model,
            optimizer: adam(config.adam_eps),
            n_updates: 0,
            gradient_steps: 0,
        })
    }

    /// The actor-critic.
    pub fn model(&self) -> &ActorCritic {
        &self.model
    }

    /// The autodiff device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The config.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// Updates done.
    pub fn n_updates(&self) -> u64 {
        self.n_updates
    }

    /// The PPO loss of a minibatch (total, policy-gradient, value, entropy terms, and the log-ratios).
    /// `adv` must already be normalised if wanted.
    #[allow(clippy::too_many_arguments)]
    pub fn loss(
        &self,
        obs: Vec<f32>,
        actions: &[f32],
        old_log_probs: Vec<f32>,
        adv: Vec<f32>,
        returns: Vec<f32>,
        old_values: Vec<f32>,
        clip: f64,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
        let b = adv.len();
        let d = &self.device;
        let obs = Tensor::<2>::from_data(TensorData::new(obs, [b, self.obs_dim]), d);
        let (dist, values) = self.model.forward(obs);
        let log_prob = dist.log_prob(actions);
        let entropy = dist.entropy();
        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), d);
        let (old_lp, adv, ret, old_v) = (t1(old_log_probs), t1(adv), t1(returns), t1(old_values));
        let log_ratio = log_prob - old_lp;
        let ratio = log_ratio.clone().exp();
        let clip = clip as f32;
        let surr1 = adv.clone() * ratio.clone();
        let surr2 = adv * ratio.clamp(1.0 - clip, 1.0 + clip);
        let pg_loss = surr1.min_pair(surr2).mean().neg();
        let values = match self.config.clip_range_vf {
            Some(c) => old_v.clone() + (values - old_v).clamp(-c as f32, c as f32),
            None => values,
        };
        let value_loss = (ret - values).square().mean();
        let entropy_loss = entropy.mean().neg();
        let total = pg_loss.clone()
            + entropy_loss.clone().mul_scalar(self.config.ent_coef as f32)
            + value_loss.clone().mul_scalar(self.config.vf_coef as f32);
        (total, pg_loss, value_loss, entropy_loss, log_ratio.detach())
    }

    /// Train on a rollout whose advantages are computed (step 3 of the module docs).
    pub fn update(&mut self, buf: &RolloutBuffer, rng: &mut SeededRng, lr: f64, clip: f64) -> Result<UpdateStats> {
        let c = self.config.clone();
        let mut idx = buf.valid_indices();
        let ad = buf.action_dim;
        let mut s = UpdateStats::default();
        let mut n_mb = 0u64;
        let mut kl_sum = 0.0;
        let mut clip_sum = 0.0;
        'epochs: for _ in 0..c.n_epochs {
            idx.shuffle(&mut rng.rng);
            for mb in idx.chunks(c.batch_size) {
                let mut adv: Vec<f32> = mb.iter().map(|&k| buf.advantages[k]).collect();
                if c.normalize_advantage && adv.len() > 1 {
                    let n = adv.len() as f64;
                    let mean = adv.iter().map(|&a| a as f64).sum::<f64>() / n;
                    // torch.std is the unbiased estimate.
                    let var = adv.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    let std = var.sqrt();
                    adv.iter_mut().for_each(|a| *a = ((*a as f64 - mean) / (std + 1e-8)) as f32);
                }
                let (total, pg, vl, el, log_ratio) = self.loss(
                    gather(&buf.obs, buf.obs_dim, mb),
                    &gather(&buf.actions, ad, mb),
                    mb.iter().map(|&k| buf.log_probs[k]).collect(),
                    adv,
                    mb.iter().map(|&k| buf.returns[k]).collect(),
                    mb.iter().map(|&k| buf.values[k]).collect(),
                    clip,
                );
                let total_v = total.clone().into_scalar::<f32>() as f64;
                let update = self.n_updates + 1;
                if !total_v.is_finite() {
                    return Err(Error::invalid(
                        "ppo",
                        format!("the loss became {total_v} at update {update} (gradient step {}); lower learning_rate or check the env's rewards and observations", self.gradient_steps + 1),
                    ));
                }
                let lr_host: Vec<f32> = log_ratio.into_data().try_into_vec_as::<f32>().expect("f32");
                let (mut kl, mut clipped) = (0.0f64, 0usize);
                for &l in &lr_host {
                    let r = (l as f64).exp();
                    kl += (r - 1.0) - l as f64;
                    if (r - 1.0).abs() > clip {
                        clipped += 1;
                    }
                }
                let kl = kl / lr_host.len() as f64;
                s.policy_gradient_loss += pg.into_scalar::<f32>() as f64;
                s.value_loss += vl.into_scalar::<f32>() as f64;
                s.entropy_loss += el.into_scalar::<f32>() as f64;
                kl_sum += kl;
                clip_sum += clipped as f64 / lr_host.len() as f64;
                s.loss = total_v;
                n_mb += 1;
                if c.target_kl.is_some_and(|t| kl > 1.5 * t) {
                    break 'epochs;
                }
                let mut grads = rlox_nn::backward(&total, &self.model);
                let norm = rlox_nn::clip_grad_norm(&self.model, &mut grads, c.max_grad_norm);
                if !norm.is_finite() {
                    return Err(Error::invalid(
                        "ppo",
                        format!(
                            "the gradient norm became {norm} at update {update} (gradient step {})",
                            self.gradient_steps + 1
                        ),
                    ));
                }
                s.grad_norm += norm;
                self.model = self.optimizer.step(lr, self.model.clone(), grads);
                self.gradient_steps += 1;
                s.gradient_steps += 1;
            }
        }
        let n = n_mb.max(1) as f64;
        s.policy_gradient_loss /= n;
        s.value_loss /= n;
        s.entropy_loss /= n;
        s.approx_kl = kl_sum / n;
        s.clip_fraction = clip_sum / n;
        s.grad_norm /= s.gradient_steps.max(1) as f64;
        self.n_updates += 1;
        Ok(s)
    }

    /// Deterministic evaluation on `envs` (one episode per env).
    pub fn evaluate<W>(&self, envs: &mut W, seed: u64) -> Result<(f64, f64)>
    where
        W: VecEnv,
        W::Action: PolicyAction,
    {
        evaluate(&self.model.valid(), &self.plain, &self.kind, envs, seed, 1_000_000)
    }

    fn trainer_state(
        &self,
        stats: &EpisodeStats,
        env_state: Option<crate::rollout::VecEnvState>,
        rngs: &[&SeededRng],
    ) -> TrainerState {
        TrainerState {
            algorithm: "ppo".into(),
            n_updates: self.n_updates,
            gradient_steps: self.gradient_steps,
            stats: stats.clone(),
            env_state,
            rngs: rngs.iter().map(|r| r.state()).collect(),
            param_ids: BTreeMap::new(),
            policy_file: String::new(),
            optimizer_file: String::new(),
            config: serde_json::to_value(&self.config).unwrap_or_default(),
        }
    }

    fn save(&self, dir: &Path, state: TrainerState) -> Result<PathBuf> {
        let meta = BTreeMap::from([
            ("algorithm".to_string(), "ppo".to_string()),
            ("n_updates".to_string(), self.n_updates.to_string()),
            ("env_steps".to_string(), state.stats.env_steps.to_string()),
            ("obs_dim".to_string(), self.obs_dim.to_string()),
        ]);
        resume::save(dir, &self.model, &self.optimizer, state, meta)
    }

    // -----------------------------------------------------------------------------------------
    // The training loop
    // -----------------------------------------------------------------------------------------

    /// Train on `envs` (`config.n_envs` of them) until `config.total_timesteps` transitions; `eval_envs`
    /// (one per evaluation episode) serve the evaluations. With `resume_from`, continue the run whose
    /// checkpoint is in that directory (same config) exactly where it stopped.
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
                "ppo.n_envs",
                format!("{} but the env batch has {}", c.n_envs, envs.num_envs()),
            ));
        }
        let start = Instant::now();
        let mut buf = RolloutBuffer::new(c.n_envs, c.n_steps, self.obs_dim, self.kind.action_dim());
        let (mut stats, mut rng_act, mut rng_mb) = match resume_from {
            Some(dir) => {
                let fresh = ActorCritic::new(self.obs_dim, &self.kind, &c.policy, &self.device, &mut rng_from_seed(0));
                let (model, optimizer, st) = resume::load(dir, fresh, adam(c.adam_eps))?;
                if st.algorithm != "ppo" || st.rngs.len() != 2 {
                    return Err(Error::invalid(
                        "resume",
                        format!("{} holds a {} checkpoint, not ppo", dir.display(), st.algorithm),
                    ));
                }
                self.model = model;
                self.optimizer = optimizer;
                self.n_updates = st.n_updates;
                self.gradient_steps = st.gradient_steps;
                let env_state =
                    st.env_state.as_ref().ok_or_else(|| Error::invalid("resume", "the checkpoint has no env state"))?;
                envs.load_state(env_state)?;
                (st.stats.clone(), SeededRng::from_state(&st.rngs[0])?, SeededRng::from_state(&st.rngs[1])?)
            }
            None => {
                envs.reset(Some(c.seed))?;
                (
                    EpisodeStats::new(c.n_envs),
                    SeededRng::new(derive_seed(c.seed, 1)),
                    SeededRng::new(derive_seed(c.seed, 2)),
                )
            }
        };
        let steps_at_start = stats.env_steps;
        let (lr_schedule, clip_schedule) = (c.lr_schedule(), c.clip_schedule());

        while stats.env_steps < c.total_timesteps {
            // 1. Rollout with a no-autodiff snapshot of the policy.
            let policy = self.model.valid();
            let last_values =
                collect_rollout(&policy, &self.plain, &self.kind, envs, &mut buf, &mut stats, &mut rng_act.rng)?;
            // 2. Advantages.
            buf.compute_gae(&last_values, c.gamma as f32, c.gae_lambda as f32);
            // 3. Update (SB3 sets the schedules from the progress after the rollout).
            let progress = stats.env_steps as f64 / c.total_timesteps as f64;
            let (lr, clip) = (lr_schedule.value(progress), clip_schedule.value(progress));
            let u = self.update(&buf, &mut rng_mb, lr, clip).map_err(|e| match &c.checkpoint_dir {
                Some(dir) => {
                    Error::invalid("ppo", format!("{e}; the last good checkpoint is kept in {}", dir.display()))
                }
                None => e,
            })?;
            let valid = buf.valid_indices();
            let (v, r): (Vec<f32>, Vec<f32>) = valid.iter().map(|&k| (buf.values[k], buf.returns[k])).unzip();
            let secs = start.elapsed().as_secs_f64();
            log_rollout(logger, &stats)?;
            let mut metrics = vec![
                ("train/policy_gradient_loss", u.policy_gradient_loss),
                ("train/value_loss", u.value_loss),
                ("train/entropy_loss", u.entropy_loss),
                ("train/approx_kl", u.approx_kl),
                ("train/clip_fraction", u.clip_fraction),
                ("train/clip_range", clip),
                ("train/explained_variance", explained_variance(&v, &r)),
                ("train/learning_rate", lr),
                ("train/loss", u.loss),
                ("train/grad_norm", u.grad_norm),
                ("train/n_updates", self.gradient_steps as f64),
                ("time/fps", (stats.env_steps - steps_at_start) as f64 / secs.max(1e-9)),
            ];
            if let Some(ls) = &self.model.log_std {
                let ls: Vec<f32> = ls.val().into_data().try_into_vec_as::<f32>().expect("f32");
                metrics.push(("train/std", ls.iter().map(|l| l.exp() as f64).sum::<f64>() / ls.len() as f64));
            }
            logger.log(stats.env_steps, &metrics)?;

            // 4. Evaluation and checkpoints (between rollouts: resuming from here is exact).
            if c.eval_every_updates > 0 && self.n_updates.is_multiple_of(c.eval_every_updates) {
                let (mean, std) = self.evaluate(eval_envs, eval_seed(c.seed, self.n_updates))?;
                logger.log(stats.env_steps, &[("eval/mean_reward", mean), ("eval/std_reward", std)])?;
            }
            if let Some(dir) = &c.checkpoint_dir {
                let due = c.checkpoint_every_updates > 0 && self.n_updates.is_multiple_of(c.checkpoint_every_updates);
                if due || stats.env_steps >= c.total_timesteps {
                    let state = self.trainer_state(&stats, Some(envs.save_state()), &[&rng_act, &rng_mb]);
                    self.save(dir, state)?;
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
        let steps = stats.env_steps - steps_at_start;
        Ok(OnPolicySummary {
            eval_return_mean: mean,
            eval_return_std: std,
            env_steps: stats.env_steps,
            steps_per_second: steps as f64 / wall_seconds.max(1e-9),
            wall_seconds,
            episodes: stats.episodes,
            n_updates: self.n_updates,
            gradient_steps: self.gradient_steps,
        })
    }
}

/// The seed of evaluation `round` (the final one is `u64::MAX`).
pub(crate) fn eval_seed(seed: u64, round: u64) -> u64 {
    derive_seed(seed, 1_000_000u64.wrapping_add(round))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_zoo_cartpole_settings() {
        let c = PpoConfig::default();
        assert_eq!((c.n_envs, c.n_steps, c.batch_size, c.n_epochs), (8, 32, 256, 20));
        assert_eq!((c.gamma, c.gae_lambda, c.learning_rate, c.clip_range, c.ent_coef), (0.98, 0.8, 1e-3, 0.2, 0.0));
        assert_eq!((c.learning_rate_end, c.clip_range_end, c.total_timesteps), (Some(0.0), Some(0.0), 100_000));
        assert_eq!((c.vf_coef, c.max_grad_norm, c.policy.net_arch.clone()), (0.5, 0.5, vec![64, 64]));
        c.validate().unwrap();
    }

    #[test]
    fn toml_round_trip_and_bad_values() {
        let c = PpoConfig { target_kl: Some(0.02), clip_range_vf: Some(0.3), ..Default::default() };
        let text = rlox_core::config::to_toml_string(&c).unwrap();
        let back: PpoConfig = rlox_core::config::from_toml_str(&text, Path::new("ppo.toml")).unwrap();
        assert_eq!(back, c);
        let err = rlox_core::config::from_toml_str::<PpoConfig>("n_step = 3\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("n_step"), "{err}");
        let bad = PpoConfig { gae_lambda: 1.5, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("ppo.gae_lambda"));
    }

    #[test]
    fn every_parameter_gets_a_gradient_from_the_ppo_loss() {
        for kind in [ActionKind::Discrete(2), ActionKind::Continuous { low: vec![-2.0], high: vec![2.0] }] {
            let config = PpoConfig { ent_coef: 0.01, clip_range_vf: Some(0.2), ..Default::default() };
            let ppo = Ppo::new(4, kind.clone(), &config).unwrap();
            let b = 16;
            let obs: Vec<f32> = (0..b * 4).map(|i| ((i * 7) as f32 * 0.13).sin()).collect();
            let actions: Vec<f32> =
                (0..b).map(|i| if kind.is_discrete() { (i % 2) as f32 } else { 0.3 * i as f32 - 2.0 }).collect();
            let adv: Vec<f32> = (0..b).map(|i| i as f32 - 7.5).collect();
            let (loss, ..) = ppo.loss(obs, &actions, vec![-0.7; b], adv, vec![1.0; b], vec![0.0; b], 0.2);
            rlox_nn::testing::assert_all_params_get_grad(ppo.model(), &loss);
        }
    }
}
