//! Run directories: `runs/<name>-<timestamp>/` holding the resolved config, metrics, checkpoints and plots.
//!
//! ```text
//! runs/gridworld-20261129-093012/
//!   config.toml          the resolved configuration (every default filled in)
//!   metrics.jsonl        one JSON object per logging call
//!   metrics.csv          the same, long format
//!   tb/                  TensorBoard event files
//!   checkpoints/         written atomically (temp file + rename)
//!   plots/               PNG and SVG figures
//!   summary.json         the final summary a command prints with --format json
//! ```

use crate::checkpoint::atomic_write;
use crate::config::FlatTable;
use crate::logger::{CsvLogger, JsonlLogger, MultiLogger, ProgressLogger, TensorBoardLogger};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend, Flex (feature `flex`, the default).
    #[default]
    Cpu,
    /// The NdArray CPU backend (feature `ndarray`; deprecated upstream, kept as a fallback).
    Ndarray,
    /// CUDA through CubeCL (feature `cuda`), GPU with this index.
    Cuda(usize),
}

impl DeviceKind {
    /// Parse `cpu`, `ndarray`, `cuda` or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "cpu" | "flex" => Ok(DeviceKind::Cpu),
            "ndarray" => Ok(DeviceKind::Ndarray),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            _ => match text.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(i) => Ok(DeviceKind::Cuda(i)),
                None => Err(Error::invalid("device", format!("'{text}': expected cpu, ndarray, cuda or cuda:N"))),
            },
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Ndarray => f.write_str("ndarray"),
            DeviceKind::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// What every training run has, whatever it trains (deep RL and post-training alike): its name, seed,
/// length, how often it evaluates, checkpoints and logs, where it writes, and the device. The method's
/// own hyper-parameters live in its config struct; both sit side by side in one flat config file (see
/// [`crate::config::FlatTable`]), and the names of Stable-Baselines3 and TRL are accepted as aliases
/// ([`RunSettings::ALIASES`]).
///
/// The defaults here are placeholders: each trainer starts from its own (`total_steps` is 100,000 env
/// steps for PPO on CartPole, 50,000 for DQN, ...), and the resolved values go to the run directory's
/// `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSettings {
    /// Run name: the run directory is `<runs_dir>/<name>-<timestamp>`. TRL: `run_name`.
    pub name: String,
    /// The seed every random stream of the run derives from.
    pub seed: u64,
    /// Where run directories go. TRL: `output_dir`.
    pub runs_dir: PathBuf,
    /// Length of training: environment steps for RL (SB3: `total_timesteps`), optimizer steps for
    /// post-training (TRL: `max_steps`; 0 there means `num_train_epochs` passes over the data).
    pub total_steps: u64,
    /// Evaluate every this many steps (0: only at the end). SB3: `eval_freq`, TRL: `eval_steps`.
    pub eval_every: u64,
    /// Episodes per evaluation (RL). SB3: `n_eval_episodes`.
    pub eval_episodes: usize,
    /// Checkpoint every this many steps (0: only at the end); checkpoints go to `<run dir>/checkpoints`.
    /// TRL: `save_steps`.
    pub checkpoint_every: u64,
    /// Log training metrics every this many steps (0: the trainer's natural cadence, e.g. every update).
    /// TRL: `logging_steps`.
    pub log_every: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The device to train on (`cpu`, `ndarray`, `cuda`, `cuda:N`).
    pub device: DeviceKind,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            name: "run".into(),
            seed: 0,
            runs_dir: PathBuf::from("runs"),
            total_steps: 0,
            eval_every: 0,
            eval_episodes: 10,
            checkpoint_every: 0,
            log_every: 0,
            progress: true,
            device: DeviceKind::Cpu,
        }
    }
}

