//! MoonViT, Kimi-VL's native-resolution vision encoder.
//!
//! Images are not resized to a square: each keeps its own grid of `patch_size` patches, and several
//! images are *packed* into one sequence, each attending only to itself.
//!
//! 1. Patch embedding: a stride-`patch_size` convolution, i.e. one linear map of each flattened
//!    `3 x p x p` patch (the weight keeps PyTorch's `[out, 3, p, p]` layout).
//! 2. Absolute positions: a learned `init_pos_emb_height x init_pos_emb_width` table, resampled to each
//!    image's grid with PyTorch's bicubic interpolation (`F.interpolate(mode="bicubic", align_corners=False)`:
//!    Keys' cubic kernel with a = -0.75, taps clamped at the border), used as is when the grid matches.
//! 3. Blocks (pre-LN): `x + wo(attn(norm0(x)))`, `x + fc1(gelu_tanh(fc0(norm1(x))))`; `wqkv` packs the
//!    query, key and value projections. Attention is non-causal and block-diagonal over the packed images
//!    (rlox-nn's flash kernel with packed-sequence segments), with 2-D rotary embeddings: head dims form
//!    complex pairs `(2j, 2j+1)`; pair `j` turns by `column * f_{j/2}` when `j` is even and `row * f_{j/2}`
//!    when odd, `f_i = theta^(-4i/head_dim)`, and positions restart at every image.
//! 4. A final LayerNorm, then the patch merger: each `2 x 2` neighbourhood of the grid (raster order of
//!    neighbourhoods, raster order inside) becomes one token of four sub-patch vectors.

use crate::config::MoonVitConfig;
use rlox_core::{Error, Result};
use rlox_lm::model::Linear;
use rlox_lm::Init;
use rlox_nn::attention::{flash_attention, FlashConfig, Masking};
use rlox_nn::burn;
use rlox_nn::burn::module::Param;
use rlox_nn::burn::tensor::activation::{sigmoid, softmax};
use rlox_nn::{Device, Int, Module, Tensor, TensorData};

/// LayerNorm with a learned scale and shift (`weight`, `bias`), over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale.
    pub weight: Param<Tensor<1>>,
    /// Shift.
    pub bias: Param<Tensor<1>>,
    /// Epsilon inside the square root.
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// Scale one, shift zero.
    pub fn new(width: usize, eps: f64, init: Init, device: &Device) -> Self {
        LayerNorm { weight: init.constant([width], 1.0, device), bias: init.constant([width], 0.0, device), eps }
    }

    /// Normalise over the last dimension (biased variance, as PyTorch).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mean = x.clone().mean_dim(D - 1);
        let centred = x - mean;
        let var = centred.clone().square().mean_dim(D - 1);
        let x = centred * var.add_scalar(self.eps).sqrt().recip();
        x * self.weight.val().unsqueeze::<D>() + self.bias.val().unsqueeze::<D>()
    }
}

/// The patch embedding convolution, applied to flattened patches.
#[derive(Module, Debug)]
pub struct PatchConv {
    /// `[hidden, 3, patch, patch]`, PyTorch's `Conv2d` layout.
    pub weight: Param<Tensor<4>>,
    /// `[hidden]`.
    pub bias: Param<Tensor<1>>,
}

/// The learned absolute position table.
#[derive(Module, Debug)]
pub struct PositionTable {
    /// `[rows, columns, hidden]`.
    pub weight: Param<Tensor<3>>,
}

/// `patch_embed.*`.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// The convolution.
    pub proj: PatchConv,
    /// The position table.
    pub pos_emb: PositionTable,
}

/// The MLP of a block (`fc0`, tanh-approximated GELU, `fc1`).
#[derive(Module, Debug)]
pub struct VisionMlp {
    /// `hidden -> intermediate`.
    pub fc0: Linear,
    /// `intermediate -> hidden`.
    pub fc1: Linear,
}

/// One encoder block.
#[derive(Module, Debug)]
pub struct VisionBlock {
    /// Norm before attention.
    pub norm0: LayerNorm,
    /// Norm before the MLP.
    pub norm1: LayerNorm,
    /// `hidden -> 3 * hidden`: queries, keys, values (each `heads x head_dim`).
    pub wqkv: Linear,
    /// `hidden -> hidden`.
    pub wo: Linear,
    /// The MLP.
    pub mlp: VisionMlp,
}

