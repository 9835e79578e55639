//! [`KimiVlConfig`] (`model_type: "kimi_vl"`): a [`MoonVitConfig`] vision tower, a DeepSeek-V3 text model and
//! the placeholder token that image features replace.

use rlox_core::{Error, Result};
use rlox_lm::DeepseekV3Config;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// MoonViT's shape (`vision_config`). Defaults are Kimi-VL-A3B's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoonVitConfig {
    /// Side of a square patch in pixels (default 14).
    pub patch_size: usize,
    /// Rows of the learned position table (default 64), resampled to each image's grid.
    pub init_pos_emb_height: usize,
    /// Columns of the learned position table (default 64).
    pub init_pos_emb_width: usize,
    /// Attention heads (default 16).
    pub num_attention_heads: usize,
    /// Encoder blocks (default 27).
    pub num_hidden_layers: usize,
    /// Width (default 1152).
    pub hidden_size: usize,
    /// MLP hidden width (default 4304).
    pub intermediate_size: usize,
    /// Patches merged into one token, rows x columns (default [2, 2]).
    pub merge_kernel_size: [usize; 2],
    /// LayerNorm epsilon (PyTorch's default 1e-5; not in the config file).
    pub layer_norm_eps: f64,
    /// Base of the 2-D rotary frequencies (10000; not in the config file).
    pub rope_theta: f64,
    /// Largest grid side the rotary table covers (512 patches, as the reference precomputes; not in the file).
    pub max_grid_side: usize,
}

impl Default for MoonVitConfig {
    fn default() -> Self {
        MoonVitConfig {
            patch_size: 14,
            init_pos_emb_height: 64,
            init_pos_emb_width: 64,
            num_attention_heads: 16,
            num_hidden_layers: 27,
            hidden_size: 1152,
            intermediate_size: 4304,
            merge_kernel_size: [2, 2],
            layer_norm_eps: 1e-5,
            rope_theta: 10000.0,
            max_grid_side: 512,
        }
    }
}

impl MoonVitConfig {
    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Patches per merged token.
    pub fn merge_len(&self) -> usize {
        self.merge_kernel_size[0] * self.merge_kernel_size[1]
    }

    fn from_json(v: &Value) -> Result<Self> {
        let d = MoonVitConfig::default();
        let get = |key: &str, default: usize| -> Result<usize> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x.as_u64().map(|n| n as usize).ok_or_else(|| {
                    Error::invalid(
                        "config.json",
                        format!("'vision_config.{key}' must be a non-negative integer, got {x}"),
                    )
                }),
            }
        };
        let merge = match v.get("merge_kernel_size") {
            None | Some(Value::Null) => d.merge_kernel_size,
            Some(x) => {
                let a: Option<Vec<usize>> =
                    x.as_array().map(|a| a.iter().filter_map(|n| n.as_u64().map(|n| n as usize)).collect());
                match a.as_deref() {
                    Some([h, w]) if *h > 0 && *w > 0 => [*h, *w],
                    _ => {
                        return Err(Error::invalid(
                            "config.json",
                            format!("'vision_config.merge_kernel_size' must be two positive integers, got {x}"),
                        ))
                    }
                }
            }
        };
        let c = MoonVitConfig {
            patch_size: get("patch_size", d.patch_size)?,
            init_pos_emb_height: get("init_pos_emb_height", d.init_pos_emb_height)?,
            init_pos_emb_width: get("init_pos_emb_width", d.init_pos_emb_width)?,
            num_attention_heads: get("num_attention_heads", d.num_attention_heads)?,
            num_hidden_layers: get("num_hidden_layers", d.num_hidden_layers)?,
            hidden_size: get("hidden_size", d.hidden_size)?,
            intermediate_size: get("intermediate_size", d.intermediate_size)?,
            merge_kernel_size: merge,
            ..d
        };
        if c.num_attention_heads == 0
            || !c.hidden_size.is_multiple_of(c.num_attention_heads)
            || !c.head_dim().is_multiple_of(4)
        {
            return Err(Error::invalid(
                "config.json",
                format!(
                    "vision_config: hidden_size {} over {} heads must give a head width divisible by 4 (2-D rotary pairs)",
                    c.hidden_size, c.num_attention_heads
                ),
            ));
        }
        if c.patch_size == 0 || c.init_pos_emb_height == 0 || c.init_pos_emb_width == 0 {
            return Err(Error::invalid(
                "config.json",
                "vision_config: patch_size and the position table must be positive",
            ));
        }
        Ok(c)
    }

    fn to_json(&self) -> Value {
        json!({
            "model_type": "moonvit",
            "patch_size": self.patch_size,
            "init_pos_emb_height": self.init_pos_emb_height,
            "init_pos_emb_width": self.init_pos_emb_width,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "merge_kernel_size": self.merge_kernel_size,
        })
    }
}

/// A Kimi-VL `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KimiVlConfig {
    /// The vision tower.
    pub vision: MoonVitConfig,
    /// The language model.
    pub text: DeepseekV3Config,
    /// The token whose embeddings image features replace (`<|media_pad|>`, 163605 in Kimi-VL).
    pub media_placeholder_token_id: u32,
    /// The JSON as read.
    #[serde(skip)]
    pub raw: Value,
}

impl KimiVlConfig {
    /// Read `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("not valid JSON: {e}") })?;
        Self::from_hf_json(&v).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Interpret a parsed `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Self> {
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        if model_type != "kimi_vl" {
            return Err(Error::invalid(
                "config.json",
                format!("'model_type' is '{model_type}'; rlox-vlm runs kimi_vl (KimiVLForConditionalGeneration)"),
            ));
        }
        let vision = MoonVitConfig::from_json(v.get("vision_config").unwrap_or(&json!({})))?;
        let mut text_json = v
            .get("text_config")
            .filter(|t| t.is_object())
            .cloned()
            .ok_or_else(|| Error::invalid("config.json", "missing 'text_config'"))?;
        if text_json.get("model_type").is_none() {
            text_json["model_type"] = json!("deepseek_v3");
        }
        let text = DeepseekV3Config::from_hf_json(&text_json)
            .map_err(|e| Error::invalid("config.json", format!("text_config: {e}")))?;
        let media = v
            .get("media_placeholder_token_id")
            .map(|x| {
                x.as_u64()
                    .ok_or_else(|| Error::invalid("config.json", "'media_placeholder_token_id' must be an integer"))
            })
            .transpose()?
            .unwrap_or(163605) as u32;
        if media as usize >= text.vocab_size {
            return Err(Error::invalid(
                "config.json",
                format!("media_placeholder_token_id {media} is outside the vocabulary ({})", text.vocab_size),
            ));
        }
        Ok(KimiVlConfig { vision, text, media_placeholder_token_id: media, raw: v.clone() })
    }

    /// The `config.json` to save (unknown keys kept).
    pub fn to_hf_json(&self) -> Value {
        let mut v = if self.raw.is_object() { self.raw.clone() } else { json!({}) };
        v["model_type"] = json!("kimi_vl");
        v["architectures"] = json!(["KimiVLForConditionalGeneration"]);
        v["media_placeholder_token_id"] = json!(self.media_placeholder_token_id);
        v["vision_config"] = self.vision.to_json();
        v["text_config"] = self.text.to_hf_json();
        v["torch_dtype"] = json!("float32");
        v
    }
}
