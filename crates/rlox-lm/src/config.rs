//! The model configuration, read from a Hugging Face `config.json`.
//!
//! One [`LmConfig`] covers the Llama family (`llama`, `mistral`), Qwen2 (`qwen2`) and Qwen2-MoE
//! (`qwen2_moe`). Field names follow `transformers`; [`LmConfig::from_hf_json`] reads them, fills the
//! family's defaults and rejects what this crate cannot run (another architecture, an unknown
//! `rope_scaling` type) with an error that names it. [`LmConfig::to_hf_json`] writes a `config.json`
//! that `transformers` loads.

use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// The model families this crate can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `LlamaForCausalLM` (also Mistral: the same layout with a sliding window).
    Llama,
    /// `MistralForCausalLM`.
    Mistral,
    /// `Qwen2ForCausalLM`: biases on q/k/v, optional sliding window on the upper layers.
    Qwen2,
    /// `Qwen2MoeForCausalLM`: Qwen2 attention with a mixture-of-experts feed-forward.
    Qwen2Moe,
}

impl Family {
    /// `model_type` as written in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
            Family::Qwen2Moe => "qwen2_moe",
        }
    }

    /// The `architectures` entry of `config.json`.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Llama => "LlamaForCausalLM",
            Family::Mistral => "MistralForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Qwen2Moe => "Qwen2MoeForCausalLM",
        }
    }
}

/// Rotary-embedding frequency scaling (`rope_scaling` in `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Position interpolation: frequencies divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's piecewise scaling of low and high frequencies.
    Llama3 {
        /// Scale for the low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are scaled fully.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

/// How a mixture-of-experts router turns its logits into gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateFn {
    /// Softmax over all experts, then top-k (Qwen2-MoE, Mixtral, DeepSeek-V2).
    Softmax,
    /// An independent sigmoid per expert, then top-k (DeepSeek-V3).
    Sigmoid,
}

/// The mixture-of-experts feed-forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeConfig {
    /// Routed experts.
    pub num_experts: usize,
    /// Experts per token (`num_experts_per_tok`).
    pub top_k: usize,
    /// Hidden width of each routed expert (`moe_intermediate_size`).
    pub intermediate_size: usize,
    /// Hidden width of the shared expert (0: none) (`shared_expert_intermediate_size`).
    pub shared_intermediate_size: usize,
    /// Whether the shared expert's output is scaled by `sigmoid(shared_expert_gate(x))` (Qwen2-MoE).
    pub shared_expert_gated: bool,
    /// Softmax or sigmoid gates.
    pub gate: GateFn,
    /// Renormalise the top-k gates to sum to one (`norm_topk_prob`).
    pub norm_topk_prob: bool,
    /// Multiplier on the routed output (`routed_scaling_factor`, DeepSeek-V3; 1 elsewhere).
    pub routed_scaling_factor: f64,
    /// Weight of the load-balancing loss (`router_aux_loss_coef`).
    pub aux_loss_coef: f64,
    /// Every `decoder_sparse_step`-th layer is sparse.
    pub decoder_sparse_step: usize,
    /// Layers that keep a dense MLP (`mlp_only_layers`).
    pub mlp_only_layers: Vec<usize>,
}

/// A decoder-only transformer's shape (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Which family (decides tensor names and defaults).
    pub family: Family,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Dense MLP hidden width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    /// Per-head width (`head_dim`, default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Longest context.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Biases on the q/k/v projections (Qwen2: always; Llama: `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama's `attention_bias`).
    pub o_bias: bool,
    /// Biases in the MLP (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// The output projection is the transposed input embedding.
    pub tie_word_embeddings: bool,
    /// Sliding-window width per layer (`None`: full attention).
    pub sliding_window: Vec<Option<usize>>,
    /// Mixture-of-experts feed-forward, if any.
    pub moe: Option<MoeConfig>,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s).
    pub eos_token_ids: Vec<u32>,
    /// The `config.json` as read (kept so that saving preserves unknown keys).
    #[serde(skip)]
    pub raw: Value,
}

