//! rlox-sql: SQL over rlox run directories, rollout stores and datasets, on Apache DataFusion, with
//! Hive's `LATERAL VIEW explode` (see [`rewrite`]).
//!
//! This crate is kept out of the foundation crates' build: the `rlox` binary gets it through its
//! `sql` cargo feature (on by default: `cargo build --release -p rlox-cli`), and the workspace test
//! run builds and tests it as a member.
//!
//! ```no_run
//! let mut s = rlox_sql::Session::new(1).unwrap();
//! s.register("r", "runs/grpo-20260101-000000/rollouts").unwrap();
//! let out = s.query("SELECT prompt, avg(c.reward) FROM r LATERAL VIEW explode(completions) v AS c GROUP BY prompt").unwrap();
//! println!("{}", out.to_table().unwrap());
//! ```
//!
//! Tables: a Parquet file, a directory of Parquet files (Hive partition directories `k=v/` become
//! columns: integers when every value parses as one), a run directory (tables `metrics`, `rollouts`,
//! `episodes`), or a Hugging Face dataset directory (one table per split). Before a table is
//! registered every file's footer is read, so a truncated file or a file with a different schema is
//! an error that names the file, not a failure in the middle of a query.

pub mod rewrite;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use rlox_data::read::{file_schema, parquet_files};
use rlox_data::schema::{same_shape, type_name};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rewrite::{rewrite_to_string, RewriteError};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query does not parse or uses something that cannot run here (with its position).
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    /// A table that cannot be registered.
    #[error("table `{name}`: {why}")]
    Table {
        /// The table name.
        name: String,
        /// Why.
        why: String,
    },
    /// A data file problem (names the file).
    #[error(transparent)]
    Data(#[from] rlox_data::Error),
    /// DataFusion could not plan or run the query.
    #[error("{0}")]
    Engine(String),
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Engine(e.to_string())
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A query result.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// The result schema.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    fn all(&self) -> Vec<RecordBatch> {
        if self.batches.is_empty() {
            vec![RecordBatch::new_empty(self.schema.clone())]
        } else {
            self.batches.clone()
        }
    }

    /// An ASCII table.
    pub fn to_table(&self) -> Result<String> {
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&self.all())?.to_string())
    }

    /// CSV with a header.
    pub fn to_csv(&self) -> Result<String> {
        let mut buf = Vec::new();
        {
            let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
            for b in self.all() {
                w.write(&b)?;
            }
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The rows as a JSON array of objects whose keys follow the result's column order (and a struct's
    /// field order); NULLs are written as `null`, not left out.
    pub fn to_json(&self) -> Result<String> {
        let mut buf = Vec::new();
        {
            let mut w = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut buf);
            for b in self.all() {
                w.write(&b)?;
            }
            w.finish()?;
        }
        if buf.is_empty() {
            return Ok("[]".into());
        }
        String::from_utf8(buf).map_err(|e| Error::Engine(e.to_string()))
    }

    /// The rows as JSON values (column name → value; nested lists and structs as JSON). serde_json's
    /// objects sort their keys: use [`QueryOutput::to_json`] where the column order matters.
    pub fn to_json_rows(&self) -> Result<Vec<serde_json::Value>> {
        match serde_json::from_str(&self.to_json()?).map_err(|e| Error::Engine(e.to_string()))? {
            serde_json::Value::Array(rows) => Ok(rows),
            _ => Ok(Vec::new()),
        }
    }

    /// Write the result as Parquet with rlox-data's Hive/Spark-safe profile (unsigned integers are
    /// widened to Int64 first).
    pub fn write_parquet(&self, path: &Path) -> Result<PathBuf> {
        use datafusion::arrow::datatypes::{Field, Schema};
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                    Field::new(f.name(), DataType::Int64, f.is_nullable())
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let mut batches = Vec::new();
        for b in &self.batches {
            let cols = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            batches.push(RecordBatch::try_new(schema.clone(), cols)?);
        }
        let mut opts = rlox_data::write::WriteOptions::default();
        if rlox_data::write::check_hive_safe(&schema).is_err() {
            opts.hive_compatible = false;
        }
        Ok(rlox_data::write::write_parquet(path, schema, &batches, &opts)?)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Engine(e.to_string())
    }
}

