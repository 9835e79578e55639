//! Kimi-VL checkpoints in the published layout: `config.json` (`kimi_vl`), `model.safetensors` or shards
//! named by `model.safetensors.index.json` (F32, BF16, F16 or F64), tensors `vision_tower.*`,
//! `multi_modal_projector.*`, `language_model.model.*` and `language_model.lm_head.weight`; and the
//! parameter counts of a configuration, read from a lazy skeleton without weights.

use crate::config::KimiVlConfig;
use crate::model::KimiVl;
use rlox_core::checkpoint::atomic_write;
use rlox_core::Result;
use rlox_lm::hf::{copy_tokenizer_files, deepseek_v3_ignored, hf_param_shapes, load_into, write_hf_weights};
use rlox_lm::Init;
use rlox_lm::{StorageDtype, WeightFiles};
use rlox_nn::Device;
use serde::Serialize;
use std::path::Path;

/// Whether a checkpoint tensor may stay unused (rotary buffers, a tied head, multi-token-prediction layers).
fn ignored(config: &KimiVlConfig, name: &str) -> bool {
    name.strip_prefix("language_model.").is_some_and(|rest| deepseek_v3_ignored(&config.text, rest))
}

/// Build a Kimi-VL model of `config` from opened weight files (memory-mapped, any of F32, BF16, F16, F64).
pub fn load_kimi_vl_weights(config: &KimiVlConfig, files: &WeightFiles, device: &Device) -> Result<KimiVl> {
    let skeleton = KimiVl::new(config, Init::Lazy, device);
    load_into(skeleton, files, &|name: &str| ignored(config, name))
}

/// Load a Kimi-VL model directory onto `device`.
pub fn load_kimi_vl(dir: impl AsRef<Path>, device: &Device) -> Result<KimiVl> {
    let dir = dir.as_ref();
    let config = KimiVlConfig::from_file(dir.join("config.json"))?;
    load_kimi_vl_weights(&config, &WeightFiles::open_dir(dir)?, device)
}

/// Save `model` into `dir`: `config.json`, the weights in `dtype` (f32, bf16 as Kimi-VL is published, or
/// f16) as one `model.safetensors` or, past `max_shard_bytes` (transformers' default:
/// [`rlox_lm::hf::DEFAULT_SHARD_BYTES`]), shards with `model.safetensors.index.json`; and the tokenizer and
/// preprocessor files of `src_dir` when given. Each file is written atomically.
pub fn save_kimi_vl(
    model: &KimiVl,
    dir: impl AsRef<Path>,
    src_dir: Option<&Path>,
    dtype: StorageDtype,
    max_shard_bytes: u64,
) -> Result<()> {
    let dir = dir.as_ref();
    write_hf_weights(model, dir, dtype, max_shard_bytes)?;
    let mut config = model.config.to_hf_json();
    config["torch_dtype"] = serde_json::json!(dtype.torch_name());
    let text = serde_json::to_string_pretty(&config).expect("json");
    atomic_write(dir.join("config.json"), text.as_bytes())?;
    copy_tokenizer_files(src_dir, dir)
}

/// Parameter counts of a Kimi-VL configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamCounts {
    /// Everything.
    pub total: u64,
    /// The vision tower.
    pub vision: u64,
    /// The projector.
    pub projector: u64,
    /// The language model.
    pub text: u64,
    /// The language model's parameters used per token: all but the routed experts, plus `num_experts_per_tok`
    /// of them in each MoE layer (embeddings and output projection included).
    pub text_active: u64,
    /// Tensors in the checkpoint layout.
    pub tensors: usize,
}

/// Count the parameters of `config` from a lazy skeleton (no tensor is allocated).
pub fn param_counts(config: &KimiVlConfig) -> ParamCounts {
    let device = rlox_nn::burn::tensor::Device::default();
    let model = KimiVl::new(config, Init::Lazy, &device);
    let shapes = hf_param_shapes(&model);
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        shapes.iter().filter(|(n, _)| pred(n)).map(|(_, s)| s.iter().product::<usize>() as u64).sum()
    };
    let text = sum(&|n| n.starts_with("language_model."));
    let routed = sum(&|n| n.starts_with("language_model.") && n.contains(".mlp.experts."));
    let t = &config.text;
    let active_routed =
        if t.n_routed_experts > 0 { routed / t.n_routed_experts as u64 * t.num_experts_per_tok as u64 } else { 0 };
    ParamCounts {
        total: sum(&|_| true),
        vision: sum(&|n| n.starts_with("vision_tower.")),
        projector: sum(&|n| n.starts_with("multi_modal_projector.")),
        text,
        text_active: text - routed + active_routed,
        tensors: shapes.len(),
    }
}
