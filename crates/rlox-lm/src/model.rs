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
use rlox_nn::burn::tensor::activation::{log_softmax, sigmoid, silu, softmax};
use rlox_nn::burn::tensor::{DType, Distribution, IndexingUpdateOp};
use rlox_nn::{Device, Int, Module, Tensor, TensorData};
use std::collections::HashMap;
use std::sync::Arc;

/// What a parameter is: how it starts from scratch, and how a Hugging Face checkpoint stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A linear layer's weight: `[in, out]` here, `[out, in]` in the checkpoint; starts `N(0, std^2)`.
    LinearWeight,
    /// Stored as it is (embeddings); starts `N(0, std^2)`.
    Normal,
    /// Stored as it is; starts at one (norm scales).
    Ones,
    /// Stored as it is; starts at zero (biases).
    Zeros,
}

/// Where a model's parameters come from while it is built ([`CausalLm::new`]): drawn at random
/// ([`RandomInit`]) or read from a checkpoint (`crate::hf`), one parameter at a time, by its
/// Hugging Face name. A model is therefore built exactly once, with its final weights: no random
/// initialisation that a checkpoint then overwrites.
pub trait ParamSource {
    /// The parameter `name` of `shape` (this crate's layout, see [`ParamKind`]).
    fn param<const D: usize>(&mut self, name: &str, shape: [usize; D], kind: ParamKind) -> Result<Param<Tensor<D>>>;
}

/// Parameters as transformers' `_init_weights` makes them: weights `N(0, std^2)` drawn from
/// `device`'s generator (seed it first), norms one, biases zero.
#[derive(Debug, Clone)]
pub struct RandomInit {
    /// Standard deviation of the weights (`initializer_range`).
    pub std: f64,
    /// Where the parameters live.
    pub device: Device,
}

impl ParamSource for RandomInit {
    fn param<const D: usize>(&mut self, _name: &str, shape: [usize; D], kind: ParamKind) -> Result<Param<Tensor<D>>> {
        let t = match kind {
            ParamKind::LinearWeight | ParamKind::Normal => {
                Tensor::<D>::random(shape, Distribution::Normal(0.0, self.std), &self.device)
            }
            ParamKind::Ones => Tensor::<D>::ones(shape, &self.device),
            ParamKind::Zeros => Tensor::<D>::zeros(shape, &self.device),
        };
        Ok(Param::from_tensor(t))
    }
}

/// Deterministic pseudo-random parameters that NumPy reproduces bit for bit, so that a test or a
/// benchmark can build a model at real shapes (Qwen2.5-0.5B: 494M parameters) on both sides
/// without shipping its weights (`tools/qwen_shapes.py` holds the Python side).
///
/// Value `i` of the parameter named `name`, in Hugging Face's layout (`[out, in]` for linear
/// weights), is `k * 2^-28` with `k = (splitmix64(fnv1a64(name) + i) >> 40) - 2^23`: uniform on
/// `[-1/32, 1/32)`, exactly representable in f32. Norm scales are `1 + k * 2^-26` (rounded to f32).
#[derive(Debug, Clone)]
pub struct HashInit {
    /// Where the parameters live.
    pub device: Device,
}

impl HashInit {
    /// FNV-1a, 64 bits: the seed of a parameter's stream.
    pub fn name_seed(name: &str) -> u64 {
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// The integer `k` in `[-2^23, 2^23)` behind value `i` of a parameter (see the type docs).
    pub fn draw(seed: u64, i: u64) -> i32 {
        let mut z = seed.wrapping_add(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as i32 - (1 << 23)
    }

    /// The values of parameter `name` with `n` entries, in Hugging Face's order.
    pub fn values(name: &str, n: usize, kind: ParamKind) -> Vec<f32> {
        let seed = Self::name_seed(name);
        let scale = 2f32.powi(-28);
        (0..n as u64)
            .map(|i| {
                let k = Self::draw(seed, i) as f32;
                match kind {
                    ParamKind::Ones => 1.0 + k * 2f32.powi(-26),
                    _ => k * scale,
                }
            })
            .collect()
    }
}

impl ParamSource for HashInit {
    fn param<const D: usize>(&mut self, name: &str, shape: [usize; D], kind: ParamKind) -> Result<Param<Tensor<D>>> {
        let n = shape.iter().product();
        let mut v = Self::values(name, n, kind);
        if kind == ParamKind::LinearWeight {
            // Drawn as [out, in], stored [in, out].
            let (rows, cols) = (shape[1], shape[0]);
            let mut t = vec![0.0; n];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = v[r * cols + c];
                }
            }
            v = t;
        }
        Ok(Param::from_tensor(Tensor::<D>::from_data(TensorData::new(v, shape), &self.device)))
    }
}

