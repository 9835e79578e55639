//! `rlox`: the command-line front of the rlox toolkit.
//!
//! The binary is thin: it parses arguments, builds the pieces from the library crates, runs them
//! and reports. Every subcommand that produces results accepts `--format json` and then prints
//! exactly one JSON object on stdout. Errors go to stderr with a non-zero exit status.

mod args;
mod cmd_env;
mod cmd_learn;
mod cmd_lm;
mod cmd_posttrain;
mod cmd_solve;
#[cfg(feature = "sql")]
mod cmd_sql;
mod cmd_train;
mod cmd_vlm;
mod output;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Reinforcement learning from first principles to the post-training of language models.
#[derive(Parser, Debug)]
#[command(name = "rlox", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List, show and roll out environments.
    #[command(subcommand)]
    Env(cmd_env::EnvCommand),
    /// Solve a finite MDP by planning: evaluate a policy, value/policy/truncated policy iteration.
    Solve(cmd_solve::SolveArgs),
    /// Learn from samples: Monte Carlo and temporal-difference methods.
    Learn(cmd_learn::LearnArgs),
    /// Run the main job from a TOML config (the embedded default when none is given).
    Train(cmd_train::TrainArgs),
    /// Language models: generate and score with a Hugging Face-layout Llama/Qwen2 or DeepSeek-V3 model.
    #[command(subcommand)]
    Lm(cmd_lm::LmCommand),
    /// Vision-language models: generate and score with a Hugging Face-layout Kimi-VL model.
    #[command(subcommand)]
    Vlm(cmd_vlm::VlmCommand),
    /// Supervised fine-tuning of a language model from a TOML config.
    Sft(cmd_posttrain::PostArgs),
    /// Train a Bradley-Terry reward model from a TOML config.
    Rm(cmd_posttrain::PostArgs),
    /// Direct Preference Optimization from a TOML config.
    Dpo(cmd_posttrain::PostArgs),
    /// GRPO with rule-based rewards from a TOML config.
    Grpo(cmd_posttrain::PostArgs),
    /// The tiny R1-Zero: tasks, SFT warm-up from scratch, GRPO, curves.
    #[command(name = "r1-zero")]
    R1Zero(cmd_posttrain::PostArgs),
    /// SQL over run directories, rollouts and datasets, with Hive's LATERAL VIEW explode
    /// (built with the `sql` cargo feature).
    #[cfg(feature = "sql")]
    Sql(cmd_sql::SqlArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RLOX_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Env(c) => cmd_env::run(c),
        Command::Solve(a) => cmd_solve::run(a),
        Command::Learn(a) => cmd_learn::run(a),
        Command::Train(a) => cmd_train::run(a),
        Command::Lm(c) => cmd_lm::run(c),
        Command::Vlm(c) => cmd_vlm::run(c),
        Command::Sft(a) => cmd_posttrain::run(cmd_posttrain::Method::Sft, a),
        Command::Rm(a) => cmd_posttrain::run(cmd_posttrain::Method::Rm, a),
        Command::Dpo(a) => cmd_posttrain::run(cmd_posttrain::Method::Dpo, a),
        Command::Grpo(a) => cmd_posttrain::run(cmd_posttrain::Method::Grpo, a),
        Command::R1Zero(a) => cmd_posttrain::run(cmd_posttrain::Method::R1Zero, a),
        #[cfg(feature = "sql")]
        Command::Sql(a) => cmd_sql::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once: many error types already print their source
/// in their own message (`path: No such file or directory`), so a cause whose text is already there is
/// not repeated.
fn render_error(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
