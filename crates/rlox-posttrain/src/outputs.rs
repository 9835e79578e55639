//! A post-training run directory, its files, and how a resumed run cuts them back to its checkpoint.
//!
//! ```text
//! <runs_dir>/<name>-<YYYYmmdd-HHMMSS>/
//!   config.toml          the resolved config, flat, in rlox's names (`--resume` reads it)
//!   metrics.jsonl        one JSON object per logging call; also metrics.csv (long format),
//!   metrics.parquet      metrics.parquet and TensorBoard scalars in tb/
//!   samples.jsonl        completions sampled at logging steps (GRPO)
//!   eval_samples.jsonl   each eval example's completion and scores at each evaluation (GRPO)
//!   rollouts/            GRPO's generation rounds as Parquet (Hive partitions run=/step=)
//!   checkpoints/         see crate::checkpoint
//!   summary.json         what the command prints
//! ```
//!
//! Paths in `config.toml` are as the config gave them (relative ones from the directory the run was
//! started in, where `--resume` must run too).
//!
//! A checkpoint records how many metric records and how many bytes of each JSON Lines file were written
//! before it; a resumed run keeps exactly those (the records are replayed into fresh metrics files with
//! their original times, the JSON Lines files are truncated), so the files end up as an uninterrupted
//! run would have written them.

use crate::trainer::Metrics;
use crate::{Error, Result};
use rlox_core::checkpoint::atomic_write;
use rlox_core::logger::{Logger, MultiLogger};
use rlox_core::run::RunDir;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Completions sampled at logging steps.
pub const SAMPLES: &str = "samples.jsonl";
/// Completions and scores of each evaluation.
pub const EVAL_SAMPLES: &str = "eval_samples.jsonl";
const APPENDED: [&str; 2] = [SAMPLES, EVAL_SAMPLES];

/// The open sinks of a run directory.
pub struct Outputs {
    /// The directory.
    pub dir: RunDir,
    logger: MultiLogger,
    records: u64,
    files: Vec<(&'static str, BufWriter<File>)>,
}

impl Outputs {
    /// Create `<runs_dir>/<name>-<time>/` and write `config_toml` into it.
    pub fn create(runs_dir: &Path, name: &str, config_toml: &str, progress: bool, total: u64) -> Result<Self> {
        let dir = RunDir::create(runs_dir, name)?;
        atomic_write(dir.path().join("config.toml"), config_toml.as_bytes())?;
        Self::open(dir, 0, &BTreeMap::new(), progress, total)
    }

    /// Reopen the run in `run_dir` as it was at a checkpoint taken after `records` metric records and
    /// with the JSON Lines files at the byte lengths `appended`.
    pub fn resume(
        run_dir: &Path,
        records: u64,
        appended: &BTreeMap<String, u64>,
        progress: bool,
        total: u64,
    ) -> Result<Self> {
        Self::open(RunDir::open(run_dir)?, records, appended, progress, total)
    }

    fn open(dir: RunDir, records: u64, appended: &BTreeMap<String, u64>, progress: bool, total: u64) -> Result<Self> {
        let kept = dir.records_for_resume(records)?;
        let name = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parquet = rlox_data::metrics::ParquetMetricsLogger::new(
            dir.path().join("metrics.parquet"),
            &name,
            rlox_data::write::WriteOptions::default(),
        );
        let mut logger = dir.standard_logger(total, progress)?.with(parquet);
        for r in &kept {
            r.replay(&mut logger)?;
        }
        let mut files = Vec::new();
        for file in APPENDED {
            let path = dir.path().join(file);
            let keep = appended.get(file).copied().unwrap_or(0);
            let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
            let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
            if len < keep {
                return Err(Error::checkpoint(
                    &path,
                    format!("holds {len} bytes, but the checkpoint was taken after {keep}"),
                ));
            }
            f.set_len(keep).map_err(|e| Error::io(&path, e))?;
            files.push((file, BufWriter::new(f)));
        }
        Ok(Outputs { dir, logger, records, files })
    }

    /// Log `metrics` at `step`.
    pub fn log(&mut self, step: u64, metrics: &Metrics) -> Result<()> {
        let m: Vec<(&str, f64)> = metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.records += 1;
        self.logger.log(step, &m)
    }

    /// Append `rows` to the JSON Lines file `file` ([`SAMPLES`] or [`EVAL_SAMPLES`]), each object with
    /// `"step": step` added.
    pub fn append(&mut self, file: &str, step: u64, rows: &[serde_json::Value]) -> Result<()> {
        let path = self.dir.path().join(file);
        let (_, out) = self
            .files
            .iter_mut()
            .find(|(name, _)| *name == file)
            .ok_or_else(|| Error::invalid("run outputs", format!("no file `{file}`")))?;
        for r in rows {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.insert("step".into(), step.into());
            }
            writeln!(out, "{r}").map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Push everything to disk; returns the metric records so far and the JSON Lines files' lengths
    /// (what a checkpoint records).
    pub fn sync(&mut self) -> Result<(u64, BTreeMap<String, u64>)> {
        self.logger.flush()?;
        let mut lengths = BTreeMap::new();
        for (name, out) in &mut self.files {
            let path = self.dir.path().join(*name);
            out.flush().map_err(|e| Error::io(&path, e))?;
            let len = out.get_ref().metadata().map_err(|e| Error::io(&path, e))?.len();
            lengths.insert(name.to_string(), len);
        }
        Ok((self.records, lengths))
    }

    /// Flush everything and write `summary.json`.
    pub fn finish(&mut self, summary: &serde_json::Value) -> Result<()> {
        self.sync()?;
        self.dir.write_summary(summary)
    }
}
