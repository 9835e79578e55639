//! Datasets in TRL's conventions, from JSON Lines, JSON arrays or Parquet, and their tokenisation.
//!
//! Every row is read into a JSON object first (Parquet columns are converted: strings, numbers, lists,
//! structs), so one code path handles both formats and every error names the row: `data.jsonl:7` (the
//! line) or `data.parquet row 6` (0-based row across the file's record batches).
//!
//! The column layouts (TRL's "standard" and "conversational" forms):
//!
//! | kind | columns |
//! |---|---|
//! | language modelling (SFT) | `text`, or `messages: [{role, content}]` |
//! | prompt-completion (SFT) | `prompt`, `completion` (strings, or message lists) |
//! | preference (DPO, reward model) | `prompt`, `chosen`, `rejected`; or only `chosen`, `rejected` (implicit prompt) |
//! | prompt-only (GRPO) | `prompt`; every other column (e.g. `answer`, `numbers`, `target`) is passed to the reward functions |
//!
//! An implicit prompt is the longest common prefix of `chosen` and `rejected`: for strings the common
//! characters (cut back to the last whitespace so no word is split), for message lists the common messages.
//!
//! Conversational rows are rendered with the tokenizer's chat template: the prompt with the
//! assistant header (`add_generation_prompt`), the completion as the rest of the rendered conversation.
//! A tokenizer without a chat template is an error, as is a rendered conversation whose prompt part is
//! not a prefix of the whole. Plain-text completions get the EOS token appended (as TRL does); a
//! rendered conversation already ends with the template's end-of-turn token.
//!
//! Truncation: `max_prompt_length` keeps the *last* prompt tokens (the end of a prompt is what the
//! completion answers), `max_completion_length` keeps the first completion tokens, and `max_length`
//! then drops completion tokens from the end (and prompt tokens from the start if the prompt alone is too
//! long). Empty completions (zero tokens before EOS) are errors naming the row and column: a pair with
//! an empty side gives an undefined length-normalised loss and usually means a broken export.

use crate::{Error, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use rlox_lm::{ChatMessage, LmTokenizer};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One dataset row as a JSON object.
pub type Row = Map<String, Value>;

/// Rows with where each came from.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The rows.
    pub rows: Vec<Row>,
    /// `file:line` or `file row N`, one per row.
    pub locations: Vec<String>,
    /// The directory of each row's file (relative image paths are resolved there); rows given in memory
    /// have none and resolve against the working directory.
    pub dirs: Vec<PathBuf>,
}

