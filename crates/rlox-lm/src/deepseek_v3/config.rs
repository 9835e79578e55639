//! [`DeepseekV3Config`]: a DeepSeek-V3 (or Moonlight / Kimi-VL text) `config.json`.
//!
//! Field names and defaults follow transformers' `DeepseekV3Config` and the published remote code;
//! [`DeepseekV3Config::from_hf_json`] reads both the transformers 5 layout (`rope_parameters`) and the
//! older one (`rope_theta` + `rope_scaling`), and rejects what this crate cannot run — an unknown
//! `topk_method`, `scoring_func`, `hidden_act` or RoPE type, or routing sizes that do not fit together —
//! with an error that names the key and the value.

use crate::config::RopeScaling;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// How the router picks experts (`topk_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopkMethod {
    /// DeepSeek-V3's auxiliary-loss-free routing: the choice uses `score + e_score_correction_bias`,
    /// restricted to the `topk_group` groups whose best two scores sum highest; the weights use the
    /// plain scores. (`"noaux_tc"`, the default.)
    NoauxTc,
    /// Plain top-k of the scores, no groups, no correction bias (`"greedy"`).
    Greedy,
}

/// How router logits become scores (`scoring_func`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoringFunc {
    /// An independent sigmoid per expert (DeepSeek-V3; the default).
    Sigmoid,
    /// Softmax over all experts.
    Softmax,
}

/// YaRN RoPE scaling (`rope_type: "yarn"`), as DeepSeek-V3 and transformers compute it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Yarn {
    /// Context extension factor.
    pub factor: f64,
    /// Context length of pre-training.
    pub original_max_position_embeddings: f64,
    /// Rotations above which a dimension keeps its frequency (default 32).
    pub beta_fast: f64,
    /// Rotations below which a dimension is fully interpolated (default 1).
    pub beta_slow: f64,
    /// `mscale` (default 1).
    pub mscale: f64,
    /// `mscale_all_dim` (default 0: no extra softmax scaling).
    pub mscale_all_dim: f64,
    /// Multiplier on cos/sin; `None`: `mscale(factor, mscale) / mscale(factor, mscale_all_dim)`.
    pub attention_factor: Option<f64>,
    /// Round the correction range outwards (default true).
    pub truncate: bool,
}

/// The RoPE of the rotary dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeepseekRope {
    /// Plain or linearly interpolated RoPE (the [`RopeScaling`] variants rlox-lm shares with Llama).
    Plain(RopeScaling),
    /// YaRN.
    Yarn(Yarn),
}

/// A DeepSeek-V3 decoder's shape (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeepseekV3Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Hidden width of the dense MLP of the first `first_k_dense_replace` layers.
    pub intermediate_size: usize,
    /// Hidden width of each routed expert; the shared experts are one MLP `n_shared_experts` times wider.
    pub moe_intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Rank of the query compression (`None`: a full `q_proj`, as in Moonlight and Kimi-VL).
    pub q_lora_rank: Option<usize>,
    /// Rank of the compressed key/value latent (what the cache holds per token, besides the rope key).
    pub kv_lora_rank: usize,
    /// Query/key dims per head without position information.
    pub qk_nope_head_dim: usize,
    /// Query/key dims per head that carry RoPE (the key part is one head shared by all heads).
    pub qk_rope_head_dim: usize,
    /// Value dims per head.
    pub v_head_dim: usize,
    /// Routed experts (0: every layer dense).
    pub n_routed_experts: usize,
    /// Shared experts (always on, ungated).
    pub n_shared_experts: usize,
    /// Experts per token.
    pub num_experts_per_tok: usize,
    /// Expert groups for the group-limited choice (default 1).
    pub n_group: usize,
    /// Groups a token may route to (default 1).
    pub topk_group: usize,
    /// Expert choice.
    pub topk_method: TopkMethod,
    /// Score function.
    pub scoring_func: ScoringFunc,
    /// Renormalise the chosen weights to sum to one (default true).
    pub norm_topk_prob: bool,
    /// Multiplier on the routed experts' weights (default 2.5).
    pub routed_scaling_factor: f64,
    /// Layers before this one are dense (default 3).
    pub first_k_dense_replace: usize,
    /// Every `moe_layer_freq`-th layer (from the first sparse one) is sparse (default 1).
    pub moe_layer_freq: usize,
    /// Longest context.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon of the layer norms.
    pub rms_norm_eps: f64,
    /// Epsilon of the latent norms (`q_a_layernorm`, `kv_a_layernorm`): both reference implementations build
    /// them without passing `rms_norm_eps`, so they keep RMSNorm's default 1e-6.
    pub latent_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope: DeepseekRope,
    /// The rope dims are stored as interleaved pairs and de-interleaved before rotation (default true,
    /// what DeepSeek's checkpoints expect).
    pub rope_interleave: bool,
    /// Biases on `q_a_proj`, `kv_a_proj_with_mqa` and `o_proj`.
    pub attention_bias: bool,
    /// The output projection is the transposed input embedding.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s).
    pub eos_token_ids: Vec<u32>,
    /// The JSON as read (saving keeps unknown keys).
    #[serde(skip)]
    pub raw: Value,
}

