//! The decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU or mixture-of-experts
//! feed-forward, tied or untied output projection.
//!
//! The module tree mirrors `transformers`' so that parameter paths *are* the Hugging Face tensor
//! names (`model.layers.0.self_attn.q_proj.weight`, `model.layers.0.mlp.experts.3.up_proj.weight`,
//! `lm_head.weight`, ...). Linear weights are stored as burn does, `[in, out]`; loading and saving
//! transpose them to and from Hugging Face's `[out, in]` (see [`crate::hf`]).

use crate::attention::{AttentionKernel, AttentionMask, FlashAttention};
use crate::config::{GateFn, LmConfig, RopeScaling};
use rlox_core::{Error, Result};
use rlox_nn::burn;
use rlox_nn::burn::module::Param;
use rlox_nn::burn::tensor::activation::{sigmoid, silu, softmax};
use rlox_nn::burn::tensor::{Distribution, IndexingUpdateOp};
use rlox_nn::{Device, Int, Module, Tensor, TensorData};
use std::collections::HashMap;

/// A linear layer `y = x W + b` with `W: [in, out]`.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]` (the transpose of PyTorch's layout).
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
}

pub(crate) fn normal<const D: usize>(shape: [usize; D], std: f64, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::<D>::random(shape, Distribution::Normal(0.0, std), device))
}

impl Linear {
    /// A layer with weights drawn from `N(0, std^2)` and zero bias (transformers' `_init_weights`).
    pub fn new(input: usize, output: usize, bias: bool, std: f64, device: &Device) -> Self {
        Linear {
            weight: normal([input, output], std, device),
            bias: bias.then(|| Param::from_tensor(Tensor::<1>::zeros([output], device))),
        }
    }

    /// Apply to `[batch, seq, in]` (or `[n, in]` via [`Linear::forward2`]).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = x.matmul(self.weight.val().unsqueeze::<3>());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<3>(),
            None => y,
        }
    }

    /// Apply to `[n, in]`.
    pub fn forward2(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        }
    }
}

/// Root-mean-square normalisation with a learned scale.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[hidden]`.
    pub weight: Param<Tensor<1>>,
    /// Epsilon inside the square root.
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// Scale initialised to one.
    pub fn new(hidden: usize, eps: f64, device: &Device) -> Self {
        RmsNorm { weight: Param::from_tensor(Tensor::<1>::ones([hidden], device)), eps }
    }

    /// Normalise over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let var = x.clone().square().mean_dim(D - 1);
        let x = x * var.add_scalar(self.eps).sqrt().recip();
        x * self.weight.val().unsqueeze::<D>()
    }
}

/// Token embeddings.
#[derive(Module, Debug)]
pub struct Embedding {
    /// `[vocab, hidden]`.
    pub weight: Param<Tensor<2>>,
}

impl Embedding {
    /// Look up `[batch, seq]` ids.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let h = self.weight.lazy_shape().dims::<2>()[1];
        self.weight.val().select(0, ids.reshape([b * t])).reshape([b, t, h])
    }
}

/// SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl Mlp {
    pub(crate) fn new(hidden: usize, inter: usize, bias: bool, std: f64, device: &Device) -> Self {
        Mlp {
            gate_proj: Linear::new(hidden, inter, bias, std, device),
            up_proj: Linear::new(hidden, inter, bias, std, device),
            down_proj: Linear::new(inter, hidden, bias, std, device),
        }
    }

    /// `[n, hidden]` to `[n, hidden]`.
    pub fn forward2(&self, x: Tensor<2>) -> Tensor<2> {
        self.down_proj.forward2(silu(self.gate_proj.forward2(x.clone())) * self.up_proj.forward2(x))
    }
}

/// The feed-forward block of a layer: dense SwiGLU (`gate_proj`/`up_proj`/`down_proj`) or a mixture
/// of experts (`gate`, `experts`, optional `shared_expert` and `shared_expert_gate`). One struct for
/// both keeps the parameter paths equal to Hugging Face's `mlp.*` names.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// Dense: the SwiGLU MLP's projections.
    pub gate_proj: Option<Linear>,
    /// Dense: up projection.
    pub up_proj: Option<Linear>,
    /// Dense: down projection.
    pub down_proj: Option<Linear>,
    /// MoE: the router, `hidden -> num_experts`.
    pub gate: Option<Linear>,
    /// MoE: the routed experts.
    pub experts: Vec<Mlp>,
    /// MoE: the always-on shared expert.
    pub shared_expert: Option<Mlp>,
    /// MoE: `hidden -> 1`, the shared expert's sigmoid gate.
    pub shared_expert_gate: Option<Linear>,
    /// Routing settings (MoE only).
    #[module(skip)]
    pub routing: Option<crate::config::MoeConfig>,
}

