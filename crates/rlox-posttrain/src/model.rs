//! Where the model comes from: a Hugging Face directory (a text decoder, or Kimi-VL when its
//! `config.json` says `model_type: "kimi_vl"`), or a fresh Qwen2 of a given shape with a directory's
//! tokenizer (the `[model]` table of every post-training config).

use crate::policy::{PolicyModel, VisionInputs};
use crate::{Error, Result};
use rlox_lm::{CausalLm, LmConfig, LmTokenizer};
use rlox_nn::Device;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The shape of a model trained from scratch (a Qwen2 decoder with tied embeddings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// Hidden size.
    pub hidden_size: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Weight initialisation standard deviation (transformers' `initializer_range`).
    pub init_std: f64,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 128,
            init_std: 0.02,
        }
    }
}

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer files; for Kimi-VL
    /// also preprocessor_config.json). With `init`, only its tokenizer files are used.
    pub path: PathBuf,
    /// Train from scratch with this shape instead of loading weights.
    pub init: Option<InitConfig>,
}

/// A loaded model and tokenizer.
pub struct Loaded {
    /// The model on the training device.
    pub model: PolicyModel,
    /// For a vision-language model: how rows' images become its inputs.
    pub vision: Option<VisionInputs>,
    /// The tokenizer.
    pub tokenizer: LmTokenizer,
    /// The directory holding the tokenizer files (copied into checkpoints).
    pub tokenizer_dir: PathBuf,
    /// The training device (autodiff), seeded.
    pub device: Device,
}

impl ModelConfig {
    /// Load (or initialise) on `device`.
    pub fn load(&self, device: &Device) -> Result<Loaded> {
        let tokenizer = LmTokenizer::from_dir(&self.path)?;
        if is_kimi_vl(&self.path) {
            if self.init.is_some() {
                return Err(Error::invalid(
                    "model.init",
                    format!(
                        "{} is a Kimi-VL model; `init` makes a fresh Qwen2 text model (remove it to train the VLM's weights)",
                        self.path.display()
                    ),
                ));
            }
            let model = rlox_vlm::load_kimi_vl(&self.path, device)?;
            let vision = VisionInputs::of(&model, rlox_vlm::ImageProcessor::from_dir(&self.path)?);
            return Ok(Loaded {
                model: PolicyModel::Vision(model),
                vision: Some(vision),
                tokenizer,
                tokenizer_dir: self.path.clone(),
                device: device.clone(),
            });
        }
        let model = match &self.init {
            None => rlox_lm::load_model(&self.path, device)?,
            Some(init) => {
                let eos = tokenizer.eos_token_ids.first().copied().unwrap_or(0);
                let json = serde_json::json!({
                    "architectures": ["Qwen2ForCausalLM"],
                    "model_type": "qwen2",
                    "hidden_size": init.hidden_size,
                    "intermediate_size": init.intermediate_size,
                    "num_hidden_layers": init.num_hidden_layers,
                    "num_attention_heads": init.num_attention_heads,
                    "num_key_value_heads": init.num_key_value_heads,
                    "max_position_embeddings": init.max_position_embeddings,
                    "vocab_size": tokenizer.vocab_size(),
                    "rms_norm_eps": 1e-6,
                    "rope_theta": 10000.0,
                    "tie_word_embeddings": true,
                    "eos_token_id": eos,
                    "pad_token_id": tokenizer.pad_token_id,
                    "initializer_range": init.init_std,
                });
                let config = LmConfig::from_hf_json(&json)?;
                CausalLm::init(&config, init.init_std, device)
            }
        };
        Ok(Loaded {
            model: PolicyModel::Text(model),
            vision: None,
            tokenizer,
            tokenizer_dir: self.path.clone(),
            device: device.clone(),
        })
    }
}

/// Whether the directory's `config.json` is a Kimi-VL model's.
fn is_kimi_vl(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("model_type").and_then(|m| m.as_str()) == Some("kimi_vl"))
}
