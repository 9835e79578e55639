//! [`DeepseekV3ForCausalLm`]: embeddings, layers of MLA + (dense or routed) feed-forward, final norm, output
//! projection; a cache of the compressed latent; an embeddings input for multimodal models.

use crate::attention::{AttentionKernel, AttentionMask, FlashAttention};
use crate::deepseek_v3::config::DeepseekV3Config;
use crate::deepseek_v3::mla::{LatentSlot, Mla, RopeTables};
use crate::deepseek_v3::moe::DeepseekMlp;
use crate::generate::Decode;
use crate::init::Init;
use crate::model::{head_token_logprobs, Embedding, ForwardInput, Linear, LmOutput, OutputLayer, RmsNorm};
use rlox_core::{Error, Result};
use rlox_nn::burn;
use rlox_nn::{Device, Int, Module, Tensor, TensorData};

/// One decoder layer (pre-norm attention and feed-forward, each with a residual).
#[derive(Module, Debug)]
pub struct DeepseekLayer {
    /// Multi-head latent attention.
    pub self_attn: Mla,
    /// Dense MLP or mixture of experts.
    pub mlp: DeepseekMlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the feed-forward.
    pub post_attention_layernorm: RmsNorm,
}

/// The transformer body (`model.*`).
#[derive(Module, Debug)]
pub struct DeepseekModel {
    /// Token embeddings.
    pub embed_tokens: Embedding,
    /// The layers.
    pub layers: Vec<DeepseekLayer>,
    /// Final norm.
    pub norm: RmsNorm,
}

/// A DeepSeek-V3 causal language model; parameter paths are the Hugging Face tensor names.
#[derive(Module, Debug)]
pub struct DeepseekV3ForCausalLm {
    /// The body.
    pub model: DeepseekModel,
    /// Output projection (`None`: tied to the embedding).
    pub lm_head: Option<Linear>,
    /// The configuration.
    #[module(skip)]
    pub config: DeepseekV3Config,
}

/// Cached latents and rope keys of past positions, per layer, and which positions are padding.
#[derive(Debug, Clone)]
pub struct LatentCache {
    layers: Vec<LatentSlot>,
    key_valid: Vec<Vec<bool>>,
}

impl LatentCache {
    /// An empty cache for `batch` sequences.
    pub fn new(config: &DeepseekV3Config, batch: usize) -> Self {
        LatentCache { layers: vec![None; config.num_hidden_layers], key_valid: vec![Vec::new(); batch] }
    }

    /// Cached positions (padding included).
    pub fn len(&self) -> usize {
        self.key_valid.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Floats held per cached position and layer (latent plus rope key).
    pub fn floats_per_position(config: &DeepseekV3Config) -> usize {
        config.kv_lora_rank + config.qk_rope_head_dim
    }
}

impl DeepseekV3ForCausalLm {
    /// Build a model of `config` with parameters from `init`.
    pub fn new(config: &DeepseekV3Config, init: Init, device: &Device) -> Self {
        let c = config;
        let layers = (0..c.num_hidden_layers)
            .map(|i| DeepseekLayer {
                self_attn: Mla::new(c, init, device),
                mlp: DeepseekMlp::new(c, i, init, device),
                input_layernorm: init.rms_norm(c.hidden_size, c.rms_norm_eps, device),
                post_attention_layernorm: init.rms_norm(c.hidden_size, c.rms_norm_eps, device),
            })
            .collect();
        DeepseekV3ForCausalLm {
            model: DeepseekModel {
                embed_tokens: init.embedding(c.vocab_size, c.hidden_size, device),
                layers,
                norm: init.rms_norm(c.hidden_size, c.rms_norm_eps, device),
            },
            lm_head: (!c.tie_word_embeddings).then(|| init.linear(c.hidden_size, c.vocab_size, false, device)),
            config: config.clone(),
        }
    }

    /// A randomly initialised model (weights `N(0, init_std^2)`).
    pub fn init(config: &DeepseekV3Config, init_std: f64, device: &Device) -> Self {
        Self::new(config, Init::Normal(init_std), device)
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.model.embed_tokens.weight.lazy_device()
    }