/// What one MoE layer's router did (for the load-balancing loss).
#[derive(Debug, Clone)]
pub struct RouterStats {
    /// `[tokens, experts]` softmax of the router logits.
    pub probs: Tensor<2>,
    /// `[tokens * top_k]` chosen experts, token-major.
    pub chosen: Vec<usize>,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>, stats: &mut Vec<RouterStats>) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let x2 = x.reshape([b * t, h]);
        let y = match (&self.gate_proj, &self.up_proj, &self.down_proj) {
            (Some(g), Some(u), Some(d)) => d.forward2(silu(g.forward2(x2.clone())) * u.forward2(x2)),
            _ => self.forward_moe(x2, stats),
        };
        y.reshape([b, t, h])
    }

    fn forward_moe(&self, x: Tensor<2>, stats: &mut Vec<RouterStats>) -> Tensor<2> {
        let routing = self.routing.as_ref().expect("MoE layer has routing settings");
        let gate = self.gate.as_ref().expect("MoE layer has a router");
        let [n, h] = x.dims();
        let k = routing.top_k;
        let logits = gate.forward2(x.clone());
        let probs = softmax(logits.clone(), 1);
        let scores = match routing.gate {
            GateFn::Softmax => probs.clone(),
            GateFn::Sigmoid => sigmoid(logits),
        };
        let (mut top, top_idx) = scores.topk_with_indices(k, 1);
        if routing.norm_topk_prob {
            top = top.clone() / top.sum_dim(1);
        }
        if routing.routed_scaling_factor != 1.0 {
            top = top.mul_scalar(routing.routed_scaling_factor);
        }
        let chosen: Vec<usize> =
            top_idx.into_data().try_into_vec_as::<i64>().expect("int").into_iter().map(|i| i as usize).collect();
        let flat_w = top.reshape([n * k]);
        let device = x.device();
        let mut out = Tensor::<2>::zeros([n, h], &device);
        for (e, expert) in self.experts.iter().enumerate() {
            let (tokens, slots): (Vec<i64>, Vec<i64>) = chosen
                .iter()
                .enumerate()
                .filter(|(_, &c)| c == e)
                .map(|(slot, _)| ((slot / k) as i64, slot as i64))
                .unzip();
            if tokens.is_empty() {
                continue;
            }
            let m = tokens.len();
            let tok = Tensor::<1, Int>::from_data(TensorData::new(tokens, [m]), &device);
            let slot = Tensor::<1, Int>::from_data(TensorData::new(slots, [m]), &device);
            let w = flat_w.clone().select(0, slot).unsqueeze_dim::<2>(1);
            let y = expert.forward2(x.clone().select(0, tok.clone())) * w;
            out = out.select_assign(0, tok, y, IndexingUpdateOp::Add);
        }
        if let Some(shared) = &self.shared_expert {
            let mut s = shared.forward2(x.clone());
            if let Some(g) = &self.shared_expert_gate {
                s = s * sigmoid(g.forward2(x));
            }
            out = out + s;
        }
        stats.push(RouterStats { probs, chosen });
        out
    }
}

/// Grouped-query self-attention with rotary embeddings.
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// `hidden -> heads * head_dim`.
    pub q_proj: Linear,
    /// `hidden -> kv_heads * head_dim`.
    pub k_proj: Linear,
    /// `hidden -> kv_heads * head_dim`.
    pub v_proj: Linear,
    /// `heads * head_dim -> hidden`.
    pub o_proj: Linear,
}

/// One decoder layer (pre-norm attention and feed-forward, each with a residual).
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Attention.
    pub self_attn: SelfAttention,
    /// Feed-forward.
    pub mlp: FeedForward,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the feed-forward.
    pub post_attention_layernorm: RmsNorm,
}

