//! The loss math of every trainer, as plain functions: once over `f64` slices (the definitions, used by
//! the golden tests and for logging) and once over burn tensors (what the trainers differentiate).
//! Both follow TRL 1.16's formulas; `tests/golden.rs` checks them against numbers computed from TRL.
//!
//! Notation: `pc`, `pr` are the policy's summed completion log-probs of the chosen and rejected
//! completion, `rc`, `rr` the reference model's, `lc`, `lr` the completion lengths in tokens.
//!
//! * DPO (Rafailov et al. 2023), `h = (pc - pr) - (rc - rr)`:
//!   * `sigmoid`: `-log σ(β h)`; with label smoothing `ε` (conservative DPO, TRL <= 0.28's sigmoid):
//!     `-(1 - ε) log σ(β h) - ε log σ(-β h)`;
//!   * `robust` (Chowdhury et al. 2024): `(-(1 - ε) log σ(β h) + ε log σ(-β h)) / (1 - 2ε)`;
//!   * `hinge` (SLiC): `relu(1 - β h)`;
//!   * `ipo` (Azar et al. 2023), as TRL 1.x computes it: log-ratios divided by the completion lengths,
//!     `h_n = (pc/lc - pr/lr) - (rc/lc - rr/lr)`, loss `(h_n - 1/(2β))^2`.
//!   * implicit rewards `β (pc - rc)` and `β (pr - rr)`, logged as `rewards/chosen`, `rewards/rejected`,
//!     `rewards/accuracies` (chosen > rejected), `rewards/margins`.
//! * Reward model (Bradley-Terry): `-log σ(r_c - r_r - margin)`, plus `coef * mean((r_c + r_r)^2)` when
//!   reward centering is on (Eisenstein et al. 2023).
//! * GRPO (Shao et al. 2024): advantages `(r - mean_group(r)) / (std + 1e-4)` with `std` the group's,
//!   the batch's or 1 (`scale_rewards` group / batch / none), unbiased (`torch.std`); per token
//!   `-min(ρ A, clip(ρ, 1-ε, 1+ε_high) A) + β k3` with `ρ = exp(logp - old_logp)` and the k3 estimator
//!   `k3 = exp(ref - logp) - (ref - logp) - 1`; aggregated as
//!   * `grpo`: mean over sequences of each sequence's masked token mean,
//!   * `bnpo`: masked sum / completion tokens of the (local) batch,
//!   * `dr_grpo`: masked sum / (batch size × `max_completion_length`),
//!   * `dapo`: masked sum / completion tokens of the global batch (one process: the same as `bnpo`).

use rlox_nn::burn::tensor::activation::{log_sigmoid, relu};
use rlox_nn::Tensor;
use serde::{Deserialize, Serialize};

fn log_sigmoid_f64(x: f64) -> f64 {
    // Stable: log σ(x) = -softplus(-x).
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

// ---------------------------------------------------------------------------------------------
// DPO
// ---------------------------------------------------------------------------------------------

/// The DPO loss variants (TRL's `loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpoLossType {
    /// `-log σ(β h)` (with label smoothing: conservative DPO). TRL's default.
    #[default]
    Sigmoid,
    /// IPO with length-normalised log-ratios (TRL 1.x).
    Ipo,
    /// SLiC's hinge `relu(1 - β h)`.
    Hinge,
    /// Robust DPO: unbiased under label noise `label_smoothing`.
    Robust,
}

/// Per-pair sequence log-probs and lengths, as `f64`.
#[derive(Debug, Clone, Copy)]
pub struct DpoBatch<'a> {
    /// Policy log-prob of the chosen completions.
    pub pc: &'a [f64],
    /// Policy log-prob of the rejected completions.
    pub pr: &'a [f64],
    /// Reference log-prob of the chosen completions.
    pub rc: &'a [f64],
    /// Reference log-prob of the rejected completions.
    pub rr: &'a [f64],
    /// Chosen lengths in tokens.
    pub lc: &'a [f64],
    /// Rejected lengths in tokens.
    pub lr: &'a [f64],
}