/// `encoder.*`.
#[derive(Module, Debug)]
pub struct VisionEncoder {
    /// The blocks.
    pub blocks: Vec<VisionBlock>,
    /// Norm after the last block.
    pub final_layernorm: LayerNorm,
}

/// MoonViT (`vision_tower.*` in Kimi-VL's checkpoints).
#[derive(Module, Debug)]
pub struct MoonVit {
    /// Patch and position embedding.
    pub patch_embed: PatchEmbed,
    /// The transformer.
    pub encoder: VisionEncoder,
    /// The configuration.
    #[module(skip)]
    pub config: MoonVitConfig,
}

/// What [`MoonVit::forward_all`] returns.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// The hidden states after each block, `[patches, hidden]`.
    pub blocks: Vec<Tensor<2>>,
    /// After the final LayerNorm, `[patches, hidden]`.
    pub last: Tensor<2>,
    /// Merged tokens as `[tokens * merge_len, hidden]`: token-major, the sub-patches of each token in raster order.
    pub merged: Tensor<2>,
}

/// PyTorch's bicubic interpolation weights from `input` samples to `output` (align_corners false):
/// `[output, input]`, each row four taps clamped to the border.
fn cubic_matrix(input: usize, output: usize) -> Vec<f32> {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = input as f32 / output as f32;
    let mut m = vec![0.0f32; output * input];
    for o in 0..output {
        let real = scale * (o as f32 + 0.5) - 0.5;
        let base = real.floor();
        let t = real - base;
        let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, w) in weights.iter().enumerate() {
            let at = (base as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            m[o * input + at] += w;
        }
    }
    m
}

impl MoonVit {
    /// Build with `init`.
    pub fn new(config: &MoonVitConfig, init: Init, device: &Device) -> Self {
        let (d, p) = (config.hidden_size, config.patch_size);
        let eps = config.layer_norm_eps;
        let blocks = (0..config.num_hidden_layers)
            .map(|_| VisionBlock {
                norm0: LayerNorm::new(d, eps, init, device),
                norm1: LayerNorm::new(d, eps, init, device),
                wqkv: init.linear(d, 3 * d, true, device),
                wo: init.linear(d, d, true, device),
                mlp: VisionMlp {
                    fc0: init.linear(d, config.intermediate_size, true, device),
                    fc1: init.linear(config.intermediate_size, d, true, device),
                },
            })
            .collect();
        MoonVit {
            patch_embed: PatchEmbed {
                proj: PatchConv { weight: init.weight([d, 3, p, p], device), bias: init.constant([d], 0.0, device) },
                pos_emb: PositionTable {
                    weight: init.weight([config.init_pos_emb_height, config.init_pos_emb_width, d], device),
                },
            },
            encoder: VisionEncoder { blocks, final_layernorm: LayerNorm::new(d, eps, init, device) },
            config: config.clone(),
        }
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.patch_embed.pos_emb.weight.lazy_device()
    }