/// The transformer body (`model.*` in Hugging Face's names).
#[derive(Module, Debug)]
pub struct Decoder {
    /// Token embeddings.
    pub embed_tokens: Embedding,
    /// The layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
}

/// A causal language model: decoder plus output projection.
#[derive(Module, Debug)]
pub struct CausalLm {
    /// The decoder.
    pub model: Decoder,
    /// The output projection (`None`: tied to the input embedding).
    pub lm_head: Option<Linear>,
    /// The configuration.
    #[module(skip)]
    pub config: LmConfig,
}

/// Keys and values of past positions, per layer, plus which positions are padding.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    key_valid: Vec<Vec<bool>>,
}

impl KvCache {
    /// An empty cache for `batch` sequences.
    pub fn new(config: &LmConfig, batch: usize) -> Self {
        KvCache { layers: vec![None; config.num_hidden_layers], key_valid: vec![Vec::new(); batch] }
    }

    /// Cached positions (including padding).
    pub fn len(&self) -> usize {
        self.key_valid.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One forward call's input: a rectangular `[batch, seq]` block of token ids.
#[derive(Debug, Clone)]
pub struct ForwardInput {
    /// Token ids, `[batch][seq]` (padding positions hold any valid id).
    pub ids: Vec<Vec<u32>>,
    /// Rotary positions, `[batch][seq]`.
    pub positions: Vec<Vec<usize>>,
    /// `false` for padding, `[batch][seq]`.
    pub valid: Vec<Vec<bool>>,
}

impl ForwardInput {
    /// Unpadded sequences of equal length starting at position 0.
    pub fn dense(ids: Vec<Vec<u32>>) -> Self {
        let t = ids.first().map_or(0, Vec::len);
        let b = ids.len();
        ForwardInput { ids, positions: vec![(0..t).collect(); b], valid: vec![vec![true; t]; b] }
    }

    /// Sequences of any lengths, left-padded with `pad` to the longest; positions count real tokens.
    pub fn left_padded(seqs: &[Vec<u32>], pad: u32) -> Self {
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut input = ForwardInput { ids: Vec::new(), positions: Vec::new(), valid: Vec::new() };
        for s in seqs {
            let p = t - s.len();
            let mut ids = vec![pad; p];
            ids.extend_from_slice(s);
            input.ids.push(ids);
            input.positions.push((0..t).map(|i| i.saturating_sub(p)).collect());
            input.valid.push((0..t).map(|i| i >= p).collect());
        }
        input
    }
}

/// A forward pass's result.
#[derive(Debug, Clone)]
pub struct LmOutput {
    /// `[batch, seq, vocab]`.
    pub logits: Tensor<3>,
    /// The MoE load-balancing loss (already multiplied by `router_aux_loss_coef`), if the model has experts.
    pub aux_loss: Option<Tensor<1>>,
}

/// Inverse frequencies of the rotary embedding, as transformers computes them (in f32).
pub fn rope_inv_freq(config: &LmConfig) -> Vec<f32> {
    let d = config.head_dim;
    let base = config.rope_theta as f32;
    let inv: Vec<f32> = (0..d / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / d as f32)).collect();
    match config.rope_scaling {
        RopeScaling::None => inv,
        RopeScaling::Linear { factor } => inv.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            let (factor, low, high, old) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                original_max_position_embeddings as f32,
            );
            let low_wavelen = old / low;
            let high_wavelen = old / high;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_wavelen { f / factor } else { f };
                    let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                    if medium {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.narrow(3, d / 2, d / 2);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

impl SelfAttention {
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        config: &LmConfig,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        mask: &AttentionMask,
        kernel: &dyn AttentionKernel,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kv, d) = (config.num_attention_heads, config.num_key_value_heads, config.head_dim);
        let q = self.q_proj.forward(x.clone()).reshape([b, t, h, d]).swap_dims(1, 2);
        let k = self.k_proj.forward(x.clone()).reshape([b, t, kv, d]).swap_dims(1, 2);
        let v = self.v_proj.forward(x).reshape([b, t, kv, d]).swap_dims(1, 2);
        let q = q.clone() * cos.clone() + rotate_half(q) * sin.clone();
        let k = k.clone() * cos.clone() + rotate_half(k) * sin.clone();
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let out = kernel.attend(q, k, v, mask, 1.0 / (d as f64).sqrt());
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, h * d]))
    }
}