/// Per-pair DPO losses.
pub fn dpo_losses(b: &DpoBatch<'_>, beta: f64, loss_type: DpoLossType, label_smoothing: f64) -> Vec<f64> {
    (0..b.pc.len())
        .map(|i| {
            let h = (b.pc[i] - b.pr[i]) - (b.rc[i] - b.rr[i]);
            let z = beta * h;
            let eps = label_smoothing;
            match loss_type {
                DpoLossType::Sigmoid => -(1.0 - eps) * log_sigmoid_f64(z) - eps * log_sigmoid_f64(-z),
                DpoLossType::Robust => {
                    (-(1.0 - eps) * log_sigmoid_f64(z) + eps * log_sigmoid_f64(-z)) / (1.0 - 2.0 * eps)
                }
                DpoLossType::Hinge => (1.0 - z).max(0.0),
                DpoLossType::Ipo => {
                    let hn = (b.pc[i] / b.lc[i] - b.pr[i] / b.lr[i]) - (b.rc[i] / b.lc[i] - b.rr[i] / b.lr[i]);
                    (hn - 1.0 / (2.0 * beta)).powi(2)
                }
            }
        })
        .collect()
}

/// The per-pair DPO loss on tensors (`[pairs]` each); differentiable in `pc` and `pr`.
#[allow(clippy::too_many_arguments)]
pub fn dpo_loss_tensor(
    pc: Tensor<1>,
    pr: Tensor<1>,
    rc: Tensor<1>,
    rr: Tensor<1>,
    lc: Tensor<1>,
    lr: Tensor<1>,
    beta: f64,
    loss_type: DpoLossType,
    label_smoothing: f64,
) -> Tensor<1> {
    let eps = label_smoothing;
    match loss_type {
        DpoLossType::Ipo => {
            let hn = (pc / lc.clone() - pr / lr.clone()) - (rc / lc - rr / lr);
            hn.sub_scalar(1.0 / (2.0 * beta)).square()
        }
        _ => {
            let z = ((pc - pr) - (rc - rr)).mul_scalar(beta);
            match loss_type {
                DpoLossType::Sigmoid => {
                    let a = log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps));
                    if eps == 0.0 {
                        a
                    } else {
                        a - log_sigmoid(z.neg()).mul_scalar(eps)
                    }
                }
                DpoLossType::Robust => (log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps))
                    + log_sigmoid(z.neg()).mul_scalar(eps))
                .div_scalar(1.0 - 2.0 * eps),
                DpoLossType::Hinge => relu(z.neg().add_scalar(1.0)),
                DpoLossType::Ipo => unreachable!("handled above"),
            }
        }
    }
}

/// DPO's logged metrics, with TRL's names (means over the pairs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpoMetrics {
    /// `rewards/chosen`: mean `β (pc - rc)`.
    pub rewards_chosen: f64,
    /// `rewards/rejected`: mean `β (pr - rr)`.
    pub rewards_rejected: f64,
    /// `rewards/accuracies`: fraction of pairs with chosen reward > rejected reward.
    pub rewards_accuracies: f64,
    /// `rewards/margins`: mean of chosen minus rejected reward.
    pub rewards_margins: f64,
    /// `logps/chosen`: mean policy log-prob of the chosen completions.
    pub logps_chosen: f64,
    /// `logps/rejected`: mean policy log-prob of the rejected completions.
    pub logps_rejected: f64,
}

