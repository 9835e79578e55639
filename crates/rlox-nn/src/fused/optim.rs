//! The optimizers of [`crate::OptimizerConfig`] as single loops over flat parameter and gradient
//! buffers, vectorised per instruction set, with the semantics of rlox-nn's burn path:
//!
//! * Adam: `g += wd·w` (L2, like `torch.optim.Adam`); `m = β1 m + (1-β1) g`,
//!   `v = β2 v + (1-β2) g²`; `w -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)` (epsilon
//!   added to the bias-corrected `sqrt(v̂)`), the same expressions in the same order as the fused host
//!   Adam of [`crate::optim`], so both give the same bits (where no denormal arises, see below).
//! * AdamW: as Adam without the L2 term, and `w *= 1 - lr·wd` first (decoupled decay).
//! * SGD: `g += wd·w`; with momentum `b = μ b + g` (no dampening; the first step `b = g`), then
//!   `g = b` or, Nesterov, `g + μ b`; `w -= lr g`.
//! * RMSprop: `g += wd·w`; `v = α v + (1-α) g²`; centred: `ḡ = α ḡ + (1-α) g`, `v' = v - ḡ²`;
//!   `u = g / (sqrt(v') + eps)`; with momentum `b = μ b + u`, `u = b`; `w -= lr u`.
//!
//! The step runs with denormals flushed to zero ([`super::FlushDenormals`]: a moment below
//! 1.2e-38 is stored as 0, which moves no parameter by a representable amount, and costs no
//! microcode assists on Intel cores).
//!
//! Gradient clipping is not part of the step ([`clip_grad_norm`], global norm as PyTorch's
//! `clip_grad_norm_`), nor is the target-network update ([`polyak_update`]).

use super::vector;
use super::Isa;
use crate::optim::OptimizerConfig;

/// An optimizer over one flat parameter buffer, with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedOptimizer {
    config: OptimizerConfig,
    isa: Isa,
    /// Adam's first moment, SGD's momentum buffer, RMSprop's square average.
    first: Vec<f32>,
    /// Adam's second moment, RMSprop's gradient average (centred).
    second: Vec<f32>,
    /// RMSprop's momentum buffer.
    third: Vec<f32>,
    steps: u64,
}

/// The state of a [`FusedOptimizer`], to checkpoint a run and resume it exactly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FusedOptimizerState {
    /// Steps taken.
    pub steps: u64,
    /// The per-parameter buffers, in the order of [`FusedOptimizer::buffer_names`].
    pub buffers: Vec<Vec<f32>>,
}

impl FusedOptimizer {
    /// An optimizer for `num_params` parameters (state zero, as PyTorch's lazily created state).
    pub fn new(config: OptimizerConfig, num_params: usize) -> Self {
        let (first, second, third) = match config {
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => (num_params, num_params, 0),
            OptimizerConfig::Sgd { momentum, .. } => (if momentum != 0.0 { num_params } else { 0 }, 0, 0),
            OptimizerConfig::RmsProp { momentum, centered, .. } => {
                (num_params, if centered { num_params } else { 0 }, if momentum != 0.0 { num_params } else { 0 })
            }
        };
        FusedOptimizer {
            config,
            isa: super::isa(),
            first: vec![0.0; first],
            second: vec![0.0; second],
            third: vec![0.0; third],
            steps: 0,
        }
    }

    /// Use the kernels of `isa` (the default is [`super::isa`]).
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update of `params` from `grads` with learning rate `lr`.
    ///
    /// # Panics
    /// If `params` and `grads` do not have the length the optimizer was made for.
    pub fn step(&mut self, lr: f64, params: &mut [f32], grads: &[f32]) {
        self.step_parts(lr, &mut [(params, grads)]);
    }

