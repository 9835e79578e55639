//! rlox-data: datasets, rollouts, episodes and training metrics as Parquet.
//!
//! The files are meant to be read by more than rlox: by Apache Spark and Hive when a user outgrows one
//! machine, by pandas/DuckDB/Polars for quick looks, and by Hugging Face `datasets.load_dataset`.
//! So every writer here uses one *Hive/Spark-safe profile* ([`write::WriteOptions`]):
//!
//! * lists are written with the spec-compliant three-level layout and element names
//!   (`<col> (LIST) { repeated group list { element } }`, arrow-rs `set_coerce_types(true)`), which is
//!   what Hive's `ParquetHiveSerDe` and Spark expect;
//! * integers are signed (`INT64`, `INT32`): Hive has no unsigned types;
//! * timestamps are plain `INT64` epoch microseconds (`wall_time_us`): Hive before 3.x cannot read
//!   the `TIMESTAMP(MICROS)` logical type and Spark's INT96 default is deprecated;
//! * compression is zstd (default) or snappy, both of which every reader has;
//! * partitioned stores use Hive-style directories: `run=<name>/step=<n>/part-00000.parquet`, and the
//!   partition columns are *not* repeated inside the files (Hive rejects a table whose partition
//!   column is also a data column).
//!
//! | record | schema | writer / reader |
//! |---|---|---|
//! | preference pair (TRL) | `prompt, chosen, rejected` | [`records::preferences_to_batch`], [`read::read_preferences`] |
//! | prompt-only | `prompt, answer?` | [`records::prompts_to_batch`], [`read::read_prompts`] |
//! | GRPO rollout group | `run, step, prompt, completions: list<struct<text, num_tokens, rewards: struct<..>, reward, advantage>>` | [`rollouts::RolloutStore`], [`read::read_rollouts`] |
//! | RL episode | `run, episode, return, length, terminated, truncated, transitions: list<struct<t, obs, action, reward>>` | [`records::episodes_to_batch`]; recorded while training by [`episodes::EpisodeRecorder`] |
//! | env steps from rollout workers | `worker, env, t, obs, action, reward, terminated, truncated` under `run=/step=/part-<worker>` | [`env_steps::EnvStepStore`] |
//! | training metric (long format) | `run, step, wall_time_us, name, value` | [`metrics::ParquetMetricsLogger`], [`metrics::metrics_from_jsonl`] |
//!
//! Datasets can also be laid out like a Hugging Face dataset repository ([`hf`]):
//! `data/train-00000-of-00001.parquet` plus a `README.md` whose YAML front matter declares the
//! configs, features and splits, so `datasets.load_dataset("path/to/dir")` reads it.
//!
//! Every reader error names the file: a truncated file, a file that is not Parquet, a column that is
//! missing or has the wrong type.

pub mod env_steps;
pub mod episodes;
pub mod error;
pub mod hf;
pub mod metrics;
pub mod read;
pub mod records;
pub mod rollouts;
pub mod schema;
pub mod write;

pub use error::{Error, Result};