impl CausalLm {
    /// A randomly initialised model (weights `N(0, init_std^2)`, norms one, biases zero), on `device`.
    pub fn init(config: &LmConfig, init_std: f64, device: &Device) -> Self {
        let c = config;
        let (hs, h, kv, d) = (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let mlp = if c.is_sparse_layer(i) {
                    let m = c.moe.as_ref().expect("sparse layer has a MoE config");
                    let shared = m.shared_intermediate_size > 0;
                    FeedForward {
                        gate_proj: None,
                        up_proj: None,
                        down_proj: None,
                        gate: Some(Linear::new(hs, m.num_experts, false, init_std, device)),
                        experts: (0..m.num_experts)
                            .map(|_| Mlp::new(hs, m.intermediate_size, false, init_std, device))
                            .collect(),
                        shared_expert: shared
                            .then(|| Mlp::new(hs, m.shared_intermediate_size, false, init_std, device)),
                        shared_expert_gate: (shared && m.shared_expert_gated)
                            .then(|| Linear::new(hs, 1, false, init_std, device)),
                        routing: Some(m.clone()),
                    }
                } else {
                    let mlp = Mlp::new(hs, c.intermediate_size, c.mlp_bias, init_std, device);
                    FeedForward {
                        gate_proj: Some(mlp.gate_proj),
                        up_proj: Some(mlp.up_proj),
                        down_proj: Some(mlp.down_proj),
                        gate: None,
                        experts: Vec::new(),
                        shared_expert: None,
                        shared_expert_gate: None,
                        routing: None,
                    }
                };
                DecoderLayer {
                    self_attn: SelfAttention {
                        q_proj: Linear::new(hs, h * d, c.qkv_bias, init_std, device),
                        k_proj: Linear::new(hs, kv * d, c.qkv_bias, init_std, device),
                        v_proj: Linear::new(hs, kv * d, c.qkv_bias, init_std, device),
                        o_proj: Linear::new(h * d, hs, c.o_bias, init_std, device),
                    },
                    mlp,
                    input_layernorm: RmsNorm::new(hs, c.rms_norm_eps, device),
                    post_attention_layernorm: RmsNorm::new(hs, c.rms_norm_eps, device),
                }
            })
            .collect();
        CausalLm {
            model: Decoder {
                embed_tokens: Embedding { weight: normal([c.vocab_size, hs], init_std, device) },
                layers,
                norm: RmsNorm::new(hs, c.rms_norm_eps, device),
            },
            lm_head: (!c.tie_word_embeddings).then(|| Linear::new(hs, c.vocab_size, false, init_std, device)),
            config: config.clone(),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.model.embed_tokens.weight.lazy_device()
    }

    /// Logits of unpadded, equal-length sequences (positions from 0, no cache), default attention
    /// ([`FlashAttention`], which falls back to eager attention off the CPU).
    pub fn forward_ids(&self, ids: &[Vec<u32>]) -> Result<LmOutput> {
        self.forward_with(&ForwardInput::dense(ids.to_vec()), None, &FlashAttention::default())
    }

