//! The DeepSeek-V3 decoder (also Moonlight's and Kimi-VL's language model): multi-head latent attention
//! with a cache of the compressed latent, a mixture of experts with DeepSeek-V3's auxiliary-loss-free
//! grouped sigmoid router and shared experts, dense first layers, optional YaRN RoPE scaling.
//!
//! * [`config`]: [`DeepseekV3Config`] from `config.json`.
//! * [`mla`]: [`Mla`], the attention, and the rope tables.
//! * [`moe`]: [`Router`] and [`DeepseekMlp`].
//! * [`model`]: [`DeepseekV3ForCausalLm`] and its [`LatentCache`]; `forward_embeds` takes input
//!   embeddings, so that a vision-language model can put image features where its placeholder tokens are.
//!
//! Loading and saving go through [`crate::hf`] (`load_deepseek_v3`, `save_deepseek_v3`): tensor names are
//! transformers' (`model.layers.3.self_attn.kv_a_proj_with_mqa.weight`,
//! `model.layers.3.mlp.experts.17.gate_proj.weight`, `model.layers.3.mlp.gate.e_score_correction_bias`, ...).
//! Generation is [`crate::generate`]'s, through the [`crate::generate::Decode`] trait.

pub mod config;
pub mod mla;
pub mod model;
pub mod moe;

pub use config::{DeepseekRope, DeepseekV3Config, ScoringFunc, TopkMethod, Yarn};
pub use mla::{Mla, RopeTables};
pub use model::{DeepseekLayer, DeepseekModel, DeepseekV3ForCausalLm, LatentCache};
pub use moe::{DeepseekMlp, Router, Routing};