impl RunSettings {
    /// Other spellings of the run settings: Stable-Baselines3's and TRL's (alias, setting).
    pub const ALIASES: &'static [(&'static str, &'static str)] = &[
        ("run_name", "name"),
        ("output_dir", "runs_dir"),
        ("total_timesteps", "total_steps"),
        ("max_steps", "total_steps"),
        ("eval_freq", "eval_every"),
        ("eval_steps", "eval_every"),
        ("n_eval_episodes", "eval_episodes"),
        ("save_steps", "checkpoint_every"),
        ("save_freq", "checkpoint_every"),
        ("logging_steps", "log_every"),
    ];

    /// Take the run settings out of a flat config, starting from a trainer's `defaults`.
    pub fn take(table: &mut FlatTable, defaults: &RunSettings) -> Result<RunSettings> {
        for (alias, key) in Self::ALIASES {
            table.alias(alias, key)?;
        }
        table.take_over(defaults)
    }

    /// Whether a run setting is named `key` (or spelled so by an alias).
    pub fn is_key(key: &str) -> bool {
        crate::config::struct_keys::<RunSettings>().contains(&key) || Self::ALIASES.iter().any(|(a, _)| *a == key)
    }

    /// Whether `count` (steps done) is a multiple of a cadence (`every` 0 means never).
    pub fn due(every: u64, count: u64) -> bool {
        every > 0 && count > 0 && count.is_multiple_of(every)
    }
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Create `<root>/<name>-<YYYYmmdd-HHMMSS>` (with a numeric suffix if it exists already).
    pub fn create(root: impl AsRef<Path>, name: &str) -> Result<Self> {
        let root = root.as_ref();
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
        let mut path = root.join(format!("{name}-{stamp}"));
        let mut k = 1;
        while path.exists() {
            path = root.join(format!("{name}-{stamp}-{k}"));
            k += 1;
        }
        for sub in ["checkpoints", "plots", "tb"] {
            let p = path.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        Ok(RunDir { path })
    }

    /// Use an existing directory (for resuming).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return Err(Error::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "run directory not found")));
        }
        Ok(RunDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `checkpoints/<name>`.
    pub fn checkpoint_path(&self, name: &str) -> PathBuf {
        self.path.join("checkpoints").join(name)
    }

    /// `plots/<name>`.
    pub fn plot_path(&self, name: &str) -> PathBuf {
        self.path.join("plots").join(name)
    }

    /// Write the resolved config as `config.toml`.
    pub fn write_config<T: Serialize>(&self, config: &T) -> Result<()> {
        let text = crate::config::to_toml_string(config)?;
        atomic_write(self.path.join("config.toml"), text.as_bytes())
    }

    /// Write `summary.json`.
    pub fn write_summary(&self, summary: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(summary).map_err(|e| Error::invalid("summary", e.to_string()))?;
        atomic_write(self.path.join("summary.json"), text.as_bytes())
    }

    /// The standard sinks: `metrics.jsonl`, `metrics.csv`, `tb/`, and a progress bar over
    /// `total_steps` (hidden when `progress` is false).
    pub fn standard_logger(&self, total_steps: u64, progress: bool) -> Result<MultiLogger> {
        let bar = if progress { ProgressLogger::new(total_steps, &[]) } else { ProgressLogger::hidden() };
        Ok(MultiLogger::new()
            .with(JsonlLogger::create(self.path.join("metrics.jsonl"))?)
            .with(CsvLogger::create(self.path.join("metrics.csv"))?)
            .with(TensorBoardLogger::create(self.path.join("tb"))?)
            .with(bar))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger::Logger;

    #[test]
    fn run_dir_layout() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "x").unwrap();
        let b = RunDir::create(root.path(), "x").unwrap();
        assert_ne!(a.path(), b.path());
        let mut log = a.standard_logger(10, false).unwrap();
        log.log(1, &[("r", 1.0)]).unwrap();
        log.flush().unwrap();
        a.write_config(&serde_json::json!({"gamma": 0.9})).unwrap();
        assert!(a.path().join("metrics.jsonl").exists());
        assert!(a.path().join("config.toml").exists());
        assert_eq!(std::fs::read_dir(a.path().join("tb")).unwrap().count(), 1);
    }
}