fn bad(key: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid("config.json", format!("'{key}' {why}"))
}

fn get_usize(v: &Value, key: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(key, format!("must be a non-negative integer, got {x}"))),
    }
}

fn need_usize(v: &Value, key: &str) -> Result<usize> {
    get_usize(v, key)?.ok_or_else(|| Error::invalid("config.json", format!("missing '{key}'")))
}

fn get_f64(v: &Value, key: &str, default: f64) -> Result<f64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_f64().ok_or_else(|| bad(key, format!("must be a number, got {x}"))),
    }
}

fn get_bool(v: &Value, key: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_bool().ok_or_else(|| bad(key, format!("must be true or false, got {x}"))),
    }
}

fn get_str<'a>(v: &'a Value, key: &str, default: &'a str) -> Result<&'a str> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_str().ok_or_else(|| bad(key, format!("must be a string, got {x}"))),
    }
}

fn token_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => Vec::new(),
    }
}

/// `0.1 * mscale * ln(scale) + 1` for `scale > 1`, else 1 (YaRN's attention temperature).
pub fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

impl DeepseekV3Config {
    /// Read `config.json` from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("not valid JSON: {e}") })?;
        Self::from_hf_json(&v).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Interpret a parsed `config.json` (`model_type` `deepseek_v3` or `kimi_k2`).
    pub fn from_hf_json(v: &Value) -> Result<Self> {
        let model_type = get_str(v, "model_type", "")?;
        if !matches!(model_type, "deepseek_v3" | "kimi_k2") {
            return Err(bad("model_type", format!("is '{model_type}'; this decoder runs deepseek_v3 (and kimi_k2)")));
        }
        let act = get_str(v, "hidden_act", "silu")?;
        if act != "silu" {
            return Err(bad("hidden_act", format!("is '{act}'; DeepSeek-V3 uses silu and no other is implemented")));
        }
        let topk_method = match get_str(v, "topk_method", "noaux_tc")? {
            "noaux_tc" => TopkMethod::NoauxTc,
            "greedy" => TopkMethod::Greedy,
            other => {
                return Err(bad(
                    "topk_method",
                    format!("is '{other}'; supported routers: noaux_tc (DeepSeek-V3, Kimi-VL) and greedy"),
                ))
            }
        };
        let scoring_func = match get_str(v, "scoring_func", "sigmoid")? {
            "sigmoid" => ScoringFunc::Sigmoid,
            "softmax" => ScoringFunc::Softmax,
            other => return Err(bad("scoring_func", format!("is '{other}'; supported: sigmoid and softmax"))),
        };
        let num_attention_heads = need_usize(v, "num_attention_heads")?;
        let hidden_size = need_usize(v, "hidden_size")?;
        let num_hidden_layers = need_usize(v, "num_hidden_layers")?;
        let qk_rope_head_dim = get_usize(v, "qk_rope_head_dim")?.unwrap_or(64);
        if qk_rope_head_dim == 0 || qk_rope_head_dim % 2 != 0 {
            return Err(bad("qk_rope_head_dim", format!("must be even and positive, got {qk_rope_head_dim}")));
        }
        let n_routed_experts = get_usize(v, "n_routed_experts")?.unwrap_or(0);
        let num_experts_per_tok = get_usize(v, "num_experts_per_tok")?.unwrap_or(0);
        let n_group = get_usize(v, "n_group")?.unwrap_or(1).max(1);
        let topk_group = get_usize(v, "topk_group")?.unwrap_or(1).max(1);
        if n_routed_experts > 0 {
            if num_experts_per_tok == 0 || num_experts_per_tok > n_routed_experts {
                return Err(bad(
                    "num_experts_per_tok",
                    format!("is {num_experts_per_tok}; it must be in 1..={n_routed_experts} (n_routed_experts)"),
                ));
            }
            if n_routed_experts % n_group != 0 {
                return Err(bad("n_group", format!("({n_group}) must divide n_routed_experts ({n_routed_experts})")));
            }
            if topk_group > n_group {
                return Err(bad("topk_group", format!("({topk_group}) exceeds n_group ({n_group})")));
            }
            if topk_method == TopkMethod::NoauxTc && num_experts_per_tok > topk_group * (n_routed_experts / n_group) {
                return Err(bad(
                    "num_experts_per_tok",
                    format!(
                        "({num_experts_per_tok}) exceeds the experts of {topk_group} groups of {}",
                        n_routed_experts / n_group
                    ),
                ));
            }
        }
        // transformers 5 writes `rope_parameters` (theta inside); older configs `rope_theta` + `rope_scaling`.
        let params = v.get("rope_parameters").filter(|x| x.is_object());
        let rope_theta = match params.and_then(|p| p.get("rope_theta")) {
            Some(t) => t.as_f64().ok_or_else(|| bad("rope_parameters.rope_theta", "must be a number"))?,
            None => get_f64(v, "rope_theta", 10000.0)?,
        };
        let rope = match params.or_else(|| v.get("rope_scaling")) {
            None | Some(Value::Null) => DeepseekRope::Plain(RopeScaling::None),
            Some(rs) => {
                let kind = rs.get("rope_type").or_else(|| rs.get("type")).and_then(Value::as_str).unwrap_or("default");
                match kind {
                    "default" => DeepseekRope::Plain(RopeScaling::None),
                    "linear" => DeepseekRope::Plain(RopeScaling::Linear { factor: get_f64(rs, "factor", 1.0)? }),
                    "yarn" => {
                        let max_pos = get_usize(v, "max_position_embeddings")?.unwrap_or(4096) as f64;
                        let original = get_f64(rs, "original_max_position_embeddings", max_pos)?;
                        DeepseekRope::Yarn(Yarn {
                            factor: get_f64(rs, "factor", max_pos / original)?,
                            original_max_position_embeddings: original,
                            beta_fast: get_f64(rs, "beta_fast", 32.0)?,
                            beta_slow: get_f64(rs, "beta_slow", 1.0)?,
                            mscale: get_f64(rs, "mscale", 1.0)?,
                            mscale_all_dim: get_f64(rs, "mscale_all_dim", 0.0)?,
                            attention_factor: rs.get("attention_factor").and_then(Value::as_f64),
                            truncate: get_bool(rs, "truncate", true)?,
                        })
                    }
                    other => {
                        return Err(bad(
                            "rope_scaling",
                            format!("has type '{other}'; the DeepSeek-V3 decoder supports default, linear and yarn"),
                        ))
                    }
                }
            }
        };
        Ok(DeepseekV3Config {
            vocab_size: need_usize(v, "vocab_size")?,
            hidden_size,
            intermediate_size: need_usize(v, "intermediate_size")?,
            moe_intermediate_size: get_usize(v, "moe_intermediate_size")?.unwrap_or(0),
            num_hidden_layers,
            num_attention_heads,
            q_lora_rank: get_usize(v, "q_lora_rank")?.filter(|&r| r > 0),
            kv_lora_rank: need_usize(v, "kv_lora_rank")?,
            qk_nope_head_dim: get_usize(v, "qk_nope_head_dim")?.unwrap_or(128),
            qk_rope_head_dim,
            v_head_dim: get_usize(v, "v_head_dim")?.unwrap_or(128),
            n_routed_experts,
            n_shared_experts: get_usize(v, "n_shared_experts")?.unwrap_or(0),
            num_experts_per_tok,
            n_group,
            topk_group,
            topk_method,
            scoring_func,
            norm_topk_prob: get_bool(v, "norm_topk_prob", true)?,
            routed_scaling_factor: get_f64(v, "routed_scaling_factor", 2.5)?,
            first_k_dense_replace: get_usize(v, "first_k_dense_replace")?.unwrap_or(3),
            moe_layer_freq: get_usize(v, "moe_layer_freq")?.unwrap_or(1).max(1),
            max_position_embeddings: get_usize(v, "max_position_embeddings")?.unwrap_or(4096),
            rms_norm_eps: get_f64(v, "rms_norm_eps", 1e-6)?,
            latent_norm_eps: 1e-6,
            rope_theta,
            rope,
            rope_interleave: get_bool(v, "rope_interleave", true)?,
            attention_bias: get_bool(v, "attention_bias", false)?,
            tie_word_embeddings: get_bool(v, "tie_word_embeddings", false)?,
            bos_token_id: v.get("bos_token_id").and_then(Value::as_u64).map(|x| x as u32),
            eos_token_ids: token_ids(v.get("eos_token_id")),
            raw: v.clone(),
        })
    }

