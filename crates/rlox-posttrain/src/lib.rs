//! # rlox-posttrain
//!
//! Post-training of language models in TRL's style: TRL's dataset conventions, config names and metric
//! names, on top of [`rlox_lm`]'s Llama/Qwen2 decoders.
//!
//! * [`run`] / [`resume`]: the entry point the `rlox` binary (and other front ends) call: a method, a
//!   config or a run directory, and back comes the summary.
//! * [`config`]: a run's config (run settings, model, data, optimisation, the method's hyper-parameters)
//!   from one flat TOML table in rlox's or TRL's key names.
//! * [`trainer`]: the one training loop ([`trainer::Trainer`]) and the [`trainer::Method`] trait that
//!   [`sft`], [`reward_model`], [`dpo`] and [`grpo`] implement.
//! * [`checkpoint`]: checkpoints in Hugging Face layout with the optimizer and trainer state; exact resume.
//! * [`outputs`]: the run directory's files (metrics, samples) and how a resumed run cuts them back.
//! * [`datasets`]: JSON Lines / JSON / Parquet rows; prompt-completion, preference (explicit or implicit
//!   prompt, standard or conversational) and prompt-only forms; chat templates, truncation, padded batches
//!   with completion masks.
//! * [`losses`]: the loss math (DPO variants, Bradley-Terry, GRPO advantages and aggregations, k3 KL) as
//!   plain functions over `f64` and over burn tensors; golden tests against TRL 1.16's numbers.
//! * [`logprobs`]: per-token completion log-probs of a batch under a model.
//! * [`rewards`]: the [`rewards::RewardFn`] trait and the R1 format, countdown, arithmetic and length rewards.
//! * [`tasks`]: countdown and arithmetic problem generators with worked solutions.
//! * [`model`]: the model source (a Hugging Face directory, or a fresh model of a given shape).
//! * [`policy`]: the trained model, text-only or vision-language (Kimi-VL), and how rows' images reach it.
//! * [`r1_zero`]: the tiny R1-Zero pipeline (tasks, SFT warm-up from scratch, GRPO, curves).
//! * [`colours`]: a tiny vision-language model learning to name an image's colour (SFT, then GRPO).

#![warn(missing_docs)]

pub mod checkpoint;
pub mod colours;
pub mod config;
pub mod datasets;
pub mod dpo;
pub mod grpo;
mod launch;
pub mod logprobs;
pub mod losses;
pub mod model;
pub mod outputs;
pub mod policy;
pub mod r1_zero;
pub mod reward_model;
pub mod rewards;
pub mod sft;
pub mod tasks;
pub mod trainer;

pub use launch::{resume, run, ConfigSource, Launch};
pub use rlox_core::{Error, Result};
pub use trainer::MethodKind;
