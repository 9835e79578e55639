//! The multimodal projector (`multi_modal_projector.*`): MoonViT's merged tokens into the language model's
//! embedding space. Each of a token's `2 x 2` sub-patch vectors is layer-normalised on its own (`pre_norm`,
//! over the vision width), the four are concatenated (`4 x 1152 = 4608` in Kimi-VL), then
//! `linear_2(gelu(linear_1(.)))` with the exact (erf) GELU.

use crate::moonvit::LayerNorm;
use rlox_lm::model::Linear;
use rlox_lm::Init;
use rlox_nn::burn;
use rlox_nn::burn::tensor::activation::gelu;
use rlox_nn::{Device, Module, Tensor};

/// The projector.
#[derive(Module, Debug)]
pub struct Projector {
    /// LayerNorm of each sub-patch vector (eps 1e-5).
    pub pre_norm: LayerNorm,
    /// `merge_len * vision_hidden -> merge_len * vision_hidden`.
    pub linear_1: Linear,
    /// `merge_len * vision_hidden -> text_hidden`.
    pub linear_2: Linear,
}

impl Projector {
    /// Build with `init`.
    pub fn new(vision_hidden: usize, merge_len: usize, text_hidden: usize, init: Init, device: &Device) -> Self {
        let width = vision_hidden * merge_len;
        Projector {
            pre_norm: LayerNorm::new(vision_hidden, 1e-5, init, device),
            linear_1: init.linear(width, width, true, device),
            linear_2: init.linear(width, text_hidden, true, device),
        }
    }

    /// `merged` `[tokens * merge_len, vision_hidden]` (from [`crate::moonvit::VisionOutput`]) to
    /// `[tokens, text_hidden]`.
    pub fn forward(&self, merged: Tensor<2>) -> Tensor<2> {
        let [rows, d] = merged.dims();
        let width = self.linear_1.weight.lazy_shape().dims::<2>()[0];
        let x = self.pre_norm.forward(merged).reshape([rows * d / width, width]);
        self.linear_2.forward2(gelu(self.linear_1.forward2(x)))
    }
}