impl Dataset {
    /// Rows given in memory (locations `row N`).
    pub fn from_rows(rows: Vec<Row>) -> Self {
        let locations = (0..rows.len()).map(|i| format!("row {i}")).collect();
        Dataset { rows, locations, dirs: Vec::new() }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A dataset by path or by name, as TRL's `dataset_name` and `dataset_train_split` take it:
    ///
    /// * a file (`.jsonl`, `.json`, `.parquet`) or a directory of Parquet files: read as [`Dataset::load`];
    /// * a Hugging Face dataset directory (`data/<split>-*.parquet`, as the Hub and `datasets.save_to_disk`
    ///   in Parquet form lay it out, or `<split>-*.parquet` / `<split>.jsonl` at its top): the `split` rows;
    /// * a Hub id (`org/name`) already in the local Hugging Face cache (`$HF_HUB_CACHE`, else
    ///   `$HF_HOME/hub`, else `~/.cache/huggingface/hub`): its snapshot, read as a dataset directory.
    ///
    /// rlox never downloads: an id that is not cached is an error that says where it looked.
    pub fn open(name_or_path: &Path, split: &str) -> Result<Self> {
        if name_or_path.as_os_str().is_empty() {
            return Err(Error::invalid(
                "dataset",
                "no dataset given: set `dataset_name` (or `train_file`) to a file, a directory or a cached Hub id",
            ));
        }
        if name_or_path.is_file() {
            return Dataset::load(name_or_path);
        }
        if name_or_path.is_dir() {
            return match split_files(name_or_path, split)? {
                Some(files) => Dataset::load_files(&files),
                None => Dataset::load(name_or_path),
            };
        }
        let id = name_or_path.to_string_lossy();
        let hub = hub_cache_dir();
        let repo = hub.join(format!("datasets--{}", id.replace('/', "--")));
        if let Some(snapshot) = cached_snapshot(&repo) {
            return match split_files(&snapshot, split)? {
                Some(files) => Dataset::load_files(&files),
                None => Err(Error::invalid(
                    format!("dataset {id}"),
                    format!("the cached snapshot {} has no files for split `{split}`", snapshot.display()),
                )),
            };
        }
        Err(Error::invalid(
            format!("dataset {id}"),
            format!(
                "no such file or directory, and not in the Hugging Face cache ({}); rlox does not download \
                 datasets: give a path, or fetch it first (`huggingface-cli download --repo-type dataset {id}`)",
                repo.display()
            ),
        ))
    }

    fn load_files(files: &[PathBuf]) -> Result<Self> {
        let mut ds = Dataset::default();
        for f in files {
            let part = Dataset::load(f)?;
            ds.rows.extend(part.rows);
            ds.locations.extend(part.locations);
            ds.dirs.extend(part.dirs);
        }
        Ok(ds)
    }

    /// Read `.jsonl`, `.json` (an array of objects) or Parquet (a `.parquet` file or a directory of them).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut ds = Self::load_rows(path)?;
        let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new("")) };
        ds.dirs = vec![dir.to_path_buf(); ds.len()];
        Ok(ds)
    }

    fn load_rows(path: &Path) -> Result<Self> {
        let name = path.to_string_lossy();
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            load_jsonl(path)
        } else if name.ends_with(".json") {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::invalid(path.display().to_string(), format!("not JSON: {e}")))?;
            let arr = v.as_array().ok_or_else(|| {
                Error::invalid(path.display().to_string(), "expected a JSON array of row objects (or use .jsonl)")
            })?;
            let mut ds = Dataset::default();
            for (i, r) in arr.iter().enumerate() {
                let obj = r.as_object().ok_or_else(|| {
                    Error::invalid(format!("{} row {i}", path.display()), "a row must be a JSON object")
                })?;
                ds.rows.push(obj.clone());
                ds.locations.push(format!("{} row {i}", path.display()));
            }
            Ok(ds)
        } else {
            load_parquet(path)
        }
    }

    /// The value of `column` in row `i`, or an error naming the row and the column.
    pub fn get(&self, i: usize, column: &str) -> Result<&Value> {
        match self.rows[i].get(column) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(self.missing(i, column)),
        }
    }

    fn missing(&self, i: usize, column: &str) -> Error {
        let have: Vec<&str> = self.rows[i].keys().map(String::as_str).collect();
        Error::invalid(
            self.locations[i].clone(),
            format!("missing column `{column}` (the row has: {})", have.join(", ")),
        )
    }

    /// Check every row has each column in `columns` (for reward functions' needs).
    pub fn require(&self, columns: &[&str]) -> Result<()> {
        for i in 0..self.len() {
            for c in columns {
                self.get(i, c)?;
            }
        }
        Ok(())
    }
}

fn load_jsonl(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut ds = Dataset::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let loc = format!("{}:{}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| Error::invalid(loc.clone(), format!("not JSON: {e}")))?;
        match v {
            Value::Object(o) => ds.rows.push(o),
            _ => return Err(Error::invalid(loc, "a row must be a JSON object")),
        }
        ds.locations.push(loc);
    }
    Ok(ds)
}

/// The Hugging Face hub cache directory (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
fn hub_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache").join("huggingface").join("hub")
}

