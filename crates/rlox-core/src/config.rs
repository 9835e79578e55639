//! TOML configuration files.
//!
//! Every trainer's `Config` derives `Deserialize` with `#[serde(deny_unknown_fields, default)]`, so
//! a typo is an error naming the key, its line and column, and a missing key takes the documented
//! default.
//!
//! A run's config file is *flat* in the style of TRL's and Stable-Baselines3's configs: the run
//! settings (`seed`, `total_steps`, `output_dir`, ...) and the method's hyper-parameters (`beta`,
//! `learning_rate`, ...) sit side by side in one table, although they are separate structs in the
//! code. serde's `flatten` cannot be combined with `deny_unknown_fields`, so [`FlatTable`] does the
//! split itself: each section takes the keys its struct accepts (read from serde's derive with
//! [`struct_keys`], aliases included), and a key that no section takes is an error naming the file,
//! the key and its line.

use crate::{Error, Result};
use serde::de::{self, DeserializeOwned, Visitor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Parse `text` (from `origin`, used in messages) into `T`.
pub fn from_toml_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    toml::from_str(text)
        .map_err(|e| Error::Config { path: origin.to_path_buf(), message: e.to_string().trim_end().to_string() })
}

/// Read and parse a TOML file.
pub fn load_toml<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    from_toml_str(&text, path)
}

/// Serialise a config to TOML (for the run directory's resolved config).
pub fn to_toml_string<T: Serialize>(value: &T) -> Result<String> {
    toml::to_string_pretty(value).map_err(|e| Error::invalid("config", e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Flat tables split among sections
// ---------------------------------------------------------------------------------------------

/// A deserializer that only records the field list a derived `Deserialize` asks for.
struct KeyProbe(std::cell::Cell<Option<&'static [&'static str]>>);

#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe done")
    }
}

impl std::error::Error for ProbeDone {}

impl de::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        ProbeDone
    }
}

impl<'de> de::Deserializer<'de> for &KeyProbe {
    type Error = ProbeDone;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> std::result::Result<V::Value, ProbeDone> {
        self.0.set(Some(fields));
        Err(ProbeDone)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The keys (field names and serde aliases) that `T`'s derived `Deserialize` accepts; empty for a type
/// that is not a plain struct.
pub fn struct_keys<T: DeserializeOwned>() -> &'static [&'static str] {
    let probe = KeyProbe(std::cell::Cell::new(None));
    let _ = T::deserialize(&probe);
    probe.0.get().unwrap_or(&[])
}

/// One top-level entry of a [`FlatTable`]: its value and the line it stands on (1-based).
#[derive(Debug, Clone)]
struct Entry {
    value: toml::Value,
    line: usize,
}

/// A flat TOML document whose keys are handed out to sections (see the module docs).
///
/// ```
/// # use serde::Deserialize;
/// #[derive(Deserialize, Default)]
/// #[serde(default, deny_unknown_fields)]
/// struct Run { seed: u64 }
/// #[derive(Deserialize, Default)]
/// #[serde(default, deny_unknown_fields)]
/// struct Dpo { beta: f64 }
/// let mut t = rlox_core::config::FlatTable::parse("seed = 3\nbeta = 0.2\n", "dpo.toml".as_ref()).unwrap();
/// let run: Run = t.take().unwrap();
/// let dpo: Dpo = t.take().unwrap();
/// t.finish().unwrap();
/// assert_eq!((run.seed, dpo.beta), (3, 0.2));
/// ```
#[derive(Debug, Clone)]
pub struct FlatTable {
    origin: PathBuf,
    entries: BTreeMap<String, Entry>,
    /// Every key any section took or was offered, for the "known keys" hint.
    offered: Vec<&'static str>,
}

impl FlatTable {
    /// Parse `text` (from `origin`, which messages name).
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let raw: BTreeMap<toml::Spanned<String>, toml::Value> = toml::from_str(text)
            .map_err(|e| Error::Config { path: origin.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
        let entries = raw
            .into_iter()
            .map(|(k, value)| {
                let line = text[..k.span().start.min(text.len())].matches('\n').count() + 1;
                (k.into_inner(), Entry { value, line })
            })
            .collect();
        Ok(FlatTable { origin: origin.to_path_buf(), entries, offered: Vec::new() })
    }

    /// Read and parse a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        FlatTable::parse(&text, path)
    }

