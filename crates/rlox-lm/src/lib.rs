//! # rlox-lm
//!
//! The language-model core of rlox: decoder-only transformers of the Llama and Qwen2 families
//! (dense and mixture-of-experts) on burn, loaded from and saved to Hugging Face checkpoints, with
//! Hugging Face tokenizers, chat templates and KV-cache generation.
//!
//! * [`config`]: [`LmConfig`] from `config.json` (Llama, Mistral, Qwen2, Qwen2-MoE), with the
//!   rope scaling types Llama 3 uses, sliding windows and MoE routing settings.
//! * [`model`]: [`CausalLm`], whose parameter paths are the Hugging Face tensor names.
//! * [`deepseek_v3`]: the DeepSeek-V3 decoder ([`DeepseekV3ForCausalLm`]: multi-head latent attention
//!   with a cache of the compressed latent, grouped sigmoid routing, shared experts, YaRN), the language
//!   model of Moonlight and Kimi-VL.
//! * [`init`]: random or lazy (shape-only) parameters, [`Init`].
//! * [`attention`]: the [`attention::AttentionKernel`] boundary; [`attention::EagerAttention`] is
//!   the straightforward path, [`attention::FlashAttention`] (rlox-nn's tiled kernel with its own
//!   backward) the default on the CPU.
//! * [`weights`]: safetensors tensors by name in f32/bf16/f16, memory-mapped, into f32 burn tensors;
//!   a streaming writer in f32/bf16/f16. Model-agnostic.
//! * [`hf`]: loading (`model.safetensors` or sharded) and saving in the same layout, in f32, bf16 or
//!   f16, with f32 (default) or bf16 compute; memory per parameter in its docs.
//! * [`tokenizer`]: `tokenizer.json` through the `tokenizers` crate; ChatML and Llama 3 chat templates.
//! * [`tiktoken`]: a native reader of tiktoken vocabularies (`tiktoken.model`, Kimi's tokenizer), built
//!   into the same `tokenizers` pipeline.
//! * [`generate`]: batched generation (any [`Decode`] model) with a KV cache, greedy or sampled (temperature, top-k,
//!   top-p, repetition penalty), stop strings and EOS, log-probs of the chosen tokens.
//! * [`commands`]: the `rlox lm generate` / `rlox lm score` commands as library functions returning JSON.
//!
//! Errors are [`rlox_core::Error`]s that name the file, tensor or argument at fault; bad input never panics.

#![warn(missing_docs)]

pub mod attention;
pub mod commands;
pub mod config;
pub mod deepseek_v3;
pub mod generate;
pub mod hf;
pub mod init;
pub mod model;
pub mod tiktoken;
pub mod tokenizer;
pub mod weights;

pub use attention::{AttentionKernel, AttentionMask, EagerAttention, FlashAttention};
pub use config::{Family, GateFn, LmConfig, MoeConfig, RopeScaling};
pub use deepseek_v3::{DeepseekV3Config, DeepseekV3ForCausalLm, LatentCache};
pub use generate::{generate, Decode, GenerationConfig, GenerationOutput, Sampler};
pub use hf::{load_model, load_model_with, save_model, save_model_as, LoadOptions};
pub use init::Init;
pub use model::{
    CausalLm, ForwardInput, HashInit, HiddenStates, KvCache, LmOutput, MemoryOptions, ParamKind, ParamSource,
    RandomInit,
};
pub use tokenizer::{ChatMessage, ChatTemplate, LmTokenizer};
pub use weights::{StorageDtype, WeightFiles, WeightWriter};