    /// One update of parameters kept in several buffers (an actor-critic's policy network, value
    /// network and log-std), as if they were one flat buffer in this order: the optimizer's state
    /// is laid out part after part, and the step count advances once.
    ///
    /// # Panics
    /// If a part's gradient differs in length from its parameters, or the parts together do not
    /// have the length the optimizer was made for.
    pub fn step_parts(&mut self, lr: f64, parts: &mut [(&mut [f32], &[f32])]) {
        let total: usize = parts.iter().map(|(p, _)| p.len()).sum();
        for (p, g) in parts.iter() {
            assert_eq!(g.len(), p.len(), "optimizer step: {} gradients for {} parameters", g.len(), p.len());
        }
        let made_for = match self.config {
            OptimizerConfig::Sgd { momentum: 0.0, .. } => total,
            _ => self.first.len(),
        };
        assert_eq!(made_for, total, "optimizer step: made for {made_for} parameters, given {total}");
        // Denormal moments cost a microcode assist per operation on Intel cores (see the module docs).
        let _flush = super::FlushDenormals::new();
        self.steps += 1;
        let lr = lr as f32;
        // A state buffer's slice for the part at `at` (empty buffers stay empty).
        fn part(buf: &mut [f32], at: usize, n: usize) -> &mut [f32] {
            if buf.is_empty() {
                buf
            } else {
                &mut buf[at..at + n]
            }
        }
        let mut at = 0;
        for (params, grads) in parts.iter_mut() {
            let n = params.len();
            let (first, second, third) =
                (part(&mut self.first, at, n), part(&mut self.second, at, n), part(&mut self.third, at, n));
            match self.config {
                OptimizerConfig::Adam { beta1, beta2, eps, weight_decay }
                | OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => {
                    let decoupled = matches!(self.config, OptimizerConfig::AdamW { .. });
                    let t = self.steps.min(i32::MAX as u64) as i32;
                    let bc1 = 1.0 - beta1.powi(t);
                    let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
                    let (l2, decay) = if decoupled { (0.0, 1.0 - lr * weight_decay) } else { (weight_decay, 1.0) };
                    let c =
                        AdamConsts { beta1, beta2, eps, step_size: lr / bc1, inv_bc2_sqrt: 1.0 / bc2_sqrt, l2, decay };
                    adam(self.isa, params, grads, first, second, c);
                }
                OptimizerConfig::Sgd { momentum, nesterov, weight_decay } => {
                    let c = SgdConsts { lr, momentum: momentum as f32, nesterov, weight_decay };
                    sgd(self.isa, params, grads, first, c);
                }
                OptimizerConfig::RmsProp { alpha, eps, momentum, centered, weight_decay } => {
                    let c = RmsConsts { lr, alpha, eps, momentum, centered, weight_decay };
                    rmsprop(self.isa, params, grads, first, second, third, c);
                }
            }
            at += n;
        }
    }

    /// Names of the state buffers, in the order of [`FusedOptimizerState::buffers`].
    pub fn buffer_names(&self) -> Vec<&'static str> {
        let names: [&'static str; 3] = match self.config {
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => ["exp_avg", "exp_avg_sq", ""],
            OptimizerConfig::Sgd { .. } => ["momentum_buffer", "", ""],
            OptimizerConfig::RmsProp { .. } => ["square_avg", "grad_avg", "momentum_buffer"],
        };
        [&self.first, &self.second, &self.third]
            .iter()
            .zip(names)
            .filter(|(b, _)| !b.is_empty())
            .map(|(_, name)| name)
            .collect()
    }

    /// The state, to save with a checkpoint.
    pub fn state(&self) -> FusedOptimizerState {
        let buffers = [&self.first, &self.second, &self.third].into_iter().filter(|b| !b.is_empty()).cloned().collect();
        FusedOptimizerState { steps: self.steps, buffers }
    }

    /// Restore a state from [`FusedOptimizer::state`] of an optimizer with the same configuration and
    /// parameter count; an error says which buffer does not fit.
    pub fn set_state(&mut self, state: FusedOptimizerState) -> rlox_core::Result<()> {
        let names = self.buffer_names();
        if state.buffers.len() != names.len() {
            return Err(rlox_core::Error::invalid(
                "optimizer state",
                format!("{} buffers for an optimizer with {} ({names:?})", state.buffers.len(), names.len()),
            ));
        }
        let mut buffers = state.buffers.into_iter();
        for (name, own) in
            names.iter().zip([&mut self.first, &mut self.second, &mut self.third].into_iter().filter(|b| !b.is_empty()))
        {
            let b = buffers.next().expect("counted above");
            if b.len() != own.len() {
                return Err(rlox_core::Error::invalid(
                    "optimizer state",
                    format!("buffer '{name}' has {} values for {} parameters", b.len(), own.len()),
                ));
            }
            *own = b;
        }
        self.steps = state.steps;
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct AdamConsts {
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    inv_bc2_sqrt: f32,
    l2: f32,
    decay: f32,
}

#[inline(always)]
fn adam_body(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamConsts) {
    let AdamConsts { beta1: b1, beta2: b2, eps, step_size, inv_bc2_sqrt, l2, decay } = c;
    for (((wi, &gi), mi), vi) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let gi = gi + l2 * *wi;
        *mi = b1 * *mi + (1.0 - b1) * gi;
        *vi = b2 * *vi + (1.0 - b2) * gi * gi;
        *wi = *wi * decay - step_size * *mi / (vi.sqrt() * inv_bc2_sqrt + eps);
    }
}

per_isa! {
    fn adam(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamConsts) => adam_body
}

#[derive(Clone, Copy)]
struct SgdConsts {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
}

