//! # rlox-posttrain
//!
//! Post-training of language models in TRL's style: one `XConfig` and one `XTrainer` per method, TRL's
//! dataset conventions and metric names, on top of [`rlox_lm`]'s Llama/Qwen2 decoders.
//!
//! * [`datasets`]: JSON Lines / JSON / Parquet rows; prompt-completion, preference (explicit or implicit
//!   prompt, standard or conversational) and prompt-only forms; chat templates, truncation, padded batches
//!   with completion masks.
//! * [`losses`]: the loss math (DPO variants, Bradley-Terry, GRPO advantages and aggregations, k3 KL) as
//!   plain functions over `f64` and over burn tensors; golden tests against TRL 1.16's numbers.
//! * [`logprobs`]: per-token completion log-probs of a batch under a model.
//! * [`rewards`]: the [`rewards::RewardFn`] trait and the R1 format, countdown, arithmetic and length rewards.
//! * [`tasks`]: countdown and arithmetic problem generators with worked solutions.
//! * [`sft`], [`reward_model`], [`dpo`], [`grpo`]: the trainers.
//! * [`config`]: reading configs in rlox's or TRL's key names.
//! * [`common`]: model loading/initialisation, run directories (metrics JSONL/CSV/Parquet, TensorBoard,
//!   checkpoints in Hugging Face layout, samples), the optimizer step.
//! * [`r1_zero`]: the tiny R1-Zero pipeline (tasks, SFT warm-up from scratch, GRPO, curves).

#![warn(missing_docs)]

pub mod common;
pub mod config;
pub mod datasets;
pub mod dpo;
pub mod grpo;
pub mod logprobs;
pub mod losses;
pub mod r1_zero;
pub mod reward_model;
pub mod rewards;
pub mod sft;
pub mod tasks;

pub use rlox_core::{Error, Result};