impl DpoMetrics {
    /// Compute from a batch.
    pub fn compute(b: &DpoBatch<'_>, beta: f64) -> Self {
        let n = b.pc.len().max(1) as f64;
        let ch: Vec<f64> = (0..b.pc.len()).map(|i| beta * (b.pc[i] - b.rc[i])).collect();
        let rj: Vec<f64> = (0..b.pc.len()).map(|i| beta * (b.pr[i] - b.rr[i])).collect();
        DpoMetrics {
            rewards_chosen: ch.iter().sum::<f64>() / n,
            rewards_rejected: rj.iter().sum::<f64>() / n,
            rewards_accuracies: ch.iter().zip(&rj).filter(|(c, r)| c > r).count() as f64 / n,
            rewards_margins: ch.iter().zip(&rj).map(|(c, r)| c - r).sum::<f64>() / n,
            logps_chosen: b.pc.iter().sum::<f64>() / n,
            logps_rejected: b.pr.iter().sum::<f64>() / n,
        }
    }

    /// `(name, value)` pairs with TRL's metric names.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("rewards/chosen", self.rewards_chosen),
            ("rewards/rejected", self.rewards_rejected),
            ("rewards/accuracies", self.rewards_accuracies),
            ("rewards/margins", self.rewards_margins),
            ("logps/chosen", self.logps_chosen),
            ("logps/rejected", self.logps_rejected),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Reward model
// ---------------------------------------------------------------------------------------------

/// Bradley-Terry loss (batch mean) with an optional margin per pair and optional reward centering
/// coefficient.
pub fn reward_model_loss(chosen: &[f64], rejected: &[f64], margin: Option<&[f64]>, center_coef: Option<f64>) -> f64 {
    let n = chosen.len().max(1) as f64;
    let mut loss = (0..chosen.len())
        .map(|i| -log_sigmoid_f64(chosen[i] - rejected[i] - margin.map_or(0.0, |m| m[i])))
        .sum::<f64>()
        / n;
    if let Some(c) = center_coef {
        loss += c * reward_centering_term(chosen, rejected);
    }
    loss
}

/// `mean((r_c + r_r)^2)`, the reward-centering penalty before its coefficient.
pub fn reward_centering_term(chosen: &[f64], rejected: &[f64]) -> f64 {
    chosen.iter().zip(rejected).map(|(c, r)| (c + r).powi(2)).sum::<f64>() / chosen.len().max(1) as f64
}

/// Fraction of pairs whose chosen reward is strictly above the rejected one (TRL's `accuracy`).
pub fn reward_accuracy(chosen: &[f64], rejected: &[f64]) -> f64 {
    chosen.iter().zip(rejected).filter(|(c, r)| c > r).count() as f64 / chosen.len().max(1) as f64
}

/// The Bradley-Terry loss on tensors (`[pairs]`), batch mean, margin and centering optional.
pub fn reward_model_loss_tensor(
    chosen: Tensor<1>,
    rejected: Tensor<1>,
    margin: Option<Tensor<1>>,
    center_coef: Option<f64>,
) -> Tensor<1> {
    let mut d = chosen.clone() - rejected.clone();
    if let Some(m) = margin {
        d = d - m;
    }
    let mut loss = log_sigmoid(d).neg().mean();
    if let Some(c) = center_coef {
        loss = loss + (chosen + rejected).square().mean().mul_scalar(c);
    }
    loss
}

// ---------------------------------------------------------------------------------------------
// GRPO
// ---------------------------------------------------------------------------------------------

/// How rewards are scaled into advantages (TRL's `scale_rewards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the group's standard deviation (TRL's default).
    #[default]
    Group,
    /// Divide by the whole batch's standard deviation.
    Batch,
    /// Do not divide (Dr. GRPO).
    None,
}

/// How per-token losses are reduced (TRL's `loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpoLossType {
    /// Mean over sequences of the per-sequence token mean (the original GRPO).
    Grpo,
    /// Sum over tokens / completion tokens in the local batch.
    Bnpo,
    /// Sum over tokens / (batch size × max_completion_length).
    DrGrpo,
    /// Sum over tokens / completion tokens in the global batch (TRL 1.x's default).
    #[default]
    Dapo,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// Unbiased standard deviation (`torch.std`); 0 for fewer than two values... (NaN in torch; we use 0 so
