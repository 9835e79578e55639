//! REINFORCE (Williams 1992): Monte-Carlo policy gradient, with or without a learned baseline.
//!
//! Each update plays **one complete episode per env** with the current stochastic policy (the
//! [`crate::onpolicy::Collection::Episodes`] collection: the envs are reset together with seed
//! `derive_seed(seed, 10 + update)`, stepped until every env has finished its episode, and each env's
//! steps after its episode ended are dropped). Then, with the discounted return-to-go `G_t`:
//!
//! * without baseline: loss `-mean(G_t log pi(a_t|s_t))`;
//! * with baseline (`baseline = true`): loss `-mean((G_t - V(s_t)) log pi(a_t|s_t)) + vf_coef * mean((G_t - V(s_t))^2)`,
//!   the advantage detached from the value network.
//!
//! No zoo entry exists for REINFORCE; the defaults are this file's choice (marked *rlox*), chosen
//! to match the PPO/A2C networks (64x64 tanh, orthogonal init) with Adam.

use crate::fused_policy::FusedActorCritic;
use crate::onpolicy::{Collection, Experience, Learner, Metrics, Nets, OnPolicyMethod};
use crate::policies::{ActorCritic, PolicyConfig};
use crate::rollout::Episodes;
use rlox_core::seeding::Rng;
use rlox_core::{Error, Result};
use rlox_nn::{OptimizerConfig, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// REINFORCE hyper-parameters (all *rlox* choices, see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReinforceConfig {
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
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        ReinforceConfig {
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
        check(self.n_envs > 0, "n_envs", "must be > 0")?;
        check((0.0..=1.0).contains(&self.gamma), "gamma", "must be in [0, 1]")?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            "must be a positive number",
        )?;
        check(self.max_grad_norm > 0.0, "max_grad_norm", "must be > 0")?;
        self.policy.validate("reinforce.policy")
    }

    /// The loss (total, policy term, value term) of one update's episodes.
    pub fn loss(&self, model: &ActorCritic, e: &Episodes) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let b = e.returns.len();
        let d = &model.device();
        let obs = Tensor::<2>::from_data(TensorData::new(e.obs.clone(), [b, e.obs.len() / b]), d);
        let (dist, values) = model.forward(obs);
        let log_prob = dist.log_prob(&e.actions);
        let ret = Tensor::<1>::from_data(TensorData::new(e.returns.clone(), [b]), d);
        let mut adv = if self.baseline { ret.clone() - values.clone().detach() } else { ret.clone() };
        if self.normalize_advantage && b > 1 {
            let mean = adv.clone().mean();
            let std = (adv.clone() - mean.clone()).square().sum().div_scalar((b - 1) as f32).sqrt();
            adv = (adv - mean) / std.add_scalar(1e-8);
        }
        let policy_loss = (adv.detach() * log_prob).mean().neg();
        let value_loss = if self.baseline { (ret - values).square().mean() } else { Tensor::<1>::zeros([1], d) };
        let mut total = policy_loss.clone() + value_loss.clone().mul_scalar(self.vf_coef as f32);
        if self.ent_coef != 0.0 {
            total = total - dist.entropy().mean().mul_scalar(self.ent_coef as f32);
        }
        (total, policy_loss, value_loss)
    }
}

impl ReinforceConfig {
    /// The same loss on the fused path, on the host from the rows' `log pi`, entropy and value; writes
    /// its derivatives for [`Learner::fused_step`]. Returns (total, policy, value).
    fn fused_loss(&self, net: &mut FusedActorCritic, e: &Episodes) -> (f64, f64, f64) {
        let t = net.forward_rows(&e.obs, &e.actions, None);
        let b = e.returns.len();
        // The advantage, detached from the value network: G - V with a baseline, else G.
        let mut adv: Vec<f32> =
            e.returns.iter().zip(&t.value).map(|(&g, &v)| if self.baseline { g - v } else { g }).collect();
        if self.normalize_advantage && b > 1 {
            let mean = adv.iter().sum::<f32>() / b as f32;
            let std = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (b - 1) as f32).sqrt();
            adv.iter_mut().for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        let bf = b as f32;
        let (mut policy, mut value, mut entropy) = (0.0f64, 0.0f64, 0.0f64);
        for (r, &a) in adv.iter().enumerate() {
            policy += (a * t.log_prob[r]) as f64;
            t.d_log_prob[r] = -a / bf;
            if self.baseline {
                let diff = t.value[r] - e.returns[r];
                value += (diff * diff) as f64;
                t.d_value[r] = self.vf_coef as f32 * 2.0 * diff / bf;
            }
            entropy += t.entropy[r] as f64;
        }
        t.d_entropy = -(self.ent_coef as f32) / bf;
        let n = b as f64;
        let (policy, value) = (-policy / n, value / n);
        (policy + self.vf_coef * value - self.ent_coef * entropy / n, policy, value)
    }
}

impl OnPolicyMethod for ReinforceConfig {
    const NAME: &'static str = "reinforce";

    fn validate(&self) -> Result<()> {
        ReinforceConfig::validate(self)
    }
    fn n_envs(&self) -> usize {
        self.n_envs
    }
    fn collection(&self) -> Collection {
        Collection::Episodes { gamma: self.gamma }
    }
    fn policy(&self) -> &PolicyConfig {
        &self.policy
    }
    fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig::adam_eps(self.adam_eps as f32)
    }

    /// One gradient step on the update's episodes.
    fn update(&self, learner: &mut Learner, data: Experience<'_>, _: f64, _: &mut Rng) -> Result<Metrics> {
        let Experience::Episodes(e) = data else {
            return Err(Error::invalid("reinforce", "REINFORCE trains on complete episodes"));
        };
        let (norm, pl, vl) = match &mut learner.nets {
            Nets::Burn { model, .. } => {
                let (total, pl, vl) = self.loss(model, e);
                let (pl, vl) = (pl.into_scalar::<f32>() as f64, vl.into_scalar::<f32>() as f64);
                (learner.step(&total, self.learning_rate, self.max_grad_norm)?, pl, vl)
            }
            Nets::Fused(f) => {
                let (total, pl, vl) = self.fused_loss(f, e);
                (learner.fused_step(total, self.learning_rate, self.max_grad_norm)?, pl, vl)
            }
        };
        Ok(vec![
            ("train/policy_loss", pl),
            ("train/value_loss", vl),
            ("train/grad_norm", norm),
            ("train/learning_rate", self.learning_rate),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onpolicy::OnPolicy;
    use crate::policies::ActionKind;
    use crate::rollout::returns_to_go;
    use rlox_core::run::RunSettings;

    #[test]
    fn returns_to_go_discount() {
        let g = returns_to_go(&[1.0, 0.0, 2.0], 0.5);
        assert_eq!(g, vec![1.5, 1.0, 2.0]);
    }

    #[test]
    fn every_parameter_gets_a_gradient_with_a_baseline() {
        let config = ReinforceConfig::default();
        let run = RunSettings { total_steps: 1, ..Default::default() };
        let r = OnPolicy::new(config.clone(), &run, 2, ActionKind::Discrete(3)).unwrap();
        let e = Episodes {
            obs: vec![0.1, 0.2, -0.3, 0.5, 0.9, -1.0, 0.0, 0.4],
            actions: vec![0.0, 1.0, 2.0, 1.0],
            returns: vec![3.0, 2.0, 1.0, -1.0],
            episode_returns: vec![],
        };
        let model = r.model();
        let (loss, ..) = config.loss(&model, &e);
        rlox_nn::testing::assert_all_params_get_grad(&model, &loss);
    }
}
