//! Proximal Policy Optimization (Schulman et al. 2017), clipped objective.
//!
//! The file reads top to bottom: the config (defaults: rl-baselines3-zoo's `CartPole-v1` entry of
//! `hyperparams/ppo.yml`, marked *zoo*, on top of Stable-Baselines3's PPO defaults, marked *SB3*), the
//! loss, and the update. The loop around it (collection, logging, evaluation, checkpoints, resume) is
//! [`crate::onpolicy`]'s, shared with A2C and REINFORCE. One iteration, as in SB3:
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
//! error naming the gradient step; the last checkpoint on disk is the last good one.

use crate::fused_policy::FusedActorCritic;
use crate::gae::RolloutBuffer;
use crate::onpolicy::{Collection, Experience, Learner, Metrics, Nets, OnPolicyMethod};
use crate::policies::{ActorCritic, PolicyConfig};
use rand::seq::SliceRandom;
use rlox_core::seeding::Rng;
use rlox_core::{Error, Result};
use rlox_nn::{OptimizerConfig, Schedule, Tensor, TensorData};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// PPO hyper-parameters (see the module docs for the sources of the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
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
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
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
        }
    }
}

impl PpoConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("ppo.{what}"), why)) };
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
// The loss and the update
// ---------------------------------------------------------------------------------------------

/// Minibatch rows gathered from the rollout on the host.
fn gather(src: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * width);
    for &k in idx {
        out.extend_from_slice(&src[k * width..(k + 1) * width]);
    }
    out
}

/// The terms of the PPO loss of one minibatch.
pub struct PpoLoss {
    /// `pg + ent_coef * entropy + vf_coef * value`.
    pub total: Tensor<1>,
    /// The clipped surrogate objective, negated.
    pub policy_gradient: Tensor<1>,
    /// `mean((R - V)^2)` (V clipped around the old value with `clip_range_vf`).
    pub value: Tensor<1>,
    /// `-mean(H)`.
    pub entropy: Tensor<1>,
    /// `log pi - log pi_old` per row, detached (for the KL and clip statistics).
    pub log_ratio: Tensor<1>,
}

impl PpoConfig {
    /// The PPO loss of a minibatch: observations `[b, obs_dim]`, raw actions, the log-probs and values
    /// recorded when acting, the (already normalised, if wanted) advantages and the returns.
    #[allow(clippy::too_many_arguments)]
    pub fn loss(
        &self,
        model: &ActorCritic,
        obs: Vec<f32>,
        actions: &[f32],
        old_log_probs: Vec<f32>,
        adv: Vec<f32>,
        returns: Vec<f32>,
        old_values: Vec<f32>,
        clip: f64,
    ) -> PpoLoss {
        let b = adv.len();
        let d = &model.device();
        let obs = Tensor::<2>::from_data(TensorData::new(obs.clone(), [b, obs.len() / b]), d);
        let (dist, values) = model.forward(obs);
        let log_prob = dist.log_prob(actions);
        let entropy = dist.entropy();
        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), d);
        let (old_lp, adv, ret, old_v) = (t1(old_log_probs), t1(adv), t1(returns), t1(old_values));
        let log_ratio = log_prob - old_lp;
        let ratio = log_ratio.clone().exp();
        let clip = clip as f32;
        let surr1 = adv.clone() * ratio.clone();
        let surr2 = adv * ratio.clamp(1.0 - clip, 1.0 + clip);
        let policy_gradient = surr1.min_pair(surr2).mean().neg();
        let values = match self.clip_range_vf {
            Some(c) => old_v.clone() + (values - old_v).clamp(-c as f32, c as f32),
            None => values,
        };
        let value = (ret - values).square().mean();
        let entropy = entropy.mean().neg();
        let total = policy_gradient.clone()
            + entropy.clone().mul_scalar(self.ent_coef as f32)
            + value.clone().mul_scalar(self.vf_coef as f32);
        PpoLoss { total, policy_gradient, value, entropy, log_ratio: log_ratio.detach() }
    }
}

/// What one minibatch's loss reports (the same on both paths).
struct MinibatchStats {
    total: f64,
    policy_gradient: f64,
    value: f64,
    entropy: f64,
    /// The approximate KL `mean((r - 1) - log r)` (Schulman's k3, as SB3).
    approx_kl: f64,
    /// The fraction of rows with `|r - 1| > clip`.
    clip_fraction: f64,
}

