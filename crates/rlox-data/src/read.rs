//! Readers: find the Parquet files of a path, read them with errors that name the file, and check
//! their columns against what a record kind needs.

use crate::records::{self, Preference, Prompt, RolloutGroup};
use crate::schema::{same_shape, type_name};
use crate::{Error, Result};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The Parquet files under `path`: the file itself, or every `*.parquet` below a directory (sorted,
/// skipping hidden and `_`-prefixed entries such as `_SUCCESS` and in-progress temporary files).
pub fn parquet_files(path: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::invalid("input", format!("{}: no .parquet files in this directory", path.display())));
    }
    Ok(out)
}

/// The Arrow schema stored in one file (reads only the footer).
pub fn file_schema(path: impl AsRef<Path>) -> Result<SchemaRef> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| Error::parquet(path, e))?;
    Ok(builder.schema().clone())
}

/// Read one file whole.
pub fn read_file(path: impl AsRef<Path>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| Error::parquet(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| Error::parquet(path, e))?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::parquet(path, e))?;
    Ok((schema, batches))
}

/// Check that `found` (the schema of `path`) has every `(column, type)` in `required`; `None` means any
/// type.
pub fn check_columns(
    path: &Path,
    found: &Schema,
    required: &[(&str, Option<DataType>)],
    kind: &'static str,
) -> Result<()> {
    for (name, ty) in required {
        match found.field_with_name(name) {
            Err(_) => {
                let have: Vec<&str> = found.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::Schema {
                    path: path.to_path_buf(),
                    kind,
                    message: format!("missing column `{name}` (the file has: {})", have.join(", ")),
                });
            }
            Ok(f) => {
                if let Some(t) = ty {
                    if !same_shape(f.data_type(), t) {
                        return Err(Error::Schema {
                            path: path.to_path_buf(),
                            kind,
                            message: format!(
                                "column `{name}` is {}, expected {}",
                                type_name(f.data_type()),
                                type_name(t)
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn read_kind(
    path: &Path,
    required: &[(&str, Option<DataType>)],
    kind: &'static str,
) -> Result<Vec<(PathBuf, Vec<RecordBatch>)>> {
    parquet_files(path)?
        .into_iter()
        .map(|p| {
            let (schema, batches) = read_file(&p)?;
            check_columns(&p, &schema, required, kind)?;
            Ok((p, batches))
        })
        .collect()
}

/// Read a preference dataset (a file, a directory of files, or a Hugging Face dataset directory).
pub fn read_preferences(path: impl AsRef<Path>) -> Result<Vec<Preference>> {
    let s = Some(DataType::Utf8);
    let req = [("prompt", s.clone()), ("chosen", s.clone()), ("rejected", s)];
    let mut out = Vec::new();
    for (_, batches) in read_kind(path.as_ref(), &req, "preference dataset")? {
        for b in &batches {
            out.extend(records::preferences_from_batch(b)?);
        }
    }
    Ok(out)
}

/// Read a prompt-only dataset.
pub fn read_prompts(path: impl AsRef<Path>) -> Result<Vec<Prompt>> {
    let req = [("prompt", Some(DataType::Utf8))];
    let mut out = Vec::new();
    for (_, batches) in read_kind(path.as_ref(), &req, "prompt dataset")? {
        for b in &batches {
            out.extend(records::prompts_from_batch(b)?);
        }
    }
    Ok(out)
}

/// The `step=<n>` partition value in a path, if any.
pub fn partition_value(path: &Path, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    path.ancestors().filter_map(|a| a.file_name()).find_map(|n| n.to_str()?.strip_prefix(&prefix).map(str::to_string))
}

/// Read rollout groups from a file or a Hive-partitioned store; returns the reward names and groups.
pub fn read_rollouts(path: impl AsRef<Path>) -> Result<(Vec<String>, Vec<RolloutGroup>)> {
    let req = [("prompt", Some(DataType::Utf8)), ("completions", None)];
    let mut names = Vec::new();
    let mut out = Vec::new();
    for (p, batches) in read_kind(path.as_ref(), &req, "rollouts")? {
        let step = partition_value(&p, "step").and_then(|s| s.parse().ok()).unwrap_or(0);
        for b in &batches {
            let (n, groups) = records::rollouts_from_batch(b, step).map_err(|e| Error::Schema {
                path: p.clone(),
                kind: "rollouts",
                message: e.to_string(),
            })?;
            names = n;
            out.extend(groups);
        }
    }
    Ok((names, out))
}
