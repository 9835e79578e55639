//! `rlox vlm generate | score`: run a Hugging Face-layout Kimi-VL model on images and text.

use crate::output::{print_json, Format};
use clap::{Args, Subcommand};
use rlox_vlm::commands::{generate_json, score_json, VlmGenerateArgs};
use std::path::PathBuf;

/// Vision-language subcommands.
#[derive(Subcommand, Debug)]
pub enum VlmCommand {
    /// Answer a prompt about one or more images.
    Generate(Box<VlmGenerateCli>),
    /// Per-token log-probabilities of a completion given images and a prompt.
    Score(VlmScoreCli),
}

/// Arguments of `rlox vlm generate`.
#[derive(Args, Debug)]
pub struct VlmGenerateCli {
    /// Model directory (config.json, model.safetensors or an index, tiktoken.model or tokenizer.json,
    /// preprocessor_config.json).
    #[arg(long)]
    model: PathBuf,
    /// An image file, PNG or JPEG (repeatable; shown in order).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Use the prompt as the whole text, with one <|media_pad|> per image (no chat format).
    #[arg(long)]
    raw: bool,
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

/// Arguments of `rlox vlm score`.
#[derive(Args, Debug)]
pub struct VlmScoreCli {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// An image file (repeatable).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The prompt (chat-formatted with the images unless --raw).
    #[arg(long)]
    prompt: String,
    /// The completion to score.
    #[arg(long)]
    completion: String,
    /// Use the prompt as the whole text, with one <|media_pad|> per image.
    #[arg(long)]
    raw: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Run a `vlm` subcommand.
pub fn run(cmd: VlmCommand) -> anyhow::Result<()> {
    match cmd {
        VlmCommand::Generate(a) => {
            let mut g = VlmGenerateArgs::new(&a.model, a.images.clone(), &a.prompt);
            g.raw = a.raw;
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
                    println!("{}", v["completion"].as_str().unwrap_or(""));
                    Ok(())
                }
            }
        }
        VlmCommand::Score(a) => {
            let v = score_json(&a.model, &a.images, &a.prompt, &a.completion, a.raw)?;
            match a.format {
                Format::Json => print_json(&v),
                Format::Text => {
                    println!(
                        "total log-prob {:.4} over {} completion tokens",
                        v["total_logprob"].as_f64().unwrap_or(f64::NAN),
                        v["tokens"].as_array().map_or(0, |t| t.len())
                    );
                    Ok(())
                }
            }
        }
    }
}