fn get_usize(v: &Value, key: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| Error::invalid("config.json", format!("'{key}' must be a non-negative integer, got {x}"))),
    }
}

fn need_usize(v: &Value, key: &str) -> Result<usize> {
    get_usize(v, key)?.ok_or_else(|| Error::invalid("config.json", format!("missing '{key}'")))
}

fn get_f64(v: &Value, key: &str, default: f64) -> Result<f64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => {
            x.as_f64().ok_or_else(|| Error::invalid("config.json", format!("'{key}' must be a number, got {x}")))
        }
    }
}

fn get_bool(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn token_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => Vec::new(),
    }
}

impl LmConfig {
    /// Read `config.json` from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("not valid JSON: {e}") })?;
        Self::from_hf_json(&v).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Interpret a parsed Hugging Face `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Self> {
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let arch = v.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).unwrap_or("");
        let family = match (model_type, arch) {
            ("llama", _) | (_, "LlamaForCausalLM") => Family::Llama,
            ("mistral", _) | (_, "MistralForCausalLM") => Family::Mistral,
            ("qwen2", _) | (_, "Qwen2ForCausalLM") => Family::Qwen2,
            ("qwen2_moe", _) | (_, "Qwen2MoeForCausalLM") => Family::Qwen2Moe,
            _ => {
                return Err(Error::invalid(
                    "config.json",
                    format!(
                        "unsupported architecture: model_type '{model_type}', architectures ['{arch}']; rlox-lm runs \
                         llama, mistral, qwen2 and qwen2_moe (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, \
                         Qwen2MoeForCausalLM)"
                    ),
                ))
            }
        };
        let hidden_size = need_usize(v, "hidden_size")?;
        let num_attention_heads = need_usize(v, "num_attention_heads")?;
        let num_hidden_layers = need_usize(v, "num_hidden_layers")?;
        let num_key_value_heads = get_usize(v, "num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::invalid(
                "config.json",
                format!(
                    "num_attention_heads ({num_attention_heads}) must be a positive multiple of num_key_value_heads ({num_key_value_heads})"
                ),
            ));
        }
        let head_dim = get_usize(v, "head_dim")?.unwrap_or(hidden_size / num_attention_heads);
        if head_dim % 2 != 0 {
            return Err(Error::invalid(
                "config.json",
                format!("head_dim {head_dim} must be even for rotary embeddings"),
            ));
        }
        // transformers 5 writes `rope_parameters` (theta inside); 4.x wrote `rope_theta` + `rope_scaling`.
        let rope_params = v.get("rope_parameters").filter(|x| x.is_object());
        let rope_theta = match rope_params.and_then(|p| p.get("rope_theta")) {
            Some(t) => t
                .as_f64()
                .ok_or_else(|| Error::invalid("config.json", "rope_parameters.rope_theta must be a number"))?,
            None => get_f64(v, "rope_theta", 10000.0)?,
        };
        let rope_scaling = match rope_params.or_else(|| v.get("rope_scaling")) {
            None | Some(Value::Null) => RopeScaling::None,
            Some(rs) => {
                let kind = rs.get("rope_type").or_else(|| rs.get("type")).and_then(Value::as_str).unwrap_or("default");
                match kind {
                    "default" => RopeScaling::None,
                    "linear" => RopeScaling::Linear { factor: get_f64(rs, "factor", 1.0)? },
                    "llama3" => RopeScaling::Llama3 {
                        factor: get_f64(rs, "factor", 8.0)?,
                        low_freq_factor: get_f64(rs, "low_freq_factor", 1.0)?,
                        high_freq_factor: get_f64(rs, "high_freq_factor", 4.0)?,
                        original_max_position_embeddings: get_f64(rs, "original_max_position_embeddings", 8192.0)?,
                    },
                    other => {
                        return Err(Error::invalid(
                            "config.json",
                            format!(
                                "unsupported rope_scaling type '{other}'; rlox-lm supports default, linear and llama3"
                            ),
                        ))
                    }
                }
            }
        };
        let attention_bias = get_bool(v, "attention_bias", false);
        let (qkv_bias, o_bias) = match family {
            Family::Qwen2 | Family::Qwen2Moe => (get_bool(v, "qkv_bias", true), false),
            Family::Llama | Family::Mistral => (attention_bias, attention_bias),
        };
        let window = get_usize(v, "sliding_window")?.filter(|&w| w > 0);
        let sliding_window = (0..num_hidden_layers)
            .map(|i| match family {
                Family::Mistral => window,
                Family::Qwen2 | Family::Qwen2Moe => {
                    let use_sw = get_bool(v, "use_sliding_window", false);
                    let max_window_layers =
                        get_usize(v, "max_window_layers").ok().flatten().unwrap_or(num_hidden_layers);
                    match v.get("layer_types").and_then(|l| l.get(i)).and_then(Value::as_str) {
                        Some("sliding_attention") if use_sw => window,
                        Some(_) => None,
                        None if use_sw && i >= max_window_layers => window,
                        None => None,
                    }
                }
                Family::Llama => None,
            })
            .collect();
        let moe = match family {
            Family::Qwen2Moe => {
                let num_experts = need_usize(v, "num_experts")?;
                Some(MoeConfig {
                    num_experts,
                    top_k: get_usize(v, "num_experts_per_tok")?.unwrap_or(4),
                    intermediate_size: need_usize(v, "moe_intermediate_size")?,
                    shared_intermediate_size: get_usize(v, "shared_expert_intermediate_size")?.unwrap_or(0),
                    shared_expert_gated: true,
                    gate: match v.get("scoring_func").and_then(Value::as_str) {
                        Some("sigmoid") => GateFn::Sigmoid,
                        _ => GateFn::Softmax,
                    },
                    norm_topk_prob: get_bool(v, "norm_topk_prob", false),
                    routed_scaling_factor: get_f64(v, "routed_scaling_factor", 1.0)?,
                    aux_loss_coef: get_f64(v, "router_aux_loss_coef", 0.001)?,
                    decoder_sparse_step: get_usize(v, "decoder_sparse_step")?.unwrap_or(1).max(1),
                    mlp_only_layers: v
                        .get("mlp_only_layers")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect())
                        .unwrap_or_default(),
                })
            }
            _ => None,
        };
        if let Some(m) = &moe {
            if m.top_k == 0 || m.top_k > m.num_experts {
                return Err(Error::invalid(
                    "config.json",
                    format!("num_experts_per_tok ({}) must be in 1..={} (num_experts)", m.top_k, m.num_experts),
                ));
            }
        }
        let config = LmConfig {
            family,
            vocab_size: need_usize(v, "vocab_size")?,
            hidden_size,
            intermediate_size: get_usize(v, "intermediate_size")?.unwrap_or(4 * hidden_size),
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: get_usize(v, "max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: get_f64(v, "rms_norm_eps", 1e-6)?,
            rope_theta,
            rope_scaling,
            qkv_bias,
            o_bias,
            mlp_bias: get_bool(v, "mlp_bias", false),
            tie_word_embeddings: get_bool(v, "tie_word_embeddings", matches!(family, Family::Qwen2)),
            sliding_window,
            moe,
            bos_token_id: v.get("bos_token_id").and_then(Value::as_u64).map(|x| x as u32),
            eos_token_ids: token_ids(v.get("eos_token_id")),
            raw: v.clone(),
        };
        Ok(config)
    }

    /// Whether layer `layer` has a mixture-of-experts feed-forward.
    pub fn is_sparse_layer(&self, layer: usize) -> bool {
        match &self.moe {
            Some(m) => {
                m.num_experts > 0
                    && !m.mlp_only_layers.contains(&layer)
                    && (layer + 1).is_multiple_of(m.decoder_sparse_step)
            }
            None => false,
        }
    }

    /// The `config.json` to write next to a saved model: the one read (unknown keys kept), with the
    /// fields this crate knows overwritten; weights in f32.
    pub fn to_hf_json(&self) -> Value {
        self.to_hf_json_as(crate::weights::StorageDtype::F32)
    }

    /// [`LmConfig::to_hf_json`] for weights stored in `dtype` (`dtype` / `torch_dtype`).
    pub fn to_hf_json_as(&self, dtype: crate::weights::StorageDtype) -> Value {
        let mut v = if self.raw.is_object() { self.raw.clone() } else { json!({}) };
        let o = v.as_object_mut().expect("object");
        o.insert("architectures".into(), json!([self.family.architecture()]));
        o.insert("model_type".into(), json!(self.family.model_type()));
        o.insert("vocab_size".into(), json!(self.vocab_size));
        o.insert("hidden_size".into(), json!(self.hidden_size));
        o.insert("intermediate_size".into(), json!(self.intermediate_size));
        o.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        o.insert("num_attention_heads".into(), json!(self.num_attention_heads));
        o.insert("num_key_value_heads".into(), json!(self.num_key_value_heads));
        o.insert("head_dim".into(), json!(self.head_dim));
        o.insert("max_position_embeddings".into(), json!(self.max_position_embeddings));
        o.insert("rms_norm_eps".into(), json!(self.rms_norm_eps));
        o.insert("tie_word_embeddings".into(), json!(self.tie_word_embeddings));
        // transformers 5 writes `dtype`, 4.x `torch_dtype`: set the one the config had (both when new).
        let had_new = o.contains_key("dtype");
        let had_old = o.contains_key("torch_dtype");
        if had_new || !had_old {
            o.insert("dtype".into(), json!(dtype.torch_name()));
        }
        if had_old || !had_new {
            o.insert("torch_dtype".into(), json!(dtype.torch_name()));
        }
        if matches!(self.family, Family::Llama | Family::Mistral) {
            o.insert("attention_bias".into(), json!(self.qkv_bias));
            o.insert("mlp_bias".into(), json!(self.mlp_bias));
        }
        let mut rope = match &self.rope_scaling {
            RopeScaling::None => json!({"rope_type": "default"}),
            RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                       "high_freq_factor": high_freq_factor,
                       "original_max_position_embeddings": *original_max_position_embeddings as u64})
            }
        };
        if o.contains_key("rope_parameters") {
            rope["rope_theta"] = json!(self.rope_theta);
            o.insert("rope_parameters".into(), rope);
        } else {
            o.insert("rope_theta".into(), json!(self.rope_theta));
            let plain = self.rope_scaling == RopeScaling::None;
            o.insert("rope_scaling".into(), if plain { Value::Null } else { rope });
        }
        if let Some(b) = self.bos_token_id {
            o.insert("bos_token_id".into(), json!(b));
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                o.insert("eos_token_id".into(), json!(one));
            }
            many => {
                o.insert("eos_token_id".into(), json!(many));
            }
        }
        if let Some(m) = &self.moe {
            o.insert("num_experts".into(), json!(m.num_experts));
            o.insert("num_experts_per_tok".into(), json!(m.top_k));
            o.insert("moe_intermediate_size".into(), json!(m.intermediate_size));
            o.insert("shared_expert_intermediate_size".into(), json!(m.shared_intermediate_size));
            o.insert("norm_topk_prob".into(), json!(m.norm_topk_prob));
            o.insert("router_aux_loss_coef".into(), json!(m.aux_loss_coef));
            o.insert("decoder_sparse_step".into(), json!(m.decoder_sparse_step));
            o.insert("mlp_only_layers".into(), json!(m.mlp_only_layers));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_architecture_is_named() {
        let v = json!({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]});
        let e = LmConfig::from_hf_json(&v).unwrap_err().to_string();
        assert!(e.contains("gpt2") && e.contains("GPT2LMHeadModel"), "{e}");
    }

    #[test]
    fn llama3_rope_and_defaults() {
        let v = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2,
            "num_hidden_layers": 1, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
        let c = LmConfig::from_hf_json(&v).unwrap();
        assert_eq!((c.head_dim, c.num_key_value_heads, c.tie_word_embeddings), (4, 2, false));
        assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { .. }));
        let v = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2,
            "num_hidden_layers": 1, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}});
        assert!(LmConfig::from_hf_json(&v).unwrap_err().to_string().contains("yarn"));
    }
}
