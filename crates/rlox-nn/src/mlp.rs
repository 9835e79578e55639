//! Multi-layer perceptrons.
//!
//! `MlpConfig { input: 4, hidden: vec![256, 256], output: 2, .. }.init(&device)` builds
//! `Linear(4, 256) -> act -> Linear(256, 256) -> act -> Linear(256, 2)`, the network of
//! Stable-Baselines3's `MlpPolicy` with `net_arch=[256, 256]`. Hidden layers use PyTorch's default
//! `nn.Linear` initialisation (weights and biases uniform in `±1/sqrt(fan_in)`, which is also burn's
//! default); the output layer's initialisation is chosen with [`OutputInit`].
//!
//! Parameters are named `layers.<i>.weight` (shape `[in, out]`: burn stores `x W`, the transpose
//! of PyTorch's `[out, in]`) and `layers.<i>.bias`.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{relu, tanh};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The nonlinearity between hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(0, x)` (SB3's default for DQN, SAC, TD3).
    #[default]
    Relu,
    /// `tanh(x)` (SB3's default for PPO and A2C).
    Tanh,
}

impl Activation {
    /// Apply the activation.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Tanh => tanh(x),
        }
    }
}

/// How the last layer is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputInit {
    /// Like every other layer: PyTorch's `nn.Linear` default (uniform in `±1/sqrt(fan_in)`).
    #[default]
    Default,
    /// Orthogonal weights with this gain and zero bias (SB3's `ortho_init`: 0.01 for policy
    /// heads, 1 for value heads).
    Orthogonal(f64),
    /// Weights and biases uniform in `±scale` (DDPG/TD3's 3e-3 for the last layer).
    Uniform(f64),
    /// All zeros (the network starts by outputting zeros).
    Zeros,
}

/// The shape of an MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Input features.
    pub input: usize,
    /// Widths of the hidden layers (empty: a single linear layer).
    pub hidden: Vec<usize>,
    /// Output features.
    pub output: usize,
    /// Nonlinearity between layers (none after the last).
    pub activation: Activation,
    /// Initialisation of the last layer.
    pub output_init: OutputInit,
}

impl MlpConfig {
    /// An MLP with ReLU and the default output initialisation.
    pub fn new(input: usize, hidden: &[usize], output: usize) -> Self {
        MlpConfig {
            input,
            hidden: hidden.to_vec(),
            output,
            activation: Activation::Relu,
            output_init: OutputInit::Default,
        }
    }

    /// Set the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Set the output layer's initialisation.
    pub fn with_output_init(mut self, init: OutputInit) -> Self {
        self.output_init = init;
        self
    }

    /// Build the network on `device` (use an autodiff device to train it).
    pub fn init(&self, device: &Device) -> Mlp {
        let mut widths = vec![self.input];
        widths.extend_from_slice(&self.hidden);
        widths.push(self.output);
        let n = widths.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let config = LinearConfig::new(widths[i], widths[i + 1]);
                if i + 1 < n {
                    return config.init(device);
                }
                match self.output_init {
                    OutputInit::Default => config.init(device),
                    OutputInit::Orthogonal(gain) => {
                        let mut layer = config.with_initializer(Initializer::Orthogonal { gain }).init(device);
                        layer.bias = Some(Initializer::Zeros.init([widths[i + 1]], device));
                        layer
                    }
                    OutputInit::Uniform(scale) => {
                        config.with_initializer(Initializer::Uniform { min: -scale, max: scale }).init(device)
                    }
                    OutputInit::Zeros => config.with_initializer(Initializer::Zeros).init(device),
                }
            })
            .collect();
        Mlp { layers, activation: self.activation }
    }
}

/// A multi-layer perceptron (see the module docs for its layout and parameter names).
#[derive(Module, Debug)]
pub struct Mlp {
    /// The linear layers, input first.
    pub layers: Vec<Linear>,
    /// The nonlinearity between layers.
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// `x`: `[batch, input]` (or any rank with the features last) to `[batch, output]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let n = self.layers.len();
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i + 1 < n {
                x = self.activation.forward(x);
            }
        }
        x
    }

    /// Input features.
    pub fn input_dim(&self) -> usize {
        self.layers[0].weight.lazy_shape().dims::<2>()[0]
    }

    /// Output features.
    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].weight.lazy_shape().dims::<2>()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{train_device, DeviceKind};
    use crate::testing::assert_all_params_get_grad;

    #[test]
    fn shapes_and_param_count() {
        let device = train_device(DeviceKind::Cpu, 1).unwrap();
        let mlp = MlpConfig::new(4, &[256, 256], 2).init(&device);
        assert_eq!(mlp.num_params(), 4 * 256 + 256 + 256 * 256 + 256 + 256 * 2 + 2);
        assert_eq!((mlp.input_dim(), mlp.output_dim()), (4, 2));
        let y = mlp.forward(Tensor::<2>::zeros([3, 4], &device));
        assert_eq!(y.dims(), [3, 2]);
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        for activation in [Activation::Relu, Activation::Tanh] {
            for out in [OutputInit::Default, OutputInit::Orthogonal(0.01), OutputInit::Uniform(3e-3)] {
                let device = train_device(DeviceKind::Cpu, 7).unwrap();
                let mlp =
                    MlpConfig::new(3, &[16, 8], 2).with_activation(activation).with_output_init(out).init(&device);
                let x = Tensor::<2>::random([32, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
                let loss = mlp.forward(x).square().mean();
                assert_all_params_get_grad(&mlp, &loss);
            }
        }
    }

    #[test]
    fn output_inits() {
        let device = train_device(DeviceKind::Cpu, 3).unwrap();
        let mlp = MlpConfig::new(3, &[64], 64).with_output_init(OutputInit::Orthogonal(2.0)).init(&device);
        let w: Vec<f32> = mlp.layers[1].weight.val().into_data().try_into_vec_as::<f32>().unwrap();
        let b: Vec<f32> = mlp.layers[1].bias.as_ref().unwrap().val().into_data().try_into_vec_as::<f32>().unwrap();
        assert!(b.iter().all(|&x| x == 0.0));
        // Orthogonal 64x64 with gain 2: each column has norm 2.
        let col0: f32 = (0..64).map(|r| w[r * 64] * w[r * 64]).sum::<f32>().sqrt();
        assert!((col0 - 2.0).abs() < 1e-3, "{col0}");
        let mlp = MlpConfig::new(3, &[64], 5).with_output_init(OutputInit::Uniform(3e-3)).init(&device);
        let w: Vec<f32> = mlp.layers[1].weight.val().into_data().try_into_vec_as::<f32>().unwrap();
        assert!(w.iter().all(|x| x.abs() <= 3e-3));
        // Default: hidden layer uniform in ±1/sqrt(3).
        let w: Vec<f32> = mlp.layers[0].weight.val().into_data().try_into_vec_as::<f32>().unwrap();
        let bound = 1.0 / 3f32.sqrt();
        assert!(w.iter().all(|x| x.abs() <= bound) && w.iter().any(|x| x.abs() > bound / 2.0));
    }
}
