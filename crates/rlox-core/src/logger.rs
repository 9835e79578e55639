//! Metric logging: one [`Logger`] trait, several sinks.
//!
//! * [`JsonlLogger`]: one JSON object per call (`{"step": .., "wall_time": .., "<name>": value, ..}`);
//!   non-finite values are written as `null`.
//! * [`CsvLogger`]: long format `step,wall_time,name,value`, which never needs a header rewrite when
//!   a new metric appears (pivot it in pandas or SQL).
//! * [`TensorBoardLogger`]: TensorBoard event files (`events.out.tfevents.*`) holding scalar
//!   summaries. The format is small: TFRecord framing with masked CRC-32C, and two protobuf messages
//!   (`Event`, `Summary`) that we encode by hand.
//! * [`ProgressLogger`]: an indicatif progress bar on stderr for long runs (hidden when stderr is not
//!   a terminal).
//! * [`MultiLogger`]: fans out to several sinks.

use crate::checkpoint::create_parent;
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A sink for scalar metrics.
pub trait Logger {
    /// Record `metrics` at `step` (an environment step, gradient step or iteration: the trainer says which).
    fn log(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        self.log_at(step, wall_time(), metrics)
    }
    /// [`Logger::log`] with the wall time (seconds since the Unix epoch) given: a resumed run replays
    /// the records written before the interruption with their original times.
    fn log_at(&mut self, step: u64, wall_time: f64, metrics: &[(&str, f64)]) -> Result<()>;
    /// Push buffered records to disk.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn open(path: &Path) -> Result<BufWriter<File>> {
    create_parent(path)?;
    File::create(path).map(BufWriter::new).map_err(|e| Error::io(path, e))
}

/// Metrics as JSON lines.
pub struct JsonlLogger {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlLogger {
    /// Create (truncate) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        Ok(JsonlLogger { out: open(&path)?, path })
    }
}

impl Logger for JsonlLogger {
    fn log_at(&mut self, step: u64, wall_time: f64, metrics: &[(&str, f64)]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        obj.insert("wall_time".into(), wall_time.into());
        for (k, v) in metrics {
            let value =
                serde_json::Number::from_f64(*v).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null);
            obj.insert((*k).to_string(), value);
        }
        serde_json::to_writer(&mut self.out, &obj).map_err(|e| Error::io(&self.path, e.into()))?;
        self.out.write_all(b"\n").map_err(|e| Error::io(&self.path, e))
    }
    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Metrics as long-format CSV: `step,wall_time,name,value`.
pub struct CsvLogger {
    path: PathBuf,
    out: BufWriter<File>,
}

impl CsvLogger {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut out = open(&path)?;
        out.write_all(b"step,wall_time,name,value\n").map_err(|e| Error::io(&path, e))?;
        Ok(CsvLogger { out, path })
    }
}

