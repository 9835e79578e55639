//! # rlox-nn
//!
//! The one place in rlox that knows [burn](https://burn.dev) (pinned to exactly 0.22.1). Everything
//! neural in rlox goes through this crate, so a burn upgrade touches one crate.
//!
//! * [`device`]: device selection. burn 0.22 has no backend type parameter any more: a
//!   [`Device`] value names the backend at run time, and `device.autodiff()` turns on gradients. The
//!   default is burn's pure-Rust CPU backend **Flex** (`flex` feature, on by default, with its SIMD
//!   kernels: `simd`); NdArray (`ndarray`) is a fallback and CUDA through CubeCL (`cuda`) is compiled
//!   only when that feature is asked for.
//! * [`mlp`]: multi-layer perceptrons with ReLU/Tanh and a choice of output-layer initialisation.
//! * [`optim`]: Adam, AdamW and SGD through burn's optimizers, with PyTorch's defaults.
//! * [`clip`]: **global**-norm gradient clipping over all parameters at once (PyTorch's
//!   `clip_grad_norm_`); burn's `GradientClipping::Norm` clips each tensor on its own.
//! * [`schedule`]: learning-rate (and exploration) schedules: constant, linear decay.
//! * [`checkpoint`]: a module's parameters as safetensors, written atomically; loading checks names
//!   and shapes and reports mismatches as errors (never a panic).
//! * [`attention`]: exact FlashAttention-style attention on the CPU (tiled forward and backward,
//!   online softmax, O(N) memory), as a burn autodiff operation with its own backward.
//! * [`recompute`]: activation (gradient) checkpointing: a block's intermediates are recomputed in the
//!   backward pass instead of stored.
//! * [`testing`]: [`testing::assert_all_params_get_grad`], which catches graphs cut by a non-differentiable op.
//!
//! burn itself is re-exported as [`burn`] so that downstream crates use the same pinned version
//! without naming it in their manifests.

pub mod attention;
pub mod checkpoint;
pub mod clip;
pub mod device;
pub mod mlp;
pub mod optim;
pub mod params;
pub mod recompute;
pub mod schedule;
pub mod testing;

pub use burn;
pub use burn::module::Module;
pub use burn::tensor::{Device, Int, Tensor, TensorData};
pub use checkpoint::{load_safetensors, read_safetensors_metadata, save_safetensors, to_safetensors_bytes};
pub use clip::{clip_grad_norm, global_grad_norm};
pub use device::{cpu_device, train_device, DeviceKind};
pub use mlp::{Activation, Mlp, MlpConfig, OutputInit};
pub use optim::{AdamParamState, Optimizer, OptimizerConfig};
pub use params::{all_finite, polyak_update};
pub use schedule::Schedule;

/// Gradients of a loss with respect to a module's parameters (burn's `GradientsParams`).
pub type Grads = burn::optim::GradientsParams;

/// Run backward from the scalar `loss` and collect the gradients of `module`'s parameters.
pub fn backward<M: Module>(loss: &Tensor<1>, module: &M) -> Grads {
    Grads::from_grads(loss.backward(), module)
}