    /// Check token ids against the vocabulary and embed them (`[batch, seq, hidden]`).
    pub fn embed(&self, ids: &[Vec<u32>]) -> Result<Tensor<3>> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || ids.iter().any(|s| s.len() != t) {
            return Err(Error::invalid(
                "input",
                format!("token ids must be a non-empty rectangular block, got {b} rows"),
            ));
        }
        if let Some(&bad) = ids.iter().flatten().find(|&&i| i as usize >= self.config.vocab_size) {
            return Err(Error::invalid(
                "input",
                format!("token id {bad} is outside the vocabulary (size {})", self.config.vocab_size),
            ));
        }
        let flat: Vec<i64> = ids.iter().flatten().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, t]), &self.device());
        Ok(self.model.embed_tokens.forward(ids))
    }

    /// Logits of unpadded, equal-length sequences from position 0, no cache.
    pub fn forward_ids(&self, ids: &[Vec<u32>]) -> Result<LmOutput> {
        self.forward(&ForwardInput::dense(ids.to_vec()), None)
    }

    /// Run on `input` after the positions held in `cache` (default attention kernel).
    pub fn forward(&self, input: &ForwardInput, cache: Option<&mut LatentCache>) -> Result<LmOutput> {
        self.forward_with(input, cache, &FlashAttention::default())
    }

    /// Run on `input` with `kernel`.
    pub fn forward_with(
        &self,
        input: &ForwardInput,
        cache: Option<&mut LatentCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<LmOutput> {
        let x = self.embed(&input.ids)?;
        self.forward_embeds(x, &input.positions, &input.valid, cache, kernel)
    }

    /// Run on input embeddings `x` (`[batch, seq, hidden]`, e.g. with image features in place of
    /// placeholder tokens) at rotary `positions`, `valid` marking real tokens.
    pub fn forward_embeds(
        &self,
        x: Tensor<3>,
        positions: &[Vec<usize>],
        valid: &[Vec<bool>],
        cache: Option<&mut LatentCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<LmOutput> {
        let hidden = self.hidden_states(x, positions, valid, cache, kernel)?;
        Ok(LmOutput { logits: self.head(hidden), aux_loss: None })
    }

    /// The final (normalised) hidden states `[batch, seq, hidden]` of input embeddings `x`.
    pub fn hidden_states(
        &self,
        x: Tensor<3>,
        positions: &[Vec<usize>],
        valid: &[Vec<bool>],
        mut cache: Option<&mut LatentCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<Tensor<3>> {
        let c = &self.config;
        let [b, t, h] = x.dims();
        if h != c.hidden_size {
            return Err(Error::invalid(
                "input",
                format!("embeddings are {h} wide; the model's width is {}", c.hidden_size),
            ));
        }
        let rows_fit = positions.iter().all(|r| r.len() == t) && valid.iter().all(|r| r.len() == t);
        if positions.len() != b || valid.len() != b || !rows_fit {
            return Err(Error::invalid("input", format!("positions and valid must be [{b}][{t}] like the input")));
        }
        let max_pos = positions.iter().flatten().copied().max().unwrap_or(0);
        if max_pos >= c.max_position_embeddings {
            return Err(Error::invalid(
                "input",
                format!(
                    "position {max_pos} is beyond the model's context of {} tokens; shorten the prompt or max_new_tokens",
                    c.max_position_embeddings
                ),
            ));
        }
        if let Some(cache) = cache.as_ref() {
            if cache.key_valid.len() != b {
                return Err(Error::invalid("cache", format!("built for {} sequences, got {b}", cache.key_valid.len())));
            }
        }
        let device = x.device();
        let past = cache.as_ref().map_or(0, |c| c.len());
        let key_valid: Vec<Vec<bool>> = (0..b)
            .map(|i| {
                let mut v = cache.as_ref().map_or_else(Vec::new, |c| c.key_valid[i].clone());
                v.extend_from_slice(&valid[i]);
                v
            })
            .collect();
        let mask = AttentionMask::causal(key_valid.clone(), past, t, None, &device);
        let rope = RopeTables::new(c, positions, &device);
        let mut x = x;
        for (i, layer) in self.model.layers.iter().enumerate() {
            let slot = cache.as_mut().map(|c| &mut c.layers[i]);
            let a = layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), c, &rope, slot, &mask, kernel);
            let x1 = x + a;
            let f = layer.mlp.forward(layer.post_attention_layernorm.forward(x1.clone()), c);
            x = x1 + f;
        }
        if let Some(cache) = cache {
            cache.key_valid = key_valid;
        }
        Ok(self.model.norm.forward(x))
    }

    /// `log softmax(head(hidden) / temperature)` at `targets` for `hidden: [n, hidden]`, the logits
    /// computed a chunk of rows at a time (see [`crate::CausalLm::token_logprobs`]).
    pub fn token_logprobs(&self, hidden: Tensor<2>, targets: &[u32], temperature: f64) -> Result<Tensor<1>> {
        let head = match &self.lm_head {
            Some(linear) => OutputLayer::Linear(linear),
            None => OutputLayer::Tied(&self.model.embed_tokens),
        };
        head_token_logprobs(head, hidden, targets, temperature, 0)
    }

    /// The output projection of final hidden states `[batch, seq, hidden]`: logits `[batch, seq, vocab]`.
    pub fn head(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => hidden.matmul(self.model.embed_tokens.weight.val().transpose().unsqueeze::<3>()),
        }
    }
}

impl Decode for DeepseekV3ForCausalLm {
    type Cache = LatentCache;

    fn max_context(&self) -> usize {
        self.config.max_position_embeddings
    }

    fn new_cache(&self, batch: usize) -> LatentCache {
        LatentCache::new(&self.config, batch)
    }

    fn next_token_logits(&self, input: &ForwardInput, cache: Option<&mut LatentCache>) -> Result<Tensor<2>> {
        let x = self.embed(&input.ids)?;
        let hidden = self.hidden_states(x, &input.positions, &input.valid, cache, &FlashAttention::default())?;
        let [b, t, _] = hidden.dims();
        Ok(self.head(hidden.narrow(1, t - 1, 1)).reshape([b, self.config.vocab_size]))
    }

    fn sequence_logits(&self, input: &ForwardInput, cache: Option<&mut LatentCache>) -> Result<Tensor<3>> {
        Ok(self.forward(input, cache)?.logits)
    }
}
