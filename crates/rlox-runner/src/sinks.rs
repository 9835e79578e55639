//! What every training run writes through rlox-data besides its JSONL/CSV/TensorBoard metrics:
//! `metrics.parquet` (long format: run, step, wall_time_us, name, value) and, for the deep-RL
//! trainers, `episodes/part-00000.parquet` (one row per training episode with its list of transitions).
//! Both use the Hive/Spark-safe profile, so `rlox sql --table runs/<run>` (with the `sql` feature),
//! DuckDB and Spark read them as they are.

use rlox_core::logger::MultiLogger;
use rlox_core::run::RunDir;
use rlox_data::episodes::EpisodeSink;
use rlox_data::metrics::ParquetMetricsLogger;
use rlox_data::write::WriteOptions;
use std::path::PathBuf;

/// The run's name as written into the `run` column (its directory name).
pub fn run_name(run: &RunDir) -> String {
    run.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The run's standard logger plus a Parquet copy of every metric (`metrics.parquet`, written on flush).
pub fn run_logger(run: &RunDir, total_steps: u64, progress: bool) -> anyhow::Result<MultiLogger> {
    Ok(run.standard_logger(total_steps, progress)?.with(ParquetMetricsLogger::new(
        run.path().join("metrics.parquet"),
        &run_name(run),
        WriteOptions::default(),
    )))
}

/// Write the episodes recorded in `sink` to `<run>/episodes/part-<NNNNN>.parquet` (a directory, so
/// that it is a table location for Spark and Hive, and `rlox sql --table <run>` registers it as
/// `episodes`), one part per session of the run (a resumed run adds a part with the episodes it
/// finished); `None` when there were none.
pub fn write_episodes(run: &RunDir, sink: &EpisodeSink) -> anyhow::Result<Option<PathBuf>> {
    if sink.is_empty() {
        return Ok(None);
    }
    let dir = run.path().join("episodes");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let mut k = 0;
    while dir.join(format!("part-{k:05}.parquet")).exists() {
        k += 1;
    }
    Ok(Some(sink.write(dir.join(format!("part-{k:05}.parquet")), &run_name(run), &WriteOptions::default())?))
}