/// A linear layer `y = x W + b` with `W: [in, out]`.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]` (the transpose of PyTorch's layout).
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// A layer with weights drawn from `N(0, std^2)` and zero bias (transformers' `_init_weights`).
    pub fn new(input: usize, output: usize, bias: bool, std: f64, device: &Device) -> Self {
        let mut src = RandomInit { std, device: device.clone() };
        Self::load(&mut src, "", input, output, bias).expect("random initialisation cannot fail")
    }

    /// The layer `prefix` (`prefix.weight`, `prefix.bias`) from `src`.
    pub fn load<S: ParamSource>(src: &mut S, prefix: &str, input: usize, output: usize, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: src.param(&format!("{prefix}.weight"), [input, output], ParamKind::LinearWeight)?,
            bias: if bias { Some(src.param(&format!("{prefix}.bias"), [output], ParamKind::Zeros)?) } else { None },
        })
    }

    /// Apply to `[batch, seq, in]`: one `[batch * seq, in] x [in, out]` product.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, i] = x.dims();
        let y = self.forward2(x.reshape([b * t, i]));
        let o = y.dims()[1];
        y.reshape([b, t, o])
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

    /// The norm `prefix` (`prefix.weight`) from `src`.
    pub fn load<S: ParamSource>(src: &mut S, prefix: &str, hidden: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm { weight: src.param(&format!("{prefix}.weight"), [hidden], ParamKind::Ones)?, eps })
    }

    /// Normalise over the last dimension. A bf16 input is normalised in f32 and rounded back before
    /// the scale, as transformers' `Qwen2RMSNorm`/`LlamaRMSNorm` do.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = if dtype == DType::F32 { x } else { x.cast(DType::F32) };
        let var = x.clone().square().mean_dim(D - 1);
        let x = x * var.add_scalar(self.eps).sqrt().recip();
        let x = if dtype == DType::F32 { x } else { x.cast(dtype) };
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

    /// `x [n, hidden]` times the embedding's transpose: the logits of a tied output layer,
    /// `[n, vocab]`. The product reads `[vocab, hidden]` in place through its strides (a rank-2
    /// product needs no transposed copy of the 151936 x 896 matrix).
    pub fn attend(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose())
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
    /// The MLP `prefix` (`prefix.gate_proj`, `prefix.up_proj`, `prefix.down_proj`) from `src`.
    pub fn load<S: ParamSource>(src: &mut S, prefix: &str, hidden: usize, inter: usize, bias: bool) -> Result<Self> {
        Ok(Mlp {
            gate_proj: Linear::load(src, &format!("{prefix}.gate_proj"), hidden, inter, bias)?,
            up_proj: Linear::load(src, &format!("{prefix}.up_proj"), hidden, inter, bias)?,
            down_proj: Linear::load(src, &format!("{prefix}.down_proj"), inter, hidden, bias)?,
        })
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

/// What every layer of one forward call shares: rotary tables, masks, the attention kernel.
#[derive(Clone)]
struct LayerInputs {
    cos: Tensor<4>,
    sin: Tensor<4>,
    mask: AttentionMask,
    config: Arc<LmConfig>,
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        inputs: &LayerInputs,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        kernel: &dyn AttentionKernel,
        stats: &mut Vec<RouterStats>,
    ) -> Tensor<3> {
        let a = self.self_attn.forward(self.input_layernorm.forward(x.clone()), inputs, cache, kernel);
        let x = x + a;
        let f = self.mlp.forward(self.post_attention_layernorm.forward(x.clone()), stats);
        x + f
    }
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

/// Memory-for-compute trades of training (they change no value, only what is kept for the
/// backward pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryOptions {
    /// Keep only each dense decoder layer's input and recompute its intermediates when the backward
    /// pass reaches it (transformers' `gradient_checkpointing_enable()`): the activations of one layer
    /// instead of all, for one more forward pass. Off by default. Applies on the CPU backend with
    /// autodiff (see [`rlox_nn::recompute`]); MoE layers and calls with a KV cache run as usual.
    pub gradient_checkpointing: bool,
    /// Rows of `[rows, vocab]` logits that [`CausalLm::token_logprobs`] computes at once (0: as many
    /// as fit in 128 MiB, e.g. 220 rows at Qwen2.5's vocabulary of 151,936).
    pub logits_chunk_rows: usize,
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
    /// Gradient checkpointing and logits chunking (training memory).
    #[module(skip)]
    pub memory: MemoryOptions,
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
    /// The attention of layer `prefix` from `src`.
    fn load<S: ParamSource>(src: &mut S, prefix: &str, c: &LmConfig) -> Result<Self> {
        let (hs, h, kv, d) = (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        Ok(SelfAttention {
            q_proj: Linear::load(src, &format!("{prefix}.q_proj"), hs, h * d, c.qkv_bias)?,
            k_proj: Linear::load(src, &format!("{prefix}.k_proj"), hs, kv * d, c.qkv_bias)?,
            v_proj: Linear::load(src, &format!("{prefix}.v_proj"), hs, kv * d, c.qkv_bias)?,
            o_proj: Linear::load(src, &format!("{prefix}.o_proj"), h * d, hs, c.o_bias)?,
        })
    }

    fn forward(
        &self,
        x: Tensor<3>,
        inputs: &LayerInputs,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        kernel: &dyn AttentionKernel,
    ) -> Tensor<3> {
        let config = &inputs.config;
        let [b, t, _] = x.dims();
        let (h, kv, d) = (config.num_attention_heads, config.num_key_value_heads, config.head_dim);
        let (cos, sin) = (&inputs.cos, &inputs.sin);
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
        let out = kernel.attend(q, k, v, &inputs.mask, 1.0 / (d as f64).sqrt());
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, h * d]))
    }
}