/// The snapshot a cached Hub repo's `refs/main` names, else its only snapshot.
fn cached_snapshot(repo: &Path) -> Option<PathBuf> {
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let p = snapshots.join(rev.trim());
        if p.is_dir() {
            return Some(p);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snapshots).ok()?.flatten().map(|e| e.path()).collect();
    dirs.sort();
    (dirs.len() == 1).then(|| dirs.remove(0))
}

/// The files of `split` in a dataset directory (`data/<split>-*`, `<split>-*`, `<split>.<ext>` or
/// `<split>/`), or `None` when the directory has no split layout.
fn split_files(dir: &Path, split: &str) -> Result<Option<Vec<PathBuf>>> {
    let data_exts = ["parquet", "jsonl", "json"];
    let is_data = |p: &Path| p.extension().and_then(|e| e.to_str()).is_some_and(|e| data_exts.contains(&e));
    let list = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(d).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        v.sort();
        v
    };
    let prefix = format!("{split}-");
    for d in [dir.join("data"), dir.to_path_buf()] {
        let files: Vec<PathBuf> = list(&d)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                is_data(p) && (name.starts_with(&prefix) || p.file_stem().and_then(|s| s.to_str()) == Some(split))
            })
            .collect();
        if !files.is_empty() {
            return Ok(Some(files));
        }
    }
    let sub = dir.join(split);
    if sub.is_dir() {
        let files: Vec<PathBuf> = list(&sub).into_iter().filter(|p| is_data(p)).collect();
        if !files.is_empty() {
            return Ok(Some(files));
        }
    }
    Ok(None)
}

fn load_parquet(path: &Path) -> Result<Dataset> {
    let mut ds = Dataset::default();
    for file in rlox_data::read::parquet_files(path)? {
        let (_, batches) = rlox_data::read::read_file(&file)?;
        let mut row = 0usize;
        for b in &batches {
            let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
            for i in 0..b.num_rows() {
                let mut obj = Map::new();
                for (c, name) in names.iter().enumerate() {
                    obj.insert(name.clone(), array_value(b.column(c).as_ref(), i, &file)?);
                }
                ds.rows.push(obj);
                ds.locations.push(format!("{} row {row}", file.display()));
                row += 1;
            }
        }
    }
    Ok(ds)
}

/// One Arrow value as JSON.
fn array_value(a: &dyn Array, i: usize, file: &Path) -> Result<Value> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Utf8 => Value::from(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(a.as_string::<i64>().value(i)),
        DataType::Utf8View => Value::from(a.as_string_view().value(i)),
        DataType::Boolean => Value::from(a.as_boolean().value(i)),
        // Bytes (an encoded image, as the `datasets` library's Image feature stores it) as a list of numbers.
        DataType::Binary => Value::from(a.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Value::from(a.as_binary::<i64>().value(i).to_vec()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let c = cast(a, i, &DataType::Int64, file)?;
            Value::from(c.as_primitive::<arrow::datatypes::Int64Type>().value(0))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let c = cast(a, i, &DataType::UInt64, file)?;
            Value::from(c.as_primitive::<arrow::datatypes::UInt64Type>().value(0))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let c = cast(a, i, &DataType::Float64, file)?;
            Value::from(c.as_primitive::<arrow::datatypes::Float64Type>().value(0))
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            Value::Array((0..l.len()).map(|j| array_value(l.as_ref(), j, file)).collect::<Result<_>>()?)
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>().value(i);
            Value::Array((0..l.len()).map(|j| array_value(l.as_ref(), j, file)).collect::<Result<_>>()?)
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut o = Map::new();
            for (k, f) in fields.iter().enumerate() {
                o.insert(f.name().clone(), array_value(s.column(k).as_ref(), i, file)?);
            }
            Value::Object(o)
        }
        other => {
            return Err(Error::invalid(
                file.display().to_string(),
                format!("column type {other} is not supported in datasets (use strings, numbers, lists, structs)"),
            ))
        }
    })
}

