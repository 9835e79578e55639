//! REINFORCE (Williams 1992): Monte-Carlo policy gradient, with or without a learned baseline.
//!
//! Each update plays **one complete episode per env** with the current stochastic policy: the envs
//! are reset together (seed `derive_seed(seed, 10 + update)`), stepped until every env has finished
//! its episode, and each env's steps after its episode ended are dropped (they belong to an episode
//! the policy will not finish). Then, with the discounted return-to-go `G_t`:
//!
//! * without baseline: loss `-mean(G_t log pi(a_t|s_t))`;
//! * with baseline (`baseline = true`): loss `-mean((G_t - V(s_t)) log pi(a_t|s_t)) + vf_coef * mean((G_t - V(s_t))^2)`,
//!   the advantage detached from the value network.
//!
//! No zoo entry exists for REINFORCE; the defaults are this file's choice (marked *rlox*), chosen
//! to match the PPO/A2C networks (64x64 tanh, orthogonal init) with Adam.
//! Because the envs restart at every update, a checkpoint needs no env state and resuming is exact.

use crate::policies::{ActionKind, ActorCritic, PolicyAction, PolicyConfig};
use crate::ppo::{adam, eval_seed};
use crate::resume::{self, SeededRng, TrainerState};
use crate::rollout::{evaluate, log_rollout, EpisodeStats, OnPolicySummary};
use rlox_core::logger::Logger;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};
use rlox_nn::burn::module::Module;
use rlox_nn::burn::optim::ModuleOptimizer;
use rlox_nn::{Device, DeviceKind, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// REINFORCE hyper-parameters (all *rlox* choices, see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReinforceConfig {
    /// Transitions to train for. *rlox*: 2e5.
    pub total_timesteps: u64,
    /// Envs, i.e. episodes per update. *rlox*: 8.
    pub n_envs: usize,
    /// Discount. *rlox*: 0.99.
    pub gamma: f64,
    /// Adam learning rate. *rlox*: 1e-3.
    pub learning_rate: f64,
    /// Adam epsilon. *rlox*: 1e-5 (as SB3's PPO/A2C).
    pub adam_eps: f64,
    /// Subtract a learned `V(s)` from the returns. *rlox*: true.
    pub baseline: bool,
    /// Value loss coefficient (with a baseline). *rlox*: 0.5.
    pub vf_coef: f64,
    /// Entropy bonus coefficient. *rlox*: 0.
    pub ent_coef: f64,
    /// Normalise the advantages of each update to mean 0, std 1. *rlox*: false.
    pub normalize_advantage: bool,
    /// Global gradient-norm clip. *rlox*: 0.5.
    pub max_grad_norm: f64,
    /// The network. *rlox*: SB3's PPO policy (64x64 tanh, orthogonal).
    pub policy: PolicyConfig,
    /// Seed of everything.
    pub seed: u64,
    /// Deterministic episodes of the final evaluation (one per env of the evaluation batch).
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

impl Default for ReinforceConfig {
    fn default() -> Self {
        ReinforceConfig {
            total_timesteps: 200_000,
            n_envs: 8,
            gamma: 0.99,
            learning_rate: 1e-3,
            adam_eps: 1e-5,
            baseline: true,
            vf_coef: 0.5,
            ent_coef: 0.0,
            normalize_advantage: false,
            max_grad_norm: 0.5,
            policy: PolicyConfig::default(),
            seed: 0,
            eval_episodes: 10,
            checkpoint_every_updates: 0,
            checkpoint_dir: None,
            stop_after_updates: None,
            device: DeviceKind::Cpu,
        }
    }
}

impl ReinforceConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, what: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(format!("reinforce.{what}"), why))
            }
        };
        check(self.total_timesteps > 0, "total_timesteps", "must be > 0")?;
        check(self.n_envs > 0, "n_envs", "must be > 0")?;
        check((0.0..=1.0).contains(&self.gamma), "gamma", "must be in [0, 1]")?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            "must be a positive number",
        )?;
        check(self.max_grad_norm > 0.0, "max_grad_norm", "must be > 0")?;
        check(self.eval_episodes > 0, "eval_episodes", "must be > 0")?;
        self.policy.validate("reinforce.policy")
    }
}

/// One update's episodes, flattened.
#[derive(Debug, Clone, Default)]
pub struct Episodes {
    /// Observations, `n * obs_dim`.
    pub obs: Vec<f32>,
    /// Raw actions, `n * action_dim`.
    pub actions: Vec<f32>,
    /// Discounted returns-to-go.
    pub returns: Vec<f32>,
    /// Undiscounted episode returns (for logging).
    pub episode_returns: Vec<f64>,
}

/// Discounted returns-to-go of one episode's rewards.
pub fn returns_to_go(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut g = 0.0;
    for t in (0..rewards.len()).rev() {
        g = rewards[t] + gamma * g;
        out[t] = g;
    }
    out
}