/// a group of one gives a zero advantage rather than NaN).
pub fn std_unbiased(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// GRPO advantages of `rewards` laid out group by group (`g` completions per prompt), plus the
/// per-group standard deviations (for `reward_std` and `frac_reward_zero_std`).
pub fn grpo_advantages(rewards: &[f64], g: usize, scale: ScaleRewards) -> (Vec<f64>, Vec<f64>) {
    assert!(g > 0 && rewards.len().is_multiple_of(g), "rewards come in whole groups of {g}");
    let batch_std = std_unbiased(rewards);
    let mut adv = Vec::with_capacity(rewards.len());
    let mut stds = Vec::new();
    for group in rewards.chunks(g) {
        let m = mean(group);
        let s = std_unbiased(group);
        stds.push(s);
        let denom = match scale {
            ScaleRewards::Group => s + 1e-4,
            ScaleRewards::Batch => batch_std + 1e-4,
            ScaleRewards::None => 1.0,
        };
        adv.extend(group.iter().map(|r| (r - m) / denom));
    }
    (adv, stds)
}

/// The settings the GRPO per-token loss needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoLossSettings {
    /// Lower clip range `ε`.
    pub epsilon: f64,
    /// Upper clip range (`ε_high`, DAPO's clip-higher).
    pub epsilon_high: f64,
    /// KL coefficient (0: no KL term).
    pub beta: f64,
    /// The reduction.
    pub loss_type: GrpoLossType,
    /// `max_completion_length` (the `dr_grpo` denominator).
    pub max_completion_length: usize,
}

/// What one GRPO loss evaluation reports besides the loss.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GrpoLossStats {
    /// The aggregated loss.
    pub loss: f64,
    /// Masked token mean of the k3 KL (0 when `beta = 0`).
    pub kl: f64,
    /// Fraction of completion tokens clipped at the low side (`ρ < 1-ε` with `A < 0`).
    pub clip_low: f64,
    /// Fraction clipped at the high side (`ρ > 1+ε_high` with `A > 0`).
    pub clip_high: f64,
    /// Fraction in either clipped region.
    pub clip_region: f64,
}

/// The GRPO loss over `f64` rows: `logp`, `old_logp`, `ref_logp` are `[B*T]` row-major, `mask` `[B*T]` (0/1),
/// `adv` `[B]`.
pub fn grpo_loss(
    logp: &[f64],
    old_logp: &[f64],
    ref_logp: Option<&[f64]>,
    mask: &[f64],
    adv: &[f64],
    t: usize,
    s: &GrpoLossSettings,
) -> GrpoLossStats {
    let b = adv.len();
    let mut per_tok = vec![0.0; b * t];
    let mut kl = vec![0.0; b * t];
    let (mut low, mut high, mut region) = (0.0, 0.0, 0.0);
    for (i, &a) in adv.iter().enumerate() {
        for j in 0..t {
            let k = i * t + j;
            let ratio = (logp[k] - old_logp[k]).exp();
            let clipped = ratio.clamp(1.0 - s.epsilon, 1.0 + s.epsilon_high);
            let mut l = -(ratio * a).min(clipped * a);
            if let (Some(r), true) = (ref_logp, s.beta != 0.0) {
                let d = r[k] - logp[k];
                kl[k] = d.exp() - d - 1.0;
                l += s.beta * kl[k];
            }
            per_tok[k] = l;
            let is_low = ratio < 1.0 - s.epsilon && a < 0.0;
            let is_high = ratio > 1.0 + s.epsilon_high && a > 0.0;
            low += mask[k] * is_low as u8 as f64;
            high += mask[k] * is_high as u8 as f64;
            region += mask[k] * (is_low || is_high) as u8 as f64;
        }
    }
    let tokens: f64 = mask.iter().sum::<f64>().max(1.0);
    let masked_sum: f64 = per_tok.iter().zip(mask).map(|(l, m)| l * m).sum();
    let loss = match s.loss_type {
        GrpoLossType::Grpo => {
            (0..b)
                .map(|i| {
                    let row = i * t..(i + 1) * t;
                    let n: f64 = mask[row.clone()].iter().sum::<f64>().max(1.0);
                    per_tok[row.clone()].iter().zip(&mask[row]).map(|(l, m)| l * m).sum::<f64>() / n
                })
                .sum::<f64>()
                / b.max(1) as f64
        }
        GrpoLossType::Bnpo | GrpoLossType::Dapo => masked_sum / tokens,
        GrpoLossType::DrGrpo => masked_sum / (b * s.max_completion_length) as f64,
    };
    GrpoLossStats {
        loss,
        kl: kl.iter().zip(mask).map(|(k, m)| k * m).sum::<f64>() / tokens,
        clip_low: low / tokens,
        clip_high: high / tokens,
        clip_region: region / tokens,
    }
}

