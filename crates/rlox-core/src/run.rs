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
use crate::logger::{CsvLogger, JsonlLogger, MultiLogger, ProgressLogger, TensorBoardLogger};
use crate::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