    /// [`CausalLm::forward_with`] with the default attention, [`FlashAttention`] (the tiled kernel on
    /// the CPU, eager attention elsewhere). Pass [`crate::EagerAttention`] to `forward_with` for the
    /// straightforward path.
    pub fn forward(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<LmOutput> {
        self.forward_with(input, cache, &FlashAttention::default())
    }

    /// Run the decoder on `input`, after the positions held in `cache` (which is extended).
    pub fn forward_with(
        &self,
        input: &ForwardInput,
        mut cache: Option<&mut KvCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<LmOutput> {
        let c = &self.config;
        let b = input.ids.len();
        let t = input.ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || input.ids.iter().any(|s| s.len() != t) {
            return Err(Error::invalid(
                "input",
                format!("token ids must be a non-empty rectangular block, got {b} rows"),
            ));
        }
        if input.positions.len() != b || input.valid.len() != b {
            return Err(Error::invalid("input", "positions and valid must have one row per sequence"));
        }
        if let Some(&bad) = input.ids.iter().flatten().find(|&&i| i as usize >= c.vocab_size) {
            return Err(Error::invalid(
                "input",
                format!("token id {bad} is outside the vocabulary (size {})", c.vocab_size),
            ));
        }
        let max_pos = input.positions.iter().flatten().copied().max().unwrap_or(0);
        if max_pos >= c.max_position_embeddings {
            return Err(Error::invalid(
                "input",
                format!(
                    "position {max_pos} is beyond the model's context of {} tokens; shorten the prompt or max_new_tokens",
                    c.max_position_embeddings
                ),
            ));
        }
        let device = self.device();
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(cache) = cache.as_ref() {
            if cache.key_valid.len() != b {
                return Err(Error::invalid("cache", format!("built for {} sequences, got {b}", cache.key_valid.len())));
            }
        }
        // Rotary tables [b, 1, t, d].
        let inv = rope_inv_freq(c);
        let d = c.head_dim;
        let mut cos = Vec::with_capacity(b * t * d);
        let mut sin = Vec::with_capacity(b * t * d);
        for row in &input.positions {
            for &p in row {
                for _ in 0..2 {
                    for f in &inv {
                        let a = p as f32 * f;
                        cos.push(a.cos());
                        sin.push(a.sin());
                    }
                }
            }
        }
        let cos = Tensor::<4>::from_data(TensorData::new(cos, [b, 1, t, d]), &device);
        let sin = Tensor::<4>::from_data(TensorData::new(sin, [b, 1, t, d]), &device);
        // Masks, one per distinct window.
        let key_valid: Vec<Vec<bool>> = (0..b)
            .map(|i| {
                let mut v = cache.as_ref().map_or_else(Vec::new, |c| c.key_valid[i].clone());
                v.extend_from_slice(&input.valid[i]);
                v
            })
            .collect();
        let mut masks: HashMap<Option<usize>, AttentionMask> = HashMap::new();
        for w in &c.sliding_window {
            masks.entry(*w).or_insert_with(|| AttentionMask::causal(key_valid.clone(), past, t, *w, &device));
        }
        let flat: Vec<i64> = input.ids.iter().flatten().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, t]), &device);
        let mut x = self.model.embed_tokens.forward(ids);
        let mut stats = Vec::new();
        for (i, layer) in self.model.layers.iter().enumerate() {
            let mask = &masks[&c.sliding_window[i]];
            let slot = cache.as_mut().map(|c| &mut c.layers[i]);
            let a =
                layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), &cos, &sin, c, slot, mask, kernel);
            let x1 = x + a;
            let f = layer.mlp.forward(layer.post_attention_layernorm.forward(x1.clone()), &mut stats);
            x = x1 + f;
        }
        if let Some(cache) = cache {
            cache.key_valid = key_valid;
        }
        let x = self.model.norm.forward(x);
        let logits = match &self.lm_head {
            Some(head) => head.forward(x),
            None => x.matmul(self.model.embed_tokens.weight.val().transpose().unsqueeze::<3>()),
        };
        let aux_loss = match (&c.moe, stats.is_empty()) {
            (Some(m), false) => Some(load_balancing_loss(&stats, m.num_experts, m.top_k).mul_scalar(m.aux_loss_coef)),
            _ => None,
        };
        Ok(LmOutput { logits, aux_loss })
    }
}

/// The Switch-Transformer load-balancing loss as transformers computes it (`load_balancing_loss_func`,
/// no padding mask): over all layers' tokens together, `E * sum_{slot, e} f_{slot, e} * P_e`, where
/// `f` is the fraction of tokens whose `slot`-th choice is expert `e` and `P_e` the mean router probability.
pub fn load_balancing_loss(stats: &[RouterStats], num_experts: usize, top_k: usize) -> Tensor<1> {
    let probs = Tensor::cat(stats.iter().map(|s| s.probs.clone()).collect(), 0);
    let n = probs.dims()[0];
    let mut frac = vec![0.0f32; top_k * num_experts];
    for s in stats {
        for (i, &e) in s.chosen.iter().enumerate() {
            frac[(i % top_k) * num_experts + e] += 1.0 / n as f32;
        }
    }
    let device = probs.device();
    let frac = Tensor::<2>::from_data(TensorData::new(frac, [top_k, num_experts]), &device);
    let mean_p = probs.mean_dim(0); // [1, E]
    (frac * mean_p).sum().mul_scalar(num_experts as f64)
}