/// A SQL session: registered tables and the engine.
pub struct Session {
    ctx: SessionContext,
    rt: tokio::runtime::Runtime,
    tables: BTreeMap<String, String>,
}

/// The Hive partition columns of the files under `root`: `(name, type)` in directory order.
fn partition_columns(root: &Path, files: &[PathBuf]) -> Result<Vec<(String, DataType)>> {
    let mut keys: Option<Vec<String>> = None;
    let mut all_int: Vec<bool> = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(f);
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for comp in rel.parent().into_iter().flat_map(|p| p.components()) {
            let c = comp.as_os_str().to_string_lossy();
            if let Some((k, v)) = c.split_once('=') {
                ks.push(k.to_string());
                vs.push(v.to_string());
            }
        }
        match &keys {
            None => {
                all_int = vec![true; ks.len()];
                keys = Some(ks);
            }
            Some(k) if *k != ks => {
                return Err(Error::Table {
                    name: root.display().to_string(),
                    why: format!("{}: partition directories {ks:?} differ from the other files' {k:?}", f.display()),
                })
            }
            _ => {}
        }
        for (i, v) in vs.iter().enumerate() {
            all_int[i] &= v.parse::<i64>().is_ok();
        }
    }
    Ok(keys
        .unwrap_or_default()
        .into_iter()
        .zip(all_int)
        .map(|(k, int)| (k, if int { DataType::Int64 } else { DataType::Utf8 }))
        .collect())
}

fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("t_{s}")
    } else {
        s
    }
}

impl Session {
    /// A session with `partitions` target partitions. Queries run on one thread (a current-thread
    /// tokio runtime: the benchmarks' setting, and no extra runtime features to build); more partitions
    /// only split the scan.
    pub fn new(partitions: usize) -> Result<Self> {
        let threads = partitions.max(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::Engine(format!("cannot start the query runtime: {e}")))?;
        let config = SessionConfig::new().with_target_partitions(threads).with_information_schema(true);
        Ok(Session { ctx: SessionContext::new_with_config(config), rt, tables: BTreeMap::new() })
    }

    /// The registered tables and where they come from.
    pub fn tables(&self) -> &BTreeMap<String, String> {
        &self.tables
    }