    /// A table from values already in memory (no lines to report), e.g. a Python dict.
    pub fn from_table(table: toml::Table, origin: &Path) -> Self {
        let entries = table.into_iter().map(|(k, value)| (k, Entry { value, line: 0 })).collect();
        FlatTable { origin: origin.to_path_buf(), entries, offered: Vec::new() }
    }

    /// The file the table came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    fn at(&self, line: usize) -> String {
        if line == 0 {
            String::new()
        } else {
            format!("line {line}: ")
        }
    }

    fn config_error(&self, line: usize, message: impl std::fmt::Display) -> Error {
        Error::Config { path: self.origin.clone(), message: format!("{}{message}", self.at(line)) }
    }

    /// Whether `key` is present (and not yet taken).
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Remove and return the value of `key` and its line (0 when unknown), if present.
    pub fn remove(&mut self, key: &str) -> Option<(toml::Value, usize)> {
        self.entries.remove(key).map(|e| (e.value, e.line))
    }

    /// Put `value` under `key` (a converted setting; `line` is where its source stood). An existing
    /// `key` is an error: the two spell the same setting.
    pub fn insert(&mut self, key: &str, value: toml::Value, line: usize, from: &'static str) -> Result<()> {
        if let Some(other) = self.entries.get(key) {
            return Err(self
                .error_at(line, format!("`{from}` and `{key}` (line {}) are the same setting; give one", other.line)));
        }
        self.offered.push(from);
        self.entries.insert(key.to_string(), Entry { value, line });
        Ok(())
    }

    /// An error about this file at `line` (0: no line).
    pub fn error_at(&self, line: usize, message: impl std::fmt::Display) -> Error {
        self.config_error(line, message)
    }

