//! Optimizers: Adam, AdamW and SGD through burn's implementations, configured with PyTorch's
//! defaults (burn's own Adam epsilon is 1e-5; PyTorch's, used by SB3 and TRL, is 1e-8).
//!
//! An [`Optimizer`] keeps the per-parameter state (moments) and applies one step to a module:
//! `model = optimizer.step(lr, model, grads)`. Gradient clipping is not part of the optimizer: call
//! [`crate::clip::clip_grad_norm`] on the gradients first (global norm, as PyTorch does).

use crate::Grads;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

/// Which optimizer, with its hyper-parameters (the learning rate is passed to each step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba), with L2 weight decay added to the gradient like `torch.optim.Adam`.
    Adam {
        /// First-moment decay (PyTorch: 0.9).
        #[serde(default = "beta1")]
        beta1: f32,
        /// Second-moment decay (PyTorch: 0.999).
        #[serde(default = "beta2")]
        beta2: f32,
        /// Denominator epsilon (PyTorch: 1e-8).
        #[serde(default = "eps")]
        eps: f32,
        /// L2 penalty (PyTorch: 0).
        #[serde(default)]
        weight_decay: f32,
    },
    /// AdamW: decoupled weight decay (Loshchilov & Hutter), like `torch.optim.AdamW`.
    #[serde(rename = "adamw")]
    AdamW {
        /// First-moment decay (PyTorch: 0.9).
        #[serde(default = "beta1")]
        beta1: f32,
        /// Second-moment decay (PyTorch: 0.999).
        #[serde(default = "beta2")]
        beta2: f32,
        /// Denominator epsilon (PyTorch: 1e-8).
        #[serde(default = "eps")]
        eps: f32,
        /// Decoupled decay (PyTorch: 0.01).
        #[serde(default = "adamw_decay")]
        weight_decay: f32,
    },
    /// Stochastic gradient descent, optionally with momentum (no dampening, like PyTorch's default).
    Sgd {
        /// Momentum factor (0: plain SGD).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty.
        #[serde(default)]
        weight_decay: f32,
    },
}

fn beta1() -> f32 {
    0.9
}
fn beta2() -> f32 {
    0.999
}
fn eps() -> f32 {
    1e-8
}
fn adamw_decay() -> f32 {
    0.01
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::adam()
    }
}

impl OptimizerConfig {
    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam { beta1: beta1(), beta2: beta2(), eps: eps(), weight_decay: 0.0 }
    }

    /// AdamW with PyTorch's defaults.
    pub fn adamw() -> Self {
        OptimizerConfig::AdamW { beta1: beta1(), beta2: beta2(), eps: eps(), weight_decay: adamw_decay() }
    }

    /// Plain SGD.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }

    /// Build the optimizer.
    pub fn build(&self) -> Optimizer {
        let decay = |w: f32| (w != 0.0).then(|| WeightDecayConfig::new(w));
        let inner = match *self {
            OptimizerConfig::Adam { beta1, beta2, eps, weight_decay } => AdamConfig::new()
                .with_beta_1(beta1)
                .with_beta_2(beta2)
                .with_epsilon(eps)
                .with_weight_decay(decay(weight_decay))
                .init(),
            OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => AdamWConfig::new()
                .with_beta_1(beta1)
                .with_beta_2(beta2)
                .with_epsilon(eps)
                .with_weight_decay(weight_decay)
                .init(),
            OptimizerConfig::Sgd { momentum, nesterov, weight_decay } => SgdConfig::new()
                .with_weight_decay(decay(weight_decay))
                .with_momentum((momentum != 0.0).then(|| MomentumConfig { momentum, dampening: 0.0, nesterov }))
                .init(),
        };
        Optimizer { inner, steps: 0 }
    }
}

/// An optimizer with its state.
#[derive(Clone)]
pub struct Optimizer {
    inner: ModuleOptimizer,
    steps: u64,
}

impl Optimizer {
    /// Apply one update with learning rate `lr` and return the updated module.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: Grads) -> M {
        self.steps += 1;
        self.inner.step(lr, module, grads)
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// burn's optimizer, for what this wrapper does not expose (state records, parameter groups).
    pub fn inner_mut(&mut self) -> &mut ModuleOptimizer {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{train_device, DeviceKind};
    use crate::mlp::MlpConfig;
    use burn::tensor::{Tensor, TensorData};

    /// Fit y = 2x - 1 with each optimizer: the loss must fall by 100x.
    #[test]
    fn each_optimizer_fits_a_line() {
        for config in [OptimizerConfig::adam(), OptimizerConfig::adamw(), OptimizerConfig::sgd()] {
            let device = train_device(DeviceKind::Cpu, 11).unwrap();
            let mut model = MlpConfig::new(1, &[], 1).init(&device);
            let xs: Vec<f32> = (0..32).map(|i| i as f32 / 16.0 - 1.0).collect();
            let ys: Vec<f32> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
            let x = Tensor::<2>::from_data(TensorData::new(xs, [32, 1]), &device);
            let y = Tensor::<2>::from_data(TensorData::new(ys, [32, 1]), &device);
            let mut opt = config.build();
            let lr = if matches!(config, OptimizerConfig::Sgd { .. }) { 0.2 } else { 0.05 };
            let mut first = None;
            let mut last = 0.0;
            for _ in 0..300 {
                let loss = (model.forward(x.clone()) - y.clone()).square().mean();
                last = loss.clone().into_scalar::<f32>();
                first.get_or_insert(last);
                let grads = crate::backward(&loss, &model);
                model = opt.step(lr, model, grads);
            }
            assert!(last < first.unwrap() / 100.0, "{config:?}: {first:?} -> {last}");
            assert_eq!(opt.steps(), 300);
        }
    }

    #[test]
    fn serde_defaults() {
        let c: OptimizerConfig = serde_json::from_str(r#"{"kind": "adam"}"#).unwrap();
        assert_eq!(c, OptimizerConfig::adam());
        let c: OptimizerConfig = serde_json::from_str(r#"{"kind": "adamw", "weight_decay": 0.1}"#).unwrap();
        assert!(matches!(c, OptimizerConfig::AdamW { weight_decay, .. } if weight_decay == 0.1));
        assert!(serde_json::from_str::<OptimizerConfig>(r#"{"kind": "adam", "betta": 1}"#).is_err());
    }
}
