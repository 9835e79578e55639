//! # rlox-runner
//!
//! The run layer of rlox, between the trainers and their front ends (the `rlox` binary, the Python
//! package): the run config ([`TrainConfig`]: run settings, env, method), the algorithm registry
//! ([`Algo`]), config resolution (defaults per algorithm, SB3's and TRL's key names, command-line
//! overrides), env construction from ids, run directories, and resume.
//!
//! ```no_run
//! use rlox_runner::{Overrides, TrainConfig};
//! let cfg = TrainConfig::load("configs/ppo_cartpole.toml".as_ref(), &Overrides::default()).unwrap();
//! let summary = rlox_runner::train(&cfg).unwrap();
//! println!("{}", summary["eval_return_mean"]);
//! // A killed run continues in its own directory, with the numbers an uninterrupted run gives:
//! let again = rlox_runner::resume(summary["run_dir"].as_str().unwrap().as_ref(), &Overrides::default()).unwrap();
//! ```

#![warn(missing_docs)]

pub mod config;
mod deep;
pub mod sinks;
pub mod tabular;

pub use config::{Algo, EnvSection, Method, Overrides, TrainConfig};

use anyhow::{bail, Context};
use rlox_core::run::RunDir;
use std::path::Path;

/// The embedded default config of `rlox train` (the book's grid world, planned and learned).
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/gridworld.toml");

/// The default config with `overrides` applied (when an algorithm is named, its defaults instead).
pub fn default_config(overrides: &Overrides) -> anyhow::Result<TrainConfig> {
    if overrides.algo.is_some() {
        return TrainConfig::parse("", Path::new("<defaults>"), overrides);
    }
    TrainConfig::parse(DEFAULT_CONFIG, Path::new("<embedded configs/gridworld.toml>"), overrides)
}

/// Run `cfg` in a new run directory; returns the summary (also written to `summary.json`).
pub fn train(cfg: &TrainConfig) -> anyhow::Result<serde_json::Value> {
    if cfg.algo() == Algo::Tabular {
        return tabular::run_tabular(cfg);
    }
    let run = RunDir::create(&cfg.run.runs_dir, &cfg.run.name)?;
    cfg.write(&run)?;
    deep::run_deep(cfg, &deep::Session { run, resume: false })
}

/// Continue the run in `run_dir` from its last checkpoint, in the same directory: the algorithm and
/// the config come from the run's `config.toml` (of the overrides only `progress` applies: the rest
/// would change the run).
pub fn resume(run_dir: &Path, overrides: &Overrides) -> anyhow::Result<serde_json::Value> {
    if overrides.algo.is_some()
        || overrides.env.is_some()
        || overrides.total_steps.is_some()
        || overrides.seed.is_some()
    {
        bail!("--resume continues the run as its config.toml says; --algo, --env, --total-steps and --seed would change it");
    }
    let run = RunDir::open(run_dir)?;
    let path = run.path().join("config.toml");
    let only_progress = Overrides { progress: overrides.progress, ..Overrides::default() };
    let cfg = TrainConfig::load(&path, &only_progress)
        .with_context(|| format!("{} is not an rlox run directory", run_dir.display()))?;
    if !cfg.algo().resumable() {
        bail!("{} is a {} run, which does not checkpoint; run it again", run_dir.display(), cfg.algo().name());
    }
    deep::run_deep(&cfg, &deep::Session { run, resume: true })
}
