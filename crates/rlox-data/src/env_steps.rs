//! Environment steps collected by rollout workers, as a Hive-partitioned store:
//! `<root>/run=<run>/step=<step>/part-<worker>.parquet`.
//!
//! One row per transition: `worker, env, t, obs, action, reward, terminated, truncated`, where `obs`
//! is the observation the action was taken in, `t` the index of the call within the batch and
//! `env` the env within the worker's vector env. Each worker writes (or has the driver write) its
//! own part file per step, named after the worker, so many writers share a step directory without
//! coordination; files appear atomically (written beside, then renamed). The partition columns
//! `run` and `step` live only in the directory names, as Hive requires; `rlox sql`, Spark, DuckDB
//! and `pyarrow.dataset(..., partitioning="hive")` read them back as columns.

use crate::write::{partition_dir, write_parquet, WriteOptions};
use crate::{Error, Result};
use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("element", item, true)))
}

/// The schema of an env-step part file (without the partition columns).
pub fn env_step_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("worker", DataType::Int64, false),
        Field::new("env", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("obs", list_of(DataType::Float32), false),
        Field::new("action", list_of(DataType::Float64), false),
        Field::new("reward", DataType::Float64, false),
        Field::new("terminated", DataType::Boolean, false),
        Field::new("truncated", DataType::Boolean, false),
    ]))
}

/// The columns of one part file, borrowed from the caller's arrays (row-major, `rows` rows).
#[derive(Debug, Clone, Copy)]
pub struct EnvSteps<'a> {
    /// The worker that collected the rows.
    pub worker: i64,
    /// The env of each row within the worker's vector env.
    pub env: &'a [i64],
    /// The call index of each row within the batch.
    pub t: &'a [i64],
    /// Observations, `obs_dim` values per row.
    pub obs: &'a [f32],
    /// Values per observation.
    pub obs_dim: usize,
    /// Actions, `action_dim` values per row (a discrete action is one value).
    pub action: &'a [f64],
    /// Values per action.
    pub action_dim: usize,
    /// Rewards.
    pub reward: &'a [f64],
    /// Terminated flags.
    pub terminated: &'a [bool],
    /// Truncated flags.
    pub truncated: &'a [bool],
}

impl EnvSteps<'_> {
    /// Number of rows, after checking that every column has it.
    pub fn rows(&self) -> Result<usize> {
        let n = self.reward.len();
        let checks = [
            ("env", self.env.len(), n),
            ("t", self.t.len(), n),
            ("obs", self.obs.len(), n * self.obs_dim),
            ("action", self.action.len(), n * self.action_dim),
            ("terminated", self.terminated.len(), n),
            ("truncated", self.truncated.len(), n),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(Error::invalid(
                    "env steps",
                    format!("column {name} has {got} values, expected {want} for {n} rows"),
                ));
            }
        }
        Ok(n)
    }

    /// The rows as an Arrow record batch of [`env_step_schema`].
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let n = self.rows()?;
        let fixed = |dim: usize| OffsetBuffer::from_lengths(std::iter::repeat_n(dim, n));
        let obs = ListArray::try_new(
            Arc::new(Field::new("element", DataType::Float32, true)),
            fixed(self.obs_dim),
            Arc::new(Float32Array::from(self.obs.to_vec())),
            None,
        )?;
        let action = ListArray::try_new(
            Arc::new(Field::new("element", DataType::Float64, true)),
            fixed(self.action_dim),
            Arc::new(Float64Array::from(self.action.to_vec())),
            None,
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![self.worker; n])),
            Arc::new(Int64Array::from(self.env.to_vec())),
            Arc::new(Int64Array::from(self.t.to_vec())),
            Arc::new(obs),
            Arc::new(action),
            Arc::new(Float64Array::from(self.reward.to_vec())),
            Arc::new(BooleanArray::from(self.terminated.to_vec())),
            Arc::new(BooleanArray::from(self.truncated.to_vec())),
        ];
        Ok(RecordBatch::try_new(env_step_schema(), columns)?)
    }
}

/// Writes env-step part files under a root directory for one run.
#[derive(Debug, Clone)]
pub struct EnvStepStore {
    root: PathBuf,
    run: String,
    options: WriteOptions,
}

impl EnvStepStore {
    /// A store under `root` for run `run`.
    pub fn new(root: impl AsRef<Path>, run: &str, options: WriteOptions) -> Self {
        EnvStepStore { root: root.as_ref().to_path_buf(), run: run.to_string(), options }
    }

    /// The path of worker `worker`'s part file of step `step`.
    pub fn part_path(&self, step: i64, worker: i64) -> PathBuf {
        partition_dir(&self.root, &[("run", self.run.clone()), ("step", step.to_string())])
            .join(format!("part-{worker:05}.parquet"))
    }

    /// Write `rows` as worker `rows.worker`'s part of step `step`; returns the file.
    ///
    /// Writing the same worker and step twice replaces the file (a retried task leaves one copy).
    pub fn write(&self, step: i64, rows: &EnvSteps<'_>) -> Result<PathBuf> {
        if step < 0 || rows.worker < 0 {
            return Err(Error::invalid("env steps", format!("step {step} and worker {} must be >= 0", rows.worker)));
        }
        let batch = rows.to_batch()?;
        write_parquet(self.part_path(step, rows.worker), env_step_schema(), &[batch], &self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_part_per_worker_and_step_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = EnvStepStore::new(dir.path(), "demo", WriteOptions::default());
        let rows = EnvSteps {
            worker: 1,
            env: &[0, 1],
            t: &[0, 0],
            obs: &[0.5, -0.25, 1.0, 2.0],
            obs_dim: 2,
            action: &[1.0, 0.0],
            action_dim: 1,
            reward: &[1.0, 0.5],
            terminated: &[false, true],
            truncated: &[false, false],
        };
        let path = store.write(3, &rows).unwrap();
        assert!(path.ends_with("run=demo/step=3/part-00001.parquet"), "{}", path.display());
        let file = std::fs::File::open(&path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let b = &batches[0];
        let obs = b.column_by_name("obs").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
        let second = obs.value(1);
        let second = second.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(second.values().to_vec(), vec![1.0, 2.0]);
        let bad = EnvSteps { reward: &[1.0], ..rows };
        let e = store.write(4, &bad).unwrap_err().to_string();
        assert!(e.contains("column env has 2 values, expected 1"), "{e}");
    }
}