/// A REINFORCE agent.
pub struct Reinforce {
    config: ReinforceConfig,
    obs_dim: usize,
    kind: ActionKind,
    device: Device,
    plain: Device,
    model: ActorCritic,
    optimizer: ModuleOptimizer,
    n_updates: u64,
}

impl Reinforce {
    /// A fresh agent.
    pub fn new(obs_dim: usize, kind: ActionKind, config: &ReinforceConfig) -> Result<Self> {
        config.validate()?;
        if obs_dim == 0 {
            return Err(Error::invalid("reinforce", "obs_dim must be > 0"));
        }
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 3))?;
        let plain = device.clone().inner();
        let model =
            ActorCritic::new(obs_dim, &kind, &config.policy, &device, &mut rng_from_seed(derive_seed(config.seed, 3)));
        Ok(Reinforce {
            config: config.clone(),
            obs_dim,
            kind,
            device,
            plain,
            model,
            optimizer: adam(config.adam_eps),
            n_updates: 0,
        })
    }

    /// The actor-critic (its value network is the baseline).
    pub fn model(&self) -> &ActorCritic {
        &self.model
    }

    /// Play one episode per env with the current policy (envs reset with `seed`).
    pub fn collect<V>(&self, envs: &mut V, seed: u64, rng: &mut SeededRng) -> Result<Episodes>
    where
        V: VecEnv,
        V::Action: PolicyAction,
    {
        let (n, d, ad) = (envs.num_envs(), self.obs_dim, self.kind.action_dim());
        let policy = self.model.valid();
        envs.reset(Some(seed))?;
        let mut obs: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut acts: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut rewards: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut active = vec![true; n];
        let mut steps = 0u64;
        while active.iter().any(|&a| a) {
            steps += 1;
            if steps > 1_000_000 {
                return Err(Error::invalid("reinforce", "an episode ran 1000000 steps; give the env a time limit"));
            }
            let acted = policy.act(envs.observations(), d, &mut rng.rng, false, &self.plain);
            for i in (0..n).filter(|&i| active[i]) {
                obs[i].extend_from_slice(&envs.observations()[i * d..(i + 1) * d]);
                acts[i].extend_from_slice(&acted.actions[i * ad..(i + 1) * ad]);
            }
            let actions: Vec<V::Action> =
                acted.actions.chunks_exact(ad).map(|a| V::Action::from_policy(&self.kind, a)).collect();
            envs.step(&actions)?;
            for i in 0..n {
                if !active[i] {
                    continue;
                }
                rewards[i].push(envs.rewards()[i]);
                if envs.terminated()[i] || envs.truncated()[i] {
                    active[i] = false;
                }
            }
        }
        let mut e = Episodes::default();
        for i in 0..n {
            e.obs.extend_from_slice(&obs[i]);
            e.actions.extend_from_slice(&acts[i]);
            e.returns.extend(returns_to_go(&rewards[i], self.config.gamma).into_iter().map(|g| g as f32));
            e.episode_returns.push(rewards[i].iter().sum());
        }
        Ok(e)
    }

    /// The loss (total, policy term, value term) of one update's episodes.
    pub fn loss(&self, e: &Episodes) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let b = e.returns.len();
        let d = &self.device;
        let obs = Tensor::<2>::from_data(TensorData::new(e.obs.clone(), [b, self.obs_dim]), d);
        let (dist, values) = self.model.forward(obs);
        let log_prob = dist.log_prob(&e.actions);
        let ret = Tensor::<1>::from_data(TensorData::new(e.returns.clone(), [b]), d);
        let mut adv = if self.config.baseline { ret.clone() - values.clone().detach() } else { ret.clone() };
        if self.config.normalize_advantage && b > 1 {
            let mean = adv.clone().mean();
            let std = (adv.clone() - mean.clone()).square().sum().div_scalar((b - 1) as f32).sqrt();
            adv = (adv - mean) / std.add_scalar(1e-8);
        }
        let policy_loss = (adv.detach() * log_prob).mean().neg();
        let value_loss = if self.config.baseline { (ret - values).square().mean() } else { Tensor::<1>::zeros([1], d) };
        let mut total = policy_loss.clone() + value_loss.clone().mul_scalar(self.config.vf_coef as f32);
        if self.config.ent_coef != 0.0 {
            total = total - dist.entropy().mean().mul_scalar(self.config.ent_coef as f32);
        }
        (total, policy_loss, value_loss)
    }

    /// Train until `config.total_timesteps` transitions; `eval_envs` (one per evaluation episode)
    /// serve the final evaluation. With `resume_from`, continue from that checkpoint directory.
    pub fn learn<V, W>(
        &mut self,
        envs: &mut V,
        eval_envs: &mut W,
        logger: &mut dyn Logger,
        resume_from: Option<&Path>,
    ) -> Result<OnPolicySummary>
    where
        V: VecEnv,
        V::Action: PolicyAction,
        W: VecEnv<Action = V::Action>,
    {
        let c = self.config.clone();
        let start = Instant::now();
        let (mut stats, mut rng) = match resume_from {
            Some(dir) => {
                let fresh = ActorCritic::new(self.obs_dim, &self.kind, &c.policy, &self.device, &mut rng_from_seed(0));
                let (model, optimizer, st) = resume::load(dir, fresh, adam(c.adam_eps))?;
                if st.algorithm != "reinforce" || st.rngs.len() != 1 {
                    return Err(Error::invalid(
                        "resume",
                        format!("{} holds a {} checkpoint, not reinforce", dir.display(), st.algorithm),
                    ));
                }
                self.model = model;
                self.optimizer = optimizer;
                self.n_updates = st.n_updates;
                (st.stats.clone(), SeededRng::from_state(&st.rngs[0])?)
            }
            None => (EpisodeStats::new(envs.num_envs()), SeededRng::new(derive_seed(c.seed, 1))),
        };
        let steps_at_start = stats.env_steps;
        while stats.env_steps < c.total_timesteps {
            let episodes = self.collect(envs, derive_seed(c.seed, 10 + self.n_updates), &mut rng)?;
            stats.env_steps += episodes.returns.len() as u64;
            for &r in &episodes.episode_returns {
                if stats.recent.len() == 100 {
                    stats.recent.pop_front();
                }
                stats.recent.push_back(r);
                stats.episodes += 1;
            }
            let update = self.n_updates + 1;
            let (total, pl, vl) = self.loss(&episodes);
            let total_v = total.clone().into_scalar::<f32>() as f64;
            let kept = |e: String| match &c.checkpoint_dir {
                Some(dir) => format!("{e}; the last good checkpoint is kept in {}", dir.display()),
                None => e,
            };
            if !total_v.is_finite() {
                return Err(Error::invalid(
                    "reinforce",
                    kept(format!("the loss became {total_v} at update {update}; lower learning_rate")),
                ));
            }
            let mut grads = rlox_nn::backward(&total, &self.model);
            let norm = rlox_nn::clip_grad_norm(&self.model, &mut grads, c.max_grad_norm);
            if !norm.is_finite() {
                return Err(Error::invalid(
                    "reinforce",
                    kept(format!("the gradient norm became {norm} at update {update}")),
                ));
            }
            self.model = self.optimizer.step(c.learning_rate, self.model.clone(), grads);
            self.n_updates += 1;
            let secs = start.elapsed().as_secs_f64();
            log_rollout(logger, &stats)?;
            logger.log(
                stats.env_steps,
                &[
                    ("train/policy_loss", pl.into_scalar::<f32>() as f64),
                    ("train/value_loss", vl.into_scalar::<f32>() as f64),
                    ("train/grad_norm", norm),
                    ("train/learning_rate", c.learning_rate),
                    ("train/n_updates", self.n_updates as f64),
                    ("time/fps", (stats.env_steps - steps_at_start) as f64 / secs.max(1e-9)),
                ],
            )?;
            if let Some(dir) = &c.checkpoint_dir {
                let due = c.checkpoint_every_updates > 0 && self.n_updates.is_multiple_of(c.checkpoint_every_updates);
                if due || stats.env_steps >= c.total_timesteps {
                    let state = TrainerState {
                        algorithm: "reinforce".into(),
                        n_updates: self.n_updates,
                        gradient_steps: self.n_updates,
                        stats: stats.clone(),
                        env_state: None,
                        rngs: vec![rng.state()],
                        param_ids: BTreeMap::new(),
                        policy_file: String::new(),
                        optimizer_file: String::new(),
                        config: serde_json::to_value(&c).unwrap_or_default(),
                    };
                    let meta = BTreeMap::from([
                        ("algorithm".to_string(), "reinforce".to_string()),
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
        let (mean, std) =
            evaluate(&self.model.valid(), &self.plain, &self.kind, eval_envs, eval_seed(c.seed, u64::MAX), 1_000_000)?;
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
    fn returns_to_go_discount() {
        let g = returns_to_go(&[1.0, 0.0, 2.0], 0.5);
        assert_eq!(g, vec![1.5, 1.0, 2.0]);
    }

    #[test]
    fn every_parameter_gets_a_gradient_with_a_baseline() {
        let r = Reinforce::new(2, ActionKind::Discrete(3), &ReinforceConfig::default()).unwrap();
        let e = Episodes {
            obs: vec![0.1, 0.2, -0.3, 0.5, 0.9, -1.0, 0.0, 0.4],
            actions: vec![0.0, 1.0, 2.0, 1.0],
            returns: vec![3.0, 2.0, 1.0, -1.0],
            episode_returns: vec![],
        };
        let (loss, ..) = r.loss(&e);
        rlox_nn::testing::assert_all_params_get_grad(r.model(), &loss);
    }
}
