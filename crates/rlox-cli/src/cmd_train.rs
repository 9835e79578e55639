//! `rlox train [CONFIG.toml]`: the main job. With no argument it runs the embedded default
//! (`configs/gridworld.toml`): the book's grid world solved by planning and learned from samples,
//! with metrics, plots, a checkpoint of the learned table and a summary in a run directory. With a
//! deep-RL config (or `--algo`), it trains that algorithm; `--resume RUN_DIR` continues a run.
//!
//! The command is thin: parse, hand the config to `rlox_runner`, print the summary.

use crate::output::{print_json, Format};
use clap::Args;
use rlox_runner::{Overrides, TrainConfig};
use std::path::PathBuf;

/// Arguments of `rlox train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A TOML config; the embedded default (configs/gridworld.toml) when absent.
    config: Option<PathBuf>,
    /// Train this algorithm (dqn, reinforce, a2c, ppo, ddpg, td3, sac, tabular): its table of the
    /// config, else its defaults (rl-baselines3-zoo's settings).
    #[arg(long)]
    algo: Option<String>,
    /// Environment of the run (e.g. CartPole-v1).
    #[arg(long)]
    env: Option<String>,
    /// Training steps (env steps for RL), overriding the config.
    #[arg(long)]
    total_steps: Option<u64>,
    /// Override the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the directory that holds run directories.
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (same directory, same numbers as an
    /// uninterrupted run; the algorithm and config come from its config.toml).
    #[arg(long, conflicts_with = "config")]
    resume: Option<PathBuf>,
    /// Output format of the final summary.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Run `rlox train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        algo: a.algo.clone(),
        env: a.env.clone(),
        total_steps: a.total_steps,
        seed: a.seed,
        runs_dir: a.runs_dir.clone(),
        progress: (a.format == Format::Json).then_some(false),
    };
    let summary = match (&a.resume, &a.config) {
        (Some(dir), _) => rlox_runner::resume(dir, &overrides)?,
        (None, Some(path)) => rlox_runner::train(&TrainConfig::load(path, &overrides)?)?,
        (None, None) => rlox_runner::train(&rlox_runner::default_config(&overrides)?)?,
    };
    match a.format {
        Format::Json => print_json(&summary),
        Format::Text => {
            println!("run directory: {}", summary["run_dir"].as_str().unwrap_or("?"));
            if let Some(p) = summary.get("plan").filter(|p| !p.is_null()) {
                println!("planning ({}): {} iterations; policy {}", p["algo"], p["iterations"], p["policy"]);
            }
            if let Some(l) = summary.get("learn").filter(|l| !l.is_null()) {
                println!(
                    "learning ({}): {} steps, {:.0} steps/s, final RMSE {}, greedy policy {} (gap to optimal {})",
                    l["algo"],
                    l["steps"],
                    l["steps_per_second"].as_f64().unwrap_or(0.0),
                    l["final_rmse"],
                    l["policy"],
                    l["value_gap_to_optimal"]
                );
            }
            if summary.get("env_steps").is_some() {
                println!(
                    "{} on {}: {} env steps in {:.1} s ({:.0} steps/s); greedy evaluation {:.1} +/- {:.1}",
                    summary["algo"].as_str().unwrap_or("?"),
                    summary["env"].as_str().unwrap_or("?"),
                    summary["env_steps"],
                    summary["wall_seconds"].as_f64().unwrap_or(0.0),
                    summary["steps_per_second"].as_f64().unwrap_or(0.0),
                    summary["eval_return_mean"].as_f64().unwrap_or(0.0),
                    summary["eval_return_std"].as_f64().unwrap_or(0.0)
                );
            }
            Ok(())
        }
    }
}