/// The final hidden states of a forward pass (after the last norm, before the output layer).
#[derive(Debug, Clone)]
pub struct HiddenStates {
    /// `[batch, seq, hidden]`.
    pub hidden: Tensor<3>,
    /// The MoE load-balancing loss (already multiplied by `router_aux_loss_coef`), if the model has experts.
    pub aux_loss: Option<Tensor<1>>,
}

impl CausalLm {
    /// A randomly initialised model (weights `N(0, init_std^2)`, norms one, biases zero), on `device`.
    pub fn init(config: &LmConfig, init_std: f64, device: &Device) -> Self {
        Self::new(config, &mut RandomInit { std: init_std, device: device.clone() })
            .expect("random initialisation cannot fail")
    }

    /// Build the model of `config` with its parameters taken from `src`, by their Hugging Face
    /// names, in a fixed order (the order of random draws of [`CausalLm::init`]).
    pub fn new<S: ParamSource>(config: &LmConfig, src: &mut S) -> Result<Self> {
        let c = config;
        let hs = c.hidden_size;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            // The feed-forward first, then attention, then the norms: the draw order of earlier versions.
            let mlp = if c.is_sparse_layer(i) {
                let m = c.moe.as_ref().expect("sparse layer has a MoE config");
                let shared = m.shared_intermediate_size > 0;
                FeedForward {
                    gate_proj: None,
                    up_proj: None,
                    down_proj: None,
                    gate: Some(Linear::load(src, &format!("{p}.mlp.gate"), hs, m.num_experts, false)?),
                    experts: (0..m.num_experts)
                        .map(|e| Mlp::load(src, &format!("{p}.mlp.experts.{e}"), hs, m.intermediate_size, false))
                        .collect::<Result<_>>()?,
                    shared_expert: if shared {
                        Some(Mlp::load(src, &format!("{p}.mlp.shared_expert"), hs, m.shared_intermediate_size, false)?)
                    } else {
                        None
                    },
                    shared_expert_gate: if shared && m.shared_expert_gated {
                        Some(Linear::load(src, &format!("{p}.mlp.shared_expert_gate"), hs, 1, false)?)
                    } else {
                        None
                    },
                    routing: Some(m.clone()),
                }
            } else {
                let mlp = Mlp::load(src, &format!("{p}.mlp"), hs, c.intermediate_size, c.mlp_bias)?;
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
            let self_attn = SelfAttention::load(src, &format!("{p}.self_attn"), c)?;
            layers.push(DecoderLayer {
                self_attn,
                mlp,
                input_layernorm: RmsNorm::load(src, &format!("{p}.input_layernorm"), hs, c.rms_norm_eps)?,
                post_attention_layernorm: RmsNorm::load(
                    src,
                    &format!("{p}.post_attention_layernorm"),
                    hs,
                    c.rms_norm_eps,
                )?,
            });
        }
        let embed_tokens =
            Embedding { weight: src.param("model.embed_tokens.weight", [c.vocab_size, hs], ParamKind::Normal)? };
        let norm = RmsNorm::load(src, "model.norm", hs, c.rms_norm_eps)?;
        let lm_head =
            if c.tie_word_embeddings { None } else { Some(Linear::load(src, "lm_head", hs, c.vocab_size, false)?) };
        Ok(CausalLm {
            model: Decoder { embed_tokens, layers, norm },
            lm_head,
            config: config.clone(),
            memory: MemoryOptions::default(),
        })
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.model.embed_tokens.weight.lazy_device()
    }

