//! Whole-module parameter operations: target-network updates and finiteness checks.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use std::collections::VecDeque;

struct Flatten {
    out: VecDeque<Tensor<1>>,
}

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().inner();
        let n = t.shape().num_elements();
        self.out.push_back(t.reshape([n]));
    }
}

struct Blend {
    online: VecDeque<Tensor<1>>,
    tau: f32,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let online = self.online.pop_front().expect("target and online networks have the same parameters");
        let tau = self.tau;
        param.map(|t| {
            let shape = t.shape();
            let o: Tensor<D> = online.reshape(shape.dims::<D>());
            t.mul_scalar(1.0 - tau) + o.mul_scalar(tau)
        })
    }
}

/// The target-network update of DQN, DDPG, TD3 and SAC: `target <- tau * online + (1 - tau) * target`
/// (SB3's `polyak_update`). `tau = 1` is a hard copy. The target is returned without autodiff
/// (a validation snapshot): gradients never flow into it.
///
/// Both modules must have the same architecture (same parameters in the same order).
pub fn polyak_update<M: Module>(target: M, online: &M, tau: f64) -> M {
    if tau >= 1.0 {
        return online.valid();
    }
    let mut f = Flatten { out: VecDeque::new() };
    online.visit(&mut f);
    let mut blend = Blend { online: f.out, tau: tau as f32 };
    let updated = target.map(&mut blend);
    assert!(blend.online.is_empty(), "target and online networks have the same parameters");
    updated
}

struct Finite {
    ok: bool,
}

impl ModuleVisitor for Finite {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.ok {
            self.ok = param.val().inner().is_finite().all().into_scalar::<bool>();
        }
    }
}

/// Whether every parameter of `module` is finite (no NaN, no infinity).
pub fn all_finite<M: Module>(module: &M) -> bool {
    let mut f = Finite { ok: true };
    module.visit(&mut f);
    f.ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{train_device, DeviceKind};
    use crate::mlp::MlpConfig;

    fn values(m: &crate::Mlp) -> Vec<f32> {
        m.layers.iter().flat_map(|l| l.weight.val().into_data().try_into_vec_as::<f32>().unwrap()).collect()
    }

    #[test]
    fn polyak_blends_and_hard_copies() {
        let device = train_device(DeviceKind::Cpu, 1).unwrap();
        let online = MlpConfig::new(3, &[4], 2).init(&device);
        device.seed(2);
        let target = MlpConfig::new(3, &[4], 2).init(&device).valid();
        let (o, t) = (values(&online), values(&target));
        let blended = polyak_update(target.clone(), &online, 0.25);
        for ((b, o), t) in values(&blended).iter().zip(&o).zip(&t) {
            assert!((b - (0.25 * o + 0.75 * t)).abs() < 1e-6);
        }
        let hard = polyak_update(target, &online, 1.0);
        assert_eq!(values(&hard), o);
        assert!(all_finite(&hard));
        assert!(!hard.layers[0].weight.val().is_autodiff() || !hard.layers[0].weight.val().is_require_grad());
    }
}
