//! Global-norm gradient clipping (PyTorch's `torch.nn.utils.clip_grad_norm_`).
//!
//! The norm is taken over **all** parameters' gradients together, `||g|| = sqrt(sum_p sum_i g_pi^2)`,
//! and every gradient is scaled by the same factor `min(1, max_norm / (||g|| + 1e-6))`, so the
//! update keeps its direction. burn's `GradientClipping::Norm` clips each tensor by its own norm,
//! which changes the direction; RL (SB3's `max_grad_norm`) and post-training need the global one.
//!
//! The squared norms are summed on the device and read back once.

use crate::Grads;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use std::collections::HashSet;

struct SquaredNorm<'a> {
    grads: &'a Grads,
    seen: HashSet<ParamId>,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.seen.insert(param.id) {
            return;
        }
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut Grads,
    seen: HashSet<ParamId>,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.seen.insert(param.id) {
            return;
        }
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The global L2 norm of `module`'s gradients in `grads` (parameters without a gradient count as 0).
pub fn global_grad_norm<M: Module>(module: &M, grads: &Grads) -> f64 {
    let mut v = SquaredNorm { grads, seen: HashSet::new(), total: None };
    module.visit(&mut v);
    match v.total {
        Some(t) => (t.into_scalar::<f32>() as f64).sqrt(),
        None => 0.0,
    }
}

/// Scale all of `module`'s gradients by `min(1, max_norm / (norm + 1e-6))` and return the norm
/// **before** clipping (as PyTorch does).
///
/// A non-finite norm (a NaN or infinite gradient) is returned as is and the gradients are left
/// untouched: the caller decides (DQN stops the run with an error).
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut Grads, max_norm: f64) -> f64 {
    let norm = global_grad_norm(module, grads);
    if !norm.is_finite() {
        return norm;
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let mut s = Scale { grads, seen: HashSet::new(), factor: coef as f32 };
        module.visit(&mut s);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{train_device, DeviceKind};
    use crate::mlp::MlpConfig;
    use burn::tensor::TensorData;

    /// Gradients with known values: a 2-layer linear model, loss = sum(W1) * a + sum(b1) * b + ...
    /// is awkward; instead register hand-made gradients for each parameter id.
    fn known_grads(mlp: &crate::Mlp) -> (Grads, Vec<Vec<f32>>) {
        let mut grads = Grads::new();
        let mut values = Vec::new();
        for (k, layer) in mlp.layers.iter().enumerate() {
            let w = layer.weight.val();
            let [i, o] = w.dims();
            let gw: Vec<f32> = (0..i * o).map(|j| ((j + k) % 5) as f32 - 2.0).collect();
            grads.register(layer.weight.id, Tensor::<2>::from_data(TensorData::new(gw.clone(), [i, o]), &w.device()));
            values.push(gw);
            let b = layer.bias.as_ref().unwrap();
            let gb: Vec<f32> = (0..o).map(|j| 0.5 * (j as f32 + 1.0)).collect();
            grads.register(b.id, Tensor::<1>::from_data(TensorData::new(gb.clone(), [o]), &w.device()));
            values.push(gb);
        }
        (grads, values)
    }

    fn read(mlp: &crate::Mlp, grads: &Grads) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for layer in &mlp.layers {
            out.push(grads.get::<2>(layer.weight.id).unwrap().into_data().try_into_vec_as::<f32>().unwrap());
            out.push(
                grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap().into_data().try_into_vec_as::<f32>().unwrap(),
            );
        }
        out
    }

    #[test]
    fn global_norm_matches_hand_computation_and_scales_uniformly() {
        let device = train_device(DeviceKind::Cpu, 0).unwrap();
        let mlp = MlpConfig::new(3, &[4], 2).init(&device);
        let (mut grads, values) = known_grads(&mlp);
        let expected: f64 = values.iter().flatten().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        let norm = global_grad_norm(&mlp, &grads);
        assert!((norm - expected).abs() < 1e-5 * expected, "{norm} vs {expected}");

        // Clipping to half the norm halves every gradient (same factor for all tensors).
        let max_norm = expected / 2.0;
        let before = clip_grad_norm(&mlp, &mut grads, max_norm);
        assert!((before - expected).abs() < 1e-5 * expected);
        let coef = (max_norm / (expected + 1e-6)) as f32;
        for (got, want) in read(&mlp, &grads).iter().zip(&values) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w * coef).abs() < 1e-5, "{g} vs {}", w * coef);
            }
        }
        let after = global_grad_norm(&mlp, &grads);
        assert!((after - max_norm).abs() < 1e-4 * max_norm, "{after} vs {max_norm}");
    }

    #[test]
    fn below_the_threshold_nothing_changes() {
        let device = train_device(DeviceKind::Cpu, 0).unwrap();
        let mlp = MlpConfig::new(3, &[4], 2).init(&device);
        let (mut grads, values) = known_grads(&mlp);
        let norm = clip_grad_norm(&mlp, &mut grads, 1e9);
        assert!(norm > 0.0);
        assert_eq!(read(&mlp, &grads), values);
    }

    #[test]
    fn differs_from_per_tensor_clipping() {
        // Per-tensor clipping would scale each tensor to norm <= max; global keeps the ratios.
        let device = train_device(DeviceKind::Cpu, 0).unwrap();
        let mlp = MlpConfig::new(3, &[4], 2).init(&device);
        let (mut grads, values) = known_grads(&mlp);
        clip_grad_norm(&mlp, &mut grads, 1.0);
        let got = read(&mlp, &grads);
        let ratio_before = values[0][0] / values[1][0];
        let ratio_after = got[0][0] / got[1][0];
        assert!((ratio_before - ratio_after).abs() < 1e-5);
    }

    #[test]
    fn nan_gradient_gives_nan_norm_and_leaves_grads() {
        let device = train_device(DeviceKind::Cpu, 0).unwrap();
        let mlp = MlpConfig::new(1, &[], 1).init(&device);
        let mut grads = Grads::new();
        let w = &mlp.layers[0].weight;
        grads.register(w.id, Tensor::<2>::from_data(TensorData::new(vec![f32::NAN], [1, 1]), &device));
        assert!(clip_grad_norm(&mlp, &mut grads, 1.0).is_nan());
    }
}
