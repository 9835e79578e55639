//! Multi-head latent attention (MLA, DeepSeek-V2/V3).
//!
//! Keys and values are not projected per head from the hidden state: one down-projection
//! (`kv_a_proj_with_mqa`) makes a small latent `c` (`kv_lora_rank` wide, normalised by `kv_a_layernorm`) and
//! one *shared* rope key (`qk_rope_head_dim` wide); `kv_b_proj` expands the latent into every head's
//! position-free key part and its value. Queries come from `q_proj`, or through their own low-rank
//! bottleneck (`q_a_proj`, `q_a_layernorm`, `q_b_proj`) when `q_lora_rank` is set. RoPE touches only the
//! rope dims of queries and the shared key; with `rope_interleave` (DeepSeek's checkpoints) those dims
//! are stored as pairs `(x0, x1), (x2, x3), ...` and are de-interleaved before the usual half rotation.
//!
//! What the cache keeps per token is the latent and the rotated rope key — `kv_lora_rank +
//! qk_rope_head_dim` floats (576 for Kimi-VL) instead of `heads * (qk_head_dim + v_head_dim)` (5120). A prompt
//! (many queries) expands the latent into keys and values once; a decoding step (a few queries against many
//! cached positions) instead attends to the latent itself, with `kv_b_proj` folded into the queries and the
//! output ("absorbed" MLA, as DeepSeek's and vLLM's decoders do), so no cached position is ever expanded.
//! The attention kernel takes one head width, so when
//! the value width differs from the query/key width the narrower side is padded with zeros (zero query/key
//! dims add nothing to the scores; zero value dims are cut from the output).

use crate::attention::{AttentionKernel, AttentionMask};
use crate::deepseek_v3::config::DeepseekV3Config;
use crate::init::Init;
use crate::model::{Linear, RmsNorm};
use rlox_nn::burn;
use rlox_nn::{Device, Module, Tensor, TensorData};

/// Cos/sin tables of the rope dims for one forward call, `[batch, 1, seq, qk_rope_head_dim]`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl RopeTables {
    /// Tables for `positions` (`[batch][seq]`), with YaRN's frequencies and cos/sin multiplier if configured.
    pub fn new(config: &DeepseekV3Config, positions: &[Vec<usize>], device: &Device) -> Self {
        let (inv, factor) = config.rope_inv_freq();
        let d = config.qk_rope_head_dim;
        let b = positions.len();
        let t = positions.first().map_or(0, Vec::len);
        let mut cos = Vec::with_capacity(b * t * d);
        let mut sin = Vec::with_capacity(b * t * d);
        for row in positions {
            for &p in row {
                for _ in 0..2 {
                    for f in &inv {
                        let a = p as f32 * f;
                        cos.push(a.cos() * factor);
                        sin.push(a.sin() * factor);
                    }
                }
            }
        }
        RopeTables {
            cos: Tensor::<4>::from_data(TensorData::new(cos, [b, 1, t, d]), device),
            sin: Tensor::<4>::from_data(TensorData::new(sin, [b, 1, t, d]), device),
        }
    }

    /// Rotate `x` (`[batch, heads, seq, rope]`, half-split pairs).
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let d = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

/// `(x0, x1, x2, x3, ...)` to `(x0, x2, ..., x1, x3, ...)` over the last dimension.
fn deinterleave(x: Tensor<4>) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    x.reshape([b, h, t, d / 2, 2]).swap_dims(3, 4).reshape([b, h, t, d])
}

/// Zeros appended to the last dimension up to `width`.
fn pad_last(x: Tensor<4>, width: usize) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    if d >= width {
        return x;
    }
    let device = x.device();
    Tensor::cat(vec![x, Tensor::<4>::zeros([b, h, t, width - d], &device)], 3)
}

/// One layer's cached latent `[batch, keys, kv_lora_rank]` and rotated rope key `[batch, 1, keys, rope]`.
pub type LatentSlot = Option<(Tensor<3>, Tensor<4>)>;

/// Multi-head latent attention (parameter names as in transformers).
#[derive(Module, Debug)]
pub struct Mla {
    /// `hidden -> heads * qk_head_dim` (when `q_lora_rank` is null).
    pub q_proj: Option<Linear>,
    /// `hidden -> q_lora_rank`.
    pub q_a_proj: Option<Linear>,
    /// RMSNorm of the query latent.
    pub q_a_layernorm: Option<RmsNorm>,
    /// `q_lora_rank -> heads * qk_head_dim`.
    pub q_b_proj: Option<Linear>,
    /// `hidden -> kv_lora_rank + qk_rope_head_dim` (latent and shared rope key).
    pub kv_a_proj_with_mqa: Linear,
    /// RMSNorm of the key/value latent.
    pub kv_a_layernorm: RmsNorm,
    /// `kv_lora_rank -> heads * (qk_nope_head_dim + v_head_dim)`.
    pub kv_b_proj: Linear,
    /// `heads * v_head_dim -> hidden`.
    pub o_proj: Linear,
}

impl Mla {
    /// Build with `init`.
    pub fn new(c: &DeepseekV3Config, init: Init, device: &Device) -> Self {
        let (hs, h) = (c.hidden_size, c.num_attention_heads);
        let q_out = h * c.qk_head_dim();
        let (q_proj, q_a_proj, q_a_layernorm, q_b_proj) = match c.q_lora_rank {
            None => (Some(init.linear(hs, q_out, false, device)), None, None, None),
            Some(r) => (
                None,
                Some(init.linear(hs, r, c.attention_bias, device)),
                Some(init.rms_norm(r, c.latent_norm_eps, device)),
                Some(init.linear(r, q_out, false, device)),
            ),
        };
        Mla {
            q_proj,
            q_a_proj,
            q_a_layernorm,
            q_b_proj,
            kv_a_proj_with_mqa: init.linear(hs, c.kv_lora_rank + c.qk_rope_head_dim, c.attention_bias, device),
            kv_a_layernorm: init.rms_norm(c.kv_lora_rank, c.latent_norm_eps, device),
            kv_b_proj: init.linear(c.kv_lora_rank, h * (c.qk_nope_head_dim + c.v_head_dim), false, device),
            o_proj: init.linear(h * c.v_head_dim, hs, c.attention_bias, device),
        }
    }

