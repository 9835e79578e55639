//! `rlox lm generate` and `rlox lm score` as library functions (Llama/Qwen2 and DeepSeek-V3 directories): they load a model directory, run,
//! and return JSON for the CLI to print (nothing here prints or parses argv).

use crate::deepseek_v3::{DeepseekV3ForCausalLm, LatentCache};
use crate::generate::{generate, log_softmax_at, Decode, GenerationConfig};
use crate::hf::{load_deepseek_v3, load_model};
use crate::model::{CausalLm, ForwardInput, KvCache};
use crate::tokenizer::{ChatMessage, LmTokenizer};
use rlox_core::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `rlox lm generate`.
#[derive(Debug, Clone)]
pub struct GenerateArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    pub model: PathBuf,
    /// The prompt text.
    pub prompt: String,
    /// Wrap the prompt as one user turn of the model's chat template.
    pub chat: bool,
    /// New tokens at most.
    pub max_new_tokens: usize,
    /// Temperature (0: greedy).
    pub temperature: f32,
    /// Top-k (0: off).
    pub top_k: usize,
    /// Top-p (1: off).
    pub top_p: f32,
    /// Repetition penalty (1: off).
    pub repetition_penalty: f32,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Sampler seed.
    pub seed: u64,
}

impl GenerateArgs {
    /// Defaults for everything but the model and the prompt.
    pub fn new(model: impl Into<PathBuf>, prompt: &str) -> Self {
        GenerateArgs {
            model: model.into(),
            prompt: prompt.to_string(),
            chat: false,
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            seed: 0,
        }
    }
}

/// Either decoder family, chosen by `config.json`'s `model_type`.
pub enum AnyLm {
    /// Llama, Mistral, Qwen2, Qwen2-MoE.
    Llama(CausalLm),
    /// DeepSeek-V3 (`deepseek_v3`, `kimi_k2`; Moonlight).
    DeepseekV3(DeepseekV3ForCausalLm),
}

/// The cache of an [`AnyLm`].
pub enum AnyCache {
    /// Keys and values.
    Kv(KvCache),
    /// Compressed latents.
    Latent(LatentCache),
}

impl AnyLm {
    /// End-of-sequence ids from the model's config.
    pub fn eos_token_ids(&self) -> &[u32] {
        match self {
            AnyLm::Llama(m) => &m.config.eos_token_ids,
            AnyLm::DeepseekV3(m) => &m.config.eos_token_ids,
        }
    }
}

impl Decode for AnyLm {
    type Cache = AnyCache;

    fn max_context(&self) -> usize {
        match self {
            AnyLm::Llama(m) => m.max_context(),
            AnyLm::DeepseekV3(m) => m.max_context(),
        }
    }

    fn new_cache(&self, batch: usize) -> AnyCache {
        match self {
            AnyLm::Llama(m) => AnyCache::Kv(m.new_cache(batch)),
            AnyLm::DeepseekV3(m) => AnyCache::Latent(m.new_cache(batch)),
        }
    }

    fn next_token_logits(&self, input: &ForwardInput, cache: Option<&mut AnyCache>) -> Result<rlox_nn::Tensor<2>> {
        match (self, cache) {
            (AnyLm::Llama(m), None) => Decode::next_token_logits(m, input, None),
            (AnyLm::Llama(m), Some(AnyCache::Kv(c))) => Decode::next_token_logits(m, input, Some(c)),
            (AnyLm::DeepseekV3(m), None) => m.next_token_logits(input, None),
            (AnyLm::DeepseekV3(m), Some(AnyCache::Latent(c))) => m.next_token_logits(input, Some(c)),
            _ => Err(Error::invalid("cache", "made for the other decoder family")),
        }
    }

    fn sequence_logits(&self, input: &ForwardInput, cache: Option<&mut AnyCache>) -> Result<rlox_nn::Tensor<3>> {
        match (self, cache) {
            (AnyLm::Llama(m), None) => m.sequence_logits(input, None),
            (AnyLm::Llama(m), Some(AnyCache::Kv(c))) => m.sequence_logits(input, Some(c)),
            (AnyLm::DeepseekV3(m), None) => m.sequence_logits(input, None),
            (AnyLm::DeepseekV3(m), Some(AnyCache::Latent(c))) => m.sequence_logits(input, Some(c)),
            _ => Err(Error::invalid("cache", "made for the other decoder family")),
        }
    }
}

/// A loaded model directory.
pub struct LoadedModel {
    /// The model (plain CPU device, no autodiff).
    pub model: AnyLm,
    /// Its tokenizer.
    pub tokenizer: LmTokenizer,
}