    /// Accept `alias` as another spelling of `target`, a key or a dotted path into a sub-table
    /// (`model_name_or_path` for `model.path`). Giving both is an error naming both lines.
    pub fn alias(&mut self, alias: &'static str, target: &str) -> Result<()> {
        let Some(entry) = self.entries.remove(alias) else { return Ok(()) };
        let (head, rest) = match target.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (target, None),
        };
        match rest {
            None => {
                if let Some(other) = self.entries.get(head) {
                    return Err(self.config_error(
                        entry.line,
                        format!("`{alias}` and `{target}` (line {}) are the same setting; give one", other.line),
                    ));
                }
                self.entries.insert(head.to_string(), entry);
            }
            Some(rest) => {
                let line = entry.line;
                let sub = self
                    .entries
                    .entry(head.to_string())
                    .or_insert_with(|| Entry { value: toml::Value::Table(toml::Table::new()), line });
                let toml::Value::Table(t) = &mut sub.value else {
                    return Err(self.config_error(line, format!("`{head}` must be a table for `{alias}`")));
                };
                if t.contains_key(rest) {
                    return Err(
                        self.config_error(line, format!("`{alias}` and `{target}` are the same setting; give one"))
                    );
                }
                t.insert(rest.to_string(), entry.value);
            }
        }
        self.offered.push(alias);
        Ok(())
    }

    /// Take the keys `T` accepts and build `T` from them (missing keys take `T`'s defaults). A wrong
    /// type is an error naming the file, the key and its line.
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<T> {
        let keys = struct_keys::<T>();
        self.offered.extend_from_slice(keys);
        let mut table = toml::Table::new();
        let mut lines = Vec::new();
        for k in keys {
            if let Some(e) = self.entries.remove(*k) {
                lines.push((k.to_string(), e.line));
                table.insert(k.to_string(), e.value);
            }
        }
        T::deserialize(toml::Value::Table(table)).map_err(|e| {
            let message = e.to_string().trim_end().replace('\n', " ");
            // toml's value deserializer ends its messages with "in `key`" (or "in `key.sub`").
            let line = lines
                .iter()
                .find(|(k, _)| message.contains(&format!("`{k}`")) || message.contains(&format!("`{k}.")))
                .map_or(0, |(_, l)| *l);
            self.config_error(line, message)
        })
    }

    /// [`FlatTable::take`] starting from `base`: the keys given here override `base`'s values, the
    /// others keep them (a trainer's own defaults for a shared section).
    pub fn take_over<T: Serialize + DeserializeOwned>(&mut self, base: &T) -> Result<T> {
        let keys = struct_keys::<T>();
        let toml::Value::Table(mut merged) =
            toml::Value::try_from(base).map_err(|e| Error::invalid("config defaults", e.to_string()))?
        else {
            return Err(Error::invalid("config defaults", "not a table"));
        };
        let mut given = BTreeMap::new();
        for k in keys {
            if let Some(e) = self.entries.remove(*k) {
                merged.remove(*k);
                given.insert(k.to_string(), e);
            }
        }
        let lines: Vec<(String, usize)> = given.iter().map(|(k, e)| (k.clone(), e.line)).collect();
        merged.extend(given.into_iter().map(|(k, e)| (k, e.value)));
        self.offered.extend_from_slice(keys);
        T::deserialize(toml::Value::Table(merged)).map_err(|e| {
            let message = e.to_string().trim_end().replace('\n', " ");
            let line = lines
                .iter()
                .find(|(k, _)| message.contains(&format!("`{k}`")) || message.contains(&format!("`{k}.")))
                .map_or(0, |(_, l)| *l);
            self.config_error(line, message)
        })
    }

    /// Take the sub-table `key` (absent: `None`) and build `T` from it.
    pub fn take_table<T: DeserializeOwned>(&mut self, key: &'static str) -> Result<Option<T>> {
        self.offered.push(key);
        let Some(e) = self.entries.remove(key) else { return Ok(None) };
        T::deserialize(e.value).map(Some).map_err(|err| {
            self.config_error(e.line, format!("[{key}]: {}", err.to_string().trim_end().replace('\n', " ")))
        })
    }

    /// Every key has been taken; otherwise an error naming the first unknown key, its line and the
    /// keys that are known here. `hint` may explain a key that belongs elsewhere.
    pub fn finish_with(self, hint: impl Fn(&str) -> Option<String>) -> Result<()> {
        let Some((key, entry)) = self.entries.iter().min_by_key(|(_, e)| e.line) else { return Ok(()) };
        let mut known: Vec<&str> = self.offered.clone();
        known.sort_unstable();
        known.dedup();
        let extra = hint(key).map(|h| format!(" ({h})")).unwrap_or_default();
        Err(self.config_error(entry.line, format!("unknown key `{key}`{extra}; known keys: {}", known.join(", "))))
    }

    /// [`FlatTable::finish_with`] without a hint.
    pub fn finish(self) -> Result<()> {
        self.finish_with(|_| None)
    }
}

/// Merge serialised sections into one flat table (later sections do not overwrite earlier keys) and
/// write it as TOML: the inverse of splitting a [`FlatTable`], for a run directory's `config.toml`.
pub fn flat_to_toml_string(sections: &[&dyn erased::SerializeToml]) -> Result<String> {
    let mut out = toml::Table::new();
    for s in sections {
        for (k, v) in s.to_table()? {
            out.entry(k).or_insert(v);
        }
    }
    // Plain keys first, then sub-tables, each group in key order, so the file reads like a config.
    let (plain, tables): (Vec<_>, Vec<_>) = out.into_iter().partition(|(_, v)| !v.is_table());
    let mut ordered = toml::Table::new();
    ordered.extend(plain);
    ordered.extend(tables);
    toml::to_string_pretty(&ordered).map_err(|e| Error::invalid("config", e.to_string()))
}

