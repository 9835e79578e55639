//! What the trainers share: the model source (a Hugging Face directory, or a fresh model of a given
//! shape with a directory's tokenizer), the run directory and its outputs, and one optimizer step.
//!
//! A run directory (`<output_dir>/<run_name>-<timestamp>/`) holds `config.toml`, `metrics.jsonl`,
//! `metrics.csv`, `metrics.parquet` (long format), `tb/` (TensorBoard scalars), `samples.jsonl`
//! (completions sampled at each logging step), `checkpoints/step-N/` and `checkpoints/final/` in
//! Hugging Face layout (config.json, model.safetensors, tokenizer files), and `summary.json`.

use crate::{Error, Result};
use rlox_core::logger::{Logger, MultiLogger};
use rlox_core::run::RunDir;
use rlox_lm::{CausalLm, LmConfig, LmTokenizer};
use rlox_nn::{Device, Optimizer};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer files). With `init`,
    /// only its tokenizer files are used.
    pub path: PathBuf,
    /// Train from scratch with this shape instead of loading weights.
    pub init: Option<InitConfig>,
}

/// A loaded model and tokenizer.
pub struct Loaded {
    /// The model on the training device.
    pub model: CausalLm,
    /// The tokenizer.
    pub tokenizer: LmTokenizer,
    /// The directory holding the tokenizer files (copied into checkpoints).
    pub tokenizer_dir: PathBuf,
}

impl ModelConfig {
    /// Load (or initialise) on `device`.
    pub fn load(&self, device: &Device) -> Result<Loaded> {
        let tokenizer = LmTokenizer::from_dir(&self.path)?;
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
        Ok(Loaded { model, tokenizer, tokenizer_dir: self.path.clone() })
    }
}

/// `rows` as JSON Lines, each object with `"step": step` added.
fn stamped_jsonl(step: u64, rows: &[serde_json::Value]) -> String {
    let mut text = String::new();
    for r in rows {
        let mut r = r.clone();
        if let Some(o) = r.as_object_mut() {
            o.insert("step".into(), step.into());
        }
        text.push_str(&r.to_string());
        text.push('\n');
    }
    text
}

/// A run directory with its sinks.
pub struct Run {
    /// The directory.
    pub dir: RunDir,
    logger: MultiLogger,
    samples: std::io::BufWriter<std::fs::File>,
    tokenizer_dir: PathBuf,
}

impl Run {
    /// Create `<output_dir>/<name>-<timestamp>` and write the resolved config.
    pub fn create<T: Serialize>(output_dir: &Path, name: &str, config: &T, tokenizer_dir: &Path) -> Result<Self> {
        let dir = RunDir::create(output_dir, name)?;
        dir.write_config(config)?;
        let parquet = rlox_data::metrics::ParquetMetricsLogger::new(
            dir.path().join("metrics.parquet"),
            name,
            rlox_data::write::WriteOptions::default(),
        );
        let logger = dir.standard_logger(0, false)?.with(parquet);
        let sp = dir.path().join("samples.jsonl");
        let samples = std::io::BufWriter::new(std::fs::File::create(&sp).map_err(|e| Error::io(&sp, e))?);
        Ok(Run { dir, logger, samples, tokenizer_dir: tokenizer_dir.to_path_buf() })
    }

    /// Log metrics at `step`.
    pub fn log(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        self.logger.log(step, metrics)
    }

    /// Append sampled completions (`{"step": .., "prompt": .., "completion": .., ...}` per line).
    pub fn samples(&mut self, step: u64, rows: &[serde_json::Value]) -> Result<()> {
        let p = self.dir.path().join("samples.jsonl");
        self.samples.write_all(stamped_jsonl(step, rows).as_bytes()).map_err(|e| Error::io(&p, e))?;
        self.samples.flush().map_err(|e| Error::io(&p, e))
    }

    /// Append `rows` to `<run dir>/<file>` as JSON Lines, each with `"step": step` added.
    pub fn append_jsonl(&self, file: &str, step: u64, rows: &[serde_json::Value]) -> Result<()> {
        let p = self.dir.path().join(file);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).map_err(|e| Error::io(&p, e))?;
        f.write_all(stamped_jsonl(step, rows).as_bytes()).map_err(|e| Error::io(&p, e))
    }

    /// Save `model` as `checkpoints/<name>/` in Hugging Face layout with the tokenizer files.
    pub fn checkpoint(&self, model: &CausalLm, name: &str) -> Result<PathBuf> {
        if !rlox_nn::all_finite(model) {
            return Err(Error::invalid(
                "checkpoint",
                "the model has non-finite parameters; the last good checkpoint is kept",
            ));
        }
        let path = self.dir.checkpoint_path(name);
        rlox_lm::save_model(model, &path, Some(&self.tokenizer_dir))?;
        Ok(path)
    }

    /// Flush the sinks and write `summary.json`.
    pub fn finish(&mut self, summary: &serde_json::Value) -> Result<()> {
        self.logger.flush()?;
        self.dir.write_summary(summary)
    }
}

/// One optimizer step on `loss`: backward, global-norm clip (`max_grad_norm > 0`), update. Returns the
/// gradient norm before clipping. A non-finite loss or norm is an error and leaves the model unchanged.
pub fn optimizer_step(
    model: CausalLm,
    loss: &rlox_nn::Tensor<1>,
    optimizer: &mut Optimizer,
    lr: f64,
    max_grad_norm: f64,
    what: &str,
) -> Result<(CausalLm, f64)> {
    let value = loss.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return Err(Error::invalid(what, format!("the loss became {value}; check the data and lower learning_rate")));
    }
    let mut grads = rlox_nn::backward(loss, &model);
    let norm = if max_grad_norm > 0.0 {
        rlox_nn::clip_grad_norm(&model, &mut grads, max_grad_norm)
    } else {
        rlox_nn::global_grad_norm(&model, &grads)
    };
    if !norm.is_finite() {
        return Err(Error::invalid(what, format!("the gradient norm became {norm}")));
    }
    Ok((optimizer.step(lr, model, grads), norm))
}

/// Linear warm-up then linear decay to zero over `total` steps (TRL's default `linear` schedule with
/// `warmup_steps`); `constant` keeps `lr` after the warm-up.
pub fn learning_rate(lr: f64, step: u64, total: u64, warmup: u64, constant: bool) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    if constant {
        return lr;
    }
    let rest = total.saturating_sub(warmup).max(1) as f64;
    lr * (1.0 - (step - warmup) as f64 / rest).max(0.0)
}