fn cast(a: &dyn Array, i: usize, to: &DataType, file: &Path) -> Result<arrow::array::ArrayRef> {
    arrow::compute::cast(&a.slice(i, 1), to)
        .map_err(|e| Error::invalid(file.display().to_string(), format!("cannot read a value as {to}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Typed examples
// ---------------------------------------------------------------------------------------------

/// A prompt or completion: plain text or a list of chat messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    /// Standard (plain text).
    Plain(String),
    /// Conversational.
    Messages(Vec<ChatMessage>),
}

impl Text {
    fn parse(v: &Value, loc: &str, column: &str) -> Result<Self> {
        match v {
            Value::String(s) => Ok(Text::Plain(s.clone())),
            Value::Array(items) => {
                let mut msgs = Vec::new();
                for (k, m) in items.iter().enumerate() {
                    let role = m.get("role").and_then(Value::as_str);
                    let content = m.get("content").and_then(message_content);
                    match (role, content) {
                        (Some(r), Some(c)) => msgs.push(ChatMessage::new(r, &c)),
                        _ => {
                            return Err(Error::invalid(
                                loc.to_string(),
                                format!(
                                    "column `{column}` message {k} needs a string `role` and a `content` that is a \
                                     string or a list of {{\"type\": \"text\", \"text\": ...}} / {{\"type\": \"image\"}} parts"
                                ),
                            ))
                        }
                    }
                }
                Ok(Text::Messages(msgs))
            }
            _ => Err(Error::invalid(
                loc.to_string(),
                format!("column `{column}` must be a string or a list of {{role, content}} messages"),
            )),
        }
    }

    /// Whether this is a message list.
    pub fn is_conversational(&self) -> bool {
        matches!(self, Text::Messages(_))
    }

    /// The plain text, or the last message's content (what a reward function sees of a conversation).
    pub fn plain(&self) -> String {
        match self {
            Text::Plain(s) => s.clone(),
            Text::Messages(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
        }
    }
}

/// Where an image sits in a text: the `{"type": "image"}` part of a message becomes this marker in
/// its content, and plain-text prompts may hold it too (TRL's and LLaVA's convention). A
/// vision-language model puts the row's images there, in order.
pub const IMAGE_MARKER: &str = "<image>";

/// A message's content: a string, or TRL's list of parts (`text` parts joined, `image` parts as
/// [`IMAGE_MARKER`]); `None` when it is neither.
fn message_content(c: &Value) -> Option<String> {
    match c {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str)? {
                    "text" => out.push_str(part.get("text").and_then(Value::as_str)?),
                    "image" => out.push_str(IMAGE_MARKER),
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// An image of a row, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A file (relative paths resolved against the dataset file's directory).
    Path(PathBuf),
    /// An encoded PNG or JPEG held in the row.
    Bytes(Vec<u8>),
}

/// The images of row `i` (TRL's `images` column, or a single `image`): each a path string, or an
/// object with `bytes` (a list of byte values, as Parquet's binary column reads) or `path`, as the
/// `datasets` library's Image feature stores it. Rows without the column have no images.
pub fn row_images(ds: &Dataset, i: usize) -> Result<Vec<ImageSource>> {
    let loc = &ds.locations[i];
    let row = &ds.rows[i];
    let (column, items) = match (row.get("images"), row.get("image")) {
        (Some(Value::Array(items)), _) => ("images", items.as_slice()),
        (Some(Value::Null), _) | (None, None) | (None, Some(Value::Null)) => return Ok(Vec::new()),
        (Some(_), _) => {
            return Err(Error::invalid(
                loc.clone(),
                "column `images` must be a list of images (paths or {bytes, path})",
            ))
        }
        (None, Some(one)) => ("image", std::slice::from_ref(one)),
    };
    let dir = ds.dirs.get(i).cloned().unwrap_or_default();
    let bad = |k: usize, why: &str| Error::invalid(loc.clone(), format!("column `{column}` item {k}: {why}"));
    items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let path = |p: &str| ImageSource::Path(dir.join(p));
            match item {
                Value::String(p) => Ok(path(p)),
                Value::Object(o) => match (o.get("bytes"), o.get("path")) {
                    (Some(Value::Array(bytes)), _) => bytes
                        .iter()
                        .map(|b| b.as_u64().filter(|&b| b < 256).map(|b| b as u8))
                        .collect::<Option<Vec<u8>>>()
                        .map(ImageSource::Bytes)
                        .ok_or_else(|| bad(k, "`bytes` must hold byte values 0-255")),
                    (_, Some(Value::String(p))) => Ok(path(p)),
                    _ => Err(bad(k, "an image object needs `bytes` or a `path`")),
                },
                _ => Err(bad(k, "an image is a path string or an object with `bytes` or `path`")),
            }
        })
        .collect()
}

/// A prompt and a completion (SFT), or a text with an empty prompt (language modelling).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptCompletion {
    /// The prompt (empty plain text for language-modelling rows).
    pub prompt: Text,
    /// The completion.
    pub completion: Text,
}

/// A preference triple.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceExample {
    /// The prompt (explicit, or extracted from the common prefix).
    pub prompt: Text,
    /// The preferred completion.
    pub chosen: Text,
    /// The dispreferred completion.
    pub rejected: Text,
    /// The optional `margin` column (reward model).
    pub margin: Option<f64>,
}

/// Prompt-completion examples for SFT: `prompt`+`completion`, `messages` (all but the last assistant turn
/// are the prompt) or `text` (empty prompt, the loss covers the whole text).
pub fn sft_examples(ds: &Dataset) -> Result<Vec<PromptCompletion>> {
    (0..ds.len())
        .map(|i| {
            let loc = &ds.locations[i];
            let row = &ds.rows[i];
            if row.contains_key("prompt") || row.contains_key("completion") {
                let prompt = Text::parse(ds.get(i, "prompt")?, loc, "prompt")?;
                let completion = Text::parse(ds.get(i, "completion")?, loc, "completion")?;
                Ok(PromptCompletion { prompt, completion })
            } else if row.contains_key("messages") {
                match Text::parse(ds.get(i, "messages")?, loc, "messages")? {
                    Text::Messages(mut m) if m.len() >= 2 => {
                        let last = m.pop().expect("two or more");
                        Ok(PromptCompletion { prompt: Text::Messages(m), completion: Text::Messages(vec![last]) })
                    }
                    _ => Err(Error::invalid(loc.clone(), "column `messages` needs at least two messages")),
                }
            } else if row.contains_key("text") {
                let t = Text::parse(ds.get(i, "text")?, loc, "text")?;
                Ok(PromptCompletion { prompt: Text::Plain(String::new()), completion: t })
            } else {
                Err(ds.missing(i, "prompt` and `completion` (or `messages`, or `text"))
            }
        })
        .collect()
}

/// Preference examples (explicit or implicit prompt); `margin` is read when present.
pub fn preference_examples(ds: &Dataset) -> Result<Vec<PreferenceExample>> {
    (0..ds.len())
        .map(|i| {
            let loc = &ds.locations[i];
            let chosen = Text::parse(ds.get(i, "chosen")?, loc, "chosen")?;
            let rejected = Text::parse(ds.get(i, "rejected")?, loc, "rejected")?;
            let margin = match ds.rows[i].get("margin") {
                None | Some(Value::Null) => None,
                Some(v) => {
                    Some(v.as_f64().ok_or_else(|| Error::invalid(loc.clone(), "column `margin` must be a number"))?)
                }
            };
            let (prompt, chosen, rejected) = match ds.rows[i].get("prompt") {
                Some(p) if !p.is_null() => (Text::parse(p, loc, "prompt")?, chosen, rejected),
                _ => extract_prompt(chosen, rejected, loc)?,
            };
            if chosen.is_conversational() != rejected.is_conversational() {
                return Err(Error::invalid(
                    loc.clone(),
                    "`chosen` and `rejected` must both be text or both be messages",
                ));
            }
            Ok(PreferenceExample { prompt, chosen, rejected, margin })
        })
        .collect()
}

/// Split the common prefix of `chosen` and `rejected` off as the prompt.
pub fn extract_prompt(chosen: Text, rejected: Text, loc: &str) -> Result<(Text, Text, Text)> {
    match (chosen, rejected) {
        (Text::Plain(c), Text::Plain(r)) => {
            let mut n = c.chars().zip(r.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum::<usize>();
            // Do not split a word: back up to just after the last whitespace of the common part.
            if n < c.len() || n < r.len() {
                if let Some(ws) = c[..n].rfind(char::is_whitespace) {
                    n = ws + c[ws..].chars().next().map_or(1, char::len_utf8);
                } else {
                    n = 0;
                }
            }
            Ok((Text::Plain(c[..n].to_string()), Text::Plain(c[n..].to_string()), Text::Plain(r[n..].to_string())))
        }
        (Text::Messages(c), Text::Messages(r)) => {
            let n = c.iter().zip(&r).take_while(|(a, b)| a == b).count().min(c.len().saturating_sub(1));
            if n == 0 {
                return Err(Error::invalid(
                    loc.to_string(),
                    "no `prompt` column and `chosen`/`rejected` share no leading messages: cannot infer the prompt",
                ));
            }
            Ok((Text::Messages(c[..n].to_vec()), Text::Messages(c[n..].to_vec()), Text::Messages(r[n..].to_vec())))
        }
        _ => Err(Error::invalid(loc.to_string(), "`chosen` and `rejected` must both be text or both be messages")),
    }
}

/// Prompt-only rows for GRPO: the `prompt` of each row plus the row itself (for reward functions).
pub fn prompt_examples(ds: &Dataset) -> Result<Vec<(Text, Row)>> {
    (0..ds.len())
        .map(|i| Ok((Text::parse(ds.get(i, "prompt")?, &ds.locations[i], "prompt")?, ds.rows[i].clone())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tokenisation
// ---------------------------------------------------------------------------------------------

/// Truncation limits (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Truncation {
    /// Keep the last `max_prompt_length` prompt tokens.
    pub max_prompt_length: Option<usize>,
    /// Keep the first `max_completion_length` completion tokens.
    pub max_completion_length: Option<usize>,
    /// Prompt plus completion at most this long (completion cut first).
    pub max_length: Option<usize>,
}

impl Truncation {
    /// Apply to a prompt/completion pair.
    pub fn apply(&self, prompt: &mut Vec<u32>, completion: &mut Vec<u32>) {
        if let Some(m) = self.max_prompt_length {
            if prompt.len() > m {
                prompt.drain(..prompt.len() - m);
            }
        }
        if let Some(m) = self.max_completion_length {
            completion.truncate(m);
        }
        if let Some(m) = self.max_length {
            if prompt.len() + completion.len() > m {
                if prompt.len() >= m {
                    prompt.drain(..prompt.len() - (m - 1).max(1).min(prompt.len()));
                }
                completion.truncate(m.saturating_sub(prompt.len()));
            }
        }
    }
}

/// Prompt token ids: plain text encoded with the tokenizer's special tokens, messages rendered with
/// the chat template and the assistant header.
pub fn tokenize_prompt(tok: &LmTokenizer, prompt: &Text) -> Result<Vec<u32>> {
    match prompt {
        Text::Plain(s) if s.is_empty() => Ok(Vec::new()),
        Text::Plain(s) => tok.encode(s, true),
        Text::Messages(m) => tok.apply_chat_template(m, true),
    }
}

/// The EOS id appended to plain-text completions.
pub fn eos_id(tok: &LmTokenizer) -> Result<u32> {
    tok.eos_token_ids.first().copied().ok_or_else(|| {
        Error::invalid("tokenizer", "no EOS token (tokenizer_config.json eos_token or generation_config.json)")
    })
}

/// Token ids of a prompt and its completion; `loc` and `column` name the row in errors.
///
/// As TRL 1.x does, the prompt and the prompt+completion are tokenised separately and the completion
/// starts where the two token sequences diverge (usually right after the prompt; earlier when a BPE
/// merge crosses the boundary), so the training sequence is exactly what the model sees at inference.
pub fn tokenize_pair(
    tok: &LmTokenizer,
    prompt: &Text,
    completion: &Text,
    trunc: &Truncation,
    loc: &str,
    column: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let empty = || Error::invalid(loc.to_string(), format!("empty completion in column `{column}`"));
    let (prompt_ids, full) = match (prompt, completion) {
        (Text::Messages(pm), Text::Messages(cm)) => {
            let template = tok.chat_template.ok_or_else(|| {
                Error::invalid(
                    loc.to_string(),
                    "the row is conversational but the tokenizer has no chat template (ChatML or Llama 3); \
                     add one to tokenizer_config.json or use plain-text columns",
                )
            })?;
            if cm.is_empty() || cm.iter().all(|m| m.content.is_empty()) {
                return Err(empty());
            }
            let mut all = pm.clone();
            all.extend(cm.iter().cloned());
            let p = if pm.is_empty() { Vec::new() } else { tok.encode(&template.render(pm, true), false)? };
            (p, tok.encode(&template.render(&all, false), false)?)
        }
        (Text::Plain(p), Text::Plain(c)) => {
            if c.is_empty() {
                return Err(empty());
            }
            let pi = if p.is_empty() { Vec::new() } else { tok.encode(p, true)? };
            let mut full = tok.encode(&format!("{p}{c}"), true)?;
            full.push(eos_id(tok)?);
            (pi, full)
        }
        _ => {
            return Err(Error::invalid(
                loc.to_string(),
                format!("`prompt` and `{column}` must both be text or both be messages"),
            ))
        }
    };
    split_pair(prompt_ids, full, trunc, loc, column)
}

/// The prompt and completion of `full` (the tokens of prompt + completion), the completion starting
/// where `full` leaves `prompt_ids`, then truncated; an empty completion is an error naming the row.
pub fn split_pair(
    prompt_ids: Vec<u32>,
    mut full: Vec<u32>,
    trunc: &Truncation,
    loc: &str,
    column: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let common = prompt_ids.iter().zip(&full).take_while(|(a, b)| a == b).count();
    let mut c = full.split_off(common);
    let mut p = full;
    trunc.apply(&mut p, &mut c);
    if c.is_empty() {
        return Err(Error::invalid(
            loc.to_string(),
            format!("column `{column}` has no tokens left after truncation (max_length too small for the prompt)"),
        ));
    }
    Ok((p, c))
}

/// Prompt/completion sequences as one rectangular batch: prompts left-padded to a common length `P`,
/// completions right-padded to `C`, so every completion starts at column `P`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// `[B][P + C]` token ids (padding holds `pad`).
    pub ids: Vec<Vec<u32>>,
    /// `[B][P + C]` rotary positions (counting real tokens).
    pub positions: Vec<Vec<usize>>,
    /// `[B][P + C]` false at padding.
    pub valid: Vec<Vec<bool>>,
    /// `[B][C]` 1 at real completion tokens.
    pub completion_mask: Vec<Vec<f32>>,
    /// `[B][C]` the completion ids (padding `pad`).
    pub completion_ids: Vec<Vec<u32>>,
    /// Prompt width `P`.
    pub prompt_len: usize,
    /// Completion width `C`.
    pub completion_len: usize,
}

impl PaddedBatch {
    /// Build from `(prompt, completion)` pairs.
    pub fn new(pairs: &[(Vec<u32>, Vec<u32>)], pad: u32) -> Self {
        let p = pairs.iter().map(|(a, _)| a.len()).max().unwrap_or(0);
        let c = pairs.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        let mut out = PaddedBatch {
            ids: Vec::new(),
            positions: Vec::new(),
            valid: Vec::new(),
            completion_mask: Vec::new(),
            completion_ids: Vec::new(),
            prompt_len: p,
            completion_len: c,
        };
        for (pr, co) in pairs {
            let lp = p - pr.len();
            let mut ids = vec![pad; lp];
            ids.extend_from_slice(pr);
            ids.extend_from_slice(co);
            ids.resize(p + c, pad);
            let real = pr.len() + co.len();
            out.positions.push((0..p + c).map(|i| i.saturating_sub(lp).min(real.saturating_sub(1))).collect());
            out.valid.push((0..p + c).map(|i| i >= lp && i < p + co.len()).collect());
            out.completion_mask.push((0..c).map(|j| (j < co.len()) as u8 as f32).collect());
            let mut cids = co.clone();
            cids.resize(c, pad);
            out.completion_ids.push(cids);
            out.ids.push(ids);
        }
        out
    }

    /// The model input.
    pub fn forward_input(&self) -> rlox_lm::ForwardInput {
        rlox_lm::ForwardInput { ids: self.ids.clone(), positions: self.positions.clone(), valid: self.valid.clone() }
    }

    /// Completion tokens per row.
    pub fn completion_lengths(&self) -> Vec<usize> {
        self.completion_mask.iter().map(|m| m.iter().filter(|&&x| x > 0.0).count()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_prompt_from_text_and_messages() {
        let (p, c, r) =
            extract_prompt(Text::Plain("Q: 2+2? A: 4".into()), Text::Plain("Q: 2+2? A: 5".into()), "row 0").unwrap();
        assert_eq!(p, Text::Plain("Q: 2+2? A: ".into()));
        assert_eq!(c, Text::Plain("4".into()));
        assert_eq!(r, Text::Plain("5".into()));
        let u = ChatMessage::new("user", "hi");
        let (p, c, _) = extract_prompt(
            Text::Messages(vec![u.clone(), ChatMessage::new("assistant", "hello")]),
            Text::Messages(vec![u.clone(), ChatMessage::new("assistant", "go away")]),
            "row 0",
        )
        .unwrap();
        assert_eq!(p, Text::Messages(vec![u]));
        assert_eq!(c, Text::Messages(vec![ChatMessage::new("assistant", "hello")]));
    }

    #[test]
    fn truncation_rules() {
        let t = Truncation { max_prompt_length: Some(2), max_completion_length: Some(3), max_length: Some(4) };
        let (mut p, mut c) = (vec![1, 2, 3], vec![4, 5, 6, 7]);
        t.apply(&mut p, &mut c);
        assert_eq!(p, vec![2, 3]);
        assert_eq!(c, vec![4, 5]);
    }

    #[test]
    fn padded_batch_aligns_completions() {
        let b = PaddedBatch::new(&[(vec![5, 6], vec![7]), (vec![8], vec![9, 10])], 0);
        assert_eq!(b.ids, vec![vec![5, 6, 7, 0], vec![0, 8, 9, 10]]);
        assert_eq!(b.valid[1], vec![false, true, true, true]);
        assert_eq!(b.positions[1][1..], [0, 1, 2]);
        assert_eq!(b.completion_mask, vec![vec![1.0, 0.0], vec![1.0, 1.0]]);
        assert_eq!(b.completion_lengths(), vec![1, 2]);
    }

    #[test]
    fn missing_column_names_row_and_column() {
        let dir = std::env::temp_dir().join(format!("rlox-posttrain-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.jsonl");
        std::fs::write(
            &p,
            "{\"prompt\":\"a\",\"chosen\":\"b\",\"rejected\":\"c\"}\n{\"prompt\":\"a\",\"chosen\":\"b\"}\n",
        )
        .unwrap();
        let ds = Dataset::load(&p).unwrap();
        let e = preference_examples(&ds).unwrap_err().to_string();
        assert!(e.contains("d.jsonl:2") && e.contains("`rejected`"), "{e}");
    }
}