/// The per-token GRPO loss on tensors: `logp`, `old_logp`, `ref_logp` `[B, T]`, `adv` `[B, 1]`.
/// Returns the per-token loss and the per-token k3 KL (when `beta != 0` and a reference is given).
pub fn grpo_per_token_loss(
    logp: Tensor<2>,
    old_logp: Tensor<2>,
    ref_logp: Option<Tensor<2>>,
    adv: Tensor<2>,
    s: &GrpoLossSettings,
) -> (Tensor<2>, Option<Tensor<2>>) {
    let ratio = (logp.clone() - old_logp).exp();
    let clipped = ratio.clone().clamp(1.0 - s.epsilon, 1.0 + s.epsilon_high);
    let a = adv.clone();
    let per_tok = (ratio * a.clone()).min_pair(clipped * a).neg();
    match (ref_logp, s.beta != 0.0) {
        (Some(r), true) => {
            let d = r - logp;
            let kl = (d.clone().exp() - d).sub_scalar(1.0);
            (per_tok + kl.clone().mul_scalar(s.beta), Some(kl))
        }
        _ => (per_tok, None),
    }
}

/// Reduce a `[B, T]` per-token loss with a 0/1 `mask` by `loss_type`; `global_tokens` is the `dapo`
/// denominator (completion tokens of the whole step's batch; `None`: this batch's).
pub fn grpo_aggregate(
    per_tok: Tensor<2>,
    mask: Tensor<2>,
    loss_type: GrpoLossType,
    max_completion_length: usize,
    global_tokens: Option<f64>,
) -> Tensor<1> {
    let b = per_tok.dims()[0];
    let masked = per_tok * mask.clone();
    match loss_type {
        GrpoLossType::Grpo => {
            let per_seq = masked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            per_seq.mean()
        }
        GrpoLossType::Bnpo => {
            let n = mask.sum().clamp_min(1.0);
            masked.sum() / n
        }
        GrpoLossType::DrGrpo => masked.sum().div_scalar((b * max_completion_length) as f64),
        GrpoLossType::Dapo => match global_tokens {
            Some(n) => masked.sum().div_scalar(n.max(1.0)),
            None => masked.sum() / mask.sum().clamp_min(1.0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sigmoid_is_stable() {
        assert!((log_sigmoid_f64(0.0) + std::f64::consts::LN_2).abs() < 1e-15);
        assert!(log_sigmoid_f64(-800.0).is_finite());
        assert_eq!(log_sigmoid_f64(800.0), 0.0);
    }

    #[test]
    fn advantages_of_a_constant_group_are_zero() {
        let (a, s) = grpo_advantages(&[0.5; 4], 4, ScaleRewards::Group);
        assert!(a.iter().all(|&x| x == 0.0));
        assert_eq!(s, vec![0.0]);
    }
}
