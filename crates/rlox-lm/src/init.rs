//! How a model's parameters come into being when it is built: drawn at random (a model trained from
//! scratch, tests, benchmarks) or as a *lazy skeleton*, whose shapes are known but whose tensors are
//! never allocated — loading replaces every parameter, and [`crate::hf::hf_param_shapes_of`] reads the
//! shapes of a full-size configuration (16 billion parameters) without a byte of weights.

use crate::model::{Embedding, Linear, Mlp, RmsNorm};
use rlox_nn::burn::module::{Param, ParamId};
use rlox_nn::burn::tensor::Distribution;
use rlox_nn::{Device, Tensor};

/// Where parameter values come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Weights `N(0, std^2)`, norm scales one, biases zero (transformers' `_init_weights`).
    Normal(f64),
    /// Uninitialised: shapes only, allocated (as zeros or ones) only if a value is ever read.
    Lazy,
}

fn lazy<const D: usize>(shape: [usize; D], fill: f32, device: &Device) -> Param<Tensor<D>> {
    Param::uninitialized(
        ParamId::new(),
        move |device: &Device, require_grad: bool| {
            Tensor::<D>::full(shape, fill, device).set_require_grad(require_grad)
        },
        device.clone(),
        true,
        shape.into(),
    )
}

impl Init {
    /// A weight tensor.
    pub fn weight<const D: usize>(self, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
        match self {
            Init::Normal(std) => Param::from_tensor(Tensor::<D>::random(shape, Distribution::Normal(0.0, std), device)),
            Init::Lazy => lazy(shape, 0.0, device),
        }
    }

    /// A tensor of `value` (norm scales, biases).
    pub fn constant<const D: usize>(self, shape: [usize; D], value: f32, device: &Device) -> Param<Tensor<D>> {
        match self {
            Init::Normal(_) => Param::from_tensor(Tensor::<D>::full(shape, value, device)),
            Init::Lazy => lazy(shape, value, device),
        }
    }

    /// A linear layer `[input, output]`.
    pub fn linear(self, input: usize, output: usize, bias: bool, device: &Device) -> Linear {
        Linear {
            weight: self.weight([input, output], device),
            bias: bias.then(|| self.constant([output], 0.0, device)),
        }
    }

    /// An RMSNorm with scale one.
    pub fn rms_norm(self, width: usize, eps: f64, device: &Device) -> RmsNorm {
        RmsNorm { weight: self.constant([width], 1.0, device), eps }
    }

    /// A bias-free SwiGLU MLP.
    pub fn mlp(self, hidden: usize, inter: usize, device: &Device) -> Mlp {
        Mlp {
            gate_proj: self.linear(hidden, inter, false, device),
            up_proj: self.linear(hidden, inter, false, device),
            down_proj: self.linear(inter, hidden, false, device),
        }
    }

    /// A token embedding table.
    pub fn embedding(self, vocab: usize, hidden: usize, device: &Device) -> Embedding {
        Embedding { weight: self.weight([vocab, hidden], device) }
    }
}