/// Load `dir` (model and tokenizer) on the CPU for inference: a DeepSeek-V3 model when `config.json` says
/// `deepseek_v3` or `kimi_k2`, a Llama/Qwen2-family model otherwise.
pub fn load_dir(dir: &Path) -> Result<LoadedModel> {
    let device = rlox_nn::cpu_device()?;
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config { path: path.clone(), message: format!("not valid JSON: {e}") })?;
    let model = match v.get("model_type").and_then(Value::as_str) {
        Some("deepseek_v3" | "kimi_k2") => AnyLm::DeepseekV3(load_deepseek_v3(dir, &device)?),
        _ => AnyLm::Llama(load_model(dir, &device)?),
    };
    let tokenizer = LmTokenizer::from_dir(dir)?;
    Ok(LoadedModel { model, tokenizer })
}

/// Run `rlox lm generate`: the completion, its token ids, tokens and log-probs, and timings.
pub fn generate_json(args: &GenerateArgs) -> Result<Value> {
    let t0 = Instant::now();
    let LoadedModel { model, tokenizer } = load_dir(&args.model)?;
    let load_s = t0.elapsed().as_secs_f64();
    let prompt_ids = if args.chat {
        tokenizer.apply_chat_template(&[ChatMessage::new("user", &args.prompt)], true)?
    } else {
        tokenizer.encode(&args.prompt, true)?
    };
    let mut eos = tokenizer.eos_token_ids.clone();
    eos.extend(model.eos_token_ids());
    eos.sort();
    eos.dedup();
    let cfg = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        stop_strings: args.stop.clone(),
        eos_token_ids: eos,
        pad_token_id: tokenizer.pad_token_id,
        seed: args.seed,
        ..Default::default()
    };
    let t1 = Instant::now();
    let out = generate(&model, std::slice::from_ref(&prompt_ids), &cfg, Some(&tokenizer))?.remove(0);
    let gen_s = t1.elapsed().as_secs_f64();
    let tokens: Vec<String> = out.token_ids.iter().map(|&i| tokenizer.id_to_token(i).unwrap_or_default()).collect();
    Ok(json!({
        "model": args.model.display().to_string(),
        "prompt": args.prompt,
        "prompt_token_ids": prompt_ids,
        "completion": out.text,
        "token_ids": out.token_ids,
        "tokens": tokens,
        "logprobs": out.logprobs,
        "total_logprob": out.logprobs.iter().map(|&x| x as f64).sum::<f64>(),
        "finish_reason": out.finish_reason,
        "seed": args.seed,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "load_s": load_s,
        "generate_s": gen_s,
        "new_tokens_per_s": out.token_ids.len() as f64 / gen_s.max(1e-9),
    }))
}

/// Per-token log-probs of `ids` under `model`: entry `i` is `log p(ids[i] | ids[..i])`, `None` for the first.
pub fn score_ids<M: Decode + ?Sized>(model: &M, ids: &[u32]) -> Result<Vec<Option<f32>>> {
    if ids.is_empty() {
        return Err(Error::invalid("text", "nothing to score: the text has no tokens"));
    }
    if ids.len() > model.max_context() {
        return Err(Error::invalid(
            "text",
            format!("{} tokens exceed the model's context of {}", ids.len(), model.max_context()),
        ));
    }
    let logits = model.sequence_logits(&ForwardInput::dense(vec![ids.to_vec()]), None)?;
    let [_, t, v] = logits.dims();
    let flat: Vec<f32> = logits.into_data().try_into_vec_as::<f32>().expect("f32");
    let mut out = vec![None];
    for i in 1..t {
        out.push(Some(log_softmax_at(&flat[(i - 1) * v..i * v], ids[i] as usize, 1.0)));
    }
    Ok(out)
}

/// Run `rlox lm score`: `tokens`, `token_ids`, `logprobs` (null for the first token, which has no
/// context) and `total_logprob`.
pub fn score_json(model_dir: &Path, text: &str) -> Result<Value> {
    let LoadedModel { model, tokenizer } = load_dir(model_dir)?;
    let ids = tokenizer.encode(text, true)?;
    let lps = score_ids(&model, &ids)?;
    let tokens: Vec<String> = ids.iter().map(|&i| tokenizer.id_to_token(i).unwrap_or_default()).collect();
    let total: f64 = lps.iter().flatten().map(|&x| x as f64).sum();
    Ok(json!({
        "model": model_dir.display().to_string(),
        "text": text,
        "tokens": tokens,
        "token_ids": ids,
        "logprobs": lps,
        "total_logprob": total,
    }))
}