    fn claim(&mut self, name: &str, source: String) -> Result<()> {
        if let Some(prev) = self.tables.get(name) {
            return Err(Error::Table {
                name: name.into(),
                why: format!(
                    "already registered from {prev}; it would also come from {source}. Name one of them explicitly: --table OTHER={source}"
                ),
            });
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Table { name: name.into(), why: "table names are letters, digits and `_`".into() });
        }
        self.tables.insert(name.into(), source);
        Ok(())
    }

    /// Register Parquet data (a file or a directory, Hive partitions allowed) as `name`.
    pub fn register(&mut self, name: &str, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::Table {
                name: name.into(),
                why: format!("{}: no such file or directory", path.display()),
            });
        }
        let files = parquet_files(path)?;
        let mut first: Option<(PathBuf, SchemaRef)> = None;
        for f in &files {
            let s = file_schema(f)?;
            match &first {
                None => first = Some((f.clone(), s)),
                Some((p0, s0)) => {
                    let same = s.fields().len() == s0.fields().len()
                        && s.fields()
                            .iter()
                            .zip(s0.fields())
                            .all(|(a, b)| a.name() == b.name() && same_shape(a.data_type(), b.data_type()));
                    if !same {
                        let show = |s: &SchemaRef| {
                            s.fields()
                                .iter()
                                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        return Err(Error::Table {
                            name: name.into(),
                            why: format!(
                                "{} has a different schema ({}) from {} ({})",
                                f.display(),
                                show(&s),
                                p0.display(),
                                show(s0)
                            ),
                        });
                    }
                }
            }
        }
        let (table_path, parts) = if path.is_dir() {
            (format!("{}/", path.display().to_string().trim_end_matches('/')), partition_columns(path, &files)?)
        } else {
            (path.display().to_string(), Vec::new())
        };
        self.claim(name, path.display().to_string())?;
        let opts = ParquetReadOptions::default().table_partition_cols(parts);
        let r = self.rt.block_on(self.ctx.register_parquet(name, &table_path, opts));
        if let Err(e) = r {
            self.tables.remove(name);
            return Err(Error::Table { name: name.into(), why: format!("{}: {e}", path.display()) });
        }
        Ok(())
    }

    /// Register in-memory batches as `name`.
    pub fn register_batches(
        &mut self,
        name: &str,
        source: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        self.claim(name, source.into())?;
        let t = MemTable::try_new(schema, vec![batches])?;
        self.ctx.register_table(name, Arc::new(t))?;
        Ok(())
    }

    /// Register whatever `path` is, under automatic names; returns the names.
    ///
    /// * a run directory (has `metrics.jsonl`, `metrics.parquet` or `config.toml`): `metrics` (from
    ///   `metrics.parquet`, else converted from `metrics.jsonl`), `rollouts` and `episodes` when those
    ///   sub-directories exist;
    /// * a Hugging Face dataset directory (`data/<split>-*.parquet`): one table per split;
    /// * a Parquet file or directory: its file stem, lower-cased, other characters as `_`.
    pub fn register_auto(&mut self, path: impl AsRef<Path>) -> Result<Vec<String>> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::Table {
                name: "(automatic)".into(),
                why: format!("{}: no such file or directory", path.display()),
            });
        }
        let mut names = Vec::new();
        let is_run = ["metrics.jsonl", "metrics.parquet", "config.toml"].iter().any(|f| path.join(f).is_file());
        if path.is_dir() && is_run {
            if path.join("metrics.parquet").is_file() {
                self.register("metrics", path.join("metrics.parquet"))?;
                names.push("metrics".to_string());
            } else if path.join("metrics.jsonl").is_file() {
                let run = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let rows = rlox_data::metrics::metrics_from_jsonl(path.join("metrics.jsonl"))?;
                let b = rlox_data::metrics::metrics_to_batch(&run, &rows)?;
                self.register_batches(
                    "metrics",
                    &path.join("metrics.jsonl").display().to_string(),
                    b.schema(),
                    vec![b],
                )?;
                names.push("metrics".to_string());
            }
            for sub in ["rollouts", "episodes"] {
                if path.join(sub).is_dir() {
                    self.register(sub, path.join(sub))?;
                    names.push(sub.to_string());
                }
            }
            return Ok(names);
        }
        let data = path.join("data");
        if path.is_dir() && data.is_dir() {
            let mut splits: BTreeMap<String, ()> = BTreeMap::new();
            for f in parquet_files(&data)? {
                let stem = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let split = stem.split('-').next().unwrap_or("train").to_string();
                splits.insert(split, ());
            }
            for split in splits.keys() {
                // A split's files share a prefix; register them through a listing of just those files.
                let files: Vec<PathBuf> = parquet_files(&data)?
                    .into_iter()
                    .filter(|f| f.file_name().unwrap_or_default().to_string_lossy().starts_with(&format!("{split}-")))
                    .collect();
                let name = sanitize(split);
                if files.len() == 1 {
                    self.register(&name, &files[0])?;
                } else {
                    let mut batches = Vec::new();
                    let mut schema = None;
                    for f in &files {
                        let (s, b) = rlox_data::read::read_file(f)?;
                        schema.get_or_insert(s);
                        batches.extend(b);
                    }
                    self.register_batches(&name, &data.display().to_string(), schema.expect("files"), batches)?;
                }
                names.push(name);
            }
            return Ok(names);
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "t".into());
        let name = sanitize(&stem);
        self.register(&name, path)?;
        names.push(name);
        Ok(names)
    }

    /// Run one or more statements (Hive syntax rewritten); returns the last one's result.
    pub fn query(&self, sql: &str) -> Result<QueryOutput> {
        let stmts = rewrite::rewrite(sql)?;
        if stmts.is_empty() {
            return Err(Error::Rewrite(RewriteError::Syntax("empty query".into())));
        }
        let mut last = None;
        for stmt in stmts {
            let state = self.ctx.state();
            let out = self.rt.block_on(async {
                let plan =
                    state.statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
                let df = self.ctx.execute_logical_plan(plan).await?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await?;
                Ok::<_, datafusion::error::DataFusionError>(QueryOutput { schema, batches })
            })?;
            last = Some(out);
        }
        Ok(last.expect("at least one statement"))
    }
}