impl MinibatchStats {
    fn from_log_ratios(log_ratio: impl ExactSizeIterator<Item = f32>, clip: f64) -> (f64, f64) {
        let n = log_ratio.len().max(1) as f64;
        let (mut kl, mut clipped) = (0.0f64, 0usize);
        for x in log_ratio {
            let r = (x as f64).exp();
            kl += (r - 1.0) - x as f64;
            if (r - 1.0).abs() > clip {
                clipped += 1;
            }
        }
        (kl / n, clipped as f64 / n)
    }
}

impl PpoConfig {
    /// The minibatch `mb` of `buf` through burn's autodiff: the loss tensor and its statistics.
    fn burn_minibatch(
        &self,
        model: &ActorCritic,
        buf: &RolloutBuffer,
        mb: &[usize],
        adv: &[f32],
        clip: f64,
    ) -> (Tensor<1>, MinibatchStats) {
        let l = self.loss(
            model,
            gather(&buf.obs, buf.obs_dim, mb),
            &gather(&buf.actions, buf.action_dim, mb),
            mb.iter().map(|&k| buf.log_probs[k]).collect(),
            adv.to_vec(),
            mb.iter().map(|&k| buf.returns[k]).collect(),
            mb.iter().map(|&k| buf.values[k]).collect(),
            clip,
        );
        let log_ratio: Vec<f32> = l.log_ratio.into_data().try_into_vec_as::<f32>().expect("f32");
        let (approx_kl, clip_fraction) = MinibatchStats::from_log_ratios(log_ratio.into_iter(), clip);
        let stats = MinibatchStats {
            total: l.total.clone().into_scalar::<f32>() as f64,
            policy_gradient: l.policy_gradient.into_scalar::<f32>() as f64,
            value: l.value.into_scalar::<f32>() as f64,
            entropy: l.entropy.into_scalar::<f32>() as f64,
            approx_kl,
            clip_fraction,
        };
        (l.total, stats)
    }

    /// The same loss on the fused path, computed on the host from the rows' `log pi`, entropy and
    /// value; writes its derivatives for [`crate::onpolicy::Learner::fused_step`].
    fn fused_minibatch(
        &self,
        net: &mut FusedActorCritic,
        buf: &RolloutBuffer,
        mb: &[usize],
        adv: &[f32],
        clip: f64,
    ) -> MinibatchStats {
        let t = net.forward_rows(&buf.obs, &buf.actions, Some(mb));
        let b = mb.len() as f32;
        let (lo, hi) = (1.0 - clip as f32, 1.0 + clip as f32);
        let (mut surrogate, mut value, mut entropy) = (0.0f64, 0.0f64, 0.0f64);
        for (r, &k) in mb.iter().enumerate() {
            // -min(A r, A clip(r)): the gradient flows through the unclipped term when it is the
            // smaller one (where both are equal, r is inside the clip range or A = 0).
            let ratio = (t.log_prob[r] - buf.log_probs[k]).exp();
            let (s1, s2) = (adv[r] * ratio, adv[r] * ratio.clamp(lo, hi));
            surrogate += s1.min(s2) as f64;
            t.d_log_prob[r] = if s1 <= s2 { -s1 / b } else { 0.0 };
            // (R - V)^2, V optionally clipped around the value recorded when acting.
            let (v, old) = (t.value[r], buf.values[k]);
            let (v_used, passes) = match self.clip_range_vf {
                Some(c) => {
                    let c = c as f32;
                    (old + (v - old).clamp(-c, c), (v - old).abs() <= c)
                }
                None => (v, true),
            };
            let diff = v_used - buf.returns[k];
            value += (diff * diff) as f64;
            t.d_value[r] = if passes { self.vf_coef as f32 * 2.0 * diff / b } else { 0.0 };
            entropy += t.entropy[r] as f64;
        }
        t.d_entropy = -(self.ent_coef as f32) / b;
        let n = b as f64;
        let (policy_gradient, value, entropy) = (-surrogate / n, value / n, -entropy / n);
        let log_ratio = mb.iter().enumerate().map(|(r, &k)| t.log_prob[r] - buf.log_probs[k]);
        let (approx_kl, clip_fraction) = MinibatchStats::from_log_ratios(log_ratio, clip);
        MinibatchStats {
            total: policy_gradient + self.ent_coef * entropy + self.vf_coef * value,
            policy_gradient,
            value,
            entropy,
            approx_kl,
            clip_fraction,
        }
    }
}

/// Normalise advantages to mean 0 and (unbiased, as torch.std) standard deviation 1.
fn normalize(adv: &mut [f32]) {
    let n = adv.len() as f64;
    let mean = adv.iter().map(|&a| a as f64).sum::<f64>() / n;
    let var = adv.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let std = var.sqrt();
    adv.iter_mut().for_each(|a| *a = ((*a as f64 - mean) / (std + 1e-8)) as f32);
}