#[inline(always)]
fn sgd_body(w: &mut [f32], g: &[f32], buf: &mut [f32], c: SgdConsts) {
    let SgdConsts { lr, momentum, nesterov, weight_decay } = c;
    if momentum == 0.0 {
        for (wi, &gi) in w.iter_mut().zip(g) {
            let gi = gi + weight_decay * *wi;
            *wi -= lr * gi;
        }
        return;
    }
    for ((wi, &gi), bi) in w.iter_mut().zip(g).zip(buf.iter_mut()) {
        let gi = gi + weight_decay * *wi;
        *bi = momentum * *bi + gi;
        let d = if nesterov { gi + momentum * *bi } else { *bi };
        *wi -= lr * d;
    }
}

per_isa! {
    fn sgd(w: &mut [f32], g: &[f32], buf: &mut [f32], c: SgdConsts) => sgd_body
}

#[derive(Clone, Copy)]
struct RmsConsts {
    lr: f32,
    alpha: f32,
    eps: f32,
    momentum: f32,
    centered: bool,
    weight_decay: f32,
}

#[inline(always)]
fn rmsprop_body(w: &mut [f32], g: &[f32], sq: &mut [f32], avg: &mut [f32], buf: &mut [f32], c: RmsConsts) {
    let RmsConsts { lr, alpha, eps, momentum, centered, weight_decay } = c;
    // The four variants as separate loops, so that each vectorises without branches.
    match (centered, momentum != 0.0) {
        (false, false) => {
            for ((wi, &gi), si) in w.iter_mut().zip(g).zip(sq.iter_mut()) {
                let gi = gi + weight_decay * *wi;
                *si = alpha * *si + (1.0 - alpha) * (gi * gi);
                *wi -= lr * (gi / (si.sqrt() + eps));
            }
        }
        (false, true) => {
            for (((wi, &gi), si), bi) in w.iter_mut().zip(g).zip(sq.iter_mut()).zip(buf.iter_mut()) {
                let gi = gi + weight_decay * *wi;
                *si = alpha * *si + (1.0 - alpha) * (gi * gi);
                *bi = momentum * *bi + gi / (si.sqrt() + eps);
                *wi -= lr * *bi;
            }
        }
        (true, false) => {
            for (((wi, &gi), si), ai) in w.iter_mut().zip(g).zip(sq.iter_mut()).zip(avg.iter_mut()) {
                let gi = gi + weight_decay * *wi;
                *si = alpha * *si + (1.0 - alpha) * (gi * gi);
                *ai = alpha * *ai + (1.0 - alpha) * gi;
                *wi -= lr * (gi / ((*si - *ai * *ai).sqrt() + eps));
            }
        }
        (true, true) => {
            for ((((wi, &gi), si), ai), bi) in
                w.iter_mut().zip(g).zip(sq.iter_mut()).zip(avg.iter_mut()).zip(buf.iter_mut())
            {
                let gi = gi + weight_decay * *wi;
                *si = alpha * *si + (1.0 - alpha) * (gi * gi);
                *ai = alpha * *ai + (1.0 - alpha) * gi;
                *bi = momentum * *bi + gi / ((*si - *ai * *ai).sqrt() + eps);
                *wi -= lr * *bi;
            }
        }
    }
}

per_isa! {
    fn rmsprop(w: &mut [f32], g: &[f32], sq: &mut [f32], avg: &mut [f32], buf: &mut [f32], c: RmsConsts) => rmsprop_body
}

/// The global L2 norm of a flat gradient (in f64).
pub fn grad_norm(grads: &[f32]) -> f64 {
    vector::sum_squares(super::isa(), grads).sqrt()
}

/// Scale `grads` by `min(1, max_norm / (norm + 1e-6))` and return the norm before clipping, as
/// [`crate::clip_grad_norm`] (and PyTorch's `clip_grad_norm_`) do. A non-finite norm is returned as
/// is and the gradient left untouched: the caller decides.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f64) -> f64 {
    let norm = grad_norm(grads);
    if !norm.is_finite() {
        return norm;
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        vector::scale(super::isa(), grads, coef as f32);
    }
    norm
}

/// [`clip_grad_norm`] over a gradient kept in several buffers: one global norm, every part scaled
/// by the same factor.
pub fn clip_grad_norm_parts(parts: &mut [&mut [f32]], max_norm: f64) -> f64 {
    let norm = parts.iter().map(|g| vector::sum_squares(super::isa(), g)).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return norm;
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        parts.iter_mut().for_each(|g| vector::scale(super::isa(), g, coef as f32));
    }
    norm
}

/// The target-network update `target = tau · online + (1 - tau) · target` over flat parameters
/// (SB3's `polyak_update`); `tau >= 1` copies.
///
/// # Panics
/// If the buffers differ in length.
pub fn polyak_update(target: &mut [f32], online: &[f32], tau: f64) {
    assert_eq!(target.len(), online.len(), "polyak_update: target and online networks differ");
    if tau >= 1.0 {
        target.copy_from_slice(online);
    } else {
        vector::polyak(super::isa(), target, online, tau as f32);
    }
}
