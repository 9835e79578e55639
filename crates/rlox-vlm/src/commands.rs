//! `rlox vlm generate` and `rlox vlm score` as library functions returning JSON (nothing here prints or
//! parses argv).

use crate::chat::{encode_with_images, render, Message, MEDIA_PAD};
use crate::hf::load_kimi_vl;
use crate::model::{ImagePrompts, KimiVl};
use crate::processor::{ImageProcessor, ProcessedImage};
use rlox_core::{Error, Result};
use rlox_lm::generate::{generate, log_softmax_at, GenerationConfig};
use rlox_lm::{ForwardInput, LmTokenizer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A loaded model directory.
pub struct LoadedVlm {
    /// The model (CPU, no autodiff).
    pub model: KimiVl,
    /// Its tokenizer (`tokenizer.json`, or Kimi's `tiktoken.model`).
    pub tokenizer: LmTokenizer,
    /// Its image processor (`preprocessor_config.json`).
    pub processor: ImageProcessor,
}

/// Load `dir` on the CPU for inference.
pub fn load_dir(dir: &Path) -> Result<LoadedVlm> {
    let device = rlox_nn::cpu_device()?;
    Ok(LoadedVlm {
        model: load_kimi_vl(dir, &device)?,
        tokenizer: LmTokenizer::from_dir(dir)?,
        processor: ImageProcessor::from_dir(dir)?,
    })
}

/// Arguments of `rlox vlm generate`.
#[derive(Debug, Clone)]
pub struct VlmGenerateArgs {
    /// Model directory.
    pub model: PathBuf,
    /// Image files (PNG, JPEG), shown in this order.
    pub images: Vec<PathBuf>,
    /// The question or instruction.
    pub prompt: String,
    /// Use `prompt` as the whole text, with one `<|media_pad|>` per image where it belongs (no chat format).
    pub raw: bool,
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

impl VlmGenerateArgs {
    /// Defaults for everything but the model, the images and the prompt.
    pub fn new(model: impl Into<PathBuf>, images: Vec<PathBuf>, prompt: &str) -> Self {
        VlmGenerateArgs {
            model: model.into(),
            images,
            prompt: prompt.to_string(),
            raw: false,
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

/// The prompt text: the chat format with the images first, or `prompt` itself when `raw`.
pub fn prompt_text(prompt: &str, images: usize, raw: bool) -> String {
    if raw {
        prompt.to_string()
    } else {
        render(&[Message::user_with_images(images, prompt)], true)
    }
}

/// Process image files and tokenize a prompt for them.
pub fn prepare(loaded: &LoadedVlm, images: &[PathBuf], text: &str) -> Result<(Vec<u32>, Vec<ProcessedImage>)> {
    let processed: Vec<ProcessedImage> =
        images.iter().map(|p| loaded.processor.process_file(p)).collect::<Result<_>>()?;
    let merge = loaded.model.config.vision.merge_kernel_size;
    let counts: Vec<usize> = processed.iter().map(|i| i.num_tokens(merge)).collect();
    let ids = encode_with_images(&loaded.tokenizer, text, loaded.model.config.media_placeholder_token_id, &counts)?;
    Ok((ids, processed))
}

fn image_json(paths: &[PathBuf], images: &[ProcessedImage], merge: [usize; 2]) -> Value {
    json!(paths
        .iter()
        .zip(images)
        .map(|(p, i)| json!({"path": p.display().to_string(), "grid": [i.grid.0, i.grid.1], "tokens": i.num_tokens(merge)}))
        .collect::<Vec<_>>())
}

/// Run `rlox vlm generate`.
pub fn generate_json(args: &VlmGenerateArgs) -> Result<Value> {
    let t0 = Instant::now();
    let loaded = load_dir(&args.model)?;
    let load_s = t0.elapsed().as_secs_f64();
    let text = prompt_text(&args.prompt, args.images.len(), args.raw);
    let (ids, images) = prepare(&loaded, &args.images, &text)?;
    let LoadedVlm { model, tokenizer, .. } = &loaded;
    let mut eos = tokenizer.eos_token_ids.clone();
    eos.extend(&model.config.text.eos_token_ids);
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
    let prompts = ImagePrompts::new(model, std::slice::from_ref(&ids), std::slice::from_ref(&images))?;
    let vision_s = t1.elapsed().as_secs_f64();
    let out = generate(&prompts, std::slice::from_ref(&ids), &cfg, Some(tokenizer))?.remove(0);
    let gen_s = t1.elapsed().as_secs_f64();
    let tokens: Vec<String> = out.token_ids.iter().map(|&i| tokenizer.id_to_token(i).unwrap_or_default()).collect();
    Ok(json!({
        "model": args.model.display().to_string(),
        "prompt": args.prompt,
        "images": image_json(&args.images, &images, model.config.vision.merge_kernel_size),
        "prompt_tokens": ids.len(),
        "completion": out.text,
        "token_ids": out.token_ids,
        "tokens": tokens,
        "logprobs": out.logprobs,
        "total_logprob": out.logprobs.iter().map(|&x| x as f64).sum::<f64>(),
        "finish_reason": out.finish_reason,
        "seed": args.seed,
        "temperature": args.temperature,
        "load_s": load_s,
        "vision_s": vision_s,
        "generate_s": gen_s,
        "new_tokens_per_s": out.token_ids.len() as f64 / (gen_s - vision_s).max(1e-9),
    }))
}

/// Log-probs of `completion` tokens after `prompt` tokens (with images), one per completion token.
pub fn score_ids(model: &KimiVl, prompt: &[u32], completion: &[u32], images: &[ProcessedImage]) -> Result<Vec<f32>> {
    if completion.is_empty() {
        return Err(Error::invalid("completion", "nothing to score: the completion has no tokens"));
    }
    let mut ids = prompt.to_vec();
    ids.extend_from_slice(completion);
    if ids.len() > model.config.text.max_position_embeddings {
        return Err(Error::invalid(
            "text",
            format!("{} tokens exceed the model's context of {}", ids.len(), model.config.text.max_position_embeddings),
        ));
    }
    let input = ForwardInput::dense(vec![ids.clone()]);
    let prompts = ImagePrompts::new(model, std::slice::from_ref(&prompt.to_vec()), &[images.to_vec()])?;
    let logits = rlox_lm::generate::Decode::sequence_logits(&prompts, &input, None)?;
    let [_, _, v] = logits.dims();
    let flat: Vec<f32> = logits.into_data().try_into_vec_as::<f32>().expect("f32 logits");
    Ok((prompt.len()..ids.len()).map(|i| log_softmax_at(&flat[(i - 1) * v..i * v], ids[i] as usize, 1.0)).collect())
}

/// Run `rlox vlm score`: the log-probs of `completion` after the (chat-formatted unless `raw`) `prompt`
/// with `images`.
pub fn score_json(dir: &Path, images: &[PathBuf], prompt: &str, completion: &str, raw: bool) -> Result<Value> {
    let loaded = load_dir(dir)?;
    let text = prompt_text(prompt, images.len(), raw);
    let (prompt_ids, processed) = prepare(&loaded, images, &text)?;
    if completion.contains(MEDIA_PAD) {
        return Err(Error::invalid("completion", format!("must not contain {MEDIA_PAD}")));
    }
    let completion_ids = loaded.tokenizer.encode(completion, false)?;
    let lps = score_ids(&loaded.model, &prompt_ids, &completion_ids, &processed)?;
    let tokens: Vec<String> =
        completion_ids.iter().map(|&i| loaded.tokenizer.id_to_token(i).unwrap_or_default()).collect();
    Ok(json!({
        "model": dir.display().to_string(),
        "prompt": prompt,
        "completion": completion,
        "images": image_json(images, &processed, loaded.model.config.vision.merge_kernel_size),
        "prompt_tokens": prompt_ids.len(),
        "tokens": tokens,
        "token_ids": completion_ids,
        "logprobs": lps,
        "total_logprob": lps.iter().map(|&x| x as f64).sum::<f64>(),
    }))
}
