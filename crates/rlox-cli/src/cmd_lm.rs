//! `rlox lm generate | score`: run a Hugging Face-layout Llama/Qwen2 or DeepSeek-V3 model.

use crate::output::{print_json, Format};
use clap::{Args, Subcommand};
use rlox_lm::commands::{generate_json, score_json, GenerateArgs};
use std::path::PathBuf;

/// Language-model subcommands.
#[derive(Subcommand, Debug)]
pub enum LmCommand {
    /// Generate a continuation of a prompt.
    Generate(Box<LmGenerateArgs>),
    /// Per-token log-probabilities of a text under the model.
    Score(LmScoreArgs),
}

/// Arguments of `rlox lm generate`.
#[derive(Args, Debug)]
pub struct LmGenerateArgs {
    /// Model directory (config.json, model.safetensors or an index, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as one user turn of the model's chat template (ChatML or Llama 3).
    #[arg(long)]
    chat: bool,
    /// New tokens at most.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-k (0: off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Top-p (1: off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Stop strings (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Arguments of `rlox lm score`.
#[derive(Args, Debug)]
pub struct LmScoreArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// The text to score.
    #[arg(long)]
    text: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Run an `lm` subcommand.
pub fn run(cmd: LmCommand) -> anyhow::Result<()> {
    match cmd {
        LmCommand::Generate(a) => {
            let mut g = GenerateArgs::new(&a.model, &a.prompt);
            g.chat = a.chat;
            g.max_new_tokens = a.max_new_tokens;
            g.temperature = a.temperature;
            g.top_k = a.top_k;
            g.top_p = a.top_p;
            g.repetition_penalty = a.repetition_penalty;
            g.stop = a.stop.clone();
            g.seed = a.seed;
            let v = generate_json(&g)?;
            match a.format {
                Format::Json => print_json(&v),
                Format::Text => {
                    println!("{}", v["completion"].as_str().or_else(|| v["text"].as_str()).unwrap_or(""));
                    Ok(())
                }
            }
        }
        LmCommand::Score(a) => {
            let v = score_json(&a.model, &a.text)?;
            match a.format {
                Format::Json => print_json(&v),
                Format::Text => {
                    println!(
                        "total log-prob {:.4} over {} tokens",
                        v["total_logprob"].as_f64().unwrap_or(f64::NAN),
                        v["tokens"].as_array().map_or(0, |t| t.len())
                    );
                    Ok(())
                }
            }
        }
    }
}