    /// The dtype the model computes in (that of its parameters: f32 unless loaded for bf16 compute).
    pub fn dtype(&self) -> DType {
        self.model.embed_tokens.weight.val().dtype()
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

    /// Run the decoder on `input`, after the positions held in `cache` (which is extended): logits
    /// of every position, `[batch, seq, vocab]`.
    pub fn forward_with(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<LmOutput> {
        let HiddenStates { hidden, aux_loss } = self.hidden_states_with(input, cache, kernel)?;
        let [b, t, h] = hidden.dims();
        let logits = self.logits(hidden.reshape([b * t, h]));
        let v = logits.dims()[1];
        Ok(LmOutput { logits: logits.reshape([b, t, v]), aux_loss })
    }

    /// Logits of the last position of each sequence, `[batch, vocab]` (what generation needs: the
    /// output layer runs on one row per sequence, not on the whole prompt).
    pub fn next_token_logits(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<Tensor<2>> {
        let hidden = self.hidden_states_with(input, cache, &FlashAttention::default())?.hidden;
        let [b, t, h] = hidden.dims();
        Ok(self.logits(hidden.narrow(1, t - 1, 1).reshape([b, h])))
    }

    /// The output layer: `[n, hidden]` final hidden states to `[n, vocab]` logits.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.forward2(hidden),
            None => self.model.embed_tokens.attend(hidden),
        }
    }

    /// `log softmax(logits(hidden) / temperature)` at `targets`, `[n]`, for `hidden: [n, hidden]`
    /// and one target id per row: what SFT, DPO and GRPO differentiate.
    ///
    /// The logits are computed [`MemoryOptions::logits_chunk_rows`] rows at a time, so neither
    /// pass ever holds the `[n, vocab]` matrix (at Qwen2.5's vocabulary, 2048 tokens of logits are
    /// 1.2 GB, and the softmax, its gradient and the logits' gradient would each take as much
    /// again). On the CPU backend in f32 this is rlox-nn's fused kernel ([`rlox_nn::lm_head`]: its
    /// own backward recomputes each chunk's logits and accumulates one weight gradient); elsewhere
    /// each chunk is a plain graph, checkpointed ([`rlox_nn::recompute`]) when there are several.
    pub fn token_logprobs(&self, hidden: Tensor<2>, targets: &[u32], temperature: f64) -> Result<Tensor<1>> {
        let head = match &self.lm_head {
            Some(head) => OutputLayer::Linear(head),
            None => OutputLayer::Tied(&self.model.embed_tokens),
        };
        head_token_logprobs(head, hidden, targets, temperature, self.memory.logits_chunk_rows)
    }

    /// [`CausalLm::hidden_states_with`] with the default attention.
    pub fn hidden_states(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<HiddenStates> {
        self.hidden_states_with(input, cache, &FlashAttention::default())
    }

    /// Run the decoder on `input`, after the positions held in `cache` (which is extended), up to
    /// the final norm: `[batch, seq, hidden]`.
    pub fn hidden_states_with(
        &self,
        input: &ForwardInput,
        mut cache: Option<&mut KvCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<HiddenStates> {
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
        if input.positions.iter().any(|r| r.len() != t) || input.valid.iter().any(|r| r.len() != t) {
            return Err(Error::invalid(
                "input",
                format!("positions and valid rows must have {t} entries, like the ids"),
            ));
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
        let dtype = self.dtype();
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(cache) = cache.as_ref() {
            if cache.key_valid.len() != b {
                return Err(Error::invalid("cache", format!("built for {} sequences, got {b}", cache.key_valid.len())));
            }
        }
        // Rotary tables [b, 1, t, d], constants in the model's dtype.
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
        let constant = |v: Vec<f32>| {
            let t = Tensor::<4>::from_data(TensorData::new(v, [b, 1, t, d]), &device).inner();
            if dtype == DType::F32 {
                t
            } else {
                t.cast(dtype)
            }
        };
        let (cos, sin) = (constant(cos), constant(sin));
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
            masks.entry(*w).or_insert_with(|| {
                let mut m = AttentionMask::causal(key_valid.clone(), past, t, *w, &device);
                m.bias = m.bias.inner();
                if dtype != DType::F32 {
                    m.bias = m.bias.cast(dtype);
                }
                m
            });
        }
        let flat: Vec<i64> = input.ids.iter().flatten().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, t]), &device);
        let mut x = self.model.embed_tokens.forward(ids);
        let mut stats = Vec::new();
        let shared_config = Arc::new(c.clone());
        // Checkpointing needs a kernel the backward pass can keep, and no cache.
        let shared_kernel = if self.memory.gradient_checkpointing && cache.is_none() && device.is_autodiff() {
            kernel.shared()
        } else {
            None
        };
        for (i, layer) in self.model.layers.iter().enumerate() {
            let mask = masks[&c.sliding_window[i]].clone();
            let inputs = LayerInputs { cos: cos.clone(), sin: sin.clone(), mask, config: Arc::clone(&shared_config) };
            x = match (&shared_kernel, c.is_sparse_layer(i)) {
                (Some(k), false) => {
                    let k = Arc::clone(k);
                    rlox_nn::recompute::checkpoint(layer, x, move |l: &DecoderLayer, x| {
                        l.forward(x, &inputs, None, k.as_ref(), &mut Vec::new())
                    })
                }
                _ => {
                    let slot = cache.as_mut().map(|c| &mut c.layers[i]);
                    layer.forward(x, &inputs, slot, kernel, &mut stats)
                }
            };
        }
        if let Some(cache) = cache {
            cache.key_valid = key_valid;
        }
        let hidden = self.model.norm.forward(x);
        let aux_loss = match (&c.moe, stats.is_empty()) {
            (Some(m), false) => Some(load_balancing_loss(&stats, m.num_experts, m.top_k).mul_scalar(m.aux_loss_coef)),
            _ => None,
        };
        Ok(HiddenStates { hidden, aux_loss })
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

/// An output layer: the tied input embedding, or its own projection.
#[derive(Clone, Copy)]
pub enum OutputLayer<'a> {
    /// Tied embeddings (`[vocab, hidden]`).
    Tied(&'a Embedding),
    /// An untied `lm_head` (`[hidden, vocab]`).
    Linear(&'a Linear),
}

impl OutputLayer<'_> {
    /// The vocabulary size.
    pub fn vocab_size(&self) -> usize {
        match self {
            OutputLayer::Tied(e) => e.weight.dims()[0],
            OutputLayer::Linear(l) => l.weight.dims()[1],
        }
    }
}

/// `log softmax(head(hidden) / temperature)` at `targets`, `[n]`, computed `chunk_rows` rows at a time
/// (0: as many rows as fit in 128 MiB of logits); see [`CausalLm::token_logprobs`].
pub fn head_token_logprobs(
    head: OutputLayer<'_>,
    hidden: Tensor<2>,
    targets: &[u32],
    temperature: f64,
    chunk_rows: usize,
) -> Result<Tensor<1>> {
    let [n, _] = hidden.dims();
    if targets.len() != n {
        return Err(Error::invalid("targets", format!("{} targets for {n} rows of hidden states", targets.len())));
    }
    let vocab = head.vocab_size();
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::invalid("targets", format!("token id {bad} is outside the vocabulary (size {vocab})")));
    }
    let rows = match chunk_rows {
        0 => ((128usize << 20) / (vocab * 4)).max(16),
        r => r,
    };
    // The fused kernel (CPU backend, f32): one pass, one weight gradient, no [n, vocab] anywhere.
    #[cfg(feature = "flex")]
    {
        use rlox_nn::lm_head::{token_logprobs, WeightLayout};
        let fused = match head {
            OutputLayer::Tied(embedding) => token_logprobs(
                &hidden,
                &embedding.weight.val(),
                WeightLayout::VocabMajor,
                targets,
                temperature as f32,
                rows,
            ),
            OutputLayer::Linear(linear) if linear.bias.is_none() => token_logprobs(
                &hidden,
                &linear.weight.val(),
                WeightLayout::HiddenMajor,
                targets,
                temperature as f32,
                rows,
            ),
            OutputLayer::Linear(_) => None,
        };
        if let Some(lp) = fused {
            return Ok(lp);
        }
    }
    // Elsewhere: the plain graph per chunk, each chunk checkpointed when there are several.
    let mut parts = Vec::with_capacity(n.div_ceil(rows));
    let mut start = 0;
    while start < n {
        let len = rows.min(n - start);
        let ids: Vec<i64> = targets[start..start + len].iter().map(|&t| t as i64).collect();
        let h = hidden.clone().narrow(0, start, len);
        let f = move |logits: Tensor<2>| -> Tensor<1> {
            let logits = if temperature != 1.0 { logits.div_scalar(temperature) } else { logits };
            let idx = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [len, 1]), &logits.device());
            log_softmax(logits, 1).gather(1, idx).reshape([len])
        };
        // One chunk holds everything: the plain graph keeps no more than a chunk's logits anyway,
        // and skips the recomputation.
        let whole = len == n;
        parts.push(match (head, whole) {
            (OutputLayer::Linear(linear), true) => f(linear.forward2(h)),
            (OutputLayer::Tied(embedding), true) => f(embedding.attend(h)),
            (OutputLayer::Linear(linear), false) => {
                rlox_nn::recompute::checkpoint(linear, h, move |m: &Linear, h| f(m.forward2(h)))
            }
            (OutputLayer::Tied(embedding), false) => {
                rlox_nn::recompute::checkpoint(embedding, h, move |m: &Embedding, h| f(m.attend(h)))
            }
        });
        start += len;
    }
    Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Tensor::cat(parts, 0) })
}
