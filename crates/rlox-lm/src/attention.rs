//! The attention boundary.
//!
//! Every decoder layer calls an [`AttentionKernel`] with rotated queries and keys (keys and values
//! already joined with the cache) and an [`AttentionMask`]. [`EagerAttention`] is the straightforward
//! path (scores, additive mask, softmax, weighted sum); a fused FlashAttention-style kernel implements
//! the same trait and is passed to [`crate::CausalLm::forward_with`] without touching the model.
//!
//! [`FlashAttention`] is rlox-nn's tiled kernel ([`rlox_nn::attention`]): exact attention with an
//! online softmax, O(N) memory and its own backward pass, registered in burn's autodiff. It is what
//! [`crate::CausalLm::forward`] uses by default (bf16 inputs are widened to f32 for it and the output
//! rounded back); on devices other than burn's CPU backend (Flex), or for a padding mask that is not
//! one contiguous run of valid keys per sequence, it falls back to [`EagerAttention`] by itself. Pass `&EagerAttention` to
//! [`crate::CausalLm::forward_with`] to select the straightforward path (for checking).
//!
//! The mask is given twice: as a dense additive bias (what the eager path adds to the scores) and as
//! its description (which keys are padding, how many cached positions precede the queries, the
//! sliding window), so that a tiled kernel can build its blocks of the mask on the fly.

use rlox_nn::attention::{flash_attention, FlashConfig, Masking};
use rlox_nn::burn::tensor::activation::softmax;
use rlox_nn::burn::tensor::DType;
use rlox_nn::Tensor;

/// Which keys each query may see.
#[derive(Debug, Clone)]
pub struct AttentionMask {
    /// `[batch, 1, queries, keys]`: 0 where allowed, a large negative number where masked.
    pub bias: Tensor<4>,
    /// `key_valid[b][j]`: key `j` of sequence `b` is a real token (not left padding).
    pub key_valid: Vec<Vec<bool>>,
    /// Cached keys before the first query: query `t` sits at key index `past + t`.
    pub past: usize,
    /// Sliding window: query `i` sees key `j` only if `i - j < window`.
    pub window: Option<usize>,
}

/// The value added to masked scores (finite, so that a row with no visible key stays finite).
pub const MASKED: f32 = -1.0e9;

impl AttentionMask {
    /// Build the causal mask (with padding and an optional sliding window) on `device`.
    pub fn causal(
        key_valid: Vec<Vec<bool>>,
        past: usize,
        queries: usize,
        window: Option<usize>,
        device: &rlox_nn::Device,
    ) -> Self {
        let b = key_valid.len();
        let s = key_valid.first().map_or(0, Vec::len);
        let mut bias = vec![0.0f32; b * queries * s];
        for (bi, valid) in key_valid.iter().enumerate() {
            for t in 0..queries {
                let i = past + t;
                let row = &mut bias[(bi * queries + t) * s..(bi * queries + t + 1) * s];
                for (j, x) in row.iter_mut().enumerate() {
                    let visible = j <= i && valid[j] && window.is_none_or(|w| i - j < w);
                    if !visible {
                        *x = MASKED;
                    }
                }
            }
        }
        let bias = Tensor::<4>::from_data(rlox_nn::TensorData::new(bias, [b, 1, queries, s]), device);
        AttentionMask { bias, key_valid, past, window }
    }
}

impl AttentionMask {
    /// The mask as the flash kernel's description, or `None` when some sequence's valid keys are
    /// not one contiguous run (the kernel's padding is a key range per sequence).
    pub fn masking(&self) -> Option<Masking> {
        let mut ranges = Vec::with_capacity(self.key_valid.len());
        for valid in &self.key_valid {
            let start = valid.iter().position(|&v| v).unwrap_or(valid.len());
            let end = valid.iter().rposition(|&v| v).map_or(start, |e| e + 1);
            if valid[start..end].iter().any(|&v| !v) {
                return None;
            }
            ranges.push((start, end));
        }
        let all = ranges.iter().zip(&self.key_valid).all(|(&(s, e), v)| s == 0 && e == v.len());
        Some(Masking {
            causal: true,
            past: self.past,
            window: self.window,
            key_ranges: (!all).then_some(ranges),
            segments: None,
        })
    }
}