impl Logger for CsvLogger {
    fn log_at(&mut self, step: u64, t: f64, metrics: &[(&str, f64)]) -> Result<()> {
        for (k, v) in metrics {
            // Metric names are identifiers chosen by trainers; quote them anyway if a comma sneaks in.
            let name = if k.contains(',') || k.contains('"') {
                format!("\"{}\"", k.replace('"', "\"\""))
            } else {
                k.to_string()
            };
            writeln!(self.out, "{step},{t:.6},{name},{v}").map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// TensorBoard scalar summaries in an event file.
pub struct TensorBoardLogger {
    path: PathBuf,
    out: BufWriter<File>,
}

impl TensorBoardLogger {
    /// Create a new event file inside `dir` (named like TensorFlow's: `events.out.tfevents.<secs>.<host>.rlox`).
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let secs = wall_time() as u64;
        let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{}.rlox", std::process::id()));
        let mut logger = TensorBoardLogger { out: open(&path)?, path };
        let mut ev = Vec::new();
        encode_event_header(&mut ev, wall_time(), 0);
        put_bytes(&mut ev, 3, b"brain.Event:2");
        logger.write_record(&ev)?;
        logger.flush()?;
        Ok(logger)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(data.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        rec.extend_from_slice(data);
        rec.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out.write_all(&rec).map_err(|e| Error::io(&self.path, e))
    }
}

impl Logger for TensorBoardLogger {
    fn log_at(&mut self, step: u64, wall_time: f64, metrics: &[(&str, f64)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, v) in metrics {
            let mut value = Vec::new();
            put_bytes(&mut value, 1, tag.as_bytes());
            // Summary.Value.simple_value: field 2, wire type 5 (32-bit float).
            value.push((2 << 3) | 5);
            value.extend_from_slice(&(*v as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &value);
        }
        let mut ev = Vec::new();
        encode_event_header(&mut ev, wall_time, step as i64);
        put_bytes(&mut ev, 5, &summary);
        self.write_record(&ev)
    }
    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// `Event.wall_time` (field 1, double) and `Event.step` (field 2, int64).
fn encode_event_header(buf: &mut Vec<u8>, wall_time: f64, step: i64) {
    buf.push((1 << 3) | 1);
    buf.extend_from_slice(&wall_time.to_le_bytes());
    buf.push(2 << 3);
    put_varint(buf, step as u64);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(buf, ((field << 3) | 2) as u64);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// TFRecord's masked CRC-32C.
fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// A progress bar over a known number of steps, showing the latest metrics.
pub struct ProgressLogger {
    bar: indicatif::ProgressBar,
    shown: Vec<String>,
}

impl ProgressLogger {
    /// A bar to `total` steps that shows the metrics named in `shown` (all when empty).
    pub fn new(total: u64, shown: &[&str]) -> Self {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        ProgressLogger { bar, shown: shown.iter().map(|s| s.to_string()).collect() }
    }

    /// A bar that draws nothing (for `--format json` or tests).
    pub fn hidden() -> Self {
        ProgressLogger { bar: indicatif::ProgressBar::hidden(), shown: Vec::new() }
    }
}

impl Logger for ProgressLogger {
    fn log_at(&mut self, step: u64, _: f64, metrics: &[(&str, f64)]) -> Result<()> {
        self.bar.set_position(step);
        let msg: Vec<String> = metrics
            .iter()
            .filter(|(k, _)| self.shown.is_empty() || self.shown.iter().any(|s| s == k))
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        self.bar.set_message(msg.join(" "));
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Drop for ProgressLogger {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Several sinks at once.
#[derive(Default)]
pub struct MultiLogger {
    sinks: Vec<Box<dyn Logger>>,
}

impl MultiLogger {
    /// No sinks.
    pub fn new() -> Self {
        MultiLogger { sinks: Vec::new() }
    }

    /// Add a sink.
    pub fn with(mut self, sink: impl Logger + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }
}

impl Logger for MultiLogger {
    fn log_at(&mut self, step: u64, wall_time: f64, metrics: &[(&str, f64)]) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.log_at(step, wall_time, metrics))
    }
    fn flush(&mut self) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.flush())
    }
}

/// One line of `metrics.jsonl` read back: step, wall time and the metrics (NaN where `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The step.
    pub step: u64,
    /// Seconds since the Unix epoch when it was logged.
    pub wall_time: f64,
    /// Name and value, in the order they were logged.
    pub metrics: Vec<(String, f64)>,
}

impl Record {
    /// Log this record again (with its original time) into `logger`.
    pub fn replay(&self, logger: &mut dyn Logger) -> Result<()> {
        let m: Vec<(&str, f64)> = self.metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        logger.log_at(self.step, self.wall_time, &m)
    }
}

/// The records of a `metrics.jsonl`, in order. A last line cut short by a killed process is dropped;
/// a malformed line elsewhere is an error naming the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let parsed: std::result::Result<serde_json::Map<String, serde_json::Value>, _> = serde_json::from_str(line);
        let obj = match parsed {
            Ok(o) => o,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(Error::invalid(format!("{} line {}", path.display(), i + 1), e.to_string())),
        };
        let step = obj.get("step").and_then(|v| v.as_u64()).unwrap_or(0);
        let wall_time = obj.get("wall_time").and_then(|v| v.as_f64()).unwrap_or(0.0);
        // serde_json's map keeps keys sorted, as the line was written.
        let metrics = obj
            .iter()
            .filter(|(k, _)| *k != "step" && *k != "wall_time")
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        out.push(Record { step, wall_time, metrics });
    }
    Ok(out)
}

/// A logger that counts the records passed through it (a trainer's checkpoint keeps the count, so a
/// resumed run can cut the metrics files back to what was logged before the checkpoint).
pub struct Counted<'a> {
    inner: &'a mut dyn Logger,
    /// Records logged (including any counted before this wrapper was made).
    pub count: u64,
}

impl<'a> Counted<'a> {
    /// Count the records passed to `inner`, starting at `count`.
    pub fn new(inner: &'a mut dyn Logger, count: u64) -> Self {
        Counted { inner, count }
    }
}

impl Logger for Counted<'_> {
    fn log_at(&mut self, step: u64, wall_time: f64, metrics: &[(&str, f64)]) -> Result<()> {
        self.count += 1;
        self.inner.log_at(step, wall_time, metrics)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

/// A logger that keeps everything in memory (tests, and trainers that return histories).
#[derive(Debug, Default, Clone)]
pub struct MemoryLogger {
    /// `(step, name, value)` in logging order.
    pub records: Vec<(u64, String, f64)>,
}

impl MemoryLogger {
    /// The `(step, value)` series of one metric.
    pub fn series(&self, name: &str) -> Vec<(u64, f64)> {
        self.records.iter().filter(|(_, k, _)| k == name).map(|(s, _, v)| (*s, *v)).collect()
    }
}

impl Logger for MemoryLogger {
    fn log_at(&mut self, step: u64, _: f64, metrics: &[(&str, f64)]) -> Result<()> {
        self.records.extend(metrics.iter().map(|(k, v)| (step, k.to_string(), *v)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow_reference() {
        // crc32c("") = 0; TFRecord masks it to 0xa282ead8.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        // crc32c("123456789") = 0xe3069283 (the CRC-32C check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn varint_encoding() {
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, vec![0xac, 0x02]);
    }

    #[test]
    fn jsonl_and_csv_write_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = JsonlLogger::create(dir.path().join("m.jsonl")).unwrap();
        j.log(3, &[("loss", 0.5), ("bad", f64::NAN)]).unwrap();
        j.flush().unwrap();
        let line = std::fs::read_to_string(dir.path().join("m.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["step"], 3);
        assert_eq!(v["loss"], 0.5);
        assert!(v["bad"].is_null());
        let mut c = CsvLogger::create(dir.path().join("m.csv")).unwrap();
        c.log(1, &[("a", 1.0), ("b", 2.0)]).unwrap();
        c.flush().unwrap();
        let text = std::fs::read_to_string(dir.path().join("m.csv")).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(2).unwrap().ends_with(",b,2"));
    }

    #[test]
    fn tensorboard_records_are_framed() {
        let dir = tempfile::tempdir().unwrap();
        let mut tb = TensorBoardLogger::create(dir.path()).unwrap();
        tb.log(7, &[("x", 1.5)]).unwrap();
        tb.flush().unwrap();
        let bytes = std::fs::read(tb.path()).unwrap();
        // Walk the records and check both CRCs of each.
        let mut pos = 0;
        let mut n = 0;
        while pos < bytes.len() {
            let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
            let crc_len = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(crc_len, masked_crc32c(&bytes[pos..pos + 8]));
            let data = &bytes[pos + 12..pos + 12 + len];
            let crc_data = u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap());
            assert_eq!(crc_data, masked_crc32c(data));
            pos += 16 + len;
            n += 1;
        }
        assert_eq!(n, 2);
    }
}