    /// Attend from `x` (`[batch, seq, hidden]`) to the cached positions and `x` itself.
    pub fn forward(
        &self,
        x: Tensor<3>,
        c: &DeepseekV3Config,
        rope: &RopeTables,
        cache: Option<&mut LatentSlot>,
        mask: &AttentionMask,
        kernel: &dyn AttentionKernel,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, nope, rd, vd, r) =
            (c.num_attention_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank);
        let q = match (&self.q_proj, &self.q_a_proj, &self.q_a_layernorm, &self.q_b_proj) {
            (Some(p), _, _, _) => p.forward(x.clone()),
            (None, Some(a), Some(n), Some(bp)) => bp.forward(n.forward(a.forward(x.clone()))),
            _ => unreachable!("Mla::new builds either q_proj or the query LoRA"),
        };
        let q = q.reshape([b, t, h, nope + rd]).swap_dims(1, 2);
        let q_nope = q.clone().narrow(3, 0, nope);
        let mut q_rot = q.narrow(3, nope, rd);
        let compressed = self.kv_a_proj_with_mqa.forward(x);
        let latent = self.kv_a_layernorm.forward(compressed.clone().narrow(2, 0, r));
        let mut k_rot = compressed.narrow(2, r, rd).reshape([b, t, 1, rd]).swap_dims(1, 2);
        if c.rope_interleave {
            q_rot = deinterleave(q_rot);
            k_rot = deinterleave(k_rot);
        }
        let q_rot = rope.apply(q_rot);
        let k_rot = rope.apply(k_rot);
        let (latent, k_rot) = match cache {
            Some(slot) => {
                let joined = match slot.take() {
                    Some((pl, pk)) => (Tensor::cat(vec![pl, latent], 1), Tensor::cat(vec![pk, k_rot], 2)),
                    None => (latent, k_rot),
                };
                *slot = Some(joined.clone());
                joined
            }
            None => (latent, k_rot),
        };
        let s = latent.dims()[1];
        if t <= ABSORB_MAX_QUERIES && s > t {
            return self.attend_absorbed(q_nope, q_rot, latent, k_rot, c, mask, kernel);
        }
        let kv = self.kv_b_proj.forward(latent).reshape([b, s, h, nope + vd]).swap_dims(1, 2);
        let k_nope = kv.clone().narrow(3, 0, nope);
        let v = kv.narrow(3, nope, vd);
        let k = Tensor::cat(vec![k_nope, k_rot.expand([b, h, s, rd])], 3);
        let q = Tensor::cat(vec![q_nope, q_rot], 3);
        let width = (nope + rd).max(vd);
        let out = kernel.attend(pad_last(q, width), pad_last(k, width), pad_last(v, width), mask, c.softmax_scale());
        let out = out.narrow(3, 0, vd).swap_dims(1, 2).reshape([b, t, h * vd]);
        self.o_proj.forward(out)
    }

    /// Decoding against the latent itself: `kv_b_proj`'s key half is folded into the queries
    /// (`q_nope . (W_k c) = (W_k^T q_nope) . c`) and its value half applied after the weighted sum, so the
    /// cached positions are never expanded; attention is then one shared key/value head of width
    /// `kv_lora_rank + rope` (keys `[c, k_rope]`, values `c`).
    #[allow(clippy::too_many_arguments)]
    fn attend_absorbed(
        &self,
        q_nope: Tensor<4>,
        q_rot: Tensor<4>,
        latent: Tensor<3>,
        k_rot: Tensor<4>,
        c: &DeepseekV3Config,
        mask: &AttentionMask,
        kernel: &dyn AttentionKernel,
    ) -> Tensor<3> {
        let [b, h, t, nope] = q_nope.dims();
        let (rd, vd, r) = (c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank);
        let s = latent.dims()[1];
        // kv_b_proj's weight is [r, h * (nope + v)]: per head, [r, nope] for keys then [r, v] for values.
        let w = self.kv_b_proj.weight.val().reshape([r, h, nope + vd]).swap_dims(0, 1); // [h, r, nope + v]
        let w_k = w.clone().narrow(2, 0, nope); // [h, r, nope]
        let w_v = w.narrow(2, nope, vd); // [h, r, v]
        let q_lat = q_nope.matmul(w_k.swap_dims(1, 2).unsqueeze::<4>()); // [b, h, t, r]
        let q = Tensor::cat(vec![q_lat, q_rot], 3);
        let latent = latent.unsqueeze_dim::<4>(1); // [b, 1, s, r]
        let k = Tensor::cat(vec![latent.clone(), k_rot], 3);
        let v = pad_last(latent, r + rd);
        let out = kernel.attend(q, k, v, mask, c.softmax_scale()).narrow(3, 0, r); // [b, h, t, r]
        let out = out.matmul(w_v.unsqueeze::<4>()); // [b, h, t, v]
        debug_assert_eq!(s, mask.key_valid.first().map_or(s, Vec::len));
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, h * vd]))
    }
}

/// Queries per call at or below which attention runs on the latent directly ([`Mla::attend_absorbed`]):
/// decoding steps. Longer inputs (prefill) expand the latent once, which costs less there.
const ABSORB_MAX_QUERIES: usize = 8;