impl OnPolicyMethod for PpoConfig {
    const NAME: &'static str = "ppo";

    fn validate(&self) -> Result<()> {
        PpoConfig::validate(self)
    }
    fn n_envs(&self) -> usize {
        self.n_envs
    }
    fn collection(&self) -> Collection {
        Collection::Rollout { n_steps: self.n_steps, gamma: self.gamma, gae_lambda: self.gae_lambda }
    }
    fn policy(&self) -> &PolicyConfig {
        &self.policy
    }
    fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig::adam_eps(self.adam_eps as f32)
    }

    /// `n_epochs` passes over the rollout in shuffled minibatches (step 3 of the module docs).
    fn update(&self, learner: &mut Learner, data: Experience<'_>, progress: f64, rng: &mut Rng) -> Result<Metrics> {
        let Experience::Rollout(buf) = data else {
            return Err(Error::invalid("ppo", "PPO trains on rollouts"));
        };
        let (lr, clip) = (self.lr_schedule().value(progress), self.clip_schedule().value(progress));
        let mut idx = buf.valid_indices();
        let (mut pg, mut vl, mut el, mut loss, mut norms) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut n_mb, mut steps, mut kl_sum, mut clip_sum) = (0u64, 0u64, 0.0, 0.0);
        let mut adv = Vec::with_capacity(self.batch_size);
        'epochs: for _ in 0..self.n_epochs {
            idx.shuffle(rng);
            for mb in idx.chunks(self.batch_size) {
                adv.clear();
                adv.extend(mb.iter().map(|&k| buf.advantages[k]));
                if self.normalize_advantage && adv.len() > 1 {
                    normalize(&mut adv);
                }
                let (burn_loss, stats) = match &mut learner.nets {
                    Nets::Burn { model, .. } => {
                        let (l, stats) = self.burn_minibatch(model, buf, mb, &adv, clip);
                        (Some(l), stats)
                    }
                    Nets::Fused(f) => (None, self.fused_minibatch(f, buf, mb, &adv, clip)),
                };
                loss = learner.check_finite("loss", stats.total)?;
                pg += stats.policy_gradient;
                vl += stats.value;
                el += stats.entropy;
                kl_sum += stats.approx_kl;
                clip_sum += stats.clip_fraction;
                n_mb += 1;
                if self.target_kl.is_some_and(|t| stats.approx_kl > 1.5 * t) {
                    break 'epochs;
                }
                norms += match burn_loss {
                    Some(l) => learner.step(&l, lr, self.max_grad_norm)?,
                    None => learner.fused_step(stats.total, lr, self.max_grad_norm)?,
                };
                steps += 1;
            }
        }
        let n = n_mb.max(1) as f64;
        Ok(vec![
            ("train/policy_gradient_loss", pg / n),
            ("train/value_loss", vl / n),
            ("train/entropy_loss", el / n),
            ("train/approx_kl", kl_sum / n),
            ("train/clip_fraction", clip_sum / n),
            ("train/clip_range", clip),
            ("train/learning_rate", lr),
            ("train/loss", loss),
            ("train/grad_norm", norms / steps.max(1) as f64),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onpolicy::OnPolicy;
    use crate::policies::ActionKind;
    use rlox_core::run::RunSettings;
    use std::path::Path;

    #[test]
    fn defaults_are_the_zoo_cartpole_settings() {
        let c = PpoConfig::default();
        assert_eq!((c.n_envs, c.n_steps, c.batch_size, c.n_epochs), (8, 32, 256, 20));
        assert_eq!((c.gamma, c.gae_lambda, c.learning_rate, c.clip_range, c.ent_coef), (0.98, 0.8, 1e-3, 0.2, 0.0));
        assert_eq!((c.learning_rate_end, c.clip_range_end), (Some(0.0), Some(0.0)));
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
            let run = RunSettings { total_steps: 1, ..Default::default() };
            let ppo = OnPolicy::new(config.clone(), &run, 4, kind.clone()).unwrap();
            let b = 16;
            let obs: Vec<f32> = (0..b * 4).map(|i| ((i * 7) as f32 * 0.13).sin()).collect();
            let actions: Vec<f32> =
                (0..b).map(|i| if kind.is_discrete() { (i % 2) as f32 } else { 0.3 * i as f32 - 2.0 }).collect();
            let adv: Vec<f32> = (0..b).map(|i| i as f32 - 7.5).collect();
            let model = ppo.model();
            let l = config.loss(&model, obs, &actions, vec![-0.7; b], adv, vec![1.0; b], vec![0.0; b], 0.2);
            rlox_nn::testing::assert_all_params_get_grad(&model, &l.total);
        }
    }
}
