//! Advantage Actor-Critic (A2C, the synchronous variant of Mnih et al. 2016's A3C).
//!
//! Defaults: rl-baselines3-zoo's `CartPole-v1` entry of `hyperparams/a2c.yml` (*zoo*: 8 envs,
//! `ent_coef` 0, 5e5 steps) on top of Stable-Baselines3's A2C defaults (*SB3*). One iteration (the loop
//! itself is [`crate::onpolicy`]'s):
//!
//! 1. collect `n_steps` calls of `n_envs` envs (autoreset calls skipped, see [`crate::gae`]);
//! 2. advantages by GAE with `gae_lambda = 1` (*SB3*), which is the n-step return bootstrapped
//!    from `V` after the last step (and from the final observation on a truncation) minus `V(s)`;
//! 3. one gradient step on the whole rollout:
//!    `-mean(A log pi(a|s)) + ent_coef * (-mean H) + vf_coef * mean((R - V)^2)`, gradients
//!    clipped to a global norm of `max_grad_norm`, then **RMSprop** (alpha 0.99, eps 1e-5, PyTorch's
//!    form: eps outside the square root, no momentum), SB3's default; `use_rms_prop = false` switches
//!    to Adam (eps 1e-5) as SB3 does.

use crate::fused_policy::FusedActorCritic;
use crate::gae::RolloutBuffer;
use crate::onpolicy::{Collection, Experience, Learner, Metrics, Nets, OnPolicyMethod};
use crate::policies::{ActorCritic, PolicyConfig};
use rlox_core::seeding::Rng;
use rlox_core::{Error, Result};
use rlox_nn::{OptimizerConfig, Schedule, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A2C hyper-parameters (see the module docs for the sources of the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2cConfig {
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
}

impl Default for A2cConfig {
    fn default() -> Self {
        A2cConfig {
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
        }
    }
}

impl A2cConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("a2c.{what}"), why)) };
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
        self.policy.validate("a2c.policy")
    }

    /// The A2C loss over the valid slots of `buf`: total, policy, value and entropy terms.
    pub fn loss(&self, model: &ActorCritic, buf: &RolloutBuffer) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
        let idx = buf.valid_indices();
        let b = idx.len();
        let d = &model.device();
        let pick = |src: &[f32], w: usize| -> Vec<f32> {
            idx.iter().flat_map(|&k| src[k * w..(k + 1) * w].to_vec()).collect()
        };
        let obs = Tensor::<2>::from_data(TensorData::new(pick(&buf.obs, buf.obs_dim), [b, buf.obs_dim]), d);
        let (dist, values) = model.forward(obs);
        let log_prob = dist.log_prob(&pick(&buf.actions, buf.action_dim));
        let adv = self.advantages(buf, &idx);
        let adv = Tensor::<1>::from_data(TensorData::new(adv, [b]), d);
        let ret = Tensor::<1>::from_data(TensorData::new(pick(&buf.returns, 1), [b]), d);
        let policy_loss = (adv * log_prob).mean().neg();
        let value_loss = (ret - values).square().mean();
        let entropy_loss = dist.entropy().mean().neg();
        let total = policy_loss.clone()
            + entropy_loss.clone().mul_scalar(self.ent_coef as f32)
            + value_loss.clone().mul_scalar(self.vf_coef as f32);
        (total, policy_loss, value_loss, entropy_loss)
    }
}

impl A2cConfig {
    /// The advantages of the rows `idx`, normalised if asked.
    fn advantages(&self, buf: &RolloutBuffer, idx: &[usize]) -> Vec<f32> {
        let mut adv: Vec<f32> = idx.iter().map(|&k| buf.advantages[k]).collect();
        let b = adv.len();
        if self.normalize_advantage && b > 1 {
            let n = b as f32;
            let mean = adv.iter().sum::<f32>() / n;
            let std = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (n - 1.0)).sqrt();
            adv.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        adv
    }