/// Object-safe serialisation of a config section to a TOML table (used by [`flat_to_toml_string`]).
pub mod erased {
    use super::*;

    /// A section that serialises to a TOML table.
    pub trait SerializeToml {
        /// The section as a table.
        fn to_table(&self) -> Result<toml::Table>;
    }

    impl<T: Serialize> SerializeToml for T {
        fn to_table(&self) -> Result<toml::Table> {
            match toml::Value::try_from(self).map_err(|e| Error::invalid("config", e.to_string()))? {
                toml::Value::Table(t) => Ok(t),
                other => Err(Error::invalid("config", format!("a section serialised to {}", other.type_str()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct C {
        gamma: f64,
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = from_toml_str::<C>("gamma = 0.9\ngamam = 1\n", Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("gamam") && err.contains("line 2"), "{err}");
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Run {
        seed: u64,
        #[serde(alias = "max_steps")]
        total_steps: u64,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Model {
        path: String,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Method {
        beta: f64,
        model: Model,
    }

    #[test]
    fn struct_keys_lists_fields_and_aliases() {
        assert_eq!(struct_keys::<Run>(), ["seed", "max_steps", "total_steps"]);
        assert_eq!(struct_keys::<u64>(), [] as [&str; 0]);
    }

    #[test]
    fn flat_table_splits_among_sections_with_aliases_and_lines() {
        let text = "seed = 3\nmax_steps = 10\nbeta = 0.5\nmodel_name_or_path = \"m\"\n";
        let mut t = FlatTable::parse(text, Path::new("c.toml")).unwrap();
        t.alias("model_name_or_path", "model.path").unwrap();
        let run: Run = t.take().unwrap();
        let method: Method = t.take().unwrap();
        t.finish().unwrap();
        assert_eq!(run, Run { seed: 3, total_steps: 10 });
        assert_eq!(method, Method { beta: 0.5, model: Model { path: "m".into() } });
        // Back to one flat file, and that file splits the same way.
        let text = flat_to_toml_string(&[&run, &method]).unwrap();
        let mut t = FlatTable::parse(&text, Path::new("again.toml")).unwrap();
        assert_eq!(t.take::<Run>().unwrap(), run);
        assert_eq!(t.take::<Method>().unwrap(), method);
        t.finish().unwrap();
    }

    #[test]
    fn flat_table_errors_name_file_key_and_line() {
        let mut t = FlatTable::parse("seed = 1\n\nbta = 0.1\n", Path::new("c.toml")).unwrap();
        let _: Run = t.take().unwrap();
        let _: Method = t.take().unwrap();
        let e = t.finish().unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("line 3") && e.contains("`bta`") && e.contains("beta"), "{e}");
        let mut t = FlatTable::parse("seed = 1\nbeta = \"big\"\n", Path::new("c.toml")).unwrap();
        let _: Run = t.take().unwrap();
        let e = t.take::<Method>().unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("beta"), "{e}");
        let mut t =
            FlatTable::parse("model_name_or_path = \"b\"\n[model]\npath = \"a\"\n", Path::new("c.toml")).unwrap();
        let e = t.alias("model_name_or_path", "model.path").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("same setting"), "{e}");
        let mut t = FlatTable::parse("max_steps = 1\ntotal_steps = 2\n", Path::new("c.toml")).unwrap();
        // serde's alias accepts either spelling; both at once is serde's duplicate-field error.
        assert!(t.take::<Run>().unwrap_err().to_string().contains("total_steps"));
    }

    #[test]
    fn wrong_type_names_line() {
        let err = from_toml_str::<C>("gamma = \"high\"\n", Path::new("y.toml")).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("gamma"), "{err}");
    }
}