    /// Check packed `pixels` (`[patches, 3 * p * p]`) against `grids` (rows, columns of patches per image).
    pub fn check_input(&self, pixels: &Tensor<2>, grids: &[(usize, usize)]) -> Result<()> {
        let c = &self.config;
        let [n, width] = pixels.dims();
        let want: usize = grids.iter().map(|(h, w)| h * w).sum();
        if width != 3 * c.patch_size * c.patch_size {
            return Err(Error::invalid(
                "pixel values",
                format!(
                    "{width} values per patch; a {p}x{p} RGB patch has {}",
                    3 * c.patch_size * c.patch_size,
                    p = c.patch_size
                ),
            ));
        }
        if grids.is_empty() || n != want {
            return Err(Error::invalid("pixel values", format!("{n} patches but the grids {grids:?} hold {want}")));
        }
        let [kh, kw] = c.merge_kernel_size;
        for &(h, w) in grids {
            if h == 0 || w == 0 || h % kh != 0 || w % kw != 0 {
                return Err(Error::invalid(
                    "image grid",
                    format!("{h}x{w} patches: each side must be a positive multiple of the {kh}x{kw} merge"),
                ));
            }
            if h > c.max_grid_side || w > c.max_grid_side {
                return Err(Error::invalid(
                    "image grid",
                    format!(
                        "{h}x{w} patches exceeds MoonViT's {m}x{m} position range; resize the image below {px} pixels a side",
                        m = c.max_grid_side,
                        px = c.max_grid_side * c.patch_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Position embeddings of every patch, `[patches, hidden]`.
    fn positions(&self, grids: &[(usize, usize)]) -> Tensor<2> {
        let table = self.patch_embed.pos_emb.weight.val();
        let [th, tw, d] = table.dims();
        let device = table.device();
        let parts = grids
            .iter()
            .map(|&(h, w)| {
                if (h, w) == (th, tw) {
                    return table.clone().reshape([th * tw, d]);
                }
                let mx = Tensor::<2>::from_data(TensorData::new(cubic_matrix(tw, w), [w, tw]), &device);
                let my = Tensor::<2>::from_data(TensorData::new(cubic_matrix(th, h), [h, th]), &device);
                // Along the columns of every table row, then along the rows.
                let cols = mx.unsqueeze::<3>().expand([th, w, tw]).matmul(table.clone()); // [th, w, d]
                my.matmul(cols.reshape([th, w * d])).reshape([h * w, d])
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// Cos and sin of every (patch, rotary pair), `[patches, 1, head_dim / 2, 1]`.
    fn rotary(&self, grids: &[(usize, usize)], device: &Device) -> (Tensor<4>, Tensor<4>) {
        let hd = self.config.head_dim();
        let theta = self.config.rope_theta as f32;
        let freqs: Vec<f32> = (0..hd / 4).map(|i| 1.0 / theta.powf((4 * i) as f32 / hd as f32)).collect();
        let n: usize = grids.iter().map(|(h, w)| h * w).sum();
        let (mut cos, mut sin) = (Vec::with_capacity(n * hd / 2), Vec::with_capacity(n * hd / 2));
        for &(h, w) in grids {
            for row in 0..h {
                for col in 0..w {
                    for j in 0..hd / 2 {
                        let pos = if j % 2 == 0 { col } else { row };
                        let a = pos as f32 * freqs[j / 2];
                        cos.push(a.cos());
                        sin.push(a.sin());
                    }
                }
            }
        }
        let shape = [n, 1, hd / 2, 1];
        (
            Tensor::<4>::from_data(TensorData::new(cos, shape), device),
            Tensor::<4>::from_data(TensorData::new(sin, shape), device),
        )
    }

    /// Run the encoder on packed images: `pixels` `[patches, 3 * p * p]` (channel-major inside a patch, as
    /// the processor writes them), `grids` the (rows, columns) of each image in packing order.
    pub fn forward_all(&self, pixels: Tensor<2>, grids: &[(usize, usize)]) -> Result<VisionOutput> {
        self.check_input(&pixels, grids)?;
        let c = &self.config;
        let device = pixels.device();
        let d = c.hidden_size;
        let conv = self.patch_embed.proj.weight.val().reshape([d, 3 * c.patch_size * c.patch_size]);
        let mut x = pixels.matmul(conv.transpose()) + self.patch_embed.proj.bias.val().unsqueeze::<2>();
        x = x + self.positions(grids);
        let (cos, sin) = self.rotary(grids, &device);
        let mut offsets = vec![0usize];
        for (h, w) in grids {
            offsets.push(offsets.last().copied().unwrap_or(0) + h * w);
        }
        let mut blocks = Vec::with_capacity(c.num_hidden_layers);
        for block in &self.encoder.blocks {
            x = block.forward(x, c, &cos, &sin, &offsets);
            blocks.push(x.clone());
        }
        let last = self.encoder.final_layernorm.forward(x);
        let merged = merge_patches(last.clone(), grids, c.merge_kernel_size);
        Ok(VisionOutput { blocks, last, merged })
    }
}

/// Reorder `[patches, hidden]` so that each `kh x kw` neighbourhood's patches are consecutive.
pub fn merge_patches(x: Tensor<2>, grids: &[(usize, usize)], [kh, kw]: [usize; 2]) -> Tensor<2> {
    let mut order: Vec<i64> = Vec::with_capacity(x.dims()[0]);
    let mut start = 0usize;
    for &(h, w) in grids {
        for br in 0..h / kh {
            for bc in 0..w / kw {
                for ih in 0..kh {
                    for iw in 0..kw {
                        order.push((start + (br * kh + ih) * w + bc * kw + iw) as i64);
                    }
                }
            }
        }
        start += h * w;
    }
    let n = order.len();
    let device = x.device();
    x.select(0, Tensor::<1, Int>::from_data(TensorData::new(order, [n]), &device))
}

/// The tanh-approximated GELU, `0.5 x (1 + tanh(u))` with `u = sqrt(2/pi) (x + 0.044715 x^3)`, computed as the
/// equal `x * sigmoid(2u)`: one exponential per element instead of a power and a hyperbolic tangent (burn's
/// `gelu_approximate` spent a fifth of MoonViT's time in `powf` and `tanhf`).
fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const TWO_SQRT_2_OVER_PI: f64 = 2.0 * 0.797_884_560_802_865_4;
    let cube = x.clone() * x.clone() * x.clone();
    let u = (x.clone() + cube.mul_scalar(0.044715)).mul_scalar(TWO_SQRT_2_OVER_PI);
    x * sigmoid(u)
}

/// Rotate complex pairs `(2j, 2j+1)` of `x` (`[patches, heads, head_dim]`).
fn rotate_pairs(x: Tensor<3>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<3> {
    let [n, h, hd] = x.dims();
    let pairs = x.reshape([n, h, hd / 2, 2]);
    let re = pairs.clone().narrow(3, 0, 1);
    let im = pairs.narrow(3, 1, 1);
    let out_re = re.clone() * cos.clone() - im.clone() * sin.clone();
    let out_im = re * sin.clone() + im * cos.clone();
    Tensor::cat(vec![out_re, out_im], 3).reshape([n, h, hd])
}

/// Softmax attention of `q`, `k`, `v` (`[1, heads, patches, head_dim]`) inside each segment of `offsets`.
fn packed_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, offsets: &[usize], scale: f32) -> Tensor<4> {
    let masking = Masking { segments: Some(offsets.to_vec()), ..Default::default() };
    if let Ok(out) = flash_attention(q.clone(), k.clone(), v.clone(), &masking, scale, FlashConfig::default()) {
        return out;
    }
    // Off the CPU: materialised scores with a block-diagonal mask.
    let n = q.dims()[2];
    let mut bias = vec![rlox_lm::attention::MASKED; n * n];
    for seg in offsets.windows(2) {
        for i in seg[0]..seg[1] {
            bias[i * n + seg[0]..i * n + seg[1]].fill(0.0);
        }
    }
    let bias = Tensor::<4>::from_data(TensorData::new(bias, [1, 1, n, n]), &q.device());
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + bias;
    softmax(scores, 3).matmul(v)
}

impl VisionBlock {
    fn forward(
        &self,
        x: Tensor<2>,
        c: &MoonVitConfig,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        offsets: &[usize],
    ) -> Tensor<2> {
        let [n, d] = x.dims();
        let (h, hd) = (c.num_attention_heads, c.head_dim());
        let qkv = self.wqkv.forward2(self.norm0.forward(x.clone())).reshape([n, 3, h, hd]);
        let part = |i: usize| qkv.clone().narrow(1, i, 1).reshape([n, h, hd]);
        let q = rotate_pairs(part(0), cos, sin);
        let k = rotate_pairs(part(1), cos, sin);
        let heads = |t: Tensor<3>| t.swap_dims(0, 1).unsqueeze::<4>(); // [1, h, n, hd]
        let scale = 1.0 / (hd as f32).sqrt();
        let out = packed_attention(heads(q), heads(k), heads(part(2)), offsets, scale);
        let out = out.reshape([h, n, hd]).swap_dims(0, 1).reshape([n, d]);
        let x = x + self.wo.forward2(out);
        let y = self.mlp.fc1.forward2(gelu_tanh(self.mlp.fc0.forward2(self.norm1.forward(x.clone()))));
        x + y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_rows_sum_to_one_and_identity_when_same_size() {
        for (i, o) in [(8, 12), (64, 23), (5, 5), (16, 4)] {
            let m = cubic_matrix(i, o);
            for row in m.chunks(i) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
            if i == o {
                for (r, row) in m.chunks(i).enumerate() {
                    assert!((row[r] - 1.0).abs() < 1e-6);
                }
            }
        }
    }
}
