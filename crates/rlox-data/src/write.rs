//! The Hive/Spark-safe Parquet writer profile, atomic file writes, and Hive partition directories.

use crate::{Error, Result};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd at the given level (1..=22); 3 is zstd's own default.
    Zstd(i32),
    /// Snappy: faster, larger; the Hive/Spark default.
    Snappy,
    /// No compression.
    None,
}

/// How files are written. The default is the Hive/Spark-safe profile with zstd level 3.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Page compression.
    pub compression: Compression,
    /// Rows per row group (a unit of parallelism for Spark, a unit of memory for the writer).
    pub max_row_group_rows: usize,
    /// Refuse schemas that Hive cannot read (unsigned integers, timestamps, f16, ...) and write lists
    /// with spec-compliant names. Leave on unless a reader needs arrow-rs's legacy layout.
    pub hive_compatible: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { compression: Compression::Zstd(3), max_row_group_rows: 65_536, hive_compatible: true }
    }
}

/// The parquet-rs writer properties of `opts`.
pub fn writer_properties(opts: &WriteOptions) -> Result<WriterProperties> {
    let compression = match opts.compression {
        Compression::Zstd(level) => {
            PqCompression::ZSTD(ZstdLevel::try_new(level).map_err(|e| Error::invalid("zstd level", e.to_string()))?)
        }
        Compression::Snappy => PqCompression::SNAPPY,
        Compression::None => PqCompression::UNCOMPRESSED,
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(opts.max_row_group_rows.max(1)))
        // `<col> (LIST) { repeated group list { <type> element } }`: the names the Parquet spec, Hive and
        // Spark use (arrow-rs otherwise writes `item`).
        .set_coerce_types(opts.hive_compatible)
        .set_created_by(format!("rlox-data {} (parquet-rs)", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Check that every column of `schema` is a type Hive and Spark read: signed integers, floats,
/// booleans, strings, binary, lists, structs and maps of those.
pub fn check_hive_safe(schema: &Schema) -> Result<()> {
    fn check(path: &str, t: &DataType) -> std::result::Result<(), String> {
        use DataType::*;
        match t {
            Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Binary
            | LargeBinary
            | Date32
            | Decimal128(_, _) => Ok(()),
            UInt8 | UInt16 | UInt32 | UInt64 => {
                Err(format!("column {path} is {t}: Hive has no unsigned integers; use a signed type (Int64)"))
            }
            Timestamp(_, _) | Date64 | Time32(_) | Time64(_) | Duration(_) | Interval(_) => Err(format!(
                "column {path} is {t}: write times as Int64 epoch microseconds (a `_us` column) for Hive/Spark"
            )),
            List(f) | LargeList(f) => check(&format!("{path}.element"), f.data_type()),
            Struct(fs) => fs.iter().try_for_each(|f| check(&format!("{path}.{}", f.name()), f.data_type())),
            Map(f, _) => check(&format!("{path}.entries"), f.data_type()),
            other => Err(format!("column {path} is {other}, which Hive cannot read")),
        }
    }
    for f in schema.fields() {
        check(f.name(), f.data_type()).map_err(|why| Error::invalid("schema for Hive/Spark", why))?;
    }
    Ok(())
}

/// A Parquet file being written. Rows go to a hidden temporary file beside the target, which
/// [`ParquetFile::finish`] closes, syncs and renames into place: a reader never sees a half-written
/// file, and a crashed writer leaves no file with the final name.
pub struct ParquetFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: usize,
}

impl ParquetFile {
    /// Start writing `path` with `schema`.
    pub fn create(path: impl AsRef<Path>, schema: SchemaRef, opts: &WriteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if opts.hive_compatible {
            check_hive_safe(&schema)?;
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        // Hidden (leading dot): Spark, Hive and DataFusion skip it while it is being written.
        let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let writer =
            ArrowWriter::try_new(file, schema, Some(writer_properties(opts)?)).map_err(|e| Error::parquet(&path, e))?;
        Ok(ParquetFile { path, tmp, writer: Some(writer), rows: 0 })
    }

    /// Append a batch (its schema must be the file's).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let w = self.writer.as_mut().expect("write after finish");
        w.write(batch).map_err(|e| Error::parquet(&self.path, e))?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Close the file and move it into place; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let w = self.writer.take().expect("finish twice");
        let file = w.into_inner().map_err(|e| Error::parquet(&self.path, e))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path.clone())
    }
}

impl Drop for ParquetFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Write `batches` (all with `schema`) to `path` in one go.
pub fn write_parquet(
    path: impl AsRef<Path>,
    schema: SchemaRef,
    batches: &[RecordBatch],
    opts: &WriteOptions,
) -> Result<PathBuf> {
    let mut f = ParquetFile::create(path, schema, opts)?;
    for b in batches {
        f.write(b)?;
    }
    f.finish()
}

/// Escape a partition value the way Hive does (`FileUtils.escapePathName`): `%XX` for the characters
/// that cannot appear in a path segment.
pub fn escape_partition_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        let special = c.is_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\x7f' | '{' | '[' | ']' | '^'
            );
        if special {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        "__HIVE_DEFAULT_PARTITION__".into()
    } else {
        out
    }
}

/// `root/k1=v1/k2=v2` with Hive escaping of the values.
pub fn partition_dir(root: impl AsRef<Path>, keys: &[(&str, String)]) -> PathBuf {
    let mut p = root.as_ref().to_path_buf();
    for (k, v) in keys {
        p.push(format!("{k}={}", escape_partition_value(v)));
    }
    p
}

/// The next free `part-NNNNN.parquet` in `dir`.
pub fn next_part_path(dir: &Path) -> PathBuf {
    (0..).map(|i| dir.join(format!("part-{i:05}.parquet"))).find(|p| !p.exists()).expect("unbounded range")
}
