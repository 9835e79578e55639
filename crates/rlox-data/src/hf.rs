//! Hugging Face `datasets` layout: `data/<split>-00000-of-00001.parquet` and a `README.md` whose YAML
//! front matter declares the configuration, the features and the splits, as on the Hub. Then
//! `datasets.load_dataset("<dir>")` reads the directory (locally, no network) with the right features.

use crate::read::{parquet_files, read_file};
use crate::write::{write_parquet, WriteOptions};
use crate::{Error, Result};
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The `datasets` feature of an Arrow type, as YAML lines at `indent`.
fn feature_yaml(out: &mut String, name: Option<&str>, t: &DataType, indent: usize) -> Result<()> {
    let pad = " ".repeat(indent);
    let head = match name {
        Some(n) => format!("{pad}- name: {n}\n{pad}  "),
        None => format!("{pad}  "),
    };
    let dtype = match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string",
        DataType::Int64 => "int64",
        DataType::Int32 => "int32",
        DataType::Float64 => "float64",
        DataType::Float32 => "float32",
        DataType::Boolean => "bool",
        DataType::List(f) | DataType::LargeList(f) => {
            out.push_str(&head);
            out.push_str("list:\n");
            match f.data_type() {
                DataType::Struct(fs) => {
                    for g in fs {
                        feature_yaml(out, Some(g.name()), g.data_type(), indent + 2)?;
                    }
                }
                other => {
                    // A list of a scalar: `list: <dtype>`.
                    out.truncate(out.len() - 1);
                    let _ = writeln!(out, " {}", scalar_dtype(other)?);
                }
            }
            return Ok(());
        }
        DataType::Struct(fs) => {
            out.push_str(&head);
            out.push_str("struct:\n");
            for g in fs {
                feature_yaml(out, Some(g.name()), g.data_type(), indent + 2)?;
            }
            return Ok(());
        }
        other => return Err(Error::invalid("dataset feature", format!("{other} has no datasets feature here"))),
    };
    let _ = writeln!(out, "{head}dtype: {dtype}");
    Ok(())
}

fn scalar_dtype(t: &DataType) -> Result<&'static str> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string",
        DataType::Int64 => "int64",
        DataType::Int32 => "int32",
        DataType::Float64 => "float64",
        DataType::Float32 => "float32",
        DataType::Boolean => "bool",
        other => return Err(Error::invalid("dataset feature", format!("list of {other}"))),
    })
}

/// The README front matter for `schema` and `(split, rows, bytes)`.
pub fn readme(name: &str, schema: &Schema, splits: &[(String, usize, u64)]) -> Result<String> {
    let mut y = String::from("---\nconfigs:\n- config_name: default\n  data_files:\n");
    for (s, _, _) in splits {
        let _ = writeln!(y, "  - split: {s}\n    path: data/{s}-*");
    }
    y.push_str("dataset_info:\n  features:\n");
    for f in schema.fields() {
        feature_yaml(&mut y, Some(f.name()), f.data_type(), 2)?;
    }
    y.push_str("  splits:\n");
    for (s, n, bytes) in splits {
        let _ = writeln!(y, "  - name: {s}\n    num_bytes: {bytes}\n    num_examples: {n}");
    }
    y.push_str("---\n\n");
    let _ =
        writeln!(y, "# {name}\n\nWritten by rlox-data. Load it with `datasets.load_dataset(\"<this directory>\")`,");
    y.push_str("query it with `rlox sql \"SELECT * FROM train LIMIT 5\" --table train=<this directory>/data`.\n");
    Ok(y)
}

/// Write a dataset directory with one Parquet file per split (`splits` as `(name, batches)`; every
/// batch with `schema`). Returns the files written.
pub fn write_hf_dataset(
    dir: impl AsRef<Path>,
    name: &str,
    schema: arrow::datatypes::SchemaRef,
    splits: &[(&str, Vec<RecordBatch>)],
    options: &WriteOptions,
) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let mut files = Vec::new();
    let mut info = Vec::new();
    for (split, batches) in splits {
        if split.is_empty() || !split.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid("split name", format!("`{split}`: letters, digits and `_`")));
        }
        let p = dir.join("data").join(format!("{split}-00000-of-00001.parquet"));
        let p = write_parquet(&p, schema.clone(), batches, options)?;
        let bytes = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
        info.push((split.to_string(), batches.iter().map(|b| b.num_rows()).sum(), bytes));
        files.push(p);
    }
    let text = readme(name, &schema, &info)?;
    rlox_core::checkpoint::atomic_write(dir.join("README.md"), text.as_bytes())
        .map_err(|e| Error::invalid("README.md", e.to_string()))?;
    Ok(files)
}

/// Read one split of a dataset directory written by [`write_hf_dataset`] (or downloaded from the Hub
/// in Parquet form).
pub fn read_hf_split(dir: impl AsRef<Path>, split: &str) -> Result<Vec<RecordBatch>> {
    let data = dir.as_ref().join("data");
    let prefix = format!("{split}-");
    let mut out = Vec::new();
    let files: Vec<PathBuf> = parquet_files(&data)?
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    if files.is_empty() {
        return Err(Error::invalid("split", format!("{}: no files for split `{split}`", data.display())));
    }
    for f in files {
        out.extend(read_file(&f)?.1);
    }
    Ok(out)
}
