//! Training metrics as Parquet (long format: `run, step, wall_time_us, name, value`).
//!
//! [`ParquetMetricsLogger`] is a [`Logger`] sink that a trainer adds beside the JSONL/CSV/TensorBoard
//! sinks; [`metrics_from_jsonl`] converts an existing run's `metrics.jsonl` (what `rlox sql` does when
//! a run directory has no `metrics.parquet`).

use crate::schema::metrics_schema;
use crate::write::{write_parquet, WriteOptions};
use crate::{Error, Result};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use rlox_core::logger::Logger;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Step as the trainer counts it.
    pub step: i64,
    /// Epoch microseconds.
    pub wall_time_us: i64,
    /// Metric name (`loss`, `rewards/chosen`, ...).
    pub name: String,
    /// Value; `None` for a non-finite value.
    pub value: Option<f64>,
}

/// Metric rows as a batch of [`metrics_schema`].
pub fn metrics_to_batch(run: &str, rows: &[MetricRow]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| run))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.wall_time_us))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.name.as_str()))),
        Arc::new(rows.iter().map(|r| r.value).collect::<Float64Array>()),
    ];
    Ok(RecordBatch::try_new(metrics_schema(), cols)?)
}

/// Read a run's `metrics.jsonl` (`{"step": .., "wall_time": <seconds>, "<name>": value, ..}` per line)
/// into long-format rows. Lines that are not JSON objects are errors naming the line.
pub fn metrics_from_jsonl(path: impl AsRef<Path>) -> Result<Vec<MetricRow>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| Error::invalid(format!("{}:{}", path.display(), i + 1), why);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
        let step = obj.get("step").and_then(|s| s.as_i64()).ok_or_else(|| bad("no integer `step`".into()))?;
        let t = obj.get("wall_time").and_then(|s| s.as_f64()).unwrap_or(0.0);
        for (k, val) in obj {
            if k == "step" || k == "wall_time" {
                continue;
            }
            if val.is_null() || val.is_number() {
                rows.push(MetricRow {
                    step,
                    wall_time_us: (t * 1e6).round() as i64,
                    name: k.clone(),
                    value: val.as_f64(),
                });
            }
        }
    }
    Ok(rows)
}

/// A [`Logger`] that collects metrics and writes them as one Parquet file (atomically) on
/// [`Logger::flush`] and when dropped. Metrics are small; the JSONL sink stays the crash-safe log.
pub struct ParquetMetricsLogger {
    path: PathBuf,
    run: String,
    rows: Vec<MetricRow>,
    written: usize,
    options: WriteOptions,
}

impl ParquetMetricsLogger {
    /// Log to `path` (usually `<run dir>/metrics.parquet`) with `run` in the `run` column.
    pub fn new(path: impl AsRef<Path>, run: &str, options: WriteOptions) -> Self {
        ParquetMetricsLogger {
            path: path.as_ref().to_path_buf(),
            run: run.to_string(),
            rows: Vec::new(),
            written: usize::MAX,
            options,
        }
    }

    /// The rows so far.
    pub fn rows(&self) -> &[MetricRow] {
        &self.rows
    }

    fn write(&mut self) -> Result<()> {
        let batch = metrics_to_batch(&self.run, &self.rows)?;
        write_parquet(&self.path, metrics_schema(), &[batch], &self.options)?;
        self.written = self.rows.len();
        Ok(())
    }
}

impl Logger for ParquetMetricsLogger {
    fn log_at(&mut self, step: u64, wall_time: f64, metrics: &[(&str, f64)]) -> rlox_core::Result<()> {
        let t = (wall_time * 1e6).round() as i64;
        for (name, v) in metrics {
            self.rows.push(MetricRow {
                step: step as i64,
                wall_time_us: t,
                name: name.to_string(),
                value: v.is_finite().then_some(*v),
            });
        }
        Ok(())
    }
    fn flush(&mut self) -> rlox_core::Result<()> {
        if self.written != self.rows.len() {
            self.write()?;
        }
        Ok(())
    }
}

impl Drop for ParquetMetricsLogger {
    fn drop(&mut self) {
        if self.written != self.rows.len() {
            let _ = self.write();
        }
    }
}

/// Convert `<run_dir>/metrics.jsonl` to `<run_dir>/metrics.parquet`; the run name is the directory's.
pub fn run_metrics_to_parquet(run_dir: impl AsRef<Path>, options: &WriteOptions) -> Result<PathBuf> {
    let dir = run_dir.as_ref();
    let run = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let rows = metrics_from_jsonl(dir.join("metrics.jsonl"))?;
    let batch = metrics_to_batch(&run, &rows)?;
    write_parquet(dir.join("metrics.parquet"), metrics_schema(), &[batch], options)
}