    /// The same loss on the fused path, on the host from the rows' `log pi`, entropy and value; writes
    /// its derivatives for [`Learner::fused_step`]. Returns (total, policy, value, entropy).
    fn fused_loss(&self, net: &mut FusedActorCritic, buf: &RolloutBuffer) -> (f64, f64, f64, f64) {
        let idx = buf.valid_indices();
        let adv = self.advantages(buf, &idx);
        let t = net.forward_rows(&buf.obs, &buf.actions, Some(&idx));
        let b = idx.len() as f32;
        let (mut policy, mut value, mut entropy) = (0.0f64, 0.0f64, 0.0f64);
        for (r, &k) in idx.iter().enumerate() {
            policy += (adv[r] * t.log_prob[r]) as f64;
            t.d_log_prob[r] = -adv[r] / b;
            let diff = t.value[r] - buf.returns[k];
            value += (diff * diff) as f64;
            t.d_value[r] = self.vf_coef as f32 * 2.0 * diff / b;
            entropy += t.entropy[r] as f64;
        }
        t.d_entropy = -(self.ent_coef as f32) / b;
        let n = b as f64;
        let (policy, value, entropy) = (-policy / n, value / n, -entropy / n);
        (policy + self.ent_coef * entropy + self.vf_coef * value, policy, value, entropy)
    }
}

impl OnPolicyMethod for A2cConfig {
    const NAME: &'static str = "a2c";

    fn validate(&self) -> Result<()> {
        A2cConfig::validate(self)
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
        if self.use_rms_prop {
            OptimizerConfig::rmsprop(self.rms_prop_eps as f32)
        } else {
            OptimizerConfig::adam_eps(self.rms_prop_eps as f32)
        }
    }

    /// One gradient step on the whole rollout (step 3 of the module docs).
    fn update(&self, learner: &mut Learner, data: Experience<'_>, progress: f64, _: &mut Rng) -> Result<Metrics> {
        let Experience::Rollout(buf) = data else {
            return Err(Error::invalid("a2c", "A2C trains on rollouts"));
        };
        let lr = match self.learning_rate_end {
            Some(end) => Schedule::linear(self.learning_rate, end),
            None => Schedule::constant(self.learning_rate),
        }
        .value(progress);
        let (norm, pl, vl, el) = match &mut learner.nets {
            Nets::Burn { model, .. } => {
                let (total, pl, vl, el) = self.loss(model, buf);
                let scalar = |t: Tensor<1>| t.into_scalar::<f32>() as f64;
                let (pl, vl, el) = (scalar(pl), scalar(vl), scalar(el));
                (learner.step(&total, lr, self.max_grad_norm)?, pl, vl, el)
            }
            Nets::Fused(f) => {
                let (total, pl, vl, el) = self.fused_loss(f, buf);
                (learner.fused_step(total, lr, self.max_grad_norm)?, pl, vl, el)
            }
        };
        Ok(vec![
            ("train/policy_loss", pl),
            ("train/value_loss", vl),
            ("train/entropy_loss", el),
            ("train/grad_norm", norm),
            ("train/learning_rate", lr),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onpolicy::OnPolicy;
    use crate::policies::ActionKind;
    use rlox_core::run::RunSettings;

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
        let run = RunSettings { total_steps: 1, ..Default::default() };
        let a2c = OnPolicy::new(config.clone(), &run, 3, ActionKind::Discrete(2)).unwrap();
        let mut buf = RolloutBuffer::new(2, 3, 3, 1);
        for k in 0..6 {
            buf.valid[k] = true;
            buf.obs[k * 3] = k as f32 * 0.3 - 0.8;
            buf.obs[k * 3 + 1] = (k as f32).sin();
            buf.actions[k] = (k % 2) as f32;
            buf.advantages[k] = k as f32 - 2.5;
            buf.returns[k] = 1.0;
        }
        let model = a2c.model();
        let (loss, ..) = config.loss(&model, &buf);
        rlox_nn::testing::assert_all_params_get_grad(&model, &loss);
    }
}