    /// Query/key width per head (`qk_nope_head_dim + qk_rope_head_dim`).
    pub fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Whether layer `layer` routes to experts.
    pub fn is_moe_layer(&self, layer: usize) -> bool {
        self.n_routed_experts > 0 && layer >= self.first_k_dense_replace && layer.is_multiple_of(self.moe_layer_freq)
    }

    /// The softmax scale of attention: `qk_head_dim^-0.5`, times `mscale(factor, mscale_all_dim)^2` under YaRN.
    pub fn softmax_scale(&self) -> f64 {
        let base = 1.0 / (self.qk_head_dim() as f64).sqrt();
        match &self.rope {
            DeepseekRope::Yarn(y) if y.mscale_all_dim != 0.0 => {
                let m = yarn_get_mscale(y.factor, y.mscale_all_dim);
                base * m * m
            }
            _ => base,
        }
    }

    /// Inverse frequencies of the rotary dims and the multiplier on cos/sin, as transformers computes them (f32).
    pub fn rope_inv_freq(&self) -> (Vec<f32>, f32) {
        let d = self.qk_rope_head_dim;
        let base = self.rope_theta as f32;
        let pos_freqs: Vec<f32> = (0..d / 2).map(|i| base.powf((2 * i) as f32 / d as f32)).collect();
        match &self.rope {
            DeepseekRope::Plain(RopeScaling::None) => (pos_freqs.iter().map(|p| 1.0 / p).collect(), 1.0),
            DeepseekRope::Plain(RopeScaling::Linear { factor }) => {
                (pos_freqs.iter().map(|p| 1.0 / p / *factor as f32).collect(), 1.0)
            }
            DeepseekRope::Plain(RopeScaling::Llama3 { .. }) => unreachable!("not produced by from_hf_json"),
            DeepseekRope::Yarn(y) => {
                let dim = d as f64;
                let correction_dim = |rot: f64| {
                    dim * (y.original_max_position_embeddings / (rot * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * (self.rope_theta).ln())
                };
                let (mut low, mut high) = (correction_dim(y.beta_fast), correction_dim(y.beta_slow));
                if y.truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let (low, mut high) = (low.max(0.0), high.min(dim - 1.0));
                if low == high {
                    high += 0.001;
                }
                let inv: Vec<f32> = pos_freqs
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        let ramp = ((i as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        let inter = 1.0 / (y.factor as f32 * p);
                        let extra = 1.0 / p;
                        inter * (1.0 - extrapolation) + extra * extrapolation
                    })
                    .collect();
                let attention = y.attention_factor.unwrap_or_else(|| {
                    if y.mscale != 0.0 && y.mscale_all_dim != 0.0 {
                        yarn_get_mscale(y.factor, y.mscale) / yarn_get_mscale(y.factor, y.mscale_all_dim)
                    } else {
                        yarn_get_mscale(y.factor, 1.0)
                    }
                });
                (inv, attention as f32)
            }
        }
    }

    /// The `config.json` to save: the one read (unknown keys kept) with the fields this crate knows.
    pub fn to_hf_json(&self) -> Value {
        let mut v = if self.raw.is_object() { self.raw.clone() } else { json!({}) };
        let o = v.as_object_mut().expect("object");
        if !o.contains_key("model_type") {
            o.insert("model_type".into(), json!("deepseek_v3"));
            o.insert("architectures".into(), json!(["DeepseekV3ForCausalLM"]));
        }
        let fields = [
            ("vocab_size", json!(self.vocab_size)),
            ("hidden_size", json!(self.hidden_size)),
            ("intermediate_size", json!(self.intermediate_size)),
            ("moe_intermediate_size", json!(self.moe_intermediate_size)),
            ("num_hidden_layers", json!(self.num_hidden_layers)),
            ("num_attention_heads", json!(self.num_attention_heads)),
            ("q_lora_rank", json!(self.q_lora_rank)),
            ("kv_lora_rank", json!(self.kv_lora_rank)),
            ("qk_nope_head_dim", json!(self.qk_nope_head_dim)),
            ("qk_rope_head_dim", json!(self.qk_rope_head_dim)),
            ("v_head_dim", json!(self.v_head_dim)),
            ("n_routed_experts", json!(self.n_routed_experts)),
            ("n_shared_experts", json!(self.n_shared_experts)),
            ("num_experts_per_tok", json!(self.num_experts_per_tok)),
            ("n_group", json!(self.n_group)),
            ("topk_group", json!(self.topk_group)),
            ("norm_topk_prob", json!(self.norm_topk_prob)),
            ("routed_scaling_factor", json!(self.routed_scaling_factor)),
            ("first_k_dense_replace", json!(self.first_k_dense_replace)),
            ("moe_layer_freq", json!(self.moe_layer_freq)),
            ("max_position_embeddings", json!(self.max_position_embeddings)),
            ("rms_norm_eps", json!(self.rms_norm_eps)),
            ("rope_interleave", json!(self.rope_interleave)),
            ("attention_bias", json!(self.attention_bias)),
            ("tie_word_embeddings", json!(self.tie_word_embeddings)),
            ("torch_dtype", json!("float32")),
        ];
        for (k, x) in fields {
            o.insert(k.into(), x);
        }
        o.insert(
            "topk_method".into(),
            json!(match self.topk_method {
                TopkMethod::NoauxTc => "noaux_tc",
                TopkMethod::Greedy => "greedy",
            }),
        );
        o.insert(
            "scoring_func".into(),
            json!(match self.scoring_func {
                ScoringFunc::Sigmoid => "sigmoid",
                ScoringFunc::Softmax => "softmax",
            }),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Value {
        json!({"model_type": "deepseek_v3", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
               "num_hidden_layers": 2, "num_attention_heads": 2, "kv_lora_rank": 4, "qk_nope_head_dim": 2,
               "qk_rope_head_dim": 2, "v_head_dim": 2, "n_routed_experts": 4, "num_experts_per_tok": 2,
               "n_group": 2, "topk_group": 1, "first_k_dense_replace": 1, "moe_intermediate_size": 4})
    }

    #[test]
    fn unsupported_router_and_rope_are_named() {
        for (key, value, needle) in [
            ("topk_method", json!("group_limited_greedy"), "group_limited_greedy"),
            ("scoring_func", json!("relu"), "relu"),
            ("hidden_act", json!("gelu"), "gelu"),
            ("rope_scaling", json!({"type": "dynamic", "factor": 2.0}), "dynamic"),
            ("n_group", json!(3), "n_group"),
            ("num_experts_per_tok", json!(3), "num_experts_per_tok"),
        ] {
            let mut v = tiny();
            v[key] = value;
            let e = DeepseekV3Config::from_hf_json(&v).unwrap_err().to_string();
            assert!(e.contains(needle), "{key}: {e}");
        }
        assert!(DeepseekV3Config::from_hf_json(&tiny()).is_ok());
    }

    #[test]
    fn sparse_layers_follow_first_k_and_frequency() {
        let mut v = tiny();
        v["num_hidden_layers"] = json!(6);
        v["moe_layer_freq"] = json!(2);
        let c = DeepseekV3Config::from_hf_json(&v).unwrap();
        let sparse: Vec<usize> = (0..6).filter(|&i| c.is_moe_layer(i)).collect();
        assert_eq!(sparse, vec![2, 4]);
    }
}
