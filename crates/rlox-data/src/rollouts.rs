//! A Hive-partitioned rollout store: `<root>/run=<run>/step=<step>/part-NNNNN.parquet`.
//!
//! One file per call of [`RolloutStore::write_step`]; the files hold `prompt, completions` and the
//! directories hold `run` and `step`, which is how Hive, Spark (`spark.read.parquet(root)`), DuckDB
//! (`hive_partitioning`) and `rlox sql` see the same table with `run` and `step` columns.

use crate::records::{rollouts_to_batch, RolloutGroup};
use crate::schema::rollout_schema;
use crate::write::{next_part_path, partition_dir, write_parquet, WriteOptions};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Writes GRPO rollout groups under a root directory.
#[derive(Debug, Clone)]
pub struct RolloutStore {
    root: PathBuf,
    run: String,
    reward_names: Vec<String>,
    options: WriteOptions,
}

impl RolloutStore {
    /// A store under `root` for run `run` whose completions carry one reward per name in
    /// `reward_names` (reward function names; they become struct fields, so letters, digits, `_`).
    pub fn new(root: impl AsRef<Path>, run: &str, reward_names: &[&str], options: WriteOptions) -> Result<Self> {
        for n in reward_names {
            let ok = !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(Error::invalid(
                    "reward function name",
                    format!("`{n}`: use letters, digits and `_` (it becomes a column name in Hive and Spark)"),
                ));
            }
        }
        Ok(RolloutStore {
            root: root.as_ref().to_path_buf(),
            run: run.to_string(),
            reward_names: reward_names.iter().map(|s| s.to_string()).collect(),
            options,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The reward function names.
    pub fn reward_names(&self) -> &[String] {
        &self.reward_names
    }

    /// Write the groups of one step to a new part file; returns its path.
    pub fn write_step(&self, step: i64, groups: &[RolloutGroup]) -> Result<PathBuf> {
        if let Some(g) = groups.iter().find(|g| g.step != step) {
            return Err(Error::invalid("rollout group", format!("step {} in a write for step {step}", g.step)));
        }
        let dir = partition_dir(&self.root, &[("run", self.run.clone()), ("step", step.to_string())]);
        let batch = rollouts_to_batch(None, &self.reward_names, groups)?;
        write_parquet(next_part_path(&dir), rollout_schema(&self.reward_names, false), &[batch], &self.options)
    }
}