/// Scaled dot-product attention with grouped-query heads.
pub trait AttentionKernel {
    /// `q`: `[batch, heads, queries, head_dim]`; `k`, `v`: `[batch, kv_heads, keys, head_dim]` with
    /// `heads` a multiple of `kv_heads` (query head `h` uses key/value head `h / (heads / kv_heads)`).
    /// Returns `[batch, heads, queries, head_dim]` = `softmax(q k^T * scale + mask) v`.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f64) -> Tensor<4>;

    /// A copy the backward pass can keep (gradient checkpointing re-runs attention after the call
    /// that received `&self` has returned). `None`, the default, turns checkpointing off for calls
    /// with this kernel.
    fn shared(&self) -> Option<std::sync::Arc<dyn AttentionKernel + Send + Sync>> {
        None
    }
}

/// The straightforward (materialised scores) attention.
#[derive(Debug, Clone, Copy, Default)]
pub struct EagerAttention;

impl AttentionKernel for EagerAttention {
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f64) -> Tensor<4> {
        let [b, h, t, d] = q.dims();
        let [_, kv, s, _] = k.dims();
        let rep = h / kv;
        // Group the query heads that share a key/value head: no copy of K and V.
        let q = q.reshape([b, kv, rep * t, d]);
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale).reshape([b, kv, rep, t, s]);
        let scores = scores + mask.bias.clone().unsqueeze_dim::<5>(1);
        let p = softmax(scores, 4).reshape([b, kv, rep * t, s]);
        p.matmul(v).reshape([b, h, t, d])
    }

    fn shared(&self) -> Option<std::sync::Arc<dyn AttentionKernel + Send + Sync>> {
        Some(std::sync::Arc::new(*self))
    }
}

/// The tiled FlashAttention-style kernel of [`rlox_nn::attention`] (the default), falling back to
/// [`EagerAttention`] where it does not apply (see the module docs).
///
/// One difference from the eager path: a query that sees no key at all (a left-padding position)
/// gets a zero output here, where eager attention averages every key with equal weight. Such
/// positions are padding: their outputs reach neither the real tokens nor the loss.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlashAttention {
    /// Tile sizes (default: chosen from the head dimension).
    pub config: FlashConfig,
}

impl FlashAttention {
    /// Whether [`FlashAttention::attend`] would run the flash kernel (rather than fall back to eager)
    /// for these inputs.
    pub fn applies(q: &Tensor<4>, mask: &AttentionMask) -> bool {
        rlox_nn::attention::supports(&q.device()) && mask.masking().is_some()
    }
}

impl AttentionKernel for FlashAttention {
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f64) -> Tensor<4> {
        if !rlox_nn::attention::supports(&q.device()) {
            return EagerAttention.attend(q, k, v, mask, scale);
        }
        let Some(masking) = mask.masking() else {
            return EagerAttention.attend(q, k, v, mask, scale);
        };
        // The kernel computes in f32: a bf16 model's queries, keys and values are widened and the
        // output rounded back (PyTorch's CPU attention also accumulates bf16 inputs in f32).
        let dtype = q.dtype();
        if dtype != DType::F32 {
            let f = |t: Tensor<4>| t.cast(DType::F32);
            return self.attend(f(q), f(k), f(v), mask, scale).cast(dtype);
        }
        // Tensors are reference-counted: these clones copy no data.
        match flash_attention(q.clone(), k.clone(), v.clone(), &masking, scale as f32, self.config) {
            Ok(out) => out,
            Err(_) => EagerAttention.attend(q, k, v, mask, scale),
        }
    }

    fn shared(&self) -> Option<std::sync::Arc<dyn AttentionKernel + Send + Sync>> {
        Some(std::sync::Arc::new(*self))
    }
}
